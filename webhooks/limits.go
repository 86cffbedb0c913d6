package webhooks

import (
	"context"
	"strconv"
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
// lease id. Returns {taken, retry after (s, when the rate limit refused),
// 1 when the in-flight cap is full}. The leases are ARGV[8]:1 .. :taken.
var admitScript = redis.NewScript(`
redis.replicate_commands()
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[5])
local cost = math.min(tonumber(ARGV[7]) - redis.call('ZCARD', KEYS[2]), tonumber(ARGV[4]))
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
for i = 1, n do
  redis.call('ZADD', KEYS[2], ARGV[6], ARGV[8] .. ':' .. i)
end
redis.call('PEXPIRE', KEYS[2], 600000)
return {n, '0', 0}`)

// admit asks for up to want slots of the app's rate limit and in-flight
// cap, leased for at most ttl. It returns how many it took and the func
// that gives the in-flight leases back; with none, how long the rate limit
// asks to wait, or that the in-flight cap is full.
func (l *Limiter) admit(ctx context.Context, appID int64, perSecond, maxInFlight, want int, ttl time.Duration) (n int, retry time.Duration, full bool, release func(), err error) {
	id := strconv.FormatInt(appID, 10)
	keys := []string{"rate:plugboard:rate:" + id, "plugboard:inflight:" + id}
	burst, period := rateParams(perSecond)
	lease := uuid.NewString()
	now := l.now()
	res, err := admitScript.Run(ctx, l.rdb, keys, burst, perSecond, period.Seconds(), want,
		now.UnixMilli(), now.Add(ttl).UnixMilli(), maxInFlight, lease).Slice()
	if err != nil {
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
		return int(taken), 0, false, func() { l.rdb.ZRem(context.WithoutCancel(ctx), keys[1], members...) }, nil
	}
	if f, _ := res[2].(int64); f == 1 {
		return 0, 0, true, nil, nil
	}
	s, _ := res[1].(string)
	secs, _ := strconv.ParseFloat(s, 64)
	return 0, time.Duration(secs * float64(time.Second)), false, nil, nil
}
