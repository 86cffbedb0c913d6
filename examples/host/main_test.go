package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/plugboard/plugboard/cmd/platform/apptest"
	"github.com/plugboard/plugboard/marketplace"
	plugboard "github.com/plugboard/plugboard/sdk/plugboard"
)

var call = apptest.Call

func signUp(t *testing.T, base, email string) string {
	t.Helper()
	call(t, "POST", base+"/users/", "", map[string]string{"email": email, "password": "correct horse battery"}, nil)
	return signIn(t, base, email)
}

func signIn(t *testing.T, base, email string) string {
	t.Helper()
	var auth struct{ Token string }
	call(t, "POST", base+"/auth/", "", map[string]string{"email": email, "password": "correct horse battery"}, &auth)
	return auth.Token
}

// answer is what GET /api/issues says.
type answer struct {
	status       int
	organization string
	issues       []string // ids
}

func getIssues(t *testing.T, hc *http.Client, url string) answer {
	t.Helper()
	res, err := hc.Get(url + "/api/issues?organization=acme") // the parameter is ignored: the token says whose
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body struct {
		Organization string
		Issues       []Issue
	}
	b, _ := io.ReadAll(res.Body)
	json.Unmarshal(b, &body)
	a := answer{status: res.StatusCode, organization: body.Organization}
	for _, i := range body.Issues {
		a.issues = append(a.issues, i.ID)
	}
	return a
}

// refusedWithin checks that the host refuses with status one
// plugboard.MaxIntrospectionCache (a second) after since, the moment
// before the change: Plugboard answers introspection from the database
// with no cache, and the host keeps an active answer at most that long
// (the SDK's clock test proves the bound), so the first call once it has
// passed must be refused. A single call, not a poll: a refusal that came
// later than the second fails.
func refusedWithin(t *testing.T, what string, since time.Time, get func() answer, status int) {
	t.Helper()
	time.Sleep(time.Until(since.Add(plugboard.MaxIntrospectionCache)))
	if got := get(); got.status != status {
		t.Fatalf("%s: a second later still %+v, want %d", what, got, status)
	}
}

