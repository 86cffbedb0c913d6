-- Billing: plans that bill, metered usage, and the ledger of periods and
-- invoices the host collects (docs/guides/billing.md explains the rules).
--
-- Two vocabularies, on purpose:
--   * the catalogue (plans) speaks decimals, as the API does: price,
--     unit_price and capped_amount are exact numerics written with the
--     currency's digits ("45.00" USD, "4500" JPY, "1.500" KWD);
--   * the ledger (plan_prices, usage_records, invoices, invoice_lines)
--     speaks integer minor units (bigint), and everything billed is
--     computed there. marketplace/money.go converts, with the ISO 4217
--     digits of golang.org/x/text/currency.
--
-- plans grow pricing_model ('flat' a price per month or year, 'per_unit' a
-- price per unit of a metered quantity, 'free'), unit_price, unit_name,
-- included_units (free per period), capped_amount (per period, NULL: no
-- cap), trial_days.
--
-- plan_prices: the versions of a plan's price. A period is priced by the
-- version with the latest effective_from <= the period's start. A change
-- to a plan somebody was on during the open period takes effect at the
-- next period's start; otherwise it replaces the open period's version.
-- The ledger keeps no foreign keys to plans, apps, installations or
-- organizations: it outlives them (a plan deleted mid-period is still
-- billed for the time it was used).
--
-- installation_plan_intervals: when each installation was live on which
-- plan, [started_at, ended_at), ended_at NULL while it lasts. Kept by the
-- triggers below, from installations.updated_at (which every change sets,
-- with the services' clock), so every way an installation changes plan or
-- ends — API, UI, provisioning, reconciliation, suspension work that does
-- not touch plan or status — is recorded without each path remembering
-- to: proration reads only this table. Live means pending, provisioning
-- or installed (Heroku bills from provisioning start); suspension does not
-- stop billing. An installation that ends 'failed' (its verification or
-- provisioning was refused) was never usable: its intervals are dropped.
--
-- installations.trial_ends_at: set on insert from the plan's trial_days
-- when the organization never had this app before (one trial per app and
-- organization); trial time is free. trial_will_end_sent_at: the partner
-- was told (installation.trial_will_end), once.
--
-- usage_records: what the app reports, idempotent per (installation,
-- idempotency_key); plan_id is the plan the installation was on at
-- recorded_at (the user's "timestamp").
--
-- A period is named by its first instant (timestamptz, UTC midnight of
-- the 1st), never a date, which would depend on the session's time zone;
-- it ends at the next month's first instant.
--
-- billing_closes: one row per (organization, period) closed — the unique
-- key that makes a second run, or a second scheduler, a no-op. It is
-- written in the same transaction as the organization's invoices, so a
-- close killed midway leaves neither. billing_periods: a period every
-- organization of which is closed.
--
-- invoices: one per organization, period and currency; status open → paid
-- | void | uncollectible (the host's collection outcome, paid_at when
-- paid). invoice_lines: one per installation, plan and charge ('flat' or
-- 'usage'), with app_id, plan_id, currency and amount for the partner's
-- revenue and payouts.
--
-- apps.billing_commission_bps: the platform's commission on the app's paid
-- invoices in basis points, set by an operator; NULL: the platform's
-- default (PLUGBOARD_BILLING_COMMISSION).

-- +goose Up
ALTER TABLE plans ALTER COLUMN price TYPE numeric;
ALTER TABLE plans ADD COLUMN pricing_model text NOT NULL DEFAULT 'flat'
    CHECK (pricing_model IN ('flat', 'per_unit', 'free'));
ALTER TABLE plans ADD COLUMN unit_price numeric CHECK (unit_price >= 0);
ALTER TABLE plans ADD COLUMN unit_name text NOT NULL DEFAULT '';
ALTER TABLE plans ADD COLUMN included_units bigint NOT NULL DEFAULT 0 CHECK (included_units >= 0);
ALTER TABLE plans ADD COLUMN capped_amount numeric CHECK (capped_amount >= 0);
ALTER TABLE plans ADD COLUMN trial_days integer NOT NULL DEFAULT 0 CHECK (trial_days BETWEEN 0 AND 365);
UPDATE plans SET pricing_model = 'free' WHERE price = 0;
-- Zero- and three-digit currencies lose or gain the digits they do not have.
UPDATE plans SET price = round(price, 0) WHERE currency IN ('BIF', 'CLP', 'DJF', 'GNF', 'ISK', 'JPY', 'KMF', 'KRW', 'PYG', 'RWF', 'UGX', 'UYI', 'VND', 'VUV', 'XAF', 'XOF', 'XPF');
UPDATE plans SET price = round(price, 3) WHERE currency IN ('BHD', 'IQD', 'JOD', 'KWD', 'LYD', 'OMR', 'TND');

CREATE TABLE plan_prices (
    id             bigserial   PRIMARY KEY,
    plan_id        bigint      NOT NULL,
    app_id         bigint      NOT NULL,
    effective_from timestamptz NOT NULL,
    pricing_model  text        NOT NULL CHECK (pricing_model IN ('flat', 'per_unit', 'free')),
    currency       text        NOT NULL,
    interval       text        NOT NULL CHECK (interval IN ('month', 'year')),
    amount         bigint      NOT NULL DEFAULT 0 CHECK (amount >= 0),
    unit_price     bigint      NOT NULL DEFAULT 0 CHECK (unit_price >= 0),
    unit_name      text        NOT NULL DEFAULT '',
    included_units bigint      NOT NULL DEFAULT 0 CHECK (included_units >= 0),
    capped_amount  bigint      CHECK (capped_amount >= 0),
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (plan_id, effective_from)
);
INSERT INTO plan_prices (plan_id, app_id, effective_from, pricing_model, currency, interval, amount, created_at)
SELECT id, app_id, date_trunc('month', created_at, 'UTC'), pricing_model, currency, interval,
       (price * 10 ^ (CASE WHEN currency IN ('BIF', 'CLP', 'DJF', 'GNF', 'ISK', 'JPY', 'KMF', 'KRW', 'PYG', 'RWF', 'UGX', 'UYI', 'VND', 'VUV', 'XAF', 'XOF', 'XPF') THEN 0
                              WHEN currency IN ('BHD', 'IQD', 'JOD', 'KWD', 'LYD', 'OMR', 'TND') THEN 3 ELSE 2 END))::bigint,
       created_at
FROM plans;

ALTER TABLE installations ADD COLUMN trial_ends_at timestamptz;
ALTER TABLE installations ADD COLUMN trial_will_end_sent_at timestamptz;
CREATE INDEX installations_trial_idx ON installations (trial_ends_at)
    WHERE trial_ends_at IS NOT NULL AND trial_will_end_sent_at IS NULL;

CREATE TABLE installation_plan_intervals (
    id              bigserial   PRIMARY KEY,
    installation_id bigint      NOT NULL,
    organization_id bigint      NOT NULL,
    app_id          bigint      NOT NULL,
    plan_id         bigint      NOT NULL,
    started_at      timestamptz NOT NULL,
    ended_at        timestamptz CHECK (ended_at >= started_at)
);
CREATE INDEX installation_plan_intervals_org_idx ON installation_plan_intervals (organization_id, started_at);
CREATE INDEX installation_plan_intervals_installation_idx ON installation_plan_intervals (installation_id, started_at);
CREATE INDEX installation_plan_intervals_plan_idx ON installation_plan_intervals (plan_id, ended_at);
-- What was there before: an installation on its present plan since it was made.
INSERT INTO installation_plan_intervals (installation_id, organization_id, app_id, plan_id, started_at, ended_at)
SELECT id, organization_id, app_id, plan_id, created_at,
       CASE WHEN status IN ('pending', 'provisioning', 'installed') THEN NULL ELSE greatest(created_at, coalesce(deleted_at, updated_at)) END
FROM installations WHERE plan_id IS NOT NULL AND status <> 'failed';

-- +goose StatementBegin
CREATE FUNCTION billing_installation_trial() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    days integer;
BEGIN
    IF NEW.plan_id IS NULL OR NEW.trial_ends_at IS NOT NULL THEN
        RETURN NEW;
    END IF;
    SELECT trial_days INTO days FROM plans WHERE id = NEW.plan_id;
    IF coalesce(days, 0) > 0 AND NOT EXISTS (
        SELECT 1 FROM installations WHERE app_id = NEW.app_id AND organization_id = NEW.organization_id) THEN
        NEW.trial_ends_at := NEW.created_at + days * interval '24 hours'; -- days of 24 hours, whatever the session's time zone
    END IF;
    RETURN NEW;
END $$;
-- +goose StatementEnd
CREATE TRIGGER installations_billing_trial BEFORE INSERT ON installations
    FOR EACH ROW EXECUTE FUNCTION billing_installation_trial();

-- +goose StatementBegin
CREATE FUNCTION billing_installation_intervals() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    was_live boolean := false;
    is_live  boolean := false;
    at       timestamptz;
BEGIN
    IF TG_OP = 'DELETE' THEN
        UPDATE installation_plan_intervals SET ended_at = greatest(started_at, now())
        WHERE installation_id = OLD.id AND ended_at IS NULL;
        RETURN OLD;
    END IF;
    is_live := NEW.status IN ('pending', 'provisioning', 'installed') AND NEW.plan_id IS NOT NULL;
    IF TG_OP = 'INSERT' THEN
        at := NEW.created_at;
    ELSE
        was_live := OLD.status IN ('pending', 'provisioning', 'installed') AND OLD.plan_id IS NOT NULL;
        IF was_live = is_live AND OLD.plan_id IS NOT DISTINCT FROM NEW.plan_id THEN
            RETURN NEW;
        END IF;
        -- The change's own time; a writer that did not move updated_at gets the database's.
        at := CASE WHEN NEW.updated_at IS DISTINCT FROM OLD.updated_at THEN NEW.updated_at ELSE now() END;
        UPDATE installation_plan_intervals SET ended_at = greatest(started_at, at)
        WHERE installation_id = NEW.id AND ended_at IS NULL;
        IF NEW.status = 'failed' THEN
            DELETE FROM installation_plan_intervals WHERE installation_id = NEW.id;
        END IF;
    END IF;
    IF is_live THEN
        INSERT INTO installation_plan_intervals (installation_id, organization_id, app_id, plan_id, started_at)
        VALUES (NEW.id, NEW.organization_id, NEW.app_id, NEW.plan_id, at);
    END IF;
    RETURN NEW;
END $$;
-- +goose StatementEnd
CREATE TRIGGER installations_billing_intervals AFTER INSERT OR UPDATE OF plan_id, status OR DELETE ON installations
    FOR EACH ROW EXECUTE FUNCTION billing_installation_intervals();

CREATE TABLE usage_records (
    id              bigserial   PRIMARY KEY,
    installation_id bigint      NOT NULL,
    organization_id bigint      NOT NULL,
    app_id          bigint      NOT NULL,
    plan_id         bigint      NOT NULL,
    quantity        bigint      NOT NULL CHECK (quantity >= 0),
    recorded_at     timestamptz NOT NULL,
    idempotency_key text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (installation_id, idempotency_key)
);
CREATE INDEX usage_records_org_idx ON usage_records (organization_id, recorded_at);
CREATE INDEX usage_records_installation_idx ON usage_records (installation_id, id);
CREATE INDEX usage_records_app_idx ON usage_records (app_id, recorded_at);

CREATE TABLE billing_closes (
    organization_id bigint      NOT NULL,
    period          timestamptz NOT NULL CHECK (period = date_trunc('month', period, 'UTC')),
    invoices        integer     NOT NULL DEFAULT 0,
    closed_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, period)
);

CREATE TABLE billing_periods (
    period        timestamptz PRIMARY KEY CHECK (period = date_trunc('month', period, 'UTC')),
    organizations integer     NOT NULL DEFAULT 0,
    closed_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE invoices (
    id              bigserial   PRIMARY KEY,
    organization_id bigint      NOT NULL,
    period          timestamptz NOT NULL CHECK (period = date_trunc('month', period, 'UTC')),
    period_end      timestamptz NOT NULL,
    currency        text        NOT NULL,
    total           bigint      NOT NULL CHECK (total >= 0),
    status          text        NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'paid', 'void', 'uncollectible')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    paid_at         timestamptz,
    voided_at       timestamptz,
    uncollectible_at timestamptz,
    UNIQUE (organization_id, period, currency)
);
CREATE INDEX invoices_org_idx ON invoices (organization_id, id DESC);
CREATE INDEX invoices_status_idx ON invoices (status, id);
CREATE INDEX invoices_paid_idx ON invoices (paid_at) WHERE paid_at IS NOT NULL;

CREATE TABLE invoice_lines (
    id                bigserial   PRIMARY KEY,
    invoice_id        bigint      NOT NULL REFERENCES invoices (id) ON DELETE CASCADE,
    organization_id   bigint      NOT NULL,
    period            timestamptz NOT NULL,
    installation_id   bigint      NOT NULL,
    installation_uuid uuid        NOT NULL,
    app_id            bigint      NOT NULL,
    plan_id           bigint      NOT NULL,
    plan_price_id     bigint      NOT NULL,
    kind              text        NOT NULL CHECK (kind IN ('flat', 'usage')),
    description       text        NOT NULL DEFAULT '',
    currency          text        NOT NULL,
    -- flat: billable seconds (live on the plan, outside the trial);
    -- usage: the units reported outside the trial.
    quantity          bigint      NOT NULL CHECK (quantity >= 0),
    -- flat: seconds in the period; usage: units free per period.
    included          bigint      NOT NULL DEFAULT 0,
    -- flat: the plan's price per interval; usage: the price of one unit.
    unit_price        bigint      NOT NULL CHECK (unit_price >= 0),
    interval          text        NOT NULL DEFAULT '',
    capped_amount     bigint,
    amount            bigint      NOT NULL CHECK (amount >= 0),
    starts_at         timestamptz NOT NULL,
    ends_at           timestamptz NOT NULL
);
CREATE INDEX invoice_lines_invoice_idx ON invoice_lines (invoice_id, id);
CREATE INDEX invoice_lines_app_idx ON invoice_lines (app_id, period);

ALTER TABLE apps ADD COLUMN billing_commission_bps integer CHECK (billing_commission_bps BETWEEN 0 AND 10000);

INSERT INTO event_types (name, resource, scope, description, builtin, schema) VALUES
    ('invoice.created', 'invoice', '',
     'A billing period closed and an organization has an invoice to collect, one per currency. Sent to host endpoints.', true,
     '{"type": "object", "required": ["invoice", "organization"], "properties": {"invoice": {"type": "object", "required": ["id", "status", "currency", "total", "period", "lines"], "properties": {"id": {"type": "string"}, "status": {"type": "string"}, "currency": {"type": "string"}, "total": {"type": "string"}, "period": {"type": "string"}, "lines": {"type": "array"}}}, "organization": {"type": "object", "required": ["id", "slug", "name"], "properties": {"id": {"type": "string"}, "slug": {"type": "string"}, "name": {"type": "string"}}}}}'),
    ('installation.trial_will_end', 'installation', '',
     'An installation''s free trial ends in three days. Sent to the app, once per installation.', true,
     '{"type": "object", "required": ["installation", "trialEndsAt"], "properties": {"installation": {"type": "object", "required": ["uuid"], "properties": {"uuid": {"type": "string", "format": "uuid"}}}, "trialEndsAt": {"type": "string", "format": "date-time"}}}')
ON CONFLICT (name) DO NOTHING;

-- +goose Down
DELETE FROM event_types WHERE name IN ('invoice.created', 'installation.trial_will_end');
ALTER TABLE apps DROP COLUMN billing_commission_bps;
DROP TABLE invoice_lines;
DROP TABLE invoices;
DROP TABLE billing_periods;
DROP TABLE billing_closes;
DROP TABLE usage_records;
DROP TRIGGER installations_billing_intervals ON installations;
DROP FUNCTION billing_installation_intervals();
DROP TRIGGER installations_billing_trial ON installations;
DROP FUNCTION billing_installation_trial();
DROP TABLE installation_plan_intervals;
DROP INDEX installations_trial_idx;
ALTER TABLE installations DROP COLUMN trial_will_end_sent_at;
ALTER TABLE installations DROP COLUMN trial_ends_at;
DROP TABLE plan_prices;
ALTER TABLE plans DROP COLUMN trial_days;
ALTER TABLE plans DROP COLUMN capped_amount;
ALTER TABLE plans DROP COLUMN included_units;
ALTER TABLE plans DROP COLUMN unit_name;
ALTER TABLE plans DROP COLUMN unit_price;
ALTER TABLE plans DROP COLUMN pricing_model;
ALTER TABLE plans ALTER COLUMN price TYPE numeric(12,2);
