package webhooks

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// The drain registry decides when a publish must enqueue a drain task.
//
// Per app, Redis holds the drains running now (a sorted set of leases scored
// by expiry), a "queued" mark while a drain task waits in the queue, and a
// "dirty" mark that every publish sets. A publish enqueues a drain only when
// the app has neither a running nor a queued one. A drain that finds nothing
// due leaves only if no publish marked the app dirty since it last looked;
// otherwise it claims again. Both steps are Lua scripts, so they are atomic
// against each other: either the drain sees the mark and looks again, or it
// has left the set before the publish checks it, and the publish enqueues a
// fresh drain. No committed delivery is left without a drain coming for it.
//
// Within one process the same exchange runs in memory first
// (localDrains): a publish kicking an app whose drain runs in this process
// and looks again marks the app there instead of in Redis, and the drain
// consumes that mark before it asks Redis; a drain that sent something
// waits a little (idleFor) for such a mark before it asks. The process's
// mutex is the atomic step: the drain sees the mark, or it stopped looking
// before the kick checked, and the kick goes to the scripts, which decide
// as above (its lease stays in Redis until its leaveScript). So a busy
// app's drain stays from one event to the next, and neither the publish
// nor the drain pays a round trip to the registry for it.
//
// A drain that dies keeps its lease until the lease expires (the longest a
// task can run); meanwhile the relay, which enqueues regardless, covers it.
// If Redis is unreachable, every kick enqueues.
//
// One kick of many apps (an event to thousands of installations, or the
// relay after a flush) enqueues sweeps instead (sweep.go): each task serves
// up to sweepChunk apps, one claim, one limiter round trip and one record
// for all of them. The kick script marks a sweep's apps queued as it would
// for their own drains, and the sweep, before its claim, drops their queued
// and dirty marks at once. Deleting a mark obliges the one who deletes it
// to claim afterwards, and the sweep does: its claim sees every delivery
// committed before the marks went, and a publish that commits later finds
// neither mark nor lease (a sweep registers none) and enqueues a drain of
// its own, or finds a queued or running drain that a later kick enqueued,
// which looks after the commit as above. The relay's sweeps (force) may
// drop the marks of an app whose own drain runs or waits: safe for the same
// reason, since the sweep claims after. A drain beside the sweep never
// sends what the sweep holds (SKIP LOCKED) and the limiters count both.
// What the sweep leaves (more due than its share per app, the limiters
// said wait, retries, an endpoint it could not load) it hands back after
// its commit to per-app drains, kicked as a publish kicks them: each
// delivery it leaves is committed and pending before that kick, so the
// argument above holds for it. A sweep that dies holds its rows' locks
// only while its connection lives; the relay then enqueues them again.
//
// Under load one drain per app runs continuously and each batch takes what
// accumulated during the previous one: batches grow with the load instead of
// two drains splitting a trickle, and publishes cost one Redis round trip for
// all the apps of an event. A drain that claims a full batch asks for a
// second one to help.

// All the registry's keys share one hash tag, so one script may touch the
// keys of many apps on a Redis Cluster too.
func drainKeys(appID int64) (active, queued, dirty string) {
	base := "plugboard:{drains}:" + strconv.FormatInt(appID, 10)
	return base + ":active", base + ":queued", base + ":dirty"
}

// kickScript: KEYS are (active, queued, dirty) per app; ARGV[1] now (ms),
// ARGV[2] the queued mark's lifetime (ms), ARGV[3] how many drains the app
// should have. It marks every app dirty and returns, per app, 1 when the
// caller must enqueue a drain (and marks it queued).
var kickScript = redis.NewScript(`
local now, want = tonumber(ARGV[1]), tonumber(ARGV[3])
local out = {}
for i = 1, #KEYS, 3 do
  redis.call('SET', KEYS[i+2], '1', 'PX', 600000)
  if redis.call('ZCOUNT', KEYS[i], now, '+inf') < want and redis.call('EXISTS', KEYS[i+1]) == 0 then
    redis.call('SET', KEYS[i+1], '1', 'PX', ARGV[2])
    out[#out+1] = 1
  else
    out[#out+1] = 0
  end
end
return out`)

