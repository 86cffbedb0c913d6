package marketplace

import (
	"context"
	"fmt"

	"github.com/plugboard/plugboard/webhooks"
)

// EndpointsOf implements webhooks.ManyEndpoints: Endpoint for many apps in
// one query, for a sweep of thousands of apps (webhooks/sweep.go). An app
// whose secret cannot be opened has that error; one not found (or a host
// endpoint's key) is left out, for Endpoint to answer.
func (s *WebhookDirectory) EndpointsOf(ctx context.Context, appIDs []int64) (map[int64]*webhooks.Endpoint, map[int64]error, error) {
	var apps []App
	if err := s.db.WithContext(ctx).Select("id", "slug", "webhook_url", "webhook_secret", "previous_webhook_secret", "previous_secret_expires_at").
		Where("id = ANY(?)", pgArray(appIDs)).Find(&apps).Error; err != nil {
		return nil, nil, fmt.Errorf("loading endpoints of %d apps: %w", len(appIDs), err)
	}
	out := make(map[int64]*webhooks.Endpoint, len(apps))
	errs := map[int64]error{}
	for i := range apps {
		app := &apps[i]
		secrets, err := s.webhookSecrets(app)
		if err != nil {
			errs[app.ID] = err
			continue
		}
		out[app.ID] = &webhooks.Endpoint{AppID: app.ID, Slug: app.Slug, URL: app.WebhookURL, Secrets: secrets}
	}
	return out, errs, nil
}

var _ webhooks.ManyEndpoints = (*WebhookDirectory)(nil)
