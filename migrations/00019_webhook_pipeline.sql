-- The webhook pipeline at scale (issue #19).
--
-- events.idempotency_key: a host's key for a published event. Publishing
-- again with a key already used in the organization publishes nothing and
-- answers the first event (POST …/events/ and POST /api/0/event-batches/).
-- The unique index holds only keyed events, so unkeyed publishes, nearly
-- all of them, write no entry in it.

-- +goose Up
ALTER TABLE events ADD COLUMN idempotency_key text;
CREATE UNIQUE INDEX events_idempotency_key ON events (organization_id, idempotency_key) WHERE idempotency_key IS NOT NULL;

-- +goose Down
DROP INDEX events_idempotency_key;
ALTER TABLE events DROP COLUMN idempotency_key;
