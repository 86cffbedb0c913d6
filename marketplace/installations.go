package marketplace

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/plugboard/plugboard/app/fault"
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
	Installation  *Installation
	RedirectURL   string // "" for an app without a redirect URL (it provisions instead)
	Code          string
	CodeExpiresAt time.Time
}

// grantOptions are what the OAuth authorize request fixes on the code.
type grantOptions struct {
	RedirectURI         string
	CodeChallenge       string
	CodeChallengeMethod string
	Identity            *oidcGrant // the user an openid request signs in (oidc.go)
	// Scopes narrows the code (and, installing, the installation) to the
	// scopes the request asked for; nil: all the app's.
	Scopes []string
}

// Install installs app into organization orgRef, by an admin there.
func (s *Installs) Install(ctx context.Context, a Actor, orgRef, appRef, planRef string) (*NewInstallation, error) {
	var out *NewInstallation
	err := s.publishTx(ctx, func(tx *gorm.DB) error {
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
	if err == nil && out.Installation.Status == InstallProvisioning {
		// After the commit: the partner is asked with no transaction open.
		err = s.provisioning.provision(ctx, a, out)
	}
	return out, err
}

// installable finds an app the organization may install, and its plan.
func (s *Installs) installable(ctx context.Context, tx *gorm.DB, a Actor, org Organization, appRef, planRef string) (*App, *Plan, error) {
	if strings.TrimSpace(appRef) == "" {
		return nil, nil, fault.Field("app", "is required")
	}
	var app App
	// KEY SHARE: the kill switch (FOR UPDATE on the app) and this wait for
	// each other, so no installation escapes a suspension that commits
	// meanwhile (suspensions.go); installs of one app do not wait.
	err := byRef(tx.WithContext(ctx), "apps", appRef).Clauses(clause.Locking{Strength: "KEY SHARE"}).First(&app).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, nil, fault.Field("app", "no such app")
	}
	if err != nil {
		return nil, nil, fmt.Errorf("finding app: %w", err)
	}
	visible := app.Kind == KindPublic && (app.Status == StatusPublished || app.OrganizationID == org.ID)
	if app.Status == StatusSuspended && app.Kind == KindPublic && (app.SuspendedFrom == StatusPublished || app.OrganizationID == org.ID) {
		// The kill switch (suspensions.go): said plainly to whoever saw it listed.
		return nil, nil, fault.Conflict(fault.AppSuspended, fmt.Sprintf("Plugboard's operators suspended %s: it cannot be installed, nor its plan changed.", app.Name))
	}
	if !visible {
		if app.Kind == KindInternal && app.OrganizationID == org.ID {
			return nil, nil, fault.Field("app", "internal integrations are installed when they are created")
		}
		return nil, nil, fault.Field("app", "no such app")
	}
	if app.RedirectURL == "" && app.ProvisionURL == "" {
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
func (s *Installs) install(ctx context.Context, tx *gorm.DB, a Actor, org Organization, app *App, plan *Plan, g grantOptions) (*NewInstallation, error) {
	var live Installation
	err := tx.WithContext(ctx).Where("app_id = ? AND organization_id = ? AND status IN ?", app.ID, org.ID,
		LiveStatuses).First(&live).Error
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
	if app.ProvisionURL != "" {
		inst.Status = InstallProvisioning // until the partner answers (provision.go)
	}
	if g.Scopes != nil {
		inst.Scopes = g.Scopes // the admin consented to these only
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
	out := &NewInstallation{Installation: &inst, Code: code, CodeExpiresAt: grant.ExpiresAt}
	if inst.Status != InstallProvisioning {
		// A provisioned app hears of it when the partner's answer settles it.
		if err := s.lifecycle(ctx, tx, &inst, EventInstallationCreated, map[string]any{"code": code, "codeExpiresAt": grant.ExpiresAt}); err != nil {
			return nil, err
		}
		if err := s.audit(tx, a, &org.ID, "installation.create", "installation", inst.UUID, app.Slug, JSON{"status": inst.Status}); err != nil {
			return nil, err
		}
	}
	if app.RedirectURL != "" {
		if out.RedirectURL, err = s.redirectURL(app, &inst, org.Slug, code); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (s *Installs) newGrant(ctx context.Context, tx *gorm.DB, installationID int64, g grantOptions) (string, *Grant, error) {
	code := secret.Token(PrefixCode, 32)
	grant := &Grant{InstallationID: installationID, CodeHash: secret.Hash(code), RedirectURI: g.RedirectURI,
		CodeChallenge: g.CodeChallenge, CodeChallengeMethod: g.CodeChallengeMethod, Scopes: g.Scopes, CreatedAt: s.now(), ExpiresAt: s.now().Add(s.opts.GrantTTL)}
	if err := tx.WithContext(ctx).Create(grant).Error; err != nil {
		return "", nil, fmt.Errorf("creating grant: %w", err)
	}
	if err := s.rememberIdentity(ctx, tx, grant.ID, g.Identity); err != nil {
		return "", nil, err
	}
	return code, grant, nil
}

// redirectURL is where the browser goes to finish installing at the partner.
func (s *Installs) redirectURL(app *App, inst *Installation, orgSlug, code string) (string, error) {
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
func (s *Installs) InstallState(app *App, inst *Installation, orgSlug string) (string, error) {
	claims := jwt.MapClaims{"iss": s.opts.Issuer, "aud": app.ClientID, "sub": inst.UUID, "org": orgSlug,
		"iat": s.now().Unix(), "exp": s.now().Add(s.opts.GrantTTL).Unix()}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	t.Header["kid"] = s.stateKeyID()
	signed, err := t.SignedString(s.stateKey)
	if err != nil {
		return "", fmt.Errorf("signing install state: %w", err)
	}
	return signed, nil
}

// lifecycle publishes an installation event, addressed to inst only.
func (s *Installs) lifecycle(ctx context.Context, tx *gorm.DB, inst *Installation, typ string, extra map[string]any) error {
	data := map[string]any{"installation": lifecycleInstallation(inst)}
	for k, v := range extra {
		data[k] = v
	}
	if _, err := s.outbox.Publish(ctx, tx, webhooks.NewEvent{OrganizationID: inst.OrganizationID, Type: typ, Data: data,
		InstallationID: inst.ID, CreatedBy: "plugboard"}); err != nil {
		return err
	}
	return s.hostLifecycle(ctx, tx, inst, typ, extra) // and to host endpoints (host_events.go)
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
func (s *Installs) loadInstallation(ctx context.Context, tx *gorm.DB, id string, lock bool) (*Installation, error) {
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

func (s *Installs) sideOf(ctx context.Context, tx *gorm.DB, a Actor, inst *Installation) (side, error) {
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
func (s *Installs) installationFor(ctx context.Context, tx *gorm.DB, a Actor, id string) (*Installation, side, error) {
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
func (s *Installs) GetInstallation(ctx context.Context, a Actor, id string) (*Installation, error) {
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

func (q InstallationQuery) apply(db *gorm.DB) (*gorm.DB, error) {
	f := fault.Fields{}
	f.Check(q.Status != "" && !slices.Contains([]string{InstallPending, InstallProvisioning, InstallInstalled, InstallDeleted, InstallFailed}, q.Status),
		"status", "must be pending, provisioning, installed, deleted or failed")
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

// installInternal installs an internal integration into its own organization
// and issues its token: no review, no redirect, no code.
func (s *Installs) installInternal(ctx context.Context, tx *gorm.DB, a Actor, org Organization, app *App, out *CreatedApp) error {
	inst := Installation{UUID: uuid.NewString(), AppID: app.ID, OrganizationID: org.ID, Status: InstallInstalled, SyncState: InSync,
		Scopes: app.Scopes, CreatedAt: s.now(), UpdatedAt: s.now(), VerifiedAt: ptr(s.now()), InstalledBy: &a.User.ID,
		App: app, Organization: &org}
	if err := tx.Omit("App", "Organization", "Plan").Create(&inst).Error; err != nil {
		return fmt.Errorf("installing internal integration: %w", err)
	}
	if err := tx.Model(&App{}).Where("id = ?", app.ID).UpdateColumn("installs_count", 1).Error; err != nil {
		return fmt.Errorf("counting install: %w", err)
	}
	app.InstallsCount, out.App.InstallsCount = 1, 1
	token, err := s.tokens.issueInternal(ctx, tx, &inst)
	if err != nil {
		return err
	}
	if err := s.lifecycle(ctx, tx, &inst, EventInstallationCreated, nil); err != nil {
		return err
	}
	out.Installation, out.Token = &inst, token
	return s.audit(tx, a, &org.ID, "installation.create", "installation", inst.UUID, app.Slug, JSON{"status": inst.Status, "internal": true})
}
