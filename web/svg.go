package web

// Small server-rendered SVG charts for the health pages: no JavaScript,
// nothing but attributes (the CSP forbids inline styles), every label
// escaped. A chart is a template.HTML holding a <figure> with the <svg>
// and its legend.

import (
	"fmt"
	"html/template"
	"math"
	"strconv"
	"strings"
)

// chartSeries is one named line or stack of a chart. NaN values are gaps (a
// bucket without data): lines break there and bars are left out.
type chartSeries struct {
	Name   string
	Values []float64
	Color  string // any SVG paint; from chartPalette when empty
}

// chartSpec describes a chart: the x labels (one per value), the series
// and how to print the y axis.
type chartSpec struct {
	Title  string // the accessible name, also the <title> of the SVG
	Labels []string
	Series []chartSeries
	// YMax fixes the top of the y axis (e.g. 1 for a rate); 0 fits the data.
	YMax    float64
	YFormat func(float64) string
	Empty   string // the text shown when there is nothing to draw
	Area    bool   // fill under the first line (line charts)
	// Counts keeps the y ticks on whole numbers (when YMax is 0).
	Counts bool
	// Log draws a line chart's y axis in powers of ten, so a slow tail
	// does not flatten the typical values; zero and below sit at the bottom.
	Log bool
}

// Chart geometry, in viewBox units.
const (
	chartW, chartH         = 640, 220
	chartPadL, chartPadR   = 68, 12
	chartPadT, chartPadB   = 12, 28
	chartPlotW, chartPlotH = chartW - chartPadL - chartPadR, chartH - chartPadT - chartPadB
	chartMaxXLabels        = 8
	chartYTicks            = 4
)

// chartPalette colours chartSeries without their own.
var chartPalette = []string{"#4f46e5", "#0ea5e9", "#f59e0b", "#dc2626", "#10b981", "#8b5cf6", "#ec4899", "#64748b"}

func (c chartSpec) color(i int) string {
	if col := c.Series[i].Color; col != "" {
		return col
	}
	return chartPalette[i%len(chartPalette)]
}

