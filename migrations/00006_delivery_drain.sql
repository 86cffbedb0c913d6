-- Workers drain what is due per app: find it by app and due time.

-- +goose Up
CREATE INDEX deliveries_app_due_idx ON deliveries (app_id, next_attempt_at) WHERE status = 'pending';

-- +goose Down
DROP INDEX deliveries_app_due_idx;
