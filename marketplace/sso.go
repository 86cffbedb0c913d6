package marketplace

// Single sign-on into the partner: a member of an organization clicks
// "Open {App}" on an installed app, and the browser carries a short, signed
// token to the app's ssoUrl, which signs the member into the partner's own
// dashboard (Heroku's add-on SSO, with a JWT the platform's JWKS verifies).

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/plugboard/plugboard/app/fault"
)

// SSOTokenTTL is how long a sign-on token is valid: the browser posts it
// at once, and the partner accepts each token (jti) once.
const SSOTokenTTL = 60 * time.Second

// SSOTokenType is the typ header of sign-on tokens. Explicit typing (RFC
// 8725 §3.11) keeps a partner from taking another JWT the platform signs
// for its client id (an install state, an id_token) for a sign-on.
const SSOTokenType = "plugboard-sso+jwt"

// SignOn is a sign-on token and where the browser posts it.
type SignOn struct {
	App          *App
	Installation *Installation
	URL          string // the app's ssoUrl
	Token        string // the JWT, posted as the form field "token"
	JTI          string
	ExpiresAt    time.Time
}

// checkPartnerURL validates a URL the platform sends users or calls to
// (ssoUrl, provisionUrl): an absolute URL, checked like the webhook URL,
// and https when the platform requires it (production).
func checkPartnerURL(f fault.Fields, field, raw string, requireHTTPS bool) {
	checkURL(f, field, raw, false)
	if u, err := url.Parse(raw); raw != "" && err == nil && requireHTTPS && u.Scheme != "https" {
		f.Add(field, "must be an https URL")
	}
}

// SignOn mints a sign-on token into installation id's app for the actor,
// a member (any role) of organization orgRef where it is installed, and
// audits it as installation.sso. The token is an EdDSA JWT under the key of
// /.well-known/jwks.json: iss the platform's base URL, aud the app's client
// id, sub the user's id, with email, name, org (slug), installation (uuid),
// role, iat, exp (iat + 60 s) and a unique jti.
func (s *Installs) SignOn(ctx context.Context, a Actor, orgRef, id string) (*SignOn, error) {
	acc, err := s.access(ctx, s.db, a, orgRef, RoleMember)
	if err != nil {
		return nil, err
	}
	inst, err := s.loadInstallation(ctx, s.db, id, false)
	if err != nil {
		return nil, err
	}
	if inst.OrganizationID != acc.Org.ID || !inst.Live() || inst.App == nil {
		return nil, fault.NotFound("installation")
	}
	app := inst.App
	if app.SSOURL == "" {
		return nil, fault.Conflict(fault.NoSSOURL, fmt.Sprintf("%s has no single sign-on URL to open it at.", app.Name))
	}
	now := s.now()
	out := &SignOn{App: app, Installation: inst, URL: app.SSOURL, JTI: uuid.NewString(), ExpiresAt: now.Add(SSOTokenTTL)}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{
		"iss": s.opts.Issuer, "aud": app.ClientID, "sub": idStr(a.User.ID),
		"email": a.User.Email, "name": a.User.Name, "org": acc.Org.Slug, "installation": inst.UUID, "role": acc.Role,
		"iat": now.Unix(), "exp": out.ExpiresAt.Unix(), "jti": out.JTI,
	})
	t.Header["kid"] = s.stateKeyID()
	t.Header["typ"] = SSOTokenType
	if out.Token, err = t.SignedString(s.stateKey); err != nil {
		return nil, fmt.Errorf("signing sign-on token: %w", err)
	}
	err = s.tx(ctx, func(tx *gorm.DB) error {
		return s.audit(tx, a, &acc.Org.ID, "installation.sso", "installation", inst.UUID, app.Slug, JSON{"jti": out.JTI})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
