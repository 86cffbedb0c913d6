package web

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/plugboard/plugboard/marketplace"
)

type appRequest struct {
	Name          *string   `json:"name"`
	Slug          *string   `json:"slug"`
	Kind          *string   `json:"kind"`
	Author        *string   `json:"author"`
	Overview      *string   `json:"overview"`
	Categories    *[]string `json:"categories"`
	Scopes        *[]string `json:"scopes"`
	Events        *[]string `json:"events"`
	WebhookURL    *string   `json:"webhookUrl"`
	RedirectURL   *string   `json:"redirectUrl"`
	VerifyInstall *bool     `json:"verifyInstall"`
	SyncURL       *string   `json:"syncUrl"`
	SSOURL        *string   `json:"ssoUrl"`
	ProvisionURL  *string   `json:"provisionUrl"`
	ConfigPrefix  *string   `json:"configPrefix"`
	LogoURL       *string   `json:"logoUrl"`
	PublicKey     *string   `json:"publicKey"`
}

func toAppFields(in appRequest) marketplace.AppFields {
	return marketplace.AppFields{Name: in.Name, Slug: in.Slug, Kind: in.Kind, Author: in.Author, Overview: in.Overview,
		Categories: in.Categories, Scopes: in.Scopes, Events: in.Events, WebhookURL: in.WebhookURL, RedirectURL: in.RedirectURL,
		VerifyInstall: in.VerifyInstall, SyncURL: in.SyncURL, LogoURL: in.LogoURL, PublicKey: in.PublicKey, SSOURL: in.SSOURL,
		ProvisionURL: in.ProvisionURL, ConfigPrefix: in.ConfigPrefix}
}

type appUpdateRequest struct {
	appRequest
	Status             *string `json:"status"`
	StatusReason       *string `json:"statusReason"`
	WebhookStatus      *string `json:"webhookStatus"`
	WebhookRateLimit   *int    `json:"webhookRateLimit"`
	WebhookMaxInFlight *int    `json:"webhookMaxInFlight"`
}

func (s *Server) directory(c echo.Context) error {
	r, err := s.pageRequest(c)
	if err != nil {
		return err
	}
	sortBy, err := sortParam(c, marketplace.SortName, marketplace.SortName, marketplace.SortInstalls, marketplace.SortCreated)
	if err != nil {
		return err
	}
	expand, err := expandParam(c, "plans")
	if err != nil {
		return err
	}
	p, err := s.opts.Apps.Directory(c.Request().Context(), actor(c), marketplace.DirectoryQuery{
		Query: c.QueryParam("query"), Category: c.QueryParam("category"), SortBy: sortBy, Status: c.QueryParam("status"), Plans: expand["plans"],
	}, r)
	if err != nil {
		return err
	}
	return writePage(s, c, p, func(v marketplace.AppView) appJSON { return toAppJSON(v, expand["plans"]) })
}

func (s *Server) listOrgApps(c echo.Context) error {
	r, err := s.pageRequest(c)
	if err != nil {
		return err
	}
	p, err := s.opts.Apps.ListOrgApps(c.Request().Context(), actor(c), c.Param("org"), r)
	if err != nil {
		return err
	}
	return writePage(s, c, p, func(v marketplace.AppView) appJSON { return toAppJSON(v, false) })
}

func (s *Server) createApp(c echo.Context) error {
	var in appRequest
	if err := bindJSON(c, &in); err != nil {
		return err
	}
	app, err := s.opts.Apps.CreateApp(c.Request().Context(), actor(c), c.Param("org"), toAppFields(in))
	if err != nil {
		return err
	}
	out := toAppJSON(app.AppView, false)
	out.ClientSecret, out.WebhookSecret = app.ClientSecret, app.WebhookSecret
	if app.Installation != nil {
		inst := toInstallationJSON(app.Installation)
		out.Installation, out.Token = &inst, app.Token
	}
	return created(c, "/api/0/apps/"+app.Slug+"/", out)
}

func (s *Server) getApp(c echo.Context) error {
	v, err := s.opts.Apps.GetApp(c.Request().Context(), actor(c), c.Param("app_slug"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toAppJSON(*v, true))
}

func (s *Server) updateApp(c echo.Context) error {
	var in appUpdateRequest
	if err := bindJSON(c, &in); err != nil {
		return err
	}
	v, err := s.opts.Apps.UpdateApp(c.Request().Context(), actor(c), c.Param("app_slug"), marketplace.AppUpdate{
		AppFields: toAppFields(in.appRequest), Status: in.Status, StatusReason: in.StatusReason,
		WebhookStatus: in.WebhookStatus, WebhookRateLimit: in.WebhookRateLimit, WebhookMaxInFlight: in.WebhookMaxInFlight})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toAppJSON(*v, false))
}

