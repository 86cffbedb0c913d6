package marketplace

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/plugboard/plugboard/app/fault"
	"github.com/plugboard/plugboard/app/page"
	"github.com/plugboard/plugboard/app/secret"
	"github.com/plugboard/plugboard/webhooks"
)

// Lifecycle event types.
const (
	EventInstallationCreated = "installation.created"
	EventInstallationUpdated = "installation.updated"
	EventInstallationDeleted = "installation.deleted"
)

// Token prefixes for installations.
const (
	PrefixAccess  = "pbi_"
	PrefixRefresh = "pbr_"
	PrefixCode    = "pbg_"
)

// DetailInstallation is the details key of an already_installed conflict:
// the live *Installation.
const DetailInstallation = "installation"

// ExistingInstallation returns the live installation an already_installed
// conflict carries.
func ExistingInstallation(err error) (*Installation, bool) {
	return fault.Detail[*Installation](err, DetailInstallation)
}

// NewInstallation is a fresh install: where to send the browser.
type NewInstallation struct {
	Installation *Installation
	RedirectURL  string
	Code         string
}

// grantOptions are what the OAuth authorize request fixes on the code.
type grantOptions struct {
	RedirectURI         string
	CodeChallenge       string
	CodeChallengeMethod string
}

// Install installs app into organization orgRef, by an admin there.
func (s *Service) Install(ctx context.Context, a Actor, orgRef, appRef, planRef string) (*NewInstallation, error) {
	var out *NewInstallation
	err := s.tx(ctx, func(tx *gorm.DB) error {
		acc, err := s.access(ctx, tx, a, orgRef, RoleAdmin)
		if err != nil {
			return err
		}
		app, plan, err := s.installable(ctx, tx, a, acc.Org, appRef, planRef)
		if err != nil {
			return err
		}
		out, err = s.install(ctx, tx, a, acc.Org, app, plan, grantOptions{})
		return err
	})
	return out, err
}

// installable finds an app the organization may install, and its plan.
func (s *Service) installable(ctx context.Context, tx *gorm.DB, a Actor, org Organization, appRef, planRef string) (*App, *Plan, error) {
	if strings.TrimSpace(appRef) == "" {
		return nil, nil, fault.Field("app", "is required")
	}
	var app App
	err := byRef(tx.WithContext(ctx), "apps", appRef).First(&app).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, nil, fault.Field("app", "no such app")
	}
	if err != nil {
		return nil, nil, fmt.Errorf("finding app: %w", err)
	}
	visible := app.Kind == KindPublic && (app.Status == StatusPublished || app.OrganizationID == org.ID)
	if !visible {
		if app.Kind == KindInternal && app.OrganizationID == org.ID {
			return nil, nil, fault.Field("app", "internal integrations are installed when they are created")
		}
		return nil, nil, fault.Field("app", "no such app")
	}
	if app.RedirectURL == "" {
		return nil, nil, fault.Field("app", "has no redirect URL to finish installing at")
	}
	var plans []Plan
	if err := tx.WithContext(ctx).Where("app_id = ?", app.ID).Find(&plans).Error; err != nil {
		return nil, nil, fmt.Errorf("loading plans: %w", err)
	}
	if len(plans) == 0 {
		if planRef != "" {
			return nil, nil, fault.Field("plan", "this app has no plans")
		}
		return &app, nil, nil
	}
	i := slices.IndexFunc(plans, func(p Plan) bool { return p.Slug == planRef || idStr(p.ID) == planRef })
	if i < 0 {
		var slugs []string
		for _, p := range plans {
			slugs = append(slugs, p.Slug)
		}
		return nil, nil, fault.Field("plan", "must be one of the app's plans: "+strings.Join(slugs, ", "))
	}
	return &app, &plans[i], nil
}

