package page

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
)

// FuzzDecode feeds cursors to Decode: it never panics, accepts only what
// this key signed and names a row (an id above zero), and what it accepts
// encodes back to a cursor that decodes to the same position.
func FuzzDecode(f *testing.F) {
	k := NewCodec([]byte("a key for the fuzz target"))
	other := NewCodec([]byte("another key"))
	for _, s := range []string{"", k.Encode(&Cursor{Value: "acme", ID: 42}), k.Encode(&Cursor{ID: 1, Prev: true, Incl: true}),
		other.Encode(&Cursor{Value: "acme", ID: 42}), "e30", "bnVsbA", "%%%", "e30.", ".", "e30.AAAA",
		base64.RawURLEncoding.EncodeToString([]byte(`{"v":"acme","i":42}`)),
		base64.RawURLEncoding.EncodeToString([]byte(`{"v":1,"i":"2"}`)) + ".x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := k.Decode(s)
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
		payload, _, _ := strings.Cut(s, ".")
		raw, _ := base64.RawURLEncoding.DecodeString(payload)
		if !json.Valid(raw) {
			t.Fatalf("Decode(%q) accepted %q, which is not JSON", s, raw)
		}
		if _, err := other.Decode(s); err == nil {
			t.Fatalf("%q is accepted under two keys", s)
		}
		back, err := k.Decode(k.Encode(c))
		if err != nil || *back != *c {
			t.Fatalf("%+v does not round-trip: %+v %v", c, back, err)
		}
	})
}

// FuzzEncode: every cursor that names a row decodes back to itself.
func FuzzEncode(f *testing.F) {
	k := NewCodec([]byte("a key for the fuzz target"))
	f.Add("acme", int64(42), false, false)
	f.Add("", int64(1), true, true)
	f.Add("\u0000\xff", int64(9223372036854775807), true, false)
	f.Fuzz(func(t *testing.T, v string, id int64, prev, incl bool) {
		c := Cursor{Value: v, ID: id, Prev: prev, Incl: incl}
		back, err := k.Decode(k.Encode(&c))
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
