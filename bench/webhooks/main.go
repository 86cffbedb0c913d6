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
// See bench/README.md for what each figure means.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	_ "net/http/pprof" // -pprof
	"net/url"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/plugboard/plugboard/app"
	"github.com/plugboard/plugboard/config"
	"github.com/plugboard/plugboard/webhooks"
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
	flag.StringVar(&o.redisAddr, "redis", "127.0.0.1:6379", "Redis server")
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

func run(o options) (rep *report, err error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var done cleanups
	defer func() { done.run() }()
	logf := func(format string, args ...any) {
		if !o.json {
			fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
		}
	}
	rep = &report{Mode: o.mode, Duration: o.duration.String(), Apps: o.apps, Workers: o.workers, DBConns: o.dbConns,
		Publishers: o.publishers, GOMAXPROCS: runtime.GOMAXPROCS(0), NumCPU: runtime.NumCPU(), LoadAvgBefore: loadavg()}
	if o.mode == "throughput" {
		rep.Backlog = o.backlog
	}
	rep.EventsPerSecTarget = o.rate

	// =========================================================================
	// Redis DB 15, reserved the way app/testenv reserves its databases so
	// that tests running meanwhile do not get it.

	admin := redis.NewClient(&redis.Options{Addr: o.redisAddr})
	done.add(func() { admin.Close() })
	if err := admin.Ping(ctx).Err(); err != nil {
		return nil, fmt.Errorf("redis at %s: %w", o.redisAddr, err)
	}
	lockKey := "plugboard:testenv:db:" + strconv.Itoa(o.redisDB)
	owner := fmt.Sprintf("bench-%d-%d", os.Getpid(), time.Now().UnixNano())
	for deadline := time.Now().Add(3 * time.Minute); ; {
		ok, err := admin.SetNX(ctx, lockKey, owner, 30*time.Minute).Result()
		if err != nil {
			return nil, fmt.Errorf("reserving redis db %d: %w", o.redisDB, err)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("redis db %d stayed reserved by %s for 3 minutes", o.redisDB, admin.Get(ctx, lockKey).Val())
		}
		time.Sleep(200 * time.Millisecond)
	}
	rdb := redis.NewClient(&redis.Options{Addr: o.redisAddr, DB: o.redisDB})
	done.add(func() {
		rdb.FlushDB(context.Background())
		rdb.Close()
		if admin.Get(context.Background(), lockKey).Val() == owner {
			admin.Del(context.Background(), lockKey)
		}
	})
	if err := rdb.FlushDB(ctx).Err(); err != nil {
		return nil, fmt.Errorf("flushing redis db %d: %w", o.redisDB, err)
	}

	// =========================================================================
	// A fresh database: app.New creates and migrates it (AutoMigrate).

	var rnd [5]byte
	_, _ = rand.Read(rnd[:])
	dbName := "plugboard_bench_" + hex.EncodeToString(rnd[:])
	dbURL, err := withDB(o.postgres, dbName)
	if err != nil {
		return nil, err
	}
	rep.Database = dbName
	done.add(func() {
		if o.keep {
			logf("kept database %s", dbName)
			return
		}
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(cctx, o.postgres)
		if err != nil {
			logf("dropping %s: %v", dbName, err)
			return
		}
		defer c.Close(cctx)
		if _, err := c.Exec(cctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{dbName}.Sanitize()+" WITH (FORCE)"); err != nil {
			logf("dropping %s: %v", dbName, err)
		}
	})

	// =========================================================================
	// The sink and the platform.

	sk, err := newSink(int((o.duration+o.drain)/time.Second)+30, o.verifyEvery)
	if err != nil {
		return nil, err
	}
	done.add(sk.close)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	var key [32]byte
	_, _ = rand.Read(key[:])
	env := map[string]string{
		"PLUGBOARD_ENV":                config.EnvTest,
		"PLUGBOARD_DATABASE_URL":       dbURL,
		"PLUGBOARD_REDIS_URL":          fmt.Sprintf("redis://%s/%d", o.redisAddr, o.redisDB),
		"PLUGBOARD_HTTP_ADDR":          l.Addr().String(),
		"PLUGBOARD_BASE_URL":           "http://" + l.Addr().String(),
		"PLUGBOARD_SECRET_KEY":         hex.EncodeToString(key[:]),
		"PLUGBOARD_PASSWORD_COST":      "4",
		"PLUGBOARD_AUTO_MIGRATE":       "true",
		"PLUGBOARD_LOG_LEVEL":          o.logLevel,
		"PLUGBOARD_WORKER_CONCURRENCY": strconv.Itoa(o.workers),
		"PLUGBOARD_DATABASE_MAX_CONNS": strconv.Itoa(o.dbConns),
	}
	cfg, err := config.Load(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("config: %w", err)
	}
	cfg.ShutdownTimeout = 10 * time.Second
	lvl, _ := cfg.SlogLevel()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))

	appCtx, stopApp := context.WithCancel(context.Background())
	a, err := app.New(appCtx, cfg, log, app.AllRoles)
	if err != nil {
		stopApp()
		l.Close()
		return nil, fmt.Errorf("building the platform: %w", err)
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
		return nil, fmt.Errorf("platform stopped at start: %w", err)
	case <-time.After(30 * time.Second):
		return nil, errors.New("platform not ready after 30s")
	}
	base := cfg.BaseURL
	logf("platform on %s, database %s, redis db %d, sink on %s", base, dbName, o.redisDB, sk.URL)

	// =========================================================================
	// The marketplace, through the API.

	hc := newHTTPClient(o.publishers + 4)
	setupStart := time.Now()
	w, err := setup(ctx, a, base, sk, o.apps, hc)
	if err != nil {
		return nil, fmt.Errorf("setup: %w", err)
	}
	logf("set up %d apps, installed and subscribed, in %s", o.apps, time.Since(setupStart).Round(time.Millisecond))
	pub := &client{base: base, token: w.serviceToken, hc: hc}
	eventsPath := "/api/0/organizations/" + w.customerOrg + "/events/"

	// Warm-up: connections to the sink, the pools, the endpoint cache.
	for i := range o.warmup {
		body := fmt.Appendf(nil, `{"type":"bench.ping","data":{"seq":%d,"sentAt":%d}}`, -1-i, time.Now().UnixNano())
		var out struct{ Deliveries int }
		if err := pub.do(ctx, "POST", eventsPath, body, 201, &out); err != nil {
			return nil, fmt.Errorf("warm-up: %w", err)
		}
		if out.Deliveries != o.apps {
			return nil, fmt.Errorf("warm-up: an event fanned out to %d deliveries, want %d", out.Deliveries, o.apps)
		}
	}
	for deadline := time.Now().Add(30 * time.Second); sk.pings.Load() < int64(o.warmup*o.apps); {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("warm-up: the sink got %d of %d deliveries in 30s", sk.pings.Load(), o.warmup*o.apps)
		}
		time.Sleep(10 * time.Millisecond)
	}
	sk.reset()

	// =========================================================================
	// The measurement window.

	procs := newProcCPU(dbName)
	var sqls *sqlSampler
	if o.sqlEvery > 0 {
		if sqls, err = newSQLSampler(ctx, o.postgres, dbName); err != nil {
			return nil, fmt.Errorf("sampling pg_stat_activity: %w", err)
		}
	}
	inspector := asynq.NewInspectorFromRedisClient(rdb)
	statConn, err := pgx.Connect(ctx, o.postgres)
	if err != nil {
		return nil, fmt.Errorf("connecting for statistics: %w", err)
	}
	defer statConn.Close(context.Background())
	benchConn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return nil, fmt.Errorf("connecting for statistics: %w", err)
	}
	defer benchConn.Close(context.Background())
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, err
		}
	}
	logf("%s mode: %d apps, %d publishers, %s", o.mode, o.apps, o.publishers, rateText(o))
	procs.start(time.Second)
	if sqls != nil {
		sqls.start(o.sqlEvery)
	}
	stats0 := readCounters(ctx, statConn, admin, dbName)
	reads0 := readReads(ctx, benchConn)
	cpu0, busy0 := selfCPU(), machineBusy()
	t0 := time.Now()
	sk.t0.Store(t0.UnixNano())
	end := t0.Add(o.duration)

	var (
		seq, expected, events, pubErrors atomic.Int64
		maxLag                           atomic.Int64
		pubMu                            sync.Mutex
		pubLat                           []int64
		firstErr                         atomic.Value
		wg                               sync.WaitGroup
	)
	for range o.publishers {
		wg.Go(func() {
			for ctx.Err() == nil {
				n := seq.Add(1) - 1
				if o.rate > 0 {
					at := t0.Add(time.Duration(float64(n) * float64(time.Second) / o.rate))
					if !at.Before(end) {
						return
					}
					if d := time.Until(at); d > 0 {
						time.Sleep(d)
					} else if lag := -d; int64(lag) > maxLag.Load() {
						maxLag.Store(int64(lag))
					}
				}
				if o.mode == "throughput" {
					for expected.Load()-sk.pings.Load() > int64(o.backlog) && time.Now().Before(end) {
						time.Sleep(time.Millisecond)
					}
				}
				if !time.Now().Before(end) {
					return
				}
				expected.Add(int64(o.apps))
				start := time.Now()
				body := fmt.Appendf(nil, `{"type":"bench.ping","data":{"seq":%d,"sentAt":%d}}`, n, start.UnixNano())
				var out struct{ Deliveries int }
				err := pub.do(ctx, "POST", eventsPath, body, 201, &out)
				took := time.Since(start).Microseconds()
				pubMu.Lock()
				pubLat = append(pubLat, took)
				pubMu.Unlock()
				if err != nil {
					expected.Add(-int64(o.apps))
					pubErrors.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					time.Sleep(10 * time.Millisecond)
					continue
				}
				expected.Add(int64(out.Deliveries - o.apps))
				events.Add(1)
			}
		})
	}
	// The asynq webhooks queue every 2 s: are the workers busy?
	progressDone := make(chan struct{})
	var qMu sync.Mutex
	var qSamples []queueInfo
	go func() {
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-progressDone:
				return
			case <-t.C:
				if qi, err := inspector.GetQueueInfo(webhooks.QueueWebhooks); err == nil {
					qMu.Lock()
					qSamples = append(qSamples, queueInfo{Pending: qi.Pending, Active: qi.Active, Scheduled: qi.Scheduled, Retry: qi.Retry})
					qMu.Unlock()
				}
			}
		}
	}()
	// Progress every 10 s.
	go func() {
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		last := int64(0)
		for {
			select {
			case <-progressDone:
				return
			case now := <-t.C:
				p := sk.pings.Load()
				logf("%5.0fs  %7.0f deliveries/s  backlog %d", now.Sub(t0).Seconds(), float64(p-last)/10, expected.Load()-p)
				last = p
			}
		}
	}()
	select {
	case <-time.After(time.Until(end)):
	case <-ctx.Done():
		close(progressDone)
		return nil, ctx.Err()
	}
	// The window closes: read the clocks before anything else.
	tEnd := time.Now()
	cpu1, busy1 := selfCPU(), machineBusy()
	stats1 := readCounters(ctx, statConn, admin, dbName)
	reads1 := readReads(ctx, benchConn)
	close(progressDone)
	if o.cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	pgCPU := procs.finish()
	if sqls != nil {
		r := sqls.finish()
		rep.SQL = &r
	}
	if qi, err := inspector.GetQueueInfo(webhooks.QueueWebhooks); err == nil {
		rep.QueueAtEnd = &queueInfo{Pending: qi.Pending, Active: qi.Active, Scheduled: qi.Scheduled, Retry: qi.Retry}
	}
	backlogAtEnd := expected.Load() - sk.pings.Load()
	qMu.Lock()
	if n := len(qSamples); n > 0 {
		var pend, act float64
		for _, q := range qSamples {
			pend += float64(q.Pending)
			act += float64(q.Active)
		}
		rep.QueueAvg = &queueAvg{Samples: n, Pending: pend / float64(n), Active: act / float64(n)}
	}
	qMu.Unlock()
	wg.Wait()

	// =========================================================================
	// Drain, then read the log.

	logf("window closed; draining %d outstanding deliveries", expected.Load()-sk.pings.Load())
	drainStart := time.Now()
	for last, lastAt := sk.pings.Load(), time.Now(); sk.pings.Load() < expected.Load(); {
		if p := sk.pings.Load(); p != last {
			last, lastAt = p, time.Now()
		}
		if time.Since(drainStart) > o.drain || time.Since(lastAt) > 15*time.Second || ctx.Err() != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	rep.DrainSeconds = time.Since(drainStart).Seconds()

	window := tEnd.Sub(t0)
	secs := min(int(window.Round(time.Second)/time.Second), len(sk.perSecond))
	inWindow := int64(0)
	for i := range secs {
		inWindow += sk.perSecond[i].Load()
	}
	// Per 10 s; a last partial window counts when it is at least 5 s.
	for s := 0; s < secs; s += 10 {
		e := min(s+10, secs)
		if e-s < 5 && s > 0 {
			break
		}
		var n int64
		for i := s; i < e; i++ {
			n += sk.perSecond[i].Load()
		}
		rep.Windows = append(rep.Windows, float64(n)/float64(e-s))
	}
	rep.WindowSeconds = window.Seconds()
	rep.EventsPublished = events.Load()
	rep.EventsPerSec = float64(events.Load()) / window.Seconds()
	rep.PublishErrors = pubErrors.Load()
	if e, ok := firstErr.Load().(string); ok {
		rep.FirstPublishError = e
	}
	rep.DeliveriesExpected = expected.Load()
	rep.DeliveriesInWindow = inWindow
	rep.DeliveriesPerSec = float64(inWindow) / window.Seconds()
	rep.BacklogAtEnd = backlogAtEnd
	rep.DeliveriesReceived = sk.pings.Load()
	rep.MaxPublishLagMs = float64(maxLag.Load()) / 1e6
	lat, seen, dups := sk.snapshot()
	rep.Latency = percentiles(lat)
	pubMu.Lock()
	rep.PublishRequest = percentiles(pubLat)
	pubMu.Unlock()
	rep.Signatures = sigInfo{VerifyEvery: o.verifyEvery, Verified: sk.verified.Load(), Failed: sk.badSig.Load(), BodiesWithoutSentAt: sk.badBody.Load()}

	platformCPU := (cpu1 - cpu0).Seconds()
	perK := func(sec float64) float64 {
		if inWindow == 0 {
			return 0 // nothing delivered; JSON has no NaN
		}
		return sec / float64(inWindow) * 1000
	}
	c := cpuInfo{PlatformAndSink: platformCPU, PostgresBench: pgCPU[classPGOurs].Seconds(), PostgresShared: pgCPU[classPGShared].Seconds(),
		Redis: pgCPU[classRedis].Seconds(), PostgresOtherDBs: pgCPU[classPGOther].Seconds(), MachineBusy: (busy1 - busy0).Seconds()}
	c.Including = c.PlatformAndSink + c.PostgresBench + c.PostgresShared + c.Redis
	c.OtherProcesses = math.Max(0, c.MachineBusy-c.Including-c.PostgresOtherDBs)
	c.PlatformAndSinkPerK, c.IncludingPerK = perK(c.PlatformAndSink), perK(c.Including)
	c.MachineCapacity = window.Seconds() * float64(runtime.NumCPU())
	rep.CPU = c
	rep.PostgresCounters = perDeliveryDiff(stats0.pg, stats1.pg, inWindow, 0)
	rep.RedisCommands = perDeliveryDiff(stats0.redis, stats1.redis, inWindow, 8)
	rep.MostRead = readsDiff(reads0, reads1, 8)

	// Every delivery the sink received must be a logged, signed attempt.
	l2, err := logCheck(ctx, dbURL, seen)
	if err != nil {
		return nil, fmt.Errorf("checking the delivery log: %w", err)
	}
	l2.Duplicates = dups
	rep.Log = l2
	rep.judge()
	return rep, nil
}

