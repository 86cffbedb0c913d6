package marketplace_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"math/big"

	"github.com/plugboard/plugboard/app/page"
	"github.com/plugboard/plugboard/marketplace"
)

// billed is a partner with two published apps — Pager (flat plans, one
// with a trial) and Meter (a per-unit plan) — and a customer organization.
type billed struct {
	*env
	dev, admin   marketplace.Actor
	pager, meter *marketplace.CreatedApp
	meterApp     marketplace.Actor // Meter, authenticated as itself
	pagerApp     marketplace.Actor
}

func newBilled(t *testing.T) *billed {
	e := newTestServices(t)
	b := &billed{env: e}
	op := e.mustOperator("ops@plugboard.example")
	b.dev = e.mustUser("dev@partner.example")
	e.mustOrg(b.dev, "Partner")
	b.pager = e.mustApp(b.dev, "partner", appFields("Pager"))
	b.mustPlanFields(b.pager.Slug, marketplace.PlanFields{Name: ptr("Pro"), Price: ptr("30.00"), TrialDays: ptr(14)})
	b.mustPlanFields(b.pager.Slug, marketplace.PlanFields{Name: ptr("Basic"), Price: ptr("10.00")})
	e.mustPublish(b.dev, op, b.pager.Slug)
	b.meter = e.mustApp(b.dev, "partner", appFields("Meter"))
	b.mustPlanFields(b.meter.Slug, marketplace.PlanFields{Name: ptr("Calls"), PricingModel: ptr(marketplace.PricingPerUnit),
		UnitPrice: ptr("0.10"), UnitName: ptr("call"), IncludedUnits: ptr(int64(100)), CappedAmount: ptr("50.00")})
	b.mustPlanFields(b.meter.Slug, marketplace.PlanFields{Name: ptr("Flat"), Price: ptr("5.00")})
	e.mustPublish(b.dev, op, b.meter.Slug)
	b.meterApp = marketplace.Actor{App: e.mustClient(b.meter)}
	b.pagerApp = marketplace.Actor{App: e.mustClient(b.pager)}
	b.admin = e.mustUser("admin@customer.example")
	e.mustOrg(b.admin, "Customer")
	return b
}

func (b *billed) mustPlanFields(app string, f marketplace.PlanFields) *marketplace.Plan {
	b.t.Helper()
	p, err := b.Apps.CreatePlan(b.ctx, b.dev, app, f)
	if err != nil {
		b.t.Fatalf("creating plan: %v", err)
	}
	return p
}

// at moves the clock forward to t.
func (b *billed) at(t time.Time) {
	b.env.t.Helper()
	if d := t.Sub(b.clock.Now()); d < 0 {
		b.env.t.Fatalf("the clock cannot go back to %s from %s", t, b.clock.Now())
	} else {
		b.clock.Advance(d)
	}
}

func (b *billed) usage(app marketplace.Actor, inst string, qty int64, ts *time.Time, key string) (*marketplace.UsageRecord, bool, error) {
	return b.Usage.ReportUsage(b.ctx, app, inst, marketplace.NewUsageRecord{Quantity: &qty, Timestamp: ts, IdempotencyKey: key})
}

func (b *billed) invoices() []marketplace.Invoice {
	b.env.t.Helper()
	var out []marketplace.Invoice
	if err := b.db.Preload("Lines").Order("id").Find(&out).Error; err != nil {
		b.env.t.Fatal(err)
	}
	return out
}

// The env's clock starts on 2030-03-04 09:00 UTC.
var (
	april = time.Date(2030, 4, 1, 0, 0, 0, 0, time.UTC)
	march = time.Date(2030, 3, 1, 0, 0, 0, 0, time.UTC)
)

