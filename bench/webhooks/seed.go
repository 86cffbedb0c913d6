package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Bulk seeding in SQL, for what the API would take minutes to build and
// the run does not measure: the wide fan-out's apps and the API read
// load's stored attempts.

// columns lists table's columns, less skip.
func columns(ctx context.Context, conn *pgx.Conn, table string, skip ...string) ([]string, error) {
	rows, err := conn.Query(ctx, `SELECT column_name FROM information_schema.columns
		WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position`, table)
	if err != nil {
		return nil, err
	}
	cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	out := cols[:0]
	for _, c := range cols {
		if !contains(skip, c) {
			out = append(out, c)
		}
	}
	return out, nil
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// copySQL is INSERT INTO table SELECT … FROM table t …: every column of
// the template row t as it is, but those in set (SQL expressions).
func copySQL(table string, cols []string, set map[string]string, from string) string {
	exprs := make([]string, len(cols))
	for i, c := range cols {
		if e, ok := set[c]; ok {
			exprs[i] = e
		} else {
			exprs[i] = "t." + c
		}
	}
	return fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM %s", table, strings.Join(cols, ", "), strings.Join(exprs, ", "), from)
}

// cloneApps copies app 0 (created, limited, published and installed through
// the API) n times in SQL: apps 1…n, each with its webhook URL on the sink
// (/app/i), app 0's signing secret and limits, and an installation in the
// same customer organization. It returns n.
func cloneApps(ctx context.Context, p *rig, w *world, n int, logf func(string, ...any)) (int, error) {
	if n <= 0 {
		return 0, nil
	}
	start := time.Now()
	conn, err := pgx.Connect(ctx, p.dbURL)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.Background())
	var tmpl int64
	if err := conn.QueryRow(ctx, "SELECT id FROM apps WHERE slug = $1", w.appSlugs[0]).Scan(&tmpl); err != nil {
		return 0, err
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(context.Background())
	cols, err := columns(ctx, conn, "apps", "id")
	if err != nil {
		return 0, err
	}
	q := copySQL("apps", cols, map[string]string{
		"slug": "t.slug || '-c' || g", "name": "t.name || ' copy ' || g", "client_id": "t.client_id || '-c' || g",
		"webhook_url": "regexp_replace(t.webhook_url, '/app/0$', '/app/' || g)",
	}, "apps t, generate_series(1, $2) g WHERE t.id = $1")
	if _, err := tx.Exec(ctx, q, tmpl, n); err != nil {
		return 0, fmt.Errorf("copying apps: %w", err)
	}
	// c: the copies; t: the template's row of each table.
	copies := " JOIN apps c ON c.slug LIKE (SELECT slug FROM apps WHERE id = $1) || '-c%' WHERE t.app_id = $1"
	if cols, err = columns(ctx, conn, "endpoints", "id"); err != nil {
		return 0, err
	}
	if _, err := tx.Exec(ctx, copySQL("endpoints", cols, map[string]string{"app_id": "c.id"}, "endpoints t"+copies), tmpl); err != nil {
		return 0, fmt.Errorf("copying endpoint limits: %w", err)
	}
	if cols, err = columns(ctx, conn, "installations", "id"); err != nil {
		return 0, err
	}
	if _, err := tx.Exec(ctx, copySQL("installations", cols, map[string]string{"app_id": "c.id", "uuid": "gen_random_uuid()"},
		"installations t"+copies+" AND t.status = 'installed'"), tmpl); err != nil {
		return 0, fmt.Errorf("copying installations: %w", err)
	}
	if _, err := tx.Exec(ctx, "UPDATE apps SET installs_count = 1 WHERE slug LIKE $1", w.appSlugs[0]+"-c%"); err != nil {
		return 0, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, err
	}
	logf("copied app 0 %d times, installed, in %s", n, time.Since(start).Round(time.Millisecond))
	return n, nil
}

// seedAttempts stores total attempts in the delivery logs of the world's
// apps, as months of traffic would have left them: spread evenly over the
// apps and over the retention window (30 days, the newest a minute ago),
// one delivery per event and app, nine in ten delivered at the first
// attempt and the rest after a failed one. Secondary indexes are built
// after the rows, as a restore would, and the seeded uuids are in order, so
// that loading 10 million attempts takes minutes, not a quarter of an hour;
// nothing is analyzed (autovacuum may be off).
func seedAttempts(ctx context.Context, p *rig, w *world, total int64, logf func(string, ...any)) error {
	if total <= 0 {
		return nil
	}
	start := time.Now()
	conn, err := pgx.Connect(ctx, p.dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	var org int64
	if err := conn.QueryRow(ctx, "SELECT id FROM organizations WHERE slug = $1", w.orgs[0].slug).Scan(&org); err != nil {
		return err
	}
	apps := len(w.appSlugs)
	// 10 % of deliveries have two attempts: deliveries = total / 1.1.
	deliveries := int64(float64(total) / 1.1)
	events := (deliveries + int64(apps) - 1) / int64(apps)
	logf("seeding %d attempts (%d deliveries of %d events over %d apps) in SQL", total, deliveries, events, apps)
	steps := []string{
		"SET maintenance_work_mem = '512MB'",
		"SET session_replication_role = replica", // no foreign-key triggers while loading
		"CREATE TEMP TABLE seed_apps AS SELECT row_number() OVER (ORDER BY id) - 1 AS n, id, (SELECT i.id FROM installations i WHERE i.app_id = a.id AND i.organization_id = " +
			fmt.Sprint(org) + " LIMIT 1) AS inst FROM apps a WHERE slug = ANY($1)",
	}
	for i, s := range steps {
		var err error
		if i == 2 {
			_, err = conn.Exec(ctx, s, w.appSlugs)
		} else {
			_, err = conn.Exec(ctx, s)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	// Drop the secondary indexes, load, build them again.
	rows, err := conn.Query(ctx, `SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN ('events', 'deliveries', 'attempts')
		AND indexname NOT IN (SELECT conname FROM pg_constraint)`)
	if err != nil {
		return err
	}
	type idx struct{ name, def string }
	var idxs []idx
	for rows.Next() {
		var x idx
		if err := rows.Scan(&x.name, &x.def); err != nil {
			rows.Close()
			return err
		}
		idxs = append(idxs, x)
	}
	rows.Close()
	for _, x := range idxs {
		if _, err := conn.Exec(ctx, "DROP INDEX "+x.name); err != nil {
			return err
		}
	}
	// Event e happened at now - 30 days + e * (30 days / events); its
	// deliveries go to every app; attempts follow a second later.
	load := []string{
		fmt.Sprintf(`INSERT INTO events (uuid, organization_id, type, data, created_by, created_at, deliveries_count)
			SELECT ('e' || lpad(to_hex(g), 31, '0'))::uuid, %d, 'bench.ping', jsonb_build_object('seq', -1000000000 - g, 'sentAt', 0), 'seed',
				now() - interval '30 days' + (interval '30 days' - interval '1 minute') * g / %d, %d
			FROM generate_series(0, %d) g`, org, events, apps, events-1),
		fmt.Sprintf(`INSERT INTO deliveries (uuid, event_id, app_id, installation_id, installation_uuid, organization_id, event_type, status,
				attempts, max_attempts, last_attempt_at, last_status_code, last_error_class, created_at, completed_at, enqueued_at)
			SELECT ('d' || lpad(to_hex(e.id * 64 + a.n), 31, '0'))::uuid, e.id, a.id, a.inst, i.uuid, e.organization_id, 'bench.ping', 'succeeded',
				CASE WHEN (e.id + a.n) %% 10 = 0 THEN 2 ELSE 1 END, 8, e.created_at + interval '1 second', 200, '',
				e.created_at, e.created_at + interval '1 second', e.created_at
			FROM events e CROSS JOIN seed_apps a JOIN installations i ON i.id = a.inst
			WHERE e.created_by = 'seed' AND (e.id - (SELECT min(id) FROM events WHERE created_by = 'seed')) * %d + a.n < %d`, apps, deliveries),
		`INSERT INTO attempts (delivery_id, app_id, number, url, request_headers, response_status, response_headers, response_body, duration_us,
				error_class, error_message, created_at)
			SELECT d.id, d.app_id, n, 'http://sink.invalid/app', '{"webhook-signature": "v1,seeded"}', CASE WHEN n < d.attempts THEN 500 ELSE 200 END,
				'{"content-type": "text/plain"}', '', 2000 + (d.id * 7919 + n) % 40000, CASE WHEN n < d.attempts THEN 'http_status' ELSE '' END,
				CASE WHEN n < d.attempts THEN 'the endpoint answered 500 Internal Server Error' ELSE '' END,
				d.created_at + n * interval '1 second'
			FROM deliveries d CROSS JOIN LATERAL generate_series(1, d.attempts) n WHERE d.event_type = 'bench.ping'`,
	}
	for _, s := range load {
		t := time.Now()
		tag, err := conn.Exec(ctx, s)
		if err != nil {
			return fmt.Errorf("seeding: %w", err)
		}
		logf("  %d rows in %s", tag.RowsAffected(), time.Since(t).Round(time.Millisecond))
	}
	for _, x := range idxs {
		if _, err := conn.Exec(ctx, x.def); err != nil {
			return fmt.Errorf("%s: %w", x.def, err)
		}
	}
	if _, err := conn.Exec(ctx, "CHECKPOINT"); err != nil {
		logf("checkpoint: %v", err)
	}
	logf("seeded in %s", time.Since(start).Round(time.Second))
	return nil
}
