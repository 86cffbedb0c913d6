package web

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/plugboard/plugboard/app/fault"
	"github.com/plugboard/plugboard/marketplace"
)

// home sends browsers to their organization (or the marketplace); API
// clients get the service's name and version.
func (s *Server) home(c echo.Context) error {
	if !wantsHTML(c) {
		return c.JSON(http.StatusOK, map[string]string{"name": "Plugboard", "version": s.opts.Version, "api": "/api/0/"})
	}
	v := s.newView(c, "Home")
	switch {
	case !v.Actor.SignedIn():
		return c.Redirect(http.StatusSeeOther, "/marketplace")
	case v.Org != nil:
		return c.Redirect(http.StatusSeeOther, "/orgs/"+v.Org.Org.Slug+"/installations")
	}
	return c.Redirect(http.StatusSeeOther, "/orgs/new")
}

func (s *Server) signUpForm(c echo.Context) error {
	v := s.newView(c, "Create your account")
	v.Data = safeNext(c.QueryParam("next"))
	return s.render(c, http.StatusOK, "signup", v)
}

// signUpPage creates the account and signs the browser in.
func (s *Server) signUpPage(c echo.Context) error {
	ctx := c.Request().Context()
	next := safeNext(c.FormValue("next"))
	err := s.attempt(c, s.signUpBudgets(c)...)
	if err == nil {
		_, err = s.opts.Accounts.SignUp(ctx, actor(c), marketplace.NewUser{
			Email: c.FormValue("email"), Name: c.FormValue("name"), Password: c.FormValue("password")})
	}
	if err == nil {
		var res *marketplace.SignIn
		res, err = s.opts.Accounts.SignIn(ctx, actor(c), c.FormValue("email"), c.FormValue("password"), c.Request().UserAgent())
		if err == nil {
			s.setSessionCookie(c, res.SessionToken, res.SessionEnds)
			if next == "/" {
				next = "/orgs/new"
			}
			return s.redirect(c, next, "Welcome to Plugboard, "+res.User.Name+".")
		}
	}
	if !formFault(err) && !rateLimited(err) && !busy(err) {
		return err
	}
	setRetryAfter(c, err)
	v := s.newView(c, "Create your account")
	v.fail(err, c)
	v.Form.Del("password")
	v.Data = next
	return s.render(c, uiStatus(err), "signup", v)
}

func (s *Server) loginForm(c echo.Context) error {
	v := s.newView(c, "Sign in")
	v.Data = safeNext(c.QueryParam("next"))
	return s.render(c, http.StatusOK, "login", v)
}

func (s *Server) login(c echo.Context) error {
	next := safeNext(c.FormValue("next"))
	var err error
	if c.FormValue("email") != "" && c.FormValue("password") != "" {
		err = s.attempt(c, s.signInBudgets(c, c.FormValue("email"))...)
	}
	var res *marketplace.SignIn
	if err == nil {
		res, err = s.opts.Accounts.SignIn(c.Request().Context(), actor(c), c.FormValue("email"), c.FormValue("password"), c.Request().UserAgent())
	}
	if _, ok := fault.As(err); ok {
		setRetryAfter(c, err)
		v := s.newView(c, "Sign in")
		v.fail(err, c)
		v.Form.Del("password")
		v.Data = next
		return s.render(c, uiStatus(err), "login", v)
	}
	if err != nil {
		return err
	}
	s.setSessionCookie(c, res.SessionToken, res.SessionEnds)
	if next == "/" && res.User.IsOperator {
		// No page asked for: operators start at their overview (the review
		// queue and the catalogue), not at an organization they may not have.
		next = "/admin/"
	}
	return c.Redirect(http.StatusSeeOther, next)
}

func (s *Server) logout(c echo.Context) error {
	if err := s.opts.Accounts.SignOut(c.Request().Context(), actor(c)); err != nil {
		return err
	}
	s.clearSessionCookie(c)
	return s.redirect(c, "/marketplace", "You are signed out.")
}

func (s *Server) newOrgForm(c echo.Context) error {
	v := s.newView(c, "Create an organization")
	return s.render(c, http.StatusOK, "org_new", v)
}

func (s *Server) createOrgPage(c echo.Context) error {
	org, err := s.opts.Orgs.CreateOrganization(c.Request().Context(), actor(c),
		marketplace.NewOrganization{Name: c.FormValue("name"), Slug: c.FormValue("slug")})
	if formFault(err) {
		v := s.newView(c, "Create an organization")
		v.fail(err, c)
		return s.render(c, uiStatus(err), "org_new", v)
	}
	if err != nil {
		return err
	}
	s.rememberOrg(c, org.Org.Slug)
	return s.redirect(c, "/orgs/"+org.Org.Slug+"/installations", "Created "+org.Org.Name+". Install apps from the marketplace, or build your own under Developer.")
}

// orgHome switches to an organization: later pages without one in their
// path use it.
func (s *Server) orgHome(c echo.Context) error {
	org, err := s.opts.Orgs.GetOrganization(c.Request().Context(), actor(c), c.Param("org"))
	if err != nil {
		return err
	}
	s.rememberOrg(c, org.Org.Slug)
	return c.Redirect(http.StatusSeeOther, "/orgs/"+org.Org.Slug+"/installations")
}
