package web

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// deep is {"a":{"a":…1…}} nested depth deep.
func deep(depth int) []byte {
	return []byte(strings.Repeat(`{"a":`, depth) + "1" + strings.Repeat("}", depth))
}

// Shallow documents come out as json.Indent writes them.
func TestPrettyJSONIndentsLikeTheStandardLibrary(t *testing.T) {
	for _, doc := range []string{
		`{}`, `[]`, `1`, `"x"`, `null`,
		`{"a":1,"b":[1,2,{"c":"d, e: {f}"}],"g":{},"h":[],"i":"say \"hi\" \\"}`,
		` { "spaced" : [ 1 , 2 ] , "empty" : { } } `,
		`[{"nested":[[[]]]},"ünïcødé ☃"]`,
		string(deep(20)),
	} {
		var want bytes.Buffer
		if err := json.Indent(&want, bytes.TrimSpace([]byte(doc)), "", "  "); err != nil {
			t.Fatal(err)
		}
		got := prettyJSON([]byte(doc), payloadLimit)
		if got.Text != want.String() || got.Truncated || got.Size != len(doc) {
			t.Errorf("%s:\ngot  %q (truncated %v, size %d)\nwant %q", doc, got.Text, got.Truncated, got.Size, want.String())
		}
	}
}

// A document nested 9,000 deep costs what it shows: the indentation stops
// at maxIndentDepth levels, the text at the limit, in a few milliseconds
// and a few allocations of the limit's size. json.Indent wrote 162 MB.
func TestPrettyJSONIsLinearInDepth(t *testing.T) {
	doc := deep(9000)
	start := time.Now()
	got := prettyJSON(doc, payloadLimit)
	if d := time.Since(start); d > 200*time.Millisecond {
		t.Errorf("took %v", d)
	}
	if !got.Truncated || len(got.Text) > payloadLimit || len(got.Text) < payloadLimit-100 || got.Size != len(doc) {
		t.Errorf("truncated %v, %d bytes shown of %d", got.Truncated, len(got.Text), got.Size)
	}
	widest := 0
	for _, line := range strings.Split(got.Text, "\n") {
		widest = max(widest, len(line)-len(strings.TrimLeft(line, " ")))
	}
	if widest != 2*maxIndentDepth {
		t.Errorf("widest indentation %d, want %d", widest, 2*maxIndentDepth)
	}
	allocs := testing.AllocsPerRun(5, func() { prettyJSON(doc, payloadLimit) })
	if allocs > 10 {
		t.Errorf("%v allocations per call", allocs)
	}

	// Without the limit the whole document is shown, still linear: at most
	// one line of the widest indentation per byte.
	all := prettyJSON(doc, 1<<30)
	if all.Truncated || len(all.Text) > len(doc)*(2*maxIndentDepth+2) {
		t.Errorf("whole: truncated %v, %d bytes", all.Truncated, len(all.Text))
	}
	var back any
	if err := json.Unmarshal([]byte(all.Text), &back); err != nil {
		t.Errorf("the indented document is not the same JSON: %v", err)
	}
}

// Text that is not JSON is shown as it is, cut at the limit, never inside
// a UTF-8 sequence; a long string is cut too.
func TestPrettyJSONCutsWhatItCannotIndent(t *testing.T) {
	cases := []struct {
		name, doc string
		limit     int
		want      string
		truncated bool
	}{
		{"not JSON", "<html>oops</html>", 100, "<html>oops</html>", false},
		{"not JSON, cut", "0123456789", 4, "0123", true},
		{"not JSON, cut before a rune", "abc☃", 4, "abc", true},
		{"cut inside a string", `["` + strings.Repeat("x", 50) + `"]`, 20, "[\n  \"" + strings.Repeat("x", 15), true},
		{"exactly at the limit", `[1]`, 7, "[\n  1\n]", false},
		{"one short", `[1]`, 6, "[\n  1\n", true},
	}
	for _, tc := range cases {
		got := prettyJSON([]byte(tc.doc), tc.limit)
		if got.Text != tc.want || got.Truncated != tc.truncated {
			t.Errorf("%s: got %q truncated %v, want %q truncated %v", tc.name, got.Text, got.Truncated, tc.want, tc.truncated)
		}
	}
}
