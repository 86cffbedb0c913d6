package web_test

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/plugboard/plugboard/cmd/platform/apptest"
	"github.com/plugboard/plugboard/sdk/plugboard"
)

// Billing over HTTP: usage records the app reports, the invoices closing
// a period writes, the upcoming one, the host collecting them, and
// invoice.created at a host endpoint.

// usageRecord is a usage record as the API answers it.
type usageRecord struct {
	ID             string    `json:"id"`
	Installation   string    `json:"installation"`
	PlanID         string    `json:"planId"`
	Quantity       int64     `json:"quantity"`
	Timestamp      time.Time `json:"timestamp"`
	IdempotencyKey string    `json:"idempotencyKey"`
	DateCreated    time.Time `json:"dateCreated"`
}

type invoiceLine struct {
	ID           *string   `json:"id"`
	Kind         string    `json:"kind"`
	Description  string    `json:"description"`
	Installation string    `json:"installation"`
	AppID        string    `json:"appId"`
	PlanID       string    `json:"planId"`
	Currency     string    `json:"currency"`
	Quantity     int64     `json:"quantity"`
	Included     int64     `json:"included"`
	UnitPrice    string    `json:"unitPrice"`
	Interval     string    `json:"interval"`
	CappedAmount *string   `json:"cappedAmount"`
	Amount       string    `json:"amount"`
	PeriodStart  time.Time `json:"periodStart"`
	PeriodEnd    time.Time `json:"periodEnd"`
}

type invoice struct {
	ID                *string       `json:"id"`
	Organization      *orgRef       `json:"organization"`
	Period            string        `json:"period"`
	PeriodStart       time.Time     `json:"periodStart"`
	PeriodEnd         time.Time     `json:"periodEnd"`
	Currency          string        `json:"currency"`
	Total             string        `json:"total"`
	Status            string        `json:"status"`
	Lines             []invoiceLine `json:"lines"`
	DateCreated       *time.Time    `json:"dateCreated"`
	DatePaid          *time.Time    `json:"datePaid"`
	DateVoided        *time.Time    `json:"dateVoided"`
	DateUncollectible *time.Time    `json:"dateUncollectible"`
}

type upcomingInvoice struct {
	Period       string    `json:"period"`
	PeriodStart  time.Time `json:"periodStart"`
	PeriodEnd    time.Time `json:"periodEnd"`
	DateComputed time.Time `json:"dateComputed"`
	Invoices     []invoice `json:"invoices"`
}

// billedMonth is the month before last: a whole month that has closed
// (or may be closed) whatever the day and hour the test runs.
func billedMonth() time.Time {
	now := time.Now().UTC()
	return time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(0, -2, 0)
}

// backdate moves installations (by uuid), their plan intervals and the
// prices of their plans back to the start of period, in one transaction:
// the platform runs on the wall clock, so history is made by moving the
// ledger's facts, never the clock.
func backdate(t *testing.T, p *apptest.Platform, period time.Time, uuids ...string) {
	t.Helper()
	tx := p.App.DB.Begin()
	for _, q := range []string{
		"UPDATE plan_prices SET effective_from = ? WHERE plan_id IN (SELECT plan_id FROM installation_plan_intervals WHERE installation_id IN (SELECT id FROM installations WHERE uuid IN ?))",
		"UPDATE installation_plan_intervals SET started_at = ? WHERE installation_id IN (SELECT id FROM installations WHERE uuid IN ?)",
		"UPDATE installations SET created_at = ? WHERE uuid IN ?",
	} {
		if err := tx.Exec(q, period, uuids).Error; err != nil {
			tx.Rollback()
			t.Fatal(err)
		}
	}
	if err := tx.Commit().Error; err != nil {
		t.Fatal(err)
	}
}

