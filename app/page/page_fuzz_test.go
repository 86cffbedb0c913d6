package page

import (
	"encoding/base64"
	"encoding/json"
	"testing"
)

// FuzzDecode feeds cursors to Decode: it never panics, accepts only what
// names a row (an id above zero), and what it accepts encodes back to a
// cursor that decodes to the same position.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{"", Cursor{Value: "acme", ID: 42}.Encode(), Cursor{ID: 1, Prev: true, Incl: true}.Encode(), "e30", "bnVsbA", "%%%",
		base64.RawURLEncoding.EncodeToString([]byte(`{"v":"acme","i":-1}`)), base64.RawURLEncoding.EncodeToString([]byte(`{"v":1,"i":"2"}`)),
		base64.RawURLEncoding.EncodeToString([]byte(`{"v":"2026-01-02T15:04:05Z","i":9223372036854775807}`)), base64.StdEncoding.EncodeToString([]byte(`{"i":3}`))} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := Decode(s)
		if err != nil {
			return
		}
		if s == "" {
			if c != nil {
				t.Fatalf("empty cursor decoded to %+v", c)
			}
			return
		}
		if c == nil || c.ID <= 0 {
			t.Fatalf("Decode(%q) accepted %+v", s, c)
		}
		raw, _ := base64.RawURLEncoding.DecodeString(s)
		if !json.Valid(raw) {
			t.Fatalf("Decode(%q) accepted %q, which is not JSON", s, raw)
		}
		back, err := Decode(c.Encode())
		if err != nil || *back != *c {
			t.Fatalf("%+v does not round-trip: %+v %v", c, back, err)
		}
	})
}

// FuzzEncode: every cursor that names a row decodes back to itself.
func FuzzEncode(f *testing.F) {
	f.Add("acme", int64(42), false, false)
	f.Add("", int64(1), true, true)
	f.Add("\u0000\xff", int64(9223372036854775807), true, false)
	f.Fuzz(func(t *testing.T, v string, id int64, prev, incl bool) {
		c := Cursor{Value: v, ID: id, Prev: prev, Incl: incl}
		back, err := Decode(c.Encode())
		if id <= 0 {
			if err == nil {
				t.Fatalf("cursor with id %d accepted", id)
			}
			return
		}
		if err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
		// JSON turns invalid UTF-8 into U+FFFD: compare what JSON keeps.
		want := c
		b, _ := json.Marshal(v)
		_ = json.Unmarshal(b, &want.Value)
		if *back != want {
			t.Fatalf("%+v came back as %+v", want, back)
		}
	})
}
