package web

import (
	"html/template"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/plugboard/plugboard/app/fault"
	"github.com/plugboard/plugboard/app/page"
	"github.com/plugboard/plugboard/marketplace"
)

// healthRange is a choice of the health page's range picker.
type healthRange struct {
	Key, Label, Resolution string
	Span, Step             time.Duration
	labels                 string // time layout of the x axis
}

var healthRanges = []healthRange{
	{Key: "24h", Label: "Last 24 hours", Resolution: "hourly", Span: 24 * time.Hour, Step: time.Hour, labels: "15:04"},
	{Key: "7d", Label: "Last 7 days", Resolution: "every 6 hours", Span: 7 * 24 * time.Hour, Step: 6 * time.Hour, labels: "Jan 2"},
	{Key: "30d", Label: "Last 30 days", Resolution: "daily", Span: 30 * 24 * time.Hour, Step: 24 * time.Hour, labels: "Jan 2"},
}

// errorClassCount is an error class and how often it happened in the range.
type errorClassCount struct {
	Class string
	N     int
}

// healthData is the health page.
type healthData struct {
	App          *marketplace.AppView
	Range        healthRange
	Ranges       []healthRange
	Since, Until time.Time

	Attempts, Succeeded, Failed int
	SuccessRate                 float64
	P50, P95, P99               float64
	P50Text, P95Text, P99Text   string
	ErrorClasses                []errorClassCount

	SuccessChart, LatencyChart, ErrorChart template.HTML

	Runs  page.Page[marketplace.Run]
	Query url.Values
}

// healthPage shows an app's delivery health over a range and its
// reconciliation reports.
func (s *Server) healthPage(c echo.Context, app *marketplace.AppView) error {
	rg, ok := healthRanges[0], false
	key := c.QueryParam("range")
	for _, r := range healthRanges {
		if r.Key == key || key == "" {
			rg, ok = r, true
			break
		}
	}
	if !ok {
		return fault.Field("range", "must be 24h, 7d or 30d")
	}
	until := timeNow().UTC().Truncate(rg.Step).Add(rg.Step)
	since := until.Add(-rg.Span)
	r, err := s.pageRequest(c)
	if err != nil {
		return err
	}
	if r.Limit == 0 {
		r.Limit = 10
	}
	pg, err := s.opts.Deliveries.HealthPage(c.Request().Context(), actor(c), app.Slug,
		marketplace.HealthQuery{Since: since, Until: until, Step: rg.Step}, r)
	if err != nil {
		return err
	}
	buckets, t := pg.Buckets, pg.Total

	d := &healthData{App: app, Range: rg, Ranges: healthRanges, Since: since, Until: until, Runs: pg.Runs, Query: url.Values{"range": {rg.Key}}}
	d.Attempts, d.Succeeded, d.Failed, d.SuccessRate = t.Attempts, t.Succeeded, t.Failed, t.SuccessRate
	d.P50, d.P95, d.P99 = t.P50, t.P95, t.P99
	d.P50Text, d.P95Text, d.P99Text = formatMs(t.P50), formatMs(t.P95), formatMs(t.P99)
	for class, n := range t.ErrorClasses {
		d.ErrorClasses = append(d.ErrorClasses, errorClassCount{class, n})
	}
	sort.Slice(d.ErrorClasses, func(i, j int) bool {
		if d.ErrorClasses[i].N != d.ErrorClasses[j].N {
			return d.ErrorClasses[i].N > d.ErrorClasses[j].N
		}
		return d.ErrorClasses[i].Class < d.ErrorClasses[j].Class
	})

	labels := make([]string, len(buckets))
	rate := chartSeries{Name: "Success rate", Color: "#10b981"}
	p50 := chartSeries{Name: "p50", Color: "#4f46e5"}
	p95 := chartSeries{Name: "p95", Color: "#f59e0b"}
	p99 := chartSeries{Name: "p99", Color: "#dc2626"}
	classes := make([]chartSeries, len(d.ErrorClasses))
	for i, ec := range d.ErrorClasses {
		classes[i] = chartSeries{Name: ec.Class}
	}
	for i, b := range buckets {
		labels[i] = b.Start.UTC().Format(rg.labels)
		if b.Attempts == 0 {
			rate.Values = append(rate.Values, math.NaN())
			p50.Values, p95.Values, p99.Values = append(p50.Values, math.NaN()), append(p95.Values, math.NaN()), append(p99.Values, math.NaN())
		} else {
			rate.Values = append(rate.Values, b.SuccessRate)
			p50.Values, p95.Values, p99.Values = append(p50.Values, b.P50), append(p95.Values, b.P95), append(p99.Values, b.P99)
		}
		for k := range classes {
			classes[k].Values = append(classes[k].Values, float64(b.ErrorClasses[classes[k].Name]))
		}
	}
	d.SuccessChart = lineChart(chartSpec{Title: "Success rate, " + rg.Resolution, Labels: labels, Series: []chartSeries{rate}, YMax: 1, Area: true,
		YFormat: func(v float64) string { return strconv.FormatFloat(v*100, 'f', 0, 64) + "%" }, Empty: "No attempts in this range"})
	d.LatencyChart = lineChart(chartSpec{Title: "Latency percentiles, " + rg.Resolution, Labels: labels, Series: []chartSeries{p50, p95, p99}, Log: true,
		YFormat: formatMs, Empty: "No attempts in this range"})
	d.ErrorChart = stackedBars(chartSpec{Title: "Failed attempts by error class, " + rg.Resolution, Labels: labels, Series: classes,
		Counts: true, Empty: "No failed attempts in this range"})

	v := s.partnerView(c, app, "Health")
	v.Data = d
	return s.render(c, http.StatusOK, "health", v)
}

// formatMs prints milliseconds for an axis: "850 ms", "1.2 s".
func formatMs(v float64) string {
	switch {
	case v >= 1000:
		return strconv.FormatFloat(math.Round(v/100)/10, 'f', -1, 64) + " s"
	case v > 0 && v < 0.01:
		return strconv.FormatFloat(v*1000, 'g', 3, 64) + " µs"
	case v > 0 && v < 10:
		return strconv.FormatFloat(v, 'g', 3, 64) + " ms"
	}
	return strconv.FormatFloat(v, 'f', 0, 64) + " ms"
}
