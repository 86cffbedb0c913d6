package web_test

import (
	"testing"

	"github.com/plugboard/plugboard/cmd/platform/apptest"
)

// BenchmarkPages renders every main page of the UI, over HTTP on loopback,
// with 10,000 deliveries in the busy app's log (issue: each under 100 ms
// server-side). Run: go test ./web/ -run '^$' -bench Pages -benchtime 20x
func BenchmarkPages(b *testing.B) {
	sc := seedShowcase(b, 10000)
	people := map[string]*browser{}
	as := func(email string) *browser {
		if people[email] == nil {
			people[email] = uiSignIn(b, sc.p, email)
		}
		return people[email]
	}
	pages := []struct{ name, who, path string }{
		{"marketplace", "sam@northwind.example", "/marketplace"},
		{"marketplace_search", "sam@northwind.example", "/marketplace?q=incident"},
		{"marketplace_app", "sam@northwind.example", "/marketplace/pagerpal"},
		{"install_consent", "sam@northwind.example", "/marketplace/" + sc.uninstalled + "/install"},
		{"installed_apps", "sam@northwind.example", "/orgs/" + sc.custOrg + "/installations"},
		{"installation", "sam@northwind.example", "/orgs/" + sc.custOrg + "/installations/" + sc.installation},
		{"members", "sam@northwind.example", "/orgs/" + sc.custOrg + "/members"},
		{"audit_log", "sam@northwind.example", "/orgs/" + sc.custOrg + "/audit-log"},
		{"partner_apps", "dana@acme.example", "/orgs/" + sc.devOrg + "/apps"},
		{"app_overview", "dana@acme.example", "/apps/" + sc.app + "/"},
		{"app_settings", "dana@acme.example", "/apps/" + sc.app + "/settings"},
		{"app_plans", "dana@acme.example", "/apps/" + sc.app + "/plans"},
		{"app_credentials", "dana@acme.example", "/apps/" + sc.app + "/credentials"},
		{"app_installations", "dana@acme.example", "/apps/" + sc.app + "/installations"},
		{"deliveries", "dana@acme.example", "/apps/" + sc.app + "/deliveries"},
		{"deliveries_failed", "dana@acme.example", "/apps/" + sc.app + "/deliveries?status=failed"},
		{"deliveries_by_installation", "dana@acme.example", "/apps/" + sc.app + "/deliveries?installation=" + sc.installation + "&eventType=incident.opened"},
		{"delivery", "dana@acme.example", "/apps/" + sc.app + "/deliveries/" + sc.delivery},
		{"health_24h", "dana@acme.example", "/apps/" + sc.app + "/health?range=24h"},
		{"health_7d", "dana@acme.example", "/apps/" + sc.app + "/health?range=7d"},
		{"health_30d", "dana@acme.example", "/apps/" + sc.app + "/health?range=30d"},
		{"admin", "olive@plugboard.example", "/admin/"},
		{"admin_review", "olive@plugboard.example", "/admin/review"},
		{"admin_review_app", "olive@plugboard.example", "/admin/review/standup-bot"},
		{"admin_event_types", "olive@plugboard.example", "/admin/event-types"},
		{"admin_reconciliation", "olive@plugboard.example", "/admin/reconciliation"},
		{"sign_in", "", "/login"},
	}
	for _, pg := range pages {
		var br *browser
		if pg.who == "" {
			br = newBrowser(b, sc.p)
		} else {
			br = as(pg.who)
		}
		br.t = b
		br.get(pg.path).ok(200) // warm, and fail early on a broken page
		b.Run(pg.name, func(b *testing.B) {
			br.t = b
			for b.Loop() {
				br.get(pg.path).ok(200)
			}
		})
	}
}

// BenchmarkDeepDeliveryPage renders the delivery page of an event nested
// 9,000 deep (54 KB; issue 14: it was a 162 MB page and ~560 MB of the
// server per view), over HTTP on loopback, and reports the page's size.
// Run: go test ./web/ -run '^$' -bench DeepDeliveryPage -benchmem -benchtime 20x
func BenchmarkDeepDeliveryPage(b *testing.B) {
	p := apptest.Start(b)
	team := signUp(b, p, "team@acme.example")
	team.do("POST", "/api/0/organizations/", map[string]string{"name": "Acme"}).ok(b, 201, nil)
	team.do("POST", "/api/0/organizations/acme/apps/", map[string]any{"name": "Deep Bot", "kind": "internal",
		"scopes": []string{"org:read"}, "events": []string{"installation.created"}, "webhookUrl": "https://internal.acme.example/hook"}).ok(b, 201, nil)
	var id string
	if err := p.App.DB.Raw("SELECT uuid FROM deliveries ORDER BY id DESC LIMIT 1").Scan(&id).Error; err != nil || id == "" {
		b.Fatalf("no delivery: %v", err)
	}
	if err := p.App.DB.Exec(`UPDATE events SET data = ?::jsonb WHERE id = (SELECT event_id FROM deliveries WHERE uuid = ?)`, deepJSON(9000), id).Error; err != nil {
		b.Fatal(err)
	}
	br := uiSignIn(b, p, "team@acme.example")
	path := "/apps/deep-bot/deliveries/" + id
	size := len(br.get(path).ok(200).Body)
	for b.Loop() {
		br.get(path).ok(200)
	}
	b.ReportMetric(float64(size), "page-bytes")
}
