package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os/exec"
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

// cpuInfo is CPU time over the window, in seconds and in ms per unit
// (a delivery; in api mode a request). This process's time is split between
// the platform, the sink and the load by the CPU profile's labels.
type cpuInfo struct {
	Unit             string  `json:"unit"`
	Units            int64   `json:"units"`
	Process          float64 `json:"processSeconds"`
	Platform         float64 `json:"platformSeconds"`
	Sink             float64 `json:"sinkSeconds"`
	Load             float64 `json:"loadSeconds"`
	PostgresBench    float64 `json:"postgresBenchBackendsSeconds"`
	PostgresShared   float64 `json:"postgresSharedProcessesSeconds"`
	Redis            float64 `json:"redisSeconds"`
	Ours             float64 `json:"oursSeconds"` // this process, PostgreSQL's (bench and shared), Redis
	PostgresOtherDBs float64 `json:"postgresOtherDatabasesSeconds"`
	MachineBusy      float64 `json:"machineBusySeconds"`
	OtherProcesses   float64 `json:"otherProcessesSeconds"`
	MachineCapacity  float64 `json:"machineCapacitySeconds"`

	PlatformMs float64 `json:"platformMsPerUnit"`
	SinkMs     float64 `json:"sinkMsPerUnit"`
	LoadMs     float64 `json:"loadMsPerUnit"`
	PostgresMs float64 `json:"postgresMsPerUnit"`
	RedisMs    float64 `json:"redisMsPerUnit"`
	OursMs     float64 `json:"oursMsPerUnit"`
	BoxMs      float64 `json:"boxMsPerUnit"`
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
	Mode               string            `json:"mode"`
	Scenario           string            `json:"scenario"`
	Commit             string            `json:"commit"`
	Date               string            `json:"date"`
	Duration           string            `json:"duration"`
	Apps               int               `json:"apps"`
	Orgs               int               `json:"organizations"`
	Installations      int               `json:"installations"`
	FanoutMean         float64           `json:"deliveriesPerEvent"`
	Batch              int               `json:"eventsPerRequest"`
	Workers            int               `json:"workerConcurrency"`
	DBConns            int               `json:"databaseMaxConns"`
	Publishers         int               `json:"publishers"`
	Backlog            int               `json:"backlogLimit,omitempty"`
	EventsPerSecTarget float64           `json:"eventsPerSecondTarget"`
	GOMAXPROCS         int               `json:"gomaxprocs"`
	NumCPU             int               `json:"numCPU"`
	LoadAvgBefore      string            `json:"loadAvgBefore"`
	Database           string            `json:"database"`
	Settings           map[string]string `json:"postgresSettings"`
	Ceiling            *ceilingInfo      `json:"ceiling,omitempty"`
	WindowSeconds      float64           `json:"windowSeconds"`
	EventsPublished    int64             `json:"eventsPublished"`
	EventsPerSec       float64           `json:"eventsPerSecond"`
	PublishErrors      int64             `json:"publishErrors"`
	FirstPublishError  string            `json:"firstPublishError,omitempty"`
	MaxPublishLagMs    float64           `json:"maxPublishLagMs"`
	PublishRequest     dist              `json:"publishRequest"`
	DeliveriesExpected int64             `json:"deliveriesExpected"`
	DeliveriesInWindow int64             `json:"deliveriesInWindow"`
	DeliveriesPerSec   float64           `json:"deliveriesPerSecond"`
	Windows            []float64         `json:"deliveriesPerSecondPer10s"`
	BacklogAtEnd       int64             `json:"backlogAtEnd"`
	QueueAtEnd         *queueInfo        `json:"asynqQueueAtEnd,omitempty"`
	QueueAvg           *queueAvg         `json:"asynqQueueAverage,omitempty"`
	DrainSeconds       float64           `json:"drainSeconds"`
	DeliveriesReceived int64             `json:"deliveriesReceived"`
	Latency            dist              `json:"publishToDelivery"`
	Wide               []wideRound       `json:"wideRounds,omitempty"`
	Reads              *readInfo         `json:"reads,omitempty"`
	CPU                cpuInfo           `json:"cpu"`
	Signatures         sigInfo           `json:"signatures"`
	Log                logInfo           `json:"log"`
	SQL                *sqlReport        `json:"sql,omitempty"`
	Statements         []stmtShare       `json:"statements,omitempty"`
	PostgresCounters   []perDelivery     `json:"postgresCounters"`
	RedisCommands      []perDelivery     `json:"redisCommands"`
	MostRead           []indexRead       `json:"mostRead"`
	Verdict            []string          `json:"verdict"`
}