func (c chartSpec) yFormat(v float64) string {
	if c.YFormat != nil {
		return c.YFormat(v)
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// points is the number of x positions: the longest of labels and chartSeries.
func (c chartSpec) points() int {
	n := len(c.Labels)
	for _, s := range c.Series {
		n = max(n, len(s.Values))
	}
	return n
}

// hasData reports whether any chartSeries has a finite value.
func (c chartSpec) hasData() bool {
	for _, s := range c.Series {
		for _, v := range s.Values {
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				return true
			}
		}
	}
	return false
}

func chartValue(s chartSeries, i int) float64 {
	if i >= len(s.Values) || math.IsInf(s.Values[i], 0) {
		return math.NaN()
	}
	return s.Values[i]
}

// chartNiceMax rounds v up to 1, 2, 2.5 or 5 times a power of ten, so the
// y ticks are round numbers.
func chartNiceMax(v float64) float64 {
	if v <= 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

// fitMax is the top of the y axis for data reaching top.
func (c chartSpec) fitMax(top float64) float64 {
	if !c.Counts {
		return chartNiceMax(top)
	}
	return chartYTicks * math.Ceil(chartNiceMax(top/chartYTicks))
}

// svgNum prints a coordinate compactly.
func svgNum(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

func svgEsc(s string) string { return template.HTMLEscapeString(s) }

// frame opens the SVG and draws the y grid with its labels and the x
// labels; x(i) gives the centre of position i.
func (c chartSpec) frame(b *strings.Builder, sc yScale, x func(int) float64) {
	fmt.Fprintf(b, `<svg class="chart" viewBox="0 0 %d %d" role="img" aria-label="%s" preserveAspectRatio="xMidYMid meet"><title>%s</title>`,
		chartW, chartH, svgEsc(c.Title), svgEsc(c.Title))
	for _, v := range sc.ticks {
		y := sc.pos(v)
		fmt.Fprintf(b, `<line x1="%d" y1="%s" x2="%d" y2="%s" stroke="#e5e7eb" stroke-width="1"/>`, chartPadL, svgNum(y), chartW-chartPadR, svgNum(y))
		fmt.Fprintf(b, `<text x="%d" y="%s" text-anchor="end" dominant-baseline="middle">%s</text>`, chartPadL-6, svgNum(y), svgEsc(c.yFormat(v)))
	}
	n := c.points()
	step := max(1, int(math.Ceil(float64(n)/chartMaxXLabels)))
	for i := 0; i < n && i < len(c.Labels); i += step {
		fmt.Fprintf(b, `<text x="%s" y="%d" text-anchor="middle">%s</text>`, svgNum(x(i)), chartH-8, svgEsc(c.Labels[i]))
	}
}

// yScale places values on the y axis and says where its ticks go.
type yScale struct {
	ticks []float64
	pos   func(float64) float64
}

// linearScale runs from 0 to ymax in chartYTicks steps.
func linearScale(ymax float64) yScale {
	sc := yScale{pos: func(v float64) float64 {
		v = math.Max(0, math.Min(v, ymax))
		return chartPadT + chartPlotH - chartPlotH*v/ymax
	}}
	for t := 0; t <= chartYTicks; t++ {
		sc.ticks = append(sc.ticks, ymax*float64(t)/chartYTicks)
	}
	return sc
}

// logScale runs over the powers of ten around the positive values in
// [lo, hi]; at most chartYTicks+2 of them are labelled, the top one always.
func logScale(lo, hi float64) yScale {
	a, z := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if z <= a {
		z = a + 1
	}
	step := math.Ceil((z - a) / (chartYTicks + 1))
	z = a + step*math.Ceil((z-a)/step)
	sc := yScale{pos: func(v float64) float64 {
		l := a
		if v > 0 {
			l = math.Max(a, math.Min(math.Log10(v), z))
		}
		return chartPadT + chartPlotH - chartPlotH*(l-a)/(z-a)
	}}
	for e := a; e <= z; e += step {
		sc.ticks = append(sc.ticks, math.Pow(10, e))
	}
	return sc
}

// empty is the chart's frame with a message instead of data.
func (c chartSpec) empty() template.HTML {
	msg := c.Empty
	if msg == "" {
		msg = "No data in this range"
	}
	var b strings.Builder
	b.WriteString(`<figure class="chart-figure">`)
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %d %d" role="img" aria-label="%s"><title>%s</title>`, chartW, chartH, svgEsc(c.Title+": "+msg), svgEsc(c.Title))
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" rx="8" fill="#f9fafb" stroke="#e5e7eb" stroke-dasharray="4 4"/>`, chartPadL, chartPadT, chartPlotW, chartPlotH)
	fmt.Fprintf(&b, `<text x="%s" y="%s" text-anchor="middle" dominant-baseline="middle">%s</text>`, svgNum(chartPadL+chartPlotW/2.0), svgNum(chartPadT+chartPlotH/2.0), svgEsc(msg))
	b.WriteString(`</svg></figure>`)
	return template.HTML(b.String())
}

// legend lists the chartSeries with their colours.
func (c chartSpec) legend(b *strings.Builder) {
	if len(c.Series) == 0 {
		return
	}
	b.WriteString(`<figcaption class="legend">`)
	for i, s := range c.Series {
		fmt.Fprintf(b, `<span><svg class="swatch" viewBox="0 0 10 10" width="10" height="10" aria-hidden="true"><rect width="10" height="10" rx="2" fill="%s"/></svg>%s</span>`, svgEsc(c.color(i)), svgEsc(s.Name))
	}
	b.WriteString(`</figcaption>`)
}

// lineChart draws each chartSeries as a line over the positions; with Area, the
// first chartSeries is filled down to the axis.
func lineChart(c chartSpec) template.HTML {
	n := c.points()
	if n == 0 || !c.hasData() {
		return c.empty()
	}
	top, low := 0.0, math.Inf(1)
	for _, s := range c.Series {
		for i := range s.Values {
			if v := chartValue(s, i); !math.IsNaN(v) {
				top = max(top, v)
				if v > 0 {
					low = min(low, v)
				}
			}
		}
	}
	var sc yScale
	switch {
	case c.Log && !math.IsInf(low, 1):
		if c.YMax > 0 {
			top = c.YMax
		}
		sc = logScale(low, max(top, low))
	case c.YMax > 0:
		sc = linearScale(c.YMax)
	default:
		sc = linearScale(c.fitMax(top))
	}
	x := func(i int) float64 {
		if n == 1 {
			return chartPadL + chartPlotW/2.0
		}
		return chartPadL + chartPlotW*float64(i)/float64(n-1)
	}
	y := sc.pos
	var b strings.Builder
	b.WriteString(`<figure class="chart-figure">`)
	c.frame(&b, sc, x)
	for si := len(c.Series) - 1; si >= 0; si-- { // the first chartSeries on top
		s, col := c.Series[si], c.color(si)
		// Runs of consecutive values; a lone point is drawn as a dot.
		var runs [][]int
		var cur []int
		for i := 0; i < n; i++ {
			if math.IsNaN(chartValue(s, i)) {
				if len(cur) > 0 {
					runs = append(runs, cur)
				}
				cur = nil
				continue
			}
			cur = append(cur, i)
		}
		if len(cur) > 0 {
			runs = append(runs, cur)
		}
		for _, run := range runs {
			var d strings.Builder
			for k, i := range run {
				cmd := "L"
				if k == 0 {
					cmd = "M"
				}
				fmt.Fprintf(&d, "%s%s %s ", cmd, svgNum(x(i)), svgNum(y(chartValue(s, i))))
			}
			if c.Area && si == 0 && len(run) > 1 {
				fmt.Fprintf(&b, `<path d="%sL%s %s L%s %s Z" fill="%s" fill-opacity="0.12" stroke="none"/>`,
					d.String(), svgNum(x(run[len(run)-1])), svgNum(y(0)), svgNum(x(run[0])), svgNum(y(0)), svgEsc(col))
			}
			if len(run) == 1 {
				fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="3" fill="%s"/>`, svgNum(x(run[0])), svgNum(y(chartValue(s, run[0]))), svgEsc(col))
				continue
			}
			fmt.Fprintf(&b, `<path d="%s" fill="none" stroke="%s" stroke-width="2" stroke-linejoin="round" stroke-linecap="round"/>`, strings.TrimSpace(d.String()), svgEsc(col))
		}
	}
	b.WriteString(`</svg>`)
	c.legend(&b)
	b.WriteString(`</figure>`)
	return template.HTML(b.String())
}

// stackedBars draws one bar per position with the chartSeries stacked; each
// segment carries a <title> with its name and value for hover.
func stackedBars(c chartSpec) template.HTML {
	n := c.points()
	if n == 0 || !c.hasData() {
		return c.empty()
	}
	ymax := c.YMax
	if ymax <= 0 {
		top := 0.0
		for i := 0; i < n; i++ {
			sum := 0.0
			for _, s := range c.Series {
				if v := chartValue(s, i); !math.IsNaN(v) && v > 0 {
					sum += v
				}
			}
			top = max(top, sum)
		}
		ymax = c.fitMax(top)
	}
	slot := float64(chartPlotW) / float64(n)
	barW := math.Max(1, slot*0.7)
	x := func(i int) float64 { return chartPadL + slot*(float64(i)+0.5) }
	var b strings.Builder
	b.WriteString(`<figure class="chart-figure">`)
	c.frame(&b, linearScale(ymax), x)
	for i := 0; i < n; i++ {
		base := 0.0
		for si, s := range c.Series {
			v := chartValue(s, i)
			if math.IsNaN(v) || v <= 0 {
				continue
			}
			top := math.Min(base+v, ymax)
			y0 := chartPadT + chartPlotH - chartPlotH*base/ymax
			y1 := chartPadT + chartPlotH - chartPlotH*top/ymax
			base = top
			if y0-y1 <= 0 {
				continue
			}
			label := s.Name + ": " + c.yFormat(v)
			if i < len(c.Labels) {
				label = c.Labels[i] + " · " + label
			}
			fmt.Fprintf(&b, `<rect x="%s" y="%s" width="%s" height="%s" fill="%s"><title>%s</title></rect>`,
				svgNum(x(i)-barW/2), svgNum(y1), svgNum(barW), svgNum(y0-y1), svgEsc(c.color(si)), svgEsc(label))
		}
	}
	b.WriteString(`</svg>`)
	c.legend(&b)
	b.WriteString(`</figure>`)
	return template.HTML(b.String())
}
