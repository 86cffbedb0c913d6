package webhooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"gorm.io/gorm"

	"github.com/plugboard/plugboard/app/fault"
	"github.com/plugboard/plugboard/app/page"
)

// DeliveryQuery filters the delivery log.
type DeliveryQuery struct {
	Status           string
	EventType        string
	InstallationUUID string
	Since, Until     *time.Time
}

// ListDeliveries returns an app's deliveries, newest first.
func (d *Dispatcher) ListDeliveries(ctx context.Context, appID int64, dq DeliveryQuery, r page.Request) (page.Page[Delivery], error) {
	f := fault.Fields{}
	switch dq.Status {
	case "", DeliveryPending, DeliverySucceeded, DeliveryFailed, DeliveryPaused:
	default:
		f.Add("status", "must be pending, succeeded, failed or paused")
	}
	if dq.InstallationUUID != "" {
		_, err := uuid.Parse(dq.InstallationUUID)
		f.Check(err != nil, "installation", "must be an installation uuid")
	}
	f.Check(dq.Since != nil && dq.Until != nil && !dq.Until.After(*dq.Since), "until", "must be after since")
	if err := f.Err(); err != nil {
		return page.Page[Delivery]{}, err
	}
	q := d.db.WithContext(ctx).Where("app_id = ?", appID)
	if dq.Status != "" {
		// A literal, not a parameter (the value is one of four, checked
		// above): a cached generic plan could not use the partial index on
		// failed deliveries.
		q = q.Where("status = '" + dq.Status + "'")
	}
	if dq.EventType != "" {
		q = q.Where("event_type = ?", dq.EventType)
	}
	if dq.InstallationUUID != "" {
		q = q.Where("installation_uuid = ?", dq.InstallationUUID)
	}
	if dq.Since != nil {
		q = q.Where("created_at >= ?", *dq.Since)
	}
	if dq.Until != nil {
		q = q.Where("created_at < ?", *dq.Until)
	}
	var rows []Delivery
	if err := page.Query(q, "id", page.Sort{Column: "id", Desc: true}, r).Find(&rows).Error; err != nil {
		return page.Page[Delivery]{}, fmt.Errorf("listing deliveries: %w", err)
	}
	return page.Finish(rows, r, func(d Delivery) (string, int64) { return "", d.ID }), nil
}

// DeliveryDetail is one delivery with its payload and every attempt.
type DeliveryDetail struct {
	Delivery
	Payload  json.RawMessage
	Attempts []Attempt
}

// GetDelivery returns an app's delivery by its uuid (the webhook-id).
func (d *Dispatcher) GetDelivery(ctx context.Context, appID int64, id string) (*DeliveryDetail, error) {
	if _, err := uuid.Parse(id); err != nil {
		return nil, fault.NotFound("delivery")
	}
	var out DeliveryDetail
	err := d.db.WithContext(ctx).Where("app_id = ? AND uuid = ?", appID, id).Take(&out.Delivery).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, fault.NotFound("delivery")
	}
	if err != nil {
		return nil, fmt.Errorf("finding delivery: %w", err)
	}
	var ev Event
	if err := d.db.WithContext(ctx).Take(&ev, out.EventID).Error; err != nil {
		return nil, fmt.Errorf("loading event: %w", err)
	}
	out.Payload = Envelope(out.UUID, out.EventType, ev.CreatedAt, out.InstallationUUID, ev.Data)
	if err := d.db.WithContext(ctx).Where("delivery_id = ?", out.ID).Order("id").Find(&out.Attempts).Error; err != nil {
		return nil, fmt.Errorf("loading attempts: %w", err)
	}
	return &out, nil
}

// Redeliver sends the given deliveries once more, now: each gets one more
// attempt, with the same webhook-id.
func (d *Dispatcher) Redeliver(ctx context.Context, appID int64, ids []string) (int, error) {
	f := fault.Fields{}
	f.Check(len(ids) == 0, "deliveries", "list at least one delivery id")
	f.Check(len(ids) > 1000, "deliveries", "at most 1000 at once; use status to redeliver in bulk")
	for _, id := range ids {
		if _, err := uuid.Parse(id); err != nil {
			f.Add("deliveries", fmt.Sprintf("%q is not a delivery id", id))
		}
	}
	if err := f.Err(); err != nil {
		return 0, err
	}
	var known int64
	if err := d.db.WithContext(ctx).Model(&Delivery{}).Where("app_id = ? AND uuid IN ?", appID, ids).Count(&known).Error; err != nil {
		return 0, fmt.Errorf("finding deliveries: %w", err)
	}
	if int(known) != len(ids) {
		return 0, fault.Field("deliveries", "some ids are not deliveries of this app")
	}
	var rows []ref
	err := d.db.WithContext(ctx).Raw(`UPDATE deliveries SET status = 'pending', next_attempt_at = now(), completed_at = NULL,
		max_attempts = attempts + 1, enqueued_at = now()
		WHERE app_id = ? AND uuid IN ? AND status IN ('succeeded', 'failed', 'paused') RETURNING id, app_id`, appID, ids).Scan(&rows).Error
	if err != nil {
		return 0, fmt.Errorf("redelivering: %w", err)
	}
	d.outbox.enqueue(ctx, rows, 0)
	return len(rows), nil
}

