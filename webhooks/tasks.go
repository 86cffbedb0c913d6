package webhooks

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
)

// The asynq queues. The composition root weighs them (asynq.Config.Queues);
// every webhooks task names its queue here, never with a literal.
const (
	QueueCritical = "critical"
	QueueWebhooks = "webhooks" // drains: the deliveries themselves
	QueueDefault  = "default"
	QueueLow      = "low"
)

// The webhooks task types.
const (
	// TypeDeliver drains what is due for one app (Dispatcher).
	TypeDeliver = "webhooks:deliver"
	// TypeSweep drains what is due for many apps at once, one look
	// (Dispatcher.sweep): a kick of many apps enqueues it (drains.go).
	TypeSweep = "webhooks:sweep"
	// TypeRelay re-enqueues due deliveries nothing enqueued (Dispatcher.Relay).
	TypeRelay = "webhooks:relay"
	// TypeRetention drops old attempts (Store.DropOldAttempts).
	TypeRetention = "webhooks:retention"
	// TypeRedeliver sends an app's failed deliveries once more
	// (Endpoints.RedeliverFailed starts it).
	TypeRedeliver = "webhooks:redeliver"
)

type deliverPayload struct {
	AppID int64 `json:"a"`
	// Due is when a later drain is due (UnixMilli; NewDeliverLaterTask).
	Due int64 `json:"due,omitempty"`
}

type sweepPayload struct {
	Apps []int64 `json:"apps"`
}

type redeliverPayload struct {
	AppID int64      `json:"a"`
	Since *time.Time `json:"s,omitempty"`
	Until *time.Time `json:"u,omitempty"`
}

// drainTimeout bounds a drain task: two request timeouts and a minute.
func drainTimeout(requestTimeout time.Duration) time.Duration { return requestTimeout*2 + time.Minute }

// NewDeliverTask is a drain of appID, to run at once. requestTimeout is
// Options.Timeout, which bounds the task's own timeout.
func NewDeliverTask(appID int64, requestTimeout time.Duration) *asynq.Task {
	payload, _ := json.Marshal(deliverPayload{AppID: appID})
	return asynq.NewTask(TypeDeliver, payload, asynq.Queue(QueueWebhooks), asynq.MaxRetry(20), asynq.Timeout(drainTimeout(requestTimeout)))
}

// NewDeliverLaterTask is a drain of appID that runs delay after now. Its
// task id names the app and the due time (to laterBucket), so the drains of
// one batch's retries are enqueued once.
func NewDeliverLaterTask(appID int64, requestTimeout, delay time.Duration, now time.Time) *asynq.Task {
	// Due is on the wall clock, as asynq schedules; the id on Options.Now,
	// as every kick's.
	payload, _ := json.Marshal(deliverPayload{AppID: appID, Due: time.Now().Add(delay).UnixMilli()})
	return asynq.NewTask(TypeDeliver, payload, asynq.Queue(QueueWebhooks), asynq.TaskID(laterTaskID(appID, now.Add(delay))), asynq.MaxRetry(20),
		asynq.Timeout(drainTimeout(requestTimeout)), asynq.ProcessIn(delay))
}

// asynq keeps a scheduled task by its due time in whole seconds and hands
// it to a worker once that second has begun: a later drain due at
// 12:00:00.700 may run at 12:00:00.000, its claim find its deliveries not
// yet due, and the drain leave with nothing left to kick for them (they
// waited for the relay: the showcase test's deliveries still pending 20 s
// later, with no task in the queue). So a later drain that starts early
// waits for its time first, at most earlyAtMost (a second of asynq's
// rounding and its forwarder's interval, 1 s in the platform).
const earlyAtMost = 2500 * time.Millisecond

