-- Suspension: an installation can be suspended by an organization admin,
-- by the app itself, by an operator, or by the operator's kill switch on
-- its app. Suspension overlays the status: a suspended installation stays
-- 'installed' (or 'provisioning'), so uniqueness, billing and uninstall
-- keep working, and lifting it puts back exactly what was there.
--
-- installations.suspended_at: set while suspended, NULL otherwise.
-- installations.suspended_by: who suspended it and so who may lift it:
--   'user:<id>'      an organization admin (any admin of the organization,
--                    or an operator, may lift it)
--   'app'            the app itself (the app, an org admin or an operator)
--   'operator:<id>'  an operator
--   'app_suspension' the kill switch on the app; lifting the app's
--                    suspension lifts exactly these
-- installations.suspension_reason: shown to the organization.
--
-- apps.status grows 'suspended': the operator's kill switch. The app
-- leaves the directory; apps.status_reason says why. apps.suspended_from
-- keeps the status it had (published, normally) so lifting restores it.

-- +goose Up
ALTER TABLE installations ADD COLUMN suspended_at timestamptz;
ALTER TABLE installations ADD COLUMN suspended_by text NOT NULL DEFAULT '';
ALTER TABLE installations ADD COLUMN suspension_reason text NOT NULL DEFAULT '';
CREATE INDEX installations_suspended_idx ON installations (app_id) WHERE suspended_at IS NOT NULL;

ALTER TABLE apps ADD COLUMN suspended_from text NOT NULL DEFAULT '';
ALTER TABLE apps DROP CONSTRAINT apps_status_check;
ALTER TABLE apps ADD CONSTRAINT apps_status_check
    CHECK (status IN ('draft', 'submitted', 'published', 'rejected', 'suspended'));

-- +goose Down
ALTER TABLE apps DROP CONSTRAINT apps_status_check;
ALTER TABLE apps ADD CONSTRAINT apps_status_check
    CHECK (status IN ('draft', 'submitted', 'published', 'rejected'));
ALTER TABLE apps DROP COLUMN suspended_from;
DROP INDEX installations_suspended_idx;
ALTER TABLE installations DROP COLUMN suspension_reason;
ALTER TABLE installations DROP COLUMN suspended_by;
ALTER TABLE installations DROP COLUMN suspended_at;
