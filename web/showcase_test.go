package web_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/plugboard/plugboard/cmd/platform/apptest"
	"github.com/plugboard/plugboard/config"
	"github.com/plugboard/plugboard/sdk/plugboard"
)

// showcase is a platform with a lived-in look, for screenshots and the page
// benchmark: a partner organization with published apps, a customer that
// installed some of them, a delivery log with history, an app awaiting
// review and a reconciliation run with findings.
type showcase struct {
	p                  *apptest.Platform
	ops, dev, customer *client
	devOrg, custOrg    string
	app                string // the partner's app with the busy delivery log
	installation       string // its installation in the customer's organization
	delivery           string // one delivery of it, with attempts
	uninstalled        string // an app the customer has not installed
}

var showcaseApps = []struct {
	name, category, overview string
	scopes                   []string
}{
	{"PagerPal", "alerting", "Pages the right person when an incident opens, escalates when nobody answers, and posts the timeline back when it resolves.", []string{"org:read", "member:read", "incident:read"}},
	{"Slackline", "communication", "Sends incidents, deploys and review requests to the right Slack channel, with buttons to acknowledge them without leaving the chat.", []string{"org:read", "incident:read"}},
	{"ShipIt CI", "ci-cd", "Runs your pipelines on every push and reports status, duration and flaky tests next to each deploy.", []string{"org:read", "event:write"}},
	{"Tracklight", "issue-tracking", "Turns incidents into tracked issues with owners and due dates, and closes them when the incident resolves.", []string{"org:read", "member:read", "incident:read"}},
	{"Vault Watch", "security", "Watches for leaked credentials in events and alerts the owners before anyone else finds them.", []string{"org:read", "incident:read"}},
	{"Metricly", "analytics", "Dashboards of incident volume, time to acknowledge and time to resolve, per team and per service.", []string{"org:read", "incident:read"}},
	{"DeployBot", "deployment", "Ships releases on a schedule, holds them during incidents and announces what changed.", []string{"org:read", "event:write"}},
}

