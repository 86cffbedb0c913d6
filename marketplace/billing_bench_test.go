package marketplace_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/plugboard/plugboard/cmd/platform"
	"github.com/plugboard/plugboard/cmd/platform/apptest"
	"github.com/plugboard/plugboard/marketplace"
)

// BenchmarkClosePeriod closes a month for 100,000 installations across
// 20,000 organizations (issue 18: under 60 s), as the scheduled job does:
// organizations close in chunks, each chunk one transaction writing its
// organizations' invoices (USD and JPY), their lines, and an
// invoice.created event with its delivery to a host endpoint per invoice.
// A tenth of the installations changed plan during the month and a tenth
// were uninstalled; the per-unit ones have usage. The data is made with
// bulk SQL; the platform runs without a worker, so the figure (s/close) is
// the close alone. Run:
//
//	go test ./marketplace/ -run '^$' -bench ClosePeriod -benchtime 1x -timeout 30m
//
// (-benchtime 3x closes it three times on one fixture, each logged.)
//
// PLUGBOARD_BENCH_CLOSE_ORGS=2000 runs a smaller one (five installations
// per organization), to profile.
func BenchmarkClosePeriod(b *testing.B) {
	const perOrg, apps = 5, 10
	orgs := 20000
	if s := os.Getenv("PLUGBOARD_BENCH_CLOSE_ORGS"); s != "" { // a smaller run, to profile
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			b.Fatalf("PLUGBOARD_BENCH_CLOSE_ORGS=%q: want a number of organizations", s)
		}
		orgs = n
	}
	setup := time.Now()
	p := apptest.StartRoles(b, platform.Roles{HTTP: true}, apptest.Config(b))
	m, db, ctx := p.App.Marketplace, p.App.DB, b.Context()
	u, err := m.Accounts.SignUp(ctx, marketplace.Anonymous, marketplace.NewUser{Email: "ops@plugboard.example", Password: password, IsOperator: true})
	if err != nil {
		b.Fatal(err)
	}
	op := marketplace.Actor{User: u}
	if _, err := m.Orgs.CreateOrganization(ctx, op, marketplace.NewOrganization{Name: "Partner"}); err != nil {
		b.Fatal(err)
	}
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	b.Cleanup(sink.Close)
	if _, err := m.HostEndpoints.CreateHostEndpoint(ctx, op, marketplace.HostEndpointFields{URL: ptr(sink.URL),
		EventTypes: ptr([]string{marketplace.EventInvoiceCreated})}); err != nil {
		b.Fatal(err)
	}
	// The plans exist a month before the one closed, so their first
	// prices are in force for it.
	for i := range apps {
		app, err := m.Apps.CreateApp(ctx, op, "partner", appFields(fmt.Sprintf("Bench %d", i)))
		if err != nil {
			b.Fatal(err)
		}
		code := []string{"USD", "JPY"}[i%2]
		price := map[string]string{"USD": "19.99", "JPY": "2000"}[code]
		unit := map[string]string{"USD": "0.02", "JPY": "3"}[code]
		for _, f := range []marketplace.PlanFields{
			{Name: ptr("Flat"), Price: ptr(price), Currency: ptr(code), TrialDays: ptr(7)},
			{Name: ptr("Metered"), PricingModel: ptr(marketplace.PricingPerUnit), UnitPrice: ptr(unit), UnitName: ptr("call"),
				Currency: ptr(code), IncludedUnits: ptr(int64(50))},
		} {
			if _, err := m.Apps.CreatePlan(ctx, op, app.Slug, f); err != nil {
				b.Fatal(err)
			}
		}
	}
	month := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	for _, q := range []string{
		`UPDATE plan_prices SET effective_from = '2026-09-01T00:00:00Z'`,
		`INSERT INTO organizations (slug, name, created_at, updated_at)
		 SELECT 'bench-' || g, 'Bench ' || g, now(), now() FROM generate_series(1, ` + fmt.Sprint(orgs) + `) g`,
		// Each organization installs five of the ten apps, each on one of
		// its two plans, at instants spread from mid-September to the end
		// of October: spread by a hash of the row, the same each run (a
		// random() there was evaluated once, so every installation started
		// at one instant, a different one each run: some runs had every
		// flat installation in its trial and no USD invoice). Each is
		// the organization's first of its app, so a plan with trial days
		// starts a trial: the fixture writes trial_ends_at as the trigger
		// would, which spares the trigger's look-up of earlier
		// installations — a scan of the app's, for each of 100,000 rows
		// (minutes of setup).
		`INSERT INTO installations (uuid, app_id, organization_id, plan_id, status, scopes, created_at, updated_at, trial_ends_at)
		 SELECT gen_random_uuid(), a.id, o.id, p.id, 'installed', '[]', t, t,
		        CASE WHEN p.trial_days > 0 THEN t + p.trial_days * interval '24 hours' END
		 FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM organizations WHERE slug LIKE 'bench-%') o
		 CROSS JOIN generate_series(0, ` + fmt.Sprint(perOrg-1) + `) k
		 JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM apps) a ON a.n = (o.n + k) % ` + fmt.Sprint(apps) + `
		 JOIN LATERAL (SELECT id, trial_days FROM plans WHERE app_id = a.id ORDER BY id OFFSET (o.n / 10 + k) % 2 LIMIT 1) p ON true
		 CROSS JOIN LATERAL (SELECT timestamptz '2026-09-15T00:00:00Z' + ((o.n * 7919 + k * 104729) % 3888000) * interval '1 second' AS t) ts`,
		// A tenth change plan during October, a tenth are uninstalled.
		`UPDATE installations SET plan_id = (SELECT id FROM plans WHERE app_id = installations.app_id AND id <> installations.plan_id LIMIT 1),
		   updated_at = greatest(created_at, timestamptz '2026-10-01T00:00:00Z') + interval '3 days'
		 WHERE id % 10 = 3 AND created_at < '2026-10-25'`,
		`UPDATE installations SET status = 'deleted', deleted_at = greatest(updated_at, timestamptz '2026-10-01T00:00:00Z') + interval '5 days',
		   updated_at = greatest(updated_at, timestamptz '2026-10-01T00:00:00Z') + interval '5 days'
		 WHERE id % 10 = 7 AND created_at < '2026-10-25'`,
		// Two usage records for every installation on a metered plan.
		`INSERT INTO usage_records (installation_id, organization_id, app_id, plan_id, quantity, recorded_at, idempotency_key)
		 SELECT i.installation_id, i.organization_id, i.app_id, i.plan_id, (random() * 500)::int,
		        greatest(i.started_at, timestamptz '2026-10-01T00:00:00Z') + interval '1 hour', 'k' || k
		 FROM installation_plan_intervals i JOIN plans p ON p.id = i.plan_id AND p.pricing_model = 'per_unit'
		 CROSS JOIN generate_series(1, 2) k WHERE i.started_at < '2026-10-31'`,
		`ANALYZE`,
	} {
		if err := db.Exec(q).Error; err != nil {
			b.Fatalf("%s: %v", q, err)
		}
	}
	var n int64
	db.Raw(`SELECT count(*) FROM installations`).Scan(&n)
	if n != int64(orgs*perOrg) {
		b.Fatalf("%d installations, want %d", n, orgs*perOrg)
	}
	b.Logf("setup: %s", time.Since(setup))
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		for _, q := range []string{`DELETE FROM invoices`, `DELETE FROM billing_closes`, `DELETE FROM billing_periods`,
			`DELETE FROM deliveries WHERE event_type = 'invoice.created'`, `DELETE FROM events WHERE type = 'invoice.created'`} {
			if err := db.Exec(q).Error; err != nil {
				b.Fatal(err)
			}
		}
		// A close after another starts from tables as clean as the first.
		if err := db.Exec(`VACUUM ANALYZE invoices, invoice_lines, billing_closes, events, deliveries, delivery_queue`).Error; err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		rep, err := m.Billing.ClosePeriod(ctx, month)
		if err != nil {
			b.Fatal(err)
		}
		took := time.Since(start)
		b.ReportMetric(took.Seconds(), "s/close") // the last close's, with -benchtime Nx
		b.Logf("closed %d organizations, %d invoices in %s", rep.Organizations, rep.Invoices, took.Round(time.Millisecond))
		// Nearly every organization has a USD and a JPY invoice (five
		// apps of ten, alternating currencies), but those whose flat
		// installations were all in their trial.
		if rep.Organizations != orgs || rep.Invoices < orgs*3/2 {
			b.Fatalf("closed %+v, want %d organizations and about two invoices each", rep, orgs)
		}
	}
}
