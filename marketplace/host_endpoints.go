package marketplace

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/plugboard/plugboard/app/fault"
	"github.com/plugboard/plugboard/app/page"
	"github.com/plugboard/plugboard/webhooks"
)

// Host webhooks: the host product's own endpoints, which receive the
// platform's events (HostEventTypes) the way partners receive theirs,
// through the same dispatcher: signed with the endpoint's secret
// (Standard Webhooks), retried, rate limited, logged, replayable, and
// disabled when they keep failing. In the webhooks domain a host endpoint
// is a destination of its own, keyed webhooks.HostKey(id).
//
// Operators manage them, and so do host service tokens (the host's
// automation registers its endpoints without a person); nobody else sees
// they exist.

// The platform events host endpoints may subscribe to.
const (
	EventConfigUpdated  = "installation.config_updated"
	EventAppPublished   = "app.published"
	EventAppUnpublished = "app.unpublished"
)

// HostEventTypes are the events a host endpoint may receive.
var HostEventTypes = []string{EventInstallationCreated, EventInstallationUpdated, EventInstallationDeleted,
	EventConfigUpdated, EventAppPublished, EventAppUnpublished, EventInstallationSuspended, EventInstallationUnsuspended}

// HostEndpoint is where the host receives platform events.
type HostEndpoint struct {
	ID                      int64
	URL                     string
	Description             string
	EventTypes              Strings `gorm:"type:jsonb"`
	Secret                  []byte  // sealed
	PreviousSecret          []byte  // sealed; signs beside Secret until PreviousSecretExpiresAt
	PreviousSecretExpiresAt *time.Time
	CreatedBy               *int64
	CreatedAt               time.Time
	UpdatedAt               time.Time
}

// HostEndpointView is a host endpoint with its health and limits, and,
// in the response that creates it, its signing secret.
type HostEndpointView struct {
	HostEndpoint
	Status       string // webhooks.EndpointEnabled or EndpointDisabled
	StatusReason string
	FailingSince *time.Time
	RateLimit    int
	MaxInFlight  int
	// SigningSecret is set once: when the endpoint is created.
	SigningSecret string
}

// HostEndpointFields are the fields a create or update sets; nil leaves
// one alone (create: absent).
type HostEndpointFields struct {
	URL         *string
	Description *string
	EventTypes  *[]string
	// Status enables (replaying what was paused) or disables the endpoint.
	Status      *string
	RateLimit   *int
	MaxInFlight *int
}

// HostEndpoints manages the host's endpoints and their delivery logs.
type HostEndpoints struct {
	*core
	endpoints EndpointAdmin
	log       DeliveryLog
}

// hostAccess lets operators and host service tokens through.
func hostAccess(a Actor) error {
	switch {
	case a.Service != nil, a.IsOperator():
		return nil
	case a.User == nil && a.App == nil && a.Installation == nil:
		return fault.Unauthorized(fault.NotAuthenticated, "Sign in as an operator, or send a host service token as Authorization: Bearer.")
	}
	return fault.Forbidden(fault.OperatorOnly, "Only operators and host service tokens manage host endpoints.")
}

// loadHost finds host endpoint id (lock: FOR UPDATE, in tx).
func (s *HostEndpoints) loadHost(ctx context.Context, tx *gorm.DB, id string, lock bool) (*HostEndpoint, error) {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil || n <= 0 {
		return nil, fault.NotFound("host endpoint")
	}
	q := tx.WithContext(ctx)
	if lock {
		q = q.Clauses(lockForUpdate)
	}
	var h HostEndpoint
	if err := q.Take(&h, n).Error; err != nil {
		return nil, dbErr(err, "host endpoint", "")
	}
	return &h, nil
}

// checkHostFields validates f onto h; creating: url and eventTypes are
// required. The limits are checked here, with the API's field names.
func checkHostFields(h *HostEndpoint, in HostEndpointFields, creating bool) error {
	f := fault.Fields{}
	if in.URL != nil || creating {
		u := ""
		if in.URL != nil {
			u = strings.TrimSpace(*in.URL)
		}
		checkURL(f, "url", u, true)
		h.URL = u
	}
	if in.Description != nil {
		h.Description = strings.TrimSpace(*in.Description)
		f.Check(len(h.Description) > 200, "description", "must be at most 200 characters")
	}
	if in.EventTypes != nil || creating {
		var types []string
		if in.EventTypes != nil {
			types = *in.EventTypes
		}
		clean := Strings{}
		for _, t := range types {
			t = strings.TrimSpace(t)
			switch {
			case !slices.Contains(HostEventTypes, t):
				f.Add("eventTypes", fmt.Sprintf("%q is not a platform event; host endpoints receive %s", t, strings.Join(HostEventTypes, ", ")))
			case !slices.Contains(clean, t):
				clean = append(clean, t)
			}
		}
		f.Check(len(types) == 0, "eventTypes", "must list at least one of "+strings.Join(HostEventTypes, ", "))
		h.EventTypes = clean
	}
	f.Check(in.Status != nil && *in.Status != webhooks.EndpointEnabled && *in.Status != webhooks.EndpointDisabled, "status", "must be enabled or disabled")
	f.Check(in.RateLimit != nil && (*in.RateLimit < 1 || *in.RateLimit > 100000), "rateLimit", "must be from 1 to 100000 deliveries per second")
	f.Check(in.MaxInFlight != nil && (*in.MaxInFlight < 1 || *in.MaxInFlight > 10000), "maxInFlight", "must be from 1 to 10000")
	f.Check(creating && in.Status != nil, "status", "is set after creating: a new endpoint is enabled")
	return f.Err()
}

