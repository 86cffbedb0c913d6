package marketplace_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/plugboard/plugboard/app/page"
	"github.com/plugboard/plugboard/marketplace"
)

func TestInstalledAppsPage(t *testing.T) {
	w := newWorld(t, appFields("Flow App"))
	e := w.env
	member := e.mustUser("member@customer.example")
	e.mustMember(w.admin, w.customer, member, marketplace.RoleMember)
	ni := e.mustInstall(w.admin, w.customer, w.app.Slug, "pro")
	// An uninstalled app is not on the page.
	other := e.mustApp(w.dev, w.partner, appFields("Other App"))
	e.mustPublish(w.dev, w.op, other.Slug)
	gone := e.mustInstall(w.admin, w.customer, other.Slug, "free")
	if err := e.Installs.Uninstall(e.ctx, w.admin, gone.Installation.UUID); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name  string
		actor marketplace.Actor
		code  string
		role  string
	}{
		{"the owner", w.admin, "", marketplace.RoleOwner},
		{"a member", member, "", marketplace.RoleMember},
		{"someone else", w.dev, "not_found", ""},
		{"an operator who is not a member", w.op, "not_found", ""},
		{"nobody signed in", marketplace.Anonymous, "not_authenticated", ""},
		{"the app itself", marketplace.Actor{App: e.mustClient(w.app)}, "users_only", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pg, err := e.Installs.InstalledAppsPage(e.ctx, tt.actor, w.customer, page.Request{Limit: 10})
			wantCode(t, err, tt.code)
			if tt.code != "" {
				return
			}
			if pg.Org.Org.Slug != w.customer || pg.Org.Role != tt.role {
				t.Errorf("org = %s as %q, want %s as %q", pg.Org.Org.Slug, pg.Org.Role, w.customer, tt.role)
			}
			var uuids []string
			for _, in := range pg.Installations.Items {
				uuids = append(uuids, in.UUID)
			}
			if diff := cmp.Diff([]string{ni.Installation.UUID}, uuids); diff != "" {
				t.Errorf("installations (-want +got):\n%s", diff)
			}
			if got := pg.Summaries[ni.Installation.ID]; got.InstalledBy != "admin" {
				t.Errorf("summary = %+v, want installed by admin", got)
			}
		})
	}
}

func TestInstallationPage(t *testing.T) {
	w := newWorld(t, appFields("Flow App"))
	e := w.env
	member := e.mustUser("member@customer.example")
	e.mustMember(w.admin, w.customer, member, marketplace.RoleMember)
	ni := e.mustInstall(w.admin, w.customer, w.app.Slug, "pro")
	id := ni.Installation.UUID

	tests := []struct {
		name     string
		actor    marketplace.Actor
		org, id  string
		code     string
		wantRole string
	}{
		{"the owner", w.admin, w.customer, id, "", marketplace.RoleOwner},
		{"a member", member, w.customer, id, "", marketplace.RoleMember},
		{"the partner, at the customer", w.dev, w.customer, id, "not_found", ""},
		{"the partner, at its own organization", w.dev, w.partner, id, "not_found", ""},
		{"an unknown installation", w.admin, w.customer, "00000000-0000-0000-0000-000000000000", "not_found", ""},
		{"not a uuid", w.admin, w.customer, "nope", "not_found", ""},
		{"nobody signed in", marketplace.Anonymous, w.customer, id, "not_authenticated", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pg, err := e.Installs.InstallationPage(e.ctx, tt.actor, tt.org, tt.id)
			wantCode(t, err, tt.code)
			if tt.code != "" {
				return
			}
			if pg.Org.Role != tt.wantRole || pg.Installation.UUID != id || pg.Installation.App == nil || pg.Installation.App.Slug != w.app.Slug {
				t.Errorf("page = org role %q, installation %+v", pg.Org.Role, pg.Installation)
			}
			wantScopes := []marketplace.Scope{{Name: "org:read", Description: "Read the organization's name and settings", Builtin: true, Routes: []string{"GET /api/0/organizations/{org}/"}}}
			if diff := cmp.Diff(wantScopes, pg.Scopes); diff != "" {
				t.Errorf("scopes (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]string{"free", "pro"}, planSlugs(pg.Plans)); diff != "" {
				t.Errorf("plans (-want +got):\n%s", diff)
			}
			if pg.Summary.InstalledBy != "admin" {
				t.Errorf("summary = %+v, want installed by admin", pg.Summary)
			}
		})
	}

	t.Run("an app pulled from the marketplace offers no plan", func(t *testing.T) {
		if _, err := e.Apps.UpdateApp(e.ctx, w.op, w.app.Slug, marketplace.AppUpdate{Status: ptr(marketplace.StatusRejected), StatusReason: ptr("pulled")}); err != nil {
			t.Fatal(err)
		}
		pg, err := e.Installs.InstallationPage(e.ctx, w.admin, w.customer, id)
		wantCode(t, err, "")
		if len(pg.Plans) != 0 || pg.Installation.UUID != id {
			t.Errorf("plans = %v, installation %s", planSlugs(pg.Plans), pg.Installation.UUID)
		}
	})

	t.Run("an uninstalled installation is not found", func(t *testing.T) {
		if err := e.Installs.Uninstall(e.ctx, w.admin, id); err != nil {
			t.Fatal(err)
		}
		_, err := e.Installs.InstallationPage(e.ctx, w.admin, w.customer, id)
		wantCode(t, err, "not_found")
	})
}

// planSlugs lists the plans' slugs, in order.
func planSlugs(plans []marketplace.Plan) []string {
	out := []string{}
	for _, p := range plans {
		out = append(out, p.Slug)
	}
	return out
}
