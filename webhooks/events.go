package webhooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/redis/go-redis/v9"
	"gorm.io/gorm"
)

// Event is something that happened in an organization.
type Event struct {
	ID             int64
	UUID           string
	OrganizationID int64
	Type           string
	Data           json.RawMessage `gorm:"type:jsonb"`
	// InstallationID targets a lifecycle event at one installation; nil for
	// events fanned out to every subscribed installation.
	InstallationID  *int64
	CreatedBy       string
	DeliveriesCount int
	CreatedAt       time.Time
}

// NewEvent is the input of Publish.
type NewEvent struct {
	OrganizationID int64
	Type           string
	Data           any
	InstallationID int64 // lifecycle events: only this installation receives it
	// AppID sends the event to one app without an installation (webhook.test).
	AppID     int64
	CreatedBy string
}

// Recipient is an installation that receives an event.
type Recipient struct {
	AppID            int64
	InstallationID   int64
	InstallationUUID string
}

// Directory is what webhooks asks the marketplace: who receives an event,
// and where an app's endpoint is. app wires it.
type Directory interface {
	// Recipients lists the live installations in orgID whose app subscribes
	// to eventType and holds scope; or, when installationID is set, that
	// installation alone if its app has a webhook URL.
	Recipients(ctx context.Context, tx *gorm.DB, orgID int64, eventType, scope string, installationID int64) ([]Recipient, error)
	// Endpoint returns where and how to deliver an app's webhooks.
	Endpoint(ctx context.Context, appID int64) (*Endpoint, error)
	// EndpointChanged is told when the dispatcher disables an endpoint (or
	// it is re-enabled), for the audit log.
	EndpointChanged(ctx context.Context, appID int64, status, reason string)
}

// Endpoint is an app's webhook destination.
type Endpoint struct {
	AppID   int64
	Slug    string
	URL     string
	Secrets []string // current first; the previous one while it overlaps
}

// Delivery statuses.
const (
	DeliveryPending   = "pending"
	DeliverySucceeded = "succeeded"
	DeliveryFailed    = "failed"
	DeliveryPaused    = "paused"
)

// Delivery is one event sent to one installation, with every try.
type Delivery struct {
	ID               int64
	UUID             string
	EventID          int64
	AppID            int64
	InstallationID   *int64
	InstallationUUID *string
	OrganizationID   int64
	EventType        string
	Status           string
	Attempts         int
	MaxAttempts      int
	NextAttemptAt    *time.Time
	ClaimedUntil     *time.Time
	EnqueuedAt       *time.Time
	LastAttemptAt    *time.Time
	LastStatusCode   *int
	LastErrorClass   string
	CreatedAt        time.Time
	CompletedAt      *time.Time
}

// pgArray passes a slice as one PostgreSQL array parameter (gorm would
// expand a bare slice into a list).
func pgArray[T any](v []T) pgtype.Array[T] {
	return pgtype.Array[T]{Elements: v, Dims: []pgtype.ArrayDimension{{Length: int32(len(v)), LowerBound: 1}}, Valid: true}
}

// ref is what the queue needs of a delivery.
type ref struct {
	ID    int64
	AppID int64
}

const collectorKey = "webhooks:collector"

type collector struct{ refs []ref }

// Outbox writes events and their deliveries inside the caller's transaction
// (so they exist exactly when what caused them does) and enqueues the
// deliveries once the transaction commits.
type Outbox struct {
	dir   Directory
	queue *asynq.Client
	// rdb is the queue's Redis, for checking many drain tasks at once
	// (NewDispatcher sets it).
	rdb  redis.UniversalClient
	opts Options
	log  *slog.Logger
}

// NewOutbox returns an outbox; SetDirectory must be called before Publish.
func NewOutbox(queue *asynq.Client, opts Options, log *slog.Logger) *Outbox {
	opts.defaults()
	return &Outbox{queue: queue, opts: opts, log: log}
}

// SetDirectory wires the marketplace in (it is built after the outbox).
func (o *Outbox) SetDirectory(d Directory) { o.dir = d }

// Transaction runs fn in a transaction on db and enqueues the deliveries it
// published once it commits. Postgres stays the truth: if the enqueue
// fails, the relay sends them.
func (o *Outbox) Transaction(ctx context.Context, db *gorm.DB, fn func(tx *gorm.DB) error) error {
	c := &collector{}
	err := db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		// Session: Set alone returns an instance whose statement chained
		// calls would share.
		return fn(tx.Set(collectorKey, c).Session(&gorm.Session{}))
	})
	if err != nil {
		return err
	}
	if len(c.refs) > 0 {
		o.enqueue(context.WithoutCancel(ctx), c.refs, 0)
	}
	return nil
}

