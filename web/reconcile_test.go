package web_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/plugboard/plugboard/cmd/platform/apptest"
	"github.com/plugboard/plugboard/config"
	"github.com/plugboard/plugboard/marketplace"
	"github.com/plugboard/plugboard/sdk/plugboard"
)

func fastReconcile(c *config.Config) {
	c.ReconcileInterval = time.Second
	c.InstallVerifyTimeout = time.Second
}

// reconWorld is a hooks world whose app verifies installs (optional) and
// whose partner answers a sync URL.
func reconWorld(t *testing.T, verify bool, opts ...apptest.Option) *hooks {
	t.Helper()
	h := &hooks{sink: newSink(t)}
	h.p = apptest.Start(t, append([]apptest.Option{fastRetries, fastReconcile}, opts...)...)
	setupApp(t, h)
	if verify {
		h.dev.do("PUT", "/api/0/apps/hook-app/", map[string]any{"verifyInstall": true}).ok(t, 200, nil)
	}
	return h
}

// eventsFor returns the lifecycle webhooks the sink got for an installation.
func eventsFor(h *hooks, inst string) []hit {
	var out []hit
	for _, x := range h.sink.all() {
		if strings.Contains(string(x.Body), inst) {
			out = append(out, x)
		}
	}
	return out
}

