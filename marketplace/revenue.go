package marketplace

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/plugboard/plugboard/app/fault"
)

// Revenue is what a partner earns through Plugboard: an app's revenue per
// time bucket (revenue.go), its payout statements and the platform's
// commission (payouts.go). It reads the billing ledger (invoices, their
// lines, plan intervals, usage) and writes only commissions. Who may see
// it: the members of the app's owner organization, and operators; only
// operators set commissions. docs/guides/revenue.md states the rules.
type Revenue struct {
	*core
	// defaultBps is the platform's commission where an app has none of its
	// own (PLUGBOARD_BILLING_COMMISSION), in basis points.
	defaultBps int
}

// Resolutions of revenue buckets.
const (
	ResolutionDay     = "day"
	ResolutionWeek    = "week"
	ResolutionMonth   = "month"
	maxRevenueBuckets = 400
)

// Money is an amount in a currency's minor units.
type Money struct {
	Currency string
	Minor    int64
}

// String writes the amount with the currency's ISO 4217 digits: "45.00".
func (m Money) String() string { return formatAmount(m.Minor, m.Currency) }

// RevenueQuery is the range and resolution of an app's revenue. Since and
// Until are widened to whole buckets; nil takes the defaults: until the end
// of the current bucket, since twelve buckets (thirty days) before.
type RevenueQuery struct {
	Since, Until *time.Time
	Resolution   string // day, week (ISO, from Monday) or month; "" is month
}

// PlanRef names a plan in revenue figures; a deleted plan keeps its id.
type PlanRef struct {
	ID       int64
	Slug     string // "" for a deleted plan
	Name     string
	UnitName string
}

// PlanMoney is an amount billed on one plan in one currency.
type PlanMoney struct {
	Plan PlanRef
	Money
}

// PlanUnits is how many units of one plan were reported.
type PlanUnits struct {
	Plan  PlanRef
	Units int64
}

// RevenueBucket is one bucket's figures, [Start, End).
type RevenueBucket struct {
	Start, End time.Time
	// Billed: invoice lines of the app for periods starting in the
	// bucket, by plan and currency, from invoices that are not void.
	Billed []PlanMoney
	// MRR: monthly recurring revenue at the bucket's end (now, for the
	// bucket under way), per currency: the monthly price of each live
	// installation on a flat plan outside its trial (a yearly price / 12).
	MRR []Money
	// Active installations at the bucket's end; New: first live in the
	// bucket; Churned: stopped being live in the bucket.
	Active, New, Churned int
	// TrialsStarted: installations whose trial began in the bucket;
	// TrialsConverted: trials that ended in the bucket with the
	// installation still live on a plan that is not free.
	TrialsStarted, TrialsConverted int
	// Units reported by the app in the bucket (in trial or not), by plan.
	Units []PlanUnits
}

// AppRevenue is an app's revenue over a range.
type AppRevenue struct {
	App          *AppView
	Since, Until time.Time
	Resolution   string
	Buckets      []RevenueBucket
	// Billed over the whole range, by plan and currency.
	Billed []PlanMoney
	// Totals of the buckets' counts.
	New, Churned, TrialsStarted, TrialsConverted int
	// Commission is the rate the app's paid invoices are paid out at now.
	Commission CommissionView
}

// bucketStart truncates t to the start of its bucket.
func bucketStart(t time.Time, res string) time.Time {
	t = t.UTC()
	switch res {
	case ResolutionDay:
		return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	case ResolutionWeek:
		d := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
		return d.AddDate(0, 0, -((int(d.Weekday()) + 6) % 7)) // back to Monday
	}
	return periodStart(t)
}

// nextBucket is the start of the bucket after the one starting at b.
func nextBucket(b time.Time, res string) time.Time {
	switch res {
	case ResolutionDay:
		return b.AddDate(0, 0, 1)
	case ResolutionWeek:
		return b.AddDate(0, 0, 7)
	}
	return b.AddDate(0, 1, 0)
}

