package marketplace

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/plugboard/plugboard/app/fault"
)

// Permission requests: what an approved revision (app_revisions.go) adds
// reaches an installation only when an admin of its organization accepts
// it, GitHub Apps' way. Until then the installation keeps its scopes (so
// no token of it gains one) and its events (so the outbox creates no
// delivery of a new event for it: WebhookDirectory.Recipients reads the
// installation's events). What a revision removes is taken from every
// installation, its pending request and its live tokens at once.

// EventInstallationPermissionsAccepted tells the partner an organization
// accepted what a revision asked: {installation, scopes, events}.
const EventInstallationPermissionsAccepted = "installation.permissions_accepted"

// Permission request statuses.
const (
	PermissionsPending   = "pending"
	PermissionsAccepted  = "accepted"
	PermissionsWithdrawn = "withdrawn" // a later revision took back all it asked
)

// PermissionRequest is what approved revisions ask of one installation
// beyond what it has.
type PermissionRequest struct {
	ID             int64
	InstallationID int64
	RevisionID     int64 // the latest revision that asked
	Status         string
	Scopes         Strings `gorm:"type:jsonb"`
	Events         Strings `gorm:"type:jsonb"`
	CreatedAt      time.Time
	UpdatedAt      time.Time
	AcceptedAt     *time.Time
	AcceptedBy     *int64
}

// preloadPending loads each installation's pending request with it.
func preloadPending(q *gorm.DB) *gorm.DB {
	return q.Preload("PendingPermissions", "status = ?", PermissionsPending)
}

// jsonList is a list as a JSON array, for SQL that turns it into text[].
func jsonList(s []string) string {
	b, _ := json.Marshal(orNone(s))
	return string(b)
}

// follow makes app's live installations follow a change of its scopes and
// events from before: what was removed is taken from each installation,
// its pending request and its live tokens; what was added goes into a
// permission request when rev (the approved revision) asked for it, and
// straight onto the installations when rev is nil: an app never published
// is installed only in its own organization, whose admin made the change.
func (s *Permissions) follow(ctx context.Context, tx *gorm.DB, a Actor, app *App, before AppPermissions, rev *AppRevision) error {
	tx = tx.WithContext(ctx)
	addS, remS := minus(app.Scopes, *before.Scopes), minus(*before.Scopes, app.Scopes)
	addE, remE := minus(app.Events, *before.Events), minus(*before.Events, app.Events)
	now := s.now()
	if len(remS)+len(remE) > 0 {
		rs, re := jsonList(remS), jsonList(remE)
		const drop = "ARRAY(SELECT jsonb_array_elements_text(?::jsonb))"
		if err := tx.Exec(`UPDATE installations SET scopes = scopes - `+drop+`, events = events - `+drop+`, updated_at = ?
			WHERE app_id = ? AND status IN ?`, rs, re, now, app.ID, LiveStatuses).Error; err != nil {
			return fmt.Errorf("taking removed permissions from installations of %s: %w", app.Slug, err)
		}
		// Live tokens lose the scopes at once: Actor.Scopes is read from
		// the token on every request.
		if err := tx.Exec(`UPDATE tokens SET scopes = scopes - `+drop+`
			WHERE revoked_at IS NULL AND installation_id IN (SELECT id FROM installations WHERE app_id = ?)`, rs, app.ID).Error; err != nil {
			return fmt.Errorf("taking removed scopes from tokens of %s: %w", app.Slug, err)
		}
		if err := tx.Exec(`UPDATE permission_requests SET scopes = scopes - `+drop+`, events = events - `+drop+`, updated_at = ?
			WHERE status = ? AND installation_id IN (SELECT id FROM installations WHERE app_id = ?)`, rs, re, now, PermissionsPending, app.ID).Error; err != nil {
			return fmt.Errorf("taking removed permissions from requests of %s: %w", app.Slug, err)
		}
		if err := tx.Exec(`UPDATE permission_requests SET status = ?, updated_at = ?
			WHERE status = ? AND scopes = '[]' AND events = '[]' AND installation_id IN (SELECT id FROM installations WHERE app_id = ?)`,
			PermissionsWithdrawn, now, PermissionsPending, app.ID).Error; err != nil {
			return fmt.Errorf("withdrawing empty requests of %s: %w", app.Slug, err)
		}
	}
	if len(addS)+len(addE) == 0 {
		return nil
	}
	var live []Installation
	if err := preloadPending(tx.Clauses(lockForUpdate).Where("app_id = ? AND status IN ?", app.ID, LiveStatuses)).
		Order("id").Find(&live).Error; err != nil {
		return fmt.Errorf("listing installations of %s: %w", app.Slug, err)
	}
	for i := range live {
		inst := &live[i]
		newS, newE := minus(addS, inst.Scopes), minus(addE, inst.Events)
		if len(newS)+len(newE) == 0 {
			continue
		}
		if rev == nil {
			if err := tx.Model(&Installation{}).Where("id = ?", inst.ID).Updates(map[string]any{
				"scopes": union(inst.Scopes, newS), "events": union(inst.Events, newE), "updated_at": now}).Error; err != nil {
				return fmt.Errorf("granting %s's own installation %s: %w", app.Slug, inst.UUID, err)
			}
			continue
		}
		req := inst.PendingPermissions
		if req == nil {
			req = &PermissionRequest{InstallationID: inst.ID, Status: PermissionsPending, CreatedAt: now}
		}
		req.RevisionID, req.UpdatedAt = rev.ID, now
		req.Scopes, req.Events = union(req.Scopes, newS), union(req.Events, newE)
		if err := tx.Save(req).Error; err != nil {
			return fmt.Errorf("asking installation %s for new permissions: %w", inst.UUID, err)
		}
		if err := s.audit(tx, a, &inst.OrganizationID, "installation.permissions_request", "installation", inst.UUID, app.Slug,
			JSON{"revision": rev.Number, "scopes": newS, "events": newE}); err != nil {
			return err
		}
	}
	return nil
}

