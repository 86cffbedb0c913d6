package marketplace

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgtype"

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
	return s.Publish(ctx, a, HostEvent{Organization: ref, Type: typ, Data: data})
}

// HostEvent is an event the host publishes in an organization (by slug or
// id). With an IdempotencyKey, publishing it again publishes nothing and
// answers the first event (Replayed).
type HostEvent struct {
	Organization   string
	Type           string
	Data           json.RawMessage
	IdempotencyKey string
	// OrderingKey orders the event's deliveries after those of earlier
	// events with the same key in the organization
	// (webhooks.NewEvent.OrderingKey); nil for none. Sent, it must be 1 to
	// 200 characters.
	OrderingKey *string
}

// MaxBatch is how many events one PublishBatch takes.
const MaxBatch = 1000

// Publish publishes ev, as PublishEvent does, with its idempotency key.
// The event is checked here; it is written with the single-event
// publishes running beside it, in one transaction that finds their
// organizations and writes every event and delivery in one statement
// (publish_group.go), and Publish returns once that has committed.
func (s *Events) Publish(ctx context.Context, a Actor, ev HostEvent) (*webhooks.Event, error) {
	if a.Service == nil {
		if _, err := s.eventsAccess(ctx, a, ev.Organization, "event:write"); err != nil {
			return nil, err
		}
	}
	ne, err := s.hostEvent(ctx, a, ev)
	if err != nil {
		return nil, err
	}
	return s.group.publish(&pendingPublish{ref: ev.Organization, ev: ne}, func(g []*pendingPublish) func() { return s.writeGroup(ctx, g) })
}

// PublishResult is one event of a batch: published (or, Replayed, published
// before under its idempotency key), or refused with Err.
type PublishResult struct {
	Event *webhooks.Event
	Err   error
}

