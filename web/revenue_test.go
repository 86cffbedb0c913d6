package web_test

import (
	"encoding/json"
	"net/url"
	"testing"
	"time"

	"github.com/plugboard/plugboard/cmd/platform/apptest"
	"github.com/plugboard/plugboard/marketplace"
	"github.com/plugboard/plugboard/sdk/plugboard"
)

// loose decodes the members of a response the test reads (the OpenAPI
// document's schema checks the rest on every response).
func loose[T any](t testing.TB, r *response, want int) T {
	t.Helper()
	var v T
	if r.Status != want {
		t.Fatalf("status %d, want %d: %s", r.Status, want, r.Body)
	}
	if err := json.Unmarshal(r.Body, &v); err != nil {
		t.Fatalf("decoding %s: %v", r.Body, err)
	}
	return v
}

// revenueWorld is a partner app with two paying customers whose first
// billing period is closed: Globex on Pro (30.00 USD a month) paid its
// invoice, Initech on Annual (120.00 USD a year, so 10.00 a month) had
// its invoice voided.
type revenueWorld struct {
	p              *apptest.Platform
	owner, member  *client
	op             *client
	outsider       *client
	period         time.Time // the closed period
	paidInvoice    string
	voidedInvoice  string
	thisMonth      time.Time
	appSlug, appID string
}

