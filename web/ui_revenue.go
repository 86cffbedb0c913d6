package web

import (
	"encoding/csv"
	"errors"
	"html/template"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/plugboard/plugboard/app/fault"
	"github.com/plugboard/plugboard/marketplace"
)

// The partner's Revenue tab, its payout CSV, and the operators' revenue
// page: each reads one call of marketplace.Revenue.

// revenueRange is a choice of the Revenue tab's range picker.
type revenueRange struct {
	Key, Label, Resolution, labels string
}

var revenueRanges = []revenueRange{
	{Key: "12m", Label: "Last 12 months", Resolution: marketplace.ResolutionMonth, labels: "Jan 2006"},
	{Key: "12w", Label: "Last 12 weeks", Resolution: marketplace.ResolutionWeek, labels: "Jan 2"},
	{Key: "30d", Label: "Last 30 days", Resolution: marketplace.ResolutionDay, labels: "Jan 2"},
}

// revenueRow is one bucket of the Revenue tab's table.
type revenueRow struct {
	Label                                    string
	MRR                                      string
	Active, New, Churned, Started, Converted int
	Billed                                   string
}

// revenuePageData is the Revenue tab.
type revenuePageData struct {
	App        *marketplace.AppView
	Range      revenueRange
	Ranges     []revenueRange
	Revenue    *marketplace.AppRevenue
	MRRNow     []marketplace.Money
	ActiveNow  int
	Commission string
	// ChurnRate is churned / (active at the start + new), in the range.
	ChurnRate, Conversion  float64
	HasChurn, HasTrials    bool
	Rows                   []revenueRow
	MRRChart, InstallChart template.HTML
	Payouts                []marketplace.PayoutStatement
}

// moneyValue is an amount as a number of major units, for charts.
func moneyValue(m marketplace.Money) float64 {
	f, _ := strconv.ParseFloat(m.String(), 64)
	return f
}

// moneyText lists amounts in several currencies: "40.00 USD · 1200 JPY".
func moneyText(list []marketplace.Money) string {
	if len(list) == 0 {
		return "—"
	}
	parts := make([]string, len(list))
	for i, m := range list {
		parts[i] = m.String() + " " + m.Currency
	}
	return strings.Join(parts, " · ")
}

func (s *Server) revenuePage(c echo.Context, app *marketplace.AppView) error {
	rg, ok := revenueRanges[0], false
	key := c.QueryParam("range")
	for _, r := range revenueRanges {
		if r.Key == key || key == "" {
			rg, ok = r, true
			break
		}
	}
	if !ok {
		return fault.Field("range", "must be 12m, 12w or 30d")
	}
	ctx := c.Request().Context()
	rev, err := s.opts.Revenue.AppRevenue(ctx, actor(c), app.Slug, marketplace.RevenueQuery{Resolution: rg.Resolution})
	if err != nil {
		return err
	}
	payouts, err := s.opts.Revenue.Payouts(ctx, actor(c), app.Slug, time.Time{})
	if err != nil {
		return err
	}
	d := &revenuePageData{App: app, Range: rg, Ranges: revenueRanges, Revenue: rev, Payouts: payouts,
		Commission: marketplace.FormatCommission(rev.Commission.Bps)}
	now := timeNow()
	labels := make([]string, len(rev.Buckets))
	series := map[string]*marketplace.Money{}
	var currencies []string
	for _, b := range rev.Buckets {
		for _, m := range b.MRR {
			if series[m.Currency] == nil {
				series[m.Currency] = &marketplace.Money{Currency: m.Currency}
				currencies = append(currencies, m.Currency)
			}
		}
	}
	mrr := make([]chartSeries, len(currencies))
	for i, cur := range currencies {
		mrr[i] = chartSeries{Name: "MRR " + cur}
	}
	active := chartSeries{Name: "Active", Color: "#4f46e5"}
	fresh := chartSeries{Name: "New", Color: "#10b981"}
	churned := chartSeries{Name: "Churned", Color: "#dc2626"}
	startActive := -1
	for i, b := range rev.Buckets {
		labels[i] = b.Start.Format(rg.labels)
		future := !b.Start.Before(now)
		for k, cur := range currencies {
			v := 0.0
			for _, m := range b.MRR {
				if m.Currency == cur {
					v = moneyValue(m)
				}
			}
			if future {
				v = nanValue()
			}
			mrr[k].Values = append(mrr[k].Values, v)
		}
		if future {
			active.Values, fresh.Values, churned.Values = append(active.Values, nanValue()), append(fresh.Values, nanValue()), append(churned.Values, nanValue())
		} else {
			active.Values = append(active.Values, float64(b.Active))
			fresh.Values, churned.Values = append(fresh.Values, float64(b.New)), append(churned.Values, float64(b.Churned))
			d.MRRNow, d.ActiveNow = b.MRR, b.Active
			if startActive < 0 {
				startActive = b.Active - b.New + b.Churned
			}
		}
		var billed []marketplace.Money
		for _, m := range b.Billed {
			billed = append(billed, m.Money)
		}
		d.Rows = append(d.Rows, revenueRow{Label: labels[i], MRR: moneyText(b.MRR), Active: b.Active, New: b.New, Churned: b.Churned,
			Started: b.TrialsStarted, Converted: b.TrialsConverted, Billed: moneyText(sumMoney(billed))})
	}
	if base := max(startActive, 0) + rev.New; base > 0 {
		d.ChurnRate, d.HasChurn = float64(rev.Churned)/float64(base), true
	}
	if rev.TrialsStarted > 0 {
		d.Conversion, d.HasTrials = float64(rev.TrialsConverted)/float64(rev.TrialsStarted), true
	}
	d.MRRChart = lineChart(chartSpec{Title: "Monthly recurring revenue, by " + rg.Resolution, Labels: labels, Series: mrr, Area: len(mrr) == 1,
		Empty: "No recurring revenue in this range"})
	d.InstallChart = lineChart(chartSpec{Title: "Installations, by " + rg.Resolution, Labels: labels, Series: []chartSeries{active, fresh, churned},
		Counts: true, Empty: "No installations in this range"})
	v := s.partnerView(c, app, "Revenue")
	v.Data = d
	return s.render(c, http.StatusOK, "partner_revenue", v)
}

