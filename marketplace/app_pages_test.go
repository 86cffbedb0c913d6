package marketplace_test

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/plugboard/plugboard/app/page"
	"github.com/plugboard/plugboard/marketplace"
)

func TestListingPage(t *testing.T) {
	w := newWorld(t, appFields("Flow App"))
	e := w.env
	ni := e.mustInstall(w.admin, w.customer, w.app.Slug, "free")
	draft := e.mustApp(w.dev, w.partner, appFields("Draft App"))

	tests := []struct {
		name          string
		actor         marketplace.Actor
		app, org      string
		code          string
		wantInstalled string
	}{
		{"anyone, published", marketplace.Anonymous, w.app.Slug, "", "", ""},
		{"the customer, where it is installed", w.admin, w.app.Slug, w.customer, "", ni.Installation.UUID},
		{"the customer, asking about nowhere", w.admin, w.app.Slug, "", "", ""},
		{"the partner, asking about the customer", w.dev, w.app.Slug, w.customer, "", ""},
		{"an unknown organization", w.admin, w.app.Slug, "no-such-org", "", ""},
		{"the partner, its draft", w.dev, draft.Slug, w.partner, "", ""},
		{"anyone, a draft", marketplace.Anonymous, draft.Slug, "", "not_found", ""},
		{"the customer, a draft", w.admin, draft.Slug, w.customer, "not_found", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pg, err := e.Apps.ListingPage(e.ctx, tt.actor, tt.app, tt.org)
			wantCode(t, err, tt.code)
			if tt.code != "" {
				return
			}
			if pg.App.Slug != tt.app || pg.Installed != tt.wantInstalled {
				t.Errorf("app %s installed %q, want %s installed %q", pg.App.Slug, pg.Installed, tt.app, tt.wantInstalled)
			}
			wantScopes := []marketplace.Scope{{Name: "org:read", Description: "Read the organization's name and settings", Builtin: true, Routes: []string{"GET /api/0/organizations/{org}/"}}}
			if diff := cmp.Diff(wantScopes, pg.Scopes); diff != "" {
				t.Errorf("scopes (-want +got):\n%s", diff)
			}
			wantPlans := []string{"free", "pro"}
			if tt.app == draft.Slug {
				wantPlans = []string{}
			}
			if diff := cmp.Diff(wantPlans, planSlugs(pg.Plans)); diff != "" {
				t.Errorf("plans (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDirectoryPage(t *testing.T) {
	w := newWorld(t, appFields("Flow App"))
	e := w.env
	other := e.mustApp(w.dev, w.partner, appFields("Other App"))
	e.mustPublish(w.dev, w.op, other.Slug)
	ni := e.mustInstall(w.admin, w.customer, w.app.Slug, "free")

	tests := []struct {
		name      string
		actor     marketplace.Actor
		org       string
		installed map[int64]string
	}{
		{"the customer, in its organization", w.admin, w.customer, map[int64]string{w.app.ID: ni.Installation.UUID}},
		{"the customer, in none", w.admin, "", map[int64]string{}},
		{"someone else, asking about the customer", w.dev, w.customer, map[int64]string{}},
		{"anyone", marketplace.Anonymous, w.customer, map[int64]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pg, err := e.Apps.DirectoryPage(e.ctx, tt.actor, marketplace.DirectoryQuery{SortBy: marketplace.SortName}, page.Request{Limit: 10}, tt.org)
			wantCode(t, err, "")
			var slugs []string
			for _, a := range pg.Apps.Items {
				slugs = append(slugs, a.Slug)
			}
			if diff := cmp.Diff([]string{w.app.Slug, other.Slug}, slugs); diff != "" {
				t.Errorf("apps (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.installed, pg.Installed); diff != "" {
				t.Errorf("installed (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("a filter the directory refuses", func(t *testing.T) {
		_, err := e.Apps.DirectoryPage(e.ctx, w.admin, marketplace.DirectoryQuery{Category: "nope"}, page.Request{Limit: 10}, w.customer)
		wantFields(t, err, "category")
	})
}

func TestConsentPage(t *testing.T) {
	w := newWorld(t, appFields("Flow App"))
	e := w.env
	member := e.mustUser("member@customer.example")
	e.mustMember(w.admin, w.customer, member, marketplace.RoleMember)
	second := e.mustOrg(w.admin, "Zeta")
	draft := e.mustApp(w.dev, w.partner, appFields("Draft App"))

	tests := []struct {
		name  string
		actor marketplace.Actor
		app   string
		code  string
		orgs  []string // where the actor may install it
	}{
		{"an owner of two organizations", w.admin, w.app.Slug, "", []string{w.customer, second.Org.Slug}},
		{"a member, who installs nowhere", member, w.app.Slug, "", nil},
		{"the partner, its draft", w.dev, draft.Slug, "", []string{w.partner}},
		{"a stranger, a draft", w.admin, draft.Slug, "not_found", nil},
		{"nobody signed in", marketplace.Anonymous, w.app.Slug, "not_authenticated", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pg, err := e.Apps.ConsentPage(e.ctx, tt.actor, tt.app)
			wantCode(t, err, tt.code)
			if tt.code != "" {
				return
			}
			var orgs []string
			for _, o := range pg.Orgs {
				orgs = append(orgs, o.Org.Slug)
			}
			if diff := cmp.Diff(tt.orgs, orgs); diff != "" {
				t.Errorf("organizations (-want +got):\n%s", diff)
			}
			if pg.App.Slug != tt.app || len(pg.Scopes) != 1 || pg.Scopes[0].Description != "Read the organization's name and settings" {
				t.Errorf("app %s, scopes %+v", pg.App.Slug, pg.Scopes)
			}
			if tt.app == w.app.Slug {
				if diff := cmp.Diff([]string{"free", "pro"}, planSlugs(pg.Plans)); diff != "" {
					t.Errorf("plans (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestCatalogue(t *testing.T) {
	w := newWorld(t, appFields("Flow App"))
	e := w.env
	e.mustEventType(w.op, "ticket.opened", "ticket:read", "")
	e.mustEventType(w.op, "alert.fired", "alert:read", "")

	tests := []struct {
		name  string
		actor marketplace.Actor
		code  string
	}{
		{"a user", w.admin, ""},
		{"an operator", w.op, ""},
		{"nobody signed in", marketplace.Anonymous, "not_authenticated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cat, err := e.Events.Catalogue(e.ctx, tt.actor)
			wantCode(t, err, tt.code)
			if tt.code != "" {
				return
			}
			var names []string
			for _, et := range cat.EventTypes {
				names = append(names, et.Name)
			}
			for i := 1; i < len(names); i++ {
				if names[i-1] > names[i] {
					t.Fatalf("event types not by name: %v", names)
				}
			}
			if !slices.Contains(names, "alert.fired") || !slices.Contains(names, "ticket.opened") || !slices.Contains(names, marketplace.EventInstallationCreated) {
				t.Errorf("event types = %v", names)
			}
			scopes := map[string]marketplace.Scope{}
			for _, sc := range cat.Scopes {
				scopes[sc.Name] = sc
			}
			if sc := scopes["org:read"]; !sc.Builtin || sc.Description == "" {
				t.Errorf("org:read = %+v", sc)
			}
			if sc, ok := scopes["ticket:read"]; !ok || sc.Builtin {
				t.Errorf("ticket:read = %+v (listed %v)", sc, ok)
			}
		})
	}
}