// view is h with its health and limits.
func (s *HostEndpoints) view(ctx context.Context, h *HostEndpoint) (*HostEndpointView, error) {
	v := &HostEndpointView{HostEndpoint: *h}
	return v, s.withState(ctx, v)
}

// withState adds the endpoint's health and limits to v.
func (s *HostEndpoints) withState(ctx context.Context, v *HostEndpointView) error {
	st, err := s.endpoints.State(ctx, webhooks.HostKey(v.ID))
	if err != nil {
		return err
	}
	v.Status, v.StatusReason, v.FailingSince = st.Status, st.DisabledReason, st.FailingSince
	v.RateLimit, v.MaxInFlight = s.endpoints.Limits(st)
	return nil
}

// CreateHostEndpoint registers a host endpoint; its signing secret is in
// the answer, and never again.
func (s *HostEndpoints) CreateHostEndpoint(ctx context.Context, a Actor, in HostEndpointFields) (*HostEndpointView, error) {
	if err := hostAccess(a); err != nil {
		return nil, err
	}
	h := &HostEndpoint{CreatedAt: s.now(), UpdatedAt: s.now()}
	if err := checkHostFields(h, in, true); err != nil {
		return nil, err
	}
	fresh := webhooks.NewSecret()
	h.Secret = s.box.Seal(fresh)
	if a.User != nil {
		h.CreatedBy = &a.User.ID
	}
	err := s.publishTx(ctx, func(tx *gorm.DB) error {
		if err := tx.Create(h).Error; err != nil {
			return fmt.Errorf("creating host endpoint: %w", err)
		}
		if in.RateLimit != nil || in.MaxInFlight != nil {
			if err := s.endpoints.Set(ctx, tx, webhooks.HostKey(h.ID), nil, "", in.RateLimit, in.MaxInFlight); err != nil {
				return err
			}
		}
		return s.audit(tx, a, nil, "host_endpoint.create", "host_endpoint", idStr(h.ID), h.URL, JSON{"eventTypes": []string(h.EventTypes)})
	})
	if err != nil {
		return nil, err
	}
	v, err := s.view(ctx, h)
	if err != nil {
		return nil, err
	}
	v.SigningSecret = fresh
	return v, nil
}

// ListHostEndpoints lists the host endpoints, oldest first.
func (s *HostEndpoints) ListHostEndpoints(ctx context.Context, a Actor, r page.Request) (page.Page[HostEndpointView], error) {
	if err := hostAccess(a); err != nil {
		return page.Page[HostEndpointView]{}, err
	}
	var rows []HostEndpoint
	order := page.Sort{Column: "id"}
	if err := page.Query(s.db.WithContext(ctx).Model(&HostEndpoint{}), "id", order, r).Find(&rows).Error; err != nil {
		return page.Page[HostEndpointView]{}, fmt.Errorf("listing host endpoints: %w", err)
	}
	p := page.Finish(rows, r, order, func(h HostEndpoint) (string, int64) { return "", h.ID })
	out := page.Map(p, func(h HostEndpoint) HostEndpointView { return HostEndpointView{HostEndpoint: h} })
	for i := range out.Items {
		if err := s.withState(ctx, &out.Items[i]); err != nil {
			return page.Page[HostEndpointView]{}, err
		}
	}
	return out, nil
}

// GetHostEndpoint returns one host endpoint with its health.
func (s *HostEndpoints) GetHostEndpoint(ctx context.Context, a Actor, id string) (*HostEndpointView, error) {
	if err := hostAccess(a); err != nil {
		return nil, err
	}
	h, err := s.loadHost(ctx, s.db, id, false)
	if err != nil {
		return nil, err
	}
	return s.view(ctx, h)
}

