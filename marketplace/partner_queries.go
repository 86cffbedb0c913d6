package marketplace

import (
	"context"
	"fmt"

	"github.com/plugboard/plugboard/app/page"
)

// ListOrgAppsWithEndpoints is ListOrgApps with each app's webhook endpoint
// status filled in, for the partner dashboard's list of apps.
func (s *Service) ListOrgAppsWithEndpoints(ctx context.Context, a Actor, ref string, r page.Request) (page.Page[AppView], error) {
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
