package web_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/plugboard/plugboard/cmd/platform/apptest"
	"github.com/plugboard/plugboard/sdk/plugboard"
)

// tenants is a platform with two organizations, each with an admin, A with
// a plain member too, and each owning an internal app installed in itself
// (so each has an installation token and a delivery), A's app with a plan;
// and an operator and the host's service token. IDs are the numeric ones,
// which stay when slugs change.
type tenants struct {
	p                  *apptest.Platform
	anon, op, host     *client
	aAdmin, aMember    *client
	bAdmin             *client
	aInst, bInst       *client // the installation tokens of A's and B's apps
	aApp, bApp         *client // the apps themselves, by client credentials (Basic)
	orgA, orgB         string  // ids
	appA, appB         plugboard.App
	instA, instB       string // installation uuids
	planA              string // id
	deliveryA          string
	deliveryB          string
	memberA            string // aMember's membership id in A
	apiTokenA          string // an API token of aAdmin's
	serviceTokenID     string // another service token
	userTokenA         string // aAdmin's JWT
	instTokenA         string
	hostToken          string
	clientIDA, secretA string
	invoiceA           string // A's invoice for the month before last
}

func newTenants(t *testing.T, opts ...apptest.Option) *tenants {
	t.Helper()
	p := apptest.Start(t, opts...)
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	t.Cleanup(sink.Close)
	w := &tenants{p: p, anon: newClient(t, p, "")}
	w.op = operator(t, p, "ops@plugboard.example")
	w.op.do("POST", "/api/0/event-types/", map[string]any{"name": "issue.created", "scope": "issue:read", "description": "An issue was opened.",
		"schema": map[string]any{"type": "object", "properties": map[string]any{"title": map[string]any{"type": "string"}}}}).ok(t, 201, nil)
	hostTok := decode[plugboard.ServiceToken](t, w.op.do("POST", "/api/0/service-tokens/", map[string]any{"name": "Host"}), 201)
	w.hostToken = hostTok.Token
	w.host = newClient(t, p, hostTok.Token)
	w.serviceTokenID = decode[plugboard.ServiceToken](t, w.op.do("POST", "/api/0/service-tokens/", map[string]any{"name": "Spare"}), 201).ID

	w.aAdmin = signUp(t, p, "admin@alpha.example")
	w.userTokenA = w.aAdmin.token
	w.aMember = signUp(t, p, "member@alpha.example")
	w.bAdmin = signUp(t, p, "admin@beta.example")
	w.orgA = decode[map[string]any](t, w.aAdmin.do("POST", "/api/0/organizations/", map[string]string{"name": "Alpha"}), 201)["id"].(string)
	w.orgB = decode[map[string]any](t, w.bAdmin.do("POST", "/api/0/organizations/", map[string]string{"name": "Beta"}), 201)["id"].(string)
	w.memberA = decode[plugboard.Member](t, w.aAdmin.do("POST", "/api/0/organizations/alpha/members/", map[string]string{"email": "member@alpha.example"}), 201).ID
	w.apiTokenA = decode[plugboard.APIToken](t, w.aAdmin.do("POST", "/api/0/api-tokens/", map[string]any{"name": "spare"}), 201).ID

	internal := func(c *client, org, name string) plugboard.App {
		return decode[plugboard.App](t, c.do("POST", "/api/0/organizations/"+org+"/apps/", map[string]any{
			"name": name, "kind": "internal", "scopes": []string{"org:read", "member:read", "issue:read"},
			"events": []string{"installation.created", "issue.created"}, "webhookUrl": sink.URL + "/hooks"}), 201)
	}
	w.appA = internal(w.aAdmin, "alpha", "Alpha Bot")
	w.appB = internal(w.bAdmin, "beta", "Beta Bot")
	w.instA, w.instB = w.appA.Installation.UUID, w.appB.Installation.UUID
	w.instTokenA = w.appA.Token
	w.aInst, w.bInst = newClient(t, p, w.appA.Token), newClient(t, p, w.appB.Token)
	w.clientIDA, w.secretA = w.appA.ClientID, w.appA.ClientSecret
	w.aApp, w.bApp = newClient(t, p, ""), newClient(t, p, "")
	w.aApp.http.Transport = basicAuth{w.appA.ClientID, w.appA.ClientSecret}
	w.bApp.http.Transport = basicAuth{w.appB.ClientID, w.appB.ClientSecret}
	w.planA = decode[plugboard.Plan](t, w.aAdmin.do("POST", "/api/0/apps/alpha-bot/plans/", map[string]any{"name": "Pro", "price": "5"}), 201).ID
	w.aAdmin.do("POST", "/api/0/apps/alpha-bot/plans/", map[string]any{"name": "Spare"}).ok(t, 201, nil)
	w.deliveryA = firstDelivery(t, w.aAdmin, "alpha-bot")
	w.deliveryB = firstDelivery(t, w.bAdmin, "beta-bot")
	// A real invoice: A has had a public app of its own installed on a
	// flat plan since the month before last, which is closed.
	w.aAdmin.do("POST", "/api/0/organizations/alpha/apps/", publicApp("Alpha Paid")).ok(t, 201, nil)
	w.aAdmin.do("POST", "/api/0/apps/alpha-paid/plans/", map[string]any{"name": "Team", "price": "12.00", "currency": "USD"}).ok(t, 201, nil)
	w.aAdmin.do("POST", "/api/0/apps/alpha-paid/publish-requests/", nil).ok(t, 201, nil)
	w.op.do("PUT", "/api/0/apps/alpha-paid/", map[string]any{"status": "published"}).ok(t, 200, nil)
	paid := decode[plugboard.Installation](t, w.aAdmin.do("POST", "/api/0/organizations/alpha/installations/", map[string]any{"app": "alpha-paid", "plan": "team"}), 201)
	period := billedMonth()
	backdate(t, p, period, paid.UUID)
	invoices := closeMonth(t, p, period)[w.orgA]
	if len(invoices) != 1 {
		t.Fatalf("A's invoices for %s: %v", period.Format("2006-01"), invoices)
	}
	w.invoiceA = invoices[0]
	return w
}

func firstDelivery(t *testing.T, c *client, app string) string {
	t.Helper()
	ds := decode[[]plugboard.Delivery](t, c.do("GET", "/api/0/apps/"+app+"/deliveries/", nil), 200)
	if len(ds) == 0 {
		t.Fatalf("%s has no delivery", app)
	}
	return ds[0].ID
}
