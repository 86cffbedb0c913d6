package marketplace

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/plugboard/plugboard/app/fault"
)

// Plans that bill: the pricing fields of a plan, checked and written with
// the currency's digits, and the plan's price versions (PlanPrice) that
// the ledger bills by. A change to a plan somebody was on during the open
// period applies from the next period; the open period keeps the price it
// started with.

const maxUnitName = 40

// applyPricing checks and applies the billing fields of in to p: price,
// currency, interval, pricingModel, unitPrice, unitName, includedUnits,
// cappedAmount and trialDays. Amounts are rewritten with the currency's
// digits ("9" USD → "9.00").
func applyPricing(f fault.Fields, p *Plan, in PlanFields, creating bool) {
	if in.Currency != nil {
		p.Currency = strings.TrimSpace(*in.Currency)
	} else if creating {
		p.Currency = "USD"
	}
	if _, err := currencyDigits(p.Currency); err != nil {
		f.Add("currency", "must be a three-letter ISO 4217 code such as USD")
		return // amounts cannot be read without the currency's digits
	}
	if in.Interval != nil {
		p.Interval = *in.Interval
		f.Check(p.Interval != "month" && p.Interval != "year", "interval", "must be month or year")
	} else if creating {
		p.Interval = "month"
	}
	if in.Price != nil {
		p.Price = strings.TrimSpace(*in.Price)
	} else if creating || p.Price == "" {
		p.Price = "0"
	}
	price, ok := amountField(f, "price", p.Price, p.Currency)
	if ok {
		p.Price = formatAmount(price, p.Currency)
	}
	model := p.PricingModel
	switch {
	case in.PricingModel != nil:
		model = *in.PricingModel
	case creating && in.UnitPrice != nil:
		model = PricingPerUnit
	case model == "" || model == PricingFlat || model == PricingFree:
		// As before pricing models: a price above 0 is a flat plan.
		model = PricingFree
		if price > 0 || !ok {
			model = PricingFlat
		}
	}
	switch model {
	case PricingFlat, PricingFree:
		f.Check(model == PricingFlat && ok && price == 0, "price", "must be above 0 for a flat plan; a plan that costs nothing has pricingModel free")
		f.Check(model == PricingFree && ok && price != 0, "price", `must be "0" for a free plan`)
		for field, given := range map[string]bool{"unitPrice": in.UnitPrice != nil, "unitName": in.UnitName != nil,
			"includedUnits": in.IncludedUnits != nil, "cappedAmount": in.CappedAmount != nil} {
			f.Check(given, field, "is only for per_unit plans (pricingModel per_unit)")
		}
		p.UnitPrice, p.UnitName, p.IncludedUnits, p.CappedAmount = nil, "", 0, nil
	case PricingPerUnit:
		applyUnitPricing(f, p, in, ok && price != 0)
	default:
		f.Add("pricingModel", "must be flat, per_unit or free")
	}
	p.PricingModel = model
	if in.TrialDays != nil {
		p.TrialDays = *in.TrialDays
		f.Check(p.TrialDays < 0 || p.TrialDays > 365, "trialDays", "must be a whole number of days from 0 to 365")
	}
	f.Check(model == PricingFree && p.TrialDays != 0, "trialDays", "must be 0 for a free plan: there is nothing to try for free")
}

// applyUnitPricing checks a per_unit plan's fields.
func applyUnitPricing(f fault.Fields, p *Plan, in PlanFields, hasPrice bool) {
	f.Check(hasPrice, "price", `must be "0" for a per_unit plan, which is priced by unitPrice`)
	f.Check(p.Interval != "month", "interval", "must be month for a per_unit plan: usage is billed by calendar month")
	if in.UnitPrice != nil {
		p.UnitPrice = ptr(strings.TrimSpace(*in.UnitPrice))
	}
	if p.UnitPrice == nil {
		f.Add("unitPrice", "is required for a per_unit plan")
	} else if n, ok := amountField(f, "unitPrice", *p.UnitPrice, p.Currency); ok {
		f.Check(n == 0, "unitPrice", "must be above 0; a plan that costs nothing has pricingModel free")
		*p.UnitPrice = formatAmount(n, p.Currency)
	}
	if in.UnitName != nil {
		p.UnitName = strings.TrimSpace(*in.UnitName)
	}
	f.Check(p.UnitName == "" || utf8.RuneCountInString(p.UnitName) > maxUnitName, "unitName",
		fmt.Sprintf("must be 1 to %d characters naming one unit, such as \"API call\"", maxUnitName))
	if in.IncludedUnits != nil {
		p.IncludedUnits = *in.IncludedUnits
		f.Check(p.IncludedUnits < 0 || p.IncludedUnits > maxUsageQuantity, "includedUnits", "must be a whole number from 0 to 1099511627776")
	}
	if in.CappedAmount != nil {
		p.CappedAmount = ptr(strings.TrimSpace(*in.CappedAmount))
		if *p.CappedAmount == "" {
			p.CappedAmount = nil // "": no cap
		}
	}
	if p.CappedAmount != nil {
		if n, ok := amountField(f, "cappedAmount", *p.CappedAmount, p.Currency); ok {
			f.Check(n == 0, "cappedAmount", `must be above 0, or "" for no cap`)
			*p.CappedAmount = formatAmount(n, p.Currency)
		}
	}
}

