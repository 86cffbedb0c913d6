package webhooks

import (
	"encoding/json"
	"testing"
	"time"

	"gorm.io/gorm"
)

func TestEndpointsSetLimitsAndState(t *testing.T) {
	w := newWorld(t, Options{DefaultRateLimit: 7, DefaultMaxInFlight: 3})
	appID, _, _ := w.app("https://example.com/hook")
	st, err := w.endpoints.State(w.ctx, appID)
	if err != nil || st.Status != EndpointEnabled {
		t.Fatalf("fresh state %+v, %v", st, err)
	}
	if r, f := w.endpoints.Limits(st); r != 7 || f != 3 {
		t.Errorf("default limits %d, %d", r, f)
	}
	for _, tc := range []struct {
		name           string
		rate, inFlight *int
		wantR, wantF   int
	}{
		{"rate", ptr(100), nil, 100, 3},
		{"in flight keeps rate", nil, ptr(9), 100, 9},
		{"both", ptr(5), ptr(1), 5, 1},
	} {
		if err := w.endpoints.Set(w.ctx, w.db, appID, nil, "", tc.rate, tc.inFlight); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		st, _ := w.endpoints.State(w.ctx, appID)
		if r, f := w.endpoints.Limits(st); r != tc.wantR || f != tc.wantF {
			t.Errorf("%s: limits %d, %d; want %d, %d", tc.name, r, f, tc.wantR, tc.wantF)
		}
	}
}

func TestValidateEndpointUpdate(t *testing.T) {
	for _, tc := range []struct {
		name           string
		status         *string
		rate, inFlight *int
		field          string // "" when valid
	}{
		{"nothing", nil, nil, nil, ""},
		{"enabled", ptr(EndpointEnabled), ptr(1), ptr(10000), ""},
		{"bad status", ptr("paused"), nil, nil, "webhookStatus"},
		{"rate zero", nil, ptr(0), nil, "webhookRateLimit"},
		{"rate too high", nil, ptr(100001), nil, "webhookRateLimit"},
		{"in flight too high", nil, nil, ptr(10001), "webhookMaxInFlight"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateEndpointUpdate(tc.status, tc.rate, tc.inFlight)
			if tc.field == "" && err != nil || tc.field != "" && fieldsOf(err)[tc.field] == "" {
				t.Errorf("err %v, want field %q", err, tc.field)
			}
		})
	}
}

