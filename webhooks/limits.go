package webhooks

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// Limiter enforces an app's rate limit and in-flight cap across every
// worker, in Redis.
type Limiter struct {
	rdb redis.UniversalClient
	now func() time.Time
}

// NewLimiter returns the limiter on rdb. In-flight leases expire on
// opts.Now; the rate limit runs on Redis's clock, the one every worker
// shares.
func NewLimiter(rdb redis.UniversalClient, opts Options) *Limiter {
	return &Limiter{rdb: rdb, now: opts.withDefaults().Now}
}

// rateParams are GCRA's burst and period for a rate: no burst at low rates,
// so no one-second window ever sees more than the limit; the period carries
// a 3% margin for the jitter between our clock and the partner's.
func rateParams(perSecond int) (burst int, period time.Duration) {
	burst = 1
	if perSecond > 100 {
		burst = perSecond / 50
	}
	return burst, time.Second * 103 / 100
}

// admitScript takes up to ARGV[4] delivery slots at once from an app's
// in-flight cap (KEYS[2]: a sorted set of leases scored by expiry, so a
// crashed worker's leases free themselves) and its rate limit (KEYS[1]:
// GCRA, as go-redis/redis_rate's allowAtMost, whose key and arithmetic it
// keeps). In-flight slots are counted first, so no rate slot is spent on a
// request that could not start. One round trip where there were two.
//
// ARGV: burst, rate, period (s), want, now (ms), lease expiry (ms), cap,
// lease id, then the leases the caller gives back first (its requests that
// ended since its last call: see spent). Returns {taken, retry after (s,
// when the rate limit refused), 1 when the in-flight cap is full}. The
// leases are ARGV[8]:1 .. :taken, added in one ZADD.
var admitScript = redis.NewScript(`
redis.replicate_commands()
if #ARGV > 8 then
  redis.call('ZREM', KEYS[2], unpack(ARGV, 9))
end
-- Expired leases (of workers that died) are dropped only when they could
-- stand in the way: fewer than the cap of them can pile up otherwise.
local held = redis.call('ZCARD', KEYS[2])
if held + tonumber(ARGV[4]) > tonumber(ARGV[7]) then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[5])
  held = redis.call('ZCARD', KEYS[2])
end
local cost = math.min(tonumber(ARGV[7]) - held, tonumber(ARGV[4]))
if cost <= 0 then
  return {0, '0', 1}
end

local burst = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local period = tonumber(ARGV[3])
local emission_interval = period / rate
local burst_offset = emission_interval * burst
local jan_1_2017 = 1483228800
local now = redis.call('TIME')
now = (now[1] - jan_1_2017) + (now[2] / 1000000)
local tat = redis.call('GET', KEYS[1])
if not tat then
  tat = now
else
  tat = tonumber(tat)
end
tat = math.max(tat, now)
-- redis_rate's now - (tat - burst_offset), summed so that now - tat
-- (two close numbers: exact) comes first. now is about 3e8 s, where a
-- double keeps about 6e-8 s; the other order rounded a fresh key's single
-- slot (burst 1, tat = now) to a hair under one and refused it.
local diff = (now - tat) + burst_offset
local remaining = diff / emission_interval
if remaining < 1 then
  return {0, tostring(emission_interval - diff), 0}
end
if remaining < cost then
  cost = remaining
end
local new_tat = tat + emission_interval * cost
local reset_after = new_tat - now
if reset_after > 0 then
  redis.call('SET', KEYS[1], new_tat, 'EX', math.ceil(reset_after))
end

local n = math.floor(cost)
local add = {}
for i = 1, n do
  add[#add+1] = ARGV[6]
  add[#add+1] = ARGV[8] .. ':' .. i
end
redis.call('ZADD', KEYS[2], unpack(add))
redis.call('PEXPIRE', KEYS[2], 600000)
return {n, '0', 0}`)

