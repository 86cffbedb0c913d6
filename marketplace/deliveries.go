package marketplace

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/google/uuid"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/plugboard/plugboard/app/fault"
	"github.com/plugboard/plugboard/app/page"
	"github.com/plugboard/plugboard/app/secret"
	"github.com/plugboard/plugboard/webhooks"
)

// Webhooks is what the service uses of the webhooks domain. It is built
// after the service, which is its webhooks.Directory.
type Webhooks struct {
	Outbox     *webhooks.Outbox
	Deliveries *webhooks.Store
	Endpoints  *webhooks.Endpoints
	Sender     *webhooks.Sender
	Listeners  *webhooks.Listeners
}

// SetWebhooks wires the webhooks domain in.
func (s *Service) SetWebhooks(w Webhooks) {
	s.outbox, s.deliveries, s.endpoints, s.sender, s.listeners = w.Outbox, w.Deliveries, w.Endpoints, w.Sender, w.Listeners
}

// partnerApp loads an app for its owner organization's members, or for the
// app itself (client credentials or app JWT).
func (s *Service) partnerApp(ctx context.Context, a Actor, ref string) (*AppView, error) {
	if a.App != nil {
		var app App
		if err := byRef(s.db.WithContext(ctx), "apps", ref).First(&app).Error; err != nil || app.ID != a.App.ID {
			return nil, fault.NotFound("app")
		}
		return &AppView{App: app, Private: true}, nil
	}
	if a.Installation != nil {
		return nil, fault.Forbidden("app_credentials_required", "Use the app's own credentials (client credentials or an app JWT), not an installation token.")
	}
	if err := requireUser(a); err != nil {
		return nil, err
	}
	v, err := s.view(ctx, s.db, a, ref, false)
	if err != nil {
		return nil, err
	}
	if v.Role == "" {
		return nil, fault.NotFound("app")
	}
	return v, nil
}

// ListDeliveries is an app's delivery log.
func (s *Service) ListDeliveries(ctx context.Context, a Actor, ref string, q webhooks.DeliveryQuery, r page.Request) (page.Page[webhooks.Delivery], error) {
	v, err := s.partnerApp(ctx, a, ref)
	if err != nil {
		return page.Page[webhooks.Delivery]{}, err
	}
	return s.deliveries.ListDeliveries(ctx, v.ID, q, r)
}

// GetDelivery is one delivery with its payload and every attempt.
func (s *Service) GetDelivery(ctx context.Context, a Actor, ref, id string) (*webhooks.DeliveryDetail, error) {
	v, err := s.partnerApp(ctx, a, ref)
	if err != nil {
		return nil, err
	}
	return s.deliveries.GetDelivery(ctx, v.ID, id)
}

// RedeliveryRequest names deliveries, or all failed ones in a range.
type RedeliveryRequest struct {
	Deliveries   []string
	Status       string
	Since, Until *time.Time
}

// Redelivery reports what a redelivery request did.
type Redelivery struct {
	Count      int
	Background bool
}

// partnerAppAdmin is partnerApp for changes: admins of the owner
// organization, or the app itself.
func (s *Service) partnerAppAdmin(ctx context.Context, a Actor, ref string) (*AppView, error) {
	v, err := s.partnerApp(ctx, a, ref)
	if err == nil && v.Role != "" && roleRank[v.Role] < roleRank[RoleAdmin] {
		return nil, fault.Forbidden("insufficient_role", "Sending webhooks again needs the admin role in the app's organization.")
	}
	return v, err
}

// Redeliver sends deliveries again (by id now, or failed ones in bulk as a
// background job) and records it in the audit log.
func (s *Service) Redeliver(ctx context.Context, a Actor, ref string, r RedeliveryRequest) (*Redelivery, error) {
	v, err := s.partnerAppAdmin(ctx, a, ref)
	if err != nil {
		return nil, err
	}
	out := &Redelivery{}
	switch {
	case len(r.Deliveries) > 0 && r.Status != "":
		return nil, fault.Field("status", "give deliveries or status, not both")
	case len(r.Deliveries) > 0:
		out.Count, err = s.endpoints.Redeliver(ctx, v.ID, r.Deliveries)
	case r.Status == webhooks.DeliveryFailed:
		out.Background = true
		out.Count, err = s.endpoints.RedeliverFailed(ctx, v.ID, r.Since, r.Until)
	case r.Status != "":
		return nil, fault.Field("status", `only "failed" deliveries are redelivered in bulk`)
	default:
		return nil, fault.Field("deliveries", "list delivery ids, or give status \"failed\" with since and until")
	}
	if err != nil {
		return nil, err
	}
	if err := s.audit(s.db.WithContext(ctx), a, &v.OrganizationID, "app.redeliver", "app", idStr(v.ID), v.Slug, JSON{"count": out.Count}); err != nil {
		return nil, err
	}
	return out, nil
}

