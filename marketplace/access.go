package marketplace

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/plugboard/plugboard/app/fault"
	"gorm.io/gorm"
)

// requireUser fails unless a user makes the request: 401 for nobody, 403
// for apps and installations, which have routes of their own.
func requireUser(a Actor) error {
	if a.App != nil || a.Installation != nil || a.Service != nil {
		return fault.Forbidden(fault.UsersOnly, "This route is for users; app and installation credentials cannot use it.")
	}
	if a.User == nil {
		return fault.Unauthorized(fault.NotAuthenticated, "Sign in, or send an API token as Authorization: Bearer.")
	}
	return nil
}

// view loads app ref as the actor may see it; hidden apps are not found.
func (s *core) view(ctx context.Context, db *gorm.DB, a Actor, ref string, lock bool) (*AppView, error) {
	q := byRef(db.WithContext(ctx), "apps", ref).Preload("Organization")
	if lock {
		q = q.Clauses(lockForUpdate)
	}
	var app App
	if err := q.First(&app).Error; err != nil {
		return nil, dbErr(err, "app", "")
	}
	v := &AppView{App: app}
	if a.User != nil {
		var m Membership
		err := db.WithContext(ctx).Where("organization_id = ? AND user_id = ?", app.OrganizationID, a.User.ID).First(&m).Error
		if err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
			return nil, fmt.Errorf("finding membership: %w", err)
		}
		v.Role = m.Role
	}
	v.Private = v.Role != "" || a.IsOperator()
	listed := app.Kind == KindPublic && app.Status == StatusPublished
	if !listed && !v.Private {
		return nil, fault.NotFound("app")
	}
	return v, nil
}

// manage loads app ref for a change by an admin of its owner organization.
func (s *core) manage(ctx context.Context, tx *gorm.DB, a Actor, ref string) (*AppView, error) {
	if err := requireUser(a); err != nil {
		return nil, err
	}
	v, err := s.view(ctx, tx, a, ref, true)
	if err != nil {
		return nil, err
	}
	if v.Role == "" {
		if a.IsOperator() {
			return nil, fault.Forbidden(fault.NotOwner, "Only the owner organization's admins change this app; operators review it with status.")
		}
		return nil, fault.NotFound("app")
	}
	if roleRank[v.Role] < roleRank[RoleAdmin] {
		return nil, fault.Forbidden(fault.InsufficientRole, "Changing an app needs the admin role in its organization.")
	}
	return v, nil
}

// partnerApp loads an app for its owner organization's members, or for the
// app itself (client credentials or app JWT).
func (s *core) partnerApp(ctx context.Context, a Actor, ref string) (*AppView, error) {
	if a.App != nil {
		var app App
		if err := byRef(s.db.WithContext(ctx), "apps", ref).First(&app).Error; err != nil || app.ID != a.App.ID {
			return nil, fault.NotFound("app")
		}
		return &AppView{App: app, Private: true}, nil
	}
	if a.Installation != nil {
		return nil, fault.Forbidden(fault.AppCredentialsRequired, "Use the app's own credentials (client credentials or an app JWT), not an installation token.")
	}
	if err := requireUser(a); err != nil {
		return nil, err
	}
	k := viewKey{user: a.User.ID, ref: ref}
	if v, ok := s.decisions.view(k); ok {
		return &v, nil
	}
	gen := s.decisions.gen.Load()
	v, err := s.view(ctx, s.db, a, ref, false)
	if err != nil {
		return nil, err
	}
	if v.Role == "" {
		return nil, fault.NotFound("app")
	}
	s.decisions.putView(k, *v, gen)
	return v, nil
}

// partnerAppAdmin is partnerApp for changes: admins of the owner
// organization, or the app itself.
func (s *core) partnerAppAdmin(ctx context.Context, a Actor, ref string) (*AppView, error) {
	v, err := s.partnerApp(ctx, a, ref)
	if err == nil && v.Role != "" && roleRank[v.Role] < roleRank[RoleAdmin] {
		return nil, fault.Forbidden(fault.InsufficientRole, "Sending webhooks again needs the admin role in the app's organization.")
	}
	return v, err
}

func requireOperator(a Actor) error {
	if err := requireUser(a); err != nil {
		return err
	}
	if !a.IsOperator() {
		return fault.Forbidden(fault.OperatorOnly, "Only operators do this.")
	}
	return nil
}

// requireScope checks an installation token may read organization orgID
// with scope.
func requireScope(a Actor, orgID int64, scope string) error {
	inst := a.Installation
	if inst.OrganizationID != orgID {
		return fault.NotFound("organization")
	}
	if inst.Status == InstallPending {
		return fault.Forbidden(fault.InstallationPending, "The installation is waiting for the app to verify it: PUT /api/0/installations/{uuid}/ {\"status\": \"installed\"}.")
	}
	if !slices.Contains(a.Scopes, scope) {
		return fault.Forbidden(fault.MissingScope, fmt.Sprintf("This needs the %s scope, which the installation was not granted.", scope))
	}
	return nil
}

// platformAccess finds org ref for a user with at least role min, or for
// an installation token of that organization holding scope: the Platform
// API's routes (scopes.go lists which scope opens which). A token acts
// with an admin's rights at most, never an owner's, and its OrgAccess has
// no role.
func (s *core) platformAccess(ctx context.Context, db *gorm.DB, a Actor, ref, scope, min string) (*OrgAccess, error) {
	if a.Installation == nil {
		return s.access(ctx, db, a, ref, min)
	}
	var org Organization
	if err := byRef(db.WithContext(ctx), "organizations", ref).First(&org).Error; err != nil {
		return nil, dbErr(err, "organization", "")
	}
	if err := requireScope(a, org.ID, scope); err != nil {
		return nil, err
	}
	return &OrgAccess{Org: org}, nil
}

// OrgAccess is an organization as one actor sees it.
type OrgAccess struct {
	Org  Organization
	Role string // the actor's role; "" for operators who are not members
}

// access finds org ref for the actor, requiring at least role min. Callers
// outside the organization get not-found, members below min get forbidden.
func (s *core) access(ctx context.Context, db *gorm.DB, a Actor, ref, min string) (*OrgAccess, error) {
	if err := requireUser(a); err != nil {
		return nil, err
	}
	var org Organization
	if err := byRef(db.WithContext(ctx), "organizations", ref).First(&org).Error; err != nil {
		return nil, dbErr(err, "organization", "")
	}
	var m Membership
	err := db.WithContext(ctx).Where("organization_id = ? AND user_id = ?", org.ID, a.User.ID).First(&m).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, fault.NotFound("organization")
	}
	if err != nil {
		return nil, fmt.Errorf("finding membership: %w", err)
	}
	if roleRank[m.Role] < roleRank[min] {
		return nil, fault.Forbidden(fault.InsufficientRole, fmt.Sprintf("This needs the %s role in %s; you are a %s.", min, org.Slug, m.Role))
	}
	return &OrgAccess{Org: org, Role: m.Role}, nil
}

var errNotSignedIn = fault.Unauthorized(fault.NotAuthenticated, "Sign in, or send an API token as Authorization: Bearer.")

// IsAdmin reports whether the actor administers the organization (admin or
// owner): the UI shows admins' controls by it.
func (o OrgAccess) IsAdmin() bool { return roleRank[o.Role] >= roleRank[RoleAdmin] }

// IsAdmin reports whether the actor administers the app's owner
// organization, so may change the app and act on its deliveries.
func (v AppView) IsAdmin() bool { return roleRank[v.Role] >= roleRank[RoleAdmin] }
