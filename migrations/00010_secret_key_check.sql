-- A value sealed under PLUGBOARD_SECRET_KEY, so that start-up can tell a
-- key that is not the one the stored secrets were sealed with (a container
-- recreated with a fresh key) and stop, instead of serving while every
-- webhook fails to sign. One row.
-- +goose Up
CREATE TABLE secret_key_checks (
    id         smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    sealed     bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    rotated_at timestamptz
);
-- +goose Down
DROP TABLE secret_key_checks;
