package webhooks

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"
)

// newFlakySink is a sink that answers 500 to a share fail of requests
// (seeded), 204 to the rest.
func newFlakySink(t *testing.T, seed uint64, fail float64) *sink {
	s := newSink(t, http.StatusNoContent)
	r := rand.New(rand.NewPCG(seed, 7))
	s.answer = func() int {
		if r.Float64() < fail {
			return http.StatusInternalServerError
		}
		return http.StatusNoContent
	}
	return s
}

// TestOrderingKeysDeliverInPublishOrder publishes generated sequences of
// events, some with ordering keys, to two apps whose endpoint fails a
// third of its requests, and drains them with three drains per app at
// once and sweeps beside them. It checks the arrivals against the model
// of NewEvent.OrderingKey: for each app and key, an event's first attempt
// comes after the last attempt of the key's previous event; events
// without a key, or of other keys, are not held back; every delivery ends
// delivered or failed for good, none left waiting.
func TestOrderingKeysDeliverInPublishOrder(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			srv := newFlakySink(t, seed, 1.0/3)
			w := newWorld(t, Options{AllowPrivate: true, RetrySchedule: []time.Duration{0, 0, 0, 0, 0, 0}})
			apps := []int64{}
			for range 2 {
				id, _, _ := w.app(srv.URL)
				apps = append(apps, id)
			}
			r := rand.New(rand.NewPCG(seed, 11))
			keys := []string{"", "", "issue-1", "issue-2", "issue-3"}
			var published []NewEvent
			for len(published) < 60 {
				// A batch of 1 to 8 events in one transaction, as
				// POST /api/0/event-batches/ publishes them.
				batch := make([]NewEvent, 1+r.IntN(8))
				for i := range batch {
					batch[i] = NewEvent{OrganizationID: w.org, Type: "issue.created", CreatedBy: "test",
						Data: map[string]int{"n": len(published) + i}, OrderingKey: keys[r.IntN(len(keys))]}
				}
				if err := w.outbox.Transaction(w.ctx, w.db, func(tx *gorm.DB) error {
					_, err := w.outbox.PublishMany(w.ctx, tx, batch)
					return err
				}); err != nil {
					t.Fatal(err)
				}
				published = append(published, batch...)
			}

			// Drain until nothing is pending: per app three drains at once,
			// and a sweep of both apps beside them.
			ctx, cancel := context.WithTimeout(w.ctx, time.Minute)
			defer cancel()
			for round := 0; w.count("deliveries", "status = 'pending'") > 0; round++ {
				if ctx.Err() != nil {
					t.Fatalf("after %d rounds, %d deliveries still pending", round, w.count("deliveries", "status = 'pending'"))
				}
				var wg sync.WaitGroup
				for _, app := range apps {
					for range 3 {
						wg.Go(func() {
							if err := w.dispatcher.drain(ctx, app); err != nil {
								t.Error(err)
							}
						})
					}
				}
				wg.Go(func() {
					if err := w.dispatcher.sweep(ctx, apps); err != nil {
						t.Error(err)
					}
				})
				wg.Wait()
			}

			// The model: which event and app each webhook-id is.
			type sent struct {
				app   int64
				event int
				key   string
			}
			byUUID := map[string]sent{}
			var ds []struct {
				UUID    string
				AppID   int64
				Data    int
				Status  string
				Ordered *string
			}
			if err := w.db.Raw(`SELECT d.uuid, d.app_id, (e.data->>'n')::int AS data, d.status, d.ordering_key AS ordered
				FROM deliveries d JOIN events e ON e.id = d.event_id`).Scan(&ds).Error; err != nil {
				t.Fatal(err)
			}
			if len(ds) != 2*len(published) {
				t.Fatalf("%d deliveries of %d events to 2 apps", len(ds), len(published))
			}
			for _, d := range ds {
				if d.Status != DeliverySucceeded && d.Status != DeliveryFailed {
					t.Errorf("delivery %s of event %d is %s", d.UUID, d.Data, d.Status)
				}
				if want := published[d.Data].OrderingKey; (d.Ordered == nil) != (want == "") || d.Ordered != nil && *d.Ordered != want {
					t.Errorf("event %d: delivery's ordering key %v, published %q", d.Data, d.Ordered, want)
				}
				byUUID[d.UUID] = sent{app: d.AppID, event: d.Data, key: published[d.Data].OrderingKey}
			}
			first, last := map[string]int{}, map[string]int{}
			var arrivals []string
			for _, h := range srv.received() {
				arrivals = append(arrivals, h.Header.Get("Webhook-Id"))
			}
			for i, id := range arrivals {
				if _, ok := first[id]; !ok {
					first[id] = i
				}
				last[id] = i
			}
			// Per app and key, the deliveries in publish order.
			chains := map[string][]string{}
			for id, s := range byUUID {
				if s.key != "" {
					k := fmt.Sprint(s.app, "/", s.key)
					chains[k] = append(chains[k], id)
				}
			}
			checked := 0
			for k, chain := range chains {
				slices.SortFunc(chain, func(a, b string) int { return byUUID[a].event - byUUID[b].event })
				for i := 1; i < len(chain); i++ {
					prev, next := chain[i-1], chain[i]
					if _, ok := first[next]; !ok {
						t.Fatalf("%s: event %d never sent", k, byUUID[next].event)
					}
					if first[next] < last[prev] {
						t.Errorf("%s: event %d was first sent (arrival %d) before event %d's last attempt (arrival %d)",
							k, byUUID[next].event, first[next], byUUID[prev].event, last[prev])
					}
					checked++
				}
			}
			if checked == 0 {
				t.Fatal("no two events shared a key: the generator checks nothing")
			}
			if len(arrivals) <= len(ds) {
				t.Fatalf("%d requests for %d deliveries: no retries, so nothing tested holding back", len(arrivals), len(ds))
			}
		})
	}
}

