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

// The invoices closing writes agree, to the minor unit, with a reference
// calculator written here from the rules in docs/guides/billing.md alone:
// it keeps its own account of what happened (who was on which plan when,
// which prices were in force, which usage was taken) and prices it with
// exact rationals (math/big), rounding each line half to even by
// comparing the remainder with one half. It calls nothing of the
// production calculator. Each organization is one random history:
// installs, plan changes, uninstalls, trials, usage records (some of them
// sent twice, some refused), price changes of the plans they are on,
// across four month boundaries, in USD and JPY (no minor unit).
func TestInvoicesAgreeWithAReferenceCalculator(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("PLUGBOARD_BILLING_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (PLUGBOARD_BILLING_SEED=%d replays it)", seed, seed)
	const histories = 500
	b := newBillingSim(t, seed, histories)
	b.run()
	b.compare()
}

// ---------------------------------------------------------------------------
// The reference: its own record of the world and its own arithmetic.

type refVersion struct {
	from                  time.Time // first period it prices
	model, interval, code string
	amount, unit, incl    int64
	capped                *int64
}

type refPlan struct {
	id       int64
	app      int
	slug     string
	trial    int // days
	versions []refVersion
}

// version is the plan's price for the period starting at ps: the latest
// version from ps or before.
func (p *refPlan) version(ps time.Time) refVersion {
	var v refVersion
	for _, x := range p.versions {
		if !x.from.After(ps) && (v.model == "" || x.from.After(v.from)) {
			v = x
		}
	}
	return v
}

type refSegment struct {
	plan     *refPlan
	from, to time.Time // to zero while it lasts
}

type refInst struct {
	uuid     string
	org, app int
	created  time.Time
	trialEnd time.Time // zero: no trial
	segments []refSegment
	live     bool
}

func (r *refInst) planAt(ts time.Time) *refPlan {
	for _, s := range r.segments {
		if !ts.Before(s.from) && (s.to.IsZero() || ts.Before(s.to)) {
			return s.plan
		}
	}
	return nil
}

type refUsage struct {
	inst *refInst
	plan *refPlan
	ts   time.Time
	qty  int64
}

