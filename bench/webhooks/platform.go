package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/plugboard/plugboard/app/testenv"
	"github.com/plugboard/plugboard/cmd/platform"
	"github.com/plugboard/plugboard/config"
)

// rig is what a run measures and where: a reserved Redis database, a
// fresh PostgreSQL database, the sink that plays the partners, and the whole
// platform in process on a loopback port.
type rig struct {
	app       *platform.App
	base      string // the platform's URL
	dbURL     string
	dbName    string
	rdb       *redis.Client // the reserved Redis database
	redisPort string        // ":port" of its server
	sink      *sink
	seeded    *seeded // api mode: the kept, seeded database (nil: a fresh one)
}

// startPlatform sets everything up; done undoes it when the run ends.
func startPlatform(ctx context.Context, o options, done *cleanups, logf func(string, ...any)) (*rig, error) {
	p := &rig{}

	// Redis DB -redis-db, reserved the way app/testenv reserves its
	// databases, so that tests running meanwhile do not get it.
	redisURL, release, err := testenv.ReserveRedis(ctx, testenv.RedisOptions{Addr: o.redisAddr, DBs: []int{o.redisDB}, Owner: "bench", Wait: 3 * time.Minute})
	if err != nil {
		return nil, fmt.Errorf("reserving redis db %d: %w", o.redisDB, err)
	}
	done.add(release)
	ropts, err := redis.ParseURL(redisURL)
	if err != nil {
		return nil, fmt.Errorf("redis URL %s: %w", redisURL, err)
	}
	p.rdb = redis.NewClient(ropts)
	if _, port, err := net.SplitHostPort(ropts.Addr); err == nil {
		p.redisPort = ":" + port
	}
	done.add(func() { p.rdb.Close() })

	// A fresh database, migrated: app/testenv clones its template.
	p.dbURL, err = p.createDB(ctx, o, done, logf)
	if err != nil {
		return nil, err
	}

	p.sink, err = newSink(int((o.duration+o.drain)/time.Second)+30, o.verifyEvery)
	if err != nil {
		return nil, err
	}
	done.add(p.sink.close)

	if err := p.startApp(o, redisURL, done, logf); err != nil {
		return nil, err
	}
	logf("platform on %s, database %s, redis db %d, sink on %s", p.base, p.dbName, o.redisDB, p.sink.URL)
	return p, nil
}

// createDB makes the bench's database on -postgres, dropped at the end
// unless -keep.
func (p *rig) createDB(ctx context.Context, o options, done *cleanups, logf func(string, ...any)) (string, error) {
	if u, err := url.Parse(o.postgres); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("-postgres: want a postgres:// URL, got %q", o.postgres)
	}
	if o.mode == "api" && !o.fresh {
		tmpl, err := testenv.Template(ctx, o.postgres)
		if err != nil {
			return "", err
		}
		s, dbURL, err := openSeeded(ctx, o, tmpl, logf)
		if err != nil {
			return "", fmt.Errorf("the seeded database: %w", err)
		}
		p.seeded, p.dbName = s, s.name
		done.add(s.release)
		return dbURL, nil
	}
	dbURL, drop, err := testenv.CreateDB(ctx, testenv.DBOptions{Server: o.postgres, Prefix: "plugboard_bench_"})
	if err != nil {
		return "", fmt.Errorf("creating the bench database: %w", err)
	}
	u, _ := url.Parse(dbURL)
	p.dbName = strings.TrimPrefix(u.Path, "/")
	done.add(func() {
		if o.keep {
			logf("kept database %s", p.dbName)
			return
		}
		if err := drop(); err != nil {
			logf("dropping %s: %v", p.dbName, err)
		}
	})
	return dbURL, nil
}

// startApp builds the platform (HTTP API, asynq worker and scheduler) on
// a loopback port and waits until it is ready.
func (p *rig) startApp(o options, redisURL string, done *cleanups, logf func(string, ...any)) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listening for the platform: %w", err)
	}
	var key [32]byte
	_, _ = rand.Read(key[:])
	if p.seeded != nil {
		// The kept database's secrets are sealed with a key its next run
		// must know: one derived from its name (a bench's, not a secret).
		key = sha256.Sum256([]byte("plugboard bench " + p.seeded.name))
	}
	env := map[string]string{
		"PLUGBOARD_ENV":                config.EnvTest,
		"PLUGBOARD_DATABASE_URL":       p.dbURL,
		"PLUGBOARD_REDIS_URL":          redisURL,
		"PLUGBOARD_HTTP_ADDR":          l.Addr().String(),
		"PLUGBOARD_BASE_URL":           "http://" + l.Addr().String(),
		"PLUGBOARD_SECRET_KEY":         hex.EncodeToString(key[:]),
		"PLUGBOARD_PASSWORD_COST":      "4",
		"PLUGBOARD_AUTO_MIGRATE":       "true",
		"PLUGBOARD_LOG_LEVEL":          o.logLevel,
		"PLUGBOARD_WORKER_CONCURRENCY": strconv.Itoa(o.workers),
		"PLUGBOARD_DATABASE_MAX_CONNS": strconv.Itoa(o.dbConns),
		// The budgets are still charged on every request (a Redis call),
		// just never spent: the bench publishes and reads faster than a
		// production budget allows one caller.
		"PLUGBOARD_API_RATE_LIMIT_SERVICE": "100000000",
		"PLUGBOARD_API_RATE_LIMIT_USER":    "100000000",
	}
	cfg, err := config.Load(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		l.Close()
		return fmt.Errorf("config: %w", err)
	}
	cfg.ShutdownTimeout = 10 * time.Second
	lvl, _ := cfg.SlogLevel()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))

	appCtx, stopApp := context.WithCancel(context.Background())
	a, err := platform.New(appCtx, cfg, log, platform.AllRoles)
	if err != nil {
		stopApp()
		l.Close()
		return fmt.Errorf("building the platform: %w", err)
	}
	a.UseListener(l)
	runErr := make(chan error, 1)
	go func() { runErr <- a.Run(appCtx) }()
	done.add(func() {
		stopApp()
		select {
		case err := <-runErr:
			if err != nil {
				logf("platform shutdown: %v", err)
			}
		case <-time.After(30 * time.Second):
			logf("platform did not stop within 30s")
		}
	})
	select {
	case <-a.Ready():
	case err := <-runErr:
		runErr <- err
		return fmt.Errorf("platform stopped at start: %w", err)
	case <-time.After(30 * time.Second):
		return errors.New("platform not ready after 30s")
	}
	p.app, p.base = a, cfg.BaseURL
	return nil
}
