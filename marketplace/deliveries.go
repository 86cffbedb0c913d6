package marketplace

import (
	"context"
	"strconv"
	"time"

	"github.com/google/uuid"

	"gorm.io/gorm"

	"github.com/plugboard/plugboard/app/fault"
	"github.com/plugboard/plugboard/app/page"
	"github.com/plugboard/plugboard/webhooks"
)

// ListDeliveries is an app's delivery log.
func (s *Deliveries) ListDeliveries(ctx context.Context, a Actor, ref string, q webhooks.DeliveryQuery, r page.Request) (page.Page[webhooks.Delivery], error) {
	v, err := s.partnerApp(ctx, a, ref)
	if err != nil {
		return page.Page[webhooks.Delivery]{}, err
	}
	return s.log.ListDeliveries(ctx, v.ID, q, r)
}

// GetDelivery is one delivery with its payload and every attempt.
func (s *Deliveries) GetDelivery(ctx context.Context, a Actor, ref, id string) (*webhooks.DeliveryDetail, error) {
	v, err := s.partnerApp(ctx, a, ref)
	if err != nil {
		return nil, err
	}
	return s.log.GetDelivery(ctx, v.ID, id)
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

// Redeliver sends deliveries again (by id now, or failed ones in bulk as a
// background job) and records it in the audit log.
func (s *Deliveries) Redeliver(ctx context.Context, a Actor, ref string, r RedeliveryRequest) (*Redelivery, error) {
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
func (s *Deliveries) SendTestEvent(ctx context.Context, a Actor, ref string) (*webhooks.Delivery, error) {
	v, err := s.partnerAppAdmin(ctx, a, ref)
	if err != nil {
		return nil, err
	}
	if v.WebhookURL == "" {
		return nil, fault.Conflict(fault.NoWebhookURL, "The app has no webhook URL to send to.")
	}
	var d webhooks.Delivery
	err = s.publishTx(ctx, func(tx *gorm.DB) error {
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

// Stats are an app's delivery health figures, as the API shows them: per
// bucket, and the range's counts (its total has no percentiles).
func (s *Deliveries) Stats(ctx context.Context, a Actor, ref string, since, until time.Time, resolution time.Duration) ([]webhooks.Bucket, webhooks.Bucket, error) {
	v, err := s.partnerApp(ctx, a, ref)
	if err != nil {
		return nil, webhooks.Bucket{}, err
	}
	return s.log.BucketStats(ctx, v.ID, since, until, resolution)
}

// ListenDeliveries streams copies of an app's deliveries (for `plugboard
// listen`) to its owner organization's members, until ctx ends.
func (s *Deliveries) ListenDeliveries(ctx context.Context, a Actor, ref string) (<-chan webhooks.Forwarded, error) {
	v, err := s.partnerApp(ctx, a, ref)
	if err != nil {
		return nil, err
	}
	owner := "app:" + strconv.FormatInt(v.ID, 10)
	if a.User != nil {
		owner = "user:" + strconv.FormatInt(a.User.ID, 10)
	}
	return s.stream.Listen(ctx, v.ID, owner, uuid.NewString())
}

// AppInstallationOrgs names the organization of each of the app's
// installations in uuids (the delivery log shows who a delivery went to);
// uuids that are not the app's are left out. For the app's owners, like
// ListDeliveries.
func (s *Deliveries) AppInstallationOrgs(ctx context.Context, a Actor, ref string, uuids []string) (map[string]string, error) {
	v, err := s.partnerApp(ctx, a, ref)
	if err != nil {
		return nil, err
	}
	return s.installationOrgs(ctx, v.ID, uuids)
}
