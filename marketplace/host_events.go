package marketplace

import (
	"context"
	"fmt"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/plugboard/plugboard/webhooks"
)

// Platform events for the host (host_endpoints.go): written in the same
// transaction as what they report, like every event, so a host endpoint
// hears of exactly what committed.

// hostOnlyEvents are the platform events only host endpoints receive;
// apps cannot subscribe to them.
var hostOnlyEvents = []string{EventConfigUpdated, EventAppPublished, EventAppUnpublished, EventInvoiceCreated}

// publishHost publishes a platform event to every host endpoint subscribed to eventType, inside tx.
func (s *core) publishHost(ctx context.Context, tx *gorm.DB, eventType string, data any) error {
	return s.publishHostMany(ctx, tx, eventType, []any{data})
}

// publishHostMany publishes one platform event of eventType per element of
// data to every host endpoint subscribed to it, inside tx: one look-up of
// the endpoints and one statement for every event and delivery (closing a
// billing period publishes thousands of invoice.created at once).
func (s *core) publishHostMany(ctx context.Context, tx *gorm.DB, eventType string, data []any) error {
	if len(data) == 0 {
		return nil
	}
	var ids []int64
	// KEY SHARE: an endpoint being deleted meanwhile waits for this
	// transaction (or is skipped if it went first), so its deliveries'
	// foreign key never fails what published them.
	err := tx.WithContext(ctx).Model(&HostEndpoint{}).Clauses(clause.Locking{Strength: "KEY SHARE"}).
		Where("event_types @> ?::jsonb", fmt.Sprintf("[%q]", eventType)).Order("id").Pluck("id", &ids).Error
	if err != nil {
		return fmt.Errorf("finding host endpoints for %s: %w", eventType, err)
	}
	if len(ids) == 0 {
		return nil
	}
	// Platform events belong to no organization (0): an organization's
	// event list never shows them; the organization is in data.
	evs := make([]webhooks.NewEvent, len(data))
	for i, d := range data {
		evs[i] = webhooks.NewEvent{Type: eventType, Data: d, HostEndpoints: ids, CreatedBy: "plugboard"}
	}
	res, err := s.outbox.PublishMany(ctx, tx, evs)
	if err != nil {
		return fmt.Errorf("publishing %s to host endpoints: %w", eventType, err)
	}
	for _, r := range res {
		if r.Err != nil { // only keyed events are refused; these have no key
			return fmt.Errorf("publishing %s to host endpoints: %w", eventType, r.Err)
		}
	}
	return nil
}

// hostLifecycle tells host endpoints of an installation's lifecycle event
// (created, updated, deleted, suspended, unsuspended) that lifecycle sent the app: the same
// installation, plus its organization and the event's details, without
// what is the partner's alone (the grant code). Resends to the partner are
// not news to the host.
func (s *Installs) hostLifecycle(ctx context.Context, tx *gorm.DB, inst *Installation, typ string, extra map[string]any) error {
	switch typ {
	case EventInstallationCreated, EventInstallationUpdated, EventInstallationDeleted, EventInstallationSuspended, EventInstallationUnsuspended:
	default:
		return nil
	}
	if resent, _ := extra["resent"].(bool); resent {
		return nil
	}
	if inst.Organization == nil {
		var org Organization
		if err := tx.WithContext(ctx).Take(&org, inst.OrganizationID).Error; err != nil {
			return fmt.Errorf("loading organization of installation %s: %w", inst.UUID, err)
		}
		inst.Organization = &org
	}
	data := map[string]any{"installation": lifecycleInstallation(inst), "organization": hostOrgData(inst.Organization)}
	for k, v := range extra {
		if k != "code" && k != "codeExpiresAt" {
			data[k] = v
		}
	}
	return s.publishHost(ctx, tx, typ, data)
}

func hostOrgData(o *Organization) map[string]any {
	if o == nil {
		return nil
	}
	return map[string]any{"id": idStr(o.ID), "slug": o.Slug, "name": o.Name}
}

// hostAppEvent tells host endpoints that app was published
// (app.published) or left the marketplace (app.unpublished, with why:
// "rejected" or "deleted"). The app is as the marketplace lists it.
func (s *core) hostAppEvent(ctx context.Context, tx *gorm.DB, app *App, typ, reason string) error {
	org := app.Organization
	if org == nil {
		org = &Organization{}
		if err := tx.WithContext(ctx).Take(org, app.OrganizationID).Error; err != nil {
			return fmt.Errorf("loading owner of %s: %w", app.Slug, err)
		}
	}
	a := map[string]any{"id": idStr(app.ID), "slug": app.Slug, "name": app.Name, "kind": app.Kind, "status": app.Status,
		"statusReason": app.StatusReason, "author": app.Author, "overview": app.Overview, "categories": hostStrings(app.Categories),
		"scopes": hostStrings(app.Scopes), "events": hostStrings(app.Events), "logoUrl": app.LogoURL, "installs": app.InstallsCount,
		"organization": hostOrgData(org), "dateCreated": app.CreatedAt, "dateUpdated": app.UpdatedAt, "datePublished": app.PublishedAt}
	data := map[string]any{"app": a, "organization": hostOrgData(org)}
	if typ == EventAppUnpublished {
		data["reason"] = reason
	}
	return s.publishHost(ctx, tx, typ, data)
}

func hostStrings(s Strings) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// hostReview tells host endpoints what a review did to an app whose
// status was was: published it, or rejected it once published.
func (s *core) hostReview(ctx context.Context, tx *gorm.DB, app *App, was string) error {
	switch {
	case app.Status == StatusPublished && was != StatusPublished:
		return s.hostAppEvent(ctx, tx, app, EventAppPublished, "")
	case app.Status != StatusPublished && was == StatusPublished:
		return s.hostAppEvent(ctx, tx, app, EventAppUnpublished, "rejected")
	}
	return nil
}

// hostConfigData is installation.config_updated's data: the installation
// as lifecycle events carry it, its organization, and the names of the
// config vars that changed (never their values).
func (s *core) hostConfigData(ctx context.Context, tx *gorm.DB, inst *Installation, changed []string) map[string]any {
	data := map[string]any{"installation": lifecycleInstallation(inst), "changed": changed}
	org := inst.Organization
	if org == nil {
		org = &Organization{}
		if err := tx.WithContext(ctx).Take(org, inst.OrganizationID).Error; err != nil {
			return data // the installation carries what it has; the event still goes
		}
	}
	data["organization"] = hostOrgData(org)
	return data
}