// admit asks for up to want slots of the app's rate limit and in-flight
// cap, leased for at most ttl. It returns how many it took and the func
// that gives the in-flight leases back; with none, how long the rate limit
// asks to wait, or that the in-flight cap is full.
func (l *Limiter) admit(ctx context.Context, appID int64, perSecond, maxInFlight, want int, ttl time.Duration) (n int, retry time.Duration, full bool, release func(), err error) {
	n, retry, full, leases, err := l.admitGiving(ctx, appID, perSecond, maxInFlight, want, ttl, nil)
	if n > 0 {
		release = func() { l.release(context.WithoutCancel(ctx), appID, leases) }
	}
	return n, retry, full, release, err
}

// inflightKey is the app's in-flight leases (admitScript's KEYS[2]).
func inflightKey(appID int64) string { return "plugboard:inflight:" + strconv.FormatInt(appID, 10) }

// admitGiving is admit that first gives back back's leases (of this app)
// in the same call, and returns the new leases themselves: the caller
// gives them back with release, or through a spent.
func (l *Limiter) admitGiving(ctx context.Context, appID int64, perSecond, maxInFlight, want int, ttl time.Duration, back *spent) (n int, retry time.Duration, full bool, leases []any, err error) {
	keys := []string{"rate:plugboard:rate:" + strconv.FormatInt(appID, 10), inflightKey(appID)}
	burst, period := rateParams(perSecond)
	lease := uuid.NewString()
	now := l.now()
	args := []any{burst, perSecond, period.Seconds(), want, now.UnixMilli(), now.Add(ttl).UnixMilli(), maxInFlight, lease}
	given := back.take()
	args = append(args, given...)
	res, err := admitScript.Run(ctx, l.rdb, keys, args...).Slice()
	if err != nil {
		if len(given) > 0 {
			l.release(context.WithoutCancel(ctx), appID, given) // else they expire with their lease
		}
		return 0, 0, false, nil, err
	}
	if len(res) != 3 {
		return 0, 0, false, nil, redis.Nil
	}
	taken, _ := res[0].(int64)
	if taken > 0 {
		members := make([]any, taken)
		for i := range members {
			members[i] = lease + ":" + strconv.Itoa(i+1)
		}
		return int(taken), 0, false, members, nil
	}
	if f, _ := res[2].(int64); f == 1 {
		return 0, 0, true, nil, nil
	}
	s, _ := res[1].(string)
	secs, _ := strconv.ParseFloat(s, 64)
	return 0, time.Duration(secs * float64(time.Second)), false, nil, nil
}

// release gives back in-flight leases of appID at once.
func (l *Limiter) release(ctx context.Context, appID int64, leases []any) {
	if len(leases) > 0 {
		l.rdb.ZRem(ctx, inflightKey(appID), leases...)
	}
}

// spent is one drain's in-flight leases whose requests have ended but
// that are not given back yet: they go with the drain's next call to
// Redis, its next admit (admitScript gives them back before it counts) or
// its registry call when it looks again or leaves (drainLease), instead of
// a ZREM round trip of their own per chunk. Until then they count against
// the app's cap, so the cap holds as before, only a little tighter: a
// drain keeps at most a quarter of the cap spent this way (keep), and
// gives back at once what would be more. A drain that dies leaves them to
// expire with their lease, as a crashed worker's.
type spent struct {
	limiter *Limiter
	appID   int64
	mu      sync.Mutex
	leases  []any
}

// keep takes ended leases into s when s stays within a quarter of
// maxInFlight, and reports whether it did; otherwise the caller gives
// them back at once.
func (s *spent) keep(leases []any, maxInFlight int) bool {
	if s == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.leases)+len(leases) > maxInFlight/4 {
		return false
	}
	s.leases = append(s.leases, leases...)
	return true
}

// take empties s and returns what it held.
func (s *spent) take() []any {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.leases
	s.leases = nil
	return out
}

// flush gives s's leases back at once.
func (s *spent) flush(ctx context.Context) {
	if leases := s.take(); len(leases) > 0 {
		s.limiter.release(context.WithoutCancel(ctx), s.appID, leases)
	}
}

