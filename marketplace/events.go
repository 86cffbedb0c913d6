package marketplace

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/plugboard/plugboard/app/fault"
	"github.com/plugboard/plugboard/app/page"
	"github.com/plugboard/plugboard/webhooks"
	"gorm.io/gorm"
)

// eventsAccess lets org admins and host service tokens publish and read
// an organization's events, and installation tokens with scope.
func (s *Events) eventsAccess(ctx context.Context, a Actor, ref, scope string) (*Organization, error) {
	if a.Installation != nil {
		acc, err := s.platformAccess(ctx, s.db, a, ref, scope, RoleAdmin)
		if err != nil {
			return nil, err
		}
		return &acc.Org, nil
	}
	if a.Service != nil {
		var org Organization
		if err := byRef(s.db.WithContext(ctx), "organizations", ref).First(&org).Error; err != nil {
			return nil, dbErr(err, "organization", "")
		}
		return &org, nil
	}
	acc, err := s.access(ctx, s.db, a, ref, RoleAdmin)
	if err != nil {
		return nil, err
	}
	return &acc.Org, nil
}

// PublishEvent publishes a host event to every subscribed installation of
// the organization. data must match the event type's schema.
func (s *Events) PublishEvent(ctx context.Context, a Actor, ref, typ string, data json.RawMessage) (*webhooks.Event, error) {
	org, err := s.eventsAccess(ctx, a, ref, "event:write")
	if err != nil {
		return nil, err
	}
	if typ == "" {
		return nil, fault.Field("type", "is required")
	}
	et, err := s.catalog.Get(ctx, typ)
	if errors.Is(err, fault.ErrNotFound) {
		return nil, fault.Field("type", fmt.Sprintf("%q is not in the event catalogue; see GET /api/0/event-types/", typ))
	}
	if err != nil {
		return nil, err
	}
	if et.Builtin {
		return nil, fault.Field("type", fmt.Sprintf("%q is sent by Plugboard itself", typ))
	}
	if a.Installation != nil && et.Scope != "" && !slices.Contains(a.Scopes, et.Scope) {
		// An app publishes only what it could receive.
		return nil, fault.Forbidden(fault.MissingScope, fmt.Sprintf("Publishing %s needs the %s scope too, which the installation was not granted.", typ, et.Scope))
	}
	if len(data) == 0 || string(data) == "null" {
		data = json.RawMessage("{}")
	}
	if data[0] != '{' {
		return nil, fault.Field("data", "must be a JSON object")
	}
	if err := s.catalog.Validate(et, data); err != nil {
		return nil, err
	}
	var ev *webhooks.Event
	err = s.publishTx(ctx, func(tx *gorm.DB) error {
		ev, err = s.outbox.Publish(ctx, tx, webhooks.NewEvent{OrganizationID: org.ID, Type: typ, Data: data, CreatedBy: actorLabel(a)})
		return err
	})
	return ev, err
}

// ListEvents lists what was published in an organization, newest first.
func (s *Events) ListEvents(ctx context.Context, a Actor, ref, typ string, r page.Request) (page.Page[webhooks.Event], error) {
	org, err := s.eventsAccess(ctx, a, ref, "event:read")
	if err != nil {
		return page.Page[webhooks.Event]{}, err
	}
	// Plugboard's own lifecycle events carry grant codes meant for the
	// partner alone; the organization sees what the host published.
	q := s.db.WithContext(ctx).Where("organization_id = ? AND type NOT IN (SELECT name FROM event_types WHERE builtin)", org.ID)
	if a.Installation != nil {
		// An installation reads the events it could receive: of types
		// that need no scope, or one its token holds.
		q = q.Where("type IN (SELECT name FROM event_types WHERE scope = '' OR scope IN ?)", append([]string{""}, a.Scopes...))
	}
	if typ != "" {
		q = q.Where("type = ?", typ)
	}
	var rows []webhooks.Event
	order := page.Sort{Column: "id", Desc: true}
	if err := page.Query(q, "id", order, r).Find(&rows).Error; err != nil {
		return page.Page[webhooks.Event]{}, fmt.Errorf("listing events: %w", err)
	}
	return page.Finish(rows, r, order, func(e webhooks.Event) (string, int64) { return "", e.ID }), nil
}

// CreateEventType adds to the event catalogue; operators only.
func (s *Events) CreateEventType(ctx context.Context, a Actor, n webhooks.NewEventType) (*webhooks.EventType, error) {
	if err := requireOperator(a); err != nil {
		return nil, err
	}
	var et *webhooks.EventType
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var err error
		if et, err = s.catalog.Create(ctx, tx, n); err != nil {
			return err
		}
		return s.audit(tx, a, nil, "event_type.create", "event_type", idStr(et.ID), et.Name, JSON{"scope": et.Scope})
	})
	return et, err
}

// ListEventTypes is the event catalogue, for anyone signed in.
func (s *Events) ListEventTypes(ctx context.Context, a Actor) ([]webhooks.EventType, error) {
	if !a.SignedIn() {
		return nil, errNotSignedIn
	}
	return s.catalog.List(ctx)
}
