package webhooks

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// concurrency counts the sends running at once, and the most there were.
type concurrency struct{ now, most atomic.Int32 }

func (c *concurrency) enter() {
	n := c.now.Add(1)
	for m := c.most.Load(); n > m && !c.most.CompareAndSwap(m, n); m = c.most.Load() {
	}
}

func (c *concurrency) leave() { c.now.Add(-1) }

// sendChunk sends every index of its range once, and wg is done only
// after the last send returned; quick sends are made by a few senders one
// after another, slow ones get more senders until all of them run at once.
func TestSendChunk(t *testing.T) {
	cases := []struct {
		name     string
		from, to int
		each     time.Duration
		// at most this many at once, and within this long
		most   int32
		within time.Duration
	}{
		{"one", 3, 4, 0, 1, time.Second},
		{"fewer than the first senders", 0, 10, time.Millisecond, 10, time.Second},
		// 1,000 quick sends: not a goroutine each (a machine stalled for
		// 50 ms may grow the senders, never to the whole chunk).
		{"many quick", 100, 1100, 0, 256, 5 * time.Second},
		// 200 sends of 100 ms: 16 senders one after another would take
		// 1.3 s; doubling from 50 ms on, every 10 ms, all 200 run by
		// about 90 ms.
		{"many slow", 0, 200, 100 * time.Millisecond, 200, 600 * time.Millisecond},
		// 1,000 sends of 40 ms, each sender's next coming well within
		// slowAfter: 2.5 s one after another by 16; after turnsFor the
		// rest start at once.
		{"taking turns for long", 0, 1000, 40 * time.Millisecond, 1000, 1800 * time.Millisecond},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var wg sync.WaitGroup
			var at concurrency
			sent := make([]atomic.Int32, c.to)
			start := time.Now()
			sendChunk(&wg, c.from, c.to, func(j int) {
				at.enter()
				defer at.leave()
				sent[j].Add(1)
				time.Sleep(c.each)
			})
			wg.Wait()
			took := time.Since(start)
			for j := range sent {
				want := int32(0)
				if j >= c.from {
					want = 1
				}
				if got := sent[j].Load(); got != want {
					t.Errorf("index %d sent %d times, want %d", j, got, want)
				}
			}
			if at.now.Load() != 0 {
				t.Errorf("%d sends still running after wg", at.now.Load())
			}
			if m := at.most.Load(); m > c.most || (c.each >= 100*time.Millisecond && m != c.most) {
				t.Errorf("at most %d at once, want %d", m, c.most)
			}
			if took > c.within {
				t.Errorf("took %v, want under %v", took, c.within)
			}
		})
	}
}

// A drain of an app that allows 64 requests in flight to a partner that
// takes 300 ms to answer has all 64 of its batch in flight at once: the
// batch takes one answer's time, not four.
func TestDrainGrowsItsSendersForASlowPartner(t *testing.T) {
	var at concurrency
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		at.enter()
		defer at.leave()
		time.Sleep(300 * time.Millisecond)
	}))
	t.Cleanup(srv.Close)
	w := newWorld(t, Options{AllowPrivate: true, DefaultRateLimit: 10000, DefaultMaxInFlight: 64})
	appID, _, _ := w.app(srv.URL)
	for i := range 64 {
		w.publish(map[string]int{"n": i})
	}
	start := time.Now()
	if err := w.dispatcher.drain(w.ctx, appID); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 900*time.Millisecond {
		t.Errorf("the drain took %v for 64 requests of 300 ms with 64 allowed in flight", took)
	}
	if m := at.most.Load(); m != 64 {
		t.Errorf("at most %d requests in flight, want 64", m)
	}
	for _, d := range w.deliveries(appID) {
		if d.Status != DeliverySucceeded {
			t.Errorf("delivery %d: %s", d.ID, d.Status)
		}
	}
}
