package web

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/plugboard/plugboard/marketplace"
)

// ssoData is the page that carries a sign-on token to the partner.
type ssoData struct {
	App   *marketplace.App
	Org   string
	URL   string
	Token string
}

// orgSignOn is POST /orgs/{org}/installations/{uuid}/sso: "Open {App}".
// It mints a sign-on token for the member (marketplace/sso.go) and answers
// a form that posts it to the app's ssoUrl at once. A POST, so the token is
// minted only from Plugboard's own page (CSRF-checked like every UI form)
// and never lands in a URL, a history entry or a Referer.
func (s *Server) orgSignOn(c echo.Context) error {
	so, err := s.opts.Installs.SignOn(c.Request().Context(), actor(c), c.Param("org"), c.Param("uuid"))
	if err != nil {
		return err
	}
	v := s.newView(c, "Opening "+so.App.Name)
	v.Section = "installed"
	org := c.Param("org")
	if so.Installation.Organization != nil {
		org = so.Installation.Organization.Name
	}
	v.Data = ssoData{App: so.App, Org: org, URL: so.URL, Token: so.Token}
	return s.render(c, http.StatusOK, "sso", v)
}
