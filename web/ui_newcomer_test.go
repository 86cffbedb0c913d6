package web_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/plugboard/plugboard/cmd/platform/apptest"
	"github.com/plugboard/plugboard/marketplace"
)

// noFollow returns a copy of the browser that stops at redirects, sharing
// its cookies, to see the status and Location a POST answers with.
func (b *browser) noFollow(t testing.TB) *browser {
	c := *b
	c.t = t
	hc := *b.http
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.http = &hc
	return &c
}

// redirected fails unless the page is a 303 and returns where it points.
func (p *htmlPage) redirected() string {
	p.t.Helper()
	if p.Status != http.StatusSeeOther {
		p.t.Fatalf("%s: status %d, want 303\n%s", p.URL, p.Status, excerpt(p.Body))
	}
	return p.Location
}

// TestUINewcomer covers what a newcomer trips on: the password rule, error
// banners that lead to the field, one-time secrets after a redirect, the
// plan review needs, the empty marketplace, the operator's first page, the
// audit log naming operators and the empty installed-apps page.
func TestUINewcomer(t *testing.T) {
	p := apptest.Start(t)

	t.Run("an empty marketplace invites developers to sign up", func(t *testing.T) {
		pg := newBrowser(t, p).get("/marketplace").ok(200, "No apps yet", "Sign up as a developer", `href="/signup?next=/orgs/new"`)
		if strings.Contains(pg.Body, "No apps match") {
			t.Error("an empty marketplace reads like a failed search")
		}
		// Signing up from there lands on creating an organization.
		b := newBrowser(t, p)
		b.get("/signup?next=/orgs/new").ok(200)
		b.post("/signup", url.Values{"name": {"Newt"}, "email": {"newt@example.com"}, "password": {"correct horse battery"}, "next": {"/orgs/new"}}).ok(200).at("/orgs/new")
		// A search that finds nothing still says so.
		newBrowser(t, p).get("/marketplace?q=zzz").ok(200, "No apps match")
	})

	t.Run("the sign-up hint states the length sign-up checks", func(t *testing.T) {
		b := newBrowser(t, p)
		pg := b.get("/signup").ok(200)
		m := regexp.MustCompile(`At least (\d+) characters\.`).FindStringSubmatch(pg.Body)
		if m == nil {
			t.Fatal("the sign-up form states no password length")
		}
		n, _ := strconv.Atoi(m[1])
		if n != marketplace.MinPasswordLength {
			t.Errorf("the hint says %d, sign-up checks %d", n, marketplace.MinPasswordLength)
		}
		b.post("/signup", url.Values{"name": {"Len"}, "email": {"len@example.com"}, "password": {strings.Repeat("x", n-1)}}).ok(400).fieldError("password")
		b.post("/signup", url.Values{"name": {"Len"}, "email": {"len@example.com"}, "password": {strings.Repeat("x", n)}}).ok(200).at("/orgs/new")
	})

	t.Run("the error banner leads to the first marked field", func(t *testing.T) {
		b := newBrowser(t, p)
		b.get("/signup").ok(200)
		pg := b.post("/signup", url.Values{"name": {"Ann"}, "email": {"not-an-email"}, "password": {"short"}}).ok(400)
		pg.fieldError("email")
		pg.fieldError("password")
		banner := regexp.MustCompile(`<div class="alert error" role="alert">[^<]*<a href="#([^"]+)">`).FindStringSubmatch(pg.Body)
		if banner == nil || banner[1] != "f-email" {
			t.Fatalf("the banner links to %v, want #f-email", banner)
		}
		if n := strings.Count(pg.Body, " autofocus"); n != 1 {
			t.Errorf("%d fields have autofocus, want 1", n)
		}
		if !regexp.MustCompile(`<input id="f-email"[^>]* autofocus>`).MatchString(pg.Body) {
			t.Error("the first marked field has no autofocus")
		}
		// Only the password wrong: the banner points there instead.
		pg = b.post("/signup", url.Values{"name": {"Ann"}, "email": {"ann2@example.com"}, "password": {"short"}}).ok(400, `href="#f-password"`)
		if !regexp.MustCompile(`<input id="f-password"[^>]* autofocus>`).MatchString(pg.Body) {
			t.Error("the password field has no autofocus")
		}
		// A field group: the fieldset is the anchor, its first box gets focus.
		dev := uiSignUp(t, p, "banner@example.com")
		org := dev.uiOrg("Banner Co")
		form := appForm("Banner App")
		form.Set("webhookUrl", "not a url")
		form["events"] = []string{"no.such.event"}
		pg = dev.post("/orgs/"+org+"/apps/new", form).ok(400)
		pg.fieldError("events")
		pg.fieldError("webhookUrl")
		if !strings.Contains(pg.Body, `href="#f-events"`) || !strings.Contains(pg.Body, `id="f-events"`) {
			t.Errorf("the banner does not lead to the events, the first marked field\n%s", excerpt(pg.Body))
		}
		// Pages without field errors link nowhere.
		if strings.Contains(newBrowser(t, p).get("/login").Body, "first marked field") {
			t.Error("a fresh form links to a marked field")
		}
	})

	dev := uiSignUp(t, p, "dev@once.example")
	org := dev.uiOrg("Once Co")

	t.Run("new credentials are shown once, after a redirect", func(t *testing.T) {
		dev := dev.as(t)
		nf := dev.noFollow(t)
		dev.get("/orgs/" + org + "/apps/new").ok(200)
		before := count(t, p, "apps")
		to := nf.post("/orgs/"+org+"/apps/new", appForm("Once App")).redirected()
		if !strings.HasPrefix(to, "/apps/once-app/secrets/") {
			t.Fatalf("create redirects to %q", to)
		}
		pg := dev.get(to).ok(200, "Once App is ready", "shown only once")
		sec := secretsOn(pg)
		if !strings.HasPrefix(sec["client-secret"], "pbcs_") || !strings.HasPrefix(sec["webhook-secret"], "whsec_") {
			t.Fatalf("secrets shown: %v", sec)
		}
		// The reload shows them no more, creates nothing and says how to rotate.
		again := dev.get(to).ok(http.StatusGone, "no longer shown", `href="/apps/once-app/rotate-secret"`, `href="/apps/once-app/rotate-webhook-secret"`)
		if len(secretsOn(again)) != 0 || strings.Contains(again.Body, sec["client-secret"]) {
			t.Error("the reload shows the secrets again")
		}
		if count(t, p, "apps") != before+1 {
			t.Errorf("apps: %d, want %d", count(t, p, "apps"), before+1)
		}

		// Rotating: the same, and the key is of this session only.
		dev.get("/apps/once-app/rotate-secret").ok(200)
		to = nf.post("/apps/once-app/rotate-secret", nil).redirected()
		other := uiSignIn(t, p, "dev@once.example") // the same user, another session
		if pg := other.get(to); len(secretsOn(pg)) != 0 {
			t.Error("another session was shown the secret")
		}
		fresh := secretsOn(dev.get(to).ok(200, "New client secret"))["client-secret"]
		if fresh == "" || fresh == sec["client-secret"] {
			t.Fatalf("rotated secret %q", fresh)
		}
		if _, err := p.App.Marketplace.OAuth.AuthenticateClient(t.Context(), sec["client-id"], fresh); err != nil {
			t.Errorf("the secret shown does not work: %v", err)
		}
		dev.get(to).ok(http.StatusGone, "no longer shown")

		dev.get("/apps/once-app/rotate-webhook-secret").ok(200)
		to = nf.post("/apps/once-app/rotate-webhook-secret", nil).redirected()
		if !strings.HasPrefix(secretsOn(dev.get(to).ok(200, "New webhook signing secret"))["webhook-secret"], "whsec_") {
			t.Error("no webhook secret shown")
		}
		dev.get(to).ok(http.StatusGone)
		// A made-up key is the same page, not an error.
		dev.get("/apps/once-app/secrets/made-up").ok(http.StatusGone, "no longer shown")
	})

	t.Run("review needs a plan, as the checklist and the install say", func(t *testing.T) {
		dev := dev.as(t)
		// Complete but for a plan.
		api := signIn(t, p, "dev@once.example")
		api.do("POST", "/api/0/organizations/"+org+"/apps/", publicApp("Planless")).ok(t, 201, nil)
		dev.get("/apps/planless/").ok(200, "Add a plan", "Required before review")
		pg := dev.post("/apps/planless/submit", nil).ok(400, "not ready for review", "needs at least one plan before review", `href="/apps/planless/plans"`)
		if strings.Contains(pg.Body, "Submitted for review") {
			t.Error("an app without a plan was submitted")
		}
		// The API refuses the same way: a 400 problem naming the field.
		doc := api.do("POST", "/api/0/apps/planless/publish-requests/", nil).problem(t, 400, "invalid_input")
		if !strings.Contains(doc.Fields["plans"], "needs at least one plan") {
			t.Errorf("problem fields %v", doc.Fields)
		}
		dev.get("/apps/planless/plans").ok(200)
		dev.post("/apps/planless/plans", url.Values{"name": {"Free"}, "price": {"0"}, "currency": {"USD"}, "interval": {"month"}}).ok(200)
		dev.post("/apps/planless/submit", nil).ok(200, "Submitted for review")
	})

	t.Run("an operator signing in lands on the operators' overview", func(t *testing.T) {
		if _, err := p.App.Marketplace.Accounts.SignUp(t.Context(), marketplace.Anonymous, marketplace.NewUser{Email: "op@once.example", Password: "correct horse battery", IsOperator: true}); err != nil {
			t.Fatal(err)
		}
		b := newBrowser(t, p)
		b.get("/login").ok(200)
		b.post("/login", url.Values{"email": {"op@once.example"}, "password": {"correct horse battery"}, "next": {"/"}}).ok(200, "Review queue").at("/admin/")
		// An explicit destination wins; other users still go home.
		b = newBrowser(t, p)
		b.get("/login?next=/marketplace").ok(200)
		b.post("/login", url.Values{"email": {"op@once.example"}, "password": {"correct horse battery"}, "next": {"/marketplace"}}).at("/marketplace")
		b = newBrowser(t, p)
		b.get("/login").ok(200)
		b.post("/login", url.Values{"email": {"dev@once.example"}, "password": {"correct horse battery"}}).at("/orgs/" + org + "/installations")
	})

	t.Run("the audit log names operators as operators", func(t *testing.T) {
		dev := dev.as(t)
		api := signIn(t, p, "dev@once.example")
		api.do("POST", "/api/0/organizations/"+org+"/apps/", publicApp("Reviewed")).ok(t, 201, nil)
		api.do("POST", "/api/0/apps/reviewed/plans/", map[string]any{"name": "Free"}).ok(t, 201, nil)
		api.do("POST", "/api/0/apps/reviewed/publish-requests/", nil).ok(t, 201, nil)
		op := signIn(t, p, "op@once.example")
		op.do("PUT", "/api/0/apps/reviewed/", map[string]any{"status": "published"}).ok(t, 200, nil)
		pg := dev.get("/orgs/"+org+"/audit-log").ok(200, "app.publish", "op@once.example")
		row := regexp.MustCompile(`(?s)<tr>\s*<td>[^\n]*</td>\s*<td>op@once\.example[^\n]*</td>`).FindString(pg.Body)
		if !strings.Contains(row, "Operator") {
			t.Errorf("the operator's entry does not say operator: %q", row)
		}
		devRow := regexp.MustCompile(`(?s)<tr>\s*<td>[^\n]*</td>\s*<td>dev@once\.example[^\n]*</td>`).FindString(pg.Body)
		if devRow == "" || strings.Contains(devRow, "Operator") {
			t.Errorf("a member's entry: %q", devRow)
		}
	})

	t.Run("the empty installed-apps page has one Browse button", func(t *testing.T) {
		b := uiSignUp(t, p, "empty@example.com")
		slug := b.uiOrg("Empty Co")
		pg := b.get("/orgs/"+slug+"/installations").ok(200, "No apps installed yet")
		if n := strings.Count(pg.Body, "Browse the marketplace"); n != 1 {
			t.Errorf("%d Browse the marketplace buttons, want 1", n)
		}
	})
}