func waitInstallation(t *testing.T, h *hooks, inst string, cond func(plugboard.Installation) bool) plugboard.Installation {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := getInstallation(t, h.admin, inst)
		if cond(got) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("installation never reached the state: %+v", got)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func appRuns(t *testing.T, h *hooks, job string) []plugboard.ReconciliationRun {
	return decode[[]plugboard.ReconciliationRun](t, h.dev.do("GET", "/api/0/apps/hook-app/reconciliation-runs/?job="+job, nil), 200)
}

func findingsOf(runs []plugboard.ReconciliationRun, reason string) int {
	n := 0
	for _, r := range runs {
		for _, f := range r.Findings {
			if f.Reason == reason {
				n++
			}
		}
	}
	return n
}

// install installs the hook app in the customer organization.
func (h *hooks) install(t *testing.T) plugboard.Installation {
	t.Helper()
	return decode[plugboard.Installation](t, h.admin.do("POST", "/api/0/organizations/customer/installations/", map[string]any{"app": "hook-app", "plan": "free"}), 201)
}

func TestVerificationDeadlineFailsPendingInstalls(t *testing.T) {
	h := reconWorld(t, true)
	inst := h.install(t)
	uuid := inst.UUID
	code, _ := url.Parse(inst.RedirectURL)
	failed := waitInstallation(t, h, uuid, func(i plugboard.Installation) bool { return i.Status == plugboard.StatusFailed })
	if failed.StatusReason != "verification_timeout" {
		t.Errorf("reason %q", failed.StatusReason)
	}
	// The partner is told, with the reason, signed.
	deadline := time.Now().Add(10 * time.Second)
	var deleted *hit
	for deleted == nil && time.Now().Before(deadline) {
		for _, x := range eventsFor(h, uuid) {
			if x.Header.Get("Plugboard-Event") == "installation.deleted" {
				deleted = &x
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if deleted == nil || !strings.Contains(string(deleted.Body), "verification_timeout") {
		t.Fatalf("installation.deleted with the reason never arrived: %v", deleted)
	}
	verify(t, h.secret, *deleted)
	// The grant is revoked.
	cfg := &oauth2.Config{ClientID: h.clientID, ClientSecret: h.app.ClientSecret, Endpoint: oauth2.Endpoint{TokenURL: h.p.URL + "/oauth/token"}}
	if _, err := cfg.Exchange(context.Background(), code.Query().Get("code")); oauthErrorCode(err) != "invalid_grant" {
		t.Errorf("exchange after timeout: %v", err)
	}
	if findingsOf(appRuns(t, h, "verification_deadline"), "verification_timeout") != 1 {
		t.Errorf("runs %v", appRuns(t, h, "verification_deadline"))
	}
	// The organization can try again.
	h.admin.do("POST", "/api/0/organizations/customer/installations/", map[string]any{"app": "hook-app", "plan": "free"}).ok(t, 201, nil)
}

func TestUnexchangedGrantGoesOutOfSyncUntilExchanged(t *testing.T) {
	h := reconWorld(t, false, func(c *config.Config) { c.GrantTTL = 3 * time.Second })
	uuid := h.install(t).UUID
	waitInstallation(t, h, uuid, func(i plugboard.Installation) bool {
		return i.SyncState == plugboard.OutOfSync && i.SyncReason == plugboard.SyncReasonNeverExchanged && i.SyncCheckedAt != nil
	})
	basic := newClient(t, h.p, "")
	basic.http.Transport = basicAuth{h.clientID, h.app.ClientSecret}
	if broken := decode[[]plugboard.Installation](t, basic.do("GET", "/api/0/apps/hook-app/installations/?syncState=out_of_sync", nil), 200); len(broken) != 1 || broken[0].UUID != uuid {
		t.Fatalf("out of sync list %+v", broken)
	}
	// The partner asks for a fresh code: installation.created comes again.
	before := len(eventsFor(h, uuid))
	g := decode[plugboard.Grant](t, basic.do("POST", "/api/0/installations/"+uuid+"/grants/", nil), 201)
	h.admin.do("POST", "/api/0/installations/"+uuid+"/grants/", nil).problem(t, 403, "app_only")
	deadline := time.Now().Add(10 * time.Second)
	for len(eventsFor(h, uuid)) == before && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	resent := eventsFor(h, uuid)[len(eventsFor(h, uuid))-1]
	verify(t, h.secret, resent)
	// The envelope and its data as the partner's SDK reads them.
	env, err := plugboard.ParseEvent(resent.Body)
	if err != nil {
		t.Fatal(err)
	}
	created, err := env.InstallationCreated()
	if err != nil {
		t.Fatal(err)
	}
	if created.Code != g.Code || !created.Resent {
		t.Fatalf("resent installation.created carries %q (resent %t), want the fresh code", created.Code, created.Resent)
	}
	cfg := &oauth2.Config{ClientID: h.clientID, ClientSecret: h.app.ClientSecret, Endpoint: oauth2.Endpoint{TokenURL: h.p.URL + "/oauth/token"}}
	if _, err := cfg.Exchange(context.Background(), created.Code); err != nil {
		t.Fatal(err)
	}
	got := waitInstallation(t, h, uuid, func(i plugboard.Installation) bool { return i.SyncState == plugboard.InSync })
	if got.SyncReason != "" {
		t.Errorf("reason after repair %q", got.SyncReason)
	}
}

func TestFailedLifecycleDeliveryIsResentWhenTheEndpointRecovers(t *testing.T) {
	h := reconWorld(t, false)
	down := h.sink.failing(500)
	uuid := h.install(t).UUID
	waitInstallation(t, h, uuid, func(i plugboard.Installation) bool {
		return i.SyncState == plugboard.OutOfSync && i.SyncReason == plugboard.SyncReasonLifecycleFailed
	})
	// The endpoint works again (a test event succeeds); the next run resends
	// installation.created and the installation returns to in_sync.
	down.Store(false)
	h.dev.do("POST", "/api/0/apps/hook-app/test-events/", nil).ok(t, 201, nil)
	waitInstallation(t, h, uuid, func(i plugboard.Installation) bool { return i.SyncState == plugboard.InSync })
	var okCreated int
	for _, x := range h.sink.all() {
		if x.Header.Get("Plugboard-Event") == "installation.created" {
			verify(t, h.secret, x)
			okCreated++
		}
	}
	if okCreated < 4 { // three failed tries, then the resend
		t.Errorf("installation.created reached the sink %d times", okCreated)
	}
	runs := appRuns(t, h, "lifecycle_delivery")
	if findingsOf(runs, "lifecycle_delivery_failed") < 2 {
		t.Errorf("runs %+v", runs)
	}
	if audit := resendAudit(t, h); len(audit) == 0 {
		t.Error("the repair is not in the audit log")
	}
}

// resendAudit is the customer's audit log of lifecycle resends.
func resendAudit(t *testing.T, h *hooks) []plugboard.AuditLogEntry {
	t.Helper()
	return decode[[]plugboard.AuditLogEntry](t, h.admin.do("GET", "/api/0/organizations/customer/audit-logs/?action=installation.resend_lifecycle", nil), 200)
}

// syncPartner answers a sync URL with pages it is given.
type syncPartner struct {
	srv   *httptest.Server
	mu    sync.Mutex
	pages map[string]string // cursor → body
	mode  string            // "", "down", "slow", "garbage"
	calls []http.Header
}

func newSyncPartner(t *testing.T) *syncPartner {
	sp := &syncPartner{pages: map[string]string{}}
	sp.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sp.mu.Lock()
		sp.calls = append(sp.calls, r.Header.Clone())
		mode, body := sp.mode, sp.pages[r.URL.Query().Get("cursor")]
		sp.mu.Unlock()
		switch mode {
		case "down":
			w.WriteHeader(503)
			return
		case "slow":
			time.Sleep(3 * time.Second)
		case "garbage":
			w.Write([]byte("<html>not json</html>"))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(body))
	}))
	t.Cleanup(sp.srv.Close)
	return sp
}

func TestPartnerSyncRepairsTheDifference(t *testing.T) {
	h := reconWorld(t, false, func(c *config.Config) { c.ReconcileInterval = 2 * time.Second })
	sp := newSyncPartner(t)
	a := h.install(t)
	h.admin.do("DELETE", "/api/0/installations/"+a.UUID+"/", nil).ok(t, 204, nil)
	b := h.install(t)
	deletedHere, missing := a.UUID, b.UUID
	unknown := "0b6f3c8e-1d2a-4e5f-9a7b-3c4d5e6f7a8b"
	// Upper case, as some partners' databases write uuids: the same installation.
	sp.pages[""] = `{"installations": ["` + strings.ToUpper(deletedHere) + `"], "nextCursor": "p2"}`
	sp.pages["p2"] = `{"installations": ["` + unknown + `"], "nextCursor": ""}`
	time.Sleep(500 * time.Millisecond) // let the lifecycle webhooks settle
	before := len(h.sink.all())
	applyReviewed(t, h.dev, h.op, "hook-app", map[string]any{"syncUrl": sp.srv.URL + "/installations"})

	deadline := time.Now().Add(20 * time.Second)
	seen := map[string]string{}
	repeats := map[string]int{}
	for len(seen) < 3 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		seen, repeats = map[string]string{}, map[string]int{}
		for _, x := range h.sink.all()[before:] {
			verify(t, h.secret, x)
			for name, id := range map[string]string{"missing": missing, "deletedHere": deletedHere, "unknown": unknown} {
				if strings.Contains(string(x.Body), id) {
					seen[name] = x.Header.Get("Plugboard-Event")
					repeats[name]++
				}
			}
		}
	}
	time.Sleep(4500 * time.Millisecond) // two more runs: nothing is sent twice within a day
	for _, x := range h.sink.all()[before:] {
		for name, id := range map[string]string{"missing": missing, "deletedHere": deletedHere, "unknown": unknown} {
			if strings.Contains(string(x.Body), id) && repeats[name] > 0 {
				repeats[name]--
			} else if strings.Contains(string(x.Body), id) {
				t.Errorf("%s was repaired again", name)
			}
		}
	}
	want := map[string]string{"missing": "installation.created", "deletedHere": "installation.deleted", "unknown": "installation.deleted"}
	for k, v := range want {
		if seen[k] != v {
			t.Errorf("%s: got %q, want %q (all: %v)", k, seen[k], v, seen)
		}
	}
	// The partner's requests are signed like webhooks.
	sp.mu.Lock()
	call := sp.calls[0]
	sp.mu.Unlock()
	if call.Get("Webhook-Signature") == "" || call.Get("Webhook-Id") == "" {
		t.Errorf("sync request headers %v", call)
	}
	runs := appRuns(t, h, "partner_sync")
	for _, reason := range []string{"missing_at_partner", "deleted_in_plugboard", "unknown_to_plugboard"} {
		if findingsOf(runs, reason) == 0 {
			t.Errorf("no %s finding in %+v", reason, runs)
		}
	}
}

