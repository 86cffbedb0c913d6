package webhooks

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"
)

// A held installation's deliveries stay paused through every replay but
// its release, which replays them as they were (same rows, same ids); the
// app's other installation is not affected.
func TestHoldsKeepDeliveriesPausedUntilReleased(t *testing.T) {
	w := newWorld(t, Options{})
	appID, held, _ := w.app("https://example.com/hook")
	// The app's installation in another organization.
	other := w.id("INSERT INTO organizations (slug, name) VALUES (?, 'Other') RETURNING id", "other-"+uuid.NewString()[:8])
	free := Recipient{AppID: appID, InstallationUUID: uuid.NewString()}
	free.InstallationID = w.id(`INSERT INTO installations (uuid, app_id, organization_id, status, scopes)
		VALUES (?, ?, ?, 'installed', '["issue:read"]') RETURNING id`, free.InstallationUUID, appID, other)
	now := w.clock.Now().Add(-time.Minute) // completed before the redelivery job starts
	heldPending := w.delivery(appID, held, "issue.created", DeliveryPending, now)
	heldFailed := w.delivery(appID, held, "issue.created", DeliveryFailed, now)
	freePending := w.delivery(appID, free, "issue.created", DeliveryPending, now)
	freeFailed := w.delivery(appID, free, "issue.created", DeliveryFailed, now)
	statuses := func() map[string]string {
		out := map[string]string{}
		for _, d := range w.deliveries(appID) {
			out[d.UUID] = d.Status
		}
		return out
	}

	// The marketplace suspends the installation: the hold pauses what was
	// pending, and the directory names it held from now on.
	if n, err := w.endpoints.HoldInstallation(w.ctx, w.db, held.InstallationID); err != nil || n != 1 {
		t.Fatalf("held %d, %v", n, err)
	}
	w.dir.mu.Lock()
	w.dir.held = map[int64][]int64{appID: {held.InstallationID}}
	w.dir.recipients["issue.created"] = []Recipient{{AppID: appID, InstallationID: held.InstallationID, InstallationUUID: held.InstallationUUID, Paused: true}, free}
	w.dir.mu.Unlock()
	ev := w.publish(map[string]any{"n": 2})
	var fresh []Delivery
	if err := w.db.Where("event_id = ?", ev.ID).Order("id").Find(&fresh).Error; err != nil {
		t.Fatal(err)
	}
	if len(fresh) != 2 || fresh[0].Status != DeliveryPaused || fresh[0].NextAttemptAt != nil || fresh[1].Status != DeliveryPending {
		t.Fatalf("published while held: %+v", fresh)
	}
	s := statuses()
	if s[heldPending.UUID] != DeliveryPaused || s[freePending.UUID] != DeliveryPending {
		t.Fatalf("after the hold %v", s)
	}

	// Disabling the endpoint and enabling it again replays only what is
	// not held.
	if err := w.endpoints.Disable(w.ctx, appID, "Down."); err != nil {
		t.Fatal(err)
	}
	// Released while the endpoint is disabled: nothing replays yet.
	if n, err := w.endpoints.ReleaseInstallation(w.ctx, w.db, appID, held.InstallationID); err != nil || n != 0 {
		t.Fatalf("released with the endpoint disabled: %d, %v", n, err)
	}
	if err := w.endpoints.Set(w.ctx, w.db, appID, ptr(EndpointEnabled), "", nil, nil); err != nil {
		t.Fatal(err)
	}
	s = statuses()
	if s[heldPending.UUID] != DeliveryPaused || s[fresh[0].UUID] != DeliveryPaused || s[freePending.UUID] != DeliveryPending || s[fresh[1].UUID] != DeliveryPending {
		t.Fatalf("after re-enabling %v", s)
	}
	// Redelivering passes the held installation's deliveries by, one or in bulk.
	if n, err := w.endpoints.Redeliver(w.ctx, appID, []string{heldFailed.UUID, heldPending.UUID}); err != nil || n != 0 {
		t.Fatalf("redelivered %d held, %v", n, err)
	}
	if n, err := w.endpoints.RedeliverFailed(w.ctx, appID, nil, nil); err != nil || n != 1 {
		t.Fatalf("counted %d failed, %v", n, err)
	}
	if err := w.endpoints.redeliverFailed(w.ctx, redeliverPayload{AppID: appID}); err != nil {
		t.Fatal(err)
	}
	if s = statuses(); s[heldFailed.UUID] != DeliveryFailed || s[freeFailed.UUID] != DeliveryPending {
		t.Fatalf("after redelivering %v", s)
	}

	// Lifted: the directory no longer holds it, and the release replays
	// the same deliveries, after the commit.
	w.dir.mu.Lock()
	w.dir.held = nil
	w.dir.mu.Unlock()
	drains := len(w.tasks(QueueWebhooks)[TypeDeliver])
	err := w.outbox.Transaction(w.ctx, w.db, func(tx *gorm.DB) error {
		n, err := w.endpoints.ReleaseInstallation(w.ctx, tx, appID, held.InstallationID)
		if err == nil && n != 2 {
			t.Errorf("released %d, want 2", n)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if s = statuses(); s[heldPending.UUID] != DeliveryPending || s[fresh[0].UUID] != DeliveryPending || s[heldFailed.UUID] != DeliveryFailed {
		t.Fatalf("after the release %v", s)
	}
	if n := len(w.tasks(QueueWebhooks)[TypeDeliver]); n < 1 && drains == 0 {
		t.Errorf("no drain after the release")
	}
}