// closeMonth closes period with the service the scheduled job and
// `plugboard billing close` call, and returns the invoice ids of each
// organization (by numeric id), oldest first.
func closeMonth(t *testing.T, p *apptest.Platform, period time.Time) map[string][]string {
	t.Helper()
	if _, err := p.App.Marketplace.Billing.ClosePeriod(t.Context(), period); err != nil {
		t.Fatalf("closing %s: %v", period.Format("2006-01"), err)
	}
	var rows []struct{ ID, Org string }
	if err := p.App.DB.Raw("SELECT id::text AS id, organization_id::text AS org FROM invoices WHERE period = ? ORDER BY id", period).Scan(&rows).Error; err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, r := range rows {
		out[r.Org] = append(out[r.Org], r.ID)
	}
	return out
}

// billingWorld is a partner's published app with a flat plan (45.00 USD
// a month) and a per_unit plan (0.02 USD a call, 100 included, capped at
// 10.00), installed by Globex on the metered plan and by Initech on the
// flat one; and a second partner's app, installed by Globex too.
type billingWorld struct {
	p                   *apptest.Platform
	op, host            *client
	partner             *client
	app                 *client // the partner app's own credentials
	other               *client // the second app's credentials
	otherToken          *client // an installation token of the second app
	globex, initech     *client // the organizations' owners
	clerk               *client // a member of Globex
	metered, flat       string  // installation uuids: Globex's, Initech's
	clientID, secret    string  // the partner app's credentials
	globexID, initechID string
}

func newBillingWorld(t *testing.T, opts ...apptest.Option) *billingWorld {
	t.Helper()
	p := apptest.Start(t, opts...)
	w := &billingWorld{p: p}
	w.op = operator(t, p, "ops@plugboard.example")
	w.host = newClient(t, p, decode[plugboard.ServiceToken](t, w.op.do("POST", "/api/0/service-tokens/", map[string]any{"name": "Host"}), 201).Token)
	w.partner = signUp(t, p, "dev@partner.example")
	w.partner.do("POST", "/api/0/organizations/", map[string]string{"name": "Partner"}).ok(t, 201, nil)
	app := decode[plugboard.App](t, w.partner.do("POST", "/api/0/organizations/partner/apps/", publicApp("Meter App")), 201)
	w.partner.do("POST", "/api/0/apps/meter-app/plans/", map[string]any{"name": "Flat", "price": "45.00", "currency": "USD"}).ok(t, 201, nil)
	w.partner.do("POST", "/api/0/apps/meter-app/plans/", map[string]any{"name": "Metered", "pricingModel": "per_unit", "currency": "USD",
		"unitPrice": "0.02", "unitName": "API call", "includedUnits": 100, "cappedAmount": "10.00"}).ok(t, 201, nil)
	w.partner.do("POST", "/api/0/apps/meter-app/publish-requests/", nil).ok(t, 201, nil)
	w.op.do("PUT", "/api/0/apps/meter-app/", map[string]any{"status": "published"}).ok(t, 200, nil)
	w.app = newClient(t, p, "")
	w.app.http.Transport = basicAuth{app.ClientID, app.ClientSecret}
	w.clientID, w.secret = app.ClientID, app.ClientSecret

	rival := signUp(t, p, "dev@rival.example")
	rival.do("POST", "/api/0/organizations/", map[string]string{"name": "Rival"}).ok(t, 201, nil)
	otherApp := decode[plugboard.App](t, rival.do("POST", "/api/0/organizations/rival/apps/", publicApp("Rival App")), 201)
	rival.do("POST", "/api/0/apps/rival-app/plans/", map[string]any{"name": "Metered", "pricingModel": "per_unit", "currency": "USD", "unitPrice": "1.00", "unitName": "job"}).ok(t, 201, nil)
	rival.do("POST", "/api/0/apps/rival-app/publish-requests/", nil).ok(t, 201, nil)
	w.op.do("PUT", "/api/0/apps/rival-app/", map[string]any{"status": "published"}).ok(t, 200, nil)
	w.other = newClient(t, p, "")
	w.other.http.Transport = basicAuth{otherApp.ClientID, otherApp.ClientSecret}

	w.globex = signUp(t, p, "admin@globex.example")
	w.globexID = decode[map[string]any](t, w.globex.do("POST", "/api/0/organizations/", map[string]string{"name": "Globex"}), 201)["id"].(string)
	w.clerk = signUp(t, p, "clerk@globex.example")
	w.globex.do("POST", "/api/0/organizations/globex/members/", map[string]string{"email": "clerk@globex.example"}).ok(t, 201, nil)
	w.initech = signUp(t, p, "admin@initech.example")
	w.initechID = decode[map[string]any](t, w.initech.do("POST", "/api/0/organizations/", map[string]string{"name": "Initech"}), 201)["id"].(string)
	w.metered = decode[plugboard.Installation](t, w.globex.do("POST", "/api/0/organizations/globex/installations/", map[string]any{"app": "meter-app", "plan": "metered"}), 201).UUID
	w.flat = decode[plugboard.Installation](t, w.initech.do("POST", "/api/0/organizations/initech/installations/", map[string]any{"app": "meter-app", "plan": "flat"}), 201).UUID
	rivalInst := decode[plugboard.Installation](t, w.globex.do("POST", "/api/0/organizations/globex/installations/", map[string]any{"app": "rival-app", "plan": "metered"}), 201).UUID
	tok := decode[plugboard.AccessToken](t, w.other.do("POST", "/api/0/installations/"+rivalInst+"/access-tokens/", nil), 201)
	w.otherToken = newClient(t, p, tok.Token)
	return w
}

