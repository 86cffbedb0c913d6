package webhooks

import (
	"encoding/json"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/plugboard/plugboard/app/fault"
	"github.com/plugboard/plugboard/app/page"
)

func TestListDeliveriesFilters(t *testing.T) {
	w := newWorld(t, Options{})
	appID, inst, _ := w.app("https://example.com/hook")
	_, other, _ := w.app("https://other.example.com/hook")
	other.AppID = appID // a second installation's uuid, on this app's rows
	t0 := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
	ok := w.delivery(appID, inst, "issue.created", DeliverySucceeded, t0)
	failed := w.delivery(appID, inst, "issue.created", DeliveryFailed, t0.Add(time.Hour))
	test := w.delivery(appID, other, "webhook.test", DeliverySucceeded, t0.Add(2*time.Hour))
	pending := w.delivery(appID, inst, "issue.created", DeliveryPending, t0.Add(3*time.Hour))
	for _, tc := range []struct {
		name string
		q    DeliveryQuery
		want []Delivery // newest first
	}{
		{"all", DeliveryQuery{}, []Delivery{pending, test, failed, ok}},
		{"status", DeliveryQuery{Status: DeliverySucceeded}, []Delivery{test, ok}},
		{"event type", DeliveryQuery{EventType: "webhook.test"}, []Delivery{test}},
		{"installation", DeliveryQuery{InstallationUUID: inst.InstallationUUID}, []Delivery{pending, failed, ok}},
		{"since", DeliveryQuery{Since: ptr(t0.Add(time.Hour))}, []Delivery{pending, test, failed}},
		{"until", DeliveryQuery{Until: ptr(t0.Add(time.Hour))}, []Delivery{ok}},
		{"range and status", DeliveryQuery{Status: DeliveryPending, Since: ptr(t0), Until: ptr(t0.Add(4 * time.Hour))}, []Delivery{pending}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := w.store.ListDeliveries(w.ctx, appID, tc.q, page.Request{})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := uuids(p.Items), uuids(tc.want); !equal(got, want) {
				t.Errorf("got %v, want %v", got, want)
			}
		})
	}
	for _, tc := range []struct {
		name  string
		q     DeliveryQuery
		field string
	}{
		{"bad status", DeliveryQuery{Status: "lost"}, "status"},
		{"bad installation", DeliveryQuery{InstallationUUID: "nope"}, "installation"},
		{"until before since", DeliveryQuery{Since: ptr(t0), Until: ptr(t0)}, "until"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := w.store.ListDeliveries(w.ctx, appID, tc.q, page.Request{})
			if f := fieldsOf(err); f[tc.field] == "" {
				t.Errorf("err %v, want a %s field error", err, tc.field)
			}
		})
	}
	// Another app sees none of them.
	if p, err := w.store.ListDeliveries(w.ctx, appID+1000, DeliveryQuery{}, page.Request{}); err != nil || len(p.Items) != 0 {
		t.Errorf("another app: %v, %v", p.Items, err)
	}
}

func TestListDeliveriesPaginates(t *testing.T) {
	w := newWorld(t, Options{})
	appID, inst, _ := w.app("https://example.com/hook")
	t0 := time.Now().Add(-time.Hour)
	var all []Delivery
	for i := range 5 {
		all = append([]Delivery{w.delivery(appID, inst, "issue.created", DeliverySucceeded, t0.Add(time.Duration(i)*time.Minute))}, all...)
	}
	var seen []string
	r := page.Request{Limit: 2}
	for n := 0; ; n++ {
		p, err := w.store.ListDeliveries(w.ctx, appID, DeliveryQuery{}, r)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Items) > 2 || n > 3 {
			t.Fatalf("page %d: %d items", n, len(p.Items))
		}
		seen = append(seen, uuids(p.Items)...)
		if !p.HasNext {
			break
		}
		r = page.Request{Limit: 2, Cursor: p.Next}
	}
	if !equal(seen, uuids(all)) {
		t.Errorf("pages gave %v, want %v", seen, uuids(all))
	}
}