// install creates the installation, its grant and the installation.created
// event in tx.
func (s *Service) install(ctx context.Context, tx *gorm.DB, a Actor, org Organization, app *App, plan *Plan, g grantOptions) (*NewInstallation, error) {
	var live Installation
	err := tx.WithContext(ctx).Where("app_id = ? AND organization_id = ? AND status IN ?", app.ID, org.ID,
		[]string{InstallPending, InstallInstalled}).First(&live).Error
	if err == nil {
		live.App, live.Organization = app, &org
		return nil, fault.Conflict(fault.AlreadyInstalled,
			fmt.Sprintf("%s is already installed in %s; uninstall it first, or change its plan.", app.Name, org.Slug)).
			With(DetailInstallation, &live)
	}
	if !errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, fmt.Errorf("finding installation: %w", err)
	}
	inst := Installation{UUID: uuid.NewString(), AppID: app.ID, OrganizationID: org.ID, Status: InstallInstalled,
		SyncState: InSync, Scopes: app.Scopes, CreatedAt: s.now(), UpdatedAt: s.now(), App: app, Organization: &org, Plan: plan}
	if app.VerifyInstall {
		inst.Status = InstallPending
	}
	if plan != nil {
		inst.PlanID = &plan.ID
	}
	if a.User != nil {
		inst.InstalledBy = &a.User.ID
	}
	if err := tx.Omit("App", "Organization", "Plan").Create(&inst).Error; err != nil {
		return nil, dbErr(err, "installation", "app")
	}
	code, grant, err := s.newGrant(ctx, tx, inst.ID, g)
	if err != nil {
		return nil, err
	}
	if err := tx.Model(&App{}).Where("id = ?", app.ID).UpdateColumn("installs_count", gorm.Expr("installs_count + 1")).Error; err != nil {
		return nil, fmt.Errorf("counting install: %w", err)
	}
	if err := s.lifecycle(ctx, tx, &inst, EventInstallationCreated, map[string]any{"code": code, "codeExpiresAt": grant.ExpiresAt}); err != nil {
		return nil, err
	}
	if err := s.audit(tx, a, &org.ID, "installation.create", "installation", inst.UUID, app.Slug, JSON{"status": inst.Status}); err != nil {
		return nil, err
	}
	redirect, err := s.redirectURL(app, &inst, org.Slug, code)
	if err != nil {
		return nil, err
	}
	return &NewInstallation{Installation: &inst, RedirectURL: redirect, Code: code}, nil
}

func (s *Service) newGrant(ctx context.Context, tx *gorm.DB, installationID int64, g grantOptions) (string, *Grant, error) {
	code := secret.Token(PrefixCode, 32)
	grant := &Grant{InstallationID: installationID, CodeHash: secret.Hash(code), RedirectURI: g.RedirectURI,
		CodeChallenge: g.CodeChallenge, CodeChallengeMethod: g.CodeChallengeMethod, CreatedAt: s.now(), ExpiresAt: s.now().Add(s.opts.GrantTTL)}
	if err := tx.WithContext(ctx).Create(grant).Error; err != nil {
		return "", nil, fmt.Errorf("creating grant: %w", err)
	}
	return code, grant, nil
}

