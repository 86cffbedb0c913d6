-- Fewer foreign-key checks per delivery (issue #19).
--
-- Every delivery row inserted ran two per-row foreign-key checks that
-- could not fail (deliveries.event_id: the event is inserted by the same
-- statement; deliveries.app_id: the recipients were read from apps a
-- moment before), and every attempt one more (attempts.delivery_id: the
-- claim holds the delivery's row locked). Each is an AFTER ROW trigger
-- running a query through SPI: with 100 deliveries published in one
-- statement, 1.4 ms of the insert's 8.8 ms, and 0.6 ms of the record's.
-- The rows they reference are deleted rarely (an app, with its
-- organization or alone; a host endpoint's deliveries), so the cascades move to
-- statement-level AFTER DELETE triggers with transition tables: one
-- trigger call per statement, whatever the rows, where the foreign keys'
-- cascades ran one query per deleted row. ON DELETE CASCADE is kept:
--
-- * events → deliveries, apps → deliveries: events_deliveries_delete and
--   apps_deliveries_delete delete the deliveries of the deleted rows.
-- * deliveries → attempts: deliveries_attempts_delete deletes their
--   attempts (and delivery_queue loses them as before).
--
-- What the foreign keys' checks also did, holding the referenced row until
-- the inserting transaction ends, is done where it is needed, once per
-- statement instead of once per row:
--
-- * An app deleted while a publish writes deliveries to it: the publish
--   statement locks the recipients' apps rows FOR KEY SHARE (publishSQL,
--   one lock per app, not per delivery) and writes deliveries only to apps
--   it locked. A delete that committed first leaves no row to lock, and
--   the publish writes nothing to that app (where the foreign key failed
--   the whole publish); a delete that comes second waits for the publish
--   to commit, and its trigger's statement, which takes a new snapshot,
--   sees the new deliveries and deletes them.
-- * An event is never deleted between its insert and its deliveries': one
--   statement writes both.
-- * An attempt is written only by the record of a claim, which holds the
--   delivery row locked (FOR NO KEY UPDATE): a delete of the delivery
--   waits for the record to commit, and its trigger then sees the attempt.
--
-- deliveries.host_endpoint_id keeps its foreign key: it is NULL for app
-- deliveries, whose check then costs next to nothing.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION deliveries_of_apps_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM deliveries d USING old_rows o WHERE d.app_id = o.id;
    RETURN NULL;
END $$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION deliveries_of_events_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM deliveries d USING old_rows o WHERE d.event_id = o.id;
    RETURN NULL;
END $$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION attempts_of_deliveries_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM attempts a USING old_rows o WHERE a.delivery_id = o.id;
    RETURN NULL;
END $$;
-- +goose StatementEnd

CREATE TRIGGER apps_deliveries_delete AFTER DELETE ON apps
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION deliveries_of_apps_delete();
CREATE TRIGGER events_deliveries_delete AFTER DELETE ON events
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION deliveries_of_events_delete();
CREATE TRIGGER deliveries_attempts_delete AFTER DELETE ON deliveries
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION attempts_of_deliveries_delete();

ALTER TABLE deliveries DROP CONSTRAINT deliveries_app_id_fkey;
ALTER TABLE deliveries DROP CONSTRAINT deliveries_event_id_fkey;
ALTER TABLE attempts DROP CONSTRAINT attempts_delivery_id_fkey;

-- +goose Down
DELETE FROM deliveries d WHERE d.app_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM apps a WHERE a.id = d.app_id);
DELETE FROM deliveries d WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.id = d.event_id);
DELETE FROM attempts a WHERE NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.id = a.delivery_id);
ALTER TABLE attempts ADD CONSTRAINT attempts_delivery_id_fkey FOREIGN KEY (delivery_id) REFERENCES deliveries (id) ON DELETE CASCADE NOT VALID;
ALTER TABLE attempts VALIDATE CONSTRAINT attempts_delivery_id_fkey;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_event_id_fkey FOREIGN KEY (event_id) REFERENCES events (id) ON DELETE CASCADE NOT VALID;
ALTER TABLE deliveries VALIDATE CONSTRAINT deliveries_event_id_fkey;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_app_id_fkey FOREIGN KEY (app_id) REFERENCES apps (id) ON DELETE CASCADE NOT VALID;
ALTER TABLE deliveries VALIDATE CONSTRAINT deliveries_app_id_fkey;
DROP TRIGGER deliveries_attempts_delete ON deliveries;
DROP TRIGGER events_deliveries_delete ON events;
DROP TRIGGER apps_deliveries_delete ON apps;
DROP FUNCTION attempts_of_deliveries_delete();
DROP FUNCTION deliveries_of_events_delete();
DROP FUNCTION deliveries_of_apps_delete();
