package web

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/plugboard/plugboard/marketplace"
)

// configVarsJSON is an installation's config vars: {"vars": {NAME: value}}.
type configVarsJSON struct {
	Vars        map[string]string `json:"vars"`
	DateUpdated *time.Time        `json:"dateUpdated"` // the latest change; null with none
}

func toConfigVarsJSON(vars []marketplace.ConfigVar) configVarsJSON {
	out := configVarsJSON{Vars: make(map[string]string, len(vars))}
	for _, v := range vars {
		out.Vars[v.Name] = v.Value
		if out.DateUpdated == nil || v.UpdatedAt.After(*out.DateUpdated) {
			at := v.UpdatedAt
			out.DateUpdated = &at
		}
	}
	return out
}

// configVarsRequest is a PUT: each name to its new value, or null to delete.
type configVarsRequest struct {
	Vars map[string]*string `json:"vars"`
}

func (s *Server) listConfigVars(c echo.Context) error {
	vars, err := s.opts.ConfigVars.List(c.Request().Context(), actor(c), c.Param("uuid"))
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, toConfigVarsJSON(vars))
}

func (s *Server) setConfigVars(c echo.Context) error {
	var in configVarsRequest
	if err := bindJSON(c, &in); err != nil {
		return err
	}
	vars, err := s.opts.ConfigVars.Set(c.Request().Context(), actor(c), c.Param("uuid"), in.Vars)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, toConfigVarsJSON(vars))
}
