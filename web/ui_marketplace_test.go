package web_test

import (
	"html"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

func TestMarketplacePages(t *testing.T) {
	w := newWorld(t, false)
	p := w.p

	t.Run("anyone browses, searches and filters the directory", func(t *testing.T) {
		b := newBrowser(t, p)
		b.get("/").at("/marketplace")
		b.get("/marketplace").ok(200, "Flow App", "Pages the on-call person", "Sign up")
		b.get("/marketplace?q=flow").ok(200, "Results for “flow”", "Flow App")
		if pg := b.get("/marketplace?q=nothing-like-this").ok(200, "No apps match"); strings.Contains(pg.Body, "Flow App") {
			t.Error("search did not narrow the list")
		}
		b.get("/marketplace?category=alerting").ok(200, "Flow App")

		// "Sign in" from a search returns to that search.
		pg := b.get("/marketplace?q=flow&category=alerting")
		m := regexp.MustCompile(`href="(/login\?next=[^"]+)"`).FindStringSubmatch(pg.Body)
		if m == nil {
			t.Fatal("no Sign in link")
		}
		login := b.get(html.UnescapeString(m[1])).ok(200)
		next := regexp.MustCompile(`name="next" value="([^"]*)"`).FindStringSubmatch(login.Body)
		if next == nil || html.UnescapeString(next[1]) != "/marketplace?q=flow&category=alerting" {
			t.Fatalf("the sign-in form returns to %v", next)
		}
		if pg := b.get("/marketplace?category=security").ok(200); strings.Contains(pg.Body, `href="/marketplace/flow-app"`) {
			t.Error("category did not narrow the list")
		}
	})

	t.Run("the app page says what it may do and what it costs", func(t *testing.T) {
		newBrowser(t, p).get("/marketplace/flow-app").ok(200, "Flow App",
			"Read the organization&#39;s name and settings", "See who belongs to the organization", // scopes in plain words
			"Free", "10.00 USD / month", `href="/marketplace/flow-app/install"`)
		newBrowser(t, p).get("/marketplace/no-such-app").ok(404)
	})

	t.Run("install: consent, then the partner's redirect URL with a code", func(t *testing.T) {
		b := uiSignIn(t, p, "admin@customer.example")
		b.get("/marketplace/flow-app/install").ok(200, "Install Flow App", "Customer", "Approve and install", w.partner.srv.Listener.Addr().String())
		before := count(t, p, "installations")
		// A plan that does not exist: the field says so and nothing is installed.
		pg := b.post("/marketplace/flow-app/install", url.Values{"org": {"customer"}, "plan": {"gold"}}).ok(400)
		pg.fieldError("plan")
		if count(t, p, "installations") != before {
			t.Fatal("a refused install wrote an installation")
		}
		pg = b.post("/marketplace/flow-app/install", url.Values{"org": {"customer"}, "plan": {"pro"}}).ok(200, "set-up page")
		if pg.URL.Host != w.partner.srv.Listener.Addr().String() || pg.URL.Path != "/setup" {
			t.Fatalf("landed on %s", pg.URL)
		}
		q := w.partner.last(t)
		if q.Get("code") == "" || q.Get("orgSlug") != "customer" || q.Get("installationId") == "" {
			t.Fatalf("the partner got %v", q)
		}
		// The marketplace now says it is installed, and installing again
		// points at the existing installation.
		b.get("/marketplace/flow-app").ok(200, "Installed in Customer", "/orgs/customer/installations/"+q.Get("installationId"))
		b.get("/marketplace/flow-app/install")
		b.post("/marketplace/flow-app/install", url.Values{"org": {"customer"}, "plan": {"free"}}).ok(409, "already installed", "Manage the installation")
	})

	t.Run("an installation older than a page of uninstalled ones is still found", func(t *testing.T) {
		b := uiSignIn(t, p, "admin@customer.example")
		pg := b.get("/marketplace/flow-app").ok(200, "Installed in Customer")
		live := regexp.MustCompile(`/orgs/customer/installations/([0-9a-f-]{36})`).FindStringSubmatch(pg.Body)
		if live == nil {
			t.Fatal("no link to the installation")
		}
		// 100 earlier installs of the organization, since uninstalled, listed
		// before it (newest first).
		if err := p.App.DB.Exec(`INSERT INTO installations (uuid, app_id, organization_id, status)
			SELECT gen_random_uuid(), app_id, organization_id, 'deleted' FROM installations, generate_series(1, 100) WHERE uuid = ?`, live[1]).Error; err != nil {
			t.Fatal(err)
		}
		b.get("/marketplace/flow-app").ok(200, "Installed in Customer", live[0])
		b.get("/marketplace").ok(200, `<span class="badge good">Installed</span>`)
	})

	t.Run("a refusal about the app itself is shown", func(t *testing.T) {
		internal := publicApp("Own Tool")
		internal["kind"] = "internal"
		w.dev.do("POST", "/api/0/organizations/partner/apps/", internal).ok(t, 201, nil)
		b := uiSignIn(t, p, "dev@partner.example")
		b.get("/marketplace/own-tool/install").ok(200, "Approve and install")
		b.post("/marketplace/own-tool/install", url.Values{"org": {"partner"}}).ok(400, "internal integrations are installed when they are created")
	})

	t.Run("the OAuth consent shows a refused plan beside the plans", func(t *testing.T) {
		b := uiSignIn(t, p, "admin@customer.example")
		authURL := w.oauth.AuthCodeURL("st4te")
		u, _ := url.Parse(authURL)
		b.get(u.RequestURI()).ok(200, "Install Flow App")
		form := u.Query()
		form.Set("org", "customer")
		form.Set("plan", "gold")
		form.Set("decision", "approve")
		pg := b.post("/oauth/authorize", form).ok(400, "Install Flow App")
		if msg := pg.fieldError("plan"); !strings.Contains(msg, "must be one of the app's plans") {
			t.Errorf("plan error %q", msg)
		}
	})

	t.Run("members who are not admins are told to ask an admin", func(t *testing.T) {
		b := uiSignUp(t, p, "newbie@customer.example")
		b.get("/marketplace/flow-app/install").ok(200, "You are not an admin of any organization")
		b.post("/marketplace/flow-app/install", url.Values{"org": {"customer"}, "plan": {"free"}}).ok(404)
	})

	t.Run("signed out, Install asks to sign in first and comes back", func(t *testing.T) {
		b := newBrowser(t, p)
		b.get("/marketplace/flow-app/install").ok(200, "Sign in").at("/login")
		b.post("/login", url.Values{"email": {"admin@customer.example"}, "password": {"correct horse battery"}, "next": {"/marketplace/flow-app/install"}}).
			ok(200, "Approve and install").at("/marketplace/flow-app/install")
	})
}