// TestOrderingKeysAreTheOrganizations: a key holds back the later events
// of its organization only. Another organization's event with the same
// key goes out while the first organization's is waiting for its retry,
// and that organization's next event waits.
func TestOrderingKeysAreTheOrganizations(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		var body struct {
			Data struct{ N int } `json:"data"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		if body.Data.N == 0 {
			rw.WriteHeader(http.StatusInternalServerError) // the first event fails, to be retried in a minute
			return
		}
		rw.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	w := newWorld(t, Options{AllowPrivate: true, RetrySchedule: []time.Duration{0, time.Minute}})
	app, _, _ := w.app(srv.URL)
	other := w.id("INSERT INTO organizations (slug, name) VALUES ('other-' || left(md5(random()::text), 8), 'Other') RETURNING id")
	for n, org := range []int64{w.org, other, w.org} {
		if err := w.outbox.Transaction(w.ctx, w.db, func(tx *gorm.DB) error {
			_, err := w.outbox.Publish(w.ctx, tx, NewEvent{OrganizationID: org, Type: "issue.created", CreatedBy: "test",
				Data: map[string]int{"n": n}, OrderingKey: "issue-1"})
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.dispatcher.drain(w.ctx, app); err != nil {
		t.Fatal(err)
	}
	var got []struct {
		N        int
		Status   string
		Attempts int
	}
	if err := w.db.Raw(`SELECT (e.data->>'n')::int AS n, d.status, d.attempts FROM deliveries d JOIN events e ON e.id = d.event_id
		WHERE d.app_id = ? ORDER BY d.id`, app).Scan(&got).Error; err != nil {
		t.Fatal(err)
	}
	want := []string{"0 pending 1", "1 succeeded 1", "2 pending 0"}
	for i, d := range got {
		if i >= len(want) || fmt.Sprint(d.N, " ", d.Status, " ", d.Attempts) != want[i] {
			t.Fatalf("deliveries (event, status, attempts) %v, want %v", got, want)
		}
	}
}

// TestSweepHandsBackOnlyAppsWithAKeyWaiting: a sweep that sends a keyed
// delivery hands its app back to a drain only when a later delivery of the
// key waits behind it (which would otherwise wait for the relay); a keyed
// event to many apps, each receiving it alone, costs no drain per app.
func TestSweepHandsBackOnlyAppsWithAKeyWaiting(t *testing.T) {
	srv := newSink(t, http.StatusNoContent)
	w := newWorld(t, Options{AllowPrivate: true})
	alone, _, _ := w.app(srv.URL)
	queued, queuedInst, _ := w.app(srv.URL)
	publish := func(n int) {
		t.Helper()
		if err := w.outbox.Transaction(w.ctx, w.db, func(tx *gorm.DB) error {
			_, err := w.outbox.Publish(w.ctx, tx, NewEvent{OrganizationID: w.org, Type: "issue.created", CreatedBy: "test",
				Data: map[string]int{"n": n}, OrderingKey: "issue-1"})
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	publish(0) // to both apps
	w.dir.mu.Lock()
	w.dir.recipients["issue.created"] = []Recipient{queuedInst}
	w.dir.mu.Unlock()
	publish(1) // to queued alone, behind its first
	if _, err := w.inspector.DeleteAllPendingTasks(QueueWebhooks); err != nil {
		t.Fatal(err)
	}

	if err := w.dispatcher.sweep(w.ctx, []int64{alone, queued}); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.received()); n != 2 {
		t.Fatalf("the sweep sent %d deliveries, want the first event's two", n)
	}
	var drains []int64
	for _, ti := range w.tasks(QueueWebhooks)[TypeDeliver] {
		var p deliverPayload
		if err := json.Unmarshal(ti.Payload, &p); err != nil {
			t.Fatal(err)
		}
		drains = append(drains, p.AppID)
	}
	if len(drains) != 1 || drains[0] != queued {
		t.Fatalf("drains enqueued for %v, want one for app %d (app %d has nothing waiting)", drains, queued, alone)
	}
	if err := w.dispatcher.drain(w.ctx, queued); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.received()); n != 3 {
		t.Errorf("after the handed-back drain %d deliveries, want 3", n)
	}
}
