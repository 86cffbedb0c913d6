package web

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/plugboard/plugboard/marketplace"
)

type findingJSON struct {
	Installation string    `json:"installation"`
	App          string    `json:"app"`
	Reason       string    `json:"reason"`
	Action       string    `json:"action"`
	Repaired     bool      `json:"repaired"`
	DateCreated  time.Time `json:"dateCreated"`
}

type runJSON struct {
	ID           string        `json:"id"`
	Job          string        `json:"job"`
	App          *string       `json:"app"`
	DateStarted  time.Time     `json:"dateStarted"`
	DateFinished *time.Time    `json:"dateFinished"`
	Examined     int           `json:"examined"`
	Found        int           `json:"found"`
	Repaired     int           `json:"repaired"`
	Errors       []string      `json:"errors"`
	Findings     []findingJSON `json:"findings"`
}

func toRunJSON(r marketplace.Run) runJSON {
	out := runJSON{ID: id(r.ID), Job: r.Job, DateStarted: r.StartedAt, DateFinished: r.FinishedAt, Examined: r.Examined,
		Found: r.Found, Repaired: r.Repaired, Errors: orEmpty(r.Errors), Findings: make([]findingJSON, len(r.Findings))}
	if r.AppID != nil {
		s := id(*r.AppID)
		out.App = &s
	}
	for i, f := range r.Findings {
		out.Findings[i] = findingJSON{Installation: f.InstallationUUID, App: id(f.AppID), Reason: f.Reason, Action: f.Action,
			Repaired: f.Repaired, DateCreated: f.CreatedAt}
	}
	return out
}

func (s *Server) listAppRuns(c echo.Context) error {
	r, err := s.pageRequest(c)
	if err != nil {
		return err
	}
	p, err := s.opts.Reconciler.ListAppRuns(c.Request().Context(), actor(c), c.Param("app_slug"), marketplace.RunQuery{Job: c.QueryParam("job")}, r)
	if err != nil {
		return err
	}
	return writePage(s, c, p, toRunJSON)
}

func (s *Server) listRuns(c echo.Context) error {
	r, err := s.pageRequest(c)
	if err != nil {
		return err
	}
	p, err := s.opts.Reconciler.ListRuns(c.Request().Context(), actor(c), marketplace.RunQuery{Job: c.QueryParam("job")}, r)
	if err != nil {
		return err
	}
	return writePage(s, c, p, toRunJSON)
}

type grantJSON struct {
	Code      string    `json:"code"`
	ExpiresAt time.Time `json:"expiresAt"`
}

func (s *Server) requestGrant(c echo.Context) error {
	g, code, err := s.opts.Installs.RequestGrant(c.Request().Context(), actor(c), c.Param("uuid"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, grantJSON{Code: code, ExpiresAt: g.ExpiresAt})
}
