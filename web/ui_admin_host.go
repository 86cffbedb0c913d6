package web

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/plugboard/plugboard/app/fault"
	"github.com/plugboard/plugboard/app/page"
	"github.com/plugboard/plugboard/marketplace"
	"github.com/plugboard/plugboard/webhooks"
)

// The operators' host-endpoints pages: where the host receives platform
// events, each endpoint's settings and delivery log. Like the other
// operator pages they are not there for anyone else.

// operatorOnly answers not found to anyone but an operator.
func operatorOnly(c echo.Context) error {
	if !actor(c).IsOperator() {
		return fault.NotFound("page")
	}
	return nil
}

// adminHostsData is the list of host endpoints and the form that adds one.
type adminHostsData struct {
	Page       page.Page[marketplace.HostEndpointView]
	EventTypes []string
	Query      url.Values
}

func (s *Server) adminHostsView(c echo.Context) (*view, error) {
	if err := operatorOnly(c); err != nil {
		return nil, err
	}
	r, err := s.pageRequest(c)
	if err != nil {
		return nil, err
	}
	p, err := s.opts.HostEndpoints.ListHostEndpoints(c.Request().Context(), actor(c), r)
	if err != nil {
		return nil, err
	}
	v := s.newView(c, "Host endpoints")
	v.Section = "admin"
	v.Data = adminHostsData{Page: p, EventTypes: marketplace.HostEventTypes, Query: c.QueryParams()}
	return v, nil
}

func (s *Server) adminHostEndpoints(c echo.Context) error {
	v, err := s.adminHostsView(c)
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, "admin_host_endpoints", v)
}

// hostForm reads the host endpoint form; fields absent from it are left
// alone (status: only the edit form has it).
func hostForm(c echo.Context) marketplace.HostEndpointFields {
	u, desc := strings.TrimSpace(c.FormValue("url")), strings.TrimSpace(c.FormValue("description"))
	types := c.Request().Form["eventTypes"]
	in := marketplace.HostEndpointFields{URL: &u, Description: &desc, EventTypes: &types}
	if st := c.FormValue("status"); st != "" {
		in.Status = &st
	}
	return in
}

func (s *Server) adminCreateHostEndpoint(c echo.Context) error {
	if err := operatorOnly(c); err != nil {
		return err
	}
	h, err := s.opts.HostEndpoints.CreateHostEndpoint(c.Request().Context(), actor(c), hostForm(c))
	if formFault(err) {
		return s.refuse(c, err, "admin_host_endpoints", s.adminHostsView)
	}
	if err != nil {
		return err
	}
	return s.showHostOnce(c, h.ID, hostSecret{Secret: h.SigningSecret, Created: true})
}

// hostSecret is a host endpoint's signing secret, shown once after the
// POST that made it.
type hostSecret struct {
	Endpoint      *marketplace.HostEndpointView
	Secret        string
	Created       bool      // a new endpoint; else a rotation
	PreviousUntil time.Time // a rotation: the old secret signs until then
}

// showHostOnce redirects to the page that shows secret once (ui_once.go);
// the one-time store keys it by the endpoint's destination key, which no
// app id equals.
func (s *Server) showHostOnce(c echo.Context, hostID int64, secret hostSecret) error {
	key := s.once.put(actor(c), webhooks.HostKey(hostID), secret)
	return c.Redirect(http.StatusSeeOther, "/admin/host-endpoints/"+id(hostID)+"/secrets/"+key)
}

func (s *Server) adminHostSecret(c echo.Context) error {
	h, err := s.adminHost(c)
	if err != nil {
		return err
	}
	got, ok := s.once.take(actor(c), webhooks.HostKey(h.ID), c.Param("key"))
	x, _ := got.(hostSecret)
	v := s.newView(c, "Host endpoint secret")
	v.Section = "admin"
	x.Endpoint = h
	v.Data = x
	if !ok {
		return s.render(c, http.StatusGone, "admin_host_secret", v)
	}
	return s.render(c, http.StatusOK, "admin_host_secret", v)
}

// adminHost is the host endpoint in the path, for operators.
func (s *Server) adminHost(c echo.Context) (*marketplace.HostEndpointView, error) {
	if err := operatorOnly(c); err != nil {
		return nil, err
	}
	return s.opts.HostEndpoints.GetHostEndpoint(c.Request().Context(), actor(c), c.Param("id"))
}

// adminHostData is one host endpoint: its settings and its delivery log.
type adminHostData struct {
	Endpoint   *marketplace.HostEndpointView
	EventTypes []string
	Deliveries page.Page[webhooks.Delivery]
	Status     string
	Statuses   []string
	Query      url.Values
}

