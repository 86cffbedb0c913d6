package web

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/plugboard/plugboard/app/fault"
	"github.com/plugboard/plugboard/marketplace"
)

// Billing: usage records the apps report, the organizations' invoices and
// the upcoming one, and the host's invoices to collect. Who may is
// marketplace.Usage's and marketplace.Invoices' to say; the wire types are
// in model.go.

type usageRecordRequest struct {
	Quantity       *int64  `json:"quantity"`
	Timestamp      *string `json:"timestamp"`
	IdempotencyKey *string `json:"idempotencyKey"`
}

// reportUsage answers 201 with a new record, 200 with the one kept under
// the same idempotencyKey.
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
	status := http.StatusOK
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

func (s *Server) upcomingInvoice(c echo.Context) error {
	u, err := s.opts.Invoices.UpcomingInvoice(c.Request().Context(), actor(c), c.Param("org"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toUpcomingInvoiceJSON(u))
}

func (s *Server) listInvoices(c echo.Context) error {
	r, err := s.pageRequest(c)
	if err != nil {
		return err
	}
	q := marketplace.InvoiceQuery{Status: c.QueryParam("status")}
	p, err := s.opts.Invoices.ListInvoices(c.Request().Context(), actor(c), q, r)
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
