package marketplace

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/plugboard/plugboard/app/secret"
	"gorm.io/gorm"
)

// issueInternal issues a non-expiring access token for an internal integration.
func (s *tokens) issueInternal(ctx context.Context, tx *gorm.DB, inst *Installation) (string, error) {
	access := secret.Token(PrefixAccess, 32)
	t := Token{InstallationID: inst.ID, Family: uuid.NewString(), Kind: "access", TokenHash: secret.Hash(access),
		Scopes: inst.Scopes, CreatedAt: s.now()}
	if err := tx.WithContext(ctx).Create(&t).Error; err != nil {
		return "", fmt.Errorf("issuing internal token: %w", err)
	}
	return access, nil
}

func (s *tokens) revokeInstallationCredentials(tx *gorm.DB, installationID int64) error {
	now := s.now()
	if err := tx.Model(&Token{}).Where("installation_id = ? AND revoked_at IS NULL", installationID).Update("revoked_at", now).Error; err != nil {
		return fmt.Errorf("revoking tokens: %w", err)
	}
	if err := tx.Model(&Grant{}).Where("installation_id = ? AND revoked_at IS NULL AND used_at IS NULL", installationID).Update("revoked_at", now).Error; err != nil {
		return fmt.Errorf("revoking grants: %w", err)
	}
	return nil
}

// issue creates an access token (and a refresh token) in family, carrying
// scopes (a subset of the installation's).
func (s *tokens) issue(ctx context.Context, tx *gorm.DB, inst *Installation, scopes []string, grantID *int64, family string, refresh bool) (*TokenSet, error) {
	access := secret.Token(PrefixAccess, 32)
	exp := s.now().Add(s.opts.AccessTTL)
	toks := []Token{{InstallationID: inst.ID, GrantID: grantID, Family: family, Kind: "access", TokenHash: secret.Hash(access),
		Scopes: scopes, CreatedAt: s.now(), ExpiresAt: &exp}}
	set := &TokenSet{AccessToken: access, ExpiresAt: exp, Scopes: scopes, Installation: inst}
	if refresh {
		set.RefreshToken = secret.Token(PrefixRefresh, 32)
		toks = append(toks, Token{InstallationID: inst.ID, GrantID: grantID, Family: family, Kind: "refresh",
			TokenHash: secret.Hash(set.RefreshToken), Scopes: scopes, CreatedAt: s.now()})
	}
	if err := tx.WithContext(ctx).Create(&toks).Error; err != nil {
		return nil, fmt.Errorf("issuing tokens: %w", err)
	}
	return set, nil
}

// authenticateInstallationToken resolves a pbi_ access token.
func (s *tokens) authenticateInstallationToken(ctx context.Context, token string) (Actor, error) {
	var t Token
	err := s.db.WithContext(ctx).Where("token_hash = ? AND kind = 'access'", secret.Hash(token)).First(&t).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return Actor{}, errBadToken
	}
	if err != nil {
		return Actor{}, fmt.Errorf("finding token: %w", err)
	}
	if t.RevokedAt != nil || (t.ExpiresAt != nil && !t.ExpiresAt.After(s.now())) {
		return Actor{}, errBadToken
	}
	var inst Installation
	if err := s.db.WithContext(ctx).Preload("App").First(&inst, t.InstallationID).Error; err != nil {
		return Actor{}, fmt.Errorf("loading installation: %w", err)
	}
	if !inst.Live() {
		return Actor{}, errBadToken
	}
	if inst.SuspendedAt != nil { // suspensions.go
		return Actor{}, errSuspended(&inst)
	}
	return Actor{Installation: &inst, Scopes: t.Scopes}, nil
}