func (s *Server) adminHostView(c echo.Context) (*view, error) {
	h, err := s.adminHost(c)
	if err != nil {
		return nil, err
	}
	r, err := s.pageRequest(c)
	if err != nil {
		return nil, err
	}
	status := c.QueryParam("status")
	log, err := s.opts.HostEndpoints.ListHostDeliveries(c.Request().Context(), actor(c), c.Param("id"), webhooks.DeliveryQuery{Status: status}, r)
	if err != nil {
		return nil, err
	}
	v := s.newView(c, "Host endpoint "+h.URL)
	v.Section = "admin"
	v.Data = adminHostData{Endpoint: h, EventTypes: marketplace.HostEventTypes, Deliveries: log, Status: status, Query: c.QueryParams(),
		Statuses: []string{webhooks.DeliveryPending, webhooks.DeliverySucceeded, webhooks.DeliveryFailed, webhooks.DeliveryPaused}}
	return v, nil
}

func (s *Server) adminHostEndpoint(c echo.Context) error {
	v, err := s.adminHostView(c)
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, "admin_host_endpoint", v)
}

func (s *Server) adminUpdateHostEndpoint(c echo.Context) error {
	if err := operatorOnly(c); err != nil {
		return err
	}
	_, err := s.opts.HostEndpoints.UpdateHostEndpoint(c.Request().Context(), actor(c), c.Param("id"), hostForm(c))
	if formFault(err) {
		return s.refuse(c, err, "admin_host_endpoint", s.adminHostView)
	}
	if err != nil {
		return err
	}
	return s.redirect(c, "/admin/host-endpoints/"+url.PathEscape(c.Param("id")), "Saved the host endpoint.")
}

func (s *Server) adminConfirmRotateHostSecret(c echo.Context) error {
	h, err := s.adminHost(c)
	if err != nil {
		return err
	}
	base := "/admin/host-endpoints/" + id(h.ID)
	return s.confirm(c, "Rotate signing secret", confirmation{Heading: "Rotate the signing secret of " + h.URL + "?",
		Message: "A new signing secret is issued. For the next 24 hours deliveries carry signatures from both the old and the new secret, so the host keeps verifying them while you deploy the new one.",
		Action:  base + "/rotate-secret", Button: "Rotate signing secret", Cancel: base, Danger: true})
}

func (s *Server) adminRotateHostSecret(c echo.Context) error {
	if err := operatorOnly(c); err != nil {
		return err
	}
	secret, until, err := s.opts.HostEndpoints.RotateHostEndpointSecret(c.Request().Context(), actor(c), c.Param("id"))
	if err != nil {
		return err
	}
	n, _ := strconv.ParseInt(c.Param("id"), 10, 64)
	return s.showHostOnce(c, n, hostSecret{Secret: secret, PreviousUntil: until})
}

func (s *Server) adminConfirmDeleteHost(c echo.Context) error {
	h, err := s.adminHost(c)
	if err != nil {
		return err
	}
	base := "/admin/host-endpoints/" + id(h.ID)
	return s.confirm(c, "Delete host endpoint", confirmation{Heading: "Delete the host endpoint " + h.URL + "?",
		Message: "It stops receiving platform events at once; what it has not received yet is dropped, with its delivery log.",
		Action:  base + "/delete", Button: "Delete host endpoint", Cancel: base, Danger: true})
}

func (s *Server) adminDeleteHost(c echo.Context) error {
	if err := operatorOnly(c); err != nil {
		return err
	}
	if err := s.opts.HostEndpoints.DeleteHostEndpoint(c.Request().Context(), actor(c), c.Param("id")); err != nil {
		return err
	}
	return s.redirect(c, "/admin/host-endpoints", "Deleted the host endpoint.")
}

// adminHostDeliveryData is one delivery to a host endpoint.
type adminHostDeliveryData struct {
	Endpoint *marketplace.HostEndpointView
	Delivery *webhooks.DeliveryDetail
	Pending  bool
}

func (s *Server) adminHostDelivery(c echo.Context) error {
	h, err := s.adminHost(c)
	if err != nil {
		return err
	}
	d, err := s.opts.HostEndpoints.GetHostDelivery(c.Request().Context(), actor(c), c.Param("id"), c.Param("delivery"))
	if err != nil {
		return err
	}
	v := s.newView(c, "Delivery "+d.UUID)
	v.Section = "admin"
	v.Data = adminHostDeliveryData{Endpoint: h, Delivery: d, Pending: d.Status == webhooks.DeliveryPending}
	return s.render(c, http.StatusOK, "admin_host_delivery", v)
}

func (s *Server) adminRedeliverHost(c echo.Context) error {
	if err := operatorOnly(c); err != nil {
		return err
	}
	res, err := s.opts.HostEndpoints.RedeliverHost(c.Request().Context(), actor(c), c.Param("id"),
		marketplace.RedeliveryRequest{Deliveries: []string{c.Param("delivery")}})
	if err != nil {
		return err
	}
	msg := "Queued the delivery again; it keeps its webhook-id."
	if res.Count == 0 {
		msg = "The delivery is still being attempted; nothing to redeliver."
	}
	return s.redirect(c, "/admin/host-endpoints/"+url.PathEscape(c.Param("id"))+"/deliveries/"+url.PathEscape(c.Param("delivery")), msg)
}
