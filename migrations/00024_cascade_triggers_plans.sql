-- The trigger functions of 00019 and 00022 plan by index whatever their
-- first call was, and TRUNCATE is held to the foreign keys' rule.
--
-- * A static query in PL/pgSQL keeps its plan for the connection's life,
--   made for the first call's transition table: once one statement had
--   deleted 20,000 deliveries, every later delete of one on that
--   connection scanned the whole of attempts and of delivery_queue (hash
--   joins, seen with auto_explain), and delivery_queue_update, which runs
--   on every recorded outcome, would do the same after one large update.
--   The functions that join a transition table to a table run with hash
--   and merge joins and sequential scans off (a SET on the function, for
--   its calls only): their plans are index lookups per row, right for one
--   row and for thousands, and still made once per connection.
-- * TRUNCATE fires no DELETE trigger. The foreign keys refused TRUNCATE
--   events (or apps) while deliveries referred to them; without them it
--   would leave deliveries that no claim can read (the claim joins their
--   event) pending for ever. An AFTER TRUNCATE trigger, which runs once
--   every table of the statement is emptied, refuses the statement when
--   rows that referred to the truncated ones remain: TRUNCATE events,
--   deliveries, attempts together still works.
--
-- The triggers see what READ COMMITTED sees (the level Plugboard runs
-- at): their statement takes a snapshot after the rows it deletes were
-- locked, so deliveries committed meanwhile are deleted too.

-- +goose Up
ALTER FUNCTION deliveries_of_apps_delete() SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off;
ALTER FUNCTION deliveries_of_events_delete() SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off;
ALTER FUNCTION attempts_of_deliveries_delete() SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off;
ALTER FUNCTION delivery_queue_update() SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off;
ALTER FUNCTION delivery_queue_delete() SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off;

-- +goose StatementBegin
CREATE FUNCTION cascades_truncate_check() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'apps' AND EXISTS (SELECT 1 FROM deliveries WHERE app_id IS NOT NULL) THEN
        RAISE EXCEPTION 'cannot truncate apps: deliveries refer to them (truncate deliveries too, or delete the apps)'
            USING ERRCODE = 'foreign_key_violation';
    ELSIF TG_TABLE_NAME = 'events' AND EXISTS (SELECT 1 FROM deliveries) THEN
        RAISE EXCEPTION 'cannot truncate events: deliveries refer to them (truncate deliveries too, or delete the events)'
            USING ERRCODE = 'foreign_key_violation';
    ELSIF TG_TABLE_NAME = 'deliveries' AND EXISTS (SELECT 1 FROM attempts) THEN
        RAISE EXCEPTION 'cannot truncate deliveries: attempts refer to them (truncate attempts too, or delete the deliveries)'
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;
-- +goose StatementEnd

CREATE TRIGGER apps_cascades_truncate AFTER TRUNCATE ON apps FOR EACH STATEMENT EXECUTE FUNCTION cascades_truncate_check();
CREATE TRIGGER events_cascades_truncate AFTER TRUNCATE ON events FOR EACH STATEMENT EXECUTE FUNCTION cascades_truncate_check();
CREATE TRIGGER deliveries_cascades_truncate AFTER TRUNCATE ON deliveries FOR EACH STATEMENT EXECUTE FUNCTION cascades_truncate_check();

-- +goose Down
DROP TRIGGER deliveries_cascades_truncate ON deliveries;
DROP TRIGGER events_cascades_truncate ON events;
DROP TRIGGER apps_cascades_truncate ON apps;
DROP FUNCTION cascades_truncate_check();
ALTER FUNCTION delivery_queue_delete() RESET ALL;
ALTER FUNCTION delivery_queue_update() RESET ALL;
ALTER FUNCTION attempts_of_deliveries_delete() RESET ALL;
ALTER FUNCTION deliveries_of_events_delete() RESET ALL;
ALTER FUNCTION deliveries_of_apps_delete() RESET ALL;
