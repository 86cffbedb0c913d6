-- Heroku-style provisioning: the partner's provisioning endpoint, the
-- config vars it sets on each installation, and deliveries that go
-- somewhere other than the app's webhook URL.
--
-- apps.provision_url is POSTed when the app is installed (and called with
-- PUT and DELETE on {provision_url}/{uuid} for plan changes and
-- deprovisioning); apps.config_prefix starts the names of every config var
-- its installations hold ('' means derived from the slug: PAGER_BOT_).
--
-- installations.status grows 'provisioning': the partner answered 202 and
-- finishes later (PUT /api/0/installations/{uuid}/ {status: installed}).
-- It is live, like pending and installed, so the one-live-installation
-- index covers it. provision_message is what the partner's answer said,
-- shown to the organization.
--
-- installation_config_vars: one row per variable, its value sealed with
-- AES-GCM under the secret key (as webhook secrets are), never in clear.
--
-- deliveries.target_method and target_url: a delivery with them set goes
-- there (DELETE {provision_url}/{uuid}) instead of a POST to the app's
-- webhook URL, signed with the app's secret and retried, logged and
-- replayed like any other. NULL for every other delivery.

-- +goose Up
ALTER TABLE apps ADD COLUMN provision_url text NOT NULL DEFAULT '';
ALTER TABLE apps ADD COLUMN config_prefix text NOT NULL DEFAULT '';

ALTER TABLE installations DROP CONSTRAINT installations_status_check;
ALTER TABLE installations ADD CONSTRAINT installations_status_check
    CHECK (status IN ('pending', 'provisioning', 'installed', 'deleted', 'failed'));
ALTER TABLE installations ADD COLUMN provision_message text NOT NULL DEFAULT '';
DROP INDEX installations_live_key;
CREATE UNIQUE INDEX installations_live_key ON installations (app_id, organization_id)
    WHERE status IN ('pending', 'provisioning', 'installed');
CREATE INDEX installations_provisioning_idx ON installations (created_at) WHERE status = 'provisioning';

CREATE TABLE installation_config_vars (
    id              bigserial   PRIMARY KEY,
    installation_id bigint      NOT NULL REFERENCES installations (id) ON DELETE CASCADE,
    name            text        NOT NULL,
    value_sealed    bytea       NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (installation_id, name)
);

ALTER TABLE deliveries ADD COLUMN target_method text;
ALTER TABLE deliveries ADD COLUMN target_url text;

INSERT INTO event_types (name, resource, scope, description, builtin) VALUES
    ('installation.deprovision', 'installation', '', 'DELETE {provisionUrl}/{uuid}: the app was uninstalled, or its provisioning failed; the partner drops what it made.', true),
    ('installation.config_updated', 'installation', '', 'The partner changed an installation''s config vars; carries their names, never their values.', true)
ON CONFLICT (name) DO NOTHING;

-- +goose Down
-- installation.config_updated stays: host endpoints (00014) publish it too.
DELETE FROM event_types WHERE name = 'installation.deprovision';
ALTER TABLE deliveries DROP COLUMN target_url;
ALTER TABLE deliveries DROP COLUMN target_method;
DROP TABLE installation_config_vars;
DROP INDEX installations_provisioning_idx;
DROP INDEX installations_live_key;
CREATE UNIQUE INDEX installations_live_key ON installations (app_id, organization_id) WHERE status IN ('pending', 'installed');
ALTER TABLE installations DROP COLUMN provision_message;
ALTER TABLE installations DROP CONSTRAINT installations_status_check;
ALTER TABLE installations ADD CONSTRAINT installations_status_check
    CHECK (status IN ('pending', 'installed', 'deleted', 'failed'));
ALTER TABLE apps DROP COLUMN config_prefix;
ALTER TABLE apps DROP COLUMN provision_url;