func TestGetDeliveryWithPayloadAndAttempts(t *testing.T) {
	w := newWorld(t, Options{})
	appID, inst, _ := w.app("https://example.com/hook")
	t0 := time.Now().UTC().Truncate(time.Second)
	d := w.delivery(appID, inst, "issue.created", DeliveryFailed, t0)
	w.attempt(d, 500, ClassHTTPStatus, 20*time.Millisecond, t0)
	w.attempt(d, 200, "", 10*time.Millisecond, t0.Add(time.Second))
	got, err := w.store.GetDelivery(w.ctx, appID, d.UUID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != d.ID || len(got.Attempts) != 2 || got.Attempts[0].ErrorClass != ClassHTTPStatus || *got.Attempts[1].ResponseStatus != 200 {
		t.Errorf("delivery %+v", got)
	}
	var env struct {
		ID           string
		Type         string
		Installation struct{ UUID string }
		Data         map[string]int
	}
	if err := json.Unmarshal(got.Payload, &env); err != nil || env.ID != d.UUID || env.Type != "issue.created" ||
		env.Installation.UUID != inst.InstallationUUID || env.Data["n"] != 1 {
		t.Errorf("payload %s (%v)", got.Payload, err)
	}
	for _, id := range []string{"not-a-uuid", "7f0c2a52-3bb3-4d67-9e55-000000000000"} {
		if _, err := w.store.GetDelivery(w.ctx, appID, id); !isKind(err, fault.KindNotFound) {
			t.Errorf("%s: err %v, want not found", id, err)
		}
	}
	if _, err := w.store.GetDelivery(w.ctx, appID+1000, d.UUID); !isKind(err, fault.KindNotFound) {
		t.Errorf("another app's delivery: err %v", err)
	}
}

func TestStatsBuckets(t *testing.T) {
	w := newWorld(t, Options{})
	appID, inst, _ := w.app("https://example.com/hook")
	since := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	d := w.delivery(appID, inst, "issue.created", DeliverySucceeded, since)
	// Bucket 0: two successes and a timeout; bucket 1: nothing; bucket 2:
	// one http_status failure.
	w.attempt(d, 200, "", 10*time.Millisecond, since.Add(time.Minute))
	w.attempt(d, 200, "", 30*time.Millisecond, since.Add(2*time.Minute))
	w.attempt(d, 0, ClassTimeout, 50*time.Millisecond, since.Add(3*time.Minute))
	w.attempt(d, 500, ClassHTTPStatus, 20*time.Millisecond, since.Add(2*time.Hour+time.Minute))
	w.attempt(d, 200, "", time.Millisecond, since.Add(-time.Minute)) // before the range
	buckets, total, err := w.store.Stats(w.ctx, appID, since, since.Add(3*time.Hour), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(buckets) != 3 {
		t.Fatalf("%d buckets", len(buckets))
	}
	for i, tc := range []struct {
		attempts, succeeded int
		classes             map[string]int
	}{{3, 2, map[string]int{ClassTimeout: 1}}, {0, 0, map[string]int{}}, {1, 0, map[string]int{ClassHTTPStatus: 1}}} {
		b := buckets[i]
		if !b.Start.Equal(since.Add(time.Duration(i)*time.Hour)) || b.Attempts != tc.attempts || b.Succeeded != tc.succeeded ||
			b.Failed != tc.attempts-tc.succeeded || !equalMap(b.ErrorClasses, tc.classes) {
			t.Errorf("bucket %d: %+v", i, b)
		}
	}
	if b := buckets[0]; b.SuccessRate < 0.66 || b.SuccessRate > 0.67 || b.P50 != 30 {
		t.Errorf("bucket 0 rate %v p50 %v", b.SuccessRate, b.P50)
	}
	if total.Attempts != 4 || total.Succeeded != 2 || total.SuccessRate != 0.5 || !equalMap(total.ErrorClasses, map[string]int{ClassTimeout: 1, ClassHTTPStatus: 1}) {
		t.Errorf("total %+v", total)
	}
	for _, tc := range []struct {
		name         string
		until        time.Time
		res          time.Duration
		invalidField string
	}{
		{"until not after since", since, time.Hour, "until"},
		{"resolution too fine", since.Add(time.Hour), time.Second, "resolution"},
		{"too many buckets", since.Add(1001 * time.Minute), time.Minute, "resolution"},
	} {
		_, _, err := w.store.Stats(w.ctx, appID, since, tc.until, tc.res)
		if fieldsOf(err)[tc.invalidField] == "" {
			t.Errorf("%s: err %v", tc.name, err)
		}
	}
}

func TestDropOldAttemptsUsesTheClock(t *testing.T) {
	w := newWorld(t, Options{Retention: 24 * time.Hour})
	appID, inst, _ := w.app("https://example.com/hook")
	now := w.clock.Now()
	d := w.delivery(appID, inst, "issue.created", DeliverySucceeded, now)
	for _, age := range []time.Duration{0, time.Hour, 23 * time.Hour, 25 * time.Hour, 48 * time.Hour} {
		w.attempt(d, 200, "", time.Millisecond, now.Add(-age))
	}
	for _, tc := range []struct {
		advance time.Duration
		dropped int64
	}{{0, 2}, {0, 0}, {2 * time.Hour, 1}, {24 * time.Hour, 2}} {
		w.clock.Advance(tc.advance)
		n, err := w.store.DropOldAttempts(w.ctx)
		if err != nil || n != tc.dropped {
			t.Errorf("after +%s: dropped %d (%v), want %d", tc.advance, n, err, tc.dropped)
		}
	}
}

func uuids(ds []Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.UUID
	}
	return out
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func equalMap(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// fieldsOf is an invalid-input error's field messages (nil otherwise).
func fieldsOf(err error) map[string]string {
	var fe *fault.Error
	if errors.As(err, &fe) {
		return fe.Fields
	}
	return nil
}

func isKind(err error, k fault.Kind) bool {
	var fe *fault.Error
	return errors.As(err, &fe) && fe.Kind == k
}

// The batches drains hold open at once are bounded by the pool's share
// (a fifth, at least two, left to the API) and by heldPerCPU a CPU,
// whichever is smaller.
func TestStoreBoundsTheBatchesHeldOpen(t *testing.T) {
	w := newWorld(t, Options{})
	sqlDB, err := w.db.DB()
	if err != nil {
		t.Fatal(err)
	}
	perCPU := heldPerCPU * runtime.GOMAXPROCS(0)
	for _, c := range []struct{ pool, want int }{
		{0, perCPU},
		{5, min(perCPU, 3)},
		{40, min(perCPU, 32)},
		{1000, min(perCPU, 800)},
	} {
		sqlDB.SetMaxOpenConns(c.pool)
		s, err := NewStore(w.db, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if got := cap(s.held); got != c.want {
			t.Errorf("pool of %d: %d batches held open at most, want %d", c.pool, got, c.want)
		}
	}
}
