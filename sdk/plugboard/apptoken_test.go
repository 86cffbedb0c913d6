package plugboard_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/plugboard/plugboard/sdk/plugboard"
)

// fakeMint answers POST /api/0/installations/{uuid}/access-tokens/ like
// web/api_access_tokens.go: for the app's Basic credentials, or a JWT it
// signed under pub, tokens that last life; and records each request's body.
type fakeMint struct {
	srv    *httptest.Server
	pub    any // the app's registered key; nil: Basic only
	life   time.Duration
	mu     sync.Mutex
	bodies []string
	auths  []string // "basic" or the JWT's algorithm
}

func newFakeMint(t *testing.T, life time.Duration, pub any) *fakeMint {
	f := &fakeMint{pub: pub, life: life}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		auth, ok := f.authenticate(r)
		f.mu.Lock()
		f.bodies = append(f.bodies, string(body))
		f.auths = append(f.auths, auth)
		n := len(f.bodies)
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch {
		case !ok:
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"status":401,"code":"invalid_client","detail":"The client id or secret is wrong."}`))
		case r.Method != http.MethodPost || r.URL.Path != "/api/0/installations/"+instUUID+"/access-tokens/":
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"status":404,"code":"not_found","detail":"The installation does not exist."}`))
		case strings.Contains(string(body), "suspended"):
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"status":401,"code":"installation_suspended","detail":"The installation is suspended."}`))
		default:
			scopes := []string{"org:read", "issue:read"}
			if len(body) > 0 {
				var in struct{ Scopes []string }
				json.Unmarshal(body, &in)
				scopes = in.Scopes
			}
			w.WriteHeader(http.StatusCreated)
			json.NewEncoder(w).Encode(map[string]any{"token": fmt.Sprintf("pbi_%d", n),
				"expiresAt": time.Now().Add(f.life).UTC().Format(time.RFC3339Nano), "scopes": scopes})
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeMint) authenticate(r *http.Request) (string, bool) {
	if id, secret, ok := r.BasicAuth(); ok {
		return "basic", id == clientID && secret == clientSecret
	}
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || f.pub == nil {
		return "", false
	}
	var alg string
	claims := jwt.RegisteredClaims{}
	_, err := jwt.ParseWithClaims(raw, &claims, func(tok *jwt.Token) (any, error) { alg = tok.Method.Alg(); return f.pub, nil },
		jwt.WithValidMethods([]string{"RS256", "EdDSA"}), jwt.WithIssuer(clientID), jwt.WithExpirationRequired(), jwt.WithIssuedAt())
	// Plugboard refuses app JWTs longer than ten minutes.
	if err != nil || claims.IssuedAt == nil || claims.ExpiresAt.Sub(claims.IssuedAt.Time) > 10*time.Minute {
		return alg, false
	}
	return alg, true
}

func (f *fakeMint) calls() ([]string, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.bodies...), append([]string(nil), f.auths...)
}

func TestAppTokenSourceMintsAndReuses(t *testing.T) {
	f := newFakeMint(t, 8*time.Hour, nil)
	ts := plugboard.AppTokenSource(plugboard.AppAuth{BaseURL: f.srv.URL, ClientID: clientID, ClientSecret: clientSecret}, instUUID)
	first, err := ts.Token()
	if err != nil {
		t.Fatal(err)
	}
	if first.AccessToken != "pbi_1" || time.Until(first.Expiry) < 7*time.Hour || plugboard.InstallationID(first) != instUUID ||
		first.Extra("scope") != "org:read issue:read" || first.Type() != "Bearer" {
		t.Fatalf("first token %+v scope=%v", first, first.Extra("scope"))
	}
	// Concurrent callers share the token it has.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if tok, err := ts.Token(); err != nil || tok.AccessToken != "pbi_1" {
				t.Errorf("again: %v %v", tok, err)
			}
		})
	}
	wg.Wait()
	if bodies, auths := f.calls(); len(bodies) != 1 || bodies[0] != "" || auths[0] != "basic" {
		t.Fatalf("minted %d times: bodies %q auths %q", len(bodies), bodies, auths)
	}
}

func TestAppTokenSourceMintsAgainBeforeExpiry(t *testing.T) {
	// Tokens that have under a minute left are not used: each call mints.
	f := newFakeMint(t, 30*time.Second, nil)
	ts := plugboard.AppTokenSource(plugboard.AppAuth{BaseURL: f.srv.URL, ClientID: clientID, ClientSecret: clientSecret}, instUUID, "issue:read")
	a, errA := ts.Token()
	b, errB := ts.Token()
	if errA != nil || errB != nil || a.AccessToken == b.AccessToken {
		t.Fatalf("tokens %v %v (%v %v)", a, b, errA, errB)
	}
	if bodies, _ := f.calls(); len(bodies) != 2 || bodies[0] != `{"scopes":["issue:read"]}` {
		t.Fatalf("bodies %q", bodies)
	}
	if a.Extra("scope") != "issue:read" {
		t.Errorf("scope %v", a.Extra("scope"))
	}
}

func TestAppTokenSourceSignsAppJWTs(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	edPub, edKey, _ := ed25519.GenerateKey(rand.Reader)
	for _, c := range []struct {
		pub any
		key crypto.Signer
		alg string
	}{
		{&rsaKey.PublicKey, rsaKey, "RS256"},
		{edPub, edKey, "EdDSA"},
	} {
		t.Run(c.alg, func(t *testing.T) {
			f := newFakeMint(t, 8*time.Hour, c.pub)
			auth := plugboard.AppAuth{BaseURL: f.srv.URL, ClientID: clientID, PrivateKey: c.key}
			if tok, err := plugboard.AppTokenSource(auth, instUUID).Token(); err != nil || tok.AccessToken != "pbi_1" {
				t.Fatalf("token: %v %v", tok, err)
			}
			if _, auths := f.calls(); len(auths) != 1 || auths[0] != c.alg {
				t.Fatalf("auths %q", auths)
			}
		})
	}
}

func TestAppTokenSourceErrors(t *testing.T) {
	f := newFakeMint(t, 8*time.Hour, nil)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	// Plugboard's refusal is the APIError, code and all.
	_, err := plugboard.AppTokenSource(plugboard.AppAuth{BaseURL: f.srv.URL, ClientID: clientID, ClientSecret: "wrong"}, instUUID).Token()
	var apiErr *plugboard.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 401 || apiErr.Code != "invalid_client" {
		t.Fatalf("wrong secret: %v", err)
	}
	_, err = plugboard.AppTokenSource(plugboard.AppAuth{BaseURL: f.srv.URL, ClientID: clientID, ClientSecret: clientSecret}, instUUID, "suspended").Token()
	if !errors.As(err, &apiErr) || apiErr.Code != "installation_suspended" {
		t.Fatalf("suspended: %v", err)
	}
	// Mistakes of the caller's, before any request.
	for name, auth := range map[string]plugboard.AppAuth{
		"no base URL":           {ClientID: clientID, ClientSecret: clientSecret},
		"a key of another kind": {BaseURL: f.srv.URL, ClientID: clientID, PrivateKey: ecKey},
	} {
		if _, err := plugboard.AppTokenSource(auth, instUUID).Token(); err == nil || !strings.HasPrefix(err.Error(), "plugboard: ") {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := plugboard.AppTokenSource(plugboard.AppAuth{BaseURL: f.srv.URL, ClientID: clientID, ClientSecret: clientSecret}, "").Token(); err == nil {
		t.Error("no installation: no error")
	}
	if bodies, _ := f.calls(); len(bodies) != 2 {
		t.Errorf("%d requests, want 2", len(bodies))
	}
}
