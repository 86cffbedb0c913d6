package webhooks

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
)

// Periodic and background task types.
const (
	TypeRelay     = "webhooks:relay"
	TypeRetention = "webhooks:retention"
	TypeRedeliver = "webhooks:redeliver"
)

// handleRelay re-enqueues every delivery Postgres says is due but that no
// worker holds and nothing enqueued lately: Redis flushed, an enqueue that
// failed after commit, a task asynq left active without a lease (hibiken/
// asynq#1144). Claims make a duplicate task harmless.
func (d *Dispatcher) handleRelay(ctx context.Context, _ *asynq.Task) error {
	_, err := d.Relay(ctx)
	return err
}

// Relay runs one relay pass and returns how many deliveries it enqueued.
// It goes app by app, on the index the drains use (deliveries_app_due_idx).
func (d *Dispatcher) Relay(ctx context.Context) (int, error) {
	grace := d.opts.RelayGrace
	var rows []ref
	err := d.db.WithContext(ctx).Raw(`
		UPDATE deliveries SET enqueued_at = now()
		WHERE id IN (
			SELECT d.id FROM apps a CROSS JOIN LATERAL (
				SELECT id FROM deliveries
				WHERE app_id = a.id AND status = 'pending' AND next_attempt_at <= now() - make_interval(secs => ?)
				  AND (claimed_until IS NULL OR claimed_until < now())
				  AND (enqueued_at IS NULL OR enqueued_at <= now() - make_interval(secs => ?))
				ORDER BY next_attempt_at LIMIT 5000
				FOR UPDATE SKIP LOCKED) d
			LIMIT 5000)
		RETURNING id, app_id`, grace.Seconds(), grace.Seconds()).Scan(&rows).Error
	if err != nil {
		return 0, fmt.Errorf("relay: finding due deliveries: %w", err)
	}
	if len(rows) == 0 {
		return 0, nil
	}
	d.log.Info("relay re-enqueued due deliveries", "count", len(rows))
	// Regardless of the drain registry: a drain that died may still hold
	// its lease there.
	d.outbox.kickApps(ctx, appsOf(rows), 1, true)
	d.metrics.relayed(len(rows))
	return len(rows), nil
}

func (d *Dispatcher) handleRetention(ctx context.Context, _ *asynq.Task) error {
	_, err := d.DropOldAttempts(ctx)
	return err
}

// DropOldAttempts deletes attempts older than the retention period, in
// batches so it never holds long locks.
func (d *Dispatcher) DropOldAttempts(ctx context.Context) (int64, error) {
	cutoff := time.Now().Add(-d.opts.Retention)
	var total int64
	for {
		res := d.db.WithContext(ctx).Exec("DELETE FROM attempts WHERE id IN (SELECT id FROM attempts WHERE created_at < ? LIMIT 10000)", cutoff)
		if res.Error != nil {
			return total, fmt.Errorf("retention: %w", res.Error)
		}
		total += res.RowsAffected
		if res.RowsAffected < 10000 {
			return total, nil
		}
	}
}

type redeliverPayload struct {
	AppID int64      `json:"a"`
	Since *time.Time `json:"s,omitempty"`
	Until *time.Time `json:"u,omitempty"`
}

func (d *Dispatcher) handleRedeliver(ctx context.Context, t *asynq.Task) error {
	var p redeliverPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return fmt.Errorf("bad redeliver payload: %w", asynq.SkipRetry)
	}
	// Only deliveries that had failed when the job started: one that fails
	// again while the job runs is not picked up a second time.
	started := time.Now()
	for {
		var rows []ref
		q := `UPDATE deliveries SET status = 'pending', next_attempt_at = now(), max_attempts = attempts + 1, completed_at = NULL, enqueued_at = now()
			WHERE id IN (SELECT id FROM deliveries WHERE app_id = ? AND status = 'failed' AND completed_at < ?
			  AND created_at >= COALESCE(?::timestamptz, '-infinity') AND created_at < COALESCE(?::timestamptz, 'infinity') LIMIT 1000)
			RETURNING id, app_id`
		if err := d.db.WithContext(ctx).Raw(q, p.AppID, started, p.Since, p.Until).Scan(&rows).Error; err != nil {
			return fmt.Errorf("redelivering: %w", err)
		}
		d.outbox.enqueue(ctx, rows, 0)
		if len(rows) < 1000 {
			return nil
		}
	}
}

// Schedule registers the periodic jobs on the scheduler; each is unique per
// period so two schedulers enqueue it once.
func Schedule(s *asynq.Scheduler, relayEvery time.Duration) error {
	if _, err := s.Register(fmt.Sprintf("@every %s", relayEvery), asynq.NewTask(TypeRelay, nil),
		asynq.Queue(QueueName), asynq.Unique(relayEvery), asynq.MaxRetry(0)); err != nil {
		return fmt.Errorf("scheduling relay: %w", err)
	}
	if _, err := s.Register("@every 1h", asynq.NewTask(TypeRetention, nil),
		asynq.Queue("low"), asynq.Unique(time.Hour), asynq.MaxRetry(3)); err != nil {
		return fmt.Errorf("scheduling retention: %w", err)
	}
	return nil
}
