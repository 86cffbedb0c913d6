package webhooks

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"gorm.io/gorm"
)

// Store is webhooks' PostgreSQL: the claims and records of the
// Dispatcher's batches (on pgx connections, with cached plans), the relay's
// and retention's statements, and the delivery log's read model (log.go).
type Store struct {
	db  *gorm.DB
	sql *sql.DB
	// held bounds the connections drains hold across a batch's requests,
	// so the API and other jobs always find some in the pool, and the
	// batches open at once (heldPerCPU).
	held  chan struct{}
	stats *statsCache // Stats' figures by range (log.go)
	opts  Options
}

// NewStore returns the store on db.
func NewStore(db *gorm.DB, opts Options) (*Store, error) {
	sqlDB, err := db.DB()
	if err != nil {
		return nil, fmt.Errorf("webhooks store: gorm without a *sql.DB: %w", err)
	}
	held := heldPerCPU * runtime.GOMAXPROCS(0)
	if m := sqlDB.Stats().MaxOpenConnections; m > 0 {
		held = min(held, max(1, m-max(2, m/5)))
	}
	return &Store{db: db, sql: sqlDB, held: make(chan struct{}, held), stats: newStatsCache(), opts: opts.withDefaults()}, nil
}

// heldPerCPU bounds the batches a process has open at once, per CPU it
// runs on: a batch's transaction stays open while its requests are sent,
// and past a few per core more of them only wait for the CPU with their
// transactions open, which holds back PostgreSQL's xmin horizon (the
// claims then walk more dead queue entries) and puts more requests in
// flight (each batch starts sendersFirst of them). Fan-out 20 on 2 cores with 32 workers and 40 connections (32
// batches open at most before): 0.131-0.134 CPU-ms per delivery with 16,
// 0.124-0.134 with 8 or 12, against 0.137 with 32, alternated; the mix,
// its p99 at 2,000/s and batch publishing measured the same.
const heldPerCPU = 8

// onConn runs fn on a connection of its own, one of those drains may hold
// (the rest of the pool is the API's). If fn leaves a transaction open,
// it is rolled back, or the connection dropped.
func (s *Store) onConn(ctx context.Context, fn func(c *pgx.Conn) error) error {
	select {
	case s.held <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.held }()
	conn, err := s.sql.Conn(ctx)
	if err != nil {
		return fmt.Errorf("claiming deliveries: %w", err)
	}
	defer conn.Close()
	var inner error
	err = conn.Raw(func(dc any) error {
		c := dc.(*stdlib.Conn).Conn()
		inner = fn(c)
		if pc := c.PgConn(); !pc.IsClosed() && pc.TxStatus() != 'I' {
			// Failed midway: give the locks back, or drop the connection.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if _, err := c.Exec(rctx, "ROLLBACK"); err != nil {
				return driver.ErrBadConn
			}
		}
		return nil
	})
	if inner != nil {
		return inner
	}
	if err != nil {
		return fmt.Errorf("delivering: %w", err)
	}
	return nil
}

// claimed is a delivery this worker holds, with what its body needs.
type claimed struct {
	ID               int64
	UUID             string
	Attempts         int
	MaxAttempts      int
	EventType        string
	InstallationUUID *string
	Data             json.RawMessage
	EventCreatedAt   time.Time
	DueAt            time.Time
	// TargetMethod and TargetURL send it elsewhere than the app's webhook
	// URL (NewEvent.Target); nil for webhooks.
	TargetMethod, TargetURL *string
	// HoldsBack is a delivery behind which a later one of its ordering
	// key is pending (notHeldBack): once this one is done, that one is due
	// at once. A sweep hands such an app back to a drain; a drain claims
	// again after every batch anyway, so claimSQL does not look (false).
	HoldsBack bool
}

// destination is where and how c is sent: its target, or a POST to the
// app's webhook URL ("" for an app that has none).
func (c claimed) destination(ep cachedEndpoint) (method, url string) {
	if c.TargetURL != nil && *c.TargetURL != "" {
		m := http.MethodPost
		if c.TargetMethod != nil && *c.TargetMethod != "" {
			m = *c.TargetMethod
		}
		return m, *c.TargetURL
	}
	return http.MethodPost, ep.ep.URL
}

