package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/plugboard/plugboard/webhooks"
)

// window holds the probes around the measurement window: CPU of this
// process, of PostgreSQL's and Redis's processes and of the machine,
// pg_stat_activity samples, PostgreSQL and Redis counters, rows read per
// index, the asynq queue, and the optional CPU profile.
type window struct {
	o         options
	sk        *sink
	dbName    string
	procs     *procCPU
	sqls      *sqlSampler   // nil without -sql-sample
	rdb       *redis.Client // the reserved database; INFO is server-wide
	inspector *asynq.Inspector
	statConn  *pgx.Conn    // to the server's postgres database
	benchConn *pgx.Conn    // to the bench database
	prof      bytes.Buffer // the window's CPU profile
	stmts0    map[int64]stmtStat

	t0          time.Time
	stats0      counters
	reads0      map[string][2]int64
	cpu0, busy0 time.Duration
}

// measurement is what the probes read over the window.
type measurement struct {
	window         time.Duration
	platformCPU    time.Duration // this process: the platform and the sink
	machineBusy    time.Duration
	pgCPU          map[string]time.Duration // by process class
	roles          map[string]time.Duration // this process's CPU by role, from the profile's samples
	stmts0, stmts1 map[int64]stmtStat
	stats0, stats1 counters
	reads0, reads1 map[string][2]int64
	sql            *sqlReport
	queueAtEnd     *queueInfo
	queueAvg       *queueAvg
	backlogAtEnd   int64
}

// openWindow connects the probes; done closes them when the run ends.
func openWindow(ctx context.Context, o options, p *rig, done *cleanups) (*window, error) {
	w := &window{o: o, sk: p.sink, dbName: p.dbName, rdb: p.rdb, inspector: asynq.NewInspectorFromRedisClient(p.rdb)}
	if o.sqlEvery > 0 {
		sqls, err := newSQLSampler(ctx, o.postgres, p.dbName)
		if err != nil {
			return nil, fmt.Errorf("sampling pg_stat_activity: %w", err)
		}
		w.sqls = sqls
	}
	var err error
	if w.statConn, err = pgx.Connect(ctx, o.postgres); err != nil {
		return nil, fmt.Errorf("connecting for statistics: %w", err)
	}
	done.add(func() { w.statConn.Close(context.Background()) })
	if w.benchConn, err = pgx.Connect(ctx, p.dbURL); err != nil {
		return nil, fmt.Errorf("connecting for statistics: %w", err)
	}
	done.add(func() { w.benchConn.Close(context.Background()) })
	var backend int
	_ = w.benchConn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&backend)
	w.procs = newProcCPU(p.dbName, parentPID(backend), p.redisPort)
	done.add(pprof.StopCPUProfile) // when the window never closes; else a no-op
	return w, nil
}

// start opens the window: the probes start and the counters are read. It
// returns the window's start, from which the sink counts its seconds.
func (w *window) start(ctx context.Context) time.Time {
	w.procs.start(time.Second)
	if w.sqls != nil {
		w.sqls.start(w.o.sqlEvery)
	}
	w.stats0 = readCounters(ctx, w.statConn, w.rdb, w.dbName)
	readTableCounters(ctx, w.benchConn, w.stats0.pg)
	w.reads0 = readReads(ctx, w.benchConn)
	w.stmts0 = readStatements(ctx, w.statConn, w.dbName)
	_ = pprof.StartCPUProfile(&w.prof)
	w.cpu0, w.busy0 = selfCPU(), machineBusy()
	w.t0 = time.Now()
	w.sk.t0.Store(w.t0.UnixNano())
	return w.t0
}

// close closes the window: the clocks are read before anything else, then
// the probes stop.
func (w *window) close(ctx context.Context) *measurement {
	tEnd := time.Now()
	cpu1, busy1 := selfCPU(), machineBusy()
	m := &measurement{window: tEnd.Sub(w.t0), platformCPU: cpu1 - w.cpu0, machineBusy: busy1 - w.busy0,
		stats0: w.stats0, reads0: w.reads0}
	m.stats1 = readCounters(ctx, w.statConn, w.rdb, w.dbName)
	readTableCounters(ctx, w.benchConn, m.stats1.pg)
	pprof.StopCPUProfile()
	m.reads1 = readReads(ctx, w.benchConn)
	m.stmts0, m.stmts1 = w.stmts0, readStatements(ctx, w.statConn, w.dbName)
	m.roles = cpuByRole(w.prof.Bytes())
	if w.o.cpuProfile != "" {
		if err := os.WriteFile(w.o.cpuProfile, w.prof.Bytes(), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "bench: -cpuprofile:", err)
		}
	}
	m.pgCPU = w.procs.finish()
	if w.sqls != nil {
		r := w.sqls.finish()
		m.sql = &r
	}
	return m
}

// queue is the asynq webhooks queue now; nil when Redis does not say.
func (w *window) queue() *queueInfo {
	qi, err := w.inspector.GetQueueInfo(webhooks.QueueWebhooks)
	if err != nil {
		return nil
	}
	return &queueInfo{Pending: qi.Pending, Active: qi.Active, Scheduled: qi.Scheduled, Retry: qi.Retry}
}
