package web

import (
	"context"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/plugboard/plugboard/marketplace"
)

// The pages of revisions (marketplace/app_revisions.go): the partner's
// list with its submit button, the operators' review of one revision, and
// an organization admin's acceptance of the permissions one added.

func (s *Server) partnerRevisions(c echo.Context, app *marketplace.AppView) error {
	return s.renderRevisions(c, app, http.StatusOK, nil)
}

func (s *Server) renderRevisions(c echo.Context, app *marketplace.AppView, status int, fail error) error {
	r, err := s.pageRequest(c)
	if err != nil {
		return err
	}
	pg, err := s.opts.Revisions.RevisionsPage(c.Request().Context(), actor(c), app.Slug, r)
	if err != nil {
		return err
	}
	v := s.partnerView(c, pg.App, "Revisions")
	if fail != nil {
		v.failAbove(fail, c)
	}
	v.Data = map[string]any{"App": pg.App, "Revisions": pg.Revisions, "Query": c.QueryParams()}
	return s.render(c, status, "partner_revisions", v)
}

func (s *Server) partnerSubmitRevision(c echo.Context, app *marketplace.AppView) error {
	rev, err := s.opts.Revisions.SubmitRevision(c.Request().Context(), actor(c), app.Slug, c.Param("number"))
	if formFault(err) {
		return s.renderRevisions(c, app, uiStatus(err), err)
	}
	if err != nil {
		return err
	}
	return s.redirect(c, "/apps/"+app.Slug+"/revisions", "Submitted revision #"+strconv.Itoa(rev.Number)+" for review. Operators will approve it or tell you what to change.")
}

func (s *Server) adminRevisionView(c echo.Context) (*view, error) {
	pg, err := s.opts.Revisions.RevisionReview(c.Request().Context(), actor(c), c.Param("slug"), c.Param("number"))
	if err != nil {
		return nil, err
	}
	v := s.newView(c, "Review "+pg.App.Name+" revision #"+strconv.Itoa(pg.Revision.Number))
	v.Section = "admin"
	v.Data = pg
	return v, nil
}

func (s *Server) adminRevisionPage(c echo.Context) error {
	v, err := s.adminRevisionView(c)
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, "admin_review_revision", v)
}

// adminDecideRevision approves or rejects the revision in the path; a
// refusal re-renders the page (not found for anyone but operators).
func (s *Server) adminDecideRevision(c echo.Context, status string, reason *string) error {
	rev, err := s.opts.Revisions.DecideRevision(c.Request().Context(), actor(c), c.Param("slug"), c.Param("number"), status, reason)
	if formFault(err) {
		return s.refuse(c, err, "admin_review_revision", s.adminRevisionView)
	}
	if err != nil {
		return err
	}
	msg := "Approved revision #" + strconv.Itoa(rev.Number) + " of " + rev.App.Name + ": it applies now, and installations are asked for what it adds."
	if status == marketplace.RevisionRejected {
		msg = "Rejected revision #" + strconv.Itoa(rev.Number) + " of " + rev.App.Name + "; its owners see the reason."
	}
	return s.redirect(c, "/admin/review", msg)
}

func (s *Server) adminApproveRevision(c echo.Context) error {
	return s.adminDecideRevision(c, marketplace.RevisionApproved, nil)
}

func (s *Server) adminRejectRevision(c echo.Context) error {
	reason := c.FormValue("statusReason")
	return s.adminDecideRevision(c, marketplace.RevisionRejected, &reason)
}

// orgAcceptPermissions accepts what the installation's pending request
// asks, the one the page showed (its id is in the form).
func (s *Server) orgAcceptPermissions(c echo.Context) error {
	return s.orgInstallationAction(c, func(ctx context.Context, uuid string) error {
		_, err := s.opts.Permissions.AcceptPermissions(ctx, actor(c), uuid, c.FormValue("request"))
		return err
	}, func(app string) string {
		return "Accepted. " + app + " has been told; its new tokens carry the new permissions."
	})
}
