package webhooks

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"gorm.io/gorm"

	"github.com/plugboard/plugboard/app/page"
)

// hostEndpoint inserts a host endpoint at url, known to the directory
// under its destination key with a fresh secret.
func (w *world) hostEndpoint(url string) (id, key int64, secret string) {
	w.t.Helper()
	id = w.id(`INSERT INTO host_endpoints (url, event_types, secret) VALUES (?, '["app.published"]', '\x00') RETURNING id`, url)
	key, secret = HostKey(id), NewSecret()
	w.dir.mu.Lock()
	w.dir.endpoints[key] = &Endpoint{AppID: key, Slug: "host", URL: url, Secrets: []string{secret}}
	w.dir.mu.Unlock()
	return id, key, secret
}

// publishHost publishes app.published to host endpoints ids, in a
// transaction (inside: the drains are kicked after commit).
func (w *world) publishHost(inside bool, ids ...int64) {
	w.t.Helper()
	ev := NewEvent{Type: "app.published", Data: map[string]any{"app": map[string]any{"slug": "pager"}}, HostEndpoints: ids, CreatedBy: "test"}
	var err error
	if inside {
		err = w.outbox.Transaction(w.ctx, w.db, func(tx *gorm.DB) error { _, err := w.outbox.Publish(w.ctx, tx, ev); return err })
	} else {
		err = w.db.Transaction(func(tx *gorm.DB) error { _, err := w.outbox.Publish(w.ctx, tx, ev); return err })
	}
	if err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) hostDeliveries(id int64) []Delivery {
	w.t.Helper()
	var out []Delivery
	if err := w.db.Where("host_endpoint_id = ?", id).Order("id").Find(&out).Error; err != nil {
		w.t.Fatal(err)
	}
	return out
}

