package web_test

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/plugboard/plugboard/cmd/platform/apptest"
	"github.com/plugboard/plugboard/marketplace"
	"github.com/plugboard/plugboard/sdk/plugboard"
)

// The customer's side of billing, through the pages an organization's
// admin uses: the plan's terms on the consent and the listing, the Billing
// page (upcoming invoice per currency, past invoices and their status),
// one invoice, and what a plan change costs for the rest of the month.

// uiBillingWorld is newWorld's Flow App with plans that bill — Trial (30.00
// USD a month after a 14-day trial), Metered (0.02 USD per API call, 1,000
// included, at most 50.00 USD) and Pro (10.00 USD a month) beside Free —
// and a second app, Yen App, priced in yen.
func uiBillingWorld(t *testing.T) *world {
	t.Helper()
	w := newWorld(t, false)
	w.dev.do("POST", "/api/0/apps/flow-app/plans/", map[string]any{"name": "Trial", "price": "30", "trialDays": 14}).ok(t, 201, nil)
	w.dev.do("POST", "/api/0/apps/flow-app/plans/", map[string]any{"name": "Metered", "pricingModel": "per_unit", "unitPrice": "0.02",
		"unitName": "API call", "includedUnits": 1000, "cappedAmount": "50"}).ok(t, 201, nil)
	body := publicApp("Yen App")
	body["redirectUrl"] = w.partner.srv.URL + "/setup"
	w.dev.do("POST", "/api/0/organizations/partner/apps/", body).ok(t, 201, nil)
	w.dev.do("POST", "/api/0/apps/yen-app/plans/", map[string]any{"name": "Monthly", "price": "1000", "currency": "JPY"}).ok(t, 201, nil)
	w.dev.do("POST", "/api/0/apps/yen-app/publish-requests/", nil).ok(t, 201, nil)
	signIn(t, w.p, "ops@plugboard.example").do("PUT", "/api/0/apps/yen-app/", map[string]any{"status": "published"}).ok(t, 200, nil)
	return w
}

// doc parses a page's HTML.
func (p *htmlPage) doc() *html.Node {
	p.t.Helper()
	n, err := html.Parse(strings.NewReader(p.Body))
	if err != nil {
		p.t.Fatalf("%s: not HTML: %v", p.URL, err)
	}
	return n
}