// RevenueBuckets checks q and returns its buckets' starts and the end of
// the last; the errors are field errors.
func RevenueBuckets(q RevenueQuery, now time.Time) ([]time.Time, time.Time, string, error) {
	res := q.Resolution
	if res == "" {
		res = ResolutionMonth
	}
	if res != ResolutionDay && res != ResolutionWeek && res != ResolutionMonth {
		return nil, time.Time{}, res, fault.Field("resolution", "must be day, week or month")
	}
	var until time.Time
	if q.Until != nil {
		until = q.Until.UTC()
	} else {
		until = nextBucket(bucketStart(now, res), res)
	}
	var since time.Time
	if q.Since != nil {
		since = q.Since.UTC()
	} else {
		since = bucketStart(until.Add(-time.Nanosecond), res)
		if res == ResolutionDay {
			since = since.AddDate(0, 0, -29)
		} else {
			for range 11 {
				since = bucketStart(since.Add(-time.Nanosecond), res)
			}
		}
	}
	if !since.Before(until) {
		return nil, time.Time{}, res, fault.Field("until", "must be after since")
	}
	if since.Year() < 2000 || until.Year() > 9000 {
		return nil, time.Time{}, res, fault.Field("since", "must be between the years 2000 and 9000")
	}
	var starts []time.Time
	b := bucketStart(since, res)
	for ; b.Before(until); b = nextBucket(b, res) {
		if len(starts) == maxRevenueBuckets {
			return nil, time.Time{}, res, fault.Field("resolution", fmt.Sprintf("gives more than %d buckets for this range: choose a coarser resolution or a shorter range", maxRevenueBuckets))
		}
		starts = append(starts, b)
	}
	return starts, b, res, nil
}

// revenueApp loads app ref for its owner organization's members (any
// role) and operators; for everyone else it does not exist.
func (s *Revenue) revenueApp(ctx context.Context, a Actor, ref string) (*AppView, error) {
	if err := requireUser(a); err != nil {
		return nil, err
	}
	v, err := s.view(ctx, s.db, a, ref, false)
	if err != nil {
		return nil, err
	}
	if v.Role == "" && !a.IsOperator() {
		return nil, fault.NotFound("app")
	}
	return v, nil
}

// revenueInterval is a plan interval with its installation's trial.
type revenueInterval struct {
	InstallationID int64
	PlanID         int64
	StartedAt      time.Time
	EndedAt        *time.Time
	TrialEndsAt    *time.Time
}

// covers reports whether the installation was live on the interval just
// before c: started before c, and not ended before it.
func (iv revenueInterval) covers(c time.Time) bool {
	return iv.StartedAt.Before(c) && (iv.EndedAt == nil || !iv.EndedAt.Before(c))
}

// coversAt reports whether it was live at the instant t itself.
func (iv revenueInterval) coversAt(t time.Time) bool {
	return !iv.StartedAt.After(t) && (iv.EndedAt == nil || iv.EndedAt.After(t))
}

