package webhooks

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgtype"
	"gorm.io/gorm"
)

// Holds: an installation the marketplace suspends has its deliveries held.
// While it is held nothing of it goes out: its pending deliveries are
// paused (HoldInstallation), new ones are stored paused (Recipient.Paused),
// and the replays that would send paused or failed deliveries again —
// re-enabling the endpoint, redelivering one or all failed — pass its
// deliveries by (the Directory says which installations are held, Held).
// Lifting the suspension replays what was paused (ReleaseInstallation),
// each delivery the same row, so with its original webhook-id.
//
// A delivery a worker holds at the moment of the hold (its request under
// way) is not waited for: it finishes that attempt, as when an endpoint
// is disabled (pauseSQL).

// holdSQL pauses an installation's pending deliveries that no worker
// holds. It locks the queue row before the delivery (claimSQL says why):
// locking the delivery alone, a hold could wait, inside the suspension's
// transaction, for a drain's batch to be sent.
const holdSQL = `UPDATE deliveries SET status = 'paused', next_attempt_at = NULL WHERE id IN (
	SELECT d.id FROM deliveries d JOIN delivery_queue q ON q.delivery_id = d.id
	WHERE d.installation_id = ? AND d.status = 'pending' AND q.status = 'pending' AND (d.claimed_until IS NULL OR d.claimed_until < now())
	FOR NO KEY UPDATE OF q, d SKIP LOCKED)`

// HoldInstallation pauses, in the caller's transaction, the pending
// deliveries of installation installationID, and returns how many.
func (e *Endpoints) HoldInstallation(ctx context.Context, tx *gorm.DB, installationID int64) (int, error) {
	res := tx.WithContext(ctx).Exec(holdSQL, installationID)
	if res.Error != nil {
		return 0, fmt.Errorf("holding deliveries of installation %d: %w", installationID, res.Error)
	}
	return int(res.RowsAffected), nil
}

// ReleaseInstallation replays, in the caller's transaction, the paused
// deliveries of installation installationID of app appID: they are due at
// once and sent after the commit. While the app's endpoint is disabled
// they stay paused, and re-enabling it replays them. It returns how many
// it replayed.
func (e *Endpoints) ReleaseInstallation(ctx context.Context, tx *gorm.DB, appID, installationID int64) (int, error) {
	var rows []ref
	err := tx.WithContext(ctx).Raw(`UPDATE deliveries SET status = 'pending', next_attempt_at = now(), enqueued_at = now()
		WHERE installation_id = ? AND app_id = ? AND status = 'paused'
		  AND NOT EXISTS (SELECT 1 FROM endpoints WHERE endpoints.app_id = ? AND endpoints.status = 'disabled')
		RETURNING id, app_id`, installationID, appID, appID).Scan(&rows).Error
	if err != nil {
		return 0, fmt.Errorf("replaying deliveries of installation %d: %w", installationID, err)
	}
	afterCommit(ctx, tx, e.drains, rows)
	return len(rows), nil
}

// notHeld is the condition on deliveries that keeps replays off held
// installations' deliveries; its one parameter is held (heldArray).
const notHeld = `(installation_id IS NULL OR installation_id <> ALL(?::bigint[]))`

// held returns the held installations of destination key as notHeld's
// parameter: none for a host endpoint, which has no installations.
func (e *Endpoints) held(ctx context.Context, db *gorm.DB, key int64) (pgtype.Array[int64], error) {
	none := pgArray([]int64{}) // '{}': without dimensions pgx would send NULL
	if _, ok := IsHostKey(key); ok {
		return none, nil
	}
	ids, err := e.dir.Held(ctx, db, key)
	if err != nil {
		return none, fmt.Errorf("finding held installations of app %d: %w", key, err)
	}
	return pgArray(append([]int64{}, ids...)), nil
}