// redirectURL is where the browser goes to finish installing at the partner.
func (s *Service) redirectURL(app *App, inst *Installation, orgSlug, code string) (string, error) {
	u, err := url.Parse(app.RedirectURL)
	if err != nil {
		return "", fmt.Errorf("parsing redirect URL of %s: %w", app.Slug, err)
	}
	state, err := s.InstallState(app, inst, orgSlug)
	if err != nil {
		return "", err
	}
	q := u.Query()
	q.Set("code", code)
	q.Set("installationId", inst.UUID)
	q.Set("orgSlug", orgSlug)
	q.Set("state", state)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// InstallState signs the state a redirect carries (EdDSA, verifiable with
// the platform's JWKS), so the partner can tell the redirect is genuine.
func (s *Service) InstallState(app *App, inst *Installation, orgSlug string) (string, error) {
	claims := jwt.MapClaims{"iss": s.opts.Issuer, "aud": app.ClientID, "sub": inst.UUID, "org": orgSlug,
		"iat": s.now().Unix(), "exp": s.now().Add(s.opts.GrantTTL).Unix()}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	t.Header["kid"] = s.StateKeyID()
	signed, err := t.SignedString(s.stateKey)
	if err != nil {
		return "", fmt.Errorf("signing install state: %w", err)
	}
	return signed, nil
}

// lifecycle publishes an installation event, addressed to inst only.
func (s *Service) lifecycle(ctx context.Context, tx *gorm.DB, inst *Installation, typ string, extra map[string]any) error {
	data := map[string]any{"installation": lifecycleInstallation(inst)}
	for k, v := range extra {
		data[k] = v
	}
	_, err := s.outbox.Publish(ctx, tx, webhooks.NewEvent{OrganizationID: inst.OrganizationID, Type: typ, Data: data,
		InstallationID: inst.ID, CreatedBy: "plugboard"})
	return err
}

func lifecycleInstallation(inst *Installation) map[string]any {
	m := map[string]any{"uuid": inst.UUID, "status": inst.Status, "scopes": inst.Scopes}
	if inst.App != nil {
		m["app"] = map[string]any{"slug": inst.App.Slug, "name": inst.App.Name, "clientId": inst.App.ClientID}
	}
	if inst.Organization != nil {
		m["organization"] = map[string]any{"id": idStr(inst.Organization.ID), "slug": inst.Organization.Slug, "name": inst.Organization.Name}
	}
	if inst.Plan != nil {
		m["plan"] = planData(inst.Plan)
	} else {
		m["plan"] = nil
	}
	return m
}

func planData(p *Plan) map[string]any {
	if p == nil {
		return nil
	}
	return map[string]any{"slug": p.Slug, "name": p.Name, "price": p.Price, "currency": p.Currency, "interval": p.Interval}
}

// loadInstallation finds an installation by uuid with its app, organization
// and plan.
func (s *Service) loadInstallation(ctx context.Context, tx *gorm.DB, id string, lock bool) (*Installation, error) {
	if _, err := uuid.Parse(id); err != nil {
		return nil, fault.NotFound("installation")
	}
	q := tx.WithContext(ctx).Preload("App").Preload("Organization").Preload("Plan").Where("uuid = ?", id)
	if lock {
		q = q.Clauses(lockForUpdate)
	}
	var inst Installation
	if err := q.First(&inst).Error; err != nil {
		return nil, dbErr(err, "installation", "")
	}
	return &inst, nil
}

// side says who, relative to an installation, the actor is.
type side int

const (
	sideNone side = iota
	sideMember
	sideAdmin
	sideApp // the app itself or this installation's token
)

func (s *Service) sideOf(ctx context.Context, tx *gorm.DB, a Actor, inst *Installation) (side, error) {
	switch {
	case a.Service != nil:
		return sideNone, nil // host service tokens publish events, nothing more
	case a.Installation != nil:
		if a.Installation.ID == inst.ID {
			return sideApp, nil
		}
		return sideNone, nil
	case a.App != nil:
		if a.App.ID == inst.AppID {
			return sideApp, nil
		}
		return sideNone, nil
	case a.User != nil:
		var m Membership
		err := tx.WithContext(ctx).Where("organization_id = ? AND user_id = ?", inst.OrganizationID, a.User.ID).First(&m).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return sideNone, nil
		}
		if err != nil {
			return sideNone, fmt.Errorf("finding membership: %w", err)
		}
		if roleRank[m.Role] >= roleRank[RoleAdmin] {
			return sideAdmin, nil
		}
		return sideMember, nil
	}
	return sideNone, fault.Unauthorized(fault.NotAuthenticated, "Sign in, or send an installation token or app credentials.")
}

// installationFor locks an installation for a change and says who the actor
// is to it; strangers get not-found.
func (s *Service) installationFor(ctx context.Context, tx *gorm.DB, a Actor, id string) (*Installation, side, error) {
	inst, err := s.loadInstallation(ctx, tx, id, true)
	if err != nil {
		return nil, sideNone, err
	}
	sd, err := s.sideOf(ctx, tx, a, inst)
	if err == nil && sd == sideNone {
		err = fault.NotFound("installation")
	}
	return inst, sd, err
}

// GetInstallation returns one installation to its organization's members,
// its app, or its own token.
func (s *Service) GetInstallation(ctx context.Context, a Actor, id string) (*Installation, error) {
	inst, err := s.loadInstallation(ctx, s.db, id, false)
	if err != nil {
		return nil, err
	}
	sd, err := s.sideOf(ctx, s.db, a, inst)
	if err != nil {
		return nil, err
	}
	if sd == sideNone {
		return nil, fault.NotFound("installation")
	}
	return inst, nil
}

// InstallationUpdate is a PUT on an installation.
type InstallationUpdate struct {
	Status     *string // "installed": the app verifies the install
	Plan       *string // an org admin changes plan
	ExternalID *string // the partner's account id, shown to the organization
	ConfigURL  *string // where the organization configures the app at the partner
}

