package webhooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/plugboard/plugboard/app/secret"
)

// Dispatcher is the worker: it drains an app's due deliveries, a batch at
// a time: claims them (Store), sends them within the app's limits
// (Sender, Limiter), records the outcome (Store) and tracks endpoint health
// (Endpoints). Register gives it the drain and relay tasks.
type Dispatcher struct {
	store     *Store
	sender    *Sender
	endpoints *Endpoints
	drains    *Drains
	limiter   *Limiter
	// listeners gets a copy of every delivery for `plugboard listen`.
	listeners *Listeners
	metrics   *Metrics
	// sending bounds the requests in flight over all sweeps (sweep.go).
	sending chan struct{}
	opts    Options
	log     *slog.Logger
}

// DispatcherDeps is what the Dispatcher works with; Metrics may be nil.
type DispatcherDeps struct {
	Store     *Store
	Sender    *Sender
	Endpoints *Endpoints
	Drains    *Drains
	Limiter   *Limiter
	Listeners *Listeners
	Metrics   *Metrics
	Log       *slog.Logger
}

// NewDispatcher returns the worker on deps.
func NewDispatcher(deps DispatcherDeps, opts Options) *Dispatcher {
	return &Dispatcher{store: deps.Store, sender: deps.Sender, endpoints: deps.Endpoints, drains: deps.Drains, limiter: deps.Limiter,
		listeners: deps.Listeners, metrics: deps.Metrics, sending: make(chan struct{}, sweepsSending), opts: opts.withDefaults(), log: deps.Log}
}

// result is the outcome of one attempt.
type result struct {
	c        claimed
	attempt  Attempt
	ok       bool
	retryIn  time.Duration // from Retry-After
	gone     bool          // 410: the partner asks us to stop
	final    bool          // fails for good, without retries
	body     []byte        // what was sent, for listen sessions
	deferred time.Duration // limiter said wait; not an attempt
}

// drainFor bounds one task's work; what is left gets a fresh task.
const drainFor = 5 * time.Second

// A drain whose batch was small lingers this long before the next claim
// when that batch's oldest delivery had been due for more than behindFor:
// the machine is saturated, and bigger batches make each delivery cheaper
// (in the throughput bench, 3.3 → 9 deliveries per batch and about a third
// less CPU per delivery). A drain that keeps up never waits.
const (
	linger    = 40 * time.Millisecond
	behindFor = 50 * time.Millisecond
)

// idleFor is how long a drain that sent a small batch waits, when no
// publish of this process has marked its app yet, before it looks for a
// mark and otherwise asks Redis whether to leave (drainLease.againWithin;
// at most idleDrains(Options.Workers) wait at once). A mark made meanwhile does not cut the
// wait short: the next batch takes what came in that time, as a drain
// enqueued afresh would have after its queue wait (waking at once made
// batches of 1.2 and cost more CPU per delivery than it saved). In the mix
// (2,000 organizations, 1–3 of 20 apps each) an app's next event comes
// within tens of milliseconds; a drain that left would be enqueued for
// it again: a kick script, a task queued, taken and done, a register and
// a leave, about a dozen Redis commands for a batch of one or two. 50 ms
// halved the mix's Redis commands again (7.0 → 3.9 per delivery, commits
// 0.76 → 0.58) for about 5 % less CPU per delivery, but added 10 ms to
// p50 and 20 to p99 (25 → 35, 63 → 84 ms) in the same sitting: 25 ms.
const idleFor = 25 * time.Millisecond

