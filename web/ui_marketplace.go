package web

import (
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
	r, err := s.pageRequest(c)
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
	v := s.newView(c, "Marketplace")
	v.Section = "marketplace"
	pg, err := s.opts.Apps.DirectoryPage(c.Request().Context(), actor(c), marketplace.DirectoryQuery{
		Query: d.Search, Category: d.Category, SortBy: sortBy, Plans: true}, r, currentOrg(v))
	if err != nil {
		return err
	}
	d.Apps, d.Installed = pg.Apps, pg.Installed
	v.Data = d
	return s.render(c, http.StatusOK, "marketplace", v)
}

// currentOrg is the slug of the view's current organization; "" for none.
func currentOrg(v *view) string {
	if v.Org == nil {
		return ""
	}
	return v.Org.Org.Slug
}

// appPage is an app's marketplace page.
type appPage struct {
	App       *marketplace.AppView
	Scopes    []marketplace.Scope
	Plans     []marketplace.Plan
	Installed string // the installation uuid in the current organization
}

func (s *Server) marketplaceApp(c echo.Context) error {
	// The view first: it knows the current organization, where the page
	// says whether the app is installed. Its title waits for the app.
	v := s.newView(c, "")
	v.Section = "marketplace"
	pg, err := s.opts.Apps.ListingPage(c.Request().Context(), actor(c), c.Param("app_slug"), currentOrg(v))
	if err != nil {
		return err
	}
	v.Title = pg.App.Name
	v.Data = appPage{App: pg.App, Scopes: pg.Scopes, Plans: pg.Plans, Installed: pg.Installed}
	return s.render(c, http.StatusOK, "marketplace_app", v)
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
	SignIn       []string // OpenID Connect: what signing in shares with the app (oidc.go)
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
	pg, err := s.opts.Apps.ConsentPage(c.Request().Context(), actor(c), c.Param("app_slug"))
	if err != nil {
		return nil, err
	}
	app := pg.App
	cp := &consentPage{App: &app.App, Scopes: pg.Scopes, Plans: pg.Plans, Orgs: pg.Orgs, Action: "/marketplace/" + app.Slug + "/install",
		Org: c.FormValue("org"), Plan: c.FormValue("plan")}
	if u, err := url.Parse(app.RedirectURL); err == nil && app.RedirectURL != "" {
		cp.RedirectHost = u.Host
	}
	if cp.Plan == "" && len(pg.Plans) > 0 {
		cp.Plan = pg.Plans[0].Slug
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
