package main

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/plugboard/plugboard/cmd/platform/apptest"
	"github.com/plugboard/plugboard/config"
	"github.com/plugboard/plugboard/marketplace"
)

// call is apptest.Call.
var call = apptest.Call

// platform starts the real platform for a test with an operator signed
// in: the platform, its API base URL and the operator's token.
func platform(t *testing.T, opts ...apptest.Option) (*apptest.Platform, string, string) {
	t.Helper()
	p := apptest.Start(t, opts...)
	base := p.URL + "/api/0"
	if _, err := p.App.Marketplace.Accounts.SignUp(t.Context(), marketplace.Anonymous, marketplace.NewUser{Email: "ops@plugboard.example", Password: "correct horse battery", IsOperator: true}); err != nil {
		t.Fatal(err)
	}
	return p, base, signIn(t, base, "ops@plugboard.example")
}

func signIn(t *testing.T, base, email string) string {
	var auth struct{ Token string }
	call(t, "POST", base+"/auth/", "", map[string]string{"email": email, "password": "correct horse battery"}, &auth)
	return auth.Token
}

// The example partner against the real platform: install from the
// marketplace, the partner exchanges, verifies and confirms; reconciliation
// finds it in sync; uninstalling removes it at the partner.
func TestExamplePartnerEndToEnd(t *testing.T) {
	p, base, ops := platform(t, func(c *config.Config) { c.ReconcileInterval = time.Hour })
	ctx := t.Context()

	// The partner's service, on loopback.
	ps := httptest.NewUnstartedServer(nil)
	ps.Start()
	defer ps.Close()
	call(t, "POST", base+"/users/", "", map[string]string{"email": "dev@partner.example", "password": "correct horse battery"}, nil)
	dev := signIn(t, base, "dev@partner.example")
	call(t, "POST", base+"/organizations/", dev, map[string]string{"name": "Partner"}, nil)
	var app struct{ ClientID, ClientSecret, WebhookSecret string }
	call(t, "POST", base+"/organizations/partner/apps/", dev, map[string]any{"name": "Example Partner", "overview": "The example.",
		"scopes": []string{"org:read"}, "events": []string{"installation.created"}, "verifyInstall": true,
		"webhookUrl": ps.URL + "/webhooks", "redirectUrl": ps.URL + "/setup", "syncUrl": ps.URL + "/sync"}, &app)
	partner := New(Config{PlugboardURL: p.URL, ClientID: app.ClientID, ClientSecret: app.ClientSecret, WebhookSecret: app.WebhookSecret,
		PublicURL: ps.URL}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ps.Config.Handler = partner
	call(t, "POST", base+"/apps/example-partner/plans/", dev, map[string]string{"name": "Free", "price": "0"}, nil)
	call(t, "POST", base+"/apps/example-partner/publish-requests/", dev, nil, nil)
	call(t, "PUT", base+"/apps/example-partner/", ops, map[string]string{"status": "published"}, nil)

	// A customer installs it and is sent to the partner.
	call(t, "POST", base+"/users/", "", map[string]string{"email": "admin@customer.example", "password": "correct horse battery"}, nil)
	admin := signIn(t, base, "admin@customer.example")
	call(t, "POST", base+"/organizations/", admin, map[string]string{"name": "Customer"}, nil)
	var inst struct{ UUID, Status, RedirectURL string }
	call(t, "POST", base+"/organizations/customer/installations/", admin, map[string]string{"app": "example-partner", "plan": "free"}, &inst)
	if inst.Status != "pending" {
		t.Fatalf("install status %q", inst.Status)
	}
	res, err := http.Get(inst.RedirectURL)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(page), "Thanks for installing, customer") {
		t.Errorf("setup page: %s", page)
	}

	// The partner exchanges the code from installation.created and confirms.
	deadline := time.Now().Add(15 * time.Second)
	var got struct{ Status, ExternalID string }
	for got.Status != "installed" {
		if time.Now().After(deadline) {
			t.Fatalf("never confirmed; partner knows %+v", partner.Accounts())
		}
		time.Sleep(100 * time.Millisecond)
		call(t, "GET", base+"/installations/"+inst.UUID+"/", admin, nil, &got)
	}
	if got.ExternalID != "acct_customer" {
		t.Errorf("externalId %q", got.ExternalID)
	}
	accts := partner.Accounts()
	if len(accts) != 1 || accts[0].Installation != inst.UUID || !accts[0].Verified || accts[0].Token.AccessToken == "" {
		t.Fatalf("partner accounts %+v", accts)
	}

	// Reconciliation asks the sync URL and finds nothing to repair.
	runs, err := p.App.Marketplace.Reconciler.RunJob(ctx, marketplace.JobPartnerSync)
	if err != nil || len(runs) != 1 || len(runs[0].Errors) != 0 || runs[0].Found != 0 || runs[0].Examined != 1 {
		t.Fatalf("partner sync: %+v %v", runs, err)
	}

	// Uninstalling tells the partner, which forgets the installation.
	call(t, "DELETE", base+"/installations/"+inst.UUID+"/", admin, nil, nil)
	deadline = time.Now().Add(15 * time.Second)
	for len(partner.Accounts()) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("partner still knows %+v", partner.Accounts())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
