-- Installations, the grants (authorization codes) and tokens issued for them,
-- app credentials for authenticating as the app itself, and the event log
-- that lifecycle changes write into in the same transaction.

-- +goose Up
ALTER TABLE apps ADD COLUMN client_secret_sealed bytea;
ALTER TABLE apps ADD COLUMN public_key text NOT NULL DEFAULT '';

CREATE TABLE installations (
    id              bigserial PRIMARY KEY,
    uuid            uuid        NOT NULL UNIQUE,
    app_id          bigint      NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    organization_id bigint      NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    plan_id         bigint      REFERENCES plans (id) ON DELETE SET NULL,
    status          text        NOT NULL CHECK (status IN ('pending', 'installed', 'deleted', 'failed')),
    status_reason   text        NOT NULL DEFAULT '',
    sync_state      text        NOT NULL DEFAULT 'in_sync' CHECK (sync_state IN ('in_sync', 'out_of_sync')),
    sync_reason     text        NOT NULL DEFAULT '',
    sync_checked_at timestamptz,
    scopes          jsonb       NOT NULL DEFAULT '[]',
    external_id     text        NOT NULL DEFAULT '',
    config_url      text        NOT NULL DEFAULT '',
    installed_by    bigint      REFERENCES users (id) ON DELETE SET NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    verified_at     timestamptz,
    deleted_at      timestamptz
);
-- One live installation per app and organization.
CREATE UNIQUE INDEX installations_live_key ON installations (app_id, organization_id) WHERE status IN ('pending', 'installed');
CREATE INDEX installations_org_idx ON installations (organization_id, id);
CREATE INDEX installations_app_idx ON installations (app_id, id);

CREATE TABLE grants (
    id                    bigserial PRIMARY KEY,
    installation_id       bigint      NOT NULL REFERENCES installations (id) ON DELETE CASCADE,
    code_hash             bytea       NOT NULL UNIQUE,
    redirect_uri          text        NOT NULL DEFAULT '',
    code_challenge        text        NOT NULL DEFAULT '',
    code_challenge_method text        NOT NULL DEFAULT '',
    created_at            timestamptz NOT NULL DEFAULT now(),
    expires_at            timestamptz NOT NULL,
    used_at               timestamptz,
    revoked_at            timestamptz
);
CREATE INDEX grants_installation_idx ON grants (installation_id);

CREATE TABLE tokens (
    id              bigserial PRIMARY KEY,
    installation_id bigint      NOT NULL REFERENCES installations (id) ON DELETE CASCADE,
    grant_id        bigint      REFERENCES grants (id) ON DELETE SET NULL,
    family          uuid        NOT NULL,
    kind            text        NOT NULL CHECK (kind IN ('access', 'refresh')),
    token_hash      bytea       NOT NULL UNIQUE,
    scopes          jsonb       NOT NULL DEFAULT '[]',
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz,
    used_at         timestamptz,
    revoked_at      timestamptz
);
CREATE INDEX tokens_installation_idx ON tokens (installation_id);
CREATE INDEX tokens_family_idx ON tokens (family);
CREATE INDEX tokens_grant_idx ON tokens (grant_id);

CREATE TABLE events (
    id              bigserial PRIMARY KEY,
    uuid            uuid        NOT NULL UNIQUE,
    organization_id bigint      NOT NULL,
    type            text        NOT NULL,
    data            jsonb       NOT NULL,
    installation_id bigint,
    created_by      text        NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_org_idx ON events (organization_id, id DESC);

-- +goose Down
DROP TABLE events;
DROP TABLE tokens;
DROP TABLE grants;
DROP TABLE installations;
ALTER TABLE apps DROP COLUMN public_key;
ALTER TABLE apps DROP COLUMN client_secret_sealed;
