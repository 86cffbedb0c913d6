package platform

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisWatch is the one voice about whether Redis can be reached. While
// Redis is down, go-redis, asynq and our own webhooks code would each log
// every failed command (about 80 lines in 20 s); instead their connection
// errors are silenced (quietRedis, redisLibLogger) and this watcher pings
// Redis and says it once when Redis goes, at most once every remind while
// it stays away, and once when it is back. /readyz reports it too.
type redisWatch struct {
	ping   func(context.Context) error
	log    *slog.Logger
	addr   string        // the masked URL
	check  time.Duration // how often it pings
	remind time.Duration // how often it says again that Redis is still down
	poke   chan struct{} // a silenced error asks for a ping now

	// Read and written by the goroutine running run only.
	down  bool
	since time.Time // when it went down
	said  time.Time // when it last said so
}

func newRedisWatch(ping func(context.Context) error, log *slog.Logger, addr string, check, remind time.Duration) *redisWatch {
	return &redisWatch{ping: ping, log: log, addr: addr, check: check, remind: remind, poke: make(chan struct{}, 1)}
}

// run pings at once, then every check until ctx ends. A poke (a silenced
// connection error) pings at once while Redis is thought up, so that an
// outage is said when it starts rather than at the next tick.
func (w *redisWatch) run(ctx context.Context) {
	w.checkNow(ctx)
	t := time.NewTicker(w.check)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-w.poke:
			if w.down {
				continue // already said; the ticker keeps trying
			}
		}
		w.checkNow(ctx)
	}
}

// checkNow pings once and says what changed.
func (w *redisWatch) checkNow(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, min(max(w.check, time.Second), 3*time.Second))
	err := w.ping(pctx)
	cancel()
	if ctx.Err() != nil {
		return // shutting down: a ping cut short says nothing about Redis
	}
	now := time.Now()
	switch {
	case err != nil && !w.down:
		w.down, w.since, w.said = true, now, now
		w.log.Warn(fmt.Sprintf("Redis at %s unreachable; retrying every %s", w.addr, w.check), "err", err)
	case err != nil && now.Sub(w.said) >= w.remind:
		w.said = now
		w.log.Warn(fmt.Sprintf("Redis at %s still unreachable after %s; retrying every %s", w.addr, roundDuration(now.Sub(w.since)), w.check), "err", err)
	case err == nil && w.down:
		w.down = false
		w.log.Info(fmt.Sprintf("Redis at %s reachable again", w.addr), "after", roundDuration(now.Sub(w.since)))
	}
}

// silenced tells the watcher that a connection error was silenced.
func (w *redisWatch) silenced() {
	select {
	case w.poke <- struct{}{}:
	default:
	}
}

// connErrorMarks are what go-redis's and asynq's messages say when the
// trouble is reaching Redis at all, rather than a command it refused.
var connErrorMarks = []string{
	"dial tcp", "dial unix", "connection refused", "connection reset", "broken pipe",
	"i/o timeout", "no route to host", "network is unreachable", "no such host",
	"use of closed network connection", "connection pool", "client is closed", ": eof",
}

// isConnError says whether a message or error text is about reaching Redis.
func isConnError(s string) bool {
	s = strings.ToLower(s)
	if s == "eof" {
		return true
	}
	for _, m := range connErrorMarks {
		if strings.Contains(s, m) {
			return true
		}
	}
	return false
}

// quietRedis wraps a handler so that warnings and errors about reaching
// Redis (in the message or an error attribute) go to the watcher instead:
// they are logged at debug level only, and the watcher is poked. asynq's
// logs and the webhooks code's go through it.
type quietRedis struct {
	slog.Handler
	w *redisWatch
}

func (h quietRedis) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn || !recordIsConnError(r) {
		return h.Handler.Handle(ctx, r)
	}
	h.w.silenced()
	if !h.Handler.Enabled(ctx, slog.LevelDebug) {
		return nil
	}
	r.Level = slog.LevelDebug
	return h.Handler.Handle(ctx, r)
}

func (h quietRedis) WithAttrs(as []slog.Attr) slog.Handler {
	return quietRedis{h.Handler.WithAttrs(as), h.w}
}

func (h quietRedis) WithGroup(name string) slog.Handler {
	return quietRedis{h.Handler.WithGroup(name), h.w}
}

func recordIsConnError(r slog.Record) bool {
	found := isConnError(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		if err, ok := a.Value.Any().(error); ok && isConnError(err.Error()) {
			found = true
		}
		return !found
	})
	return found
}

// setRedisLoggerOnce guards go-redis's logger, which is one per process.
var setRedisLoggerOnce sync.Once

// quietRedisLibrary points go-redis's process-wide logger (redis.SetLogger)
// at log, less its connection errors, which would otherwise go to stderr
// once per failed dial ("redis: connection pool: failed to dial after 5
// attempts…"): the watcher says those. Process-wide state is the composition
// root's to set, and it is set once: the first platform built in a process
// gives the logger (a binary builds one; tests build many).
func quietRedisLibrary(log *slog.Logger) {
	setRedisLoggerOnce.Do(func() { redis.SetLogger(redisLibLogger{log.With("component", "go-redis")}) })
}

// redisLibLogger is go-redis's logger: connection errors at debug level,
// anything else it says as a warning.
type redisLibLogger struct{ l *slog.Logger }

func (l redisLibLogger) Printf(ctx context.Context, format string, v ...any) {
	msg := strings.TrimPrefix(fmt.Sprintf(format, v...), "redis: ")
	if isConnError(msg) {
		l.l.DebugContext(ctx, msg)
		return
	}
	l.l.WarnContext(ctx, msg)
}

// asynqLogger sends asynq's logs to slog (through quietRedis when built by
// New, so that its connection errors reach the watcher instead).
type asynqLogger struct{ l *slog.Logger }

func (l asynqLogger) Debug(args ...any) { l.l.Debug(fmt.Sprint(args...)) }
func (l asynqLogger) Info(args ...any)  { l.l.Info(fmt.Sprint(args...)) }
func (l asynqLogger) Warn(args ...any)  { l.l.Warn(fmt.Sprint(args...)) }
func (l asynqLogger) Error(args ...any) { l.l.Error(fmt.Sprint(args...)) }
func (l asynqLogger) Fatal(args ...any) { l.l.Error(fmt.Sprint(args...)) }
