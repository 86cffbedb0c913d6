package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/plugboard/plugboard/cmd/platform/apptest"
)

// try is one API request whose answer may be an error: its status and body.
func try(t *testing.T, method, url, token string, body any) (int, []byte) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, url, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	return res.StatusCode, out
}

// The example partner provisioned Heroku-style by the real platform:
// synchronously with config vars the host reads, a plan change agreed and
// one refused, the deprovision on uninstall; and asynchronously, finished
// with the SDK's SetConfigVars and CompleteProvisioning.
func TestExamplePartnerIsProvisioned(t *testing.T) {
	p, base, ops := platform(t)
	var host struct{ Token string }
	call(t, "POST", base+"/service-tokens/", ops, map[string]string{"name": "Host"}, &host)

	ps := httptest.NewUnstartedServer(nil)
	ps.Start()
	defer ps.Close()
	call(t, "POST", base+"/users/", "", map[string]string{"email": "dev@partner.example", "password": "correct horse battery"}, nil)
	dev := signIn(t, base, "dev@partner.example")
	call(t, "POST", base+"/organizations/", dev, map[string]string{"name": "Partner"}, nil)
	var app struct{ ClientID, ClientSecret, WebhookSecret, ConfigPrefix string }
	call(t, "POST", base+"/organizations/partner/apps/", dev, map[string]any{"name": "Example Partner", "overview": "The example.",
		"scopes": []string{"org:read"}, "events": []string{"installation.created"},
		"webhookUrl": ps.URL + "/webhooks", "provisionUrl": ps.URL + "/provision"}, &app)
	cfg := Config{PlugboardURL: p.URL, ClientID: app.ClientID, ClientSecret: app.ClientSecret, WebhookSecret: app.WebhookSecret,
		PublicURL: ps.URL, AppName: "Example Partner", ConfigPrefix: app.ConfigPrefix, ProvisionDelay: 100 * time.Millisecond}
	partner := New(cfg, apptest.Logger(t))
	ps.Config.Handler = partner
	for _, plan := range []string{"Free", "Pro", "Enterprise"} {
		call(t, "POST", base+"/apps/example-partner/plans/", dev, map[string]string{"name": plan}, nil)
	}
	call(t, "POST", base+"/apps/example-partner/publish-requests/", dev, nil, nil)
	call(t, "PUT", base+"/apps/example-partner/", ops, map[string]string{"status": "published"}, nil)
	call(t, "POST", base+"/users/", "", map[string]string{"email": "admin@customer.example", "password": "correct horse battery"}, nil)
	admin := signIn(t, base, "admin@customer.example")
	call(t, "POST", base+"/organizations/", admin, map[string]string{"name": "Customer"}, nil)
	call(t, "POST", base+"/organizations/", admin, map[string]string{"name": "Later"}, nil)

	// Synchronously: installed at once, with the partner's config vars.
	var inst struct{ UUID, Status, ProvisionMessage, ExternalID string }
	call(t, "POST", base+"/organizations/customer/installations/", admin, map[string]string{"app": "example-partner", "plan": "free"}, &inst)
	if inst.Status != "installed" || inst.ProvisionMessage != "Your Example Partner account for Customer is ready." || inst.ExternalID != "acct_customer" {
		t.Fatalf("installation %+v", inst)
	}
	var vars struct{ Vars map[string]string }
	call(t, "GET", base+"/installations/"+inst.UUID+"/config-vars/", host.Token, nil, &vars)
	accts := partner.Accounts()
	if len(accts) != 1 || len(vars.Vars) != 2 || vars.Vars["EXAMPLE_PARTNER_API_KEY"] != accts[0].Vars["EXAMPLE_PARTNER_API_KEY"] ||
		vars.Vars["EXAMPLE_PARTNER_URL"] != ps.URL+"/pages/"+inst.UUID {
		t.Fatalf("config vars %v, partner %+v", vars.Vars, accts)
	}

	// A plan change it agrees to, one it refuses.
	call(t, "PUT", base+"/installations/"+inst.UUID+"/", admin, map[string]string{"plan": "pro"}, nil)
	call(t, "GET", base+"/installations/"+inst.UUID+"/config-vars/", host.Token, nil, &vars)
	if vars.Vars["EXAMPLE_PARTNER_PLAN"] != "pro" || partner.Accounts()[0].Plan != "pro" {
		t.Errorf("after the plan change: %v", vars.Vars)
	}
	status, body := try(t, "PUT", base+"/installations/"+inst.UUID+"/", admin, map[string]string{"plan": "enterprise"})
	if status != 409 || !strings.Contains(string(body), "plan_change_refused") || !strings.Contains(string(body), "sales@partner.example") {
		t.Errorf("enterprise: %d %s", status, body)
	}

	// Uninstalling deprovisions.
	call(t, "DELETE", base+"/installations/"+inst.UUID+"/", admin, nil, nil)
	deadline := time.Now().Add(15 * time.Second)
	for len(partner.Deprovisioned()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("never deprovisioned")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if d := partner.Deprovisioned(); d[0] != inst.UUID || len(partner.Accounts()) != 0 {
		t.Errorf("deprovisioned %v, accounts %+v", d, partner.Accounts())
	}

	// Asynchronously: 202, then the partner finishes with the SDK.
	partner.cfg.ProvisionAsync = true
	call(t, "POST", base+"/organizations/later/installations/", admin, map[string]string{"app": "example-partner", "plan": "free"}, &inst)
	if inst.Status != "provisioning" {
		t.Fatalf("async installation %+v", inst)
	}
	deadline = time.Now().Add(15 * time.Second)
	for inst.Status != "installed" {
		if time.Now().After(deadline) {
			t.Fatalf("never finished: %+v", inst)
		}
		time.Sleep(50 * time.Millisecond)
		call(t, "GET", base+"/installations/"+inst.UUID+"/", admin, nil, &inst)
	}
	call(t, "GET", base+"/installations/"+inst.UUID+"/config-vars/", host.Token, nil, &vars)
	if vars.Vars["EXAMPLE_PARTNER_URL"] != ps.URL+"/pages/"+inst.UUID {
		t.Errorf("async config vars %v", vars.Vars)
	}
}