func rateText(o options) string {
	if o.rate > 0 {
		return fmt.Sprintf("%.1f events/s (%.0f deliveries/s)", o.rate, o.rate*float64(o.apps))
	}
	return fmt.Sprintf("as fast as it keeps up (backlog ≤ %d deliveries)", o.backlog)
}

func withDB(raw, name string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("-postgres: want a postgres:// URL, got %q", raw)
	}
	u.Path = "/" + name
	return u.String(), nil
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// measured selects the events of the measurement window: warm-up events
// carry a negative seq.
const measured = "(e.data->>'seq')::bigint >= 0"

// logCheck waits until no delivery is pending, then compares the attempts
// table with what the sink received during the measurement (warm-up
// excluded).
func logCheck(ctx context.Context, dbURL string, seen map[string]int64) (logInfo, error) {
	var li logInfo
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return li, err
	}
	defer conn.Close(context.Background())
	for deadline := time.Now().Add(30 * time.Second); ; {
		var pending int64
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM deliveries WHERE status = 'pending'").Scan(&pending); err != nil {
			return li, err
		}
		if pending == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	err = conn.QueryRow(ctx, `SELECT count(*),
		count(*) FILTER (WHERE d.status = 'succeeded'), count(*) FILTER (WHERE d.status = 'pending'), count(*) FILTER (WHERE d.status NOT IN ('succeeded', 'pending'))
		FROM deliveries d JOIN events e ON e.id = d.event_id WHERE d.event_type = 'bench.ping' AND `+measured).Scan(&li.Deliveries, &li.Succeeded, &li.Pending, &li.FailedOrPaused)
	if err != nil {
		return li, err
	}
	err = conn.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE a.response_status BETWEEN 200 AND 299),
		count(*) FILTER (WHERE a.request_headers->>'webhook-signature' LIKE 'v1,%'), count(DISTINCT a.delivery_id)
		FROM attempts a JOIN deliveries d ON d.id = a.delivery_id JOIN events e ON e.id = d.event_id
		WHERE d.event_type = 'bench.ping' AND `+measured).Scan(&li.Attempts, &li.AttemptsOK, &li.AttemptsSigned, &li.DeliveriesWithAttempt)
	if err != nil {
		return li, err
	}
	rows, err := conn.Query(ctx, `SELECT d.uuid::text FROM attempts a JOIN deliveries d ON d.id = a.delivery_id JOIN events e ON e.id = d.event_id
		WHERE d.event_type = 'bench.ping' AND a.response_status BETWEEN 200 AND 299 AND `+measured)
	if err != nil {
		return li, err
	}
	logged := make(map[string]bool, len(seen))
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return li, err
		}
		logged[id] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return li, err
	}
	li.SinkReceivedDistinct = int64(len(seen))
	for id := range seen {
		if !logged[id] {
			li.ReceivedNotLogged++
		}
	}
	for id := range logged {
		if _, ok := seen[id]; !ok {
			li.LoggedNotReceived++
		}
	}
	return li, nil
}

// =============================================================================
// The report.

type dist struct {
	Count int64   `json:"count"`
	P50   float64 `json:"p50Ms"`
	P95   float64 `json:"p95Ms"`
	P99   float64 `json:"p99Ms"`
	Max   float64 `json:"maxMs"`
	Mean  float64 `json:"meanMs"`
}

func percentiles(us []int64) dist {
	if len(us) == 0 {
		return dist{}
	}
	slices.Sort(us)
	at := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(us)))) - 1
		return float64(us[max(0, min(i, len(us)-1))]) / 1000
	}
	var sum float64
	for _, v := range us {
		sum += float64(v)
	}
	return dist{Count: int64(len(us)), P50: at(0.5), P95: at(0.95), P99: at(0.99), Max: float64(us[len(us)-1]) / 1000, Mean: sum / float64(len(us)) / 1000}
}

type cpuInfo struct {
	PlatformAndSink     float64 `json:"platformAndSinkSeconds"`
	PostgresBench       float64 `json:"postgresBenchBackendsSeconds"`
	PostgresShared      float64 `json:"postgresSharedProcessesSeconds"`
	Redis               float64 `json:"redisSeconds"`
	Including           float64 `json:"includingPostgresRedisSeconds"`
	PlatformAndSinkPerK float64 `json:"platformAndSinkPer1000"`
	IncludingPerK       float64 `json:"includingPostgresRedisPer1000"`
	PostgresOtherDBs    float64 `json:"postgresOtherDatabasesSeconds"`
	MachineBusy         float64 `json:"machineBusySeconds"`
	OtherProcesses      float64 `json:"otherProcessesSeconds"`
	MachineCapacity     float64 `json:"machineCapacitySeconds"`
}

type sigInfo struct {
	VerifyEvery         int   `json:"verifyEvery"`
	Verified            int64 `json:"verified"`
	Failed              int64 `json:"failed"`
	BodiesWithoutSentAt int64 `json:"bodiesWithoutSentAt"`
}

type logInfo struct {
	Deliveries            int64 `json:"deliveries"`
	Succeeded             int64 `json:"succeeded"`
	Pending               int64 `json:"pending"`
	FailedOrPaused        int64 `json:"failedOrPaused"`
	Attempts              int64 `json:"attempts"`
	AttemptsOK            int64 `json:"attempts2xx"`
	AttemptsSigned        int64 `json:"attemptsSigned"`
	DeliveriesWithAttempt int64 `json:"deliveriesWithAttempt"`
	SinkReceivedDistinct  int64 `json:"sinkReceivedDistinct"`
	ReceivedNotLogged     int64 `json:"receivedNotLogged"`
	LoggedNotReceived     int64 `json:"loggedNotReceived"`
	Duplicates            int64 `json:"duplicates"`
}

type indexRead struct {
	Name       string  `json:"name"`
	Scans      int64   `json:"scans"`
	TuplesRead int64   `json:"tuplesRead"`
	PerScan    float64 `json:"rowsPerScan"`
}

type queueInfo struct {
	Pending   int `json:"pending"`
	Active    int `json:"active"`
	Scheduled int `json:"scheduled"`
	Retry     int `json:"retry"`
}

type queueAvg struct {
	Samples int     `json:"samples"`
	Pending float64 `json:"pending"`
	Active  float64 `json:"active"`
}

type report struct {
	Mode               string        `json:"mode"`
	Duration           string        `json:"duration"`
	Apps               int           `json:"apps"`
	Workers            int           `json:"workerConcurrency"`
	DBConns            int           `json:"databaseMaxConns"`
	Publishers         int           `json:"publishers"`
	Backlog            int           `json:"backlogLimit,omitempty"`
	EventsPerSecTarget float64       `json:"eventsPerSecondTarget"`
	GOMAXPROCS         int           `json:"gomaxprocs"`
	NumCPU             int           `json:"numCPU"`
	LoadAvgBefore      string        `json:"loadAvgBefore"`
	Database           string        `json:"database"`
	WindowSeconds      float64       `json:"windowSeconds"`
	EventsPublished    int64         `json:"eventsPublished"`
	EventsPerSec       float64       `json:"eventsPerSecond"`
	PublishErrors      int64         `json:"publishErrors"`
	FirstPublishError  string        `json:"firstPublishError,omitempty"`
	MaxPublishLagMs    float64       `json:"maxPublishLagMs"`
	PublishRequest     dist          `json:"publishRequest"`
	DeliveriesExpected int64         `json:"deliveriesExpected"`
	DeliveriesInWindow int64         `json:"deliveriesInWindow"`
	DeliveriesPerSec   float64       `json:"deliveriesPerSecond"`
	Windows            []float64     `json:"deliveriesPerSecondPer10s"`
	BacklogAtEnd       int64         `json:"backlogAtEnd"`
	QueueAtEnd         *queueInfo    `json:"asynqQueueAtEnd,omitempty"`
	QueueAvg           *queueAvg     `json:"asynqQueueAverage,omitempty"`
	DrainSeconds       float64       `json:"drainSeconds"`
	DeliveriesReceived int64         `json:"deliveriesReceived"`
	Latency            dist          `json:"publishToDelivery"`
	CPU                cpuInfo       `json:"cpu"`
	Signatures         sigInfo       `json:"signatures"`
	Log                logInfo       `json:"log"`
	SQL                *sqlReport    `json:"sql,omitempty"`
	PostgresCounters   []perDelivery `json:"postgresCounters"`
	RedisCommands      []perDelivery `json:"redisCommands"`
	MostRead           []indexRead   `json:"mostRead"`
	Verdict            []string      `json:"verdict"`
}

func (r *report) judge() {
	switch r.Mode {
	case "throughput":
		ok := r.DeliveriesPerSec >= targetThroughput
		r.Verdict = append(r.Verdict, fmt.Sprintf("%s throughput %.0f deliveries/s, target ≥ %.0f sustained for 60 s (this window %.0f s)",
			pass(ok), r.DeliveriesPerSec, targetThroughput, r.WindowSeconds))
	case "latency":
		steady := r.DeliveriesPerSec >= 0.95*r.EventsPerSecTarget*float64(r.Apps)
		ok := r.Latency.P99 <= targetP99 && steady
		r.Verdict = append(r.Verdict, fmt.Sprintf("%s p99 publish-to-delivery %.1f ms at %.0f deliveries/s, target ≤ %.0f ms at a steady 1,000/s",
			pass(ok), r.Latency.P99, r.DeliveriesPerSec, targetP99))
	}
	logged := r.Log.ReceivedNotLogged == 0 && r.Log.AttemptsSigned == r.Log.Attempts && r.Signatures.Failed == 0 && r.Log.SinkReceivedDistinct > 0
	r.Verdict = append(r.Verdict, fmt.Sprintf("%s every delivery signed and logged: %d received, %d logged as 2xx attempts, %d not logged, %d attempts unsigned, %d bad signatures",
		pass(logged), r.Log.SinkReceivedDistinct, r.Log.AttemptsOK, r.Log.ReceivedNotLogged, r.Log.Attempts-r.Log.AttemptsSigned, r.Signatures.Failed))
}

func pass(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}

func (r *report) print(w io.Writer) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	p("")
	p("Plugboard webhook benchmark — %s mode, %s, %d apps (each event fans out to %d deliveries)", r.Mode, r.Duration, r.Apps, r.Apps)
	p("  worker concurrency %d, database conns %d, publishers %d, GOMAXPROCS %d of %d CPUs, load average before %s",
		r.Workers, r.DBConns, r.Publishers, r.GOMAXPROCS, r.NumCPU, r.LoadAvgBefore)
	p("")
	p("Deliveries      %8.0f /s over %.1f s (%d received in the window)", r.DeliveriesPerSec, r.WindowSeconds, r.DeliveriesInWindow)
	var ws []string
	for _, v := range r.Windows {
		ws = append(ws, fmt.Sprintf("%.0f", v))
	}
	p("  per 10 s      %s", strings.Join(ws, "  "))
	p("Events          %8.1f /s published (%d, %d errors), publish request p50 %.1f ms p99 %.1f ms", r.EventsPerSec, r.EventsPublished, r.PublishErrors, r.PublishRequest.P50, r.PublishRequest.P99)
	if r.FirstPublishError != "" {
		p("  first error   %s", r.FirstPublishError)
	}
	if r.Mode == "latency" {
		p("  publisher lag max %.1f ms behind schedule", r.MaxPublishLagMs)
	}
	q := ""
	if r.QueueAtEnd != nil {
		q = fmt.Sprintf(" (asynq webhooks queue: %d pending, %d active, %d scheduled, %d retry)", r.QueueAtEnd.Pending, r.QueueAtEnd.Active, r.QueueAtEnd.Scheduled, r.QueueAtEnd.Retry)
	}
	p("Backlog at end  %8d deliveries published but not received%s; drained in %.1f s", r.BacklogAtEnd, q, r.DrainSeconds)
	if r.QueueAvg != nil {
		p("  asynq webhooks queue, average of %d samples: %.0f tasks pending, %.1f of %d workers active", r.QueueAvg.Samples, r.QueueAvg.Pending, r.QueueAvg.Active, r.Workers)
	}
	p("")
	p("Publish → delivery latency (sink receipt − data.sentAt, %d deliveries)", r.Latency.Count)
	p("  p50 %.1f ms   p95 %.1f ms   p99 %.1f ms   max %.1f ms   mean %.1f ms", r.Latency.P50, r.Latency.P95, r.Latency.P99, r.Latency.Max, r.Latency.Mean)
	p("")
	c := r.CPU
	p("CPU seconds in the window                       total   per 1,000 deliveries")
	p("  plugboard + sink (this process)           %9.2f   %8.3f", c.PlatformAndSink, c.PlatformAndSinkPerK)
	p("  + postgres (bench backends %.2f, shared %.2f) + redis %.2f", c.PostgresBench, c.PostgresShared, c.Redis)
	p("  including postgres + redis                %9.2f   %8.3f", c.Including, c.IncludingPerK)
	p("  machine busy %.2f of %.0f CPU-s; other databases' backends %.2f, other processes %.2f (noise)",
		c.MachineBusy, c.MachineCapacity, c.PostgresOtherDBs, c.OtherProcesses)
	p("")
	l := r.Log
	p("Delivery log (PostgreSQL)")
	p("  deliveries %d: %d succeeded, %d pending, %d failed/paused", l.Deliveries, l.Succeeded, l.Pending, l.FailedOrPaused)
	p("  attempts %d (%d 2xx, %d signed) over %d deliveries", l.Attempts, l.AttemptsOK, l.AttemptsSigned, l.DeliveriesWithAttempt)
	p("  sink received %d distinct webhook-ids (+%d duplicates): %d not in the log, %d logged but not received",
		l.SinkReceivedDistinct, l.Duplicates, l.ReceivedNotLogged, l.LoggedNotReceived)
	p("  signatures verified by the sink: %d good, %d bad (1 ping in %d, and every lifecycle webhook)", r.Signatures.Verified, r.Signatures.Failed, r.Signatures.VerifyEvery)
	if len(r.PostgresCounters) > 0 {
		var parts []string
		for _, c := range r.PostgresCounters {
			if strings.HasPrefix(c.Name, "WAL bytes") {
				parts = append(parts, fmt.Sprintf("%s %.0f", c.Name, c.PerDeliv))
				continue
			}
			parts = append(parts, fmt.Sprintf("%s %.2f", c.Name, c.PerDeliv))
		}
		p("")
		p("PostgreSQL per delivery: %s", strings.Join(parts, ", "))
	}
	if len(r.RedisCommands) > 0 {
		var parts []string
		total := 0.0
		for _, c := range r.RedisCommands {
			parts = append(parts, fmt.Sprintf("%s %.2f", c.Name, c.PerDeliv))
			total += c.PerDeliv
		}
		p("Redis commands per delivery (server-wide, top 8: %.1f): %s", total, strings.Join(parts, ", "))
	}
	if len(r.MostRead) > 0 {
		p("Rows read in the window, by index or table (pg_stat_user_indexes/tables):")
		for _, x := range r.MostRead {
			p("  %-58s %8d scans %10d rows  %8.1f rows/scan", x.Name, x.Scans, x.TuplesRead, x.PerScan)
		}
	}
	if r.SQL != nil && r.SQL.Ticks > 0 {
		p("")
		p("PostgreSQL, sampled from pg_stat_activity %d times: %.1f connections busy on average", r.SQL.Ticks, r.SQL.AvgBusy)
		for _, s := range r.SQL.Top {
			p("  %5.1f%%  %4.1f  %s", 100*s.Share, s.AvgConc, s.Query)
		}
		var we []string
		for _, s := range r.SQL.WaitEvents {
			we = append(we, fmt.Sprintf("%s %.0f%%", s.Query, 100*s.Share))
		}
		p("  waiting on: %s", strings.Join(we, ", "))
	}
	p("")
	for _, v := range r.Verdict {
		p("%s", v)
	}
}

// readReads returns scans and rows read per index and per table (seq scans)
// of the bench database.
func readReads(ctx context.Context, conn *pgx.Conn) map[string][2]int64 {
	out := map[string][2]int64{}
	rows, err := conn.Query(ctx, `SELECT relname || '.' || indexrelname, idx_scan, idx_tup_read FROM pg_stat_user_indexes
		UNION ALL SELECT relname || ' (seq scan)', seq_scan, seq_tup_read FROM pg_stat_user_tables`)
	if err != nil {
		return out
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var scans, tuples int64
		if rows.Scan(&name, &scans, &tuples) == nil {
			out[name] = [2]int64{scans, tuples}
		}
	}
	return out
}

func readsDiff(a, b map[string][2]int64, n int) []indexRead {
	var out []indexRead
	for k, v := range b {
		r := indexRead{Name: k, Scans: v[0] - a[k][0], TuplesRead: v[1] - a[k][1]}
		if r.TuplesRead <= 0 {
			continue
		}
		r.PerScan = float64(r.TuplesRead) / float64(max(r.Scans, 1))
		out = append(out, r)
	}
	slices.SortFunc(out, func(x, y indexRead) int { return int(y.TuplesRead - x.TuplesRead) })
	if len(out) > n {
		out = out[:n]
	}
	return out
}
