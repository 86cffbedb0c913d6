package testenv_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/plugboard/plugboard/app/testenv"
)

// client connects to a redis:// URL until t ends.
func client(t *testing.T, u string) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opts)
	t.Cleanup(func() { c.Close() })
	return c
}

func TestReserveRedis(t *testing.T) {
	ctx := context.Background()
	addr := testenv.RedisServer(t) // a private server: these reservations touch nobody's
	admin := client(t, "redis://"+addr+"/0")
	client(t, "redis://"+addr+"/3").Set(ctx, "left", "over", 0)

	u, release, err := testenv.ReserveRedis(ctx, testenv.RedisOptions{Addr: addr, DBs: []int{3}, Owner: "first"})
	if err != nil || u != "redis://"+addr+"/3" {
		t.Fatalf("reserve: %q %v", u, err)
	}
	db3 := client(t, u)
	if n := db3.DBSize(ctx).Val(); n != 0 {
		t.Errorf("db 3 not flushed: %d keys", n)
	}
	if v := admin.Get(ctx, "plugboard:testenv:db:3").Val(); !strings.HasPrefix(v, "first-") {
		t.Errorf("reservation held by %q", v)
	}

	// Taken: a second caller waits, then says who holds it.
	tests := []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		opts testenv.RedisOptions
		want func(error) bool
	}{
		{"times out", func() (context.Context, context.CancelFunc) { return ctx, func() {} },
			testenv.RedisOptions{Addr: addr, DBs: []int{3}, Wait: 200 * time.Millisecond},
			func(err error) bool { return err != nil && strings.Contains(err.Error(), `held by "first-`) }},
		{"context ends", func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, 200*time.Millisecond) },
			testenv.RedisOptions{Addr: addr, DBs: []int{3}},
			func(err error) bool { return errors.Is(err, context.DeadlineExceeded) }},
		{"no server", func() (context.Context, context.CancelFunc) { return ctx, func() {} },
			testenv.RedisOptions{Addr: "127.0.0.1:1", DBs: []int{3}},
			func(err error) bool {
				return err != nil && strings.Contains(err.Error(), "Redis is required (127.0.0.1:1)")
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, cancel := tc.ctx()
			defer cancel()
			if _, _, err := testenv.ReserveRedis(c, tc.opts); !tc.want(err) {
				t.Errorf("got %v", err)
			}
		})
	}
	// Another free database is taken at once.
	u4, release4, err := testenv.ReserveRedis(ctx, testenv.RedisOptions{Addr: addr, DBs: []int{3, 4}})
	if err != nil || !strings.HasSuffix(u4, "/4") {
		t.Fatalf("reserve 3 or 4: %q %v", u4, err)
	}
	release4()

	db3.Set(ctx, "mine", "1", 0)
	release()
	if n := db3.DBSize(ctx).Val(); n != 0 {
		t.Errorf("release left %d keys", n)
	}
	if n := admin.Exists(ctx, "plugboard:testenv:db:3").Val(); n != 0 {
		t.Error("release kept the reservation")
	}

	// A release after the reservation passed to another flushes nothing.
	_, release, err = testenv.ReserveRedis(ctx, testenv.RedisOptions{Addr: addr, DBs: []int{3}})
	if err != nil {
		t.Fatal(err)
	}
	admin.Set(ctx, "plugboard:testenv:db:3", "someone-else", time.Minute)
	db3.Set(ctx, "theirs", "1", 0)
	release()
	if db3.Exists(ctx, "theirs").Val() != 1 || admin.Get(ctx, "plugboard:testenv:db:3").Val() != "someone-else" {
		t.Error("release touched a database it no longer held")
	}
}

func TestCreateDB(t *testing.T) {
	ctx := context.Background()
	u, drop, err := testenv.CreateDB(ctx, testenv.DBOptions{Prefix: "plugboard_testenv_"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(u, "/plugboard_testenv_") {
		t.Errorf("url %s", u)
	}
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	var migrated bool
	err = conn.QueryRow(ctx, "SELECT to_regclass('deliveries') IS NOT NULL").Scan(&migrated)
	conn.Close(ctx)
	if err != nil || !migrated {
		t.Fatalf("not migrated: %v", err)
	}
	if err := drop(); err != nil {
		t.Fatal(err)
	}
	if c, err := pgx.Connect(ctx, u); err == nil {
		c.Close(ctx)
		t.Error("the database outlived drop")
	}
	if _, _, err := testenv.CreateDB(ctx, testenv.DBOptions{Server: "mysql://nope"}); err == nil {
		t.Error("a non-postgres server was accepted")
	}
}
