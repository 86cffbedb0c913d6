package web

import (
	"github.com/labstack/echo/v4"

	"github.com/plugboard/plugboard/marketplace"
)

// The suspension controls of the UI (marketplace/suspensions.go): an
// organization admin suspends an installation or lifts the suspension on
// its page; an operator suspends a whole app, and lifts it, on the app's
// review page.

// orgSuspend suspends the installation in the path with the form's
// reason; a refusal re-renders the page beside the form.
func (s *Server) orgSuspend(c echo.Context) error {
	pg, err := s.orgInstallation(c)
	if err != nil {
		return err
	}
	reason := c.FormValue("reason")
	_, _, err = s.opts.Suspensions.Suspend(c.Request().Context(), actor(c), pg.Installation.UUID, &reason)
	if formFault(err) {
		v := s.orgInstallationView(c, pg)
		v.fail(err, c)
		return s.render(c, uiStatus(err), "org_installation", v)
	}
	if err != nil {
		return err
	}
	return s.redirect(c, "/orgs/"+pg.Org.Org.Slug+"/installations/"+pg.Installation.UUID,
		pg.Installation.App.Name+" is suspended: its tokens are refused and its webhooks wait until the suspension is lifted.")
}

// orgUnsuspend lifts the installation's suspension.
func (s *Server) orgUnsuspend(c echo.Context) error {
	pg, err := s.orgInstallation(c)
	if err != nil {
		return err
	}
	err = s.opts.Suspensions.Unsuspend(c.Request().Context(), actor(c), pg.Installation.UUID)
	if formFault(err) {
		v := s.orgInstallationView(c, pg)
		v.fail(err, c)
		return s.render(c, uiStatus(err), "org_installation", v)
	}
	if err != nil {
		return err
	}
	return s.redirect(c, "/orgs/"+pg.Org.Org.Slug+"/installations/"+pg.Installation.UUID,
		"The suspension is lifted: "+pg.Installation.App.Name+" has its access back, and the webhooks that waited are on their way.")
}

// adminSuspendApp is the kill switch, from the app's review page: the
// form's suspensionReason is the app's statusReason.
func (s *Server) adminSuspendApp(c echo.Context) error {
	reason := c.FormValue("suspensionReason")
	return s.adminSwitch(c, marketplace.StatusSuspended, &reason,
		" is suspended: it left the marketplace, and every installation of it is suspended with your reason.")
}

// adminUnsuspendApp lifts the kill switch.
func (s *Server) adminUnsuspendApp(c echo.Context) error {
	return s.adminSwitch(c, marketplace.StatusPublished, nil,
		"'s suspension is lifted, and so are the installations it suspended.")
}

func (s *Server) adminSwitch(c echo.Context, status string, reason *string, said string) error {
	app, err := s.opts.Apps.UpdateApp(c.Request().Context(), actor(c), c.Param("slug"),
		marketplace.AppUpdate{Status: &status, StatusReason: reason})
	if formFault(err) {
		v, verr := s.adminAppView(c)
		if verr != nil {
			return verr
		}
		v.fail(err, c)
		if msg, ok := v.Errors["statusReason"]; ok { // the field as the form names it
			v.Errors = map[string]string{"suspensionReason": msg}
		}
		return s.render(c, uiStatus(err), "admin_review_app", v)
	}
	if err != nil {
		return err
	}
	return s.redirect(c, "/admin/review/"+app.Slug, app.Name+said)
}
