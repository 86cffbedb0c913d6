package web

import (
	"context"
	"net/http"
	"net/url"

	"github.com/labstack/echo/v4"

	"github.com/plugboard/plugboard/app/fault"
	"github.com/plugboard/plugboard/app/page"
	"github.com/plugboard/plugboard/marketplace"
	"github.com/plugboard/plugboard/webhooks"
)

// orgInstallationsData is the installed-apps page.
type orgInstallationsData struct {
	Org       *marketplace.OrgAccess
	Admin     bool
	Page      page.Page[marketplace.Installation]
	Summaries map[int64]marketplace.InstallationSummary
	Query     url.Values
}

func (s *Server) orgInstallationsPage(c echo.Context) error {
	r, err := s.pageRequest(c)
	if err != nil {
		return err
	}
	pg, err := s.opts.Installs.InstalledAppsPage(c.Request().Context(), actor(c), c.Param("org"), r)
	if err != nil {
		return err
	}
	org := pg.Org
	s.rememberOrg(c, org.Org.Slug)
	v := s.newView(c, "Installed apps · "+org.Org.Name)
	v.Section = "installed"
	v.Data = orgInstallationsData{Org: org, Admin: org.IsAdmin(), Page: pg.Installations, Summaries: pg.Summaries, Query: c.QueryParams()}
	return s.render(c, http.StatusOK, "org_installations", v)
}

// orgInstallationData is one installation's page.
type orgInstallationData struct {
	Org     *marketplace.OrgAccess
	Admin   bool
	Inst    *marketplace.Installation
	Summary marketplace.InstallationSummary
	Scopes  []marketplace.Scope
	Plans   []marketplace.Plan
	// ConfigVars are the names of the installation's config vars; Revealed
	// the one value an admin asked to see, by name.
	ConfigVars []string
	Revealed   map[string]string
	// What the installation's pending permission request asks, described.
	PendingScopes []marketplace.Scope
	PendingEvents []webhooks.EventType
	// Suspension is the installation's, nil when it is not suspended
	// (ui_suspensions.go).
	Suspension *marketplace.Suspension
	// Quotes are what each plan costs for the rest of the month, by plan
	// id (admins only; ui_billing.go words them).
	Quotes map[int64]marketplace.PlanQuote
}

// orgInstallation is the page of the installation in the path, of the
// organization in the path.
func (s *Server) orgInstallation(c echo.Context) (*marketplace.InstallationPage, error) {
	return s.opts.Installs.InstallationPage(c.Request().Context(), actor(c), c.Param("org"), c.Param("uuid"))
}

// orgInstallationAction runs one admin action from the installation's
// page: a refusal re-renders the page, as it now stands, with the error
// beside the form; success redirects back with said's flash.
func (s *Server) orgInstallationAction(c echo.Context, act func(ctx context.Context, uuid string) error, said func(appName string) string) error {
	pg, err := s.orgInstallation(c)
	if err != nil {
		return err
	}
	err = act(c.Request().Context(), pg.Installation.UUID)
	if formFault(err) {
		if now, err2 := s.orgInstallation(c); err2 == nil {
			v := s.orgInstallationView(c, now)
			v.fail(err, c)
			return s.render(c, uiStatus(err), "org_installation", v)
		}
	}
	if err != nil {
		return err
	}
	return s.redirect(c, "/orgs/"+pg.Org.Org.Slug+"/installations/"+pg.Installation.UUID, said(pg.Installation.App.Name))
}

func (s *Server) orgInstallationView(c echo.Context, pg *marketplace.InstallationPage) *view {
	org, inst := pg.Org, pg.Installation
	s.rememberOrg(c, org.Org.Slug)
	v := s.newView(c, inst.App.Name+" · "+org.Org.Name)
	v.Section = "installed"
	v.Data = orgInstallationData{Org: org, Admin: org.IsAdmin(), Inst: inst, Summary: pg.Summary, Scopes: pg.Scopes, Plans: pg.Plans,
		ConfigVars: pg.ConfigVarNames, PendingScopes: pg.PendingScopes, PendingEvents: pg.PendingEvents, Suspension: pg.Suspension, Quotes: pg.Quotes}
	return v
}

// orgRevealConfigVar shows an admin one config var's value on the
// installation's page; the reveal is audited. The value is in this answer
// only (no-store), never in a URL.
func (s *Server) orgRevealConfigVar(c echo.Context) error {
	cv, err := s.opts.ConfigVars.Reveal(c.Request().Context(), actor(c), c.Param("org"), c.Param("uuid"), c.FormValue("name"))
	if err != nil {
		return err
	}
	pg, err := s.orgInstallation(c)
	if err != nil {
		return err
	}
	v := s.orgInstallationView(c, pg)
	d := v.Data.(orgInstallationData)
	d.Revealed = map[string]string{cv.Name: cv.Value}
	v.Data = d
	c.Response().Header().Set("Cache-Control", "no-store")
	return s.render(c, http.StatusOK, "org_installation", v)
}

