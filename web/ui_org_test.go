package web_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/plugboard/plugboard/sdk/plugboard"
)

// TestOrgPages drives the installed apps, members and audit log pages of a
// customer organization that installed the partner's app.
func TestOrgPages(t *testing.T) {
	w := newWorld(t, false)
	p := w.p
	inst, _ := w.install(t, "free")
	uuid := inst.UUID
	signUp(t, p, "member@customer.example")
	w.admin.do("POST", "/api/0/organizations/customer/members/", map[string]string{"email": "member@customer.example"}).ok(t, 201, nil)
	signUp(t, p, "new@customer.example")
	signUp(t, p, "stranger@example.com")

	admin := uiSignIn(t, p, "admin@customer.example")
	member := uiSignIn(t, p, "member@customer.example")
	stranger := uiSignIn(t, p, "stranger@example.com")
	instPath := "/orgs/customer/installations/" + uuid

	t.Run("pages render for members and are hidden from others", func(t *testing.T) {
		admin, member, stranger := admin.as(t), member.as(t), stranger.as(t)
		for _, path := range []string{"/orgs/customer/installations", instPath, "/orgs/customer/members", "/orgs/customer/audit-log",
			instPath + "/uninstall", "/orgs/customer/members/1/remove"} {
			stranger.get(path).ok(404)
			newBrowser(t, p).get(path).ok(200, "Sign in").at("/login")
		}
		admin.get("/orgs/customer/installations").ok(200, "Installed apps", "Flow App", `href="/marketplace/flow-app"`, "Manage", "Free",
			`href="`+instPath+`"`, `aria-current="page">Installed apps`)
		member.get("/orgs/customer/installations").ok(200, "Flow App", "Details", "admins install")
		admin.get(instPath).ok(200, "Read the organization&#39;s name and settings", "See who belongs to the organization",
			"Change plan", "Uninstall Flow App", `name="plan" value="pro"`)
		pg := member.get(instPath).ok(200, "Flow App", "Only admins")
		if strings.Contains(pg.Body, `name="plan"`) || strings.Contains(pg.Body, "/uninstall") {
			t.Error("a member is offered the plan change or uninstall")
		}
		admin.get("/orgs/customer/members").ok(200, "Members", "admin@customer.example", "member@customer.example", "Add member", `aria-current="page">Members`)
		pg = member.get("/orgs/customer/members").ok(200, "admin@customer.example")
		if strings.Contains(pg.Body, "Add member") {
			t.Error("a member is offered the add form")
		}
		admin.get("/orgs/customer/audit-log").ok(200, "Audit log", "installation.create", "member.add", "admin@customer.example")
		member.get("/orgs/customer/audit-log").ok(403)
		// An installation is only shown under its own organization.
		w.dev.do("POST", "/api/0/organizations/", map[string]string{"name": "Elsewhere"}).ok(t, 201, nil)
		dev := uiSignIn(t, p, "dev@partner.example")
		dev.get("/orgs/elsewhere/installations/" + uuid).ok(404)
	})

	t.Run("an organization without apps points to the marketplace", func(t *testing.T) {
		stranger := stranger.as(t)
		slug := stranger.uiOrg("Lonely")
		stranger.get("/orgs/"+slug+"/installations").ok(200, "No apps installed yet", "Browse the marketplace")
		stranger.get("/orgs/"+slug+"/audit-log?action=member.add").ok(200, "No matching entries")
	})

	t.Run("audit log filters by action", func(t *testing.T) {
		admin := admin.as(t)
		pg := admin.get("/orgs/customer/audit-log?action=member.add").ok(200, "member.add", `<option value="member.add" selected>`)
		if strings.Contains(pg.Body, "<code>installation.create</code>") {
			t.Error("the filter kept other actions")
		}
	})

	t.Run("change plan", func(t *testing.T) {
		admin, member := admin.as(t), member.as(t)
		admin.get(instPath).ok(200)
		admin.post(instPath+"/plan", url.Values{"plan": {"gold"}}).ok(400).fieldError("plan")
		member.get(instPath).ok(200)
		member.post(instPath+"/plan", url.Values{"plan": {"pro"}}).ok(403)
		admin.post(instPath+"/plan", url.Values{"plan": {"pro"}, "csrf": {"forged"}}).ok(403)
		if got := getInstallation(t, w.admin, uuid); got.Plan == nil || got.Plan.Slug != "free" {
			t.Fatalf("a refused change moved the plan: %+v", got.Plan)
		}
		admin.get(instPath).ok(200)
		admin.post(instPath+"/plan", url.Values{"plan": {"pro"}}).ok(200, "Plan changed").at(instPath)
		if got := getInstallation(t, w.admin, uuid); got.Plan == nil || got.Plan.Slug != "pro" {
			t.Errorf("plan %+v, want pro", got.Plan)
		}
	})

	t.Run("add, promote and remove a member", func(t *testing.T) {
		admin, member := admin.as(t), member.as(t)
		before := count(t, p, "memberships")
		admin.get("/orgs/customer/members").ok(200)
		pg := admin.post("/orgs/customer/members", url.Values{"email": {"nobody@example.com"}, "role": {"member"}}).ok(400)
		if !strings.Contains(pg.fieldError("email"), "sign up") || !strings.Contains(pg.Body, `value="nobody@example.com"`) {
			t.Errorf("unknown email: %v", pg.fieldErrors())
		}
		admin.post("/orgs/customer/members", url.Values{"email": {"new@customer.example"}, "role": {"emperor"}}).ok(400).fieldError("role")
		admin.post("/orgs/customer/members", url.Values{"email": {"new@customer.example"}, "csrf": {""}}).ok(403)
		member.get("/orgs/customer/members").ok(200)
		member.post("/orgs/customer/members", url.Values{"email": {"new@customer.example"}}).ok(403)
		if count(t, p, "memberships") != before {
			t.Fatal("refused adds wrote a membership")
		}
		admin.get("/orgs/customer/members").ok(200)
		admin.post("/orgs/customer/members", url.Values{"email": {"new@customer.example"}, "role": {"admin"}}).ok(200, "was added as admin", "new@customer.example").at("/orgs/customer/members")
		if count(t, p, "memberships") != before+1 {
			t.Fatal("the member was not added")
		}

		members := func() []plugboard.Member {
			return decode[[]plugboard.Member](t, w.admin.do("GET", "/api/0/organizations/customer/members/", nil), 200)
		}
		ids := map[string]string{}
		for _, m := range members() {
			ids[m.User.Email] = m.ID
		}
		// The last owner stays owner: a form-level message.
		admin.post("/orgs/customer/members/"+ids["admin@customer.example"]+"/role", url.Values{"role": {"member"}}).ok(409, "last owner")
		// A bad role is named in the message, since the menu has no field error.
		admin.post("/orgs/customer/members/"+ids["member@customer.example"]+"/role", url.Values{"role": {"emperor"}}).ok(400, "role: ")
		admin.post("/orgs/customer/members/"+ids["member@customer.example"]+"/role", url.Values{"role": {"admin"}}).ok(200, "is now admin")
		for _, m := range members() {
			if m.User.Email == "member@customer.example" && m.Role != "admin" {
				t.Errorf("role %q, want admin", m.Role)
			}
		}

		admin.get("/orgs/customer/members/"+ids["new@customer.example"]+"/remove").ok(200, "Remove new", "They lose access")
		admin.post("/orgs/customer/members/"+ids["new@customer.example"]+"/remove", url.Values{"csrf": {"forged"}}).ok(403)
		admin.get("/orgs/customer/members/" + ids["new@customer.example"] + "/remove").ok(200)
		admin.post("/orgs/customer/members/"+ids["new@customer.example"]+"/remove", nil).ok(200, "was removed").at("/orgs/customer/members")
		if count(t, p, "memberships") != before {
			t.Error("the member was not removed")
		}
		admin.get("/orgs/customer/members/"+ids["admin@customer.example"]+"/remove").ok(200, "Leave Customer")
		admin.post("/orgs/customer/members/"+ids["admin@customer.example"]+"/remove", nil).ok(409, "last owner")
		admin.get("/orgs/customer/members/999999/remove").ok(404)
	})

	t.Run("an app pulled from the marketplace keeps its installation page", func(t *testing.T) {
		admin := admin.as(t)
		signIn(t, p, "ops@plugboard.example").do("PUT", "/api/0/apps/flow-app/", map[string]any{"status": "rejected", "statusReason": "Pulled"}).ok(t, 200, nil)
		admin.get(instPath).ok(200, "Flow App", "Uninstall Flow App")
		admin.get("/orgs/customer/installations").ok(200, "Flow App")
	})

	t.Run("uninstall after confirming", func(t *testing.T) {
		admin, member := admin.as(t), member.as(t)
		member.get(instPath + "/uninstall").ok(200)
		member.post(instPath+"/uninstall", url.Values{"csrf": {"forged"}}).ok(403)
		admin.get(instPath+"/uninstall").ok(200, "The partner will be told and its tokens revoked", "Uninstall")
		admin.post(instPath+"/uninstall", url.Values{"csrf": {"forged"}}).ok(403)
		if got := getInstallation(t, w.admin, uuid); got.Status == plugboard.StatusDeleted {
			t.Fatal("a forged form uninstalled")
		}
		admin.get(instPath + "/uninstall").ok(200)
		admin.post(instPath+"/uninstall", nil).ok(200, "Flow App was uninstalled", "No apps installed yet").at("/orgs/customer/installations")
		if got := getInstallation(t, w.admin, uuid); got.Status != plugboard.StatusDeleted {
			t.Errorf("status %q, want deleted", got.Status)
		}
		admin.get(instPath).ok(404)
	})
}
