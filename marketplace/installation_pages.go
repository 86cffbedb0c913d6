package marketplace

import (
	"context"
	"errors"
	"fmt"

	"github.com/plugboard/plugboard/app/fault"
	"github.com/plugboard/plugboard/app/page"
	"github.com/plugboard/plugboard/webhooks"
)

// InstalledAppsPage is what an organization's installed-apps page shows:
// its live installations, and beside each who installed it and how its
// webhooks fare.
type InstalledAppsPage struct {
	Org           *OrgAccess
	Installations page.Page[Installation]
	Summaries     map[int64]InstallationSummary // by installation id
}

// InstalledAppsPage is the installed-apps page of organization orgRef, for
// its members: the live (pending or installed) installations, newest
// first.
func (s *Installs) InstalledAppsPage(ctx context.Context, a Actor, orgRef string, r page.Request) (*InstalledAppsPage, error) {
	acc, err := s.access(ctx, s.db, a, orgRef, RoleMember)
	if err != nil {
		return nil, err
	}
	insts, err := s.listInstallations(ctx, s.liveIn(acc.Org.ID), InstallationQuery{}, r)
	if err != nil {
		return nil, fmt.Errorf("installed apps of %s: %w", acc.Org.Slug, err)
	}
	sums, err := s.summaries(ctx, acc.Org.ID, insts.Items)
	if err != nil {
		return nil, fmt.Errorf("installed apps of %s: %w", acc.Org.Slug, err)
	}
	return &InstalledAppsPage{Org: acc, Installations: insts, Summaries: sums}, nil
}

// InstallationPage is what one installation's page shows: the
// installation, its summary, the scopes it was granted in plain words and
// the plans it may move to.
type InstallationPage struct {
	Org          *OrgAccess
	Installation *Installation
	Summary      InstallationSummary
	Scopes       []Scope
	// Plans are the app's plans; none when the app was pulled from the
	// marketplace (its installations stay, and can be uninstalled, but no
	// plan can be chosen).
	Plans []Plan
	// ConfigVarNames are the names of the config vars the app set, sorted;
	// their values are not read (ConfigVars.Reveal opens one).
	ConfigVarNames []string
	// PendingScopes and PendingEvents are what the installation's pending
	// permission request asks, in plain words (Installation.PendingPermissions).
	PendingScopes []Scope
	PendingEvents []webhooks.EventType
	// Suspension is the installation's suspension, with who suspended it
	// and who may lift it; nil when it is not suspended (suspensions.go).
	Suspension *Suspension
	// Quotes are, by plan id, what moving to each plan now costs for the
	// rest of the open period (billing_quote.go); for admins, who may
	// change the plan.
	Quotes map[int64]PlanQuote
}

// InstallationPage is live installation id of organization orgRef, for
// the organization's members; other organizations' installations, and
// ended ones, are not found.
func (s *Installs) InstallationPage(ctx context.Context, a Actor, orgRef, id string) (*InstallationPage, error) {
	acc, err := s.access(ctx, s.db, a, orgRef, RoleMember)
	if err != nil {
		return nil, err
	}
	inst, err := s.loadInstallation(ctx, s.db, id, false)
	if err != nil {
		return nil, err
	}
	if inst.OrganizationID != acc.Org.ID || !inst.Live() {
		return nil, fault.NotFound("installation")
	}
	sums, err := s.summaries(ctx, acc.Org.ID, []Installation{*inst})
	if err != nil {
		return nil, fmt.Errorf("installation %s: %w", inst.UUID, err)
	}
	scopes, err := s.events.describeScopes(ctx, inst.Scopes)
	if err != nil {
		return nil, fmt.Errorf("installation %s: %w", inst.UUID, err)
	}
	names, err := s.configVarNames(ctx, inst.ID)
	if err != nil {
		return nil, fmt.Errorf("installation %s: %w", inst.UUID, err)
	}
	sp, err := suspensionFor(ctx, s.db, inst)
	if err != nil {
		return nil, err
	}
	pg := &InstallationPage{Org: acc, Installation: inst, Summary: sums[inst.ID], Scopes: scopes, ConfigVarNames: names, Suspension: sp}
	if req := inst.PendingPermissions; req != nil { // permission_requests.go
		if pg.PendingScopes, err = s.events.describeScopes(ctx, req.Scopes); err != nil {
			return nil, fmt.Errorf("installation %s: %w", inst.UUID, err)
		}
		all, err := s.events.catalog.List(ctx)
		if err != nil {
			return nil, fmt.Errorf("installation %s: %w", inst.UUID, err)
		}
		pg.PendingEvents = describeEvents(all, req.Events)
	}
	if inst.App != nil {
		pg.Plans, err = s.visiblePlans(ctx, a, inst.App.Slug)
		if errors.Is(err, fault.ErrNotFound) {
			pg.Plans, err = nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("plans of installation %s: %w", inst.UUID, err)
		}
	}
	if acc.IsAdmin() {
		if pg.Quotes, err = planQuotes(ctx, s.db, s.now(), inst, pg.Plans); err != nil {
			return nil, err
		}
	}
	return pg, nil
}

// liveApps maps the apps live (pending or installed) in organization
// orgRef to their installation's uuid, so the marketplace can say
// "Installed". It is empty without orgRef, and for anyone who is not a
// member there.
func (s *core) liveApps(ctx context.Context, a Actor, orgRef string) (map[int64]string, error) {
	out := map[int64]string{}
	if orgRef == "" || !a.SignedIn() {
		return out, nil
	}
	acc, err := s.access(ctx, s.db, a, orgRef, RoleMember)
	if _, refused := fault.As(err); refused {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	var rows []struct {
		AppID int64
		UUID  string
	}
	if err := s.liveIn(acc.Org.ID).WithContext(ctx).Model(&Installation{}).Select("installations.app_id, installations.uuid").
		Order("installations.id DESC").Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("listing the apps live in %s: %w", acc.Org.Slug, err)
	}
	for _, r := range rows {
		out[r.AppID] = r.UUID
	}
	return out, nil
}