// amountField reads a decimal amount of a field into minor units.
func amountField(f fault.Fields, field, s, code string) (int64, bool) {
	n, err := parseAmount(s, code)
	if err != nil {
		f.Add(field, err.Error())
		return 0, false
	}
	return n, true
}

// planPrice is the price version p's fields make, in minor units.
func planPrice(p *Plan) PlanPrice {
	v := PlanPrice{PlanID: p.ID, AppID: p.AppID, PricingModel: p.PricingModel, Currency: p.Currency, Interval: p.Interval,
		UnitName: p.UnitName, IncludedUnits: p.IncludedUnits}
	v.Amount, _ = parseAmount(p.Price, p.Currency)
	if p.UnitPrice != nil {
		v.UnitPrice, _ = parseAmount(*p.UnitPrice, p.Currency)
	}
	if p.CappedAmount != nil {
		c, _ := parseAmount(*p.CappedAmount, p.Currency)
		v.CappedAmount = &c
	}
	return v
}

// samePrice reports whether two versions bill alike.
func samePrice(a, b PlanPrice) bool {
	capped := (a.CappedAmount == nil) == (b.CappedAmount == nil) && (a.CappedAmount == nil || *a.CappedAmount == *b.CappedAmount)
	return capped && a.PricingModel == b.PricingModel && a.Currency == b.Currency && a.Interval == b.Interval &&
		a.Amount == b.Amount && a.UnitPrice == b.UnitPrice && a.UnitName == b.UnitName && a.IncludedUnits == b.IncludedUnits
}

// periodStart is the first instant of the calendar month (UTC) holding t.
func periodStart(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// nextPeriod is the first instant of the month after the one starting at p.
func nextPeriod(p time.Time) time.Time { return p.AddDate(0, 1, 0) }

// recordPlanPrice writes p's price version in tx, when it bills otherwise
// than the latest one: from the open period's start when nobody was on the
// plan during it, else from the next period's. It returns when the
// version takes effect (zero when nothing changed).
func recordPlanPrice(ctx context.Context, tx *gorm.DB, p *Plan, now time.Time) (time.Time, error) {
	v := planPrice(p)
	open := periodStart(now)
	var latest PlanPrice
	err := tx.WithContext(ctx).Where("plan_id = ?", p.ID).Order("effective_from DESC").Limit(1).Find(&latest).Error
	if err != nil {
		return time.Time{}, fmt.Errorf("finding the price of plan %d: %w", p.ID, err)
	}
	if latest.ID != 0 && samePrice(latest, v) {
		return time.Time{}, nil
	}
	var used bool
	err = tx.WithContext(ctx).Raw(`SELECT EXISTS (SELECT 1 FROM installation_plan_intervals
		WHERE plan_id = ? AND (ended_at IS NULL OR ended_at > ?))`, p.ID, open).Scan(&used).Error
	if err != nil {
		return time.Time{}, fmt.Errorf("finding who is on plan %d: %w", p.ID, err)
	}
	v.EffectiveFrom, v.CreatedAt = open, now
	if used {
		v.EffectiveFrom = nextPeriod(open)
	} else if err := tx.WithContext(ctx).Where("plan_id = ? AND effective_from > ?", p.ID, open).Delete(&PlanPrice{}).Error; err != nil {
		return time.Time{}, fmt.Errorf("replacing the next price of plan %d: %w", p.ID, err)
	}
	err = tx.WithContext(ctx).Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "plan_id"}, {Name: "effective_from"}},
		DoUpdates: clause.AssignmentColumns([]string{"pricing_model", "currency", "interval", "amount", "unit_price", "unit_name",
			"included_units", "capped_amount", "created_at"})}).Create(&v).Error
	if err != nil {
		return time.Time{}, fmt.Errorf("recording the price of plan %d: %w", p.ID, err)
	}
	return v.EffectiveFrom, nil
}

// refuseDeletingPlanInUse is DeletePlan's check: a plan with live
// installations stays.
func refuseDeletingPlanInUse(ctx context.Context, tx *gorm.DB, p *Plan) error {
	var n int64
	if err := tx.WithContext(ctx).Model(&Installation{}).Where("plan_id = ? AND status IN ?", p.ID, LiveStatuses).Count(&n).Error; err != nil {
		return fmt.Errorf("counting installations of plan %d: %w", p.ID, err)
	}
	if n > 0 {
		return fault.Conflict(fault.PlanInUse, fmt.Sprintf("%d organizations have the plan %s installed; move them to another plan first.", n, p.Slug))
	}
	return nil
}
