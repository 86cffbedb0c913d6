package webhooks

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/plugboard/plugboard/app/secret"
)

// EndpointsOf answers for many apps as the marketplace does
// (ManyEndpoints): what Endpoint answers, an app it does not know left out.
func (d *tableDir) EndpointsOf(ctx context.Context, appIDs []int64) (map[int64]*Endpoint, map[int64]error, error) {
	out, errs := map[int64]*Endpoint{}, map[int64]error{}
	for _, id := range appIDs {
		ep, err := d.Endpoint(ctx, id)
		switch {
		case errors.Is(err, secret.ErrOpen):
			errs[id] = err
		case err == nil:
			out[id] = ep
		}
	}
	return out, errs, nil
}

// manyApps inserts n apps of the org sending to url, each installed once
// and subscribed to issue.created, in three statements; it returns their
// ids and their one shared secret.
func (w *world) manyApps(n int, url string) ([]int64, string) {
	w.t.Helper()
	tag := uuid.NewString()[:8]
	var apps []struct {
		ID   int64
		Slug string
	}
	if err := w.db.Raw(`INSERT INTO apps (organization_id, slug, name, kind, status, client_id, client_secret_hash, webhook_secret, webhook_url)
		SELECT ?, 'app-' || ? || '-' || g, 'app ' || g, 'public', 'published', gen_random_uuid()::text, '\x00', '\x00', ?
		FROM generate_series(1, ?) g RETURNING id, slug`, w.org, tag, url, n).Scan(&apps).Error; err != nil {
		w.t.Fatal(err)
	}
	var insts []Recipient
	if err := w.db.Raw(`INSERT INTO installations (uuid, app_id, organization_id, status, scopes)
		SELECT gen_random_uuid(), a.id, ?, 'installed', '["issue:read"]' FROM apps a WHERE a.slug LIKE 'app-' || ? || '-%'
		RETURNING app_id, id AS installation_id, uuid::text AS installation_uuid`, w.org, tag).Scan(&insts).Error; err != nil {
		w.t.Fatal(err)
	}
	secret := NewSecret()
	ids := make([]int64, len(apps))
	w.dir.mu.Lock()
	for i, a := range apps {
		ids[i] = a.ID
		w.dir.endpoints[a.ID] = &Endpoint{AppID: a.ID, Slug: a.Slug, URL: url, Secrets: []string{secret}}
	}
	w.dir.recipients["issue.created"] = append(w.dir.recipients["issue.created"], insts...)
	w.dir.mu.Unlock()
	return ids, secret
}

