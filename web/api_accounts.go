package web

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/plugboard/plugboard/marketplace"
)

type signUpRequest struct {
	Email    string `json:"email"`
	Name     string `json:"name"`
	Password string `json:"password"`
}

func (s *Server) signUp(c echo.Context) error {
	var in signUpRequest
	if err := bindJSON(c, &in); err != nil {
		return err
	}
	if err := s.attempt(c, s.signUpBudgets(c)...); err != nil {
		return err
	}
	u, err := s.opts.Accounts.SignUp(c.Request().Context(), actor(c), marketplace.NewUser{Email: in.Email, Name: in.Name, Password: in.Password})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, toUserJSON(u))
}

func (s *Server) me(c echo.Context) error {
	u, err := s.opts.Accounts.Me(actor(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toUserJSON(u))
}

type signInRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

type signInJSON struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expiresAt"`
	User      userJSON  `json:"user"`
}

func (s *Server) signIn(c echo.Context) error {
	var in signInRequest
	if err := bindJSON(c, &in); err != nil {
		return err
	}
	if in.Email != "" && in.Password != "" {
		if err := s.attempt(c, s.signInBudgets(c, in.Email)...); err != nil {
			return err
		}
	}
	res, err := s.opts.Accounts.SignIn(c.Request().Context(), actor(c), in.Email, in.Password, c.Request().UserAgent())
	if err != nil {
		return err
	}
	s.setSessionCookie(c, res.SessionToken, res.SessionEnds)
	return c.JSON(http.StatusOK, signInJSON{Token: res.JWT, ExpiresAt: res.JWTExpires, User: toUserJSON(res.User)})
}

func (s *Server) signOut(c echo.Context) error {
	if err := s.opts.Accounts.SignOut(c.Request().Context(), actor(c)); err != nil {
		return err
	}
	s.clearSessionCookie(c)
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) listAPITokens(c echo.Context) error {
	tokens, err := s.opts.Accounts.ListAPITokens(c.Request().Context(), actor(c))
	if err != nil {
		return err
	}
	out := make([]apiTokenJSON, len(tokens))
	for i, t := range tokens {
		out[i] = toAPITokenJSON(t)
	}
	return c.JSON(http.StatusOK, out)
}

type apiTokenRequest struct {
	Name      string     `json:"name"`
	ExpiresAt *time.Time `json:"expiresAt"`
}

func (s *Server) createAPIToken(c echo.Context) error {
	var in apiTokenRequest
	if err := bindJSON(c, &in); err != nil {
		return err
	}
	t, err := s.opts.Accounts.CreateAPIToken(c.Request().Context(), actor(c), in.Name, in.ExpiresAt)
	if err != nil {
		return err
	}
	out := toAPITokenJSON(t.APIToken)
	out.Token = t.Token
	return c.JSON(http.StatusCreated, out)
}

func (s *Server) deleteAPIToken(c echo.Context) error {
	if err := s.opts.Accounts.DeleteAPIToken(c.Request().Context(), actor(c), c.Param("token_id")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
