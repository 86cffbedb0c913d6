package marketplace

// OpenID Connect on top of the authorization server (oauth.go,
// authorize.go): the identity scopes, the id_token the token endpoint adds
// for a code asked for with openid, and the UserInfo answer.
//
// Identity scopes (openid, email, profile) are not installation scopes:
// every app may ask for them without declaring them, they never reach an
// installation's or a token's scopes (so they widen no Platform API access),
// and what they grant is only the signed-in user's identity, in the
// id_token and at /oauth/userinfo. An authorize request asks for both kinds
// in its one scope parameter; SplitScope tells them apart.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/golang-jwt/jwt/v5"
	"gorm.io/gorm"

	"github.com/plugboard/plugboard/app/fault"
	"github.com/plugboard/plugboard/app/secret"
)

// The OpenID Connect scopes.
const (
	ScopeOpenID  = "openid"  // sign the user in: an id_token, /oauth/userinfo
	ScopeEmail   = "email"   // with openid: email and email_verified
	ScopeProfile = "profile" // with openid: name
)

// IdentityScopes are the OpenID Connect scopes Plugboard answers, in the
// order discovery lists them.
var IdentityScopes = []string{ScopeOpenID, ScopeEmail, ScopeProfile}

// IDTokenClaims are the claims an id_token or /oauth/userinfo may carry.
var IDTokenClaims = []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "email", "email_verified", "name"}

// IDTokenTTL is how long an id_token is valid: it proves a sign-in that
// just happened, and the access token is what lasts.
const IDTokenTTL = time.Hour

// maxNonce bounds the nonce an authorize request may carry.
const maxNonce = 512

// IsIdentityScope reports whether scope is an OpenID Connect scope.
func IsIdentityScope(scope string) bool { return slices.Contains(IdentityScopes, scope) }

// SplitScope splits an authorize request's scope parameter into the
// installation scopes it asks for and the identity scopes, each once, in
// the order given.
func SplitScope(scope string) (installation, identity []string) {
	for _, sc := range strings.Fields(scope) {
		switch {
		case IsIdentityScope(sc):
			if !slices.Contains(identity, sc) {
				identity = append(identity, sc)
			}
		case !slices.Contains(installation, sc):
			installation = append(installation, sc)
		}
	}
	return installation, identity
}

// installationScopes is SplitScope's first half: the scopes an authorize
// request asks of the installation, which the app must have declared.
func installationScopes(scope string) []string {
	inst, _ := SplitScope(scope)
	return inst
}

// SignsIn reports whether an authorize request asks to sign the user in
// (its scope has openid); without openid, email and profile mean nothing.
func (r AuthorizeRequest) SignsIn() bool {
	_, id := SplitScope(r.Scope)
	return slices.Contains(id, ScopeOpenID)
}

// checkNonce says what is wrong with an authorize request's nonce, "" if
// nothing: echoed in the id_token, it is at most 512 printable characters.
func checkNonce(nonce string) string {
	if len(nonce) > maxNonce {
		return fmt.Sprintf("nonce must be at most %d characters.", maxNonce)
	}
	if strings.ContainsFunc(nonce, func(c rune) bool { return !unicode.IsPrint(c) }) {
		return "nonce must be printable text."
	}
	return ""
}

// oidcGrant is what a code asked for with openid remembers (the
// oidc_grants table): who signed in, to which identity scopes they
// consented, the nonce and when the session signed in.
type oidcGrant struct {
	GrantID   int64 `gorm:"primaryKey;autoIncrement:false"`
	UserID    int64
	Scopes    Strings `gorm:"type:jsonb"`
	Nonce     string
	AuthTime  time.Time
	CreatedAt time.Time
}

// TableName keeps gorm on the migration's table name.
func (oidcGrant) TableName() string { return "oidc_grants" }

// identityFor is the sign-in an approved authorize request carries, or nil
// when it does not ask for openid. auth_time is when the user's session
// began: the moment they last proved who they are.
func (s *OAuth) identityFor(ctx context.Context, tx *gorm.DB, a Actor, r AuthorizeRequest) (*oidcGrant, error) {
	if !r.SignsIn() || a.User == nil {
		return nil, nil
	}
	_, scopes := SplitScope(r.Scope)
	g := &oidcGrant{UserID: a.User.ID, Scopes: scopes, Nonce: r.Nonce, AuthTime: s.now(), CreatedAt: s.now()}
	if a.SessionID != 0 {
		var sess Session
		err := tx.WithContext(ctx).Select("created_at").First(&sess, a.SessionID).Error
		if err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
			return nil, fmt.Errorf("reading the session's sign-in time: %w", err)
		}
		if err == nil {
			g.AuthTime = sess.CreatedAt
		}
	}
	return g, nil
}

