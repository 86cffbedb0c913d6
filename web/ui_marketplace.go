package web

import (
	"context"
	"net/http"
	"net/url"

	"github.com/labstack/echo/v4"

	"github.com/plugboard/plugboard/app/page"
	"github.com/plugboard/plugboard/marketplace"
)

// directoryPage is the marketplace's data.
type directoryPage struct {
	Apps       page.Page[marketplace.AppView]
	Query      url.Values
	Search     string
	Category   string
	Sort       string
	Categories []string
	Installed  map[int64]string // app id → installation uuid in the current org
}

func (s *Server) marketplaceDirectory(c echo.Context) error {
	r, err := pageRequest(c)
	if err != nil {
		return err
	}
	r.Limit = 24
	sortBy := c.QueryParam("sort")
	switch sortBy {
	case marketplace.SortInstalls, marketplace.SortCreated, marketplace.SortName:
	default:
		sortBy = marketplace.SortInstalls
	}
	d := directoryPage{Query: c.QueryParams(), Search: c.QueryParam("q"), Category: c.QueryParam("category"),
		Sort: sortBy, Categories: marketplace.Categories}
	d.Apps, err = s.opts.Apps.Directory(c.Request().Context(), actor(c), marketplace.DirectoryQuery{
		Query: d.Search, Category: d.Category, SortBy: sortBy, Plans: true}, r)
	if err != nil {
		return err
	}
	v := s.newView(c, "Marketplace")
	v.Section = "marketplace"
	d.Installed = s.installedApps(c.Request().Context(), v)
	v.Data = d
	return s.render(c, http.StatusOK, "marketplace", v)
}

// installedApps maps the apps live in the current organization to their
// installation, so the marketplace can say "Installed".
func (s *Server) installedApps(ctx context.Context, v *view) map[int64]string {
	out := map[int64]string{}
	if v.Org == nil {
		return out
	}
	// Only live installations: uninstalled ones listed first would push
	// them off the page.
	p, err := s.opts.Installs.ListLiveOrgInstallations(ctx, v.Actor, v.Org.Org.Slug, page.Request{Limit: page.MaxLimit})
	if err != nil {
		return out // the page still works without the badges
	}
	for _, in := range p.Items {
		out[in.AppID] = in.UUID
	}
	return out
}

// appPage is an app's marketplace page.
type appPage struct {
	App       *marketplace.AppView
	Scopes    []marketplace.Scope
	Plans     []marketplace.Plan
	Installed string // the installation uuid in the current organization
}

func (s *Server) marketplaceApp(c echo.Context) error {
	ctx := c.Request().Context()
	a := actor(c)
	app, err := s.opts.Apps.GetApp(ctx, a, c.Param("app_slug"))
	if err != nil {
		return err
	}
	plans, err := s.opts.Apps.ListPlans(ctx, a, app.Slug)
	if err != nil {
		return err
	}
	scopes, err := s.describeScopes(ctx, app.Scopes)
	if err != nil {
		return err
	}
	v := s.newView(c, app.Name)
	v.Section = "marketplace"
	v.Data = appPage{App: app, Scopes: scopes, Plans: plans, Installed: s.installedApps(ctx, v)[app.ID]}
	return s.render(c, http.StatusOK, "marketplace_app", v)
}

// describeScopes gives each scope name its plain-words description.
func (s *Server) describeScopes(ctx context.Context, names []string) ([]marketplace.Scope, error) {
	all, err := s.opts.Events.Scopes(ctx)
	if err != nil {
		return nil, err
	}
	byName := make(map[string]marketplace.Scope, len(all))
	for _, sc := range all {
		byName[sc.Name] = sc
	}
	out := make([]marketplace.Scope, 0, len(names))
	for _, n := range names {
		sc, ok := byName[n]
		if !ok {
			sc = marketplace.Scope{Name: n, Description: n}
		}
		out = append(out, sc)
	}
	return out, nil
}

