package marketplace

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
	"gorm.io/gorm"

	"github.com/plugboard/plugboard/app/fault"
	"github.com/plugboard/plugboard/app/page"
	"github.com/plugboard/plugboard/app/secret"
	"github.com/plugboard/plugboard/webhooks"
)

// Categories the directory knows.
var Categories = []string{
	"alerting", "analytics", "ci-cd", "communication", "data", "deployment", "developer-tools",
	"issue-tracking", "monitoring", "notifications", "project-management", "security", "source-control", "other",
}

// WebhookSecretOverlap is how long a rotated-out webhook secret keeps signing.
const WebhookSecretOverlap = 24 * time.Hour

// AppFields are the settable attributes of an app; nil means "not given".
type AppFields struct {
	Name          *string
	Slug          *string
	Kind          *string
	Author        *string
	Overview      *string
	Categories    *[]string
	Scopes        *[]string
	Events        *[]string
	WebhookURL    *string
	RedirectURL   *string
	VerifyInstall *bool
	SyncURL       *string
	SSOURL        *string // where "Open {App}" posts a sign-on token (sso.go)
	ProvisionURL  *string // called to provision, change plan, deprovision (provision.go)
	ConfigPrefix  *string // starts every config var's name (config_vars.go)
	LogoURL       *string
	PublicKey     *string // PEM, RSA or Ed25519: verifies JWTs the app signs
}

// AppView is an app as one actor may see it.
type AppView struct {
	App
	// Private is true for the owner organization's members and operators:
	// they see URLs and credentials' ids, others the public listing.
	Private bool
	// Role is the actor's role in the owner organization, if any.
	Role string
	// The endpoint's health and limits, for private views.
	WebhookStatus       string
	WebhookStatusReason string
	WebhookRateLimit    int
	WebhookMaxInFlight  int
	// Revision is the app's draft or submitted revision, for private
	// views; nil when none (app_revisions.go).
	Revision *AppRevision
}

// CreatedApp carries the credentials shown once, at creation.
type CreatedApp struct {
	AppView
	ClientSecret  string
	WebhookSecret string
	// For internal integrations: the installation in the owner organization
	// and its access token (no expiry until rotated or revoked).
	Installation *Installation
	Token        string
}

func checkURL(f fault.Fields, field, raw string, required bool) {
	if raw == "" {
		f.Check(required, field, "is required")
		return
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.Fragment != "" || utf8.RuneCountInString(raw) > 2000 {
		f.Add(field, "must be an absolute http or https URL without credentials or fragment")
	}
}

// apply validates fields and copies them onto app; creating says whether
// absent required fields are errors.
func (s *Apps) apply(ctx context.Context, f fault.Fields, app *App, in AppFields, creating bool) error {
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return strings.TrimSpace(*p)
	}
	if in.Name != nil || creating {
		app.Name = str(in.Name)
		f.Check(app.Name == "", "name", "is required")
		f.Check(utf8.RuneCountInString(app.Name) > 80, "name", "must be at most 80 characters")
	}
	if in.Slug != nil {
		app.Slug = str(in.Slug)
		checkSlug(f, "slug", app.Slug)
	} else if creating {
		app.Slug = Slugify(app.Name)
		if app.Name != "" {
			checkSlug(f, "name", app.Slug)
		}
	}
	if in.Kind != nil {
		if !creating && *in.Kind != app.Kind {
			f.Add("kind", "cannot change after creation")
		}
		app.Kind = *in.Kind
	} else if creating {
		app.Kind = KindPublic
	}
	f.Check(app.Kind != KindPublic && app.Kind != KindInternal, "kind", "must be public or internal")
	if in.Author != nil {
		app.Author = str(in.Author)
		f.Check(utf8.RuneCountInString(app.Author) > 100, "author", "must be at most 100 characters")
	}
	if in.Overview != nil {
		app.Overview = *in.Overview
		f.Check(utf8.RuneCountInString(app.Overview) > 20000, "overview", "must be at most 20000 characters")
	}
	if in.Categories != nil {
		app.Categories = dedupe(*in.Categories)
		for _, c := range app.Categories {
			f.Check(!slices.Contains(Categories, c), "categories", fmt.Sprintf("%q is not a category; known: %s", c, strings.Join(Categories, ", ")))
		}
	}
	if in.Scopes != nil {
		app.Scopes = dedupe(*in.Scopes)
	}
	if in.Events != nil {
		app.Events = dedupe(*in.Events)
	}
	if in.Scopes != nil || in.Events != nil {
		if err := s.checkScopesAndEvents(ctx, f, app.Scopes, app.Events); err != nil {
			return err
		}
	}
	for _, u := range []struct {
		field string
		in    *string
		out   *string
	}{{"webhookUrl", in.WebhookURL, &app.WebhookURL}, {"redirectUrl", in.RedirectURL, &app.RedirectURL},
		{"syncUrl", in.SyncURL, &app.SyncURL}, {"logoUrl", in.LogoURL, &app.LogoURL}} {
		if u.in != nil {
			*u.out = str(u.in)
			checkURL(f, u.field, *u.out, false)
		}
	}
	if in.SSOURL != nil {
		app.SSOURL = str(in.SSOURL)
		checkPartnerURL(f, "ssoUrl", app.SSOURL, s.opts.RequireHTTPS)
	}
	if in.ProvisionURL != nil {
		app.ProvisionURL = str(in.ProvisionURL)
		checkPartnerURL(f, "provisionUrl", app.ProvisionURL, s.opts.RequireHTTPS)
	}
	if in.ConfigPrefix != nil {
		app.ConfigPrefix = str(in.ConfigPrefix)
		checkConfigPrefix(f, app.ConfigPrefix)
	}
	if in.VerifyInstall != nil {
		app.VerifyInstall = *in.VerifyInstall
	}
	if in.PublicKey != nil {
		app.PublicKey = strings.TrimSpace(*in.PublicKey)
		if app.PublicKey != "" {
			_, rsaErr := jwt.ParseRSAPublicKeyFromPEM([]byte(app.PublicKey))
			_, edErr := jwt.ParseEdPublicKeyFromPEM([]byte(app.PublicKey))
			f.Check(rsaErr != nil && edErr != nil, "publicKey", "must be a PEM-encoded RSA or Ed25519 public key")
		}
	}
	return nil
}

