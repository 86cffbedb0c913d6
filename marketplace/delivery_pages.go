package marketplace

import (
	"context"
	"fmt"
	"time"

	"github.com/plugboard/plugboard/app/page"
	"github.com/plugboard/plugboard/webhooks"
)

// DeliveryPage is what one delivery's page shows: the delivery with every
// attempt, and the organization it went to.
type DeliveryPage struct {
	Delivery *webhooks.DeliveryDetail
	Org      string // "" for deliveries to no installation
}

// DeliveryPage is delivery id of app ref, for the app's owners.
func (s *Deliveries) DeliveryPage(ctx context.Context, a Actor, ref, id string) (*DeliveryPage, error) {
	v, err := s.partnerApp(ctx, a, ref)
	if err != nil {
		return nil, err
	}
	d, err := s.log.GetDelivery(ctx, v.ID, id)
	if err != nil {
		return nil, err
	}
	pg := &DeliveryPage{Delivery: d}
	if d.InstallationUUID != nil {
		orgs, err := s.installationOrgs(ctx, v.ID, []string{*d.InstallationUUID})
		if err != nil {
			return nil, fmt.Errorf("delivery %s: %w", d.UUID, err)
		}
		pg.Org = orgs[*d.InstallationUUID]
	}
	return pg, nil
}

// HealthQuery is the range a health page shows, in buckets of Step.
type HealthQuery struct {
	Since, Until time.Time
	Step         time.Duration
}

// HealthPage is what an app's health page shows: its delivery figures over
// a range, bucket by bucket and in total, and a page of the
// reconciliation runs that concern it.
type HealthPage struct {
	Buckets []webhooks.Bucket
	Total   webhooks.Bucket
	Runs    page.Page[Run]
}

// HealthPage is app ref's health over hq with page r of its runs, for the
// app's owners.
func (s *Deliveries) HealthPage(ctx context.Context, a Actor, ref string, hq HealthQuery, r page.Request) (*HealthPage, error) {
	v, err := s.partnerApp(ctx, a, ref)
	if err != nil {
		return nil, err
	}
	buckets, total, err := s.log.Stats(ctx, v.ID, hq.Since, hq.Until, hq.Step)
	if err != nil {
		return nil, err
	}
	runs, err := s.reconciler.appRuns(ctx, v.ID, RunQuery{}, r)
	if err != nil {
		return nil, fmt.Errorf("runs concerning %s: %w", v.Slug, err)
	}
	return &HealthPage{Buckets: buckets, Total: total, Runs: runs}, nil
}