func TestDisablePausesAndReenableReplays(t *testing.T) {
	w := newWorld(t, Options{})
	appID, inst, _ := w.app("https://example.com/hook")
	now := time.Now()
	pending := w.delivery(appID, inst, "issue.created", DeliveryPending, now)
	done := w.delivery(appID, inst, "issue.created", DeliverySucceeded, now)
	for range 2 { // a second Disable changes nothing and tells nobody
		if err := w.endpoints.Disable(w.ctx, appID, "Gone fishing."); err != nil {
			t.Fatal(err)
		}
	}
	if len(w.dir.changes) != 1 || w.dir.changes[0] != itoa(appID)+" disabled Gone fishing." {
		t.Errorf("directory told %q", w.dir.changes)
	}
	st, _ := w.endpoints.State(w.ctx, appID)
	if st.Status != EndpointDisabled || st.DisabledReason != "Gone fishing." || st.DisabledAt == nil {
		t.Errorf("state %+v", st)
	}
	statuses := func() map[string]string {
		out := map[string]string{}
		for _, d := range w.deliveries(appID) {
			out[d.UUID] = d.Status
		}
		return out
	}
	if s := statuses(); s[pending.UUID] != DeliveryPaused || s[done.UUID] != DeliverySucceeded {
		t.Fatalf("after disable %v", s)
	}
	// Re-enabled inside a transaction: replayed, and the drain enqueued
	// only once it commits.
	err := w.outbox.Transaction(w.ctx, w.db, func(tx *gorm.DB) error {
		if err := w.endpoints.Set(w.ctx, tx, appID, ptr(EndpointEnabled), "", nil, nil); err != nil {
			return err
		}
		if n := len(w.tasks(QueueWebhooks)[TypeDeliver]); n != 0 {
			t.Errorf("%d drains before commit", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if s := statuses(); s[pending.UUID] != DeliveryPending {
		t.Errorf("after enable %v", s)
	}
	if n := len(w.tasks(QueueWebhooks)[TypeDeliver]); n != 1 {
		t.Errorf("%d drains after commit", n)
	}
	// Disabled through Set: paused again, the reason kept.
	if err := w.endpoints.Set(w.ctx, w.db, appID, ptr(EndpointDisabled), "By hand.", nil, nil); err != nil {
		t.Fatal(err)
	}
	if s := statuses(); s[pending.UUID] != DeliveryPaused {
		t.Errorf("after Set disabled %v", s)
	}
	if st, _ := w.endpoints.State(w.ctx, appID); st.DisabledReason != "By hand." {
		t.Errorf("state %+v", st)
	}
}

func TestRedeliver(t *testing.T) {
	w := newWorld(t, Options{})
	appID, inst, _ := w.app("https://example.com/hook")
	otherApp, otherInst, _ := w.app("https://other.example.com/hook")
	now := time.Now()
	failed := w.delivery(appID, inst, "issue.created", DeliveryFailed, now)
	ok := w.delivery(appID, inst, "issue.created", DeliverySucceeded, now)
	pending := w.delivery(appID, inst, "issue.created", DeliveryPending, now)
	foreign := w.delivery(otherApp, otherInst, "issue.created", DeliveryFailed, now)
	n, err := w.endpoints.Redeliver(w.ctx, appID, []string{failed.UUID, ok.UUID, pending.UUID})
	if err != nil || n != 2 {
		t.Fatalf("redelivered %d, %v", n, err)
	}
	for _, d := range w.deliveries(appID) {
		if d.Status != DeliveryPending || d.UUID != pending.UUID && (d.MaxAttempts != d.Attempts+1 || d.CompletedAt != nil) {
			t.Errorf("delivery %+v", d)
		}
	}
	if n := len(w.tasks(QueueWebhooks)[TypeDeliver]); n != 1 {
		t.Errorf("%d drains", n)
	}
	for _, tc := range []struct {
		name string
		ids  []string
	}{
		{"none", nil},
		{"not a uuid", []string{"x"}},
		{"another app's", []string{foreign.UUID}},
		{"too many", make([]string, 1001)},
	} {
		if _, err := w.endpoints.Redeliver(w.ctx, appID, tc.ids); fieldsOf(err)["deliveries"] == "" {
			t.Errorf("%s: err %v", tc.name, err)
		}
	}
}

func TestRedeliverFailedRunsAsAJob(t *testing.T) {
	w := newWorld(t, Options{})
	appID, inst, _ := w.app("https://example.com/hook")
	t0 := w.clock.Now().Add(-time.Hour)
	old := w.delivery(appID, inst, "issue.created", DeliveryFailed, t0.Add(-24*time.Hour))
	recent := w.delivery(appID, inst, "issue.created", DeliveryFailed, t0)
	w.delivery(appID, inst, "issue.created", DeliverySucceeded, t0)
	n, err := w.endpoints.RedeliverFailed(w.ctx, appID, ptr(t0.Add(-time.Minute)), nil)
	if err != nil || n != 1 {
		t.Fatalf("counted %d, %v", n, err)
	}
	jobs := w.tasks(QueueDefault)[TypeRedeliver]
	if len(jobs) != 1 || jobs[0].MaxRetry != 5 {
		t.Fatalf("redeliver jobs %+v", jobs)
	}
	var p redeliverPayload
	if err := json.Unmarshal(jobs[0].Payload, &p); err != nil || p.AppID != appID {
		t.Fatalf("payload %s", jobs[0].Payload)
	}
	// One that fails after the job started is not picked up by it.
	late := w.delivery(appID, inst, "issue.created", DeliveryFailed, t0)
	w.exec("UPDATE deliveries SET completed_at = ? WHERE id = ?", w.clock.Now().Add(time.Minute), late.ID)
	if err := w.endpoints.redeliverFailed(w.ctx, p); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, d := range w.deliveries(appID) {
		got[d.UUID] = d.Status
	}
	if got[recent.UUID] != DeliveryPending || got[old.UUID] != DeliveryFailed || got[late.UUID] != DeliveryFailed {
		t.Errorf("after the job: %v", got)
	}
	if n, err := w.endpoints.RedeliverFailed(w.ctx, appID, ptr(t0), ptr(t0)); n != 0 || fieldsOf(err)["until"] == "" {
		t.Errorf("empty range: %d, %v", n, err)
	}
}

func TestEndpointHealthDisablesAfterTheWindow(t *testing.T) {
	w := newWorld(t, Options{DisableAfter: time.Hour})
	appID, _, _ := w.app("https://example.com/hook")
	status := func() string {
		st, err := w.endpoints.State(w.ctx, appID)
		if err != nil {
			t.Fatal(err)
		}
		return st.Status
	}
	if err := w.endpoints.health(w.ctx, appID, false, true, false); err != nil || status() != EndpointEnabled {
		t.Fatalf("first failure: %v, %s", err, status())
	}
	w.clock.Advance(59 * time.Minute)
	if err := w.endpoints.health(w.ctx, appID, false, true, false); err != nil || status() != EndpointEnabled {
		t.Fatalf("inside the window: %v, %s", err, status())
	}
	// A success clears the mark: the window starts again.
	if err := w.endpoints.health(w.ctx, appID, true, true, false); err != nil {
		t.Fatal(err)
	}
	if st, _ := w.endpoints.State(w.ctx, appID); st.FailingSince != nil {
		t.Errorf("failing since %v after a success", st.FailingSince)
	}
	w.endpoints.health(w.ctx, appID, false, true, false)
	w.clock.Advance(61 * time.Minute)
	if err := w.endpoints.health(w.ctx, appID, false, true, false); err != nil || status() != EndpointDisabled {
		t.Fatalf("past the window: %v, %s", err, status())
	}
	if len(w.dir.changes) != 1 {
		t.Errorf("directory told %q", w.dir.changes)
	}
	gone, _, _ := w.app("https://gone.example.com/hook")
	if err := w.endpoints.health(w.ctx, gone, false, true, true); err != nil {
		t.Fatal(err)
	}
	if st, _ := w.endpoints.State(w.ctx, gone); st.Status != EndpointDisabled || st.DisabledReason != "The endpoint answered 410 Gone." {
		t.Errorf("410: %+v", st)
	}
}

func TestEndpointCacheTTLAndForget(t *testing.T) {
	w := newWorld(t, Options{EndpointCacheTTL: time.Minute})
	appID, _, _ := w.app("https://one.example.com/hook")
	url := func() string {
		c, err := w.endpoints.endpoint(w.ctx, appID)
		if err != nil {
			t.Fatal(err)
		}
		return c.ep.URL
	}
	url()
	w.dir.setURL(appID, "https://two.example.com/hook")
	if got := url(); got != "https://one.example.com/hook" {
		t.Errorf("within the TTL: %s", got)
	}
	w.clock.Advance(time.Minute)
	if got := url(); got != "https://two.example.com/hook" {
		t.Errorf("past the TTL: %s", got)
	}
	w.dir.setURL(appID, "https://three.example.com/hook")
	w.endpoints.Forget(appID)
	if got := url(); got != "https://three.example.com/hook" {
		t.Errorf("after Forget: %s", got)
	}
	if s, err := w.endpoints.Signer(w.ctx, appID); err != nil || s == nil {
		t.Errorf("signer %v, %v", s, err)
	}
	w.dir.mu.Lock()
	w.dir.endpoints[appID].URL, w.dir.endpoints[appID].Secrets = "", nil
	w.dir.mu.Unlock()
	w.endpoints.Forget(appID)
	if _, err := w.endpoints.Signer(w.ctx, appID); err == nil {
		t.Error("a signer without secrets")
	}
}

// Two sweeps finishing together track health for the same apps with the
// sets crossed (what one saw succeed the other saw fail): neither may fail
// on a deadlock; a last call, alone, then leaves each app as it says.
func TestEndpointHealthManyCrossedSetsDoNotDeadlock(t *testing.T) {
	w := newWorld(t, Options{DisableAfter: time.Hour})
	var apps []int64
	for range 200 {
		id, _, _ := w.app("https://example.com/hook")
		apps = append(apps, id)
	}
	// Rows stored against app order, so a scan meets them out of turn.
	for i := len(apps) - 1; i >= 0; i-- {
		w.exec("INSERT INTO endpoints (app_id) VALUES (?) ON CONFLICT DO NOTHING", apps[i])
	}
	crossed := func(flip bool) map[int64]healthOf {
		m := map[int64]healthOf{}
		for i, id := range apps {
			ok := (i%2 == 0) != flip
			m[id] = healthOf{anyOK: ok, anyFail: !ok}
		}
		return m
	}
	for round := range 30 {
		w.exec("UPDATE endpoints SET failing_since = now() WHERE app_id = ANY(?)", pgArray(apps))
		errs := make(chan error, 2)
		for _, flip := range []bool{false, true} {
			go func() { errs <- w.endpoints.healthMany(w.ctx, crossed(flip)) }()
		}
		for range 2 {
			if err := <-errs; err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
	}
	if err := w.endpoints.healthMany(w.ctx, crossed(false)); err != nil {
		t.Fatal(err)
	}
	for i, id := range apps {
		st, err := w.endpoints.State(w.ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if failing := st.FailingSince != nil; failing != (i%2 == 1) {
			t.Errorf("app %d (%d): failing %v after the last round", i, id, failing)
		}
	}
}
