package webhooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/plugboard/plugboard/app/secret"
)

// A sweep is a drain of many apps that looks once: one event published to
// thousands of installations leaves one delivery due for each of thousands
// of apps, and a drain task per app would pay a task, its registry calls,
// an endpoint load, a limiter call and a transaction for each one
// delivery. A sweep serves up to sweepChunk apps with one of each:
//
//   - it drops its apps' queued and dirty marks (Drains.startSweep; why no
//     delivery is left without a drain, see drains.go);
//   - it loads their endpoints from the cache, the rest in bulk
//     (Endpoints.endpointsOf);
//   - it claims up to sweepPerApp due deliveries of every app in one
//     statement (claimManySQL), locked as a drain locks its batch;
//   - it takes every app's rate-limit and in-flight slots in one pipelined
//     round trip, the same script and answer per app as a drain's
//     (Limiter.admitMany);
//   - it sends what was admitted, sweepSenders at a time;
//   - it records every outcome in one statement (recordManySQL) and
//     commits; then it tracks the endpoints' health in bulk
//     (Endpoints.healthMany).
//
// Each app's outcome is what a drain's batch would have made of it
// (deliverOn, failUnsignable): a disabled endpoint's deliveries are
// paused, an unopenable secret fails them for good, an app without a
// webhook URL goes to its listen sessions, retries and Retry-After follow
// the schedule. What a sweep does not finish it hands back to drains of
// their own after its commit, which do the waiting a sweep does not: an
// app with more due than sweepPerApp, one the limiters refused or admitted
// in part (no slot is waited for here), requests not started within the
// lease, an endpoint that failed to load (its drain fails as it would),
// and the app's retries, when they are due. Host endpoints are never
// swept (Drains.sweepApps).

// sweepPerApp bounds what a sweep claims of one app: an app with that
// many due is handed back, to a drain that grows with its backlog.
const sweepPerApp = 8

// sweepSenders is how many requests one sweep has in flight at once, as
// many as a worker runs drains (the platform's default concurrency is 20,
// the bench's 32); sweepsSending bounds them over the process's sweeps
// (the sender keeps 256 idle connections per host).
const (
	sweepSenders  = 32
	sweepsSending = 256
)

// sweepApp is one app of a sweep: its endpoint, what was claimed, what
// the limiters gave, and the results.
type sweepApp struct {
	id      int64
	ep      cachedEndpoint
	rows    []claimed
	adm     admission
	results []result
}

// swept is what a sweep leaves to do after its commit.
type swept struct {
	now    []int64           // hand back at once
	later  map[int64]dueSpan // drains when its retries and deferrals come due
	health map[int64]healthOf
}

func (s *swept) handBack(id int64) { s.now = append(s.now, id) }

// sweep delivers what is due for apps (app keys, not host endpoints'), once.
func (d *Dispatcher) sweep(ctx context.Context, apps []int64) error {
	d.drains.startSweep(ctx, apps)
	eps, errs := d.endpoints.endpointsOf(ctx, apps)
	s := &swept{later: map[int64]dueSpan{}, health: map[int64]healthOf{}}
	claim := make([]int64, 0, len(apps))
	for _, id := range apps {
		if err := errs[id]; err != nil && !errors.Is(err, secret.ErrOpen) {
			s.handBack(id) // its drain loads it again, and fails as it would
			continue
		}
		claim = append(claim, id)
	}
	var err error
	if len(claim) > 0 {
		err = d.store.onConn(ctx, func(c *pgx.Conn) error { return d.sweepOn(ctx, c, claim, eps, errs, s) })
	}
	// After the commit, with the connection back in the pool.
	bctx := context.WithoutCancel(ctx)
	if err != nil {
		// Nothing was recorded: the deliveries are due again, for this
		// task's retry, and for the drains of what was handed back.
		d.drains.handBack(bctx, s.now, nil)
		return fmt.Errorf("sweeping %d apps: %w", len(apps), err)
	}
	if len(s.health) > 0 {
		if herr := d.endpoints.healthMany(bctx, s.health); herr != nil {
			d.log.Warn("tracking endpoint health", "apps", len(s.health), "err", herr)
		}
	}
	d.drains.handBack(bctx, s.now, s.later)
	return nil
}

