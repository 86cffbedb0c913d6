package web

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/plugboard/plugboard/marketplace"
	"github.com/plugboard/plugboard/webhooks"
)

// Host webhooks: /api/0/host-endpoints/, for operators and host service
// tokens (marketplace.HostEndpoints says who).

type hostEndpointJSON struct {
	ID               string     `json:"id"`
	URL              string     `json:"url"`
	Description      string     `json:"description"`
	EventTypes       []string   `json:"eventTypes"`
	Status           string     `json:"status"`
	StatusReason     string     `json:"statusReason"`
	DateFailingSince *time.Time `json:"dateFailingSince"`
	RateLimit        int        `json:"rateLimit"`
	MaxInFlight      int        `json:"maxInFlight"`
	DateCreated      time.Time  `json:"dateCreated"`
	DateUpdated      time.Time  `json:"dateUpdated"`
	// Shown once, in the response that creates the endpoint.
	Secret string `json:"secret,omitempty"`
}

func toHostEndpointJSON(v marketplace.HostEndpointView) hostEndpointJSON {
	return hostEndpointJSON{ID: id(v.ID), URL: v.URL, Description: v.Description, EventTypes: orEmpty(v.EventTypes),
		Status: v.Status, StatusReason: v.StatusReason, DateFailingSince: v.FailingSince, RateLimit: v.RateLimit, MaxInFlight: v.MaxInFlight,
		DateCreated: v.CreatedAt, DateUpdated: v.UpdatedAt, Secret: v.SigningSecret}
}

type hostEndpointRequest struct {
	URL         *string   `json:"url"`
	Description *string   `json:"description"`
	EventTypes  *[]string `json:"eventTypes"`
	Status      *string   `json:"status"`
	RateLimit   *int      `json:"rateLimit"`
	MaxInFlight *int      `json:"maxInFlight"`
}

func (in hostEndpointRequest) fields() marketplace.HostEndpointFields {
	return marketplace.HostEndpointFields{URL: in.URL, Description: in.Description, EventTypes: in.EventTypes,
		Status: in.Status, RateLimit: in.RateLimit, MaxInFlight: in.MaxInFlight}
}

func (s *Server) listHostEndpoints(c echo.Context) error {
	r, err := s.pageRequest(c)
	if err != nil {
		return err
	}
	p, err := s.opts.HostEndpoints.ListHostEndpoints(c.Request().Context(), actor(c), r)
	if err != nil {
		return err
	}
	return writePage(s, c, p, toHostEndpointJSON)
}

func (s *Server) createHostEndpoint(c echo.Context) error {
	var in hostEndpointRequest
	if err := bindJSON(c, &in); err != nil {
		return err
	}
	v, err := s.opts.HostEndpoints.CreateHostEndpoint(c.Request().Context(), actor(c), in.fields())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, toHostEndpointJSON(*v))
}

func (s *Server) getHostEndpoint(c echo.Context) error {
	v, err := s.opts.HostEndpoints.GetHostEndpoint(c.Request().Context(), actor(c), c.Param("endpoint_id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toHostEndpointJSON(*v))
}

func (s *Server) updateHostEndpoint(c echo.Context) error {
	var in hostEndpointRequest
	if err := bindJSON(c, &in); err != nil {
		return err
	}
	v, err := s.opts.HostEndpoints.UpdateHostEndpoint(c.Request().Context(), actor(c), c.Param("endpoint_id"), in.fields())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toHostEndpointJSON(*v))
}

func (s *Server) deleteHostEndpoint(c echo.Context) error {
	if err := s.opts.HostEndpoints.DeleteHostEndpoint(c.Request().Context(), actor(c), c.Param("endpoint_id")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

type hostSecretJSON struct {
	Secret                   string    `json:"secret"`
	PreviousSecretValidUntil time.Time `json:"previousSecretValidUntil"`
}

func (s *Server) rotateHostEndpointSecret(c echo.Context) error {
	secret, until, err := s.opts.HostEndpoints.RotateHostEndpointSecret(c.Request().Context(), actor(c), c.Param("endpoint_id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, hostSecretJSON{Secret: secret, PreviousSecretValidUntil: until})
}

func (s *Server) listHostDeliveries(c echo.Context) error {
	dq, r, err := s.deliveryQuery(c)
	if err != nil {
		return err
	}
	p, err := s.opts.HostEndpoints.ListHostDeliveries(c.Request().Context(), actor(c), c.Param("endpoint_id"), dq, r)
	if err != nil {
		return err
	}
	return s.writeDeliveryPage(c, p)
}

func (s *Server) getHostDelivery(c echo.Context) error {
	d, err := s.opts.HostEndpoints.GetHostDelivery(c.Request().Context(), actor(c), c.Param("endpoint_id"), c.Param("delivery_id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toDeliveryDetailJSON(d))
}

func (s *Server) redeliverHost(c echo.Context) error {
	var in redeliveryRequest
	if err := bindJSON(c, &in); err != nil {
		return err
	}
	res, err := s.opts.HostEndpoints.RedeliverHost(c.Request().Context(), actor(c), c.Param("endpoint_id"), marketplace.RedeliveryRequest{
		Deliveries: in.Deliveries, Status: in.Status, Since: in.Since, Until: in.Until})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, map[string]any{"count": res.Count, "background": res.Background})
}

func (s *Server) hostStats(c echo.Context) error {
	return s.writeStats(c, func(since, until time.Time, res time.Duration) ([]webhooks.Bucket, webhooks.Bucket, error) {
		return s.opts.HostEndpoints.HostStats(c.Request().Context(), actor(c), c.Param("endpoint_id"), since, until, res)
	})
}
