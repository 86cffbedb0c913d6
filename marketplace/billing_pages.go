package marketplace

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/plugboard/plugboard/app/page"
)

// The customer's side of billing: the read models of an organization's
// Billing page and of one of its invoices, for its admins.

// BillingPage is what an organization's Billing page shows.
type BillingPage struct {
	Org *OrgAccess
	// Upcoming is the running estimate of the open period, one invoice
	// per currency, each with the live installations that cost nothing
	// so far beside its lines.
	Upcoming  []UpcomingInvoice
	Period    time.Time // the open period's first instant
	PeriodEnd time.Time
	// Invoices are the written invoices, newest first, with their lines.
	Invoices page.Page[Invoice]
	// UnitNames name the units of usage lines, by plan price id.
	UnitNames map[int64]string
}

// UpcomingInvoice is the open period's estimate in one currency.
type UpcomingInvoice struct {
	Invoice
	// Quiet are the live installations on plans that bill, in this
	// currency, with no line yet: in their free trial for the rest of the
	// period, or on a per-unit plan with no usage reported.
	Quiet []QuietLine
}

// QuietLine is a live installation on a plan that bills which costs
// nothing so far this period.
type QuietLine struct {
	InstallationUUID string
	Description      string // "App — Plan"
	PricingModel     string
	Currency         string
	TrialEndsAt      *time.Time // set while the trial lasts
}

// InvoicePage is one invoice of an organization, for its admins.
type InvoicePage struct {
	Org       *OrgAccess
	Invoice   *Invoice
	UnitNames map[int64]string
}

// BillingPage is the Billing page of organization orgRef, for its admins;
// other members are refused, others find no organization.
func (s *Invoices) BillingPage(ctx context.Context, a Actor, orgRef string, r page.Request) (*BillingPage, error) {
	acc, err := s.access(ctx, s.db, a, orgRef, RoleAdmin)
	if err != nil {
		return nil, err
	}
	up, err := s.UpcomingInvoice(ctx, a, acc.Org.Slug)
	if err != nil {
		return nil, err
	}
	past, err := s.listInvoices(ctx, s.db.Where("invoices.organization_id = ?", acc.Org.ID), InvoiceQuery{}, r)
	if err != nil {
		return nil, fmt.Errorf("invoices of %s: %w", acc.Org.Slug, err)
	}
	pg := &BillingPage{Org: acc, Period: up.Period, PeriodEnd: up.PeriodEnd, Invoices: past}
	quiet, err := s.quietLines(ctx, acc.Org.ID, up)
	if err != nil {
		return nil, err
	}
	by := map[string]int{}
	for _, inv := range up.Invoices {
		by[inv.Currency] = len(pg.Upcoming)
		pg.Upcoming = append(pg.Upcoming, UpcomingInvoice{Invoice: inv})
	}
	for _, q := range quiet {
		i, ok := by[q.Currency]
		if !ok {
			i = len(pg.Upcoming)
			by[q.Currency] = i
			pg.Upcoming = append(pg.Upcoming, UpcomingInvoice{Invoice: Invoice{OrganizationID: acc.Org.ID, Period: up.Period,
				PeriodEnd: up.PeriodEnd, Currency: q.Currency, Status: InvoiceOpen, Organization: &acc.Org}})
		}
		pg.Upcoming[i].Quiet = append(pg.Upcoming[i].Quiet, q)
	}
	sort.SliceStable(pg.Upcoming, func(i, j int) bool { return pg.Upcoming[i].Currency < pg.Upcoming[j].Currency })
	var lines []InvoiceLine
	for _, u := range pg.Upcoming {
		lines = append(lines, u.Lines...)
	}
	for _, inv := range past.Items {
		lines = append(lines, inv.Lines...)
	}
	if pg.UnitNames, err = s.unitNames(ctx, lines); err != nil {
		return nil, err
	}
	return pg, nil
}

// quietLines are the organization's live installations on plans that
// bill with no line in the upcoming invoices.
func (s *Invoices) quietLines(ctx context.Context, orgID int64, up *Upcoming) ([]QuietLine, error) {
	billed := map[string]bool{}
	for _, inv := range up.Invoices {
		for _, l := range inv.Lines {
			billed[l.InstallationUUID] = true
		}
	}
	var rows []struct {
		UUID         string
		AppName      string
		PlanName     string
		PricingModel string
		Currency     string
		TrialEndsAt  *time.Time
	}
	err := s.db.WithContext(ctx).Raw(`SELECT i.uuid, a.name AS app_name, p.name AS plan_name, p.pricing_model, p.currency, i.trial_ends_at
		FROM installations i JOIN plans p ON p.id = i.plan_id JOIN apps a ON a.id = i.app_id
		WHERE i.organization_id = ? AND i.status IN ? AND p.pricing_model <> ?
		ORDER BY i.id`, orgID, LiveStatuses, PricingFree).Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("finding installations that bill: %w", err)
	}
	var out []QuietLine
	for _, r := range rows {
		if billed[r.UUID] {
			continue
		}
		q := QuietLine{InstallationUUID: r.UUID, Description: r.AppName + " — " + r.PlanName, PricingModel: r.PricingModel, Currency: r.Currency}
		if r.TrialEndsAt != nil && r.TrialEndsAt.After(up.ComputedAt) {
			t := r.TrialEndsAt.UTC()
			q.TrialEndsAt = &t
		}
		out = append(out, q)
	}
	return out, nil
}

// unitNames names the units of the usage lines, by plan price id.
func (s *Invoices) unitNames(ctx context.Context, lines []InvoiceLine) (map[int64]string, error) {
	out := map[int64]string{}
	var ids []int64
	for _, l := range lines {
		if l.Kind == LineUsage && l.PlanPriceID != 0 {
			ids = append(ids, l.PlanPriceID)
		}
	}
	if len(ids) == 0 {
		return out, nil
	}
	var rows []struct {
		ID       int64
		UnitName string
	}
	if err := s.db.WithContext(ctx).Raw(`SELECT id, unit_name FROM plan_prices WHERE id IN ?`, ids).Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("naming usage units: %w", err)
	}
	for _, r := range rows {
		out[r.ID] = r.UnitName
	}
	return out, nil
}

// InvoicePage is invoice id of organization orgRef, for its admins;
// another organization's invoice is not found.
func (s *Invoices) InvoicePage(ctx context.Context, a Actor, orgRef, id string) (*InvoicePage, error) {
	inv, err := s.GetOrgInvoice(ctx, a, orgRef, id)
	if err != nil {
		return nil, err
	}
	acc, err := s.access(ctx, s.db, a, orgRef, RoleAdmin)
	if err != nil {
		return nil, err
	}
	names, err := s.unitNames(ctx, inv.Lines)
	if err != nil {
		return nil, err
	}
	return &InvoicePage{Org: acc, Invoice: inv, UnitNames: names}, nil
}
