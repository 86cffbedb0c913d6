package web

import (
	"context"
	"net/http"
	"net/url"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/plugboard/plugboard/app/fault"
)

// routes is the one map of every path the server answers.
func (s *Server) routes() {
	e := s.e
	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	if s.opts.Registry != nil {
		e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(s.opts.Registry, promhttp.HandlerOpts{})))
	}
	if s.opts.Queues != nil {
		e.Any("/admin/queues*", echo.WrapHandler(s.opts.Queues), s.authenticate, s.queuesGuard)
	}
	s.e.IPExtractor = echo.ExtractIPDirect()

	// Per-route middleware, not a group: echo gives a group with middleware a
	// catch-all route, which would answer 404 where 405 is right.
	api := apiRoutes{e: e, prefix: "/api/0", mw: s.apiAuthenticate}
	api.GET("/openapi.json", s.openapi)
	api.GET("/scopes/", s.listScopes)
	api.GET("/event-types/", s.listEventTypes)
	api.POST("/event-types/", s.createEventType)
	api.GET("/service-tokens/", s.listServiceTokens)
	api.POST("/service-tokens/", s.createServiceToken)
	api.DELETE("/service-tokens/:token_id/", s.revokeServiceToken)

	api.POST("/users/", s.signUp)
	api.GET("/users/me/", s.me)
	api.POST("/auth/", s.signIn)
	api.DELETE("/auth/", s.signOut)
	api.GET("/api-tokens/", s.listAPITokens)
	api.POST("/api-tokens/", s.createAPIToken)
	api.DELETE("/api-tokens/:token_id/", s.deleteAPIToken)

	api.GET("/organizations/", s.listOrgs)
	api.POST("/organizations/", s.createOrg)
	api.GET("/organizations/:org/", s.getOrg)
	api.PUT("/organizations/:org/", s.updateOrg)
	api.DELETE("/organizations/:org/", s.deleteOrg)
	api.GET("/organizations/:org/members/", s.listMembers)
	api.POST("/organizations/:org/members/", s.addMember)
	api.PUT("/organizations/:org/members/:member_id/", s.updateMember)
	api.DELETE("/organizations/:org/members/:member_id/", s.removeMember)
	api.GET("/organizations/:org/apps/", s.listOrgApps)
	api.POST("/organizations/:org/apps/", s.createApp)
	api.GET("/organizations/:org/audit-logs/", s.listAuditLogs)

	api.GET("/apps/", s.directory)
	api.GET("/apps/:app_slug/", s.getApp)
	api.PUT("/apps/:app_slug/", s.updateApp)
	api.DELETE("/apps/:app_slug/", s.deleteApp)
	api.POST("/apps/:app_slug/publish-requests/", s.submitApp)
	api.POST("/apps/:app_slug/rotate-secret/", s.rotateSecret)
	api.POST("/apps/:app_slug/rotate-webhook-secret/", s.rotateWebhookSecret)
	api.GET("/apps/:app_slug/plans/", s.listPlans)
	api.POST("/apps/:app_slug/plans/", s.createPlan)
	api.PUT("/apps/:app_slug/plans/:plan_slug/", s.updatePlan)
	api.DELETE("/apps/:app_slug/plans/:plan_slug/", s.deletePlan)
	api.GET("/apps/:app_slug/installations/", s.listAppInstallations)
	api.GET("/apps/:app_slug/revisions/", s.listRevisions)
	api.GET("/apps/:app_slug/revisions/:revision_id/", s.getRevision)
	api.PUT("/apps/:app_slug/revisions/:revision_id/", s.decideRevision)
	api.POST("/apps/:app_slug/revisions/:revision_id/publish-requests/", s.submitRevision)
	api.GET("/apps/:app_slug/deliveries/", s.listDeliveries)
	api.GET("/apps/:app_slug/deliveries/:delivery_id/", s.getDelivery)
	api.POST("/apps/:app_slug/redeliveries/", s.redeliver)
	api.POST("/apps/:app_slug/test-events/", s.testEvent)
	api.GET("/apps/:app_slug/stats/", s.stats)
	api.GET("/apps/:app_slug/delivery-stream/", s.deliveryStream)
	// Partner revenue (api_revenue.go)
	api.GET("/apps/:app_slug/revenue/", s.appRevenue)
	api.GET("/apps/:app_slug/payouts/", s.listPayouts)
	api.GET("/apps/:app_slug/commission/", s.getCommission)
	api.PUT("/apps/:app_slug/commission/", s.setCommission)
	api.GET("/host-endpoints/", s.listHostEndpoints)
	api.POST("/host-endpoints/", s.createHostEndpoint)
	api.GET("/host-endpoints/:endpoint_id/", s.getHostEndpoint)
	api.PUT("/host-endpoints/:endpoint_id/", s.updateHostEndpoint)
	api.DELETE("/host-endpoints/:endpoint_id/", s.deleteHostEndpoint)
	api.POST("/host-endpoints/:endpoint_id/rotate-secret/", s.rotateHostEndpointSecret)
	api.GET("/host-endpoints/:endpoint_id/deliveries/", s.listHostDeliveries)
	api.GET("/host-endpoints/:endpoint_id/deliveries/:delivery_id/", s.getHostDelivery)
	api.POST("/host-endpoints/:endpoint_id/redeliveries/", s.redeliverHost)
	api.GET("/host-endpoints/:endpoint_id/stats/", s.hostStats)
	api.GET("/organizations/:org/events/", s.listEvents)
	api.POST("/organizations/:org/events/", s.publishEvent)
	api.POST("/event-batches/", s.publishEventBatch)

	api.GET("/organizations/:org/installations/", s.listOrgInstallations)
	api.POST("/organizations/:org/installations/", s.install)
	api.GET("/installations/:uuid/", s.getInstallation)
	api.PUT("/installations/:uuid/", s.updateInstallation)
	api.DELETE("/installations/:uuid/", s.uninstall)
	api.POST("/installations/:uuid/authorizations/", s.authorizeInstallation)
	api.POST("/installations/:uuid/grants/", s.requestGrant)
	api.POST("/installations/:uuid/access-tokens/", s.mintAccessToken)
	api.GET("/installations/:uuid/config-vars/", s.listConfigVars)
	api.PUT("/installations/:uuid/config-vars/", s.setConfigVars)
	api.POST("/installations/:uuid/permission-acceptances/", s.acceptPermissions)
	api.POST("/installations/:uuid/suspensions/", s.suspend)
	api.DELETE("/installations/:uuid/suspensions/", s.unsuspend)
	// Billing (api_billing.go)
	api.POST("/installations/:uuid/usage-records/", s.reportUsage)
	api.GET("/installations/:uuid/usage-records/", s.listUsageRecords)
	api.GET("/organizations/:org/invoices/", s.listOrgInvoices)
	api.GET("/organizations/:org/invoices/:invoice_id/", s.getOrgInvoice)
	api.GET("/organizations/:org/upcoming-invoice/", s.upcomingInvoice)
	api.GET("/invoices/", s.listInvoices)
	api.PUT("/invoices/:invoice_id/", s.updateInvoice)
	api.GET("/apps/:app_slug/reconciliation-runs/", s.listAppRuns)
	api.GET("/reconciliation-runs/", s.listRuns)

	// OAuth 2.0: RFC 6749, 7636 (PKCE), 7009 (revocation), 7662 (introspection, for the host), 8414 (metadata).
	e.POST("/oauth/token", s.token)
	e.POST("/oauth/revoke", s.revoke)
	e.POST(introspectPath, s.introspect)
	e.GET("/.well-known/oauth-authorization-server", s.metadata)
	e.GET("/.well-known/jwks.json", s.jwks)
	e.GET("/oauth/authorize", s.authorize, s.authenticate)
	e.POST("/oauth/authorize", s.decide, s.authenticate)
	// OpenID Connect (oidc.go): discovery and UserInfo; the id_token comes from /oauth/token.
	e.GET("/.well-known/openid-configuration", s.openIDConfiguration)
	e.GET("/oauth/userinfo", s.userinfo)
	e.POST("/oauth/userinfo", s.userinfo)

	e.GET("/docs/api", s.apiDocs)
	e.GET("/docs/problems", s.problemsDoc)
	e.GET("/assets/*", assetHandler())

	// HTML pages: page() for everyone, user() for the signed-in.
	ui := uiRouter{s: s, e: e}
	// Accounts
	ui.page(http.MethodGet, "/", s.home)
	ui.page(http.MethodGet, "/signup", s.signUpForm)
	ui.page(http.MethodPost, "/signup", s.signUpPage)
	ui.page(http.MethodGet, "/login", s.loginForm)
	ui.page(http.MethodPost, "/login", s.login)
	ui.user(http.MethodPost, "/logout", s.logout)
	ui.user(http.MethodGet, "/orgs/new", s.newOrgForm)
	ui.user(http.MethodPost, "/orgs/new", s.createOrgPage)
	ui.user(http.MethodGet, "/orgs/:org/", s.orgHome)
	// The marketplace
	ui.page(http.MethodGet, "/marketplace", s.marketplaceDirectory)
	ui.page(http.MethodGet, "/marketplace/:app_slug", s.marketplaceApp)
	ui.user(http.MethodGet, "/marketplace/:app_slug/install", s.installForm)
	ui.user(http.MethodPost, "/marketplace/:app_slug/install", s.installApp)
	// Organizations: installed apps, members, audit log
	ui.user(http.MethodGet, "/orgs/:org/installations", s.orgInstallationsPage)
	ui.user(http.MethodGet, "/orgs/:org/installations/:uuid", s.orgInstallationPage)
	ui.user(http.MethodPost, "/orgs/:org/installations/:uuid/plan", s.orgChangePlan)
	ui.user(http.MethodGet, "/orgs/:org/installations/:uuid/uninstall", s.orgUninstallConfirm)
	ui.user(http.MethodPost, "/orgs/:org/installations/:uuid/uninstall", s.orgUninstall)
	ui.user(http.MethodPost, "/orgs/:org/installations/:uuid/sso", s.orgSignOn)
	ui.user(http.MethodPost, "/orgs/:org/installations/:uuid/config-vars/reveal", s.orgRevealConfigVar)
	ui.user(http.MethodPost, "/orgs/:org/installations/:uuid/permissions", s.orgAcceptPermissions)
	ui.user(http.MethodPost, "/orgs/:org/installations/:uuid/suspend", s.orgSuspend)
	ui.user(http.MethodPost, "/orgs/:org/installations/:uuid/unsuspend", s.orgUnsuspend)
	ui.user(http.MethodGet, "/orgs/:org/members", s.orgMembersPage)
	ui.user(http.MethodPost, "/orgs/:org/members", s.orgAddMember)
	ui.user(http.MethodPost, "/orgs/:org/members/:id/role", s.orgChangeRole)
	ui.user(http.MethodGet, "/orgs/:org/members/:id/remove", s.orgRemoveMemberConfirm)
	ui.user(http.MethodPost, "/orgs/:org/members/:id/remove", s.orgRemoveMember)
	ui.user(http.MethodGet, "/orgs/:org/audit-log", s.orgAuditPage)
	ui.user(http.MethodGet, "/orgs/:org/billing", s.orgBillingPage)
	ui.user(http.MethodGet, "/orgs/:org/billing/invoices/:id", s.orgInvoicePage)
	// The partner dashboard
	ui.user(http.MethodGet, "/orgs/:org/apps", s.partnerApps)
	ui.user(http.MethodGet, "/orgs/:org/apps/new", s.partnerNewApp)
	ui.user(http.MethodPost, "/orgs/:org/apps/new", s.partnerCreateApp)

	ui.user(http.MethodGet, "/apps/:slug", func(c echo.Context) error {
		return c.Redirect(http.StatusMovedPermanently, "/apps/"+url.PathEscape(c.Param("slug"))+"/")
	})
	ui.user(http.MethodGet, "/apps/:slug/", s.withApp(s.partnerOverview))
	ui.user(http.MethodPost, "/apps/:slug/submit", s.partnerSubmit)
	ui.user(http.MethodGet, "/apps/:slug/settings", s.withApp(s.partnerSettings))
	ui.user(http.MethodPost, "/apps/:slug/settings", s.withApp(s.partnerSaveSettings))
	ui.user(http.MethodGet, "/apps/:slug/delete", s.withApp(s.partnerConfirmDelete))
	ui.user(http.MethodPost, "/apps/:slug/delete", s.withApp(s.partnerDelete))

	ui.user(http.MethodGet, "/apps/:slug/plans", s.withApp(s.partnerPlans))
	ui.user(http.MethodPost, "/apps/:slug/plans", s.withApp(s.partnerCreatePlan))
	ui.user(http.MethodGet, "/apps/:slug/plans/:plan/edit", s.withApp(s.partnerEditPlan))
	ui.user(http.MethodPost, "/apps/:slug/plans/:plan/edit", s.withApp(s.partnerUpdatePlan))
	ui.user(http.MethodGet, "/apps/:slug/plans/:plan/delete", s.withApp(s.partnerConfirmDeletePlan))
	ui.user(http.MethodPost, "/apps/:slug/plans/:plan/delete", s.withApp(s.partnerDeletePlan))

	ui.user(http.MethodGet, "/apps/:slug/credentials", s.withApp(s.partnerCredentials))
	ui.user(http.MethodGet, "/apps/:slug/secrets/:key", s.withApp(s.partnerOneTimeSecrets))
	ui.user(http.MethodGet, "/apps/:slug/rotate-secret", s.withApp(s.partnerConfirmRotateSecret))
	ui.user(http.MethodPost, "/apps/:slug/rotate-secret", s.withApp(s.partnerRotateSecret))
	ui.user(http.MethodGet, "/apps/:slug/rotate-webhook-secret", s.withApp(s.partnerConfirmRotateWebhookSecret))
	ui.user(http.MethodPost, "/apps/:slug/rotate-webhook-secret", s.withApp(s.partnerRotateWebhookSecret))

	ui.user(http.MethodGet, "/apps/:slug/installations", s.withApp(s.partnerInstallations))
	ui.user(http.MethodGet, "/apps/:slug/revisions", s.withApp(s.partnerRevisions))
	ui.user(http.MethodPost, "/apps/:slug/revisions/:number/submit", s.withApp(s.partnerSubmitRevision))
	// Delivery log and health
	ui.user(http.MethodGet, "/apps/:slug/deliveries", s.withApp(s.deliveriesPage))
	ui.user(http.MethodGet, "/apps/:slug/deliveries/:id", s.withApp(s.deliveryPage))
	ui.user(http.MethodGet, "/apps/:slug/deliveries/:id/payload", s.withApp(s.deliveryPayload))
	ui.user(http.MethodPost, "/apps/:slug/deliveries/:id/redeliver", s.withApp(s.redeliverOnePage))
	ui.user(http.MethodPost, "/apps/:slug/redeliveries", s.withApp(s.redeliverFailedPage))
	ui.user(http.MethodPost, "/apps/:slug/test-events", s.withApp(s.testEventPage))
	ui.user(http.MethodPost, "/apps/:slug/endpoint/enable", s.withApp(s.enableEndpointPage))
	ui.user(http.MethodGet, "/apps/:slug/health", s.withApp(s.healthPage))
	// Revenue (ui_revenue.go)
	ui.user(http.MethodGet, "/apps/:slug/revenue", s.withApp(s.revenuePage))
	ui.user(http.MethodGet, "/apps/:slug/payouts/:file", s.withApp(s.payoutsCSV))
	// Operators
	ui.user(http.MethodGet, "/admin", s.adminRedirect)
	ui.user(http.MethodGet, "/admin/", s.adminHome)
	ui.user(http.MethodGet, "/admin/review", s.adminReviewQueue)
	ui.user(http.MethodGet, "/admin/review/:slug", s.adminReviewPage)
	ui.user(http.MethodPost, "/admin/review/:slug/approve", s.adminApprove)
	ui.user(http.MethodPost, "/admin/review/:slug/reject", s.adminReject)
	ui.user(http.MethodGet, "/admin/review/:slug/revisions/:number", s.adminRevisionPage)
	ui.user(http.MethodPost, "/admin/review/:slug/revisions/:number/approve", s.adminApproveRevision)
	ui.user(http.MethodPost, "/admin/review/:slug/revisions/:number/reject", s.adminRejectRevision)
	ui.user(http.MethodPost, "/admin/review/:slug/suspend", s.adminSuspendApp)
	ui.user(http.MethodPost, "/admin/review/:slug/unsuspend", s.adminUnsuspendApp)
	ui.user(http.MethodGet, "/admin/event-types", s.adminEventTypes)
	ui.user(http.MethodPost, "/admin/event-types", s.adminCreateEventType)
	ui.user(http.MethodGet, "/admin/revenue", s.adminRevenue)
	ui.user(http.MethodPost, "/admin/revenue/commission", s.adminSetCommission)
	ui.user(http.MethodGet, "/admin/reconciliation", s.adminRuns)
	ui.user(http.MethodGet, "/admin/host-endpoints", s.adminHostEndpoints)
	ui.user(http.MethodPost, "/admin/host-endpoints", s.adminCreateHostEndpoint)
	ui.user(http.MethodGet, "/admin/host-endpoints/:id", s.adminHostEndpoint)
	ui.user(http.MethodPost, "/admin/host-endpoints/:id", s.adminUpdateHostEndpoint)
	ui.user(http.MethodGet, "/admin/host-endpoints/:id/secrets/:key", s.adminHostSecret)
	ui.user(http.MethodGet, "/admin/host-endpoints/:id/rotate-secret", s.adminConfirmRotateHostSecret)
	ui.user(http.MethodPost, "/admin/host-endpoints/:id/rotate-secret", s.adminRotateHostSecret)
	ui.user(http.MethodGet, "/admin/host-endpoints/:id/delete", s.adminConfirmDeleteHost)
	ui.user(http.MethodPost, "/admin/host-endpoints/:id/delete", s.adminDeleteHost)
	ui.user(http.MethodGet, "/admin/host-endpoints/:id/deliveries/:delivery", s.adminHostDelivery)
	ui.user(http.MethodPost, "/admin/host-endpoints/:id/deliveries/:delivery/redeliver", s.adminRedeliverHost)
}