// startScript: KEYS active, queued, dirty; ARGV lease expiry (ms), lease
// id, now (ms: expired leases, of drains that died, are dropped). The dirty
// mark goes too: the drain is about to look, and sees everything committed
// before its claim (a publish marks the app only after its commit).
var startScript = redis.NewScript(`
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], 600000)
return 1`)

// leaveScript: KEYS active, dirty; ARGV lease id, new expiry (ms), and
// "check" to stay when the app is dirty. Returns 1 when the drain must look
// again (the mark is consumed and the lease extended), 0 when it has left.
var leaveScript = redis.NewScript(`
if ARGV[3] == 'check' and redis.call('DEL', KEYS[2]) == 1 then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
  return 1
end
redis.call('ZREM', KEYS[1], ARGV[1])
return 0`)

// queuedFor is how long a queued mark stands for a drain task that has not
// started: longer than a task normally waits in the queue.
const queuedFor = 30 * time.Second

// Drains is the drain registry and the one place that enqueues drain
// tasks. It is built once and given to the Outbox, the Endpoints and the
// Dispatcher.
type Drains struct {
	// rdb is the queue's Redis, for checking many apps' drains at once;
	// nil: every kick enqueues.
	rdb   redis.UniversalClient
	queue *asynq.Client
	// tasks looks up a later drain's task (kick); nil without rdb.
	tasks *asynq.Inspector
	opts  Options
	log   *slog.Logger
	// local is this process's own running drains (localDrains).
	local localDrains
}

// NewDrains returns the registry on rdb (the queue's Redis), enqueueing on
// queue.
func NewDrains(rdb redis.UniversalClient, queue *asynq.Client, opts Options, log *slog.Logger) *Drains {
	r := &Drains{rdb: rdb, queue: queue, opts: opts.withDefaults(), log: log, local: localDrains{apps: map[int64]*localApp{}, max: idleDrains(opts.withDefaults().Workers)}}
	if rdb != nil {
		r.tasks = asynq.NewInspectorFromRedisClient(rdb)
	}
	return r
}

// enqueue kicks a drain of every app in refs, now.
func (r *Drains) enqueue(ctx context.Context, refs []ref) {
	r.kickApps(ctx, appsOf(refs), 1, false)
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
// earlier than delay from now: at once through the registry, later as a
// task of its own per due time (NewDeliverLaterTask), so it is not
// swallowed by a drain running now.
//
// A task of the same app and 100 ms already there covers the kick while it
// waits for its time (a claim takes what is due within 100 ms after it).
// One already due may not: the task running this very drain (a batch it
// sends that the limiter defers by a few milliseconds is due within the
// task's own 100 ms), one about to run, or one waiting for asynq's retry,
// whose claim comes before this delivery is due or long after. Then the
// kick goes to the next 100 ms, where a task, if any, still waits for its
// time, after this one's. (Before, such a deferral waited for the relay: a
// showcase delivery deferred by the limiter was still pending 20 s later.)
func (r *Drains) kick(ctx context.Context, appID int64, delay time.Duration) {
	if delay <= 0 {
		r.kickApps(ctx, []int64{appID}, 1, false)
		return
	}
	now := r.opts.Now()
	_, err := r.queue.EnqueueContext(ctx, NewDeliverLaterTask(appID, r.opts.Timeout, delay, now))
	if errors.Is(err, asynq.ErrTaskIDConflict) && !r.waiting(laterTaskID(appID, now.Add(delay))) {
		next := time.UnixMilli((laterBucketOf(now.Add(delay)) + 1) * laterBucket.Milliseconds())
		_, err = r.queue.EnqueueContext(ctx, NewDeliverLaterTask(appID, r.opts.Timeout, next.Sub(now), now))
	}
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) && !errors.Is(err, asynq.ErrDuplicateTask) {
		r.log.Warn("enqueueing a drain failed; the relay will send", "app", appID, "err", err)
	}
}