// drain delivers what is due for an app, a batch at a time, until nothing
// is due: batches grow with the load, so one claim, one limiter round and
// one write cover many deliveries. It is registered as the app's drain
// meanwhile, so publishes need not enqueue another (drains.go). A drain
// that claims a full batch asks for one more drain of the app, up to
// drainsFor(its in-flight cap): an app's drains grow with its backlog, and
// share it (SKIP LOCKED) while the limiters hold the app's rate and cap
// across all of them.
func (d *Dispatcher) drain(ctx context.Context, appID int64) error {
	start := time.Now()
	reg := d.drains.register(ctx, appID, drainFor+d.lease()+5*time.Second)
	reg.spent = &spent{limiter: d.limiter, appID: appID}
	for {
		n, behind, inFlight, err := d.deliver(ctx, appID, reg.spent)
		if err != nil {
			reg.leave(ctx)
			return err
		}
		if n >= d.opts.BatchSize {
			// A backlog: one more drain shares it, unless the app has as
			// many as its cap allows or one is queued already.
			d.drains.kickApps(ctx, []int64{appID}, drainsFor(inFlight), false)
		} else {
			lingered := false
			if n > 0 && n < d.opts.BatchSize/4 && behind > behindFor {
				lingered = true
				// Behind, with a small batch: the machine is busy rather
				// than the app. Let the next batch fill a little: per-batch
				// costs (claim, limiter, commit) then spread over more
				// deliveries. Never when keeping up: that would only add
				// latency.
				select {
				case <-ctx.Done():
				case <-time.After(linger):
				}
			}
			// The batch took everything that was due: look again only if a
			// publish marked the app since (no empty claim to find out).
			// One that sent a small batch, and has no mark yet, waits a
			// little for this process's next publish of the app (idleFor):
			// a drain that stays costs nothing per event, one that leaves
			// costs a task and its registry calls for the next.
			idle := time.Duration(0)
			if n > 0 && n < d.opts.BatchSize/4 && !lingered {
				idle = idleFor
			}
			if !reg.againWithin(ctx, idle) {
				return nil
			}
		}
		if time.Since(start) > drainFor {
			if !reg.leave(ctx) {
				d.drains.kickApps(ctx, []int64{appID}, 1, false)
			}
			return nil
		}
	}
}

// maxDrains bounds one app's drains: each holds a database connection
// across its batch's requests.
const maxDrains = 16

// drainsFor is how many drains an app with this in-flight cap may have at
// once: as many as it takes for their batches (100 deliveries by default)
// to fill the cap, plus two, so that one claims and records while the
// others send (two at least, as before drains grew; at most maxDrains).
// More only hold rows locked while they wait for slots, and every claim
// walks past the rows the others hold: with one drain per 8 slots (16 for
// the bench's cap of 256) claims read 3,000–4,300 index entries each in
// the batch run, 840 with 4 drains, and PostgreSQL CPU per delivery fell
// from 0.21 to 0.15–0.17 ms in the same sitting. A slow partner is served
// by the cap: one drain sends its whole batch at once if the cap allows.
func drainsFor(maxInFlight int) int {
	return min(maxDrains, 2+maxInFlight/100)
}

// deliver locks up to a batch of the app's due deliveries in Postgres,
// sends them, and records every attempt and outcome in the same
// transaction: two round trips to Postgres and one commit per batch. It
// returns how many it claimed and how long the oldest of them had been due.
func (d *Dispatcher) deliver(ctx context.Context, appID int64, sp *spent) (int, time.Duration, int, error) {
	// Everything that needs a connection of its own comes before the
	// transaction takes one, so drains never wait on the pool while
	// holding a connection.
	ep, err := d.endpoints.endpoint(ctx, appID)
	if errors.Is(err, secret.ErrOpen) {
		n, behind, err := d.failUnsignable(ctx, appID, err)
		return n, behind, 1, err
	}
	if err != nil {
		return 0, 0, 0, fmt.Errorf("loading endpoint of app %d: %w", appID, err)
	}
	n, behind, err := d.deliverWith(ctx, ep, appID, sp)
	return n, behind, ep.maxInFlight, err
}

// deliverWith is deliver once the endpoint is loaded.
func (d *Dispatcher) deliverWith(ctx context.Context, ep cachedEndpoint, appID int64, sp *spent) (int, time.Duration, error) {
	var err error
	var (
		n   int
		out outcome
	)
	err = d.store.onConn(ctx, func(c *pgx.Conn) error {
		var err error
		n, out, err = d.deliverOn(ctx, c, ep, appID, sp)
		return err
	})
	if err != nil {
		return n, out.behind, err
	}
	// After commit, with the connection back in the pool.
	if out.due.any() {
		d.drains.kickDue(context.WithoutCancel(ctx), appID, out.due)
	}
	if out.anyOK && ep.state.FailingSince == nil && !out.anyFail {
		return n, out.behind, nil // healthy, and known to be: nothing to write
	}
	if out.anyOK || out.anyFail {
		return n, out.behind, d.endpoints.health(context.WithoutCancel(ctx), appID, out.anyOK, out.anyFail, out.gone)
	}
	return n, out.behind, nil
}

