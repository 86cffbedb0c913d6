package plugboard_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/plugboard/plugboard/sdk/plugboard"
)

// platformKeys plays the platform's /.well-known/jwks.json and signs
// sign-on tokens as the platform does.
type platformKeys struct {
	srv     *httptest.Server
	kid     string
	key     ed25519.PrivateKey
	fetches atomic.Int32
	down    atomic.Bool
}

func newPlatformKeys(t *testing.T) *platformKeys {
	pk := &platformKeys{kid: "k1"}
	_, pk.key, _ = ed25519.GenerateKey(rand.Reader)
	pk.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/jwks.json" {
			http.NotFound(w, r)
			return
		}
		pk.fetches.Add(1)
		if pk.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		pub := pk.key.Public().(ed25519.PublicKey)
		json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{
			{"kty": "RSA", "kid": "ignored", "n": "x", "e": "AQAB"}, // not ours: skipped
			{"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": pk.kid, "x": base64.RawURLEncoding.EncodeToString(pub)},
		}})
	}))
	t.Cleanup(pk.srv.Close)
	return pk
}

// claims are a valid token's claims at now, for the app "client-a".
func (pk *platformKeys) claims(now time.Time) jwt.MapClaims {
	return jwt.MapClaims{"iss": pk.srv.URL, "aud": "client-a", "sub": "42", "email": "mia@customer.example", "name": "Mia",
		"org": "customer", "installation": "b23eb701-895a-480e-8501-d1a4f15441f8", "role": "member",
		"iat": now.Unix(), "exp": now.Add(time.Minute).Unix(), "jti": "jti-" + now.Format(time.RFC3339Nano)}
}

func (pk *platformKeys) sign(t *testing.T, c jwt.MapClaims, edit func(*jwt.Token)) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	tok.Header["kid"], tok.Header["typ"] = pk.kid, plugboard.SSOTokenType
	if edit != nil {
		edit(tok)
	}
	s, err := tok.SignedString(pk.key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSSOVerifier(t *testing.T) {
	pk := newPlatformKeys(t)
	now := time.Now().Truncate(time.Second)
	clock := now
	v := plugboard.NewSSOVerifier(pk.srv.URL+"/", "client-a") // a trailing slash is forgiven
	v.Now = func() time.Time { return clock }

	c, err := v.Verify(t.Context(), pk.sign(t, pk.claims(now), nil))
	if err != nil {
		t.Fatalf("a valid token: %v", err)
	}
	want := plugboard.SSOClaims{UserID: "42", Email: "mia@customer.example", Name: "Mia", Org: "customer",
		Installation: "b23eb701-895a-480e-8501-d1a4f15441f8", Role: "member", ID: "jti-" + now.Format(time.RFC3339Nano),
		IssuedAt: now, ExpiresAt: now.Add(time.Minute)}
	if !c.IssuedAt.Equal(want.IssuedAt) || !c.ExpiresAt.Equal(want.ExpiresAt) {
		t.Errorf("times %v %v", c.IssuedAt, c.ExpiresAt)
	}
	c.IssuedAt, c.ExpiresAt, want.IssuedAt, want.ExpiresAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if *c != want {
		t.Errorf("claims %+v, want %+v", *c, want)
	}

	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	cases := []struct {
		name  string
		token func(n int) string
		want  error
	}{
		{"replayed", func(int) string { return pk.sign(t, pk.claims(now), nil) }, plugboard.ErrSSOReplayed},
		{"expired", func(n int) string {
			c := pk.claims(now.Add(-2 * time.Minute))
			c["jti"] = fmt.Sprint("expired-", n)
			return pk.sign(t, c, nil)
		}, plugboard.ErrSSOExpired},
		{"issued in the future", func(n int) string {
			c := pk.claims(now.Add(time.Minute))
			c["jti"] = "future"
			return pk.sign(t, c, nil)
		}, plugboard.ErrSSOExpired},
		{"for another app", func(int) string { c := pk.claims(now); c["aud"], c["jti"] = "client-b", "b"; return pk.sign(t, c, nil) }, plugboard.ErrSSOAudience},
		{"another issuer", func(int) string {
			c := pk.claims(now)
			c["iss"], c["jti"] = "https://evil.example", "i"
			return pk.sign(t, c, nil)
		}, plugboard.ErrSSOIssuer},
		{"no jti", func(int) string { c := pk.claims(now); delete(c, "jti"); return pk.sign(t, c, nil) }, plugboard.ErrSSOMalformed},
		{"no exp", func(int) string { c := pk.claims(now); delete(c, "exp"); c["jti"] = "e"; return pk.sign(t, c, nil) }, plugboard.ErrSSOMalformed},
		{"another typ (an install state)", func(int) string {
			c := pk.claims(now)
			c["jti"] = "t"
			return pk.sign(t, c, func(tok *jwt.Token) { tok.Header["typ"] = "JWT" })
		}, plugboard.ErrSSOMalformed},
		{"signed by another key", func(int) string {
			tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, pk.claims(now))
			tok.Header["kid"], tok.Header["typ"] = pk.kid, plugboard.SSOTokenType
			s, _ := tok.SignedString(otherKey)
			return s
		}, plugboard.ErrSSOSignature},
		{"HS256 with the public key as secret", func(int) string {
			tok := jwt.NewWithClaims(jwt.SigningMethodHS256, pk.claims(now))
			tok.Header["kid"], tok.Header["typ"] = pk.kid, plugboard.SSOTokenType
			s, _ := tok.SignedString([]byte(pk.key.Public().(ed25519.PublicKey)))
			return s
		}, plugboard.ErrSSOSignature},
		{"not a JWT", func(int) string { return "not.a.jwt" }, plugboard.ErrSSOMalformed},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.Verify(t.Context(), tc.token(i))
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
		})
	}
	if n := pk.fetches.Load(); n != 1 {
		t.Errorf("the JWKS was fetched %d times, want once", n)
	}

	// An unknown kid fetches the keys again (a rotation), at most every
	// ten seconds, so junk tokens cannot make the partner hammer the platform.
	clock = now.Add(11 * time.Second)
	pk.kid = "k2"
	fresh := pk.claims(clock)
	fresh["jti"] = "rotated"
	if _, err := v.Verify(t.Context(), pk.sign(t, fresh, nil)); err != nil {
		t.Fatalf("after rotation: %v", err)
	}
	pk.kid = "k3"
	fresh["jti"] = "too soon"
	if _, err := v.Verify(t.Context(), pk.sign(t, fresh, nil)); !errors.Is(err, plugboard.ErrSSOSignature) {
		t.Fatalf("an unknown kid right after a fetch: %v", err)
	}
	if n := pk.fetches.Load(); n != 2 {
		t.Errorf("fetched %d times, want 2", n)
	}
}

