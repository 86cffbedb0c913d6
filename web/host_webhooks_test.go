package web_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/plugboard/plugboard/cmd/platform/apptest"
	"github.com/plugboard/plugboard/sdk/plugboard"
)

// hostEndpoint is a host endpoint as the API answers it.
type hostEndpoint struct {
	ID               string     `json:"id"`
	URL              string     `json:"url"`
	Description      string     `json:"description"`
	EventTypes       []string   `json:"eventTypes"`
	Status           string     `json:"status"`
	StatusReason     string     `json:"statusReason"`
	DateFailingSince *time.Time `json:"dateFailingSince"`
	RateLimit        int        `json:"rateLimit"`
	MaxInFlight      int        `json:"maxInFlight"`
	DateCreated      time.Time  `json:"dateCreated"`
	DateUpdated      time.Time  `json:"dateUpdated"`
	Secret           string     `json:"secret"`
}

// hostEnvelope is a platform event as a host endpoint receives it.
type hostEnvelope struct {
	ID           string          `json:"id"`
	Type         string          `json:"type"`
	Timestamp    time.Time       `json:"timestamp"`
	Installation *struct{}       `json:"installation"`
	Data         json.RawMessage `json:"data"`
}

type orgRef struct {
	ID   string `json:"id"`
	Slug string `json:"slug"`
	Name string `json:"name"`
}

// hostInstallationData is the data of installation.* at a host endpoint.
type hostInstallationData struct {
	Installation struct {
		UUID   string   `json:"uuid"`
		Status string   `json:"status"`
		Scopes []string `json:"scopes"`
		App    struct {
			Slug     string `json:"slug"`
			Name     string `json:"name"`
			ClientID string `json:"clientId"`
		} `json:"app"`
		Organization orgRef         `json:"organization"`
		Plan         map[string]any `json:"plan"`
	} `json:"installation"`
	Organization orgRef         `json:"organization"`
	Reason       string         `json:"reason"`
	PreviousPlan map[string]any `json:"previousPlan"`
}

// hostAppData is the data of app.published and app.unpublished.
type hostAppData struct {
	App          map[string]any `json:"app"`
	Organization orgRef         `json:"organization"`
	Reason       string         `json:"reason"`
}

// newHostEndpoint registers a host endpoint for types at sink, as c.
func newHostEndpoint(t *testing.T, c *client, sink *sink, types ...string) hostEndpoint {
	t.Helper()
	h := decode[hostEndpoint](t, c.do("POST", "/api/0/host-endpoints/", map[string]any{"url": sink.srv.URL + "/platform", "eventTypes": types}), 201)
	if !strings.HasPrefix(h.Secret, "whsec_") {
		t.Fatalf("secret %q", h.Secret)
	}
	return h
}

// hostEvent waits for the host endpoint's first request of typ, checks it
// with the Standard Webhooks library and decodes its envelope and data.
func hostEvent(t *testing.T, s *sink, secret, typ string, data any) (hit, hostEnvelope) {
	t.Helper()
	got := s.waitEvent(t, typ, 10*time.Second)
	verify(t, secret, got)
	var env hostEnvelope
	if err := strictUnmarshal(got.Body, &env); err != nil {
		t.Fatalf("envelope %s: %v", got.Body, err)
	}
	if env.Type != typ || env.ID != got.Header.Get("Webhook-Id") || env.Installation != nil {
		t.Errorf("envelope %s", got.Body)
	}
	if err := strictUnmarshal(env.Data, data); err != nil {
		t.Fatalf("data of %s %s: %v", typ, env.Data, err)
	}
	return got, env
}

