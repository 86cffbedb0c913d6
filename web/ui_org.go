package web

import (
	"errors"
	"net/http"
	"net/url"

	"github.com/labstack/echo/v4"

	"github.com/plugboard/plugboard/app/fault"
	"github.com/plugboard/plugboard/app/page"
	"github.com/plugboard/plugboard/marketplace"
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
	ctx, a := c.Request().Context(), actor(c)
	org, err := s.opts.Orgs.GetOrganization(ctx, a, c.Param("org"))
	if err != nil {
		return err
	}
	r, err := pageRequest(c)
	if err != nil {
		return err
	}
	p, err := s.opts.Installs.ListLiveOrgInstallations(ctx, a, org.Org.Slug, r)
	if err != nil {
		return err
	}
	sums, err := s.opts.Installs.InstallationSummaries(ctx, a, org.Org.Slug, p.Items)
	if err != nil {
		return err
	}
	s.rememberOrg(c, org.Org.Slug)
	v := s.newView(c, "Installed apps · "+org.Org.Name)
	v.Section = "installed"
	v.Data = orgInstallationsData{Org: org, Admin: org.IsAdmin(), Page: p, Summaries: sums, Query: c.QueryParams()}
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
}

// orgInstallation loads an installation of the organization in the path;
// others' installations are not found.
func (s *Server) orgInstallation(c echo.Context) (*marketplace.OrgAccess, *marketplace.Installation, error) {
	ctx, a := c.Request().Context(), actor(c)
	org, err := s.opts.Orgs.GetOrganization(ctx, a, c.Param("org"))
	if err != nil {
		return nil, nil, err
	}
	inst, err := s.opts.Installs.GetInstallation(ctx, a, c.Param("uuid"))
	if err != nil {
		return nil, nil, err
	}
	if inst.OrganizationID != org.Org.ID || !inst.Live() {
		return nil, nil, fault.NotFound("installation")
	}
	return org, inst, nil
}

func (s *Server) orgInstallationView(c echo.Context, org *marketplace.OrgAccess, inst *marketplace.Installation) (*view, error) {
	ctx, a := c.Request().Context(), actor(c)
	sums, err := s.opts.Installs.InstallationSummaries(ctx, a, org.Org.Slug, []marketplace.Installation{*inst})
	if err != nil {
		return nil, err
	}
	scopes, err := s.describeScopes(ctx, inst.Scopes)
	if err != nil {
		return nil, err
	}
	plans, err := s.opts.Apps.ListPlans(ctx, a, inst.App.Slug)
	if errors.Is(err, fault.ErrNotFound) {
		// The app was pulled from the marketplace: its installations stay
		// (and can be uninstalled) but no plan can be chosen.
		plans, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	s.rememberOrg(c, org.Org.Slug)
	v := s.newView(c, inst.App.Name+" · "+org.Org.Name)
	v.Section = "installed"
	v.Data = orgInstallationData{Org: org, Admin: org.IsAdmin(), Inst: inst, Summary: sums[inst.ID], Scopes: scopes, Plans: plans}
	return v, nil
}

func (s *Server) orgInstallationPage(c echo.Context) error {
	org, inst, err := s.orgInstallation(c)
	if err != nil {
		return err
	}
	v, err := s.orgInstallationView(c, org, inst)
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, "org_installation", v)
}

// orgChangePlan moves the installation to another of the app's plans.
func (s *Server) orgChangePlan(c echo.Context) error {
	org, inst, err := s.orgInstallation(c)
	if err != nil {
		return err
	}
	plan := c.FormValue("plan")
	_, err = s.opts.Installs.UpdateInstallation(c.Request().Context(), actor(c), inst.UUID, marketplace.InstallationUpdate{Plan: &plan})
	if formFault(err) {
		v, verr := s.orgInstallationView(c, org, inst)
		if verr != nil {
			return verr
		}
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
	return s.redirect(c, "/orgs/"+org.Org.Slug+"/installations/"+inst.UUID, "Plan changed. "+inst.App.Name+" has been told.")
}

func (s *Server) orgUninstallConfirm(c echo.Context) error {
	org, inst, err := s.orgInstallation(c)
	if err != nil {
		return err
	}
	base := "/orgs/" + org.Org.Slug + "/installations/" + inst.UUID
	return s.confirm(c, "Uninstall "+inst.App.Name, confirmation{
		Heading: "Uninstall " + inst.App.Name + " from " + org.Org.Name + "?",
		Message: "The partner will be told and its tokens revoked at once: " + inst.App.Name +
			" stops receiving webhooks and can no longer call the API for " + org.Org.Name + ". You can install it again later from the marketplace.",
		Action: base + "/uninstall", Button: "Uninstall", Cancel: base, Danger: true,
	})
}

func (s *Server) orgUninstall(c echo.Context) error {
	org, inst, err := s.orgInstallation(c)
	if err != nil {
		return err
	}
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
	ctx, a := c.Request().Context(), actor(c)
	org, err := s.opts.Orgs.GetOrganization(ctx, a, c.Param("org"))
	if err != nil {
		return nil, err
	}
	r, err := pageRequest(c)
	if err != nil {
		return nil, err
	}
	p, err := s.opts.Orgs.ListMembers(ctx, a, org.Org.Slug, r)
	if err != nil {
		return nil, err
	}
	s.rememberOrg(c, org.Org.Slug)
	v := s.newView(c, "Members · "+org.Org.Name)
	v.Section = "members"
	roles := []string{marketplace.RoleMember, marketplace.RoleAdmin}
	if org.Role == marketplace.RoleOwner {
		roles = append(roles, marketplace.RoleOwner)
	}
	v.Data = orgMembersData{Org: org, Admin: org.IsAdmin(), Owner: org.Role == marketplace.RoleOwner, Me: a.User.ID,
		Page: p, Roles: roles, Query: c.QueryParams()}
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
	ctx, a := c.Request().Context(), actor(c)
	org, err := s.opts.Orgs.GetOrganization(ctx, a, c.Param("org"))
	if err != nil {
		return nil, nil, err
	}
	// Members are few; one full page finds anyone.
	r := page.Request{Limit: page.MaxLimit}
	for {
		p, err := s.opts.Orgs.ListMembers(ctx, a, org.Org.Slug, r)
		if err != nil {
			return nil, nil, err
		}
		for i := range p.Items {
			if id(p.Items[i].ID) == c.Param("id") {
				return org, &p.Items[i], nil
			}
		}
		if !p.HasNext {
			return nil, nil, fault.NotFound("member")
		}
		r.Cursor = p.Next
	}
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
	"installation.reauthorize", "installation.resend_lifecycle",
	"installation.delete", "installation.fail", "installation.out_of_sync", "installation.in_sync",
}

func (s *Server) orgAuditPage(c echo.Context) error {
	ctx, a := c.Request().Context(), actor(c)
	org, err := s.opts.Orgs.GetOrganization(ctx, a, c.Param("org"))
	if err != nil {
		return err
	}
	r, err := pageRequest(c)
	if err != nil {
		return err
	}
	action := c.QueryParam("action")
	p, err := s.opts.Orgs.AuditLog(ctx, a, org.Org.Slug, marketplace.AuditQuery{Action: action}, r)
	if err != nil {
		return err
	}
	s.rememberOrg(c, org.Org.Slug)
	v := s.newView(c, "Audit log · "+org.Org.Name)
	v.Section = "audit"
	v.Data = orgAuditData{Org: org, Page: p, Action: action, Actions: auditActions, Query: c.QueryParams()}
	return s.render(c, http.StatusOK, "org_audit", v)
}
