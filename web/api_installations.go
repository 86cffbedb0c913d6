package web

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/plugboard/plugboard/marketplace"
)

type installRequest struct {
	App  string `json:"app"`
	Plan string `json:"plan"`
}

func (s *Server) install(c echo.Context) error {
	var in installRequest
	if err := bindJSON(c, &in); err != nil {
		return err
	}
	res, err := s.opts.Installs.Install(c.Request().Context(), actor(c), c.Param("org"), in.App, in.Plan)
	if err != nil {
		return err
	}
	out := toInstallationJSON(res.Installation)
	out.RedirectURL = res.RedirectURL
	return created(c, "/api/0/installations/"+res.Installation.UUID+"/", out)
}

func installationQuery(c echo.Context) marketplace.InstallationQuery {
	return marketplace.InstallationQuery{Status: c.QueryParam("status"), SyncState: c.QueryParam("syncState"), Permissions: c.QueryParam("permissions")}
}

func (s *Server) listOrgInstallations(c echo.Context) error {
	r, err := s.pageRequest(c)
	if err != nil {
		return err
	}
	p, err := s.opts.Installs.ListOrgInstallations(c.Request().Context(), actor(c), c.Param("org"), installationQuery(c), r)
	if err != nil {
		return err
	}
	return writePage(s, c, p, func(i marketplace.Installation) installationJSON { return toInstallationJSON(&i) })
}

func (s *Server) listAppInstallations(c echo.Context) error {
	r, err := s.pageRequest(c)
	if err != nil {
		return err
	}
	p, err := s.opts.Installs.ListAppInstallations(c.Request().Context(), actor(c), c.Param("app_slug"), installationQuery(c), r)
	if err != nil {
		return err
	}
	return writePage(s, c, p, func(i marketplace.Installation) installationJSON { return toInstallationJSON(&i) })
}

func (s *Server) getInstallation(c echo.Context) error {
	inst, err := s.opts.Installs.GetInstallation(c.Request().Context(), actor(c), c.Param("uuid"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toInstallationJSON(inst))
}

type installationUpdateRequest struct {
	Status     *string `json:"status"`
	Plan       *string `json:"plan"`
	ExternalID *string `json:"externalId"`
	ConfigURL  *string `json:"configUrl"`
}

func (s *Server) updateInstallation(c echo.Context) error {
	var in installationUpdateRequest
	if err := bindJSON(c, &in); err != nil {
		return err
	}
	inst, err := s.opts.Installs.UpdateInstallation(c.Request().Context(), actor(c), c.Param("uuid"), marketplace.InstallationUpdate{
		Status: in.Status, Plan: in.Plan, ExternalID: in.ExternalID, ConfigURL: in.ConfigURL})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toInstallationJSON(inst))
}

func (s *Server) uninstall(c echo.Context) error {
	if err := s.opts.Installs.Uninstall(c.Request().Context(), actor(c), c.Param("uuid")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

type authorizationRequest struct {
	GrantType    string `json:"grantType"`
	Code         string `json:"code"`
	RefreshToken string `json:"refreshToken"`
	ClientID     string `json:"clientId"`
	ClientSecret string `json:"clientSecret"`
	RedirectURI  string `json:"redirectUri"`
	CodeVerifier string `json:"codeVerifier"`
}

type authorizationJSON struct {
	Token          string    `json:"token"`
	RefreshToken   string    `json:"refreshToken"`
	ExpiresAt      time.Time `json:"expiresAt"`
	Scopes         []string  `json:"scopes"`
	InstallationID string    `json:"installationId"`
}

// authorize is the Sentry-style token exchange: the same grants as
// /oauth/token, in camelCase JSON.
func (s *Server) authorizeInstallation(c echo.Context) error {
	var in authorizationRequest
	if err := bindJSON(c, &in); err != nil {
		return err
	}
	ctx := c.Request().Context()
	app, err := s.opts.OAuth.AuthenticateClient(ctx, in.ClientID, in.ClientSecret)
	if err != nil {
		return err
	}
	set, err := s.opts.OAuth.Token(ctx, app, marketplace.TokenRequest{GrantType: in.GrantType, Code: in.Code, RefreshToken: in.RefreshToken,
		RedirectURI: in.RedirectURI, CodeVerifier: in.CodeVerifier, InstallationUUID: c.Param("uuid")})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, authorizationJSON{Token: set.AccessToken, RefreshToken: set.RefreshToken, ExpiresAt: set.ExpiresAt,
		Scopes: orEmpty(set.Scopes), InstallationID: set.Installation.UUID})
}
