package web_test

import (
	"html"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/plugboard/plugboard/cmd/platform/apptest"
	"github.com/plugboard/plugboard/marketplace"
)

var secretRe = regexp.MustCompile(`<code id="secret-([a-z-]+)">([^<]+)</code>`)

// secretsOn returns the values the "secret" partial shows on a page, by name.
func secretsOn(p *htmlPage) map[string]string {
	out := map[string]string{}
	for _, m := range secretRe.FindAllStringSubmatch(p.Body, -1) {
		out[m[1]] = html.UnescapeString(m[2])
	}
	return out
}

// appForm is a complete app form as the create page posts it.
func appForm(name string) url.Values {
	return url.Values{
		"name": {name}, "kind": {"public"}, "author": {"Pager Co"}, "overview": {"Pages the on-call person."},
		"categories": {"alerting"}, "scopes": {"org:read", "member:read"}, "events": {"installation.created"},
		"webhookUrl": {"https://partner.example/hooks"}, "verifyInstall": {"true"},
	}
}

func TestPartnerPages(t *testing.T) {
	p := apptest.Start(t)
	ctx := t.Context()
	b := uiSignUp(t, p, "dev@pager.example")
	org := b.uiOrg("Pager Co")
	apps := "/orgs/" + org + "/apps"

	t.Run("signed-out browsers are sent to sign in", func(t *testing.T) {
		anon := newBrowser(t, p)
		for _, path := range []string{apps, apps + "/new", "/apps/whatever/", "/apps/whatever/plans"} {
			anon.get(path).ok(200, "Sign in").at("/login")
		}
	})

	t.Run("the empty list explains public and internal apps", func(t *testing.T) {
		b.get(apps).ok(200, "Your apps", "No apps yet", "public integration", "internal integration", `href="`+apps+`/new"`)
	})

	t.Run("a bad form shows the field error and writes nothing", func(t *testing.T) {
		b.get(apps+"/new").ok(200, "Create an app", `value="org:read"`, "installation.created", `value="alerting"`, "Read the organization")
		before := count(t, p, "apps")
		form := appForm("Pager Bot")
		form.Set("webhookUrl", "not a url")
		pg := b.post(apps+"/new", form).ok(400)
		pg.fieldError("webhookUrl")
		if !strings.Contains(pg.Body, `value="not a url"`) || !strings.Contains(pg.Body, `value="member:read" checked`) {
			t.Error("the form lost what was typed")
		}
		form = appForm("")
		pg = b.post(apps+"/new", form).ok(400)
		pg.fieldError("name")
		if count(t, p, "apps") != before {
			t.Error("a bad form created an app")
		}
	})

	var clientID, clientSecret string
	t.Run("create shows the credentials once", func(t *testing.T) {
		pg := b.post(apps+"/new", appForm("Pager Bot")).ok(200, "shown only once", "Client secret", "/apps/pager-bot/")
		sec := secretsOn(pg)
		clientID, clientSecret = sec["client-id"], sec["client-secret"]
		if !strings.HasPrefix(clientSecret, "pbcs_") || !strings.HasPrefix(sec["webhook-secret"], "whsec_") || clientID == "" {
			t.Fatalf("secrets shown: %v", sec)
		}
		if _, err := p.App.Marketplace.OAuth.AuthenticateClient(ctx, clientID, clientSecret); err != nil {
			t.Fatalf("the secret shown does not work: %v", err)
		}
		for _, path := range []string{apps, "/apps/pager-bot/", "/apps/pager-bot/credentials", "/apps/pager-bot/settings"} {
			later := b.get(path).ok(200, "Pager Bot")
			if strings.Contains(later.Body, clientSecret) || strings.Contains(later.Body, sec["webhook-secret"]) {
				t.Errorf("%s shows a secret again", path)
			}
		}
		b.get(apps).ok(200, "/apps/pager-bot/", "Draft", "Public")
		b.get("/apps/pager-bot").ok(200, "Setup checklist").at("/apps/pager-bot/")
	})

	t.Run("pages of the app render", func(t *testing.T) {
		for _, c := range []struct{ path, want string }{
			{"/apps/pager-bot/", "Setup checklist"},
			{"/apps/pager-bot/settings", `value="https://partner.example/hooks"`},
			{"/apps/pager-bot/plans", "Add a plan"},
			{"/apps/pager-bot/credentials", clientID},
			{"/apps/pager-bot/installations", "No installations yet"},
		} {
			b.get(c.path).ok(200, c.want, `aria-current="page"`, "/apps/pager-bot/deliveries")
		}
	})

	t.Run("submitting an incomplete app says what is missing", func(t *testing.T) {
		b.get("/apps/pager-bot/").ok(200, "Submit for review", "/marketplace/pager-bot")
		b.post("/apps/pager-bot/submit", nil).ok(400, "not ready for review", "Redirect URL")
		if v, _ := p.App.Marketplace.Apps.GetApp(ctx, signInActor(t, p, "dev@pager.example"), "pager-bot"); v.Status != marketplace.StatusDraft {
			t.Errorf("status %s after a refused submit", v.Status)
		}
	})

	t.Run("settings: bad input changes nothing, then a good edit saves", func(t *testing.T) {
		form := appForm("Pager Bot")
		form.Set("redirectUrl", "ftp://partner.example/setup")
		b.get("/apps/pager-bot/settings").ok(200)
		b.post("/apps/pager-bot/settings", form).ok(400).fieldError("redirectUrl")
		v, _ := p.App.Marketplace.Apps.GetApp(ctx, signInActor(t, p, "dev@pager.example"), "pager-bot")
		if v.RedirectURL != "" {
			t.Errorf("a bad edit saved %q", v.RedirectURL)
		}
		form.Set("redirectUrl", "https://partner.example/setup")
		form.Del("verifyInstall")
		form.Set("overview", "Pages the on-call person when something breaks.")
		b.post("/apps/pager-bot/settings", form).ok(200, "Saved the settings").at("/apps/pager-bot/settings")
		v, _ = p.App.Marketplace.Apps.GetApp(ctx, signInActor(t, p, "dev@pager.example"), "pager-bot")
		if v.RedirectURL != "https://partner.example/setup" || v.VerifyInstall || !strings.Contains(v.Overview, "breaks") {
			t.Errorf("saved %+v", v.App)
		}
	})

	t.Run("plans: add, edit, delete, and the last one stays", func(t *testing.T) {
		b.get("/apps/pager-bot/plans").ok(200, "No plans yet")
		before := count(t, p, "plans")
		b.post("/apps/pager-bot/plans", url.Values{"name": {"Team"}, "price": {"twelve"}, "currency": {"EUR"}, "interval": {"year"}}).ok(400).fieldError("price")
		if count(t, p, "plans") != before {
			t.Fatal("a bad plan was written")
		}
		b.post("/apps/pager-bot/plans", url.Values{"name": {"Team"}, "price": {"29"}, "currency": {"eur"}, "interval": {"year"}}).
			ok(200, "Added the Team plan", "29.00", "EUR", "Yearly").at("/apps/pager-bot/plans")
		b.post("/apps/pager-bot/plans", url.Values{"name": {"Free"}, "price": {"0"}, "currency": {"USD"}, "interval": {"month"}}).ok(200, "Free")

		b.get("/apps/pager-bot/plans/team/edit").ok(200, "Edit the Team plan", `value="29.00"`)
		b.post("/apps/pager-bot/plans/team/edit", url.Values{"name": {"Team"}, "slug": {"team"}, "price": {"-1"}, "currency": {"EUR"}, "interval": {"year"}}).ok(400).fieldError("price")
		b.post("/apps/pager-bot/plans/team/edit", url.Values{"name": {"Team"}, "slug": {"team"}, "price": {"39"}, "currency": {"EUR"}, "interval": {"month"}, "description": {"Ten seats"}}).
			ok(200, "Saved the Team plan", "39.00", "Ten seats")

		b.get("/apps/pager-bot/plans/free/delete").ok(200, "Delete the Free plan?", `action="/apps/pager-bot/plans/free/delete"`)
		b.post("/apps/pager-bot/plans/free/delete", nil).ok(200, "Deleted the Free plan")
		b.get("/apps/pager-bot/plans/team/delete").ok(200)
		b.post("/apps/pager-bot/plans/team/delete", nil).ok(409, "keeps at least one", "Team")
		if count(t, p, "plans") != before+1 {
			t.Errorf("plans: %d, want %d", count(t, p, "plans"), before+1)
		}
		b.get("/apps/pager-bot/plans/nope/edit").ok(404)
	})

	t.Run("forms need the CSRF token", func(t *testing.T) {
		before := count(t, p, "plans")
		b.post("/apps/pager-bot/plans", url.Values{"name": {"Forged"}, "price": {"0"}, "currency": {"USD"}, "interval": {"month"}, "csrf": {"forged"}}).ok(403)
		b.post("/apps/pager-bot/rotate-secret", url.Values{"csrf": {"forged"}}).ok(403)
		if count(t, p, "plans") != before {
			t.Error("a forged form added a plan")
		}
		if _, err := p.App.Marketplace.OAuth.AuthenticateClient(ctx, clientID, clientSecret); err != nil {
			t.Error("a forged form rotated the secret")
		}
	})

	t.Run("rotating the client secret shows the new one and retires the old", func(t *testing.T) {
		b.get("/apps/pager-bot/rotate-secret").ok(200, "Rotate the client secret of Pager Bot?", "stops working")
		pg := b.post("/apps/pager-bot/rotate-secret", nil).ok(200, "New client secret", "shown only once")
		fresh := secretsOn(pg)["client-secret"]
		if fresh == "" || fresh == clientSecret {
			t.Fatalf("new secret %q", fresh)
		}
		if _, err := p.App.Marketplace.OAuth.AuthenticateClient(ctx, clientID, clientSecret); err == nil {
			t.Error("the old secret still works")
		}
		if _, err := p.App.Marketplace.OAuth.AuthenticateClient(ctx, clientID, fresh); err != nil {
			t.Errorf("the new secret does not work: %v", err)
		}
		if strings.Contains(b.get("/apps/pager-bot/credentials").Body, fresh) {
			t.Error("the credentials page shows the new secret again")
		}

		b.get("/apps/pager-bot/rotate-webhook-secret").ok(200, "24 hours")
		pg = b.post("/apps/pager-bot/rotate-webhook-secret", nil).ok(200, "New webhook signing secret")
		if !strings.HasPrefix(secretsOn(pg)["webhook-secret"], "whsec_") {
			t.Errorf("webhook secret: %v", secretsOn(pg))
		}
		b.get("/apps/pager-bot/credentials").ok(200, "Still signing until")
	})

	t.Run("submit for review", func(t *testing.T) {
		b.post("/apps/pager-bot/submit", nil).ok(200, "Submitted for review", "Waiting for review").at("/apps/pager-bot/")
		if strings.Contains(b.get("/apps/pager-bot/").Body, "Submit for review</button>") {
			t.Error("a submitted app offers to submit again")
		}
	})

	op := operator(t, p, "op@plugboard.example")
	t.Run("a rejected app shows the reviewer's reason and can be submitted again", func(t *testing.T) {
		op.do("PUT", "/api/0/apps/pager-bot/", map[string]any{"status": "rejected", "statusReason": "Add a logo, please."}).ok(t, 200, nil)
		b.get("/apps/pager-bot/").ok(200, "Operators rejected this app", "Add a logo, please.", "Submit for review</button>")
		b.get(apps).ok(200, "Rejected", "Add a logo, please.")
		b.post("/apps/pager-bot/submit", nil).ok(200, "Submitted for review")
	})

	t.Run("outsiders and plain members", func(t *testing.T) {
		op.do("PUT", "/api/0/apps/pager-bot/", map[string]any{"status": "published"}).ok(t, 200, nil)
		b.get("/apps/pager-bot/").ok(200, "Published", `href="/marketplace/pager-bot"`)

		out := uiSignUp(t, p, "mallory@example.com")
		out.uiOrg("Mallory Inc")
		// Published in the marketplace, yet its developer pages stay private.
		for _, path := range []string{apps, apps + "/new", "/apps/pager-bot/", "/apps/pager-bot/settings", "/apps/pager-bot/plans",
			"/apps/pager-bot/credentials", "/apps/pager-bot/installations", "/apps/pager-bot/rotate-secret", "/apps/pager-bot/delete"} {
			out.get(path).ok(404)
		}
		before := count(t, p, "plans")
		out.post("/apps/pager-bot/plans", url.Values{"name": {"Mine"}, "price": {"0"}, "currency": {"USD"}, "interval": {"month"}}).ok(404)
		out.post("/apps/pager-bot/rotate-secret", nil).ok(404)
		out.post("/apps/pager-bot/delete", nil).ok(404)
		if count(t, p, "plans") != before || count(t, p, "apps") == 0 {
			t.Error("an outsider changed the app")
		}

		// A plain member of the organization looks but does not change.
		uiSignUp(t, p, "viewer@pager.example")
		if _, err := p.App.Marketplace.Orgs.AddMember(ctx, signInActor(t, p, "dev@pager.example"), org, "viewer@pager.example", "member"); err != nil {
			t.Fatal(err)
		}
		viewer := uiSignIn(t, p, "viewer@pager.example")
		viewer.get("/apps/pager-bot/plans").ok(200, "changing it needs the admin role")
		viewer.post("/apps/pager-bot/plans", url.Values{"name": {"Mine"}, "price": {"0"}, "currency": {"USD"}, "interval": {"month"}}).ok(403, "admin role")
		viewer.post("/apps/pager-bot/rotate-secret", nil).ok(403)
		if count(t, p, "plans") != before {
			t.Error("a plain member added a plan")
		}
	})

	t.Run("an internal integration shows its token once", func(t *testing.T) {
		form := appForm("Deploy Bot")
		form.Set("kind", "internal")
		pg := b.post(apps+"/new", form).ok(200, "Installation access token", "already installed")
		token := secretsOn(pg)["token"]
		if !strings.HasPrefix(token, "pbi_") {
			t.Fatalf("token %q", token)
		}
		b.get("/apps/deploy-bot/installations").ok(200, "Pager Co", "Installed")
		ov := b.get("/apps/deploy-bot/").ok(200, "never reviewed")
		if strings.Contains(ov.Body, token) || strings.Contains(ov.Body, "Submit for review</button>") {
			t.Error("the overview shows the token or a submit button")
		}
		pg = b.post("/apps/deploy-bot/rotate-secret", nil).ok(200, "New installation access token")
		if fresh := secretsOn(pg)["token"]; fresh == "" || fresh == token {
			t.Errorf("rotated token %q", fresh)
		}
		b.get(apps).ok(200, "Deploy Bot", "Internal", "Pager Bot")
	})

	t.Run("delete an app after confirming", func(t *testing.T) {
		b.get("/apps/deploy-bot/delete").ok(200, "Delete Deploy Bot?", `action="/apps/deploy-bot/delete"`)
		b.post("/apps/deploy-bot/delete", nil).ok(200, "Deleted Deploy Bot").at(apps)
		b.get("/apps/deploy-bot/").ok(404)
	})
}
