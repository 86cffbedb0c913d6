package platform

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func infoLogger() (*slog.Logger, *bytes.Buffer) {
	var b bytes.Buffer
	return slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelInfo})), &b
}

func logLines(b *bytes.Buffer) []string {
	s := strings.TrimSpace(b.String())
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// The watcher says an outage when it starts, again only once remind has
// passed, and its end once.
func TestRedisWatchSaysTransitions(t *testing.T) {
	log, b := infoLogger()
	var pingErr error
	w := newRedisWatch(func(context.Context) error { return pingErr }, log, "redis://r:6379/0", time.Millisecond, 50*time.Millisecond)
	ctx := context.Background()
	// step pings once, getting err, and wants no line (want empty) or one
	// line holding every one of want.
	step := func(err error, want ...string) {
		t.Helper()
		before := len(logLines(b))
		pingErr = err
		w.checkNow(ctx)
		got := logLines(b)[before:]
		if len(got) != min(len(want), 1) {
			t.Fatalf("ping %v: lines %q, want %d", err, got, min(len(want), 1))
		}
		for _, s := range want {
			if !strings.Contains(got[0], s) {
				t.Errorf("ping %v: line %q, want %q in it", err, got[0], s)
			}
		}
	}
	down := errors.New("dial tcp r:6379: connect: connection refused")
	step(nil)
	step(down, "Redis at redis://r:6379/0 unreachable; retrying every 1ms", "connection refused")
	step(down)
	time.Sleep(60 * time.Millisecond)
	step(down, "Redis at redis://r:6379/0 still unreachable after")
	step(down)
	step(nil, "Redis at redis://r:6379/0 reachable again")
	step(nil)

	// A ping cut short by shutdown says nothing.
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	pingErr = context.Canceled
	w.checkNow(cancelled)
	if n := len(logLines(b)); n != 3 {
		t.Errorf("a ping cut short by shutdown was logged: %q", logLines(b))
	}
}

// quietRedis turns warnings about reaching Redis into a poke of the watcher
// and a debug line, and leaves every other record alone.
func TestQuietRedisSilencesOnlyConnectionErrors(t *testing.T) {
	log, b := infoLogger()
	w := newRedisWatch(nil, log, "redis://r:6379/0", time.Second, time.Minute)
	quiet := slog.New(quietRedis{log.Handler(), w}).With("component", "worker")
	poked := func() bool {
		select {
		case <-w.poke:
			return true
		default:
			return false
		}
	}

	for _, silenced := range []func(){
		func() {
			asynqLogger{quiet}.Error("Dequeue error: UNKNOWN: redis eval error: dial tcp 127.0.0.1:1: connect: connection refused")
		},
		func() {
			asynqLogger{quiet}.Warn("Failed to write server state data: UNKNOWN: redis command error: SADD failed: EOF")
		},
		func() {
			quiet.Warn("drain registry unavailable", "err", errors.New("read tcp 127.0.0.1:5->127.0.0.1:6: i/o timeout"))
		},
		func() { quiet.Warn("enqueueing a drain failed; the relay will send", "err", errors.New("EOF")) },
	} {
		silenced()
		if got := logLines(b); len(got) != 0 {
			t.Errorf("a connection error was logged: %q", got)
		}
		if !poked() {
			t.Error("a silenced connection error did not poke the watcher")
		}
		b.Reset()
	}

	for _, kept := range []func(){
		func() { asynqLogger{quiet}.Error("could not decode task payload: invalid character") },
		func() {
			quiet.Warn("limiters unavailable; delivering without them", "err", errors.New("ERR unknown command"))
		},
		func() { quiet.Info("dial tcp is mentioned, but only at info level") },
	} {
		kept()
		if got := logLines(b); len(got) != 1 {
			t.Errorf("a record that is not a Redis connection error was dropped")
		}
		if poked() {
			t.Error("a record that is not a Redis connection error poked the watcher")
		}
		b.Reset()
	}
}

// go-redis's own logger keeps what is not about connecting, as a warning.
func TestRedisLibLoggerDropsConnectionErrors(t *testing.T) {
	log, b := infoLogger()
	l := redisLibLogger{log}
	l.Printf(context.Background(), "redis: connection pool: failed to dial after %d attempts: %v", 5, errors.New("dial tcp 127.0.0.1:1: connect: connection refused"))
	if got := logLines(b); len(got) != 0 {
		t.Errorf("go-redis's dial failure was logged: %q", got)
	}
	l.Printf(context.Background(), "autopipeline: recovered full-duplex hook panic: %v", "boom")
	if got := logLines(b); len(got) != 1 || !strings.Contains(got[0], "level=WARN") || !strings.Contains(got[0], "autopipeline: recovered full-duplex hook panic: boom") {
		t.Errorf("go-redis's other message: %q", got)
	}
}
