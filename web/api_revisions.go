package web

import (
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/plugboard/plugboard/marketplace"
)

// App revisions (changes to what a published app may do, reviewed by
// operators) and the organization's acceptance of the permissions they
// add: marketplace/app_revisions.go, permission_requests.go.

type revisionChangesJSON struct {
	Scopes       *[]string `json:"scopes,omitempty"`
	Events       *[]string `json:"events,omitempty"`
	WebhookURL   *string   `json:"webhookUrl,omitempty"`
	RedirectURL  *string   `json:"redirectUrl,omitempty"`
	ProvisionURL *string   `json:"provisionUrl,omitempty"`
	SSOURL       *string   `json:"ssoUrl,omitempty"`
	SyncURL      *string   `json:"syncUrl,omitempty"`
}

// revisionDiffJSON is one line of a diff: added and removed for scopes and
// events, from and to for a URL.
type revisionDiffJSON struct {
	Field   string    `json:"field"`
	Added   *[]string `json:"added,omitempty"`
	Removed *[]string `json:"removed,omitempty"`
	From    *string   `json:"from,omitempty"`
	To      *string   `json:"to,omitempty"`
}

type revisionJSON struct {
	ID            string              `json:"id"` // the revision's number within its app
	App           appRefJSON          `json:"app"`
	Status        string              `json:"status"`
	StatusReason  string              `json:"statusReason"`
	Changes       revisionChangesJSON `json:"changes"`
	Diff          []revisionDiffJSON  `json:"diff"`
	DateCreated   time.Time           `json:"dateCreated"`
	DateUpdated   time.Time           `json:"dateUpdated"`
	DateSubmitted *time.Time          `json:"dateSubmitted"`
	DateReviewed  *time.Time          `json:"dateReviewed"`
}

func toRevisionJSON(r *marketplace.AppRevision) revisionJSON {
	c := r.Changes
	out := revisionJSON{ID: strconv.Itoa(r.Number), Status: r.Status, StatusReason: r.StatusReason,
		Changes: revisionChangesJSON{Scopes: c.Scopes, Events: c.Events, WebhookURL: c.WebhookURL, RedirectURL: c.RedirectURL,
			ProvisionURL: c.ProvisionURL, SSOURL: c.SSOURL, SyncURL: c.SyncURL},
		Diff:        []revisionDiffJSON{},
		DateCreated: r.CreatedAt, DateUpdated: r.UpdatedAt, DateSubmitted: r.SubmittedAt, DateReviewed: r.ReviewedAt}
	if r.App != nil {
		out.App = appRefJSON{ID: id(r.App.ID), Slug: r.App.Slug, Name: r.App.Name}
	}
	for _, d := range r.Diff() {
		line := revisionDiffJSON{Field: d.Field}
		if d.Field == "scopes" || d.Field == "events" {
			added, removed := orEmpty(d.Added), orEmpty(d.Removed)
			line.Added, line.Removed = &added, &removed
		} else {
			line.From, line.To = &d.From, &d.To
		}
		out.Diff = append(out.Diff, line)
	}
	return out
}

func (s *Server) listRevisions(c echo.Context) error {
	r, err := s.pageRequest(c)
	if err != nil {
		return err
	}
	p, err := s.opts.Revisions.ListRevisions(c.Request().Context(), actor(c), c.Param("app_slug"), r)
	if err != nil {
		return err
	}
	return writePage(s, c, p, func(r marketplace.AppRevision) revisionJSON { return toRevisionJSON(&r) })
}

func (s *Server) getRevision(c echo.Context) error {
	rev, err := s.opts.Revisions.GetRevision(c.Request().Context(), actor(c), c.Param("app_slug"), c.Param("revision_id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toRevisionJSON(rev))
}

// submitRevision is the revision's publish request, as
// POST /apps/{app_slug}/publish-requests/ is the app's.
func (s *Server) submitRevision(c echo.Context) error {
	rev, err := s.opts.Revisions.SubmitRevision(c.Request().Context(), actor(c), c.Param("app_slug"), c.Param("revision_id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, toRevisionJSON(rev))
}

type revisionDecisionRequest struct {
	Status       string  `json:"status"`
	StatusReason *string `json:"statusReason"`
}

// decideRevision is the operators' PUT, as PUT /apps/{app_slug}/
// {status} publishes or rejects an app.
func (s *Server) decideRevision(c echo.Context) error {
	var in revisionDecisionRequest
	if err := bindJSON(c, &in); err != nil {
		return err
	}
	rev, err := s.opts.Revisions.DecideRevision(c.Request().Context(), actor(c), c.Param("app_slug"), c.Param("revision_id"), in.Status, in.StatusReason)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toRevisionJSON(rev))
}

type permissionRequestJSON struct {
	ID          string    `json:"id"`
	Scopes      []string  `json:"scopes"`
	Events      []string  `json:"events"`
	DateCreated time.Time `json:"dateCreated"`
	DateUpdated time.Time `json:"dateUpdated"`
}

func toPermissionRequestJSON(r *marketplace.PermissionRequest) *permissionRequestJSON {
	if r == nil {
		return nil
	}
	return &permissionRequestJSON{ID: id(r.ID), Scopes: orEmpty(r.Scopes), Events: orEmpty(r.Events),
		DateCreated: r.CreatedAt, DateUpdated: r.UpdatedAt}
}

type permissionAcceptanceRequest struct {
	Request string `json:"request"`
}

type permissionAcceptanceJSON struct {
	Installation installationJSON `json:"installation"`
	Scopes       []string         `json:"scopes"`
	Events       []string         `json:"events"`
	DateAccepted time.Time        `json:"dateAccepted"`
}

func (s *Server) acceptPermissions(c echo.Context) error {
	var in permissionAcceptanceRequest
	if c.Request().ContentLength != 0 { // the body is optional
		if err := bindJSON(c, &in); err != nil {
			return err
		}
	}
	acc, err := s.opts.Permissions.AcceptPermissions(c.Request().Context(), actor(c), c.Param("uuid"), in.Request)
	if err != nil {
		return err
	}
	out := permissionAcceptanceJSON{Installation: toInstallationJSON(acc.Installation), Scopes: orEmpty(acc.Request.Scopes),
		Events: orEmpty(acc.Request.Events), DateAccepted: acc.Request.UpdatedAt}
	return c.JSON(http.StatusCreated, out)
}