// find returns the elements under n that have attribute attr (with value
// val, unless val is "").
func find(n *html.Node, attr, val string) []*html.Node {
	var out []*html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			for _, a := range n.Attr {
				if a.Key == attr && (val == "" || a.Val == val) {
					out = append(out, n)
					break
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return out
}

// one is the single element under n with attr=val.
func one(t *testing.T, n *html.Node, attr, val string) *html.Node {
	t.Helper()
	got := find(n, attr, val)
	if len(got) != 1 {
		t.Fatalf("%d elements with %s=%q, want 1", len(got), attr, val)
	}
	return got[0]
}

// textOf is an element's text, its white space collapsed.
func textOf(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return strings.Join(strings.Fields(b.String()), " ")
}

// texts are the texts of the elements under n with attribute attr.
func texts(n *html.Node, attr string) []string {
	var out []string
	for _, e := range find(n, attr, "") {
		out = append(out, textOf(e))
	}
	return out
}

// planCard is the element showing plan slug on a page: the label of its
// radio button, or (on the listing) the card holding its name.
func planCard(t *testing.T, doc *html.Node, slug string) *html.Node {
	t.Helper()
	return one(t, doc, "for", "f-plan-"+slug)
}

func wantTerms(t *testing.T, where string, card *html.Node, want map[string]string) {
	t.Helper()
	for attr, text := range want {
		got := texts(card, attr)
		if text == "" && len(got) != 0 || text != "" && (len(got) != 1 || got[0] != text) {
			t.Errorf("%s: %s = %q, want %q", where, attr, got, text)
		}
	}
}

var (
	trialTerms   = map[string]string{"data-price": "30.00 USD / month", "data-trial": "14-day free trial", "data-included": "", "data-cap": ""}
	meteredTerms = map[string]string{"data-price": "0.02 USD per API call", "data-included": "1,000 API calls included each month",
		"data-cap": "At most 50.00 USD a month", "data-trial": ""}
	proTerms  = map[string]string{"data-price": "10.00 USD / month", "data-trial": "", "data-cap": ""}
	freeTerms = map[string]string{"data-price": "Free", "data-trial": ""}
)

// TestConsentShowsWhatPlansCost: the install consent, from the
// marketplace and from /oauth/authorize, and the listing's plan cards say
// each plan's price and interval, its trial, and for a per-unit plan the
// unit price, the included units and the cap.
func TestConsentShowsWhatPlansCost(t *testing.T) {
	w := uiBillingWorld(t)
	admin := uiSignIn(t, w.p, "admin@customer.example")
	plans := map[string]map[string]string{"trial": trialTerms, "metered": meteredTerms, "pro": proTerms, "free": freeTerms}

	doc := admin.get("/marketplace/flow-app/install").ok(200, "Approve and install").doc()
	for slug, want := range plans {
		wantTerms(t, "consent "+slug, planCard(t, doc, slug), want)
	}

	oauth := admin.get("/oauth/authorize?"+url.Values{"response_type": {"code"}, "client_id": {w.app.ClientID},
		"redirect_uri": {w.oauth.RedirectURL}, "state": {"s1"}, "code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGIC2NSgXM"},
		"code_challenge_method": {"S256"}}.Encode()).ok(200, "Authorization request").doc()
	wantTerms(t, "oauth consent trial", planCard(t, oauth, "trial"), trialTerms)
	wantTerms(t, "oauth consent metered", planCard(t, oauth, "metered"), meteredTerms)

	listing := newBrowser(t, w.p).get("/marketplace/flow-app").ok(200, "Pricing").doc()
	for _, h := range find(listing, "class", "plan") {
		name := ""
		for _, h3 := range find(h, "data-plan-name", "") {
			name = textOf(h3)
		}
		if name == "" {
			t.Fatalf("a plan card without its name: %s", textOf(h))
		}
		wantTerms(t, "listing "+name, h, plans[strings.ToLower(name)])
	}
	if n := len(find(listing, "class", "plan")); n != 4 {
		t.Errorf("the listing shows %d plan cards, want 4", n)
	}
}

// restCost is what amount (minor units, per month) costs from at to the
// end of its month, by the second, rounded half to even: the arithmetic
// docs/guides/billing.md states, done here with integers.
func restCost(amount int64, at time.Time) int64 {
	at = at.UTC()
	start := time.Date(at.Year(), at.Month(), 1, 0, 0, 0, 0, time.UTC)
	end := start.AddDate(0, 1, 0)
	whole, rest := int64(end.Sub(start)/time.Second), int64(end.Sub(at.Truncate(time.Second))/time.Second)
	q, r := amount*rest/whole, amount*rest%whole
	if 2*r > whole || 2*r == whole && q%2 == 1 {
		q++
	}
	return q
}

// backdateOrg writes the organization's history as if its installations had
// been on their plans for d already, and the plans priced so since: the
// platform has no test clock, and a period must have ended to be closed.
func backdateOrg(t *testing.T, p *apptest.Platform, org string, d time.Duration) {
	t.Helper()
	org = "(SELECT id FROM organizations WHERE slug = '" + org + "')"
	for _, q := range []string{
		fmt.Sprintf("UPDATE installation_plan_intervals SET started_at = started_at - interval '%d seconds' WHERE organization_id = %s", int64(d/time.Second), org),
		"UPDATE plan_prices SET effective_from = effective_from - interval '1 year' WHERE plan_id IN (SELECT plan_id FROM installations WHERE organization_id = " + org + ")",
	} {
		if err := p.App.DB.Exec(q).Error; err != nil {
			t.Fatal(err)
		}
	}
}

var amountRe = regexp.MustCompile(`^[0-9]+(\.[0-9]{2})? (USD|JPY)$`)

// TestBillingPage: an organization's admins see the upcoming invoice per
// currency with its lines as they stand, and the invoices written for
// past months with their lines and status, each on a page of its own;
// members are refused like the audit log refuses them, other people and
// other organizations find nothing.
func TestBillingPage(t *testing.T) {
	w := uiBillingWorld(t)
	p := w.p
	signUp(t, p, "member@customer.example")
	w.admin.do("POST", "/api/0/organizations/customer/members/", map[string]string{"email": "member@customer.example"}).ok(t, 201, nil)
	signUp(t, p, "stranger@example.com")
	admin := uiSignIn(t, p, "admin@customer.example")
	member := uiSignIn(t, p, "member@customer.example")
	stranger := uiSignIn(t, p, "stranger@example.com")

	t.Run("no paid apps yet", func(t *testing.T) {
		pg := admin.as(t).get("/orgs/customer/billing").ok(200, "No paid apps yet", "Browse the marketplace", `aria-current="page">Billing`)
		if len(find(pg.doc(), "data-line", "")) != 0 {
			t.Error("lines on an empty Billing page")
		}
		w.install(t, "free")
		admin.as(t).get("/orgs/customer/billing").ok(200, "No paid apps yet")
	})

	t.Run("the upcoming invoice, per currency, as it stands", func(t *testing.T) {
		admin := admin.as(t)
		inst := getInstallations(t, w.admin)[0]
		before := time.Now()
		w.admin.do("PUT", "/api/0/installations/"+inst.UUID+"/", map[string]any{"plan": "pro"}).ok(t, 200, nil)
		after := time.Now()
		w.admin.do("POST", "/api/0/organizations/customer/installations/", map[string]any{"app": "yen-app", "plan": "monthly"}).ok(t, 201, nil)
		doc := admin.get("/orgs/customer/billing").ok(200, "Upcoming invoice", "No invoices yet").doc()
		up := one(t, doc, "id", "upcoming")
		lines := find(up, "data-line", "")
		if len(lines) != 2 {
			t.Fatalf("upcoming lines %q, want Flow App — Pro and Yen App — Monthly", texts(up, "data-line"))
		}
		// USD before JPY? Currencies in alphabetical order: JPY, then USD.
		yen, usd := textOf(lines[0]), textOf(lines[1])
		if !strings.HasPrefix(yen, "Yen App — Monthly") || !strings.HasPrefix(usd, "Flow App — Pro") {
			t.Fatalf("lines %q, %q", yen, usd)
		}
		got := textOf(one(t, lines[1], "data-amount", ""))
		lo, hi := restCost(1000, after), restCost(1000, before)
		if got != marketplace.FormatAmount(lo, "USD")+" USD" && got != marketplace.FormatAmount(hi, "USD")+" USD" {
			t.Errorf("Pro for the rest of the month: %s, want %s or %s USD", got, marketplace.FormatAmount(lo, "USD"), marketplace.FormatAmount(hi, "USD"))
		}
		totals := texts(up, "data-total")
		if len(totals) != 2 || totals[1] != got || !amountRe.MatchString(totals[0]) || !strings.HasSuffix(totals[0], "JPY") {
			t.Errorf("totals %q, want the yen line's and %s", totals, got)
		}
		if !strings.Contains(usd, "10.00 USD / month") {
			t.Errorf("the Pro line does not say its price: %q", usd)
		}
	})

	t.Run("a trial and a per-unit plan with no usage show as free so far", func(t *testing.T) {
		// Another organization: Customer had Flow App already, so no trial there.
		slug := stranger.as(t).uiOrg("Trialist")
		c := signIn(t, p, "stranger@example.com")
		c.do("POST", "/api/0/organizations/"+slug+"/installations/", map[string]any{"app": "flow-app", "plan": "trial"}).ok(t, 201, nil)
		up := one(t, stranger.as(t).get("/orgs/"+slug+"/billing").ok(200, "Flow App — Trial").doc(), "id", "upcoming")
		line := textOf(find(up, "data-line", "")[0])
		if !strings.Contains(line, "Free trial until") && !strings.Contains(line, "30.00 USD / month") {
			t.Errorf("the trial line %q says neither the trial nor the price", line)
		}
	})

	var ids []string
	t.Run("past invoices with their lines and status", func(t *testing.T) {
		admin := admin.as(t)
		backdateOrg(t, p, "customer", 100*24*time.Hour)
		now := time.Now().UTC()
		period := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(0, -2, 0)
		if _, err := p.App.Marketplace.Billing.ClosePeriod(t.Context(), period); err != nil {
			t.Fatal(err)
		}
		month := period.Format("January 2006")
		doc := admin.get("/orgs/customer/billing").ok(200, month).doc()
		rows := find(one(t, doc, "id", "invoices"), "data-invoice", "")
		if len(rows) != 2 {
			t.Fatalf("%d invoices listed, want 2 (USD and JPY)", len(rows))
		}
		for _, r := range rows {
			ids = append(ids, attr(r, "data-invoice"))
			text := textOf(r)
			if status := textOf(one(t, r, "data-status", "")); status != "Open" {
				t.Errorf("invoice %s: status %q, want Open", text, status)
			}
			// A whole month on the plan: its full price.
			want := map[bool]string{true: "Yen App — Monthly: 1000 JPY", false: "Flow App — Pro: 10.00 USD"}[strings.Contains(text, "JPY")]
			if l := texts(r, "data-line"); len(l) != 1 || l[0] != want {
				t.Errorf("invoice lines %q, want %q", l, want)
			}
		}
		ops := signInActor(t, p, "ops@plugboard.example")
		for id, status := range map[string]string{ids[0]: "paid", ids[1]: "uncollectible"} {
			if _, err := p.App.Marketplace.Invoices.UpdateInvoiceStatus(t.Context(), ops, id, status); err != nil {
				t.Fatal(err)
			}
		}
		doc = admin.get("/orgs/customer/billing").ok(200).doc()
		for id, status := range map[string]string{ids[0]: "Paid", ids[1]: "Uncollectible"} {
			if got := textOf(one(t, one(t, doc, "data-invoice", id), "data-status", "")); got != status {
				t.Errorf("invoice %s: %s, want %s", id, got, status)
			}
		}
		inv := admin.get("/orgs/customer/billing/invoices/"+ids[0]).ok(200, "Invoice for "+month, "Paid", "Charges").doc()
		lines := find(inv, "data-line", "")
		if len(lines) != 1 {
			t.Fatalf("invoice page lines %q", texts(inv, "data-line"))
		}
		if !strings.Contains(textOf(lines[0]), "at 1000 JPY / month") && !strings.Contains(textOf(lines[0]), "at 10.00 USD / month") {
			t.Errorf("the line does not say what it charges for: %q", textOf(lines[0]))
		}
	})

	t.Run("admins only; other organizations find nothing", func(t *testing.T) {
		admin, member, stranger := admin.as(t), member.as(t), stranger.as(t)
		for _, path := range []string{"/orgs/customer/billing", "/orgs/customer/billing/invoices/" + ids[0]} {
			member.get(path).ok(403)
			stranger.get(path).ok(404)
			newBrowser(t, p).get(path).ok(200, "Sign in").at("/login")
		}
		// Customer's invoice under another organization, and ids that are none.
		stranger.get("/orgs/trialist/billing/invoices/" + ids[0]).ok(404)
		admin.get("/orgs/customer/billing/invoices/999999").ok(404)
		admin.get("/orgs/customer/billing/invoices/abc").ok(404)
		// The navigation offers Billing to admins only.
		if pg := member.get("/orgs/customer/installations").ok(200); strings.Contains(pg.Body, `href="/orgs/customer/billing"`) {
			t.Error("a member is offered the Billing page")
		}
		admin.get("/orgs/customer/installations").ok(200, `href="/orgs/customer/billing"`)
	})
}

// TestPlanChangeShowsItsCost: beside each plan the change form says what
// moving to it now costs for the rest of the month (a flat plan prorated
// by the second, a per-unit plan by its usage, a trial free), the flash
// after the change says it again, and the upcoming invoice then carries
// the new plan's line at that amount.
func TestPlanChangeShowsItsCost(t *testing.T) {
	w := uiBillingWorld(t)
	inst, _ := w.install(t, "free")
	admin := uiSignIn(t, w.p, "admin@customer.example")
	path := "/orgs/customer/installations/" + inst.UUID

	before := time.Now()
	doc := admin.get(path).ok(200, "Change plan").doc()
	after := time.Now()
	month := before.UTC().Format("January")
	costs := func(amount int64) []string {
		return []string{marketplace.FormatAmount(restCost(amount, after), "USD"), marketplace.FormatAmount(restCost(amount, before), "USD")}
	}
	quote := func(slug string) string { return texts(planCard(t, doc, slug), "data-quote")[0] }
	q := quote("pro")
	if c := costs(1000); !strings.HasPrefix(q, "Switching now costs "+c[0]+" USD for the rest of "+month) &&
		!strings.HasPrefix(q, "Switching now costs "+c[1]+" USD for the rest of "+month) {
		t.Errorf("Pro: %q, want %s or %s USD for the rest of %s", q, c[0], c[1], month)
	}
	// Customer never had Flow App before installing it on Free, which has
	// no trial: Trial costs its price from now.
	if c := costs(3000); !strings.Contains(quote("trial"), c[0]+" USD") && !strings.Contains(quote("trial"), c[1]+" USD") {
		t.Errorf("Trial: %q, want %v", quote("trial"), c)
	}
	if got := quote("metered"); !strings.HasPrefix(got, "From now, usage is billed to the end of "+month) {
		t.Errorf("Metered: %q", got)
	}
	if got := quote("free"); got != "Free" {
		t.Errorf("Free: %q", got)
	}
	wantTerms(t, "change form metered", planCard(t, doc, "metered"), meteredTerms)

	before = time.Now()
	pg := admin.post(path+"/plan", url.Values{"plan": {"pro"}}).ok(200, "Plan changed").at(path)
	after = time.Now()
	c := costs(1000)
	if !strings.Contains(pg.Body, "Pro costs "+c[0]+" USD for the rest of "+month) && !strings.Contains(pg.Body, "Pro costs "+c[1]+" USD for the rest of "+month) {
		t.Errorf("the flash does not say what Pro costs (%v):\n%s", c, excerpt(pg.Body))
	}
	if got := quote2(t, pg, "pro"); !strings.HasPrefix(got, "Staying costs") {
		t.Errorf("the current plan: %q", got)
	}
	up := one(t, admin.get("/orgs/customer/billing").ok(200).doc(), "id", "upcoming")
	line := one(t, up, "data-line", "")
	if got := textOf(one(t, line, "data-amount", "")); got != c[0]+" USD" && got != c[1]+" USD" {
		t.Errorf("the upcoming Pro line: %s, want %v", got, c)
	}

	// Members see no form and no quotes.
	signUp(t, w.p, "member@customer.example")
	w.admin.do("POST", "/api/0/organizations/customer/members/", map[string]string{"email": "member@customer.example"}).ok(t, 201, nil)
	if pg := uiSignIn(t, w.p, "member@customer.example").get(path).ok(200); len(find(pg.doc(), "data-quote", "")) != 0 {
		t.Error("a member sees plan-change quotes")
	}
}

func quote2(t *testing.T, pg *htmlPage, slug string) string {
	t.Helper()
	got := texts(planCard(t, pg.doc(), slug), "data-quote")
	if len(got) != 1 {
		t.Fatalf("plan %s: quotes %q", slug, got)
	}
	return got[0]
}

// attr is an element's attribute.
func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

// getInstallations lists the customer's installations as c sees them.
func getInstallations(t *testing.T, c *client) []plugboard.Installation {
	t.Helper()
	return decode[[]plugboard.Installation](t, c.do("GET", "/api/0/organizations/customer/installations/", nil), 200)
}