func TestPlanPricingFieldsAreCheckedFieldByField(t *testing.T) {
	b := newBilled(t)
	for _, c := range []struct {
		name   string
		f      marketplace.PlanFields
		fields []string
	}{
		{"yen have no cents", marketplace.PlanFields{Price: ptr("9.50"), Currency: ptr("JPY")}, []string{"price"}},
		{"not a currency", marketplace.PlanFields{Price: ptr("9"), Currency: ptr("ABC")}, []string{"currency"}},
		{"flat costs something", marketplace.PlanFields{PricingModel: ptr("flat"), Price: ptr("0")}, []string{"price"}},
		{"free costs nothing", marketplace.PlanFields{PricingModel: ptr("free"), Price: ptr("3")}, []string{"price"}},
		{"unknown model", marketplace.PlanFields{PricingModel: ptr("tiered")}, []string{"pricingModel"}},
		{"per unit needs its unit", marketplace.PlanFields{PricingModel: ptr("per_unit")}, []string{"unitPrice", "unitName"}},
		{"per unit is monthly, has no price", marketplace.PlanFields{PricingModel: ptr("per_unit"), UnitPrice: ptr("0.01"), UnitName: ptr("call"),
			Price: ptr("5"), Interval: ptr("year")}, []string{"price", "interval"}},
		{"negative included units, zero cap", marketplace.PlanFields{UnitPrice: ptr("0.01"), UnitName: ptr("call"), IncludedUnits: ptr(int64(-1)),
			CappedAmount: ptr("0")}, []string{"includedUnits", "cappedAmount"}},
		{"unit fields on a flat plan", marketplace.PlanFields{Price: ptr("5"), UnitName: ptr("call")}, []string{"unitName"}},
		{"trial too long", marketplace.PlanFields{Price: ptr("5"), TrialDays: ptr(400)}, []string{"trialDays"}},
		{"no trial of nothing", marketplace.PlanFields{TrialDays: ptr(3)}, []string{"trialDays"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.f.Name = ptr("Plan " + c.name)
			_, err := b.Apps.CreatePlan(b.ctx, b.dev, b.pager.Slug, c.f)
			wantCode(t, err, "invalid_input")
			wantFields(t, err, c.fields...)
		})
	}
	// Amounts come back with the currency's digits.
	for _, c := range []struct{ price, currency, want string }{{"9", "USD", "9.00"}, {"4500.00", "JPY", "4500"}, {"1.5", "KWD", "1.500"}} {
		p, err := b.Apps.CreatePlan(b.ctx, b.dev, b.pager.Slug, marketplace.PlanFields{Name: ptr("In " + c.currency), Price: ptr(c.price), Currency: ptr(c.currency)})
		wantCode(t, err, "")
		if p.Price != c.want || p.PricingModel != marketplace.PricingFlat {
			t.Errorf("%s %s: price %q (%s), want %q flat", c.price, c.currency, p.Price, p.PricingModel, c.want)
		}
	}
}

// A price change of a plan somebody is on applies from the next period;
// the open one keeps the old price. A plan with live installations stays.
func TestPriceChangeAppliesFromTheNextPeriod(t *testing.T) {
	b := newBilled(t)
	ni := b.mustInstall(b.admin, "customer", b.pager.Slug, "basic")
	b.at(time.Date(2030, 3, 20, 0, 0, 0, 0, time.UTC))
	if _, err := b.Apps.UpdatePlan(b.ctx, b.dev, b.pager.Slug, "basic", marketplace.PlanFields{Price: ptr("20.00")}); err != nil {
		t.Fatal(err)
	}
	wantCode(t, b.Apps.DeletePlan(b.ctx, b.dev, b.pager.Slug, "basic"), "plan_in_use")
	b.at(time.Date(2030, 5, 1, 2, 0, 0, 0, time.UTC))
	if _, err := b.Billing.CloseDue(b.ctx); err != nil {
		t.Fatal(err)
	}
	// March at 10.00, prorated from 4 March 09:00; April at the new 20.00.
	lived := int64(april.Sub(ni.Installation.CreatedAt) / time.Second)
	want := map[string]int64{"2030-03": roundEven(big.NewRat(1000*lived, int64(april.Sub(march)/time.Second))), "2030-04": 2000}
	got := map[string]int64{}
	for _, inv := range b.invoices() {
		got[marketplace.FormatPeriod(inv.Period)] = inv.Total
	}
	if got["2030-03"] != want["2030-03"] || got["2030-04"] != want["2030-04"] {
		t.Errorf("totals %v, want %v", got, want)
	}
	if err := b.Installs.Uninstall(b.ctx, b.admin, ni.Installation.UUID); err != nil {
		t.Fatal(err)
	}
	wantCode(t, b.Apps.DeletePlan(b.ctx, b.dev, b.pager.Slug, "basic"), "")
}

