package marketplace_test

import (
	"cmp"
	"fmt"
	"math/big"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/plugboard/plugboard/marketplace"
)

// The Revenue service's payouts and bucket figures agree, to the minor
// unit, with a reference written here from the rules in
// docs/guides/revenue.md alone. The histories are the billing property
// test's (installs, plan changes, uninstalls, trials, usage, price
// changes, periods closed, in USD and JPY); on top of them the host pays,
// voids or gives up on the invoices at random moments (some uncollectible
// ones paid later), and an operator changes the apps' commissions at
// random moments, back to the default too. The reference prices the
// lines with the billing test's reference calculator, splits them with
// exact rationals, and counts installations, trials and units from its
// own record of what happened; it calls nothing of the Revenue service.
func TestRevenueAgreesWithAReferenceModel(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("PLUGBOARD_REVENUE_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (PLUGBOARD_REVENUE_SEED=%d replays it)", seed, seed)
	b := newBillingSim(t, seed, 300)
	w := &revenueWorld{b: b, rng: rand.New(rand.NewPCG(seed^0x5bd1e995, seed)), fates: map[refInvoiceKey]*refInvoice{},
		commissions: make([][]refCommission, len(b.apps))}
	w.treasurer = b.mustOperator("treasurer@plugboard.example")
	start := b.clock.Now()
	for range 6 * len(b.apps) { // commission changes over the histories and the months of payments after
		app := w.rng.IntN(len(b.apps))
		at := start.Add(time.Duration(w.rng.Int64N(int64(150 * 24 * time.Hour))))
		w.pending = append(w.pending, refAction{at: at, app: app, commission: true})
	}
	b.tick = w.tick
	b.run()
	// The months after the histories: what is still due is paid.
	w.tick() // invoices of the last close
	for len(w.pending) > 0 {
		slices.SortStableFunc(w.pending, func(x, y refAction) int { return x.at.Compare(y.at) })
		if d := w.pending[0].at.Sub(b.clock.Now()); d > 0 {
			b.clock.Advance(d)
		}
		w.tick()
	}
	b.clock.Advance(36 * time.Hour)
	w.comparePayouts()
	w.compareBuckets()
}

type refInvoiceKey struct {
	org      int
	period   string
	currency string
}

type refInvoice struct {
	id     string
	status string
	paidAt time.Time
}

type refCommission struct {
	at  time.Time
	bps *int // nil: back to the default
}

// refAction is something the host or an operator does at its moment: an
// invoice's status, or an app's commission.
type refAction struct {
	at         time.Time
	invoice    *refInvoice
	status     string
	app        int
	commission bool
}

type revenueWorld struct {
	b           *billingSim
	rng         *rand.Rand
	treasurer   marketplace.Actor
	seen        int64 // invoices read so far (by id)
	fates       map[refInvoiceKey]*refInvoice
	pending     []refAction
	commissions [][]refCommission // per app, in the order they were set
}

const refDefaultBps = 2000 // PLUGBOARD_BILLING_COMMISSION's default, 20 %