// A host endpoint is a destination of its own: its deliveries are drained,
// relayed, signed, logged, paused, replayed and redelivered by its key,
// and never mix with an app's.
func TestHostEndpointIsADestinationOfItsOwn(t *testing.T) {
	srv, appSrv := newSink(t, http.StatusOK), newSink(t, http.StatusOK)
	w := newWorld(t, Options{AllowPrivate: true, RelayGrace: time.Minute})
	appID, _, _ := w.app(appSrv.URL)
	hostID, key, secret := w.hostEndpoint(srv.URL)

	// Published outside Outbox.Transaction, and the queue lost besides:
	// the relay finds it in Postgres and kicks the host endpoint's drain.
	w.publishHost(false, hostID)
	ds := w.hostDeliveries(hostID)
	if len(ds) != 1 || ds[0].AppID != 0 || ds[0].HostEndpointID == nil || *ds[0].HostEndpointID != hostID || ds[0].Status != DeliveryPending {
		t.Fatalf("deliveries %+v", ds)
	}
	if err := w.rdb.FlushDB(w.ctx).Err(); err != nil {
		t.Fatal(err)
	}
	w.clock.Advance(2 * time.Minute)
	if n, err := w.dispatcher.Relay(w.ctx); err != nil || n != 1 {
		t.Fatalf("relay: %d, %v", n, err)
	}
	drains := w.tasks(QueueWebhooks)[TypeDeliver]
	if len(drains) != 1 {
		t.Fatalf("%d drains", len(drains))
	}
	var p deliverPayload
	if err := json.Unmarshal(drains[0].Payload, &p); err != nil || p.AppID != key {
		t.Fatalf("drain of %d (%v), want %d", p.AppID, err, key)
	}
	if err := w.dispatcher.drain(w.ctx, key); err != nil {
		t.Fatal(err)
	}
	hits := srv.received()
	if len(hits) != 1 || len(appSrv.received()) != 0 {
		t.Fatalf("%d host requests, %d app requests", len(hits), len(appSrv.received()))
	}
	wh, _ := standardwebhooks.NewWebhook(secret)
	if err := wh.Verify(hits[0].Body, hits[0].Header); err != nil {
		t.Errorf("verification: %v", err)
	}
	if hits[0].Header.Get("Plugboard-Event") != "app.published" || hits[0].Header.Get("Plugboard-Installation") != "" {
		t.Errorf("headers %v", hits[0].Header)
	}

	// Its log and figures are its own.
	log, err := w.store.ListDeliveries(w.ctx, key, DeliveryQuery{}, page.Request{Limit: 10})
	if err != nil || len(log.Items) != 1 || log.Items[0].Status != DeliverySucceeded || log.Items[0].Attempts != 1 {
		t.Fatalf("host log %+v, %v", log.Items, err)
	}
	if other, _ := w.store.ListDeliveries(w.ctx, appID, DeliveryQuery{}, page.Request{Limit: 10}); len(other.Items) != 0 {
		t.Errorf("the app's log shows %d host deliveries", len(other.Items))
	}
	det, err := w.store.GetDelivery(w.ctx, key, log.Items[0].UUID)
	if err != nil || len(det.Attempts) != 1 || det.Attempts[0].AppID != key || det.Attempts[0].URL != srv.URL {
		t.Errorf("detail %+v, %v", det, err)
	}
	if _, err := w.store.GetDelivery(w.ctx, appID, log.Items[0].UUID); err == nil {
		t.Error("the app reads a host delivery")
	}
	_, total, err := w.store.Stats(w.ctx, key, time.Now().Add(-time.Hour), time.Now().Add(time.Hour), time.Hour)
	if err != nil || total.Attempts != 1 || total.Succeeded != 1 {
		t.Errorf("stats %+v, %v", total, err)
	}

	// Redelivered by its key, not by an app's.
	if _, err := w.endpoints.Redeliver(w.ctx, appID, []string{log.Items[0].UUID}); err == nil {
		t.Error("an app redelivered a host delivery")
	}
	if n, err := w.endpoints.Redeliver(w.ctx, key, []string{log.Items[0].UUID}); err != nil || n != 1 {
		t.Fatalf("redeliver: %d, %v", n, err)
	}
	if err := w.dispatcher.drain(w.ctx, key); err != nil || len(srv.received()) != 2 {
		t.Fatalf("redelivery drain: %v, %d requests", err, len(srv.received()))
	}

	// Disabled: new deliveries wait paused, the app's endpoint is untouched;
	// enabled again, they are replayed.
	if err := w.endpoints.Disable(w.ctx, key, "Gone fishing."); err != nil {
		t.Fatal(err)
	}
	if st, _ := w.endpoints.State(w.ctx, key); st.Status != EndpointDisabled || st.AppID != key {
		t.Errorf("host state %+v", st)
	}
	if st, _ := w.endpoints.State(w.ctx, appID); st.Status != EndpointEnabled {
		t.Errorf("app state %+v", st)
	}
	if len(w.dir.changes) != 1 || w.dir.changes[0] != itoa(key)+" disabled Gone fishing." {
		t.Errorf("directory told %q", w.dir.changes)
	}
	w.publishHost(true, hostID)
	if ds := w.hostDeliveries(hostID); ds[len(ds)-1].Status != DeliveryPaused {
		t.Fatalf("published to a disabled host endpoint: %+v", ds[len(ds)-1])
	}
	enabled := EndpointEnabled
	if err := w.outbox.Transaction(w.ctx, w.db, func(tx *gorm.DB) error {
		return w.endpoints.Set(w.ctx, tx, key, &enabled, "", ptr(5), nil)
	}); err != nil {
		t.Fatal(err)
	}
	w.endpoints.Forget(key)
	if st, _ := w.endpoints.State(w.ctx, key); st.Status != EndpointEnabled || st.RateLimit == nil || *st.RateLimit != 5 {
		t.Errorf("after enabling %+v", st)
	}
	if err := w.dispatcher.drain(w.ctx, key); err != nil || len(srv.received()) != 3 {
		t.Fatalf("replay: %v, %d requests", err, len(srv.received()))
	}

	// Deleting the host endpoint deletes its deliveries (foreign key), and
	// their attempts (the deliveries' trigger, migration 00022).
	var sent []int64
	for _, d := range w.hostDeliveries(hostID) {
		sent = append(sent, d.ID)
	}
	if n := w.count("attempts", "delivery_id = ANY(?)", pgArray(sent)); n == 0 {
		t.Fatalf("no attempts of the host endpoint's %d deliveries before the delete", len(sent))
	}
	w.exec("DELETE FROM host_endpoints WHERE id = ?", hostID)
	if ds := w.hostDeliveries(hostID); len(ds) != 0 {
		t.Errorf("%d deliveries left", len(ds))
	}
	if n := w.count("attempts", "delivery_id = ANY(?)", pgArray(sent)); n != 0 {
		t.Errorf("%d attempts of the deleted deliveries left", n)
	}
}