// seedShowcase builds the showcase; history is how many past deliveries the
// busy app's log holds (written directly, as the dispatcher would have).
func seedShowcase(t testing.TB, history int) *showcase {
	t.Helper()
	var hits atomic.Int64
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/sync":
			// The partner lost its installation in Northwind and knows one
			// Plugboard never made.
			_ = json.NewEncoder(w).Encode(map[string]any{"installations": []string{"7d1c5a52-3f0b-4c1e-9a55-0d2b8c1f9e10"}, "nextCursor": ""})
		case "/setup":
			io.WriteString(w, "connected")
		default:
			_, _ = io.Copy(io.Discard, r.Body)
			if hits.Add(1)%9 == 0 {
				w.WriteHeader(http.StatusServiceUnavailable)
				io.WriteString(w, `{"error":"upstream busy"}`)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"ok":true}`)
		}
	}))
	t.Cleanup(sink.Close)

	p := apptest.Start(t, func(c *config.Config) {
		c.WebhookRetrySchedule = "0s,200ms,400ms"
		c.ReconcileInterval = time.Hour
	})
	sc := &showcase{p: p, devOrg: "acme-integrations", custOrg: "northwind-traders", app: "flow", uninstalled: "slackline"}
	sc.ops = operator(t, p, "olive@plugboard.example")
	sc.ops.do("POST", "/api/0/event-types/", map[string]any{"name": "incident.opened", "scope": "incident:read",
		"description": "An incident was opened in the organization.",
		"schema": map[string]any{"type": "object", "required": []string{"id", "title"},
			"properties": map[string]any{"id": map[string]any{"type": "string"}, "title": map[string]any{"type": "string"}, "severity": map[string]any{"type": "string"}}}}).ok(t, 201, nil)
	sc.ops.do("POST", "/api/0/event-types/", map[string]any{"name": "incident.resolved", "scope": "incident:read",
		"description": "An incident was resolved."}).ok(t, 201, nil)

	sc.dev = signUpNamed(t, p, "dana@acme.example", "Dana Whitfield")
	sc.dev.do("POST", "/api/0/organizations/", map[string]string{"name": "Acme Integrations"}).ok(t, 201, nil)
	sc.customer = signUpNamed(t, p, "sam@northwind.example", "Sam Okafor")
	sc.customer.do("POST", "/api/0/organizations/", map[string]string{"name": "Northwind Traders"}).ok(t, 201, nil)
	for email, name := range map[string]string{"lee@northwind.example": "Lee Park", "kim@northwind.example": "Kim Alvarez"} {
		signUpNamed(t, p, email, name)
		sc.customer.do("POST", "/api/0/organizations/northwind-traders/members/", map[string]string{"email": email, "role": "member"}).ok(t, 201, nil)
	}

	publish := func(name, category, overview string, scopes []string, extra map[string]any) string {
		t.Helper()
		body := map[string]any{"name": name, "author": "Acme Integrations", "overview": overview, "categories": []string{category},
			"scopes": scopes, "events": []string{"installation.created", "installation.deleted"},
			"webhookUrl": sink.URL + "/hooks/" + strings.ToLower(strings.ReplaceAll(name, " ", "-")), "redirectUrl": sink.URL + "/setup"}
		for k, v := range extra {
			body[k] = v
		}
		slug := decode[plugboard.App](t, sc.dev.do("POST", "/api/0/organizations/acme-integrations/apps/", body), 201).Slug
		sc.dev.do("POST", "/api/0/apps/"+slug+"/plans/", map[string]any{"name": "Free", "description": "Up to 5 users."}).ok(t, 201, nil)
		sc.dev.do("POST", "/api/0/apps/"+slug+"/plans/", map[string]any{"name": "Team", "price": "29", "description": "Unlimited users and priority support."}).ok(t, 201, nil)
		sc.dev.do("POST", "/api/0/apps/"+slug+"/publish-requests/", nil).ok(t, 201, nil)
		return slug
	}
	for _, a := range showcaseApps {
		slug := publish(a.name, a.category, a.overview, a.scopes, nil)
		sc.ops.do("PUT", "/api/0/apps/"+slug+"/", map[string]any{"status": "published"}).ok(t, 200, nil)
	}
	publish("Flow", "developer-tools", "Turns incidents into runbooks: every incident.opened starts the matching flow, and its steps report back as they finish.",
		[]string{"org:read", "incident:read"}, map[string]any{"events": []string{"installation.created", "installation.updated", "installation.deleted", "incident.opened", "incident.resolved"},
			"syncUrl": sink.URL + "/sync"})
	sc.ops.do("PUT", "/api/0/apps/flow/", map[string]any{"status": "published"}).ok(t, 200, nil)
	publish("Standup Bot", "communication", "Collects stand-up notes in chat every morning and posts a summary for the team.", []string{"org:read", "member:read"}, nil)

	for _, slug := range []string{"pagerpal", "tracklight", "metricly", "flow"} {
		inst := decode[plugboard.Installation](t, sc.customer.do("POST", "/api/0/organizations/northwind-traders/installations/", map[string]any{"app": slug, "plan": "team"}), 201)
		if slug == "flow" {
			sc.installation = inst.UUID
		}
	}
	seedHistory(t, p, sc, history)
	// Live traffic through the real pipeline: some answered 503, retried.
	for i := range 30 {
		sc.customer.do("POST", "/api/0/organizations/northwind-traders/events/", map[string]any{"type": "incident.opened",
			"data": map[string]any{"id": fmt.Sprintf("inc_%04d", 1200+i), "title": "Checkout latency above 2 s", "severity": "high"}}).ok(t, 201, nil)
	}
	if _, err := p.App.Marketplace.Reconciler.RunJob(t.Context(), "partner_sync"); err != nil {
		t.Fatal(err)
	}

	deadline := time.Now().Add(20 * time.Second)
	for {
		var pending int64
		p.App.DB.Table("deliveries").Where("status = 'pending'").Count(&pending)
		if pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			var left []map[string]any
			p.App.DB.Raw(`SELECT d.id, a.slug, d.event_type, d.attempts, d.next_attempt_at, d.claimed_until, d.enqueued_at, d.last_error_class,
				d.last_status_code, q.status AS queued, q.next_attempt_at AS queue_due, now() AS now
				FROM deliveries d LEFT JOIN apps a ON a.id = d.app_id LEFT JOIN delivery_queue q ON q.delivery_id = d.id
				WHERE d.status = 'pending' ORDER BY d.id`).Scan(&left)
			ins := asynq.NewInspectorFromRedisClient(p.App.Redis)
			var tasks []string
			for _, list := range []func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error){ins.ListPendingTasks, ins.ListActiveTasks, ins.ListScheduledTasks, ins.ListRetryTasks, ins.ListArchivedTasks} {
				got, _ := list("webhooks")
				for _, ti := range got {
					tasks = append(tasks, fmt.Sprintf("%s %s %s next %s err %q", ti.Type, ti.ID, ti.State, ti.NextProcessAt.Format("15:04:05.000"), ti.LastErr))
				}
			}
			t.Fatalf("%d deliveries still pending: %v; tasks of the webhooks queue: %v", pending, left, tasks)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// A live delivery (really signed and sent) that needed a retry.
	if err := p.App.DB.Raw(`SELECT d.uuid FROM deliveries d JOIN events e ON e.id = d.event_id
		WHERE d.app_id = (SELECT id FROM apps WHERE slug = 'flow') AND e.created_by <> 'history'
		AND d.attempts > 1 AND d.status = 'succeeded' ORDER BY d.event_type = 'incident.opened' DESC, d.id DESC LIMIT 1`).Scan(&sc.delivery).Error; err != nil || sc.delivery == "" {
		t.Fatalf("no retried delivery to show: %v", err)
	}
	return sc
}

func signUpNamed(t testing.TB, p *apptest.Platform, email, name string) *client {
	t.Helper()
	newClient(t, p, "").do("POST", "/api/0/users/", map[string]string{"email": email, "name": name, "password": "correct horse battery"}).ok(t, 201, nil)
	return signIn(t, p, email)
}

// seedHistory writes n past deliveries of the busy app, spread over the
// last 7 days in the order they happened, each with its attempts: mostly fast successes, some slow, some
// failing with 5xx, timeouts or refused connections.
func seedHistory(t testing.TB, p *apptest.Platform, sc *showcase, n int) {
	t.Helper()
	if n == 0 {
		return
	}
	err := p.App.DB.Exec(`
WITH inst AS (
  SELECT i.id, i.uuid, i.app_id, i.organization_id FROM installations i WHERE i.uuid = ?
), ev AS (
  INSERT INTO events (uuid, organization_id, type, data, created_by, created_at)
  SELECT gen_random_uuid(), inst.organization_id, 'incident.opened',
         jsonb_build_object('id', 'inc_' || g, 'title', 'Error rate above 1% on checkout', 'severity', 'high'), 'history', now() - interval '1 minute' - (?::int - g) * (interval '7 days' / ?::int)
  FROM inst, generate_series(1, ?) g
  RETURNING id, organization_id, created_at
), d AS (
  INSERT INTO deliveries (uuid, event_id, app_id, installation_id, installation_uuid, organization_id, event_type, status,
                          attempts, max_attempts, last_attempt_at, last_status_code, last_error_class, created_at, completed_at)
  SELECT gen_random_uuid(), ev.id, inst.app_id, inst.id, inst.uuid, ev.organization_id, 'incident.opened',
         CASE WHEN ev.id % 41 = 0 THEN 'failed' ELSE 'succeeded' END,
         CASE WHEN ev.id % 41 = 0 THEN 3 WHEN ev.id % 13 = 0 THEN 2 ELSE 1 END, 3,
         ev.created_at + interval '2 seconds',
         CASE WHEN ev.id % 41 = 0 THEN 503 ELSE 200 END,
         CASE WHEN ev.id % 41 = 0 THEN 'http_status' ELSE '' END,
         ev.created_at, ev.created_at + interval '2 seconds'
  FROM ev, inst
  RETURNING id, app_id, status, attempts, created_at, uuid
)
INSERT INTO attempts (delivery_id, app_id, number, url, request_headers, response_status, response_headers, response_body,
                      duration_us, error_class, error_message, created_at)
SELECT d.id, d.app_id, a.n, 'https://hooks.flow.example/plugboard',
       jsonb_build_object('webhook-id', d.uuid, 'webhook-timestamp', extract(epoch FROM d.created_at)::bigint::text,
                          'webhook-signature', 'v1,' || encode(sha256(d.uuid::text::bytea), 'base64'),
                          'plugboard-event', 'incident.opened', 'content-type', 'application/json', 'user-agent', 'Plugboard-Webhooks/dev'),
       CASE WHEN a.n < d.attempts OR d.status = 'failed' THEN
              CASE WHEN d.id % 10 = 0 THEN NULL ELSE 503 END
            ELSE 200 END,
       '{"content-type": "application/json"}',
       CASE WHEN a.n < d.attempts OR d.status = 'failed' THEN '{"error":"upstream busy"}' ELSE '{"ok":true}' END,
       CASE WHEN (a.n < d.attempts OR d.status = 'failed') AND d.id % 10 = 0 THEN 15000000
            ELSE (12000 + 40000 * random() + CASE WHEN random() < 0.05 THEN 400000 * random() ELSE 0 END)::bigint END,
       CASE WHEN a.n < d.attempts OR d.status = 'failed' THEN CASE WHEN d.id % 10 = 0 THEN 'timeout' ELSE 'http_status' END ELSE '' END,
       CASE WHEN a.n < d.attempts OR d.status = 'failed' THEN CASE WHEN d.id % 10 = 0 THEN 'no response within 15s' ELSE 'HTTP 503' END ELSE '' END,
       d.created_at + (a.n - 1) * interval '1 second'
FROM d, LATERAL generate_series(1, d.attempts) AS a(n)`, sc.installation, n, n, n).Error
	if err != nil {
		t.Fatalf("seeding the delivery history: %v", err)
	}
}
