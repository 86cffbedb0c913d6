-- The installed-apps page shows each installation's latest delivery and its
-- last 24 hours; without an index by installation that is a scan of every
-- delivery of the organization. One index on (installation_id, created_at)
-- serves it, and the lifecycle-delivery reconciliation that
-- deliveries_lifecycle_idx served, so it replaces that one: the number of
-- index entries written per delivery stays as migration 00007 left it
-- plus one.

-- +goose Up
CREATE INDEX deliveries_installation_recent_idx ON deliveries (installation_id, created_at DESC);
DROP INDEX deliveries_lifecycle_idx;

-- +goose Down
CREATE INDEX deliveries_lifecycle_idx ON deliveries (installation_id)
    WHERE event_type IN ('installation.created', 'installation.deleted');
DROP INDEX deliveries_installation_recent_idx;
