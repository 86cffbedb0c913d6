-- Reconciliation: every run of a job, and what it found and repaired.

-- +goose Up
CREATE TABLE reconciliation_runs (
    id          bigserial PRIMARY KEY,
    job         text        NOT NULL,
    app_id      bigint      REFERENCES apps (id) ON DELETE CASCADE,
    slot        text        NOT NULL,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz,
    examined    integer     NOT NULL DEFAULT 0,
    found       integer     NOT NULL DEFAULT 0,
    repaired    integer     NOT NULL DEFAULT 0,
    errors      jsonb       NOT NULL DEFAULT '[]'
);
-- One run per job, app and period: a second scheduler's run is a no-op.
CREATE UNIQUE INDEX reconciliation_runs_slot_key ON reconciliation_runs (job, COALESCE(app_id, 0), slot);
CREATE INDEX reconciliation_runs_app_idx ON reconciliation_runs (app_id, id DESC);

CREATE TABLE reconciliation_findings (
    id                bigserial PRIMARY KEY,
    run_id            bigint      NOT NULL REFERENCES reconciliation_runs (id) ON DELETE CASCADE,
    app_id            bigint      NOT NULL,
    installation_uuid uuid        NOT NULL,
    reason            text        NOT NULL,
    action            text        NOT NULL DEFAULT '',
    repaired          boolean     NOT NULL DEFAULT false,
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reconciliation_findings_run_idx ON reconciliation_findings (run_id);
CREATE INDEX reconciliation_findings_app_idx ON reconciliation_findings (app_id, run_id);

-- +goose Down
DROP TABLE reconciliation_findings;
DROP TABLE reconciliation_runs;