func (s *Server) deleteApp(c echo.Context) error {
	if err := s.opts.Apps.DeleteApp(c.Request().Context(), actor(c), c.Param("app_slug")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) submitApp(c echo.Context) error {
	v, err := s.opts.Apps.SubmitApp(c.Request().Context(), actor(c), c.Param("app_slug"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, toAppJSON(*v, false))
}

type clientSecretJSON struct {
	ClientSecret string `json:"clientSecret"`
	Token        string `json:"token,omitempty"`
}

func (s *Server) rotateSecret(c echo.Context) error {
	rotated, err := s.opts.Apps.RotateClientSecret(c.Request().Context(), actor(c), c.Param("app_slug"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, clientSecretJSON{ClientSecret: rotated.ClientSecret, Token: rotated.Token})
}

type webhookSecretJSON struct {
	WebhookSecret            string    `json:"webhookSecret"`
	PreviousSecretValidUntil time.Time `json:"previousSecretValidUntil"`
}

func (s *Server) rotateWebhookSecret(c echo.Context) error {
	secret, until, err := s.opts.Apps.RotateWebhookSecret(c.Request().Context(), actor(c), c.Param("app_slug"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, webhookSecretJSON{WebhookSecret: secret, PreviousSecretValidUntil: until})
}

type planRequest struct {
	Name        *string `json:"name"`
	Slug        *string `json:"slug"`
	Description *string `json:"description"`
	Price       *string `json:"price"`
	Currency    *string `json:"currency"`
	Interval    *string `json:"interval"`

	PricingModel  *string `json:"pricingModel"`
	UnitPrice     *string `json:"unitPrice"`
	UnitName      *string `json:"unitName"`
	IncludedUnits *int64  `json:"includedUnits"`
	CappedAmount  *string `json:"cappedAmount"`
	TrialDays     *int    `json:"trialDays"`
}

func toPlanFields(in planRequest) marketplace.PlanFields {
	return marketplace.PlanFields{Name: in.Name, Slug: in.Slug, Description: in.Description, Price: in.Price, Currency: in.Currency, Interval: in.Interval,
		PricingModel: in.PricingModel, UnitPrice: in.UnitPrice, UnitName: in.UnitName, IncludedUnits: in.IncludedUnits,
		CappedAmount: in.CappedAmount, TrialDays: in.TrialDays}
}

func (s *Server) listPlans(c echo.Context) error {
	plans, err := s.opts.Apps.ListPlans(c.Request().Context(), actor(c), c.Param("app_slug"))
	if err != nil {
		return err
	}
	out := make([]planJSON, len(plans))
	for i, p := range plans {
		out[i] = toPlanJSON(p)
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) createPlan(c echo.Context) error {
	var in planRequest
	if err := bindJSON(c, &in); err != nil {
		return err
	}
	p, err := s.opts.Apps.CreatePlan(c.Request().Context(), actor(c), c.Param("app_slug"), toPlanFields(in))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, toPlanJSON(*p))
}

func (s *Server) updatePlan(c echo.Context) error {
	var in planRequest
	if err := bindJSON(c, &in); err != nil {
		return err
	}
	p, err := s.opts.Apps.UpdatePlan(c.Request().Context(), actor(c), c.Param("app_slug"), c.Param("plan_slug"), toPlanFields(in))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toPlanJSON(*p))
}

func (s *Server) deletePlan(c echo.Context) error {
	if err := s.opts.Apps.DeletePlan(c.Request().Context(), actor(c), c.Param("app_slug"), c.Param("plan_slug")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) listScopes(c echo.Context) error {
	scopes, err := s.opts.Events.Scopes(c.Request().Context())
	if err != nil {
		return err
	}
	out := make([]scopeJSON, len(scopes))
	for i, sc := range scopes {
		out[i] = scopeJSON{Name: sc.Name, Description: sc.Description, Builtin: sc.Builtin, Routes: orEmpty(sc.Routes), UsedBy: "platform"}
		if sc.HostOnly() {
			out[i].UsedBy = "host"
		}
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) listEventTypes(c echo.Context) error {
	types, err := s.opts.Events.ListEventTypes(c.Request().Context(), actor(c))
	if err != nil {
		return err
	}
	out := make([]eventTypeJSON, len(types))
	for i, t := range types {
		out[i] = toEventTypeJSON(t)
	}
	return c.JSON(http.StatusOK, out)
}
