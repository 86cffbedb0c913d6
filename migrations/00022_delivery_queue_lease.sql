-- A drain's claim is a lease, and delivery_queue is due when the lease ends
-- (issue #19).
--
-- Drains used to hold their claims as row locks, in a transaction left
-- open across the batch's HTTP requests. With up to 16 drains of one app,
-- every claim walked past the rows the others held (joining deliveries and
-- events for each before SKIP LOCKED could skip it: 5,216 index rows per
-- claim in the batch bench), and the open transactions held back the xmin
-- horizon, so the dead delivery_queue entries of delivered rows were never
-- pruned (68 % of sampled backends were idle in transaction). Now a claim
-- commits at once, writing deliveries.claimed_until (a HOT update: no index
-- of deliveries names it), and the record is a transaction of its own.
--
-- delivery_queue.next_attempt_at is when a drain should next look at a
-- delivery: its due time, or the end of the lease that holds it, whichever
-- is later. A claimed delivery so leaves the due range of
-- delivery_queue_app_due_idx while its lease lasts (other drains' claims
-- start at the first unclaimed row), and a dead worker's claim is due again,
-- for the drains and the relay, when its lease ends.
--
-- The update trigger updates the rows that change and inserts the missing
-- ones instead of INSERT … ON CONFLICT DO UPDATE, which locks every
-- conflicting row (a WAL record each) before its WHERE may find nothing to
-- change.

-- +goose Up
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION delivery_queue_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO delivery_queue (delivery_id, app_id, host_endpoint_id, status, next_attempt_at)
    SELECT id, app_id, host_endpoint_id, status, GREATEST(next_attempt_at, claimed_until) FROM new_rows WHERE status <> 'succeeded';
    RETURN NULL;
END $$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION delivery_queue_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM delivery_queue q USING new_rows n WHERE q.delivery_id = n.id AND n.status = 'succeeded';
    UPDATE delivery_queue q SET status = n.status, next_attempt_at = GREATEST(n.next_attempt_at, n.claimed_until)
    FROM new_rows n
    WHERE q.delivery_id = n.id AND n.status <> 'succeeded'
      AND (q.status, q.next_attempt_at) IS DISTINCT FROM (n.status, GREATEST(n.next_attempt_at, n.claimed_until));
    -- A delivery back from succeeded (redelivered) has no row.
    INSERT INTO delivery_queue (delivery_id, app_id, host_endpoint_id, status, next_attempt_at)
    SELECT n.id, n.app_id, n.host_endpoint_id, n.status, GREATEST(n.next_attempt_at, n.claimed_until) FROM new_rows n
    WHERE n.status <> 'succeeded' AND NOT EXISTS (SELECT 1 FROM delivery_queue q WHERE q.delivery_id = n.id)
    ON CONFLICT (delivery_id) DO NOTHING;
    RETURN NULL;
END $$;
-- +goose StatementEnd

UPDATE delivery_queue q SET next_attempt_at = d.claimed_until
FROM deliveries d
WHERE d.id = q.delivery_id AND d.claimed_until > COALESCE(q.next_attempt_at, '-infinity');

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION delivery_queue_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO delivery_queue (delivery_id, app_id, host_endpoint_id, status, next_attempt_at)
    SELECT id, app_id, host_endpoint_id, status, next_attempt_at FROM new_rows WHERE status <> 'succeeded';
    RETURN NULL;
END $$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION delivery_queue_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM delivery_queue q USING new_rows n WHERE q.delivery_id = n.id AND n.status = 'succeeded';
    INSERT INTO delivery_queue AS q (delivery_id, app_id, host_endpoint_id, status, next_attempt_at)
    SELECT id, app_id, host_endpoint_id, status, next_attempt_at FROM new_rows WHERE status <> 'succeeded'
    ON CONFLICT (delivery_id) DO UPDATE SET status = EXCLUDED.status, next_attempt_at = EXCLUDED.next_attempt_at
        WHERE (q.status, q.next_attempt_at) IS DISTINCT FROM (EXCLUDED.status, EXCLUDED.next_attempt_at);
    RETURN NULL;
END $$;
-- +goose StatementEnd

UPDATE delivery_queue q SET next_attempt_at = d.next_attempt_at
FROM deliveries d
WHERE d.id = q.delivery_id AND q.next_attempt_at IS DISTINCT FROM d.next_attempt_at;
