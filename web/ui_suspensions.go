package web

import (
	"context"

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
	reason := c.FormValue("reason")
	return s.orgInstallationAction(c, func(ctx context.Context, uuid string) error {
		_, _, err := s.opts.Suspensions.Suspend(ctx, actor(c), uuid, &reason)
		return err
	}, func(app string) string {
		return app + " is suspended: its tokens are refused and its webhooks wait until the suspension is lifted."
	})
}

// orgUnsuspend lifts the installation's suspension.
func (s *Server) orgUnsuspend(c echo.Context) error {
	return s.orgInstallationAction(c, func(ctx context.Context, uuid string) error {
		return s.opts.Suspensions.Unsuspend(ctx, actor(c), uuid)
	}, func(app string) string {
		return "The suspension is lifted: " + app + " has its access back, and the webhooks that waited are on their way."
	})
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
