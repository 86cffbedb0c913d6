// Package testenv gives tests real infrastructure: each call to DB returns a
// fresh database cloned from a migrated template (so it is fast), and each
// call to Redis a Redis database number of its own, flushed. Packages and
// tests can run in parallel. A missing PostgreSQL or Redis fails the test;
// nothing is skipped. CreateDB and ReserveRedis do the same without a
// testing.TB, for programs such as bench/webhooks, so that everything using
// the local servers takes databases one way and never shares one.
//
// It imports migrations; test files of every package may import it, and so
// may the benchmarks under bench/, never the platform's own code.
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
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/plugboard/plugboard/migrations"
)

// PostgresURL is the server tests use; PLUGBOARD_TEST_DATABASE_URL overrides it.
func PostgresURL() string {
	if u := os.Getenv("PLUGBOARD_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// RedisAddr is the Redis server tests use: a redis-server of this process's
// own (see privateRedis), so a test run never reads or flushes a database
// of anyone else's; PLUGBOARD_TEST_REDIS_ADDR names a server to use instead,
// whose databases 1–15 are then reserved (and flushed) one at a time.
func RedisAddr() string {
	if a := os.Getenv("PLUGBOARD_TEST_REDIS_ADDR"); a != "" {
		return a
	}
	addr, err := privateRedis()
	if err != nil {
		panic(fmt.Sprintf("testenv: %v", err))
	}
	return addr
}

// withDB is the URL of the database name on the server at raw.
func withDB(raw, name string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("want a postgres:// URL, got %q", raw)
	}
	u.Path = "/" + name
	return u.String(), nil
}

// templates are the migrated template databases this process made or
// found, by server: each is built once per process and migration set.
var templates = struct {
	sync.Mutex
	byServer map[string]*templateResult
}{byServer: map[string]*templateResult{}}

type templateResult struct {
	once sync.Once
	name string
	err  error
}

// template creates (once per process and server, under an advisory lock
// shared by all processes) a database with every migration applied, named
// after a hash of the migration files so that a changed migration makes a
// new template.
func template(ctx context.Context, server string) (string, error) {
	templates.Lock()
	t, ok := templates.byServer[server]
	if !ok {
		t = &templateResult{}
		templates.byServer[server] = t
	}
	templates.Unlock()
	t.once.Do(func() {
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
		t.name = "plugboard_tmpl_" + hex.EncodeToString(h.Sum(nil))[:12]
		t.err = buildTemplate(ctx, server, t.name)
	})
	return t.name, t.err
}

// Template is the name of the migrated template database on server (built
// once per process, as CreateDB does): for a caller that keeps a database
// of its own made from it, such as the webhook benchmark's seeded one.
func Template(ctx context.Context, server string) (string, error) {
	return template(ctx, server)
}

func buildTemplate(ctx context.Context, server, name string) error {
	conn, err := pgx.Connect(ctx, server)
	if err != nil {
		return fmt.Errorf("PostgreSQL is required (%s): %w", server, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock(72007001)"); err != nil {
		return fmt.Errorf("locking the template: %w", err)
	}
	defer conn.Exec(ctx, "SELECT pg_advisory_unlock(72007001)") //nolint:errcheck
	var ready bool
	err = conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1 AND datistemplate)", name).Scan(&ready)
	if err != nil || ready {
		return err
	}
	ident := pgx.Identifier{name}.Sanitize()
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident); err != nil {
		return fmt.Errorf("dropping a half-built template %s: %w", name, err)
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident); err != nil {
		return fmt.Errorf("creating template %s: %w", name, err)
	}
	dsn, err := withDB(server, name)
	if err != nil {
		return err
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return err
	}
	_, err = migrations.Up(ctx, db)
	db.Close()
	if err != nil {
		return fmt.Errorf("migrating template %s: %w", name, err)
	}
	if _, err := conn.Exec(ctx, "ALTER DATABASE "+ident+" WITH is_template true"); err != nil {
		return fmt.Errorf("marking %s a template: %w", name, err)
	}
	return nil
}

// DBOptions say where CreateDB creates a database and how it names it.
type DBOptions struct {
	Server string // a URL of the server's postgres database; PostgresURL() when ""
	Prefix string // the name before a random suffix; "plugboard_test_" when ""
}

// CreateDB creates a fresh database with every migration applied, cloned
// from a template (built once per process), and returns its URL and drop,
// which drops it, ending its connections. Not calling drop keeps it.
func CreateDB(ctx context.Context, o DBOptions) (dbURL string, drop func() error, err error) {
	if o.Server == "" {
		o.Server = PostgresURL()
	}
	if o.Prefix == "" {
		o.Prefix = "plugboard_test_"
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := o.Prefix + hex.EncodeToString(b[:])
	if dbURL, err = withDB(o.Server, name); err != nil {
		return "", nil, err
	}
	tmpl, err := template(ctx, o.Server)
	if err != nil {
		return "", nil, err
	}
	conn, err := pgx.Connect(ctx, o.Server)
	if err != nil {
		return "", nil, fmt.Errorf("PostgreSQL is required (%s): %w", o.Server, err)
	}
	defer conn.Close(ctx)
	ident := pgx.Identifier{name}.Sanitize()
	for attempt := 0; ; attempt++ {
		_, err = conn.Exec(ctx, "CREATE DATABASE "+ident+" TEMPLATE "+pgx.Identifier{tmpl}.Sanitize())
		if err == nil || attempt == 20 {
			break
		}
		time.Sleep(50 * time.Millisecond) // another process is copying the template
	}
	if err != nil {
		return "", nil, fmt.Errorf("cloning %s into %s: %w", tmpl, name, err)
	}
	drop = func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, o.Server)
		if err != nil {
			return fmt.Errorf("dropping %s: %w", name, err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
			return fmt.Errorf("dropping %s: %w", name, err)
		}
		return nil
	}
	return dbURL, drop, nil
}

// DB creates a fresh, migrated database for t, dropped when t ends, and
// returns its URL.
func DB(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dbURL, drop, err := CreateDB(ctx, DBOptions{})
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() { _ = drop() })
	return dbURL
}
