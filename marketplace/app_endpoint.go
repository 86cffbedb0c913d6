package marketplace

import (
	"context"
	"fmt"

	"github.com/plugboard/plugboard/app/page"
	"gorm.io/gorm"
)

// endpointFields applies webhookStatus and limits from a PUT on an app,
// in the update's transaction.
func (s *Apps) endpointFields(ctx context.Context, tx *gorm.DB, a Actor, v *AppView, u AppUpdate) error {
	if u.WebhookStatus == nil && u.WebhookRateLimit == nil && u.WebhookMaxInFlight == nil {
		return nil
	}
	return s.endpoints.Set(ctx, tx, v.ID, u.WebhookStatus, "Disabled by "+actorLabel(a)+".", u.WebhookRateLimit, u.WebhookMaxInFlight)
}

// loadEndpoint fills a private view's webhook status and limits.
func (s *Apps) loadEndpoint(ctx context.Context, v *AppView) error {
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

// ListOrgAppsWithEndpoints is ListOrgApps with each app's webhook endpoint
// status filled in, for the partner dashboard's list of apps.
func (s *Apps) ListOrgAppsWithEndpoints(ctx context.Context, a Actor, ref string, r page.Request) (page.Page[AppView], error) {
	p, err := s.ListOrgApps(ctx, a, ref, r)
	if err != nil {
		return p, err
	}
	for i := range p.Items {
		if err := s.loadEndpoint(ctx, &p.Items[i]); err != nil {
			return p, fmt.Errorf("loading endpoint of %s: %w", p.Items[i].Slug, err)
		}
	}
	return p, nil
}