// dueSpan is when a recorded batch's pending deliveries of one app come
// due (retries, and what the limiters deferred), from now: the first and
// the last; first < 0: none (noneDue).
type dueSpan struct{ first, last time.Duration }

var noneDue = dueSpan{first: -1, last: -1}

// with is s with a delivery due after d.
func (s dueSpan) with(d time.Duration) dueSpan {
	if s.first < 0 || d < s.first {
		s.first = d
	}
	s.last = max(s.last, d)
	return s
}

func (s dueSpan) any() bool { return s.first >= 0 }

// kickDue kicks a drain for the first of a batch's pending deliveries
// and, when the last comes due in another 100 ms, one for the last too.
// One kick at the first alone (as before) left the rest of the batch's
// pending deliveries to the relay whenever they came due more than 100 ms
// after it: that drain claims what is due then, and nothing kicks for
// what comes later (a batch's retries spread by their ±20 % jitter, and a
// deferral of a few milliseconds beside retries of 200 ms: a showcase
// delivery still pending 20 s later). Deliveries between the two wait at
// most until the last.
func (r *Drains) kickDue(ctx context.Context, appID int64, d dueSpan) {
	r.kick(ctx, appID, d.first)
	if now := r.opts.Now(); laterBucketOf(now.Add(d.last)) != laterBucketOf(now.Add(d.first)) {
		r.kick(ctx, appID, d.last)
	}
}

// waiting reports whether the drain task id is scheduled, waiting for its
// time; false when it is due, running, retrying or gone.
func (r *Drains) waiting(id string) bool {
	if r.tasks == nil {
		return false
	}
	ti, err := r.tasks.GetTaskInfo(QueueWebhooks, id)
	return err == nil && ti.State == asynq.TaskStateScheduled
}

// kickApps makes sure a drain will look at each app after the caller's
// commit: want is how many drains the app should have (1, or 2 for a
// helper); force enqueues one regardless (the relay's safety net). More
// than sweepAbove apps wanting one drain each are swept (sweepApps). Such
// a kick skips this process's local marks (localDrains) and runs the kick
// script for every app: an app whose drain waits here is marked dirty in
// Redis, and that drain finds the mark when it asks there after its wait.
// Marking locally first kept the mix's apps with their small-batch drains
// and undid what sweeping them saves (5,602 and 5,615 deliveries/s against
// 6,204 and 6,325; sweepAbove).
func (r *Drains) kickApps(ctx context.Context, apps []int64, want int, force bool) {
	if want == 1 && len(apps) > sweepAbove {
		r.sweepApps(ctx, apps, force)
		return
	}
	r.kickDrains(ctx, apps, want, force)
}

// kickDrains is kickApps with a drain task of its own for every app that
// needs one, never a sweep: what a sweep hands back goes to drains that
// wait for the limiters as a sweep does not.
func (r *Drains) kickDrains(ctx context.Context, apps []int64, want int, force bool) {
	if len(apps) == 0 {
		return
	}
	need := apps
	if r.rdb != nil {
		if want == 1 && !force {
			// Apps whose drain runs here and looks again are marked here
			// (localDrains), without a round trip.
			if apps = r.local.mark(apps, r.opts.Now()); len(apps) == 0 {
				return
			}
		}
		need = r.needKick(ctx, apps, want, force)
	}
	if len(need) <= enqueueSerial {
		for _, id := range need {
			r.enqueueDrain(ctx, id)
		}
		return
	}
	// Many apps (one event to thousands of installations): one round trip
	// to Redis per task, so several at once; drains start as their tasks
	// land, while the rest are still being enqueued.
	next := make(chan int64)
	var wg sync.WaitGroup
	for range enqueueWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range next {
				r.enqueueDrain(ctx, id)
			}
		}()
	}
	for _, id := range need {
		next <- id
	}
	close(next)
	wg.Wait()
}

