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

// take asks for one delivery slot; it returns how long to wait when none.
func (l *limits) take(ctx context.Context, appID int64, perSecond int) (time.Duration, error) {
	res, err := l.limiter.Allow(ctx, "plugboard:rate:"+strconv.FormatInt(appID, 10), rateLimit(perSecond))
	if err != nil {
		return 0, err
	}
	if res.Allowed > 0 {
		return 0, nil
	}
	return res.RetryAfter, nil
}

// acquireScript holds a lease in a sorted set scored by expiry: expired
// leases (a crashed worker's) free themselves.
var acquireScript = redis.NewScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
  redis.call('PEXPIRE', KEYS[1], 600000)
  return 1
end
return 0`)

// acquire takes one of the app's in-flight slots for at most ttl, waiting
// up to wait; it returns a release func, or nil when none came free.
func (l *limits) acquire(ctx context.Context, appID int64, max int, ttl, wait time.Duration) (func(), error) {
	key := "plugboard:inflight:" + strconv.FormatInt(appID, 10)
	lease := uuid.NewString()
	deadline := time.Now().Add(wait)
	for {
		now := time.Now()
		ok, err := acquireScript.Run(ctx, l.rdb, []string{key}, now.UnixMilli(), now.Add(ttl).UnixMilli(), max, lease).Int()
		if err != nil {
			return nil, err
		}
		if ok == 1 {
			return func() { l.rdb.ZRem(context.WithoutCancel(ctx), key, lease) }, nil
		}
		if now.After(deadline) {
			return nil, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}
