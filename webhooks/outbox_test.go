package webhooks

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"gorm.io/gorm"
)

func TestPublishFansOutOneDeliveryPerRecipient(t *testing.T) {
	w := newWorld(t, Options{})
	live, _, _ := w.app("https://live.example.com/hook")
	off, _, _ := w.app("https://off.example.com/hook")
	if err := w.endpoints.Disable(w.ctx, off, "test"); err != nil {
		t.Fatal(err)
	}
	ev := w.publish(map[string]string{"title": "fire"})
	if ev.DeliveriesCount != 2 || ev.UUID == "" {
		t.Fatalf("event %+v", ev)
	}
	var stored Event
	if err := w.db.Take(&stored, ev.ID).Error; err != nil {
		t.Fatal(err)
	}
	if stored.DeliveriesCount != 2 || string(stored.Data) != `{"title":"fire"}` {
		t.Errorf("stored event %+v, data %s", stored, stored.Data)
	}
	for _, tc := range []struct {
		app    int64
		status string
		due    bool
	}{{live, DeliveryPending, true}, {off, DeliveryPaused, false}} {
		ds := w.deliveries(tc.app)
		if len(ds) != 1 {
			t.Fatalf("app %d: %d deliveries", tc.app, len(ds))
		}
		d := ds[0]
		if d.Status != tc.status || d.EventID != ev.ID || d.MaxAttempts != len(DefaultSchedule) || (d.NextAttemptAt != nil) != tc.due || d.InstallationUUID == nil {
			t.Errorf("app %d: delivery %+v", tc.app, d)
		}
	}
	// Only the live app gets a drain.
	if got := w.tasks(QueueWebhooks)[TypeDeliver]; len(got) != 1 {
		t.Errorf("drain tasks: %d, want 1", len(got))
	}
}

func TestPublishToOneAppAndToNobody(t *testing.T) {
	w := newWorld(t, Options{})
	appID, _, _ := w.app("https://example.com/hook")
	var ev *Event
	err := w.outbox.Transaction(w.ctx, w.db, func(tx *gorm.DB) error {
		var err error
		ev, err = w.outbox.Publish(w.ctx, tx, NewEvent{OrganizationID: w.org, Type: "webhook.test", AppID: appID})
		return err
	})
	if err != nil || ev.DeliveriesCount != 1 {
		t.Fatalf("webhook.test: %+v, %v", ev, err)
	}
	if ds := w.deliveries(appID); len(ds) != 1 || ds[0].InstallationID != nil || ds[0].EventType != "webhook.test" {
		t.Errorf("deliveries %+v", ds)
	}
	w.dir.recipients["issue.created"] = nil
	if ev := w.publish(nil); ev.DeliveriesCount != 0 {
		t.Errorf("no recipients: %+v", ev)
	}
}

func TestTransactionEnqueuesOnlyAfterCommit(t *testing.T) {
	w := newWorld(t, Options{})
	appID, _, _ := w.app("https://example.com/hook")
	err := w.outbox.Transaction(w.ctx, w.db, func(tx *gorm.DB) error {
		if _, err := w.outbox.Publish(w.ctx, tx, NewEvent{OrganizationID: w.org, Type: "issue.created", Data: map[string]int{"n": 1}}); err != nil {
			return err
		}
		if n := len(w.tasks(QueueWebhooks)[TypeDeliver]); n != 0 {
			t.Errorf("%d drain tasks before commit", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got := w.tasks(QueueWebhooks)[TypeDeliver]
	if len(got) != 1 || string(got[0].Payload) != `{"a":`+itoa(appID)+`}` {
		t.Fatalf("drain tasks after commit: %+v", got)
	}
}

func TestTransactionRollbackWritesAndEnqueuesNothing(t *testing.T) {
	w := newWorld(t, Options{})
	w.app("https://example.com/hook")
	boom := errors.New("boom")
	err := w.outbox.Transaction(w.ctx, w.db, func(tx *gorm.DB) error {
		if _, err := w.outbox.Publish(w.ctx, tx, NewEvent{OrganizationID: w.org, Type: "issue.created"}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err %v", err)
	}
	var events, deliveries int64
	w.db.Model(&Event{}).Count(&events)
	w.db.Model(&Delivery{}).Count(&deliveries)
	if events != 0 || deliveries != 0 {
		t.Errorf("%d events, %d deliveries after rollback", events, deliveries)
	}
	if n := len(w.tasks(QueueWebhooks)[TypeDeliver]); n != 0 {
		t.Errorf("%d drain tasks after rollback", n)
	}
}

// Event data is stored as the publisher wrote it, compacted: keys keep
// their order (events.data is json, migration 00026), and each delivery's
// body carries that text.
func TestPublishKeepsTheDataAsWritten(t *testing.T) {
	srv := newSink(t, http.StatusOK)
	w := newWorld(t, private())
	appID, _, _ := w.app(srv.URL)
	cases := []struct{ in, want string }{
		{`{"zeta": 1, "alpha": {"b": [1, 2], "a": "x y"}}`, `{"zeta":1,"alpha":{"b":[1,2],"a":"x y"}}`},
		{`{"same":1,"longer key":"\u00e9"}`, `{"same":1,"longer key":"\u00e9"}`},
	}
	for _, tc := range cases {
		ev := w.publish(json.RawMessage(tc.in))
		var stored string
		if err := w.db.Raw("SELECT data::text FROM events WHERE id = ?", ev.ID).Scan(&stored).Error; err != nil {
			t.Fatal(err)
		}
		if stored != tc.want || string(ev.Data) != tc.want {
			t.Errorf("published %s: stored %s, returned %s, want %s", tc.in, stored, ev.Data, tc.want)
		}
	}
	if err := w.dispatcher.drain(w.ctx, appID); err != nil {
		t.Fatal(err)
	}
	hits := srv.received()
	if len(hits) != len(cases) {
		t.Fatalf("%d requests, want %d", len(hits), len(cases))
	}
	for i, h := range hits {
		if want := `,"data":` + cases[i].want + `}`; !strings.HasSuffix(string(h.Body), want) {
			t.Errorf("body %s, want it to end %s", h.Body, want)
		}
	}
}
