-- Single sign-on into the partner and OpenID Connect sign-in.
--
-- apps.sso_url is where "Open {App}" posts a signed, 60-second token.
--
-- oidc_grants: an authorization code asked for with the openid scope
-- remembers who signed in, which identity scopes (openid, email, profile)
-- they consented to, the nonce to echo in the id_token and when the session
-- signed in (auth_time). A table of its own beside grants: identity scopes
-- never become an installation's scopes, and a code without openid has no
-- row. Tokens reach it through tokens.grant_id, which refreshed tokens keep,
-- so /oauth/userinfo answers for as long as the token family lives.

-- +goose Up
ALTER TABLE apps ADD COLUMN sso_url text NOT NULL DEFAULT '';

CREATE TABLE oidc_grants (
    grant_id   bigint      PRIMARY KEY REFERENCES grants (id) ON DELETE CASCADE,
    user_id    bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    scopes     jsonb       NOT NULL DEFAULT '[]',
    nonce      text        NOT NULL DEFAULT '',
    auth_time  timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE oidc_grants;
ALTER TABLE apps DROP COLUMN sso_url;
