package web_test

import (
	"math/big"
	"net/url"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/plugboard/plugboard/app/testenv"
	"github.com/plugboard/plugboard/cmd/platform"
	"github.com/plugboard/plugboard/cmd/platform/apptest"
	"github.com/plugboard/plugboard/marketplace"
	"github.com/plugboard/plugboard/sdk/plugboard"
)

// TestBillingJourney is #18's end to end, over HTTP on a platform whose
// marketplace runs on a clock the test moves: a partner sets up a flat
// plan with a trial and a per-unit plan; an organization installs both;
// the app reports usage (one key twice); the trial ends; the scheduled
// jobs (enqueued as the scheduler does) warn the partner and close the
// month; the host receives invoice.created, verified with the Standard
// Webhooks library, and marks it paid; the partner's revenue and payout
// reflect it, and the organization's admin sees the invoice paid.
func TestBillingJourney(t *testing.T) {
	now := time.Now().UTC()
	month := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(0, -1, 0) // the month the test lives through
	next := month.AddDate(0, 1, 0)
	clock := testenv.NewClock(month.Add(24*time.Hour + 9*time.Hour))
	cfg := apptest.Config(t, fastRetries)
	p := apptest.StartWith(t, platform.AllRoles, cfg, apptest.Logger(t), platform.WithClock(clock.Now))
	jobs := asynqClient(t, cfg.RedisURL)

	op := operator(t, p, "ops@plugboard.example")
	host := newClient(t, p, decode[plugboard.ServiceToken](t, op.do("POST", "/api/0/service-tokens/", map[string]any{"name": "Host"}), 201).Token)
	hostSink := newSink(t)
	ep := newHostEndpoint(t, op, hostSink, "invoice.created")

	// The partner: Pager (Pro, 45.00 USD a month, 14-day trial) and Meter
	// (0.02 USD an API call, 100 included, capped at 10.00).
	partnerSink := newSink(t)
	partner := signUp(t, p, "dev@partner.example")
	partner.do("POST", "/api/0/organizations/", map[string]string{"name": "Partner"}).ok(t, 201, nil)
	apps := map[string]plugboard.App{}
	for _, name := range []string{"Pager", "Meter"} {
		body := publicApp(name)
		body["webhookUrl"] = partnerSink.srv.URL + "/" + name
		body["events"] = []string{"installation.created", "installation.trial_will_end"}
		apps[name] = decode[plugboard.App](t, partner.do("POST", "/api/0/organizations/partner/apps/", body), 201)
	}
	partner.do("POST", "/api/0/apps/pager/plans/", map[string]any{"name": "Pro", "price": "45.00", "currency": "USD", "trialDays": 14}).ok(t, 201, nil)
	partner.do("POST", "/api/0/apps/meter/plans/", map[string]any{"name": "Metered", "pricingModel": "per_unit", "currency": "USD",
		"unitPrice": "0.02", "unitName": "API call", "includedUnits": 100, "cappedAmount": "10.00"}).ok(t, 201, nil)
	for _, slug := range []string{"pager", "meter"} {
		partner.do("POST", "/api/0/apps/"+slug+"/publish-requests/", nil).ok(t, 201, nil)
		op.do("PUT", "/api/0/apps/"+slug+"/", map[string]any{"status": "published"}).ok(t, 200, nil)
	}

	// Globex installs both.
	globex := signUp(t, p, "admin@globex.example")
	globex.do("POST", "/api/0/organizations/", map[string]string{"name": "Globex"}).ok(t, 201, nil)
	pager := decode[plugboard.Installation](t, globex.do("POST", "/api/0/organizations/globex/installations/", map[string]any{"app": "pager", "plan": "pro"}), 201)
	meter := decode[plugboard.Installation](t, globex.do("POST", "/api/0/organizations/globex/installations/", map[string]any{"app": "meter", "plan": "metered"}), 201)
	installed := clock.Now()

	// Meter reports 350 calls, the same record again (a retry), and 50
	// more: 400 calls, 300 beyond the included 100.
	meterApp := newClient(t, p, "")
	meterApp.http.Transport = basicAuth{apps["Meter"].ClientID, apps["Meter"].ClientSecret}
	usage := "/api/0/installations/" + meter.UUID + "/usage-records/"
	clock.Advance(3 * 24 * time.Hour)
	first := decode[usageRecord](t, meterApp.do("POST", usage, usageBody(350, "sync-1")), 201)
	if again := decode[usageRecord](t, meterApp.do("POST", usage, usageBody(350, "sync-1")), 200); again.ID != first.ID {
		t.Errorf("the replay answered record %s, want %s", again.ID, first.ID)
	}
	clock.Advance(24 * time.Hour)
	meterApp.do("POST", usage, usageBody(50, "sync-2")).ok(t, 201, nil)

	// Two days before Pro's trial ends, the job warns Pager.
	trialEnds := installed.Add(14 * 24 * time.Hour)
	clock.Advance(trialEnds.Add(-2 * 24 * time.Hour).Sub(clock.Now()))
	enqueue(t, jobs, marketplace.TypeBillingTrialWillEnd)
	warned := partnerSink.waitEvent(t, "installation.trial_will_end", 15*time.Second)
	verify(t, apps["Pager"].WebhookSecret, warned)

	// The month ends; past its grace hour the close job writes the invoice.
	clock.Advance(next.Add(90 * time.Minute).Sub(clock.Now()))
	enqueue(t, jobs, marketplace.TypeBillingClose)
	var created invoice
	hostEvent(t, hostSink, ep.Secret, "invoice.created", &struct {
		Invoice      *invoice `json:"invoice"`
		Organization orgRef   `json:"organization"`
	}{Invoice: &created})

	// What the invoice must say, computed here: Pro from the trial's end
	// to the month's end, prorated by the second and rounded half to even;
	// the calls beyond the included ones at 0.02.
	pro := prorateHalfEven(4500, int64(next.Sub(trialEnds)/time.Second), int64(next.Sub(month)/time.Second))
	want := map[string]int64{pager.UUID: pro, meter.UUID: (400 - 100) * 2}
	if created.ID == nil || created.Currency != "USD" || created.Status != "open" || created.Period != marketplace.FormatPeriod(month) ||
		created.Total != cents(pro+600) || len(created.Lines) != 2 {
		t.Fatalf("invoice.created %+v, want one open USD invoice of %s with 2 lines", created, cents(pro+600))
	}
	for _, l := range created.Lines {
		if l.Amount != cents(want[l.Installation]) {
			t.Errorf("line for %s: %s, want %s", l.Installation, l.Amount, cents(want[l.Installation]))
		}
	}

	// The host collects it and says so.
	open := decode[[]invoice](t, host.do("GET", "/api/0/invoices/?status=open", nil), 200)
	if len(open) != 1 || *open[0].ID != *created.ID {
		t.Fatalf("the host's open invoices %+v", open)
	}
	clock.Advance(time.Hour)
	paid := decode[invoice](t, host.do("PUT", "/api/0/invoices/"+*created.ID+"/", map[string]any{"status": "paid"}), 200)
	if paid.Status != "paid" || paid.DatePaid == nil {
		t.Fatalf("marked paid: %+v", paid)
	}
	// A month went by on the clock: the people sign in again.
	globex, partner = signIn(t, p, "admin@globex.example"), signIn(t, p, "dev@partner.example")
	if mine := decode[[]invoice](t, globex.do("GET", "/api/0/organizations/globex/invoices/", nil), 200); len(mine) != 1 || mine[0].Status != "paid" {
		t.Errorf("Globex's invoices %+v", mine)
	}

	// The partner's revenue: Pro billed, its trial converted; Meter's
	// payout is 6.00 less the 20 % commission.
	q := url.Values{"since": {month.Format(time.RFC3339)}, "until": {next.AddDate(0, 1, 0).Format(time.RFC3339)}, "resolution": {"month"}}
	rev := loose[revenueJSON](t, partner.do("GET", "/api/0/apps/pager/revenue/?"+q.Encode(), nil), 200)
	if len(rev.Billed) != 1 || rev.Billed[0].Amount != cents(pro) || rev.TrialsStarted != 1 || rev.TrialsConverted != 1 || rev.NewInstallations != 1 {
		t.Errorf("Pager's revenue %+v", rev)
	}
	for app, gross := range map[string]int64{"pager": pro, "meter": 600} {
		commission := prorateHalfEven(gross, 20, 100)
		pay := loose[payoutsJSON](t, partner.do("GET", "/api/0/apps/"+app+"/payouts/", nil), 200)
		if len(pay) != 1 || pay[0].Gross != cents(gross) || pay[0].Commission != cents(commission) || pay[0].Net != cents(gross-commission) {
			t.Errorf("%s's payouts %+v, want gross %s, commission %s", app, pay, cents(gross), cents(commission))
		}
	}
}

