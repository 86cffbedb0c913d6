package web_test

import (
	"errors"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/plugboard/plugboard/marketplace"
	"github.com/plugboard/plugboard/sdk/plugboard"
)

var deliveryLinkRe = regexp.MustCompile(`href="/apps/hook-app/deliveries/([0-9a-f-]{36})"`)

// deliveryIDs are the deliveries a log page links to, in order.
func deliveryIDs(p *htmlPage) []string {
	var out []string
	seen := map[string]bool{}
	for _, m := range deliveryLinkRe.FindAllStringSubmatch(p.Body, -1) {
		if !seen[m[1]] {
			seen[m[1]] = true
			out = append(out, m[1])
		}
	}
	return out
}

// waitPage reloads path until it shows text.
func waitPage(t *testing.T, b *browser, path, text string) *htmlPage {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		pg := b.get(path)
		if pg.Status == 200 && strings.Contains(pg.Body, text) {
			return pg
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never showed %q\n%s", path, text, excerpt(pg.Body))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestDeliveryPages(t *testing.T) {
	h := newHooks(t)
	waitDelivery(t, h, "installation.created", "succeeded")
	dev := uiSignIn(t, h.p, "dev@partner.example")
	const log = "/apps/hook-app/deliveries"
	var created string

	t.Run("the log shows the delivery with its installation and answer", func(t *testing.T) {
		dev.t = t
		pg := dev.get(log).ok(200, "Delivery log", "installation.created", "Succeeded", "HTTP 200", h.inst[:8], "Customer",
			h.sink.srv.URL+"/hooks", `aria-current="page">Deliveries`)
		ids := deliveryIDs(pg)
		if len(ids) != 1 {
			t.Fatalf("deliveries listed: %v", ids)
		}
		created = ids[0]
	})

	t.Run("filters narrow the list", func(t *testing.T) {
		dev.t = t
		h.publish(t, "Disk full")
		waitDelivery(t, h, "issue.created", "succeeded")
		now := time.Now().UTC()
		cases := []struct {
			query string
			want  int
		}{
			{"", 2},
			{"?status=succeeded", 2},
			{"?status=failed", 0},
			{"?eventType=issue.created", 1},
			{"?eventType=installation.created", 1},
			{"?installation=" + h.inst, 2},
			{"?since=" + now.Add(-time.Hour).Format("2006-01-02T15:04"), 2},
			{"?until=" + now.Add(-time.Hour).Format("2006-01-02T15:04"), 0},
			{"?eventType=issue.created&status=succeeded&since=" + url.QueryEscape(now.Add(-time.Hour).Format("2006-01-02T15:04")), 1},
		}
		for _, tc := range cases {
			pg := dev.get(log + tc.query).ok(200)
			if got := len(deliveryIDs(pg)); got != tc.want {
				t.Errorf("%s: %d deliveries, want %d", tc.query, got, tc.want)
			}
			if tc.want == 0 && !strings.Contains(pg.Body, "No deliveries match these filters") {
				t.Errorf("%s: no empty state", tc.query)
			}
		}
		// Pages, newest first, keep the filters.
		first := dev.get(log+"?limit=1&status=succeeded").ok(200, `rel="next"`)
		next := regexp.MustCompile(`href="(\?[^"]+)" rel="next"|rel="next" href="(\?[^"]+)"`).FindStringSubmatch(first.Body)
		if next == nil {
			t.Fatal("no link to older deliveries")
		}
		second := dev.get(log+html.UnescapeString(next[1]+next[2])).ok(200, `rel="prev"`, `<option value="succeeded" selected>`)
		if a, b := deliveryIDs(first), deliveryIDs(second); len(a) != 1 || len(b) != 1 || a[0] == b[0] || b[0] != created {
			t.Errorf("pages %v then %v", a, b)
		}
		// The filter form keeps its values.
		dev.get(log+"?eventType=issue.created&status=succeeded").ok(200, `<option value="issue.created" selected>`, `<option value="succeeded" selected>`, "Clear")
	})

	t.Run("bad filters show beside the field", func(t *testing.T) {
		dev.t = t
		for query, field := range map[string]string{
			"?status=lost":             "filter-status",
			"?installation=not-a-uuid": "filter-installation",
			"?since=yesterday":         "filter-since",
			"?since=2026-01-02T10:00&until=2026-01-01T10:00": "filter-until",
		} {
			dev.get(log + query).ok(400).fieldError(field)
		}
		// Filtering in place with htmx gets a 200 so the errors are swapped in.
		req, _ := http.NewRequest(http.MethodGet, h.p.URL+log+"?status=lost", nil)
		req.Header.Set("HX-Request", "true")
		dev.do(req).ok(200).fieldError("filter-status")
	})

	t.Run("the detail shows the payload, headers and answer", func(t *testing.T) {
		dev.t = t
		dev.get(log+"/"+created).ok(200, created, "installation.created", `&#34;type&#34;: &#34;installation.created&#34;`,
			"webhook-id", "webhook-signature", "Request headers", "Response headers", `&#34;received&#34;: 1`, "#1", "HTTP 200", h.sink.srv.URL+"/hooks", "Customer")
		dev.get(log + "/00000000-0000-0000-0000-000000000000").ok(404)
		dev.get(log + "/nope").ok(404)
	})

	t.Run("redeliver sends another attempt", func(t *testing.T) {
		dev.t = t
		before := len(h.sink.all())
		dev.get(log + "/" + created)
		dev.post(log+"/"+created+"/redeliver", nil).ok(200, "Queued another attempt").at(log + "/" + created)
		got := h.sink.waitHits(t, before+1, 10*time.Second)[before]
		if got.Header.Get("Webhook-Id") != created {
			t.Errorf("redelivered with webhook-id %q", got.Header.Get("Webhook-Id"))
		}
		waitPage(t, dev, log+"/"+created, "#2")
	})

	t.Run("send a test event", func(t *testing.T) {
		dev.t = t
		dev.get(log)
		pg := dev.post("/apps/hook-app/test-events", nil).ok(200, "Sent a test event", "webhook.test")
		if !strings.HasPrefix(pg.URL.Path, log+"/") {
			t.Fatalf("landed on %s", pg.URL.Path)
		}
		id := strings.TrimPrefix(pg.URL.Path, log+"/")
		hits := h.sink.waitHits(t, 1, 10*time.Second)
		deadline := time.Now().Add(10 * time.Second)
		for !hasHit(hits, id) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
			hits = h.sink.all()
		}
		if !hasHit(hits, id) {
			t.Fatal("the test event never reached the endpoint")
		}
		waitPage(t, dev, pg.URL.Path, "HTTP 200")
	})

	t.Run("bulk redelivery: a bad range writes nothing", func(t *testing.T) {
		dev.t = t
		tasks := count(t, h.p, "audit_logs")
		dev.get(log)
		pg := dev.post("/apps/hook-app/redeliveries", url.Values{"since": {"2026-01-02T10:00"}, "until": {"2026-01-01T10:00"}}).ok(400, "Delivery log")
		pg.fieldError("until")
		if !strings.Contains(pg.Body, `value="2026-01-02T10:00"`) {
			t.Error("the form lost what was typed")
		}
		dev.post("/apps/hook-app/redeliveries", url.Values{"since": {"last tuesday"}}).ok(400).fieldError("since")
		if count(t, h.p, "audit_logs") != tasks {
			t.Error("a bad range was recorded as a redelivery")
		}
	})

	t.Run("bulk redelivery sends failed deliveries again", func(t *testing.T) {
		dev.t = t
		down := h.sink.failing(500)
		h.publish(t, "Outage")
		waitDelivery(t, h, "issue.created", "failed")
		down.Store(false)
		dev.get(log)
		now := time.Now().UTC()
		dev.post("/apps/hook-app/redeliveries", url.Values{"since": {now.Add(-time.Hour).Format("2006-01-02T15:04")}, "until": {now.Add(time.Hour).Format("2006-01-02T15:04")}}).
			ok(200, "Queued 1 delivery to be sent again")
		waitDelivery(t, h, "issue.created", "succeeded")
		dev.post("/apps/hook-app/redeliveries", nil).ok(200, "No failed deliveries in that range")
	})

	t.Run("re-enable a disabled endpoint", func(t *testing.T) {
		dev.t = t
		h.dev.do("PUT", "/api/0/apps/hook-app/", map[string]any{"webhookStatus": "disabled"}).ok(t, 200, nil)
		dev.get(log).ok(200, "Re-enable webhooks", "Disabled by dev@partner.example")
		dev.post("/apps/hook-app/endpoint/enable", nil).ok(200, "Webhooks are enabled again").at(log)
		if app := decode[plugboard.App](t, h.dev.do("GET", "/api/0/apps/hook-app/", nil), 200); app.WebhookStatus != "enabled" {
			t.Errorf("webhook status %q", app.WebhookStatus)
		}
		if strings.Contains(dev.get(log).Body, "Re-enable webhooks") {
			t.Error("still offers to re-enable")
		}
		dev.post("/apps/hook-app/endpoint/enable", nil).ok(200, "Webhooks are already enabled")
	})

	t.Run("forms need the CSRF token", func(t *testing.T) {
		dev.t = t
		before := count(t, h.p, "deliveries")
		for _, path := range []string{"/apps/hook-app/test-events", "/apps/hook-app/redeliveries", "/apps/hook-app/endpoint/enable", log + "/" + created + "/redeliver"} {
			dev.post(path, url.Values{"csrf": {"forged"}}).ok(403)
		}
		if count(t, h.p, "deliveries") != before {
			t.Error("a forged form sent a test event")
		}
	})

	t.Run("only the app's organization sees them", func(t *testing.T) {
		dev.t = t
		outsider := uiSignIn(t, h.p, "admin@customer.example")
		for _, path := range []string{log, log + "/" + created, "/apps/hook-app/health"} {
			outsider.get(path).ok(404)
		}
		outsider.get("/apps/hook-app/health") // a page with the outsider's token
		before := count(t, h.p, "deliveries")
		outsider.post("/apps/hook-app/test-events", nil).ok(404)
		outsider.post(log+"/"+created+"/redeliver", nil).ok(404)
		if count(t, h.p, "deliveries") != before {
			t.Error("an outsider sent a test event")
		}
		anon := newBrowser(t, h.p)
		anon.get(log).ok(200, "Sign in").at("/login")
		anon.get("/apps/hook-app/health").at("/login")
	})

	t.Run("members see the log without the admin actions", func(t *testing.T) {
		dev.t = t
		signUp(t, h.p, "member@partner.example")
		h.dev.do("POST", "/api/0/organizations/partner/members/", map[string]any{"email": "member@partner.example", "role": "member"}).ok(t, 201, nil)
		m := uiSignIn(t, h.p, "member@partner.example")
		pg := m.get(log).ok(200, "installation.created")
		if strings.Contains(pg.Body, `action="/apps/hook-app/test-events"`) {
			t.Error("a member is offered the test event")
		}
		m.get(log).ok(200)
		m.post("/apps/hook-app/test-events", nil).ok(403)
	})

	t.Run("health with data", func(t *testing.T) {
		dev.t = t
		var appID int64
		if err := h.p.App.DB.Table("apps").Where("slug = ?", "hook-app").Pluck("id", &appID).Error; err != nil {
			t.Fatal(err)
		}
		run := marketplace.Run{Job: marketplace.JobPartnerSync, AppID: &appID, Slot: "test", StartedAt: time.Now().Add(-time.Minute), Examined: 3, Found: 1, Repaired: 1,
			Errors:   marketplace.Strings{"sync endpoint answered 502 once"},
			Findings: []marketplace.Finding{{AppID: appID, InstallationUUID: h.inst, Reason: "unknown_here", Action: "sent installation.deleted", Repaired: true}}}
		if err := h.p.App.DB.Create(&run).Error; err != nil {
			t.Fatal(err)
		}
		pg := dev.get("/apps/hook-app/health").ok(200, "Delivery health", `aria-current="page">Health`, `aria-current="page">Last 24 hours`,
			`<svg class="chart"`, "Success rate", "p95", "p99", "http_status", "Failed attempts by error class",
			"Reconciliation reports", "partner_sync", h.inst, "Unknown here", "sent installation.deleted", "sync endpoint answered 502 once")
		if strings.Contains(pg.Body, "No attempts in this range") {
			t.Error("the health page shows no data")
		}
		// Rate and three percentiles: lines, or dots when one period has data.
		if n := strings.Count(pg.Body, "<circle ") + strings.Count(pg.Body, `stroke-linejoin="round"`); n < 4 {
			t.Errorf("%d series drawn", n)
		}
		if !strings.Contains(pg.Body, "· http_status: 3</title></rect>") {
			t.Error("no bar for the failed attempts")
		}
		for _, r := range []string{"7d", "30d"} {
			dev.get("/apps/hook-app/health?range="+r).ok(200, `<svg class="chart"`, `aria-current="page">Last `)
		}
		dev.get("/apps/hook-app/health?range=1y").ok(400)
	})

	t.Run("the installation filter keeps an installation beyond the first page", func(t *testing.T) {
		dev.t = t
		// 100 later installations of the app, since uninstalled, come first
		// in the app's list of installations.
		if err := h.p.App.DB.Exec(`INSERT INTO installations (uuid, app_id, organization_id, status)
			SELECT gen_random_uuid(), app_id, organization_id, 'deleted' FROM installations, generate_series(1, 100) WHERE uuid = ?`, h.inst).Error; err != nil {
			t.Fatal(err)
		}
		pg := dev.get(log+"?installation="+h.inst).ok(200, `<option value="`+h.inst+`" selected>Customer · `+h.inst[:8]+`</option>`)
		if len(deliveryIDs(pg)) == 0 {
			t.Error("the filter lost the deliveries")
		}
	})

	t.Run("health without data", func(t *testing.T) {
		dev.t = t
		h.dev.do("POST", "/api/0/organizations/partner/apps/", publicApp("Quiet App")).ok(t, 201, nil)
		dev.get("/apps/quiet-app/health").ok(200, "No attempts in this range", "No reconciliation runs yet", "No failed attempts in this range")
		dev.get("/apps/quiet-app/deliveries").ok(200, "No deliveries yet", "Send test event")
	})

	t.Run("the audit log filter offers every action the log shows", func(t *testing.T) {
		dev.t = t
		pg := dev.get("/orgs/partner/audit-log?limit=100").ok(200, "<code>app.redeliver</code>")
		for _, m := range regexp.MustCompile(`<td><code>([a-z_.]+)</code></td>`).FindAllStringSubmatch(pg.Body, -1) {
			if !strings.Contains(pg.Body, `<option value="`+m[1]+`"`) {
				t.Errorf("the filter does not offer %s", m[1])
			}
		}
	})

	t.Run("the app's organization is the current one", func(t *testing.T) {
		dev.t = t
		dev.uiOrg("Side Project") // now the remembered organization
		for _, path := range []string{log, log + "/" + created, "/apps/hook-app/health"} {
			dev.get(path).ok(200, `<a href="/orgs/partner/apps" aria-current="page">Developer</a>`)
		}
	})
}