// claimSQL locks up to a batch of the app's due deliveries for the
// transaction that will record their outcome. They are found in
// delivery_queue (migration 00019: deliveries has no index on what an
// outcome changes, so recording it is a HOT update), and checked again on
// the delivery row itself: a delivery recorded by a transaction that
// committed after this statement's snapshot is re-read under the lock
// (EvalPlanQual) and no longer pending, so it is not sent twice. SKIP
// LOCKED: concurrent drains split the work, no two send the same delivery.
// A lock (not a written claim) holds them: a worker that dies mid-batch
// drops its connection, PostgreSQL rolls back, and the deliveries are due
// again at once, with no second row version and no index entries for the
// claim. claimed_until is still honoured for claims written by older
// versions.
//
// The candidates are locked in delivery_queue alone (the due CTE), and
// only the rows won are joined to deliveries and events and locked there
// (for pauseSQL and holdSQL, which skip what a worker holds). Locking
// after the joins, as before, read a deliveries and an events row for
// every candidate another drain held: with 16 drains of one app, 5,216
// index rows and about 15 primary-key probes per delivered row in the
// batch bench; EXPLAIN (ANALYZE, BUFFERS) with 1,500 rows held: 54 ms and
// 13,534 buffers before, 6.8 ms and 3,909 now (uncontended, one lock WAL
// record more per row: 54 bytes). A claim never waits for a lock.
//
// One rule keeps the other writers of pending deliveries from waiting on
// a drain's sends: whoever locks a pending delivery locks its
// delivery_queue row first (the relay, pauseSQL and holdSQL say OF q, d).
// A claim keeps the queue rows it locked until it commits, also those
// whose delivery row it then lost; a writer that locked the delivery row
// alone would, in its statement's trigger, wait on such a queue row until
// the drain's batch was sent. Locking the queue row first, with SKIP
// LOCKED, it passes by what a drain holds instead, as before.
//
// A short claim writing a lease (claimed_until, and delivery_queue due when
// it ends), committed before the sends, was measured and dropped: a second
// transaction, trigger call and commit per batch cost more than the open
// transactions' held-back xmin horizon (fan-out 20: PostgreSQL CPU per
// delivery 0.28–0.31 → 0.45–0.49 ms).
const claimSQL = `
	WITH due AS (
		SELECT q.delivery_id FROM delivery_queue q
		WHERE q.app_id = $1 AND q.status = 'pending' AND q.next_attempt_at <= now() + interval '100 milliseconds'
		  AND ` + notHeldBack + `
		ORDER BY q.next_attempt_at LIMIT $2
		FOR NO KEY UPDATE SKIP LOCKED
	)
	SELECT d.id, d.uuid::text, d.attempts, d.max_attempts, d.event_type, d.installation_uuid::text, e.data::text, e.created_at, d.next_attempt_at,
		d.target_method, d.target_url, false
	FROM due JOIN deliveries d ON d.id = due.delivery_id JOIN events e ON e.id = d.event_id
	WHERE d.status = 'pending' AND d.next_attempt_at <= now() + interval '100 milliseconds'
	  AND (d.claimed_until IS NULL OR d.claimed_until < now())
	ORDER BY d.next_attempt_at
	FOR NO KEY UPDATE OF d SKIP LOCKED`

// notHeldBack is the claims' condition on a due queue row q: no earlier
// delivery of its ordering key to its app is pending (NewEvent.OrderingKey;
// delivery_queue_app_key_idx; the queue's key is scoped to the
// organization, migration 00025). The earlier one may be in flight, its row
// locked by another claim: it is read, not locked, so it still holds this
// one back; and of one key's due deliveries a claim takes the first alone.
// A host endpoint's deliveries have no key.
const notHeldBack = `(q.ordering_key IS NULL OR NOT EXISTS (
			SELECT 1 FROM delivery_queue p WHERE p.app_id = q.app_id AND p.ordering_key = q.ordering_key
			AND p.status = 'pending' AND p.delivery_id < q.delivery_id))`

// claimSettings opens every claim's transaction (claim, claimMany): plans
// made once per connection and never a sequential scan, and an
// asynchronous commit (see record).
const claimSettings = "SELECT set_config('plan_cache_mode', 'force_generic_plan', true), set_config('enable_seqscan', 'off', true), " +
	"set_config('synchronous_commit', 'off', true)"