// sweepOn claims, sends and records on c (sweep).
func (d *Dispatcher) sweepOn(ctx context.Context, c *pgx.Conn, ids []int64, eps map[int64]cachedEndpoint, errs map[int64]error, s *swept) error {
	perApp := min(sweepPerApp, d.opts.BatchSize)
	byApp, err := d.store.claimMany(ctx, c, ids, perApp)
	if err != nil || len(byApp) == 0 {
		return err
	}
	lease := d.lease()
	lastStart := time.Now().Add(lease - d.opts.Timeout - 2*time.Second)
	var (
		paused      []int64
		send, fails []*sweepApp
		asks        []admitAsk
	)
	for _, id := range ids {
		rows := byApp[id]
		if len(rows) == 0 {
			continue
		}
		if len(rows) >= perApp || slices.ContainsFunc(rows, func(r claimed) bool { return r.HoldsBack }) {
			// More may be due, or be once a delivery that holds back the
			// next of its key is done: that one waits for no other kick.
			s.handBack(id)
		}
		a := &sweepApp{id: id, ep: eps[id], rows: rows, results: make([]result, len(rows))}
		switch {
		case errs[id] != nil:
			fails = append(fails, a)
		case a.ep.state.Status == EndpointDisabled:
			for _, r := range rows {
				paused = append(paused, r.ID)
			}
		default:
			send = append(send, a)
			asks = append(asks, admitAsk{appID: id, perSecond: a.ep.rateLimit, maxInFlight: a.ep.maxInFlight, want: min(len(rows), a.ep.maxInFlight)})
		}
	}
	if len(asks) > 0 {
		adm, err := d.limiter.admitMany(ctx, asks, lease)
		switch {
		case err != nil && ctx.Err() != nil:
			// Stopped: take nothing; every row is handed back.
		case err != nil:
			d.log.Warn("limiters unavailable; delivering without them", "err", err)
			for _, a := range send {
				a.adm.n = min(len(a.rows), a.ep.maxInFlight)
			}
		default:
			for i, a := range send {
				a.adm = adm[i]
			}
		}
		d.sendSwept(ctx, send, lastStart)
		d.limiter.releaseMany(ctx, admissions(send))
	}
	for _, a := range fails {
		d.unsignable(a, errs[a.id])
	}
	// Every app's listen sessions get a copy of what was sent (forward):
	// one round trip asks which apps have any.
	sent := make([]int64, 0, len(send))
	for _, a := range send {
		if a.adm.n > 0 {
			sent = append(sent, a.id)
		}
	}
	d.listeners.activeMany(ctx, sent)
	b := newRecordBatch(0)
	var attemptApps []int64
	for _, group := range [][]*sweepApp{send, fails} {
		for _, a := range group {
			sent := 0
			for _, r := range a.results {
				if r.c.ID != 0 {
					sent++
				}
			}
			if sent < len(a.results) {
				s.handBack(a.id) // not admitted or not started: its drain sends it
			}
			if sent > 0 && errs[a.id] == nil {
				d.listeners.forward(context.WithoutCancel(ctx), a.id, a.results)
			}
			ab, out := d.decide(a.results)
			appendBatch(b, ab)
			for range ab.aDelivery {
				attemptApps = append(attemptApps, a.id)
			}
			if out.due.any() {
				s.later[a.id] = out.due
			}
			if errs[a.id] == nil && (out.anyOK || out.anyFail) && !(out.anyOK && a.ep.state.FailingSince == nil && !out.anyFail) {
				s.health[a.id] = healthOf{anyOK: out.anyOK, anyFail: out.anyFail, gone: out.gone}
			}
		}
	}
	// The outcome is written even when the task is being stopped: what was
	// sent must be logged.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	return d.store.recordMany(rctx, c, b, attemptApps, paused)
}

// sendSwept sends what the limiters admitted of each app, sweepSenders at
// a time (and no more than sweepsSending over all sweeps); a request that
// could not finish within the lease is not started.
func (d *Dispatcher) sendSwept(ctx context.Context, apps []*sweepApp, lastStart time.Time) {
	type job struct {
		a *sweepApp
		i int
	}
	var jobs []job
	for _, a := range apps {
		for i := range min(a.adm.n, len(a.rows)) {
			jobs = append(jobs, job{a, i})
		}
	}
	if len(jobs) == 0 {
		return
	}
	// An app without a URL is delivered to its listen sessions: one round
	// trip asks whether any has one.
	var listenOnly []int64
	for _, a := range apps {
		if a.adm.n > 0 && a.ep.ep.URL == "" {
			listenOnly = append(listenOnly, a.id)
		}
	}
	d.listeners.activeMany(ctx, listenOnly)
	next := make(chan job)
	var wg sync.WaitGroup
	for range min(sweepSenders, len(jobs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range next {
				d.sending <- struct{}{}
				if time.Now().Before(lastStart) && ctx.Err() == nil {
					r := d.sender.send(ctx, j.a.ep, j.a.rows[j.i])
					if _, to := j.a.rows[j.i].destination(j.a.ep); to == "" {
						d.toListeners(ctx, &r)
					}
					j.a.results[j.i] = r
				}
				<-d.sending
			}
		}()
	}
	for _, j := range jobs {
		next <- j
	}
	close(next)
	wg.Wait()
}