func newRevenueWorld(t *testing.T) *revenueWorld {
	t.Helper()
	p := apptest.Start(t)
	w := &revenueWorld{p: p, appSlug: "acme-metrics"}
	w.owner = signUp(t, p, "owner@acme.example")
	w.member = signUp(t, p, "member@acme.example")
	w.outsider = signUp(t, p, "outsider@example.com")
	w.op = operator(t, p, "ops@plugboard.example")
	w.owner.do("POST", "/api/0/organizations/", map[string]string{"name": "Acme"}).ok(t, 201, nil)
	w.owner.do("POST", "/api/0/organizations/acme/members/", map[string]string{"email": "member@acme.example"}).ok(t, 201, nil)
	app := decode[plugboard.App](t, w.owner.do("POST", "/api/0/organizations/acme/apps/", publicApp("Acme Metrics")), 201)
	w.appID = app.ID
	w.owner.do("POST", "/api/0/apps/acme-metrics/plans/", map[string]any{"name": "Pro", "price": "30.00", "currency": "USD"}).ok(t, 201, nil)
	w.owner.do("POST", "/api/0/apps/acme-metrics/plans/", map[string]any{"name": "Annual", "price": "120.00", "currency": "USD", "interval": "year"}).ok(t, 201, nil)
	w.owner.do("POST", "/api/0/apps/acme-metrics/publish-requests/", nil).ok(t, 201, nil)
	w.op.do("PUT", "/api/0/apps/acme-metrics/", map[string]any{"status": "published"}).ok(t, 200, nil)
	for _, c := range []struct{ email, org, slug, plan string }{
		{"admin@globex.example", "Globex", "globex", "pro"}, {"admin@initech.example", "Initech", "initech", "annual"},
	} {
		cust := signUp(t, p, c.email)
		cust.do("POST", "/api/0/organizations/", map[string]string{"name": c.org}).ok(t, 201, nil)
		cust.do("POST", "/api/0/organizations/"+c.slug+"/installations/", map[string]any{"app": "acme-metrics", "plan": c.plan}).ok(t, 201, nil)
	}
	// The platform runs on the wall clock: the installations are moved to
	// the start of the month before last, so that month closes whole.
	now := time.Now().UTC()
	w.thisMonth = time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	w.period = w.thisMonth.AddDate(0, -2, 0)
	for _, q := range []string{
		"UPDATE installation_plan_intervals SET started_at = ? WHERE app_id = ?",
		"UPDATE installations SET created_at = ? WHERE app_id = ?",
		"UPDATE plan_prices SET effective_from = ? WHERE app_id = ?",
	} {
		if err := p.App.DB.Exec(q, w.period, w.appID).Error; err != nil {
			t.Fatal(err)
		}
	}
	ctx := t.Context()
	if _, err := p.App.Marketplace.Billing.ClosePeriod(ctx, w.period); err != nil {
		t.Fatal(err)
	}
	var invoices []struct {
		ID   string
		Slug string
	}
	p.App.DB.Raw(`SELECT i.id::text AS id, o.slug FROM invoices i JOIN organizations o ON o.id = i.organization_id ORDER BY o.slug`).Scan(&invoices)
	if len(invoices) != 2 {
		t.Fatalf("invoices %+v", invoices)
	}
	w.paidInvoice, w.voidedInvoice = invoices[0].ID, invoices[1].ID // globex, initech
	host := signInActor(t, p, "ops@plugboard.example")
	for id, status := range map[string]string{w.paidInvoice: marketplace.InvoicePaid, w.voidedInvoice: marketplace.InvoiceVoid} {
		if _, err := p.App.Marketplace.Invoices.UpdateInvoiceStatus(ctx, host, id, status); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

type revenueJSON struct {
	App        string `json:"app"`
	Resolution string `json:"resolution"`
	Commission string `json:"commission"`
	Billed     []struct {
		Plan struct {
			Slug *string `json:"slug"`
		} `json:"plan"`
		Currency string `json:"currency"`
		Amount   string `json:"amount"`
	} `json:"billed"`
	NewInstallations int `json:"newInstallations"`
	TrialsStarted    int `json:"trialsStarted"`
	TrialsConverted  int `json:"trialsConverted"`
	Buckets          []struct {
		Start time.Time `json:"start"`
		MRR   []struct {
			Currency string `json:"currency"`
			Amount   string `json:"amount"`
		} `json:"mrr"`
		Installations struct {
			Active, New, Churned int
		} `json:"installations"`
		Billed []struct {
			Amount string `json:"amount"`
		} `json:"billed"`
	} `json:"buckets"`
}

type payoutsJSON []struct {
	ID         string `json:"id"`
	Period     string `json:"period"`
	Currency   string `json:"currency"`
	Status     string `json:"status"`
	Gross      string `json:"gross"`
	Commission string `json:"commission"`
	Net        string `json:"net"`
	Lines      []struct {
		Invoice        string `json:"invoice"`
		Organization   string `json:"organization"`
		Period         string `json:"period"`
		CommissionRate string `json:"commissionRate"`
		Gross          string `json:"gross"`
		Commission     string `json:"commission"`
		Net            string `json:"net"`
	} `json:"lines"`
}

// A partner's revenue, payouts and commission over HTTP: the paid invoice
// is paid out less 20 %, the voided one is neither billed revenue nor
// paid out, MRR counts both live installations (the yearly plan as a
// twelfth), and a new commission applies only to invoices paid after it.
func TestAppRevenueAndPayouts(t *testing.T) {
	w := newRevenueWorld(t)
	q := url.Values{"since": {w.period.Format(time.RFC3339)}, "until": {w.thisMonth.AddDate(0, 1, 0).Format(time.RFC3339)}, "resolution": {"month"}}
	rev := loose[revenueJSON](t, w.member.do("GET", "/api/0/apps/acme-metrics/revenue/?"+q.Encode(), nil), 200)
	if rev.Resolution != "month" || rev.Commission != "20.00" || len(rev.Buckets) != 3 || rev.NewInstallations != 2 {
		t.Fatalf("revenue %+v", rev)
	}
	if len(rev.Billed) != 1 || *rev.Billed[0].Plan.Slug != "pro" || rev.Billed[0].Amount != "30.00" || rev.Billed[0].Currency != "USD" {
		t.Errorf("billed %+v: want Pro's 30.00 USD only (Initech's invoice is void)", rev.Billed)
	}
	for i, b := range rev.Buckets {
		if len(b.MRR) != 1 || b.MRR[0].Amount != "40.00" || b.Installations.Active != 2 {
			t.Errorf("bucket %d (%s): MRR %+v, active %d; want 40.00 USD, 2", i, b.Start, b.MRR, b.Installations.Active)
		}
	}
	if !rev.Buckets[0].Start.Equal(w.period) || rev.Buckets[0].Installations.New != 2 || len(rev.Buckets[1].Billed) != 0 {
		t.Errorf("buckets %+v", rev.Buckets)
	}

	pay := loose[payoutsJSON](t, w.member.do("GET", "/api/0/apps/acme-metrics/payouts/", nil), 200)
	month := marketplace.FormatPeriod(w.thisMonth)
	if len(pay) != 1 || pay[0].ID != month+"-USD" || pay[0].Status != "open" || pay[0].Gross != "30.00" || pay[0].Commission != "6.00" || pay[0].Net != "24.00" {
		t.Fatalf("payouts %+v", pay)
	}
	if l := pay[0].Lines; len(l) != 1 || l[0].Invoice != w.paidInvoice || l[0].Organization != "globex" || l[0].CommissionRate != "20.00" ||
		l[0].Period != marketplace.FormatPeriod(w.period) || l[0].Gross != "30.00" || l[0].Commission != "6.00" || l[0].Net != "24.00" {
		t.Errorf("lines %+v", l)
	}
	if got := loose[payoutsJSON](t, w.member.do("GET", "/api/0/apps/acme-metrics/payouts/?period="+marketplace.FormatPeriod(w.period), nil), 200); len(got) != 0 {
		t.Errorf("nothing was paid in the billed month: %+v", got)
	}

	// The commission: members read it, only operators set it.
	type commission struct {
		App             string     `json:"app"`
		Commission      string     `json:"commission"`
		PlatformDefault string     `json:"platformDefault"`
		Override        *string    `json:"override"`
		DateEffective   *time.Time `json:"dateEffective"`
	}
	c := decode[commission](t, w.member.do("GET", "/api/0/apps/acme-metrics/commission/", nil), 200)
	if c.Commission != "20.00" || c.PlatformDefault != "20.00" || c.Override != nil || c.DateEffective != nil {
		t.Errorf("default commission %+v", c)
	}
	w.owner.do("PUT", "/api/0/apps/acme-metrics/commission/", map[string]any{"commission": "5"}).problem(t, 403, "operator_only")
	c = decode[commission](t, w.op.do("PUT", "/api/0/apps/acme-metrics/commission/", map[string]any{"commission": "12.5"}), 200)
	if c.Commission != "12.50" || c.Override == nil || *c.Override != "12.50" || c.DateEffective == nil {
		t.Errorf("set commission %+v", c)
	}
	if got := decode[commission](t, w.owner.do("GET", "/api/0/apps/acme-metrics/commission/", nil), 200); got.Commission != "12.50" {
		t.Errorf("commission read back %+v", got)
	}
	pay = loose[payoutsJSON](t, w.op.do("GET", "/api/0/apps/acme-metrics/payouts/", nil), 200)
	if len(pay) != 1 || pay[0].Commission != "6.00" {
		t.Errorf("a paid invoice keeps the rate it was paid at: %+v", pay)
	}
	c = decode[commission](t, w.op.do("PUT", "/api/0/apps/acme-metrics/commission/", map[string]any{"commission": nil}), 200)
	if c.Commission != "20.00" || c.Override != nil {
		t.Errorf("back to the default %+v", c)
	}
	// Outsiders do not see any of it.
	for _, path := range []string{"revenue/", "payouts/", "commission/"} {
		w.outsider.do("GET", "/api/0/apps/acme-metrics/"+path, nil).problem(t, 404, "not_found")
	}
}

// Bad input is a 400 problem naming the field, and changes nothing.
func TestRevenueBadInput(t *testing.T) {
	w := newRevenueWorld(t)
	revenue := "/api/0/apps/acme-metrics/revenue/?"
	for _, tc := range []struct {
		query url.Values
		field string
	}{
		{url.Values{"resolution": {"hour"}}, "resolution"},
		{url.Values{"resolution": {"24h"}}, "resolution"},
		{url.Values{"since": {"2026-05-01T00:00:00Z"}, "until": {"2026-04-01T00:00:00Z"}}, "until"},
		{url.Values{"since": {"2026-05-01T00:00:00Z"}, "until": {"2026-05-01T00:00:00Z"}}, "until"},
		{url.Values{"since": {"yesterday"}}, "since"},
		{url.Values{"until": {"2026-13-01"}}, "until"},
		{url.Values{"since": {"2001-01-01T00:00:00Z"}, "until": {"2026-01-01T00:00:00Z"}, "resolution": {"day"}}, "resolution"},
		{url.Values{"since": {"0001-01-01T00:00:00Z"}, "until": {"2026-01-01T00:00:00Z"}}, "since"},
	} {
		p := w.member.do("GET", revenue+tc.query.Encode(), nil).problem(t, 400, "invalid_input")
		if p.Fields[tc.field] == "" {
			t.Errorf("%v: fields %v, want a message for %s", tc.query, p.Fields, tc.field)
		}
	}
	w.member.do("GET", "/api/0/apps/acme-metrics/payouts/?period=November", nil).problem(t, 400, "invalid_input")
	before := count(t, w.p, "app_commissions")
	for _, body := range []any{
		map[string]any{"commission": "101"}, map[string]any{"commission": "12.345"}, map[string]any{"commission": "-1"},
		map[string]any{"commission": 15}, map[string]any{"commission": "15%"}, map[string]any{},
	} {
		p := w.op.do("PUT", "/api/0/apps/acme-metrics/commission/", body).problem(t, 400, "")
		if p.Fields["commission"] == "" {
			t.Errorf("%v: fields %v, want a message for commission", body, p.Fields)
		}
	}
	if after := count(t, w.p, "app_commissions"); after != before {
		t.Errorf("refused changes wrote %d commissions", after-before)
	}
}
