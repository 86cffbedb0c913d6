package web_test

import (
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/plugboard/plugboard/cmd/platform/apptest"
	"github.com/plugboard/plugboard/sdk/plugboard"
)

// introspect posts token to /oauth/introspect with the Authorization
// header auth ("" for none), as a host would, checked against the OpenAPI
// document.
func introspect(t testing.TB, p *apptest.Platform, auth, token string) *response {
	t.Helper()
	return introspectForm(t, p, auth, "", url.Values{"token": {token}, "token_type_hint": {"access_token"}})
}

func introspectForm(t testing.TB, p *apptest.Platform, auth, query string, form url.Values) *response {
	t.Helper()
	raw := []byte(form.Encode())
	req, err := http.NewRequest("POST", p.URL+"/oauth/introspect"+query, strings.NewReader(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	validateOpenAPI(t, req, raw, res, b)
	return &response{Status: res.StatusCode, Header: res.Header, Body: b}
}

func inactive(t *testing.T, r *response, what string) {
	t.Helper()
	if r.Status != 200 || strings.TrimSpace(string(r.Body)) != `{"active":false}` {
		t.Errorf("%s: %d %s, want {\"active\":false}", what, r.Status, r.Body)
	}
}

// Introspection describes a live installation token to the host, says
// {"active": false} of anything else, at once, and answers only the host.
func TestIntrospection(t *testing.T) {
	w := newTenants(t)
	host := "Bearer " + w.hostToken
	res := introspect(t, w.p, host, w.instTokenA)
	got := decode[plugboard.Introspection](t, res, 200)
	want := plugboard.Introspection{Active: true, Scope: "org:read member:read issue:read", ClientID: w.clientIDA, TokenType: "bearer",
		Iat: got.Iat, Sub: w.instA, Iss: w.p.URL, InstallationID: w.instA,
		Organization: &plugboard.OrganizationRef{ID: w.orgA, Slug: "alpha", Name: "Alpha"},
		App:          &plugboard.AppRef{ID: w.appA.ID, Slug: "alpha-bot", Name: "Alpha Bot"}}
	if got.Exp != 0 || time.Since(time.Unix(got.Iat, 0)) > time.Minute || res.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("an internal integration's token: exp %d iat %d, %s", got.Exp, got.Iat, res.Header.Get("Cache-Control"))
	}
	if *got.Organization != *want.Organization || *got.App != *want.App {
		t.Errorf("organization %+v app %+v", got.Organization, got.App)
	}
	got.Organization, got.App, want.Organization, want.App = nil, nil, nil, nil
	if got != want {
		t.Errorf("introspection\n got %+v\nwant %+v", got, want)
	}

	// A minted token expires in eight hours.
	minted := decode[plugboard.AccessToken](t, mint(w.aApp, w.instA, map[string]any{"scopes": []string{"issue:read"}}), 201)
	m := decode[plugboard.Introspection](t, introspect(t, w.p, host, minted.Token), 200)
	if m.Scope != "issue:read" || m.Exp != minted.ExpiresAt.Unix() || m.Exp-m.Iat != 8*3600 {
		t.Errorf("minted token %+v", m)
	}

	// Anything else is inactive: unknown, not a token, another kind of
	// credential, expired, revoked; and B's token is B's.
	for what, tok := range map[string]string{"unknown": "pbi_nope", "garbage": "x", "the host's own token": w.hostToken,
		"a user's API token": w.userTokenA, "a long one": strings.Repeat("pbi_", 2000)} {
		inactive(t, introspect(t, w.p, host, tok), what)
	}
	if b := decode[plugboard.Introspection](t, introspect(t, w.p, host, w.appB.Token), 200); b.Organization == nil || b.Organization.Slug != "beta" {
		t.Errorf("B's token %+v", b)
	}
	if err := w.p.App.DB.Exec("UPDATE tokens SET expires_at = now() - interval '1 second' WHERE token_hash = sha256(?::bytea)", minted.Token).Error; err != nil {
		t.Fatal(err)
	}
	inactive(t, introspect(t, w.p, host, minted.Token), "expired")

	// Revoked (RFC 7009), seen by the very next question.
	another := decode[plugboard.AccessToken](t, mint(w.aApp, w.instA, nil), 201)
	decode[plugboard.Introspection](t, introspect(t, w.p, host, another.Token), 200)
	if err := plugboard.RevokeToken(t.Context(), w.p.URL, w.clientIDA, w.secretA, another.Token); err != nil {
		t.Fatal(err)
	}
	inactive(t, introspect(t, w.p, host, another.Token), "revoked")

	// Suspended, then lifted, through the suspension routes.
	w.aAdmin.do("POST", "/api/0/installations/"+w.instA+"/suspensions/", map[string]any{"reason": "Audit"}).ok(t, 201, nil)
	inactive(t, introspect(t, w.p, host, w.instTokenA), "suspended")
	w.aAdmin.do("DELETE", "/api/0/installations/"+w.instA+"/suspensions/", nil).ok(t, 204, nil)
	decode[plugboard.Introspection](t, introspect(t, w.p, host, w.instTokenA), 200)

	// Only the host asks; everyone else gets 401 with an RFC 6750 challenge.
	for _, c := range []struct {
		what, auth, code, challenge string
	}{
		{"nobody", "", "not_authenticated", `Bearer realm="plugboard"`},
		{"a user", "Bearer " + w.userTokenA, "host_token_required", `Bearer realm="plugboard", error="invalid_token"`},
		{"an operator", "Bearer " + w.op.token, "host_token_required", `Bearer realm="plugboard", error="invalid_token"`},
		{"an installation", "Bearer " + w.instTokenA, "host_token_required", `Bearer realm="plugboard", error="invalid_token"`},
		{"an app", "Basic " + base64.StdEncoding.EncodeToString([]byte(w.clientIDA+":"+w.secretA)), "host_token_required", `Bearer realm="plugboard", error="invalid_token"`},
		{"a wrong host token", "Bearer pbh_wrong", "invalid_token", `Bearer realm="plugboard", error="invalid_token"`},
	} {
		r := introspect(t, w.p, c.auth, w.instTokenA)
		r.problem(t, 401, c.code)
		if r.Header.Get("WWW-Authenticate") != c.challenge {
			t.Errorf("%s: WWW-Authenticate %q, want %q", c.what, r.Header.Get("WWW-Authenticate"), c.challenge)
		}
	}
	// The token is required, in the body, never the URL.
	for what, r := range map[string]*response{
		"no token":       introspectForm(t, w.p, host, "", url.Values{}),
		"token in query": introspectForm(t, w.p, host, "?token="+w.instTokenA, url.Values{}),
	} {
		if r.Status != 400 || !strings.Contains(string(r.Body), `"error":"invalid_request"`) {
			t.Errorf("%s: %d %s", what, r.Status, r.Body)
		}
	}

	// Uninstalled: inactive at once.
	w.aAdmin.do("DELETE", "/api/0/installations/"+w.instA+"/", nil).ok(t, 204, nil)
	inactive(t, introspect(t, w.p, host, w.instTokenA), "uninstalled")
}

// Pending installations (waiting for their app to verify them) and refresh
// tokens are inactive to the host.
func TestIntrospectionOfPendingAndRefreshTokens(t *testing.T) {
	w := newWorld(t, true)
	op := operator(t, w.p, "ops2@plugboard.example")
	hostTok := decode[plugboard.ServiceToken](t, op.do("POST", "/api/0/service-tokens/", map[string]any{"name": "Host"}), 201).Token
	inst, q := w.install(t, "free")
	tok, err := w.oauth.Exchange(t.Context(), q.Get("code"))
	if err != nil {
		t.Fatal(err)
	}
	inactive(t, introspect(t, w.p, "Bearer "+hostTok, tok.AccessToken), "pending")
	newClient(t, w.p, tok.AccessToken).do("PUT", "/api/0/installations/"+inst.UUID+"/", map[string]any{"status": "installed"}).ok(t, 200, nil)
	if got := decode[plugboard.Introspection](t, introspect(t, w.p, "Bearer "+hostTok, tok.AccessToken), 200); !got.Active || got.Scope != "org:read member:read" {
		t.Errorf("verified: %+v", got)
	}
	inactive(t, introspect(t, w.p, "Bearer "+hostTok, tok.RefreshToken), "a refresh token")
}