func monthOf(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// roundEven rounds a non-negative rational half to even, by hand.
func roundEven(r *big.Rat) int64 {
	floor := new(big.Int).Div(r.Num(), r.Denom()) // r >= 0: division rounds down
	frac := new(big.Rat).Sub(r, new(big.Rat).SetInt(floor))
	switch frac.Cmp(big.NewRat(1, 2)) {
	case 1:
		floor.Add(floor, big.NewInt(1))
	case 0:
		if floor.Bit(0) == 1 {
			floor.Add(floor, big.NewInt(1))
		}
	}
	return floor.Int64()
}

type refLineKey struct {
	org    int
	period string
	uuid   string
	plan   int64
	kind   string
}

type refLine struct {
	currency string
	quantity int64
	amount   int64
}

// expected is what the rules say every organization owes for the period
// starting at ps.
func (b *billingSim) expected(ps time.Time) map[refLineKey]refLine {
	pe := ps.AddDate(0, 1, 0)
	out := map[refLineKey]refLine{}
	sec := func(t time.Time) time.Time { return t.Truncate(time.Second) } // whole seconds, rounded down (t is UTC, after 1970)
	for _, in := range b.insts {
		var plans []*refPlan
		for _, s := range in.segments {
			end := s.to
			if end.IsZero() {
				end = pe
			}
			if sec(s.from).Before(pe) && sec(end).After(ps) && !slices.Contains(plans, s.plan) {
				plans = append(plans, s.plan)
			}
		}
		for _, p := range plans {
			v := p.version(ps)
			key := refLineKey{in.org, ps.Format("2006-01"), in.uuid, p.id, ""}
			switch v.model {
			case marketplace.PricingFlat:
				var billable time.Duration
				for _, s := range in.segments {
					if s.plan != p {
						continue
					}
					lo, hi := sec(s.from), pe
					if !s.to.IsZero() {
						hi = sec(s.to)
					}
					if lo.Before(ps) {
						lo = ps
					}
					if !in.trialEnd.IsZero() && lo.Before(sec(in.trialEnd)) {
						lo = sec(in.trialEnd)
					}
					if hi.After(pe) {
						hi = pe
					}
					if hi.After(lo) {
						billable += hi.Sub(lo)
					}
				}
				secs := int64(billable / time.Second)
				whole := int64(pe.Sub(ps) / time.Second)
				if v.interval == "year" {
					whole *= 12 // a twelfth of the yearly price per month
				}
				amount := roundEven(new(big.Rat).SetFrac(big.NewInt(v.amount*secs), big.NewInt(whole)))
				if amount != 0 || secs != 0 {
					key.kind = marketplace.LineFlat
					out[key] = refLine{v.code, secs, amount}
				}
			case marketplace.PricingPerUnit:
				var units int64
				for _, u := range b.usage {
					if u.inst == in && u.plan == p && !u.ts.Before(ps) && u.ts.Before(pe) && (in.trialEnd.IsZero() || !u.ts.Before(in.trialEnd)) {
						units += u.qty
					}
				}
				amount := max(units-v.incl, 0) * v.unit
				if v.capped != nil && amount > *v.capped {
					amount = *v.capped
				}
				if amount != 0 || units != 0 {
					key.kind = marketplace.LineUsage
					out[key] = refLine{v.code, units, amount}
				}
			}
		}
	}
	return out
}

// ---------------------------------------------------------------------------
// The simulation: random histories played through the services, and the
// reference kept beside them.

type simApp struct {
	slug   string
	client marketplace.Actor // the app, authenticated as itself
	plans  []*refPlan
}

type billingSim struct {
	*env
	t        *testing.T
	rng      *rand.Rand
	dev      marketplace.Actor
	admin    marketplace.Actor
	orgs     []*marketplace.OrgAccess
	apps     []*simApp
	insts    []*refInst
	live     map[[2]int]*refInst
	tried    map[[2]int]bool // organization and app had an installation: no second trial
	usage    []refUsage
	keys     int
	periods  []time.Time
	refused  map[string]int // outcomes of usage records, to show the histories reach each
	accepted int
	// tick, when set, runs before each event at its moment: the revenue
	// test pays invoices and changes commissions there.
	tick func()
}

func newBillingSim(t *testing.T, seed uint64, histories int) *billingSim {
	e := newTestServices(t)
	b := &billingSim{env: e, t: t, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		live: map[[2]int]*refInst{}, tried: map[[2]int]bool{}, refused: map[string]int{}}
	op := e.mustOperator("ops@plugboard.example")
	b.dev = e.mustUser("dev@partner.example")
	e.mustOrg(b.dev, "Partner")
	type planSpec struct {
		name string
		f    marketplace.PlanFields
	}
	flat := func(price, currency, interval string, trial int) marketplace.PlanFields {
		return marketplace.PlanFields{Price: ptr(price), Currency: ptr(currency), Interval: ptr(interval), TrialDays: ptr(trial)}
	}
	metered := func(unit, currency string, incl int64, capped string, trial int) marketplace.PlanFields {
		f := marketplace.PlanFields{PricingModel: ptr(marketplace.PricingPerUnit), UnitPrice: ptr(unit), UnitName: ptr("call"),
			Currency: ptr(currency), IncludedUnits: ptr(incl), TrialDays: ptr(trial)}
		if capped != "" {
			f.CappedAmount = ptr(capped)
		}
		return f
	}
	specs := []struct {
		name  string
		plans []planSpec
	}{
		{"Metrics", []planSpec{{"Starter", flat("9.99", "USD", "month", 3)}, {"Annual", flat("99.00", "USD", "year", 0)},
			{"Metered", metered("0.05", "USD", 100, "25.00", 0)}, {"Free", marketplace.PlanFields{}}}},
		{"Kaizen", []planSpec{{"Basic", flat("1200", "JPY", "month", 10)}, {"Calls", metered("3", "JPY", 0, "", 0)}}},
		{"Relay", []planSpec{{"Team", flat("45.00", "USD", "month", 0)}, {"Events", metered("0.01", "USD", 0, "5.00", 7)},
			{"Yen", flat("777", "JPY", "year", 5)}}},
	}
	for i, sp := range specs {
		created := e.mustApp(b.dev, "partner", appFields(sp.name))
		app := &simApp{slug: created.Slug}
		for _, ps := range sp.plans {
			f := ps.f
			f.Name = ptr(ps.name)
			p, err := e.Apps.CreatePlan(e.ctx, b.dev, created.Slug, f)
			if err != nil {
				t.Fatalf("creating plan %s: %v", ps.name, err)
			}
			app.plans = append(app.plans, &refPlan{id: p.ID, app: i, slug: p.Slug, trial: p.TrialDays,
				versions: []refVersion{refOf(p, monthOf(e.clock.Now()))}})
		}
		e.mustPublish(b.dev, op, created.Slug)
		app.client = marketplace.Actor{App: e.mustClient(created)}
		b.apps = append(b.apps, app)
	}
	b.admin = e.mustUser("admin@customers.example")
	for i := range histories {
		b.orgs = append(b.orgs, e.mustOrg(b.admin, fmt.Sprintf("Customer %d", i)))
	}
	return b
}

// refOf is the reference's version of a plan as the API returned it:
// amounts read back from the decimals with the currency's digits.
func refOf(p *marketplace.Plan, from time.Time) refVersion {
	digits := map[string]int{"USD": 2, "JPY": 0}[p.Currency]
	minor := func(s string) int64 {
		r, ok := new(big.Rat).SetString(s)
		if !ok {
			panic("not a decimal: " + s)
		}
		r.Mul(r, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(digits)), nil)))
		if !r.IsInt() {
			panic("more digits than " + p.Currency + " has: " + s)
		}
		return r.Num().Int64()
	}
	v := refVersion{from: from, model: p.PricingModel, interval: p.Interval, code: p.Currency, amount: minor(p.Price), incl: p.IncludedUnits}
	if p.UnitPrice != nil {
		v.unit = minor(*p.UnitPrice)
	}
	if p.CappedAmount != nil {
		c := minor(*p.CappedAmount)
		v.capped = &c
	}
	return v
}

