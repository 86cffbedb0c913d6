-- The delivery log's most used filter, and bulk redelivery, ask for an
-- app's failed deliveries newest first. Through deliveries_app_idx that
-- walks every delivery of the app until enough failed ones turn up: on a
-- log of millions where few fail, the whole log. A partial index holds
-- only failed deliveries, so it costs nothing on the way to success.
-- +goose Up
CREATE INDEX deliveries_app_failed_idx ON deliveries (app_id, id DESC) WHERE status = 'failed';
-- +goose Down
DROP INDEX deliveries_app_failed_idx;
