package web

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/plugboard/plugboard/app/fault"
	"github.com/plugboard/plugboard/app/page"
	"github.com/plugboard/plugboard/marketplace"
	"github.com/plugboard/plugboard/webhooks"
)

// The operators' pages read marketplace.Operators, which shows them to
// operators only: to everyone else they are not found.

// adminRedirect sends /admin to the operators' home, which says who may
// see it.
func (s *Server) adminRedirect(c echo.Context) error {
	return c.Redirect(http.StatusMovedPermanently, "/admin/")
}

func (s *Server) adminHome(c echo.Context) error {
	o, err := s.opts.Operators.Overview(c.Request().Context(), actor(c))
	if err != nil {
		return err
	}
	v := s.newView(c, "Operators")
	v.Section = "admin"
	v.Data = o
	return s.render(c, http.StatusOK, "admin_home", v)
}

// adminQueueData is the review queue.
type adminQueueData struct {
	Page  page.Page[marketplace.AppView]
	Query url.Values
	// Revisions of published apps waiting for review (app_revisions.go).
	Revisions page.Page[marketplace.AppRevision]
}

func (s *Server) adminReviewQueue(c echo.Context) error {
	r, err := s.pageRequest(c)
	if err != nil {
		return err
	}
	p, err := s.opts.Operators.ReviewQueue(c.Request().Context(), actor(c), r)
	if err != nil {
		return err
	}
	revs, err := s.opts.Revisions.RevisionQueue(c.Request().Context(), actor(c), page.Request{Limit: page.MaxLimit})
	if err != nil {
		return err
	}
	v := s.newView(c, "Review queue")
	v.Section = "admin"
	v.Data = adminQueueData{Page: p, Query: c.QueryParams(), Revisions: revs}
	return s.render(c, http.StatusOK, "admin_review", v)
}

// adminAppData is one app under review.
type adminAppData struct {
	App    *marketplace.AppView
	Scopes []marketplace.Scope
	Events []webhooks.EventType
}

func (s *Server) adminAppView(c echo.Context) (*view, error) {
	pg, err := s.opts.Operators.ReviewPage(c.Request().Context(), actor(c), c.Param("slug"))
	if err != nil {
		return nil, err
	}
	v := s.newView(c, "Review "+pg.App.Name)
	v.Section = "admin"
	v.Data = adminAppData{App: pg.App, Scopes: pg.Scopes, Events: pg.Events}
	return v, nil
}

func (s *Server) adminReviewPage(c echo.Context) error {
	v, err := s.adminAppView(c)
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, "admin_review_app", v)
}

// adminDecide publishes or rejects the app in the path. The service
// refuses everyone but operators; a refusal re-renders the page, which is
// not found for them.
func (s *Server) adminDecide(c echo.Context, status string, reason *string) error {
	app, err := s.opts.Apps.UpdateApp(c.Request().Context(), actor(c), c.Param("slug"),
		marketplace.AppUpdate{Status: &status, StatusReason: reason})
	if formFault(err) {
		return s.refuse(c, err, "admin_review_app", s.adminAppView)
	}
	if err != nil {
		return err
	}
	msg := app.Name + " is published: it is listed in the marketplace."
	if status == marketplace.StatusRejected {
		msg = app.Name + " was rejected; its owners see the reason."
	}
	return s.redirect(c, "/admin/review", msg)
}

func (s *Server) adminApprove(c echo.Context) error {
	return s.adminDecide(c, marketplace.StatusPublished, nil)
}

func (s *Server) adminReject(c echo.Context) error {
	reason := c.FormValue("statusReason")
	return s.adminDecide(c, marketplace.StatusRejected, &reason)
}

// adminEventTypesData is the event catalogue.
type adminEventTypesData struct {
	Types []webhooks.EventType
}

func (s *Server) adminEventTypesView(c echo.Context) (*view, error) {
	types, err := s.opts.Operators.EventTypes(c.Request().Context(), actor(c))
	if err != nil {
		return nil, err
	}
	v := s.newView(c, "Event types")
	v.Section = "admin"
	v.Data = adminEventTypesData{Types: types}
	return v, nil
}

func (s *Server) adminEventTypes(c echo.Context) error {
	v, err := s.adminEventTypesView(c)
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, "admin_event_types", v)
}

// adminCreateEventType adds an event type; like adminDecide, a refusal
// re-renders the page, not found for anyone but operators.
func (s *Server) adminCreateEventType(c echo.Context) error {
	n := webhooks.NewEventType{Name: strings.TrimSpace(c.FormValue("name")), Resource: strings.TrimSpace(c.FormValue("resource")),
		Scope: strings.TrimSpace(c.FormValue("scope")), Description: strings.TrimSpace(c.FormValue("description"))}
	var err error
	if raw := strings.TrimSpace(c.FormValue("schema")); raw != "" {
		if !json.Valid([]byte(raw)) {
			err = fault.Field("schema", "is not valid JSON")
		}
		n.Schema = json.RawMessage(raw)
	}
	var et *webhooks.EventType
	if err == nil {
		et, err = s.opts.Events.CreateEventType(c.Request().Context(), actor(c), n)
	}
	if formFault(err) {
		return s.refuse(c, err, "admin_event_types", s.adminEventTypesView)
	}
	if err != nil {
		return err
	}
	return s.redirect(c, "/admin/event-types", "Added "+et.Name+" to the catalogue; apps with "+et.Scope+" can now subscribe to it.")
}

// adminRunsData is the reconciliation runs page.
type adminRunsData struct {
	Page  page.Page[marketplace.Run]
	Job   string
	Jobs  []string
	Query url.Values
}

func (s *Server) adminRuns(c echo.Context) error {
	r, err := s.pageRequest(c)
	if err != nil {
		return err
	}
	job := c.QueryParam("job")
	p, err := s.opts.Operators.Runs(c.Request().Context(), actor(c), marketplace.RunQuery{Job: job}, r)
	if err != nil {
		return err
	}
	v := s.newView(c, "Reconciliation runs")
	v.Section = "admin"
	v.Data = adminRunsData{Page: p, Job: job, Jobs: marketplace.Jobs, Query: c.QueryParams()}
	return s.render(c, http.StatusOK, "admin_runs", v)
}