// ListenURL is the URL the delivery log shows for an attempt handed to
// `plugboard listen` sessions: an app without a webhook URL is delivered
// to them alone, as a developer's app is while it runs on a laptop.
const ListenURL = "plugboard listen"

// toListeners completes the attempt of a delivery to an app without a
// webhook URL: delivered when a listen session is open to receive it (the
// session forwards it with its signed headers), else failed, to be tried
// again on the usual schedule.
func (d *Dispatcher) toListeners(ctx context.Context, r *result) {
	r.attempt.URL = ListenURL
	if d.listeners.active(ctx, r.attempt.AppID) {
		status := http.StatusAccepted
		r.ok, r.attempt.ResponseStatus = true, &status
		return
	}
	r.attempt.ErrorClass = ClassNoListener
	r.attempt.ErrorMessage = "the app has no webhook URL and no plugboard listen session is open"
}

// outcome is what a recorded batch leaves to do after its commit.
type outcome struct {
	due                  dueSpan       // when its pending deliveries come due: drains then (kickDue)
	behind               time.Duration // how long the oldest claimed delivery had been due
	anyOK, anyFail, gone bool
}

// deliverOn runs one batch on c: claim, send, record, commit. The
// in-flight leases of its requests go to sp as each chunk ends (given
// back with the drain's next Redis call), or back at once when sp keeps
// no more.
func (d *Dispatcher) deliverOn(ctx context.Context, c *pgx.Conn, ep cachedEndpoint, appID int64, sp *spent) (int, outcome, error) {
	none := outcome{due: noneDue}
	rows, err := d.store.claim(ctx, c, appID, d.opts.BatchSize)
	if err != nil || len(rows) == 0 {
		return 0, none, err
	}
	if ep.state.Status == EndpointDisabled {
		return len(rows), none, d.store.pause(ctx, c, rows)
	}
	none.behind = time.Since(rows[0].DueAt)
	results := make([]result, len(rows))
	// The batch may wait for the limiters this long in all; the rest is
	// deferred. Slots and leases are taken a chunk at a time (a few Redis
	// calls per chunk); chunks send concurrently up to the in-flight cap
	// (sendChunk). No chunk starts unless it can finish within the lease,
	// which bounds how long the transaction stays open: a chunk's last
	// request starts at most about a second after its first (sendChunk's
	// senders take turns for turnsFor at most), inside the two seconds
	// the lease has to spare.
	lease := d.lease()
	budget := time.Now().Add(waitBudget)
	lastStart := time.Now().Add(lease - d.opts.Timeout - 2*time.Second)
	deferRest := func(from int, wait time.Duration) {
		for j := from; j < len(rows); j++ {
			results[j] = result{c: rows[j], deferred: wait}
		}
	}
	var wg sync.WaitGroup
	for i := 0; i < len(rows); {
		if time.Now().After(lastStart) || ctx.Err() != nil {
			deferRest(i, 10*time.Millisecond)
			break
		}
		n, leases, wait := d.admit(ctx, appID, ep, min(len(rows)-i, ep.maxInFlight), lease, budget, sp)
		if n == 0 {
			deferRest(i, wait) // waiting for the limiters: not an attempt
			break
		}
		// The chunk's last request to end hands its leases on, before
		// wg lets the batch go on.
		var left atomic.Int32
		left.Store(int32(n))
		sendChunk(&wg, i, i+n, func(j int) {
			results[j] = d.sender.send(ctx, ep, rows[j])
			if _, to := rows[j].destination(ep); to == "" {
				d.toListeners(ctx, &results[j])
			}
			if left.Add(-1) == 0 && len(leases) > 0 && !sp.keep(leases, ep.maxInFlight) {
				d.limiter.release(context.WithoutCancel(ctx), appID, leases)
			}
		})
		i += n
	}
	wg.Wait()
	d.listeners.forward(context.WithoutCancel(ctx), appID, results)
	// The outcome is written even when the task is being stopped: what
	// was sent must be logged.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	b, out := d.decide(results)
	out.behind = none.behind
	if err := d.store.record(rctx, c, appID, b); err != nil {
		return len(rows), out, err
	}
	return len(rows), out, nil
}

