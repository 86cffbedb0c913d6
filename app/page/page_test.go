package page

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCodecRoundTrip(t *testing.T) {
	k := NewCodec([]byte("the key"))
	for _, c := range []Cursor{{ID: 1}, {Value: "2026-01-02T03:04:05.123456Z", ID: 99, Prev: true, Sort: "apps.created_at desc"},
		{Value: "name with spaces, \"quotes\"", ID: 7, Incl: true, Sort: "apps.name"}} {
		got, err := k.Decode(k.Encode(&c))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(c, *got); diff != "" {
			t.Errorf("round trip (-want +got):\n%s", diff)
		}
	}
	if k.Encode(nil) != "" {
		t.Error("a nil cursor encodes as something")
	}
	if c, err := k.Decode(""); c != nil || err != nil {
		t.Errorf("Decode(\"\") = %v, %v", c, err)
	}
}

// TestCodecRefusesWhatItDidNotMake: cursors are opaque; the only ones
// taken are those signed with the same key.
func TestCodecRefusesWhatItDidNotMake(t *testing.T) {
	k := NewCodec([]byte("the key"))
	good := k.Encode(&Cursor{Value: "acme", ID: 42, Sort: "apps.name"})
	payload, sig, _ := strings.Cut(good, ".")
	forged := base64.RawURLEncoding.EncodeToString([]byte(`{"v":"acme","i":43,"s":"apps.name"}`))
	for name, bad := range map[string]string{
		"unsigned, as cursors used to be": base64.RawURLEncoding.EncodeToString([]byte(`{"v":"acme","i":42}`)),
		"forged payload, old signature":   forged + "." + sig,
		"signature dropped":               payload + ".",
		"signature of another key":        NewCodec([]byte("another key")).Encode(&Cursor{Value: "acme", ID: 42, Sort: "apps.name"}),
		"not base64":                      "%%%.%%%",
		"signed, but no id":               k.Encode(&Cursor{Value: "acme"}),
		"truncated":                       good[:len(good)-2],
	} {
		if _, err := k.Decode(bad); !errors.Is(err, ErrBadCursor) {
			t.Errorf("%s: Decode(%q) = %v, want ErrBadCursor", name, bad, err)
		}
	}
}