func (s *Server) orgInstallationPage(c echo.Context) error {
	pg, err := s.orgInstallation(c)
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, "org_installation", s.orgInstallationView(c, pg))
}

// orgChangePlan moves the installation to another of the app's plans.
func (s *Server) orgChangePlan(c echo.Context) error {
	pg, err := s.orgInstallation(c)
	if err != nil {
		return err
	}
	org, inst := pg.Org, pg.Installation
	plan := c.FormValue("plan")
	_, err = s.opts.Installs.UpdateInstallation(c.Request().Context(), actor(c), inst.UUID, marketplace.InstallationUpdate{Plan: &plan})
	if formFault(err) {
		// Nothing changed: the page read before is the page to show.
		v := s.orgInstallationView(c, pg)
		v.fail(err, c)
		if fe, ok := fault.As(err); ok && fe.Kind != fault.KindInvalid && len(v.Errors) == 0 {
			// A refusal (role, state) belongs beside the plan choice too.
			v.Errors = map[string]string{"plan": fe.Message}
		}
		return s.render(c, uiStatus(err), "org_installation", v)
	}
	if err != nil {
		return err
	}
	return s.redirect(c, "/orgs/"+org.Org.Slug+"/installations/"+inst.UUID, "Plan changed. "+inst.App.Name+" has been told."+quoteNote(pg, plan))
}

func (s *Server) orgUninstallConfirm(c echo.Context) error {
	pg, err := s.orgInstallation(c)
	if err != nil {
		return err
	}
	org, inst := pg.Org, pg.Installation
	base := "/orgs/" + org.Org.Slug + "/installations/" + inst.UUID
	return s.confirm(c, "Uninstall "+inst.App.Name, confirmation{
		Heading: "Uninstall " + inst.App.Name + " from " + org.Org.Name + "?",
		Message: "The partner will be told and its tokens revoked at once: " + inst.App.Name +
			" stops receiving webhooks and can no longer call the API for " + org.Org.Name + ". You can install it again later from the marketplace.",
		Action: base + "/uninstall", Button: "Uninstall", Cancel: base, Danger: true,
	})
}

func (s *Server) orgUninstall(c echo.Context) error {
	pg, err := s.orgInstallation(c)
	if err != nil {
		return err
	}
	org, inst := pg.Org, pg.Installation
	if err := s.opts.Installs.Uninstall(c.Request().Context(), actor(c), inst.UUID); err != nil {
		return err
	}
	return s.redirect(c, "/orgs/"+org.Org.Slug+"/installations", inst.App.Name+" was uninstalled; its tokens are revoked.")
}

// orgMembersData is the members page.
type orgMembersData struct {
	Org   *marketplace.OrgAccess
	Admin bool
	Owner bool
	Me    int64
	Page  page.Page[marketplace.Member]
	Roles []string
	Query url.Values
}

func (s *Server) orgMembersView(c echo.Context) (*view, error) {
	r, err := s.pageRequest(c)
	if err != nil {
		return nil, err
	}
	a := actor(c)
	pg, err := s.opts.Orgs.MembersPage(c.Request().Context(), a, c.Param("org"), r)
	if err != nil {
		return nil, err
	}
	org := pg.Org
	s.rememberOrg(c, org.Org.Slug)
	v := s.newView(c, "Members · "+org.Org.Name)
	v.Section = "members"
	v.Data = orgMembersData{Org: org, Admin: pg.CanManage, Owner: pg.ManagesOwners, Me: a.User.ID,
		Page: pg.Members, Roles: pg.Roles, Query: c.QueryParams()}
	return v, nil
}

func (s *Server) orgMembersPage(c echo.Context) error {
	v, err := s.orgMembersView(c)
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, "org_members", v)
}

// orgMembersFailed re-renders the members page with err; only the add form
// keeps its values and field errors.
func (s *Server) orgMembersFailed(c echo.Context, err error, addForm bool) error {
	v, verr := s.orgMembersView(c)
	if verr != nil {
		return verr
	}
	if addForm {
		v.fail(err, c)
	} else {
		v.failAbove(err, c)
	}
	return s.render(c, uiStatus(err), "org_members", v)
}

