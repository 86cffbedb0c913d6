package web

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/plugboard/plugboard/marketplace"
)

// The customer's side of billing in the UI: the organization's Billing
// page (the upcoming invoice as it stands, past invoices), one invoice,
// and the words every page uses for a plan's price, trial and units.

// orgBillingData is the Billing page.
type orgBillingData struct {
	Org   *marketplace.OrgAccess
	Page  *marketplace.BillingPage
	Query url.Values
}

func (s *Server) orgBillingPage(c echo.Context) error {
	r, err := s.pageRequest(c)
	if err != nil {
		return err
	}
	pg, err := s.opts.Invoices.BillingPage(c.Request().Context(), actor(c), c.Param("org"), r)
	if err != nil {
		return err
	}
	s.rememberOrg(c, pg.Org.Org.Slug)
	v := s.newView(c, "Billing · "+pg.Org.Org.Name)
	v.Section = "billing"
	v.Data = orgBillingData{Org: pg.Org, Page: pg, Query: c.QueryParams()}
	return s.render(c, http.StatusOK, "org_billing", v)
}

// orgInvoiceData is one invoice's page.
type orgInvoiceData struct {
	Org  *marketplace.OrgAccess
	Page *marketplace.InvoicePage
}

func (s *Server) orgInvoicePage(c echo.Context) error {
	pg, err := s.opts.Invoices.InvoicePage(c.Request().Context(), actor(c), c.Param("org"), c.Param("id"))
	if err != nil {
		return err
	}
	s.rememberOrg(c, pg.Org.Org.Slug)
	inv := pg.Invoice
	v := s.newView(c, "Invoice "+marketplace.FormatPeriod(inv.Period)+" "+inv.Currency+" · "+pg.Org.Org.Name)
	v.Section = "billing"
	v.Data = orgInvoiceData{Org: pg.Org, Page: pg}
	return s.render(c, http.StatusOK, "org_invoice", v)
}

// planTerms are the words for what a plan costs, as the consent, the
// listing and the plan change show them.
type planTerms struct {
	Price    string // "45.00 USD / month", "0.02 USD per API call", "Free"
	Included string // per_unit: "1,000 API calls included each month"
	Cap      string // per_unit: "At most 50.00 USD a month"
	Trial    string // "14-day free trial"
}

// billingFuncs are the templates' billing words.
var billingFuncs = map[string]any{
	"planTerms": termsOf,
	// amountIn is minor units with the currency: "45.00 USD" (amount,
	// in ui.go, is the bare "45.00" of the revenue tables).
	"amountIn": func(minor int64, code string) string { return marketplace.FormatAmount(minor, code) + " " + code },
	// monthOf names a period: "December 2026".
	"monthOf": func(t time.Time) string { return t.UTC().Format("January 2006") },
	// day is a date: "14 Dec 2026".
	"day": func(t any) string {
		tt, ok := timeOf(t)
		if !ok {
			return "—"
		}
		return tt.UTC().Format("2 Jan 2006")
	},
	// lastDay is the day of the last second before t: a line's end,
	// which is exclusive.
	"lastDay":     func(t time.Time) string { return t.Add(-time.Second).UTC().Format("2 Jan 2006") },
	"lineDetail":  lineDetail,
	"invoiceTone": invoiceTone,
	"unitName": func(names map[int64]string, l marketplace.InvoiceLine) string {
		if n := names[l.PlanPriceID]; n != "" {
			return n
		}
		return "unit"
	},
	"count": func(n int64) string { return thousands(n) },
}

