-- Webhook delivery: endpoint health per app, one delivery per event and
-- receiving installation, every HTTP attempt, and host service tokens.

-- +goose Up
CREATE TABLE endpoints (
    app_id          bigint PRIMARY KEY REFERENCES apps (id) ON DELETE CASCADE,
    status          text        NOT NULL DEFAULT 'enabled' CHECK (status IN ('enabled', 'disabled')),
    disabled_reason text        NOT NULL DEFAULT '',
    disabled_at     timestamptz,
    failing_since   timestamptz,
    rate_limit      integer CHECK (rate_limit > 0),
    max_in_flight   integer CHECK (max_in_flight > 0),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE events ADD COLUMN deliveries_count integer NOT NULL DEFAULT 0;

CREATE TABLE deliveries (
    id                bigserial PRIMARY KEY,
    uuid              uuid        NOT NULL UNIQUE,
    event_id          bigint      NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    app_id            bigint      NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    installation_id   bigint,
    installation_uuid uuid,
    organization_id   bigint      NOT NULL,
    event_type        text        NOT NULL,
    status            text        NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed', 'paused')),
    attempts          integer     NOT NULL DEFAULT 0,
    max_attempts      integer     NOT NULL,
    next_attempt_at   timestamptz,
    claimed_until     timestamptz,
    enqueued_at       timestamptz,
    last_attempt_at   timestamptz,
    last_status_code  integer,
    last_error_class  text        NOT NULL DEFAULT '',
    created_at        timestamptz NOT NULL,
    completed_at      timestamptz
);
CREATE INDEX deliveries_app_idx ON deliveries (app_id, id DESC);
CREATE INDEX deliveries_due_idx ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_paused_idx ON deliveries (app_id) WHERE status = 'paused';
CREATE INDEX deliveries_event_idx ON deliveries (event_id);
CREATE INDEX deliveries_installation_idx ON deliveries (installation_id);

CREATE TABLE attempts (
    id               bigserial PRIMARY KEY,
    delivery_id      bigint      NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    app_id           bigint      NOT NULL,
    number           integer     NOT NULL,
    url              text        NOT NULL,
    request_headers  jsonb       NOT NULL,
    response_status  integer,
    response_headers jsonb,
    response_body    text        NOT NULL DEFAULT '',
    duration_us      bigint      NOT NULL,
    error_class      text        NOT NULL DEFAULT '',
    error_message    text        NOT NULL DEFAULT '',
    created_at       timestamptz NOT NULL
);
CREATE INDEX attempts_delivery_idx ON attempts (delivery_id, id);
CREATE INDEX attempts_app_created_idx ON attempts (app_id, created_at);
CREATE INDEX attempts_created_idx ON attempts (created_at);

CREATE TABLE service_tokens (
    id           bigserial PRIMARY KEY,
    name         text        NOT NULL,
    token_hash   bytea       NOT NULL UNIQUE,
    token_suffix text        NOT NULL,
    created_by   bigint      REFERENCES users (id) ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);

-- +goose Down
DROP TABLE service_tokens;
DROP TABLE attempts;
DROP TABLE deliveries;
ALTER TABLE events DROP COLUMN deliveries_count;
DROP TABLE endpoints;
