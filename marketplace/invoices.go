package marketplace

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"gorm.io/gorm"

	"github.com/plugboard/plugboard/app/fault"
	"github.com/plugboard/plugboard/app/page"
)

// Invoices are the organizations' invoices: their admins read them and
// the upcoming one; the host (a service token, or an operator) lists what
// it has to collect and says how collecting went. Plugboard is not a
// payment processor: the host charges with its own provider.
type Invoices struct {
	*core
}

// InvoiceQuery filters invoice lists.
type InvoiceQuery struct {
	Status string
}

// invoiceTransitions are the status changes the host may make.
var invoiceTransitions = map[string][]string{
	InvoiceOpen:          {InvoicePaid, InvoiceVoid, InvoiceUncollectible},
	InvoiceUncollectible: {InvoicePaid, InvoiceVoid},
}

func (q InvoiceQuery) apply(db *gorm.DB) (*gorm.DB, error) {
	if q.Status == "" {
		return db, nil
	}
	if !slices.Contains([]string{InvoiceOpen, InvoicePaid, InvoiceVoid, InvoiceUncollectible}, q.Status) {
		return nil, fault.Field("status", "must be open, paid, void or uncollectible")
	}
	return db.Where("invoices.status = ?", q.Status), nil
}

// listInvoices is a page of invoices, newest first, with their lines and
// organization.
func (s *Invoices) listInvoices(ctx context.Context, db *gorm.DB, q InvoiceQuery, r page.Request) (page.Page[Invoice], error) {
	db, err := q.apply(db.WithContext(ctx).Model(&Invoice{}))
	if err != nil {
		return page.Page[Invoice]{}, err
	}
	db = db.Preload("Organization").Preload("Lines", func(l *gorm.DB) *gorm.DB { return l.Order("id") })
	var rows []Invoice
	order := page.Sort{Column: "id", Desc: true}
	if err := page.Query(db, "invoices.id", order, r).Find(&rows).Error; err != nil {
		return page.Page[Invoice]{}, fmt.Errorf("listing invoices: %w", err)
	}
	return page.Finish(rows, r, order, func(x Invoice) (string, int64) { return "", x.ID }), nil
}

// ListOrgInvoices lists an organization's invoices to its admins.
func (s *Invoices) ListOrgInvoices(ctx context.Context, a Actor, orgRef string, q InvoiceQuery, r page.Request) (page.Page[Invoice], error) {
	acc, err := s.access(ctx, s.db, a, orgRef, RoleAdmin)
	if err != nil {
		return page.Page[Invoice]{}, err
	}
	return s.listInvoices(ctx, s.db.Where("invoices.organization_id = ?", acc.Org.ID), q, r)
}

// loadInvoice finds invoice id with its lines and organization; lock: FOR
// UPDATE, in tx.
func (s *Invoices) loadInvoice(ctx context.Context, db *gorm.DB, id string, lock bool) (*Invoice, error) {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil || n <= 0 {
		return nil, fault.NotFound("invoice")
	}
	q := db.WithContext(ctx)
	if lock {
		q = q.Clauses(lockForUpdate)
	}
	var inv Invoice
	if err := q.First(&inv, n).Error; err != nil {
		return nil, dbErr(err, "invoice", "")
	}
	if err := db.WithContext(ctx).Where("invoice_id = ?", inv.ID).Order("id").Find(&inv.Lines).Error; err != nil {
		return nil, fmt.Errorf("loading invoice lines: %w", err)
	}
	var org Organization
	if err := db.WithContext(ctx).Limit(1).Find(&org, inv.OrganizationID).Error; err != nil {
		return nil, fmt.Errorf("loading invoice organization: %w", err)
	}
	if org.ID != 0 {
		inv.Organization = &org
	}
	return &inv, nil
}

// GetOrgInvoice returns one of an organization's invoices to its admins.
func (s *Invoices) GetOrgInvoice(ctx context.Context, a Actor, orgRef, id string) (*Invoice, error) {
	acc, err := s.access(ctx, s.db, a, orgRef, RoleAdmin)
	if err != nil {
		return nil, err
	}
	inv, err := s.loadInvoice(ctx, s.db, id, false)
	if err != nil {
		return nil, err
	}
	if inv.OrganizationID != acc.Org.ID {
		return nil, fault.NotFound("invoice")
	}
	return inv, nil
}

// invoiceHostAccess lets host service tokens and operators through.
func invoiceHostAccess(a Actor) error {
	switch {
	case a.Service != nil, a.IsOperator():
		return nil
	case a.User == nil && a.App == nil && a.Installation == nil:
		return fault.Unauthorized(fault.NotAuthenticated, "Send a host service token as Authorization: Bearer.")
	}
	return fault.Forbidden(fault.OperatorOnly, "Only the host (a service token) and operators see every organization's invoices; organization admins see their own at /api/0/organizations/{org}/invoices/.")
}

// ListInvoices lists every organization's invoices to the host.
func (s *Invoices) ListInvoices(ctx context.Context, a Actor, q InvoiceQuery, r page.Request) (page.Page[Invoice], error) {
	if err := invoiceHostAccess(a); err != nil {
		return page.Page[Invoice]{}, err
	}
	return s.listInvoices(ctx, s.db, q, r)
}