// work runs the webhooks queue's tasks as a worker would, one at a time,
// until done says so or nothing is left to run within wait (a scheduled
// task due within wait is waited for). It returns how many of each type ran.
func (w *world) work(done func() bool, wait time.Duration) map[string]int {
	w.t.Helper()
	mux := asynq.NewServeMux()
	Register(mux, w.dispatcher, w.store, w.endpoints)
	ran := map[string]int{}
	for deadline := time.Now().Add(wait); !done() && time.Now().Before(deadline); {
		pending, err := w.inspector.ListPendingTasks(QueueWebhooks)
		if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
			w.t.Fatal(err)
		}
		if len(pending) == 0 {
			scheduled, _ := w.inspector.ListScheduledTasks(QueueWebhooks)
			for _, ti := range scheduled {
				if time.Until(ti.NextProcessAt) <= 0 {
					_ = w.inspector.RunTask(QueueWebhooks, ti.ID)
				}
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		for _, ti := range pending {
			if err := w.inspector.DeleteTask(QueueWebhooks, ti.ID); err != nil {
				continue
			}
			ran[ti.Type]++
			if err := mux.ProcessTask(w.ctx, asynq.NewTask(ti.Type, ti.Payload)); err != nil {
				w.t.Logf("%s: %v", ti.Type, err)
			}
		}
	}
	return ran
}

// statuses counts apps' deliveries by status.
func (w *world) statuses(apps []int64) map[string]int {
	w.t.Helper()
	var rows []struct {
		Status string
		N      int
	}
	if err := w.db.Raw("SELECT status, count(*) AS n FROM deliveries WHERE app_id = ANY(?) GROUP BY status", pgArray(apps)).Scan(&rows).Error; err != nil {
		w.t.Fatal(err)
	}
	out := map[string]int{}
	for _, r := range rows {
		out[r.Status] = r.N
	}
	return out
}

// hitsByID counts a sink's requests by webhook-id.
func hitsByID(hits []hit) map[string]int {
	out := map[string]int{}
	for _, h := range hits {
		out[h.Header.Get("Webhook-Id")]++
	}
	return out
}

// One event to many apps is delivered by sweeps, once to each app, signed
// and logged, with no drain task of its own per app; the registry's marks
// are gone after the sweeps, so the next publish is swept again.
func TestSweepDeliversAWidePublishOnceEach(t *testing.T) {
	srv := newSink(t, http.StatusOK)
	w := newWorld(t, Options{AllowPrivate: true, Now: time.Now})
	n := sweepChunk + 100 // two sweeps
	apps, secret := w.manyApps(n, srv.URL)
	for round := 1; round <= 2; round++ {
		w.publish(map[string]int{"round": round})
		tasks := w.tasks(QueueWebhooks)
		if len(tasks[TypeSweep]) != 2 || len(tasks[TypeDeliver]) != 0 {
			t.Fatalf("round %d: %d sweeps and %d drains enqueued, want 2 and 0", round, len(tasks[TypeSweep]), len(tasks[TypeDeliver]))
		}
		ran := w.work(func() bool { return len(srv.received()) >= round*n }, 30*time.Second)
		if ran[TypeSweep] != 2 || ran[TypeDeliver] != 0 {
			t.Errorf("round %d ran %v", round, ran)
		}
		if got := w.statuses(apps); got[DeliverySucceeded] != round*n || len(got) != 1 {
			t.Fatalf("round %d: deliveries %v", round, got)
		}
		for _, id := range apps[:3] {
			_, q, d := drainKeys(id)
			if k, _ := w.rdb.Exists(w.ctx, q, d).Result(); k != 0 {
				t.Errorf("round %d: app %d still has %d registry marks", round, id, k)
			}
		}
	}
	hits := srv.received()
	byID := hitsByID(hits)
	if len(hits) != 2*n || len(byID) != 2*n {
		t.Fatalf("%d requests, %d distinct deliveries; want %d of each", len(hits), len(byID), 2*n)
	}
	wh, _ := standardwebhooks.NewWebhook(secret)
	for _, h := range hits[:20] {
		if err := wh.Verify(h.Body, h.Header); err != nil {
			t.Errorf("verification: %v", err)
		}
	}
	var logged, distinct int64
	w.db.Raw("SELECT count(*), count(DISTINCT delivery_id) FROM attempts WHERE app_id = ANY(?) AND response_status = 200", pgArray(apps)).Row().Scan(&logged, &distinct)
	if logged != int64(2*n) || distinct != logged {
		t.Errorf("%d attempts logged over %d deliveries, want %d", logged, distinct, 2*n)
	}
}

// Inside a sweep every app keeps its own outcome, as its drain's batch
// would have it: a disabled endpoint's deliveries are paused, an
// unopenable secret fails them, an app without a URL and no listen
// session fails to be retried, a 500 is retried later and marks the
// endpoint failing, a 410 disables it, and an app with more due than a
// sweep takes of one app is handed back to a drain of its own.
func TestSweepKeepsEachAppsOutcome(t *testing.T) {
	ok := newSink(t, http.StatusOK)
	failing := newSink(t, http.StatusInternalServerError)
	gone := newSink(t, http.StatusGone)
	w := newWorld(t, Options{AllowPrivate: true, Now: time.Now, RetrySchedule: []time.Duration{0, time.Minute}})
	apps, _ := w.manyApps(sweepAbove+10, ok.URL)
	disabled, unsignable, listenOnly, fails, goes, busy := apps[0], apps[1], apps[2], apps[3], apps[4], apps[5]
	w.dir.mu.Lock()
	w.dir.endpoints[unsignable].Secrets = nil
	w.dir.endpoints[listenOnly].URL = ""
	w.dir.endpoints[fails].URL = failing.URL
	w.dir.endpoints[goes].URL = gone.URL
	w.dir.mu.Unlock()
	// busy has a backlog: more due than one sweep takes of it.
	var busyInst Recipient
	for _, r := range w.dir.recipients["issue.created"] {
		if r.AppID == busy {
			busyInst = r
		}
	}
	for range sweepPerApp + 2 {
		w.delivery(busy, busyInst, "issue.created", DeliveryPending, time.Now().Add(-time.Second))
	}
	w.exec("UPDATE deliveries SET attempts = 0 WHERE app_id = ?", busy)
	w.publish(map[string]int{"n": 1})
	// Disabled after the publish (which would have written it paused).
	w.exec("INSERT INTO endpoints (app_id, status, disabled_reason) VALUES (?, 'disabled', 'x')", disabled)

	sweeps := w.tasks(QueueWebhooks)[TypeSweep]
	if len(sweeps) != 1 {
		t.Fatalf("%d sweeps", len(sweeps))
	}
	var p sweepPayload
	json.Unmarshal(sweeps[0].Payload, &p)
	w.inspector.DeleteTask(QueueWebhooks, sweeps[0].ID)
	if err := w.dispatcher.sweep(w.ctx, p.Apps); err != nil {
		t.Fatal(err)
	}
	one := func(app int64) Delivery {
		t.Helper()
		ds := w.deliveries(app)
		if len(ds) != 1 {
			t.Fatalf("app %d: %d deliveries", app, len(ds))
		}
		return ds[0]
	}
	if d := one(disabled); d.Status != DeliveryPaused || d.Attempts != 0 {
		t.Errorf("disabled endpoint's delivery %+v", d)
	}
	if d := one(unsignable); d.Status != DeliveryFailed || d.LastErrorClass != ClassSecret || d.CompletedAt == nil {
		t.Errorf("unsignable app's delivery %+v", d)
	}
	if d := one(listenOnly); d.Status != DeliveryPending || d.LastErrorClass != ClassNoListener || d.Attempts != 1 {
		t.Errorf("listen-only app's delivery %+v", d)
	}
	if d := one(fails); d.Status != DeliveryPending || d.Attempts != 1 || d.NextAttemptAt == nil || time.Until(*d.NextAttemptAt) < 40*time.Second {
		t.Errorf("failing app's delivery %+v", d)
	}
	if st, _ := w.endpoints.State(w.ctx, fails); st.FailingSince == nil || st.Status != EndpointEnabled {
		t.Errorf("failing endpoint %+v", st)
	}
	if d := one(goes); d.Status != DeliveryFailed {
		t.Errorf("gone app's delivery %+v", d)
	}
	if st, _ := w.endpoints.State(w.ctx, goes); st.Status != EndpointDisabled {
		t.Errorf("gone endpoint %+v", st)
	}
	st := map[string]int{}
	for _, d := range w.deliveries(busy) {
		st[d.Status]++
	}
	if st[DeliverySucceeded] != 1 || st[DeliveryPending] != sweepPerApp+2 {
		t.Errorf("busy app after the sweep: %v (its first admitted, the rest handed back)", st)
	}
	// What was handed back or is retried has a drain of its own coming.
	queued := map[int64]int{}
	for _, ti := range w.tasks(QueueWebhooks)[TypeDeliver] {
		var p deliverPayload
		json.Unmarshal(ti.Payload, &p)
		queued[p.AppID]++
	}
	for _, app := range []int64{busy, fails, listenOnly} {
		if queued[app] == 0 {
			t.Errorf("no drain of app %d after the sweep (%v)", app, queued)
		}
	}
	if queued[disabled] != 0 || queued[unsignable] != 0 {
		t.Errorf("drains of apps with nothing left: %v", queued)
	}
	if got := w.statuses(apps[6:]); got[DeliverySucceeded] != len(apps)-6 {
		t.Errorf("the other apps: %v", got)
	}
	// The busy app's drain sends the rest, one each.
	w.work(func() bool { return w.statuses([]int64{busy})[DeliverySucceeded] == sweepPerApp+3 }, 30*time.Second)
	if got := w.statuses([]int64{busy}); got[DeliverySucceeded] != sweepPerApp+3 {
		t.Errorf("busy app after its drain: %v", got)
	}
	if byID := hitsByID(ok.received()); len(byID) != len(ok.received()) {
		t.Errorf("%d requests for %d deliveries", len(ok.received()), len(byID))
	}
}

// timedSink records when each request for an app arrived.
type timedSink struct {
	*httptest.Server
	mu sync.Mutex
	at map[string][]time.Time // by Plugboard-Installation
}

func newTimedSink(t *testing.T) *timedSink {
	s := &timedSink{at: map[string][]time.Time{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.at[r.Header.Get("Plugboard-Installation")] = append(s.at[r.Header.Get("Plugboard-Installation")], time.Now())
		s.mu.Unlock()
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *timedSink) times(inst string) []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.at[inst]...)
}

// An app's rate limit and in-flight cap hold inside a sweep as across
// drains: a sweep takes what the limiters give and hands the rest back.
func TestSweepHoldsRateLimitsAndInFlightCaps(t *testing.T) {
	srv := newTimedSink(t)
	w := newWorld(t, Options{AllowPrivate: true, Now: time.Now})
	apps, _ := w.manyApps(sweepAbove+10, srv.URL)
	slow, capped := apps[0], apps[1]
	w.exec("INSERT INTO endpoints (app_id, rate_limit) VALUES (?, 1)", slow)
	w.exec("INSERT INTO endpoints (app_id, max_in_flight) VALUES (?, 1)", capped)
	inst := map[int64]string{}
	for _, r := range w.dir.recipients["issue.created"] {
		inst[r.AppID] = r.InstallationUUID
	}
	// Another worker holds the capped app's one slot.
	n, _, _, release, err := w.limiter.admit(w.ctx, capped, 1000, 1, 1, time.Minute)
	if err != nil || n != 1 {
		t.Fatalf("holding the slot: %d, %v", n, err)
	}
	w.publish(map[string]int{"n": 1})
	w.publish(map[string]int{"n": 2})
	ran := w.work(func() bool { return w.statuses(apps[2:])[DeliverySucceeded] == 2*(len(apps)-2) }, 30*time.Second)
	if ran[TypeSweep] == 0 {
		t.Fatalf("no sweep ran: %v", ran)
	}
	if got := srv.times(inst[capped]); len(got) != 0 {
		t.Errorf("%d requests to the app whose one slot another worker holds", len(got))
	}
	release()
	w.work(func() bool { return w.statuses([]int64{slow, capped})[DeliverySucceeded] == 4 }, 30*time.Second)
	if got := w.statuses([]int64{slow, capped}); got[DeliverySucceeded] != 4 {
		t.Fatalf("limited apps' deliveries: %v", got)
	}
	// 1/s: the two requests a second apart (the limiter's 3 % margin less
	// scheduling noise).
	if at := srv.times(inst[slow]); len(at) != 2 || at[1].Sub(at[0]) < 900*time.Millisecond {
		t.Errorf("requests to the 1/s app at %v", at)
	}
	if at := srv.times(inst[capped]); len(at) != 2 {
		t.Errorf("%d requests to the capped app", len(at))
	}
}

// A sweep that dies between its claim and its record (its connection is
// cut: PostgreSQL rolls back, as when the worker is killed) leaves every
// delivery pending; the relay enqueues them again past its grace, and they
// are delivered and logged. What the dead sweep had sent goes again, with
// the same webhook-id: the one duplicate a crash allows.
func TestSweepCrashBetweenClaimAndRecordIsRelayed(t *testing.T) {
	var once sync.Once
	inSend, unblock := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	got := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		once.Do(func() { close(inSend); <-unblock })
		mu.Lock()
		got[r.Header.Get("Webhook-Id")]++
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	w := newWorld(t, Options{AllowPrivate: true, RelayGrace: time.Minute})
	apps, _ := w.manyApps(sweepAbove+10, srv.URL)
	w.publish(map[string]int{"n": 1})
	sweeps := w.tasks(QueueWebhooks)[TypeSweep]
	if len(sweeps) != 1 {
		t.Fatalf("%d sweeps", len(sweeps))
	}
	var p sweepPayload
	json.Unmarshal(sweeps[0].Payload, &p)
	w.inspector.DeleteTask(QueueWebhooks, sweeps[0].ID)
	errc := make(chan error, 1)
	go func() { errc <- w.dispatcher.sweep(w.ctx, p.Apps) }()
	<-inSend
	// The sweep holds its claim in an open transaction: cut it.
	var cut []int64
	w.db.Raw(`SELECT pid FROM pg_stat_activity
		WHERE datname = current_database() AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()`).Scan(&cut)
	for _, pid := range cut {
		w.db.Exec("SELECT pg_terminate_backend(?)", pid)
	}
	close(unblock)
	if err := <-errc; err == nil || len(cut) != 1 {
		t.Fatalf("the cut sweep: %v (%d backends cut)", err, len(cut))
	}
	// The cut backend tells its client before it has rolled back and let
	// go of its locks: what a crash leaves is what is left once it is gone.
	waitFor(t, func() bool {
		var left int64
		w.db.Raw("SELECT count(*) FROM pg_locks WHERE pid = ANY(?)", pgArray(cut)).Scan(&left)
		return left == 0
	})
	if st := w.statuses(apps); st[DeliveryPending] != len(apps) {
		t.Fatalf("after the crash: %v", st)
	}
	var attempts int64
	w.db.Raw("SELECT count(*) FROM attempts WHERE app_id = ANY(?)", pgArray(apps)).Scan(&attempts)
	if attempts != 0 {
		t.Errorf("%d attempts logged by a sweep that never committed", attempts)
	}
	// The task's retry is lost too (the worker died): the relay, past its
	// grace, enqueues the deliveries again.
	for _, ti := range w.tasks(QueueWebhooks)[TypeDeliver] {
		w.inspector.DeleteTask(QueueWebhooks, ti.ID)
	}
	w.clock.Advance(2 * time.Minute)
	if n, err := w.dispatcher.Relay(w.ctx); err != nil || n != len(apps) {
		t.Fatalf("relay: %d, %v", n, err)
	}
	ran := w.work(func() bool { return w.statuses(apps)[DeliverySucceeded] == len(apps) }, 30*time.Second)
	if st := w.statuses(apps); st[DeliverySucceeded] != len(apps) || ran[TypeSweep] == 0 {
		t.Fatalf("after the relay: %v (ran %v)", st, ran)
	}
	w.db.Raw("SELECT count(*) FROM attempts WHERE app_id = ANY(?) AND response_status = 200", pgArray(apps)).Scan(&attempts)
	mu.Lock()
	defer mu.Unlock()
	if attempts != int64(len(apps)) || len(got) != len(apps) {
		t.Errorf("%d attempts logged, %d distinct deliveries received; want %d", attempts, len(got), len(apps))
	}
	for id, n := range got {
		if n > 2 {
			t.Errorf("delivery %s received %d times", id, n)
		}
	}
}

// TestKickSweepsWhenEnoughAppsNeedADrain publishes to a few apps more or
// less than sweepAbove, some of which have a drain running: a kick of
// more than sweepAbove apps of which at least sweepFrom need a drain is
// one sweep; otherwise each app that needs one gets a drain task of its
// own. Whichever runs, each delivery arrives once.
func TestKickSweepsWhenEnoughAppsNeedADrain(t *testing.T) {
	for _, tc := range []struct {
		name           string
		apps, running  int
		sweeps, drains int
	}{
		{"at sweepAbove: drains", sweepAbove, 0, 0, sweepAbove},
		{"above it: one sweep", sweepAbove + 1, 0, 1, 0},
		{"above it, sweepFrom need one: a sweep", sweepAbove + 1, sweepAbove + 1 - sweepFrom, 1, 0},
		{"above it, fewer need one: drains", sweepAbove + 1, sweepAbove + 2 - sweepFrom, 0, sweepFrom - 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newSink(t, http.StatusOK)
			w := newWorld(t, Options{AllowPrivate: true, Now: time.Now})
			apps, _ := w.manyApps(tc.apps, srv.URL)
			var leases []*drainLease
			for _, id := range apps[:tc.running] {
				leases = append(leases, w.drains.register(w.ctx, id, time.Minute))
			}
			w.publish(map[string]any{"n": 1})
			tasks := w.tasks(QueueWebhooks)
			if len(tasks[TypeSweep]) != tc.sweeps || len(tasks[TypeDeliver]) != tc.drains {
				t.Fatalf("%d sweeps and %d drains enqueued, want %d and %d", len(tasks[TypeSweep]), len(tasks[TypeDeliver]), tc.sweeps, tc.drains)
			}
			// Each running drain finds the publish's mark when it looks
			// again, as a drain between batches does; a drain task stands in
			// for its next batch, and the lease goes.
			for _, l := range leases {
				if !l.again(w.ctx) {
					t.Errorf("app %d: its running drain found no mark of the publish", l.appID)
				}
				w.drains.enqueueDrain(w.ctx, l.appID)
				l.leave(w.ctx)
			}
			w.work(func() bool { return len(srv.received()) >= tc.apps }, 30*time.Second)
			if got := w.statuses(apps); got[DeliverySucceeded] != tc.apps || len(got) != 1 {
				t.Errorf("deliveries %v, want %d succeeded", got, tc.apps)
			}
			if byID := hitsByID(srv.received()); len(byID) != tc.apps {
				t.Errorf("%d distinct deliveries received, want %d", len(byID), tc.apps)
			} else {
				for id, n := range byID {
					if n != 1 {
						t.Errorf("%s received %d times", id, n)
					}
				}
			}
		})
	}
}
