package marketplace

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/plugboard/plugboard/app/fault"
)

// AccessTokens mints installation access tokens for an app from its own
// credentials, as GitHub Apps mint installation tokens: the app proves
// who it is (client credentials, or a JWT it signed) and gets a fresh
// access token of AccessTTL (eight hours), with no refresh token, carrying
// the installation's scopes or a subset of them. A partner then needs to
// store nothing but its own credentials; the refresh-token path of the
// install flow (oauth.go) keeps working beside it.
type AccessTokens struct {
	*core
	installs *Installs
	tokens   *tokens
}

// MintAccessToken issues a fresh access token for installation id to the
// app itself. scopes nil: every scope of the installation; otherwise a
// non-empty subset of them. Other apps and everyone outside the
// installation get not-found; its organization's members, app-only; the
// installation's own token, app credentials required (a token that mints
// its successors would never end).
func (s *AccessTokens) MintAccessToken(ctx context.Context, a Actor, id string, scopes []string) (*TokenSet, error) {
	var out *TokenSet
	err := s.tx(ctx, func(tx *gorm.DB) error {
		inst, sd, err := s.installs.installationFor(ctx, tx, a, id)
		if err != nil {
			return err
		}
		switch {
		case sd != sideApp:
			return fault.Forbidden(fault.AppOnly, "Only the app mints its installation's tokens, with its own credentials.")
		case a.App == nil:
			return fault.Forbidden(fault.AppCredentialsRequired, "Mint tokens with the app's own credentials (client credentials or an app JWT), not an installation token.")
		case !inst.Live():
			return fault.Conflict(fault.InstallationNotLive, fmt.Sprintf("The installation is %s.", inst.Status))
		case inst.SuspendedAt != nil || inst.App.Status == StatusSuspended:
			return errSuspended(inst)
		}
		granted, err := narrowScopes(inst.Scopes, scopes)
		if err != nil {
			return err
		}
		out, err = s.tokens.issue(ctx, tx, inst, granted, nil, uuid.NewString(), false)
		if err != nil {
			return err
		}
		if inst.SyncState == OutOfSync && inst.SyncReason == ReasonNeverExchanged {
			// An app that mints is connected, as one that exchanged its code.
			if err := tx.Model(&Installation{}).Where("id = ?", inst.ID).Updates(map[string]any{
				"sync_state": InSync, "sync_reason": "", "sync_checked_at": s.now()}).Error; err != nil {
				return fmt.Errorf("marking installation in sync: %w", err)
			}
		}
		return s.audit(tx, a, &inst.OrganizationID, "installation.access_token", "installation", inst.UUID, inst.App.Slug,
			JSON{"scopes": granted})
	})
	return out, err
}

// narrowScopes checks that asked (nil: all of have) is a non-empty subset
// of have, and returns it without repeats, in have's order.
func narrowScopes(have []string, asked []string) ([]string, error) {
	if asked == nil {
		return slices.Clone(have), nil
	}
	f := fault.Fields{}
	f.Check(len(asked) == 0, "scopes", "must name at least one scope; leave it out for every scope of the installation")
	for _, sc := range asked {
		if !slices.Contains(have, sc) {
			f.Add("scopes", fmt.Sprintf("%q is not a scope of the installation, which has: %s", truncate(sc, 100), scopeList(have)))
		}
	}
	if err := f.Err(); err != nil {
		return nil, err
	}
	return intersect(have, asked), nil
}

func scopeList(scopes []string) string {
	if len(scopes) == 0 {
		return "none"
	}
	return strings.Join(scopes, ", ")
}