func hasHit(hits []hit, id string) bool {
	for _, x := range hits {
		if x.Header.Get("Webhook-Id") == id {
			return true
		}
	}
	return false
}

// TestAppInstallationOrgsUsesUUIDIndex: the delivery log names the
// organization of each delivery's installation; for an app with many
// installations that lookup must go by the installations' uuid index, not
// through every installation of the app.
func TestAppInstallationOrgsUsesUUIDIndex(t *testing.T) {
	w := newWorld(t, false)
	p := w.p
	inst, _ := w.install(t, "free")
	uuid := inst.UUID

	var captured []string
	db := p.App.DB
	if err := db.Callback().Row().After("gorm:row").Register("test:capture_installation_orgs", func(tx *gorm.DB) {
		if sql := tx.Statement.SQL.String(); strings.Contains(sql, "organizations.name") && strings.Contains(sql, "installations.app_id") {
			captured = append(captured, tx.Dialector.Explain(sql, tx.Statement.Vars...))
		}
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Callback().Row().Remove("test:capture_installation_orgs") })

	got, err := p.App.Marketplace.Deliveries.AppInstallationOrgs(t.Context(), signInActor(t, p, "dev@partner.example"), "flow-app", []string{uuid, "not-a-uuid"})
	if err != nil {
		t.Fatal(err)
	}
	if got[uuid] != "Customer" || len(got) != 1 {
		t.Fatalf("organizations %v", got)
	}
	if len(captured) != 1 {
		t.Fatalf("captured %d queries", len(captured))
	}
	// Without the per-app index (dropped in a transaction rolled back
	// below), only the uuid index can find the rows without a scan.
	var plan []string
	errRollback := errors.New("rollback")
	err = db.Transaction(func(tx *gorm.DB) error {
		for _, stmt := range []string{"SET LOCAL enable_seqscan = off", "DROP INDEX installations_app_idx"} {
			if err := tx.Exec(stmt).Error; err != nil {
				return err
			}
		}
		if err := tx.Raw("EXPLAIN " + captured[0]).Scan(&plan).Error; err != nil {
			return err
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(plan, "\n"), "installations_uuid_key") {
		t.Errorf("the lookup does not use the uuid index:\n%s\n%s", captured[0], strings.Join(plan, "\n"))
	}
}
