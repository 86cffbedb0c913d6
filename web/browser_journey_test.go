package web_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/plugboard/plugboard/cmd/platform/apptest"
	"github.com/plugboard/plugboard/marketplace"
)

// partnerSite plays the partner: its setup page (the redirect URL) records
// the code it was sent, and its webhook endpoint answers 200.
type partnerSite struct {
	srv   *httptest.Server
	mu    sync.Mutex
	codes []url.Values
	hooks int
}

func newPartnerSite(t testing.TB) *partnerSite {
	ps := &partnerSite{}
	ps.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ps.mu.Lock()
		defer ps.mu.Unlock()
		switch r.URL.Path {
		case "/setup":
			ps.codes = append(ps.codes, r.URL.Query())
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			io.WriteString(w, `<!doctype html><title>Flow setup</title><h1>Flow is connected</h1>`)
		case "/webhooks":
			_, _ = io.Copy(io.Discard, r.Body)
			ps.hooks++
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(ps.srv.Close)
	return ps
}

func (ps *partnerSite) lastCode() url.Values {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if len(ps.codes) == 0 {
		return nil
	}
	return ps.codes[len(ps.codes)-1]
}

// The journey, in a real browser: sign up → create an organization
// → create an app and have an operator publish it → install it from the
// marketplace into another organization → land on the partner's redirect
// URL with a code → see installation.created in the delivery log with its
// attempt → redeliver it → uninstall.
func TestBrowserJourney(t *testing.T) {
	p := apptest.Start(t)
	partner := newPartnerSite(t)
	if _, err := p.App.Marketplace.Accounts.SignUp(t.Context(), marketplace.Anonymous, marketplace.NewUser{
		Email: "ops@plugboard.example", Name: "Olive Ops", Password: "correct horse battery", IsOperator: true}); err != nil {
		t.Fatal(err)
	}

	// A developer signs up and creates their organization.
	dev := newTab(t, p.URL)
	dev.open("/signup")
	dev.fill("#f-name", "Dana Dev")
	dev.fill("#f-email", "dana@flow.example")
	dev.fill("#f-password", "correct horse battery")
	dev.press("Create account")
	dev.at("/orgs/new")
	dev.fill("#f-name", "Flow Labs")
	dev.press("Create organization")
	dev.at("/orgs/flow-labs/installations")
	dev.see("Created Flow Labs")

	// …creates an app.
	dev.open("/orgs/flow-labs/apps/new")
	dev.fill("#f-name", "Flow")
	dev.fill("#f-author", "Flow Labs")
	dev.fill("#f-overview", "Turns incidents into flows.")
	dev.click(`input[name="scopes"][value="org:read"]`)
	dev.click(`input[name="events"][value="installation.created"]`)
	dev.fill("#f-webhookUrl", partner.srv.URL+"/webhooks")
	dev.fill("#f-redirectUrl", partner.srv.URL+"/setup")
	dev.press("Create app")
	dev.see("Client secret", "pbcs_")
	// Review needs a plan: organizations install one.
	dev.open("/apps/flow/plans")
	dev.fill("#f-name", "Free")
	dev.fill("#f-price", "0")
	dev.press("Add plan")
	dev.see("Added the Free plan")
	dev.open("/apps/flow/")
	dev.press("Submit for review")
	dev.see("ubmitted")

	// An operator publishes it.
	ops := newTab(t, p.URL)
	ops.open("/login")
	ops.fill("#f-email", "ops@plugboard.example")
	ops.fill("#f-password", "correct horse battery")
	ops.press("Sign in")
	ops.at("/admin/") // an operator signing in starts at the operators' overview
	ops.open("/admin/review")
	ops.see("Flow")
	ops.open("/admin/review/flow")
	ops.press("Approve")
	ops.see("ublished")

	// The developer installs it into another organization from the marketplace.
	dev.open("/orgs/new")
	dev.fill("#f-name", "Customer Co")
	dev.press("Create organization")
	dev.at("/orgs/customer-co/installations")
	dev.open("/marketplace")
	dev.click(`a[href="/marketplace/flow"]`)
	dev.see("Read the organization's name and settings")
	dev.press("Install")
	dev.at("/marketplace/flow/install")
	dev.runRetrying(chromedpSelect("#f-org", "customer-co")) // the page may swap the select in
	dev.click("#f-plan-free")
	dev.press("Approve and install")
	dev.at(partner.srv.URL + "/setup")
	dev.see("Flow is connected")
	q := partner.lastCode()
	if q.Get("code") == "" || q.Get("orgSlug") != "customer-co" || q.Get("installationId") == "" {
		t.Fatalf("the partner's redirect URL got %v", q)
	}

	// The delivery log shows installation.created with its attempt.
	dev.open("/apps/flow/deliveries")
	dev.see("installation.created")
	dev.click(`a[href^="/apps/flow/deliveries/"]`)
	dev.at("/apps/flow/deliveries/")
	// The partner answers in the background: a person reloads until the
	// attempt is there (the page says so while it is pending).
	dev.seeAfterReload("installation.created", "webhook-signature", "200")
	dev.press("Redeliver")
	dev.see("Queued another attempt")
	dev.seeAfterReload("2 of at most")

	// The published app asks for member:read: the settings form drafts a
	// revision, which the developer submits from the Revisions tab.
	dev.open("/apps/flow/settings")
	dev.click(`input[name="scopes"][value="member:read"]`)
	dev.press("Save changes")
	dev.see("wait in revision #1")
	dev.open("/apps/flow/revisions")
	dev.see("#1", "Draft", "+ member:read")
	dev.press("Submit revision #1 for review")
	dev.see("Submitted revision #1 for review", "Submitted")

	// The operator finds it in the review queue, reads the diff and
	// approves it.
	ops.open("/admin/review")
	ops.see("Revisions of published apps", "+ member:read")
	ops.click(`a[href="/admin/review/flow/revisions/1"]`)
	ops.at("/admin/review/flow/revisions/1")
	ops.see("What it changes", "Adds: See who belongs to the organization and their roles", "installed in 1 organization")
	ops.press("Approve revision")
	ops.see("Approved revision #1 of Flow")

	// Customer Co's admin sees only what is new, and accepts it.
	inst := "/orgs/customer-co/installations/" + q.Get("installationId")
	dev.open(inst)
	dev.see("Flow asks for new permissions", "See who belongs to the organization and their roles")
	dev.press("Accept new permissions")
	dev.at(inst)
	dev.see("Accepted. Flow has been told")
	var body string
	dev.run(chromedp.Evaluate(`document.body.innerText`, &body))
	if strings.Contains(body, "asks for new permissions") || !strings.Contains(body, "See who belongs to the organization") {
		t.Errorf("after accepting, the page shows:\n%s", body)
	}

	// Uninstall, with a confirmation.
	dev.open("/orgs/customer-co/installations/" + q.Get("installationId"))
	dev.press("Uninstall")
	dev.at("/orgs/customer-co/installations/" + q.Get("installationId") + "/uninstall")
	dev.press("Uninstall")
	dev.at("/orgs/customer-co/installations")
	dev.see("Flow was uninstalled")
	// The partner hears of it: installation.created twice (sent, then
	// redelivered), installation.permissions_accepted and
	// installation.deleted.
	deadline := time.Now().Add(patience)
	for partner.hookCount() < 4 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := partner.hookCount(); n != 4 {
		t.Errorf("the partner got %d webhooks, want 4", n)
	}
}

func (ps *partnerSite) hookCount() int {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.hooks
}