// termsOf words plan p's pricing.
func termsOf(p marketplace.Plan) planTerms {
	var t planTerms
	cur := strings.ToUpper(p.Currency)
	switch {
	case p.PricingModel == marketplace.PricingPerUnit:
		unit := p.UnitName
		if unit == "" {
			unit = "unit"
		}
		price := "?"
		if p.UnitPrice != nil {
			price = *p.UnitPrice
		}
		t.Price = fmt.Sprintf("%s %s per %s", price, cur, unit)
		if p.IncludedUnits > 0 {
			t.Included = fmt.Sprintf("%s %s included each month", thousands(p.IncludedUnits), unitWord(p.IncludedUnits, unit))
		} else {
			t.Included = "Billed monthly for what you use"
		}
		if p.CappedAmount != nil {
			t.Cap = fmt.Sprintf("At most %s %s a month", *p.CappedAmount, cur)
		}
	case p.IsFree():
		t.Price = "Free"
	default:
		t.Price = fmt.Sprintf("%s %s / %s", p.Price, cur, p.Interval)
	}
	if p.TrialDays > 0 && !p.IsFree() {
		t.Trial = fmt.Sprintf("%d-day free trial", p.TrialDays)
	}
	return t
}

// lineDetail words what a line charges for: "15 days of 30 at 10.00 USD
// / month", "1,200 API calls, 1,000 included, at 0.02 USD each, at most
// 50.00 USD".
func lineDetail(l marketplace.InvoiceLine, unit string) string {
	cur := l.Currency
	if l.Kind == marketplace.LineUsage {
		s := fmt.Sprintf("%s %s", thousands(l.Quantity), unitWord(l.Quantity, unit))
		if l.Included > 0 {
			s += fmt.Sprintf(", %s included", thousands(l.Included))
		}
		s += fmt.Sprintf(", at %s %s each", marketplace.FormatAmount(l.UnitPrice, cur), cur)
		if l.CappedAmount != nil {
			s += fmt.Sprintf(", at most %s %s", marketplace.FormatAmount(*l.CappedAmount, cur), cur)
		}
		return s
	}
	s := fmt.Sprintf("%s of %s at %s %s / %s", span(l.Quantity), span(l.Included), marketplace.FormatAmount(l.UnitPrice, cur), cur, l.Interval)
	if l.Interval == "year" {
		s += " (a twelfth a month)"
	}
	return s
}

// span words seconds as days, hours and minutes: "12 days 4 h 5 min".
func span(sec int64) string {
	d, h, m := sec/86400, sec%86400/3600, sec%3600/60
	var parts []string
	if d > 0 {
		parts = append(parts, fmt.Sprintf("%d %s", d, unitWord(d, "day")))
	}
	if h > 0 {
		parts = append(parts, fmt.Sprintf("%d h", h))
	}
	if m > 0 || len(parts) == 0 {
		parts = append(parts, fmt.Sprintf("%d min", m))
	}
	return strings.Join(parts, " ")
}

// unitWord is word, with an s unless n is 1.
func unitWord(n int64, word string) string {
	if n == 1 || strings.HasSuffix(word, "s") {
		return word
	}
	return word + "s"
}

// thousands writes n with commas: 1200 → "1,200".
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// invoiceTone is the badge colour of an invoice status.
func invoiceTone(status string) string {
	switch status {
	case marketplace.InvoicePaid:
		return "good"
	case marketplace.InvoiceOpen:
		return "wait"
	case marketplace.InvoiceUncollectible:
		return "bad"
	}
	return "plain"
}

// quoteNote is what the plan change to plan costs for the rest of the
// month, as the page quoted it before the change, for the flash message.
func quoteNote(pg *marketplace.InstallationPage, plan string) string {
	for _, p := range pg.Plans {
		if p.Slug != plan {
			continue
		}
		q, ok := pg.Quotes[p.ID]
		if !ok || q.Price.PricingModel != marketplace.PricingFlat {
			return ""
		}
		month := q.From.Format("January")
		if q.InTrial() {
			return " " + p.Name + " is free for the rest of " + month + ": the trial runs until " + q.TrialEndsAt.Format("2 Jan 2006") + "."
		}
		return " " + p.Name + " costs " + q.AmountText() + " " + q.Price.Currency + " for the rest of " + month + "."
	}
	return ""
}