// scenario names the run as the targets do.
func scenario(o options) string {
	switch {
	case o.mode == "wide":
		return fmt.Sprintf("one event to %d installations", o.apps)
	case o.mode == "api":
		return "delivery log list and stats"
	case o.installsMin > 0 || o.orgs > 1:
		return fmt.Sprintf("the mix: %d organizations × %s of %d apps", o.orgs, installsText(o), o.apps)
	case o.apps == 1:
		return "one app, one delivery per event"
	}
	return fmt.Sprintf("%d apps, fan-out %d", o.apps, o.apps)
}

func installsText(o options) string {
	if o.installsMin == 0 {
		return "all"
	}
	if o.installsMin == o.installsMax {
		return fmt.Sprint(o.installsMin)
	}
	return fmt.Sprintf("%d–%d", o.installsMin, o.installsMax)
}

// throughputTarget is the figure for this kind of run; 0: none.
func (r *report) throughputTarget() float64 {
	switch {
	case r.Orgs > 1:
		return targetMix
	case r.Apps == 1 && r.Batch > 0:
		return targetSingleBatch
	case r.Apps == 1:
		return targetSingle
	case r.Apps == 20:
		return targetFanout
	}
	return 0
}

// ofCeiling is x as a fraction of the ceiling's rate, or "".
func (r *report) ofCeiling(perSec float64) string {
	if r.Ceiling == nil || r.Ceiling.PerSec == 0 {
		return ""
	}
	return fmt.Sprintf(" (%.1f%% of the ceiling's %.0f/s)", 100*perSec/r.Ceiling.PerSec, r.Ceiling.PerSec)
}

// cpuTimesCeiling is the CPU per delivery of every process the run
// involves (platform, PostgreSQL, Redis, sink, load) over the ceiling's per
// request (its client and sink, all in this process); 0 without a ceiling.
// Both leave out other people's processes.
func (r *report) cpuTimesCeiling() float64 {
	if r.Ceiling == nil || r.Ceiling.ProcessCPUPerReq == 0 {
		return 0
	}
	return r.CPU.OursMs / r.Ceiling.ProcessCPUPerReq
}