// rememberIdentity stores the sign-in of a fresh grant, in its transaction.
func (s *core) rememberIdentity(ctx context.Context, tx *gorm.DB, grantID int64, g *oidcGrant) error {
	if g == nil {
		return nil
	}
	row := *g
	row.GrantID = grantID
	if err := tx.WithContext(ctx).Create(&row).Error; err != nil {
		return fmt.Errorf("recording the sign-in of a grant: %w", err)
	}
	return nil
}

// identityOf loads the sign-in a grant carries; nil when it has none.
func (s *core) identityOf(ctx context.Context, tx *gorm.DB, grantID *int64) (*oidcGrant, *User, error) {
	if grantID == nil {
		return nil, nil, nil
	}
	var g oidcGrant
	err := tx.WithContext(ctx).Where("grant_id = ?", *grantID).First(&g).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("loading the sign-in of a grant: %w", err)
	}
	var u User
	if err := tx.WithContext(ctx).First(&u, g.UserID).Error; err != nil {
		return nil, nil, dbErr(err, "user", "")
	}
	return &g, &u, nil
}

// identityClaims are the user's claims the identity scopes release: sub
// always; email and email_verified with email; name with profile.
// Plugboard does not verify email addresses at sign-up, so email_verified
// is false: a partner that links accounts by email must verify it itself.
func identityClaims(u *User, scopes []string) map[string]any {
	c := map[string]any{"sub": idStr(u.ID)}
	if slices.Contains(scopes, ScopeEmail) {
		c["email"], c["email_verified"] = u.Email, false
	}
	if slices.Contains(scopes, ScopeProfile) {
		c["name"] = u.Name
	}
	return c
}

// withIDToken adds an id_token to set when its grant signed a user in.
// The first one (the code's exchange) echoes the nonce; one issued on
// refresh does not, and keeps the original auth_time (OpenID Connect Core
// §12.2).
func (s *OAuth) withIDToken(ctx context.Context, tx *gorm.DB, app *App, set *TokenSet, grantID *int64, first bool) error {
	g, u, err := s.identityOf(ctx, tx, grantID)
	if err != nil || g == nil {
		return err
	}
	claims := jwt.MapClaims{}
	for k, v := range identityClaims(u, g.Scopes) {
		claims[k] = v
	}
	now := s.now()
	claims["iss"], claims["aud"] = s.opts.Issuer, app.ClientID
	claims["iat"], claims["exp"], claims["auth_time"] = now.Unix(), now.Add(IDTokenTTL).Unix(), g.AuthTime.Unix()
	if first && g.Nonce != "" {
		claims["nonce"] = g.Nonce
	}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	t.Header["kid"] = s.stateKeyID()
	signed, err := t.SignedString(s.stateKey)
	if err != nil {
		return fmt.Errorf("signing id_token: %w", err)
	}
	set.IDToken, set.IdentityScopes = signed, g.Scopes
	return nil
}

// UserInfo answers /oauth/userinfo for an access token: the claims of the
// user who signed in, as the identity scopes they consented to release. A
// token that is not a live access token is invalid_token; one whose grant
// did not ask for openid is insufficient_scope.
func (s *OAuth) UserInfo(ctx context.Context, token string) (map[string]any, error) {
	if !strings.HasPrefix(token, PrefixAccess) {
		return nil, errBadToken
	}
	if _, err := s.tokens.authenticateInstallationToken(ctx, token); err != nil {
		return nil, err
	}
	var t Token
	if err := s.db.WithContext(ctx).Select("grant_id").Where("token_hash = ? AND kind = 'access'", secret.Hash(token)).First(&t).Error; err != nil {
		return nil, fmt.Errorf("finding token: %w", err)
	}
	g, u, err := s.identityOf(ctx, s.db, t.GrantID)
	if errors.Is(err, fault.ErrNotFound) {
		return nil, errBadToken // the user is gone
	}
	if err != nil {
		return nil, err
	}
	if g == nil || !slices.Contains(g.Scopes, ScopeOpenID) {
		return nil, fault.Forbidden(fault.InsufficientScope,
			"The token was not granted the openid scope: ask for it at /oauth/authorize (scope=openid).")
	}
	return identityClaims(u, g.Scopes), nil
}
