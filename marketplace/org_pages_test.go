package marketplace_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/plugboard/plugboard/app/page"
	"github.com/plugboard/plugboard/marketplace"
)

// orgPageWorld is the customer organization with an admin and a member
// beside its owner.
func orgPageWorld(t *testing.T) (w *world, admin, member marketplace.Actor, adminM *marketplace.Member) {
	t.Helper()
	w = newWorld(t, appFields("Flow App"))
	admin = w.mustUser("second@customer.example")
	adminM = w.mustMember(w.admin, w.customer, admin, marketplace.RoleAdmin)
	member = w.mustUser("member@customer.example")
	w.mustMember(w.admin, w.customer, member, marketplace.RoleMember)
	return w, admin, member, adminM
}

func TestMembersPage(t *testing.T) {
	w, admin, member, _ := orgPageWorld(t)
	e := w.env
	tests := []struct {
		name                     string
		actor                    marketplace.Actor
		code                     string
		canManage, managesOwners bool
		roles                    []string
	}{
		{"the owner", w.admin, "", true, true, []string{"member", "admin", "owner"}},
		{"an admin", admin, "", true, false, []string{"member", "admin"}},
		{"a member", member, "", false, false, []string{"member", "admin"}},
		{"someone else", w.dev, "not_found", false, false, nil},
		{"nobody signed in", marketplace.Anonymous, "not_authenticated", false, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pg, err := e.Orgs.MembersPage(e.ctx, tt.actor, w.customer, page.Request{Limit: 10})
			wantCode(t, err, tt.code)
			if tt.code != "" {
				return
			}
			if pg.CanManage != tt.canManage || pg.ManagesOwners != tt.managesOwners {
				t.Errorf("can manage = %v, manages owners = %v; want %v, %v", pg.CanManage, pg.ManagesOwners, tt.canManage, tt.managesOwners)
			}
			if diff := cmp.Diff(tt.roles, pg.Roles); diff != "" {
				t.Errorf("roles (-want +got):\n%s", diff)
			}
			var emails []string
			for _, m := range pg.Members.Items {
				emails = append(emails, m.User.Email+" "+m.Role)
			}
			want := []string{"admin@customer.example owner", "second@customer.example admin", "member@customer.example member"}
			if diff := cmp.Diff(want, emails); diff != "" {
				t.Errorf("members (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMemberPage(t *testing.T) {
	w, _, member, adminM := orgPageWorld(t)
	e := w.env
	partnerOwner, err := e.Orgs.ListMembers(e.ctx, w.dev, w.partner, page.Request{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		actor  marketplace.Actor
		member string
		code   string
	}{
		{"the owner", w.admin, idStr(adminM.ID), ""},
		{"a member", member, idStr(adminM.ID), ""},
		{"another organization's member", w.admin, idStr(partnerOwner.Items[0].ID), "not_found"},
		{"not an id", w.admin, "x", "not_found"},
		{"someone else", w.dev, idStr(adminM.ID), "not_found"},
		{"nobody signed in", marketplace.Anonymous, idStr(adminM.ID), "not_authenticated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pg, err := e.Orgs.MemberPage(e.ctx, tt.actor, w.customer, tt.member)
			wantCode(t, err, tt.code)
			if tt.code != "" {
				return
			}
			if pg.Org.Org.Slug != w.customer || pg.Member.ID != adminM.ID || pg.Member.User == nil || pg.Member.User.Email != "second@customer.example" {
				t.Errorf("page = %s, member %+v", pg.Org.Org.Slug, pg.Member)
			}
		})
	}
}

func TestAuditPage(t *testing.T) {
	w, admin, member, _ := orgPageWorld(t)
	e := w.env
	tests := []struct {
		name    string
		actor   marketplace.Actor
		action  string
		code    string
		actions []string
	}{
		{"the owner", w.admin, "", "", []string{"member.add", "member.add", "organization.create"}},
		{"an admin, filtering", admin, "member.add", "", []string{"member.add", "member.add"}},
		{"a member", member, "", "insufficient_role", nil},
		{"someone else", w.dev, "", "not_found", nil},
		{"nobody signed in", marketplace.Anonymous, "", "not_authenticated", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pg, err := e.Orgs.AuditPage(e.ctx, tt.actor, w.customer, marketplace.AuditQuery{Action: tt.action}, page.Request{Limit: 10})
			wantCode(t, err, tt.code)
			if tt.code != "" {
				return
			}
			var got []string
			for _, en := range pg.Entries.Items {
				got = append(got, en.Action)
			}
			if diff := cmp.Diff(tt.actions, got); diff != "" {
				t.Errorf("entries, newest first (-want +got):\n%s", diff)
			}
			if pg.Org.Org.Slug != w.customer {
				t.Errorf("org = %s", pg.Org.Org.Slug)
			}
		})
	}
}
