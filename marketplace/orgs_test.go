package marketplace_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/plugboard/plugboard/app/page"
	"github.com/plugboard/plugboard/marketplace"
)

func TestCreateOrganization(t *testing.T) {
	e := newTestServices(t)
	ada := e.mustUser("ada@example.com")
	bob := e.mustUser("bob@example.com")
	// In order: later cases clash with earlier ones.
	tests := []struct {
		name     string
		actor    marketplace.Actor
		in       marketplace.NewOrganization
		wantSlug string
		code     string
		fields   []string
	}{
		{"slug derived from name", ada, marketplace.NewOrganization{Name: "  Acme Corp! "}, "acme-corp", "", nil},
		{"derived slug starting with a digit", ada, marketplace.NewOrganization{Name: "42 Labs"}, "x-42-labs", "", nil},
		{"explicit slug", bob, marketplace.NewOrganization{Name: "Acme Corp", Slug: "acme-two"}, "acme-two", "", nil},
		{"derived slug taken", bob, marketplace.NewOrganization{Name: "ACME corp"}, "", "slug_taken", []string{"slug"}},
		{"explicit slug taken", bob, marketplace.NewOrganization{Name: "Other", Slug: "acme-corp"}, "", "slug_taken", []string{"slug"}},
		{"bad explicit slug", ada, marketplace.NewOrganization{Name: "Fine", Slug: "Not A Slug"}, "", "invalid_input", []string{"slug"}},
		{"name without letters gets a hashed slug", ada, marketplace.NewOrganization{Name: "!!"}, "x-233d26e9", "", nil},
		{"no name", ada, marketplace.NewOrganization{Name: "  "}, "", "invalid_input", []string{"name"}},
		{"name too long", ada, marketplace.NewOrganization{Name: strings.Repeat("a", 101)}, "", "invalid_input", []string{"name"}},
		{"anonymous", marketplace.Anonymous, marketplace.NewOrganization{Name: "Ghost"}, "", "not_authenticated", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := e.with(t)
			acc, err := e.Orgs.CreateOrganization(e.ctx, tt.actor, tt.in)
			wantCode(t, err, tt.code)
			if tt.fields != nil {
				wantFields(t, err, tt.fields...)
			}
			if err != nil {
				return
			}
			if acc.Org.Slug != tt.wantSlug || acc.Role != marketplace.RoleOwner || acc.Org.Name != strings.TrimSpace(tt.in.Name) {
				t.Errorf("created %+v as %s, want slug %s, owner", acc.Org, acc.Role, tt.wantSlug)
			}
			if n := e.count("memberships", "organization_id = ? AND user_id = ? AND role = 'owner'", acc.Org.ID, tt.actor.User.ID); n != 1 {
				t.Errorf("owner memberships = %d, want 1", n)
			}
		})
	}
	list, err := e.Orgs.ListOrganizations(e.ctx, ada, page.Request{})
	wantCode(t, err, "")
	var slugs []string
	for _, o := range list.Items {
		slugs = append(slugs, o.Org.Slug+":"+o.Role)
	}
	if diff := cmp.Diff([]string{"acme-corp:owner", "x-233d26e9:owner", "x-42-labs:owner"}, slugs); diff != "" {
		t.Errorf("ada's organizations (-want +got):\n%s", diff)
	}
}

