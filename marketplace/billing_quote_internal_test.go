package marketplace

import (
	"math/big"
	"math/rand/v2"
	"testing"
	"time"
)

// refQuote is the rest-of-period cost, worked out the slow, obvious way
// from the rules in docs/guides/billing.md: the month's length from the
// calendar, the seconds elapsed and left counted with durations, the
// price times the fraction as an exact rational, rounded half to even by
// comparing twice the remainder with the divisor. It calls nothing of the
// calculator.
func refQuote(now time.Time, trialEnd *time.Time, v PlanPrice) (billable, amount int64) {
	now = now.UTC()
	start := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	days := time.Date(now.Year(), now.Month()+1, 0, 0, 0, 0, 0, time.UTC).Day()
	month := int64(days) * 24 * 60 * 60
	elapsed := int64(now.Sub(start) / time.Second)
	from := elapsed
	if trialEnd != nil && trialEnd.After(now) {
		from = min(int64(trialEnd.Sub(start)/time.Second), month)
	}
	billable = month - from
	if v.PricingModel != PricingFlat {
		return billable, 0
	}
	whole := month
	if v.Interval == "year" {
		whole = 12 * month
	}
	exact := new(big.Rat).SetFrac(new(big.Int).Mul(big.NewInt(v.Amount), big.NewInt(billable)), big.NewInt(whole))
	q, r := new(big.Int).QuoRem(exact.Num(), exact.Denom(), new(big.Int))
	switch c := new(big.Int).Mul(r, big.NewInt(2)).Cmp(exact.Denom()); {
	case c > 0, c == 0 && q.Bit(0) == 1:
		q.Add(q, big.NewInt(1))
	}
	return billable, q.Int64()
}

// TestQuotesAgreeWithAReference compares the plan-change quote with the
// reference over generated changes — any instant of 2024 to 2027 (leap
// February, 30- and 31-day months, fractions of a second), trials ending
// before, within and after the rest of the period, monthly and yearly
// flat prices up to 2^50 minor units, per-unit and free plans — and with
// the invoice calculator's line for an installation that moves to the
// plan at that instant and stays.
func TestQuotesAgreeWithAReference(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 7))
	t.Logf("seed %d", seed)
	lo := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	hi := time.Date(2028, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	for n := range 5000 {
		now := time.Unix(0, lo+rng.Int64N(hi-lo)).UTC()
		var trialEnd *time.Time
		switch rng.IntN(4) {
		case 1: // anywhere from 40 days before to 40 days after
			t := now.Add(time.Duration(rng.Int64N(int64(80*24*time.Hour))) - 40*24*time.Hour)
			trialEnd = &t
		case 2: // within a second of now
			t := now.Add(time.Duration(rng.Int64N(int64(2*time.Second))) - time.Second)
			trialEnd = &t
		}
		v := PlanPrice{PlanID: 9, Currency: "USD", Interval: "month", PricingModel: PricingFlat}
		switch rng.IntN(6) {
		case 0:
			v.Interval = "year"
		case 1:
			v.PricingModel, v.UnitPrice, v.IncludedUnits = PricingPerUnit, 1+rng.Int64N(1000), rng.Int64N(100)
		case 2:
			v.PricingModel = PricingFree
		case 3:
			v.Currency = "JPY"
		}
		if v.PricingModel == PricingFlat {
			v.Amount = 1 + rng.Int64N([]int64{100, 10_000, 1 << 50}[rng.IntN(3)])
		}
		got := quoteRest(now, trialEnd, v)
		billable, amount := refQuote(now, trialEnd, v)
		if got.Billable != billable || got.Amount != amount {
			t.Fatalf("case %d (seed %d): now %s, trial end %v, %+v: quote %d s, %d; reference %d s, %d",
				n, seed, now.Format(time.RFC3339Nano), trialEnd, v, got.Billable, got.Amount, billable, amount)
		}
		// Without a trial at least the current second is left to bill.
		if want := billable == 0; got.InTrial() != want {
			t.Fatalf("case %d (seed %d): in trial %v, want %v", n, seed, got.InTrial(), want)
		}
		// The invoice line for the installation moving to the plan now.
		start := periodStart(now)
		f := billingFacts{Start: start, End: nextPeriod(start),
			Intervals:     []PlanInterval{{InstallationID: 1, PlanID: 9, StartedAt: now}},
			Prices:        map[int64]PlanPrice{9: v},
			Installations: map[int64]billedInstallation{1: {UUID: "u", TrialEndsAt: trialEnd}},
			Usage:         map[usageKey]int64{}}
		var line int64
		for _, l := range billLines(f) {
			line += l.Amount
		}
		if line != got.Amount {
			t.Fatalf("case %d (seed %d): quote %d, the invoice line %d", n, seed, got.Amount, line)
		}
	}
}

// TestQuoteExamples are the figures a reader checks by hand.
func TestQuoteExamples(t *testing.T) {
	nov16 := time.Date(2026, 11, 16, 0, 0, 0, 0, time.UTC)
	trial := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	after := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	capped := int64(5000)
	cases := []struct {
		name  string
		now   time.Time
		trial *time.Time
		v     PlanPrice
		want  string
		in    bool
	}{
		{"half of November", nov16, nil, PlanPrice{PricingModel: PricingFlat, Currency: "USD", Interval: "month", Amount: 1000}, "5.00", false},
		{"half of a twelfth of a year", nov16, nil, PlanPrice{PricingModel: PricingFlat, Currency: "USD", Interval: "year", Amount: 12000}, "5.00", false},
		{"a week of trial left", nov16, &trial, PlanPrice{PricingModel: PricingFlat, Currency: "USD", Interval: "month", Amount: 3000}, "8.00", false},
		{"trial past the period", nov16, &after, PlanPrice{PricingModel: PricingFlat, Currency: "USD", Interval: "month", Amount: 3000}, "0.00", true},
		{"yen, no minor unit", nov16, nil, PlanPrice{PricingModel: PricingFlat, Currency: "JPY", Interval: "month", Amount: 999}, "500", false},
		{"per unit: usage decides", nov16, nil, PlanPrice{PricingModel: PricingPerUnit, Currency: "USD", Interval: "month", UnitPrice: 2, CappedAmount: &capped}, "0.00", false},
	}
	for _, c := range cases {
		q := quoteRest(c.now, c.trial, c.v)
		if q.AmountText() != c.want || q.InTrial() != c.in || !q.Until.Equal(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)) {
			t.Errorf("%s: %s (in trial %v, until %s), want %s (in trial %v)", c.name, q.AmountText(), q.InTrial(), q.Until, c.want, c.in)
		}
	}
}
