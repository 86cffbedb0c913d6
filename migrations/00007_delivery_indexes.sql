-- Fewer index entries per delivery: every delivery row is written twice
-- (fan-out, outcome) and every attempt once, so each index on them costs
-- per webhook sent.
--
-- * Deliveries are looked up by installation only for lifecycle events
--   (reconciliation): index just those.
-- * Due deliveries are found per app (deliveries_app_due_idx): the drains,
--   and the relay and the lag gauge, which go app by app. The global due
--   index goes.
-- * Attempts are deleted by age (retention) in insertion order: a BRIN index
--   serves that at a fraction of a B-tree's cost per insert.

-- +goose Up
CREATE INDEX deliveries_lifecycle_idx ON deliveries (installation_id)
    WHERE event_type IN ('installation.created', 'installation.deleted');
DROP INDEX deliveries_installation_idx;
DROP INDEX deliveries_due_idx;
CREATE INDEX attempts_created_brin ON attempts USING brin (created_at);
DROP INDEX attempts_created_idx;

-- +goose Down
CREATE INDEX attempts_created_idx ON attempts (created_at);
DROP INDEX attempts_created_brin;
CREATE INDEX deliveries_due_idx ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_installation_idx ON deliveries (installation_id);
DROP INDEX deliveries_lifecycle_idx;