// SendTestEvent sends a webhook.test event to the app's endpoint.
func (s *Service) SendTestEvent(ctx context.Context, a Actor, ref string) (*webhooks.Delivery, error) {
	v, err := s.partnerAppAdmin(ctx, a, ref)
	if err != nil {
		return nil, err
	}
	if v.WebhookURL == "" {
		return nil, fault.Conflict("no_webhook_url", "The app has no webhook URL to send to.")
	}
	var d webhooks.Delivery
	err = s.tx(ctx, func(tx *gorm.DB) error {
		ev, err := s.outbox.Publish(ctx, tx, webhooks.NewEvent{OrganizationID: v.OrganizationID, Type: "webhook.test", AppID: v.ID, CreatedBy: actorLabel(a),
			Data: map[string]any{"message": "This is a test event from Plugboard.", "app": map[string]any{"slug": v.Slug}}})
		if err != nil {
			return err
		}
		return tx.Where("event_id = ?", ev.ID).Take(&d).Error
	})
	if err != nil {
		return nil, err
	}
	return &d, nil
}

// Stats are an app's delivery health figures.
func (s *Service) Stats(ctx context.Context, a Actor, ref string, since, until time.Time, resolution time.Duration) ([]webhooks.Bucket, webhooks.Bucket, error) {
	v, err := s.partnerApp(ctx, a, ref)
	if err != nil {
		return nil, webhooks.Bucket{}, err
	}
	return s.deliveries.Stats(ctx, v.ID, since, until, resolution)
}

// endpointFields applies webhookStatus and limits from a PUT on an app,
// in the update's transaction.
func (s *Service) endpointFields(ctx context.Context, tx *gorm.DB, a Actor, v *AppView, u AppUpdate) error {
	if u.WebhookStatus == nil && u.WebhookRateLimit == nil && u.WebhookMaxInFlight == nil {
		return nil
	}
	return s.endpoints.Set(ctx, tx, v.ID, u.WebhookStatus, "Disabled by "+actorLabel(a)+".", u.WebhookRateLimit, u.WebhookMaxInFlight)
}

// loadEndpoint fills a private view's webhook status and limits.
func (s *Service) loadEndpoint(ctx context.Context, v *AppView) error {
	if !v.Private || s.endpoints == nil {
		return nil
	}
	st, err := s.endpoints.State(ctx, v.ID)
	if err != nil {
		return err
	}
	v.WebhookStatus, v.WebhookStatusReason = st.Status, st.DisabledReason
	v.WebhookRateLimit, v.WebhookMaxInFlight = s.endpoints.Limits(st)
	return nil
}

func actorLabel(a Actor) string {
	switch {
	case a.User != nil:
		return a.User.Email
	case a.App != nil:
		return "app " + a.App.Slug
	case a.Service != nil:
		return "service token " + a.Service.Name
	}
	return "system"
}

// ServiceToken lets the host product publish events to any organization.
type ServiceToken struct {
	ID          int64
	Name        string
	TokenHash   []byte
	TokenSuffix string
	CreatedBy   *int64
	CreatedAt   time.Time
	LastUsedAt  *time.Time
	RevokedAt   *time.Time
}

// PrefixService starts host service tokens.
const PrefixService = "pbh_"

func requireOperator(a Actor) error {
	if err := requireUser(a); err != nil {
		return err
	}
	if !a.IsOperator() {
		return fault.Forbidden("operator_only", "Only operators do this.")
	}
	return nil
}

// CreateServiceToken makes a host service token; operators only.
func (s *Service) CreateServiceToken(ctx context.Context, a Actor, name string) (*ServiceToken, string, error) {
	if err := requireOperator(a); err != nil {
		return nil, "", err
	}
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 100 {
		return nil, "", fault.Field("name", "must be 1 to 100 characters")
	}
	token := secret.Token(PrefixService, 32)
	t := &ServiceToken{Name: name, TokenHash: secret.Hash(token), TokenSuffix: token[len(token)-4:], CreatedBy: &a.User.ID, CreatedAt: s.now()}
	err := s.tx(ctx, func(tx *gorm.DB) error {
		if err := tx.Create(t).Error; err != nil {
			return fmt.Errorf("creating service token: %w", err)
		}
		return s.audit(tx, a, nil, "service_token.create", "service_token", idStr(t.ID), name, nil)
	})
	return t, token, err
}

