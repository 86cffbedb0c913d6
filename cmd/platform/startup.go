package platform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/plugboard/plugboard/config"
)

// Option changes one of New's timings. The binary takes the defaults; tests
// shorten them so that a minute of outage takes a second.
type Option func(*options)

type options struct {
	redisCheck  time.Duration // how often the watcher pings Redis
	redisRemind time.Duration // how often it says again that Redis is still unreachable
	dbRetry     time.Duration // how often start-up tries PostgreSQL while it waits
	now         func() time.Time
}

func newOptions(opts []Option) options {
	o := options{redisCheck: 5 * time.Second, redisRemind: time.Minute, dbRetry: time.Second}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// WithRedisWatch sets how often the platform pings Redis (5s by default) and
// how often, while Redis stays unreachable, it says so again (1m).
func WithRedisWatch(check, remind time.Duration) Option {
	return func(o *options) { o.redisCheck, o.redisRemind = check, remind }
}

// WithDatabaseRetry sets how often start-up tries PostgreSQL while it waits
// for it (1s by default); PLUGBOARD_DATABASE_WAIT says how long.
func WithDatabaseRetry(d time.Duration) Option {
	return func(o *options) { o.dbRetry = d }
}

// WithClock makes now the marketplace's clock (installs, plan changes,
// usage records, billing periods): an end-to-end test lives through a
// month of billing in seconds. Webhooks and queues keep real time.
func WithClock(now func() time.Time) Option {
	return func(o *options) { o.now = now }
}

// waitForPostgres returns once the server at dsn answers, trying every
// retry for up to wait (PLUGBOARD_DATABASE_WAIT), so that a platform started
// beside its database (docker compose up) does not lose the race. It says
// one line when it starts waiting; giving up is one error, one line, naming
// the server. A server that answers with an error of its own (no such
// database, a wrong password) is reachable: the steps after this report it.
func waitForPostgres(ctx context.Context, dsn string, wait, retry time.Duration, log *slog.Logger) error {
	masked := config.MaskURL(dsn)
	start := time.Now()
	waiting := false
	for {
		err := probePostgres(ctx, dsn, wait-time.Since(start))
		if err == nil {
			if waiting {
				log.Info(fmt.Sprintf("PostgreSQL at %s reachable", masked), "after", roundDuration(time.Since(start)))
			}
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("waiting for PostgreSQL at %s: %w", masked, ctx.Err())
		}
		if wait <= 0 {
			return fmt.Errorf("PostgreSQL at %s unreachable: %w", masked, oneLine{err})
		}
		left := wait - time.Since(start)
		if left <= 0 {
			return fmt.Errorf("PostgreSQL at %s unreachable after %s: %w", masked, wait, oneLine{err})
		}
		if !waiting {
			waiting = true
			log.Info(fmt.Sprintf("waiting for PostgreSQL at %s", masked), "for", wait, "err", oneLine{err})
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for PostgreSQL at %s: %w", masked, ctx.Err())
		case <-time.After(min(retry, left)):
		}
	}
}

// probePostgres connects once; nil means the server answered. One attempt
// takes at most what is left of the wait, within 1 to 5 seconds.
func probePostgres(ctx context.Context, dsn string, left time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, min(max(left, time.Second), 5*time.Second))
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err == nil {
		_ = conn.Close(ctx)
		return nil
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "57P03", "53300": // starting up or shutting down; too many connections
			return err
		}
		return nil // the server answered: whatever it said is for the next step to report
	}
	return err
}

// oneLine is an error printed on one line (pgx puts each address it tried
// on a line of its own).
type oneLine struct{ err error }

func (e oneLine) Error() string {
	return strings.Join(strings.Fields(strings.ReplaceAll(e.err.Error(), "\n", "; ")), " ")
}

func (e oneLine) Unwrap() error { return e.err }

// roundDuration rounds d for a log line: to the second from 10s on, else to
// the tenth of a second.
func roundDuration(d time.Duration) time.Duration {
	if d >= 10*time.Second {
		return d.Round(time.Second)
	}
	return d.Round(100 * time.Millisecond)
}
