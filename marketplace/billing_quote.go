package marketplace

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// Quotes: what moving an installation to a plan now costs for the rest of
// the open period, shown beside the change-plan form. The arithmetic is
// the calculator's (billing_calc.go), for one span from now to the
// period's end: the time counts to the whole second, rounded down; the
// trial is free; a flat plan costs amount × billable / period seconds
// (a twelfth of a yearly price per month), rounded once, half to even;
// a per-unit plan's cost is its usage, at most its cap; the price is the
// version pricing the open period (a change of the plan's price made
// while somebody was on it applies from the next period). The quote is
// the line the invoice will carry for the new plan when the installation
// was not on it earlier in the period and stays to the end; a plan used
// twice in one period is one line, rounded once, so it may then differ
// from the sum of two quotes by a minor unit.

// PlanQuote is what an installation on a plan from From to the end of the
// open period costs.
type PlanQuote struct {
	PlanID int64
	Price  PlanPrice // the version pricing the open period
	From   time.Time // now, to the whole second
	Until  time.Time // the open period's end
	// TrialEndsAt is the installation's trial end when it is after From:
	// the time until then costs nothing.
	TrialEndsAt *time.Time
	Billable    int64 // seconds billed: from the later of From and the trial's end, to Until
	// Amount is what a flat plan costs for the billable seconds; 0 for a
	// per-unit plan (its usage decides, at most Price.CappedAmount) and a
	// free one.
	Amount int64
}

// InTrial reports whether the trial covers the rest of the period.
func (q PlanQuote) InTrial() bool { return q.TrialEndsAt != nil && q.Billable == 0 }

// AmountText is Amount as a decimal with the currency's digits.
func (q PlanQuote) AmountText() string { return formatAmount(q.Amount, q.Price.Currency) }

// quoteRest quotes price version v for an installation whose trial ends
// at trialEnd (nil: none), from now to the end of the period holding now.
func quoteRest(now time.Time, trialEnd *time.Time, v PlanPrice) PlanQuote {
	start := periodStart(now)
	end := nextPeriod(start)
	from, pe := seconds(now), seconds(end)
	q := PlanQuote{PlanID: v.PlanID, Price: v, From: time.Unix(from, 0).UTC(), Until: end}
	billFrom := from
	if trialEnd != nil && seconds(*trialEnd) > from {
		t := trialEnd.UTC()
		q.TrialEndsAt = &t
		billFrom = min(seconds(*trialEnd), pe)
	}
	q.Billable = max(pe-billFrom, 0)
	if v.PricingModel == PricingFlat {
		whole := pe - seconds(start)
		if v.Interval == "year" {
			whole *= 12
		}
		q.Amount = prorate(v.Amount, q.Billable, whole)
	}
	return q
}

// planQuotes quotes each of plans for inst from now to the end of the
// open period, by plan id; a plan without a price version for the period
// (which the API never leaves) has no quote.
func planQuotes(ctx context.Context, db *gorm.DB, now time.Time, inst *Installation, plans []Plan) (map[int64]PlanQuote, error) {
	out := map[int64]PlanQuote{}
	if len(plans) == 0 {
		return out, nil
	}
	ids := make([]int64, len(plans))
	for i, p := range plans {
		ids[i] = p.ID
	}
	var versions []PlanPrice
	if err := db.WithContext(ctx).Raw(`SELECT DISTINCT ON (plan_id) * FROM plan_prices WHERE plan_id IN ? AND effective_from <= ?
		ORDER BY plan_id, effective_from DESC`, ids, periodStart(now)).Scan(&versions).Error; err != nil {
		return nil, fmt.Errorf("loading the prices of %s's plans: %w", inst.UUID, err)
	}
	for _, v := range versions {
		out[v.PlanID] = quoteRest(now, inst.TrialEndsAt, v)
	}
	return out, nil
}
