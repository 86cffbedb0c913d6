-- Apps (integrations), their plans, and the event catalogue apps subscribe to.

-- +goose Up
CREATE TABLE apps (
    id                         bigserial PRIMARY KEY,
    organization_id            bigint      NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    slug                       text        NOT NULL UNIQUE,
    name                       text        NOT NULL,
    kind                       text        NOT NULL CHECK (kind IN ('public', 'internal')),
    status                     text        NOT NULL CHECK (status IN ('draft', 'submitted', 'published', 'rejected')),
    status_reason              text        NOT NULL DEFAULT '',
    author                     text        NOT NULL DEFAULT '',
    overview                   text        NOT NULL DEFAULT '',
    categories                 jsonb       NOT NULL DEFAULT '[]',
    scopes                     jsonb       NOT NULL DEFAULT '[]',
    events                     jsonb       NOT NULL DEFAULT '[]',
    webhook_url                text        NOT NULL DEFAULT '',
    redirect_url               text        NOT NULL DEFAULT '',
    verify_install             boolean     NOT NULL DEFAULT false,
    sync_url                   text        NOT NULL DEFAULT '',
    logo_url                   text        NOT NULL DEFAULT '',
    client_id                  text        NOT NULL UNIQUE,
    client_secret_hash         bytea       NOT NULL,
    webhook_secret             bytea       NOT NULL,
    previous_webhook_secret    bytea,
    previous_secret_expires_at timestamptz,
    installs_count             integer     NOT NULL DEFAULT 0,
    created_by                 bigint      REFERENCES users (id) ON DELETE SET NULL,
    created_at                 timestamptz NOT NULL DEFAULT now(),
    updated_at                 timestamptz NOT NULL DEFAULT now(),
    submitted_at               timestamptz,
    published_at               timestamptz
);
CREATE INDEX apps_organization_id_idx ON apps (organization_id);
CREATE INDEX apps_directory_name_idx ON apps (name, id) WHERE kind = 'public';
CREATE INDEX apps_directory_installs_idx ON apps (installs_count DESC, id DESC) WHERE kind = 'public';
CREATE INDEX apps_directory_created_idx ON apps (created_at DESC, id DESC) WHERE kind = 'public';
CREATE INDEX apps_categories_idx ON apps USING gin (categories);

CREATE TABLE plans (
    id          bigserial PRIMARY KEY,
    app_id      bigint        NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    slug        text          NOT NULL,
    name        text          NOT NULL,
    description text          NOT NULL DEFAULT '',
    price       numeric(12,2) NOT NULL DEFAULT 0 CHECK (price >= 0),
    currency    text          NOT NULL DEFAULT 'USD',
    interval    text          NOT NULL DEFAULT 'month' CHECK (interval IN ('month', 'year')),
    created_at  timestamptz   NOT NULL DEFAULT now(),
    updated_at  timestamptz   NOT NULL DEFAULT now(),
    UNIQUE (app_id, slug)
);

-- The event catalogue: what the host publishes and which scope receives it.
CREATE TABLE event_types (
    id          bigserial PRIMARY KEY,
    name        text        NOT NULL UNIQUE,
    resource    text        NOT NULL,
    scope       text        NOT NULL DEFAULT '',
    description text        NOT NULL DEFAULT '',
    schema      jsonb,
    builtin     boolean     NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO event_types (name, resource, scope, description, builtin) VALUES
    ('installation.created', 'installation', '', 'The app was installed into an organization; carries the grant code to exchange.', true),
    ('installation.updated', 'installation', '', 'The installation changed plan or configuration.', true),
    ('installation.deleted', 'installation', '', 'The app was uninstalled, or its installation failed verification.', true),
    ('webhook.test', 'webhook', '', 'A test event sent from the delivery log.', true);

-- +goose Down
DROP TABLE event_types;
DROP TABLE plans;
DROP TABLE apps;
