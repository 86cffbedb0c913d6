package web

import (
	"encoding/xml"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// wellFormed fails unless out parses as XML.
func wellFormed(t *testing.T, out string) {
	t.Helper()
	dec := xml.NewDecoder(strings.NewReader(out))
	for {
		if _, err := dec.Token(); err == io.EOF {
			return
		} else if err != nil {
			t.Fatalf("not well-formed: %v\n%s", err, out)
		}
	}
}

var (
	attrNumRe = regexp.MustCompile(`\b(x|y|x1|x2|y1|y2|cx|cy|width|height)="(-?[0-9.]+)"`)
	pathRe    = regexp.MustCompile(`\bd="([^"]+)"`)
	numRe     = regexp.MustCompile(`-?[0-9]+(\.[0-9]+)?`)
)

// inBounds fails unless every coordinate of the chart lies in its viewBox.
func inBounds(t *testing.T, out string) {
	t.Helper()
	svg := out[strings.Index(out, "<svg class=\"chart\""):]
	svg = svg[:strings.Index(svg, "</svg>")]
	check := func(name string, v float64) {
		limit := float64(chartW)
		if strings.HasPrefix(name, "y") || name == "cy" || name == "height" {
			limit = chartH
		}
		if math.IsNaN(v) || v < 0 || v > limit {
			t.Errorf("%s=%v outside 0..%v", name, v, limit)
		}
	}
	for _, m := range attrNumRe.FindAllStringSubmatch(svg, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		check(m[1], v)
	}
	for _, m := range pathRe.FindAllStringSubmatch(svg, -1) {
		nums := numRe.FindAllString(m[1], -1)
		for i, n := range nums {
			v, _ := strconv.ParseFloat(n, 64)
			check([]string{"x", "y"}[i%2], v)
		}
	}
	if strings.Contains(svg, "NaN") || strings.Contains(svg, "Inf") {
		t.Error("the chart prints NaN or Inf")
	}
}

func TestLineChart(t *testing.T) {
	nan := math.NaN()
	cases := []struct {
		name  string
		spec  chartSpec
		paths int // <path> elements drawn for data (area included)
		dots  int
	}{
		{"one series", chartSpec{Title: "Rate", Labels: []string{"a", "b", "c"}, Series: []chartSeries{{Name: "r", Values: []float64{0.5, 1, 0.75}}}, YMax: 1}, 1, 0},
		{"area", chartSpec{Title: "Rate", Labels: []string{"a", "b", "c"}, Series: []chartSeries{{Name: "r", Values: []float64{0.5, 1, 0.75}}}, YMax: 1, Area: true}, 2, 0},
		{"gap splits the line", chartSpec{Title: "Rate", Labels: []string{"a", "b", "c", "d", "e"}, Series: []chartSeries{{Name: "r", Values: []float64{1, 1, nan, 1, 1}}}}, 2, 0},
		{"lone point is a dot", chartSpec{Title: "Rate", Labels: []string{"a", "b", "c"}, Series: []chartSeries{{Name: "r", Values: []float64{nan, 3, nan}}}}, 0, 1},
		{"single position", chartSpec{Title: "One", Labels: []string{"a"}, Series: []chartSeries{{Name: "r", Values: []float64{3}}}}, 0, 1},
		{"three series", chartSpec{Title: "Latency", Labels: []string{"a", "b"}, Series: []chartSeries{
			{Name: "p50", Values: []float64{10, 20}}, {Name: "p95", Values: []float64{100, 2000}}, {Name: "p99", Values: []float64{300, 5000}}}}, 3, 0},
		{"out of range values are clamped", chartSpec{Title: "Clamp", Labels: []string{"a", "b", "c"}, Series: []chartSeries{{Name: "r", Values: []float64{-5, 2, math.Inf(1)}}}, YMax: 1}, 1, 0},
		{"more positions than labels", chartSpec{Title: "Short", Labels: []string{"a"}, Series: []chartSeries{{Name: "r", Values: []float64{1, 2, 3, 4}}}}, 1, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := string(lineChart(tc.spec))
			wellFormed(t, out)
			inBounds(t, out)
			if n := strings.Count(out, "<path "); n != tc.paths {
				t.Errorf("%d paths, want %d\n%s", n, tc.paths, out)
			}
			if n := strings.Count(out, "<circle "); n != tc.dots {
				t.Errorf("%d dots, want %d", n, tc.dots)
			}
			if !strings.Contains(out, `role="img"`) || !strings.Contains(out, "<title>"+tc.spec.Title+"</title>") {
				t.Error("the chart has no accessible name")
			}
			for _, s := range tc.spec.Series {
				if !strings.Contains(out, ">"+s.Name+"</span>") {
					t.Errorf("the legend lacks %q", s.Name)
				}
			}
		})
	}
}

