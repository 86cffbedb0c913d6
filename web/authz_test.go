package web_test

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/plugboard/plugboard/cmd/platform/apptest"
	"github.com/plugboard/plugboard/sdk/plugboard"
)

// TestEveryRouteAllowsAndDenies drives each /api/0 route with a caller who
// may use it and one who may not, and fails when a route has no case.
func TestEveryRouteAllowsAndDenies(t *testing.T) {
	p := apptest.Start(t)
	owner := signUp(t, p, "owner@acme.example")
	member := signUp(t, p, "member@acme.example")
	outsider := signUp(t, p, "outsider@example.com")
	spare := signUp(t, p, "spare@acme.example")
	anon := newClient(t, p, "")
	signer := newClient(t, p, "") // its cookie jar receives a session

	owner.do("POST", "/api/0/organizations/", map[string]string{"name": "Acme"}).ok(t, 201, nil)
	owner.do("POST", "/api/0/organizations/", map[string]string{"name": "Doomed"}).ok(t, 201, nil)
	owner.do("POST", "/api/0/organizations/acme/members/", map[string]string{"email": "member@acme.example"}).ok(t, 201, nil)
	spareMember := decode[plugboard.Member](t, owner.do("POST", "/api/0/organizations/acme/members/", map[string]string{"email": "spare@acme.example"}), 201)
	owner.do("POST", "/api/0/organizations/acme/apps/", publicApp("Acme App")).ok(t, 201, nil)
	owner.do("POST", "/api/0/organizations/acme/apps/", publicApp("Doomed App")).ok(t, 201, nil)
	owner.do("POST", "/api/0/apps/acme-app/plans/", map[string]any{"name": "Pro", "price": "5"}).ok(t, 201, nil)
	owner.do("POST", "/api/0/apps/acme-app/plans/", map[string]any{"name": "Old"}).ok(t, 201, nil)
	tok := decode[plugboard.APIToken](t, spare.do("POST", "/api/0/api-tokens/", map[string]any{"name": "x"}), 201)
	mid := spareMember.ID

	// Operators keep the event catalogue and the host's service tokens.
	op := operator(t, p, "ops@plugboard.example")
	op.do("POST", "/api/0/event-types/", map[string]any{"name": "issue.created", "scope": "issue:read", "description": "An issue was opened.",
		"schema": map[string]any{"type": "object", "properties": map[string]any{"title": map[string]any{"type": "string"}}}}).ok(t, 201, nil)
	hostTok := decode[plugboard.ServiceToken](t, op.do("POST", "/api/0/service-tokens/", map[string]any{"name": "Host"}), 201)
	oldTok := decode[plugboard.ServiceToken](t, op.do("POST", "/api/0/service-tokens/", map[string]any{"name": "Old"}), 201)
	host := newClient(t, p, hostTok.Token)

	// A published app with a webhook endpoint, installed in Globex, whose
	// owner is customer and whose clerk is a mere member.
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	t.Cleanup(sink.Close)
	hooksBody := publicApp("Acme Hooks")
	hooksBody["scopes"] = []string{"org:read", "issue:read"}
	hooksBody["events"] = []string{"installation.created", "issue.created"}
	hooksBody["webhookUrl"] = sink.URL + "/hooks"
	hooks := decode[plugboard.App](t, owner.do("POST", "/api/0/organizations/acme/apps/", hooksBody), 201)
	owner.do("PUT", "/api/0/apps/acme-hooks/", map[string]any{"webhookStatus": "enabled", "webhookRateLimit": 20, "webhookMaxInFlight": 5}).ok(t, 200, nil)
	owner.do("POST", "/api/0/apps/acme-hooks/plans/", map[string]any{"name": "Basic"}).ok(t, 201, nil)
	owner.do("POST", "/api/0/apps/acme-hooks/plans/", map[string]any{"name": "Plus", "price": "3"}).ok(t, 201, nil)
	owner.do("POST", "/api/0/apps/acme-hooks/publish-requests/", nil).ok(t, 201, nil)
	op.do("PUT", "/api/0/apps/acme-hooks/", map[string]any{"status": "published"}).ok(t, 200, nil)
	// A host endpoint for installs: the install below gives it a delivery.
	hostEP := decode[hostEndpoint](t, op.do("POST", "/api/0/host-endpoints/", map[string]any{"url": sink.URL + "/platform", "eventTypes": []string{"installation.created"}}), 201)
	hep := "/api/0/host-endpoints/" + hostEP.ID + "/"
	customer := signUp(t, p, "customer@globex.example")
	clerk := signUp(t, p, "clerk@globex.example")
	customer.do("POST", "/api/0/organizations/", map[string]string{"name": "Globex"}).ok(t, 201, nil)
	customer.do("POST", "/api/0/organizations/globex/members/", map[string]string{"email": "clerk@globex.example"}).ok(t, 201, nil)
	inst := decode[plugboard.Installation](t, customer.do("POST", "/api/0/organizations/globex/installations/", map[string]any{"app": "acme-hooks", "plan": "basic"}), 201)
	iid := inst.UUID
	redirect, err := url.Parse(inst.RedirectURL)
	if err != nil {
		t.Fatal(err)
	}
	exchange := map[string]any{"grantType": "authorization_code", "code": redirect.Query().Get("code"),
		"clientId": hooks.ClientID, "clientSecret": hooks.ClientSecret}
	badExchange := map[string]any{"grantType": "authorization_code", "code": redirect.Query().Get("code"),
		"clientId": hooks.ClientID, "clientSecret": "pbcs_wrong"}
	appCreds := newClient(t, p, "")
	appCreds.http.Transport = basicAuth{hooks.ClientID, hooks.ClientSecret}
	deliveries := decode[[]plugboard.Delivery](t, owner.do("GET", "/api/0/apps/acme-hooks/deliveries/", nil), 200)
	if len(deliveries) == 0 {
		t.Fatal("installing made no delivery")
	}
	did := deliveries[0].ID
	// The installation's own token, from a fresh code: config vars are its.
	grant := decode[plugboard.Grant](t, appCreds.do("POST", "/api/0/installations/"+iid+"/grants/", nil), 201)
	authz := decode[plugboard.Authorization](t, anon.do("POST", "/api/0/installations/"+iid+"/authorizations/", map[string]any{
		"grantType": "authorization_code", "code": grant.Code, "clientId": hooks.ClientID, "clientSecret": hooks.ClientSecret}), 201)
	instTok := newClient(t, p, authz.Token)
	hostDeliveries := decode[[]plugboard.Delivery](t, op.do("GET", hep+"deliveries/", nil), 200)
	if len(hostDeliveries) != 1 {
		t.Fatalf("host deliveries %+v", hostDeliveries)
	}
	hdid := hostDeliveries[0].ID
	newHost := map[string]any{"url": sink.URL + "/other", "eventTypes": []string{"app.published"}}
	// A revision of the published app asking for member:read: the cases
	// submit and approve it, and Globex's admin accepts it.
	owner.do("PUT", "/api/0/apps/acme-hooks/", map[string]any{"scopes": []string{"org:read", "issue:read", "member:read"}}).ok(t, 200, nil)
	rev := "/api/0/apps/acme-hooks/revisions/1/"
	// Billing: a published app with a flat and a per_unit plan; Globex on
	// the flat one since the month before last, which is closed (a real
	// invoice), and on the per_unit one now, for which the app reports.
	meter := decode[plugboard.App](t, owner.do("POST", "/api/0/organizations/acme/apps/", publicApp("Acme Meter")), 201)
	owner.do("POST", "/api/0/apps/acme-meter/plans/", map[string]any{"name": "Flat", "price": "7.00", "currency": "USD"}).ok(t, 201, nil)
	owner.do("POST", "/api/0/apps/acme-meter/plans/", map[string]any{"name": "Metered", "pricingModel": "per_unit", "currency": "USD",
		"unitPrice": "0.10", "unitName": "call"}).ok(t, 201, nil)
	owner.do("POST", "/api/0/apps/acme-meter/publish-requests/", nil).ok(t, 201, nil)
	op.do("PUT", "/api/0/apps/acme-meter/", map[string]any{"status": "published"}).ok(t, 200, nil)
	metered := decode[plugboard.Installation](t, customer.do("POST", "/api/0/organizations/globex/installations/", map[string]any{"app": "acme-meter", "plan": "flat"}), 201).UUID
	period := billedMonth()
	backdate(t, p, period, metered)
	var invoiceID string
	for _, ids := range closeMonth(t, p, period) {
		invoiceID = ids[0]
	}
	customer.do("PUT", "/api/0/installations/"+metered+"/", map[string]any{"plan": "metered"}).ok(t, 200, nil)
	meterCreds := newClient(t, p, "")
	meterCreds.http.Transport = basicAuth{meter.ClientID, meter.ClientSecret}
	usage, usageBody := "/api/0/installations/"+metered+"/usage-records/", map[string]any{"quantity": 3, "idempotencyKey": "run-1"}
	invoices := "/api/0/organizations/globex/invoices/"

	type call struct {
		c      *client
		path   string
		body   any
		status int
	}
	cases := []struct {
		route   string // METHOD template, as registered
		denied  *call  // nil for public routes
		allowed call
	}{
		{"GET /api/0/openapi.json", nil, call{anon, "/api/0/openapi.json", nil, 200}},
		{"GET /api/0/scopes/", nil, call{anon, "/api/0/scopes/", nil, 200}},
		{"GET /api/0/event-types/", &call{anon, "/api/0/event-types/", nil, 401}, call{outsider, "/api/0/event-types/", nil, 200}},
		{"POST /api/0/users/", nil, call{anon, "/api/0/users/", map[string]string{"email": "new@example.com", "password": "long enough"}, 201}},
		{"GET /api/0/users/me/", &call{anon, "/api/0/users/me/", nil, 401}, call{member, "/api/0/users/me/", nil, 200}},
		{"POST /api/0/auth/", &call{signer, "/api/0/auth/", map[string]string{"email": "member@acme.example", "password": "wrong guess!"}, 401},
			call{signer, "/api/0/auth/", map[string]string{"email": "member@acme.example", "password": "correct horse battery"}, 200}},
		{"GET /api/0/api-tokens/", &call{anon, "/api/0/api-tokens/", nil, 401}, call{spare, "/api/0/api-tokens/", nil, 200}},
		{"POST /api/0/api-tokens/", &call{anon, "/api/0/api-tokens/", map[string]any{"name": "y"}, 401}, call{spare, "/api/0/api-tokens/", map[string]any{"name": "y"}, 201}},
		{"DELETE /api/0/api-tokens/:token_id/", &call{outsider, "/api/0/api-tokens/" + tok.ID + "/", nil, 404},
			call{spare, "/api/0/api-tokens/" + tok.ID + "/", nil, 204}},
		{"GET /api/0/organizations/", &call{anon, "/api/0/organizations/", nil, 401}, call{member, "/api/0/organizations/", nil, 200}},
		{"POST /api/0/organizations/", &call{anon, "/api/0/organizations/", map[string]string{"name": "Anon Org"}, 401},
			call{outsider, "/api/0/organizations/", map[string]string{"name": "Outside Org"}, 201}},
		{"GET /api/0/organizations/:org/", &call{outsider, "/api/0/organizations/acme/", nil, 404}, call{member, "/api/0/organizations/acme/", nil, 200}},
		{"PUT /api/0/organizations/:org/", &call{member, "/api/0/organizations/acme/", map[string]string{"name": "Hacked"}, 403},
			call{owner, "/api/0/organizations/acme/", map[string]string{"name": "Acme Inc"}, 200}},
		{"DELETE /api/0/organizations/:org/", &call{outsider, "/api/0/organizations/doomed/", nil, 404}, call{owner, "/api/0/organizations/doomed/", nil, 204}},
		{"GET /api/0/organizations/:org/members/", &call{outsider, "/api/0/organizations/acme/members/", nil, 404}, call{member, "/api/0/organizations/acme/members/", nil, 200}},
		{"POST /api/0/organizations/:org/members/", &call{member, "/api/0/organizations/acme/members/", map[string]string{"email": "outsider@example.com"}, 403},
			call{owner, "/api/0/organizations/acme/members/", map[string]string{"email": "new@example.com"}, 201}},
		{"PUT /api/0/organizations/:org/members/:member_id/", &call{member, "/api/0/organizations/acme/members/" + mid + "/", map[string]string{"role": "admin"}, 403},
			call{owner, "/api/0/organizations/acme/members/" + mid + "/", map[string]string{"role": "admin"}, 200}},
		{"DELETE /api/0/organizations/:org/members/:member_id/", &call{member, "/api/0/organizations/acme/members/" + mid + "/", nil, 403},
			call{owner, "/api/0/organizations/acme/members/" + mid + "/", nil, 204}},
		{"GET /api/0/organizations/:org/apps/", &call{outsider, "/api/0/organizations/acme/apps/", nil, 404}, call{member, "/api/0/organizations/acme/apps/", nil, 200}},
		{"POST /api/0/organizations/:org/apps/", &call{member, "/api/0/organizations/acme/apps/", publicApp("Member App"), 403},
			call{owner, "/api/0/organizations/acme/apps/", publicApp("Owner App"), 201}},
		{"GET /api/0/organizations/:org/audit-logs/", &call{member, "/api/0/organizations/acme/audit-logs/", nil, 403},
			call{owner, "/api/0/organizations/acme/audit-logs/", nil, 200}},
		{"GET /api/0/apps/", nil, call{anon, "/api/0/apps/", nil, 200}},
		{"GET /api/0/apps/:app_slug/", &call{outsider, "/api/0/apps/acme-app/", nil, 404}, call{member, "/api/0/apps/acme-app/", nil, 200}},
		{"PUT /api/0/apps/:app_slug/", &call{member, "/api/0/apps/acme-app/", map[string]any{"name": "Mine"}, 403},
			call{owner, "/api/0/apps/acme-app/", map[string]any{"author": "Acme"}, 200}},
		{"DELETE /api/0/apps/:app_slug/", &call{member, "/api/0/apps/doomed-app/", nil, 403}, call{owner, "/api/0/apps/doomed-app/", nil, 204}},
		{"POST /api/0/apps/:app_slug/rotate-secret/", &call{outsider, "/api/0/apps/acme-app/rotate-secret/", nil, 404},
			call{owner, "/api/0/apps/acme-app/rotate-secret/", nil, 200}},
		{"POST /api/0/apps/:app_slug/rotate-webhook-secret/", &call{member, "/api/0/apps/acme-app/rotate-webhook-secret/", nil, 403},
			call{owner, "/api/0/apps/acme-app/rotate-webhook-secret/", nil, 200}},
		{"GET /api/0/apps/:app_slug/plans/", &call{outsider, "/api/0/apps/acme-app/plans/", nil, 404}, call{member, "/api/0/apps/acme-app/plans/", nil, 200}},
		{"POST /api/0/apps/:app_slug/plans/", &call{member, "/api/0/apps/acme-app/plans/", map[string]any{"name": "Cheap"}, 403},
			call{owner, "/api/0/apps/acme-app/plans/", map[string]any{"name": "Team"}, 201}},
		{"PUT /api/0/apps/:app_slug/plans/:plan_slug/", &call{member, "/api/0/apps/acme-app/plans/pro/", map[string]any{"price": "0"}, 403},
			call{owner, "/api/0/apps/acme-app/plans/pro/", map[string]any{"price": "6"}, 200}},
		{"DELETE /api/0/apps/:app_slug/plans/:plan_slug/", &call{member, "/api/0/apps/acme-app/plans/old/", nil, 403},
			call{owner, "/api/0/apps/acme-app/plans/old/", nil, 204}},

		{"POST /api/0/event-types/", &call{owner, "/api/0/event-types/", map[string]any{"name": "deploy.finished", "scope": "deploy:read"}, 403},
			call{op, "/api/0/event-types/", map[string]any{"name": "deploy.finished", "scope": "deploy:read", "description": "A deploy finished."}, 201}},
		{"GET /api/0/service-tokens/", &call{owner, "/api/0/service-tokens/", nil, 403}, call{op, "/api/0/service-tokens/", nil, 200}},
		{"POST /api/0/service-tokens/", &call{outsider, "/api/0/service-tokens/", map[string]any{"name": "Mine"}, 403},
			call{op, "/api/0/service-tokens/", map[string]any{"name": "CI"}, 201}},
		{"DELETE /api/0/service-tokens/:token_id/", &call{owner, "/api/0/service-tokens/" + oldTok.ID + "/", nil, 403},
			call{op, "/api/0/service-tokens/" + oldTok.ID + "/", nil, 204}},

		{"GET /api/0/organizations/:org/installations/", &call{outsider, "/api/0/organizations/globex/installations/", nil, 404},
			call{clerk, "/api/0/organizations/globex/installations/", nil, 200}},
		{"POST /api/0/organizations/:org/installations/", &call{member, "/api/0/organizations/acme/installations/", map[string]any{"app": "acme-hooks", "plan": "plus"}, 403},
			call{owner, "/api/0/organizations/acme/installations/", map[string]any{"app": "acme-hooks", "plan": "plus"}, 201}},
		{"GET /api/0/apps/:app_slug/installations/", &call{customer, "/api/0/apps/acme-hooks/installations/", nil, 404},
			call{appCreds, "/api/0/apps/acme-hooks/installations/", nil, 200}},
		{"GET /api/0/installations/:uuid/", &call{outsider, "/api/0/installations/" + iid + "/", nil, 404}, call{clerk, "/api/0/installations/" + iid + "/", nil, 200}},
		{"PUT /api/0/installations/:uuid/", &call{clerk, "/api/0/installations/" + iid + "/", map[string]any{"plan": "plus"}, 403},
			call{customer, "/api/0/installations/" + iid + "/", map[string]any{"plan": "plus"}, 200}},
		{"GET /api/0/installations/:uuid/config-vars/", &call{clerk, "/api/0/installations/" + iid + "/config-vars/", nil, 403},
			call{host, "/api/0/installations/" + iid + "/config-vars/", nil, 200}},
		{"PUT /api/0/installations/:uuid/config-vars/", &call{customer, "/api/0/installations/" + iid + "/config-vars/", map[string]any{"vars": map[string]any{"ACME_HOOKS_URL": "x"}}, 403},
			call{instTok, "/api/0/installations/" + iid + "/config-vars/", map[string]any{"vars": map[string]any{"ACME_HOOKS_URL": "https://acme.example/h"}}, 200}},
		{"POST /api/0/installations/:uuid/authorizations/", &call{anon, "/api/0/installations/" + iid + "/authorizations/", badExchange, 401},
			call{anon, "/api/0/installations/" + iid + "/authorizations/", exchange, 201}},
		{"POST /api/0/installations/:uuid/suspensions/", &call{clerk, "/api/0/installations/" + iid + "/suspensions/", nil, 403},
			call{customer, "/api/0/installations/" + iid + "/suspensions/", map[string]any{"reason": "Audit"}, 201}},
		{"DELETE /api/0/installations/:uuid/suspensions/", &call{appCreds, "/api/0/installations/" + iid + "/suspensions/", nil, 403},
			call{customer, "/api/0/installations/" + iid + "/suspensions/", nil, 204}},

		{"GET /api/0/organizations/:org/events/", &call{clerk, "/api/0/organizations/globex/events/", nil, 403}, call{customer, "/api/0/organizations/globex/events/", nil, 200}},
		{"POST /api/0/organizations/:org/events/", &call{clerk, "/api/0/organizations/globex/events/", map[string]any{"type": "issue.created", "data": map[string]any{"title": "Mine"}}, 403},
			call{host, "/api/0/organizations/globex/events/", map[string]any{"type": "issue.created", "data": map[string]any{"title": "Database on fire"}}, 201}},
		{"POST /api/0/event-batches/", &call{customer, "/api/0/event-batches/", map[string]any{"events": []any{map[string]any{"organization": "globex", "type": "issue.created"}}}, 403},
			call{host, "/api/0/event-batches/", map[string]any{"events": []any{map[string]any{"organization": "globex", "type": "issue.created"}}}, 200}},
		{"GET /api/0/apps/:app_slug/deliveries/", &call{outsider, "/api/0/apps/acme-hooks/deliveries/", nil, 404}, call{member, "/api/0/apps/acme-hooks/deliveries/", nil, 200}},
		{"GET /api/0/apps/:app_slug/deliveries/:delivery_id/", &call{outsider, "/api/0/apps/acme-hooks/deliveries/" + did + "/", nil, 404},
			call{member, "/api/0/apps/acme-hooks/deliveries/" + did + "/", nil, 200}},
		{"POST /api/0/apps/:app_slug/redeliveries/", &call{outsider, "/api/0/apps/acme-hooks/redeliveries/", map[string]any{"deliveries": []string{did}}, 404},
			call{owner, "/api/0/apps/acme-hooks/redeliveries/", map[string]any{"deliveries": []string{did}}, 202}},
		{"POST /api/0/apps/:app_slug/test-events/", &call{outsider, "/api/0/apps/acme-hooks/test-events/", nil, 404},
			call{owner, "/api/0/apps/acme-hooks/test-events/", nil, 201}},
		{"GET /api/0/apps/:app_slug/stats/", &call{outsider, "/api/0/apps/acme-hooks/stats/", nil, 404}, call{member, "/api/0/apps/acme-hooks/stats/", nil, 200}},
		{"GET /api/0/apps/:app_slug/revenue/", &call{outsider, "/api/0/apps/acme-hooks/revenue/", nil, 404}, call{member, "/api/0/apps/acme-hooks/revenue/", nil, 200}},
		{"GET /api/0/apps/:app_slug/payouts/", &call{outsider, "/api/0/apps/acme-hooks/payouts/", nil, 404}, call{member, "/api/0/apps/acme-hooks/payouts/", nil, 200}},
		{"GET /api/0/apps/:app_slug/commission/", &call{outsider, "/api/0/apps/acme-hooks/commission/", nil, 404}, call{member, "/api/0/apps/acme-hooks/commission/", nil, 200}},
		{"PUT /api/0/apps/:app_slug/commission/", &call{owner, "/api/0/apps/acme-hooks/commission/", map[string]any{"commission": "15"}, 403},
			call{op, "/api/0/apps/acme-hooks/commission/", map[string]any{"commission": "15"}, 200}},
		{"GET /api/0/apps/:app_slug/revisions/", &call{customer, "/api/0/apps/acme-hooks/revisions/", nil, 404}, call{member, "/api/0/apps/acme-hooks/revisions/", nil, 200}},
		{"GET /api/0/apps/:app_slug/revisions/:revision_id/", &call{outsider, rev, nil, 404}, call{op, rev, nil, 200}},
		{"POST /api/0/apps/:app_slug/revisions/:revision_id/publish-requests/", &call{member, rev + "publish-requests/", nil, 403},
			call{owner, rev + "publish-requests/", nil, 201}},
		{"PUT /api/0/apps/:app_slug/revisions/:revision_id/", &call{owner, rev, map[string]any{"status": "approved"}, 403},
			call{op, rev, map[string]any{"status": "approved"}, 200}},
		{"POST /api/0/installations/:uuid/permission-acceptances/", &call{clerk, "/api/0/installations/" + iid + "/permission-acceptances/", nil, 403},
			call{customer, "/api/0/installations/" + iid + "/permission-acceptances/", nil, 201}},
		// Uninstalling ends the installation the cases above use.
		{"POST /api/0/installations/:uuid/grants/", &call{customer, "/api/0/installations/" + iid + "/grants/", nil, 403},
			call{appCreds, "/api/0/installations/" + iid + "/grants/", nil, 201}},
		{"POST /api/0/installations/:uuid/access-tokens/", &call{customer, "/api/0/installations/" + iid + "/access-tokens/", nil, 403},
			call{appCreds, "/api/0/installations/" + iid + "/access-tokens/", map[string]any{"scopes": []string{"issue:read"}}, 201}},
		{"GET /api/0/apps/:app_slug/reconciliation-runs/", &call{customer, "/api/0/apps/acme-hooks/reconciliation-runs/", nil, 404},
			call{appCreds, "/api/0/apps/acme-hooks/reconciliation-runs/", nil, 200}},
		{"GET /api/0/reconciliation-runs/", &call{owner, "/api/0/reconciliation-runs/", nil, 403}, call{op, "/api/0/reconciliation-runs/", nil, 200}},
		{"DELETE /api/0/installations/:uuid/", &call{clerk, "/api/0/installations/" + iid + "/", nil, 403},
			call{customer, "/api/0/installations/" + iid + "/", nil, 204}},

		{"POST /api/0/installations/:uuid/usage-records/", &call{customer, usage, usageBody, 403}, call{meterCreds, usage, usageBody, 201}},
		{"GET /api/0/installations/:uuid/usage-records/", &call{clerk, usage, nil, 403}, call{host, usage, nil, 200}},
		{"GET /api/0/organizations/:org/invoices/", &call{clerk, invoices, nil, 403}, call{customer, invoices, nil, 200}},
		{"GET /api/0/organizations/:org/invoices/:invoice_id/", &call{outsider, invoices + invoiceID + "/", nil, 404}, call{customer, invoices + invoiceID + "/", nil, 200}},
		{"GET /api/0/organizations/:org/upcoming-invoice/", &call{clerk, "/api/0/organizations/globex/upcoming-invoice/", nil, 403},
			call{customer, "/api/0/organizations/globex/upcoming-invoice/", nil, 200}},
		{"GET /api/0/invoices/", &call{customer, "/api/0/invoices/?status=open", nil, 403}, call{host, "/api/0/invoices/?status=open", nil, 200}},
		{"PUT /api/0/invoices/:invoice_id/", &call{customer, "/api/0/invoices/" + invoiceID + "/", map[string]any{"status": "paid"}, 403},
			call{host, "/api/0/invoices/" + invoiceID + "/", map[string]any{"status": "paid"}, 200}},

		// Host endpoints: operators and host service tokens; every other
		// caller, the owners and admins of any organization included, is refused.
		{"GET /api/0/host-endpoints/", &call{owner, "/api/0/host-endpoints/", nil, 403}, call{op, "/api/0/host-endpoints/", nil, 200}},
		{"POST /api/0/host-endpoints/", &call{customer, "/api/0/host-endpoints/", newHost, 403}, call{host, "/api/0/host-endpoints/", newHost, 201}},
		{"GET /api/0/host-endpoints/:endpoint_id/", &call{anon, hep, nil, 401}, call{host, hep, nil, 200}},
		{"PUT /api/0/host-endpoints/:endpoint_id/", &call{appCreds, hep, map[string]any{"description": "Mine"}, 403},
			call{op, hep, map[string]any{"description": "Billing"}, 200}},
		{"POST /api/0/host-endpoints/:endpoint_id/rotate-secret/", &call{member, hep + "rotate-secret/", nil, 403}, call{op, hep + "rotate-secret/", nil, 200}},
		{"GET /api/0/host-endpoints/:endpoint_id/deliveries/", &call{customer, hep + "deliveries/", nil, 403}, call{op, hep + "deliveries/", nil, 200}},
		{"GET /api/0/host-endpoints/:endpoint_id/deliveries/:delivery_id/", &call{owner, hep + "deliveries/" + hdid + "/", nil, 403},
			call{host, hep + "deliveries/" + hdid + "/", nil, 200}},
		{"POST /api/0/host-endpoints/:endpoint_id/redeliveries/", &call{clerk, hep + "redeliveries/", map[string]any{"deliveries": []string{hdid}}, 403},
			call{op, hep + "redeliveries/", map[string]any{"deliveries": []string{hdid}}, 202}},
		{"GET /api/0/host-endpoints/:endpoint_id/stats/", &call{outsider, hep + "stats/", nil, 403}, call{op, hep + "stats/", nil, 200}},
		{"DELETE /api/0/host-endpoints/:endpoint_id/", &call{owner, hep, nil, 403}, call{op, hep, nil, 204}},

		{"POST /api/0/apps/:app_slug/publish-requests/", &call{member, "/api/0/apps/acme-app/publish-requests/", nil, 403},
			call{owner, "/api/0/apps/acme-app/publish-requests/", nil, 201}},
		{"DELETE /api/0/auth/", &call{anon, "/api/0/auth/", nil, 401}, call{member, "/api/0/auth/", nil, 204}},
	}
	covered := map[string]bool{}
	// The delivery stream never ends by itself: read its first line only.
	covered["GET /api/0/apps/:app_slug/delivery-stream/"] = true
	outsider.do("GET", "/api/0/apps/acme-hooks/delivery-stream/", nil).problem(t, 404, "not_found")
	streamCtx, stopStream := context.WithTimeout(context.Background(), 5*time.Second)
	req, _ := http.NewRequestWithContext(streamCtx, "GET", p.URL+"/api/0/apps/acme-hooks/delivery-stream/", nil)
	req.Header.Set("Authorization", "Bearer "+owner.token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	first, _ := bufio.NewReader(res.Body).ReadString('\n')
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" || first != ": listening\n" {
		t.Errorf("stream: %d %q %q", res.StatusCode, res.Header.Get("Content-Type"), first)
	}
	stopStream()
	res.Body.Close()
	for _, tc := range cases {
		method := strings.Fields(tc.route)[0]
		covered[tc.route] = true
		t.Run(tc.route, func(t *testing.T) {
			if tc.denied != nil {
				res := tc.denied.c.do(method, tc.denied.path, tc.denied.body)
				res.problem(t, tc.denied.status, "")
			}
			tc.allowed.c.do(method, tc.allowed.path, tc.allowed.body).ok(t, tc.allowed.status, nil)
		})
	}
	for _, r := range p.App.Web.Echo().Routes() {
		if !strings.HasPrefix(r.Path, "/api/0/") || strings.HasPrefix(r.Method, "echo_") {
			continue
		}
		if key := r.Method + " " + r.Path; !covered[key] {
			t.Errorf("route %s has no authorization case", key)
		}
	}
	// A wrong method on an API path is a 405, with the problem document.
	anon.do("PATCH", "/api/0/organizations/", map[string]string{"name": "x"}).problem(t, 405, "method_not_allowed")
	anon.do("GET", "/api/0/no-such-thing/", nil).problem(t, 404, "not_found")
}

