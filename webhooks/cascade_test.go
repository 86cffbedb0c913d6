package webhooks

import (
	"slices"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"
)

// count is the number of rows of table that cond (with args) selects.
func (w *world) count(table, cond string, args ...any) int64 {
	w.t.Helper()
	return w.id("SELECT count(*) FROM "+table+" WHERE "+cond, args...)
}

// TestDeletesCascadeToDeliveriesAndAttempts: deleting an app, an event or
// a delivery deletes what hangs on it (migration 00022's triggers, where
// foreign keys did): deliveries, their attempts and their queue rows, and
// nothing of another app's or event's.
func TestDeletesCascadeToDeliveriesAndAttempts(t *testing.T) {
	for _, tc := range []struct {
		name   string
		delete func(w *world, app int64, ev *Event, d Delivery)
	}{
		{"app", func(w *world, app int64, _ *Event, _ Delivery) { w.exec("DELETE FROM apps WHERE id = ?", app) }},
		{"event", func(w *world, _ int64, ev *Event, _ Delivery) { w.exec("DELETE FROM events WHERE id = ?", ev.ID) }},
		{"delivery", func(w *world, _ int64, _ *Event, d Delivery) { w.exec("DELETE FROM deliveries WHERE id = ?", d.ID) }},
		{"organization", func(w *world, app int64, _ *Event, _ Delivery) {
			// The app's owner: the apps' foreign key deletes the app, whose
			// trigger deletes its deliveries.
			owner := w.id("INSERT INTO organizations (slug, name) VALUES ('owner-' || left(md5(random()::text), 8), 'Owner') RETURNING id")
			w.exec("UPDATE apps SET organization_id = ? WHERE id = ?", owner, app)
			w.exec("DELETE FROM organizations WHERE id = ?", owner)
			if n := w.count("apps", "id = ?", app); n != 0 {
				w.t.Fatalf("the organization's delete left its app")
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, Options{})
			gone, _, _ := w.app("https://gone.example.com/hook")
			kept, _, _ := w.app("https://kept.example.com/hook")
			ev := w.publish(map[string]int{"n": 1})
			w.dir.recipients["issue.created"] = w.dir.recipients["issue.created"][1:] // kept's alone
			other := w.publish(map[string]int{"n": 2})
			ds := w.deliveries(gone)
			if len(ds) != 1 || len(w.deliveries(kept)) != 2 {
				t.Fatalf("deliveries: %d of gone, %d of kept", len(ds), len(w.deliveries(kept)))
			}
			for _, d := range append(ds, w.deliveries(kept)...) {
				w.attempt(d, 500, "http_status", time.Millisecond, w.clock.Now())
			}
			tc.delete(w, gone, ev, ds[0])
			if n := w.count("deliveries", "app_id = ?", gone); n != 0 {
				t.Errorf("%d deliveries of the deleted app's event left", n)
			}
			if n := w.count("attempts", "delivery_id = ?", ds[0].ID); n != 0 {
				t.Errorf("%d attempts of the deleted delivery left", n)
			}
			if n := w.count("delivery_queue", "delivery_id = ?", ds[0].ID); n != 0 {
				t.Errorf("%d queue rows of the deleted delivery left", n)
			}
			want := int64(2) // kept's deliveries of both events
			if tc.name == "event" {
				want = 1 // other's alone
			}
			if n := w.count("deliveries", "app_id = ?", kept); n != want {
				t.Errorf("%d deliveries of the kept app, want %d", n, want)
			}
			if n := w.count("attempts a JOIN deliveries d ON d.id = a.delivery_id", "d.app_id = ?", kept); n != want {
				t.Errorf("%d attempts of the kept app, want %d", n, want)
			}
			if n := w.count("deliveries", "event_id = ?", other.ID); n != 1 {
				t.Errorf("%d deliveries of the other event, want 1", n)
			}
		})
	}
}

