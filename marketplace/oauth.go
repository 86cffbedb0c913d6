package marketplace

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/plugboard/plugboard/app/fault"
	"github.com/plugboard/plugboard/app/secret"
)

// invalidGrant and invalidClient are the RFC 6749 errors of token requests;
// web answers them as {error, error_description} on the OAuth endpoints and
// as problem documents on the JSON API.
func invalidGrant(desc string) error  { return fault.OAuth(fault.InvalidGrant, desc) }
func invalidClient(desc string) error { return fault.OAuth(fault.InvalidClient, desc) }

// StateKeyID names the key that signs install states.
func (s *OAuth) StateKeyID() string { return s.stateKeyID() }

func (s *core) stateKeyID() string {
	h := sha256.Sum256(s.stateKey.Public().(ed25519.PublicKey))
	return base64.RawURLEncoding.EncodeToString(h[:8])
}

// JWKS is the JSON Web Key Set partners verify install states with.
func (s *OAuth) JWKS() map[string]any {
	pub := s.stateKey.Public().(ed25519.PublicKey)
	return map[string]any{"keys": []map[string]any{{
		"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": s.StateKeyID(),
		"x": base64.RawURLEncoding.EncodeToString(pub),
	}}}
}

// PublicStateKey is the key install states verify with.
func (s *OAuth) PublicStateKey() crypto.PublicKey { return s.stateKey.Public() }

// AuthenticateClient checks an app's client id and secret.
func (s *OAuth) AuthenticateClient(ctx context.Context, clientID, clientSecret string) (*App, error) {
	if clientID == "" || clientSecret == "" {
		return nil, invalidClient("Client authentication failed: send client_id and client_secret (HTTP Basic or form).")
	}
	var app App
	err := s.db.WithContext(ctx).Where("client_id = ?", clientID).First(&app).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, invalidClient("Client authentication failed.")
	}
	if err != nil {
		return nil, fmt.Errorf("finding client: %w", err)
	}
	if subtle.ConstantTimeCompare(app.ClientSecretHash, secret.Hash(clientSecret)) != 1 {
		return nil, invalidClient("Client authentication failed.")
	}
	return &app, nil
}

// TokenSet is what a token request returns.
type TokenSet struct {
	AccessToken  string
	RefreshToken string
	ExpiresAt    time.Time
	Scopes       []string
	Installation *Installation
	// OpenID Connect (oidc.go): for a code asked for with openid, the
	// id_token and the identity scopes granted beside Scopes.
	IDToken        string
	IdentityScopes []string
}

// ExpiresIn is the access token's lifetime in seconds.
func (t *TokenSet) ExpiresIn(now time.Time) int64 { return int64(t.ExpiresAt.Sub(now).Seconds()) }

// TokenRequest is an authorization_code or refresh_token grant.
type TokenRequest struct {
	GrantType    string
	Code         string
	RedirectURI  string
	CodeVerifier string
	RefreshToken string
	// Scope, on a refresh, narrows the new tokens to these scopes (RFC 6749
	// §6); each must be one the refresh token carries.
	Scope string
	// InstallationUUID, when set (the Sentry-style route), must match.
	InstallationUUID string
}

// Token runs a token request for an authenticated app.
func (s *OAuth) Token(ctx context.Context, app *App, r TokenRequest) (*TokenSet, error) {
	switch r.GrantType {
	case "authorization_code":
		return s.exchangeCode(ctx, app, r)
	case "refresh_token":
		return s.refresh(ctx, app, r)
	case "":
		return nil, fault.OAuth(fault.InvalidRequest, "grant_type is required.")
	}
	return nil, fault.OAuth(fault.UnsupportedGrantType, fmt.Sprintf("grant_type %q is not supported; use authorization_code or refresh_token.", r.GrantType))
}

