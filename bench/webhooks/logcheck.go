package main

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

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