// dest is where a claim's row is scanned, in claimSQL's column order; the
// event's data goes to data as text (pgx copies it once, into data).
func (r *claimed) dest(data *[]byte) []any {
	return []any{&r.ID, &r.UUID, &r.Attempts, &r.MaxAttempts, &r.EventType, &r.InstallationUUID, data, &r.EventCreatedAt, &r.DueAt, &r.TargetMethod, &r.TargetURL, &r.HoldsBack}
}

// claimHostSQL is claimSQL for a host endpoint (delivery_queue_host_due_idx).
var claimHostSQL = strings.Replace(claimSQL, "q.app_id = $1", "q.host_endpoint_id = $1", 1)

// claim begins a transaction on c and locks up to limit of the app's due
// deliveries in it (claimSQL), in one round trip. With none, it commits.
// appID is a destination key: a host endpoint's claims claimHostSQL.
func (s *Store) claim(ctx context.Context, c *pgx.Conn, appID int64, limit int) ([]claimed, error) {
	query, dest := claimSQL, appID
	if id, ok := IsHostKey(appID); ok {
		query, dest = claimHostSQL, id
	}
	var rows []claimed
	err := claimRows(ctx, c, query, []any{dest, limit}, func(q pgx.Rows) error {
		var r claimed
		var data []byte
		if err := q.Scan(r.dest(&data)...); err != nil {
			return err
		}
		r.Data = data
		rows = append(rows, r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claiming deliveries of app %d: %w", appID, err)
	}
	return rows, nil
}

// claimRows begins a transaction on c and runs a claim in it (query with
// args), in one round trip, calling scan on each row. The claim and the
// record are index lookups by design: they are planned once per
// connection (planning them for every batch cost a fifth of PostgreSQL's
// time), never as a sequential scan (which a plan made while the table was
// young and small could otherwise keep for good), and commit
// asynchronously (see record): claimSettings. With no row, it commits.
func claimRows(ctx context.Context, c *pgx.Conn, query string, args []any, scan func(pgx.Rows) error) error {
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(claimSettings)
	b.Queue(query, args...)
	br := c.SendBatch(ctx, b)
	n := 0
	_, err := br.Exec()
	if err == nil {
		_, err = br.Exec()
	}
	if err == nil {
		var q pgx.Rows
		q, err = br.Query()
		if err == nil {
			for q.Next() {
				if err = scan(q); err != nil {
					break
				}
				n++
			}
			q.Close()
			if err == nil {
				err = q.Err()
			}
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err == nil && n == 0 {
		_, err = c.Exec(ctx, "COMMIT")
	}
	return err
}

// pause pauses the claimed rows (their endpoint is disabled or has no URL)
// and commits the claim's transaction.
func (s *Store) pause(ctx context.Context, c *pgx.Conn, rows []claimed) error {
	ids := make([]int64, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	b := &pgx.Batch{}
	b.Queue("UPDATE deliveries SET status = 'paused', claimed_until = NULL, next_attempt_at = NULL WHERE id = ANY($1)", ids)
	b.Queue("COMMIT")
	if err := c.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("pausing deliveries: %w", err)
	}
	return nil
}

// recordSQL writes a batch's attempts and its deliveries' new state in
// one statement, from arrays: the same text for any batch size.
const recordSQL = `
	WITH recorded AS (
		INSERT INTO attempts (delivery_id, app_id, number, url, request_headers, response_status, response_headers,
			response_body, duration_us, error_class, error_message, created_at)
		SELECT t.d, $10, t.n, t.u, t.rq::json, t.rs, t.rh::json, t.b, t.du, t.ec, t.em, t.ca
		FROM unnest($11::bigint[], $12::int[], $13::text[], $14::text[], $15::int[], $16::text[], $17::text[], $18::bigint[],
			$19::text[], $20::text[], $21::timestamptz[]) AS t(d, n, u, rq, rs, rh, b, du, ec, em, ca)
	)
	UPDATE deliveries d SET status = v.status, attempts = v.attempts, next_attempt_at = v.next, claimed_until = NULL,
		last_attempt_at = CASE WHEN v.tried THEN v.last ELSE d.last_attempt_at END,
		last_status_code = CASE WHEN v.tried THEN v.code ELSE d.last_status_code END,
		last_error_class = CASE WHEN v.tried THEN v.class ELSE d.last_error_class END,
		completed_at = v.completed, enqueued_at = now()
	FROM unnest($1::bigint[], $2::text[], $3::int[], $4::timestamptz[], $5::timestamptz[], $6::int[], $7::text[],
		$8::timestamptz[], $9::bool[]) AS v(id, status, attempts, next, last, code, class, completed, tried)
	WHERE d.id = v.id AND d.id = ANY($1::bigint[])`

// recordBatch is a batch's outcome as recordSQL's arrays: every
// delivery's new state, and the attempts made.
type recordBatch struct {
	ids                 []int64
	statuses, classes   []string
	attempts            []int32
	nexts, lasts, dones []*time.Time
	codes               []*int32
	tried               []bool

	aDelivery, aDuration []int64
	aNumber              []int32
	aStatuses            []*int32
	aURL, aReq, aBody    []string
	aResp                []*string
	aClass, aMessage     []string
	aCreated             []time.Time
}

func newRecordBatch(n int) *recordBatch {
	return &recordBatch{
		ids:      make([]int64, 0, n),
		statuses: make([]string, 0, n), classes: make([]string, 0, n),
		attempts: make([]int32, 0, n),
		nexts:    make([]*time.Time, 0, n), lasts: make([]*time.Time, 0, n), dones: make([]*time.Time, 0, n),
		codes: make([]*int32, 0, n),
		tried: make([]bool, 0, n),

		aDelivery: make([]int64, 0, n), aDuration: make([]int64, 0, n),
		aNumber: make([]int32, 0, n), aStatuses: make([]*int32, 0, n),
		aURL: make([]string, 0, n), aReq: make([]string, 0, n), aBody: make([]string, 0, n),
		aResp:  make([]*string, 0, n),
		aClass: make([]string, 0, n), aMessage: make([]string, 0, n),
		aCreated: make([]time.Time, 0, n),
	}
}

// deferred records that delivery id waits until next without an attempt.
func (b *recordBatch) deferred(id int64, attempts int, next time.Time) {
	b.ids, b.statuses, b.attempts, b.nexts = append(b.ids, id), append(b.statuses, DeliveryPending), append(b.attempts, int32(attempts)), append(b.nexts, &next)
	b.lasts, b.codes, b.classes, b.dones, b.tried = append(b.lasts, nil), append(b.codes, nil), append(b.classes, ""), append(b.dones, nil), append(b.tried, false)
}

// attempted records attempt a of delivery id and the delivery's new state:
// its status after tries attempts, when it is next due, when it completed.
func (b *recordBatch) attempted(id int64, a Attempt, tries int, status string, next, completed *time.Time) {
	var code *int32
	if a.ResponseStatus != nil {
		v := int32(*a.ResponseStatus)
		code = &v
	}
	var respHeaders *string
	if len(a.ResponseHeaders) > 0 {
		v := string(a.ResponseHeaders)
		respHeaders = &v
	}
	b.aDelivery, b.aNumber, b.aURL, b.aReq = append(b.aDelivery, a.DeliveryID), append(b.aNumber, int32(a.Number)), append(b.aURL, a.URL), append(b.aReq, string(a.RequestHeaders))
	b.aStatuses, b.aResp, b.aBody, b.aDuration = append(b.aStatuses, code), append(b.aResp, respHeaders), append(b.aBody, a.ResponseBody), append(b.aDuration, a.DurationUS)
	b.aClass, b.aMessage, b.aCreated = append(b.aClass, a.ErrorClass), append(b.aMessage, a.ErrorMessage), append(b.aCreated, a.CreatedAt)

	last := a.CreatedAt
	b.ids, b.statuses, b.attempts, b.nexts = append(b.ids, id), append(b.statuses, status), append(b.attempts, int32(tries)), append(b.nexts, next)
	b.lasts, b.codes, b.classes, b.dones, b.tried = append(b.lasts, &last), append(b.codes, code), append(b.classes, a.ErrorClass), append(b.dones, completed), append(b.tried, true)
}

// record writes every attempt and every delivery's new state of b in one
// statement and commits the claim's transaction (one round trip).
//
// The commit is asynchronous (synchronous_commit off, set by claim for
// this transaction alone): it returns before its WAL is flushed, which
// saves a WAL flush per batch and lets the flushes of concurrent drains
// and publishes cover it. The guarantees hold. A PostgreSQL crash may
// lose the last few milliseconds of records: those deliveries are then
// pending again, as if the transaction had rolled back, and are sent
// again with the same webhook-id — a resend after a crash, which
// at-least-once delivery allows (the log then shows the resend's
// attempt). Nothing is lost: the deliveries themselves were committed
// durably by their publish, and a record is never lost without a crash
// of PostgreSQL (a clean shutdown or restart flushes every commit; a
// worker's SIGKILL or a cut connection rolls back, as before). A pause
// committed this way and lost is redone by the next claim.
func (s *Store) record(ctx context.Context, c *pgx.Conn, appID int64, b *recordBatch) error {
	pb := &pgx.Batch{}
	if len(b.ids) > 0 {
		pb.Queue(recordSQL, b.ids, b.statuses, b.attempts, b.nexts, b.lasts, b.codes, b.classes, b.dones, b.tried,
			appID, b.aDelivery, b.aNumber, b.aURL, b.aReq, b.aStatuses, b.aResp, b.aBody, b.aDuration, b.aClass, b.aMessage, b.aCreated)
	}
	pb.Queue("COMMIT")
	err := c.SendBatch(ctx, pb).Close()
	if len(b.aDelivery) > 0 {
		s.stats.changed(appID) // committed or not: drop the figures
	}
	if err != nil {
		return fmt.Errorf("recording deliveries of app %d: %w", appID, err)
	}
	return nil
}

// relayDue marks enqueued, and returns, every delivery due for longer
// than the relay grace that no worker holds and nothing enqueued within
// the grace; both ends of the grace are Options.Now. It goes app by app,
// on the queue the drains claim from (delivery_queue_app_due_idx), then
// host endpoint by host endpoint (delivery_queue_host_due_idx).
func (s *Store) relayDue(ctx context.Context) ([]ref, error) {
	now := s.opts.Now()
	cutoff := now.Add(-s.opts.RelayGrace)
	var rows []ref
	err := s.db.WithContext(ctx).Raw(`
		UPDATE deliveries SET enqueued_at = ?::timestamptz
		WHERE id IN (
			(SELECT d.id FROM apps a CROSS JOIN LATERAL (
				SELECT d.id FROM delivery_queue q JOIN deliveries d ON d.id = q.delivery_id
				WHERE q.app_id = a.id AND q.status = 'pending' AND q.next_attempt_at <= ?::timestamptz AND d.status = 'pending'
				  AND `+notHeldBack+`
				  AND (d.claimed_until IS NULL OR d.claimed_until < now())
				  AND (d.enqueued_at IS NULL OR d.enqueued_at <= ?::timestamptz)
				ORDER BY q.next_attempt_at LIMIT 5000
				FOR UPDATE OF q, d SKIP LOCKED) d
			LIMIT 5000)
			UNION ALL
			(SELECT d.id FROM host_endpoints h CROSS JOIN LATERAL (
				SELECT d.id FROM delivery_queue q JOIN deliveries d ON d.id = q.delivery_id
				WHERE q.host_endpoint_id = h.id AND q.status = 'pending' AND q.next_attempt_at <= ?::timestamptz AND d.status = 'pending'
				  AND (d.claimed_until IS NULL OR d.claimed_until < now())
				  AND (d.enqueued_at IS NULL OR d.enqueued_at <= ?::timestamptz)
				ORDER BY q.next_attempt_at LIMIT 5000
				FOR UPDATE OF q, d SKIP LOCKED) d
			LIMIT 5000))
		RETURNING id, `+keyExpr+` AS app_id`, now, cutoff, cutoff, cutoff, cutoff).Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("relay: finding due deliveries: %w", err)
	}
	return rows, nil
}

// DropOldAttempts deletes attempts older than the retention period (by
// Options.Now), in batches so it never holds long locks.
func (s *Store) DropOldAttempts(ctx context.Context) (int64, error) {
	cutoff := s.opts.Now().Add(-s.opts.Retention)
	var total int64
	for {
		res := s.db.WithContext(ctx).Exec("DELETE FROM attempts WHERE id IN (SELECT id FROM attempts WHERE created_at < ? LIMIT 10000)", cutoff)
		if res.Error != nil {
			return total, fmt.Errorf("retention: dropping attempts before %s: %w", cutoff.Format(time.RFC3339), res.Error)
		}
		total += res.RowsAffected
		if res.RowsAffected > 0 {
			s.stats.changed(0)
		}
		if res.RowsAffected < 10000 {
			return total, nil
		}
	}
}
