package webhooks

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

func TestDrainDeliversToAServer(t *testing.T) {
	srv := newSink(t, http.StatusOK)
	w := newWorld(t, private())
	appID, inst, secret := w.app(srv.URL)
	for i := range 3 {
		w.publish(map[string]int{"n": i})
	}
	if err := w.dispatcher.drain(w.ctx, appID); err != nil {
		t.Fatal(err)
	}
	hits := srv.received()
	if len(hits) != 3 {
		t.Fatalf("%d requests, want 3", len(hits))
	}
	wh, _ := standardwebhooks.NewWebhook(secret)
	for _, h := range hits {
		if err := wh.Verify(h.Body, h.Header); err != nil {
			t.Errorf("verification: %v", err)
		}
		var env struct{ Installation struct{ UUID string } }
		if json.Unmarshal(h.Body, &env); env.Installation.UUID != inst.InstallationUUID {
			t.Errorf("body %s", h.Body)
		}
	}
	for _, d := range w.deliveries(appID) {
		if d.Status != DeliverySucceeded || d.Attempts != 1 || d.CompletedAt == nil || d.LastStatusCode == nil || *d.LastStatusCode != 200 {
			t.Errorf("delivery %+v", d)
		}
		det, err := w.store.GetDelivery(w.ctx, appID, d.UUID)
		if err != nil || len(det.Attempts) != 1 || det.Attempts[0].URL != srv.URL || len(det.Attempts[0].RequestHeaders) < 10 {
			t.Errorf("attempts %+v, %v", det, err)
		}
	}
	// Nothing left: a second drain claims nothing and sends nothing.
	if err := w.dispatcher.drain(w.ctx, appID); err != nil || len(srv.received()) != 3 {
		t.Errorf("second drain: %v, %d requests", err, len(srv.received()))
	}
}

func TestDrainRetriesAndGivesUp(t *testing.T) {
	for _, tc := range []struct {
		name      string
		status    int
		attempts  int // max attempts of the delivery
		want      string
		disabled  bool
		scheduled bool // a later drain is enqueued for the retry
	}{
		{"server error retries", http.StatusInternalServerError, 8, DeliveryPending, false, true},
		{"last attempt fails", http.StatusInternalServerError, 1, DeliveryFailed, false, false},
		{"gone disables", http.StatusGone, 8, DeliveryFailed, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newSink(t, tc.status)
			w := newWorld(t, Options{AllowPrivate: true, RetrySchedule: []time.Duration{0, time.Minute}})
			appID, _, _ := w.app(srv.URL)
			w.publish(nil)
			w.exec("UPDATE deliveries SET max_attempts = ? WHERE app_id = ?", tc.attempts, appID)
			if err := w.dispatcher.drain(w.ctx, appID); err != nil {
				t.Fatal(err)
			}
			d := w.deliveries(appID)[0]
			if d.Status != tc.want || d.Attempts != 1 || d.LastErrorClass != ClassHTTPStatus {
				t.Errorf("delivery %+v", d)
			}
			if tc.want == DeliveryPending && (d.NextAttemptAt == nil || time.Until(*d.NextAttemptAt) < 40*time.Second) {
				t.Errorf("next attempt %v, want about a minute away", d.NextAttemptAt)
			}
			if st, _ := w.endpoints.State(w.ctx, appID); (st.Status == EndpointDisabled) != tc.disabled {
				t.Errorf("endpoint %+v", st)
			}
			later := 0
			for _, ti := range w.tasks(QueueWebhooks)[TypeDeliver] {
				if !ti.NextProcessAt.IsZero() && time.Until(ti.NextProcessAt) > 30*time.Second {
					later++
				}
			}
			if (later > 0) != tc.scheduled {
				t.Errorf("%d later drains", later)
			}
		})
	}
}

func TestDrainPausesForADisabledEndpoint(t *testing.T) {
	srv := newSink(t, http.StatusOK)
	w := newWorld(t, private())
	appID, _, _ := w.app(srv.URL)
	w.publish(nil)
	w.exec("INSERT INTO endpoints (app_id, status, disabled_reason) VALUES (?, 'disabled', 'x')", appID)
	if err := w.dispatcher.drain(w.ctx, appID); err != nil {
		t.Fatal(err)
	}
	if d := w.deliveries(appID)[0]; d.Status != DeliveryPaused || len(srv.received()) != 0 {
		t.Errorf("delivery %+v, %d requests", d, len(srv.received()))
	}
}