func TestOrgRoles(t *testing.T) {
	e := newTestServices(t)
	owner := e.mustUser("owner@acme.example")
	admin := e.mustUser("admin@acme.example")
	member := e.mustUser("member@acme.example")
	stranger := e.mustUser("stranger@other.example")
	e.mustUser("new@acme.example")
	e.mustUser("new2@acme.example")
	e.mustOrg(owner, "Acme")
	e.mustMember(owner, "acme", admin, marketplace.RoleAdmin)
	mm := e.mustMember(owner, "acme", member, marketplace.RoleMember)
	var ownerMembership marketplace.Membership
	e.db.Where("user_id = ?", owner.User.ID).Take(&ownerMembership)

	tests := []struct {
		name   string
		do     func() error
		code   string
		fields []string
	}{
		{"member cannot add members", func() error {
			_, err := e.Orgs.AddMember(e.ctx, member, "acme", "new@acme.example", "member")
			return err
		}, "insufficient_role", nil},
		{"stranger does not see the organization", func() error {
			_, err := e.Orgs.AddMember(e.ctx, stranger, "acme", "new@acme.example", "member")
			return err
		}, "not_found", nil},
		{"stranger cannot read it", func() error {
			_, err := e.Orgs.GetOrganization(e.ctx, stranger, "acme")
			return err
		}, "not_found", nil},
		{"stranger cannot list members", func() error {
			_, err := e.Orgs.ListMembers(e.ctx, stranger, "acme", page.Request{})
			return err
		}, "not_found", nil},
		{"anonymous", func() error {
			_, err := e.Orgs.AddMember(e.ctx, marketplace.Anonymous, "acme", "new@acme.example", "member")
			return err
		}, "not_authenticated", nil},
		{"admin cannot add owners", func() error {
			_, err := e.Orgs.AddMember(e.ctx, admin, "acme", "new@acme.example", "owner")
			return err
		}, "insufficient_role", nil},
		{"admin cannot demote the owner", func() error {
			_, err := e.Orgs.UpdateMember(e.ctx, admin, "acme", idStr(ownerMembership.ID), "member")
			return err
		}, "insufficient_role", nil},
		{"admin cannot remove the owner", func() error {
			return e.Orgs.RemoveMember(e.ctx, admin, "acme", idStr(ownerMembership.ID))
		}, "insufficient_role", nil},
		{"member cannot remove others", func() error {
			return e.Orgs.RemoveMember(e.ctx, member, "acme", idStr(ownerMembership.ID))
		}, "insufficient_role", nil},
		{"member cannot rename", func() error {
			_, err := e.Orgs.UpdateOrganization(e.ctx, member, "acme", marketplace.OrganizationUpdate{Name: ptr("Mine")})
			return err
		}, "insufficient_role", nil},
		{"member cannot read the audit log", func() error {
			_, err := e.Orgs.AuditLog(e.ctx, member, "acme", marketplace.AuditQuery{}, page.Request{})
			return err
		}, "insufficient_role", nil},
		{"admin cannot delete the organization", func() error {
			return e.Orgs.DeleteOrganization(e.ctx, admin, "acme")
		}, "insufficient_role", nil},
		{"unknown email", func() error {
			_, err := e.Orgs.AddMember(e.ctx, admin, "acme", "nobody@acme.example", "member")
			return err
		}, "invalid_input", []string{"email"}},
		{"bad role", func() error {
			_, err := e.Orgs.AddMember(e.ctx, admin, "acme", "new@acme.example", "boss")
			return err
		}, "invalid_input", []string{"role"}},
		{"already a member", func() error {
			_, err := e.Orgs.AddMember(e.ctx, admin, "acme", "MEMBER@acme.example", "member")
			return err
		}, "already_member", []string{"email"}},
		{"admin adds a member", func() error {
			m, err := e.Orgs.AddMember(e.ctx, admin, "acme", "new@acme.example", "")
			if err == nil && m.Role != marketplace.RoleMember {
				t.Errorf("default role = %q, want member", m.Role)
			}
			return err
		}, "", nil},
		{"owner adds an owner", func() error {
			_, err := e.Orgs.AddMember(e.ctx, owner, "acme", "new2@acme.example", "owner")
			return err
		}, "", nil},
		{"member reads the organization and its members", func() error {
			if _, err := e.Orgs.GetOrganization(e.ctx, member, "acme"); err != nil {
				return err
			}
			p, err := e.Orgs.ListMembers(e.ctx, member, "acme", page.Request{})
			if err == nil && len(p.Items) != 5 {
				t.Errorf("members = %d, want 5", len(p.Items))
			}
			return err
		}, "", nil},
		{"member leaves", func() error {
			return e.Orgs.RemoveMember(e.ctx, member, "acme", idStr(mm.ID))
		}, "", nil},
		{"the member is gone", func() error {
			_, err := e.Orgs.GetOrganization(e.ctx, member, "acme")
			return err
		}, "not_found", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.do()
			wantCode(t, err, tt.code)
			if tt.fields != nil {
				wantFields(t, err, tt.fields...)
			}
		})
	}
	roles := map[string]string{}
	var ms []marketplace.Membership
	e.db.Preload("User").Find(&ms)
	for _, m := range ms {
		roles[m.User.Email] = m.Role
	}
	want := map[string]string{"owner@acme.example": "owner", "admin@acme.example": "admin", "new@acme.example": "member", "new2@acme.example": "owner"}
	if diff := cmp.Diff(want, roles); diff != "" {
		t.Errorf("memberships (-want +got):\n%s", diff)
	}
}

