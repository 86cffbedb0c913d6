package marketplace_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/plugboard/plugboard/app/page"
	"github.com/plugboard/plugboard/marketplace"
	"github.com/plugboard/plugboard/webhooks"
)

// TestOperatorPagesAreOperatorsOnly: every operator page is there for
// operators only; to other users it is not found (not forbidden).
func TestOperatorPagesAreOperatorsOnly(t *testing.T) {
	w := newWorld(t, appFields("Flow App"))
	e := w.env
	pages := map[string]func(a marketplace.Actor) error{
		"overview": func(a marketplace.Actor) error { _, err := e.Operators.Overview(e.ctx, a); return err },
		"review queue": func(a marketplace.Actor) error {
			_, err := e.Operators.ReviewQueue(e.ctx, a, page.Request{Limit: 10})
			return err
		},
		"app under review": func(a marketplace.Actor) error { _, err := e.Operators.ReviewPage(e.ctx, a, w.app.Slug); return err },
		"event types":      func(a marketplace.Actor) error { _, err := e.Operators.EventTypes(e.ctx, a); return err },
		"runs": func(a marketplace.Actor) error {
			_, err := e.Operators.Runs(e.ctx, a, marketplace.RunQuery{}, page.Request{Limit: 10})
			return err
		},
	}
	actors := []struct {
		name  string
		actor marketplace.Actor
		code  string
	}{
		{"an operator", w.op, ""},
		{"the app's owner", w.dev, "not_found"},
		{"a customer", w.admin, "not_found"},
		{"nobody signed in", marketplace.Anonymous, "not_authenticated"},
		{"the app itself", marketplace.Actor{App: e.mustClient(w.app)}, "users_only"},
	}
	for name, read := range pages {
		for _, a := range actors {
			t.Run(name+"/"+a.name, func(t *testing.T) {
				wantCode(t, read(a.actor), a.code)
			})
		}
	}
}

func TestOperatorPages(t *testing.T) {
	in := appFields("Flow App")
	in.VerifyInstall = ptr(true)
	w := newWorld(t, in, withVerifyTimeout(time.Hour))
	e := w.env
	e.mustEventType(w.op, "ticket.opened", "ticket:read", "")
	review := appFields("Ticket Bot")
	review.Scopes = ptr([]string{"org:read", "ticket:read"})
	review.Events = ptr([]string{"ticket.opened", marketplace.EventInstallationCreated})
	bot := e.mustApp(w.dev, w.partner, review)
	e.mustPlan(w.dev, bot.Slug, "Free", "0")
	if _, err := e.Apps.SubmitApp(e.ctx, w.dev, bot.Slug); err != nil {
		t.Fatal(err)
	}
	// A pending installation past its deadline: the verification run
	// finds it.
	e.mustInstall(w.admin, w.customer, w.app.Slug, "free")
	e.clock.Advance(61 * time.Minute)
	if _, err := e.Reconciler.RunJob(e.ctx, marketplace.JobVerification); err != nil {
		t.Fatal(err)
	}
	types, err := e.Events.ListEventTypes(e.ctx, w.op)
	if err != nil {
		t.Fatal(err)
	}
	scopes, err := e.Events.Scopes(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	scopeText := map[string]string{}
	for _, sc := range scopes {
		scopeText[sc.Name] = sc.Description
	}

	t.Run("overview", func(t *testing.T) {
		o, err := e.Operators.Overview(e.ctx, w.op)
		wantCode(t, err, "")
		want := marketplace.Overview{AwaitingReview: 1, EventTypes: len(types), CustomTypes: 1, RecentRuns: 1, RunsWithFinds: 1}
		got := *o
		got.Runs = nil
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("overview (-want +got):\n%s", diff)
		}
		if len(o.Runs) != 1 || o.Runs[0].Job != marketplace.JobVerification || o.Runs[0].Found != 1 {
			t.Errorf("runs = %+v", o.Runs)
		}
	})

	t.Run("review queue", func(t *testing.T) {
		q, err := e.Operators.ReviewQueue(e.ctx, w.op, page.Request{Limit: 10})
		wantCode(t, err, "")
		if len(q.Items) != 1 || q.Items[0].Slug != bot.Slug || q.Items[0].Status != marketplace.StatusSubmitted {
			t.Errorf("queue = %+v", q.Items)
		}
	})

	t.Run("app under review", func(t *testing.T) {
		pg, err := e.Operators.ReviewPage(e.ctx, w.op, bot.Slug)
		wantCode(t, err, "")
		var scopes []string
		for _, sc := range pg.Scopes {
			scopes = append(scopes, sc.Name+": "+sc.Description)
		}
		wantScopes := []string{"org:read: Read the organization's name and settings", "ticket:read: " + scopeText["ticket:read"]}
		if diff := cmp.Diff(wantScopes, scopes); diff != "" {
			t.Errorf("scopes (-want +got):\n%s", diff)
		}
		var events []string
		for _, et := range pg.Events {
			events = append(events, et.Name+": "+et.Description)
		}
		wantEvents := []string{"ticket.opened: test event ticket.opened",
			marketplace.EventInstallationCreated + ": " + descriptionOf(types, marketplace.EventInstallationCreated)}
		if diff := cmp.Diff(wantEvents, events); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
		if len(pg.App.Plans) != 1 || pg.App.Name != "Ticket Bot" {
			t.Errorf("app = %s with plans %v", pg.App.Name, planSlugs(pg.App.Plans))
		}
		_, err = e.Operators.ReviewPage(e.ctx, w.op, "no-such-app")
		wantCode(t, err, "not_found")
	})

	t.Run("event types", func(t *testing.T) {
		got, err := e.Operators.EventTypes(e.ctx, w.op)
		wantCode(t, err, "")
		if diff := cmp.Diff(types, got); diff != "" {
			t.Errorf("event types (-want +got):\n%s", diff)
		}
	})

	t.Run("runs, by job", func(t *testing.T) {
		for job, n := range map[string]int{marketplace.JobVerification: 1, marketplace.JobGrants: 0} {
			p, err := e.Operators.Runs(e.ctx, w.op, marketplace.RunQuery{Job: job}, page.Request{Limit: 10})
			wantCode(t, err, "")
			if len(p.Items) != n {
				t.Errorf("%s runs = %d, want %d", job, len(p.Items), n)
			}
		}
	})
}

// descriptionOf is the description of event type name in types.
func descriptionOf(types []webhooks.EventType, name string) string {
	for _, t := range types {
		if t.Name == name {
			return t.Description
		}
	}
	return ""
}