// AppRevenue is app ref's revenue over q's range.
func (s *Revenue) AppRevenue(ctx context.Context, a Actor, ref string, q RevenueQuery) (*AppRevenue, error) {
	v, err := s.revenueApp(ctx, a, ref)
	if err != nil {
		return nil, err
	}
	now := s.now()
	starts, until, res, err := RevenueBuckets(q, now)
	if err != nil {
		return nil, err
	}
	since := starts[0]
	out := &AppRevenue{App: v, Since: since, Until: until, Resolution: res, Buckets: make([]RevenueBucket, len(starts))}
	for i, st := range starts {
		out.Buckets[i].Start, out.Buckets[i].End = st, nextBucket(st, res)
	}
	find := func(t time.Time) int { // the bucket holding t, or -1
		i := sort.Search(len(starts), func(i int) bool { return starts[i].After(t) }) - 1
		if i < 0 || !t.Before(until) {
			return -1
		}
		return i
	}
	db := s.db.WithContext(ctx)
	plans, prices, err := s.appPlans(ctx, v.ID)
	if err != nil {
		return nil, err
	}

	// Billed revenue, by the period each invoice line is for.
	var billed []struct {
		PlanID   int64
		Currency string
		Period   time.Time
		Amount   int64
	}
	if err := db.Raw(`SELECT l.plan_id, l.currency, l.period, sum(l.amount)::bigint AS amount
		FROM invoice_lines l JOIN invoices i ON i.id = l.invoice_id
		WHERE l.app_id = ? AND l.period >= ? AND l.period < ? AND i.status <> ?
		GROUP BY 1, 2, 3`, v.ID, since, until, InvoiceVoid).Scan(&billed).Error; err != nil {
		return nil, fmt.Errorf("reading billed revenue: %w", err)
	}
	sums := make([]map[planCurrency]int64, len(starts))
	total := map[planCurrency]int64{}
	for _, b := range billed {
		i := find(b.Period)
		if i < 0 {
			continue
		}
		if sums[i] == nil {
			sums[i] = map[planCurrency]int64{}
		}
		k := planCurrency{b.PlanID, b.Currency}
		sums[i][k] += b.Amount
		total[k] += b.Amount
	}
	for i := range starts {
		out.Buckets[i].Billed = planMoney(sums[i], plans)
	}
	out.Billed = planMoney(total, plans)

	// Installations: every interval overlapping the range, with trials.
	var intervals []revenueInterval
	if err := db.Raw(`SELECT iv.installation_id, iv.plan_id, iv.started_at, iv.ended_at, i.trial_ends_at
		FROM installation_plan_intervals iv LEFT JOIN installations i ON i.id = iv.installation_id
		WHERE iv.app_id = ? AND iv.started_at < ? AND (iv.ended_at IS NULL OR iv.ended_at >= ?)
		ORDER BY iv.installation_id, iv.started_at`, v.ID, until, since).Scan(&intervals).Error; err != nil {
		return nil, fmt.Errorf("reading plan intervals: %w", err)
	}
	for i := range out.Buckets {
		b := &out.Buckets[i]
		c := b.End
		if now.Before(c) {
			c = now
		}
		if !b.Start.Before(now) { // a bucket wholly in the future
			continue
		}
		mrr := map[string]int64{}
		for _, iv := range intervals {
			if !iv.covers(c) {
				continue
			}
			b.Active++
			if iv.TrialEndsAt != nil && !iv.TrialEndsAt.Before(c) {
				continue // in its trial: nothing recurs yet
			}
			if p, ok := priceFor(prices[iv.PlanID], periodStart(c.Add(-time.Nanosecond))); ok && p.PricingModel == PricingFlat {
				mrr[p.Currency] += monthly(p)
			}
		}
		b.MRR = moneyList(mrr)
	}

	// New and churned: an installation's first start and, once it is no
	// longer live, its last end.
	var lives []struct {
		InstallationID int64
		FirstAt        time.Time
		LastAt         *time.Time
	}
	if err := db.Raw(`SELECT installation_id, min(started_at) AS first_at,
		       CASE WHEN bool_or(ended_at IS NULL) THEN NULL ELSE max(ended_at) END AS last_at
		FROM installation_plan_intervals WHERE app_id = ?
		GROUP BY installation_id
		HAVING min(started_at) < ? AND (bool_or(ended_at IS NULL) OR max(ended_at) >= ?)`, v.ID, until, since).Scan(&lives).Error; err != nil {
		return nil, fmt.Errorf("reading installations: %w", err)
	}
	for _, l := range lives {
		if i := find(l.FirstAt); i >= 0 {
			out.Buckets[i].New++
			out.New++
		}
		if l.LastAt != nil {
			if i := find(*l.LastAt); i >= 0 {
				out.Buckets[i].Churned++
				out.Churned++
			}
		}
	}

	// Trials: started when the installation was made; converted when the
	// trial ended with it live on a plan that is not free.
	var trials []struct {
		ID          int64
		CreatedAt   time.Time
		TrialEndsAt time.Time
	}
	if err := db.Raw(`SELECT id, created_at, trial_ends_at FROM installations
		WHERE app_id = ? AND trial_ends_at IS NOT NULL AND created_at < ? AND trial_ends_at >= ?`, v.ID, until, since).Scan(&trials).Error; err != nil {
		return nil, fmt.Errorf("reading trials: %w", err)
	}
	byInst := map[int64][]revenueInterval{}
	for _, iv := range intervals {
		byInst[iv.InstallationID] = append(byInst[iv.InstallationID], iv)
	}
	for _, tr := range trials {
		if i := find(tr.CreatedAt); i >= 0 {
			out.Buckets[i].TrialsStarted++
			out.TrialsStarted++
		}
		i := find(tr.TrialEndsAt)
		if i < 0 || tr.TrialEndsAt.After(now) {
			continue
		}
		for _, iv := range byInst[tr.ID] {
			if !iv.coversAt(tr.TrialEndsAt) {
				continue
			}
			if p, ok := priceFor(prices[iv.PlanID], periodStart(tr.TrialEndsAt)); ok && p.PricingModel != PricingFree {
				out.Buckets[i].TrialsConverted++
				out.TrialsConverted++
			}
		}
	}

	// Metered units reported, by plan.
	var usage []struct {
		PlanID     int64
		RecordedAt time.Time
		Units      int64
	}
	if err := db.Raw(`SELECT plan_id, date_trunc(?, recorded_at, 'UTC') AS recorded_at, sum(quantity)::bigint AS units
		FROM usage_records WHERE app_id = ? AND recorded_at >= ? AND recorded_at < ?
		GROUP BY 1, 2`, res, v.ID, since, until).Scan(&usage).Error; err != nil {
		return nil, fmt.Errorf("reading usage: %w", err)
	}
	units := make([]map[int64]int64, len(starts))
	for _, u := range usage {
		if i := find(u.RecordedAt); i >= 0 {
			if units[i] == nil {
				units[i] = map[int64]int64{}
			}
			units[i][u.PlanID] += u.Units
		}
	}
	for i := range starts {
		for id, n := range units[i] {
			out.Buckets[i].Units = append(out.Buckets[i].Units, PlanUnits{Plan: planRef(plans, id), Units: n})
		}
		sort.Slice(out.Buckets[i].Units, func(x, y int) bool { return out.Buckets[i].Units[x].Plan.ID < out.Buckets[i].Units[y].Plan.ID })
	}
	if out.Commission, err = s.commissionOf(ctx, v); err != nil {
		return nil, err
	}
	return out, nil
}