func (s *OAuth) exchangeCode(ctx context.Context, app *App, r TokenRequest) (*TokenSet, error) {
	if r.Code == "" {
		return nil, fault.OAuth(fault.InvalidRequest, "code is required.")
	}
	var out *TokenSet
	var reused bool
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var g Grant
		err := tx.Clauses(lockForUpdate).Where("code_hash = ?", secret.Hash(r.Code)).First(&g).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return invalidGrant("The code is unknown.")
		}
		if err != nil {
			return fmt.Errorf("finding grant: %w", err)
		}
		var inst Installation
		if err := tx.Preload("App").Preload("Organization").Preload("Plan").First(&inst, g.InstallationID).Error; err != nil {
			return fmt.Errorf("loading installation: %w", err)
		}
		switch {
		case inst.AppID != app.ID:
			return invalidGrant("The code was issued to another client.")
		case r.InstallationUUID != "" && r.InstallationUUID != inst.UUID:
			return invalidGrant("The code belongs to another installation.")
		case g.UsedAt != nil:
			// A second use: someone else may hold the code. Revoke what it gave.
			if err := tx.Model(&Token{}).Where("grant_id = ? AND revoked_at IS NULL", g.ID).Update("revoked_at", s.now()).Error; err != nil {
				return fmt.Errorf("revoking tokens of a reused code: %w", err)
			}
			reused = true
			return nil
		case g.RevokedAt != nil || !inst.Live():
			return invalidGrant("The code was revoked.")
		case inst.SuspendedAt != nil: // suspensions.go
			return invalidGrant(suspendedGrant)
		case !g.ExpiresAt.After(s.now()):
			return invalidGrant("The code expired; ask for a new one.")
		}
		if g.RedirectURI != "" && r.RedirectURI != g.RedirectURI {
			return invalidGrant("redirect_uri does not match the one the code was issued for.")
		}
		if g.RedirectURI == "" && r.RedirectURI != "" && r.RedirectURI != inst.App.RedirectURL {
			return invalidGrant("redirect_uri does not match the app's registered redirect URL.")
		}
		if g.CodeChallenge != "" {
			if !pkceMatches(r.CodeVerifier, g.CodeChallenge) {
				return invalidGrant("code_verifier does not match the code_challenge (or is not 43 to 128 characters of A-Z a-z 0-9 - . _ ~).")
			}
		} else if r.CodeVerifier != "" {
			// RFC 9700 §2.1.1: a verifier for a code issued without a
			// challenge means the code is not the one this client asked
			// for (injected, or the challenge was stripped): refuse it.
			return invalidGrant("The code was issued without a code_challenge, so a code_verifier cannot be checked; start the authorization again.")
		}
		if err := tx.Model(&Grant{}).Where("id = ?", g.ID).Update("used_at", s.now()).Error; err != nil {
			return fmt.Errorf("using grant: %w", err)
		}
		scopes := []string(inst.Scopes)
		if len(g.Scopes) > 0 {
			scopes = intersect(g.Scopes, inst.Scopes)
		}
		out, err = s.tokens.issue(ctx, tx, &inst, scopes, &g.ID, uuid.NewString(), true)
		if err != nil {
			return err
		}
		if err := s.withIDToken(ctx, tx, app, out, &g.ID, true); err != nil {
			return err
		}
		if inst.SyncState == OutOfSync && inst.SyncReason == "token_never_exchanged" {
			if err := tx.Model(&Installation{}).Where("id = ?", inst.ID).Updates(map[string]any{
				"sync_state": InSync, "sync_reason": "", "sync_checked_at": s.now()}).Error; err != nil {
				return fmt.Errorf("marking installation in sync: %w", err)
			}
		}
		return s.audit(tx, Actor{App: app}, &inst.OrganizationID, "installation.token_exchange", "installation", inst.UUID, app.Slug, nil)
	})
	if reused {
		return nil, invalidGrant("The code was already used; the tokens issued from it are revoked.")
	}
	return out, err
}

func (s *OAuth) refresh(ctx context.Context, app *App, r TokenRequest) (*TokenSet, error) {
	if r.RefreshToken == "" {
		return nil, fault.OAuth(fault.InvalidRequest, "refresh_token is required.")
	}
	var out *TokenSet
	var reused bool
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var old Token
		err := tx.Clauses(lockForUpdate).Where("token_hash = ? AND kind = 'refresh'", secret.Hash(r.RefreshToken)).First(&old).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return invalidGrant("The refresh token is unknown.")
		}
		if err != nil {
			return fmt.Errorf("finding refresh token: %w", err)
		}
		var inst Installation
		if err := tx.Preload("App").Preload("Organization").Preload("Plan").First(&inst, old.InstallationID).Error; err != nil {
			return fmt.Errorf("loading installation: %w", err)
		}
		switch {
		case inst.AppID != app.ID:
			return invalidGrant("The refresh token was issued to another client.")
		case r.InstallationUUID != "" && r.InstallationUUID != inst.UUID:
			return invalidGrant("The refresh token belongs to another installation.")
		case old.UsedAt != nil:
			// Reuse of a rotated refresh token: revoke the whole family.
			if err := tx.Model(&Token{}).Where("family = ? AND revoked_at IS NULL", old.Family).Update("revoked_at", s.now()).Error; err != nil {
				return fmt.Errorf("revoking token family: %w", err)
			}
			reused = true
			return nil
		case old.RevokedAt != nil || !inst.Live():
			return invalidGrant("The refresh token was revoked.")
		case inst.SuspendedAt != nil: // suspensions.go; the refresh token works again once lifted
			return invalidGrant(suspendedGrant)
		}
		// The new tokens keep what the old one carried (never more than
		// the installation holds now), narrowed by scope when it is sent.
		scopes := intersect(old.Scopes, inst.Scopes)
		if names := installationScopes(r.Scope); len(names) > 0 { // identity scopes stay as the code granted them
			for _, sc := range names {
				if !slices.Contains(scopes, sc) {
					return fault.OAuth(fault.InvalidScope, fmt.Sprintf("The refresh token was not granted the %s scope.", sc))
				}
			}
			scopes = intersect(scopes, names)
		}
		if err := tx.Model(&Token{}).Where("id = ?", old.ID).Update("used_at", s.now()).Error; err != nil {
			return fmt.Errorf("rotating refresh token: %w", err)
		}
		out, err = s.tokens.issue(ctx, tx, &inst, scopes, old.GrantID, old.Family, true)
		if err != nil {
			return err
		}
		return s.withIDToken(ctx, tx, app, out, old.GrantID, false)
	})
	if reused {
		return nil, invalidGrant("The refresh token was already used; every token of its family is revoked.")
	}
	return out, err
}

