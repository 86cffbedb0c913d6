package web

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/plugboard/plugboard/marketplace"
)

type orgRequest struct {
	Name *string `json:"name"`
	Slug *string `json:"slug"`
}

func (s *Server) listOrgs(c echo.Context) error {
	r, err := s.pageRequest(c)
	if err != nil {
		return err
	}
	p, err := s.opts.Orgs.ListOrganizations(c.Request().Context(), actor(c), r)
	if err != nil {
		return err
	}
	return writePage(s, c, p, toOrgJSON)
}

func (s *Server) createOrg(c echo.Context) error {
	var in orgRequest
	if err := bindJSON(c, &in); err != nil {
		return err
	}
	o, err := s.opts.Orgs.CreateOrganization(c.Request().Context(), actor(c), marketplace.NewOrganization{Name: deref(in.Name), Slug: deref(in.Slug)})
	if err != nil {
		return err
	}
	return created(c, "/api/0/organizations/"+o.Org.Slug+"/", toOrgJSON(*o))
}

func (s *Server) getOrg(c echo.Context) error {
	o, err := s.opts.Orgs.GetOrganization(c.Request().Context(), actor(c), c.Param("org"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toOrgJSON(*o))
}

func (s *Server) updateOrg(c echo.Context) error {
	var in orgRequest
	if err := bindJSON(c, &in); err != nil {
		return err
	}
	o, err := s.opts.Orgs.UpdateOrganization(c.Request().Context(), actor(c), c.Param("org"), marketplace.OrganizationUpdate{Name: in.Name, Slug: in.Slug})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toOrgJSON(*o))
}

func (s *Server) deleteOrg(c echo.Context) error {
	if err := s.opts.Orgs.DeleteOrganization(c.Request().Context(), actor(c), c.Param("org")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) listMembers(c echo.Context) error {
	r, err := s.pageRequest(c)
	if err != nil {
		return err
	}
	p, err := s.opts.Orgs.ListMembers(c.Request().Context(), actor(c), c.Param("org"), r)
	if err != nil {
		return err
	}
	return writePage(s, c, p, toMemberJSON)
}

type memberRequest struct {
	Email string `json:"email"`
	Role  string `json:"role"`
}

func (s *Server) addMember(c echo.Context) error {
	var in memberRequest
	if err := bindJSON(c, &in); err != nil {
		return err
	}
	m, err := s.opts.Orgs.AddMember(c.Request().Context(), actor(c), c.Param("org"), in.Email, in.Role)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, toMemberJSON(*m))
}

type memberUpdateRequest struct {
	Role string `json:"role"`
}

func (s *Server) updateMember(c echo.Context) error {
	var in memberUpdateRequest
	if err := bindJSON(c, &in); err != nil {
		return err
	}
	m, err := s.opts.Orgs.UpdateMember(c.Request().Context(), actor(c), c.Param("org"), c.Param("member_id"), in.Role)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toMemberJSON(*m))
}

func (s *Server) removeMember(c echo.Context) error {
	if err := s.opts.Orgs.RemoveMember(c.Request().Context(), actor(c), c.Param("org"), c.Param("member_id")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) listAuditLogs(c echo.Context) error {
	r, err := s.pageRequest(c)
	if err != nil {
		return err
	}
	p, err := s.opts.Orgs.AuditLog(c.Request().Context(), actor(c), c.Param("org"), marketplace.AuditQuery{Action: c.QueryParam("action")}, r)
	if err != nil {
		return err
	}
	return writePage(s, c, p, toAuditJSON)
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// created answers 201 with a Location header.
func created(c echo.Context, location string, body any) error {
	c.Response().Header().Set("Location", location)
	return c.JSON(http.StatusCreated, body)
}
