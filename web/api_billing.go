package web

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/plugboard/plugboard/app/fault"
	"github.com/plugboard/plugboard/marketplace"
)

// Billing: usage records the apps report, the organizations' invoices and
// the upcoming one, and the host's invoices to collect
// (marketplace.Usage and marketplace.Invoices say who may). Amounts are
// decimal strings with the currency's digits, as plans' prices are.

type usageRecordJSON struct {
	ID             string    `json:"id"`
	Installation   string    `json:"installation"`
	Quantity       int64     `json:"quantity"`
	Timestamp      time.Time `json:"timestamp"`
	IdempotencyKey string    `json:"idempotencyKey"`
	PlanID         string    `json:"planId"`
	DateCreated    time.Time `json:"dateCreated"`
}

func toUsageRecordJSON(r marketplace.UsageRecord) usageRecordJSON {
	out := usageRecordJSON{ID: id(r.ID), Quantity: r.Quantity, Timestamp: r.RecordedAt, IdempotencyKey: r.IdempotencyKey,
		PlanID: id(r.PlanID), DateCreated: r.CreatedAt}
	if r.Installation != nil {
		out.Installation = r.Installation.UUID
	}
	return out
}

type usageRecordRequest struct {
	Quantity       *int64  `json:"quantity"`
	Timestamp      *string `json:"timestamp"`
	IdempotencyKey *string `json:"idempotencyKey"`
}

func (s *Server) reportUsage(c echo.Context) error {
	var in usageRecordRequest
	if err := bindJSON(c, &in); err != nil {
		return err
	}
	rec := marketplace.NewUsageRecord{Quantity: in.Quantity}
	if in.IdempotencyKey != nil {
		rec.IdempotencyKey = *in.IdempotencyKey
	}
	if in.Timestamp != nil {
		t, err := time.Parse(time.RFC3339Nano, *in.Timestamp)
		if err != nil {
			return fault.Field("timestamp", `must be an RFC 3339 time such as "2026-11-05T14:00:00Z"`)
		}
		rec.Timestamp = &t
	}
	r, created, err := s.opts.Usage.ReportUsage(c.Request().Context(), actor(c), c.Param("uuid"), rec)
	if err != nil {
		return err
	}
	r.Installation = &marketplace.Installation{UUID: c.Param("uuid")}
	status := http.StatusOK // the same record again
	if created {
		status = http.StatusCreated
	}
	return c.JSON(status, toUsageRecordJSON(*r))
}

func (s *Server) listUsageRecords(c echo.Context) error {
	r, err := s.pageRequest(c)
	if err != nil {
		return err
	}
	p, err := s.opts.Usage.ListUsageRecords(c.Request().Context(), actor(c), c.Param("uuid"), r)
	if err != nil {
		return err
	}
	return writePage(s, c, p, toUsageRecordJSON)
}

type invoiceLineJSON struct {
	ID           *string   `json:"id"`
	Kind         string    `json:"kind"`
	Description  string    `json:"description"`
	Installation string    `json:"installation"`
	AppID        string    `json:"appId"`
	PlanID       string    `json:"planId"`
	Currency     string    `json:"currency"`
	Quantity     int64     `json:"quantity"`
	Included     int64     `json:"included"`
	UnitPrice    string    `json:"unitPrice"`
	Interval     string    `json:"interval"`
	CappedAmount *string   `json:"cappedAmount"`
	Amount       string    `json:"amount"`
	PeriodStart  time.Time `json:"periodStart"`
	PeriodEnd    time.Time `json:"periodEnd"`
}

type invoiceJSON struct {
	ID                *string           `json:"id"`
	Organization      *orgRefJSON       `json:"organization"`
	Period            string            `json:"period"`
	PeriodStart       time.Time         `json:"periodStart"`
	PeriodEnd         time.Time         `json:"periodEnd"`
	Currency          string            `json:"currency"`
	Total             string            `json:"total"`
	Status            string            `json:"status"`
	Lines             []invoiceLineJSON `json:"lines"`
	DateCreated       *time.Time        `json:"dateCreated"`
	DatePaid          *time.Time        `json:"datePaid"`
	DateVoided        *time.Time        `json:"dateVoided"`
	DateUncollectible *time.Time        `json:"dateUncollectible"`
}

// optionalID is an id, or null for a row not written (an upcoming
// invoice's).
func optionalID(n int64) *string {
	if n == 0 {
		return nil
	}
	s := id(n)
	return &s
}

