package web

import (
	"bufio"
	"io"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
)

type accessTokenRequest struct {
	// Scopes narrows the token; absent: every scope of the installation.
	Scopes *[]string `json:"scopes"`
}

type accessTokenJSON struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expiresAt"`
	Scopes    []string  `json:"scopes"`
}

// mintAccessToken is POST /api/0/installations/{uuid}/access-tokens/: the
// app, authenticated as itself, gets a fresh installation access token.
// The body is optional.
func (s *Server) mintAccessToken(c echo.Context) error {
	var in accessTokenRequest
	if err := bindOptionalJSON(c, &in); err != nil {
		return err
	}
	var scopes []string
	if in.Scopes != nil {
		scopes = orEmpty(*in.Scopes)
	}
	set, err := s.opts.AccessTokens.MintAccessToken(c.Request().Context(), actor(c), c.Param("uuid"), scopes)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusCreated, accessTokenJSON{Token: set.AccessToken, ExpiresAt: set.ExpiresAt, Scopes: orEmpty(set.Scopes)})
}

// bindOptionalJSON is bindJSON for a body that may be left out: an empty
// body leaves v as it is.
func bindOptionalJSON(c echo.Context, v any) error {
	r := c.Request()
	body := bufio.NewReader(r.Body)
	if _, err := body.Peek(1); err == io.EOF {
		return nil
	}
	r.Body = readCloser{body, r.Body}
	return bindJSON(c, v)
}

// readCloser reads from one reader and closes another: a buffered body.
type readCloser struct {
	io.Reader
	io.Closer
}
