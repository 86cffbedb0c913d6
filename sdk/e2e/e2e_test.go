// Package e2e_test runs the SDK against the whole Plugboard platform (HTTP,
// worker and scheduler in process, on the test PostgreSQL and Redis), so the
// SDK's shapes are checked against the real API, not only canned answers.
//
// It belongs to the main module, not the SDK's (sdk/plugboard has a go.mod
// of its own), because it imports the platform's test harness, app/apptest;
// the main module reaches the SDK through the replace in its go.mod.
package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plugboard/plugboard/cmd/platform/apptest"
	"github.com/plugboard/plugboard/config"
	"github.com/plugboard/plugboard/marketplace"
	"github.com/plugboard/plugboard/sdk/plugboard"
)

// user calls the user-side API with a bearer token.
type user struct {
	t     *testing.T
	base  string
	token string
}

func (u *user) do(method, path string, in any, want int, out any) {
	u.t.Helper()
	var body bytes.Buffer
	if in != nil {
		json.NewEncoder(&body).Encode(in)
	}
	req, _ := http.NewRequest(method, u.base+path, &body)
	req.Header.Set("Content-Type", "application/json")
	if u.token != "" {
		req.Header.Set("Authorization", "Bearer "+u.token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		u.t.Fatal(err)
	}
	defer res.Body.Close()
	var raw bytes.Buffer
	raw.ReadFrom(res.Body)
	if res.StatusCode != want {
		u.t.Fatalf("%s %s: %d, want %d: %s", method, path, res.StatusCode, want, raw.String())
	}
	if out != nil {
		if err := json.Unmarshal(raw.Bytes(), out); err != nil {
			u.t.Fatal(err)
		}
	}
}

func signIn(t *testing.T, base, email string) *user {
	u := &user{t: t, base: base}
	var out struct{ Token string }
	u.do("POST", "/api/0/auth/", map[string]string{"email": email, "password": "correct horse battery"}, 200, &out)
	u.token = out.Token
	return u
}

func signUp(t *testing.T, base, email string) *user {
	(&user{t: t, base: base}).do("POST", "/api/0/users/", map[string]string{"email": email, "name": strings.Split(email, "@")[0], "password": "correct horse battery"}, 201, nil)
	return signIn(t, base, email)
}

// partner is the app's side: a webhook endpoint served by the SDK's Handler.
type partner struct {
	srv     *httptest.Server
	handler atomic.Pointer[http.Handler]
	mu      sync.Mutex
	events  []*plugboard.Event
	fail    atomic.Bool
}

func newPartner(t *testing.T) *partner {
	p := &partner{}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h := p.handler.Load(); h != nil {
			(*h).ServeHTTP(w, r)
			return
		}
		http.Error(w, "not ready", http.StatusServiceUnavailable)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *partner) use(secret string, opts ...plugboard.HandlerOption) {
	var h http.Handler = plugboard.Handler(secret, func(ctx context.Context, ev *plugboard.Event) error {
		if p.fail.Load() {
			return errors.New("partner database down")
		}
		p.mu.Lock()
		p.events = append(p.events, ev)
		p.mu.Unlock()
		return nil
	}, opts...)
	p.handler.Store(&h)
}

// wait returns the first event received that matches.
func (p *partner) wait(t *testing.T, what string, match func(*plugboard.Event) bool) *plugboard.Event {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		p.mu.Lock()
		for _, ev := range p.events {
			if match(ev) {
				p.mu.Unlock()
				return ev
			}
		}
		p.mu.Unlock()
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("never received %s", what)
	return nil
}

func TestSDKAgainstThePlatform(t *testing.T) {
	ctx := context.Background()
	pb := apptest.Start(t, func(c *config.Config) {
		c.WebhookRetrySchedule = "0s,300ms,300ms"
		c.RelayInterval = time.Second
		c.RelayGrace = time.Second
		c.WebhookTimeout = 2 * time.Second
	})
	if _, err := pb.App.Marketplace.Accounts.SignUp(ctx, marketplace.Anonymous, marketplace.NewUser{Email: "ops@plugboard.example", Password: "correct horse battery", IsOperator: true}); err != nil {
		t.Fatal(err)
	}
	ops := signIn(t, pb.URL, "ops@plugboard.example")
	ops.do("POST", "/api/0/event-types/", map[string]any{"name": "issue.created", "scope": "org:read", "description": "An issue was opened.",
		"schema": map[string]any{"type": "object", "required": []string{"title"}, "properties": map[string]any{"title": map[string]any{"type": "string"}}}}, 201, nil)

	hooks := newPartner(t)
	dev := signUp(t, pb.URL, "dev@partner.example")
	dev.do("POST", "/api/0/organizations/", map[string]string{"name": "Partner"}, 201, nil)
	var app struct{ ClientID, ClientSecret, WebhookSecret string }
	dev.do("POST", "/api/0/organizations/partner/apps/", map[string]any{"name": "Acme Alerts", "overview": "Pages on-call.", "categories": []string{"alerting"},
		"scopes": []string{"org:read"}, "events": []string{"installation.created", "issue.created"},
		"webhookUrl": hooks.srv.URL + "/hooks", "redirectUrl": "https://alerts.acme.example/plugboard/callback"}, 201, &app)
	dev.do("POST", "/api/0/apps/acme-alerts/plans/", map[string]any{"name": "Pro", "price": "9.00"}, 201, nil)
	dev.do("POST", "/api/0/apps/acme-alerts/plans/", map[string]any{"name": "Team", "price": "29.00"}, 201, nil)
	dev.do("POST", "/api/0/apps/acme-alerts/publish-requests/", nil, 201, nil)
	ops.do("PUT", "/api/0/apps/acme-alerts/", map[string]any{"status": "published"}, 200, nil)
	hooks.use(app.WebhookSecret)

	// Two organizations install the app.
	admin := signUp(t, pb.URL, "admin@customer.example")
	var installs []string
	for _, org := range []string{"Globex", "Initech"} {
		admin.do("POST", "/api/0/organizations/", map[string]string{"name": org}, 201, nil)
		var inst struct{ UUID string }
		admin.do("POST", "/api/0/organizations/"+strings.ToLower(org)+"/installations/", map[string]any{"app": "acme-alerts", "plan": "pro"}, 201, &inst)
		installs = append(installs, inst.UUID)
	}

	// installation.created arrives through the SDK's Handler, verified and typed.
	ev := hooks.wait(t, "installation.created", func(ev *plugboard.Event) bool {
		return ev.Type == plugboard.EventInstallationCreated && ev.InstallationUUID() == installs[0]
	})
	created, err := ev.InstallationCreated()
	if err != nil {
		t.Fatal(err)
	}
	ci := created.Installation
	if !strings.HasPrefix(created.Code, "pbg_") || created.CodeExpiresAt.Before(time.Now()) || created.Resent || ci.UUID != installs[0] ||
		ci.App.Slug != "acme-alerts" || ci.App.ClientID != app.ClientID || ci.Organization.Slug != "globex" || ci.Organization.ID == "" ||
		ci.Plan == nil || ci.Plan.Slug != "pro" || ci.Plan.Price != "9.00" || ci.Status != plugboard.StatusInstalled || len(ci.Scopes) != 1 || ev.Timestamp.IsZero() {
		t.Errorf("installation.created %+v", created)
	}

	// The code becomes the installation's tokens through the SDK's oauth2 config.
	oc := plugboard.OAuth2Config(pb.URL, app.ClientID, app.ClientSecret, "https://alerts.acme.example/plugboard/callback")
	tok, err := oc.Exchange(ctx, created.Code)
	if err != nil {
		t.Fatal(err)
	}
	if plugboard.InstallationID(tok) != installs[0] || !strings.HasPrefix(tok.AccessToken, "pbi_") {
		t.Errorf("token %+v for %q", tok, plugboard.InstallationID(tok))
	}

	// As the installation: read and verify it.
	ic, err := plugboard.NewClient(pb.URL, plugboard.WithTokenSource(oc.TokenSource(ctx, tok)))
	if err != nil {
		t.Fatal(err)
	}
	inst, err := ic.GetInstallation(ctx, installs[0])
	if err != nil {
		t.Fatal(err)
	}
	if inst.UUID != installs[0] || inst.App.ID == "" || inst.App.Slug != "acme-alerts" || inst.Plan.Slug != "pro" || inst.SyncState != plugboard.InSync || inst.DateCreated.IsZero() {
		t.Errorf("installation %+v", inst)
	}
	inst, err = ic.VerifyInstallation(ctx, installs[0], "acct_42", "https://alerts.acme.example/accounts/acct_42")
	if err != nil || inst.ExternalID != "acct_42" || inst.ConfigURL != "https://alerts.acme.example/accounts/acct_42" || inst.Status != plugboard.StatusInstalled {
		t.Errorf("verify %+v %v", inst, err)
	}
	// The Platform API, within the installation's scopes (org:read only).
	if org, err := ic.GetOrganization(ctx, inst.Organization.Slug); err != nil || org.Slug != inst.Organization.Slug {
		t.Errorf("organization %+v %v", org, err)
	}
	var apiErr *plugboard.APIError
	if _, err := ic.ListMembers(ctx, inst.Organization.Slug, "", 0); !errors.As(err, &apiErr) || apiErr.Code != "missing_scope" {
		t.Errorf("members without member:read: %v", err)
	}
	if _, err := ic.ListInstallations(ctx, "acme-alerts", plugboard.ListOptions{}); !errors.As(err, &apiErr) || apiErr.Status != 403 ||
		apiErr.Code != "app_credentials_required" || apiErr.RequestID == "" {
		t.Errorf("listing with a token: %v", err)
	}

	// As the app: lists, pages and iterators.
	c, err := plugboard.NewClient(pb.URL, plugboard.WithClientCredentials(app.ClientID, app.ClientSecret), plugboard.WithUserAgent("e2e/1"))
	if err != nil {
		t.Fatal(err)
	}
	page, err := c.ListInstallations(ctx, "acme-alerts", plugboard.ListOptions{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 1 || !page.HasNext || page.NextCursor == "" || page.Items[0].UUID != installs[1] {
		t.Fatalf("page 1 %+v", page)
	}
	page2, err := c.ListInstallations(ctx, "acme-alerts", plugboard.ListOptions{Limit: 1, Cursor: page.NextCursor})
	if err != nil || len(page2.Items) != 1 || page2.HasNext || !page2.HasPrev || page2.Items[0].UUID != installs[0] {
		t.Fatalf("page 2 %+v %v", page2, err)
	}
	var all []string
	for inst, err := range c.AllInstallations(ctx, "acme-alerts", plugboard.ListOptions{Limit: 1, Status: plugboard.StatusInstalled}) {
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, inst.UUID)
	}
	if len(all) != 2 {
		t.Errorf("all installations %v", all)
	}
	if p, err := c.ListInstallations(ctx, "acme-alerts", plugboard.ListOptions{SyncState: plugboard.OutOfSync}); err != nil || len(p.Items) != 0 || p.HasNext {
		t.Errorf("out of sync %+v %v", p, err)
	}
	if _, err := c.ListInstallations(ctx, "acme-alerts", plugboard.ListOptions{Cursor: "forged"}); !errors.As(err, &apiErr) ||
		apiErr.Status != 400 || apiErr.Code != "invalid_cursor" || apiErr.Fields["cursor"] == "" {
		t.Errorf("forged cursor: %v", err)
	}
	if _, err := c.GetInstallation(ctx, "00000000-0000-4000-8000-000000000000"); !errors.As(err, &apiErr) || apiErr.Status != 404 || apiErr.Code != "not_found" {
		t.Errorf("unknown installation: %v", err)
	}

	// A host event, the delivery log, a delivery's detail.
	admin.do("POST", "/api/0/organizations/globex/events/", map[string]any{"type": "issue.created", "data": map[string]any{"title": "Database on fire"}}, 201, nil)
	issue := hooks.wait(t, "issue.created", func(ev *plugboard.Event) bool { return ev.Type == "issue.created" })
	var data struct{ Title string }
	if err := issue.DecodeData(&data); err != nil || data.Title != "Database on fire" || issue.InstallationUUID() != installs[0] {
		t.Errorf("issue %+v %v", issue, err)
	}
	waitFor(t, "the delivery to succeed", func() bool {
		d, err := c.GetDelivery(ctx, "acme-alerts", issue.ID)
		return err == nil && d.Status == plugboard.DeliverySucceeded
	})
	d, err := c.GetDelivery(ctx, "acme-alerts", issue.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d.Payload == nil || d.Payload.ID != issue.ID || d.Payload.Type != "issue.created" || d.Installation != installs[0] || len(d.AttemptsDetail) != 1 ||
		d.AttemptsDetail[0].ResponseStatus != 204 || d.LastStatusCode != 204 || d.AttemptsDetail[0].RequestHeaders["webhook-id"] != issue.ID {
		t.Errorf("delivery %+v", d)
	}
	dp, err := c.ListDeliveries(ctx, "acme-alerts", plugboard.DeliveryFilter{EventType: "issue.created", Installation: installs[0],
		Since: time.Now().Add(-time.Hour), Until: time.Now().Add(time.Minute), Status: plugboard.DeliverySucceeded})
	if err != nil || len(dp.Items) != 1 || dp.Items[0].ID != issue.ID {
		t.Errorf("deliveries %+v %v", dp, err)
	}
	n := 0
	for _, err := range c.AllDeliveries(ctx, "acme-alerts", plugboard.DeliveryFilter{Limit: 1}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n < 3 {
		t.Errorf("all deliveries: %d", n)
	}

	// A failing handler answers 500, and Plugboard retries until it works.
	hooks.fail.Store(true)
	admin.do("POST", "/api/0/organizations/globex/events/", map[string]any{"type": "issue.created", "data": map[string]any{"title": "Disk full"}}, 201, nil)
	var failed plugboard.Delivery
	waitFor(t, "a failed delivery", func() bool {
		p, err := c.ListDeliveries(ctx, "acme-alerts", plugboard.DeliveryFilter{Status: plugboard.DeliveryFailed})
		if err == nil && len(p.Items) > 0 {
			failed = p.Items[0]
			return true
		}
		return false
	})
	if failed.LastStatusCode != 500 || failed.Attempts != 3 || failed.LastErrorClass != "http_status" {
		t.Errorf("failed delivery %+v", failed)
	}
	hooks.fail.Store(false)
	if r, err := c.Redeliver(ctx, "acme-alerts", failed.ID); err != nil || r.Count != 1 || r.Background {
		t.Errorf("redeliver %+v %v", r, err)
	}
	hooks.wait(t, "the redelivered issue", func(ev *plugboard.Event) bool { return ev.ID == failed.ID })
	if r, err := c.RedeliverFailed(ctx, "acme-alerts", time.Now().Add(-time.Hour), time.Time{}); err != nil || !r.Background {
		t.Errorf("redeliver failed %+v %v", r, err)
	}

	// A test event.
	td, err := c.SendTestEvent(ctx, "acme-alerts")
	if err != nil || td.EventType != plugboard.EventWebhookTest || td.Installation != "" {
		t.Fatalf("test event %+v %v", td, err)
	}
	tev := hooks.wait(t, "webhook.test", func(ev *plugboard.Event) bool { return ev.ID == td.ID })
	if wt, err := tev.WebhookTest(); err != nil || wt.App.Slug != "acme-alerts" || tev.Installation != nil {
		t.Errorf("webhook.test %+v %v", wt, err)
	}

	// Health.
	now := time.Now()
	st, err := c.Stats(ctx, "acme-alerts", now.Add(-time.Hour), now.Add(time.Hour), 15*time.Minute)
	if err != nil || st.Resolution != 15*time.Minute || st.Attempts < 4 || len(st.Buckets) != 8 || st.SuccessRate <= 0 || st.SuccessRate >= 1 {
		t.Errorf("stats %+v %v", st, err)
	}
	if _, err := c.Stats(ctx, "acme-alerts", time.Time{}, time.Time{}, 0); err != nil {
		t.Errorf("default stats: %v", err)
	}
	if _, err := c.Stats(ctx, "acme-alerts", time.Time{}, time.Time{}, time.Second); !errors.As(err, &apiErr) || apiErr.Status != 400 {
		t.Errorf("sub-minute stats: %v", err)
	}
	if _, err := c.ListReconciliationRuns(ctx, "acme-alerts", plugboard.RunListOptions{Job: "partner_sync"}); err != nil {
		t.Errorf("runs: %v", err)
	}

	// A fresh code, resent in installation.created.
	g, err := c.RequestGrant(ctx, installs[1])
	if err != nil || !strings.HasPrefix(g.Code, "pbg_") {
		t.Fatalf("grant %+v %v", g, err)
	}
	resent := hooks.wait(t, "the resent installation.created", func(ev *plugboard.Event) bool {
		cr, err := ev.InstallationCreated()
		return err == nil && cr.Resent && cr.Code == g.Code
	})
	if resent.InstallationUUID() != installs[1] {
		t.Errorf("resent for %s", resent.InstallationUUID())
	}

	// The webhook secret rotates: during the overlap, the old secret alone
	// and the new one alone both verify.
	var rotated struct{ WebhookSecret string }
	dev.do("POST", "/api/0/apps/acme-alerts/rotate-webhook-secret/", nil, 200, &rotated)
	for i, secret := range []string{app.WebhookSecret, rotated.WebhookSecret} {
		hooks.use(secret)
		td, err := c.SendTestEvent(ctx, "acme-alerts")
		if err != nil {
			t.Fatal(err)
		}
		hooks.wait(t, "a test event after rotation, verified with "+secret[:12]+"…", func(ev *plugboard.Event) bool { return ev.ID == td.ID })
		if i == 0 {
			// Workers cache an app's signer for two seconds: until then
			// they sign with the old secret alone.
			time.Sleep(2500 * time.Millisecond)
		}
	}
	hooks.use(app.WebhookSecret, plugboard.WithSecrets(rotated.WebhookSecret))

	// The organization changes plan: installation.updated with the previous plan.
	admin.do("PUT", "/api/0/installations/"+installs[0]+"/", map[string]any{"plan": "team"}, 200, nil)
	upd := hooks.wait(t, "installation.updated", func(ev *plugboard.Event) bool { return ev.Type == plugboard.EventInstallationUpdated })
	if u, err := upd.InstallationUpdated(); err != nil || u.PreviousPlan == nil || u.PreviousPlan.Slug != "pro" || u.Installation.Plan.Slug != "team" {
		t.Errorf("installation.updated %+v %v", u, err)
	}

	// The app uninstalls itself with the installation's token:
	// installation.deleted, and the token stops working.
	if err := ic.Uninstall(ctx, installs[0]); err != nil {
		t.Fatal(err)
	}
	del := hooks.wait(t, "installation.deleted", func(ev *plugboard.Event) bool { return ev.Type == plugboard.EventInstallationDeleted })
	if dd, err := del.InstallationDeleted(); err != nil || dd.Reason != plugboard.ReasonUninstalled || dd.Installation.UUID != installs[0] || dd.Installation.Status != plugboard.StatusDeleted {
		t.Errorf("installation.deleted %+v %v", dd, err)
	}
	if _, err := ic.GetInstallation(ctx, installs[0]); !errors.As(err, &apiErr) || apiErr.Status != 401 {
		t.Errorf("a revoked token: %v", err)
	}
	if err := c.Uninstall(ctx, installs[0]); !errors.As(err, &apiErr) || apiErr.Status != 409 || apiErr.Code != "installation_not_live" {
		t.Errorf("uninstalling twice: %v", err)
	}

	// Revoking the other installation's refresh token.
	tok2, err := oc.Exchange(ctx, g.Code)
	if err != nil || plugboard.InstallationID(tok2) != installs[1] {
		t.Fatalf("second exchange %+v %v", tok2, err)
	}
	if err := plugboard.RevokeToken(ctx, pb.URL, app.ClientID, app.ClientSecret, tok2.RefreshToken); err != nil {
		t.Fatal(err)
	}
	ic2, _ := plugboard.NewClient(pb.URL, plugboard.WithToken(tok2.AccessToken))
	if _, err := ic2.GetInstallation(ctx, installs[1]); !errors.As(err, &apiErr) || apiErr.Status != 401 {
		t.Errorf("after revoking the refresh token, its access token: %v", err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