func (r *report) judge() {
	switch r.Mode {
	case "throughput":
		if t := r.throughputTarget(); t > 0 {
			r.Verdict = append(r.Verdict, fmt.Sprintf("%s %s: %.0f deliveries/s, target ≥ %.0f (window %.0f s)",
				pass(r.DeliveriesPerSec >= t), r.Scenario, r.DeliveriesPerSec, t, r.WindowSeconds))
		}
		if r.Orgs == 1 && r.Apps >= 20 && r.Ceiling != nil {
			x := r.cpuTimesCeiling()
			r.Verdict = append(r.Verdict, fmt.Sprintf("%s CPU per delivery %.3f ms (platform, PostgreSQL, Redis, sink, load) = %.1f× the ceiling's %.3f ms per request, target ≤ %.0f×",
				pass(x <= targetCPUCeiling), r.CPU.OursMs, x, r.Ceiling.ProcessCPUPerReq, targetCPUCeiling))
		}
	case "latency":
		want := r.EventsPerSecTarget * r.FanoutMean
		steady := r.DeliveriesPerSec >= 0.95*want
		r.Verdict = append(r.Verdict, fmt.Sprintf("%s p99 publish-to-delivery %.1f ms at %.0f deliveries/s (%s), target ≤ %.0f ms at a steady %.0f/s",
			pass(r.Latency.P99 <= targetP99 && steady), r.Latency.P99, r.DeliveriesPerSec, r.Scenario, targetP99, want))
	case "wide":
		worst := 0.0
		ok := len(r.Wide) > 0
		for _, w := range r.Wide {
			if w.Seconds < 0 {
				ok = false
			}
			worst = max(worst, w.Seconds)
		}
		r.Verdict = append(r.Verdict, fmt.Sprintf("%s one event to %d installations: all delivered in %.2f s at worst over %d rounds, target ≤ %.0f s",
			pass(ok && worst <= targetWide), r.Installations, worst, len(r.Wide), targetWide))
	case "api":
		ri := r.Reads
		ok := ri != nil && ri.All.P99 <= targetAPIP99 && ri.PerSec >= 0.95*ri.RateTarget && ri.Errors == 0
		if ri != nil {
			r.Verdict = append(r.Verdict, fmt.Sprintf("%s delivery log list + stats: p99 %.1f ms (list %.1f, stats %.1f) at %.0f requests/s with %d attempts stored, %d errors; target p99 ≤ %.0f ms at %.0f/s",
				pass(ok), ri.All.P99, ri.List.P99, ri.Stats.P99, ri.PerSec, ri.Attempts, ri.Errors, targetAPIP99, ri.RateTarget))
		}
		return // no deliveries to audit
	}
	logged := r.Log.ReceivedNotLogged == 0 && r.Log.AttemptsSigned == r.Log.Attempts && r.Signatures.Failed == 0 && r.Log.SinkReceivedDistinct > 0 &&
		r.Log.Duplicates == 0 && r.Log.SinkReceivedDistinct == r.DeliveriesExpected
	r.Verdict = append(r.Verdict, fmt.Sprintf("%s every delivery signed and logged: %d published, %d received, %d logged as 2xx attempts, %d missing, %d not logged, %d duplicates, %d attempts unsigned, %d bad signatures",
		pass(logged), r.DeliveriesExpected, r.Log.SinkReceivedDistinct, r.Log.AttemptsOK, max(0, r.DeliveriesExpected-r.Log.SinkReceivedDistinct),
		r.Log.ReceivedNotLogged, r.Log.Duplicates, r.Log.Attempts-r.Log.AttemptsSigned, r.Signatures.Failed))
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
	how := "one event per request"
	if r.Batch > 0 {
		how = fmt.Sprintf("%d events per request", r.Batch)
	}
	p("Plugboard webhook benchmark — %s, %s mode, %s, %s", r.Scenario, r.Mode, r.Duration, r.Date)
	p("  commit %s; %d apps, %d organizations, %d installations (%.2f deliveries per event); %s", r.Commit, r.Apps, r.Orgs, r.Installations, r.FanoutMean, how)
	p("  worker concurrency %d, database conns %d, publishers %d, GOMAXPROCS %d of %d CPUs, load average before %s",
		r.Workers, r.DBConns, r.Publishers, r.GOMAXPROCS, r.NumCPU, r.LoadAvgBefore)
	if len(r.Settings) > 0 {
		keys := make([]string, 0, len(r.Settings))
		for k := range r.Settings {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		var kv []string
		for _, k := range keys {
			kv = append(kv, k+"="+r.Settings[k])
		}
		p("  PostgreSQL: %s", strings.Join(kv, " "))
	}
	if c := r.Ceiling; c != nil {
		p("")
		p("Bare ceiling (%d goroutines, signed 1 KiB POSTs over loopback keep-alive, %.1f s): %.0f requests/s, round trip p50 %.2f ms p99 %.2f ms,",
			c.Goroutines, c.Seconds, c.PerSec, c.P50, c.P99)
		p("  %.3f CPU-ms per request in this process, %.3f whole box (other processes %.2f CPU-s)", c.ProcessCPUPerReq, c.BoxCPUPerReq, c.OtherCPUSeconds)
		var each []string
		for _, s := range c.Samples {
			each = append(each, fmt.Sprintf("%s the window %.0f/s at %.3f CPU-ms", s.When, s.PerSec, s.ProcessCPUPerReq))
		}
		if len(each) > 1 {
			p("  pooled over two samples: %s", strings.Join(each, ", "))
		}
	}
	p("")
	if r.Mode == "api" && r.Reads != nil {
		ri := r.Reads
		p("Reads            %8.0f /s over %.1f s (%d requests, %d errors; target %.0f/s, schedule lag max %.1f ms)%s", ri.PerSec, r.WindowSeconds, ri.Requests, ri.Errors, ri.RateTarget, ri.MaxLagMs, r.ofCeiling(ri.PerSec))
		if ri.FirstError != "" {
			p("  first error    %s", ri.FirstError)
		}
		p("  %d attempts stored; GET %s p50 %.2f ms p99 %.2f ms; GET %s p50 %.2f ms p99 %.2f ms; all p99 %.2f ms max %.1f ms",
			ri.Attempts, ri.ListPath, ri.List.P50, ri.List.P99, ri.StatsPath, ri.Stats.P50, ri.Stats.P99, ri.All.P99, ri.All.Max)
	} else {
		p("Deliveries      %8.0f /s over %.1f s (%d received in the window)%s", r.DeliveriesPerSec, r.WindowSeconds, r.DeliveriesInWindow, r.ofCeiling(r.DeliveriesPerSec))
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
		for i, wr := range r.Wide {
			p("  round %d: %d deliveries, publish request %.0f ms, all delivered %.2f s after it was sent", i, wr.Deliveries, wr.PublishMs, wr.Seconds)
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
	}
	p("")
	c := r.CPU
	p("CPU in the window, CPU-ms per %s (%d)", c.Unit, c.Units)
	p("  platform %.3f + PostgreSQL %.3f + Redis %.3f + sink %.3f + load %.3f = %.3f ms%s",
		c.PlatformMs, c.PostgresMs, c.RedisMs, c.SinkMs, c.LoadMs, c.OursMs, r.timesCeiling())
	p("  whole box (every process) %.3f ms; seconds: this process %.2f (platform %.2f, sink %.2f, load %.2f, split by the CPU profile's labels),",
		c.BoxMs, c.Process, c.Platform, c.Sink, c.Load)
	p("  postgres bench backends %.2f, shared %.2f, redis %.2f; machine busy %.2f of %.0f CPU-s; other databases' backends %.2f, other processes %.2f (noise)",
		c.PostgresBench, c.PostgresShared, c.Redis, c.MachineBusy, c.MachineCapacity, c.PostgresOtherDBs, c.OtherProcesses)
	if r.Mode != "api" {
		p("")
		l := r.Log
		p("Delivery log (PostgreSQL)")
		p("  deliveries %d: %d succeeded, %d pending, %d failed/paused", l.Deliveries, l.Succeeded, l.Pending, l.FailedOrPaused)
		p("  attempts %d (%d 2xx, %d signed) over %d deliveries", l.Attempts, l.AttemptsOK, l.AttemptsSigned, l.DeliveriesWithAttempt)
		p("  sink received %d distinct webhook-ids (+%d duplicates): %d not in the log, %d logged but not received",
			l.SinkReceivedDistinct, l.Duplicates, l.ReceivedNotLogged, l.LoggedNotReceived)
		p("  signatures verified by the sink: %d good, %d bad (1 ping in %d, and every lifecycle webhook)", r.Signatures.Verified, r.Signatures.Failed, r.Signatures.VerifyEvery)
	}
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
		p("PostgreSQL per %s: %s", c.Unit, strings.Join(parts, ", "))
	}
	if len(r.RedisCommands) > 0 {
		var parts []string
		total := 0.0
		for _, c := range r.RedisCommands {
			parts = append(parts, fmt.Sprintf("%s %.2f", c.Name, c.PerDeliv))
			total += c.PerDeliv
		}
		p("Redis commands per %s (top 8: %.1f): %s", c.Unit, total, strings.Join(parts, ", "))
	}
	if len(r.Statements) > 0 {
		p("pg_stat_statements over the window, by execution time (calls per %s, mean µs exec/plan, rows per call, µs per %s, share):", c.Unit, c.Unit)
		for _, st := range r.Statements {
			p("  %6.2f  %7.1f/%5.1f  %7.1f  %7.1f  %4.1f%%  %s", st.CallsPerDeliv, st.MeanUs, st.PlanUs, st.RowsPerCall, st.ExecUsPerDeliv, 100*st.ShareOfExec, st.Query)
		}
	} else {
		p("pg_stat_statements: not loaded on this server (shared_preload_libraries = %q); see the pg_stat_activity samples and the counters above", r.Settings["shared_preload_libraries"])
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

func (r *report) timesCeiling() string {
	if x := r.cpuTimesCeiling(); x > 0 {
		return fmt.Sprintf(", %.1f× the ceiling's %.3f", x, r.Ceiling.ProcessCPUPerReq)
	}
	return ""
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
	rep := &report{Mode: o.mode, Scenario: scenario(o), Commit: commit(), Date: time.Now().UTC().Format("2006-01-02 15:04 MST"),
		Duration: o.duration.String(), Apps: o.apps, Orgs: o.orgs, Batch: o.batch, Workers: o.workers, DBConns: o.dbConns,
		Publishers: o.publishers, GOMAXPROCS: runtime.GOMAXPROCS(0), NumCPU: runtime.NumCPU(), LoadAvgBefore: loadavg(),
		EventsPerSecTarget: o.rate}
	if o.mode == "throughput" {
		rep.Backlog = o.backlog
	}
	return rep
}

// commit is the tree measured: git describe of the working directory.
func commit() string {
	out, err := exec.Command("git", "describe", "--always", "--dirty", "--abbrev=10").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
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
	if o.mode == "wide" {
		inWindow = sk.pings.Load() // the window closes once the last round arrived
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
	r.fillCPU(m, "delivery", inWindow)
}

// fillReads is fill for the api mode: per request.
func (r *report) fillReads(o options, m *measurement, l *load, requests int64) {
	r.WindowSeconds = m.window.Seconds()
	r.SQL = m.sql
	r.fillCPU(m, "request", requests)
}

// fillCPU fills the CPU figures and the PostgreSQL and Redis counters per
// unit.
func (r *report) fillCPU(m *measurement, unit string, units int64) {
	perK := func(sec float64) float64 {
		if units == 0 {
			return 0 // nothing done; JSON has no NaN
		}
		return sec / float64(units) * 1000
	}
	c := cpuInfo{Unit: unit, Units: units, Process: m.platformCPU.Seconds(), PostgresBench: m.pgCPU[classPGOurs].Seconds(),
		PostgresShared: m.pgCPU[classPGShared].Seconds(), Redis: m.pgCPU[classRedis].Seconds(), PostgresOtherDBs: m.pgCPU[classPGOther].Seconds(),
		MachineBusy: m.machineBusy.Seconds()}
	// The profile's samples split this process's time (getrusage) by role.
	var sampled time.Duration
	for _, d := range m.roles {
		sampled += d
	}
	if sampled > 0 {
		share := func(role string) float64 { return c.Process * float64(m.roles[role]) / float64(sampled) }
		c.Platform, c.Sink, c.Load = share(rolePlatform), share(roleSinkName), share(roleLoadName)
	} else {
		c.Platform = c.Process
	}
	c.Ours = c.Process + c.PostgresBench + c.PostgresShared + c.Redis
	c.OtherProcesses = math.Max(0, c.MachineBusy-c.Ours-c.PostgresOtherDBs)
	c.MachineCapacity = m.window.Seconds() * float64(runtime.NumCPU())
	c.PlatformMs, c.SinkMs, c.LoadMs = perK(c.Platform), perK(c.Sink), perK(c.Load)
	c.PostgresMs, c.RedisMs, c.OursMs, c.BoxMs = perK(c.PostgresBench+c.PostgresShared), perK(c.Redis), perK(c.Ours), perK(c.MachineBusy)
	r.CPU = c
	r.PostgresCounters = perDeliveryDiff(m.stats0.pg, m.stats1.pg, units, 0)
	r.RedisCommands = perDeliveryDiff(m.stats0.redis, m.stats1.redis, units, 8)
	r.MostRead = readsDiff(m.reads0, m.reads1, 8)
	r.Statements = statementsDiff(m.stmts0, m.stmts1, units, 14)
}