// queuesGuard keeps the asynq monitoring UI to operators: browsers signed
// out are sent to sign in, everyone else who is not an operator gets 404.
func (s *Server) queuesGuard(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		a := actor(c)
		if a.IsOperator() {
			return next(c)
		}
		if !a.SignedIn() && c.Request().Method == http.MethodGet && wantsHTML(c) {
			return c.Redirect(http.StatusFound, "/login?next="+url.QueryEscape(c.Request().URL.RequestURI()))
		}
		return echo.ErrNotFound
	}
}

// anyone lists the /api/0 routes a caller without credentials may use (the
// OpenAPI document gives each the empty security requirement `{}`;
// TestAnonymousCallersAreRefusedFirst checks the two agree). Every other
// route answers an anonymous caller 401 before its handler reads the body
// or looks anything up.
var anyone = map[string]bool{
	"GET /openapi.json":          true,
	"GET /scopes/":               true,
	"POST /users/":               true,
	"POST /auth/":                true,
	"GET /apps/":                 true,
	"GET /apps/:app_slug/":       true,
	"GET /apps/:app_slug/plans/": true,
	"POST /installations/:uuid/authorizations/": true, // the app's credentials are in the body
}

// apiRoutes registers routes under a prefix with the authentication
// middleware on each, the caller's rate limit, and, on routes not open to
// anyone, the refusal of anonymous callers.
type apiRoutes struct {
	e      *echo.Echo
	prefix string
	mw     echo.MiddlewareFunc
}