// givingIn adds a ZREM of s's leases to pipe, when it is on the limiter's
// Redis; otherwise (another client) it gives them back in a call of its
// own. Either way s is empty afterwards.
func (s *spent) givingIn(ctx context.Context, rdb redis.UniversalClient, pipe redis.Pipeliner) {
	leases := s.take()
	if len(leases) == 0 {
		return
	}
	if rdb == s.limiter.rdb {
		pipe.ZRem(ctx, inflightKey(s.appID), leases...)
		return
	}
	s.limiter.release(ctx, s.appID, leases)
}

// admitAsk is one app's ask in admitMany: up to want slots of its rate
// limit and in-flight cap.
type admitAsk struct {
	appID                        int64
	perSecond, maxInFlight, want int
}

// admission is admitMany's answer to one ask, as admit answers: how many
// slots it took (and their in-flight leases, for releaseMany); with none,
// how long the rate limit asks to wait, or that the in-flight cap is full.
type admission struct {
	n      int
	retry  time.Duration
	full   bool
	key    string
	leases []any
}

// admitMany asks admitScript of every ask, leased for at most ttl, in one
// pipelined round trip: a sweep's apps each get exactly the answer admit
// would give them. When Redis does not know the script (flushed,
// restarted), it is loaded and the asks that did not run are asked again.
func (l *Limiter) admitMany(ctx context.Context, asks []admitAsk, ttl time.Duration) ([]admission, error) {
	out := make([]admission, len(asks))
	now := l.now()
	cmds := make([]*redis.Cmd, len(asks))
	leases := make([]string, len(asks))
	run := func(idx []int) error {
		pipe := l.rdb.Pipeline()
		for _, i := range idx {
			a := asks[i]
			id := strconv.FormatInt(a.appID, 10)
			keys := []string{"rate:plugboard:rate:" + id, "plugboard:inflight:" + id}
			out[i].key = keys[1]
			burst, period := rateParams(a.perSecond)
			leases[i] = uuid.NewString()
			args := []any{burst, a.perSecond, period.Seconds(), a.want, now.UnixMilli(), now.Add(ttl).UnixMilli(), a.maxInFlight, leases[i]}
			cmds[i] = admitScript.EvalSha(ctx, pipe, keys, args...)
		}
		_, err := pipe.Exec(ctx)
		if err != nil && !redis.HasErrorPrefix(err, "NOSCRIPT") {
			return err
		}
		return nil
	}
	all := make([]int, len(asks))
	for i := range all {
		all[i] = i
	}
	if err := run(all); err != nil {
		return nil, err
	}
	var again []int
	for i, c := range cmds {
		if redis.HasErrorPrefix(c.Err(), "NOSCRIPT") {
			again = append(again, i)
		}
	}
	if len(again) > 0 {
		// Those did not run: load the script and ask them again.
		if err := admitScript.Load(ctx, l.rdb).Err(); err != nil {
			return nil, err
		}
		if err := run(again); err != nil {
			return nil, err
		}
	}
	for i, c := range cmds {
		res, err := c.Slice()
		if err != nil {
			return nil, err
		}
		if len(res) != 3 {
			return nil, redis.Nil
		}
		taken, _ := res[0].(int64)
		if taken > 0 {
			out[i].n = int(taken)
			out[i].leases = make([]any, taken)
			for j := range out[i].leases {
				out[i].leases[j] = leases[i] + ":" + strconv.Itoa(j+1)
			}
			continue
		}
		if f, _ := res[2].(int64); f == 1 {
			out[i].full = true
			continue
		}
		s, _ := res[1].(string)
		secs, _ := strconv.ParseFloat(s, 64)
		out[i].retry = time.Duration(secs * float64(time.Second))
	}
	return out, nil
}

// releaseMany gives back the in-flight leases admitMany took, in one
// pipelined round trip.
func (l *Limiter) releaseMany(ctx context.Context, adm []admission) {
	pipe := l.rdb.Pipeline()
	for _, a := range adm {
		if len(a.leases) > 0 {
			pipe.ZRem(ctx, a.key, a.leases...)
		}
	}
	if pipe.Len() > 0 {
		_, _ = pipe.Exec(context.WithoutCancel(ctx))
	}
}
