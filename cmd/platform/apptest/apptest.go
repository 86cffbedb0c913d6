// Package apptest starts the whole platform (HTTP, worker, scheduler) in
// process, on a free loopback port, against a fresh test database and Redis
// space, for end-to-end tests that talk HTTP to it like a user would.
//
// It imports platform and app/testenv; only test files import it.
package apptest

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/plugboard/plugboard/app/testenv"
	"github.com/plugboard/plugboard/cmd/platform"
	"github.com/plugboard/plugboard/config"
)

// Platform is a running platform.
type Platform struct {
	URL    string // http://127.0.0.1:port
	App    *platform.App
	Config config.Config
	cancel context.CancelFunc
	done   chan error
}

// Option changes the configuration before start.
type Option func(*config.Config)

// Config returns a test configuration on a fresh database and Redis space.
func Config(t testing.TB, opts ...Option) config.Config {
	t.Helper()
	env := map[string]string{
		"PLUGBOARD_ENV":           config.EnvTest,
		"PLUGBOARD_DATABASE_URL":  testenv.DB(t),
		"PLUGBOARD_REDIS_URL":     testenv.Redis(t),
		"PLUGBOARD_HTTP_ADDR":     "127.0.0.1:0",
		"PLUGBOARD_SECRET_KEY":    "test-secret-key-0123456789abcdef0123456789",
		"PLUGBOARD_PASSWORD_COST": "4",
		"PLUGBOARD_AUTO_MIGRATE":  "false",
		"PLUGBOARD_LOG_LEVEL":     "warn",
	}
	cfg, err := config.Load(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatalf("apptest: config: %v", err)
	}
	cfg.ShutdownTimeout = 5 * time.Second
	for _, o := range opts {
		o(&cfg)
	}
	return cfg
}

// Logger writes to the test log when -v is given, else discards.
func Logger(t testing.TB) *slog.Logger {
	if testing.Verbose() || os.Getenv("PLUGBOARD_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// Start runs the platform with every role until t ends.
func Start(t testing.TB, opts ...Option) *Platform {
	t.Helper()
	return StartRoles(t, platform.AllRoles, Config(t, opts...))
}

// StartRoles runs the given roles on cfg until t ends, and fails t if the
// platform does not shut down cleanly.
func StartRoles(t testing.TB, roles platform.Roles, cfg config.Config) *Platform {
	t.Helper()
	return StartLogged(t, roles, cfg, Logger(t))
}

// StartLogged is StartRoles with the platform's logs sent to log.
func StartLogged(t testing.TB, roles platform.Roles, cfg config.Config, log *slog.Logger) *Platform {
	t.Helper()
	return StartWith(t, roles, cfg, log)
}

// StartWith is StartLogged with platform options (a clock, timings).
func StartWith(t testing.TB, roles platform.Roles, cfg config.Config, log *slog.Logger, popts ...platform.Option) *Platform {
	t.Helper()
	// A fixed address (a restart on the same port) is kept; otherwise a
	// free loopback port is taken.
	addr := cfg.HTTPAddr
	if addr == "" || strings.HasSuffix(addr, ":0") {
		addr = "127.0.0.1:0"
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("apptest: listen: %v", err)
	}
	cfg.HTTPAddr = l.Addr().String()
	cfg.BaseURL = "http://" + l.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	a, err := platform.New(ctx, cfg, log, roles, popts...)
	if err != nil {
		cancel()
		l.Close()
		t.Fatalf("apptest: building platform: %v", err)
	}
	a.UseListener(l)
	p := &Platform{URL: cfg.BaseURL, App: a, Config: cfg, cancel: cancel, done: make(chan error, 1)}
	go func() { p.done <- a.Run(ctx) }()
	select {
	case <-a.Ready():
	case err := <-p.done:
		t.Fatalf("apptest: platform stopped at start: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatalf("apptest: platform not ready after 30s")
	}
	t.Cleanup(func() {
		if err := p.Stop(); err != nil && !strings.Contains(err.Error(), "already stopped") {
			t.Errorf("apptest: platform shutdown: %v", err)
		}
	})
	return p
}

// Stop shuts the platform down gracefully and returns Run's error.
func (p *Platform) Stop() error {
	p.cancel()
	select {
	case err, ok := <-p.done:
		if !ok {
			return nil
		}
		close(p.done)
		return err
	case <-time.After(60 * time.Second):
		return context.DeadlineExceeded
	}
}