// untilDue waits until due (UnixMilli; 0: not a later drain), or ctx ends.
func untilDue(ctx context.Context, due int64) error {
	if due == 0 {
		return nil
	}
	wait := min(time.Until(time.UnixMilli(due)), earlyAtMost)
	if wait <= 0 {
		return nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// laterTaskID is the task id of appID's later drain due at due.
func laterTaskID(appID int64, due time.Time) string {
	return "drain:" + strconv.FormatInt(appID, 10) + ":t" + strconv.FormatInt(laterBucketOf(due), 10)
}

// laterBucketOf numbers the laterBucket that t falls in.
func laterBucketOf(t time.Time) int64 { return t.UnixMilli() / laterBucket.Milliseconds() }

// laterBucket is the resolution of a later drain's task id: within it a
// claim's 100 ms of grace (claimSQL) takes what is due.
const laterBucket = 100 * time.Millisecond

// NewSweepTask is a sweep of apps (at most sweepChunk), to run at once,
// with a drain task's retries and timeout.
func NewSweepTask(apps []int64, requestTimeout time.Duration) *asynq.Task {
	payload, _ := json.Marshal(sweepPayload{Apps: apps})
	return asynq.NewTask(TypeSweep, payload, asynq.Queue(QueueWebhooks), asynq.MaxRetry(20), asynq.Timeout(drainTimeout(requestTimeout)))
}

// NewRelayTask is one relay pass, unique for every (its period) so two
// schedulers enqueue it once.
func NewRelayTask(every time.Duration) *asynq.Task {
	return asynq.NewTask(TypeRelay, nil, asynq.Queue(QueueWebhooks), asynq.Unique(every), asynq.MaxRetry(0))
}

// NewRetentionTask is one retention pass, hourly and unique for the hour.
func NewRetentionTask() *asynq.Task {
	return asynq.NewTask(TypeRetention, nil, asynq.Queue(QueueLow), asynq.Unique(time.Hour), asynq.MaxRetry(3))
}

// NewRedeliverTask is the background job that sends appID's deliveries
// that failed in [since, until) once more.
func NewRedeliverTask(appID int64, since, until *time.Time) (*asynq.Task, error) {
	payload, err := json.Marshal(redeliverPayload{AppID: appID, Since: since, Until: until})
	if err != nil {
		return nil, fmt.Errorf("encoding redeliver payload of app %d: %w", appID, err)
	}
	return asynq.NewTask(TypeRedeliver, payload, asynq.Queue(QueueDefault), asynq.MaxRetry(5)), nil
}

// Register adds every webhooks task handler to mux: drains, sweeps and
// the relay (d), retention (s) and bulk redelivery (e).
func Register(mux *asynq.ServeMux, d *Dispatcher, s *Store, e *Endpoints) {
	mux.HandleFunc(TypeDeliver, func(ctx context.Context, t *asynq.Task) error {
		var p deliverPayload
		if err := json.Unmarshal(t.Payload(), &p); err != nil || p.AppID == 0 {
			return fmt.Errorf("bad deliver payload: %w", asynq.SkipRetry)
		}
		if err := untilDue(ctx, p.Due); err != nil {
			return err
		}
		return d.drain(ctx, p.AppID)
	})
	mux.HandleFunc(TypeSweep, func(ctx context.Context, t *asynq.Task) error {
		var p sweepPayload
		if err := json.Unmarshal(t.Payload(), &p); err != nil || len(p.Apps) == 0 || len(p.Apps) > sweepChunk || slices.ContainsFunc(p.Apps, func(id int64) bool { return id <= 0 }) {
			return fmt.Errorf("bad sweep payload: %w", asynq.SkipRetry)
		}
		return d.sweep(ctx, p.Apps)
	})
	// The relay re-enqueues every delivery Postgres says is due but that
	// no worker holds and nothing enqueued lately: Redis flushed, an
	// enqueue that failed after commit, a task asynq left active without a
	// lease (hibiken/asynq#1144). Claims make a duplicate task harmless.
	mux.HandleFunc(TypeRelay, func(ctx context.Context, _ *asynq.Task) error {
		_, err := d.Relay(ctx)
		return err
	})
	mux.HandleFunc(TypeRetention, func(ctx context.Context, _ *asynq.Task) error {
		_, err := s.DropOldAttempts(ctx)
		return err
	})
	mux.HandleFunc(TypeRedeliver, func(ctx context.Context, t *asynq.Task) error {
		var p redeliverPayload
		if err := json.Unmarshal(t.Payload(), &p); err != nil {
			return fmt.Errorf("bad redeliver payload: %w", asynq.SkipRetry)
		}
		return e.redeliverFailed(ctx, p)
	})
}

// Schedule registers the periodic jobs on the scheduler: the relay every
// relayEvery, retention hourly.
func Schedule(s *asynq.Scheduler, relayEvery time.Duration) error {
	if _, err := s.Register(fmt.Sprintf("@every %s", relayEvery), NewRelayTask(relayEvery)); err != nil {
		return fmt.Errorf("scheduling relay: %w", err)
	}
	if _, err := s.Register("@every 1h", NewRetentionTask()); err != nil {
		return fmt.Errorf("scheduling retention: %w", err)
	}
	return nil
}
