package web_test

import (
	"testing"

	"github.com/chromedp/chromedp"
)

// In a browser: the consent says what the plan with a trial costs and
// that it starts free, the admin installs it, and the Billing page shows
// its line in the upcoming invoice.
func TestBrowserBillingJourney(t *testing.T) {
	w := uiBillingWorld(t)
	b := newTab(t, w.p.URL)
	signInTab(b, "admin@customer.example")

	b.open("/marketplace/flow-app")
	b.see("Pricing", "30.00 USD / month", "14-day free trial", "0.02 USD per API call", "At most 50.00 USD a month")
	b.click(`main a[href="/marketplace/flow-app/install"]`)
	b.at("/marketplace/flow-app/install")
	b.see("Trial", "30.00 USD / month", "14-day free trial", "1,000 API calls included each month")
	b.click("#f-plan-trial")
	b.run(chromedp.WaitVisible(`#f-plan-trial:checked`, chromedp.ByQuery))
	b.press("Approve and install")
	b.at(w.partner.srv.URL + "/setup")
	b.see("set-up page")

	b.open("/orgs/customer/installations")
	b.click(`nav.mainnav a[href="/orgs/customer/billing"]`)
	b.at("/orgs/customer/billing")
	// The trial is free; what is left of the month after it is billed.
	b.see("Upcoming invoice", "Flow App — Trial", "USD", "No invoices yet")
	var text string
	b.run(chromedp.Text(`#upcoming [data-line]`, &text, chromedp.ByQuery))
	if text == "" {
		t.Fatal("no upcoming line")
	}
	t.Logf("upcoming line: %s", text)
}