// ListServiceTokens lists live host service tokens; operators only.
func (s *Service) ListServiceTokens(ctx context.Context, a Actor) ([]ServiceToken, error) {
	if err := requireOperator(a); err != nil {
		return nil, err
	}
	var out []ServiceToken
	if err := s.db.WithContext(ctx).Where("revoked_at IS NULL").Order("id DESC").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("listing service tokens: %w", err)
	}
	return out, nil
}

// RevokeServiceToken revokes one; operators only.
func (s *Service) RevokeServiceToken(ctx context.Context, a Actor, id string) error {
	if err := requireOperator(a); err != nil {
		return err
	}
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		return fault.NotFound("service token")
	}
	res := s.db.WithContext(ctx).Model(&ServiceToken{}).Where("id = ? AND revoked_at IS NULL", n).Update("revoked_at", s.now())
	if res.Error != nil {
		return fmt.Errorf("revoking service token: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return fault.NotFound("service token")
	}
	return s.audit(s.db.WithContext(ctx), a, nil, "service_token.revoke", "service_token", id, "", nil)
}

func (s *Service) authenticateServiceToken(ctx context.Context, token string) (Actor, error) {
	var t ServiceToken
	err := s.db.WithContext(ctx).Where("token_hash = ? AND revoked_at IS NULL", secret.Hash(token)).Take(&t).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return Actor{}, errBadToken
	}
	if err != nil {
		return Actor{}, fmt.Errorf("finding service token: %w", err)
	}
	if t.LastUsedAt == nil || s.now().Sub(*t.LastUsedAt) > time.Minute {
		s.db.WithContext(ctx).Model(&ServiceToken{}).Where("id = ?", t.ID).Update("last_used_at", s.now())
	}
	return Actor{Service: &t}, nil
}

// eventsAccess lets org admins and host service tokens publish and read
// an organization's events.
func (s *Service) eventsAccess(ctx context.Context, a Actor, ref string) (*Organization, error) {
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
func (s *Service) PublishEvent(ctx context.Context, a Actor, ref, typ string, data json.RawMessage) (*webhooks.Event, error) {
	org, err := s.eventsAccess(ctx, a, ref)
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
	if len(data) == 0 || string(data) == "null" {
		data = json.RawMessage("{}")
	}
	if data[0] != '{' {
		return nil, fault.Field("data", "must be a JSON object")
	}
	if err := et.ValidateData(data); err != nil {
		return nil, err
	}
	var ev *webhooks.Event
	err = s.tx(ctx, func(tx *gorm.DB) error {
		ev, err = s.outbox.Publish(ctx, tx, webhooks.NewEvent{OrganizationID: org.ID, Type: typ, Data: data, CreatedBy: actorLabel(a)})
		return err
	})
	return ev, err
}

// ListEvents lists what was published in an organization, newest first.
func (s *Service) ListEvents(ctx context.Context, a Actor, ref, typ string, r page.Request) (page.Page[webhooks.Event], error) {
	org, err := s.eventsAccess(ctx, a, ref)
	if err != nil {
		return page.Page[webhooks.Event]{}, err
	}
	// Plugboard's own lifecycle events carry grant codes meant for the
	// partner alone; the organization sees what the host published.
	q := s.db.WithContext(ctx).Where("organization_id = ? AND type NOT IN (SELECT name FROM event_types WHERE builtin)", org.ID)
	if typ != "" {
		q = q.Where("type = ?", typ)
	}
	var rows []webhooks.Event
	if err := page.Query(q, "id", page.Sort{Column: "id", Desc: true}, r).Find(&rows).Error; err != nil {
		return page.Page[webhooks.Event]{}, fmt.Errorf("listing events: %w", err)
	}
	return page.Finish(rows, r, func(e webhooks.Event) (string, int64) { return "", e.ID }), nil
}

// CreateEventType adds to the event catalogue; operators only.
func (s *Service) CreateEventType(ctx context.Context, a Actor, n webhooks.NewEventType) (*webhooks.EventType, error) {
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

// ListenDeliveries streams copies of an app's deliveries (for `plugboard
// listen`) to its owner organization's members, until ctx ends.
func (s *Service) ListenDeliveries(ctx context.Context, a Actor, ref string) (<-chan webhooks.Forwarded, error) {
	v, err := s.partnerApp(ctx, a, ref)
	if err != nil {
		return nil, err
	}
	return s.listeners.Listen(ctx, v.ID, uuid.NewString())
}
