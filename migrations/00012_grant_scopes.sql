-- The scopes an OAuth authorize request asked for (scope=…), fixed on its
-- code: the tokens exchanged for it carry only those. Empty: every scope of
-- the installation, as codes of the install flow always do.
-- +goose Up
ALTER TABLE grants ADD COLUMN scopes jsonb NOT NULL DEFAULT '[]';
-- +goose Down
ALTER TABLE grants DROP COLUMN scopes;