type simEvent struct {
	at   time.Time
	kind string // "org", "price", "close", "late-usage"
	org  int
	ts   time.Time // late-usage: the record's timestamp
}

// run plays the histories: every event at its moment on the services'
// clock, in time order.
func (b *billingSim) run() {
	start := b.clock.Now()
	end := monthOf(start).AddDate(0, 3, 3) // three month boundaries and a bit
	span := end.Sub(start)
	at := func() time.Time {
		return start.Add(time.Duration(b.rng.Int64N(int64(span)))).Truncate(time.Microsecond)
	}
	var events []simEvent
	for org := range b.orgs {
		for range 2 + b.rng.IntN(6) {
			events = append(events, simEvent{at: at(), kind: "org", org: org})
		}
	}
	for range 30 {
		events = append(events, simEvent{at: at(), kind: "price"})
	}
	for p := monthOf(start).AddDate(0, 1, 0); p.Before(end); p = p.AddDate(0, 1, 0) {
		events = append(events, simEvent{at: p.Add(marketplace.UsageGrace + 30*time.Second), kind: "close"})
		for range 40 { // usage for the month just ended: within the grace hour, and after the close
			org := b.rng.IntN(len(b.orgs))
			ts := p.Add(-time.Duration(1+b.rng.IntN(3000)) * time.Second)
			events = append(events, simEvent{at: p.Add(time.Duration(b.rng.IntN(3500)) * time.Second), kind: "late-usage", org: org, ts: ts},
				simEvent{at: p.Add(2 * time.Hour), kind: "late-usage", org: org, ts: ts})
		}
	}
	slices.SortStableFunc(events, func(x, y simEvent) int { return x.at.Compare(y.at) })
	for _, ev := range events {
		if d := ev.at.Sub(b.clock.Now()); d > 0 {
			b.clock.Advance(d)
		}
		if b.tick != nil {
			b.tick()
		}
		switch ev.kind {
		case "org":
			b.orgAction(ev.org)
		case "price":
			b.changePrice()
		case "close":
			b.close(monthOf(ev.at).AddDate(0, -1, 0))
		case "late-usage":
			app := b.rng.IntN(len(b.apps))
			if in := b.live[[2]int{ev.org, app}]; in != nil && !ev.ts.Before(in.created) {
				b.report(in, ev.ts, false)
			}
		}
	}
	last := monthOf(b.clock.Now())
	b.clock.Advance(last.AddDate(0, 1, 0).Add(marketplace.UsageGrace + time.Minute).Sub(b.clock.Now()))
	b.close(last)
	if b.accepted == 0 || b.refused["billing_period_closed"] == 0 || b.refused["not_metered"] == 0 || b.refused["idempotency_key_reused"] == 0 {
		b.t.Errorf("the histories reach too little: %d usage records taken, refused %v", b.accepted, b.refused)
	}
	b.t.Logf("%d installations, %d usage records taken, refused %v", len(b.insts), b.accepted, b.refused)
}