func nanValue() float64 { return math.NaN() }

// sumMoney adds amounts per currency.
func sumMoney(list []marketplace.Money) []marketplace.Money {
	var out []marketplace.Money
	for _, m := range list {
		found := false
		for i := range out {
			if out[i].Currency == m.Currency {
				out[i].Minor += m.Minor
				found = true
			}
		}
		if !found {
			out = append(out, m)
		}
	}
	return out
}

// csvCell keeps a spreadsheet from reading a value as a formula.
func csvCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// payoutsCSV downloads one month's payout statements: a line per paid
// invoice line, every currency.
func (s *Server) payoutsCSV(c echo.Context, app *marketplace.AppView) error {
	name := c.Param("file")
	month, ok := strings.CutSuffix(name, ".csv")
	if !ok {
		return fault.NotFound("payout statement")
	}
	period, err := marketplace.ParsePeriod(month)
	if err != nil {
		return fault.NotFound("payout statement")
	}
	list, err := s.opts.Revenue.Payouts(c.Request().Context(), actor(c), app.Slug, period)
	if err != nil {
		return err
	}
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, "text/csv; charset=utf-8")
	h.Set(echo.HeaderContentDisposition, `attachment; filename="`+app.Slug+"-payouts-"+marketplace.FormatPeriod(period)+`.csv"`)
	c.Response().WriteHeader(http.StatusOK)
	w := csv.NewWriter(c.Response())
	_ = w.Write([]string{"statement", "status", "currency", "invoice", "invoice_line", "organization", "installation", "plan", "kind",
		"billing_period", "date_paid", "commission_rate", "gross", "commission", "net"})
	for _, st := range list {
		f := func(n int64) string { return marketplace.FormatAmount(n, st.Currency) }
		for _, l := range st.Lines {
			_ = w.Write([]string{st.ID(), st.Status, st.Currency, strconv.FormatInt(l.InvoiceID, 10), strconv.FormatInt(l.InvoiceLineID, 10),
				csvCell(l.Organization), l.InstallationUUID, csvCell(l.Plan.Name), l.Kind, marketplace.FormatPeriod(l.Period),
				l.PaidAt.UTC().Format(time.RFC3339), marketplace.FormatCommission(l.CommissionBps), f(l.Gross), f(l.Commission), f(l.Net)})
		}
		_ = w.Write([]string{st.ID(), st.Status, st.Currency, "", "", "", "", "Total", "", "", "", "", f(st.Gross), f(st.Commission), f(st.Net)})
	}
	w.Flush()
	return w.Error()
}

// adminRevenueData is the operators' revenue page.
type adminRevenueData struct {
	*marketplace.PlatformRevenue
	Default string
}

func (s *Server) adminRevenue(c echo.Context) error {
	v, err := s.adminRevenueView(c)
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, "admin_revenue", v)
}

func (s *Server) adminRevenueView(c echo.Context) (*view, error) {
	pr, err := s.opts.Revenue.PlatformRevenue(c.Request().Context(), actor(c), 12)
	if err != nil {
		return nil, err
	}
	v := s.newView(c, "Revenue")
	v.Section = "admin"
	v.Data = adminRevenueData{PlatformRevenue: pr, Default: marketplace.FormatCommission(pr.DefaultBps)}
	return v, nil
}

// adminSetCommission sets an app's commission from the operators' page:
// an empty rate returns the app to the platform's default.
func (s *Server) adminSetCommission(c echo.Context) error {
	slug := strings.TrimSpace(c.FormValue("app"))
	var percent *string
	if p := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(c.FormValue("commission")), "%")); p != "" {
		percent = &p
	}
	var err error
	var cv marketplace.CommissionView
	if slug == "" {
		err = fault.Field("app", "is required: the slug of the app")
	} else {
		cv, err = s.opts.Revenue.SetCommission(c.Request().Context(), actor(c), slug, percent)
		if errors.Is(err, fault.ErrNotFound) {
			err = fault.Field("app", "is not an app's slug")
		}
	}
	if formFault(err) {
		return s.refuse(c, err, "admin_revenue", s.adminRevenueView)
	}
	if err != nil {
		return err
	}
	msg := slug + " now pays " + marketplace.FormatCommission(cv.Bps) + "% commission"
	if cv.Override == nil {
		msg += ", the platform's default"
	}
	return s.redirect(c, "/admin/revenue?"+url.Values{"app": {slug}}.Encode(), msg+", on invoices paid from now on.")
}