// The platform unreachable: ErrSSOKeys, and the handler says 503; kept
// keys hold while the platform is down.
func TestSSOVerifierKeysUnavailable(t *testing.T) {
	pk := newPlatformKeys(t)
	pk.down.Store(true)
	now := time.Now()
	v := plugboard.NewSSOVerifier(pk.srv.URL, "client-a")
	v.Now = func() time.Time { return now }
	if _, err := v.Verify(t.Context(), pk.sign(t, pk.claims(now), nil)); !errors.Is(err, plugboard.ErrSSOKeys) {
		t.Fatalf("err %v", err)
	}
	rec := httptest.NewRecorder()
	v.Handler(nil).ServeHTTP(rec, formPost(pk.sign(t, pk.claims(now.Add(time.Second)), nil)))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("status %d", rec.Code)
	}
	now = now.Add(20 * time.Second)
	pk.down.Store(false)
	if _, err := v.Verify(t.Context(), pk.sign(t, pk.claims(now), nil)); err != nil {
		t.Fatal(err)
	}
	pk.down.Store(true)
	now = now.Add(2 * time.Hour) // the keys are stale, and the platform down
	if _, err := v.Verify(t.Context(), pk.sign(t, pk.claims(now), nil)); err != nil {
		t.Errorf("stale keys while the platform is down: %v", err)
	}
}

func formPost(token string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/sso", strings.NewReader(url.Values{"token": {token}}.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return r
}

func TestSSOHandler(t *testing.T) {
	pk := newPlatformKeys(t)
	now := time.Now()
	v := plugboard.NewSSOVerifier(pk.srv.URL, "client-a")
	var signedIn []*plugboard.SSOClaims
	h := v.Handler(func(w http.ResponseWriter, r *http.Request, c *plugboard.SSOClaims) {
		signedIn = append(signedIn, c)
		http.Redirect(w, r, "/dashboard", http.StatusSeeOther)
	})
	token := pk.sign(t, pk.claims(now), nil)
	for _, tc := range []struct {
		name   string
		req    *http.Request
		status int
	}{
		{"GET", httptest.NewRequest(http.MethodGet, "/sso?token="+token, nil), http.StatusMethodNotAllowed},
		{"no token", formPost(""), http.StatusUnauthorized},
		{"the token", formPost(token), http.StatusSeeOther},
		{"the token again", formPost(token), http.StatusUnauthorized},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, tc.req)
		if rec.Code != tc.status {
			t.Errorf("%s: status %d, want %d: %s", tc.name, rec.Code, tc.status, rec.Body)
		}
	}
	if len(signedIn) != 1 || signedIn[0].UserID != "42" {
		t.Errorf("signed in %+v", signedIn)
	}

	// A partner's own error page.
	v2 := plugboard.NewSSOVerifier(pk.srv.URL, "client-b")
	var refused error
	v2.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		refused = err
		w.WriteHeader(http.StatusTeapot)
	}
	rec := httptest.NewRecorder()
	v2.Handler(nil).ServeHTTP(rec, formPost(pk.sign(t, pk.claims(now.Add(time.Second)), nil)))
	if rec.Code != http.StatusTeapot || !errors.Is(refused, plugboard.ErrSSOAudience) {
		t.Errorf("status %d, err %v", rec.Code, refused)
	}
}

// MemorySeenStore forgets ids once they expire, so it does not grow
// without bound, and remembers them until then.
func TestMemorySeenStore(t *testing.T) {
	now := time.Now()
	m := &plugboard.MemorySeenStore{Now: func() time.Time { return now }}
	ctx := context.Background()
	seen := func(id string, until time.Time) bool {
		s, err := m.Seen(ctx, id, until)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if seen("a", now.Add(time.Minute)) || !seen("a", now.Add(time.Minute)) {
		t.Fatal("a is new, then seen")
	}
	for i := range 100 {
		seen(string(rune('A'+i)), now.Add(time.Minute))
	}
	now = now.Add(2 * time.Minute)
	if seen("a", now.Add(time.Minute)) {
		t.Error("an expired id is still seen")
	}
	if m.Len() != 1 {
		t.Errorf("%d ids kept after expiry, want 1", m.Len())
	}
}