// UpdateInvoiceStatus records how collecting an invoice went: paid, void
// or uncollectible; the host only.
func (s *Invoices) UpdateInvoiceStatus(ctx context.Context, a Actor, id, status string) (*Invoice, error) {
	if err := invoiceHostAccess(a); err != nil {
		return nil, err
	}
	if status != InvoicePaid && status != InvoiceVoid && status != InvoiceUncollectible {
		return nil, fault.Field("status", "must be paid, void or uncollectible")
	}
	var out *Invoice
	err := s.tx(ctx, func(tx *gorm.DB) error {
		inv, err := s.loadInvoice(ctx, tx, id, true)
		if err != nil {
			return err
		}
		if inv.Status == status {
			out = inv // said twice: the same answer
			return nil
		}
		if !slices.Contains(invoiceTransitions[inv.Status], status) {
			return fault.Conflict(fault.InvalidInvoiceTransition, fmt.Sprintf("The invoice is %s; it cannot become %s.", inv.Status, status))
		}
		now := s.now()
		changes := map[string]any{"status": status, "updated_at": now}
		switch status {
		case InvoicePaid:
			changes["paid_at"], inv.PaidAt = now, &now
		case InvoiceVoid:
			changes["voided_at"], inv.VoidedAt = now, &now
		case InvoiceUncollectible:
			changes["uncollectible_at"], inv.UncollectibleAt = now, &now
		}
		if err := tx.Model(&Invoice{}).Where("id = ?", inv.ID).Updates(changes).Error; err != nil {
			return fmt.Errorf("updating invoice %d: %w", inv.ID, err)
		}
		was := inv.Status
		inv.Status, inv.UpdatedAt = status, now
		out = inv
		return s.audit(tx, a, &inv.OrganizationID, "invoice."+status, "invoice", idStr(inv.ID), FormatPeriod(inv.Period)+" "+inv.Currency,
			JSON{"from": was, "total": formatAmount(inv.Total, inv.Currency)})
	})
	return out, err
}

// Upcoming is the running estimate of an organization's open period: the
// invoices closing it would write if nothing changed until it ends.
type Upcoming struct {
	Period     time.Time
	PeriodEnd  time.Time
	ComputedAt time.Time
	Invoices   []Invoice
}

// UpcomingInvoice estimates the open period for its admins, with the
// calculator that closes it: live installations stay to the end of the
// period, usage is what was reported so far.
func (s *Invoices) UpcomingInvoice(ctx context.Context, a Actor, orgRef string) (*Upcoming, error) {
	acc, err := s.access(ctx, s.db, a, orgRef, RoleAdmin)
	if err != nil {
		return nil, err
	}
	start := periodStart(s.now())
	end := nextPeriod(start)
	facts, err := loadBillingFacts(ctx, s.db, []int64{acc.Org.ID}, start, end)
	if err != nil {
		return nil, err
	}
	f := facts[acc.Org.ID]
	invoices := invoicesOf(acc.Org.ID, start, end, billLines(f.billingFacts))
	for i := range invoices {
		invoices[i].Organization = &acc.Org
	}
	return &Upcoming{Period: start, PeriodEnd: end, ComputedAt: s.now(), Invoices: invoices}, nil
}

// InvoiceData is an invoice as the API and invoice.created show it.
func InvoiceData(inv *Invoice) map[string]any {
	lines := make([]map[string]any, len(inv.Lines))
	for i, l := range inv.Lines {
		lines[i] = InvoiceLineData(l)
	}
	m := map[string]any{"id": optID(inv.ID), "period": FormatPeriod(inv.Period), "periodStart": inv.Period, "periodEnd": inv.PeriodEnd,
		"currency": inv.Currency, "total": formatAmount(inv.Total, inv.Currency), "status": inv.Status, "lines": lines,
		"dateCreated": inv.CreatedAt, "datePaid": inv.PaidAt, "dateVoided": inv.VoidedAt, "dateUncollectible": inv.UncollectibleAt,
		"organization": hostOrgData(inv.Organization)}
	return m
}

// InvoiceLineData is a line as the API and invoice.created show it.
func InvoiceLineData(l InvoiceLine) map[string]any {
	var capped *string
	if l.CappedAmount != nil {
		capped = ptr(formatAmount(*l.CappedAmount, l.Currency))
	}
	return map[string]any{"id": optID(l.ID), "kind": l.Kind, "description": l.Description, "installation": l.InstallationUUID,
		"appId": idStr(l.AppID), "planId": idStr(l.PlanID), "currency": l.Currency, "quantity": l.Quantity, "included": l.Included,
		"unitPrice": formatAmount(l.UnitPrice, l.Currency), "interval": l.Interval, "cappedAmount": capped,
		"amount": formatAmount(l.Amount, l.Currency), "periodStart": l.StartsAt, "periodEnd": l.EndsAt}
}

// optID is an id as a string, or nil for a row not written (an upcoming
// invoice's).
func optID(id int64) any {
	if id == 0 {
		return nil
	}
	return idStr(id)
}
