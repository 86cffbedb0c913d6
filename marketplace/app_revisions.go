package marketplace

import (
	"context"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/plugboard/plugboard/app/fault"
	"github.com/plugboard/plugboard/app/page"
)

// Revisions: once an app has been published, other organizations may have
// it installed, so what it may do (its scopes and events, and the URLs
// Plugboard sends their data to or signs their members in at) changes only
// through a revision an operator approves, the way the first publication
// was reviewed. Listing fields (name, overview, logo, categories, plans)
// still change at once. An approved revision applies to the app at once;
// what it adds reaches each installation only when the organization accepts
// it (permission_requests.go), what it removes is taken from every
// installation and live token at once.

// Revision statuses.
const (
	RevisionDraft     = "draft"
	RevisionSubmitted = "submitted"
	RevisionApproved  = "approved"
	RevisionRejected  = "rejected"
)

// AppRevision is a proposed change to what a published app may do.
type AppRevision struct {
	ID           int64
	AppID        int64
	Number       int // 1, 2, … per app
	Status       string
	StatusReason string // why operators rejected it
	// Base is the app's reviewed fields when the revision was last edited
	// (the "before" of its diff); Changes the proposed values of those that
	// differ.
	Base        AppPermissions `gorm:"type:jsonb"`
	Changes     AppPermissions `gorm:"type:jsonb"`
	CreatedBy   *int64
	ReviewedBy  *int64
	CreatedAt   time.Time
	UpdatedAt   time.Time
	SubmittedAt *time.Time
	ReviewedAt  *time.Time

	App *App `gorm:"foreignKey:AppID"`
}

// Proposed is app as the revision would make it.
func (r AppRevision) Proposed(app App) App {
	r.Changes.applyTo(&app)
	return app
}

// Diff lists what the revision changes, field by field in a fixed order.
func (r AppRevision) Diff() []FieldChange { return r.Base.diff(r.Changes) }

// AppPermissions are the fields of an app that change only by review; in a
// revision's Changes, nil means "unchanged". kind is reviewed too, but never
// changes after creation, so it is never stored.
type AppPermissions struct {
	Scopes       *[]string `json:"scopes,omitempty"`
	Events       *[]string `json:"events,omitempty"`
	WebhookURL   *string   `json:"webhookUrl,omitempty"`
	RedirectURL  *string   `json:"redirectUrl,omitempty"`
	ProvisionURL *string   `json:"provisionUrl,omitempty"`
	SSOURL       *string   `json:"ssoUrl,omitempty"`
	SyncURL      *string   `json:"syncUrl,omitempty"`
}

// Value implements driver.Valuer.
func (p AppPermissions) Value() (driver.Value, error) {
	b, err := json.Marshal(p)
	return string(b), err
}

// Scan implements sql.Scanner.
func (p *AppPermissions) Scan(v any) error {
	b, err := jsonColumn(v, "AppPermissions")
	*p = AppPermissions{}
	if err != nil || b == nil {
		return err
	}
	return json.Unmarshal(b, p)
}

// permissionsOf is every reviewed field of app.
func permissionsOf(app *App) AppPermissions {
	return AppPermissions{Scopes: ptr([]string(slices.Clone(app.Scopes))), Events: ptr([]string(slices.Clone(app.Events))),
		WebhookURL: ptr(app.WebhookURL), RedirectURL: ptr(app.RedirectURL), ProvisionURL: ptr(app.ProvisionURL),
		SSOURL: ptr(app.SSOURL), SyncURL: ptr(app.SyncURL)}
}

func (p AppPermissions) applyTo(app *App) {
	if p.Scopes != nil {
		app.Scopes = Strings(slices.Clone(*p.Scopes))
	}
	if p.Events != nil {
		app.Events = Strings(slices.Clone(*p.Events))
	}
	for _, u := range p.urls(app) {
		if u.in != nil {
			*u.app = *u.in
		}
	}
}

// reviewedURL pairs a reviewed URL field's name, its value in p and its
// place in an app.
type reviewedURL struct {
	field string
	in    *string
	app   *string
}

