package webhooks

import (
	"context"
	"strconv"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// limits enforce an app's rate limit and in-flight cap across every worker,
// in Redis.
type limits struct {
	rdb     redis.UniversalClient
	limiter *redis_rate.Limiter
}

func newLimits(rdb redis.UniversalClient) *limits {
	return &limits{rdb: rdb, limiter: redis_rate.NewLimiter(rdb)}
}

// rateLimit is GCRA with no burst at low rates, so no one-second window
// ever sees more than the limit; the period carries a 3% margin for the
// jitter between our clock and the partner's.
func rateLimit(perSecond int) redis_rate.Limit {
	burst := 1
	if perSecond > 100 {
		burst = perSecond / 50
	}
	return redis_rate.Limit{Rate: perSecond, Burst: burst, Period: time.Second * 103 / 100}
}

// take asks for up to n delivery slots; it returns how many it got, and
// how long to wait when none.
func (l *limits) take(ctx context.Context, appID int64, perSecond, n int) (int, time.Duration, error) {
	res, err := l.limiter.AllowAtMost(ctx, "plugboard:rate:"+strconv.FormatInt(appID, 10), rateLimit(perSecond), n)
	if err != nil {
		return 0, 0, err
	}
	if res.Allowed > 0 {
		return res.Allowed, 0, nil
	}
	return 0, res.RetryAfter, nil
}

// acquireScript holds up to ARGV[4] leases in a sorted set scored by
// expiry: expired leases (a crashed worker's) free themselves. It returns
// how many it took; their members are ARGV[5] .. with a suffix 1..n.
var acquireScript = redis.NewScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local free = tonumber(ARGV[3]) - redis.call('ZCARD', KEYS[1])
local n = math.min(free, tonumber(ARGV[4]))
for i = 1, n do
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[5] .. ':' .. i)
end
if n > 0 then redis.call('PEXPIRE', KEYS[1], 600000) end
return math.max(n, 0)`)

// acquire takes up to want of the app's in-flight slots for at most ttl,
// waiting up to wait for at least one; it returns how many it took and the
// func that gives them back (nil when none came free).
func (l *limits) acquire(ctx context.Context, appID int64, max, want int, ttl, wait time.Duration) (int, func(), error) {
	key := "plugboard:inflight:" + strconv.FormatInt(appID, 10)
	lease := uuid.NewString()
	deadline := time.Now().Add(wait)
	for {
		now := time.Now()
		n, err := acquireScript.Run(ctx, l.rdb, []string{key}, now.UnixMilli(), now.Add(ttl).UnixMilli(), max, want, lease).Int()
		if err != nil {
			return 0, nil, err
		}
		if n > 0 {
			members := make([]any, n)
			for i := range n {
				members[i] = lease + ":" + strconv.Itoa(i+1)
			}
			return n, func() { l.rdb.ZRem(context.WithoutCancel(ctx), key, members...) }, nil
		}
		if now.After(deadline) {
			return 0, nil, nil
		}
		select {
		case <-ctx.Done():
			return 0, nil, nil // stopped: take nothing
		case <-time.After(5 * time.Millisecond):
		}
	}
}