func TestUsageRecords(t *testing.T) {
	b := newBilled(t)
	meter := b.mustInstall(b.admin, "customer", b.meter.Slug, "calls").Installation.UUID
	pager := b.mustInstall(b.admin, "customer", b.pager.Slug, "basic").Installation.UUID
	b.clock.Advance(time.Hour)

	// The same key twice is one record; with another quantity, a conflict.
	r1, created, err := b.usage(b.meterApp, meter, 150, nil, "batch-1")
	wantCode(t, err, "")
	r2, again, err := b.usage(b.meterApp, meter, 150, nil, "batch-1")
	wantCode(t, err, "")
	if !created || again || r1.ID != r2.ID {
		t.Errorf("same key twice: created %v then %v, ids %d and %d; want one record", created, again, r1.ID, r2.ID)
	}
	_, _, err = b.usage(b.meterApp, meter, 151, nil, "batch-1")
	wantCode(t, err, "idempotency_key_reused")

	// Refused: another app's installation (it does not exist for Meter),
	// a plan that is not metered, negative quantities, the future, a
	// closed period, and anybody but the app.
	_, _, err = b.usage(b.meterApp, pager, 1, nil, "x")
	wantCode(t, err, "not_found")
	_, _, err = b.usage(b.pagerApp, pager, 1, nil, "x")
	wantCode(t, err, "not_metered")
	_, _, err = b.usage(b.meterApp, meter, -1, nil, "x")
	wantFields(t, err, "quantity")
	_, _, err = b.usage(b.meterApp, meter, 1, ptr(b.clock.Now().Add(time.Hour)), "")
	wantFields(t, err, "timestamp", "idempotencyKey")
	_, _, err = b.usage(b.admin, meter, 1, nil, "by-admin")
	wantCode(t, err, "app_only")

	lastMarch := time.Date(2030, 3, 31, 23, 0, 0, 0, time.UTC)
	b.at(april.Add(30 * time.Minute)) // within the hour of grace
	_, _, err = b.usage(b.meterApp, meter, 10, &lastMarch, "late")
	wantCode(t, err, "")
	b.at(april.Add(marketplace.UsageGrace))
	_, _, err = b.usage(b.meterApp, meter, 10, &lastMarch, "too-late")
	wantCode(t, err, "billing_period_closed")

	if _, err := b.Billing.ClosePeriod(b.ctx, march); err != nil {
		t.Fatal(err)
	}
	invs := b.invoices()
	var usage *marketplace.InvoiceLine
	for i := range invs {
		for j := range invs[i].Lines {
			if invs[i].Lines[j].Kind == marketplace.LineUsage {
				usage = &invs[i].Lines[j]
			}
		}
	}
	// 150 + 10 calls, 100 included: 60 × 0.10 = 6.00.
	if usage == nil || usage.Quantity != 160 || usage.Amount != 600 || usage.Included != 100 {
		t.Fatalf("usage line %+v, want 160 calls, 100 included, 600 cents", usage)
	}

	// Members may not list them; the app and admins may.
	member := b.mustUser("member@customer.example")
	b.mustMember(b.admin, "customer", member, marketplace.RoleMember)
	for _, c := range []struct {
		who  marketplace.Actor
		code string
	}{{b.meterApp, ""}, {b.admin, ""}, {member, "insufficient_role"}, {b.pagerApp, "not_found"}} {
		p, err := b.Usage.ListUsageRecords(b.ctx, c.who, meter, page.Request{})
		wantCode(t, err, c.code)
		if err == nil && len(p.Items) != 2 {
			t.Errorf("listed %d records, want 2", len(p.Items))
		}
	}
}

