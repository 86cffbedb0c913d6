package webhooks

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
	"gorm.io/gorm"
)

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
	drains    *Drains
	dir       Directory
	listeners *Listeners
	opts      Options
}

// NewOutbox returns an outbox that asks dir for recipients and kicks drains
// through drains; listeners say which apps without a webhook URL have a
// listen session to receive their deliveries.
func NewOutbox(drains *Drains, dir Directory, listeners *Listeners, opts Options) *Outbox {
	return &Outbox{drains: drains, dir: dir, listeners: listeners, opts: opts.withDefaults()}
}

// reachable drops the recipients without a webhook URL that no listen
// session waits for: like a CLI listening for events, a session receives
// what is published while it is open.
func (o *Outbox) reachable(ctx context.Context, rs []Recipient) []Recipient {
	out := rs[:0]
	for _, r := range rs {
		if !r.ListenOnly || o.listeners.active(ctx, r.AppID) {
			out = append(out, r)
		}
	}
	return out
}

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
		o.drains.enqueue(context.WithoutCancel(ctx), c.refs)
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
	now := o.opts.Now().UTC().Truncate(time.Microsecond)
	e := &Event{UUID: uuid.NewString(), OrganizationID: ev.OrganizationID, Type: ev.Type, Data: data, CreatedBy: ev.CreatedBy, CreatedAt: now}
	if ev.InstallationID != 0 {
		e.InstallationID = &ev.InstallationID
	}
	var recipients []Recipient
	var method, target *string
	host := len(ev.HostEndpoints) > 0
	switch {
	case host:
		for _, id := range ev.HostEndpoints {
			recipients = append(recipients, Recipient{AppID: HostKey(id)})
		}
	case ev.Target != nil:
		// Addressed: the one installation, wherever the app's webhooks go.
		recipients = []Recipient{{AppID: ev.AppID, InstallationID: ev.InstallationID, InstallationUUID: ev.Target.InstallationUUID}}
		method, target = &ev.Target.Method, &ev.Target.URL
	case ev.AppID != 0:
		recipients = []Recipient{{AppID: ev.AppID}}
	default:
		var scope string
		if err := tx.WithContext(ctx).Model(&EventType{}).Where("name = ?", ev.Type).Pluck("scope", &scope).Error; err != nil {
			return nil, fmt.Errorf("finding %s's scope: %w", ev.Type, err)
		}
		recipients, err = o.dir.Recipients(ctx, tx, ev.OrganizationID, ev.Type, scope, ev.InstallationID)
		if err != nil {
			return nil, fmt.Errorf("finding recipients of %s: %w", ev.Type, err)
		}
		recipients = o.reachable(ctx, recipients)
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
	if host {
		err = tx.WithContext(ctx).Model(&EndpointState{}).Where("host_endpoint_id IN ? AND status = 'disabled'", ev.HostEndpoints).Pluck(keyExpr, &disabled).Error
	} else {
		err = tx.WithContext(ctx).Model(&EndpointState{}).Where("app_id IN ? AND status = 'disabled'", ids).Pluck("app_id", &disabled).Error
	}
	if err != nil {
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
		// Paused: the endpoint is disabled, or the recipient's installation
		// is suspended (Recipient.Paused); either replays it later.
		if paused[r.AppID] || r.Paused {
			statuses[i] = DeliveryPaused
		} else {
			refs = append(refs, ref{AppID: r.AppID})
		}
	}
	if host {
		hostIDs := make([]int64, n)
		for i, r := range recipients {
			hostIDs[i], _ = IsHostKey(r.AppID)
		}
		err = tx.WithContext(ctx).Exec(`INSERT INTO deliveries (uuid, event_id, host_endpoint_id, organization_id,
				event_type, status, attempts, max_attempts, next_attempt_at, enqueued_at, created_at)
			SELECT v.u, ?, v.h, ?, ?, v.s, 0, ?, CASE WHEN v.s = 'pending' THEN ?::timestamptz END, ?::timestamptz, ?::timestamptz
			FROM unnest(?::uuid[], ?::bigint[], ?::text[]) AS v(u, h, s)`,
			e.ID, ev.OrganizationID, ev.Type, len(o.opts.RetrySchedule), now, now, now,
			pgArray(uuids), pgArray(hostIDs), pgArray(statuses)).Error
		if err != nil {
			return nil, fmt.Errorf("creating host deliveries of %s: %w", ev.Type, err)
		}
		collect(tx, refs)
		return e, nil
	}
	err = tx.WithContext(ctx).Exec(`INSERT INTO deliveries (uuid, event_id, app_id, installation_id, installation_uuid, organization_id,
			event_type, status, attempts, max_attempts, next_attempt_at, enqueued_at, created_at, target_method, target_url)
		SELECT v.u, ?, v.a, v.i, v.iu, ?, ?, v.s, 0, ?, CASE WHEN v.s = 'pending' THEN ?::timestamptz END, ?::timestamptz, ?::timestamptz,
			?::text, ?::text
		FROM unnest(?::uuid[], ?::bigint[], ?::bigint[], ?::uuid[], ?::text[]) AS v(u, a, i, iu, s)`,
		e.ID, ev.OrganizationID, ev.Type, len(o.opts.RetrySchedule), now, now, now, method, target,
		pgArray(uuids), pgArray(appIDs), pgArray(instIDs), pgArray(instUUIDs), pgArray(statuses)).Error
	if err != nil {
		return nil, fmt.Errorf("creating deliveries of %s: %w", ev.Type, err)
	}
	collect(tx, refs)
	return e, nil
}

// collect adds refs to tx's collector and reports whether tx runs inside
// Outbox.Transaction (which enqueues them after its commit).
func collect(tx *gorm.DB, refs []ref) bool {
	v, ok := tx.Get(collectorKey)
	if ok {
		c := v.(*collector)
		c.refs = append(c.refs, refs...)
	}
	return ok
}

// afterCommit has drains kick refs' apps once tx commits (inside
// Outbox.Transaction), or now.
func afterCommit(ctx context.Context, tx *gorm.DB, drains *Drains, refs []ref) {
	if !collect(tx, refs) {
		drains.enqueue(ctx, refs)
	}
}