type planCurrency struct {
	PlanID   int64
	Currency string
}

// appPlans are the app's plans by id and every price version of them
// (deleted plans' too), oldest first.
func (s *Revenue) appPlans(ctx context.Context, appID int64) (map[int64]Plan, map[int64][]PlanPrice, error) {
	var rows []Plan
	if err := s.db.WithContext(ctx).Where("app_id = ?", appID).Find(&rows).Error; err != nil {
		return nil, nil, fmt.Errorf("reading plans: %w", err)
	}
	plans := make(map[int64]Plan, len(rows))
	for _, p := range rows {
		plans[p.ID] = p
	}
	var versions []PlanPrice
	if err := s.db.WithContext(ctx).Where("app_id = ?", appID).Order("plan_id, effective_from").Find(&versions).Error; err != nil {
		return nil, nil, fmt.Errorf("reading plan prices: %w", err)
	}
	prices := map[int64][]PlanPrice{}
	for _, v := range versions {
		prices[v.PlanID] = append(prices[v.PlanID], v)
	}
	return plans, prices, nil
}

// priceFor is the version pricing the period starting at period: the
// latest effective from then or before.
func priceFor(versions []PlanPrice, period time.Time) (PlanPrice, bool) {
	var out PlanPrice
	ok := false
	for _, v := range versions {
		if !v.EffectiveFrom.After(period) {
			out, ok = v, true
		}
	}
	return out, ok
}

// monthly is a flat price per month: a yearly one divided by twelve,
// rounded half to even.
func monthly(p PlanPrice) int64 {
	if p.Interval == "year" {
		return prorate(p.Amount, 1, 12)
	}
	return p.Amount
}

func planRef(plans map[int64]Plan, id int64) PlanRef {
	p, ok := plans[id]
	if !ok {
		return PlanRef{ID: id, Name: "Deleted plan"}
	}
	return PlanRef{ID: id, Slug: p.Slug, Name: p.Name, UnitName: p.UnitName}
}

// planMoney lists sums by plan (id order), then currency.
func planMoney(sums map[planCurrency]int64, plans map[int64]Plan) []PlanMoney {
	out := make([]PlanMoney, 0, len(sums))
	for k, n := range sums {
		out = append(out, PlanMoney{Plan: planRef(plans, k.PlanID), Money: Money{k.Currency, n}})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Plan.ID != out[j].Plan.ID {
			return out[i].Plan.ID < out[j].Plan.ID
		}
		return out[i].Currency < out[j].Currency
	})
	return out
}

// moneyList lists amounts by currency, alphabetically.
func moneyList(m map[string]int64) []Money {
	out := make([]Money, 0, len(m))
	for c, n := range m {
		out = append(out, Money{c, n})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Currency < out[j].Currency })
	return out
}