func (s *Server) orgAddMember(c echo.Context) error {
	email := c.FormValue("email")
	m, err := s.opts.Orgs.AddMember(c.Request().Context(), actor(c), c.Param("org"), email, c.FormValue("role"))
	if formFault(err) {
		return s.orgMembersFailed(c, err, true)
	}
	if err != nil {
		return err
	}
	return s.redirect(c, "/orgs/"+c.Param("org")+"/members", memberName(m)+" was added as "+m.Role+".")
}

func (s *Server) orgChangeRole(c echo.Context) error {
	m, err := s.opts.Orgs.UpdateMember(c.Request().Context(), actor(c), c.Param("org"), c.Param("id"), c.FormValue("role"))
	if formFault(err) {
		return s.orgMembersFailed(c, err, false)
	}
	if err != nil {
		return err
	}
	return s.redirect(c, "/orgs/"+c.Param("org")+"/members", memberName(m)+" is now "+m.Role+".")
}

// orgMember finds one member of the organization in the path.
func (s *Server) orgMember(c echo.Context) (*marketplace.OrgAccess, *marketplace.Member, error) {
	pg, err := s.opts.Orgs.MemberPage(c.Request().Context(), actor(c), c.Param("org"), c.Param("id"))
	if err != nil {
		return nil, nil, err
	}
	return pg.Org, pg.Member, nil
}

func memberName(m *marketplace.Member) string {
	if m.User == nil {
		return "The member"
	}
	if m.User.Name != "" {
		return m.User.Name + " (" + m.User.Email + ")"
	}
	return m.User.Email
}

func (s *Server) orgRemoveMemberConfirm(c echo.Context) error {
	org, m, err := s.orgMember(c)
	if err != nil {
		return err
	}
	base := "/orgs/" + org.Org.Slug + "/members"
	cf := confirmation{
		Heading: "Remove " + memberName(m) + " from " + org.Org.Name + "?",
		Message: "They lose access to " + org.Org.Name + "'s installed apps, apps and settings at once. You can add them again later.",
		Action:  base + "/" + c.Param("id") + "/remove", Button: "Remove member", Cancel: base, Danger: true,
	}
	if m.UserID == actor(c).User.ID {
		cf.Heading = "Leave " + org.Org.Name + "?"
		cf.Message = "You lose access to " + org.Org.Name + " at once; an admin must add you again to come back."
		cf.Button = "Leave organization"
	}
	return s.confirm(c, "Remove member", cf)
}

func (s *Server) orgRemoveMember(c echo.Context) error {
	org, m, err := s.orgMember(c)
	if err != nil {
		return err
	}
	err = s.opts.Orgs.RemoveMember(c.Request().Context(), actor(c), org.Org.Slug, c.Param("id"))
	if formFault(err) {
		return s.orgMembersFailed(c, err, false)
	}
	if err != nil {
		return err
	}
	if m.UserID == actor(c).User.ID {
		return s.redirect(c, "/", "You left "+org.Org.Name+".")
	}
	return s.redirect(c, "/orgs/"+org.Org.Slug+"/members", memberName(m)+" was removed.")
}

// orgAuditData is the audit log page.
type orgAuditData struct {
	Org     *marketplace.OrgAccess
	Page    page.Page[marketplace.AuditEntry]
	Action  string
	Actions []string
	Query   url.Values
}

// auditActions are the actions the audit log filter offers.
var auditActions = []string{
	"organization.create", "organization.update",
	"member.add", "member.update", "member.remove",
	"app.create", "app.update", "app.submit", "app.publish", "app.reject", "app.delete", "app.rotate_secret", "app.rotate_webhook_secret",
	"app.redeliver", "app.webhook_disabled",
	"plan.create", "plan.update", "plan.delete",
	"installation.create", "installation.grant", "installation.token_exchange", "installation.verify", "installation.update", "installation.change_plan",
	"installation.reauthorize", "installation.resend_lifecycle", "installation.sso",
	"installation.delete", "installation.fail", "installation.out_of_sync", "installation.in_sync",
}

func (s *Server) orgAuditPage(c echo.Context) error {
	r, err := s.pageRequest(c)
	if err != nil {
		return err
	}
	action := c.QueryParam("action")
	pg, err := s.opts.Orgs.AuditPage(c.Request().Context(), actor(c), c.Param("org"), marketplace.AuditQuery{Action: action}, r)
	if err != nil {
		return err
	}
	org := pg.Org
	s.rememberOrg(c, org.Org.Slug)
	v := s.newView(c, "Audit log · "+org.Org.Name)
	v.Section = "audit"
	v.Data = orgAuditData{Org: org, Page: pg.Entries, Action: action, Actions: auditActions, Query: c.QueryParams()}
	return s.render(c, http.StatusOK, "org_audit", v)
}