func TestRelayReenqueuesDueDeliveries(t *testing.T) {
	w := newWorld(t, Options{RelayGrace: time.Minute})
	appID, inst, _ := w.app("https://example.com/hook")
	due := w.delivery(appID, inst, "issue.created", DeliveryPending, time.Now().Add(-time.Second))
	n, err := w.dispatcher.Relay(w.ctx)
	if err != nil || n != 0 {
		t.Fatalf("inside the grace: %d, %v", n, err)
	}
	w.clock.Advance(2 * time.Minute)
	if n, err := w.dispatcher.Relay(w.ctx); err != nil || n != 1 {
		t.Fatalf("past the grace: %d, %v", n, err)
	}
	var d Delivery
	w.db.Take(&d, due.ID)
	if d.EnqueuedAt == nil {
		t.Error("enqueued_at not set")
	}
	if got := w.tasks(QueueWebhooks)[TypeDeliver]; len(got) != 1 {
		t.Errorf("%d drains", len(got))
	}
	// Just enqueued: not again within the grace; a held claim is skipped.
	if n, _ := w.dispatcher.Relay(w.ctx); n != 0 {
		t.Errorf("relayed %d again at once", n)
	}
	w.clock.Advance(2 * time.Minute)
	w.exec("UPDATE deliveries SET enqueued_at = now() - interval '1 hour', claimed_until = now() + interval '1 hour' WHERE id = ?", due.ID)
	if n, _ := w.dispatcher.Relay(w.ctx); n != 0 {
		t.Errorf("relayed %d held deliveries", n)
	}
}

func TestDrainsDedupeKicks(t *testing.T) {
	w := newWorld(t, Options{})
	drains := func() int { return len(w.tasks(QueueWebhooks)[TypeDeliver]) }
	w.drains.kickApps(w.ctx, []int64{1, 2}, 1, false)
	w.drains.kickApps(w.ctx, []int64{1, 2}, 1, false)
	if n := drains(); n != 2 {
		t.Fatalf("%d drains after two kicks of two apps, want 2", n)
	}
	// The drain task starts: it registers and clears the queued mark. A
	// publish now marks the app dirty instead of enqueueing.
	lease := w.drains.register(w.ctx, 1, time.Minute)
	w.drains.kickApps(w.ctx, []int64{1}, 1, false)
	if n := drains(); n != 2 {
		t.Errorf("%d drains with one running, want 2", n)
	}
	if !lease.again(w.ctx) {
		t.Error("a dirty app let its drain leave")
	}
	if lease.again(w.ctx) {
		t.Error("a clean app kept its drain")
	}
	// Gone from the registry: the next kick enqueues; a helper is wanted
	// beside a running drain; force always enqueues.
	w.drains.kickApps(w.ctx, []int64{1}, 1, false)
	if n := drains(); n != 3 {
		t.Errorf("%d drains after the drain left, want 3", n)
	}
	w.drains.kickApps(w.ctx, []int64{1}, 1, true)
	if n := drains(); n != 4 {
		t.Errorf("%d drains after a forced kick, want 4", n)
	}
	// Delayed kicks of one due time are one task.
	w.drains.kick(w.ctx, 9, time.Minute)
	w.drains.kick(w.ctx, 9, time.Minute)
	if n := drains(); n != 5 {
		t.Errorf("%d drains after two delayed kicks, want 5", n)
	}
}

