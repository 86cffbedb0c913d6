package main

import (
	"context"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// stmtStat is one pg_stat_statements entry of the bench database.
type stmtStat struct {
	Query    string
	Calls    int64
	ExecMs   float64
	PlanMs   float64
	Rows     int64
	WALBytes int64
	Blocks   int64 // shared blocks hit or read
}

// readStatements reads pg_stat_statements for database db; nil when the
// server does not load it (shared_preload_libraries).
func readStatements(ctx context.Context, conn *pgx.Conn, db string) map[int64]stmtStat {
	_, _ = conn.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
	rows, err := conn.Query(ctx, `SELECT s.queryid, s.query, s.calls, s.total_exec_time, s.total_plan_time, s.rows, s.wal_bytes::bigint,
		s.shared_blks_hit + s.shared_blks_read
		FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = $1 AND s.queryid IS NOT NULL`, db)
	if err != nil {
		return nil
	}
	defer rows.Close()
	out := map[int64]stmtStat{}
	for rows.Next() {
		var id int64
		var s stmtStat
		if rows.Scan(&id, &s.Query, &s.Calls, &s.ExecMs, &s.PlanMs, &s.Rows, &s.WALBytes, &s.Blocks) == nil {
			out[id] = s
		}
	}
	if rows.Err() != nil {
		return nil
	}
	return out
}

// stmtShare is a statement's work over the window, per delivery.
type stmtShare struct {
	Query          string  `json:"query"`
	Calls          int64   `json:"calls"`
	CallsPerDeliv  float64 `json:"callsPerDelivery"`
	MeanUs         float64 `json:"meanExecUs"`
	PlanUs         float64 `json:"meanPlanUs"`
	RowsPerCall    float64 `json:"rowsPerCall"`
	ShareOfExec    float64 `json:"shareOfExecTime"`
	ExecUsPerDeliv float64 `json:"execUsPerDelivery"`
	WALBytesPerDel float64 `json:"walBytesPerDelivery"`
	BlocksPerCall  float64 `json:"blocksPerCall"`
}

// statementsDiff is the window's statements by execution time, largest
// first.
func statementsDiff(a, b map[int64]stmtStat, deliveries int64, n int) []stmtShare {
	if b == nil {
		return nil
	}
	var total float64
	var out []stmtShare
	for id, s := range b {
		p := a[id]
		calls := s.Calls - p.Calls
		if calls <= 0 {
			continue
		}
		exec := s.ExecMs - p.ExecMs
		total += exec
		d := float64(max(deliveries, 1))
		out = append(out, stmtShare{Query: normalize(s.Query), Calls: calls, CallsPerDeliv: float64(calls) / d,
			MeanUs: exec * 1000 / float64(calls), PlanUs: (s.PlanMs - p.PlanMs) * 1000 / float64(calls),
			RowsPerCall: float64(s.Rows-p.Rows) / float64(calls), ExecUsPerDeliv: exec * 1000 / d,
			WALBytesPerDel: float64(s.WALBytes-p.WALBytes) / d, BlocksPerCall: float64(s.Blocks-p.Blocks) / float64(calls)})
	}
	for i := range out {
		out[i].ShareOfExec = out[i].ExecUsPerDeliv / max(total*1000/float64(max(deliveries, 1)), 1e-9)
	}
	slices.SortFunc(out, func(x, y stmtShare) int {
		switch {
		case x.ExecUsPerDeliv > y.ExecUsPerDeliv:
			return -1
		case x.ExecUsPerDeliv < y.ExecUsPerDeliv:
			return 1
		}
		return strings.Compare(x.Query, y.Query)
	})
	if len(out) > n {
		out = out[:n]
	}
	return out
}

// serverSettings are the PostgreSQL settings the figures depend on.
func serverSettings(ctx context.Context, adminURL string) map[string]string {
	out := map[string]string{}
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return out
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, `SELECT name, current_setting(name) FROM pg_settings WHERE name IN
		('server_version', 'shared_preload_libraries', 'autovacuum', 'synchronous_commit', 'fsync', 'shared_buffers', 'jit',
		 'random_page_cost', 'max_connections', 'work_mem', 'wal_level')`)
	if err != nil {
		return out
	}
	defer rows.Close()
	for rows.Next() {
		var k, v string
		if rows.Scan(&k, &v) == nil {
			out[k] = v
		}
	}
	return out
}
