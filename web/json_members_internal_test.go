package web

import (
	"bytes"
	"encoding/json"
	"errors"
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
