package secret

import (
	"bytes"
	"strings"
	"testing"
)

func TestBoxRoundTripAndTamper(t *testing.T) {
	b, err := NewBox("master-key-master-key-master-key", "webhook-secrets")
	if err != nil {
		t.Fatal(err)
	}
	sealed := b.Seal("whsec_abc")
	if bytes.Contains(sealed, []byte("whsec_abc")) {
		t.Fatal("sealed value holds the plaintext")
	}
	got, err := b.Open(sealed)
	if err != nil || got != "whsec_abc" {
		t.Fatalf("Open = %q, %v", got, err)
	}
	sealed[len(sealed)-1] ^= 1
	if _, err := b.Open(sealed); err != ErrOpen {
		t.Errorf("tampered value opened: %v", err)
	}
	other, _ := NewBox("master-key-master-key-master-key", "other-purpose")
	if _, err := other.Open(b.Seal("x")); err != ErrOpen {
		t.Error("a box for another purpose opened the value")
	}
}

func TestTokens(t *testing.T) {
	a, b := Token("pbu_", 32), Token("pbu_", 32)
	if a == b || !strings.HasPrefix(a, "pbu_") || len(a) != 4+43 {
		t.Errorf("tokens %q %q", a, b)
	}
	if bytes.Equal(Hash(a), Hash(b)) || len(Hash(a)) != 32 {
		t.Error("hashes collide or have the wrong size")
	}
}
