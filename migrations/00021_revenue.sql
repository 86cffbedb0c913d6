-- Partner revenue: the platform's commission per app, as a history.
--
-- app_commissions: every commission an operator set on an app, in basis
-- points (2000 = 20 %), from effective_at on; bps NULL returns the app to
-- the platform's default (PLUGBOARD_BILLING_COMMISSION). A paid invoice's
-- lines are paid out at the rate in force when the invoice was paid (the
-- latest row with effective_at <= paid_at), so changing a commission never
-- rewrites a statement already paid. No foreign key to apps: the history
-- outlives the app, as the ledger does (00018).
--
-- It replaces apps.billing_commission_bps (00018), which held only the
-- present override: its values become the first row of each app's
-- history, in force since the app was made.

-- +goose Up
CREATE TABLE app_commissions (
    id           bigserial   PRIMARY KEY,
    app_id       bigint      NOT NULL,
    bps          integer     CHECK (bps BETWEEN 0 AND 10000),
    effective_at timestamptz NOT NULL,
    set_by       bigint,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX app_commissions_app_idx ON app_commissions (app_id, effective_at DESC, id DESC);
INSERT INTO app_commissions (app_id, bps, effective_at)
SELECT id, billing_commission_bps, created_at FROM apps WHERE billing_commission_bps IS NOT NULL;
ALTER TABLE apps DROP COLUMN billing_commission_bps;

-- +goose Down
ALTER TABLE apps ADD COLUMN billing_commission_bps integer CHECK (billing_commission_bps BETWEEN 0 AND 10000);
UPDATE apps SET billing_commission_bps = c.bps FROM (
    SELECT DISTINCT ON (app_id) app_id, bps FROM app_commissions ORDER BY app_id, effective_at DESC, id DESC) c
WHERE c.app_id = apps.id;
DROP TABLE app_commissions;