func TestBrokenSyncEndpointRecordsAnErrorAndChangesNothing(t *testing.T) {
	for _, mode := range []string{"down", "slow", "garbage"} {
		t.Run(mode, func(t *testing.T) {
			h := reconWorld(t, false, func(c *config.Config) { c.ReconcileInterval = time.Hour })
			sp := newSyncPartner(t)
			sp.mode = mode
			h.install(t)
			applyReviewed(t, h.dev, h.op, "hook-app", map[string]any{"syncUrl": sp.srv.URL + "/installations"})
			time.Sleep(500 * time.Millisecond)
			events, deliveries := count(t, h.p, "events"), count(t, h.p, "deliveries")
			runs, err := h.p.App.Marketplace.Reconciler.RunJob(context.Background(), marketplace.JobPartnerSync)
			if err != nil {
				t.Fatal(err)
			}
			if len(runs) != 1 || len(runs[0].Errors) != 1 || runs[0].Found != 0 {
				t.Fatalf("runs %+v", runs)
			}
			if count(t, h.p, "events") != events || count(t, h.p, "deliveries") != deliveries {
				t.Error("a failed sync sent events")
			}
			if listed := decode[[]plugboard.ReconciliationRun](t, h.dev.do("GET", "/api/0/apps/hook-app/reconciliation-runs/", nil), 200); len(listed) == 0 || len(listed[0].Errors) != 1 {
				t.Errorf("the error is not reported: %+v", listed)
			}
			op := operator(t, h.p, "ops2@plugboard.example")
			decode[[]plugboard.ReconciliationRun](t, op.do("GET", "/api/0/reconciliation-runs/", nil), 200)
			h.dev.do("GET", "/api/0/reconciliation-runs/", nil).problem(t, 403, "operator_only")
		})
	}
}