func (r apiRoutes) GET(path string, h echo.HandlerFunc)    { r.add(http.MethodGet, path, h) }
func (r apiRoutes) POST(path string, h echo.HandlerFunc)   { r.add(http.MethodPost, path, h) }
func (r apiRoutes) PUT(path string, h echo.HandlerFunc)    { r.add(http.MethodPut, path, h) }
func (r apiRoutes) DELETE(path string, h echo.HandlerFunc) { r.add(http.MethodDelete, path, h) }

func (r apiRoutes) add(method, path string, h echo.HandlerFunc) {
	mw := []echo.MiddlewareFunc{r.mw}
	if !anyone[method+" "+path] {
		mw = append(mw, requireCredential)
	}
	r.e.Add(method, r.prefix+path, h, mw...)
}

// requireCredential answers 401 to a caller who sent no credentials.
func requireCredential(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		a := actor(c)
		if a.User == nil && a.App == nil && a.Installation == nil && a.Service == nil {
			return fault.Unauthorized(fault.NotAuthenticated, "Sign in, or send credentials: Authorization: Bearer <token>, or Basic with an app's client id and secret.")
		}
		return next(c)
	}
}

// serveHead answers HEAD as GET without the body (RFC 9110 §9.3.2): the
// route is found, authorised and run as the GET, and what it writes is
// dropped. The server keeps the request it got, a HEAD, so net/http
// frames the answer as one. Once the headers are flushed the answer is
// complete, so a streaming handler is stopped there.
func (s *Server) serveHead(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithCancel(context.WithValue(r.Context(), headKey{}, true))
	defer cancel()
	get := r.Clone(ctx)
	get.Method = http.MethodGet
	s.e.ServeHTTP(headWriter{w, cancel}, get)
}

type headKey struct{}

// isHead reports whether the request came as HEAD (serveHead made it a GET).
func isHead(c echo.Context) bool { v, _ := c.Request().Context().Value(headKey{}).(bool); return v }

// headWriter drops the body of a HEAD response; headers and status pass.
type headWriter struct {
	http.ResponseWriter
	done context.CancelFunc
}

func (w headWriter) Write(p []byte) (int, error) { return len(p), nil }

// Flush sends the headers, which is all of a HEAD answer, and ends the
// request.
func (w headWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
	w.done()
}

// Unwrap gives http.ResponseController the real writer.
func (w headWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
