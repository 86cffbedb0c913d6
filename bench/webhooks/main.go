// Command webhooks benchmarks Plugboard's webhook pipeline end to end on
// this machine: it builds the whole platform in process (HTTP, asynq worker,
// scheduler) on a fresh PostgreSQL database and Redis DB 15, starts a
// loopback sink that plays N partner apps, sets the marketplace up through
// the real JSON API, publishes bench.ping events with a host service token
// and measures what the sink receives: deliveries per second,
// publish-to-delivery latency and CPU per 1,000 deliveries. Afterwards it
// checks in PostgreSQL that every delivery was logged as a signed attempt.
//
//	go run ./bench/webhooks -duration 60s                       # throughput
//	go run ./bench/webhooks -mode latency -apps 10 -duration 60s # p99 at 1,000/s
//
// See bench/README.md for what each figure means. The run's phases each have
// a file: platform.go (Redis, PostgreSQL, the sink and the platform),
// api.go (the marketplace, seeded through the API, and the warm-up),
// load.go (the publishers), window.go (the probes around the measurement
// window), logcheck.go (the delivery log afterwards) and report.go.
//
// It is a program: nothing imports it. It takes its Redis and PostgreSQL
// databases through app/testenv, as the tests do, so that they never share.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	_ "net/http/pprof" // -pprof
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

type options struct {
	duration    time.Duration
	apps        int
	rate        float64
	mode        string
	json        bool
	target      int
	publishers  int
	backlog     int
	workers     int
	dbConns     int
	verifyEvery int
	drain       time.Duration
	warmup      int
	cpuProfile  string
	pprofAddr   string
	sqlEvery    time.Duration
	logLevel    string
	postgres    string
	redisAddr   string
	redisDB     int
	keep        bool
	strict      bool
}

// Targets the platform is measured against.
const (
	targetThroughput = 5000.0 // deliveries/s sustained for 60 s
	targetP99        = 100.0  // ms, publish to delivery, at a steady 1,000 deliveries/s
)

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", 60*time.Second, "how long to publish")
	flag.IntVar(&o.apps, "apps", 50, "apps, each installed once: every event fans out to this many deliveries")
	flag.Float64Var(&o.rate, "rate", 0, "events per second; 0: as fast as the platform keeps up (throughput), or -target/apps (latency)")
	flag.StringVar(&o.mode, "mode", "throughput", "throughput or latency")
	flag.BoolVar(&o.json, "json", false, "print the report as JSON")
	flag.IntVar(&o.target, "target", 1000, "latency mode: deliveries per second to hold when -rate is 0")
	flag.IntVar(&o.publishers, "publishers", 0, "concurrent publishers (default 4 in throughput mode, 16 in latency mode)")
	flag.IntVar(&o.backlog, "backlog", 0, "throughput mode: most deliveries published but not yet received before publishers wait (default max(2000, 20*apps))")
	flag.IntVar(&o.workers, "workers", 32, "PLUGBOARD_WORKER_CONCURRENCY")
	flag.IntVar(&o.dbConns, "db-conns", 40, "PLUGBOARD_DATABASE_MAX_CONNS")
	flag.IntVar(&o.verifyEvery, "verify-every", 100, "the sink verifies the signature of one ping in this many (every lifecycle webhook is verified); 1 checks all")
	flag.DurationVar(&o.drain, "drain", 60*time.Second, "after publishing, how long to wait for the backlog to arrive")
	flag.IntVar(&o.warmup, "warmup", 5, "events published (and awaited) before measuring")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the measurement window to this file")
	flag.StringVar(&o.pprofAddr, "pprof", "", "serve net/http/pprof on this address, such as 127.0.0.1:6060")
	flag.DurationVar(&o.sqlEvery, "sql-sample", 100*time.Millisecond, "how often to sample pg_stat_activity (0: never)")
	flag.StringVar(&o.logLevel, "log-level", "error", "PLUGBOARD_LOG_LEVEL of the platform")
	flag.StringVar(&o.postgres, "postgres", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "PostgreSQL server (its postgres database)")
	flag.StringVar(&o.redisAddr, "redis", "", "a Redis server to reserve a database of; by default the run starts a redis-server of its own")
	flag.IntVar(&o.redisDB, "redis-db", 15, "Redis database to use (flushed at start and end)")
	flag.BoolVar(&o.keep, "keep", false, "keep the database afterwards (for inspection)")
	flag.BoolVar(&o.strict, "strict", false, "exit with status 3 when a target is missed (the report is printed either way)")
	flag.Parse()
	if o.mode != "throughput" && o.mode != "latency" {
		fmt.Fprintln(os.Stderr, "bench: -mode must be throughput or latency")
		os.Exit(2)
	}
	if o.apps < 1 {
		fmt.Fprintln(os.Stderr, "bench: -apps must be at least 1")
		os.Exit(2)
	}
	if o.publishers == 0 {
		o.publishers = map[string]int{"throughput": 4, "latency": 16}[o.mode]
	}
	if o.backlog == 0 {
		o.backlog = max(2000, 20*o.apps)
	}
	if o.mode == "latency" && o.rate == 0 {
		o.rate = float64(o.target) / float64(o.apps)
	}
	if o.pprofAddr != "" {
		go func() { _ = http.ListenAndServe(o.pprofAddr, nil) }()
	}
	rep, err := run(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	if o.json {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
	} else {
		rep.print(os.Stdout)
	}
	if o.strict {
		for _, v := range rep.Verdict {
			if strings.HasPrefix(v, "FAIL") {
				os.Exit(3)
			}
		}
	}
}

