-- The webhook pipeline at scale (issue #19).
--
-- events.idempotency_key: a host's key for a published event. Publishing
-- again with a key already used in the organization publishes nothing and
-- answers the first event (POST …/events/ and POST /api/0/event-batches/).
-- The unique index holds only keyed events, so unkeyed publishes, nearly
-- all of them, write no entry in it.
--
-- delivery_queue: every delivery that is not (yet) delivered, with its
-- status (pending, failed or paused) and when it is due: what the drains
-- claim from, the relay and the lag gauge look at, and the delivery log's
-- failed/paused/pending filters and bulk redelivery read. It used to be four
-- partial indexes on deliveries (due per app and per host endpoint, paused,
-- failed), whose predicates named deliveries.status: every outcome written
-- to a delivery changed an indexed column, so PostgreSQL wrote a new row
-- version and a new entry in every index of deliveries (about 95 µs and
-- 1,060 WAL bytes per row on this box). Without them no index of
-- deliveries names a column the outcome changes, and with room left on the
-- page (fillfactor 60) the update is HOT: about 7 µs and 315 WAL bytes. A
-- delivered row leaves delivery_queue (one delete).
--
-- Triggers on deliveries keep delivery_queue exact, whoever writes a
-- delivery's status (publishing, the drains, pausing and resuming,
-- redelivery, suspension): statement-level, with transition tables, so a
-- batch of a thousand rows costs one trigger call. deliveries stays the
-- truth; delivery_queue is its index.

-- +goose Up
ALTER TABLE events ADD COLUMN idempotency_key text;
CREATE UNIQUE INDEX events_idempotency_key ON events (organization_id, idempotency_key) WHERE idempotency_key IS NOT NULL;

CREATE TABLE delivery_queue (
    delivery_id      bigint PRIMARY KEY,
    app_id           bigint,
    host_endpoint_id bigint,
    status           text NOT NULL CHECK (status IN ('pending', 'failed', 'paused')),
    next_attempt_at  timestamptz
);
CREATE INDEX delivery_queue_app_due_idx ON delivery_queue (app_id, next_attempt_at) WHERE status = 'pending';
CREATE INDEX delivery_queue_host_due_idx ON delivery_queue (host_endpoint_id, next_attempt_at)
    WHERE status = 'pending' AND host_endpoint_id IS NOT NULL;
CREATE INDEX delivery_queue_app_failed_idx ON delivery_queue (app_id, delivery_id DESC) WHERE status = 'failed';
CREATE INDEX delivery_queue_host_failed_idx ON delivery_queue (host_endpoint_id, delivery_id DESC)
    WHERE status = 'failed' AND host_endpoint_id IS NOT NULL;
CREATE INDEX delivery_queue_paused_idx ON delivery_queue (app_id, host_endpoint_id) WHERE status = 'paused';

-- +goose StatementBegin
CREATE FUNCTION delivery_queue_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO delivery_queue (delivery_id, app_id, host_endpoint_id, status, next_attempt_at)
    SELECT id, app_id, host_endpoint_id, status, next_attempt_at FROM new_rows WHERE status <> 'succeeded';
    RETURN NULL;
END $$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION delivery_queue_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM delivery_queue q USING new_rows n WHERE q.delivery_id = n.id AND n.status = 'succeeded';
    INSERT INTO delivery_queue AS q (delivery_id, app_id, host_endpoint_id, status, next_attempt_at)
    SELECT id, app_id, host_endpoint_id, status, next_attempt_at FROM new_rows WHERE status <> 'succeeded'
    ON CONFLICT (delivery_id) DO UPDATE SET status = EXCLUDED.status, next_attempt_at = EXCLUDED.next_attempt_at
        WHERE (q.status, q.next_attempt_at) IS DISTINCT FROM (EXCLUDED.status, EXCLUDED.next_attempt_at);
    RETURN NULL;
END $$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION delivery_queue_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM delivery_queue q USING old_rows o WHERE q.delivery_id = o.id;
    RETURN NULL;
END $$;
-- +goose StatementEnd

CREATE TRIGGER deliveries_queue_insert AFTER INSERT ON deliveries
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION delivery_queue_insert();
CREATE TRIGGER deliveries_queue_update AFTER UPDATE ON deliveries
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION delivery_queue_update();
CREATE TRIGGER deliveries_queue_delete AFTER DELETE ON deliveries
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION delivery_queue_delete();

INSERT INTO delivery_queue (delivery_id, app_id, host_endpoint_id, status, next_attempt_at)
SELECT id, app_id, host_endpoint_id, status, next_attempt_at FROM deliveries WHERE status <> 'succeeded';

DROP INDEX deliveries_app_due_idx;
DROP INDEX deliveries_host_due_idx;
DROP INDEX deliveries_paused_idx;
DROP INDEX deliveries_app_failed_idx;
ALTER TABLE deliveries SET (fillfactor = 60);

-- +goose Down
ALTER TABLE deliveries RESET (fillfactor);
CREATE INDEX deliveries_app_failed_idx ON deliveries (app_id, id DESC) WHERE status = 'failed';
CREATE INDEX deliveries_paused_idx ON deliveries (app_id) WHERE status = 'paused';
CREATE INDEX deliveries_host_due_idx ON deliveries (host_endpoint_id, next_attempt_at)
    WHERE status = 'pending' AND host_endpoint_id IS NOT NULL;
CREATE INDEX deliveries_app_due_idx ON deliveries (app_id, next_attempt_at) WHERE status = 'pending';
DROP TRIGGER deliveries_queue_delete ON deliveries;
DROP TRIGGER deliveries_queue_update ON deliveries;
DROP TRIGGER deliveries_queue_insert ON deliveries;
DROP FUNCTION delivery_queue_delete();
DROP FUNCTION delivery_queue_update();
DROP FUNCTION delivery_queue_insert();
DROP TABLE delivery_queue;
DROP INDEX events_idempotency_key;
ALTER TABLE events DROP COLUMN idempotency_key;