// RedeliverFailed counts the app's failed deliveries in [since, until) and
// starts a background job that sends each once more.
func (d *Dispatcher) RedeliverFailed(ctx context.Context, appID int64, since, until *time.Time) (int, error) {
	if since != nil && until != nil && !until.After(*since) {
		return 0, fault.Field("until", "must be after since")
	}
	q := d.db.WithContext(ctx).Model(&Delivery{}).Where("app_id = ? AND status = 'failed'", appID)
	if since != nil {
		q = q.Where("created_at >= ?", *since)
	}
	if until != nil {
		q = q.Where("created_at < ?", *until)
	}
	var n int64
	if err := q.Count(&n).Error; err != nil {
		return 0, fmt.Errorf("counting failed deliveries: %w", err)
	}
	if n == 0 {
		return 0, nil
	}
	payload, _ := json.Marshal(redeliverPayload{AppID: appID, Since: since, Until: until})
	if _, err := d.outbox.queue.EnqueueContext(ctx, asynq.NewTask(TypeRedeliver, payload), asynq.Queue("default"), asynq.MaxRetry(5)); err != nil {
		return 0, fmt.Errorf("starting redelivery: %w", err)
	}
	return int(n), nil
}

// State returns an app's endpoint health.
func (d *Dispatcher) State(ctx context.Context, appID int64) (EndpointState, error) {
	st := EndpointState{AppID: appID, Status: EndpointEnabled}
	err := d.db.WithContext(ctx).Where("app_id = ?", appID).Take(&st).Error
	if err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
		return st, fmt.Errorf("reading endpoint: %w", err)
	}
	return st, nil
}

// Limits returns the app's effective rate limit and in-flight cap.
func (d *Dispatcher) Limits(st EndpointState) (int, int) {
	rate, inFlight := d.opts.DefaultRateLimit, d.opts.DefaultMaxInFlight
	if st.RateLimit != nil {
		rate = *st.RateLimit
	}
	if st.MaxInFlight != nil {
		inFlight = *st.MaxInFlight
	}
	return rate, inFlight
}

// Bucket is one period of an app's delivery health.
type Bucket struct {
	Start         time.Time
	Attempts      int
	Succeeded     int
	Failed        int
	SuccessRate   float64
	P50, P95, P99 float64 // milliseconds
	ErrorClasses  map[string]int
}

// Stats summarises an app's attempts in [since, until) per resolution, and
// over the whole range (total: its Start is since).
func (d *Dispatcher) Stats(ctx context.Context, appID int64, since, until time.Time, resolution time.Duration) (buckets []Bucket, total Bucket, err error) {
	// Postgres keeps microseconds: bucket starts must match its date_bin.
	since, until = since.UTC().Truncate(time.Microsecond), until.UTC().Truncate(time.Microsecond)
	f := fault.Fields{}
	f.Check(!until.After(since), "until", "must be after since")
	f.Check(resolution < time.Minute, "resolution", "must be at least 1m")
	f.Check(resolution >= time.Minute && until.Sub(since)/resolution > 1000, "resolution", "gives more than 1000 buckets; choose a coarser one")
	if err := f.Err(); err != nil {
		return nil, Bucket{}, err
	}
	var rows []statsRow
	// One pass over the range's attempts: per bucket and over the range
	// (grouping sets) the counts and percentiles; the error classes per
	// bucket are counted apart and joined to the few bucket rows. Each
	// side is grouped before the join, whatever the planner believes of
	// the table's size.
	err = d.db.WithContext(ctx).Raw(`
		WITH a AS MATERIALIZED (
		    SELECT date_bin(make_interval(secs => ?), created_at, ?::timestamptz) AS bucket, duration_us, error_class
		    FROM attempts WHERE app_id = ? AND created_at >= ? AND created_at < ?
		), m AS (
		    SELECT bucket, count(*) AS attempts,
		           count(*) FILTER (WHERE error_class = '') AS succeeded,
		           percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_us) / 1000.0 AS p50,
		           percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_us) / 1000.0 AS p95,
		           percentile_cont(0.99) WITHIN GROUP (ORDER BY duration_us) / 1000.0 AS p99
		    FROM a GROUP BY GROUPING SETS ((bucket), ())
		), classes AS MATERIALIZED (
		    SELECT bucket, jsonb_object_agg(error_class, n) AS classes
		    FROM (SELECT bucket, error_class, count(*) AS n FROM a WHERE error_class <> '' GROUP BY bucket, error_class) c
		    GROUP BY bucket
		)
		SELECT m.bucket, m.attempts, m.succeeded, m.p50, m.p95, m.p99, COALESCE(classes.classes, '{}') AS classes
		FROM m LEFT JOIN classes ON classes.bucket = m.bucket`,
		resolution.Seconds(), since, appID, since, until).Scan(&rows).Error
	if err != nil {
		return nil, Bucket{}, fmt.Errorf("computing stats: %w", err)
	}
	byStart := map[time.Time]statsRow{}
	var whole statsRow
	for _, r := range rows {
		if r.Bucket == nil {
			whole = r
			continue
		}
		byStart[r.Bucket.UTC()] = r
	}
	// The range's error classes are its buckets' summed; the query counts
	// them per bucket only.
	total = whole.bucket(since)
	for t := since.UTC(); t.Before(until); t = t.Add(resolution) {
		r := byStart[t]
		b := r.bucket(t)
		if len(r.Classes) > 0 {
			if err := json.Unmarshal(r.Classes, &b.ErrorClasses); err != nil {
				return nil, Bucket{}, fmt.Errorf("reading error classes: %w", err)
			}
		}
		for class, n := range b.ErrorClasses {
			total.ErrorClasses[class] += n
		}
		buckets = append(buckets, b)
	}
	return buckets, total, nil
}

