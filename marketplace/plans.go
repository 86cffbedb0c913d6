package marketplace

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"gorm.io/gorm"

	"github.com/plugboard/plugboard/app/fault"
)

// PlanFields are a plan's settable attributes; nil means "not given".
type PlanFields struct {
	Name        *string
	Slug        *string
	Description *string
	Price       *string
	Currency    *string
	Interval    *string
	// Billing (billing_plans.go).
	PricingModel  *string
	UnitPrice     *string
	UnitName      *string
	IncludedUnits *int64
	CappedAmount  *string // "": no cap
	TrialDays     *int
}

var currencyRe = regexp.MustCompile(`^[A-Z]{3}$`)

func applyPlan(f fault.Fields, p *Plan, in PlanFields, creating bool) {
	if in.Name != nil || creating {
		if in.Name != nil {
			p.Name = strings.TrimSpace(*in.Name)
		}
		f.Check(p.Name == "" || utf8.RuneCountInString(p.Name) > 60, "name", "must be 1 to 60 characters")
	}
	if in.Slug != nil {
		p.Slug = *in.Slug
		checkSlug(f, "slug", p.Slug)
	} else if creating {
		p.Slug = Slugify(p.Name)
		if p.Name != "" {
			checkSlug(f, "name", p.Slug)
		}
	}
	if in.Description != nil {
		p.Description = strings.TrimSpace(*in.Description)
		f.Check(utf8.RuneCountInString(p.Description) > 2000, "description", "must be at most 2000 characters")
	}
	applyPricing(f, p, in, creating)
}

// ListPlans returns an app's plans, cheapest first.
func (s *Apps) ListPlans(ctx context.Context, a Actor, appRef string) ([]Plan, error) {
	return s.visiblePlans(ctx, a, appRef)
}

// visiblePlans are the plans of app appRef, cheapest first, when the actor
// may see the app.
func (s *core) visiblePlans(ctx context.Context, a Actor, appRef string) ([]Plan, error) {
	v, err := s.view(ctx, s.db, a, appRef, false)
	if err != nil {
		return nil, err
	}
	var out []Plan
	if err := s.db.WithContext(ctx).Where("app_id = ?", v.ID).Order("price, id").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("listing plans: %w", err)
	}
	return out, nil
}

// CreatePlan adds a plan to an app; admins of its organization.
func (s *Apps) CreatePlan(ctx context.Context, a Actor, appRef string, in PlanFields) (*Plan, error) {
	var out Plan
	err := s.tx(ctx, func(tx *gorm.DB) error {
		v, err := s.manage(ctx, tx, a, appRef)
		if err != nil {
			return err
		}
		f := fault.Fields{}
		out = Plan{AppID: v.ID, CreatedAt: s.now(), UpdatedAt: s.now()}
		applyPlan(f, &out, in, true)
		if err := f.Err(); err != nil {
			return err
		}
		if err := tx.Create(&out).Error; err != nil {
			return dbErr(err, "plan", "slug")
		}
		if _, err := recordPlanPrice(ctx, tx, &out, s.now()); err != nil {
			return err
		}
		return s.audit(tx, a, &v.OrganizationID, "plan.create", "plan", idStr(out.ID), v.Slug+"/"+out.Slug, JSON{"price": out.Price, "currency": out.Currency})
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// managePlan loads an app for a change by its admins, and one of its plans.
func (s *Apps) managePlan(ctx context.Context, tx *gorm.DB, a Actor, appRef, planRef string) (*AppView, *Plan, error) {
	v, err := s.manage(ctx, tx, a, appRef)
	if err != nil {
		return nil, nil, err
	}
	var p Plan
	if err := byRef(tx.WithContext(ctx).Where("app_id = ?", v.ID), "plans", planRef).First(&p).Error; err != nil {
		return nil, nil, dbErr(err, "plan", "")
	}
	return v, &p, nil
}

// UpdatePlan changes a plan.
func (s *Apps) UpdatePlan(ctx context.Context, a Actor, appRef, planRef string, in PlanFields) (*Plan, error) {
	var out *Plan
	err := s.tx(ctx, func(tx *gorm.DB) error {
		v, p, err := s.managePlan(ctx, tx, a, appRef, planRef)
		if err != nil {
			return err
		}
		f := fault.Fields{}
		applyPlan(f, p, in, false)
		if err := f.Err(); err != nil {
			return err
		}
		p.UpdatedAt = s.now()
		if err := tx.Save(p).Error; err != nil {
			return dbErr(err, "plan", "slug")
		}
		from, err := recordPlanPrice(ctx, tx, p, s.now())
		if err != nil {
			return err
		}
		out = p
		var data JSON
		if !from.IsZero() {
			data = JSON{"price": p.Price, "currency": p.Currency, "pricingModel": p.PricingModel, "effectiveFrom": from}
		}
		return s.audit(tx, a, &v.OrganizationID, "plan.update", "plan", idStr(p.ID), v.Slug+"/"+p.Slug, data)
	})
	return out, err
}

// DeletePlan removes a plan; an app with plans keeps at least one.
func (s *Apps) DeletePlan(ctx context.Context, a Actor, appRef, planRef string) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		v, p, err := s.managePlan(ctx, tx, a, appRef, planRef)
		if err != nil {
			return err
		}
		var n int64
		if err := tx.Model(&Plan{}).Where("app_id = ?", v.ID).Count(&n).Error; err != nil {
			return fmt.Errorf("counting plans: %w", err)
		}
		if err := refuseDeletingPlanInUse(ctx, tx, p); err != nil {
			return err
		}
		if n <= 1 {
			return fault.Conflict(fault.LastPlan, "An app with plans keeps at least one; add another plan first.")
		}
		if err := tx.Delete(&Plan{}, p.ID).Error; err != nil {
			return fmt.Errorf("deleting plan: %w", err)
		}
		return s.audit(tx, a, &v.OrganizationID, "plan.delete", "plan", idStr(p.ID), v.Slug+"/"+p.Slug, nil)
	})
}
