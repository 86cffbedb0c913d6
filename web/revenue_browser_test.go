package web_test

import (
	"testing"

	"github.com/chromedp/chromedp"
)

// In a browser: the partner opens the Revenue tab from the app's tabs and
// sees MRR drawn as SVG and the payout statement; the operator sets the
// app's commission with the form on the operators' revenue page, and the
// partner's tab then shows the new rate while the paid statement keeps
// its commission.
func TestBrowserRevenue(t *testing.T) {
	w := newRevenueWorld(t)
	dev := newTab(t, w.p.URL)
	signInTab(dev, "owner@acme.example")
	dev.open("/apps/acme-metrics/")
	dev.press("Revenue")
	dev.at("/apps/acme-metrics/revenue")
	dev.see("Monthly recurring revenue", "40.00 USD", "Revenue by plan", "Payout statements", "24.00", "commission of 20.00%")
	var charts int
	dev.run(chromedp.Evaluate(`document.querySelectorAll("main svg.chart path").length`, &charts))
	if charts == 0 {
		t.Error("the Revenue tab draws no chart lines")
	}

	ops := newTab(t, w.p.URL)
	signInTab(ops, "ops@plugboard.example")
	ops.open("/admin/")
	ops.press("Revenue")
	ops.at("/admin/revenue")
	ops.see("Platform revenue", "Acme Metrics", "6.00")
	ops.fill("#f-app", "acme-metrics")
	ops.fill("#f-commission", "140")
	ops.press("Set commission")
	ops.see("must be at most")
	ops.fill("#f-commission", "15")
	ops.press("Set commission")
	ops.see("acme-metrics now pays 15.00% commission")

	dev.open("/apps/acme-metrics/revenue")
	dev.see("commission of 15.00%", "6.00", "24.00")
}