var segmentRe = regexp.MustCompile(`^([a-z]+(-[a-z]+)*|:[a-z]+(_[a-z]+)*|openapi\.json)$`)

// TestRoutesFollowTheAPIRules checks the Sentry rules the route table must
// keep: no PATCH, plural hyphenated lower-case collections, snake_case
// parameters, at most three levels of nesting, trailing slashes.
func TestRoutesFollowTheAPIRules(t *testing.T) {
	p := apptest.Start(t)
	for _, r := range p.App.Web.Echo().Routes() {
		if !strings.HasPrefix(r.Path, "/api/0/") || strings.HasPrefix(r.Method, "echo_") {
			continue
		}
		if r.Method == "PATCH" {
			t.Errorf("%s %s uses PATCH", r.Method, r.Path)
		}
		if !strings.HasSuffix(r.Path, "/") && !strings.HasSuffix(r.Path, ".json") {
			t.Errorf("%s lacks the trailing slash", r.Path)
		}
		segs := strings.Split(strings.Trim(strings.TrimPrefix(r.Path, "/api/0/"), "/"), "/")
		collections := 0
		for i, s := range segs {
			if !segmentRe.MatchString(s) {
				t.Errorf("%s: segment %q is not lower-case-hyphenated or :snake_case", r.Path, s)
			}
			if !strings.HasPrefix(s, ":") {
				collections++
				if i == 0 && !strings.HasSuffix(s, "s") && s != "auth" && s != "openapi.json" {
					t.Errorf("%s: collection %q is not plural", r.Path, s)
				}
			}
		}
		if collections > 3 {
			t.Errorf("%s nests %d levels", r.Path, collections)
		}
	}
}