// Revoke revokes an app's token (RFC 7009): a refresh token takes its whole
// family with it. Unknown tokens are not an error.
func (s *OAuth) Revoke(ctx context.Context, app *App, token string) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		var t Token
		err := tx.Where("token_hash = ?", secret.Hash(token)).First(&t).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("finding token: %w", err)
		}
		var inst Installation
		if err := tx.First(&inst, t.InstallationID).Error; err != nil {
			return fmt.Errorf("loading installation: %w", err)
		}
		if inst.AppID != app.ID {
			return nil // not this client's token: say nothing
		}
		q := tx.Model(&Token{}).Where("revoked_at IS NULL")
		if t.Kind == "refresh" {
			q = q.Where("family = ?", t.Family)
		} else {
			q = q.Where("id = ?", t.ID)
		}
		if err := q.Update("revoked_at", s.now()).Error; err != nil {
			return fmt.Errorf("revoking token: %w", err)
		}
		return nil
	})
}

// AuthenticateApp resolves an app authenticating as itself with HTTP Basic
// client credentials.
func (s *OAuth) AuthenticateApp(ctx context.Context, clientID, clientSecret string) (Actor, error) {
	app, err := s.AuthenticateClient(ctx, clientID, clientSecret)
	if err != nil {
		return Actor{}, fault.Unauthorized(fault.InvalidClient, "The client id or secret is wrong.")
	}
	return Actor{App: app}, nil
}

// authenticateAppJWT resolves a short JWT an app signed: iss is its client
// id; HS256 with its client secret, or RS256/EdDSA with its registered
// public key; at most ten minutes long.
func (s *OAuth) authenticateAppJWT(ctx context.Context, raw string, clientID string) (Actor, error) {
	var app App
	if err := s.db.WithContext(ctx).Where("client_id = ?", clientID).First(&app).Error; err != nil {
		return Actor{}, errBadToken
	}
	_, err := parseAppJWT(raw, clientID, func(alg string) (any, error) {
		switch alg {
		case "HS256":
			if len(app.ClientSecretSealed) == 0 {
				return nil, errors.New("no client secret on file")
			}
			sec, err := s.box.Open(app.ClientSecretSealed)
			return []byte(sec), err
		case "RS256", "EdDSA":
			if app.PublicKey == "" {
				return nil, errors.New("no public key registered")
			}
			if alg == "RS256" {
				return jwt.ParseRSAPublicKeyFromPEM([]byte(app.PublicKey))
			}
			return jwt.ParseEdPublicKeyFromPEM([]byte(app.PublicKey))
		}
		return nil, errors.New("unsupported algorithm")
	}, s.now)
	if errors.Is(err, errAppJWTLife) {
		return Actor{}, fault.Unauthorized(fault.InvalidToken, "App JWTs need iat and may last at most ten minutes.")
	}
	if err != nil {
		return Actor{}, errBadToken
	}
	return Actor{App: &app}, nil
}

// intersect returns the scopes of a that b has too, in a's order.
func intersect(a, b []string) []string {
	out := []string{}
	for _, sc := range a {
		if slices.Contains(b, sc) && !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	return out
}

// ScopeString joins scopes as OAuth does.
func ScopeString(scopes []string) string { return strings.Join(slices.Clone(scopes), " ") }
