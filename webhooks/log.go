package webhooks

// The delivery log's read model: what partners see of their deliveries.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"golang.org/x/sync/singleflight"
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

// ListDeliveries returns an app's deliveries, newest first; appID is a
// destination key (a host endpoint's too: HostKey).
func (s *Store) ListDeliveries(ctx context.Context, appID int64, dq DeliveryQuery, r page.Request) (page.Page[Delivery], error) {
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
	rows, err := s.listDeliveries(ctx, appID, dq, r)
	if err != nil {
		return page.Page[Delivery]{}, fmt.Errorf("listing deliveries of app %d: %w", appID, err)
	}
	return page.Finish(rows, r, deliveriesOrder, func(d Delivery) (string, int64) { return "", d.ID }), nil
}

// deliveriesOrder is the delivery log's one order, newest first; its
// cursors are made for "id desc" (page.Sort's key for it).
var deliveriesOrder = page.Sort{Column: "id", Desc: true}

// deliveryColumns are the columns of a Delivery, in listDeliveries' scan
// order.
const deliveryColumns = `id, uuid::text, event_id, COALESCE(app_id, 0), host_endpoint_id, installation_id, installation_uuid::text,
	organization_id, event_type, status, attempts, max_attempts, next_attempt_at, claimed_until, enqueued_at, last_attempt_at,
	last_status_code, last_error_class, created_at, completed_at, ordering_key`

// listDeliveries is ListDeliveries' query: page.Query's keyset condition,
// order and extra row, written out and run on pgx itself. The delivery log
// is read by dashboards many times a second; through gorm, reflection over
// SELECT * rows was most of a request's CPU.
func (s *Store) listDeliveries(ctx context.Context, appID int64, dq DeliveryQuery, r page.Request) ([]Delivery, error) {
	if r.Cursor != nil && r.Cursor.Sort != "id desc" {
		return nil, page.ErrCursorSort
	}
	col, dest := keyCol(appID)
	var sb strings.Builder
	args := []any{dest}
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	sb.WriteString("SELECT " + deliveryColumns + " FROM deliveries WHERE " + col + " = $1")
	switch dq.Status {
	case "":
	case DeliverySucceeded:
		sb.WriteString(" AND status = 'succeeded'")
	default:
		// Literals, not parameters (the value is one of three, checked
		// by ListDeliveries): a cached generic plan could not use
		// delivery_queue's partial index of the status, which lists the
		// few deliveries not delivered among an app's millions.
		sb.WriteString(" AND id IN (SELECT delivery_id FROM delivery_queue WHERE " + col + " = $1 AND status = '" + dq.Status + "') AND status = '" + dq.Status + "'")
	}
	if dq.EventType != "" {
		sb.WriteString(" AND event_type = " + arg(dq.EventType))
	}
	if dq.InstallationUUID != "" {
		sb.WriteString(" AND installation_uuid = " + arg(dq.InstallationUUID) + "::uuid")
	}
	if dq.Since != nil {
		sb.WriteString(" AND created_at >= " + arg(*dq.Since))
	}
	if dq.Until != nil {
		sb.WriteString(" AND created_at < " + arg(*dq.Until))
	}
	desc := r.Cursor == nil || !r.Cursor.Prev
	op, dir := ">", "ASC"
	if desc {
		op, dir = "<", "DESC"
	}
	if c := r.Cursor; c != nil {
		if c.Incl {
			op += "="
		}
		sb.WriteString(" AND id " + op + " " + arg(c.ID))
	}
	sb.WriteString(" ORDER BY id " + dir + " LIMIT " + strconv.Itoa(r.Size()+1))
	out := make([]Delivery, 0, r.Size()+1)
	err := s.withConn(ctx, func(c *pgx.Conn) error {
		rows, err := c.Query(ctx, sb.String(), args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var d Delivery
			if err := rows.Scan(&d.ID, &d.UUID, &d.EventID, &d.AppID, &d.HostEndpointID, &d.InstallationID, &d.InstallationUUID,
				&d.OrganizationID, &d.EventType, &d.Status, &d.Attempts, &d.MaxAttempts, &d.NextAttemptAt, &d.ClaimedUntil, &d.EnqueuedAt,
				&d.LastAttemptAt, &d.LastStatusCode, &d.LastErrorClass, &d.CreatedAt, &d.CompletedAt, &d.OrderingKey); err != nil {
				return err
			}
			out = append(out, d)
		}
		return rows.Err()
	})
	return out, err
}