func toInvoiceJSON(inv marketplace.Invoice) invoiceJSON {
	out := invoiceJSON{ID: optionalID(inv.ID), Period: marketplace.FormatPeriod(inv.Period), PeriodStart: inv.Period,
		PeriodEnd: inv.PeriodEnd, Currency: inv.Currency, Total: marketplace.FormatAmount(inv.Total, inv.Currency), Status: inv.Status,
		Lines: make([]invoiceLineJSON, len(inv.Lines)), DatePaid: inv.PaidAt, DateVoided: inv.VoidedAt, DateUncollectible: inv.UncollectibleAt}
	if !inv.CreatedAt.IsZero() {
		out.DateCreated = &inv.CreatedAt
	}
	if o := inv.Organization; o != nil {
		out.Organization = &orgRefJSON{ID: id(o.ID), Slug: o.Slug, Name: o.Name}
	}
	for i, l := range inv.Lines {
		line := invoiceLineJSON{ID: optionalID(l.ID), Kind: l.Kind, Description: l.Description, Installation: l.InstallationUUID,
			AppID: id(l.AppID), PlanID: id(l.PlanID), Currency: l.Currency, Quantity: l.Quantity, Included: l.Included,
			UnitPrice: marketplace.FormatAmount(l.UnitPrice, l.Currency), Interval: l.Interval,
			Amount: marketplace.FormatAmount(l.Amount, l.Currency), PeriodStart: l.StartsAt, PeriodEnd: l.EndsAt}
		if l.CappedAmount != nil {
			capped := marketplace.FormatAmount(*l.CappedAmount, l.Currency)
			line.CappedAmount = &capped
		}
		out.Lines[i] = line
	}
	return out
}

func (s *Server) listOrgInvoices(c echo.Context) error {
	r, err := s.pageRequest(c)
	if err != nil {
		return err
	}
	q := marketplace.InvoiceQuery{Status: c.QueryParam("status")}
	p, err := s.opts.Invoices.ListOrgInvoices(c.Request().Context(), actor(c), c.Param("org"), q, r)
	if err != nil {
		return err
	}
	return writePage(s, c, p, toInvoiceJSON)
}

func (s *Server) getOrgInvoice(c echo.Context) error {
	inv, err := s.opts.Invoices.GetOrgInvoice(c.Request().Context(), actor(c), c.Param("org"), c.Param("invoice_id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toInvoiceJSON(*inv))
}

type upcomingInvoiceJSON struct {
	Period       string        `json:"period"`
	PeriodStart  time.Time     `json:"periodStart"`
	PeriodEnd    time.Time     `json:"periodEnd"`
	DateComputed time.Time     `json:"dateComputed"`
	Invoices     []invoiceJSON `json:"invoices"`
}

func (s *Server) upcomingInvoice(c echo.Context) error {
	u, err := s.opts.Invoices.UpcomingInvoice(c.Request().Context(), actor(c), c.Param("org"))
	if err != nil {
		return err
	}
	out := upcomingInvoiceJSON{Period: marketplace.FormatPeriod(u.Period), PeriodStart: u.Period, PeriodEnd: u.PeriodEnd,
		DateComputed: u.ComputedAt, Invoices: make([]invoiceJSON, len(u.Invoices))}
	for i, inv := range u.Invoices {
		out.Invoices[i] = toInvoiceJSON(inv)
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) listInvoices(c echo.Context) error {
	r, err := s.pageRequest(c)
	if err != nil {
		return err
	}
	p, err := s.opts.Invoices.ListInvoices(c.Request().Context(), actor(c), marketplace.InvoiceQuery{Status: c.QueryParam("status")}, r)
	if err != nil {
		return err
	}
	return writePage(s, c, p, toInvoiceJSON)
}

type invoiceUpdateRequest struct {
	Status *string `json:"status"`
}

func (s *Server) updateInvoice(c echo.Context) error {
	var in invoiceUpdateRequest
	if err := bindJSON(c, &in); err != nil {
		return err
	}
	if in.Status == nil {
		return fault.Field("status", "is required: paid, void or uncollectible")
	}
	inv, err := s.opts.Invoices.UpdateInvoiceStatus(c.Request().Context(), actor(c), c.Param("invoice_id"), *in.Status)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toInvoiceJSON(*inv))
}
