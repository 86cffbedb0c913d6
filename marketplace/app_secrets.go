package marketplace

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/plugboard/plugboard/app/secret"
	"github.com/plugboard/plugboard/webhooks"
	"gorm.io/gorm"
)

// RotatedSecret is a new client secret and, for an internal integration, a
// new access token (the old ones stop working at once).
type RotatedSecret struct {
	ClientSecret string
	Token        string
}

// RotateClientSecret issues a new client secret; the old one stops working.
// For internal integrations it also replaces the installation's token.
func (s *Apps) RotateClientSecret(ctx context.Context, a Actor, ref string) (*RotatedSecret, error) {
	out := &RotatedSecret{ClientSecret: secret.Token("pbcs_", 32)}
	err := s.tx(ctx, func(tx *gorm.DB) error {
		v, err := s.manage(ctx, tx, a, ref)
		if err != nil {
			return err
		}
		if err := tx.Model(&App{}).Where("id = ?", v.ID).Updates(map[string]any{
			"client_secret_hash": secret.Hash(out.ClientSecret), "client_secret_sealed": s.box.Seal(out.ClientSecret),
			"updated_at": s.now()}).Error; err != nil {
			return fmt.Errorf("rotating client secret: %w", err)
		}
		if v.Kind == KindInternal {
			var inst Installation
			err := tx.Preload("App").Where("app_id = ? AND status = ?", v.ID, InstallInstalled).First(&inst).Error
			if err == nil {
				if err := tx.Model(&Token{}).Where("installation_id = ? AND revoked_at IS NULL", inst.ID).Update("revoked_at", s.now()).Error; err != nil {
					return fmt.Errorf("revoking internal token: %w", err)
				}
				set, err := s.tokens.issueInternal(ctx, tx, &inst)
				if err != nil {
					return err
				}
				out.Token = set
			} else if !errors.Is(err, gorm.ErrRecordNotFound) {
				return fmt.Errorf("finding internal installation: %w", err)
			}
		}
		return s.audit(tx, a, &v.OrganizationID, "app.rotate_secret", "app", idStr(v.ID), v.Slug, nil)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// RotateWebhookSecret issues a new signing secret; the old one keeps signing
// beside it for WebhookSecretOverlap.
func (s *Apps) RotateWebhookSecret(ctx context.Context, a Actor, ref string) (string, time.Time, error) {
	fresh := webhooks.NewSecret()
	until := s.now().Add(WebhookSecretOverlap)
	var appID int64
	err := s.tx(ctx, func(tx *gorm.DB) error {
		v, err := s.manage(ctx, tx, a, ref)
		if err != nil {
			return err
		}
		appID = v.ID
		if err := tx.Model(&App{}).Where("id = ?", v.ID).Updates(map[string]any{
			"previous_webhook_secret": v.WebhookSecret, "previous_secret_expires_at": until,
			"webhook_secret": s.box.Seal(fresh), "updated_at": s.now()}).Error; err != nil {
			return fmt.Errorf("rotating webhook secret: %w", err)
		}
		return s.audit(tx, a, &v.OrganizationID, "app.rotate_webhook_secret", "app", idStr(v.ID), v.Slug, JSON{"previousValidUntil": until})
	})
	if err != nil {
		return "", time.Time{}, err
	}
	if s.endpoints != nil {
		s.endpoints.Forget(appID) // sign with both secrets from now on
	}
	return fresh, until, nil
}

// webhookSecrets returns the secrets that sign an app's webhooks now: the
// current one first, then the previous one while its overlap lasts.
func (s *core) webhookSecrets(app *App) ([]string, error) {
	cur, err := s.box.Open(app.WebhookSecret)
	if err != nil {
		return nil, fmt.Errorf("opening webhook secret of %s: %w", app.Slug, err)
	}
	out := []string{cur}
	if len(app.PreviousWebhookSecret) > 0 && app.PreviousSecretExpiresAt != nil && app.PreviousSecretExpiresAt.After(s.now()) {
		if prev, err := s.box.Open(app.PreviousWebhookSecret); err == nil {
			out = append(out, prev)
		}
	}
	return out, nil
}

// WebhookSecrets returns the secrets that sign app's webhooks now, current
// first.
func (s *Apps) WebhookSecrets(app *App) ([]string, error) { return s.webhookSecrets(app) }