func admissions(apps []*sweepApp) []admission {
	out := make([]admission, len(apps))
	for i, a := range apps {
		out[i] = a.adm
	}
	return out
}

// unsignable fails an app's claimed deliveries for good, as
// failUnsignable does: its signing secret cannot be opened.
func (d *Dispatcher) unsignable(a *sweepApp, cause error) {
	d.log.Error("the app's signing secret cannot be opened: failing its deliveries", "app", a.id, "err", cause)
	now := d.opts.Now().UTC()
	for i, r := range a.rows {
		a.results[i] = result{c: r, final: true, attempt: Attempt{AppID: a.id, DeliveryID: r.ID, Number: r.Attempts + 1, RequestHeaders: json.RawMessage("{}"),
			ErrorClass: ClassSecret, CreatedAt: now,
			ErrorMessage: "the app's signing secret cannot be opened: the platform runs with another PLUGBOARD_SECRET_KEY than the one that sealed it"}}
	}
}

// appendBatch adds src's deliveries and attempts to dst.
func appendBatch(dst, src *recordBatch) {
	dst.ids, dst.statuses, dst.classes = append(dst.ids, src.ids...), append(dst.statuses, src.statuses...), append(dst.classes, src.classes...)
	dst.attempts, dst.nexts, dst.lasts, dst.dones = append(dst.attempts, src.attempts...), append(dst.nexts, src.nexts...), append(dst.lasts, src.lasts...), append(dst.dones, src.dones...)
	dst.codes, dst.tried = append(dst.codes, src.codes...), append(dst.tried, src.tried...)
	dst.aDelivery, dst.aDuration, dst.aNumber, dst.aStatuses = append(dst.aDelivery, src.aDelivery...), append(dst.aDuration, src.aDuration...), append(dst.aNumber, src.aNumber...), append(dst.aStatuses, src.aStatuses...)
	dst.aURL, dst.aReq, dst.aBody, dst.aResp = append(dst.aURL, src.aURL...), append(dst.aReq, src.aReq...), append(dst.aBody, src.aBody...), append(dst.aResp, src.aResp...)
	dst.aClass, dst.aMessage, dst.aCreated = append(dst.aClass, src.aClass...), append(dst.aMessage, src.aMessage...), append(dst.aCreated, src.aCreated...)
}

// activeMany fills the listen-session cache (active) for apps, in one
// pipelined round trip for those it does not hold fresh.
func (l *Listeners) activeMany(ctx context.Context, apps []int64) {
	if l == nil || len(apps) == 0 {
		return
	}
	var miss []int64
	l.mu.Lock()
	for _, id := range apps {
		if c, ok := l.cache[id]; !ok || time.Since(c.at) >= time.Second {
			miss = append(miss, id)
		}
	}
	l.mu.Unlock()
	if len(miss) == 0 {
		return
	}
	pipe := l.rdb.Pipeline()
	now := strconv.FormatInt(time.Now().Unix(), 10)
	for _, id := range miss {
		pipe.ZCount(ctx, listenKey(id), now, "+inf")
	}
	cmds, _ := pipe.Exec(ctx)
	at := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, c := range cmds {
		n, err := c.(*redis.IntCmd).Result()
		l.cache[miss[i]] = listenCache{any: err == nil && n > 0, at: at}
	}
}

// claimManySQL is claimSQL for many apps at once: up to $2 due deliveries
// of each app in $1, each app's found on delivery_queue_app_due_idx and
// locked as claimSQL locks them (and checked again on the delivery row),
// with whether each holds back a later one of its ordering key
// (claimed.HoldsBack; looked up only for keyed rows).
const claimManySQL = `
	SELECT a.id, c.id, c.uuid, c.attempts, c.max_attempts, c.event_type, c.installation_uuid, c.data, c.created_at, c.next_attempt_at,
		c.target_method, c.target_url, c.holds_back
	FROM unnest($1::bigint[]) AS a(id) CROSS JOIN LATERAL (
		SELECT d.id, d.uuid::text AS uuid, d.attempts, d.max_attempts, d.event_type, d.installation_uuid::text AS installation_uuid,
			e.data::text AS data, e.created_at, d.next_attempt_at, d.target_method, d.target_url,
			CASE WHEN due.ordering_key IS NOT NULL THEN EXISTS (
				SELECT 1 FROM delivery_queue n WHERE n.app_id = a.id AND n.ordering_key = due.ordering_key
				AND n.status = 'pending' AND n.delivery_id > due.delivery_id) ELSE false END AS holds_back
		FROM (
			SELECT q.delivery_id, q.ordering_key FROM delivery_queue q
			WHERE q.app_id = a.id AND q.status = 'pending' AND q.next_attempt_at <= now() + interval '100 milliseconds'
			  AND ` + notHeldBack + `
			ORDER BY q.next_attempt_at LIMIT $2
			FOR NO KEY UPDATE SKIP LOCKED
		) due JOIN deliveries d ON d.id = due.delivery_id JOIN events e ON e.id = d.event_id
		WHERE d.status = 'pending' AND d.next_attempt_at <= now() + interval '100 milliseconds'
		  AND (d.claimed_until IS NULL OR d.claimed_until < now())
		ORDER BY d.next_attempt_at
		FOR NO KEY UPDATE OF d SKIP LOCKED) c`