// statsRow is one row of Stats' query: a bucket, or (Bucket nil) the range.
type statsRow struct {
	Bucket        *time.Time
	Attempts      int
	Succeeded     int
	P50, P95, P99 float64
	Classes       json.RawMessage
}

// bucket is r's figures as the bucket starting at start, without its
// error classes.
func (r statsRow) bucket(start time.Time) Bucket {
	b := Bucket{Start: start, Attempts: r.Attempts, Succeeded: r.Succeeded, Failed: r.Attempts - r.Succeeded,
		P50: r.P50, P95: r.P95, P99: r.P99, ErrorClasses: map[string]int{}}
	if b.Attempts > 0 {
		b.SuccessRate = float64(b.Succeeded) / float64(b.Attempts)
	}
	return b
}

// SetEndpoint changes an app's endpoint inside the caller's transaction:
// limits (nil keeps one) and, when status is set, enabled (paused
// deliveries replayed after the commit) or disabled (pending ones paused).
// The caller audits the change; call Forget after the commit.
func (d *Dispatcher) SetEndpoint(ctx context.Context, tx *gorm.DB, appID int64, status *string, reason string, rate, inFlight *int) error {
	f := fault.Fields{}
	f.Check(status != nil && *status != EndpointEnabled && *status != EndpointDisabled, "webhookStatus", "must be enabled or disabled")
	f.Check(rate != nil && (*rate < 1 || *rate > 100000), "webhookRateLimit", "must be from 1 to 100000 deliveries per second")
	f.Check(inFlight != nil && (*inFlight < 1 || *inFlight > 10000), "webhookMaxInFlight", "must be from 1 to 10000")
	if err := f.Err(); err != nil {
		return err
	}
	db := tx.WithContext(ctx)
	if err := db.Exec(`INSERT INTO endpoints (app_id, rate_limit, max_in_flight, updated_at) VALUES (?, ?, ?, now())
		ON CONFLICT (app_id) DO UPDATE SET rate_limit = COALESCE(EXCLUDED.rate_limit, endpoints.rate_limit),
		max_in_flight = COALESCE(EXCLUDED.max_in_flight, endpoints.max_in_flight), updated_at = now()`, appID, rate, inFlight).Error; err != nil {
		return fmt.Errorf("setting limits: %w", err)
	}
	switch {
	case status == nil:
	case *status == EndpointEnabled:
		if err := db.Exec(`UPDATE endpoints SET status = 'enabled', disabled_reason = '', disabled_at = NULL, failing_since = NULL, updated_at = now()
			WHERE app_id = ? AND status <> 'enabled'`, appID).Error; err != nil {
			return fmt.Errorf("enabling endpoint: %w", err)
		}
		var rows []ref
		if err := db.Raw(`UPDATE deliveries SET status = 'pending', next_attempt_at = now(), enqueued_at = now()
			WHERE app_id = ? AND status = 'paused' RETURNING id, app_id`, appID).Scan(&rows).Error; err != nil {
			return fmt.Errorf("replaying paused deliveries: %w", err)
		}
		d.outbox.afterCommit(ctx, tx, rows)
	default:
		if err := db.Exec(`UPDATE endpoints SET status = 'disabled', disabled_reason = ?, disabled_at = now(), updated_at = now()
			WHERE app_id = ? AND status <> 'disabled'`, reason, appID).Error; err != nil {
			return fmt.Errorf("disabling endpoint: %w", err)
		}
		if err := db.Exec(`UPDATE deliveries SET status = 'paused', next_attempt_at = NULL WHERE id IN (
			SELECT id FROM deliveries WHERE app_id = ? AND status = 'pending' AND (claimed_until IS NULL OR claimed_until < now())
			FOR NO KEY UPDATE SKIP LOCKED)`, appID).Error; err != nil {
			return fmt.Errorf("pausing deliveries: %w", err)
		}
	}
	return nil
}