// PermissionAcceptance is what an admin's acceptance granted.
type PermissionAcceptance struct {
	Installation *Installation // with its scopes and events now
	Request      *PermissionRequest
}

// AcceptPermissions grants installation id what its pending request asks,
// for an admin of its organization; requestID, when given, must name that
// request (so an admin accepts what they were shown, not what a later
// revision added meanwhile). The partner hears
// installation.permissions_accepted; tokens issued afterwards carry the
// new scopes.
func (s *Permissions) AcceptPermissions(ctx context.Context, a Actor, id, requestID string) (*PermissionAcceptance, error) {
	var out *PermissionAcceptance
	err := s.publishTx(ctx, func(tx *gorm.DB) error {
		inst, sd, err := s.installs.installationFor(ctx, tx, a, id)
		if err != nil {
			return err
		}
		switch sd {
		case sideMember:
			return fault.Forbidden(fault.InsufficientRole, "Accepting new permissions needs the admin role in the organization.")
		case sideApp:
			return fault.Forbidden(fault.AdminOnly, "Only the organization's admins accept new permissions, signed in as themselves.")
		}
		if !inst.Live() {
			return fault.Conflict(fault.InstallationNotLive, fmt.Sprintf("The installation is %s.", inst.Status))
		}
		var req PermissionRequest
		err = tx.WithContext(ctx).Clauses(lockForUpdate).Where("installation_id = ? AND status = ?", inst.ID, PermissionsPending).First(&req).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return fault.Conflict(fault.NoPendingPermissions, inst.App.Name+" asks for no new permissions here.")
		}
		if err != nil {
			return fmt.Errorf("finding the permission request of %s: %w", inst.UUID, err)
		}
		if requestID != "" && requestID != idStr(req.ID) {
			return fault.Conflict(fault.PermissionsChanged, "What "+inst.App.Name+" asks for changed since that request; review the pending one and accept it.")
		}
		now := s.now()
		inst.Scopes, inst.Events = union(inst.Scopes, req.Scopes), union(inst.Events, req.Events)
		if err := tx.Model(&Installation{}).Where("id = ?", inst.ID).Updates(map[string]any{
			"scopes": inst.Scopes, "events": inst.Events, "updated_at": now}).Error; err != nil {
			return fmt.Errorf("granting installation %s: %w", inst.UUID, err)
		}
		req.Status, req.AcceptedAt, req.UpdatedAt = PermissionsAccepted, &now, now
		if a.User != nil {
			req.AcceptedBy = &a.User.ID
		}
		if err := tx.Save(&req).Error; err != nil {
			return fmt.Errorf("accepting the permission request of %s: %w", inst.UUID, err)
		}
		inst.UpdatedAt, inst.PendingPermissions = now, nil
		if err := s.installs.lifecycle(ctx, tx, inst, EventInstallationPermissionsAccepted,
			map[string]any{"scopes": orNone(req.Scopes), "events": orNone(req.Events)}); err != nil {
			return err
		}
		out = &PermissionAcceptance{Installation: inst, Request: &req}
		return s.audit(tx, a, &inst.OrganizationID, "installation.permissions_accept", "installation", inst.UUID, inst.App.Slug,
			JSON{"scopes": req.Scopes, "events": req.Events})
	})
	return out, err
}