// orgAction does one random thing in organization org: install an app,
// or change its plan, uninstall it or report usage for it.
func (b *billingSim) orgAction(org int) {
	t := b.t
	ai := b.rng.IntN(len(b.apps))
	app := b.apps[ai]
	now := b.clock.Now()
	slug := b.orgs[org].Org.Slug
	in := b.live[[2]int{org, ai}]
	if in == nil {
		p := app.plans[b.rng.IntN(len(app.plans))]
		ni, err := b.Installs.Install(b.ctx, b.admin, slug, app.slug, p.slug)
		if err != nil {
			t.Fatalf("installing %s in %s: %v", app.slug, slug, err)
		}
		in = &refInst{uuid: ni.Installation.UUID, org: org, app: ai, created: now, live: true,
			segments: []refSegment{{plan: p, from: now}}}
		if p.trial > 0 && !b.tried[[2]int{org, ai}] {
			in.trialEnd = now.Add(time.Duration(p.trial) * 24 * time.Hour)
		}
		b.tried[[2]int{org, ai}] = true
		b.insts = append(b.insts, in)
		b.live[[2]int{org, ai}] = in
		return
	}
	switch r := b.rng.IntN(100); {
	case r < 30:
		cur := in.segments[len(in.segments)-1].plan
		var others []*refPlan
		for _, p := range app.plans {
			if p != cur {
				others = append(others, p)
			}
		}
		p := others[b.rng.IntN(len(others))]
		if _, err := b.Installs.UpdateInstallation(b.ctx, b.admin, in.uuid, marketplace.InstallationUpdate{Plan: ptr(p.slug)}); err != nil {
			t.Fatalf("changing plan of %s: %v", in.uuid, err)
		}
		in.segments[len(in.segments)-1].to = now
		in.segments = append(in.segments, refSegment{plan: p, from: now})
	case r < 45:
		if err := b.Installs.Uninstall(b.ctx, b.admin, in.uuid); err != nil {
			t.Fatalf("uninstalling %s: %v", in.uuid, err)
		}
		in.segments[len(in.segments)-1].to = now
		in.live = false
		delete(b.live, [2]int{org, ai})
	default:
		from := monthOf(now)
		if in.created.After(from) {
			from = in.created
		}
		ts := from.Add(time.Duration(b.rng.Int64N(int64(now.Sub(from)) + 1))).Truncate(time.Microsecond)
		b.report(in, ts, b.rng.IntN(5) == 0)
	}
}

// report sends a usage record and checks the answer is the one the rules
// give; again sends it a second time, and once more with the same key and
// another quantity.
func (b *billingSim) report(in *refInst, ts time.Time, again bool) {
	t := b.t
	now := b.clock.Now()
	b.keys++
	qty := int64(b.rng.IntN(400))
	rec := marketplace.NewUsageRecord{Quantity: &qty, Timestamp: &ts, IdempotencyKey: fmt.Sprintf("k-%d", b.keys)}
	want := ""
	p := in.planAt(ts)
	switch {
	case !now.Before(monthOf(ts).AddDate(0, 1, 0).Add(marketplace.UsageGrace)):
		want = "billing_period_closed"
	case p == nil || p.version(monthOf(ts)).model != marketplace.PricingPerUnit:
		want = "not_metered"
	}
	_, created, err := b.Usage.ReportUsage(b.ctx, b.apps[in.app].client, in.uuid, rec)
	if got := codeOf(err); got != want {
		t.Fatalf("usage of %s at %s (now %s, plan %v): code %q, want %q (%v)", in.uuid, ts, now, p, got, want, err)
	}
	if want != "" {
		b.refused[want]++
		return
	}
	if !created {
		t.Fatalf("a fresh usage record was not created")
	}
	b.accepted++
	b.usage = append(b.usage, refUsage{inst: in, plan: p, ts: ts, qty: qty})
	if !again {
		return
	}
	if _, created, err := b.Usage.ReportUsage(b.ctx, b.apps[in.app].client, in.uuid, rec); err != nil || created {
		t.Fatalf("the same record again: created %v, err %v; want the one kept", created, err)
	}
	other := qty + 1
	rec.Quantity = &other
	_, _, err = b.Usage.ReportUsage(b.ctx, b.apps[in.app].client, in.uuid, rec)
	wantCode(t, err, "idempotency_key_reused")
	b.refused["idempotency_key_reused"]++
}