// prorateHalfEven is amount × part / whole rounded half to even, with
// math/big: the reference the invoice's own arithmetic must agree with.
func prorateHalfEven(amount, part, whole int64) int64 {
	r := new(big.Rat).SetFrac(new(big.Int).Mul(big.NewInt(amount), big.NewInt(part)), big.NewInt(whole))
	q, m := new(big.Int).QuoRem(r.Num(), r.Denom(), new(big.Int))
	twice := new(big.Int).Mul(m, big.NewInt(2))
	if c := twice.Cmp(r.Denom()); c > 0 || (c == 0 && q.Bit(0) == 1) {
		q.Add(q, big.NewInt(1))
	}
	return q.Int64()
}

// cents writes a USD amount the way the API does.
func cents(minor int64) string {
	return new(big.Rat).SetFrac64(minor, 100).FloatString(2)
}

func asynqClient(t *testing.T, redisURL string) *asynq.Client {
	t.Helper()
	opt, err := asynq.ParseRedisURI(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	c := asynq.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}

// enqueue runs one of billing's scheduled jobs now, as the scheduler
// would at its next tick.
func enqueue(t *testing.T, c *asynq.Client, typ string) {
	t.Helper()
	if _, err := c.Enqueue(marketplace.NewBillingTask(typ)); err != nil {
		t.Fatalf("enqueueing %s: %v", typ, err)
	}
}