// tick gives each new invoice its fate and does what is due.
func (w *revenueWorld) tick() {
	b := w.b
	now := b.clock.Now()
	var fresh []marketplace.Invoice
	if err := b.db.Where("id > ?", w.seen).Order("id").Find(&fresh).Error; err != nil {
		b.t.Fatal(err)
	}
	orgIndex := map[int64]int{}
	for i, o := range b.orgs {
		orgIndex[o.Org.ID] = i
	}
	later := func(max time.Duration) time.Time { return now.Add(time.Duration(1 + w.rng.Int64N(int64(max)))) }
	for _, inv := range fresh {
		w.seen = inv.ID
		ri := &refInvoice{id: strconv.FormatInt(inv.ID, 10), status: marketplace.InvoiceOpen}
		w.fates[refInvoiceKey{orgIndex[inv.OrganizationID], marketplace.FormatPeriod(inv.Period), inv.Currency}] = ri
		switch r := w.rng.IntN(100); {
		case r < 12: // never collected
		case r < 22:
			w.pending = append(w.pending, refAction{at: later(40 * 24 * time.Hour), invoice: ri, status: marketplace.InvoiceVoid})
		case r < 34:
			at := later(20 * 24 * time.Hour)
			w.pending = append(w.pending, refAction{at: at, invoice: ri, status: marketplace.InvoiceUncollectible})
			if w.rng.IntN(2) == 0 { // paid late after all
				w.pending = append(w.pending, refAction{at: at.Add(time.Duration(1 + w.rng.Int64N(int64(30*24*time.Hour)))), invoice: ri, status: marketplace.InvoicePaid})
			}
		default:
			w.pending = append(w.pending, refAction{at: later(45 * 24 * time.Hour), invoice: ri, status: marketplace.InvoicePaid})
		}
	}
	slices.SortStableFunc(w.pending, func(x, y refAction) int { return x.at.Compare(y.at) })
	for len(w.pending) > 0 && !w.pending[0].at.After(now) {
		act := w.pending[0]
		w.pending = w.pending[1:]
		if act.commission {
			w.setCommission(act.app)
			continue
		}
		inv, err := b.Invoices.UpdateInvoiceStatus(b.ctx, w.treasurer, act.invoice.id, act.status)
		if err != nil {
			b.t.Fatalf("invoice %s → %s: %v", act.invoice.id, act.status, err)
		}
		act.invoice.status = act.status
		if act.status == marketplace.InvoicePaid {
			act.invoice.paidAt = now
			if inv.PaidAt == nil || !inv.PaidAt.Equal(now) {
				b.t.Fatalf("invoice %s paid at %v, want %v", act.invoice.id, inv.PaidAt, now)
			}
		}
	}
}

// setCommission gives app a random commission, or takes its own away.
func (w *revenueWorld) setCommission(app int) {
	b := w.b
	var percent *string
	var bps *int
	if w.rng.IntN(5) > 0 {
		n := []int{0, 1, 333, 1500, 2500, 3333, 1234, 10000, 2000}[w.rng.IntN(9)]
		bps = &n
		percent = ptr(fmt.Sprintf("%d.%02d", n/100, n%100))
	}
	got, err := b.Revenue.SetCommission(b.ctx, w.treasurer, b.apps[app].slug, percent)
	if err != nil {
		b.t.Fatalf("commission %v of %s: %v", percent, b.apps[app].slug, err)
	}
	want := refDefaultBps
	if bps != nil {
		want = *bps
	}
	if got.Bps != want {
		b.t.Fatalf("commission of %s: %d bps in force, want %d", b.apps[app].slug, got.Bps, want)
	}
	w.commissions[app] = append(w.commissions[app], refCommission{at: b.clock.Now(), bps: bps})
}

// rate is the reference's commission of app at t.
func (w *revenueWorld) rate(app int, t time.Time) int {
	bps := refDefaultBps
	for _, c := range w.commissions[app] {
		if c.at.After(t) {
			continue
		}
		bps = refDefaultBps
		if c.bps != nil {
			bps = *c.bps
		}
	}
	return bps
}

// lines is every line the reference calculator bills, with its invoice.
func (w *revenueWorld) lines() map[refLineKey]refLine {
	out := map[refLineKey]refLine{}
	for _, ps := range w.b.periods {
		for k, l := range w.b.expected(ps) {
			out[k] = l
		}
	}
	return out
}

func (w *revenueWorld) planByID() map[int64]*refPlan {
	out := map[int64]*refPlan{}
	for _, a := range w.b.apps {
		for _, p := range a.plans {
			out[p.id] = p
		}
	}
	return out
}

type refStatementKey struct {
	app      int
	month    string
	currency string
}

type refSplit struct{ gross, commission, net int64 }

