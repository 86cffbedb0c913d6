package marketplace

import (
	"context"
	"fmt"

	"github.com/plugboard/plugboard/app/page"
	"github.com/plugboard/plugboard/webhooks"
)

// The pages of revisions: the partner's list, the operators' queue and
// one revision under review, each read with one call.

// RevisionsPage is the partner's page of an app's revisions.
type RevisionsPage struct {
	App       *AppView
	Revisions page.Page[AppRevision]
}

// RevisionsPage is app ref's revisions, newest first, for its owner
// organization's members and operators.
func (s *Revisions) RevisionsPage(ctx context.Context, a Actor, ref string, r page.Request) (*RevisionsPage, error) {
	v, err := s.apps.GetApp(ctx, a, ref)
	if err != nil {
		return nil, err
	}
	revs, err := s.ListRevisions(ctx, a, ref, r)
	if err != nil {
		return nil, err
	}
	return &RevisionsPage{App: v, Revisions: revs}, nil
}

// RevisionQueue is the revisions submitted for review, oldest first (the
// one waiting longest on top), with their apps, for operators.
func (s *Revisions) RevisionQueue(ctx context.Context, a Actor, r page.Request) (page.Page[AppRevision], error) {
	if err := operatorPage(a); err != nil {
		return page.Page[AppRevision]{}, err
	}
	var rows []AppRevision
	q := s.db.WithContext(ctx).Preload("App").Preload("App.Organization").Where("app_revisions.status = ?", RevisionSubmitted)
	order := page.Sort{Column: "app_revisions.id"}
	if err := page.Query(q, "app_revisions.id", order, r).Find(&rows).Error; err != nil {
		return page.Page[AppRevision]{}, fmt.Errorf("listing revisions to review: %w", err)
	}
	return page.Finish(rows, r, order, func(rev AppRevision) (string, int64) { return "", rev.ID }), nil
}

// RevisionReview is one revision as operators review it: its diff with the
// scopes and events in plain words, and how many installations it reaches.
type RevisionReview struct {
	App           *AppView
	Revision      *AppRevision
	Diff          []FieldChange
	AddedScopes   []Scope
	RemovedScopes []Scope
	AddedEvents   []webhooks.EventType
	RemovedEvents []webhooks.EventType
	// Installations are the app's live installations: what the revision
	// adds is asked of each, what it removes is taken from each at once.
	Installations int64
}

// RevisionReview is revision id of app ref, for operators.
func (s *Revisions) RevisionReview(ctx context.Context, a Actor, ref, id string) (*RevisionReview, error) {
	if err := operatorPage(a); err != nil {
		return nil, err
	}
	v, err := s.apps.GetApp(ctx, a, ref)
	if err != nil {
		return nil, err
	}
	rev, err := s.revision(ctx, s.db, &v.App, id, false)
	if err != nil {
		return nil, err
	}
	out := &RevisionReview{App: v, Revision: rev, Diff: rev.Diff()}
	all, err := s.events.catalog.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("review of %s revision %d: %w", v.Slug, rev.Number, err)
	}
	for _, c := range out.Diff {
		switch c.Field {
		case "scopes":
			if out.AddedScopes, err = s.events.describeScopes(ctx, c.Added); err != nil {
				return nil, err
			}
			if out.RemovedScopes, err = s.events.describeScopes(ctx, c.Removed); err != nil {
				return nil, err
			}
		case "events":
			out.AddedEvents, out.RemovedEvents = describeEvents(all, c.Added), describeEvents(all, c.Removed)
		}
	}
	if err := s.db.WithContext(ctx).Model(&Installation{}).Where("app_id = ? AND status IN ?", v.ID, LiveStatuses).
		Count(&out.Installations).Error; err != nil {
		return nil, fmt.Errorf("counting installations of %s: %w", v.Slug, err)
	}
	return out, nil
}
