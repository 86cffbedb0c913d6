package marketplace

import (
	"context"
	"fmt"

	"github.com/plugboard/plugboard/app/page"
)

// DirectoryPage is what the marketplace shows: a page of apps, and which
// of them are live in the current organization.
type DirectoryPage struct {
	Apps      page.Page[AppView]
	Installed map[int64]string // app id → its live installation's uuid in the organization
}

// DirectoryPage is the marketplace directory (as Directory lists it) with
// the apps live in organization orgRef marked, when the actor is a member
// there; orgRef may be "".
func (s *Apps) DirectoryPage(ctx context.Context, a Actor, dq DirectoryQuery, r page.Request, orgRef string) (*DirectoryPage, error) {
	apps, err := s.Directory(ctx, a, dq, r)
	if err != nil {
		return nil, err
	}
	installed, err := s.liveApps(ctx, a, orgRef)
	if err != nil {
		return nil, fmt.Errorf("marketplace directory: %w", err)
	}
	return &DirectoryPage{Apps: apps, Installed: installed}, nil
}

// ListingPage is what an app's marketplace page shows.
type ListingPage struct {
	App    *AppView
	Scopes []Scope // the scopes it asks for, in plain words
	Plans  []Plan  // cheapest first
	// Installed is the app's live installation's uuid in the organization
	// asked about; "" when it has none there.
	Installed string
}

// ListingPage is app ref's marketplace page, for whoever may see the app
// (anyone, once it is published), and whether it is live in organization
// orgRef when the actor is a member there; orgRef may be "".
func (s *Apps) ListingPage(ctx context.Context, a Actor, ref, orgRef string) (*ListingPage, error) {
	v, err := s.GetApp(ctx, a, ref)
	if err != nil {
		return nil, err
	}
	scopes, err := s.events.describeScopes(ctx, v.Scopes)
	if err != nil {
		return nil, fmt.Errorf("listing of %s: %w", v.Slug, err)
	}
	installed, err := s.liveApps(ctx, a, orgRef)
	if err != nil {
		return nil, fmt.Errorf("listing of %s: %w", v.Slug, err)
	}
	return &ListingPage{App: v, Scopes: scopes, Plans: v.Plans, Installed: installed[v.ID]}, nil
}

// ConsentPage is what the install consent page shows.
type ConsentPage struct {
	App    *AppView
	Scopes []Scope // the scopes it asks for, in plain words
	Plans  []Plan  // cheapest first
	// Orgs are where the actor may install it: the organizations it
	// administers, by slug.
	Orgs []OrgAccess
}

// ConsentPage is the install consent of app ref, for a signed-in user who
// may see the app.
func (s *Apps) ConsentPage(ctx context.Context, a Actor, ref string) (*ConsentPage, error) {
	v, err := s.GetApp(ctx, a, ref)
	if err != nil {
		return nil, err
	}
	scopes, err := s.events.describeScopes(ctx, v.Scopes)
	if err != nil {
		return nil, fmt.Errorf("consent to %s: %w", v.Slug, err)
	}
	orgs, err := s.orgs.ListOrganizations(ctx, a, page.Request{Limit: page.MaxLimit})
	if err != nil {
		return nil, err
	}
	pg := &ConsentPage{App: v, Scopes: scopes, Plans: v.Plans}
	for _, o := range orgs.Items {
		if o.IsAdmin() {
			pg.Orgs = append(pg.Orgs, o)
		}
	}
	return pg, nil
}