// UpdateHostEndpoint changes a host endpoint: its URL, description, event
// types, status (enabling replays what disabling paused) and limits.
func (s *HostEndpoints) UpdateHostEndpoint(ctx context.Context, a Actor, id string, in HostEndpointFields) (*HostEndpointView, error) {
	if err := hostAccess(a); err != nil {
		return nil, err
	}
	var h *HostEndpoint
	err := s.publishTx(ctx, func(tx *gorm.DB) error {
		var err error
		if h, err = s.loadHost(ctx, tx, id, true); err != nil {
			return err
		}
		if err := checkHostFields(h, in, false); err != nil {
			return err
		}
		h.UpdatedAt = s.now()
		if err := tx.Save(h).Error; err != nil {
			return fmt.Errorf("updating host endpoint: %w", err)
		}
		if in.Status != nil || in.RateLimit != nil || in.MaxInFlight != nil {
			reason := "Disabled by " + actorLabel(a) + "."
			if err := s.endpoints.Set(ctx, tx, webhooks.HostKey(h.ID), in.Status, reason, in.RateLimit, in.MaxInFlight); err != nil {
				return err
			}
		}
		return s.audit(tx, a, nil, "host_endpoint.update", "host_endpoint", idStr(h.ID), h.URL, hostChanged(in))
	})
	if err != nil {
		return nil, err
	}
	s.endpoints.Forget(webhooks.HostKey(h.ID))
	return s.view(ctx, h)
}

// hostChanged lists the fields an update set, for the audit log.
func hostChanged(in HostEndpointFields) JSON {
	var names []string
	for name, set := range map[string]bool{"url": in.URL != nil, "description": in.Description != nil, "eventTypes": in.EventTypes != nil,
		"status": in.Status != nil, "rateLimit": in.RateLimit != nil, "maxInFlight": in.MaxInFlight != nil} {
		if set {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	out := JSON{"fields": names}
	if in.Status != nil {
		out["status"] = *in.Status
	}
	return out
}

// DeleteHostEndpoint removes a host endpoint with its delivery log; what
// it had not received yet is dropped.
func (s *HostEndpoints) DeleteHostEndpoint(ctx context.Context, a Actor, id string) error {
	if err := hostAccess(a); err != nil {
		return err
	}
	var h *HostEndpoint
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var err error
		if h, err = s.loadHost(ctx, tx, id, true); err != nil {
			return err
		}
		if err := tx.Delete(&HostEndpoint{}, h.ID).Error; err != nil {
			return fmt.Errorf("deleting host endpoint: %w", err)
		}
		return s.audit(tx, a, nil, "host_endpoint.delete", "host_endpoint", idStr(h.ID), h.URL, nil)
	})
	if err != nil {
		return err
	}
	s.endpoints.Forget(webhooks.HostKey(h.ID))
	return nil
}

// RotateHostEndpointSecret issues a new signing secret; the old one keeps
// signing beside it for WebhookSecretOverlap, as an app's does.
func (s *HostEndpoints) RotateHostEndpointSecret(ctx context.Context, a Actor, id string) (string, time.Time, error) {
	if err := hostAccess(a); err != nil {
		return "", time.Time{}, err
	}
	fresh := webhooks.NewSecret()
	until := s.now().Add(WebhookSecretOverlap)
	var hid int64
	err := s.tx(ctx, func(tx *gorm.DB) error {
		h, err := s.loadHost(ctx, tx, id, true)
		if err != nil {
			return err
		}
		hid = h.ID
		if err := tx.Model(&HostEndpoint{}).Where("id = ?", h.ID).Updates(map[string]any{
			"previous_secret": h.Secret, "previous_secret_expires_at": until,
			"secret": s.box.Seal(fresh), "updated_at": s.now()}).Error; err != nil {
			return fmt.Errorf("rotating host endpoint secret: %w", err)
		}
		return s.audit(tx, a, nil, "host_endpoint.rotate_secret", "host_endpoint", idStr(h.ID), h.URL, JSON{"previousValidUntil": until})
	})
	if err != nil {
		return "", time.Time{}, err
	}
	s.endpoints.Forget(webhooks.HostKey(hid)) // sign with both secrets from now on
	return fresh, until, nil
}

// ListHostDeliveries is a host endpoint's delivery log, newest first.
func (s *HostEndpoints) ListHostDeliveries(ctx context.Context, a Actor, id string, q webhooks.DeliveryQuery, r page.Request) (page.Page[webhooks.Delivery], error) {
	h, err := s.GetHostEndpoint(ctx, a, id)
	if err != nil {
		return page.Page[webhooks.Delivery]{}, err
	}
	return s.log.ListDeliveries(ctx, webhooks.HostKey(h.ID), q, r)
}

