-- Ordering keys (issue #19: POST /api/0/event-batches/ takes orderingKey,
-- as the single-event route does).
--
-- Events of one organization published with the same ordering key reach
-- each destination one at a time, in the order they were published: a
-- delivery is not claimed while an earlier one (a lower id) of the same
-- key to the same app is pending, whether in flight or waiting for its
-- retry. One that failed for good or is paused holds nothing back, so a
-- broken event does not stop its key for ever (a replay sends it again,
-- after what went on meanwhile).
--
-- events.ordering_key is the publisher's, and deliveries carry it;
-- delivery_queue.ordering_key is it scoped to the organization
-- ("<organization id>/<key>": two organizations' keys never hold each
-- other back), so the claim checks it on the queue alone, through an
-- index holding only keyed pending rows: unkeyed deliveries, nearly all,
-- write nothing in it and cost the claim nothing.

-- +goose Up
ALTER TABLE events ADD COLUMN ordering_key text;
ALTER TABLE deliveries ADD COLUMN ordering_key text;
ALTER TABLE delivery_queue ADD COLUMN ordering_key text;
CREATE INDEX delivery_queue_app_key_idx ON delivery_queue (app_id, ordering_key, delivery_id)
    WHERE status = 'pending' AND ordering_key IS NOT NULL;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION delivery_queue_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO delivery_queue (delivery_id, app_id, host_endpoint_id, status, next_attempt_at, ordering_key)
    SELECT id, app_id, host_endpoint_id, status, next_attempt_at, organization_id || '/' || ordering_key
    FROM new_rows WHERE status <> 'succeeded';
    RETURN NULL;
END $$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION delivery_queue_update() RETURNS trigger LANGUAGE plpgsql
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
BEGIN
    DELETE FROM delivery_queue q USING new_rows n WHERE q.delivery_id = n.id AND n.status = 'succeeded';
    INSERT INTO delivery_queue AS q (delivery_id, app_id, host_endpoint_id, status, next_attempt_at, ordering_key)
    SELECT id, app_id, host_endpoint_id, status, next_attempt_at, organization_id || '/' || ordering_key
    FROM new_rows WHERE status <> 'succeeded'
    ON CONFLICT (delivery_id) DO UPDATE SET status = EXCLUDED.status, next_attempt_at = EXCLUDED.next_attempt_at
        WHERE (q.status, q.next_attempt_at) IS DISTINCT FROM (EXCLUDED.status, EXCLUDED.next_attempt_at);
    RETURN NULL;
END $$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION delivery_queue_update() RETURNS trigger LANGUAGE plpgsql
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
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
CREATE OR REPLACE FUNCTION delivery_queue_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO delivery_queue (delivery_id, app_id, host_endpoint_id, status, next_attempt_at)
    SELECT id, app_id, host_endpoint_id, status, next_attempt_at FROM new_rows WHERE status <> 'succeeded';
    RETURN NULL;
END $$;
-- +goose StatementEnd

DROP INDEX delivery_queue_app_key_idx;
ALTER TABLE delivery_queue DROP COLUMN ordering_key;
ALTER TABLE deliveries DROP COLUMN ordering_key;
ALTER TABLE events DROP COLUMN ordering_key;