// The host example against the real platform: a partner's app installed
// in two organizations calls GET /api/issues with tokens it mints
// (AppTokenSource through x/oauth2's client) and reads its own
// organization's issues only; a token without issue:read is refused; and
// the host refuses the token once it is revoked, its installation
// suspended, or uninstalled.
func TestHostAcceptsInstallationTokens(t *testing.T) {
	p := apptest.Start(t)
	base := p.URL + "/api/0"
	ctx := context.Background()
	if _, err := p.App.Marketplace.Accounts.SignUp(ctx, marketplace.Anonymous, marketplace.NewUser{Email: "ops@host.example", Password: "correct horse battery", IsOperator: true}); err != nil {
		t.Fatal(err)
	}
	ops := signIn(t, base, "ops@host.example")
	// The host's scope, declared by its event type; and its service token.
	call(t, "POST", base+"/event-types/", ops, map[string]any{"name": "issue.created", "scope": "issue:read", "description": "An issue was opened."}, nil)
	var service struct{ Token string }
	call(t, "POST", base+"/service-tokens/", ops, map[string]string{"name": "Host API"}, &service)

	// A partner's app that reads issues, published.
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	defer sink.Close()
	dev := signUp(t, base, "dev@partner.example")
	call(t, "POST", base+"/organizations/", dev, map[string]string{"name": "Partner"}, nil)
	var app struct{ ClientID, ClientSecret string }
	call(t, "POST", base+"/organizations/partner/apps/", dev, map[string]any{"name": "Issue Sync", "overview": "Syncs issues.",
		"categories": []string{"developer-tools"}, "scopes": []string{"org:read", "issue:read"}, "events": []string{"installation.created"},
		"webhookUrl": sink.URL + "/hooks", "redirectUrl": sink.URL + "/setup"}, &app)
	call(t, "POST", base+"/apps/issue-sync/plans/", dev, map[string]string{"name": "Free", "price": "0"}, nil)
	call(t, "POST", base+"/apps/issue-sync/publish-requests/", dev, nil, nil)
	call(t, "PUT", base+"/apps/issue-sync/", ops, map[string]string{"status": "published"}, nil)

	// Two organizations install it.
	install := func(email, name string) (org, uuid, token string) {
		admin := signUp(t, base, email)
		var o struct{ ID, Slug string }
		call(t, "POST", base+"/organizations/", admin, map[string]string{"name": name}, &o)
		var inst struct{ UUID string }
		call(t, "POST", base+"/organizations/"+o.Slug+"/installations/", admin, map[string]string{"app": "issue-sync", "plan": "free"}, &inst)
		return o.ID, inst.UUID, admin
	}
	acmeID, acmeInst, acmeAdmin := install("admin@acme.example", "Acme")
	globexID, globexInst, _ := install("admin@globex.example", "Globex")

	// The host, with its issues per organization id.
	host := httptest.NewServer(New(Config{PlugboardURL: p.URL, ServiceToken: service.Token, Issues: map[string][]Issue{
		acmeID:   {{ID: "a1", Title: "Checkout times out", Status: "open"}, {ID: "a2", Title: "Typo", Status: "resolved"}},
		globexID: {{ID: "g1", Title: "Exports are empty", Status: "open"}},
	}}, slog.New(slog.NewTextHandler(io.Discard, nil))))
	defer host.Close()

	// The partner mints its tokens and calls the host with x/oauth2's client.
	auth := plugboard.AppAuth{BaseURL: p.URL, ClientID: app.ClientID, ClientSecret: app.ClientSecret}
	acmeTS := plugboard.AppTokenSource(auth, acmeInst)
	acme := oauth2.NewClient(ctx, acmeTS)
	globex := oauth2.NewClient(ctx, plugboard.AppTokenSource(auth, globexInst))
	if got := getIssues(t, acme, host.URL); got.status != 200 || got.organization != "acme" || !slices.Equal(got.issues, []string{"a1", "a2"}) {
		t.Fatalf("acme: %+v", got)
	}
	if got := getIssues(t, globex, host.URL); got.status != 200 || got.organization != "globex" || !slices.Equal(got.issues, []string{"g1"}) {
		t.Fatalf("globex: %+v", got)
	}
	// No token, a token without issue:read, a made-up one: refused.
	if got := getIssues(t, http.DefaultClient, host.URL); got.status != 401 {
		t.Errorf("no token: %+v", got)
	}
	orgOnly := oauth2.NewClient(ctx, plugboard.AppTokenSource(auth, acmeInst, "org:read"))
	if got := getIssues(t, orgOnly, host.URL); got.status != 403 {
		t.Errorf("without issue:read: %+v", got)
	}
	fake := oauth2.NewClient(ctx, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "pbi_made_up"}))
	if got := getIssues(t, fake, host.URL); got.status != 401 {
		t.Errorf("made-up token: %+v", got)
	}

	// Revoked: refused within the cache's second.
	tok, err := acmeTS.Token()
	if err != nil {
		t.Fatal(err)
	}
	since := time.Now()
	if err := plugboard.RevokeToken(ctx, p.URL, app.ClientID, app.ClientSecret, tok.AccessToken); err != nil {
		t.Fatal(err)
	}
	revoked := oauth2.NewClient(ctx, oauth2.StaticTokenSource(tok))
	refusedWithin(t, "revoked", since, func() answer { return getIssues(t, revoked, host.URL) }, 401)

	// Suspended by the organization's admin, with a fresh token.
	fresh := oauth2.NewClient(ctx, plugboard.AppTokenSource(auth, acmeInst))
	if got := getIssues(t, fresh, host.URL); got.status != 200 {
		t.Fatalf("fresh: %+v", got)
	}
	since = time.Now()
	call(t, "POST", base+"/installations/"+acmeInst+"/suspensions/", acmeAdmin, map[string]string{"reason": "Security review"}, nil)
	refusedWithin(t, "suspended", since, func() answer { return getIssues(t, fresh, host.URL) }, 401)
	var apiErr *plugboard.APIError
	if _, err := plugboard.AppTokenSource(auth, acmeInst).Token(); !errors.As(err, &apiErr) || apiErr.Code != "installation_suspended" {
		t.Errorf("minting while suspended: %v", err)
	}
	call(t, "DELETE", base+"/installations/"+acmeInst+"/suspensions/", acmeAdmin, nil, nil)
	if got := getIssues(t, fresh, host.URL); got.status != 200 || got.organization != "acme" {
		t.Errorf("lifted: %+v", got)
	}

	// Uninstalled: refused, and no token is minted any more.
	since = time.Now()
	call(t, "DELETE", base+"/installations/"+acmeInst+"/", acmeAdmin, nil, nil)
	refusedWithin(t, "uninstalled", since, func() answer { return getIssues(t, fresh, host.URL) }, 401)
	if _, err := plugboard.AppTokenSource(auth, acmeInst).Token(); !errors.As(err, &apiErr) || apiErr.Code != "installation_not_live" {
		t.Errorf("minting once uninstalled: %v", err)
	}
	// Globex is untouched.
	if got := getIssues(t, globex, host.URL); got.status != 200 || !slices.Equal(got.issues, []string{"g1"}) {
		t.Errorf("globex after acme's uninstall: %+v", got)
	}
}

func TestRunReadsItsConfiguration(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	env := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	if err := run(t.Context(), env(nil), quiet); err == nil {
		t.Error("without SERVICE_TOKEN: no error")
	}
	if err := run(t.Context(), env(map[string]string{"SERVICE_TOKEN": "pbh_x", "ISSUES": "[1]"}), quiet); err == nil {
		t.Error("bad ISSUES: no error")
	}
	// Good: serves until its context ends.
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, env(map[string]string{"SERVICE_TOKEN": "pbh_x", "ADDR": "127.0.0.1:0", "ISSUES": `{"1": []}`}), quiet)
	}()
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run: %v", err)
	}
}