// A chunk's requests (as many as the limiters admitted, up to the app's
// in-flight cap) start sendersFirst at once, and each sender takes the
// next when its request ends. When none has ended for slowAfter, the
// partner is slow rather than the machine busy, and the senders double
// (every growEvery while it lasts), up to the whole chunk: a partner that
// takes a second to answer still gets every request it allows in flight
// within a tenth of a second. One goroutine per request, as before, put
// the fan-out run's ~1,500 requests in flight at once on 2 cores, each
// waiting its turn for the CPU, its connection's buffers and goroutines
// crowding the caches. Alternated in four pairs of fan-out 20 runs: 15.2k
// deliveries/s on average at 0.118-0.134 CPU-ms each, against 14.3k at
// 0.123-0.142 (a fixed 16, never growing, measured the same). Apps at the
// default cap (10 in flight) never get past sendersFirst. How many
// requests a process has in flight is bounded with the batches it holds
// open (heldPerCPU, store.go): at most sendersFirst × 8 a CPU before a
// slow partner's senders grow (the bare ceiling took 0.059 CPU-ms a
// request over 400 connections against 0.051 over 64; fan-out 20 had
// ~400 in flight with 32 batches open, 256 at most with 16).
//
// Taking turns lasts at most turnsFor: then every request still waiting
// starts (doubling as above), so that a chunk's last request starts
// within about a second of its first whatever Options.BatchSize is, and
// the batch ends within its lease (deliverOn).
const (
	sendersFirst = 16
	slowAfter    = 50 * time.Millisecond
	growEvery    = 10 * time.Millisecond
	turnsFor     = time.Second
)

// sendChunk runs send(j) for every j of [from, to) on wg, sendersFirst
// goroutines at first and more as above. It returns at once; wg is done
// when every send has returned.
func sendChunk(wg *sync.WaitGroup, from, to int, send func(j int)) {
	n := to - from
	var next atomic.Int32
	next.Store(int32(from))
	start := time.Now()
	var lastEnd atomic.Int64 // UnixNano of the latest end, or the start
	lastEnd.Store(start.UnixNano())
	allStarted := make(chan struct{})
	work := func() {
		defer wg.Done()
		for {
			j := int(next.Add(1) - 1)
			if j >= to {
				return
			}
			if j == to-1 {
				close(allStarted)
			}
			send(j)
			lastEnd.Store(time.Now().UnixNano())
		}
	}
	k := min(n, sendersFirst)
	wg.Add(k)
	for range k {
		go work()
	}
	if k == n {
		return
	}
	// The watcher holds wg until every request has started, so that
	// whatever it adds is added before wg can reach zero.
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(growEvery)
		defer t.Stop()
		for k < n {
			select {
			case <-allStarted:
				return
			case now := <-t.C:
				if now.Sub(time.Unix(0, lastEnd.Load())) < slowAfter && now.Sub(start) < turnsFor {
					continue
				}
			}
			add := min(k, n-k)
			wg.Add(add)
			for range add {
				go work()
			}
			k += add
		}
	}()
}

// failUnsignable fails the app's due deliveries for good, with the reason
// in the log, when its signing secret cannot be opened (the platform runs
// with another PLUGBOARD_SECRET_KEY than sealed it): nothing can be signed,
// and a delivery must not wait, pending, for ever.
func (d *Dispatcher) failUnsignable(ctx context.Context, appID int64, cause error) (int, time.Duration, error) {
	d.log.Error("the app's signing secret cannot be opened: failing its deliveries", "app", appID, "err", cause)
	var n int
	err := d.store.onConn(ctx, func(c *pgx.Conn) error {
		rows, err := d.store.claim(ctx, c, appID, d.opts.BatchSize)
		if err != nil || len(rows) == 0 {
			return err
		}
		n = len(rows)
		now := d.opts.Now().UTC()
		results := make([]result, len(rows))
		for i, r := range rows {
			results[i] = result{c: r, final: true, attempt: Attempt{AppID: appID, DeliveryID: r.ID, Number: r.Attempts + 1, RequestHeaders: json.RawMessage("{}"),
				ErrorClass: ClassSecret, CreatedAt: now,
				ErrorMessage: "the app's signing secret cannot be opened: the platform runs with another PLUGBOARD_SECRET_KEY than the one that sealed it"}}
		}
		b, _ := d.decide(results)
		return d.store.record(context.WithoutCancel(ctx), c, appID, b)
	})
	if err != nil {
		return n, 0, fmt.Errorf("failing deliveries of app %d: %w", appID, err)
	}
	if n == d.opts.BatchSize {
		d.drains.kick(context.WithoutCancel(ctx), appID, 0) // the next batch
	}
	return n, 0, nil
}