// Closing twice, or from two closers at once, writes each invoice once,
// and tells the host of each once, with the ids of the invoice and lines
// written.
func TestClosingIsOnce(t *testing.T) {
	b := newBilled(t)
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	t.Cleanup(sink.Close)
	host, err := b.HostEndpoints.CreateHostEndpoint(b.ctx, b.mustOperator("billing-ops@plugboard.example"),
		marketplace.HostEndpointFields{URL: ptr(sink.URL), EventTypes: ptr([]string{marketplace.EventInvoiceCreated})})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 12 {
		org := b.mustOrg(b.admin, "Org "+strconv.Itoa(i)).Org.Slug
		b.mustInstall(b.admin, org, b.pager.Slug, "basic")
		b.mustInstall(b.admin, org, b.meter.Slug, "flat")
	}
	b.at(april.Add(2 * time.Hour))
	var wg sync.WaitGroup
	reps := make([]marketplace.CloseReport, 4)
	errs := make([]error, 4)
	for i := range 4 {
		wg.Go(func() { reps[i], errs[i] = b.Billing.ClosePeriod(b.ctx, march) })
	}
	wg.Wait()
	written := 0
	for i := range 4 {
		wantCode(t, errs[i], "")
		written += reps[i].Invoices
	}
	if written != 12 || b.count("invoices", "") != 12 || b.count("billing_closes", "") != 12 {
		t.Fatalf("four closers at once wrote %d invoices (%d stored, %d closes), want 12", written, b.count("invoices", ""), b.count("billing_closes", ""))
	}
	// One invoice.created per invoice, its one delivery to the endpoint,
	// its data the invoice and lines as stored.
	var told int64
	if err := b.db.Raw(`SELECT count(*) FROM events e JOIN invoices i ON i.id = (e.data->'invoice'->>'id')::bigint
		WHERE e.type = ? AND e.data->'organization'->>'id' = i.organization_id::text
		  AND (SELECT array_agg((l->>'id')::bigint ORDER BY (l->>'id')::bigint) FROM json_array_elements(e.data->'invoice'->'lines') l)
		    = (SELECT array_agg(r.id ORDER BY r.id) FROM invoice_lines r WHERE r.invoice_id = i.id)
		  AND NOT EXISTS (SELECT 1 FROM json_array_elements(e.data->'invoice'->'lines') l JOIN invoice_lines r ON r.id = (l->>'id')::bigint
		    WHERE r.installation_uuid::text <> l->>'installation' OR r.plan_id::text <> l->>'planId')`,
		marketplace.EventInvoiceCreated).Scan(&told).Error; err != nil {
		t.Fatal(err)
	}
	if told != 12 || b.count("events", "type = ?", marketplace.EventInvoiceCreated) != 12 ||
		b.count("deliveries", "event_type = ? AND host_endpoint_id = ?", marketplace.EventInvoiceCreated, host.ID) != 12 {
		t.Fatalf("%d of %d invoice.created events match their invoice, %d deliveries; want 12 of 12 and 12", told,
			b.count("events", "type = ?", marketplace.EventInvoiceCreated), b.count("deliveries", "event_type = ?", marketplace.EventInvoiceCreated))
	}
	rep, err := b.Billing.ClosePeriod(b.ctx, march)
	wantCode(t, err, "")
	if !rep.AlreadyClosed || b.count("invoices", "") != 12 {
		t.Fatalf("closing again: %+v, %d invoices", rep, b.count("invoices", ""))
	}
	// A period that has not ended (and its hour of grace) does not close.
	_, err = b.Billing.ClosePeriod(b.ctx, april)
	wantFields(t, err, "period")
}

