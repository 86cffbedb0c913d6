package main

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	plugboard "github.com/plugboard/plugboard/sdk/plugboard"
)

// The partner calls the host's API with a token it mints for its
// installation; the host (here a stand-in built as examples/host is, with
// the SDK's RequireScopes) accepts it by introspection and answers for the
// installation's organization.
func TestPartnerCallsTheHost(t *testing.T) {
	p, base, ops := platform(t)
	call(t, "POST", base+"/event-types/", ops, map[string]any{"name": "issue.created", "scope": "issue:read", "description": "An issue was opened."}, nil)
	var service struct{ Token string }
	call(t, "POST", base+"/service-tokens/", ops, map[string]string{"name": "Host"}, &service)

	// The host: issues of whichever organization the token is for.
	host := httptest.NewServer(plugboard.RequireScopes(plugboard.NewIntrospector(p.URL, service.Token), "issue:read")(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			in, _ := plugboard.IntrospectionFrom(r.Context())
			json.NewEncoder(w).Encode(map[string]any{"organization": in.Organization.Slug, "issues": []map[string]string{{"id": "1"}}})
		})))
	defer host.Close()

	// An internal app is installed in its own organization at once.
	call(t, "POST", base+"/users/", "", map[string]string{"email": "dev@partner.example", "password": "correct horse battery"}, nil)
	dev := signIn(t, base, "dev@partner.example")
	call(t, "POST", base+"/organizations/", dev, map[string]string{"name": "Partner"}, nil)
	var app struct {
		ClientID, ClientSecret, WebhookSecret string
		Installation                          struct{ UUID string }
	}
	call(t, "POST", base+"/organizations/partner/apps/", dev, map[string]any{"name": "Issue Reader", "kind": "internal", "scopes": []string{"issue:read"},
		"webhookUrl": host.URL + "/hooks"}, &app)

	partner := New(Config{PlugboardURL: p.URL, ClientID: app.ClientID, ClientSecret: app.ClientSecret, WebhookSecret: app.WebhookSecret, HostURL: host.URL},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	get := func(installation string) (int, string) {
		w := httptest.NewRecorder()
		partner.ServeHTTP(w, httptest.NewRequest("GET", "/host-issues?installation="+installation, nil))
		return w.Code, w.Body.String()
	}
	if code, _ := get(app.Installation.UUID); code != http.StatusNotFound {
		t.Errorf("an installation the partner does not know: %d", code)
	}
	partner.mu.Lock()
	partner.acct[app.Installation.UUID] = &Account{Installation: app.Installation.UUID, Org: "partner", Verified: true}
	partner.mu.Unlock()
	for range 2 { // the second call reuses the minted token
		code, body := get(app.Installation.UUID)
		var got struct {
			Organization string
			Issues       []map[string]string
		}
		if json.Unmarshal([]byte(body), &got); code != 200 || got.Organization != "partner" || len(got.Issues) != 1 {
			t.Fatalf("host issues: %d %s", code, body)
		}
	}
	var minted int64
	p.App.DB.Raw("SELECT count(*) FROM audit_logs WHERE action = 'installation.access_token'").Scan(&minted)
	if minted != 1 {
		t.Errorf("%d tokens minted for two calls, want 1", minted)
	}
}