func TestLineChartScalesToTheData(t *testing.T) {
	out := string(lineChart(chartSpec{Title: "L", Labels: []string{"a", "b"}, Series: []chartSeries{{Name: "p", Values: []float64{120, 430}}},
		YFormat: func(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) + " ms" }}))
	// 430 rounds up to 500: ticks every 125.
	for _, tick := range []string{">0 ms<", ">125 ms<", ">250 ms<", ">500 ms<"} {
		if !strings.Contains(out, tick) {
			t.Errorf("no tick %s\n%s", tick, out)
		}
	}
	// The highest point touches the top of the plot only when it is the maximum.
	if strings.Contains(out, " "+svgNum(chartPadT)+" ") {
		t.Error("430 drawn at the top of a 500 axis")
	}
}

func TestStackedBars(t *testing.T) {
	spec := chartSpec{Title: "Errors", Labels: []string{"10:00", "11:00", "12:00"}, Counts: true, Series: []chartSeries{
		{Name: "timeout", Values: []float64{1, 0, 3}},
		{Name: "http_5xx", Values: []float64{2, 0, math.NaN()}},
	}}
	out := string(stackedBars(spec))
	wellFormed(t, out)
	inBounds(t, out)
	if n := strings.Count(out, "<rect "); n != 3+len(spec.Series) { // bars with data, plus legend swatches
		t.Errorf("%d rects, want %d\n%s", n, 3+len(spec.Series), out)
	}
	if !strings.Contains(out, "<title>10:00 · http_5xx: 2</title>") {
		t.Errorf("a bar lacks its title\n%s", out)
	}
	// Counts: a top of 3 gives the axis 0..4 with whole ticks.
	for _, tick := range []string{">0<", ">1<", ">2<", ">3<", ">4<"} {
		if !strings.Contains(out, tick) {
			t.Errorf("no tick %s", tick)
		}
	}
	if strings.Contains(out, ">0.5<") || strings.Contains(out, ">1.25<") {
		t.Error("fractional ticks on a count axis")
	}
}

func TestChartsEscapeLabels(t *testing.T) {
	evil := `<script>alert("x")</script>&`
	spec := chartSpec{Title: evil, Labels: []string{evil, "b"}, Series: []chartSeries{{Name: evil, Values: []float64{1, 2}, Color: `red"/><script>`}}}
	for name, out := range map[string]string{"line": string(lineChart(spec)), "bars": string(stackedBars(spec)), "empty": string(lineChart(chartSpec{Title: evil, Empty: evil}))} {
		t.Run(name, func(t *testing.T) {
			wellFormed(t, out)
			if strings.Contains(out, "<script>") {
				t.Errorf("unescaped label\n%s", out)
			}
			if !strings.Contains(out, "&lt;script&gt;") {
				t.Errorf("the label is missing\n%s", out)
			}
		})
	}
}