// Publish records ev and one delivery per recipient in tx. Inside
// Transaction the deliveries are enqueued after commit.
func (o *Outbox) Publish(ctx context.Context, tx *gorm.DB, ev NewEvent) (*Event, error) {
	data, err := json.Marshal(ev.Data)
	if err != nil {
		return nil, fmt.Errorf("encoding %s data: %w", ev.Type, err)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	e := &Event{UUID: uuid.NewString(), OrganizationID: ev.OrganizationID, Type: ev.Type, Data: data, CreatedBy: ev.CreatedBy, CreatedAt: now}
	if ev.InstallationID != 0 {
		e.InstallationID = &ev.InstallationID
	}
	var recipients []Recipient
	if ev.AppID != 0 {
		recipients = []Recipient{{AppID: ev.AppID}}
	} else {
		var scope string
		if err := tx.WithContext(ctx).Model(&EventType{}).Where("name = ?", ev.Type).Pluck("scope", &scope).Error; err != nil {
			return nil, fmt.Errorf("finding %s's scope: %w", ev.Type, err)
		}
		recipients, err = o.dir.Recipients(ctx, tx, ev.OrganizationID, ev.Type, scope, ev.InstallationID)
		if err != nil {
			return nil, fmt.Errorf("finding recipients of %s: %w", ev.Type, err)
		}
	}
	// The event row carries its delivery count from the start: no second write.
	e.DeliveriesCount = len(recipients)
	if err := tx.WithContext(ctx).Create(e).Error; err != nil {
		return nil, fmt.Errorf("publishing %s: %w", ev.Type, err)
	}
	if len(recipients) == 0 {
		return e, nil
	}
	apps := map[int64]bool{}
	for _, r := range recipients {
		apps[r.AppID] = true
	}
	ids := make([]int64, 0, len(apps))
	for id := range apps {
		ids = append(ids, id)
	}
	var disabled []int64
	if err := tx.WithContext(ctx).Model(&EndpointState{}).Where("app_id IN ? AND status = 'disabled'", ids).Pluck("app_id", &disabled).Error; err != nil {
		return nil, fmt.Errorf("reading endpoint status: %w", err)
	}
	paused := map[int64]bool{}
	for _, id := range disabled {
		paused[id] = true
	}
	// One statement for every delivery, its text the same for any number
	// of recipients (arrays, not a VALUES list): no per-row reflection, one
	// cached plan.
	n := len(recipients)
	uuids, appIDs, statuses := make([]string, n), make([]int64, n), make([]string, n)
	instIDs, instUUIDs := make([]*int64, n), make([]*string, n)
	var refs []ref
	for i, r := range recipients {
		uuids[i], appIDs[i], statuses[i] = uuid.NewString(), r.AppID, DeliveryPending
		if r.InstallationID != 0 {
			instIDs[i], instUUIDs[i] = &recipients[i].InstallationID, &recipients[i].InstallationUUID
		}
		if paused[r.AppID] {
			statuses[i] = DeliveryPaused
		} else {
			refs = append(refs, ref{AppID: r.AppID})
		}
	}
	err = tx.WithContext(ctx).Exec(`INSERT INTO deliveries (uuid, event_id, app_id, installation_id, installation_uuid, organization_id,
			event_type, status, attempts, max_attempts, next_attempt_at, enqueued_at, created_at)
		SELECT v.u, ?, v.a, v.i, v.iu, ?, ?, v.s, 0, ?, CASE WHEN v.s = 'pending' THEN ?::timestamptz END, ?::timestamptz, ?::timestamptz
		FROM unnest(?::uuid[], ?::bigint[], ?::bigint[], ?::uuid[], ?::text[]) AS v(u, a, i, iu, s)`,
		e.ID, ev.OrganizationID, ev.Type, len(o.opts.RetrySchedule), now, now, now,
		pgArray(uuids), pgArray(appIDs), pgArray(instIDs), pgArray(instUUIDs), pgArray(statuses)).Error
	if err != nil {
		return nil, fmt.Errorf("creating deliveries of %s: %w", ev.Type, err)
	}
	if v, ok := tx.Get(collectorKey); ok {
		c := v.(*collector)
		c.refs = append(c.refs, refs...)
	}
	return e, nil
}

// TypeDeliver is the asynq task that drains what is due for one app.
const TypeDeliver = "webhooks:deliver"

// QueueName is the asynq queue deliveries run on.
const QueueName = "webhooks"

type deliverPayload struct {
	AppID int64 `json:"a"`
}

// enqueue kicks a drain of every app in refs, after delay.
func (o *Outbox) enqueue(ctx context.Context, refs []ref, delay time.Duration) {
	apps := appsOf(refs)
	if delay > 0 {
		for _, id := range apps {
			o.kick(ctx, id, delay)
		}
		return
	}
	o.kickApps(ctx, apps, 1, false)
}

func appsOf(refs []ref) []int64 {
	seen := map[int64]bool{}
	apps := make([]int64, 0, len(refs))
	for _, r := range refs {
		if !seen[r.AppID] {
			seen[r.AppID] = true
			apps = append(apps, r.AppID)
		}
	}
	return apps
}

// kick makes sure a drain of appID runs after the caller's commit, and no
// earlier than delay from now: at once through the drain registry (see
// drains.go), later as a task of its own per due time (to 100 ms), so it is
// not swallowed by a drain running now.
func (o *Outbox) kick(ctx context.Context, appID int64, delay time.Duration) {
	if delay <= 0 {
		o.kickApps(ctx, []int64{appID}, 1, false)
		return
	}
	payload, _ := json.Marshal(deliverPayload{AppID: appID})
	id := "drain:" + strconv.FormatInt(appID, 10) + ":t" + strconv.FormatInt(time.Now().Add(delay).UnixMilli()/100, 10)
	_, err := o.queue.EnqueueContext(ctx, asynq.NewTask(TypeDeliver, payload, asynq.Queue(QueueName), asynq.TaskID(id), asynq.MaxRetry(20),
		asynq.Timeout(o.opts.Timeout*2+time.Minute), asynq.ProcessIn(delay)))
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) && !errors.Is(err, asynq.ErrDuplicateTask) {
		o.log.Warn("enqueueing a drain failed; the relay will send", "app", appID, "err", err)
	}
}

// afterCommit enqueues refs once tx commits (inside Transaction), or now.
func (o *Outbox) afterCommit(ctx context.Context, tx *gorm.DB, refs []ref) {
	if v, ok := tx.Get(collectorKey); ok {
		c := v.(*collector)
		c.refs = append(c.refs, refs...)
		return
	}
	o.enqueue(ctx, refs, 0)
}