// UpdateInstallation verifies an install or records the partner's account
// (the app's side), or changes plan (an organization admin).
func (s *Service) UpdateInstallation(ctx context.Context, a Actor, id string, u InstallationUpdate) (*Installation, error) {
	var out *Installation
	err := s.tx(ctx, func(tx *gorm.DB) error {
		inst, sd, err := s.installationFor(ctx, tx, a, id)
		if err != nil {
			return err
		}
		if !inst.Live() {
			return fault.Conflict(fault.InstallationNotLive, fmt.Sprintf("The installation is %s.", inst.Status))
		}
		appSide := u.Status != nil || u.ExternalID != nil || u.ConfigURL != nil
		if appSide && sd != sideApp {
			return fault.Forbidden(fault.AppOnly, "Only the app verifies its installation or sets externalId and configUrl, with the installation's token.")
		}
		if u.Plan != nil && sd != sideAdmin {
			if sd == sideMember {
				return fault.Forbidden(fault.InsufficientRole, "Changing plan needs the admin role in the organization.")
			}
			return fault.Forbidden(fault.AdminOnly, "Only the organization's admins change plan.")
		}
		f := fault.Fields{}
		f.Check(u.Status != nil && *u.Status != InstallInstalled, "status", `must be "installed"`)
		if u.ExternalID != nil {
			f.Check(len(*u.ExternalID) > 200, "externalId", "must be at most 200 characters")
		}
		if u.ConfigURL != nil {
			checkURL(f, "configUrl", *u.ConfigURL, false)
		}
		if err := f.Err(); err != nil {
			return err
		}
		changes := map[string]any{"updated_at": s.now()}
		action := "installation.update"
		if u.Status != nil && inst.Status == InstallPending {
			changes["status"], changes["verified_at"] = InstallInstalled, s.now()
			inst.Status, inst.VerifiedAt = InstallInstalled, ptr(s.now())
			action = "installation.verify"
		}
		if u.ExternalID != nil {
			changes["external_id"], inst.ExternalID = *u.ExternalID, *u.ExternalID
		}
		if u.ConfigURL != nil {
			changes["config_url"], inst.ConfigURL = *u.ConfigURL, *u.ConfigURL
		}
		var planChange map[string]any
		if u.Plan != nil {
			_, plan, err := s.installable(ctx, tx, a, *inst.Organization, idStr(inst.AppID), *u.Plan)
			if err != nil {
				return err
			}
			if plan != nil && (inst.PlanID == nil || *inst.PlanID != plan.ID) {
				planChange = map[string]any{"previousPlan": planData(inst.Plan)}
				changes["plan_id"], inst.PlanID, inst.Plan = plan.ID, &plan.ID, plan
				action = "installation.change_plan"
			}
		}
		if err := tx.Model(&Installation{}).Where("id = ?", inst.ID).Updates(changes).Error; err != nil {
			return fmt.Errorf("updating installation: %w", err)
		}
		inst.UpdatedAt = s.now()
		if planChange != nil {
			if err := s.lifecycle(ctx, tx, inst, EventInstallationUpdated, planChange); err != nil {
				return err
			}
		}
		out = inst
		return s.audit(tx, a, &inst.OrganizationID, action, "installation", inst.UUID, inst.App.Slug, nil)
	})
	return out, err
}

// Uninstall deletes an installation: tokens are revoked at once and the app
// is told with installation.deleted. Org admins, the app, or its token.
func (s *Service) Uninstall(ctx context.Context, a Actor, id string) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		inst, sd, err := s.installationFor(ctx, tx, a, id)
		if err != nil {
			return err
		}
		if sd == sideMember {
			return fault.Forbidden(fault.InsufficientRole, "Uninstalling needs the admin role in the organization.")
		}
		if !inst.Live() {
			return fault.Conflict(fault.InstallationNotLive, fmt.Sprintf("The installation is already %s.", inst.Status))
		}
		return s.endInstallation(ctx, tx, a, inst, InstallDeleted, "uninstalled")
	})
}

// endInstallation moves a live installation to deleted or failed, revokes
// its grants and tokens, and tells the app.
func (s *Service) endInstallation(ctx context.Context, tx *gorm.DB, a Actor, inst *Installation, status, reason string) error {
	now := s.now()
	if err := tx.Model(&Installation{}).Where("id = ?", inst.ID).Updates(map[string]any{
		"status": status, "status_reason": reason, "deleted_at": now, "updated_at": now}).Error; err != nil {
		return fmt.Errorf("ending installation: %w", err)
	}
	inst.Status, inst.StatusReason, inst.DeletedAt = status, reason, &now
	if err := s.revokeInstallationCredentials(tx, inst.ID); err != nil {
		return err
	}
	if err := tx.Model(&App{}).Where("id = ? AND installs_count > 0", inst.AppID).
		UpdateColumn("installs_count", gorm.Expr("installs_count - 1")).Error; err != nil {
		return fmt.Errorf("counting uninstall: %w", err)
	}
	if err := s.lifecycle(ctx, tx, inst, EventInstallationDeleted, map[string]any{"reason": reason}); err != nil {
		return err
	}
	action := "installation.delete"
	if status == InstallFailed {
		action = "installation.fail"
	}
	return s.audit(tx, a, &inst.OrganizationID, action, "installation", inst.UUID, inst.App.Slug, JSON{"reason": reason})
}

