package web_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/plugboard/plugboard/cmd/platform"
	"github.com/plugboard/plugboard/cmd/platform/apptest"
	"github.com/plugboard/plugboard/config"
	"github.com/plugboard/plugboard/sdk/plugboard"
)

// tokenResponse is RFC 6749's token response or error, as sent.
type tokenResponse struct {
	AccessToken      string `json:"access_token"`
	TokenType        string `json:"token_type"`
	ExpiresIn        int64  `json:"expires_in"`
	RefreshToken     string `json:"refresh_token"`
	Scope            string `json:"scope"`
	InstallationID   string `json:"installation_id"`
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
}

// postToken sends a token request with query in the URL and form in the body.
func postToken(t *testing.T, base string, query, form url.Values, basic ...string) (int, http.Header, tokenResponse) {
	t.Helper()
	u := base + "/oauth/token"
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, _ := http.NewRequest("POST", u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if len(basic) == 2 {
		req.SetBasicAuth(basic[0], basic[1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	var tr tokenResponse
	if err := json.Unmarshal(body, &tr); err != nil {
		t.Fatalf("token endpoint answered %d %s", res.StatusCode, body)
	}
	return res.StatusCode, res.Header, tr
}

// RFC 6749 §2.3.1: client credentials never travel in the URL, and the
// access log never writes a credential sent there.
func TestTokenEndpointRefusesCredentialsInTheURL(t *testing.T) {
	var logs syncBuffer
	cfg := apptest.Config(t)
	p := apptest.StartLogged(t, platform.AllRoles, cfg, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})))
	w := newWorldOn(t, p, false)
	_, q := w.install(t, "free")
	code := q.Get("code")

	status, _, tr := postToken(t, p.URL, url.Values{"client_id": {w.app.ClientID}, "client_secret": {w.app.ClientSecret}},
		url.Values{"grant_type": {"authorization_code"}, "code": {code}})
	if status != 400 || tr.Error != "invalid_request" || tr.AccessToken != "" {
		t.Fatalf("credentials in the URL: %d %+v", status, tr)
	}
	// The code itself in the URL: refused too, and left unused.
	status, _, tr = postToken(t, p.URL, url.Values{"code": {code}}, url.Values{"grant_type": {"authorization_code"}}, w.app.ClientID, w.app.ClientSecret)
	if status != 400 || tr.Error != "invalid_request" {
		t.Fatalf("code in the URL: %d %+v", status, tr)
	}
	// The same request done right works.
	if _, err := w.oauth.Exchange(context.Background(), code); err != nil {
		t.Fatalf("the code was spent by the refused requests: %v", err)
	}
	// Other pages redact what looks like a credential too.
	http.Get(p.URL + "/login?password=hunter2&next=%2Fmarketplace&access_token=pbi_leak")

	out := logs.String()
	for _, leak := range []string{w.app.ClientSecret, code, "hunter2", "pbi_leak"} {
		if strings.Contains(out, leak) {
			t.Errorf("the log holds %q:\n%s", leak, out)
		}
	}
	for _, want := range []string{"client_secret=REDACTED", "code=REDACTED", "password=REDACTED&next=%2Fmarketplace", "access_token=REDACTED"} {
		if !strings.Contains(out, want) {
			t.Errorf("the log lacks %q:\n%s", want, out)
		}
	}
}

// RFC 9700 §2.1.1: a code issued without a code_challenge is refused when
// the token request sends a code_verifier; one issued with a challenge
// needs its verifier.
func TestPKCEDowngradeIsRefused(t *testing.T) {
	w := newWorld(t, false)
	ctx := context.Background()
	hc := oauthBrowser(t, w, "admin@customer.example")
	verifier := oauth2.GenerateVerifier()

	// No challenge at authorize, a verifier at the token endpoint.
	plain := consent(t, hc, w.oauth.AuthCodeURL("s1"), "customer", "approve")
	if _, err := w.oauth.Exchange(ctx, plain.Get("code"), oauth2.VerifierOption(verifier)); oauthErrorCode(err) != "invalid_grant" {
		t.Fatalf("verifier for a code issued without a challenge: %v, want invalid_grant", err)
	}
	if n := count(t, w.p, "tokens"); n != 0 {
		t.Fatalf("the downgrade issued %d tokens", n)
	}
	// Without a verifier, as it was issued, the code works.
	if _, err := w.oauth.Exchange(ctx, plain.Get("code")); err != nil {
		t.Fatalf("the code without a verifier: %v", err)
	}

	// A challenge at authorize, no verifier at the token endpoint.
	pkce := consent(t, hc, w.oauth.AuthCodeURL("s2", oauth2.S256ChallengeOption(verifier)), "customer", "approve")
	if _, err := w.oauth.Exchange(ctx, pkce.Get("code")); oauthErrorCode(err) != "invalid_grant" {
		t.Fatalf("no verifier for a code issued with a challenge: %v, want invalid_grant", err)
	}
	if _, err := w.oauth.Exchange(ctx, pkce.Get("code"), oauth2.VerifierOption(verifier)); err != nil {
		t.Fatalf("the right verifier: %v", err)
	}
}

// The scope an authorize request asks for is what the consent page shows,
// what the token carries and what the token response says; refresh keeps
// or narrows it; a scope the app or installation was not granted is
// invalid_scope.
func TestAuthorizeGrantsTheRequestedScope(t *testing.T) {
	w := newWorld(t, false) // the app has org:read and member:read
	ctx := context.Background()
	hc := oauthBrowser(t, w, "admin@customer.example")
	verifier := oauth2.GenerateVerifier()
	cfg := *w.oauth
	cfg.Scopes = []string{"org:read"}
	authURL := cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier))

	// The consent page names only what is asked for.
	res, err := hc.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(page), "Read the organization&#39;s name and settings") || strings.Contains(string(page), "See who belongs to the organization") {
		t.Fatalf("consent page for scope=org:read:\n%s", page)
	}
	q := consent(t, hc, authURL, "customer", "approve")
	tok, err := cfg.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	if tok.Extra("scope") != "org:read" {
		t.Errorf("token response scope %q, want org:read", tok.Extra("scope"))
	}
	app := bearer(t, w.p, tok.AccessToken)
	app.do("GET", "/api/0/organizations/customer/", nil).ok(t, 200, nil)
	app.do("GET", "/api/0/organizations/customer/members/", nil).problem(t, 403, "missing_scope")
	if inst := getInstallation(t, w.admin, q.Get("installationId")); strings.Join(inst.Scopes, " ") != "org:read" {
		t.Errorf("installation scopes %v, want the consented org:read", inst.Scopes)
	}

	// Refresh keeps the scope; asking for more is invalid_scope.
	refreshed, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Hour)}).Token()
	if err != nil || refreshed.Extra("scope") != "org:read" {
		t.Fatalf("refresh: %v, scope %v", err, refreshed.Extra("scope"))
	}
	status, _, tr := postToken(t, w.p.URL, nil, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshed.RefreshToken}, "scope": {"member:read"}},
		w.app.ClientID, w.app.ClientSecret)
	if status != 400 || tr.Error != "invalid_scope" {
		t.Errorf("refresh asking for more: %d %+v", status, tr)
	}

	// Authorizing the installation again for a scope it was not granted.
	more := *w.oauth
	more.Scopes = []string{"member:read"}
	if d := consent(t, hc, more.AuthCodeURL("m"), "customer", "approve"); d.Get("error") != "invalid_scope" || d.Get("state") != "m" {
		t.Errorf("re-authorize for member:read: %v", d)
	}
	// A scope the app was not registered with: sent back as invalid_scope.
	unknown := *w.oauth
	unknown.Scopes = []string{"org:write"}
	noRedirect := &http.Client{Jar: hc.Jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err = noRedirect.Get(unknown.AuthCodeURL("u"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if loc, _ := url.Parse(res.Header.Get("Location")); res.StatusCode != 302 || loc.Query().Get("error") != "invalid_scope" {
		t.Errorf("scope=org:write: %d %s", res.StatusCode, res.Header.Get("Location"))
	}

	// A fresh installation asked for both scopes; a refresh narrows to one.
	w.admin.do("DELETE", "/api/0/installations/"+q.Get("installationId")+"/", nil).ok(t, 204, nil)
	both := *w.oauth
	both.Scopes = []string{"member:read", "org:read"}
	q = consent(t, hc, both.AuthCodeURL("b"), "customer", "approve")
	tok, err = both.Exchange(ctx, q.Get("code"))
	if err != nil || tok.Extra("scope") != "org:read member:read" {
		t.Fatalf("both scopes: %v %v", err, tok.Extra("scope"))
	}
	status, _, tr = postToken(t, w.p.URL, nil, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "scope": {"member:read"}},
		w.app.ClientID, w.app.ClientSecret)
	if status != 200 || tr.Scope != "member:read" {
		t.Fatalf("narrowing refresh: %d %+v", status, tr)
	}
	narrowed := bearer(t, w.p, tr.AccessToken)
	narrowed.do("GET", "/api/0/organizations/customer/", nil).problem(t, 403, "missing_scope")
	decode[[]plugboard.Member](t, narrowed.do("GET", "/api/0/organizations/customer/members/", nil), 200)
	// The narrowed refresh token keeps the narrow scope.
	status, _, tr = postToken(t, w.p.URL, nil, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}},
		w.app.ClientID, w.app.ClientSecret)
	if status != 200 || tr.Scope != "member:read" {
		t.Errorf("refresh of the narrowed token: %d %+v", status, tr)
	}
}

// Failed token requests are counted per client IP; past the budget the
// endpoint answers 429 with Retry-After, even to the right secret.
func TestTokenEndpointIsLimited(t *testing.T) {
	p := apptest.Start(t, func(c *config.Config) { c.AuthRateLimitIP = 5 })
	w := newWorldOn(t, p, false)
	_, q := w.install(t, "free")
	for i := range 5 {
		status, _, tr := postToken(t, p.URL, nil, url.Values{"grant_type": {"authorization_code"}, "code": {"pbg_guess"}}, w.app.ClientID, "pbcs_wrong")
		if status != 401 || tr.Error != "invalid_client" {
			t.Fatalf("wrong secret %d: %d %+v", i, status, tr)
		}
	}
	req, _ := http.NewRequest("POST", p.URL+"/oauth/token", strings.NewReader(url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(w.app.ClientID, w.app.ClientSecret)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 429 {
		t.Fatalf("after 5 failures: %d, want 429", res.StatusCode)
	}
	retryAfter(t, res.Header)
}
