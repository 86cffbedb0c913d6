-- Event data and attempt headers as json, not jsonb (issue #19).
--
-- Both are written once and read back whole: an event's data goes into
-- the body of every delivery of it, an attempt's request and response
-- headers into the delivery log. No statement looks inside them in an
-- index or a filter. As jsonb each was parsed into its binary tree on the
-- way in and printed back to text on the way out, and the way out is paid
-- once per delivery: fan-out 20 printed each event's data twenty times.
-- Measured on this project's benchmark machine, 200,000 values each:
--
--   1 KiB event data, in      jsonb 1.8 µs a value, json 0.5, text 0.05
--   1 KiB event data, out     jsonb 3.3 µs, json (as text) 0.05
--   request headers (300 B)   jsonb 2.2 µs, json 0.6, text 0.06
--
-- about 6 µs of PostgreSQL per delivery in the fan-out run, a twentieth
-- of the box's CPU per delivery. json still checks that each value is
-- JSON and stores it as written: partners receive the data in the order
-- the host wrote it (jsonb sorted keys by length and added spaces), and
-- the log shows headers in the order they were sent. The outbox
-- stores event data as json.Marshal wrote it, compact, so bodies carry no
-- whitespace the host sent. The ->> operator the bench's
-- log check uses works on both.
--
-- The change rewrites events and attempts (ALTER COLUMN TYPE): on a large
-- database each holds an exclusive lock on its table while it runs;
-- publishes, drains and the delivery log wait for it.

-- +goose Up
ALTER TABLE events ALTER COLUMN data TYPE json USING data::json;
ALTER TABLE attempts
    ALTER COLUMN request_headers TYPE json USING request_headers::json,
    ALTER COLUMN response_headers TYPE json USING response_headers::json;

-- +goose Down
ALTER TABLE events ALTER COLUMN data TYPE jsonb USING data::jsonb;
ALTER TABLE attempts
    ALTER COLUMN request_headers TYPE jsonb USING request_headers::jsonb,
    ALTER COLUMN response_headers TYPE jsonb USING response_headers::jsonb;
