package marketplace

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/plugboard/plugboard/app/fault"
	"github.com/plugboard/plugboard/app/secret"
)

// Introspection answers the host product's question about an installation
// access token a partner sent to the host's own API (RFC 7662): is it
// active, for which organization, installation and app, with which scopes.
// The answer is one indexed lookup (tokens.token_hash is unique, joined to
// the installation, its organization and app by primary key), with no
// cache: a revocation, an uninstall or a suspension is seen by the very
// next question.
type Introspection struct {
	*core
}

// TokenInfo is what introspection says of a token. An inactive token has
// only Active false: RFC 7662 §2.2 says nothing more of it.
type TokenInfo struct {
	Active       bool
	Scopes       []string
	ClientID     string // the app's
	IssuedAt     time.Time
	ExpiresAt    *time.Time // nil: never (an internal integration's token)
	Installation string     // uuid
	Organization Ref
	App          Ref
}

// Ref names a resource for a caller outside it: its numeric id (which
// stays when the slug changes), slug and name.
type Ref struct {
	ID   int64
	Slug string
	Name string
}

// introspectRow is the one row the lookup reads.
type introspectRow struct {
	TokenScopes        Strings
	InstallationScopes Strings
	CreatedAt          time.Time
	ExpiresAt          *time.Time
	UUID               string
	OrgID              int64
	OrgSlug            string
	OrgName            string
	AppID              int64
	AppSlug            string
	AppName            string
	ClientID           string
}

// introspectSQL finds an access token that is live right now: not revoked,
// not expired, of an installation that is installed or provisioning (a
// pending one waits for its app to verify it, and Plugboard's own routes
// refuse its token too) and not suspended, of an app that is not
// suspended. Anything else is no row, so inactive.
const introspectSQL = `
SELECT t.scopes AS token_scopes, i.scopes AS installation_scopes, t.created_at, t.expires_at, i.uuid,
       o.id AS org_id, o.slug AS org_slug, o.name AS org_name, a.id AS app_id, a.slug AS app_slug, a.name AS app_name, a.client_id
FROM tokens t
JOIN installations i ON i.id = t.installation_id
JOIN organizations o ON o.id = i.organization_id
JOIN apps a ON a.id = i.app_id
WHERE t.token_hash = ? AND t.kind = 'access' AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > ?)
  AND i.status IN ('installed', 'provisioning') AND i.suspended_at IS NULL AND a.status <> 'suspended'`

// Introspect describes token to the host: only host service tokens ask
// (anyone else is refused 401, RFC 7662 §2.1). Anything but a live
// installation access token is inactive; that is an answer, not an error.
func (s *Introspection) Introspect(ctx context.Context, a Actor, token string) (*TokenInfo, error) {
	if a.Service == nil {
		return nil, fault.Unauthorized(fault.HostTokenRequired, "Introspection answers the host: send a host service token (pbh_…) as Authorization: Bearer.")
	}
	if !strings.HasPrefix(token, PrefixAccess) {
		return &TokenInfo{}, nil
	}
	var rows []introspectRow
	if err := s.db.WithContext(ctx).Raw(introspectSQL, secret.Hash(token), s.now()).Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("introspecting a token: %w", err)
	}
	if len(rows) == 0 {
		return &TokenInfo{}, nil
	}
	r := rows[0]
	return &TokenInfo{
		Active: true,
		// Never more than the installation holds now: a scope taken from
		// it is gone from its tokens at once.
		Scopes:   intersect(r.TokenScopes, r.InstallationScopes),
		ClientID: r.ClientID, IssuedAt: r.CreatedAt, ExpiresAt: r.ExpiresAt, Installation: r.UUID,
		Organization: Ref{ID: r.OrgID, Slug: r.OrgSlug, Name: r.OrgName},
		App:          Ref{ID: r.AppID, Slug: r.AppSlug, Name: r.AppName},
	}, nil
}