// A close that fails midway for one organization leaves none of its
// invoice, closes the others, and the next run finishes it; so does one
// whose context is cancelled while it runs.
func TestAFailedCloseLeavesNoPartialInvoice(t *testing.T) {
	b := newBilled(t)
	var victim int64
	for i := range 30 {
		org := b.mustOrg(b.admin, "Org "+strconv.Itoa(i)).Org
		b.mustInstall(b.admin, org.Slug, b.pager.Slug, "basic")
		b.mustInstall(b.admin, org.Slug, b.meter.Slug, "flat")
		if i == 7 {
			victim = org.ID
		}
	}
	// The victim's transaction fails after its invoice is written, at its
	// second line: as a worker killed mid-close would leave it.
	mustExec(t, b, `CREATE FUNCTION fail_victim() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN IF NEW.organization_id = `+idStr(victim)+` AND EXISTS (SELECT 1 FROM invoice_lines WHERE invoice_id = NEW.invoice_id)
		THEN RAISE EXCEPTION 'killed mid-close'; END IF; RETURN NEW; END $$`)
	mustExec(t, b, `CREATE TRIGGER fail_victim BEFORE INSERT ON invoice_lines FOR EACH ROW EXECUTE FUNCTION fail_victim()`)
	b.at(april.Add(2 * time.Hour))
	_, err := b.Billing.ClosePeriod(b.ctx, march)
	if err == nil {
		t.Fatal("the close did not fail")
	}
	if n := b.count("invoices", "organization_id = ?", victim); n != 0 || b.count("billing_closes", "organization_id = ?", victim) != 0 {
		t.Fatalf("the failed organization kept %d invoices", n)
	}
	if n := b.count("invoices", ""); n != 29 {
		t.Fatalf("%d invoices, want the 29 others'", n)
	}
	mustExec(t, b, `DROP TRIGGER fail_victim ON invoice_lines`)
	if _, err := b.Billing.CloseDue(b.ctx); err != nil {
		t.Fatal(err)
	}
	if n := b.count("invoice_lines", "organization_id = ?", victim); n != 2 || b.count("invoices", "") != 30 {
		t.Fatalf("after the next run: %d lines for the victim, %d invoices", n, b.count("invoices", ""))
	}

	// Cancelled midway (each line takes 20 ms to write, so the close is
	// still running): every organization has all of its invoice or none.
	mustExec(t, b, `CREATE FUNCTION slow_lines() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.02); RETURN NEW; END $$`)
	mustExec(t, b, `CREATE TRIGGER slow_lines BEFORE INSERT ON invoice_lines FOR EACH ROW EXECUTE FUNCTION slow_lines()`)
	b.at(time.Date(2030, 5, 1, 2, 0, 0, 0, time.UTC))
	ctx, cancel := context.WithCancel(b.ctx)
	go func() {
		for b.count("billing_closes", "period = ?", april) < 5 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	if _, err = b.Billing.ClosePeriod(ctx, april); !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled close answered %v", err)
	}
	if n := b.count("billing_closes", "period = ?", april); n == 30 {
		t.Fatalf("the close finished before it was cancelled")
	} else {
		t.Logf("cancelled after %d organizations of 30", n)
	}
	partial := b.count("invoices", `period = ? AND (SELECT count(*) FROM invoice_lines l WHERE l.invoice_id = invoices.id) <> 2`, april)
	orphans := b.count("invoices", `period = ? AND NOT EXISTS (SELECT 1 FROM billing_closes c WHERE c.organization_id = invoices.organization_id AND c.period = invoices.period)`, april)
	if partial != 0 || orphans != 0 {
		t.Fatalf("after a cancelled close: %d partial invoices, %d without their close", partial, orphans)
	}
	mustExec(t, b, `DROP TRIGGER slow_lines ON invoice_lines`)
	if _, err := b.Billing.ClosePeriod(b.ctx, april); err != nil {
		t.Fatal(err)
	}
	if n := b.count("invoices", "period = ?", april); n != 30 {
		t.Fatalf("%d April invoices, want 30", n)
	}
}