// decide turns a batch's results into the deliveries' new states: done
// (succeeded, or failed for good), due again after the retry schedule's
// delay (or the partner's Retry-After), or deferred without an attempt.
// It returns them for Store.record, and what is left to do after the
// commit: schedule the next drain for retries, track endpoint health.
func (d *Dispatcher) decide(results []result) (*recordBatch, outcome) {
	out := outcome{due: noneDue}
	now := d.opts.Now().UTC()
	b := newRecordBatch(len(results))
	for _, r := range results {
		if r.c.ID == 0 {
			continue
		}
		if r.deferred > 0 {
			b.deferred(r.c.ID, r.c.Attempts, now.Add(r.deferred))
			out.due = out.due.with(r.deferred)
			continue
		}
		tries := r.c.Attempts + 1
		status, next, completed := DeliveryPending, (*time.Time)(nil), (*time.Time)(nil)
		switch {
		case r.ok:
			status, completed, out.anyOK = DeliverySucceeded, &now, true
		case r.gone || r.final || tries >= r.c.MaxAttempts:
			status, completed, out.anyFail = DeliveryFailed, &now, true
			out.gone = out.gone || r.gone
		default:
			out.anyFail = true
			wait := max(retryDelay(d.opts.RetrySchedule, tries+1), r.retryIn)
			t := now.Add(wait)
			next = &t
			out.due = out.due.with(wait)
		}
		b.attempted(r.c.ID, r.attempt, tries, status, next, completed)
		d.metrics.delivery(status)
	}
	return b, out
}

// retryDelay is the wait before attempt number next (1-based) on schedule,
// with ±20 % jitter.
func retryDelay(schedule []time.Duration, next int) time.Duration {
	base := schedule[min(next-1, len(schedule)-1)]
	if base <= 0 {
		return 0
	}
	jitter := 1 + (rand.Float64()*0.4 - 0.2)
	return time.Duration(float64(base) * jitter)
}

// admit takes up to want slots of the app's rate limit and in-flight cap,
// waiting for them while the batch's budget allows, and gives back sp's
// ended leases in its first call. It returns how many it took and their
// in-flight leases (none when the limiters were unavailable); with none,
// how long to defer the rest of the batch (always > 0).
func (d *Dispatcher) admit(ctx context.Context, appID int64, ep cachedEndpoint, want int, lease time.Duration, budget time.Time, sp *spent) (int, []any, time.Duration) {
	deadline := budget
	if least := time.Now().Add(10 * time.Millisecond); deadline.Before(least) {
		deadline = least
	}
	for {
		n, retry, full, leases, err := d.limiter.admitGiving(ctx, appID, ep.rateLimit, ep.maxInFlight, want, lease, sp)
		if err != nil {
			if ctx.Err() != nil {
				return 0, nil, time.Second // stopped: take nothing
			}
			d.log.Warn("limiters unavailable; delivering without them", "err", err)
			return want, nil, 0
		}
		if n > 0 {
			return n, leases, 0
		}
		wait := 5 * time.Millisecond // the in-flight cap: poll
		if !full {
			if retry > time.Second || time.Now().Add(retry).After(budget) {
				return 0, nil, max(retry, 50*time.Millisecond)
			}
			wait = retry
		} else if time.Now().After(deadline) {
			return 0, nil, 500 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return 0, nil, time.Second
		case <-time.After(wait):
		}
	}
}

// waitBudget bounds how long one batch waits for the limiters.
const waitBudget = 2 * time.Second

// lease is how long a worker holds a claim: the limiter budget, a request's
// timeout and room to record. A worker that dies mid-batch frees its
// deliveries for the relay after this.
func (d *Dispatcher) lease() time.Duration { return waitBudget + 2*d.opts.Timeout + 5*time.Second }

// Relay runs one relay pass (see Register) and returns how many
// deliveries it enqueued.
func (d *Dispatcher) Relay(ctx context.Context) (int, error) {
	rows, err := d.store.relayDue(ctx)
	if err != nil || len(rows) == 0 {
		return 0, err
	}
	d.log.Info("relay re-enqueued due deliveries", "count", len(rows))
	// Regardless of the drain registry: a drain that died may still hold
	// its lease there.
	d.drains.kickApps(ctx, appsOf(rows), 1, true)
	d.metrics.relayed(len(rows))
	return len(rows), nil
}