// needKick runs the kick script over apps (want drains each) and
// returns those the caller must enqueue a drain or sweep of: every app
// when force is set or Redis does not answer (then every kick enqueues).
func (r *Drains) needKick(ctx context.Context, apps []int64, want int, force bool) []int64 {
	res, err := kickScript.Run(ctx, r.rdb, registryKeys(apps), r.opts.Now().UnixMilli(), queuedFor.Milliseconds(), want).Int64Slice()
	if err != nil {
		r.log.Warn("drain registry unavailable; enqueueing drains", "err", err)
		return apps
	}
	if force {
		return apps
	}
	need := make([]int64, 0, len(apps))
	for i, v := range res {
		if v == 1 && i < len(apps) {
			need = append(need, apps[i])
		}
	}
	return need
}

// Up to enqueueSerial drain tasks are enqueued one after another; more by
// enqueueWorkers at once.
const (
	enqueueSerial  = 8
	enqueueWorkers = 16
)

// enqueueDrain enqueues a drain task of appID; if that fails, it drops the
// app's queued mark, so that the next publish tries again (and the relay
// covers what is due meanwhile).
func (r *Drains) enqueueDrain(ctx context.Context, id int64) {
	if _, err := r.queue.EnqueueContext(ctx, NewDeliverTask(id, r.opts.Timeout)); err != nil {
		r.log.Warn("enqueueing a drain failed; the relay will send", "app", id, "err", err)
		if r.rdb != nil {
			_, q, _ := drainKeys(id)
			r.rdb.Del(context.WithoutCancel(ctx), q)
		}
	}
}

// A kick of more than sweepAbove apps enqueues sweeps of up to sweepChunk
// apps each, sweepKickers chunks at once (kick script and enqueue: two
// round trips a chunk); of a chunk's apps that need a drain, at least
// sweepFrom go in one sweep, fewer get drain tasks of their own. Below
// sweepAbove, drain tasks of their own: a drain that keeps running takes
// the next events of its app too, where a sweep ends after one look.
//
// Such kicks are not only wide events. A publish group's kick is the apps
// of all its events: in the bench's mix (2,000 organizations, each with
// 1–3 of 20 apps) a group of 25 events kicks about 18 apps, and most of
// them had a drain that had just left. Their drains claimed and recorded
// 8 deliveries a batch, each batch paying its claim, limiter calls and
// record; one sweep pays those once for all of them. With sweepAbove 12
// and sweepFrom 4 (was 64 and 9), alternated in one sitting: the mix at
// full speed 6,204 and 6,325 deliveries/s at 0.308 and 0.302 CPU-ms each
// (before: 5,737 and 5,387, at 0.335 and 0.358; PostgreSQL 0.153–0.161 →
// 0.128), and at 2,000/s p99 38.8 and 33.5 ms (before 46.7 and 39.1).
// Kicks of 3 or more apps (sweepAbove 2) saved as much CPU but sent the
// mix's p99 at 2,000/s to 45–58 ms: small groups, at moderate load, are
// better served by the drains that stay. One app's publishes and fan-out
// 20 were unchanged within the noise.
const (
	sweepAbove   = 12
	sweepFrom    = 4
	sweepChunk   = 500
	sweepKickers = 4
)

