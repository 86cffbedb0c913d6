package web_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/plugboard/plugboard/sdk/plugboard"
)

// tenancyActors are the callers of the cross-tenant matrix, in the order
// each row runs them: every refusal first, the callers who succeed last.
var tenancyActors = []string{"anon", "bAdmin", "bInst", "bApp", "host", "op", "aMember", "aInst", "aApp", "aAdmin"}

// TestCrossTenantMatrix calls every /api/0 route with an ID or slug in its
// path, naming organization A's resources, as each actor, and checks the
// status each gets: B's admin, installation and app never see A's things
// (404, or 403 where the refusal comes before any lookup), anonymous
// callers get 401, and the callers A allows succeed. Rows run in order, so
// the ones that end something (the installation, the client secret) come
// last. A route with a path parameter and no row fails the test.
func TestCrossTenantMatrix(t *testing.T) {
	w := newTenants(t)
	signUp(t, w.p, "extra@alpha.example")
	signUp(t, w.p, "spare@alpha.example")
	spareMember := decode[plugboard.Member](t, w.aAdmin.do("POST", "/api/0/organizations/alpha/members/", map[string]string{"email": "spare@alpha.example"}), 201).ID
	draft := decode[plugboard.App](t, w.aAdmin.do("POST", "/api/0/organizations/alpha/apps/", publicApp("Alpha Draft")), 201)
	spareApp := decode[plugboard.App](t, w.aAdmin.do("POST", "/api/0/organizations/alpha/apps/", publicApp("Alpha Spare")), 201)
	creds := map[string]walkCred{
		"anon":    {"anon", nil},
		"aAdmin":  {"aAdmin", bearerAuth(w.userTokenA)},
		"aMember": {"aMember", bearerAuth(w.aMember.token)},
		"bAdmin":  {"bAdmin", bearerAuth(w.bAdmin.token)},
		"aInst":   {"aInst", bearerAuth(w.instTokenA)},
		"bInst":   {"bInst", bearerAuth(w.appB.Token)},
		"aApp":    {"aApp", func(r *http.Request) { r.SetBasicAuth(w.clientIDA, w.secretA) }},
		"bApp":    {"bApp", func(r *http.Request) { r.SetBasicAuth(w.appB.ClientID, w.appB.ClientSecret) }},
		"host":    {"host", bearerAuth(w.hostToken)},
		"op":      {"op", bearerAuth(w.op.token)},
	}
	// Host endpoints belong to the platform, not to an organization: one
	// for installs, given a delivery by one more internal app of A's, and
	// one deleted already.
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	t.Cleanup(sink.Close)
	hostEP := decode[hostEndpoint](t, w.op.do("POST", "/api/0/host-endpoints/", map[string]any{"url": sink.URL + "/platform", "eventTypes": []string{"installation.created"}}), 201)
	gone := decode[hostEndpoint](t, w.op.do("POST", "/api/0/host-endpoints/", map[string]any{"url": sink.URL + "/gone", "eventTypes": []string{"app.published"}}), 201)
	w.op.do("DELETE", "/api/0/host-endpoints/"+gone.ID+"/", nil).ok(t, 204, nil)
	w.aAdmin.do("POST", "/api/0/organizations/alpha/apps/", map[string]any{"name": "Alpha Helper", "kind": "internal", "scopes": []string{"org:read"}}).ok(t, 201, nil)
	hostDels := decode[[]plugboard.Delivery](t, w.op.do("GET", "/api/0/host-endpoints/"+hostEP.ID+"/deliveries/", nil), 200)
	if len(hostDels) != 1 {
		t.Fatalf("host deliveries %+v", hostDels)
	}
	hep, hdel := "/api/0/host-endpoints/"+hostEP.ID+"/", hostDels[0].ID
	// A published public app of A's with a draft revision (asking for
	// member:read), which the rows submit and approve.
	listed := decode[plugboard.App](t, w.aAdmin.do("POST", "/api/0/organizations/alpha/apps/", publicApp("Alpha Listed")), 201)
	w.aAdmin.do("POST", "/api/0/apps/"+listed.ID+"/plans/", map[string]any{"name": "Free"}).ok(t, 201, nil)
	w.aAdmin.do("POST", "/api/0/apps/"+listed.ID+"/publish-requests/", nil).ok(t, 201, nil)
	w.op.do("PUT", "/api/0/apps/"+listed.ID+"/", map[string]any{"status": "published"}).ok(t, 200, nil)
	w.aAdmin.do("PUT", "/api/0/apps/"+listed.ID+"/", map[string]any{"scopes": []string{"org:read"}}).ok(t, 200, nil)
	revs := "/api/0/apps/" + listed.ID + "/revisions/"
	org, app, inst, del := "/api/0/organizations/"+w.orgA, "/api/0/apps/"+w.appA.ID, "/api/0/installations/"+w.instA, w.deliveryA
	rows := []struct {
		route string // METHOD and path as routed
		path  string
		body  any
		want  string // actor=status for each actor
	}{
		{"GET /api/0/organizations/:org/", org + "/", nil, "anon=401 bAdmin=404 bInst=404 bApp=403 host=403 op=404 aMember=200 aInst=200 aApp=403 aAdmin=200"},
		{"PUT /api/0/organizations/:org/", org + "/", map[string]any{"name": "Alpha Inc"}, "anon=401 bAdmin=404 bInst=404 bApp=403 host=403 op=404 aMember=403 aInst=403 aApp=403 aAdmin=200"},
		{"GET /api/0/organizations/:org/members/", org + "/members/", nil, "anon=401 bAdmin=404 bInst=404 bApp=403 host=403 op=404 aMember=200 aInst=200 aApp=403 aAdmin=200"},
		{"POST /api/0/organizations/:org/members/", org + "/members/", map[string]any{"email": "extra@alpha.example"}, "anon=401 bAdmin=404 bInst=404 bApp=403 host=403 op=404 aMember=403 aInst=403 aApp=403 aAdmin=201"},
		{"PUT /api/0/organizations/:org/members/:member_id/", org + "/members/" + w.memberA + "/", map[string]any{"role": "member"}, "anon=401 bAdmin=404 bInst=404 bApp=403 host=403 op=404 aMember=403 aInst=403 aApp=403 aAdmin=200"},
		{"DELETE /api/0/organizations/:org/members/:member_id/", org + "/members/" + spareMember + "/", nil, "anon=401 bAdmin=404 bInst=404 bApp=403 host=403 op=404 aMember=403 aInst=403 aApp=403 aAdmin=204"},
		{"GET /api/0/organizations/:org/apps/", org + "/apps/", nil, "anon=401 bAdmin=404 bInst=403 bApp=403 host=403 op=404 aMember=200 aInst=403 aApp=403 aAdmin=200"},
		{"POST /api/0/organizations/:org/apps/", org + "/apps/", map[string]any{"name": "Alpha Extra"}, "anon=401 bAdmin=404 bInst=403 bApp=403 host=403 op=404 aMember=403 aInst=403 aApp=403 aAdmin=201"},
		{"GET /api/0/organizations/:org/audit-logs/", org + "/audit-logs/", nil, "anon=401 bAdmin=404 bInst=403 bApp=403 host=403 op=404 aMember=403 aInst=403 aApp=403 aAdmin=200"},
		{"GET /api/0/organizations/:org/events/", org + "/events/", nil, "anon=401 bAdmin=404 bInst=404 bApp=403 host=200 op=404 aMember=403 aInst=403 aApp=403 aAdmin=200"},
		{"POST /api/0/organizations/:org/events/", org + "/events/", map[string]any{"type": "issue.created", "data": map[string]any{"title": "Fire"}}, "anon=401 bAdmin=404 bInst=404 bApp=403 host=201 op=404 aMember=403 aInst=403 aApp=403 aAdmin=201"},
		{"GET /api/0/organizations/:org/installations/", org + "/installations/", nil, "anon=401 bAdmin=404 bInst=403 bApp=403 host=403 op=404 aMember=200 aInst=403 aApp=403 aAdmin=200"},
		{"POST /api/0/organizations/:org/installations/", org + "/installations/", map[string]any{"app": w.appB.ID}, "anon=401 bAdmin=404 bInst=403 bApp=403 host=403 op=404 aMember=403 aInst=403 aApp=403 aAdmin=400"},

		{"GET /api/0/apps/:app_slug/", app + "/", nil, "anon=404 bAdmin=404 bInst=404 bApp=404 host=404 op=200 aMember=200 aInst=404 aApp=404 aAdmin=200"},
		{"PUT /api/0/apps/:app_slug/", app + "/", map[string]any{"author": "Alpha"}, "anon=401 bAdmin=404 bInst=403 bApp=403 host=403 op=403 aMember=403 aInst=403 aApp=403 aAdmin=200"},
		{"DELETE /api/0/apps/:app_slug/", "/api/0/apps/" + spareApp.ID + "/", nil, "anon=401 bAdmin=404 bInst=403 bApp=403 host=403 op=403 aMember=403 aInst=403 aApp=403 aAdmin=204"},
		{"POST /api/0/apps/:app_slug/publish-requests/", "/api/0/apps/" + draft.ID + "/publish-requests/", nil, "anon=401 bAdmin=404 bInst=403 bApp=403 host=403 op=403 aMember=403 aInst=403 aApp=403 aAdmin=400"},
		{"POST /api/0/apps/:app_slug/rotate-webhook-secret/", app + "/rotate-webhook-secret/", nil, "anon=401 bAdmin=404 bInst=403 bApp=403 host=403 op=403 aMember=403 aInst=403 aApp=403 aAdmin=200"},
		{"GET /api/0/apps/:app_slug/plans/", app + "/plans/", nil, "anon=404 bAdmin=404 bInst=404 bApp=404 host=404 op=200 aMember=200 aInst=404 aApp=404 aAdmin=200"},
		{"POST /api/0/apps/:app_slug/plans/", app + "/plans/", map[string]any{"name": "Team"}, "anon=401 bAdmin=404 bInst=403 bApp=403 host=403 op=403 aMember=403 aInst=403 aApp=403 aAdmin=201"},
		{"PUT /api/0/apps/:app_slug/plans/:plan_slug/", app + "/plans/" + w.planA + "/", map[string]any{"price": "6"}, "anon=401 bAdmin=404 bInst=403 bApp=403 host=403 op=403 aMember=403 aInst=403 aApp=403 aAdmin=200"},
		{"DELETE /api/0/apps/:app_slug/plans/:plan_slug/", app + "/plans/spare/", nil, "anon=401 bAdmin=404 bInst=403 bApp=403 host=403 op=403 aMember=403 aInst=403 aApp=403 aAdmin=204"},
		{"GET /api/0/apps/:app_slug/installations/", app + "/installations/", nil, "anon=401 bAdmin=404 bInst=403 bApp=404 host=403 op=404 aMember=200 aInst=403 aApp=200 aAdmin=200"},
		{"GET /api/0/apps/:app_slug/deliveries/", app + "/deliveries/", nil, "anon=401 bAdmin=404 bInst=403 bApp=404 host=403 op=404 aMember=200 aInst=403 aApp=200 aAdmin=200"},
		{"GET /api/0/apps/:app_slug/deliveries/:delivery_id/", app + "/deliveries/" + del + "/", nil, "anon=401 bAdmin=404 bInst=403 bApp=404 host=403 op=404 aMember=200 aInst=403 aApp=200 aAdmin=200"},
		{"POST /api/0/apps/:app_slug/redeliveries/", app + "/redeliveries/", map[string]any{"deliveries": []string{del}}, "anon=401 bAdmin=404 bInst=403 bApp=404 host=403 op=404 aMember=403 aInst=403 aApp=202 aAdmin=202"},
		{"POST /api/0/apps/:app_slug/test-events/", app + "/test-events/", nil, "anon=401 bAdmin=404 bInst=403 bApp=404 host=403 op=404 aMember=403 aInst=403 aApp=201 aAdmin=201"},
		{"GET /api/0/apps/:app_slug/stats/", app + "/stats/", nil, "anon=401 bAdmin=404 bInst=403 bApp=404 host=403 op=404 aMember=200 aInst=403 aApp=200 aAdmin=200"},
		{"GET /api/0/apps/:app_slug/revenue/", app + "/revenue/", nil, "anon=401 bAdmin=404 bInst=403 bApp=403 host=403 op=200 aMember=200 aInst=403 aApp=403 aAdmin=200"},
		{"GET /api/0/apps/:app_slug/payouts/", app + "/payouts/", nil, "anon=401 bAdmin=404 bInst=403 bApp=403 host=403 op=200 aMember=200 aInst=403 aApp=403 aAdmin=200"},
		{"GET /api/0/apps/:app_slug/commission/", app + "/commission/", nil, "anon=401 bAdmin=404 bInst=403 bApp=403 host=403 op=200 aMember=200 aInst=403 aApp=403 aAdmin=200"},
		{"PUT /api/0/apps/:app_slug/commission/", app + "/commission/", map[string]any{"commission": "12.5"}, "anon=401 bAdmin=404 bInst=403 bApp=403 host=403 op=200 aMember=403 aInst=403 aApp=403 aAdmin=403"},
		{"GET /api/0/apps/:app_slug/delivery-stream/", app + "/delivery-stream/", nil, "anon=401 bAdmin=404 bInst=403 bApp=404 host=403 op=404 aMember=200 aInst=403 aApp=200 aAdmin=200"},
		{"GET /api/0/apps/:app_slug/reconciliation-runs/", app + "/reconciliation-runs/", nil, "anon=401 bAdmin=404 bInst=403 bApp=404 host=403 op=404 aMember=200 aInst=403 aApp=200 aAdmin=200"},
		{"GET /api/0/apps/:app_slug/revisions/", revs, nil, "anon=401 bAdmin=404 bInst=403 bApp=403 host=403 op=200 aMember=200 aInst=403 aApp=403 aAdmin=200"},
		{"GET /api/0/apps/:app_slug/revisions/:revision_id/", revs + "1/", nil, "anon=401 bAdmin=404 bInst=403 bApp=403 host=403 op=200 aMember=200 aInst=403 aApp=403 aAdmin=200"},
		{"POST /api/0/apps/:app_slug/revisions/:revision_id/publish-requests/", revs + "1/publish-requests/", nil, "anon=401 bAdmin=404 bInst=403 bApp=403 host=403 op=403 aMember=403 aInst=403 aApp=403 aAdmin=201"},
		{"PUT /api/0/apps/:app_slug/revisions/:revision_id/", revs + "1/", map[string]any{"status": "approved"}, "anon=401 bAdmin=404 bInst=403 bApp=403 host=403 op=200 aMember=403 aInst=403 aApp=403 aAdmin=403"},

		{"POST /api/0/installations/:uuid/usage-records/", inst + "/usage-records/", map[string]any{"quantity": 1, "idempotencyKey": "k1"}, "anon=401 bAdmin=404 bInst=404 bApp=404 host=404 op=404 aMember=403 aInst=409 aApp=409 aAdmin=403"},
		{"GET /api/0/installations/:uuid/usage-records/", inst + "/usage-records/", nil, "anon=401 bAdmin=404 bInst=404 bApp=404 host=200 op=200 aMember=403 aInst=200 aApp=200 aAdmin=200"},
		{"GET /api/0/organizations/:org/invoices/", org + "/invoices/", nil, "anon=401 bAdmin=404 bInst=403 bApp=403 host=403 op=404 aMember=403 aInst=403 aApp=403 aAdmin=200"},
		{"GET /api/0/organizations/:org/invoices/:invoice_id/", org + "/invoices/" + w.invoiceA + "/", nil, "anon=401 bAdmin=404 bInst=403 bApp=403 host=403 op=404 aMember=403 aInst=403 aApp=403 aAdmin=200"},
		// B's admin naming A's invoice under B: not found either.
		{"GET /api/0/organizations/:org/invoices/:invoice_id/", "/api/0/organizations/" + w.orgB + "/invoices/" + w.invoiceA + "/", nil, "anon=401 bAdmin=404 bInst=403 bApp=403 host=403 op=404 aMember=404 aInst=403 aApp=403 aAdmin=404"},
		{"GET /api/0/organizations/:org/upcoming-invoice/", org + "/upcoming-invoice/", nil, "anon=401 bAdmin=404 bInst=403 bApp=403 host=403 op=404 aMember=403 aInst=403 aApp=403 aAdmin=200"},
		{"GET /api/0/invoices/", "/api/0/invoices/", nil, "anon=401 bAdmin=403 bInst=403 bApp=403 host=200 op=200 aMember=403 aInst=403 aApp=403 aAdmin=403"},
		{"PUT /api/0/invoices/:invoice_id/", "/api/0/invoices/" + w.invoiceA + "/", map[string]any{"status": "paid"}, "anon=401 bAdmin=403 bInst=403 bApp=403 host=200 op=200 aMember=403 aInst=403 aApp=403 aAdmin=403"},
		{"GET /api/0/installations/:uuid/", inst + "/", nil, "anon=401 bAdmin=404 bInst=404 bApp=404 host=404 op=404 aMember=200 aInst=200 aApp=200 aAdmin=200"},
		{"PUT /api/0/installations/:uuid/", inst + "/", map[string]any{"externalId": "acct-1"}, "anon=401 bAdmin=404 bInst=404 bApp=404 host=404 op=404 aMember=403 aInst=200 aApp=200 aAdmin=403"},
		{"GET /api/0/installations/:uuid/config-vars/", inst + "/config-vars/", nil, "anon=401 bAdmin=404 bInst=404 bApp=404 host=200 op=404 aMember=403 aInst=200 aApp=403 aAdmin=200"},
		{"PUT /api/0/installations/:uuid/config-vars/", inst + "/config-vars/", map[string]any{"vars": map[string]any{}}, "anon=401 bAdmin=404 bInst=404 bApp=404 host=403 op=404 aMember=403 aInst=200 aApp=403 aAdmin=403"},
		{"POST /api/0/installations/:uuid/permission-acceptances/", inst + "/permission-acceptances/", nil, "anon=401 bAdmin=404 bInst=404 bApp=404 host=404 op=404 aMember=403 aInst=403 aApp=403 aAdmin=409"},
		{"POST /api/0/installations/:uuid/grants/", inst + "/grants/", nil, "anon=401 bAdmin=404 bInst=404 bApp=404 host=404 op=404 aMember=403 aInst=201 aApp=201 aAdmin=403"},
		{"POST /api/0/installations/:uuid/access-tokens/", inst + "/access-tokens/", nil, "anon=401 bAdmin=404 bInst=404 bApp=404 host=404 op=404 aMember=403 aInst=403 aApp=201 aAdmin=403"},
		// Suspension: the installation's token suspends it (201), the app
		// again changes nothing (200), the admin takes it over (200); then
		// the token is refused, the app may not lift the admin's, an
		// operator lifts it, and the admin finds nothing left to lift.
		{"POST /api/0/installations/:uuid/suspensions/", inst + "/suspensions/", map[string]any{"reason": "Audit"}, "anon=401 bAdmin=404 bInst=404 bApp=404 host=404 op=404 aMember=403 aInst=201 aApp=200 aAdmin=200"},
		{"DELETE /api/0/installations/:uuid/suspensions/", inst + "/suspensions/", nil, "anon=401 bAdmin=404 bInst=404 bApp=404 host=404 op=204 aMember=403 aInst=401 aApp=403 aAdmin=204"},
		{"POST /api/0/installations/:uuid/authorizations/", inst + "/authorizations/",
			map[string]any{"grantType": "authorization_code", "code": "pbg_nope", "clientId": w.clientIDA, "clientSecret": w.secretA}, "anon=400 bAdmin=400 bInst=400 bApp=400 host=400 op=400 aMember=400 aInst=400 aApp=400 aAdmin=400"},

		{"DELETE /api/0/api-tokens/:token_id/", "/api/0/api-tokens/" + w.apiTokenA + "/", nil, "anon=401 bAdmin=404 bInst=403 bApp=403 host=403 op=404 aMember=404 aInst=403 aApp=403 aAdmin=204"},
		{"DELETE /api/0/service-tokens/:token_id/", "/api/0/service-tokens/" + w.serviceTokenID + "/", nil, "anon=401 bAdmin=403 bInst=403 bApp=403 host=403 op=204 aMember=403 aInst=403 aApp=403 aAdmin=403"},

		// Host endpoints: operators and the host's service token; nobody of
		// any organization, whatever their role. DELETE succeeds for one
		// caller only, so its row names the deleted endpoint (the success
		// is in TestEveryRouteAllowsAndDenies).
		{"GET /api/0/host-endpoints/:endpoint_id/", hep, nil, "anon=401 bAdmin=403 bInst=403 bApp=403 host=200 op=200 aMember=403 aInst=403 aApp=403 aAdmin=403"},
		{"PUT /api/0/host-endpoints/:endpoint_id/", hep, map[string]any{"description": "Billing"}, "anon=401 bAdmin=403 bInst=403 bApp=403 host=200 op=200 aMember=403 aInst=403 aApp=403 aAdmin=403"},
		{"POST /api/0/host-endpoints/:endpoint_id/rotate-secret/", hep + "rotate-secret/", nil, "anon=401 bAdmin=403 bInst=403 bApp=403 host=200 op=200 aMember=403 aInst=403 aApp=403 aAdmin=403"},
		{"GET /api/0/host-endpoints/:endpoint_id/deliveries/", hep + "deliveries/", nil, "anon=401 bAdmin=403 bInst=403 bApp=403 host=200 op=200 aMember=403 aInst=403 aApp=403 aAdmin=403"},
		{"GET /api/0/host-endpoints/:endpoint_id/deliveries/:delivery_id/", hep + "deliveries/" + hdel + "/", nil, "anon=401 bAdmin=403 bInst=403 bApp=403 host=200 op=200 aMember=403 aInst=403 aApp=403 aAdmin=403"},
		{"POST /api/0/host-endpoints/:endpoint_id/redeliveries/", hep + "redeliveries/", map[string]any{"deliveries": []string{hdel}}, "anon=401 bAdmin=403 bInst=403 bApp=403 host=202 op=202 aMember=403 aInst=403 aApp=403 aAdmin=403"},
		{"GET /api/0/host-endpoints/:endpoint_id/stats/", hep + "stats/", nil, "anon=401 bAdmin=403 bInst=403 bApp=403 host=200 op=200 aMember=403 aInst=403 aApp=403 aAdmin=403"},
		{"DELETE /api/0/host-endpoints/:endpoint_id/", "/api/0/host-endpoints/" + gone.ID + "/", nil, "anon=401 bAdmin=403 bInst=403 bApp=403 host=404 op=404 aMember=403 aInst=403 aApp=403 aAdmin=403"},

		// These end what the rows above use: the app's client secret, the
		// installation (and its token), the organization.
		{"POST /api/0/apps/:app_slug/rotate-secret/", app + "/rotate-secret/", nil, "anon=401 bAdmin=404 bInst=403 bApp=403 host=403 op=403 aMember=403 aInst=403 aApp=403 aAdmin=200"},
		{"DELETE /api/0/installations/:uuid/", inst + "/", nil, "anon=401 bAdmin=404 bInst=404 bApp=404 host=404 op=404 aMember=403 aInst=401 aApp=401 aAdmin=204"},
		{"DELETE /api/0/organizations/:org/", org + "/", nil, "anon=401 bAdmin=404 bInst=403 bApp=403 host=403 op=404 aMember=403 aInst=401 aApp=401 aAdmin=204"},
	}
	hc := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	covered := map[string]bool{}
	for _, row := range rows {
		covered[row.route] = true
		method := strings.Fields(row.route)[0]
		want := map[string]int{}
		for _, kv := range strings.Fields(row.want) {
			k, v, _ := strings.Cut(kv, "=")
			n, err := strconv.Atoi(v)
			if _, ok := creds[k]; !ok || err != nil {
				t.Fatalf("%s: bad expectation %q", row.route, kv)
			}
			want[k] = n
		}
		in := walkInput{path: row.path, contentType: "application/json"}
		if row.body != nil {
			in.body, _ = json.Marshal(row.body)
		}
		got := map[string]int{}
		var seen []string
		// Refusals first: a success may change what the next caller finds.
		order := append([]string(nil), tenancyActors...)
		sort.SliceStable(order, func(i, j int) bool { return want[order[i]]/100 != 2 && want[order[j]]/100 == 2 })
		for _, a := range order {
			res := walkSend(t, hc, w.p.URL, method, in, creds[a])
			got[a] = res.status
			if res.status >= 500 || res.status < 0 {
				t.Errorf("%s as %s: %d %v %.200s", row.route, a, res.status, res.err, res.body)
			}
		}
		for _, a := range tenancyActors {
			seen = append(seen, fmt.Sprintf("%s=%d", a, got[a]))
		}
		if strings.Join(seen, " ") != row.want {
			t.Errorf("%s:\n\twant %s\n\tgot  %s", row.route, row.want, strings.Join(seen, " "))
		}
		// Whatever the table says, B never reaches A's things.
		for _, a := range []string{"bAdmin", "bInst", "bApp"} {
			if got[a]/100 == 2 && row.route != "POST /api/0/installations/:uuid/authorizations/" {
				t.Errorf("%s: %s, of organization B, got %d on organization A's resource", row.route, a, got[a])
			}
		}
	}
	for _, r := range w.p.App.Web.Echo().Routes() {
		if !strings.HasPrefix(r.Path, "/api/0/") || strings.HasPrefix(r.Method, "echo_") || !strings.Contains(r.Path, "/:") {
			continue
		}
		if key := r.Method + " " + r.Path; !covered[key] {
			t.Errorf("route %s has a path parameter but no row in the cross-tenant matrix", key)
		}
	}
}
