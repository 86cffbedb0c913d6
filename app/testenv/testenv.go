// Package testenv gives tests real infrastructure: each call to DB returns a
// fresh database cloned from a migrated template (so it is fast), and each
// call to Redis a Redis database number of its own, flushed. Packages and
// tests can run in parallel. A missing PostgreSQL or Redis fails the test;
// nothing is skipped.
//
// It imports config and migrations; test files of every package may import it.
package testenv

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/plugboard/plugboard/migrations"
)

// PostgresURL is the server tests use; PLUGBOARD_TEST_DATABASE_URL overrides it.
func PostgresURL() string {
	if u := os.Getenv("PLUGBOARD_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// RedisAddr is the server tests use; PLUGBOARD_TEST_REDIS_ADDR overrides it.
func RedisAddr() string {
	if a := os.Getenv("PLUGBOARD_TEST_REDIS_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

func withDB(raw, name string) string {
	u, _ := url.Parse(raw)
	u.Path = "/" + name
	return u.String()
}

var (
	templateOnce sync.Once
	templateName string
	templateErr  error
)

// template creates (once per process, under an advisory lock shared by all
// processes) a database with every migration applied, named after a hash of
// the migration files so that a changed migration makes a new template.
func template(ctx context.Context) (string, error) {
	templateOnce.Do(func() {
		h := sha256.New()
		_ = fs.WalkDir(migrations.FS(), ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, _ := fs.ReadFile(migrations.FS(), p)
			h.Write([]byte(p))
			h.Write(b)
			return nil
		})
		templateName = "plugboard_tmpl_" + hex.EncodeToString(h.Sum(nil))[:12]
		templateErr = buildTemplate(ctx, templateName)
	})
	return templateName, templateErr
}

func buildTemplate(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, PostgresURL())
	if err != nil {
		return fmt.Errorf("PostgreSQL is required for tests (%s): %w", PostgresURL(), err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock(72007001)"); err != nil {
		return err
	}
	defer conn.Exec(ctx, "SELECT pg_advisory_unlock(72007001)") //nolint:errcheck
	var ready bool
	err = conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1 AND datistemplate)", name).Scan(&ready)
	if err != nil || ready {
		return err
	}
	ident := pgx.Identifier{name}.Sanitize()
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident); err != nil {
		return err
	}
	db, err := sql.Open("pgx", withDB(PostgresURL(), name))
	if err != nil {
		return err
	}
	_, err = migrations.Up(ctx, db)
	db.Close()
	if err != nil {
		return fmt.Errorf("migrating template: %w", err)
	}
	_, err = conn.Exec(ctx, "ALTER DATABASE "+ident+" WITH is_template true")
	return err
}

// DB creates a fresh, migrated database for t, dropped when t ends, and
// returns its URL.
func DB(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tmpl, err := template(ctx)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	conn, err := pgx.Connect(ctx, PostgresURL())
	if err != nil {
		t.Fatalf("testenv: PostgreSQL is required for tests (%s): %v", PostgresURL(), err)
	}
	defer conn.Close(ctx)
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "plugboard_test_" + hex.EncodeToString(b[:])
	ident := pgx.Identifier{name}.Sanitize()
	for attempt := 0; ; attempt++ {
		_, err = conn.Exec(ctx, "CREATE DATABASE "+ident+" TEMPLATE "+pgx.Identifier{tmpl}.Sanitize())
		if err == nil || attempt == 20 {
			break
		}
		time.Sleep(50 * time.Millisecond) // another process is copying the template
	}
	if err != nil {
		t.Fatalf("testenv: cloning %s: %v", tmpl, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, PostgresURL())
		if err != nil {
			return
		}
		defer conn.Close(ctx)
		_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)")
	})
	return withDB(PostgresURL(), name)
}

// Redis reserves a Redis database number (1–15) for t, flushed before use and
// released when t ends, and returns its redis:// URL. Tests that need more
// than are free wait for one.
func Redis(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	admin := redis.NewClient(&redis.Options{Addr: RedisAddr()})
	defer admin.Close()
	if err := admin.Ping(ctx).Err(); err != nil {
		t.Fatalf("testenv: Redis is required for tests (%s): %v", RedisAddr(), err)
	}
	owner := fmt.Sprintf("%d-%s-%d", os.Getpid(), t.Name(), time.Now().UnixNano())
	deadline := time.Now().Add(3 * time.Minute)
	for {
		for n := 1; n <= 15; n++ {
			key := "plugboard:testenv:db:" + strconv.Itoa(n)
			ok, err := admin.SetNX(ctx, key, owner, 30*time.Minute).Result()
			if err != nil {
				t.Fatalf("testenv: reserving a Redis database: %v", err)
			}
			if !ok {
				continue
			}
			c := redis.NewClient(&redis.Options{Addr: RedisAddr(), DB: n})
			err = c.FlushDB(ctx).Err()
			c.Close()
			if err != nil {
				t.Fatalf("testenv: flushing Redis db %d: %v", n, err)
			}
			t.Cleanup(func() {
				c := redis.NewClient(&redis.Options{Addr: RedisAddr(), DB: n})
				c.FlushDB(context.Background())
				c.Close()
				a := redis.NewClient(&redis.Options{Addr: RedisAddr()})
				if v, _ := a.Get(context.Background(), key).Result(); v == owner {
					a.Del(context.Background(), key)
				}
				a.Close()
			})
			return fmt.Sprintf("redis://%s/%d", RedisAddr(), n)
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: no free Redis database after 3 minutes")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
