package web_test

import (
	"encoding/csv"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/plugboard/plugboard/marketplace"
)

// The Revenue tab shows MRR and installations as server-rendered SVG,
// revenue by plan, churn and trial conversion, and the payout statements
// with their CSV; outsiders do not find it.
func TestRevenuePages(t *testing.T) {
	w := newRevenueWorld(t)
	dev := uiSignIn(t, w.p, "member@acme.example")
	month := marketplace.FormatPeriod(w.thisMonth)
	pg := dev.get("/apps/acme-metrics/revenue").ok(200, `aria-current="page">Revenue`, `aria-current="page">Last 12 months`,
		`<svg class="chart"`, "Monthly recurring revenue", `id="mrr-now">40.00 USD`, `id="revenue-by-plan"`, "<td>Pro</td><td>USD</td><td class=\"num\">30.00</td>",
		`id="churn-table"`, `id="payouts"`, "/apps/acme-metrics/payouts/"+month+".csv", ">24.00<", "20.00%")
	if main := pg.Body[strings.Index(pg.Body, "<main"):]; strings.Contains(main, "<script") {
		t.Error("the revenue page runs script; its charts are SVG")
	}
	for _, r := range []string{"12w", "30d"} {
		dev.get("/apps/acme-metrics/revenue?range="+r).ok(200, `<svg class="chart"`, `aria-current="page">Last `)
	}
	dev.get("/apps/acme-metrics/revenue?range=5y").ok(400)

	// The CSV: one row per paid line and a total per statement.
	req, _ := http.NewRequest(http.MethodGet, dev.base+"/apps/acme-metrics/payouts/"+month+".csv", nil)
	res, err := dev.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/csv") || !strings.Contains(res.Header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("csv: %d %v", res.StatusCode, res.Header)
	}
	rows, err := csv.NewReader(res.Body).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 || rows[0][0] != "statement" || rows[1][5] != "globex" || rows[1][7] != "Pro" || rows[1][12] != "30.00" || rows[1][13] != "6.00" || rows[1][14] != "24.00" || rows[2][7] != "Total" {
		t.Errorf("csv rows %q", rows)
	}
	dev.get("/apps/acme-metrics/payouts/" + month + ".txt").ok(404)
	dev.get("/apps/acme-metrics/payouts/never.csv").ok(404)

	outsider := uiSignIn(t, w.p, "outsider@example.com")
	outsider.get("/apps/acme-metrics/revenue").ok(404)
	outsider.get("/apps/acme-metrics/payouts/" + month + ".csv").ok(404)
}

// Operators see the platform's revenue by app and month, and set an app's
// commission with the form; a bad rate is shown beside its field and
// changes nothing; everyone else does not find the page.
func TestAdminRevenuePage(t *testing.T) {
	w := newRevenueWorld(t)
	month := marketplace.FormatPeriod(w.thisMonth)
	op := uiSignIn(t, w.p, "ops@plugboard.example")
	op.get("/admin/revenue").ok(200, `aria-current="page">Revenue`, `id="platform-totals"`, "<td>"+month+"</td><td>USD</td><td class=\"num\">1</td><td class=\"num\">30.00</td><td class=\"num\"><strong>6.00</strong>",
		`id="platform-by-app"`, "Acme Metrics", "Set an app's commission")
	pg := op.post("/admin/revenue/commission", url.Values{"app": {"acme-metrics"}, "commission": {"120"}}).ok(400)
	if msg := pg.fieldError("commission"); !strings.Contains(msg, "100") {
		t.Errorf("commission error %q", msg)
	}
	op.post("/admin/revenue/commission", url.Values{"app": {"no-such-app"}, "commission": {"10"}}).ok(400).fieldError("app")
	if n := count(t, w.p, "app_commissions"); n != 0 {
		t.Errorf("refused forms wrote %d commissions", n)
	}
	op.post("/admin/revenue/commission", url.Values{"app": {"acme-metrics"}, "commission": {"12.5"}}).ok(200, "acme-metrics now pays 12.50% commission", `id="commissions"`, "12.50%")
	op.post("/admin/revenue/commission", url.Values{"app": {"acme-metrics"}, "commission": {""}}).ok(200, "now pays 20.00% commission, the platform&#39;s default")
	// Statements already paid keep the rate they were paid at.
	op.get("/admin/revenue").ok(200, "<strong>6.00</strong>")

	dev := uiSignIn(t, w.p, "owner@acme.example")
	dev.get("/admin/revenue").ok(404)
	dev.post("/admin/revenue/commission", url.Values{"app": {"acme-metrics"}, "commission": {"0"}}).ok(404)
}