// cleanups run last-in first-out when run returns, whatever happened.
type cleanups []func()

func (c *cleanups) add(f func()) { *c = append(*c, f) }
func (c cleanups) run() {
	for i := len(c) - 1; i >= 0; i-- {
		c[i]()
	}
}

// run is one benchmark: it starts the platform, seeds the marketplace,
// publishes for o.duration while measuring, drains, checks the delivery
// log and returns the report.
func run(o options) (*report, error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var done cleanups
	defer func() { done.run() }()
	logf := func(format string, args ...any) {
		if !o.json {
			fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
		}
	}
	rep := newReport(o)

	p, err := startPlatform(ctx, o, &done, logf)
	if err != nil {
		return nil, err
	}
	rep.Database = p.dbName

	hc := newHTTPClient(o.publishers + 4)
	setupStart := time.Now()
	w, err := setup(ctx, p.app, p.base, p.sink, o.apps, hc)
	if err != nil {
		return nil, fmt.Errorf("setup: %w", err)
	}
	logf("set up %d apps, installed and subscribed, in %s", o.apps, time.Since(setupStart).Round(time.Millisecond))
	pub := &publisher{client: &client{base: p.base, token: w.serviceToken, hc: hc}, org: w.customerOrg}
	if err := warmUp(ctx, pub, p.sink, o.warmup, o.apps); err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}

	win, err := openWindow(ctx, o, p, &done)
	if err != nil {
		return nil, err
	}
	logf("%s mode: %d apps, %d publishers, %s", o.mode, o.apps, o.publishers, rateText(o))
	t0 := win.start(ctx)
	l := startLoad(ctx, o, pub, p.sink, t0)
	s := startSampler(win, l, p.sink, logf)
	select {
	case <-time.After(time.Until(l.end)):
	case <-ctx.Done():
		s.close()
		return nil, ctx.Err()
	}
	m := win.close(ctx)
	s.close()
	m.queueAtEnd, m.queueAvg = win.queue(), s.average()
	m.backlogAtEnd = l.expected.Load() - p.sink.pings.Load()
	l.wait()

	logf("window closed; draining %d outstanding deliveries", l.expected.Load()-p.sink.pings.Load())
	rep.DrainSeconds = drain(ctx, l, p.sink, o.drain).Seconds()
	lat, seen, dups := p.sink.snapshot()
	rep.fill(o, m, l, lat, p.sink)

	// Every delivery the sink received must be a logged, signed attempt.
	li, err := logCheck(ctx, p.dbURL, seen)
	if err != nil {
		return nil, fmt.Errorf("checking the delivery log: %w", err)
	}
	li.Duplicates = dups
	rep.Log = li
	rep.judge()
	return rep, nil
}

// drain waits until the sink has every delivery published, for at most
// limit, or until 15 s pass without one arriving; it returns how long.
func drain(ctx context.Context, l *load, sk *sink, limit time.Duration) time.Duration {
	start := time.Now()
	for last, lastAt := sk.pings.Load(), time.Now(); sk.pings.Load() < l.expected.Load(); {
		if p := sk.pings.Load(); p != last {
			last, lastAt = p, time.Now()
		}
		if time.Since(start) > limit || time.Since(lastAt) > 15*time.Second || ctx.Err() != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

func rateText(o options) string {
	if o.rate > 0 {
		return fmt.Sprintf("%.1f events/s (%.0f deliveries/s)", o.rate, o.rate*float64(o.apps))
	}
	return fmt.Sprintf("as fast as it keeps up (backlog ≤ %d deliveries)", o.backlog)
}
