package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/plugboard/plugboard/app/fault"
)

type memberInner struct {
	Name string            `json:"name"`
	Tags []string          `json:"tags"`
	Meta map[string]string `json:"meta"`
}

type memberOuter struct {
	ID     int             `json:"id"`
	Inner  *memberInner    `json:"inner"`
	Items  []memberInner   `json:"items"`
	Data   json.RawMessage `json:"data"`
	Any    any             `json:"any"`
	Plain  string
	Hidden string `json:"-"`
}

// TestExactMembersScan checks that exactMembers' byte scan answers as the
// token walk (walkMembers) does, which it replaced for speed, on valid
// JSON of every shape it meets.
func TestExactMembersScan(t *testing.T) {
	tests := []struct {
		name, body string
		want       string // the fault's field, "" for none
	}{
		{"empty", `{}`, ""},
		{"fields", `{"id":1,"inner":{"name":"a","tags":["x","y"],"meta":{"k":"v"}},"Plain":"p"}`, ""},
		{"whitespace", " { \"id\" : 1 ,\n\t\"items\" : [ { \"name\" : \"a\" } , {} ] } ", ""},
		{"unknown", `{"id":1,"nope":2}`, "nope"},
		{"case", `{"ID":1}`, "ID"},
		{"dash field", `{"Hidden":"x"}`, "Hidden"},
		{"duplicate", `{"id":1,"id":2}`, "id"},
		{"duplicate before unknown", `{"x":1,"x":2}`, "x"},
		{"nested unknown", `{"inner":{"name":"a","bad":1}}`, "inner.bad"},
		{"in array", `{"items":[{"name":"a"},{"name":"b","nope":[]}]}`, "items.nope"},
		{"map duplicate", `{"inner":{"meta":{"a":"1","a":"2"}}}`, "inner.meta.a"},
		{"raw data free names", `{"data":{"Anything":{"goes":[1,2,{"x":null}]}}}`, ""},
		{"raw data duplicate", `{"data":{"a":{"b":1,"b":2}}}`, "data.a.b"},
		{"raw data array duplicate", `{"data":[{"c":1},{"c":1,"c":2}]}`, "data.c"},
		{"any duplicate", `{"any":{"z":true,"z":false}}`, "any.z"},
		{"escaped name", `{"\u0069d":1}`, ""},
		{"escaped duplicate", `{"id":1,"\u0069d":2}`, "id"},
		{"escaped unknown", `{"a\"b":1}`, "a\"b"},
		{"escapes in values", `{"inner":{"name":"a\"}\\","tags":["]\"["]},"id":2}`, ""},
		{"many names", `{"data":{"a1":1,"a2":2,"a3":3,"a4":4,"a5":5,"a6":6,"a7":7,"a8":8,"a9":9,"b1":1,"b2":2,"b3":3,"b4":4,"b5":5,"b6":6,"b7":7,"b8":8,"b9":9,"a3":0}}`, "data.a3"},
		{"many names, none twice", `{"data":{"a1":1,"a2":2,"a3":3,"a4":4,"a5":5,"a6":6,"a7":7,"a8":8,"a9":9,"b1":1,"b2":2,"b3":3,"b4":4,"b5":5,"b6":6,"b7":7,"b8":8,"b9":9}}`, ""},
		{"scalars", `{"id":-1.5e3,"any":[true,false,null,"s",0]}`, ""},
		{"empty name", `{"data":{"":{"x":1,"x":2}}}`, "data..x"},
		{"top empty name", `{"any":{"":{"":1,"":2}}}`, "any.."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			typ := reflect.TypeOf(&memberOuter{})
			got := exactMembers([]byte(tt.body), typ)
			dec := json.NewDecoder(bytes.NewReader([]byte(tt.body)))
			dec.UseNumber()
			want := walkMembers(dec, typ, "")
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("scan: %v; token walk: %v", got, want)
			}
			field := ""
			var fe *fault.Error
			if errors.As(got, &fe) {
				for k := range fe.Fields {
					field = k
				}
			}
			if (got == nil) != (tt.want == "") || field != tt.want {
				t.Fatalf("got %v (field %q), want field %q", got, field, tt.want)
			}
		})
	}
}