func TestLimiterRateAndInFlight(t *testing.T) {
	w := newWorld(t, Options{})
	ctx := context.Background()
	// In flight: a cap of 2 admits 2, then none until released.
	n, _, _, release, err := w.limiter.admit(ctx, 1, 1000, 2, 5, time.Minute)
	if err != nil || n != 2 {
		t.Fatalf("took %d, %v", n, err)
	}
	if n, _, full, _, _ := w.limiter.admit(ctx, 1, 1000, 2, 1, time.Minute); n != 0 || !full {
		t.Errorf("at the cap: took %d, full %v", n, full)
	}
	release()
	if n, _, _, rel, _ := w.limiter.admit(ctx, 1, 1000, 2, 2, time.Minute); n != 2 {
		t.Errorf("after release: took %d", n)
	} else {
		rel()
	}
	// Expired leases (a crashed worker's) free themselves.
	if n, _, _, _, _ := w.limiter.admit(ctx, 2, 1000, 1, 1, time.Millisecond); n != 1 {
		t.Fatal("no first slot")
	}
	w.clock.Advance(5 * time.Millisecond)
	if n, _, _, _, _ := w.limiter.admit(ctx, 2, 1000, 1, 1, time.Minute); n != 1 {
		t.Error("an expired lease still counted")
	}
	// Rate: 50/s (the default), no burst: one now, then a wait of about a
	// fiftieth of a second, and one again after it.
	take := func(appID int64, rate, want int) (int, time.Duration) {
		n, retry, _, _, err := w.limiter.admit(ctx, appID, rate, 1000, want, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return n, retry
	}
	if n, _ := take(3, 50, 5); n != 1 {
		t.Errorf("50/s: took %d, want 1", n)
	}
	n, retry := take(3, 50, 1)
	if n != 0 || retry < 10*time.Millisecond || retry > 25*time.Millisecond {
		t.Errorf("50/s again: took %d, retry %s", n, retry)
	}
	time.Sleep(retry) // about 20 ms, the limiter's own answer
	if n, _ := take(3, 50, 1); n != 1 {
		t.Errorf("50/s after the wait: took %d", n)
	}
	// A higher rate has a burst of about a fiftieth.
	if n, _ := take(4, 1000, 100); n < 19 || n > 20 {
		t.Errorf("1000/s burst: took %d, want 20", n)
	}
}

func TestListenersForwardDeliveries(t *testing.T) {
	w := newWorld(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := w.listeners.Listen(ctx, 5, "user:1", "session-1")
	if err != nil {
		t.Fatal(err)
	}
	status := 200
	results := []result{
		{c: claimed{ID: 1, UUID: "d-1", EventType: "issue.created"}, body: []byte(`{"x":1}`),
			attempt: Attempt{Number: 1, RequestHeaders: json.RawMessage(`{"webhook-id":"d-1"}`), ResponseStatus: &status}},
		{c: claimed{ID: 2, UUID: "d-2"}, deferred: time.Second}, // not sent: not forwarded
	}
	w.listeners.forward(ctx, 5, results)
	select {
	case f := <-ch:
		if f.DeliveryID != "d-1" || f.Body != `{"x":1}` || f.Headers["webhook-id"] != "d-1" || *f.Status != 200 {
			t.Errorf("forwarded %+v", f)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("nothing forwarded")
	}
	select {
	case f := <-ch:
		t.Errorf("a deferred delivery was forwarded: %+v", f)
	case <-time.After(100 * time.Millisecond):
	}
	// Another app's session hears nothing.
	other, _ := w.listeners.Listen(ctx, 6, "user:1", "session-2")
	w.listeners.forward(ctx, 5, results)
	select {
	case f := <-other:
		t.Errorf("app 6 got %+v", f)
	case <-time.After(100 * time.Millisecond):
	}
}

func TestTaskConstructorsCarryTheirOptions(t *testing.T) {
	w := newWorld(t, Options{})
	since := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	redeliver, err := NewRedeliverTask(3, &since, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		enqueue  func() error
		queue    string
		typ      string
		maxRetry int
		timeout  time.Duration
	}{
		{"deliver", func() error { _, err := w.queue.Enqueue(NewDeliverTask(1, 10*time.Second)); return err }, QueueWebhooks, TypeDeliver, 20, 80 * time.Second},
		{"deliver later", func() error {
			_, err := w.queue.Enqueue(NewDeliverLaterTask(2, 10*time.Second, time.Minute, time.Now()))
			return err
		}, QueueWebhooks, TypeDeliver, 20, 80 * time.Second},
		{"relay", func() error { _, err := w.queue.Enqueue(NewRelayTask(time.Minute)); return err }, QueueWebhooks, TypeRelay, 0, 0},
		{"retention", func() error { _, err := w.queue.Enqueue(NewRetentionTask()); return err }, QueueLow, TypeRetention, 3, 0},
		{"redeliver", func() error { _, err := w.queue.Enqueue(redeliver); return err }, QueueDefault, TypeRedeliver, 5, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.enqueue(); err != nil {
				t.Fatal(err)
			}
			got := w.tasks(tc.queue)[tc.typ]
			if len(got) == 0 {
				t.Fatalf("no %s task on %s", tc.typ, tc.queue)
			}
			ti := got[len(got)-1]
			if ti.MaxRetry != tc.maxRetry || tc.timeout != 0 && ti.Timeout != tc.timeout {
				t.Errorf("max retry %d timeout %s", ti.MaxRetry, ti.Timeout)
			}
		})
	}
	// Unique tasks: a second relay within its period is refused.
	if _, err := w.queue.Enqueue(NewRelayTask(time.Minute)); err == nil {
		t.Error("a second relay task in its period")
	}
}

// A fresh app's first delivery is admitted at every rate: at burst 1 the
// GCRA sum lands on exactly one slot, and rounding must not refuse it.
func TestLimiterAdmitsAFreshAppAtEveryRate(t *testing.T) {
	w := newWorld(t, Options{})
	ctx := context.Background()
	appID := int64(100)
	for _, rate := range []int{1, 2, 3, 5, 7, 10, 20, 33, 50, 99, 100, 101, 1000} {
		for try := 0; try < 20; try++ {
			appID++
			n, retry, _, _, err := w.limiter.admit(ctx, appID, rate, 1000, 1, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if n != 1 {
				t.Fatalf("rate %d/s, fresh app %d: took %d, retry %s", rate, appID, n, retry)
			}
		}
	}
}

// An app without a webhook URL is delivered to its plugboard listen
// sessions: while one is open, a publish makes a delivery, the session gets
// it signed, and the log records a successful attempt at ListenURL; with
// none open, nothing is queued for it.
func TestListenOnlyAppsDeliverToListenSessions(t *testing.T) {
	w := newWorld(t, Options{})
	appID, inst, secret := w.app("")
	w.dir.mu.Lock()
	rs := w.dir.recipients["issue.created"]
	rs[len(rs)-1].ListenOnly = true
	w.dir.mu.Unlock()

	w.publish(map[string]string{"while": "nobody listens"})
	if ds := w.deliveries(appID); len(ds) != 0 {
		t.Fatalf("%d deliveries for an app nobody listens for", len(ds))
	}

	ctx, cancel := context.WithCancel(w.ctx)
	defer cancel()
	ch, err := w.listeners.Listen(ctx, appID, "user:1", "laptop")
	if err != nil {
		t.Fatal(err)
	}
	w.listeners.cache = map[int64]listenCache{} // the session is seen at once, not after the 1 s cache
	w.publish(map[string]string{"while": "listening"})
	if err := w.dispatcher.drain(w.ctx, appID); err != nil {
		t.Fatal(err)
	}
	ds := w.deliveries(appID)
	if len(ds) != 1 || ds[0].Status != DeliverySucceeded || ds[0].Attempts != 1 {
		t.Fatalf("deliveries %+v", ds)
	}
	det, err := w.store.GetDelivery(w.ctx, appID, ds[0].UUID)
	if err != nil || len(det.Attempts) != 1 || det.Attempts[0].URL != ListenURL || det.Attempts[0].ErrorClass != "" {
		t.Fatalf("attempts %+v, %v", det, err)
	}
	select {
	case f := <-ch:
		h := http.Header{}
		for k, v := range f.Headers {
			h.Set(k, v)
		}
		wh, _ := standardwebhooks.NewWebhook(secret)
		if err := wh.Verify([]byte(f.Body), h); err != nil || f.DeliveryID != ds[0].UUID {
			t.Fatalf("the session got %+v: %v", f, err)
		}
		if !strings.Contains(f.Body, inst.InstallationUUID) {
			t.Errorf("body %s", f.Body)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the listen session got nothing")
	}

	// The session closes before the next send: a failed attempt, retried.
	w.publish(map[string]string{"while": "closing"})
	cancel() // the session leaves its set as it closes
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		w.listeners.cache = map[int64]listenCache{}
		if !w.listeners.active(w.ctx, appID) {
			break
		}
	}
	if err := w.dispatcher.drain(w.ctx, appID); err != nil {
		t.Fatal(err)
	}
	last := w.deliveries(appID)[1]
	if last.Status != DeliveryPending || last.LastErrorClass != ClassNoListener {
		t.Fatalf("delivery after the session closed: %+v", last)
	}
}

// A delivery whose signing secret cannot be opened (the platform started
// with another secret key) fails at once with the reason in the log: it
// never stays pending.
func TestUnopenableSecretFailsDeliveries(t *testing.T) {
	srv := newSink(t, http.StatusOK)
	w := newWorld(t, private())
	appID, _, _ := w.app(srv.URL)
	w.dir.mu.Lock()
	w.dir.endpoints[appID].Secrets = nil
	w.dir.mu.Unlock()
	w.publish(map[string]int{"n": 1})
	w.publish(map[string]int{"n": 2})
	if err := w.dispatcher.drain(w.ctx, appID); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.received()); n != 0 {
		t.Fatalf("%d unsigned requests went out", n)
	}
	for _, d := range w.deliveries(appID) {
		if d.Status != DeliveryFailed || d.Attempts != 1 || d.LastErrorClass != ClassSecret || d.CompletedAt == nil {
			t.Errorf("delivery %+v", d)
		}
		det, err := w.store.GetDelivery(w.ctx, appID, d.UUID)
		if err != nil || len(det.Attempts) != 1 || !strings.Contains(det.Attempts[0].ErrorMessage, "PLUGBOARD_SECRET_KEY") {
			t.Errorf("attempts %+v, %v", det, err)
		}
	}
}

// A later drain kicked for a time within the 100 ms of a task that is
// already due (the task running the drain that kicks, whose batch the
// limiter deferred by a few milliseconds, or one about to run) is not
// swallowed by that task: it goes to the next 100 ms, and a drain comes
// after the delivery is due.
func TestKickLaterIsNotSwallowedByADueTask(t *testing.T) {
	w := newWorld(t, Options{})
	now := w.clock.Now()
	w.clock.Advance(laterBucket - now.Sub(now.Truncate(laterBucket)) + 10*time.Millisecond)
	now = w.clock.Now() // 10 ms into a bucket
	const app = 7
	if _, err := w.queue.Enqueue(NewDeliverLaterTask(app, w.opts.Timeout, 0, now)); err != nil {
		t.Fatal(err) // the drain running now, due at the bucket's start
	}
	w.drains.kick(w.ctx, app, 30*time.Millisecond) // due in the same bucket
	var later []*asynq.TaskInfo
	for _, ti := range w.tasks(QueueWebhooks)[TypeDeliver] {
		if ti.ID != "drain:7:t"+strconv.FormatInt(now.UnixMilli()/100, 10) {
			later = append(later, ti)
		}
	}
	if want := "drain:7:t" + strconv.FormatInt(now.UnixMilli()/100+1, 10); len(later) != 1 || later[0].ID != want {
		t.Fatalf("tasks besides the due one: %v, want %s", later, want)
	}
	// A second kick in the same bucket finds the next bucket's task
	// waiting for its time, after this one's: nothing more is enqueued.
	w.drains.kick(w.ctx, app, 40*time.Millisecond)
	if n := len(w.tasks(QueueWebhooks)[TypeDeliver]); n != 2 {
		t.Errorf("%d drain tasks after a second kick, want 2", n)
	}
}

// A batch whose failed deliveries come due far apart (here a second and
// ten seconds, by their attempt counts) kicks a drain for the last of
// them too: the drain at the first claims only what is due then.
func TestDrainKicksForTheLastOfABatchsRetries(t *testing.T) {
	srv := newSink(t, http.StatusInternalServerError)
	w := newWorld(t, Options{AllowPrivate: true, RetrySchedule: []time.Duration{0, time.Second, 10 * time.Second, time.Minute}})
	appID, inst, _ := w.app(srv.URL)
	w.publish(map[string]int{"n": 1})                                        // attempt 1 fails: due again in 1 s
	w.delivery(appID, inst, "issue.created", DeliveryPending, w.clock.Now()) // attempt 2 fails: in 10 s
	start := time.Now()
	if err := w.dispatcher.drain(w.ctx, appID); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.received()); n != 2 {
		t.Fatalf("%d requests, want 2", n)
	}
	var at []time.Duration
	for _, ti := range w.tasks(QueueWebhooks)[TypeDeliver] {
		if ti.State == asynq.TaskStateScheduled {
			at = append(at, ti.NextProcessAt.Sub(start).Round(100*time.Millisecond))
		}
	}
	slices.Sort(at)
	if len(at) != 2 || at[0] > 1300*time.Millisecond || at[1] < 7*time.Second || at[1] > 13*time.Second {
		t.Errorf("drains due in %v, want one within about 1 s and one in about 10 s", at)
	}
}

// asynq hands a scheduled task to a worker once the second it is due in
// has begun, up to a second early: a later drain waits for its time before
// it claims, so that what it was kicked for is due when it looks.
func TestLaterDrainWaitsForItsTime(t *testing.T) {
	srv := newSink(t, http.StatusOK)
	w := newWorld(t, private())
	appID, _, _ := w.app(srv.URL)
	mux := asynq.NewServeMux()
	Register(mux, w.dispatcher, w.store, w.endpoints)
	w.publish(map[string]int{"n": 1}) // due now
	start := time.Now()
	task := NewDeliverLaterTask(appID, w.opts.Timeout, 400*time.Millisecond, w.clock.Now())
	if err := mux.ProcessTask(w.ctx, asynq.NewTask(task.Type(), task.Payload())); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 390*time.Millisecond {
		t.Errorf("the later drain ran after %v, before its time (400 ms)", took)
	}
	if n := len(srv.received()); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
	// A drain kicked at once does not wait.
	w.publish(map[string]int{"n": 2})
	start = time.Now()
	now := NewDeliverTask(appID, w.opts.Timeout)
	if err := mux.ProcessTask(w.ctx, asynq.NewTask(now.Type(), now.Payload())); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 300*time.Millisecond {
		t.Errorf("a drain to run at once took %v", took)
	}
}