func TestLastOwnerCannotBeDemotedOrRemoved(t *testing.T) {
	e := newTestServices(t)
	ada := e.mustUser("ada@acme.example")
	bob := e.mustUser("bob@acme.example")
	e.mustOrg(ada, "Acme")
	var adaM marketplace.Membership
	e.db.Where("user_id = ?", ada.User.ID).Take(&adaM)

	_, err := e.Orgs.UpdateMember(e.ctx, ada, "acme", idStr(adaM.ID), marketplace.RoleAdmin)
	wantCode(t, err, "last_owner")
	wantCode(t, e.Orgs.RemoveMember(e.ctx, ada, "acme", idStr(adaM.ID)), "last_owner")

	bobM := e.mustMember(ada, "acme", bob, marketplace.RoleAdmin)
	_, err = e.Orgs.UpdateMember(e.ctx, bob, "acme", idStr(bobM.ID), marketplace.RoleOwner)
	wantCode(t, err, "insufficient_role") // an admin cannot make themself owner
	up, err := e.Orgs.UpdateMember(e.ctx, ada, "acme", idStr(bobM.ID), marketplace.RoleOwner)
	wantCode(t, err, "")
	if up.Role != marketplace.RoleOwner {
		t.Fatalf("bob is %s, want owner", up.Role)
	}

	// With two owners one may step down; then the other is the last.
	_, err = e.Orgs.UpdateMember(e.ctx, ada, "acme", idStr(adaM.ID), marketplace.RoleMember)
	wantCode(t, err, "")
	wantCode(t, e.Orgs.RemoveMember(e.ctx, bob, "acme", idStr(bobM.ID)), "last_owner")
	_, err = e.Orgs.UpdateMember(e.ctx, bob, "acme", idStr(bobM.ID), marketplace.RoleAdmin)
	wantCode(t, err, "last_owner")

	if n := e.count("memberships", "role = 'owner'"); n != 1 {
		t.Errorf("owners = %d, want 1", n)
	}
	var audit []marketplace.AuditEntry
	e.db.Where("action = 'member.update'").Order("id").Find(&audit)
	var got []map[string]any
	for _, a := range audit {
		got = append(got, map[string]any(a.Data))
	}
	want := []map[string]any{{"role": "owner", "previousRole": "admin"}, {"role": "member", "previousRole": "owner"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("member.update audit data (-want +got):\n%s", diff)
	}
}

func TestAuditLogRecordsActors(t *testing.T) {
	w := newWorld(t, appFields("Flow App"))
	e := w.env
	e.mustUser("carol@customer.example")
	cust, _ := e.Orgs.GetOrganization(e.ctx, w.admin, w.customer)
	actorIP := w.admin
	actorIP.IP = "198.51.100.7"
	if _, err := e.Orgs.AddMember(e.ctx, actorIP, w.customer, "carol@customer.example", "admin"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Orgs.UpdateOrganization(e.ctx, w.admin, w.customer, marketplace.OrganizationUpdate{Name: ptr("Customer Inc")}); err != nil {
		t.Fatal(err)
	}
	ni := e.mustInstall(w.admin, w.customer, w.app.Slug, "free")
	client := e.mustClient(w.app)
	set := e.mustExchange(client, ni.Code)
	instActor := e.mustBearer(set.AccessToken)
	if _, err := e.Installs.UpdateInstallation(e.ctx, instActor, ni.Installation.UUID, marketplace.InstallationUpdate{ExternalID: ptr("acct-1")}); err != nil {
		t.Fatal(err)
	}

	p, err := e.Orgs.AuditLog(e.ctx, w.admin, w.customer, marketplace.AuditQuery{}, page.Request{})
	wantCode(t, err, "")
	type row struct{ Action, ActorType, ActorID, ActorLabel, TargetLabel, IP string }
	var got []row
	for _, a := range p.Items {
		got = append(got, row{a.Action, a.ActorType, a.ActorID, a.ActorLabel, a.TargetLabel, a.IP})
	}
	uid := idStr(w.admin.User.ID)
	want := []row{ // newest first
		{"installation.update", "installation", ni.Installation.UUID, "flow-app", "flow-app", ""},
		{"installation.token_exchange", "app", idStr(w.app.ID), "flow-app", "flow-app", ""},
		{"installation.create", "user", uid, "admin@customer.example", "flow-app", ""},
		{"organization.update", "user", uid, "admin@customer.example", "customer", ""},
		{"member.add", "user", uid, "admin@customer.example", "carol@customer.example", "198.51.100.7"},
		{"organization.create", "user", uid, "admin@customer.example", "customer", ""},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("audit log (-want +got):\n%s", diff)
	}

	only, err := e.Orgs.AuditLog(e.ctx, w.admin, w.customer, marketplace.AuditQuery{Action: "organization.update"}, page.Request{})
	wantCode(t, err, "")
	if len(only.Items) != 1 || cmp.Diff(map[string]any{"name": "Customer Inc"}, map[string]any(only.Items[0].Data)) != "" {
		t.Errorf("filtered audit log = %+v", only.Items)
	}
	if only.Items[0].OrganizationID == nil || *only.Items[0].OrganizationID != cust.Org.ID {
		t.Errorf("entry organization = %v, want %d", only.Items[0].OrganizationID, cust.Org.ID)
	}
	// The partner's log does not show the customer's entries.
	pp, err := e.Orgs.AuditLog(e.ctx, w.dev, w.partner, marketplace.AuditQuery{Action: "member.add"}, page.Request{})
	wantCode(t, err, "")
	if len(pp.Items) != 0 {
		t.Errorf("partner's log shows %+v", pp.Items)
	}
}

func TestDeleteOrganizationUninstallsItsInstallations(t *testing.T) {
	w := newWorld(t, appFields("Flow App"))
	e := w.env
	ni := e.mustInstall(w.admin, w.customer, w.app.Slug, "pro")
	set := e.mustExchange(e.mustClient(w.app), ni.Code)
	cust, _ := e.Orgs.GetOrganization(e.ctx, w.admin, w.customer)

	// The partner cannot delete itself while its app is installed elsewhere.
	wantCode(t, e.Orgs.DeleteOrganization(e.ctx, w.dev, w.partner), "has_installations")

	wantCode(t, e.Orgs.DeleteOrganization(e.ctx, w.admin, w.customer), "")
	_, err := e.Orgs.GetOrganization(e.ctx, w.admin, w.customer)
	wantCode(t, err, "not_found")
	_, err = e.Accounts.AuthenticateBearer(e.ctx, set.AccessToken)
	wantCode(t, err, "invalid_token")

	want := []delivery{{EventType: "installation.deleted", AppID: w.app.ID, InstallationUUID: ni.Installation.UUID,
		OrganizationID: cust.Org.ID, Status: "pending"}}
	if diff := cmp.Diff(want, e.deliveries("installation.deleted")); diff != "" {
		t.Errorf("installation.deleted deliveries (-want +got):\n%s", diff)
	}
	data := e.eventData(cust.Org.ID, "installation.deleted")
	if data["reason"] != "organization_deleted" {
		t.Errorf("installation.deleted reason = %v, want organization_deleted", data["reason"])
	}
	app, err := e.Apps.GetApp(e.ctx, w.dev, w.app.Slug)
	wantCode(t, err, "")
	if app.InstallsCount != 0 {
		t.Errorf("installs count = %d, want 0", app.InstallsCount)
	}
	if n := e.count("audit_logs", "organization_id = ? AND action IN ('installation.delete', 'organization.delete')", cust.Org.ID); n != 2 {
		t.Errorf("audit entries of the deletion = %d, want 2", n)
	}
	// Now nothing is installed elsewhere: the partner may go.
	wantCode(t, e.Orgs.DeleteOrganization(e.ctx, w.dev, w.partner), "")
	if n := e.count("apps", ""); n != 0 {
		t.Errorf("apps left = %d, want 0", n)
	}
}