// changePrice changes what a random paying plan costs, and keeps the
// version the rules say it makes.
func (b *billingSim) changePrice() {
	app := b.apps[b.rng.IntN(len(b.apps))]
	p := app.plans[b.rng.IntN(len(app.plans))]
	cur := p.versions[len(p.versions)-1]
	var f marketplace.PlanFields
	digits := map[string]int64{"USD": 100, "JPY": 1}[cur.code]
	dec := func(n int64) string {
		if digits == 1 {
			return strconv.FormatInt(n, 10)
		}
		return fmt.Sprintf("%d.%02d", n/100, n%100)
	}
	switch cur.model {
	case marketplace.PricingFree:
		return
	case marketplace.PricingFlat:
		f.Price = ptr(dec(1 + b.rng.Int64N(200*digits)))
	case marketplace.PricingPerUnit:
		f.UnitPrice = ptr(dec(1 + b.rng.Int64N(10*digits)))
		f.IncludedUnits = ptr(b.rng.Int64N(300))
		if b.rng.IntN(2) == 0 {
			f.CappedAmount = ptr(dec(1 + b.rng.Int64N(50*digits)))
		} else {
			f.CappedAmount = ptr("")
		}
	}
	got, err := b.Apps.UpdatePlan(b.ctx, b.dev, b.apps[p.app].slug, p.slug, f)
	if err != nil {
		b.t.Fatalf("changing the price of %s: %v", p.slug, err)
	}
	now := b.clock.Now()
	open := monthOf(now)
	used := false // was anybody on the plan during the open period?
	for _, in := range b.insts {
		for _, s := range in.segments {
			used = used || (s.plan == p && !s.from.After(now) && (s.to.IsZero() || s.to.After(open)))
		}
	}
	from := open
	if used {
		from = open.AddDate(0, 1, 0)
	}
	kept := p.versions[:0:0]
	for _, v := range p.versions {
		if v.from.Before(from) && (used || !v.from.After(open)) {
			kept = append(kept, v)
		}
	}
	p.versions = append(kept, refOf(got, from))
}

// close closes the period starting at ps, as the scheduled job does.
func (b *billingSim) close(ps time.Time) {
	rep, err := b.Billing.ClosePeriod(b.ctx, ps)
	if err != nil {
		b.t.Fatalf("closing %s: %v", ps.Format("2006-01"), err)
	}
	if rep.AlreadyClosed {
		b.t.Fatalf("%s was closed before", ps.Format("2006-01"))
	}
	b.periods = append(b.periods, ps)
}

// compare reads back every invoice line and total and compares them with
// the reference's.
func (b *billingSim) compare() {
	t := b.t
	orgIndex := map[int64]int{}
	for i, o := range b.orgs {
		orgIndex[o.Org.ID] = i
	}
	var invoices []marketplace.Invoice
	if err := b.db.Preload("Lines").Order("id").Find(&invoices).Error; err != nil {
		t.Fatal(err)
	}
	got := map[refLineKey]refLine{}
	totals := map[string]int64{}
	for _, inv := range invoices {
		var sum int64
		for _, l := range inv.Lines {
			k := refLineKey{orgIndex[inv.OrganizationID], marketplace.FormatPeriod(inv.Period), l.InstallationUUID, l.PlanID, l.Kind}
			if _, dup := got[k]; dup {
				t.Errorf("two lines for %+v", k)
			}
			got[k] = refLine{l.Currency, l.Quantity, l.Amount}
			sum += l.Amount
		}
		if sum != inv.Total {
			t.Errorf("invoice %d: total %d, lines sum to %d", inv.ID, inv.Total, sum)
		}
		totals[fmt.Sprintf("%d %s %s", orgIndex[inv.OrganizationID], marketplace.FormatPeriod(inv.Period), inv.Currency)] += inv.Total
	}
	want := map[refLineKey]refLine{}
	wantTotals := map[string]int64{}
	for _, ps := range b.periods {
		for k, l := range b.expected(ps) {
			want[k] = l
			wantTotals[fmt.Sprintf("%d %s %s", k.org, k.period, l.currency)] += l.amount
		}
	}
	var diffs []string
	for k, w := range want {
		if g, ok := got[k]; !ok || g != w {
			diffs = append(diffs, fmt.Sprintf("%+v: got %+v (written %v), want %+v", k, g, ok, w))
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%+v: got %+v, want no line", k, g))
		}
	}
	for k, w := range wantTotals {
		if totals[k] != w {
			diffs = append(diffs, fmt.Sprintf("total %s: got %d, want %d", k, totals[k], w))
		}
	}
	slices.SortFunc(diffs, cmp.Compare)
	for i, d := range diffs {
		if i == 20 {
			t.Errorf("… and %d more", len(diffs)-20)
			break
		}
		t.Error(d)
	}
	currencies := map[string]bool{}
	for _, l := range want {
		currencies[l.currency] = true
	}
	if len(want) < 1000 || !currencies["USD"] || !currencies["JPY"] {
		t.Errorf("only %d lines in %v: the histories are too thin to prove anything", len(want), currencies)
	}
	t.Logf("%d invoices, %d lines compared over %d periods", len(invoices), len(want), len(b.periods))
}
