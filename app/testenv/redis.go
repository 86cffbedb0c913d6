package testenv

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisOptions say which Redis database ReserveRedis may take.
type RedisOptions struct {
	Addr  string        // the server; RedisAddr() when ""
	DBs   []int         // the database numbers it may take, in this order; 1–15 when empty
	Owner string        // names the holder in the reservation, for whoever waits; "testenv" when ""
	Wait  time.Duration // how long to wait for a free one; 3 minutes when 0
}

// reservationTTL is how long a reservation outlives a holder that died
// without releasing it.
const reservationTTL = 30 * time.Minute

// reservationKey is the key in database 0 that holds database n: every user
// of a shared Redis (tests, bench/webhooks) reserves this way.
func reservationKey(n int) string { return "plugboard:testenv:db:" + strconv.Itoa(n) }

// ReserveRedis reserves a Redis database number, flushes it, and returns its
// redis:// URL and release, which flushes it again and gives it up. While
// none of o.DBs is free it waits, up to o.Wait or until ctx ends. Only the
// database it returns is ever flushed.
func ReserveRedis(ctx context.Context, o RedisOptions) (redisURL string, release func(), err error) {
	if o.Addr == "" {
		o.Addr = RedisAddr()
	}
	if len(o.DBs) == 0 {
		for n := 1; n <= 15; n++ {
			o.DBs = append(o.DBs, n)
		}
	}
	if o.Owner == "" {
		o.Owner = "testenv"
	}
	if o.Wait == 0 {
		o.Wait = 3 * time.Minute
	}
	admin := redis.NewClient(&redis.Options{Addr: o.Addr})
	defer admin.Close()
	if err := admin.Ping(ctx).Err(); err != nil {
		return "", nil, fmt.Errorf("Redis is required (%s): %w", o.Addr, err)
	}
	owner := fmt.Sprintf("%s-%d-%d", o.Owner, os.Getpid(), time.Now().UnixNano())
	for deadline := time.Now().Add(o.Wait); ; {
		for _, n := range o.DBs {
			key := reservationKey(n)
			ok, err := admin.SetNX(ctx, key, owner, reservationTTL).Result()
			if err != nil {
				return "", nil, fmt.Errorf("reserving Redis db %d on %s: %w", n, o.Addr, err)
			}
			if !ok {
				continue
			}
			release := func() { releaseRedis(o.Addr, n, owner) }
			if err := flushDB(ctx, o.Addr, n); err != nil {
				release()
				return "", nil, err
			}
			return fmt.Sprintf("redis://%s/%d", o.Addr, n), release, nil
		}
		if time.Now().After(deadline) {
			holder := admin.Get(ctx, reservationKey(o.DBs[0])).Val()
			return "", nil, fmt.Errorf("no free Redis database among %v on %s after %s (db %d is held by %q)", o.DBs, o.Addr, o.Wait, o.DBs[0], holder)
		}
		select {
		case <-ctx.Done():
			return "", nil, fmt.Errorf("waiting for a free Redis database on %s: %w", o.Addr, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func flushDB(ctx context.Context, addr string, n int) error {
	c := redis.NewClient(&redis.Options{Addr: addr, DB: n})
	defer c.Close()
	if err := c.FlushDB(ctx).Err(); err != nil {
		return fmt.Errorf("flushing Redis db %d on %s: %w", n, addr, err)
	}
	return nil
}

// releaseRedis flushes database n and deletes its reservation, if owner
// still holds it.
func releaseRedis(addr string, n int, owner string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a := redis.NewClient(&redis.Options{Addr: addr})
	defer a.Close()
	key := reservationKey(n)
	if v, err := a.Get(ctx, key).Result(); err != nil || v != owner {
		return // expired, perhaps taken by another, or unknown: not ours to flush
	}
	_ = flushDB(ctx, addr, n)
	a.Del(ctx, key)
}

// Redis reserves a Redis database number (1–15) for t, flushed before use and
// released when t ends, and returns its redis:// URL. Tests that need more
// than are free wait for one.
func Redis(t testing.TB) string {
	t.Helper()
	u, release, err := ReserveRedis(context.Background(), RedisOptions{Owner: t.Name()})
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(release)
	return u
}