func (p AppPermissions) urls(app *App) []reviewedURL {
	if app == nil {
		app = &App{}
	}
	return []reviewedURL{{"webhookUrl", p.WebhookURL, &app.WebhookURL}, {"redirectUrl", p.RedirectURL, &app.RedirectURL},
		{"provisionUrl", p.ProvisionURL, &app.ProvisionURL}, {"ssoUrl", p.SSOURL, &app.SSOURL}, {"syncUrl", p.SyncURL, &app.SyncURL}}
}

// changesTo is what of proposed differs from p (both complete): lists
// compared as sets, URLs as strings.
func (p AppPermissions) changesTo(proposed AppPermissions) AppPermissions {
	set := func(a, b *[]string) *[]string {
		x, y := slices.Clone(*a), slices.Clone(*b)
		slices.Sort(x)
		slices.Sort(y)
		if slices.Equal(x, y) {
			return nil
		}
		return b
	}
	str := func(a, b *string) *string {
		if *a == *b {
			return nil
		}
		return b
	}
	return AppPermissions{Scopes: set(p.Scopes, proposed.Scopes), Events: set(p.Events, proposed.Events),
		WebhookURL: str(p.WebhookURL, proposed.WebhookURL), RedirectURL: str(p.RedirectURL, proposed.RedirectURL),
		ProvisionURL: str(p.ProvisionURL, proposed.ProvisionURL), SSOURL: str(p.SSOURL, proposed.SSOURL), SyncURL: str(p.SyncURL, proposed.SyncURL)}
}

func (p AppPermissions) empty() bool { return p == (AppPermissions{}) }

// FieldChange is one line of a revision's diff: a list field with what it
// adds and removes, or a URL with its value before and after.
type FieldChange struct {
	Field   string
	Added   []string // scopes, events
	Removed []string
	From    string // URLs
	To      string
}

// diff is what changes (a revision's Changes) does to p.
func (p AppPermissions) diff(changes AppPermissions) []FieldChange {
	var out []FieldChange
	list := func(field string, before, after *[]string) {
		if after == nil {
			return
		}
		var b []string
		if before != nil {
			b = *before
		}
		out = append(out, FieldChange{Field: field, Added: minus(*after, b), Removed: minus(b, *after)})
	}
	list("scopes", p.Scopes, changes.Scopes)
	list("events", p.Events, changes.Events)
	before := p.urls(nil)
	for i, u := range changes.urls(nil) {
		if u.in != nil {
			from := ""
			if before[i].in != nil {
				from = *before[i].in
			}
			out = append(out, FieldChange{Field: u.field, From: from, To: *u.in})
		}
	}
	return out
}

// diffJSON is the diff as the audit log keeps it.
func diffJSON(d []FieldChange) []map[string]any {
	out := make([]map[string]any, 0, len(d))
	for _, c := range d {
		if c.Field == "scopes" || c.Field == "events" {
			out = append(out, map[string]any{"field": c.Field, "added": orNone(c.Added), "removed": orNone(c.Removed)})
		} else {
			out = append(out, map[string]any{"field": c.Field, "from": c.From, "to": c.To})
		}
	}
	return out
}