// claimMany begins a transaction on c and locks up to perApp due
// deliveries of each of apps in it (claimManySQL), in one round trip, as
// claim does for one app. With none, it commits.
func (s *Store) claimMany(ctx context.Context, c *pgx.Conn, apps []int64, perApp int) (map[int64][]claimed, error) {
	out := map[int64][]claimed{}
	err := claimRows(ctx, c, claimManySQL, []any{apps, perApp}, func(q pgx.Rows) error {
		var app int64
		var r claimed
		var data []byte
		if err := q.Scan(append([]any{&app}, r.dest(&data)...)...); err != nil {
			return err
		}
		r.Data = data
		out[app] = append(out[app], r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claiming deliveries of %d apps: %w", len(apps), err)
	}
	return out, nil
}

// recordManySQL is recordSQL for the deliveries of many apps: the
// attempts carry their app ($10, one per attempt) instead of the batch's.
const recordManySQL = `
	WITH recorded AS (
		INSERT INTO attempts (delivery_id, app_id, number, url, request_headers, response_status, response_headers,
			response_body, duration_us, error_class, error_message, created_at)
		SELECT t.d, t.a, t.n, t.u, t.rq::json, t.rs, t.rh::json, t.b, t.du, t.ec, t.em, t.ca
		FROM unnest($10::bigint[], $11::bigint[], $12::int[], $13::text[], $14::text[], $15::int[], $16::text[], $17::text[], $18::bigint[],
			$19::text[], $20::text[], $21::timestamptz[]) AS t(a, d, n, u, rq, rs, rh, b, du, ec, em, ca)
	)
	UPDATE deliveries d SET status = v.status, attempts = v.attempts, next_attempt_at = v.next, claimed_until = NULL,
		last_attempt_at = CASE WHEN v.tried THEN v.last ELSE d.last_attempt_at END,
		last_status_code = CASE WHEN v.tried THEN v.code ELSE d.last_status_code END,
		last_error_class = CASE WHEN v.tried THEN v.class ELSE d.last_error_class END,
		completed_at = v.completed, enqueued_at = now()
	FROM unnest($1::bigint[], $2::text[], $3::int[], $4::timestamptz[], $5::timestamptz[], $6::int[], $7::text[],
		$8::timestamptz[], $9::bool[]) AS v(id, status, attempts, next, last, code, class, completed, tried)
	WHERE d.id = v.id AND d.id = ANY($1::bigint[])`

// recordMany writes a sweep's outcome and commits the claim's transaction,
// in one round trip: paused (deliveries of disabled endpoints) paused, and
// every attempt and delivery's new state of b in one statement; apps is
// the app of each of b's attempts.
func (s *Store) recordMany(ctx context.Context, c *pgx.Conn, b *recordBatch, apps []int64, paused []int64) error {
	pb := &pgx.Batch{}
	if len(paused) > 0 {
		pb.Queue("UPDATE deliveries SET status = 'paused', claimed_until = NULL, next_attempt_at = NULL WHERE id = ANY($1)", paused)
	}
	if len(b.ids) > 0 {
		pb.Queue(recordManySQL, b.ids, b.statuses, b.attempts, b.nexts, b.lasts, b.codes, b.classes, b.dones, b.tried,
			apps, b.aDelivery, b.aNumber, b.aURL, b.aReq, b.aStatuses, b.aResp, b.aBody, b.aDuration, b.aClass, b.aMessage, b.aCreated)
	}
	pb.Queue("COMMIT")
	err := c.SendBatch(ctx, pb).Close()
	seen := map[int64]bool{}
	for _, id := range apps {
		if !seen[id] {
			seen[id] = true
			s.stats.changed(id) // committed or not: drop the figures
		}
	}
	if err != nil {
		return fmt.Errorf("recording deliveries of %d apps: %w", len(seen), err)
	}
	return nil
}