// PublishBatch publishes up to MaxBatch events, each in its organization,
// for a host service token. Each event is checked as Publish checks it; the
// valid ones are written in one transaction (one statement for every event
// and delivery), and the result says, in order, what became of each.
func (s *Events) PublishBatch(ctx context.Context, a Actor, evs []HostEvent) ([]PublishResult, error) {
	if a.Service == nil {
		if !a.SignedIn() {
			return nil, errNotSignedIn
		}
		return nil, fault.Forbidden(fault.CodeForbidden, "Only the host publishes batches of events, with a service token.")
	}
	switch {
	case len(evs) == 0:
		return nil, fault.Field("events", "must hold at least one event")
	case len(evs) > MaxBatch:
		return nil, fault.Invalid(fault.BatchTooLarge, fmt.Sprintf("A batch holds at most %d events.", MaxBatch),
			map[string]string{"events": fmt.Sprintf("holds %d events; at most %d", len(evs), MaxBatch)})
	}
	out := make([]PublishResult, len(evs))
	refs := make([]string, 0, len(evs))
	for _, ev := range evs {
		if ev.Organization != "" {
			refs = append(refs, ev.Organization)
		}
	}
	orgs, err := orgsByRef(ctx, s.db, refs)
	if err != nil {
		return nil, err
	}
	var (
		valid []webhooks.NewEvent
		at    []int
	)
	for i, ev := range evs {
		ne, err := s.hostEvent(ctx, a, ev)
		if err == nil && ev.Organization == "" {
			err = fault.Field("organization", "is required: the slug or id of the organization")
		}
		if err == nil {
			if org, ok := orgs[ev.Organization]; ok {
				ne.OrganizationID = org
			} else {
				err = fault.NotFound("organization")
			}
		}
		if err != nil {
			out[i].Err = err
			continue
		}
		valid, at = append(valid, ne), append(at, i)
	}
	if len(valid) == 0 {
		return out, nil
	}
	err = s.publishTx(ctx, func(tx *gorm.DB) error {
		res, err := s.outbox.PublishMany(ctx, tx, valid)
		if err != nil {
			return err
		}
		for k, r := range res {
			out[at[k]] = PublishResult{Event: r.Event, Err: r.Err}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// hostEvent checks ev's type and data against the catalogue (cached) and
// returns it to publish, without its organization.
func (s *Events) hostEvent(ctx context.Context, a Actor, ev HostEvent) (webhooks.NewEvent, error) {
	typ, data := ev.Type, ev.Data
	if typ == "" {
		return webhooks.NewEvent{}, fault.Field("type", "is required")
	}
	if utf8.RuneCountInString(ev.IdempotencyKey) > 200 {
		return webhooks.NewEvent{}, fault.Field("idempotencyKey", "must be at most 200 characters")
	}
	var ordering string
	if ev.OrderingKey != nil {
		if ordering = *ev.OrderingKey; ordering == "" || utf8.RuneCountInString(ordering) > 200 {
			return webhooks.NewEvent{}, fault.Field("orderingKey", "must be 1 to 200 characters, the same for events to deliver in order")
		}
	}
	et, err := s.catalog.Get(ctx, typ)
	if errors.Is(err, fault.ErrNotFound) {
		return webhooks.NewEvent{}, fault.Field("type", fmt.Sprintf("%q is not in the event catalogue; see GET /api/0/event-types/", typ))
	}
	if err != nil {
		return webhooks.NewEvent{}, err
	}
	if et.Builtin {
		return webhooks.NewEvent{}, fault.Field("type", fmt.Sprintf("%q is sent by Plugboard itself", typ))
	}
	if a.Installation != nil && et.Scope != "" && !slices.Contains(a.Scopes, et.Scope) {
		// An app publishes only what it could receive.
		return webhooks.NewEvent{}, fault.Forbidden(fault.MissingScope, fmt.Sprintf("Publishing %s needs the %s scope too, which the installation was not granted.", typ, et.Scope))
	}
	if len(data) == 0 || string(data) == "null" {
		data = json.RawMessage("{}")
	}
	if data[0] != '{' {
		return webhooks.NewEvent{}, fault.Field("data", "must be a JSON object")
	}
	if err := s.catalog.Validate(et, data); err != nil {
		return webhooks.NewEvent{}, err
	}
	return webhooks.NewEvent{Type: typ, Data: data, CreatedBy: actorLabel(a), IdempotencyKey: ev.IdempotencyKey, OrderingKey: ordering}, nil
}

// pgArray passes a slice as one PostgreSQL array parameter (gorm would
// expand a bare slice into a list).
func pgArray[T any](v []T) pgtype.Array[T] {
	return pgtype.Array[T]{Elements: v, Dims: []pgtype.ArrayDimension{{Length: int32(len(v)), LowerBound: 1}}, Valid: true}
}

// orgsByRef finds organizations by slug or id in one query: their ids by
// the reference given.
func orgsByRef(ctx context.Context, db *gorm.DB, refs []string) (map[string]int64, error) {
	_, args := orgsQuery(refs)
	rows, err := db.WithContext(ctx).Raw("SELECT id, slug FROM organizations WHERE slug = ANY(?) OR id = ANY(?)", args...).Rows()
	if err != nil {
		return nil, fmt.Errorf("finding organizations: %w", err)
	}
	defer func() { _ = rows.Close() }()
	out := make(map[string]int64, len(refs))
	if err := scanOrgs(rows, out); err != nil {
		return nil, err
	}
	return out, nil
}

// orgsQuery is orgsByRef's query with $n placeholders (for pgx), which
// scanOrgs reads: the organizations refs name by slug or id.
func orgsQuery(refs []string) (string, []any) {
	var ids []int64
	var slugs []string
	for _, r := range refs {
		if id, err := strconv.ParseInt(r, 10, 64); err == nil {
			ids = append(ids, id)
		} else {
			slugs = append(slugs, r)
		}
	}
	return "SELECT id, slug FROM organizations WHERE slug = ANY($1) OR id = ANY($2)", []any{pgArray(slugs), pgArray(ids)}
}

// scanOrgs reads orgsQuery's rows into out: each organization's id by its
// slug and by its id.
func scanOrgs(rows interface {
	Next() bool
	Scan(...any) error
	Err() error
}, out map[string]int64) error {
	for rows.Next() {
		var id int64
		var slug string
		if err := rows.Scan(&id, &slug); err != nil {
			return fmt.Errorf("finding organizations: %w", err)
		}
		out[slug] = id
		out[strconv.FormatInt(id, 10)] = id
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("finding organizations: %w", err)
	}
	return nil
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