// consentPage is the install consent, shared by the marketplace's Install
// button and /oauth/authorize.
type consentPage struct {
	App          *marketplace.App
	Scopes       []marketplace.Scope
	Orgs         []marketplace.OrgAccess // where the user may install
	Plans        []marketplace.Plan
	Org          string // the organization chosen
	Plan         string // the plan chosen
	Action       string // where the form posts
	Hidden       map[string]string
	RedirectHost string
	OAuth        bool   // /oauth/authorize: the partner started it
	Existing     string // the live installation's uuid, when installed already
	ExistingOrg  string
}

func (s *Server) installForm(c echo.Context) error {
	cp, err := s.installConsent(c)
	if err != nil {
		return err
	}
	v := s.newView(c, "Install "+cp.App.Name)
	v.Section = "marketplace"
	if cp.Org == "" && v.Org != nil {
		cp.Org = v.Org.Org.Slug
	}
	v.Data = cp
	return s.render(c, http.StatusOK, "install", v)
}

// installConsent gathers what the consent page shows for the app in the path.
func (s *Server) installConsent(c echo.Context) (*consentPage, error) {
	ctx := c.Request().Context()
	a := actor(c)
	app, err := s.opts.Apps.GetApp(ctx, a, c.Param("app_slug"))
	if err != nil {
		return nil, err
	}
	plans, err := s.opts.Apps.ListPlans(ctx, a, app.Slug)
	if err != nil {
		return nil, err
	}
	scopes, err := s.describeScopes(ctx, app.Scopes)
	if err != nil {
		return nil, err
	}
	orgs, err := s.opts.Orgs.ListOrganizations(ctx, a, page.Request{Limit: page.MaxLimit})
	if err != nil {
		return nil, err
	}
	cp := &consentPage{App: &app.App, Scopes: scopes, Plans: plans, Action: "/marketplace/" + app.Slug + "/install",
		Org: c.FormValue("org"), Plan: c.FormValue("plan")}
	for _, o := range orgs.Items {
		if o.IsAdmin() {
			cp.Orgs = append(cp.Orgs, o)
		}
	}
	if u, err := url.Parse(app.RedirectURL); err == nil && app.RedirectURL != "" {
		cp.RedirectHost = u.Host
	}
	if cp.Plan == "" && len(plans) > 0 {
		cp.Plan = plans[0].Slug
	}
	return cp, nil
}

// failConsent puts err on the consent page: org and plan errors beside
// their fields, a refusal about the app itself (which has no field) above
// the form.
func failConsent(v *view, err error, c echo.Context, appName string) {
	v.fail(err, c)
	if msg, ok := v.Errors["app"]; ok {
		v.ErrorMsg = appName + ": " + msg
	}
}

// installApp installs the app and sends the browser to the partner with
// the code, or back to the installed apps when the app has no redirect URL.
func (s *Server) installApp(c echo.Context) error {
	org := c.FormValue("org")
	res, err := s.opts.Installs.Install(c.Request().Context(), actor(c), org, c.Param("app_slug"), c.FormValue("plan"))
	if formFault(err) {
		cp, cerr := s.installConsent(c)
		if cerr != nil {
			return cerr
		}
		if live, ok := marketplace.ExistingInstallation(err); ok {
			cp.Existing, cp.ExistingOrg = live.UUID, org
		}
		v := s.newView(c, "Install "+cp.App.Name)
		v.Section = "marketplace"
		failConsent(v, err, c, cp.App.Name)
		v.Data = cp
		return s.render(c, uiStatus(err), "install", v)
	}
	if err != nil {
		return err
	}
	s.rememberOrg(c, org)
	if res.RedirectURL == "" {
		return s.redirect(c, "/orgs/"+url.PathEscape(org)+"/installations", "Installed "+c.Param("app_slug")+".")
	}
	return c.Redirect(http.StatusSeeOther, res.RedirectURL)
}