func (s *Service) revokeInstallationCredentials(tx *gorm.DB, installationID int64) error {
	now := s.now()
	if err := tx.Model(&Token{}).Where("installation_id = ? AND revoked_at IS NULL", installationID).Update("revoked_at", now).Error; err != nil {
		return fmt.Errorf("revoking tokens: %w", err)
	}
	if err := tx.Model(&Grant{}).Where("installation_id = ? AND revoked_at IS NULL AND used_at IS NULL", installationID).Update("revoked_at", now).Error; err != nil {
		return fmt.Errorf("revoking grants: %w", err)
	}
	return nil
}

// InstallationQuery filters installation lists.
type InstallationQuery struct {
	Status    string
	SyncState string
}

func (q InstallationQuery) apply(db *gorm.DB) (*gorm.DB, error) {
	f := fault.Fields{}
	f.Check(q.Status != "" && !slices.Contains([]string{InstallPending, InstallInstalled, InstallDeleted, InstallFailed}, q.Status),
		"status", "must be pending, installed, deleted or failed")
	f.Check(q.SyncState != "" && q.SyncState != InSync && q.SyncState != OutOfSync, "syncState", "must be in_sync or out_of_sync")
	if err := f.Err(); err != nil {
		return nil, err
	}
	if q.Status != "" {
		db = db.Where("installations.status = ?", q.Status)
	}
	if q.SyncState != "" {
		db = db.Where("installations.sync_state = ?", q.SyncState)
	}
	return db, nil
}

func (s *Service) listInstallations(ctx context.Context, q *gorm.DB, iq InstallationQuery, r page.Request) (page.Page[Installation], error) {
	q, err := iq.apply(q.WithContext(ctx).Preload("App").Preload("Organization").Preload("Plan"))
	if err != nil {
		return page.Page[Installation]{}, err
	}
	var rows []Installation
	if err := page.Query(q, "installations.id", page.Sort{Column: "installations.id", Desc: true}, r).Find(&rows).Error; err != nil {
		return page.Page[Installation]{}, fmt.Errorf("listing installations: %w", err)
	}
	return page.Finish(rows, r, func(i Installation) (string, int64) { return "", i.ID }), nil
}

// ListOrgInstallations lists the apps installed in an organization; members.
func (s *Service) ListOrgInstallations(ctx context.Context, a Actor, orgRef string, iq InstallationQuery, r page.Request) (page.Page[Installation], error) {
	acc, err := s.access(ctx, s.db, a, orgRef, RoleMember)
	if err != nil {
		return page.Page[Installation]{}, err
	}
	return s.listInstallations(ctx, s.db.Where("installations.organization_id = ?", acc.Org.ID), iq, r)
}

// ListAppInstallations lists an app's installations to its owner
// organization's members or the app itself.
func (s *Service) ListAppInstallations(ctx context.Context, a Actor, appRef string, iq InstallationQuery, r page.Request) (page.Page[Installation], error) {
	var appID int64
	switch {
	case a.App != nil:
		var app App
		if err := byRef(s.db.WithContext(ctx), "apps", appRef).First(&app).Error; err != nil || app.ID != a.App.ID {
			return page.Page[Installation]{}, fault.NotFound("app")
		}
		appID = app.ID
	case a.Installation != nil:
		return page.Page[Installation]{}, fault.Forbidden(fault.AppCredentialsRequired, "List installations as the app itself (client credentials or an app JWT), not with an installation token.")
	default:
		v, err := s.view(ctx, s.db, a, appRef, false)
		if err != nil {
			return page.Page[Installation]{}, err
		}
		if v.Role == "" {
			return page.Page[Installation]{}, fault.NotFound("app")
		}
		appID = v.ID
	}
	return s.listInstallations(ctx, s.db.Where("installations.app_id = ?", appID), iq, r)
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

// platformAccess lets users (members) and installation tokens with scope read
// an organization.
func (s *Service) platformAccess(ctx context.Context, a Actor, ref, scope string) (*OrgAccess, error) {
	if a.Installation == nil {
		return s.access(ctx, s.db, a, ref, RoleMember)
	}
	var org Organization
	if err := byRef(s.db.WithContext(ctx), "organizations", ref).First(&org).Error; err != nil {
		return nil, dbErr(err, "organization", "")
	}
	if err := requireScope(a, org.ID, scope); err != nil {
		return nil, err
	}
	return &OrgAccess{Org: org}, nil
}