// sweepApps kicks many apps: a chunk at a time through the kick script,
// whose apps that need a drain go in one sweep task (a few alone in drain
// tasks of their own). Host endpoints' keys always get drains of their own.
func (r *Drains) sweepApps(ctx context.Context, apps []int64, force bool) {
	var hosts, own []int64
	for _, id := range apps {
		if _, ok := IsHostKey(id); ok {
			hosts = append(hosts, id)
		} else {
			own = append(own, id)
		}
	}
	r.kickDrains(ctx, hosts, 1, force)
	if len(own) <= sweepChunk {
		// One chunk, as for every publish group of a few dozen apps: no
		// kickers to start.
		if len(own) > 0 {
			r.sweepChunk(ctx, own, force)
		}
		return
	}
	chunks := make(chan []int64)
	var wg sync.WaitGroup
	for range min(sweepKickers, (len(own)+sweepChunk-1)/sweepChunk) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for chunk := range chunks {
				r.sweepChunk(ctx, chunk, force)
			}
		}()
	}
	for len(own) > 0 {
		n := min(len(own), sweepChunk)
		chunks <- own[:n:n]
		own = own[n:]
	}
	close(chunks)
	wg.Wait()
}

// sweepChunk kicks one chunk of apps: the kick script marks them dirty and
// queued where no drain runs or waits, and those are enqueued in one sweep
// (a few, fewer than sweepFrom, in drain tasks of their own).
func (r *Drains) sweepChunk(ctx context.Context, apps []int64, force bool) {
	need := apps
	if r.rdb != nil {
		need = r.needKick(ctx, apps, 1, force)
	}
	if len(need) < sweepFrom {
		for _, id := range need {
			r.enqueueDrain(ctx, id)
		}
		return
	}
	if _, err := r.queue.EnqueueContext(ctx, NewSweepTask(need, r.opts.Timeout)); err != nil {
		r.log.Warn("enqueueing a sweep failed; the relay will send", "apps", len(need), "err", err)
		r.dropMarks(context.WithoutCancel(ctx), need, false)
	}
}

// registryKeys are the kick script's keys of apps: (active, queued, dirty)
// of each.
func registryKeys(apps []int64) []string {
	keys := make([]string, 0, 3*len(apps))
	for _, id := range apps {
		a, q, d := drainKeys(id)
		keys = append(keys, a, q, d)
	}
	return keys
}

// startSweep drops the queued and dirty marks of a sweep's apps, as
// startScript does for a drain, just before the sweep claims: in one
// command (the keys share a hash tag). See the argument at the top.
func (r *Drains) startSweep(ctx context.Context, apps []int64) {
	r.dropMarks(ctx, apps, true)
}

// dropMarks deletes apps' queued marks, and their dirty marks too when
// dirty is set, in one command.
func (r *Drains) dropMarks(ctx context.Context, apps []int64, dirty bool) {
	if r.rdb == nil || len(apps) == 0 {
		return
	}
	keys := make([]string, 0, 2*len(apps))
	for _, id := range apps {
		_, q, d := drainKeys(id)
		keys = append(keys, q)
		if dirty {
			keys = append(keys, d)
		}
	}
	if err := r.rdb.Del(ctx, keys...).Err(); err != nil {
		r.log.Warn("drain registry unavailable", "err", err)
	}
}

// handBack kicks drains of their own for what a sweep left, after its
// commit: at once (now), and at the delay of each app's retries (later;
// NewDeliverLaterTask, so a drain running then does not swallow it).
func (r *Drains) handBack(ctx context.Context, now []int64, later map[int64]dueSpan) {
	r.kickDrains(ctx, now, 1, false)
	if len(later) == 0 {
		return
	}
	next := make(chan int64)
	var wg sync.WaitGroup
	for range min(enqueueWorkers, len(later)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range next {
				r.kickDue(ctx, id, later[id])
			}
		}()
	}
	for id := range later {
		next <- id
	}
	close(next)
	wg.Wait()
}

// drainLease is a running drain's entry in the registry.
type drainLease struct {
	r     *Drains
	appID int64
	id    string
	ttl   time.Duration
	ok    bool // registered
	// until is when the lease expires in Redis, as the local entry does.
	until time.Time
	// spent is the drain's ended in-flight leases, given back in the
	// lease's next round trip (limits.go); nil: none kept.
	spent *spent
}