// withConn runs fn on a pgx connection of the API's pool (not one of
// those drains hold: onConn).
func (s *Store) withConn(ctx context.Context, fn func(c *pgx.Conn) error) error {
	conn, err := s.sql.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error { return fn(dc.(*stdlib.Conn).Conn()) })
}

// DeliveryDetail is one delivery with its payload and every attempt.
type DeliveryDetail struct {
	Delivery
	Payload  json.RawMessage
	Attempts []Attempt
}

// GetDelivery returns an app's delivery by its uuid (the webhook-id).
func (s *Store) GetDelivery(ctx context.Context, appID int64, id string) (*DeliveryDetail, error) {
	if _, err := uuid.Parse(id); err != nil {
		return nil, fault.NotFound("delivery")
	}
	var out DeliveryDetail
	col, dest := keyCol(appID)
	err := s.db.WithContext(ctx).Where(col+" = ? AND uuid = ?", dest, id).Take(&out.Delivery).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, fault.NotFound("delivery")
	}
	if err != nil {
		return nil, fmt.Errorf("finding delivery %s of app %d: %w", id, appID, err)
	}
	var ev Event
	if err := s.db.WithContext(ctx).Take(&ev, out.EventID).Error; err != nil {
		return nil, fmt.Errorf("loading event: %w", err)
	}
	out.Payload = Envelope(out.UUID, out.EventType, ev.CreatedAt, out.InstallationUUID, ev.Data)
	if err := s.db.WithContext(ctx).Where("delivery_id = ?", out.ID).Order("id").Find(&out.Attempts).Error; err != nil {
		return nil, fmt.Errorf("loading attempts: %w", err)
	}
	return &out, nil
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
// over the whole range (total: its Start is since). The figures of a range
// are kept for statsTTL: a dashboard asks for the same range (the last day
// by the hour) again and again, and one pass over a busy app's day of
// attempts takes tens of milliseconds. Attempts this process records for
// the app drop its figures at once; another process's are seen within
// statsTTL and one computation (statsStale when nobody asked meanwhile).
func (s *Store) Stats(ctx context.Context, appID int64, since, until time.Time, resolution time.Duration) ([]Bucket, Bucket, error) {
	return s.cachedStats(ctx, appID, since, until, resolution, false)
}

// BucketStats is Stats without the percentiles of the whole range (total's
// P50, P95 and P99 are 0), which is what the API answers: its figures of
// a bucket that ended more than statsSettle ago are kept for statsClosedTTL
// and reused by every range that includes it, so a refresh reads only the
// attempts of the buckets still open (the current hour of a day by the
// hour) instead of the whole range's. With 10 million attempts stored, the
// pass over 20 apps' days was most of PostgreSQL's work under the API
// read load.
func (s *Store) BucketStats(ctx context.Context, appID int64, since, until time.Time, resolution time.Duration) ([]Bucket, Bucket, error) {
	return s.cachedStats(ctx, appID, since, until, resolution, true)
}