func TestReconciliationRunTwiceAtOnceRepairsOnce(t *testing.T) {
	h := reconWorld(t, true, func(c *config.Config) { c.ReconcileInterval = time.Hour })
	uuid := h.install(t).UUID
	time.Sleep(1100 * time.Millisecond) // past the verify timeout
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := h.p.App.Marketplace.Reconciler.RunJob(context.Background(), marketplace.JobVerification); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	var n int64
	h.p.App.DB.Raw("SELECT count(*) FROM events e JOIN installations i ON i.id = e.installation_id WHERE i.uuid = ? AND e.type = 'installation.deleted'", uuid).Scan(&n)
	if n != 1 {
		t.Errorf("installation.deleted published %d times, want once", n)
	}
	var runs int64
	h.p.App.DB.Raw("SELECT count(*) FROM reconciliation_runs WHERE job = 'verification_deadline'").Scan(&runs)
	if runs != 1 {
		t.Errorf("%d runs recorded for one period, want 1", runs)
	}
}

// A failed installation.created is not resent once the installation is
// gone and its installation.deleted arrived.
func TestNoCreatedResentAfterUninstall(t *testing.T) {
	h := reconWorld(t, false, func(c *config.Config) { c.ReconcileInterval = time.Hour })
	down := h.sink.failing(500)
	uuid := h.install(t).UUID
	waitDelivery(t, h, "installation.created", "failed")
	down.Store(false)
	h.admin.do("DELETE", "/api/0/installations/"+uuid+"/", nil).ok(t, 204, nil)
	waitDelivery(t, h, "installation.deleted", "succeeded")
	before := len(h.sink.all())
	if _, err := h.p.App.Marketplace.Reconciler.RunJob(context.Background(), marketplace.JobLifecycle); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	for _, x := range h.sink.all()[before:] {
		if x.Header.Get("Plugboard-Event") == "installation.created" {
			t.Errorf("installation.created resent after the uninstall")
		}
	}
	if audit := resendAudit(t, h); len(audit) != 0 {
		t.Errorf("resends recorded: %+v", audit)
	}
}

func TestPartnerSeesOnlyItsShareOfARunOverEveryApp(t *testing.T) {
	h := reconWorld(t, false, func(c *config.Config) { c.ReconcileInterval = time.Hour })
	db := h.p.App.DB
	var appID, runID int64
	if err := db.Raw("SELECT id FROM apps WHERE slug = 'hook-app'").Scan(&appID).Error; err != nil {
		t.Fatal(err)
	}
	// A run over every app: 50 examined, one finding of ours (repaired),
	// two of another app, and an error about that other app.
	if err := db.Raw(`INSERT INTO reconciliation_runs (job, slot, started_at, finished_at, examined, found, repaired, errors)
		VALUES ('lifecycle_delivery', 'test', now(), now(), 50, 3, 2, '["resending to other-app: connection refused"]') RETURNING id`).Scan(&runID).Error; err != nil {
		t.Fatal(err)
	}
	if err := db.Exec(`INSERT INTO reconciliation_findings (run_id, app_id, installation_uuid, reason, action, repaired)
		VALUES (?, ?, gen_random_uuid(), 'lifecycle_delivery_failed', 'resent', true),
		       (?, ?, gen_random_uuid(), 'lifecycle_delivery_failed', 'resent', true),
		       (?, ?, gen_random_uuid(), 'lifecycle_delivery_failed', '', false)`,
		runID, appID, runID, appID+1000, runID, appID+1000).Error; err != nil {
		t.Fatal(err)
	}
	runs := appRuns(t, h, "lifecycle_delivery")
	if len(runs) != 1 {
		t.Fatalf("runs %+v", runs)
	}
	if r := runs[0]; r.Examined != 1 || r.Found != 1 || r.Repaired != 1 || len(r.Errors) != 0 || len(r.Findings) != 1 {
		t.Errorf("the partner sees %+v", r)
	}
	// Operators see the whole run.
	op := operator(t, h.p, "ops3@plugboard.example")
	runs = decode[[]plugboard.ReconciliationRun](t, op.do("GET", "/api/0/reconciliation-runs/?job=lifecycle_delivery", nil), 200)
	if len(runs) != 1 || runs[0].Examined != 50 || runs[0].Found != 3 || len(runs[0].Errors) != 1 || len(runs[0].Findings) != 3 {
		t.Errorf("the operator sees %+v", runs)
	}
}