// TestPublishRacingAnAppsDelete: deliveries.app_id has no foreign key,
// and still no delivery outlives its app. A publish that read its
// recipients before the app's delete committed writes nothing to it; a
// delete that comes while a publish's transaction holds the app waits for
// it, then deletes what it wrote.
func TestPublishRacingAnAppsDelete(t *testing.T) {
	t.Run("deleted first", func(t *testing.T) {
		w := newWorld(t, Options{})
		gone, _, _ := w.app("https://gone.example.com/hook")
		kept, _, _ := w.app("https://kept.example.com/hook")
		w.exec("DELETE FROM apps WHERE id = ?", gone) // the directory still names it
		w.publish(nil)
		if n := w.count("deliveries", "app_id = ?", gone); n != 0 {
			t.Errorf("%d deliveries to the deleted app", n)
		}
		if n := w.count("deliveries", "app_id = ?", kept); n != 1 {
			t.Errorf("%d deliveries to the kept app, want 1", n)
		}
	})
	t.Run("deleted during the publish", func(t *testing.T) {
		w := newWorld(t, Options{})
		gone, _, _ := w.app("https://gone.example.com/hook")
		published := make(chan struct{})
		deleted := make(chan error, 1)
		go func() {
			<-published
			deleted <- w.db.Exec("DELETE FROM apps WHERE id = ?", gone).Error
		}()
		err := w.outbox.Transaction(w.ctx, w.db, func(tx *gorm.DB) error {
			if _, err := w.outbox.Publish(w.ctx, tx, NewEvent{OrganizationID: w.org, Type: "issue.created", CreatedBy: "test"}); err != nil {
				return err
			}
			close(published)
			select {
			case err := <-deleted:
				t.Errorf("the delete did not wait for the publish: %v", err)
				deleted <- err
			case <-time.After(300 * time.Millisecond):
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := <-deleted; err != nil {
			t.Fatal(err)
		}
		if n := w.count("deliveries", "app_id = ?", gone); n != 0 {
			t.Errorf("%d deliveries outlived their app", n)
		}
		if n := w.count("delivery_queue", "app_id = ?", gone); n != 0 {
			t.Errorf("%d queue rows outlived their app", n)
		}
	})
}

// TestTruncateKeepsTheCascadesRule: TRUNCATE fires no delete trigger, so
// truncating what deliveries or attempts refer to is refused while they
// remain (migration 00024), as the foreign keys refused it; truncating
// them together works.
func TestTruncateKeepsTheCascadesRule(t *testing.T) {
	w := newWorld(t, Options{})
	_, _, _ = w.app("https://example.com/hook")
	ev := w.publish(nil)
	for _, d := range w.deliveries(w.dir.recipients["issue.created"][0].AppID) {
		w.attempt(d, 200, "", time.Millisecond, w.clock.Now())
	}
	for _, table := range []string{"events", "deliveries", "apps CASCADE"} {
		err := w.db.Exec("TRUNCATE " + table).Error
		if err == nil || !strings.Contains(err.Error(), "refer to them") {
			t.Errorf("TRUNCATE %s: %v, want a refusal", table, err)
		}
	}
	if n := w.count("events", "id = ?", ev.ID); n != 1 {
		t.Fatalf("a refused TRUNCATE removed the event")
	}
	w.exec("TRUNCATE events, deliveries, attempts, delivery_queue")
	if n := w.count("deliveries", "true"); n != 0 {
		t.Errorf("%d deliveries after truncating them", n)
	}
}

// TestTriggerJoinsPlanByIndex: the trigger functions that join a
// transition table to a table keep their plan for the connection's life,
// made for the first call; they run with sequential scans and hash and
// merge joins off (migration 00024), so that a first large delete does not
// leave every later one scanning attempts or delivery_queue whole. A
// function replaced without those settings fails here.
func TestTriggerJoinsPlanByIndex(t *testing.T) {
	w := newWorld(t, Options{})
	for _, fn := range []string{"deliveries_of_apps_delete", "deliveries_of_events_delete", "attempts_of_deliveries_delete",
		"delivery_queue_update", "delivery_queue_delete"} {
		var joined string
		if err := w.db.Raw("SELECT coalesce(array_to_string(proconfig, ','), '') FROM pg_proc WHERE proname = ?", fn).Row().Scan(&joined); err != nil {
			t.Fatalf("%s: %v", fn, err)
		}
		config := strings.Split(joined, ",")
		for _, want := range []string{"enable_seqscan=off", "enable_hashjoin=off", "enable_mergejoin=off"} {
			if !slices.Contains(config, want) {
				t.Errorf("%s runs with %v, without %s", fn, config, want)
			}
		}
	}
}