// register enters a drain in the registry for ttl (renewed as it goes),
// in Redis and in this process (localDrains).
func (r *Drains) register(ctx context.Context, appID int64, ttl time.Duration) *drainLease {
	l := &drainLease{r: r, appID: appID, id: uuid.NewString(), ttl: ttl}
	if r.rdb == nil {
		return l
	}
	a, q, d := drainKeys(appID)
	now := r.opts.Now()
	if err := startScript.Run(ctx, r.rdb, []string{a, q, d}, now.Add(ttl).UnixMilli(), l.id, now.UnixMilli()).Err(); err != nil {
		r.log.Warn("drain registry unavailable", "err", err)
		return l
	}
	l.ok, l.until = true, now.Add(ttl)
	r.local.enter(l)
	return l
}

// again reports whether the drain must look again before it leaves: a
// publish marked the app dirty since the last look. Otherwise the drain has
// left the registry.
func (l *drainLease) again(ctx context.Context) bool {
	return l.againWithin(ctx, 0)
}

// againWithin is again that first waits up to idle for a publish of this
// process to mark the app (localDrains.wait): under load the drain stays
// for the next event instead of leaving and being enqueued again for it.
// A mark made here is consumed here; only when none came does the drain
// ask Redis, where other processes' publishes mark the app, and leave
// unless one did.
func (l *drainLease) againWithin(ctx context.Context, idle time.Duration) bool {
	if !l.ok {
		l.spent.flush(ctx)
		return false
	}
	if l.r.local.wait(ctx, l, idle) {
		return true
	}
	// No longer looking here: this process's publishes go to Redis from
	// now on, and the scripts decide as between processes.
	if !l.redisLeave(ctx, true) {
		return false
	}
	l.until = l.r.opts.Now().Add(l.ttl)
	l.r.local.enter(l)
	return true
}

// leave takes the drain out of the registry for good. When a publish of
// this process marked the app here and no other drain of it here looks
// again, the drain kicks the app as that publish would have (through
// Redis), and leave reports that it did.
func (l *drainLease) leave(ctx context.Context) (kicked bool) {
	if !l.ok {
		l.spent.flush(ctx)
		return false
	}
	owed := l.r.local.exit(l)
	l.redisLeave(ctx, false)
	if owed {
		l.r.kickApps(context.WithoutCancel(ctx), []int64{l.appID}, 1, false)
	}
	return owed
}

// redisLeave runs leaveScript (check: stay when the app is dirty; then it
// reports true and the lease is extended), with the drain's spent
// in-flight leases given back in the same round trip.
func (l *drainLease) redisLeave(ctx context.Context, check bool) bool {
	a, _, d := drainKeys(l.appID)
	mode := "leave"
	if check {
		mode = "check"
	}
	ctx = context.WithoutCancel(ctx)
	keys, args := []string{a, d}, []any{l.id, l.r.opts.Now().Add(l.ttl).UnixMilli(), mode}
	var cmd *redis.Cmd
	_, _ = l.r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		l.spent.givingIn(ctx, l.r.rdb, p)
		cmd = leaveScript.EvalSha(ctx, p, keys, args...)
		return nil
	})
	if redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
		cmd = leaveScript.Run(ctx, l.r.rdb, keys, args...)
	}
	n, err := cmd.Int()
	if err != nil || n != 1 {
		l.ok = false
		return false
	}
	return true
}

// localDrains is what a process knows of its own drains, by app: those
// registered and looking again before they leave (entered at register,
// taken out when they decide to leave), and whether a publish of this
// process kicked the app since one of them last looked.
//
// A kick of such an app (want 1, not forced) sets the local mark instead
// of running the kick script; a drain
// consumes the mark before it would ask Redis, and looks again. The
// argument of the registry holds with the process as one more atomic
// step: under mu, either the drain sees the mark and looks again (after
// the publish's commit, which came before its kick), or it has stopped
// looking before the kick checks, and the kick goes to Redis, where the
// scripts decide as before (the drain's lease is still there until its
// leaveScript, which sees the dirty mark the kick script sets). A drain
// that leaves otherwise (an error, its time is up) while a local mark
// waits and no other drain of the app here looks kicks the app itself
// (drainLease.leave). An entry counts only until its lease expires in
// Redis, so a drain that vanished without leaving (a panic) stops
// swallowing kicks when Redis forgets it too.
type localDrains struct {
	mu   sync.Mutex
	apps map[int64]*localApp
	idle int // drains waiting in wait now, at most max
	max  int // idleDrains(Options.Workers)
}