func usageBody(quantity int64, key string, ts ...time.Time) map[string]any {
	b := map[string]any{"quantity": quantity, "idempotencyKey": key}
	if len(ts) > 0 {
		b["timestamp"] = ts[0].Format(time.RFC3339Nano)
	}
	return b
}

// TestUsageRecords: the same idempotencyKey twice counts once, the same
// key with other content is 409, a negative quantity, a closed period
// and a plan that is not per_unit are refused and write nothing, and an
// app never reaches another app's installation.
func TestUsageRecords(t *testing.T) {
	w := newBillingWorld(t)
	path := "/api/0/installations/" + w.metered + "/usage-records/"
	at := time.Now().UTC().Truncate(time.Microsecond) // after the install

	first := decode[usageRecord](t, w.app.do("POST", path, usageBody(120, "job-1", at)), 201)
	if first.Installation != w.metered || first.Quantity != 120 || first.IdempotencyKey != "job-1" || !first.Timestamp.Equal(at) || first.PlanID == "" {
		t.Errorf("created %+v", first)
	}
	again := decode[usageRecord](t, w.app.do("POST", path, usageBody(120, "job-1", at)), 200)
	if again != first {
		t.Errorf("the replay answered %+v, want the first record %+v", again, first)
	}
	// Without its timestamp a replay is still the same record.
	if r := decode[usageRecord](t, w.app.do("POST", path, usageBody(120, "job-1")), 200); r.ID != first.ID {
		t.Errorf("replay without timestamp %+v", r)
	}
	before := count(t, w.p, "usage_records")
	for _, c := range []usageCase{
		{"same key, other quantity", w.app, usageBody(121, "job-1", at), 409, "idempotency_key_reused", ""},
		{"same key, other timestamp", w.app, usageBody(120, "job-1", at.Add(time.Second)), 409, "idempotency_key_reused", ""},
		{"negative", w.app, usageBody(-1, "job-neg"), 400, "", "quantity"},
		{"no quantity", w.app, map[string]any{"idempotencyKey": "job-none"}, 400, "", "quantity"},
		{"no key", w.app, map[string]any{"quantity": 1}, 400, "", "idempotencyKey"},
		{"bad timestamp", w.app, map[string]any{"quantity": 1, "idempotencyKey": "job-ts", "timestamp": "yesterday"}, 400, "", "timestamp"},
		{"future", w.app, usageBody(1, "job-future", time.Now().Add(time.Hour)), 400, "", "timestamp"},
		{"another app", w.other, usageBody(1, "job-x"), 404, "not_found", ""},
		{"another app's installation token", w.otherToken, usageBody(1, "job-x"), 404, "not_found", ""},
		{"the organization's admin", w.globex, usageBody(1, "job-x"), 403, "app_only", ""},
		{"not per_unit", w.app, usageBody(1, "job-flat"), 409, "not_metered", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := c.path(path, w)
			prob := c.client.do("POST", p, c.body).problem(t, c.status, c.code)
			if c.field != "" && prob.Fields[c.field] == "" {
				t.Errorf("no message for %s: %+v", c.field, prob)
			}
		})
	}
	if n := count(t, w.p, "usage_records"); n != before {
		t.Errorf("refused records wrote %d rows", n-before)
	}

	// Counted once: the upcoming invoice bills (120 − 100) × 0.02.
	decode[usageRecord](t, w.app.do("POST", path, usageBody(30, "job-2")), 201)
	up := decode[upcomingInvoice](t, w.globex.do("GET", "/api/0/organizations/globex/upcoming-invoice/", nil), 200)
	if len(up.Invoices) != 1 || len(up.Invoices[0].Lines) != 1 {
		t.Fatalf("upcoming %+v", up)
	}
	if l := up.Invoices[0].Lines[0]; l.Kind != "usage" || l.Quantity != 150 || l.Included != 100 || l.UnitPrice != "0.02" || l.Amount != "1.00" ||
		l.CappedAmount == nil || *l.CappedAmount != "10.00" || l.Installation != w.metered || l.ID != nil {
		t.Errorf("usage line %+v", l)
	}

	// Listing: the app, the admins and the host; newest first, in pages.
	for _, c := range []*client{w.app, w.globex, w.host, w.op} {
		recs := decode[[]usageRecord](t, c.do("GET", path, nil), 200)
		if len(recs) != 2 || recs[0].IdempotencyKey != "job-2" || recs[1] != first {
			t.Errorf("records %+v", recs)
		}
	}
	res := w.app.do("GET", path+"?limit=1", nil)
	if recs := decode[[]usageRecord](t, res, 200); len(recs) != 1 || recs[0].IdempotencyKey != "job-2" {
		t.Errorf("first page %+v", recs)
	}
	next := linkCursor(t, res.Header.Get("Link"), "next")
	if recs := decode[[]usageRecord](t, w.app.do("GET", path+"?limit=1&cursor="+next, nil), 200); len(recs) != 1 || recs[0].ID != first.ID {
		t.Errorf("second page %+v", recs)
	}
	w.clerk.do("GET", path, nil).problem(t, 403, "insufficient_role")
	w.other.do("GET", path, nil).problem(t, 404, "not_found")
	w.initech.do("GET", path, nil).problem(t, 404, "not_found")

	// A closed period refuses usage, even within what would be its grace
	// hour had it not been closed: the ledger moves back two months and
	// the month closes.
	period := billedMonth()
	backdate(t, w.p, period, w.metered, w.flat)
	closeMonth(t, w.p, period)
	prob := w.app.do("POST", path, usageBody(5, "job-late", period.Add(24*time.Hour))).problem(t, 409, "billing_period_closed")
	if prob.Fields["timestamp"] == "" || !strings.Contains(prob.Detail, period.Format("2006-01")) {
		t.Errorf("closed period problem %+v", prob)
	}
	// The old record is still answered as itself.
	decode[usageRecord](t, w.app.do("POST", path, usageBody(120, "job-1", at)), 200)

	// The SDK's ReportUsage against the real API: a retry is the same
	// record, marked Replayed.
	sdk, err := plugboard.NewClient(w.p.URL, plugboard.WithClientCredentials(w.clientID, w.secret))
	if err != nil {
		t.Fatal(err)
	}
	rec, err := sdk.ReportUsage(t.Context(), w.metered, plugboard.Usage{Quantity: 5, IdempotencyKey: "sdk-1"})
	if err != nil || rec.Replayed || rec.Quantity != 5 || rec.Installation != w.metered {
		t.Fatalf("SDK report %+v %v", rec, err)
	}
	if again, err := sdk.ReportUsage(t.Context(), w.metered, plugboard.Usage{Quantity: 5, IdempotencyKey: "sdk-1"}); err != nil || !again.Replayed || again.ID != rec.ID {
		t.Errorf("SDK retry %+v %v", again, err)
	}
	var keys []string
	for r, err := range sdk.AllUsageRecords(t.Context(), w.metered) {
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, r.IdempotencyKey)
	}
	if strings.Join(keys, " ") != "sdk-1 job-2 job-1" {
		t.Errorf("SDK list %v", keys)
	}
}