// comparePayouts checks every statement and line of every app.
func (w *revenueWorld) comparePayouts() {
	b, t := w.b, w.b.t
	plans := w.planByID()
	want := map[refStatementKey]refSplit{}
	wantLines := map[refLineKey]refSplit{}
	statuses := map[string]int{}
	for k, l := range w.lines() {
		inv := w.fates[refInvoiceKey{k.org, k.period, l.currency}]
		if inv == nil {
			t.Fatalf("no invoice for %+v", k)
		}
		statuses[inv.status]++
		if inv.status != marketplace.InvoicePaid || l.amount == 0 {
			continue
		}
		app := plans[k.plan].app
		bps := w.rate(app, inv.paidAt)
		c := roundEven(new(big.Rat).SetFrac(big.NewInt(l.amount*int64(bps)), big.NewInt(10000)))
		s := refSplit{l.amount, c, l.amount - c}
		wantLines[k] = s
		sk := refStatementKey{app, monthOf(inv.paidAt).Format("2006-01"), l.currency}
		sum := want[sk]
		want[sk] = refSplit{sum.gross + s.gross, sum.commission + s.commission, sum.net + s.net}
	}
	orgIndex := map[string]int{}
	for i, o := range b.orgs {
		orgIndex[o.Org.Slug] = i
	}
	got := map[refStatementKey]refSplit{}
	gotLines := map[refLineKey]refSplit{}
	for ai, app := range b.apps {
		sts, err := b.Revenue.Payouts(b.ctx, w.treasurer, app.slug, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range sts {
			sk := refStatementKey{ai, marketplace.FormatPeriod(st.Period), st.Currency}
			got[sk] = refSplit{st.Gross, st.Commission, st.Net}
			if st.Gross != st.Commission+st.Net {
				t.Errorf("statement %s of %s: gross %d ≠ commission %d + net %d", st.ID(), app.slug, st.Gross, st.Commission, st.Net)
			}
			for _, l := range st.Lines {
				k := refLineKey{orgIndex[l.Organization], marketplace.FormatPeriod(l.Period), l.InstallationUUID, l.Plan.ID, l.Kind}
				gotLines[k] = refSplit{l.Gross, l.Commission, l.Net}
			}
		}
	}
	diffs := diffMaps("statement", want, got)
	diffs = append(diffs, diffMaps("line", wantLines, gotLines)...)
	report(t, diffs)
	months := map[string]bool{}
	for k := range want {
		months[k.month] = true
	}
	if len(wantLines) < 500 || len(months) < 3 || statuses[marketplace.InvoiceVoid] == 0 || statuses[marketplace.InvoiceUncollectible] == 0 || statuses[marketplace.InvoiceOpen] == 0 {
		t.Errorf("too thin: %d paid lines over months %v, statuses %v", len(wantLines), months, statuses)
	}
	t.Logf("%d statements, %d paid lines compared; lines by invoice status %v", len(want), len(wantLines), statuses)
}

// refBucket is the reference's figures for one bucket.
type refBucket struct {
	Billed                  map[string]int64 // "plan currency"
	MRR                     map[string]int64
	Active, New, Churned    int
	TrialsStarted, Converts int
	Units                   map[int64]int64
}

func (w *revenueWorld) expectedBucket(app int, s, e, now time.Time, lines map[refLineKey]refLine, plans map[int64]*refPlan) refBucket {
	b := w.b
	out := refBucket{Billed: map[string]int64{}, MRR: map[string]int64{}, Units: map[int64]int64{}}
	for k, l := range lines {
		p, _ := time.Parse("2006-01", k.period)
		if plans[k.plan].app != app || p.Before(s) || !p.Before(e) {
			continue
		}
		if w.fates[refInvoiceKey{k.org, k.period, l.currency}].status != marketplace.InvoiceVoid {
			out.Billed[fmt.Sprintf("%d %s", k.plan, l.currency)] += l.amount
		}
	}
	for _, u := range b.usage {
		if u.inst.app == app && !u.ts.Before(s) && u.ts.Before(e) {
			out.Units[u.plan.id] += u.qty
		}
	}
	in := func(t time.Time) bool { return !t.Before(s) && t.Before(e) }
	c := e
	if now.Before(c) {
		c = now
	}
	for _, inst := range b.insts {
		if inst.app != app {
			continue
		}
		if in(inst.created) {
			out.New++
			if !inst.trialEnd.IsZero() {
				out.TrialsStarted++
			}
		}
		if last := inst.segments[len(inst.segments)-1]; !inst.live && in(last.to) {
			out.Churned++
		}
		if !inst.trialEnd.IsZero() && in(inst.trialEnd) && !inst.trialEnd.After(now) {
			for _, seg := range inst.segments {
				if !seg.from.After(inst.trialEnd) && (seg.to.IsZero() || seg.to.After(inst.trialEnd)) &&
					seg.plan.version(monthOf(inst.trialEnd)).model != marketplace.PricingFree {
					out.Converts++
				}
			}
		}
		if !s.Before(now) {
			continue // a bucket in the future has no one live in it yet
		}
		for _, seg := range inst.segments {
			if !(seg.from.Before(c) && (seg.to.IsZero() || !seg.to.Before(c))) {
				continue
			}
			out.Active++
			if !inst.trialEnd.IsZero() && !inst.trialEnd.Before(c) {
				continue
			}
			v := seg.plan.version(monthOf(c.Add(-time.Nanosecond)))
			if v.model != marketplace.PricingFlat {
				continue
			}
			m := v.amount
			if v.interval == "year" {
				m = roundEven(new(big.Rat).SetFrac(big.NewInt(v.amount), big.NewInt(12)))
			}
			out.MRR[v.code] += m
		}
	}
	return out
}

// compareBuckets checks every bucket of every app at each resolution.
func (w *revenueWorld) compareBuckets() {
	b, t := w.b, w.b.t
	lines := w.lines()
	plans := w.planByID()
	now := b.clock.Now()
	since := monthOf(w.b.periods[0]).AddDate(0, -1, 0)
	until := now.AddDate(0, 0, 20)
	var diffs []string
	buckets, busy := 0, 0
	for _, res := range []string{marketplace.ResolutionMonth, marketplace.ResolutionWeek, marketplace.ResolutionDay} {
		for ai, app := range b.apps {
			rev, err := b.Revenue.AppRevenue(b.ctx, w.treasurer, app.slug, marketplace.RevenueQuery{Since: &since, Until: &until, Resolution: res})
			if err != nil {
				t.Fatal(err)
			}
			if !rev.Since.Equal(rev.Buckets[0].Start) || !rev.Until.Equal(rev.Buckets[len(rev.Buckets)-1].End) || rev.Until.Before(until) || rev.Since.After(since) {
				t.Errorf("%s %s: range [%s, %s) for [%s, %s)", res, app.slug, rev.Since, rev.Until, since, until)
			}
			for _, bk := range rev.Buckets {
				buckets++
				if res == marketplace.ResolutionWeek && bk.Start.Weekday() != time.Monday {
					t.Errorf("a week bucket starts on %s", bk.Start.Weekday())
				}
				want := w.expectedBucket(ai, bk.Start, bk.End, now, lines, plans)
				got := refBucket{Billed: map[string]int64{}, MRR: map[string]int64{}, Units: map[int64]int64{},
					Active: bk.Active, New: bk.New, Churned: bk.Churned, TrialsStarted: bk.TrialsStarted, Converts: bk.TrialsConverted}
				for _, m := range bk.Billed {
					got.Billed[fmt.Sprintf("%d %s", m.Plan.ID, m.Currency)] += m.Minor
				}
				for _, m := range bk.MRR {
					got.MRR[m.Currency] += m.Minor
				}
				for _, u := range bk.Units {
					got.Units[u.Plan.ID] += u.Units
				}
				if want.Active > 0 && want.New > 0 && want.Churned > 0 {
					busy++
				}
				if g, x := fmt.Sprintf("%+v", got), fmt.Sprintf("%+v", want); g != x {
					diffs = append(diffs, fmt.Sprintf("%s %s [%s, %s):\n got %s\nwant %s", res, app.slug, bk.Start.Format(time.DateOnly), bk.End.Format(time.DateOnly), g, x))
				}
			}
		}
	}
	report(t, diffs)
	if busy < 50 {
		t.Errorf("only %d of %d buckets have installations coming, going and staying", busy, buckets)
	}
	t.Logf("%d buckets compared (%d with new, churned and active installations)", buckets, busy)
}

func diffMaps[K comparable, V comparable](what string, want, got map[K]V) []string {
	var out []string
	for k, x := range want {
		if g, ok := got[k]; !ok || g != x {
			out = append(out, fmt.Sprintf("%s %+v: got %+v (present %v), want %+v", what, k, g, ok, x))
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			out = append(out, fmt.Sprintf("%s %+v: got %+v, want none", what, k, g))
		}
	}
	return out
}

func report(t *testing.T, diffs []string) {
	t.Helper()
	slices.SortFunc(diffs, cmp.Compare)
	for i, d := range diffs {
		if i == 15 {
			t.Errorf("… and %d more", len(diffs)-15)
			break
		}
		t.Error(d)
	}
}
