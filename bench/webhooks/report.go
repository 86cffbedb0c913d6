package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// The report: what a run measured, its verdict against the targets, and
// how it prints.

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

// newReport is the report's header: the run's settings and the machine.
func newReport(o options) *report {
	rep := &report{Mode: o.mode, Duration: o.duration.String(), Apps: o.apps, Workers: o.workers, DBConns: o.dbConns,
		Publishers: o.publishers, GOMAXPROCS: runtime.GOMAXPROCS(0), NumCPU: runtime.NumCPU(), LoadAvgBefore: loadavg(),
		EventsPerSecTarget: o.rate}
	if o.mode == "throughput" {
		rep.Backlog = o.backlog
	}
	return rep
}

// fill computes the figures from what the window measured, the load
// published and the sink received (lat: its publish-to-delivery latencies).
func (r *report) fill(o options, m *measurement, l *load, lat []int64, sk *sink) {
	window := m.window
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
		r.Windows = append(r.Windows, float64(n)/float64(e-s))
	}
	r.SQL, r.QueueAtEnd, r.QueueAvg = m.sql, m.queueAtEnd, m.queueAvg
	r.WindowSeconds = window.Seconds()
	r.EventsPublished = l.events.Load()
	r.EventsPerSec = float64(l.events.Load()) / window.Seconds()
	r.PublishErrors = l.pubErrors.Load()
	if e, ok := l.firstErr.Load().(string); ok {
		r.FirstPublishError = e
	}
	r.DeliveriesExpected = l.expected.Load()
	r.DeliveriesInWindow = inWindow
	r.DeliveriesPerSec = float64(inWindow) / window.Seconds()
	r.BacklogAtEnd = m.backlogAtEnd
	r.DeliveriesReceived = sk.pings.Load()
	r.MaxPublishLagMs = float64(l.maxLag.Load()) / 1e6
	r.Latency = percentiles(lat)
	r.PublishRequest = percentiles(l.publishLatencies())
	r.Signatures = sigInfo{VerifyEvery: o.verifyEvery, Verified: sk.verified.Load(), Failed: sk.badSig.Load(), BodiesWithoutSentAt: sk.badBody.Load()}

	perK := func(sec float64) float64 {
		if inWindow == 0 {
			return 0 // nothing delivered; JSON has no NaN
		}
		return sec / float64(inWindow) * 1000
	}
	c := cpuInfo{PlatformAndSink: m.platformCPU.Seconds(), PostgresBench: m.pgCPU[classPGOurs].Seconds(), PostgresShared: m.pgCPU[classPGShared].Seconds(),
		Redis: m.pgCPU[classRedis].Seconds(), PostgresOtherDBs: m.pgCPU[classPGOther].Seconds(), MachineBusy: m.machineBusy.Seconds()}
	c.Including = c.PlatformAndSink + c.PostgresBench + c.PostgresShared + c.Redis
	c.OtherProcesses = math.Max(0, c.MachineBusy-c.Including-c.PostgresOtherDBs)
	c.PlatformAndSinkPerK, c.IncludingPerK = perK(c.PlatformAndSink), perK(c.Including)
	c.MachineCapacity = window.Seconds() * float64(runtime.NumCPU())
	r.CPU = c
	r.PostgresCounters = perDeliveryDiff(m.stats0.pg, m.stats1.pg, inWindow, 0)
	r.RedisCommands = perDeliveryDiff(m.stats0.redis, m.stats1.redis, inWindow, 8)
	r.MostRead = readsDiff(m.reads0, m.reads1, 8)
}
