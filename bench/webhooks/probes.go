package main

import (
	"context"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times (100 on every
// Linux Go runs on; reading it needs cgo).
const clockTicks = 100

// selfCPU is this process's user+system CPU: the platform and the sink.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// machineBusy is the CPU time every core spent not idle, from /proc/stat.
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var busy int64
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		if i >= 8 { // guest times are already in user
			break
		}
		busy += n
	}
	return time.Duration(busy) * time.Second / clockTicks
}

// Classes of the processes procCPU follows.
const (
	classPGOurs   = "postgres: bench database backends"
	classPGShared = "postgres: shared (postmaster, WAL writer, checkpointer, bgwriter)"
	classPGOther  = "postgres: other databases (other users' tests)"
	classRedis    = "redis-server (the run's)"
	classIgnore   = "" // another server's processes: "other processes"
)

// procCPU follows the CPU time of the postgres and redis-server processes,
// sampling /proc every interval so that backends that come and go are
// counted (a process that exits loses at most one interval).
type procCPU struct {
	db         string
	postmaster int    // the bench server's postmaster; 0: unknown, every postgres counts
	redisPort  string // ":port" on the run's redis-server command line; "": every redis-server
	mu         sync.Mutex
	pids       map[int]*procTrack
	stop       chan struct{}
	done       chan struct{}
}

type procTrack struct {
	class      string
	base, last int64 // clock ticks
}

func newProcCPU(db string, postmaster int, redisPort string) *procCPU {
	return &procCPU{db: db, postmaster: postmaster, redisPort: redisPort, pids: map[int]*procTrack{}}
}

// parentPID is a process's parent, from /proc/<pid>/stat; 0 when unknown.
func parentPID(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// start takes the baseline and samples until finish.
func (p *procCPU) start(every time.Duration) {
	p.scan(true)
	p.stop, p.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(p.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.scan(false)
			}
		}
	}()
}

// finish takes the last sample and returns CPU time per class.
func (p *procCPU) finish() map[string]time.Duration {
	close(p.stop)
	<-p.done
	p.scan(false)
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]time.Duration{}
	for _, t := range p.pids {
		if t.class != classIgnore {
			out[t.class] += time.Duration(t.last-t.base) * time.Second / clockTicks
		}
	}
	return out
}

func (p *procCPU) scan(baseline bool) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		t, known := p.pids[pid]
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(stat)
		open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || close < open {
			continue
		}
		comm := s[open+1 : close]
		if comm != "postgres" && comm != "redis-server" {
			continue
		}
		f := strings.Fields(s[close+1:])
		if len(f) < 13 {
			continue
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64) // field 14 utime
		st, _ := strconv.ParseInt(f[12], 10, 64) // field 15 stime
		ticks := ut + st
		if !known {
			t = &procTrack{class: p.classify(pid, comm, f[1])}
			if baseline {
				t.base = ticks
			}
			p.pids[pid] = t
		} else if t.class == classPGShared {
			// A backend read just after fork still shows the postmaster's
			// command line.
			t.class = p.classify(pid, comm, f[1])
		}
		t.last = ticks
	}
}

// classify names the class of a process; ppid is its parent's pid as
// /proc/<pid>/stat gives it.
func (p *procCPU) classify(pid int, comm, ppid string) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	cmd := strings.ReplaceAll(string(b), "\x00", " ")
	if comm == "redis-server" {
		if p.redisPort == "" || strings.Contains(cmd, p.redisPort) {
			return classRedis
		}
		return classIgnore
	}
	if p.postmaster != 0 && pid != p.postmaster && ppid != strconv.Itoa(p.postmaster) {
		return classIgnore
	}
	switch {
	case strings.Contains(cmd, p.db):
		return classPGOurs
	case strings.Contains(cmd, "plugboard_") || strings.Contains(cmd, "127.0.0.1(") || strings.Contains(cmd, "[local]"):
		return classPGOther
	}
	return classPGShared
}

// sqlSampler samples pg_stat_activity for the bench database: what the
// platform's connections are doing, the poor man's pg_stat_statements
// (which is not preloaded here).
type sqlSampler struct {
	conn    *pgx.Conn
	db      string
	mu      sync.Mutex
	ticks   int
	queries map[string]int
	waits   map[string]int
	states  map[string]int
	stop    chan struct{}
	done    chan struct{}
}

type sqlShare struct {
	Query   string  `json:"query"`
	Samples int     `json:"samples"`
	Share   float64 `json:"share"`       // of busy samples
	AvgConc float64 `json:"concurrency"` // average connections in it at once
}

type sqlReport struct {
	Ticks      int        `json:"ticks"`
	AvgBusy    float64    `json:"avgBusyConnections"`
	Top        []sqlShare `json:"top"`
	WaitEvents []sqlShare `json:"waitEvents"`
	States     []sqlShare `json:"states"`
}

func newSQLSampler(ctx context.Context, adminURL, db string) (*sqlSampler, error) {
	c, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return nil, err
	}
	return &sqlSampler{conn: c, db: db, queries: map[string]int{}, waits: map[string]int{}, states: map[string]int{}}, nil
}

func (s *sqlSampler) start(every time.Duration) {
	s.stop, s.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				s.sample()
			}
		}
	}()
}

