package web

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/plugboard/plugboard/app/fault"
	"github.com/plugboard/plugboard/marketplace"
)

const introspectPath = "/oauth/introspect"

var errHostTokenRequired = fault.Unauthorized(fault.HostTokenRequired, "Introspection answers the host: send its service token (pbh_…) as Authorization: Bearer.")

// refJSON names an organization or app in an introspection answer.
type refJSON struct {
	ID   string `json:"id"`
	Slug string `json:"slug"`
	Name string `json:"name"`
}

// introspectionJSON is an RFC 7662 §2.2 answer; an inactive token's has
// only active.
type introspectionJSON struct {
	Active         bool     `json:"active"`
	Scope          string   `json:"scope,omitempty"`
	ClientID       string   `json:"client_id,omitempty"`
	TokenType      string   `json:"token_type,omitempty"`
	Exp            int64    `json:"exp,omitempty"`
	Iat            int64    `json:"iat,omitempty"`
	Sub            string   `json:"sub,omitempty"`
	Iss            string   `json:"iss,omitempty"`
	InstallationID string   `json:"installation_id,omitempty"`
	Organization   *refJSON `json:"organization,omitempty"`
	App            *refJSON `json:"app,omitempty"`
}

func toRefJSON(r marketplace.Ref) *refJSON {
	return &refJSON{ID: strconv.FormatInt(r.ID, 10), Slug: r.Slug, Name: r.Name}
}

// introspect is POST /oauth/introspect (RFC 7662): the host, with its
// service token as Bearer, asks about the token a partner sent to the
// host's own API. Callers without a host service token get 401 with an
// RFC 6750 challenge (bearerChallenge).
func (s *Server) introspect(c echo.Context) error {
	if err := refuseURLParams(c); err != nil {
		return err
	}
	ctx := c.Request().Context()
	h := c.Request().Header.Get("Authorization")
	if h == "" {
		return fault.Unauthorized(fault.NotAuthenticated, "Send the host's service token (pbh_…) as Authorization: Bearer.")
	}
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		return errHostTokenRequired
	}
	a, err := s.opts.Accounts.AuthenticateBearer(ctx, strings.TrimSpace(tok))
	if err != nil {
		return err
	}
	if a.Service == nil {
		return errHostTokenRequired
	}
	token := c.Request().PostFormValue("token")
	if token == "" {
		return fault.OAuth(fault.InvalidRequest, "token is required, as a field of an application/x-www-form-urlencoded body (RFC 7662 §2.1).")
	}
	info, err := s.opts.Introspection.Introspect(ctx, a, token)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	if !info.Active {
		return c.JSON(http.StatusOK, introspectionJSON{})
	}
	out := introspectionJSON{Active: true, Scope: marketplace.ScopeString(info.Scopes), ClientID: info.ClientID, TokenType: "bearer",
		Iat: info.IssuedAt.Unix(), Sub: info.Installation, Iss: s.opts.BaseURL, InstallationID: info.Installation,
		Organization: toRefJSON(info.Organization), App: toRefJSON(info.App)}
	if info.ExpiresAt != nil {
		out.Exp = info.ExpiresAt.Unix()
	}
	return c.JSON(http.StatusOK, out)
}