func (s *Store) cachedStats(ctx context.Context, appID int64, since, until time.Time, resolution time.Duration, byBucket bool) ([]Bucket, Bucket, error) {
	key := statsKey{appID, since.UTC().Truncate(time.Microsecond).UnixMicro(), until.UTC().Truncate(time.Microsecond).UnixMicro(), resolution, byBucket}
	compute := func(ctx context.Context) (any, error) {
		version := s.stats.version(appID)
		computeFn := s.computeStats
		if byBucket {
			computeFn = s.computeBucketStats
		}
		buckets, total, err := computeFn(ctx, appID, since, until, resolution)
		if err != nil {
			return nil, err
		}
		st := statsResult{buckets: buckets, total: total}
		s.stats.put(key, st, version)
		return st, nil
	}
	st, age, ok := s.stats.get(key)
	switch {
	case ok && age <= statsTTL:
		return st.buckets, st.total, nil
	case ok && age <= statsStale:
		// Stale but no attempt of this process came since: answer it and
		// compute the next in the background, so that no request waits
		// for a pass over the range while figures exist.
		ctx := context.WithoutCancel(ctx)
		go func() {
			ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			_, _, _ = s.stats.flight.Do(fmt.Sprint(key), func() (any, error) { return compute(ctx) })
		}()
		return st.buckets, st.total, nil
	}
	v, err, _ := s.stats.flight.Do(fmt.Sprint(key), func() (any, error) { return compute(ctx) })
	if err != nil {
		return nil, Bucket{}, err
	}
	st = v.(statsResult)
	return st.buckets, st.total, nil
}

// statsTTL is how long a process answers with an app's figures for a
// range as they are; until statsStale it answers with them while it
// computes the next. Attempts recorded by this process drop them at once.
const (
	statsTTL   = 5 * time.Second
	statsStale = 30 * time.Second
)

type statsKey struct {
	app          int64
	since, until int64
	res          time.Duration
	byBucket     bool // BucketStats' (no percentiles over the range)
}

// bucketKey is one bucket of an app's figures: [start, start+res).
type bucketKey struct {
	app   int64
	start int64 // unix microseconds
	res   time.Duration
}

// statsSettle is how long after a bucket's end attempts may still be
// recorded in it (an attempt's created_at is when it was made; its batch
// is recorded after its request, up to the send timeout later), and
// statsClosedTTL how long the figures of a bucket that had settled when
// they were computed are reused. Past it they are read again, so that
// attempts another process deleted (retention) or wrote late are seen.
const (
	statsSettle    = 2 * time.Minute
	statsClosedTTL = 5 * time.Minute
)

type bucketEntry struct {
	b  Bucket
	at time.Time
}

type statsResult struct {
	buckets []Bucket
	total   Bucket
}

// statsCache keeps Stats' results by range, each with the version of its
// app's attempts it was computed from (record bumps it).
type statsCache struct {
	flight   singleflight.Group
	mu       sync.Mutex
	m        map[statsKey]statsEntry
	versions map[int64]uint64
	closed   map[bucketKey]bucketEntry // settled buckets' figures (BucketStats)
	retained uint64                    // retention's passes seen (changed(0))
}

type statsEntry struct {
	st      statsResult
	at      time.Time
	version uint64
}

func newStatsCache() *statsCache {
	return &statsCache{m: map[statsKey]statsEntry{}, versions: map[int64]uint64{}, closed: map[bucketKey]bucketEntry{}}
}

// get is k's figures and their age, unless attempts were recorded for
// its app since they were computed.
func (c *statsCache) get(k statsKey) (statsResult, time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok || e.version != c.versions[k.app] {
		return statsResult{}, 0, false
	}
	return e.st, time.Since(e.at), true
}

func (c *statsCache) put(k statsKey, st statsResult, version uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) > 10000 {
		clear(c.m)
	}
	c.m[k] = statsEntry{st: st, at: time.Now(), version: version}
}

func (c *statsCache) version(app int64) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.versions[app]
}

// changed drops app's figures: attempts were recorded for it (every app's
// when app is 0: retention dropped some).
func (c *statsCache) changed(app int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if app == 0 {
		clear(c.m)
		clear(c.closed)
		c.retained++
		return
	}
	c.versions[app]++
}

func (c *statsCache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.retained
}

// settled is k's figures if they were kept within statsClosedTTL.
func (c *statsCache) settled(k bucketKey) (Bucket, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.closed[k]
	if !ok || time.Since(e.at) > statsClosedTTL {
		return Bucket{}, false
	}
	return e.b, true
}

