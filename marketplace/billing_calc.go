package marketplace

import (
	"math"
	"math/bits"
	"sort"
	"time"
)

// The calculator: what one organization owes for one period, from the
// ledger's facts (plan intervals, price versions, trials, usage). It is
// pure — closing a period and the upcoming invoice both call it — and
// docs/guides/billing.md states its rules:
//
//   - times count to the whole second, rounded down;
//   - a flat plan costs amount × billable / period seconds, where billable
//     is the time the installation was live on the plan within the period
//     and outside its trial; a yearly plan costs a twelfth of its price
//     per month, the same way; so a line never exceeds the plan's price
//     (for the period);
//   - a per-unit plan costs max(0, units − includedUnits) × unitPrice, at
//     most cappedAmount, for the units reported within the period and
//     outside the trial while the installation was on that plan;
//   - each installation and plan is one line; each line is rounded once,
//     half to even; an invoice is the sum of its lines, per currency.

// billingFacts are what the calculator reads for one organization.
type billingFacts struct {
	Start, End    time.Time           // the period: [Start, End)
	Intervals     []PlanInterval      // the organization's, overlapping the period
	Prices        map[int64]PlanPrice // by plan: the version pricing the period
	Installations map[int64]billedInstallation
	Usage         map[usageKey]int64 // units reported within the period, outside the trial
	Labels        map[int64]string   // by plan: "App — Plan", for line descriptions
}

// billedInstallation is what lines need of an installation.
type billedInstallation struct {
	UUID        string
	TrialEndsAt *time.Time
}

type usageKey struct{ InstallationID, PlanID int64 }

// seconds truncates t to the whole second.
func seconds(t time.Time) int64 { return t.Unix() }

// billLines computes the organization's lines for the period, ordered by
// installation, plan and kind. Lines that charge nothing and count
// nothing are left out.
func billLines(f billingFacts) []InvoiceLine {
	type span struct{ from, to int64 }
	ps, pe := seconds(f.Start), seconds(f.End)
	spans := map[usageKey][]span{}
	var keys []usageKey
	for _, iv := range f.Intervals {
		from, to := max(seconds(iv.StartedAt), ps), pe
		if iv.EndedAt != nil {
			to = min(seconds(*iv.EndedAt), pe)
		}
		if to <= from {
			continue
		}
		k := usageKey{iv.InstallationID, iv.PlanID}
		if _, seen := spans[k]; !seen {
			keys = append(keys, k)
		}
		spans[k] = append(spans[k], span{from, to})
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].InstallationID != keys[j].InstallationID {
			return keys[i].InstallationID < keys[j].InstallationID
		}
		return keys[i].PlanID < keys[j].PlanID
	})
	var out []InvoiceLine
	for _, k := range keys {
		v, ok := f.Prices[k.PlanID]
		if !ok {
			continue // no price: the plan never had one (it cannot happen through the API)
		}
		inst := f.Installations[k.InstallationID]
		line := InvoiceLine{InstallationID: k.InstallationID, InstallationUUID: inst.UUID, AppID: v.AppID, PlanID: k.PlanID,
			PlanPriceID: v.ID, Currency: v.Currency, Description: f.Labels[k.PlanID], CappedAmount: v.CappedAmount}
		trialEnd := int64(math.MinInt64)
		if inst.TrialEndsAt != nil {
			trialEnd = seconds(*inst.TrialEndsAt)
		}
		first, last := int64(math.MaxInt64), int64(math.MinInt64)
		var billable int64
		for _, s := range spans[k] {
			from := max(s.from, trialEnd)
			if from < s.to {
				billable += s.to - from
				first, last = min(first, from), max(last, s.to)
			}
		}
		if billable == 0 { // all in the trial: the line covers the time it was on the plan
			for _, s := range spans[k] {
				first, last = min(first, s.from), max(last, s.to)
			}
		}
		line.StartsAt, line.EndsAt = time.Unix(first, 0).UTC(), time.Unix(last, 0).UTC()
		switch v.PricingModel {
		case PricingFlat:
			whole := pe - ps
			if v.Interval == "year" {
				whole *= 12
			}
			line.Kind, line.Interval, line.UnitPrice = LineFlat, v.Interval, v.Amount
			line.Quantity, line.Included = billable, pe-ps
			line.Amount = prorate(v.Amount, billable, whole)
		case PricingPerUnit:
			units := f.Usage[k]
			line.Kind, line.UnitPrice, line.Quantity, line.Included = LineUsage, v.UnitPrice, units, v.IncludedUnits
			line.Amount = usageAmount(units, v)
		default:
			continue
		}
		if line.Amount == 0 && line.Quantity == 0 {
			continue
		}
		out = append(out, line)
	}
	return out
}

// usageAmount is max(0, units − included) × unitPrice, at most the cap
// (and at most what an int64 holds).
func usageAmount(units int64, v PlanPrice) int64 {
	over := units - v.IncludedUnits
	if over <= 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(over), uint64(v.UnitPrice))
	amount := int64(math.MaxInt64)
	if hi == 0 && lo <= math.MaxInt64 {
		amount = int64(lo)
	}
	if v.CappedAmount != nil {
		amount = min(amount, *v.CappedAmount)
	}
	return amount
}

// invoicesOf groups lines into one invoice per currency, currencies in
// alphabetical order.
func invoicesOf(orgID int64, start, end time.Time, lines []InvoiceLine) []Invoice {
	by := map[string]*Invoice{}
	var order []string
	for _, l := range lines {
		inv, ok := by[l.Currency]
		if !ok {
			inv = &Invoice{OrganizationID: orgID, Period: start, PeriodEnd: end, Currency: l.Currency, Status: InvoiceOpen}
			by[l.Currency] = inv
			order = append(order, l.Currency)
		}
		l.OrganizationID, l.Period = orgID, start
		inv.Lines = append(inv.Lines, l)
		inv.Total += l.Amount
	}
	sort.Strings(order)
	out := make([]Invoice, len(order))
	for i, c := range order {
		out[i] = *by[c]
	}
	return out
}