var (
	placeholders = regexp.MustCompile(`\$\d+`)
	lists        = regexp.MustCompile(`\?(\s*,\s*\?)+`)
	spaces       = regexp.MustCompile(`\s+`)
)

func normalize(q string) string {
	q = spaces.ReplaceAllString(q, " ")
	q = placeholders.ReplaceAllString(q, "?")
	q = lists.ReplaceAllString(q, "?,…")
	q = strings.TrimSpace(q)
	if len(q) > 150 {
		q = q[:150] + "…"
	}
	return q
}

func (s *sqlSampler) sample() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	rows, err := s.conn.Query(ctx, `SELECT state, COALESCE(wait_event_type || ':' || wait_event, 'CPU'), query
		FROM pg_stat_activity WHERE datname = $1 AND backend_type = 'client backend' AND state <> 'idle'`, s.db)
	if err != nil {
		return
	}
	defer rows.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ticks++
	for rows.Next() {
		var state, wait, q string
		if rows.Scan(&state, &wait, &q) != nil {
			continue
		}
		s.states[state]++
		if state == "active" {
			s.queries[normalize(q)]++
			s.waits[wait]++
		} else {
			// idle in transaction: the platform holds a transaction open
			// while it works (or waits for a pool connection).
			s.queries["<"+state+"> after: "+normalize(q)]++
			s.waits["<"+state+">"]++
		}
	}
}

func (s *sqlSampler) finish() sqlReport {
	close(s.stop)
	<-s.done
	s.conn.Close(context.Background())
	s.mu.Lock()
	defer s.mu.Unlock()
	top := func(m map[string]int, n int) []sqlShare {
		total := 0
		for _, v := range m {
			total += v
		}
		var out []sqlShare
		for k, v := range m {
			out = append(out, sqlShare{Query: k, Samples: v, Share: float64(v) / float64(max(total, 1)), AvgConc: float64(v) / float64(max(s.ticks, 1))})
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Samples > out[j].Samples })
		if len(out) > n {
			out = out[:n]
		}
		return out
	}
	busy := 0
	for _, v := range s.states {
		busy += v
	}
	return sqlReport{Ticks: s.ticks, AvgBusy: float64(busy) / float64(max(s.ticks, 1)), Top: top(s.queries, 12), WaitEvents: top(s.waits, 8), States: top(s.states, 4)}
}

// counters are server statistics read at both ends of the window.
type counters struct {
	pg    map[string]int64
	redis map[string]int64
}

// readCounters reads the bench database's transaction and row counters,
// the server's WAL counters, and Redis's calls per command (server-wide:
// other users' tests add to it).
func readCounters(ctx context.Context, conn *pgx.Conn, rdb *redis.Client, db string) counters {
	c := counters{pg: map[string]int64{}, redis: map[string]int64{}}
	var commit, rollback, ins, upd, del, fetched int64
	if conn.QueryRow(ctx, `SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_deleted, tup_fetched
		FROM pg_stat_database WHERE datname = $1`, db).Scan(&commit, &rollback, &ins, &upd, &del, &fetched) == nil {
		c.pg["commits"], c.pg["rollbacks"], c.pg["rows inserted"], c.pg["rows updated"], c.pg["rows deleted"], c.pg["rows fetched"] = commit, rollback, ins, upd, del, fetched
	}
	var walRecords, walBytes, walSync int64
	if conn.QueryRow(ctx, `SELECT wal_records, wal_bytes::bigint, wal_sync FROM pg_stat_wal`).Scan(&walRecords, &walBytes, &walSync) == nil {
		c.pg["WAL records (server)"], c.pg["WAL bytes (server)"], c.pg["WAL fsyncs (server)"] = walRecords, walBytes, walSync
	}
	if info, err := rdb.Info(ctx, "commandstats").Result(); err == nil {
		for _, line := range strings.Split(info, "\n") {
			name, rest, ok := strings.Cut(strings.TrimSpace(line), ":calls=")
			if !ok {
				continue
			}
			calls, _, _ := strings.Cut(rest, ",")
			n, _ := strconv.ParseInt(calls, 10, 64)
			c.redis[strings.TrimPrefix(name, "cmdstat_")] = n
		}
	}
	return c
}

// readTableCounters adds the deliveries table's updates, and how many of
// them were HOT (no new index entries), to pg.
func readTableCounters(ctx context.Context, conn *pgx.Conn, pg map[string]int64) {
	var upd, hot int64
	if conn.QueryRow(ctx, `SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'deliveries'`).Scan(&upd, &hot) == nil {
		pg["deliveries updates"], pg["deliveries HOT updates"] = upd, hot
	}
}

type perDelivery struct {
	Name     string  `json:"name"`
	Total    int64   `json:"total"`
	PerDeliv float64 `json:"perDelivery"`
}

// perDeliveryDiff returns b−a per delivery, largest first.
func perDeliveryDiff(a, b map[string]int64, deliveries int64, limit int) []perDelivery {
	var out []perDelivery
	for k, v := range b {
		d := v - a[k]
		if d <= 0 {
			continue
		}
		out = append(out, perDelivery{Name: k, Total: d, PerDeliv: float64(d) / float64(max(deliveries, 1))})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Total > out[j].Total })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