func TestChartsWithoutData(t *testing.T) {
	nan := math.NaN()
	for name, spec := range map[string]chartSpec{
		"nothing":      {Title: "T"},
		"no series":    {Title: "T", Labels: []string{"a", "b"}},
		"only gaps":    {Title: "T", Labels: []string{"a", "b"}, Series: []chartSeries{{Name: "r", Values: []float64{nan, nan}}}},
		"empty values": {Title: "T", Labels: []string{"a"}, Series: []chartSeries{{Name: "r"}}},
	} {
		t.Run(name, func(t *testing.T) {
			for _, out := range []string{string(lineChart(spec)), string(stackedBars(spec))} {
				wellFormed(t, out)
				inBounds(t, out)
				if !strings.Contains(out, "No data in this range") || strings.Contains(out, "<path") {
					t.Errorf("no empty state\n%s", out)
				}
			}
		})
	}
	// Zero counts are data, but there is nothing to stack.
	out := string(stackedBars(chartSpec{Title: "E", Labels: []string{"a"}, Series: []chartSeries{{Name: "timeout", Values: []float64{0}}}}))
	if strings.Count(out, "<rect ") != 1 { // the legend's swatch only
		t.Errorf("zero values drew bars\n%s", out)
	}
}

func TestChartNiceMax(t *testing.T) {
	for in, want := range map[float64]float64{0: 1, -3: 1, 0.3: 0.5, 1: 1, 1.2: 2, 2.2: 2.5, 7: 10, 430: 500, 1001: 2000} {
		if got := chartNiceMax(in); math.Abs(got-want) > 1e-9 {
			t.Errorf("chartNiceMax(%v) = %v, want %v", in, got, want)
		}
	}
	if got := chartNiceMax(math.NaN()); got != 1 {
		t.Errorf("NaN gives %v", got)
	}
}

func TestFormatMs(t *testing.T) {
	for in, want := range map[float64]string{0: "0 ms", 0.375: "0.375 ms", 0.2871: "0.287 ms", 3.14159: "3.14 ms", 12.4: "12 ms", 850: "850 ms", 1000: "1 s", 1250: "1.3 s", 12345: "12.3 s"} {
		if got := formatMs(in); got != want {
			t.Errorf("formatMs(%v) = %q, want %q", in, got, want)
		}
	}
}

func TestLogScale(t *testing.T) {
	cases := []struct {
		lo, hi float64
		ticks  []float64
	}{
		{0.3, 850, []float64{0.1, 1, 10, 100, 1000}},
		{3, 15000, []float64{1, 10, 100, 1000, 10000, 100000}},
		{5, 5, []float64{1, 10}},
		{0.001, 100000, []float64{0.001, 0.1, 10, 1000, 100000}},
	}
	for _, tc := range cases {
		sc := logScale(tc.lo, tc.hi)
		if len(sc.ticks) != len(tc.ticks) {
			t.Errorf("logScale(%v, %v) ticks %v, want %v", tc.lo, tc.hi, sc.ticks, tc.ticks)
			continue
		}
		for i := range sc.ticks {
			if math.Abs(sc.ticks[i]-tc.ticks[i])/tc.ticks[i] > 1e-9 {
				t.Errorf("logScale(%v, %v) ticks %v, want %v", tc.lo, tc.hi, sc.ticks, tc.ticks)
				break
			}
		}
		bottom, top := sc.pos(sc.ticks[0]), sc.pos(sc.ticks[len(sc.ticks)-1])
		if bottom != chartPadT+chartPlotH || top != chartPadT {
			t.Errorf("logScale(%v, %v) spans %v..%v", tc.lo, tc.hi, bottom, top)
		}
		if sc.pos(0) != bottom || sc.pos(-1) != bottom || sc.pos(tc.hi*1000) != top {
			t.Errorf("logScale(%v, %v) does not clamp", tc.lo, tc.hi)
		}
	}
	out := string(lineChart(chartSpec{Title: "Latency", Log: true, Labels: []string{"a", "b", "c"}, YFormat: formatMs,
		Series: []chartSeries{{Name: "p50", Values: []float64{0, 30, 35}}, {Name: "p99", Values: []float64{15000, 200, math.NaN()}}}}))
	wellFormed(t, out)
	inBounds(t, out)
	for _, tick := range []string{">10 ms<", ">100 ms<", ">1 s<", ">10 s<", ">100 s<"} {
		if !strings.Contains(out, tick) {
			t.Errorf("no tick %s\n%s", tick, out)
		}
	}
}
