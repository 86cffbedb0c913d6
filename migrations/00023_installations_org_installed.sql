-- Finding an event's recipients reads only the organizations' installed
-- installations (issue #19).
--
-- The recipients query (marketplace.WebhookDirectory.RecipientsQuery)
-- asks for organization_id = ANY($1) AND status = 'installed'. Without
-- fresh statistics (this server runs with autovacuum off, and nothing is
-- analyzed after bulk installs) the planner ANDed installations_org_idx
-- with the partial installations_live_key, whose predicate the status
-- implies, and so read the whole of installations_live_key per publish:
-- in the bench's mix (2,000 organizations, 4,000 installations) 1,232 rows
-- per scan, 64 rows read per delivery, most of PostgreSQL's time. A
-- partial index on the organization with the very status answers the
-- query alone, whatever the statistics say.

-- +goose NO TRANSACTION
-- +goose Up
CREATE INDEX CONCURRENTLY IF NOT EXISTS installations_org_installed_idx ON installations (organization_id) WHERE status = 'installed';

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS installations_org_installed_idx;
