package web_test

import (
	"context"
	"strings"
	"testing"

	"golang.org/x/oauth2"
)

// TestPKCEVerifierHasTheRFCsForm: a code_verifier is 43 to 128 characters
// of A-Z a-z 0-9 - . _ ~ (RFC 7636 §4.1); one that is not is refused even
// when its S256 matches the challenge.
func TestPKCEVerifierHasTheRFCsForm(t *testing.T) {
	w := newWorld(t, false)
	ctx := context.Background()
	hc := oauthBrowser(t, w, "admin@customer.example")
	for _, verifier := range []string{"short", strings.Repeat("a", 129), strings.Repeat("a", 42) + "+"} {
		q := consent(t, hc, w.oauth.AuthCodeURL("st4te", oauth2.S256ChallengeOption(verifier)), "customer", "approve")
		if _, err := w.oauth.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier)); oauthErrorCode(err) != "invalid_grant" {
			t.Errorf("verifier %q: %v, want invalid_grant", verifier, err)
		}
	}
	if n := count(t, w.p, "tokens"); n != 0 {
		t.Fatalf("malformed verifiers got %d tokens", n)
	}
	verifier := strings.Repeat("a", 43)
	q := consent(t, hc, w.oauth.AuthCodeURL("st4te", oauth2.S256ChallengeOption(verifier)), "customer", "approve")
	if _, err := w.oauth.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier)); err != nil {
		t.Errorf("a 43-character verifier: %v", err)
	}
}