func TestHostEndpointsReceivePlatformEvents(t *testing.T) {
	h := &hooks{sink: newSink(t)}
	h.p = apptest.Start(t, fastRetries)
	op := operator(t, h.p, "root@plugboard.example")
	host := newSink(t)
	ep := newHostEndpoint(t, op, host, "installation.created", "app.published", "app.unpublished", "installation.updated", "installation.deleted")

	// Approving the app: app.published, to the host alone.
	setupApp(t, h)
	var pub hostAppData
	hostEvent(t, host, ep.Secret, "app.published", &pub)
	if pub.App["slug"] != "hook-app" || pub.App["status"] != "published" || pub.Organization.Slug != "partner" || pub.Reason != "" {
		t.Errorf("app.published data %+v", pub)
	}

	// Installing: installation.created to the partner (with its code) and
	// to the host (without).
	installHookApp(t, h)
	var created hostInstallationData
	got, _ := hostEvent(t, host, ep.Secret, "installation.created", &created)
	if created.Installation.UUID != h.inst || created.Installation.App.Slug != "hook-app" || created.Organization.Slug != "customer" ||
		created.Installation.Organization.Slug != "customer" || created.Installation.Status != "installed" {
		t.Errorf("installation.created data %+v", created)
	}
	if strings.Contains(string(got.Body), "pbg_") || strings.Contains(string(got.Body), "code") {
		t.Errorf("the host received the partner's grant code: %s", got.Body)
	}
	partner := h.sink.waitEvent(t, "installation.created", 10*time.Second)
	verify(t, h.secret, partner)
	if !strings.Contains(string(partner.Body), "pbg_") {
		t.Errorf("the partner's installation.created lacks its code: %s", partner.Body)
	}
	if got.Header.Get("Webhook-Id") == partner.Header.Get("Webhook-Id") {
		t.Error("host and partner share a delivery")
	}
	// The host's secret is not the partner's: each verifies only its own.
	if wh, _ := standardwebhooks.NewWebhook(h.secret); wh.Verify(got.Body, got.Header) == nil {
		t.Error("the host's delivery verifies with the partner's secret")
	}

	// Plan change, uninstall, rejection after publishing.
	h.dev.do("POST", "/api/0/apps/hook-app/plans/", map[string]any{"name": "Pro", "price": "9"}).ok(t, 201, nil)
	h.admin.do("PUT", "/api/0/installations/"+h.inst+"/", map[string]any{"plan": "pro"}).ok(t, 200, nil)
	var updated hostInstallationData
	hostEvent(t, host, ep.Secret, "installation.updated", &updated)
	if updated.Installation.UUID != h.inst || updated.Installation.Plan["slug"] != "pro" || updated.PreviousPlan["slug"] != "free" {
		t.Errorf("installation.updated data %+v", updated)
	}
	h.admin.do("DELETE", "/api/0/installations/"+h.inst+"/", nil).ok(t, 204, nil)
	var deleted hostInstallationData
	hostEvent(t, host, ep.Secret, "installation.deleted", &deleted)
	if deleted.Installation.UUID != h.inst || deleted.Reason != "uninstalled" || deleted.Installation.Status != "deleted" {
		t.Errorf("installation.deleted data %+v", deleted)
	}
	h.op.do("PUT", "/api/0/apps/hook-app/", map[string]any{"status": "rejected", "statusReason": "Broken"}).ok(t, 200, nil)
	var unpub hostAppData
	hostEvent(t, host, ep.Secret, "app.unpublished", &unpub)
	if unpub.App["slug"] != "hook-app" || unpub.App["status"] != "rejected" || unpub.Reason != "rejected" {
		t.Errorf("app.unpublished data %+v", unpub)
	}

	// The log holds each, delivered once. The sink has the last request
	// before the drain has recorded it: wait for the record.
	log := decode[[]plugboard.Delivery](t, op.do("GET", "/api/0/host-endpoints/"+ep.ID+"/deliveries/", nil), 200)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		pending := decode[[]plugboard.Delivery](t, op.do("GET", "/api/0/host-endpoints/"+ep.ID+"/deliveries/?status=pending", nil), 200)
		if len(pending) == 0 {
			log = decode[[]plugboard.Delivery](t, op.do("GET", "/api/0/host-endpoints/"+ep.ID+"/deliveries/", nil), 200)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	types := map[string]int{}
	for _, d := range log {
		types[d.EventType]++
		if d.Status != plugboard.DeliverySucceeded || d.Installation != "" {
			t.Errorf("host delivery %+v", d)
		}
	}
	want := map[string]int{"app.published": 1, "installation.created": 1, "installation.updated": 1, "installation.deleted": 1, "app.unpublished": 1}
	for k, n := range want {
		if types[k] != n {
			t.Errorf("log has %d %s, want %d: %v", types[k], k, n, types)
		}
	}
	// The partner's log and the organization's events do not show them.
	for _, d := range decode[[]plugboard.Delivery](t, h.dev.do("GET", "/api/0/apps/hook-app/deliveries/", nil), 200) {
		if strings.HasPrefix(d.EventType, "app.") {
			t.Errorf("the partner's log shows %s", d.EventType)
		}
	}
	if body := string(h.admin.do("GET", "/api/0/organizations/customer/events/", nil).ok(t, 200, nil).Body); strings.Contains(body, "installation.") {
		t.Errorf("the organization's events show platform events: %s", body)
	}
	// An endpoint subscribed to other events receives none of these.
	if n := len(host.all()); n != 5 {
		t.Errorf("host endpoint got %d requests, want 5", n)
	}
}

func TestHostEndpointRetriesRedeliversAndRotates(t *testing.T) {
	h := &hooks{sink: newSink(t)}
	h.p = apptest.Start(t, fastRetries, freshEndpoints)
	setupApp(t, h)
	host := newSink(t)
	host.respond = func(n int, r *http.Request) (int, http.Header, time.Duration) {
		if n == 1 {
			return 500, nil, 0
		}
		return 200, nil, 0
	}
	ep := newHostEndpoint(t, h.op, host, "installation.created")
	installHookApp(t, h)
	hits := host.waitHits(t, 2, 10*time.Second)
	for _, x := range hits {
		verify(t, ep.Secret, x)
	}
	if hits[0].Header.Get("Webhook-Id") != hits[1].Header.Get("Webhook-Id") || hits[1].Header.Get("Plugboard-Delivery-Attempt") != "2" {
		t.Errorf("retry headers %v / %v", hits[0].Header, hits[1].Header)
	}

	// Both attempts are in the log.
	base := "/api/0/host-endpoints/" + ep.ID
	var list []plugboard.Delivery
	deadline := time.Now().Add(5 * time.Second)
	for {
		list = decode[[]plugboard.Delivery](t, h.op.do("GET", base+"/deliveries/", nil), 200)
		if len(list) == 1 && list[0].Status == plugboard.DeliverySucceeded || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(list) != 1 || list[0].Attempts != 2 || list[0].Status != plugboard.DeliverySucceeded || list[0].EventType != "installation.created" ||
		list[0].ID != hits[0].Header.Get("Webhook-Id") {
		t.Fatalf("log %+v", list)
	}
	one := decode[plugboard.Delivery](t, h.op.do("GET", base+"/deliveries/"+list[0].ID+"/", nil), 200)
	if len(one.AttemptsDetail) != 2 || one.AttemptsDetail[0].ResponseStatus != 500 || one.AttemptsDetail[1].ResponseStatus != 200 ||
		one.AttemptsDetail[0].ErrorClass != "http_status" || !strings.HasSuffix(one.AttemptsDetail[0].URL, "/platform") {
		t.Errorf("attempts %+v", one.AttemptsDetail)
	}
	decode[plugboard.WebhookStats](t, h.op.do("GET", base+"/stats/", nil), 200)
	// Not the partner's: its log and its delivery ids know nothing of it.
	h.dev.do("GET", "/api/0/apps/hook-app/deliveries/"+list[0].ID+"/", nil).problem(t, 404, "not_found")

	// Rotating: the new secret signs, and the old one beside it for a while.
	rot := decode[struct {
		Secret                   string    `json:"secret"`
		PreviousSecretValidUntil time.Time `json:"previousSecretValidUntil"`
	}](t, h.op.do("POST", base+"/rotate-secret/", nil), 200)
	if !strings.HasPrefix(rot.Secret, "whsec_") || rot.Secret == ep.Secret || time.Until(rot.PreviousSecretValidUntil) < 23*time.Hour {
		t.Fatalf("rotation %+v", rot)
	}
	// Redelivering: one more attempt, the same webhook-id.
	red := decode[plugboard.Redelivery](t, h.op.do("POST", base+"/redeliveries/", map[string]any{"deliveries": []string{list[0].ID}}), 202)
	if red.Count != 1 || red.Background {
		t.Fatalf("redelivery %+v", red)
	}
	third := host.waitHits(t, 3, 10*time.Second)[2]
	if third.Header.Get("Webhook-Id") != list[0].ID {
		t.Errorf("redelivery webhook-id %q", third.Header.Get("Webhook-Id"))
	}
	verify(t, rot.Secret, third)
	verify(t, ep.Secret, third)
	h.op.do("POST", base+"/redeliveries/", map[string]any{"deliveries": []string{"not-a-uuid"}}).problem(t, 400, "invalid_input")
	h.op.do("POST", base+"/redeliveries/", map[string]any{"status": "failed"}).ok(t, 202, nil)

	// Disabled, deliveries wait paused; enabled again, they are sent.
	h.op.do("PUT", base+"/", map[string]any{"status": "disabled"}).ok(t, 200, nil)
	h.admin.do("DELETE", "/api/0/installations/"+h.inst+"/", nil).ok(t, 204, nil) // not subscribed: nothing
	h.admin.do("POST", "/api/0/organizations/customer/installations/", map[string]any{"app": "hook-app", "plan": "free"}).ok(t, 201, nil)
	waitFor(t, 5*time.Second, func() bool {
		l := decode[[]plugboard.Delivery](t, h.op.do("GET", base+"/deliveries/?status=paused", nil), 200)
		return len(l) == 1
	})
	got := decode[hostEndpoint](t, h.op.do("GET", base+"/", nil), 200)
	if got.Status != "disabled" || !strings.Contains(got.StatusReason, "ops@plugboard.example") {
		t.Errorf("endpoint %+v", got)
	}
	if n := len(host.all()); n != 3 {
		t.Fatalf("a disabled host endpoint got a request: %d", n)
	}
	h.op.do("PUT", base+"/", map[string]any{"status": "enabled"}).ok(t, 200, nil)
	fourth := host.waitHits(t, 4, 10*time.Second)[3]
	verify(t, rot.Secret, fourth)
	if fourth.Header.Get("Plugboard-Event") != "installation.created" {
		t.Errorf("replayed %q", fourth.Header.Get("Plugboard-Event"))
	}

	// Deleted, its log goes with it.
	h.op.do("DELETE", base+"/", nil).ok(t, 204, nil)
	h.op.do("GET", base+"/deliveries/", nil).problem(t, 404, "not_found")
	var n int64
	if err := h.p.App.DB.Table("deliveries").Where("host_endpoint_id IS NOT NULL").Count(&n).Error; err != nil || n != 0 {
		t.Errorf("%d host deliveries left (%v)", n, err)
	}
}

// installHookApp installs the hooks' app in the customer organization.
func installHookApp(t *testing.T, h *hooks) {
	t.Helper()
	h.inst = decode[plugboard.Installation](t, h.admin.do("POST", "/api/0/organizations/customer/installations/", map[string]any{"app": "hook-app", "plan": "free"}), 201).UUID
}

// waitFor polls cond until it holds or within passes.
func waitFor(t *testing.T, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not so within %s", within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestHostEndpointsValidationAndAccess(t *testing.T) {
	p := apptest.Start(t)
	op := operator(t, p, "ops@plugboard.example")
	anon := newClient(t, p, "")
	user := signUp(t, p, "admin@customer.example")
	user.do("POST", "/api/0/organizations/", map[string]string{"name": "Customer"}).ok(t, 201, nil)
	dev := signUp(t, p, "dev@partner.example")
	dev.do("POST", "/api/0/organizations/", map[string]string{"name": "Partner"}).ok(t, 201, nil)
	app := decode[plugboard.App](t, dev.do("POST", "/api/0/organizations/partner/apps/", publicApp("Peek App")), 201)
	appCreds := newClient(t, p, "")
	appCreds.http.Transport = basicAuth{app.ClientID, app.ClientSecret}
	tok := decode[plugboard.ServiceToken](t, op.do("POST", "/api/0/service-tokens/", map[string]any{"name": "Host automation"}), 201)
	svc := newClient(t, p, tok.Token)
	sink := newSink(t)

	t.Run("bad input is a 400 with field messages and writes nothing", func(t *testing.T) {
		for _, tc := range []struct {
			body   any
			fields []string
		}{
			{map[string]any{}, []string{"url", "eventTypes"}},
			{map[string]any{"url": "ftp://host.example/x", "eventTypes": []string{"installation.created"}}, []string{"url"}},
			{map[string]any{"url": "https://host.example/x", "eventTypes": []string{}}, []string{"eventTypes"}},
			{map[string]any{"url": "https://host.example/x", "eventTypes": []string{"issue.created"}}, []string{"eventTypes"}},
			{map[string]any{"url": "https://host.example/x", "eventTypes": []string{"app.published"}, "rateLimit": 0, "maxInFlight": 100000}, []string{"rateLimit", "maxInFlight"}},
			{map[string]any{"url": "https://host.example/x", "eventTypes": []string{"app.published"}, "description": strings.Repeat("x", 201)}, []string{"description"}},
			{`{"url": 7}`, nil},
		} {
			prob := op.do("POST", "/api/0/host-endpoints/", tc.body).problem(t, 400, "")
			for _, f := range tc.fields {
				if prob.Fields[f] == "" {
					t.Errorf("%v: no message for %s: %+v", tc.body, f, prob)
				}
			}
		}
		if n := count(t, p, "host_endpoints"); n != 0 {
			t.Fatalf("%d host endpoints written", n)
		}
		ep := newHostEndpoint(t, op, sink, "app.published")
		for _, tc := range []struct {
			body  map[string]any
			field string
		}{
			{map[string]any{"status": "paused"}, "status"},
			{map[string]any{"url": ""}, "url"},
			{map[string]any{"eventTypes": []string{}}, "eventTypes"},
			{map[string]any{"rateLimit": -1}, "rateLimit"},
		} {
			prob := op.do("PUT", "/api/0/host-endpoints/"+ep.ID+"/", tc.body).problem(t, 400, "invalid_input")
			if prob.Fields[tc.field] == "" {
				t.Errorf("%v: no message for %s: %+v", tc.body, tc.field, prob)
			}
		}
		if got := decode[hostEndpoint](t, op.do("GET", "/api/0/host-endpoints/"+ep.ID+"/", nil), 200); got.URL != ep.URL || len(got.EventTypes) != 1 {
			t.Errorf("a refused update changed the endpoint: %+v", got)
		}
		op.do("GET", "/api/0/host-endpoints/999999/", nil).problem(t, 404, "not_found")
		op.do("GET", "/api/0/host-endpoints/nope/", nil).problem(t, 404, "not_found")
		op.do("DELETE", "/api/0/host-endpoints/"+ep.ID+"/", nil).ok(t, 204, nil)
		op.do("DELETE", "/api/0/host-endpoints/"+ep.ID+"/", nil).problem(t, 404, "not_found")
	})

	t.Run("the secret is shown once", func(t *testing.T) {
		ep := newHostEndpoint(t, op, sink, "installation.created")
		for _, path := range []string{"/api/0/host-endpoints/", "/api/0/host-endpoints/" + ep.ID + "/"} {
			if body := string(op.do("GET", path, nil).ok(t, 200, nil).Body); strings.Contains(body, ep.Secret) || strings.Contains(body, `"secret"`) {
				t.Errorf("GET %s shows the secret: %s", path, body)
			}
		}
		up := op.do("PUT", "/api/0/host-endpoints/"+ep.ID+"/", map[string]any{"description": "Billing", "eventTypes": []string{"installation.created", "installation.created", "app.published"}})
		if got := decode[hostEndpoint](t, up, 200); got.Secret != "" || got.Description != "Billing" || len(got.EventTypes) != 2 {
			t.Errorf("update %+v", got)
		}
	})

	t.Run("operators and host service tokens only", func(t *testing.T) {
		ep := newHostEndpoint(t, svc, sink, "app.unpublished") // the host's automation registers its own
		base := "/api/0/host-endpoints/" + ep.ID + "/"
		paths := []struct {
			method, path string
			body         any
		}{
			{"GET", "/api/0/host-endpoints/", nil},
			{"POST", "/api/0/host-endpoints/", map[string]any{"url": "https://evil.example/x", "eventTypes": []string{"installation.created"}}},
			{"GET", base, nil}, {"PUT", base, map[string]any{"url": "https://evil.example/x"}}, {"DELETE", base, nil},
			{"POST", base + "rotate-secret/", nil}, {"GET", base + "deliveries/", nil},
			{"GET", base + "deliveries/0b5e7a4c-3f1d-4e8a-9c2b-6d7e8f9a0b1c/", nil},
			{"POST", base + "redeliveries/", map[string]any{"status": "failed"}}, {"GET", base + "stats/", nil},
		}
		for _, c := range []struct {
			who    *client
			status int
			code   string
		}{{user, 403, "operator_only"}, {dev, 403, "operator_only"}, {appCreds, 403, "operator_only"}, {anon, 401, "not_authenticated"}} {
			for _, r := range paths {
				c.who.do(r.method, r.path, r.body).problem(t, c.status, c.code)
			}
		}
		list := decode[[]hostEndpoint](t, svc.do("GET", "/api/0/host-endpoints/", nil), 200)
		if len(list) == 0 || list[len(list)-1].ID != ep.ID {
			t.Errorf("the service token's list %+v", list)
		}
		decode[hostEndpoint](t, op.do("GET", "/api/0/host-endpoints/"+ep.ID+"/", nil), 200)
		if got := decode[hostEndpoint](t, svc.do("PUT", "/api/0/host-endpoints/"+ep.ID+"/", map[string]any{"rateLimit": 5, "maxInFlight": 2}), 200); got.RateLimit != 5 || got.MaxInFlight != 2 {
			t.Errorf("limits %+v", got)
		}
		// The audit log of the platform records who did it; organizations see none of it.
		var n int64
		if err := p.App.DB.Table("audit_logs").Where("action LIKE 'host_endpoint.%' AND organization_id IS NULL").Count(&n).Error; err != nil || n == 0 {
			t.Errorf("%d host endpoint audit entries (%v)", n, err)
		}
		if body := string(user.do("GET", "/api/0/organizations/customer/audit-logs/", nil).ok(t, 200, nil).Body); strings.Contains(body, "host_endpoint") {
			t.Errorf("an organization's audit log shows host endpoints: %s", body)
		}
	})
}

func TestOperatorManagesHostEndpointsInTheUI(t *testing.T) {
	p := apptest.Start(t, fastRetries)
	operator(t, p, "ops@plugboard.example")
	signUp(t, p, "dev@partner.example")
	op := uiSignIn(t, p, "ops@plugboard.example")
	user := uiSignIn(t, p, "dev@partner.example")
	sink := newSink(t)

	user.get("/admin/host-endpoints").ok(404)
	user.post("/admin/host-endpoints", url.Values{"url": {sink.srv.URL}, "eventTypes": {"app.published"}}).ok(404)
	newBrowser(t, p).get("/admin/host-endpoints").ok(200, "Sign in").at("/login")

	op.get("/admin/").ok(200, `href="/admin/host-endpoints"`)
	op.get("/admin/host-endpoints").ok(200, "Host endpoints", "No host endpoints yet", "installation.config_updated")
	// A bad form shows its errors beside the fields, keeps what was typed, writes nothing.
	pg := op.post("/admin/host-endpoints", url.Values{"url": {"not a url"}, "description": {"Billing"}}).ok(400, `value="Billing"`)
	pg.fieldError("url")
	pg.fieldError("eventTypes")
	if n := count(t, p, "host_endpoints"); n != 0 {
		t.Fatalf("%d written", n)
	}
	// Created: the secret is shown once, after a redirect.
	op.get("/admin/host-endpoints")
	pg = op.post("/admin/host-endpoints", url.Values{"url": {sink.srv.URL + "/platform"}, "eventTypes": {"installation.created", "app.published"}}).ok(200, "Copy the signing secret now")
	secret := secretsOn(pg)["host-secret"]
	if !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("secret %q", secret)
	}
	secretPage := pg.URL.Path
	op.get(secretPage).ok(410, "no longer shown")
	id := strings.Split(strings.TrimPrefix(secretPage, "/admin/host-endpoints/"), "/")[0]
	base := "/admin/host-endpoints/" + id
	op.get("/admin/host-endpoints").ok(200, sink.srv.URL+"/platform", "app.published")

	// Its delivery log: an app published by the operator arrives, signed.
	dev := signIn(t, p, "dev@partner.example")
	dev.do("POST", "/api/0/organizations/", map[string]string{"name": "Partner"}).ok(t, 201, nil)
	submittedApp(t, dev, "Pager Bot", "pager-bot")
	op.get("/admin/review/pager-bot")
	op.post("/admin/review/pager-bot/approve", nil).ok(200)
	got := sink.waitEvent(t, "app.published", 10*time.Second)
	verify(t, secret, got)
	waitFor(t, 5*time.Second, func() bool {
		return strings.Contains(op.get(base).ok(200, "Delivery log", "app.published").Body, "Succeeded")
	})
	did := got.Header.Get("Webhook-Id")
	op.get(base+"/deliveries/"+did).ok(200, did, "pager-bot", "HTTP 200")
	op.post(base+"/deliveries/"+did+"/redeliver", nil).ok(200, "Queued the delivery again")
	sink.waitHits(t, 2, 10*time.Second)

	// Edit: a bad change is refused beside its field; a good one saved.
	op.get(base)
	op.post(base, url.Values{"url": {sink.srv.URL + "/platform"}, "status": {"enabled"}}).ok(400).fieldError("eventTypes")
	op.post(base, url.Values{"url": {sink.srv.URL + "/v2"}, "eventTypes": {"app.unpublished"}, "status": {"disabled"}}).ok(200, "Saved the host endpoint", "/v2", "Disabled")
	// Rotate, shown once; delete after confirming.
	op.get(base+"/rotate-secret").ok(200, "Rotate the signing secret")
	pg = op.post(base+"/rotate-secret", nil).ok(200, "New signing secret")
	if s := secretsOn(pg)["host-secret"]; !strings.HasPrefix(s, "whsec_") || s == secret {
		t.Errorf("rotated secret %q", s)
	}
	user.get(base).ok(404)
	user.post(base+"/delete", nil).ok(404)
	op.get(base+"/delete").ok(200, "Delete the host endpoint")
	op.post(base+"/delete", nil).ok(200, "Deleted the host endpoint").at("/admin/host-endpoints")
	op.get(base).ok(404)
}

func TestHostEndpointReceivesConfigUpdated(t *testing.T) {
	p := apptest.Start(t, fastRetries)
	op := operator(t, p, "ops@plugboard.example")
	host := newSink(t)
	ep := newHostEndpoint(t, op, host, "installation.config_updated")
	dev := signUp(t, p, "dev@partner.example")
	dev.do("POST", "/api/0/organizations/", map[string]string{"name": "Partner"}).ok(t, 201, nil)
	app := decode[plugboard.App](t, dev.do("POST", "/api/0/organizations/partner/apps/", map[string]any{
		"name": "Cfg Bot", "kind": "internal", "scopes": []string{"org:read"}}), 201)
	tok := newClient(t, p, app.Token)
	const value = "postgres://user:hunter2@db.example/cfg"
	tok.do("PUT", "/api/0/installations/"+app.Installation.UUID+"/config-vars/", map[string]any{"vars": map[string]any{"CFG_BOT_URL": value}}).ok(t, 200, nil)

	var data struct {
		hostInstallationData
		Changed []string `json:"changed"`
	}
	got, _ := hostEvent(t, host, ep.Secret, "installation.config_updated", &data)
	if data.Installation.UUID != app.Installation.UUID || data.Organization.Slug != "partner" || len(data.Changed) != 1 || data.Changed[0] != "CFG_BOT_URL" {
		t.Errorf("installation.config_updated data %s", got.Body)
	}
	if strings.Contains(string(got.Body), "hunter2") {
		t.Errorf("a config var value reached the host endpoint: %s", got.Body)
	}
	log := decode[[]plugboard.Delivery](t, op.do("GET", "/api/0/host-endpoints/"+ep.ID+"/deliveries/?eventType=installation.config_updated", nil), 200)
	if len(log) != 1 {
		t.Errorf("log %+v", log)
	}
}