func orNone(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// minus is the elements of a not in b, in a's order.
func minus(a, b []string) []string {
	out := []string{}
	for _, v := range a {
		if !slices.Contains(b, v) && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// union is a followed by the elements of b not in a.
func union(a, b []string) Strings {
	out := Strings(slices.Clone(a))
	for _, v := range b {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// underReview reports whether app's permissions change only by review: a
// public app that was ever published may be installed elsewhere.
func underReview(app *App) bool { return app.Kind == KindPublic && app.PublishedAt != nil }

// heldChange is what a PUT on a reviewed app asked of its reviewed fields:
// the app's open revision (nil: none yet) and the values proposed.
type heldChange struct {
	s        *Revisions
	app      *App
	rev      *AppRevision
	proposed AppPermissions
}

// hold takes the reviewed fields out of in when app is under review, and
// checks them (into f) on the app as its open revision would make it. The
// caller saves the app, then the held change (heldChange.save).
func (s *Revisions) hold(ctx context.Context, tx *gorm.DB, f fault.Fields, app *App, in *AppFields) (*heldChange, error) {
	if !underReview(app) {
		return nil, nil
	}
	held := AppFields{Kind: in.Kind, Scopes: in.Scopes, Events: in.Events, WebhookURL: in.WebhookURL, RedirectURL: in.RedirectURL,
		ProvisionURL: in.ProvisionURL, SSOURL: in.SSOURL, SyncURL: in.SyncURL}
	if held == (AppFields{}) {
		return nil, nil
	}
	in.Kind, in.Scopes, in.Events, in.WebhookURL, in.RedirectURL, in.ProvisionURL, in.SSOURL, in.SyncURL = nil, nil, nil, nil, nil, nil, nil, nil
	rev, err := s.open(ctx, tx, app.ID, true)
	if err != nil {
		return nil, err
	}
	proposed := *app
	if rev != nil {
		proposed = rev.Proposed(proposed)
	}
	if err := s.apps.apply(ctx, f, &proposed, held, false); err != nil {
		return nil, err
	}
	return &heldChange{s: s, app: app, rev: rev, proposed: permissionsOf(&proposed)}, nil
}

// save writes the held change as the app's open revision: a new draft,
// the open one changed (a submitted one goes back to draft: it must be
// submitted again), or none when nothing differs from the app any more.
// It returns the open revision, or nil.
func (h *heldChange) save(ctx context.Context, tx *gorm.DB, a Actor) (*AppRevision, error) {
	if h == nil {
		return nil, nil
	}
	s, now := h.s, h.s.now()
	base := permissionsOf(h.app)
	changes := base.changesTo(h.proposed)
	rev := h.rev
	switch {
	case changes.empty() && rev == nil:
		return nil, nil
	case changes.empty():
		if err := tx.WithContext(ctx).Delete(&AppRevision{}, rev.ID).Error; err != nil {
			return nil, fmt.Errorf("withdrawing revision %d of %s: %w", rev.Number, h.app.Slug, err)
		}
		return nil, s.audit(tx, a, &h.app.OrganizationID, "app.revision_withdraw", "app", idStr(h.app.ID), h.app.Slug, JSON{"revision": rev.Number})
	case rev == nil:
		var last int
		if err := tx.WithContext(ctx).Model(&AppRevision{}).Where("app_id = ?", h.app.ID).Select("coalesce(max(number), 0)").Scan(&last).Error; err != nil {
			return nil, fmt.Errorf("numbering revision of %s: %w", h.app.Slug, err)
		}
		rev = &AppRevision{AppID: h.app.ID, Number: last + 1, Status: RevisionDraft, CreatedAt: now}
		if a.User != nil {
			rev.CreatedBy = &a.User.ID
		}
	}
	rev.Base, rev.Changes, rev.Status, rev.SubmittedAt, rev.UpdatedAt = base, changes, RevisionDraft, nil, now
	if err := tx.WithContext(ctx).Omit("App").Save(rev).Error; err != nil {
		return nil, dbErr(err, "revision", "")
	}
	rev.App = h.app
	return rev, s.audit(tx, a, &h.app.OrganizationID, "app.revision_update", "app", idStr(h.app.ID), h.app.Slug,
		JSON{"revision": rev.Number, "diff": diffJSON(rev.Diff())})
}

// open is app appID's draft or submitted revision; nil when none.
func (s *Revisions) open(ctx context.Context, db *gorm.DB, appID int64, lock bool) (*AppRevision, error) {
	q := db.WithContext(ctx).Where("app_id = ? AND status IN ?", appID, []string{RevisionDraft, RevisionSubmitted})
	if lock {
		q = q.Clauses(lockForUpdate)
	}
	var rev AppRevision
	err := q.First(&rev).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("finding the open revision: %w", err)
	}
	return &rev, nil
}

// revision finds revision ref (its number) of app appID.
func (s *Revisions) revision(ctx context.Context, db *gorm.DB, app *App, ref string, lock bool) (*AppRevision, error) {
	n, err := strconv.Atoi(ref)
	if err != nil || n < 1 {
		return nil, fault.NotFound("revision")
	}
	q := db.WithContext(ctx).Where("app_id = ? AND number = ?", app.ID, n)
	if lock {
		q = q.Clauses(lockForUpdate)
	}
	var rev AppRevision
	if err := q.First(&rev).Error; err != nil {
		return nil, dbErr(err, "revision", "")
	}
	rev.App = app
	return &rev, nil
}

// revisionsOf loads app ref for reading its revisions: the owner
// organization's members and operators (GetApp's private view).
func (s *Revisions) revisionsOf(ctx context.Context, db *gorm.DB, a Actor, ref string, lock bool) (*AppView, error) {
	if err := requireUser(a); err != nil {
		return nil, err
	}
	v, err := s.view(ctx, db, a, ref, lock)
	if err != nil {
		return nil, err
	}
	if !v.Private {
		return nil, fault.NotFound("app")
	}
	return v, nil
}

// ListRevisions lists app ref's revisions, newest first, to its owner
// organization's members and operators.
func (s *Revisions) ListRevisions(ctx context.Context, a Actor, ref string, r page.Request) (page.Page[AppRevision], error) {
	v, err := s.revisionsOf(ctx, s.db, a, ref, false)
	if err != nil {
		return page.Page[AppRevision]{}, err
	}
	var rows []AppRevision
	order := page.Sort{Column: "id", Desc: true} // numbers grow with ids
	if err := page.Query(s.db.WithContext(ctx).Where("app_id = ?", v.ID), "id", order, r).Find(&rows).Error; err != nil {
		return page.Page[AppRevision]{}, fmt.Errorf("listing revisions of %s: %w", v.Slug, err)
	}
	for i := range rows {
		rows[i].App = &v.App
	}
	return page.Finish(rows, r, order, func(rev AppRevision) (string, int64) { return "", rev.ID }), nil
}

// GetRevision is revision number id of app ref, for its owner
// organization's members and operators.
func (s *Revisions) GetRevision(ctx context.Context, a Actor, ref, id string) (*AppRevision, error) {
	v, err := s.revisionsOf(ctx, s.db, a, ref, false)
	if err != nil {
		return nil, err
	}
	return s.revision(ctx, s.db, &v.App, id, false)
}

// SubmitRevision asks operators to review app ref's draft revision id; its
// owner organization's admins. The app as the revision would make it must
// be as complete as a first submission asks (SubmitApp).
func (s *Revisions) SubmitRevision(ctx context.Context, a Actor, ref, id string) (*AppRevision, error) {
	var out *AppRevision
	err := s.tx(ctx, func(tx *gorm.DB) error {
		v, err := s.manage(ctx, tx, a, ref)
		if err != nil {
			return err
		}
		rev, err := s.revision(ctx, tx, &v.App, id, true)
		if err != nil {
			return err
		}
		if rev.Status != RevisionDraft {
			return fault.Conflict(fault.InvalidTransition, fmt.Sprintf("Revision %d is %s; only a draft is submitted.", rev.Number, rev.Status))
		}
		app := rev.Proposed(v.App)
		f := fault.Fields{}
		f.Check(app.RedirectURL == "" && app.ProvisionURL == "", "redirectUrl", "is required: installs redirect there (or set provisionUrl)")
		f.Check(len(app.Scopes) == 0, "scopes", "needs at least one scope")
		f.Check(len(app.Events) > 0 && app.WebhookURL == "", "webhookUrl", "is required to receive events")
		if err := f.Err(); err != nil {
			return err
		}
		now := s.now()
		rev.Status, rev.StatusReason, rev.SubmittedAt, rev.UpdatedAt = RevisionSubmitted, "", &now, now
		if err := tx.Omit("App").Save(rev).Error; err != nil {
			return fmt.Errorf("submitting revision %d of %s: %w", rev.Number, v.Slug, err)
		}
		out = rev
		return s.audit(tx, a, &v.OrganizationID, "app.revision_submit", "app", idStr(v.ID), v.Slug,
			JSON{"revision": rev.Number, "diff": diffJSON(rev.Diff())})
	})
	return out, err
}

// DecideRevision approves or rejects (with a reason) app ref's submitted
// revision id; operators only. Approving applies it to the app and to its
// installations (permission_requests.go), and is audited as app.updated
// with the diff.
func (s *Revisions) DecideRevision(ctx context.Context, a Actor, ref, id, status string, reason *string) (*AppRevision, error) {
	if err := requireUser(a); err != nil {
		return nil, err
	}
	if !a.IsOperator() {
		if _, err := s.GetRevision(ctx, a, ref, id); err != nil {
			return nil, err
		}
		return nil, fault.Forbidden(fault.OperatorOnly, "Only operators approve or reject revisions; submit one with POST /api/0/apps/{app_slug}/revisions/{revision_id}/publish-requests/.")
	}
	f := fault.Fields{}
	f.Check(status != RevisionApproved && status != RevisionRejected, "status", "must be approved or rejected")
	f.Check(status == RevisionRejected && (reason == nil || strings.TrimSpace(*reason) == ""), "statusReason", "is required to reject a revision")
	f.Check(status == RevisionApproved && reason != nil && strings.TrimSpace(*reason) != "", "statusReason", "goes with rejected only")
	if err := f.Err(); err != nil {
		return nil, err
	}
	var out *AppRevision
	webhookChanged := false
	err := s.publishTx(ctx, func(tx *gorm.DB) error {
		v, err := s.view(ctx, tx, a, ref, true)
		if err != nil {
			return err
		}
		rev, err := s.revision(ctx, tx, &v.App, id, true)
		if err != nil {
			return err
		}
		if rev.Status != RevisionSubmitted {
			return fault.Conflict(fault.InvalidTransition, fmt.Sprintf("Revision %d is %s; only a submitted revision is approved or rejected.", rev.Number, rev.Status))
		}
		now := s.now()
		rev.Status, rev.ReviewedBy, rev.ReviewedAt, rev.UpdatedAt = status, &a.User.ID, &now, now
		out = rev
		if status == RevisionRejected {
			rev.StatusReason = strings.TrimSpace(*reason)
			if err := tx.Omit("App").Save(rev).Error; err != nil {
				return fmt.Errorf("rejecting revision %d of %s: %w", rev.Number, v.Slug, err)
			}
			return s.audit(tx, a, &v.OrganizationID, "app.revision_reject", "app", idStr(v.ID), v.Slug,
				JSON{"revision": rev.Number, "reason": rev.StatusReason})
		}
		before := permissionsOf(&v.App)
		rev.Base = before // the diff is against the app as it was when approved
		v.App = rev.Proposed(v.App)
		v.UpdatedAt = now
		if err := tx.Omit("Organization", "Plans").Save(&v.App).Error; err != nil {
			return fmt.Errorf("applying revision %d of %s: %w", rev.Number, v.Slug, err)
		}
		if err := tx.Omit("App").Save(rev).Error; err != nil {
			return fmt.Errorf("approving revision %d of %s: %w", rev.Number, v.Slug, err)
		}
		if err := s.permissions.follow(ctx, tx, a, &v.App, before, rev); err != nil {
			return err
		}
		webhookChanged = *before.WebhookURL != v.WebhookURL
		rev.App = &v.App
		return s.audit(tx, a, &v.OrganizationID, "app.updated", "app", idStr(v.ID), v.Slug,
			JSON{"revision": rev.Number, "diff": diffJSON(rev.Diff())})
	})
	if err != nil {
		return nil, err
	}
	if webhookChanged {
		s.apps.endpoints.Forget(out.AppID)
	}
	return out, nil
}