func dedupe(in []string) Strings {
	out := Strings{}
	for _, v := range in {
		v = strings.TrimSpace(v)
		if v != "" && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// checkScopesAndEvents: every scope is in the catalogue, every event exists
// and is allowed by the scopes.
func (s *Apps) checkScopesAndEvents(ctx context.Context, f fault.Fields, scopes, events []string) error {
	known, err := s.events.Scopes(ctx)
	if err != nil {
		return err
	}
	for _, sc := range scopes {
		if !slices.ContainsFunc(known, func(k Scope) bool { return k.Name == sc }) {
			f.Add("scopes", fmt.Sprintf("%q is not a known scope; see GET /api/0/scopes/", sc))
		}
	}
	types, err := s.events.catalog.List(ctx)
	if err != nil {
		return err
	}
	for _, ev := range events {
		i := slices.IndexFunc(types, func(t webhooks.EventType) bool { return t.Name == ev })
		switch {
		case i < 0:
			f.Add("events", fmt.Sprintf("%q is not a known event type; see GET /api/0/event-types/", ev))
		case slices.Contains(hostOnlyEvents, ev): // host_events.go
			f.Add("events", fmt.Sprintf("%q is sent to the host's endpoints only", ev))
		case types[i].Scope != "" && !slices.Contains(scopes, types[i].Scope):
			f.Add("events", fmt.Sprintf("%q needs the %s scope", ev, types[i].Scope))
		}
	}
	return nil
}

// CreateApp registers an app owned by organization ref; admins and owners.
func (s *Apps) CreateApp(ctx context.Context, a Actor, ref string, in AppFields) (*CreatedApp, error) {
	var out *CreatedApp
	err := s.publishTx(ctx, func(tx *gorm.DB) error {
		acc, err := s.access(ctx, tx, a, ref, RoleAdmin)
		if err != nil {
			return err
		}
		app := App{OrganizationID: acc.Org.ID, Status: StatusDraft, Categories: Strings{}, Scopes: Strings{}, Events: Strings{}}
		f := fault.Fields{}
		if err := s.apply(ctx, f, &app, in, true); err != nil {
			return err
		}
		if err := f.Err(); err != nil {
			return err
		}
		if app.Author == "" {
			app.Author = acc.Org.Name
		}
		clientSecret := secret.Token("pbcs_", 32)
		webhookSecret := webhooks.NewSecret()
		app.ClientID = secret.HexToken(16)
		app.ClientSecretHash = secret.Hash(clientSecret)
		app.ClientSecretSealed = s.box.Seal(clientSecret)
		app.WebhookSecret = s.box.Seal(webhookSecret)
		app.CreatedBy = &a.User.ID
		app.CreatedAt, app.UpdatedAt = s.now(), s.now()
		if err := tx.Omit("Organization", "Plans").Create(&app).Error; err != nil {
			return dbErr(err, "app", "slug")
		}
		app.Organization = &acc.Org
		out = &CreatedApp{AppView: AppView{App: app, Private: true, Role: acc.Role}, ClientSecret: clientSecret, WebhookSecret: webhookSecret}
		if err := s.audit(tx, a, &acc.Org.ID, "app.create", "app", idStr(app.ID), app.Slug, JSON{"kind": app.Kind}); err != nil {
			return err
		}
		if app.Kind == KindInternal {
			return s.installs.installInternal(ctx, tx, a, acc.Org, &app, out)
		}
		return nil
	})
	return out, err
}

// GetApp returns one app as the actor may see it, with its plans.
func (s *Apps) GetApp(ctx context.Context, a Actor, ref string) (*AppView, error) {
	v, err := s.view(ctx, s.db, a, ref, false)
	if err != nil {
		return nil, err
	}
	if err := s.db.WithContext(ctx).Where("app_id = ?", v.ID).Order("price, id").Find(&v.Plans).Error; err != nil {
		return nil, fmt.Errorf("loading plans: %w", err)
	}
	if err := s.loadEndpoint(ctx, v); err != nil {
		return nil, err
	}
	if v.Private {
		if v.Revision, err = s.revisions.open(ctx, s.db, v.ID, false); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// AppUpdate is a PUT: fields, and for operators a review decision.
type AppUpdate struct {
	AppFields
	Status       *string
	StatusReason *string
	// The endpoint: "enabled" re-enables it and replays what was paused.
	WebhookStatus      *string
	WebhookRateLimit   *int
	WebhookMaxInFlight *int
}

// UpdateApp changes an app. Owners' admins change its fields; operators set
// status to published or rejected (with a reason) on a submitted app.
func (s *Apps) UpdateApp(ctx context.Context, a Actor, ref string, u AppUpdate) (*AppView, error) {
	if err := webhooks.ValidateEndpointUpdate(u.WebhookStatus, u.WebhookRateLimit, u.WebhookMaxInFlight); err != nil {
		return nil, err
	}
	var out *AppView
	err := s.publishTx(ctx, func(tx *gorm.DB) error {
		if u.Status != nil {
			if u.WebhookStatus != nil || u.WebhookRateLimit != nil || u.WebhookMaxInFlight != nil {
				return fault.Field("status", "is changed on its own, without other fields")
			}
			return s.review(ctx, tx, a, ref, *u.Status, u.StatusReason, u.AppFields, &out)
		}
		if u.StatusReason != nil {
			return fault.Field("statusReason", "goes with status")
		}
		if u.AppFields == (AppFields{}) && (u.WebhookStatus != nil || u.WebhookRateLimit != nil || u.WebhookMaxInFlight != nil) {
			v, err := s.manage(ctx, tx, a, ref)
			if err != nil {
				return err
			}
			out = v
			if err := s.endpointFields(ctx, tx, a, v, u); err != nil {
				return err
			}
			return s.audit(tx, a, &v.OrganizationID, "app.update", "app", idStr(v.ID), v.Slug, JSON{"webhookStatus": u.WebhookStatus,
				"webhookRateLimit": u.WebhookRateLimit, "webhookMaxInFlight": u.WebhookMaxInFlight})
		}
		v, err := s.manage(ctx, tx, a, ref)
		if err != nil {
			return err
		}
		f := fault.Fields{}
		before := permissionsOf(&v.App)
		// A published app's scopes, events and URLs wait for review in a
		// revision; the rest applies at once (app_revisions.go).
		held, err := s.revisions.hold(ctx, tx, f, &v.App, &u.AppFields)
		if err != nil {
			return err
		}
		if err := s.apply(ctx, f, &v.App, u.AppFields, false); err != nil {
			return err
		}
		if err := f.Err(); err != nil {
			return err
		}
		v.UpdatedAt = s.now()
		if err := tx.Omit("Organization", "Plans").Save(&v.App).Error; err != nil {
			return dbErr(err, "app", "slug")
		}
		out = v
		if v.Revision, err = held.save(ctx, tx, a); err != nil {
			return err
		}
		if held == nil { // an app never published: its installations follow at once
			if err := s.revisions.permissions.follow(ctx, tx, a, &v.App, before, nil); err != nil {
				return err
			}
		}
		if err := s.endpointFields(ctx, tx, a, v, u); err != nil {
			return err
		}
		data := changed(u.AppFields)
		if v.Revision != nil {
			data["revision"] = v.Revision.Number
		}
		if u.WebhookStatus != nil || u.WebhookRateLimit != nil || u.WebhookMaxInFlight != nil {
			data["webhookStatus"], data["webhookRateLimit"], data["webhookMaxInFlight"] = u.WebhookStatus, u.WebhookRateLimit, u.WebhookMaxInFlight
		}
		return s.audit(tx, a, &v.OrganizationID, "app.update", "app", idStr(v.ID), v.Slug, data)
	})
	if err != nil {
		return nil, err
	}
	if out.Role != "" {
		s.endpoints.Forget(out.ID)
		if err := s.loadEndpoint(ctx, out); err != nil {
			return nil, err
		}
		if out.Revision, err = s.revisions.open(ctx, s.db, out.ID, false); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// changed lists which fields an update set, for the audit log.
func changed(in AppFields) JSON {
	var names []string
	for name, set := range map[string]bool{"name": in.Name != nil, "slug": in.Slug != nil, "author": in.Author != nil,
		"overview": in.Overview != nil, "categories": in.Categories != nil, "scopes": in.Scopes != nil, "events": in.Events != nil,
		"webhookUrl": in.WebhookURL != nil, "redirectUrl": in.RedirectURL != nil, "verifyInstall": in.VerifyInstall != nil,
		"syncUrl": in.SyncURL != nil, "logoUrl": in.LogoURL != nil, "ssoUrl": in.SSOURL != nil,
		"provisionUrl": in.ProvisionURL != nil, "configPrefix": in.ConfigPrefix != nil} {
		if set {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return JSON{"fields": names}
}

// DeleteApp removes an app and its plans.
func (s *Apps) DeleteApp(ctx context.Context, a Actor, ref string) error {
	return s.publishTx(ctx, func(tx *gorm.DB) error {
		v, err := s.manage(ctx, tx, a, ref)
		if err != nil {
			return err
		}
		var live int64
		if err := tx.Model(&Installation{}).Where("app_id = ? AND organization_id <> ? AND status IN ?", v.ID, v.OrganizationID,
			LiveStatuses).Count(&live).Error; err != nil {
			return fmt.Errorf("counting installations: %w", err)
		}
		if live > 0 {
			return fault.Conflict(fault.HasInstallations, fmt.Sprintf("%d organizations still have the app installed; they must uninstall it first.", live))
		}
		if err := tx.Delete(&App{}, v.ID).Error; err != nil {
			return fmt.Errorf("deleting app: %w", err)
		}
		if v.Status == StatusPublished { // host endpoints hear it left the marketplace (host_events.go)
			if err := s.hostAppEvent(ctx, tx, &v.App, EventAppUnpublished, "deleted"); err != nil {
				return err
			}
		}
		return s.audit(tx, a, &v.OrganizationID, "app.delete", "app", idStr(v.ID), v.Slug, nil)
	})
}

// ListOrgApps returns the apps an organization owns; any member may read.
func (s *Apps) ListOrgApps(ctx context.Context, a Actor, ref string, r page.Request) (page.Page[AppView], error) {
	acc, err := s.access(ctx, s.db, a, ref, RoleMember)
	if err != nil {
		return page.Page[AppView]{}, err
	}
	var rows []App
	q := s.db.WithContext(ctx).Preload("Organization").Where("organization_id = ?", acc.Org.ID)
	order := page.Sort{Column: "id"}
	if err := page.Query(q, "id", order, r).Find(&rows).Error; err != nil {
		return page.Page[AppView]{}, fmt.Errorf("listing apps: %w", err)
	}
	p := page.Finish(rows, r, order, func(a App) (string, int64) { return "", a.ID })
	return page.Map(p, func(app App) AppView { return AppView{App: app, Private: true, Role: acc.Role} }), nil
}