// Trial time is free, and the app hears installation.trial_will_end once,
// three days before the trial ends.
func TestTrials(t *testing.T) {
	b := newBilled(t)
	ni := b.mustInstall(b.admin, "customer", b.pager.Slug, "pro") // 14 days
	ends := ni.Installation.CreatedAt.Add(14 * 24 * time.Hour)
	if got := b.installation(ni.Installation.UUID).TrialEndsAt; got == nil || !got.Equal(ends) {
		t.Fatalf("trial ends %v, want %v", got, ends)
	}
	b.clock.Advance(10 * 24 * time.Hour)
	if n, err := b.Billing.NotifyTrialsEnding(b.ctx); err != nil || n != 0 {
		t.Fatalf("four days before: sent %d (%v), want none", n, err)
	}
	b.clock.Advance(24*time.Hour + time.Minute)
	for range 2 {
		if _, err := b.Billing.NotifyTrialsEnding(b.ctx); err != nil {
			t.Fatal(err)
		}
	}
	if d := b.deliveries(marketplace.EventTrialWillEnd); len(d) != 1 || d[0].InstallationUUID != ni.Installation.UUID {
		t.Fatalf("trial_will_end deliveries %+v, want one to the installation", d)
	}
	// A second installation of the app in the organization has no trial.
	if err := b.Installs.Uninstall(b.ctx, b.admin, ni.Installation.UUID); err != nil {
		t.Fatal(err)
	}
	again := b.mustInstall(b.admin, "customer", b.pager.Slug, "pro")
	if got := b.installation(again.Installation.UUID).TrialEndsAt; got != nil {
		t.Errorf("a reinstall has a trial to %v", got)
	}
	// March: the first installation lived 11 days and a minute, all in its trial.
	b.at(april.Add(2 * time.Hour))
	if _, err := b.Billing.ClosePeriod(b.ctx, march); err != nil {
		t.Fatal(err)
	}
	for _, inv := range b.invoices() {
		for _, l := range inv.Lines {
			if l.InstallationUUID == ni.Installation.UUID {
				t.Errorf("the trial was billed: %+v", l)
			}
		}
	}
}

// The upcoming invoice is what closing would write if nothing changed.
func TestUpcomingInvoiceIsTheCloseToCome(t *testing.T) {
	b := newBilled(t)
	b.mustInstall(b.admin, "customer", b.pager.Slug, "basic")
	meter := b.mustInstall(b.admin, "customer", b.meter.Slug, "calls").Installation.UUID
	b.clock.Advance(time.Hour)
	if _, _, err := b.usage(b.meterApp, meter, 1000, nil, "k"); err != nil {
		t.Fatal(err)
	}
	up, err := b.Invoices.UpcomingInvoice(b.ctx, b.admin, "customer")
	wantCode(t, err, "")
	b.at(april.Add(2 * time.Hour))
	if _, err := b.Billing.ClosePeriod(b.ctx, march); err != nil {
		t.Fatal(err)
	}
	closed := b.invoices()
	if len(up.Invoices) != 1 || len(closed) != 1 || up.Invoices[0].Total != closed[0].Total || len(up.Invoices[0].Lines) != 2 {
		t.Fatalf("upcoming %+v, closed %+v", up.Invoices, closed)
	}
	member := b.mustUser("member@customer.example")
	b.mustMember(b.admin, "customer", member, marketplace.RoleMember)
	_, err = b.Invoices.UpcomingInvoice(b.ctx, member, "customer")
	wantCode(t, err, "insufficient_role")
}

func mustExec(t *testing.T, b *billed, sql string) {
	t.Helper()
	if err := b.db.Exec(sql).Error; err != nil {
		t.Fatal(err)
	}
}
