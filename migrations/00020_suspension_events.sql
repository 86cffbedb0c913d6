-- The lifecycle events of suspension (00015 added the columns): an
-- installation is suspended by an organization admin, by the app itself
-- or by the operator's kill switch on its app, and the suspension lifted.
-- Built in, addressed to the one installation like installation.created,
-- so an app receives them without subscribing; they are the only
-- deliveries a suspended installation is sent (marketplace/suspensions.go).
-- Host endpoints may subscribe to them too (host_events.go).

-- +goose Up
INSERT INTO event_types (name, resource, scope, description, builtin, schema) VALUES
    ('installation.suspended', 'installation', '',
     'The installation was suspended (by an organization admin, by the app, or with the app by an operator): its tokens are refused and its deliveries wait, paused, until the suspension is lifted.', true,
     '{"type": "object", "required": ["installation", "suspension"], "properties": {"installation": {"type": "object", "required": ["uuid"], "properties": {"uuid": {"type": "string", "format": "uuid"}}}, "suspension": {"type": "object", "required": ["by", "reason", "dateSuspended"], "properties": {"by": {"enum": ["organization", "app", "operator", "app_suspension"]}, "reason": {"type": "string"}, "dateSuspended": {"type": "string", "format": "date-time"}}}}}'),
    ('installation.unsuspended', 'installation', '',
     'The installation''s suspension was lifted: its tokens work again, and the deliveries that waited are sent, each with its original webhook-id.', true,
     '{"type": "object", "required": ["installation", "suspension", "liftedBy"], "properties": {"installation": {"type": "object", "required": ["uuid"], "properties": {"uuid": {"type": "string", "format": "uuid"}}}, "suspension": {"type": "object", "required": ["by", "reason", "dateSuspended"], "properties": {"by": {"enum": ["organization", "app", "operator", "app_suspension"]}, "reason": {"type": "string"}, "dateSuspended": {"type": "string", "format": "date-time"}}}, "liftedBy": {"enum": ["organization", "app", "operator"]}}}')
ON CONFLICT (name) DO NOTHING;

-- +goose Down
DELETE FROM event_types WHERE name IN ('installation.suspended', 'installation.unsuspended');
