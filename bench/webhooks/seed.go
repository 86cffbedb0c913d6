package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
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
// attempt and the rest after a failed one. Each table is loaded by conns
// sessions at once, each an INSERT … SELECT over its own range of
// generate_series; the secondary indexes are dropped first and built
// after, conns at a time, as a restore would; the seeded uuids are in
// order. Nothing is analyzed (autovacuum may be off).
func seedAttempts(ctx context.Context, p *rig, w *world, total int64, conns int, logf func(string, ...any)) error {
	if total <= 0 {
		return nil
	}
	conns = max(conns, 1)
	if len(w.appSlugs) > 64 {
		return fmt.Errorf("seeding attempts for %d apps: at most 64 (a delivery's id and uuid are 64 × event + app)", len(w.appSlugs))
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
	logf("seeding %d attempts (%d deliveries of %d events over %d apps) in SQL, %d sessions at once", total, deliveries, events, apps, conns)
	// A table, not a temporary one: every loading session reads it.
	if _, err := conn.Exec(ctx, "CREATE TABLE bench_seed_apps AS SELECT (row_number() OVER (ORDER BY id) - 1)::int AS n, id, "+
		"(SELECT i.id FROM installations i WHERE i.app_id = a.id AND i.organization_id = $2 LIMIT 1) AS inst FROM apps a WHERE slug = ANY($1)",
		w.appSlugs, org); err != nil {
		return fmt.Errorf("listing the apps to seed: %w", err)
	}
	// Drop the secondary indexes, load, build them again.
	rows, err := conn.Query(ctx, `SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN ('events', 'deliveries', 'attempts')
		AND indexname NOT IN (SELECT conname FROM pg_constraint)`)
	if err != nil {
		return err
	}
	idxs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([2]string, error) {
		var x [2]string
		return x, r.Scan(&x[0], &x[1])
	})
	if err != nil {
		return err
	}
	for _, x := range idxs {
		if _, err := conn.Exec(ctx, "DROP INDEX "+x[0]); err != nil {
			return err
		}
	}
	var evBase int64
	if err := conn.QueryRow(ctx, "SELECT COALESCE(max(id), 0) + 1 FROM events").Scan(&evBase); err != nil {
		return err
	}
	// Event g (0 ≤ g < events) gets id evBase + g and happened at now - 30
	// days + g * (30 days / events); its deliveries go to every app, with
	// ids 64 g + n from a base; attempts follow a second later.
	var dBase int64
	if err := conn.QueryRow(ctx, "SELECT COALESCE(max(id), 0) + 1 FROM deliveries").Scan(&dBase); err != nil {
		return err
	}
	stages := []struct {
		what string
		n    int64 // the range split among the sessions: [0, n)
		sql  string
	}{
		{"events", events, fmt.Sprintf(`INSERT INTO events (id, uuid, organization_id, type, data, created_by, created_at, deliveries_count)
			SELECT %d + g, ('e' || lpad(to_hex(g), 31, '0'))::uuid, %d, 'bench.ping', jsonb_build_object('seq', -1000000000 - g, 'sentAt', 0), 'seed',
				now() - interval '30 days' + (interval '30 days' - interval '1 minute') * g / %d, %d
			FROM generate_series($1::bigint, $2::bigint - 1) g`, evBase, org, events, apps)},
		{"deliveries", events, fmt.Sprintf(`INSERT INTO deliveries (id, uuid, event_id, app_id, installation_id, installation_uuid, organization_id, event_type, status,
				attempts, max_attempts, last_attempt_at, last_status_code, last_error_class, created_at, completed_at, enqueued_at)
			SELECT %d + (e.id - %d) * 64 + a.n, ('d' || lpad(to_hex((e.id - %d) * 64 + a.n), 31, '0'))::uuid, e.id, a.id, a.inst, i.uuid, e.organization_id, 'bench.ping', 'succeeded',
				CASE WHEN (e.id + a.n) %% 10 = 0 THEN 2 ELSE 1 END, 8, e.created_at + interval '1 second', 200, '',
				e.created_at, e.created_at + interval '1 second', e.created_at
			FROM events e CROSS JOIN bench_seed_apps a JOIN installations i ON i.id = a.inst
			WHERE e.id >= %d + $1::bigint AND e.id < %d + $2::bigint AND (e.id - %d) * %d + a.n < %d`,
			dBase, evBase, evBase, evBase, evBase, evBase, apps, deliveries)},
		{"attempts", events, fmt.Sprintf(`INSERT INTO attempts (delivery_id, app_id, number, url, request_headers, response_status, response_headers, response_body, duration_us,
				error_class, error_message, created_at)
			SELECT d.id, d.app_id, n, 'http://sink.invalid/app', '{"webhook-signature": "v1,seeded"}', CASE WHEN n < d.attempts THEN 500 ELSE 200 END,
				'{"content-type": "text/plain"}', '', 2000 + (d.id * 7919 + n) %% 40000, CASE WHEN n < d.attempts THEN 'http_status' ELSE '' END,
				CASE WHEN n < d.attempts THEN 'the endpoint answered 500 Internal Server Error' ELSE '' END,
				d.created_at + n * interval '1 second'
			FROM deliveries d CROSS JOIN LATERAL generate_series(1, d.attempts) n
			WHERE d.id >= %d + $1::bigint * 64 AND d.id < %d + $2::bigint * 64 AND d.event_type = 'bench.ping'`, dBase, dBase)},
	}
	for _, st := range stages {
		t := time.Now()
		var parts [][2]int64
		for i := range int64(conns) {
			parts = append(parts, [2]int64{st.n * i / int64(conns), st.n * (i + 1) / int64(conns)})
		}
		n, err := inParallel(ctx, p.dbURL, conns, len(parts), func(c *pgx.Conn, i int) (int64, error) {
			tag, err := c.Exec(ctx, st.sql, parts[i][0], parts[i][1])
			return tag.RowsAffected(), err
		})
		if err != nil {
			return fmt.Errorf("seeding %s: %w", st.what, err)
		}
		logf("  %d %s in %s", n, st.what, time.Since(t).Round(time.Millisecond))
	}
	for _, seq := range [][2]string{{"events", "events_id_seq"}, {"deliveries", "deliveries_id_seq"}} {
		if _, err := conn.Exec(ctx, fmt.Sprintf("SELECT setval(pg_get_serial_sequence('%s', 'id'), (SELECT max(id) FROM %s))", seq[0], seq[0])); err != nil {
			return fmt.Errorf("moving %s on: %w", seq[1], err)
		}
	}
	t := time.Now()
	if _, err := inParallel(ctx, p.dbURL, conns, len(idxs), func(c *pgx.Conn, i int) (int64, error) {
		_, err := c.Exec(ctx, idxs[i][1])
		return 0, err
	}); err != nil {
		return fmt.Errorf("building the indexes: %w", err)
	}
	logf("  %d indexes in %s", len(idxs), time.Since(t).Round(time.Millisecond))
	if _, err := conn.Exec(ctx, "DROP TABLE bench_seed_apps"); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, "CHECKPOINT"); err != nil {
		logf("checkpoint: %v", err)
	}
	logf("seeded in %s", time.Since(start).Round(time.Second))
	return nil
}

// inParallel runs job 0…jobs-1 on conns sessions of dbURL (each without
// foreign-key triggers, with room to sort), a job at a time per session,
// and sums what they return.
func inParallel(ctx context.Context, dbURL string, conns, jobs int, job func(*pgx.Conn, int) (int64, error)) (int64, error) {
	work := make(chan int, jobs)
	for i := range jobs {
		work <- i
	}
	close(work)
	var (
		mu    sync.Mutex
		sum   int64
		first error
		wg    sync.WaitGroup
	)
	for range min(conns, jobs) {
		wg.Go(func() {
			err := func() error {
				c, err := pgx.Connect(ctx, dbURL)
				if err != nil {
					return err
				}
				defer c.Close(context.Background())
				for _, s := range []string{"SET maintenance_work_mem = '256MB'", "SET max_parallel_maintenance_workers = 0",
					"SET session_replication_role = replica", "SET synchronous_commit = off"} {
					if _, err := c.Exec(ctx, s); err != nil {
						return fmt.Errorf("%s: %w", s, err)
					}
				}
				for i := range work {
					n, err := job(c, i)
					if err != nil {
						return err
					}
					mu.Lock()
					sum += n
					mu.Unlock()
				}
				return nil
			}()
			if err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return sum, first
}
