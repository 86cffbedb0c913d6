package marketplace

import (
	"context"
	"fmt"

	"github.com/plugboard/plugboard/app/fault"
	"github.com/plugboard/plugboard/app/page"
	"github.com/plugboard/plugboard/webhooks"
)

// operatorPage lets operators see an operator page; to other users the
// page is not there (not found, not forbidden: nothing tells them it
// exists).
func operatorPage(a Actor) error {
	if err := requireUser(a); err != nil {
		return err
	}
	if !a.IsOperator() {
		return fault.NotFound("page")
	}
	return nil
}

// Overview is the operators' home: the review queue, the catalogue and
// the latest reconciliation runs at a glance.
type Overview struct {
	AwaitingReview int  // apps submitted for review (at most a page of them)
	MoreToReview   bool // more than AwaitingReview are waiting
	EventTypes     int
	CustomTypes    int   // event types that are not built in
	RecentRuns     int   // of the last 50 runs:
	RunsWithFinds  int   // those that found something,
	RunsWithErrors int   // those that failed somewhere,
	Runs           []Run // the latest five
}

// overviewRuns is how many runs the overview counts; it shows fewer.
const (
	overviewRuns = 50
	overviewShow = 5
)

// Overview is the operators' home page, for operators.
func (s *Operators) Overview(ctx context.Context, a Actor) (*Overview, error) {
	if err := operatorPage(a); err != nil {
		return nil, err
	}
	queue, err := s.apps.Directory(ctx, a, DirectoryQuery{Status: StatusSubmitted}, page.Request{Limit: page.MaxLimit})
	if err != nil {
		return nil, fmt.Errorf("overview's review queue: %w", err)
	}
	types, err := s.events.catalog.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("overview's event types: %w", err)
	}
	runs, err := s.reconciler.listRuns(ctx, s.db.WithContext(ctx), RunQuery{}, page.Request{Limit: overviewRuns}, nil)
	if err != nil {
		return nil, fmt.Errorf("overview's runs: %w", err)
	}
	o := &Overview{AwaitingReview: len(queue.Items), MoreToReview: queue.HasNext, EventTypes: len(types), RecentRuns: len(runs.Items)}
	for _, t := range types {
		if !t.Builtin {
			o.CustomTypes++
		}
	}
	for _, r := range runs.Items {
		if r.Found > 0 {
			o.RunsWithFinds++
		}
		if len(r.Errors) > 0 {
			o.RunsWithErrors++
		}
	}
	o.Runs = runs.Items
	if len(o.Runs) > overviewShow {
		o.Runs = o.Runs[:overviewShow]
	}
	return o, nil
}

// ReviewQueue is the apps submitted for review, newest first, for
// operators.
func (s *Operators) ReviewQueue(ctx context.Context, a Actor, r page.Request) (page.Page[AppView], error) {
	if err := operatorPage(a); err != nil {
		return page.Page[AppView]{}, err
	}
	return s.apps.Directory(ctx, a, DirectoryQuery{Status: StatusSubmitted, SortBy: SortCreated}, r)
}

// ReviewPage is what the page of an app under review shows.
type ReviewPage struct {
	App    *AppView
	Scopes []Scope              // the scopes it asks for, in plain words
	Events []webhooks.EventType // the events it subscribes to, described
}

// ReviewPage is app ref as operators review it, for operators.
func (s *Operators) ReviewPage(ctx context.Context, a Actor, ref string) (*ReviewPage, error) {
	if err := operatorPage(a); err != nil {
		return nil, err
	}
	app, err := s.apps.GetApp(ctx, a, ref)
	if err != nil {
		return nil, err
	}
	scopes, err := s.events.describeScopes(ctx, app.Scopes)
	if err != nil {
		return nil, fmt.Errorf("review of %s: %w", app.Slug, err)
	}
	all, err := s.events.catalog.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("review of %s: %w", app.Slug, err)
	}
	return &ReviewPage{App: app, Scopes: scopes, Events: describeEvents(all, app.Events)}, nil
}

// EventTypes is the event catalogue as operators manage it, for
// operators.
func (s *Operators) EventTypes(ctx context.Context, a Actor) ([]webhooks.EventType, error) {
	if err := operatorPage(a); err != nil {
		return nil, err
	}
	types, err := s.events.catalog.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing event types: %w", err)
	}
	return types, nil
}

// Runs are the reconciliation runs, newest first, for operators.
func (s *Operators) Runs(ctx context.Context, a Actor, q RunQuery, r page.Request) (page.Page[Run], error) {
	if err := operatorPage(a); err != nil {
		return page.Page[Run]{}, err
	}
	return s.reconciler.listRuns(ctx, s.db.WithContext(ctx), q, r, nil)
}