// GetHostDelivery is one delivery to a host endpoint with its payload and
// every attempt.
func (s *HostEndpoints) GetHostDelivery(ctx context.Context, a Actor, id, deliveryID string) (*webhooks.DeliveryDetail, error) {
	h, err := s.GetHostEndpoint(ctx, a, id)
	if err != nil {
		return nil, err
	}
	return s.log.GetDelivery(ctx, webhooks.HostKey(h.ID), deliveryID)
}

// RedeliverHost sends a host endpoint's deliveries again: by id now, or
// the failed ones in bulk as a background job; audited.
func (s *HostEndpoints) RedeliverHost(ctx context.Context, a Actor, id string, r RedeliveryRequest) (*Redelivery, error) {
	h, err := s.GetHostEndpoint(ctx, a, id)
	if err != nil {
		return nil, err
	}
	out, err := redeliver(ctx, s.endpoints, webhooks.HostKey(h.ID), r)
	if err != nil {
		return nil, err
	}
	if err := s.audit(s.db.WithContext(ctx), a, nil, "host_endpoint.redeliver", "host_endpoint", idStr(h.ID), h.URL, JSON{"count": out.Count}); err != nil {
		return nil, err
	}
	return out, nil
}

// redeliver is a redelivery request on destination key.
func redeliver(ctx context.Context, endpoints EndpointAdmin, key int64, r RedeliveryRequest) (*Redelivery, error) {
	out := &Redelivery{}
	var err error
	switch {
	case len(r.Deliveries) > 0 && r.Status != "":
		return nil, fault.Field("status", "give deliveries or status, not both")
	case len(r.Deliveries) > 0:
		out.Count, err = endpoints.Redeliver(ctx, key, r.Deliveries)
	case r.Status == webhooks.DeliveryFailed:
		out.Background = true
		out.Count, err = endpoints.RedeliverFailed(ctx, key, r.Since, r.Until)
	case r.Status != "":
		return nil, fault.Field("status", `only "failed" deliveries are redelivered in bulk`)
	default:
		return nil, fault.Field("deliveries", "list delivery ids, or give status \"failed\" with since and until")
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// HostStats are a host endpoint's delivery health figures.
func (s *HostEndpoints) HostStats(ctx context.Context, a Actor, id string, since, until time.Time, resolution time.Duration) ([]webhooks.Bucket, webhooks.Bucket, error) {
	h, err := s.GetHostEndpoint(ctx, a, id)
	if err != nil {
		return nil, webhooks.Bucket{}, err
	}
	return s.log.Stats(ctx, webhooks.HostKey(h.ID), since, until, resolution)
}

// hostSecrets are the secrets that sign a host endpoint's deliveries now:
// the current one, then the previous one while its overlap lasts.
func (s *core) hostSecrets(h *HostEndpoint) ([]string, error) {
	cur, err := s.box.Open(h.Secret)
	if err != nil {
		return nil, fmt.Errorf("opening secret of host endpoint %d: %w", h.ID, err)
	}
	out := []string{cur}
	if len(h.PreviousSecret) > 0 && h.PreviousSecretExpiresAt != nil && h.PreviousSecretExpiresAt.After(s.now()) {
		if prev, err := s.box.Open(h.PreviousSecret); err == nil {
			out = append(out, prev)
		}
	}
	return out, nil
}

// hostEndpoint answers webhooks.Directory.Endpoint for host endpoint id.
func (s *WebhookDirectory) hostEndpoint(ctx context.Context, id int64) (*webhooks.Endpoint, error) {
	var h HostEndpoint
	if err := s.db.WithContext(ctx).Take(&h, id).Error; err != nil {
		return nil, dbErr(err, "host endpoint", "")
	}
	secrets, err := s.hostSecrets(&h)
	if err != nil {
		return nil, err
	}
	return &webhooks.Endpoint{AppID: webhooks.HostKey(h.ID), Slug: "host-endpoint-" + idStr(h.ID), URL: h.URL, Secrets: secrets}, nil
}

// hostEndpointChanged records that endpoint health disabled host endpoint
// id, in the platform's audit log.
func (s *WebhookDirectory) hostEndpointChanged(ctx context.Context, id int64, status, reason string) {
	var h HostEndpoint
	if err := s.db.WithContext(ctx).Take(&h, id).Error; err != nil {
		if !errors.Is(err, gorm.ErrRecordNotFound) {
			s.log.Error("recording host endpoint change", "host_endpoint", id, "err", err)
		}
		return
	}
	if err := s.audit(s.db.WithContext(ctx), Actor{}, nil, "host_endpoint."+status, "host_endpoint", idStr(h.ID), h.URL, JSON{"reason": reason}); err != nil {
		s.log.Error("recording host endpoint change", "host_endpoint", id, "err", err)
	}
}
