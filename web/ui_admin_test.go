package web_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/plugboard/plugboard/cmd/platform/apptest"
	"github.com/plugboard/plugboard/marketplace"
	"github.com/plugboard/plugboard/sdk/plugboard"
)

// submittedApp creates a public app in the partner's organization and
// submits it for review.
func submittedApp(t *testing.T, dev *client, name, slug string) {
	t.Helper()
	dev.do("POST", "/api/0/organizations/partner/apps/", publicApp(name)).ok(t, 201, nil)
	dev.do("POST", "/api/0/apps/"+slug+"/plans/", map[string]any{"name": "Starter", "price": "12"}).ok(t, 201, nil)
	dev.do("POST", "/api/0/apps/"+slug+"/publish-requests/", nil).ok(t, 201, nil)
}

func appStatus(t *testing.T, dev *client, slug string) plugboard.App {
	t.Helper()
	return decode[plugboard.App](t, dev.do("GET", "/api/0/apps/"+slug+"/", nil), 200)
}

// as returns the browser reporting failures to t (a subtest), sharing its
// cookies.
func (b *browser) as(t testing.TB) *browser {
	c := *b
	c.t = t
	return &c
}

func TestAdminPages(t *testing.T) {
	p := apptest.Start(t)
	dev := signUp(t, p, "dev@partner.example")
	dev.do("POST", "/api/0/organizations/", map[string]string{"name": "Partner"}).ok(t, 201, nil)
	submittedApp(t, dev, "Pager Bot", "pager-bot")
	submittedApp(t, dev, "Second Bot", "second-bot")
	operator(t, p, "ops@plugboard.example")
	op := uiSignIn(t, p, "ops@plugboard.example")
	user := uiSignIn(t, p, "dev@partner.example")

	pages := []string{"/admin/", "/admin/review", "/admin/review/pager-bot", "/admin/event-types", "/admin/reconciliation"}

	t.Run("only operators see the pages", func(t *testing.T) {
		user := user.as(t)
		for _, path := range pages {
			user.get(path).ok(404)
			newBrowser(t, p).get(path).ok(200, "Sign in").at("/login")
		}
		if pg := user.get("/orgs/partner/installations").ok(200); strings.Contains(pg.Body, `href="/admin/"`) {
			t.Error("a non-operator is shown the Operators link")
		}
		user.post("/admin/review/pager-bot/approve", nil).ok(404)
		user.post("/admin/event-types", url.Values{"name": {"issue.created"}, "scope": {"issue:read"}}).ok(404)
		if appStatus(t, dev, "pager-bot").Status != "submitted" {
			t.Fatal("a non-operator changed the review")
		}
	})

	t.Run("every page renders for an operator", func(t *testing.T) {
		op := op.as(t)
		op.get("/admin").ok(200, "Operators").at("/admin/")
		op.get("/admin/").ok(200, "Operators", "Awaiting review", `href="/admin/queues"`, `aria-current="page">Operators`, "No run yet")
		op.get("/admin/review").ok(200, "Review queue", "Pager Bot", "Second Bot", "Partner", "org:read", `href="/admin/review/pager-bot"`)
		op.get("/admin/review/pager-bot").ok(200, "Pager Bot", "Pages the on-call person", "Read the organization&#39;s name and settings",
			"https://partner.example/webhooks", "https://partner.example/setup", "installation.created", "Starter", "Approve and publish", "Reject")
		op.get("/admin/event-types").ok(200, "Event types", "installation.created", "Built in", "Add an event type")
		op.get("/admin/reconciliation").ok(200, "Reconciliation runs", "No runs yet")
		op.get("/admin/review/no-such-app").ok(404)
	})

	t.Run("reject needs a reason", func(t *testing.T) {
		op := op.as(t)
		op.get("/admin/review/pager-bot").ok(200)
		pg := op.post("/admin/review/pager-bot/reject", url.Values{"statusReason": {"  "}}).ok(400, "Pager Bot")
		pg.fieldError("statusReason")
		op.post("/admin/review/pager-bot/reject", url.Values{"statusReason": {"No."}, "csrf": {"forged"}}).ok(403)
		if appStatus(t, dev, "pager-bot").Status != "submitted" {
			t.Fatal("a refused rejection changed the app")
		}
		op.get("/admin/review/pager-bot").ok(200)
		op.post("/admin/review/pager-bot/reject", url.Values{"statusReason": {"The overview does not say what it does with member data."}}).
			ok(200, "Pager Bot was rejected").at("/admin/review")
		app := appStatus(t, dev, "pager-bot")
		if app.Status != "rejected" || app.StatusReason != "The overview does not say what it does with member data." {
			t.Errorf("rejected app %q / %q", app.Status, app.StatusReason)
		}
	})

	t.Run("approve publishes to the directory", func(t *testing.T) {
		op := op.as(t)
		op.get("/admin/review/second-bot").ok(200)
		op.post("/admin/review/second-bot/approve", url.Values{"csrf": {""}}).ok(403)
		if appStatus(t, dev, "second-bot").Status != "submitted" {
			t.Fatal("a forged approval published the app")
		}
		op.get("/admin/review/second-bot").ok(200)
		pg := op.post("/admin/review/second-bot/approve", nil).ok(200, "Second Bot is published").at("/admin/review")
		if strings.Contains(pg.Body, `href="/admin/review/second-bot"`) {
			t.Error("the published app is still in the queue")
		}
		if found := decode[[]plugboard.App](t, newClient(t, p, "").do("GET", "/api/0/apps/?query=second", nil), 200); len(found) != 1 || found[0].Slug != "second-bot" {
			t.Errorf("directory %v", slugs(found))
		}
		// Publishing twice is refused on the page, not with an error page.
		op.get("/admin/review/second-bot").ok(200, "This app is published")
		op.post("/admin/review/second-bot/approve", nil).ok(409, "cannot become published")
	})

	t.Run("event types", func(t *testing.T) {
		op := op.as(t)
		before := count(t, p, "event_types")
		op.get("/admin/event-types").ok(200)
		pg := op.post("/admin/event-types", url.Values{"name": {"Bad Name"}, "scope": {""}}).ok(400)
		pg.fieldError("name")
		pg.fieldError("scope")
		if !strings.Contains(pg.Body, `value="Bad Name"`) {
			t.Error("the form lost what was typed")
		}
		pg = op.post("/admin/event-types", url.Values{"name": {"issue.created"}, "scope": {"issue:read"}, "schema": {`{"type": "object",`}}).ok(400)
		pg.fieldError("schema")
		op.post("/admin/event-types", url.Values{"name": {"issue.created"}, "scope": {"issue:read"}, "schema": {`{"type": 12}`}}).ok(400).fieldError("schema")
		op.post("/admin/event-types", url.Values{"name": {"issue.created"}, "scope": {"issue:read"}, "csrf": {"forged"}}).ok(403)
		if count(t, p, "event_types") != before {
			t.Fatal("bad input wrote an event type")
		}
		op.get("/admin/event-types").ok(200)
		op.post("/admin/event-types", url.Values{"name": {"issue.created"}, "scope": {"issue:read"}, "description": {"An issue was opened."},
			"schema": {`{"type": "object", "properties": {"id": {"type": "string"}}}`}}).
			ok(200, "Added issue.created", "An issue was opened.", "issue:read").at("/admin/event-types")
		if count(t, p, "event_types") != before+1 {
			t.Error("the event type was not created")
		}
		op.get("/admin/").ok(200, "1 from the host")
	})

	t.Run("reconciliation runs and their findings", func(t *testing.T) {
		op := op.as(t)
		var appID int64
		p.App.DB.Raw("SELECT id FROM apps WHERE slug = 'second-bot'").Row().Scan(&appID)
		now := time.Now()
		for _, r := range []marketplace.Run{
			{Job: marketplace.JobGrants, Slot: "slot-1", StartedAt: now.Add(-time.Hour), FinishedAt: &now, Examined: 3, Found: 1, Repaired: 1,
				Errors: marketplace.Strings{}, Findings: []marketplace.Finding{{AppID: appID, InstallationUUID: "6f1c2a9e-0000-4000-8000-000000000001",
					Reason: marketplace.ReasonNeverExchanged, Action: "marked out of sync", Repaired: true, CreatedAt: now}}},
			{Job: marketplace.JobPartnerSync, Slot: "slot-2", StartedAt: now, FinishedAt: &now, Examined: 1, Errors: marketplace.Strings{"sync endpoint answered 500"}},
		} {
			if err := p.App.DB.Create(&r).Error; err != nil {
				t.Fatal(err)
			}
		}
		op.get("/admin/reconciliation").ok(200, "Unexchanged grant", "Partner sync", "6f1c2a9e-0000-4000-8000-000000000001",
			"Token never exchanged", "marked out of sync", "sync endpoint answered 500")
		pg := op.get("/admin/reconciliation?job=partner_sync").ok(200, "Partner sync", `<option value="partner_sync" selected>`)
		if strings.Contains(pg.Body, "6f1c2a9e") {
			t.Error("the job filter kept other jobs' runs")
		}
		op.get("/admin/").ok(200, "Recent runs with findings", "Unexchanged grant")
	})
}
