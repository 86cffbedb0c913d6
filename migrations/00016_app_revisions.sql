-- App revisions and the permission requests they leave on installations.
--
-- A published app (one that has ever been published: apps.published_at is
-- set, so other organizations may have it installed) no longer changes what
-- it may do at once. Changes to scopes, events, webhook_url, redirect_url,
-- provision_url, sso_url, sync_url (and kind, which never changes) form an
-- app_revisions row instead:
--   status   'draft' (being edited by PUT /api/0/apps/{app_slug}/),
--            'submitted' (waiting for an operator), 'approved' (applied to
--            the app) or 'rejected' (status_reason says why); at most one
--            draft or submitted revision per app (apps_revisions_open_key)
--   number   1, 2, … per app, what the partner and the operators read
--   base     the app's values of those fields when the revision was last
--            edited: the "before" of its diff
--   changes  the proposed values of the fields that differ from base
--
-- installations.events: the event types the installation receives. Until
-- now deliveries went to every installation whose app subscribed; now an
-- approved revision that subscribes to more events leaves them out of each
-- installation until its organization accepts them. Existing installations
-- get their app's events.
--
-- permission_requests: what an approved revision asks of one installation
-- beyond what it has (scopes, events), waiting for an organization admin
-- (status 'pending'; at most one per installation, merged when a later
-- revision asks for more), then 'accepted' (by accepted_by, at
-- accepted_at) or 'withdrawn' (a later revision took back all it asked).
--
-- The builtin event type installation.permissions_accepted tells the
-- partner an organization accepted what its revision asked.

-- +goose Up
CREATE TABLE app_revisions (
    id            bigserial   PRIMARY KEY,
    app_id        bigint      NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    number        integer     NOT NULL,
    status        text        NOT NULL CHECK (status IN ('draft', 'submitted', 'approved', 'rejected')),
    status_reason text        NOT NULL DEFAULT '',
    base          jsonb       NOT NULL DEFAULT '{}',
    changes       jsonb       NOT NULL DEFAULT '{}',
    created_by    bigint      REFERENCES users (id) ON DELETE SET NULL,
    reviewed_by   bigint      REFERENCES users (id) ON DELETE SET NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    submitted_at  timestamptz,
    reviewed_at   timestamptz,
    UNIQUE (app_id, number)
);
CREATE UNIQUE INDEX app_revisions_open_key ON app_revisions (app_id) WHERE status IN ('draft', 'submitted');
CREATE INDEX app_revisions_submitted_idx ON app_revisions (submitted_at) WHERE status = 'submitted';

ALTER TABLE installations ADD COLUMN events jsonb NOT NULL DEFAULT '[]';
UPDATE installations i SET events = a.events FROM apps a WHERE a.id = i.app_id;

CREATE TABLE permission_requests (
    id              bigserial   PRIMARY KEY,
    installation_id bigint      NOT NULL REFERENCES installations (id) ON DELETE CASCADE,
    revision_id     bigint      NOT NULL REFERENCES app_revisions (id) ON DELETE CASCADE,
    status          text        NOT NULL CHECK (status IN ('pending', 'accepted', 'withdrawn')),
    scopes          jsonb       NOT NULL DEFAULT '[]',
    events          jsonb       NOT NULL DEFAULT '[]',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    accepted_at     timestamptz,
    accepted_by     bigint      REFERENCES users (id) ON DELETE SET NULL
);
CREATE UNIQUE INDEX permission_requests_pending_key ON permission_requests (installation_id) WHERE status = 'pending';

INSERT INTO event_types (name, resource, scope, description, builtin, schema) VALUES
    ('installation.permissions_accepted', 'installation', '',
     'The organization accepted the new permissions an approved revision of the app asked for: scopes and events are what it gained; tokens issued from now on carry the scopes.', true,
     '{"type": "object", "required": ["installation", "scopes", "events"], "properties": {"installation": {"type": "object", "required": ["uuid", "scopes"], "properties": {"uuid": {"type": "string", "format": "uuid"}, "scopes": {"type": "array", "items": {"type": "string"}}}}, "scopes": {"type": "array", "items": {"type": "string"}}, "events": {"type": "array", "items": {"type": "string"}}}}')
ON CONFLICT (name) DO NOTHING;

-- +goose Down
DELETE FROM event_types WHERE name = 'installation.permissions_accepted';
DROP TABLE permission_requests;
ALTER TABLE installations DROP COLUMN events;
DROP TABLE app_revisions;