// putSettled keeps the figures of settled buckets read since generation
// gen of the cache (retention started a new one: they may count attempts
// it deleted, and are not kept).
func (c *statsCache) putSettled(ks []bucketKey, bs []Bucket, at time.Time, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.retained {
		return
	}
	if len(c.closed)+len(ks) > 100000 {
		clear(c.closed)
	}
	for i, k := range ks {
		c.closed[k] = bucketEntry{b: bs[i], at: at}
	}
}

// checkStatsRange checks a stats request's range and resolution: at most
// 1,000 buckets of at least a minute.
func checkStatsRange(since, until time.Time, resolution time.Duration) error {
	f := fault.Fields{}
	f.Check(!until.After(since), "until", "must be after since")
	f.Check(resolution < time.Minute, "resolution", "must be at least 1m")
	f.Check(resolution >= time.Minute && until.Sub(since)/resolution > 1000, "resolution", "gives more than 1000 buckets; choose a coarser one")
	return f.Err()
}

// computeStats is Stats' query.
func (s *Store) computeStats(ctx context.Context, appID int64, since, until time.Time, resolution time.Duration) (buckets []Bucket, total Bucket, err error) {
	// Postgres keeps microseconds: bucket starts must match its date_bin.
	since, until = since.UTC().Truncate(time.Microsecond), until.UTC().Truncate(time.Microsecond)
	if err := checkStatsRange(since, until, resolution); err != nil {
		return nil, Bucket{}, err
	}
	var rows []statsRow
	// One pass over the range's attempts: per bucket and over the range
	// (grouping sets) the counts and percentiles; the error classes per
	// bucket are counted apart and joined to the few bucket rows. Each
	// side is grouped before the join, whatever the planner believes of
	// the table's size.
	err = s.db.WithContext(ctx).Raw(`
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
		return nil, Bucket{}, fmt.Errorf("computing stats of app %d: %w", appID, err)
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

// computeBucketStats is BucketStats' figures: the settled buckets kept,
// the others (those still open, and any not kept) read in one pass over
// the span from the first to the last of them; the range's counts and
// error classes are its buckets' summed.
func (s *Store) computeBucketStats(ctx context.Context, appID int64, since, until time.Time, resolution time.Duration) ([]Bucket, Bucket, error) {
	since, until = since.UTC().Truncate(time.Microsecond), until.UTC().Truncate(time.Microsecond)
	if err := checkStatsRange(since, until, resolution); err != nil {
		return nil, Bucket{}, err
	}
	// Settled by the time the query starts: no attempt is recorded in
	// them after it.
	started, gen := time.Now(), s.stats.generation()
	settledBy := started.Add(-statsSettle)
	var buckets []Bucket
	lo, hi := -1, -1 // the buckets to read: [lo, hi]
	for t := since; t.Before(until); t = t.Add(resolution) {
		b, ok := s.stats.settled(bucketKey{appID, t.UnixMicro(), resolution})
		if !ok || t.Add(resolution).After(settledBy) {
			if lo < 0 {
				lo = len(buckets)
			}
			hi = len(buckets)
			b = Bucket{Start: t}
		}
		buckets = append(buckets, b)
	}
	if lo >= 0 {
		from, to := buckets[lo].Start, buckets[hi].Start.Add(resolution)
		read, _, err := s.computeStats(ctx, appID, from, to, resolution)
		if err != nil {
			return nil, Bucket{}, err
		}
		var keys []bucketKey
		var keep []Bucket
		for i, b := range read {
			buckets[lo+i] = b
			if !b.Start.Add(resolution).After(settledBy) {
				keys = append(keys, bucketKey{appID, b.Start.UnixMicro(), resolution})
				keep = append(keep, b)
			}
		}
		s.stats.putSettled(keys, keep, started, gen)
	}
	total := Bucket{Start: since, ErrorClasses: map[string]int{}}
	for _, b := range buckets {
		total.Attempts += b.Attempts
		total.Succeeded += b.Succeeded
		total.Failed += b.Failed
		for class, n := range b.ErrorClasses {
			total.ErrorClasses[class] += n
		}
	}
	if total.Attempts > 0 {
		total.SuccessRate = float64(total.Succeeded) / float64(total.Attempts)
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