// usageCase is a usage record refused.
type usageCase struct {
	name   string
	client *client
	body   any
	status int
	code   string
	field  string
}

// path is where the case posts: the not per_unit case posts to the flat
// installation.
func (c usageCase) path(metered string, w *billingWorld) string {
	if c.code == "not_metered" {
		return "/api/0/installations/" + w.flat + "/usage-records/"
	}
	return metered
}

// linkCursor is the cursor of the Link header's rel relation.
func linkCursor(t *testing.T, link, rel string) string {
	t.Helper()
	for _, part := range strings.Split(link, ", ") {
		if strings.Contains(part, `rel="`+rel+`"`) {
			if i := strings.Index(part, `cursor="`); i >= 0 {
				return strings.SplitN(part[i+len(`cursor="`):], `"`, 2)[0]
			}
		}
	}
	t.Fatalf("no %s cursor in %q", rel, link)
	return ""
}

// TestInvoices closes a month with a host endpoint subscribed to
// invoice.created: the host receives each invoice, verified with the
// Standard Webhooks library, in the shape the API answers; the admins
// list and read their organization's invoices and see the upcoming one;
// the host lists the open ones and marks them paid or void.
func TestInvoices(t *testing.T) {
	w := newBillingWorld(t, fastRetries)
	host := newSink(t)
	ep := newHostEndpoint(t, w.op, host, "invoice.created")
	period := billedMonth()
	// Globex's usage in the month, reported before it closes: 1,000 calls
	// are 18.00, capped at 10.00.
	backdate(t, w.p, period, w.metered, w.flat)
	if err := w.p.App.DB.Exec(`INSERT INTO usage_records (installation_id, organization_id, app_id, plan_id, quantity, recorded_at, idempotency_key, created_at)
		SELECT id, organization_id, app_id, plan_id, 1000, ?, 'import-1', ? FROM installations WHERE uuid = ?`, period.Add(48*time.Hour), period.Add(48*time.Hour), w.metered).Error; err != nil {
		t.Fatal(err)
	}
	ids := closeMonth(t, w.p, period)
	if len(ids[w.globexID]) != 1 || len(ids[w.initechID]) != 1 {
		t.Fatalf("invoices %v", ids)
	}
	globexInv, initechInv := ids[w.globexID][0], ids[w.initechID][0]

	// The admins: their organization's invoices, each with its lines.
	list := decode[[]invoice](t, w.globex.do("GET", "/api/0/organizations/globex/invoices/", nil), 200)
	if len(list) != 1 || *list[0].ID != globexInv || list[0].Status != "open" || list[0].Total != "10.00" || list[0].Currency != "USD" ||
		list[0].Period != period.Format("2006-01") || !list[0].PeriodStart.Equal(period) || !list[0].PeriodEnd.Equal(period.AddDate(0, 1, 0)) ||
		list[0].Organization == nil || list[0].Organization.Slug != "globex" || list[0].DateCreated == nil {
		t.Fatalf("Globex's invoices %+v", list)
	}
	if l := list[0].Lines; len(l) != 1 || l[0].Kind != "usage" || l[0].Quantity != 1000 || l[0].Amount != "10.00" || l[0].ID == nil {
		t.Errorf("Globex's lines %+v", l)
	}
	one := decode[invoice](t, w.globex.do("GET", "/api/0/organizations/globex/invoices/"+globexInv+"/", nil), 200)
	if !reflect.DeepEqual(one, list[0]) {
		t.Errorf("GET one %+v\nthe list's %+v", one, list[0])
	}
	flat := decode[invoice](t, w.initech.do("GET", "/api/0/organizations/initech/invoices/"+initechInv+"/", nil), 200)
	if flat.Total != "45.00" || len(flat.Lines) != 1 || flat.Lines[0].Kind != "flat" || flat.Lines[0].UnitPrice != "45.00" ||
		flat.Lines[0].Interval != "month" || flat.Lines[0].Quantity != flat.Lines[0].Included {
		t.Errorf("Initech's whole month on Flat: %+v", flat)
	}
	w.globex.do("GET", "/api/0/organizations/globex/invoices/"+initechInv+"/", nil).problem(t, 404, "not_found")
	w.initech.do("GET", "/api/0/organizations/globex/invoices/"+globexInv+"/", nil).problem(t, 404, "not_found")
	w.clerk.do("GET", "/api/0/organizations/globex/invoices/", nil).problem(t, 403, "insufficient_role")
	w.globex.do("GET", "/api/0/organizations/globex/invoices/?status=paid", nil).ok(t, 200, nil)
	w.globex.do("GET", "/api/0/organizations/globex/invoices/?status=late", nil).problem(t, 400, "")

	// The upcoming invoice: Initech stays on Flat to the end of the month.
	up := decode[upcomingInvoice](t, w.initech.do("GET", "/api/0/organizations/initech/upcoming-invoice/", nil), 200)
	thisMonth := period.AddDate(0, 2, 0)
	if up.Period != thisMonth.Format("2006-01") || len(up.Invoices) != 1 || up.Invoices[0].Total != "45.00" || up.Invoices[0].ID != nil ||
		up.Invoices[0].DateCreated != nil || up.Invoices[0].Status != "open" {
		t.Errorf("Initech's upcoming invoice %+v", up)
	}
	w.clerk.do("GET", "/api/0/organizations/globex/upcoming-invoice/", nil).problem(t, 403, "insufficient_role")

	// invoice.created at the host endpoint, one per invoice, verified, in
	// the shape the API answers.
	got := host.waitEvent(t, "invoice.created", 10*time.Second)
	waitFor(t, 10*time.Second, func() bool { return len(host.eventsOf("invoice.created")) == 2 })
	seen := map[string]bool{}
	for _, h := range host.eventsOf("invoice.created") {
		verify(t, ep.Secret, h)
		var env hostEnvelope
		if err := strictUnmarshal(h.Body, &env); err != nil {
			t.Fatal(err)
		}
		var data struct {
			Invoice      json.RawMessage `json:"invoice"`
			Organization orgRef          `json:"organization"`
		}
		if err := strictUnmarshal(env.Data, &data); err != nil {
			t.Fatalf("invoice.created data %s: %v", env.Data, err)
		}
		var sent invoice
		if err := strictUnmarshal(data.Invoice, &sent); err != nil {
			t.Fatalf("invoice.created invoice %s: %v", data.Invoice, err)
		}
		seen[*sent.ID] = true
		if *sent.ID == globexInv && (!sameJSON(t, data.Invoice, w.globex.do("GET", "/api/0/organizations/globex/invoices/"+globexInv+"/", nil).Body) || data.Organization.Slug != "globex") {
			t.Errorf("invoice.created %s\nthe API's %s", data.Invoice, w.globex.do("GET", "/api/0/organizations/globex/invoices/"+globexInv+"/", nil).Body)
		}
	}
	if !seen[globexInv] || !seen[initechInv] || got.Header.Get("Webhook-Id") == "" {
		t.Errorf("invoice.created for %v", seen)
	}

	// The host collects: open invoices, then paid and void.
	open := decode[[]invoice](t, w.host.do("GET", "/api/0/invoices/?status=open", nil), 200)
	// Both were written by one close, in one statement: newest first is
	// by id, whichever organization's came first.
	if len(open) != 2 || !(*open[0].ID == initechInv && *open[1].ID == globexInv || *open[0].ID == globexInv && *open[1].ID == initechInv) ||
		len(*open[0].ID) < len(*open[1].ID) || len(*open[0].ID) == len(*open[1].ID) && *open[0].ID < *open[1].ID {
		t.Fatalf("open invoices %+v, want both, newest id first", open)
	}
	w.globex.do("GET", "/api/0/invoices/?status=open", nil).problem(t, 403, "operator_only")
	w.app.do("GET", "/api/0/invoices/", nil).problem(t, 403, "operator_only")
	w.host.do("GET", "/api/0/invoices/?status=due", nil).problem(t, 400, "")
	w.globex.do("PUT", "/api/0/invoices/"+globexInv+"/", map[string]any{"status": "paid"}).problem(t, 403, "operator_only")

	paid := decode[invoice](t, w.host.do("PUT", "/api/0/invoices/"+globexInv+"/", map[string]any{"status": "paid"}), 200)
	if paid.Status != "paid" || paid.DatePaid == nil || paid.Total != "10.00" {
		t.Errorf("paid %+v", paid)
	}
	if again := decode[invoice](t, w.host.do("PUT", "/api/0/invoices/"+globexInv+"/", map[string]any{"status": "paid"}), 200); !reflect.DeepEqual(again, paid) {
		t.Errorf("paid again %+v, want %+v", again, paid)
	}
	prob := w.host.do("PUT", "/api/0/invoices/"+globexInv+"/", map[string]any{"status": "void"}).problem(t, 409, "invalid_invoice_transition")
	if !strings.Contains(prob.Detail, "paid") || !strings.Contains(prob.Detail, "void") {
		t.Errorf("transition problem %+v", prob)
	}
	for _, body := range []any{map[string]any{"status": "open"}, map[string]any{"status": "refunded"}, map[string]any{}} {
		if p := w.host.do("PUT", "/api/0/invoices/"+initechInv+"/", body).problem(t, 400, ""); p.Fields["status"] == "" {
			t.Errorf("%v: %+v", body, p)
		}
	}
	w.host.do("PUT", "/api/0/invoices/999999/", map[string]any{"status": "paid"}).problem(t, 404, "not_found")
	void := decode[invoice](t, w.op.do("PUT", "/api/0/invoices/"+initechInv+"/", map[string]any{"status": "void"}), 200)
	if void.Status != "void" || void.DateVoided == nil || void.DatePaid != nil {
		t.Errorf("void %+v", void)
	}
	w.host.do("PUT", "/api/0/invoices/"+initechInv+"/", map[string]any{"status": "paid"}).problem(t, 409, "invalid_invoice_transition")
	if open := decode[[]invoice](t, w.host.do("GET", "/api/0/invoices/?status=open", nil), 200); len(open) != 0 {
		t.Errorf("still open %+v", open)
	}
	if got := decode[[]invoice](t, w.globex.do("GET", "/api/0/organizations/globex/invoices/?status=paid", nil), 200); len(got) != 1 || got[0].Status != "paid" {
		t.Errorf("Globex's paid invoices %+v", got)
	}
	audit := w.globex.do("GET", "/api/0/organizations/globex/audit-logs/?action=invoice.paid", nil)
	if audit.Status != http.StatusOK || !strings.Contains(string(audit.Body), globexInv) {
		t.Errorf("audit %d %s", audit.Status, audit.Body)
	}
}

// sameJSON reports whether two JSON documents are the same value.
func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatal(err)
	}
	same := reflect.DeepEqual(x, y)
	if !same {
		t.Logf("differ:\n%s\n%s", a, b)
	}
	return same
}