// BenchmarkExactMembers walks a batch of 100 events of about 1 KiB, as
// the batch bench publishes.
func BenchmarkExactMembers(b *testing.B) {
	var buf bytes.Buffer
	buf.WriteString(`{"events":[`)
	for i := range 100 {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteString(`{"organization":"org-1","type":"bench.ping","data":{"sentAt":"2026-12-03T08:00:00.123456789Z","seq":12345,"pad":"`)
		buf.Write(bytes.Repeat([]byte("x"), 960))
		buf.WriteString(`"}}`)
	}
	buf.WriteString(`]}`)
	body := buf.Bytes()
	typ := reflect.TypeOf(&eventBatchRequest{})
	b.Run("scan", func(b *testing.B) {
		for b.Loop() {
			if err := exactMembers(body, typ); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("tokens", func(b *testing.B) {
		for b.Loop() {
			dec := json.NewDecoder(bytes.NewReader(body))
			dec.UseNumber()
			if err := walkMembers(dec, typ, ""); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// walkMembers is the model exactMembers is checked against: the token
// walk it replaced, one json.Decoder token at a time.
func walkMembers(dec *json.Decoder, t reflect.Type, path string) error {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	tok, err := dec.Token()
	if err != nil {
		return fault.Invalid(fault.MalformedJSON, "The request body is not valid JSON: "+err.Error(), nil)
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	whole := t == nil || t.Kind() == reflect.Interface || reflect.PointerTo(t).Implements(reflect.TypeFor[json.Unmarshaler]())
	switch d {
	case '{':
		var fields map[string]reflect.Type
		if !whole && t.Kind() == reflect.Struct {
			fields = jsonFields(t)
		}
		seen := map[string]bool{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return fault.Invalid(fault.MalformedJSON, "The request body is not valid JSON: "+err.Error(), nil)
			}
			key, _ := kt.(string)
			name := key
			if path != "" {
				name = path + "." + key
			}
			if seen[key] {
				return fault.Field(name, "appears more than once")
			}
			seen[key] = true
			var elem reflect.Type
			switch {
			case whole:
			case t.Kind() == reflect.Struct:
				ft, ok := fields[key]
				if !ok {
					return fault.Field(name, "is not a known field (names are case-sensitive)")
				}
				elem = ft
			case t.Kind() == reflect.Map:
				elem = t.Elem()
			}
			if err := walkMembers(dec, elem, name); err != nil {
				return err
			}
		}
	case '[':
		var elem reflect.Type
		if !whole && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for dec.More() {
			if err := walkMembers(dec, elem, path); err != nil {
				return err
			}
		}
	}
	_, err = dec.Token() // the closing delimiter
	return err
}

// TestExactMembersScanGenerated compares the scan with the token walk
// over generated documents: objects whose names are drawn from a small
// pool (so that known fields, unknown ones, repeats and escaped spellings
// all occur), nested to a few levels, with whitespace between tokens.
func TestExactMembersScanGenerated(t *testing.T) {
	typ := reflect.TypeOf(&memberOuter{})
	for seed := range uint64(3000) {
		g := jsonGen{r: rand.New(rand.NewPCG(seed, 19))}
		g.value(0, true)
		body := g.buf.Bytes()
		if !json.Valid(body) {
			t.Fatalf("seed %d: the generator wrote invalid JSON: %s", seed, body)
		}
		got := exactMembers(body, typ)
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		want := walkMembers(dec, typ, "")
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("seed %d, %s:\nscan: %v\ntoken walk: %v", seed, body, got, want)
		}
	}
}

// jsonGen writes a random JSON value.
type jsonGen struct {
	r   *rand.Rand
	buf bytes.Buffer
}

var genNames = []string{"id", "inner", "items", "data", "any", "Plain", "name", "tags", "meta",
	`\u0069d`, `na\u006de`, "Hidden", "ID", "nope", "", `a\"b`, "k"}

func (g *jsonGen) space() {
	if g.r.IntN(4) == 0 {
		g.buf.WriteString([]string{" ", "\n", "\t ", "\r\n  "}[g.r.IntN(4)])
	}
}

func (g *jsonGen) value(depth int, object bool) {
	g.space()
	switch k := g.r.IntN(6); {
	case object || (depth < 4 && k < 2):
		g.buf.WriteByte('{')
		for i := range g.r.IntN(6) {
			if i > 0 {
				g.buf.WriteByte(',')
			}
			g.space()
			g.buf.WriteString(`"` + genNames[g.r.IntN(len(genNames))] + `"`)
			g.space()
			g.buf.WriteByte(':')
			g.value(depth+1, false)
		}
		g.space()
		g.buf.WriteByte('}')
	case depth < 4 && k < 4:
		g.buf.WriteByte('[')
		for i := range g.r.IntN(4) {
			if i > 0 {
				g.buf.WriteByte(',')
			}
			g.value(depth+1, false)
		}
		g.space()
		g.buf.WriteByte(']')
	default:
		g.buf.WriteString([]string{`"s"`, `"a\"}]\\"`, `12`, `-1.5e3`, `true`, `false`, `null`, `"{\"id\":1}"`}[g.r.IntN(8)])
	}
	g.space()
}
