package marketplace_test

import (
	"testing"
	"time"

	"github.com/plugboard/plugboard/marketplace"
)

// Options.Now is the services' clock, but rows written with gorm's Save get
// updated_at from gorm's own clock (the wall clock), not from Options.Now.
func TestUpdatedAtFollowsTheInjectedClock(t *testing.T) {
	s := newStudio(t)
	app := s.mustApp(s.admin, "acme", appFields("Clocked"))
	plan := s.mustPlan(s.admin, app.Slug, "Pro", "9")
	s.clock.Advance(time.Hour)
	want := s.clock.Now()

	v, err := s.Apps.UpdateApp(s.ctx, s.admin, app.Slug, marketplace.AppUpdate{AppFields: marketplace.AppFields{Overview: ptr("New.")}})
	wantCode(t, err, "")
	p, err := s.Apps.UpdatePlan(s.ctx, s.admin, app.Slug, plan.Slug, marketplace.PlanFields{Price: ptr("10")})
	wantCode(t, err, "")
	var stored marketplace.App
	s.db.First(&stored, app.ID)
	var storedPlan marketplace.Plan
	s.db.First(&storedPlan, plan.ID)
	for name, got := range map[string]time.Time{"UpdateApp's view": v.UpdatedAt, "apps.updated_at": stored.UpdatedAt,
		"UpdatePlan's plan": p.UpdatedAt, "plans.updated_at": storedPlan.UpdatedAt} {
		if !got.Equal(want) {
			t.Errorf("%s = %v, want the injected clock's %v", name, got, want)
		}
	}
}
