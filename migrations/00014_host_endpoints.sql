-- Host webhooks: the host product's own endpoints, which receive platform
-- events (installation.*, app.published, app.unpublished) through the same
-- dispatcher as partners' apps.
--
-- A delivery now goes to one destination: an app (app_id) or a host
-- endpoint (host_endpoint_id), never both. Both are real foreign keys, so
-- deleting an app or a host endpoint deletes its deliveries (and their
-- attempts) as before. In the webhooks code, and in attempts.app_id (which
-- has no foreign key and only serves the health figures), a destination is
-- one number: an app's id, or a host endpoint's id negated. Drains,
-- limiters, endpoint health and the delivery log keep working per
-- destination.
--
-- The partial indexes on host_endpoint_id hold host deliveries only: an
-- app's delivery writes no entry in them.

-- +goose Up
CREATE TABLE host_endpoints (
    id                         bigserial PRIMARY KEY,
    url                        text        NOT NULL,
    description                text        NOT NULL DEFAULT '',
    event_types                jsonb       NOT NULL DEFAULT '[]',
    secret                     bytea       NOT NULL,
    previous_secret            bytea,
    previous_secret_expires_at timestamptz,
    created_by                 bigint      REFERENCES users (id) ON DELETE SET NULL,
    created_at                 timestamptz NOT NULL DEFAULT now(),
    updated_at                 timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE deliveries ALTER COLUMN app_id DROP NOT NULL;
ALTER TABLE deliveries ADD COLUMN host_endpoint_id bigint REFERENCES host_endpoints (id) ON DELETE CASCADE;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_one_destination CHECK (num_nonnulls(app_id, host_endpoint_id) = 1);
CREATE INDEX deliveries_host_idx ON deliveries (host_endpoint_id, id DESC) WHERE host_endpoint_id IS NOT NULL;
CREATE INDEX deliveries_host_due_idx ON deliveries (host_endpoint_id, next_attempt_at)
    WHERE status = 'pending' AND host_endpoint_id IS NOT NULL;

-- Endpoint health and limits, per app or per host endpoint.
ALTER TABLE endpoints DROP CONSTRAINT endpoints_pkey;
ALTER TABLE endpoints ALTER COLUMN app_id DROP NOT NULL;
ALTER TABLE endpoints ADD CONSTRAINT endpoints_app_id_key UNIQUE (app_id);
ALTER TABLE endpoints ADD COLUMN host_endpoint_id bigint REFERENCES host_endpoints (id) ON DELETE CASCADE;
ALTER TABLE endpoints ADD CONSTRAINT endpoints_host_endpoint_id_key UNIQUE (host_endpoint_id);
ALTER TABLE endpoints ADD CONSTRAINT endpoints_one_destination CHECK (num_nonnulls(app_id, host_endpoint_id) = 1);

-- The platform events the host receives, beside the lifecycle events that
-- partners receive too. Built in: the host never publishes them itself.
INSERT INTO event_types (name, resource, scope, description, builtin, schema) VALUES
    ('installation.config_updated', 'installation', '',
     'The partner changed an installation''s config vars; carries the names that changed, never the values. Sent to host endpoints.', true,
     '{"type": "object", "required": ["installation", "changed"], "properties": {"installation": {"type": "object", "required": ["uuid"], "properties": {"uuid": {"type": "string", "format": "uuid"}}}, "organization": {"type": "object", "required": ["id", "slug", "name"], "properties": {"id": {"type": "string"}, "slug": {"type": "string"}, "name": {"type": "string"}}}, "changed": {"type": "array", "items": {"type": "string"}}}}'),
    ('app.published', 'app', '',
     'An operator published an app: it is listed in the marketplace. Sent to host endpoints.', true,
     '{"type": "object", "required": ["app", "organization"], "properties": {"app": {"type": "object", "required": ["id", "slug", "name", "status"], "properties": {"id": {"type": "string"}, "slug": {"type": "string"}, "name": {"type": "string"}, "status": {"type": "string"}}}, "organization": {"type": "object", "required": ["id", "slug", "name"], "properties": {"id": {"type": "string"}, "slug": {"type": "string"}, "name": {"type": "string"}}}}}'),
    ('app.unpublished', 'app', '',
     'A published app left the marketplace: rejected by an operator, or deleted. Sent to host endpoints.', true,
     '{"type": "object", "required": ["app", "organization", "reason"], "properties": {"app": {"type": "object", "required": ["id", "slug", "name", "status"], "properties": {"id": {"type": "string"}, "slug": {"type": "string"}, "name": {"type": "string"}, "status": {"type": "string"}}}, "organization": {"type": "object", "required": ["id", "slug", "name"], "properties": {"id": {"type": "string"}, "slug": {"type": "string"}, "name": {"type": "string"}}}, "reason": {"type": "string"}}}')
-- 00013 (provisioning) made installation.config_updated without a schema:
-- this gives it the host's description and schema.
ON CONFLICT (name) DO UPDATE SET description = EXCLUDED.description, schema = EXCLUDED.schema;

-- +goose Down
DELETE FROM event_types WHERE name IN ('app.published', 'app.unpublished'); -- installation.config_updated is 00013's
DELETE FROM endpoints WHERE host_endpoint_id IS NOT NULL;
ALTER TABLE endpoints DROP CONSTRAINT endpoints_one_destination;
ALTER TABLE endpoints DROP COLUMN host_endpoint_id;
ALTER TABLE endpoints DROP CONSTRAINT endpoints_app_id_key;
ALTER TABLE endpoints ALTER COLUMN app_id SET NOT NULL;
ALTER TABLE endpoints ADD PRIMARY KEY (app_id);
DELETE FROM deliveries WHERE host_endpoint_id IS NOT NULL;
DROP INDEX deliveries_host_due_idx;
DROP INDEX deliveries_host_idx;
ALTER TABLE deliveries DROP CONSTRAINT deliveries_one_destination;
ALTER TABLE deliveries DROP COLUMN host_endpoint_id;
ALTER TABLE deliveries ALTER COLUMN app_id SET NOT NULL;
DROP TABLE host_endpoints;