type localApp struct {
	looking map[*drainLease]struct{}
	dirty   bool
}

// idleDrains bounds the drains of a process waiting for their app's next
// publish at once: each holds one of the worker's slots meanwhile (25 ms
// at most, idleFor), so at most two thirds of them (and 24) wait, and the
// other tasks (billing, reconciliation, the relay, other apps' drains)
// keep the rest. A third (10 of the bench's 32) left half of the mix's 20
// apps without a waiting drain: their next event paid a task and its
// registry calls, and the mix at 2,000 deliveries/s had p99 156-159 ms
// against 124-140 ms with two thirds, alternated on a noisy box.
func idleDrains(workers int) int { return min(24, workers*2/3) }

func (ld *localDrains) enter(l *drainLease) {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	a := ld.apps[l.appID]
	if a == nil {
		a = &localApp{looking: map[*drainLease]struct{}{}}
		ld.apps[l.appID] = a
	}
	a.looking[l] = struct{}{}
}

// mark sets the local mark of every app of apps that has a drain here
// looking again, and returns the others.
func (ld *localDrains) mark(apps []int64, now time.Time) []int64 {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	if len(ld.apps) == 0 {
		return apps
	}
	var rest []int64
	for i, id := range apps {
		a := ld.apps[id]
		if a == nil || !a.live(now) {
			if rest == nil {
				rest = make([]int64, 0, len(apps)-i)
			}
			rest = append(rest, id)
			continue
		}
		a.dirty = true
	}
	return rest
}

// live reports whether a drain of a looks again whose lease has not
// expired.
func (a *localApp) live(now time.Time) bool {
	for l := range a.looking {
		if now.Before(l.until) {
			return true
		}
	}
	return false
}

// wait consumes the app's local mark for l and reports whether it did.
// With none yet, it first waits idle (when fewer than idleDrains(Workers) wait),
// the whole of it: a mark made meanwhile does not wake it, so that the
// batch it claims then takes what came in that time, as a drain enqueued
// afresh would have found after its queue wait. When it did not consume a
// mark, l no longer looks here: from then on kicks go to Redis.
func (ld *localDrains) wait(ctx context.Context, l *drainLease, idle time.Duration) bool {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	a := ld.apps[l.appID]
	if a == nil {
		return false
	}
	if !a.dirty && idle > 0 && ld.idle < ld.max {
		ld.idle++
		ld.mu.Unlock()
		t := time.NewTimer(idle)
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
		ld.mu.Lock()
		ld.idle--
		// a is still the app's entry: l is among its drains.
	}
	if a.dirty {
		a.dirty = false
		return true
	}
	ld.remove(l)
	return false
}

// exit takes l out, and reports whether a local mark was left that no
// other drain of the app here will consume (it is consumed now).
func (ld *localDrains) exit(l *drainLease) (owed bool) {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	a := ld.apps[l.appID]
	if a == nil {
		return false
	}
	delete(a.looking, l)
	if a.dirty && !a.live(l.r.opts.Now()) {
		a.dirty, owed = false, true
	}
	ld.remove(l)
	return owed
}

// remove takes l out of its app's drains here, and the app out when none
// is left and no mark waits; mu is held.
func (ld *localDrains) remove(l *drainLease) {
	a := ld.apps[l.appID]
	if a == nil {
		return
	}
	delete(a.looking, l)
	if len(a.looking) == 0 {
		delete(ld.apps, l.appID)
	}
}
