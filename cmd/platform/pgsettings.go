package platform

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/plugboard/plugboard/config"
)

// pgExpectation is a PostgreSQL server setting Plugboard is built for (see
// README, "PostgreSQL settings"): want says what it expects, why what goes
// wrong otherwise. Only a warning: the platform runs either way.
type pgExpectation struct {
	name string
	ok   func(value string, cfg config.Config) bool
	want string
	why  string
	info bool // a recommendation: logged at info level
}

var pgExpected = []pgExpectation{
	{name: "fsync", ok: is("on"), want: "on",
		why: "with fsync off a crash of the server can lose committed deliveries and attempts, or corrupt the database"},
	{name: "synchronous_commit", ok: func(v string, _ config.Config) bool { return v != "off" }, want: "on",
		why: "with synchronous_commit off a crash can forget an attempt that was recorded: the delivery is sent again"},
	{name: "autovacuum", ok: is("on"), want: "on",
		why: "without it dead rows of deliveries, delivery_queue and attempts are never reclaimed and statistics go stale; the webhook pipeline pins its plans, other queries may not"},
	{name: "jit", ok: is("off"), want: "off",
		why: "Plugboard's queries are short: a plan whose estimated cost passes jit_above_cost (stale statistics, a pinned plan) is compiled on every execution, for milliseconds"},
	{name: "max_connections", ok: func(v string, cfg config.Config) bool {
		n, err := strconv.Atoi(v)
		return err != nil || n >= cfg.DatabaseMaxConns+10
	}, want: "at least PLUGBOARD_DATABASE_MAX_CONNS + 10 per platform process",
		why: "each process opens up to PLUGBOARD_DATABASE_MAX_CONNS connections; past the server's limit requests fail"},
	{name: "shared_preload_libraries", ok: func(v string, _ config.Config) bool { return strings.Contains(v, "pg_stat_statements") },
		want: "includes pg_stat_statements", info: true,
		why: "pg_stat_statements says what each statement costs: the webhook benchmark and any profiling read it"},
}

func is(want string) func(string, config.Config) bool {
	return func(v string, _ config.Config) bool { return v == want }
}

// checkPostgresSettings logs, once at start-up, each server setting that
// differs from what Plugboard expects (pgExpected). It never fails.
func checkPostgresSettings(ctx context.Context, db *sql.DB, cfg config.Config, log *slog.Logger) {
	values := map[string]string{}
	rows, err := db.QueryContext(ctx, "SELECT name, setting FROM pg_settings WHERE name = ANY($1)", "{"+settingNames()+"}")
	if err != nil {
		log.Warn("could not read PostgreSQL's settings to check them", "err", err)
		return
	}
	defer rows.Close()
	for rows.Next() {
		var k, v string
		if rows.Scan(&k, &v) == nil {
			values[k] = v
		}
	}
	for _, m := range postgresMismatches(values, cfg) {
		lvl := slog.LevelWarn
		if m.info {
			lvl = slog.LevelInfo
		}
		log.Log(ctx, lvl, fmt.Sprintf("PostgreSQL setting %s is %q; Plugboard expects %s", m.name, values[m.name], m.want), "setting", m.name, "why", m.why)
	}
}

func settingNames() string {
	names := make([]string, len(pgExpected))
	for i, e := range pgExpected {
		names[i] = e.name
	}
	return strings.Join(names, ",")
}

// postgresMismatches are the expectations values (setting → value) do not
// meet; a setting the server does not report is not judged.
func postgresMismatches(values map[string]string, cfg config.Config) []pgExpectation {
	var out []pgExpectation
	for _, e := range pgExpected {
		if v, ok := values[e.name]; ok && !e.ok(v, cfg) {
			out = append(out, e)
		}
	}
	return out
}
