package web

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/plugboard/plugboard/app/fault"
	"github.com/plugboard/plugboard/marketplace"
	"github.com/plugboard/plugboard/webhooks"
)

// partnerApp loads the app of the path for its developer pages: only the
// owner organization's members and operators see them; for anyone else the
// app does not exist (even when it is published in the marketplace).
func (s *Server) partnerApp(c echo.Context) (*marketplace.AppView, error) {
	v, err := s.opts.Apps.GetApp(c.Request().Context(), actor(c), c.Param("slug"))
	if err != nil {
		return nil, err
	}
	if !v.Private {
		return nil, fault.NotFound("app")
	}
	return v, nil
}

// withApp adapts h, a page of the app in the path, to a handler: the app
// is found (or the answer is its not found) before h runs.
func (s *Server) withApp(h func(c echo.Context, app *marketplace.AppView) error) echo.HandlerFunc {
	return func(c echo.Context) error {
		app, err := s.partnerApp(c)
		if err != nil {
			return err
		}
		return h(c, app)
	}
}

// partnerView starts the view of an app's developer page: the app's
// organization becomes the current one when the user belongs to it.
func (s *Server) partnerView(c echo.Context, app *marketplace.AppView, title string) *view {
	v := s.newView(c, title+" · "+app.Name)
	v.Section = "developer"
	if app.Organization != nil {
		for i := range v.Orgs {
			if v.Orgs[i].Org.ID == app.Organization.ID {
				v.Org = &v.Orgs[i]
			}
		}
	}
	return v
}

// orgSlug is the owner organization's slug of app.
func orgSlug(app *marketplace.AppView) string {
	if app.Organization == nil {
		return ""
	}
	return app.Organization.Slug
}

// --- The form of an app -------------------------------------------------

// appChoices are the lists an app form offers, and what is ticked.
type appChoices struct {
	Categories []option
	Scopes     []marketplace.Scope
	Events     []webhooks.EventType
	Chosen     struct{ Categories, Scopes, Events []string }
}

func (s *Server) appChoices(c echo.Context, app *marketplace.App, posted bool) (*appChoices, error) {
	cat, err := s.opts.Events.Catalogue(c.Request().Context(), actor(c))
	if err != nil {
		return nil, err
	}
	ch := &appChoices{Scopes: cat.Scopes, Events: cat.EventTypes}
	for _, cat := range marketplace.Categories {
		ch.Categories = append(ch.Categories, option{Value: cat, Label: categoryLabel(cat)})
	}
	switch {
	case posted:
		form, _ := c.FormParams()
		ch.Chosen.Categories, ch.Chosen.Scopes, ch.Chosen.Events = form["categories"], form["scopes"], form["events"]
	case app != nil:
		ch.Chosen.Categories, ch.Chosen.Scopes, ch.Chosen.Events = app.Categories, app.Scopes, app.Events
	}
	return ch, nil
}

// option is a choice of a form: its value and what the user reads.
type option struct{ Value, Label string }

// appFields reads an app form. Every field the form shows is given (an
// unticked box list is an empty list); an empty slug means "keep" (or, on
// creation, "make one from the name").
func appFields(c echo.Context, creating bool) marketplace.AppFields {
	form, _ := c.FormParams()
	val := func(name string) *string { v := form.Get(name); return &v }
	list := func(name string) *[]string {
		l := form[name]
		if l == nil {
			l = []string{}
		}
		return &l
	}
	verify := form.Get("verifyInstall") == "true" || form.Get("verifyInstall") == "on"
	f := marketplace.AppFields{Name: val("name"), Author: val("author"), Overview: val("overview"),
		Categories: list("categories"), Scopes: list("scopes"), Events: list("events"),
		WebhookURL: val("webhookUrl"), RedirectURL: val("redirectUrl"), VerifyInstall: &verify,
		SyncURL: val("syncUrl"), LogoURL: val("logoUrl"), PublicKey: val("publicKey"), SSOURL: val("ssoUrl"),
		ProvisionURL: val("provisionUrl"), ConfigPrefix: val("configPrefix")}
	if strings.TrimSpace(form.Get("slug")) != "" {
		f.Slug = ptrTo(strings.TrimSpace(form.Get("slug")))
	}
	if creating {
		f.Kind = val("kind")
		if *f.Kind == "" {
			f.Kind = nil
		}
	}
	return f
}

func ptrTo[T any](v T) *T { return &v }

// failForm puts err on v and keeps an unticked verifyInstall unticked.
func failForm(v *view, err error, c echo.Context) {
	v.fail(err, c)
	if !v.Form.Has("verifyInstall") {
		v.Form.Set("verifyInstall", "false")
	}
}

// partnerFormData is what partner_new and partner_settings render.
type partnerFormData struct {
	App      *marketplace.AppView
	OrgSlug  string
	Choices  *appChoices
	Values   map[string]string // the app's current values, for the settings form
	SlugHint string
}

func newFormData(app *marketplace.AppView, org string, ch *appChoices) partnerFormData {
	d := partnerFormData{App: app, OrgSlug: org, Choices: ch, Values: map[string]string{},
		SlugHint: "Lowercase letters, digits and hyphens; used in URLs and the marketplace. Made from the name when left empty."}
	if app != nil {
		d.SlugHint = "Lowercase letters, digits and hyphens; used in URLs and the marketplace. Changing it changes this app's addresses."
		d.Values = map[string]string{"name": app.Name, "slug": app.Slug, "author": app.Author, "overview": app.Overview,
			"webhookUrl": app.WebhookURL, "redirectUrl": app.RedirectURL, "verifyInstall": strconv.FormatBool(app.VerifyInstall),
			"syncUrl": app.SyncURL, "logoUrl": app.LogoURL, "publicKey": app.PublicKey, "ssoUrl": app.SSOURL,
			"provisionUrl": app.ProvisionURL, "configPrefix": app.ConfigPrefix, "derivedPrefix": app.ConfigVarPrefix()}
	}
	return d
}

// --- The list and creation ----------------------------------------------

func (s *Server) partnerApps(c echo.Context) error {
	r, err := s.pageRequest(c)
	if err != nil {
		return err
	}
	apps, err := s.opts.Apps.ListOrgAppsWithEndpoints(c.Request().Context(), actor(c), c.Param("org"), r)
	if err != nil {
		return err
	}
	v := s.newView(c, "Developer")
	v.Section = "developer"
	v.Data = map[string]any{"Apps": apps, "Query": c.QueryParams(), "OrgSlug": c.Param("org")}
	return s.render(c, http.StatusOK, "partner_apps", v)
}

func (s *Server) partnerNewApp(c echo.Context) error {
	org, err := s.opts.Orgs.GetOrganization(c.Request().Context(), actor(c), c.Param("org"))
	if err != nil {
		return err
	}
	ch, err := s.appChoices(c, nil, false)
	if err != nil {
		return err
	}
	v := s.newView(c, "Create an app")
	v.Section = "developer"
	v.Form.Set("kind", marketplace.KindPublic)
	v.Data = newFormData(nil, org.Org.Slug, ch)
	return s.render(c, http.StatusOK, "partner_form", v)
}

func (s *Server) partnerCreateApp(c echo.Context) error {
	created, err := s.opts.Apps.CreateApp(c.Request().Context(), actor(c), c.Param("org"), appFields(c, true))
	if formFault(err) {
		ch, cerr := s.appChoices(c, nil, true)
		if cerr != nil {
			return cerr
		}
		v := s.newView(c, "Create an app")
		v.Section = "developer"
		failForm(v, err, c)
		v.Data = newFormData(nil, c.Param("org"), ch)
		return s.render(c, uiStatus(err), "partner_form", v)
	}
	if err != nil {
		return err
	}
	return s.showOnce(c, created.Slug, created.ID, created)
}

// --- Overview and review --------------------------------------------------

// checkItem is one step of an app's setup checklist.
type checkItem struct {
	Done  bool
	Label string
	Hint  string
	Link  string
}

func checklist(app *marketplace.AppView) []checkItem {
	base := "/apps/" + app.Slug
	items := []checkItem{
		{len(app.Scopes) > 0, "Choose the scopes it needs", "Organizations approve these permissions when they install the app.", base + "/settings#access-h"},
		{app.WebhookURL != "", "Set a webhook URL", "Where Plugboard sends the events the app subscribes to.", base + "/settings#f-webhookUrl"},
	}
	if app.Kind == marketplace.KindInternal {
		return items
	}
	return append(items,
		checkItem{app.RedirectURL != "", "Set a redirect URL", "Installs return there with an authorization code.", base + "/settings#f-redirectUrl"},
		checkItem{strings.TrimSpace(app.Overview) != "", "Describe it", "The marketplace listing shows the overview.", base + "/settings#f-overview"},
		checkItem{len(app.Plans) > 0, "Add a plan", "Required before review: organizations install a plan, and a free plan is fine.", base + "/plans"},
		checkItem{app.Status == marketplace.StatusSubmitted || app.Status == marketplace.StatusPublished, "Submit it for review", "Operators review public apps before they are listed.", ""},
	)
}

func (s *Server) partnerOverview(c echo.Context, app *marketplace.AppView) error {
	return s.renderOverview(c, app, http.StatusOK, nil)
}

func (s *Server) renderOverview(c echo.Context, app *marketplace.AppView, status int, submitErr error) error {
	v := s.partnerView(c, app, "Overview")
	if submitErr != nil {
		v.fail(submitErr, c)
		if len(v.Errors) > 0 {
			v.ErrorMsg = "The app is not ready for review yet: complete the steps below, then submit again."
		}
	}
	v.Data = map[string]any{"App": app, "Checklist": checklist(app)}
	return s.render(c, status, "partner_overview", v)
}

func (s *Server) partnerSubmit(c echo.Context) error {
	_, err := s.opts.Apps.SubmitApp(c.Request().Context(), actor(c), c.Param("slug"))
	if formFault(err) {
		app, aerr := s.partnerApp(c)
		if aerr != nil {
			return aerr
		}
		return s.renderOverview(c, app, uiStatus(err), err)
	}
	if err != nil {
		return err
	}
	return s.redirect(c, "/apps/"+c.Param("slug")+"/", "Submitted for review. Operators will publish it or tell you what to change.")
}

// --- Settings and deletion ------------------------------------------------

func (s *Server) partnerSettings(c echo.Context, app *marketplace.AppView) error {
	return s.renderSettings(c, app, http.StatusOK, nil)
}

func (s *Server) renderSettings(c echo.Context, app *marketplace.AppView, status int, fail error) error {
	if app.Revision != nil {
		// A published app's form shows its open revision's scopes, events
		// and URLs: saving the form keeps them (app_revisions.go).
		shown := *app
		shown.App = app.Revision.Proposed(app.App)
		app = &shown
	}
	ch, err := s.appChoices(c, &app.App, fail != nil)
	if err != nil {
		return err
	}
	v := s.partnerView(c, app, "Settings")
	if fail != nil {
		failForm(v, fail, c)
	}
	v.Data = newFormData(app, orgSlug(app), ch)
	return s.render(c, status, "partner_form", v)
}

func (s *Server) partnerSaveSettings(c echo.Context, app *marketplace.AppView) error {
	saved, err := s.opts.Apps.UpdateApp(c.Request().Context(), actor(c), app.Slug, marketplace.AppUpdate{AppFields: appFields(c, false)})
	if formFault(err) {
		return s.renderSettings(c, app, uiStatus(err), err)
	}
	if err != nil {
		return err
	}
	msg := "Saved the settings of " + saved.Name + "."
	if saved.Revision != nil {
		msg += " Its changes to scopes, events and URLs wait in revision #" + strconv.Itoa(saved.Revision.Number) + ": submit it for review from Revisions."
	}
	return s.redirect(c, "/apps/"+saved.Slug+"/settings", msg)
}

func (s *Server) partnerConfirmDelete(c echo.Context, app *marketplace.AppView) error {
	return s.confirm(c, "Delete "+app.Name, confirmation{
		Heading: "Delete " + app.Name + "?",
		Message: "The app, its plans and its credentials are deleted for good, and its webhooks stop. Organizations that still have it installed must uninstall it first.",
		Action:  "/apps/" + app.Slug + "/delete", Button: "Delete app", Cancel: "/apps/" + app.Slug + "/settings", Danger: true})
}

func (s *Server) partnerDelete(c echo.Context, app *marketplace.AppView) error {
	err := s.opts.Apps.DeleteApp(c.Request().Context(), actor(c), app.Slug)
	if formFault(err) {
		v := s.partnerView(c, app, "Settings")
		v.fail(err, c)
		ch, cerr := s.appChoices(c, &app.App, false)
		if cerr != nil {
			return cerr
		}
		v.Form = url.Values{}
		v.Data = newFormData(app, orgSlug(app), ch)
		return s.render(c, uiStatus(err), "partner_form", v)
	}
	if err != nil {
		return err
	}
	return s.redirect(c, "/orgs/"+orgSlug(app)+"/apps", "Deleted "+app.Name+".")
}

// --- Plans ----------------------------------------------------------------

func planFields(c echo.Context) marketplace.PlanFields {
	val := func(name string) *string { v := strings.TrimSpace(c.FormValue(name)); return &v }
	f := marketplace.PlanFields{Name: val("name"), Description: val("description"), Price: val("price"),
		Currency: ptrTo(strings.ToUpper(strings.TrimSpace(c.FormValue("currency")))), Interval: val("interval")}
	if slug := strings.TrimSpace(c.FormValue("slug")); slug != "" {
		f.Slug = &slug
	}
	return f
}

func (s *Server) partnerPlans(c echo.Context, app *marketplace.AppView) error {
	return s.renderPlans(c, app, http.StatusOK, nil)
}

func (s *Server) renderPlans(c echo.Context, app *marketplace.AppView, status int, fail error) error {
	v := s.partnerView(c, app, "Plans")
	if fail != nil {
		v.fail(fail, c)
		if c.Param("plan") != "" { // a refused delete: the add form stays empty
			v.Form = url.Values{}
		}
	}
	if !v.Form.Has("currency") {
		v.Form.Set("currency", "USD")
	}
	v.Data = map[string]any{"App": app}
	return s.render(c, status, "partner_plans", v)
}

func (s *Server) partnerCreatePlan(c echo.Context, app *marketplace.AppView) error {
	plan, err := s.opts.Apps.CreatePlan(c.Request().Context(), actor(c), app.Slug, planFields(c))
	if formFault(err) {
		return s.renderPlans(c, app, uiStatus(err), err)
	}
	if err != nil {
		return err
	}
	return s.redirect(c, "/apps/"+app.Slug+"/plans", "Added the "+plan.Name+" plan.")
}

// findPlan returns app's plan ref (slug or id) or the service's not found.
func findPlan(app *marketplace.AppView, ref string) (*marketplace.Plan, error) {
	for i := range app.Plans {
		p := &app.Plans[i]
		if p.Slug == ref || strconv.FormatInt(p.ID, 10) == ref {
			return p, nil
		}
	}
	return nil, fault.NotFound("plan")
}

func (s *Server) partnerEditPlan(c echo.Context, app *marketplace.AppView) error {
	plan, err := findPlan(app, c.Param("plan"))
	if err != nil {
		return err
	}
	v := s.partnerView(c, app, "Edit plan")
	v.Data = map[string]any{"App": app, "Plan": plan}
	return s.render(c, http.StatusOK, "partner_plan_edit", v)
}

func (s *Server) partnerUpdatePlan(c echo.Context, app *marketplace.AppView) error {
	plan, err := findPlan(app, c.Param("plan"))
	if err != nil {
		return err
	}
	saved, err := s.opts.Apps.UpdatePlan(c.Request().Context(), actor(c), app.Slug, plan.Slug, planFields(c))
	if formFault(err) {
		v := s.partnerView(c, app, "Edit plan")
		v.fail(err, c)
		v.Data = map[string]any{"App": app, "Plan": plan}
		return s.render(c, uiStatus(err), "partner_plan_edit", v)
	}
	if err != nil {
		return err
	}
	return s.redirect(c, "/apps/"+app.Slug+"/plans", "Saved the "+saved.Name+" plan.")
}

func (s *Server) partnerConfirmDeletePlan(c echo.Context, app *marketplace.AppView) error {
	plan, err := findPlan(app, c.Param("plan"))
	if err != nil {
		return err
	}
	return s.confirm(c, "Delete plan "+plan.Name, confirmation{
		Heading: "Delete the " + plan.Name + " plan?",
		Message: "Organizations can no longer choose it. Installations already on it keep working. An app keeps at least one plan.",
		Action:  "/apps/" + app.Slug + "/plans/" + plan.Slug + "/delete", Button: "Delete plan", Cancel: "/apps/" + app.Slug + "/plans", Danger: true})
}

func (s *Server) partnerDeletePlan(c echo.Context, app *marketplace.AppView) error {
	plan, err := findPlan(app, c.Param("plan"))
	if err != nil {
		return err
	}
	err = s.opts.Apps.DeletePlan(c.Request().Context(), actor(c), app.Slug, plan.Slug)
	if formFault(err) {
		return s.renderPlans(c, app, uiStatus(err), err)
	}
	if err != nil {
		return err
	}
	return s.redirect(c, "/apps/"+app.Slug+"/plans", "Deleted the "+plan.Name+" plan.")
}

// --- Credentials ----------------------------------------------------------

// rotated is what partner_secret shows once after a rotation.
type rotated struct {
	App           *marketplace.AppView
	ClientSecret  string
	Token         string
	WebhookSecret string
	PreviousUntil time.Time
}

func (s *Server) partnerCredentials(c echo.Context, app *marketplace.AppView) error {
	v := s.partnerView(c, app, "Credentials")
	overlap := app.PreviousSecretExpiresAt != nil && app.PreviousSecretExpiresAt.After(time.Now())
	v.Data = map[string]any{"App": app, "Overlap": overlap}
	return s.render(c, http.StatusOK, "partner_credentials", v)
}

func (s *Server) partnerConfirmRotateSecret(c echo.Context, app *marketplace.AppView) error {
	msg := "A new client secret is issued and the current one stops working at once: update the app's configuration right after."
	if app.Kind == marketplace.KindInternal {
		msg += " The installation's access token is replaced too."
	}
	return s.confirm(c, "Rotate client secret", confirmation{Heading: "Rotate the client secret of " + app.Name + "?", Message: msg,
		Action: "/apps/" + app.Slug + "/rotate-secret", Button: "Rotate client secret", Cancel: "/apps/" + app.Slug + "/credentials", Danger: true})
}

func (s *Server) partnerRotateSecret(c echo.Context, app *marketplace.AppView) error {
	out, err := s.opts.Apps.RotateClientSecret(c.Request().Context(), actor(c), app.Slug)
	if err != nil {
		return err
	}
	return s.showOnce(c, app.Slug, app.ID, rotated{ClientSecret: out.ClientSecret, Token: out.Token})
}

func (s *Server) partnerConfirmRotateWebhookSecret(c echo.Context, app *marketplace.AppView) error {
	return s.confirm(c, "Rotate webhook secret", confirmation{Heading: "Rotate the webhook signing secret of " + app.Name + "?",
		Message: "A new signing secret is issued. For the next 24 hours webhooks carry signatures from both the old and the new secret, so the app keeps verifying them while you deploy the new one.",
		Action:  "/apps/" + app.Slug + "/rotate-webhook-secret", Button: "Rotate webhook secret", Cancel: "/apps/" + app.Slug + "/credentials", Danger: true})
}

func (s *Server) partnerRotateWebhookSecret(c echo.Context, app *marketplace.AppView) error {
	secret, until, err := s.opts.Apps.RotateWebhookSecret(c.Request().Context(), actor(c), app.Slug)
	if err != nil {
		return err
	}
	return s.showOnce(c, app.Slug, app.ID, rotated{WebhookSecret: secret, PreviousUntil: until})
}

// showOnce answers a POST that made secrets with a redirect to the page
// that shows them once, so reloading that page never repeats the POST.
func (s *Server) showOnce(c echo.Context, slug string, appID int64, secrets any) error {
	key := s.once.put(actor(c), appID, secrets)
	return c.Redirect(http.StatusSeeOther, "/apps/"+url.PathEscape(slug)+"/secrets/"+key)
}

// partnerOneTimeSecrets shows the secrets a POST left, once; loaded again
// (or from another session, or too late) it says they are gone and how to
// rotate them.
func (s *Server) partnerOneTimeSecrets(c echo.Context, app *marketplace.AppView) error {
	got, _ := s.once.take(actor(c), app.ID, c.Param("key"))
	switch x := got.(type) {
	case *marketplace.CreatedApp:
		x.AppView = *app
		v := s.partnerView(c, app, "Credentials")
		v.Data = x
		return s.render(c, http.StatusOK, "partner_created", v)
	case rotated:
		x.App = app
		title := "New client secret"
		if x.WebhookSecret != "" {
			title = "New webhook secret"
		}
		v := s.partnerView(c, app, title)
		v.Data = x
		return s.render(c, http.StatusOK, "partner_secret", v)
	}
	v := s.partnerView(c, app, "Credentials")
	v.Data = map[string]any{"App": app}
	return s.render(c, http.StatusGone, "partner_secret_gone", v)
}

// --- Installations ----------------------------------------------------------

func (s *Server) partnerInstallations(c echo.Context, app *marketplace.AppView) error {
	r, err := s.pageRequest(c)
	if err != nil {
		return err
	}
	q := marketplace.InstallationQuery{Status: c.QueryParam("status"), SyncState: c.QueryParam("syncState")}
	list, err := s.opts.Installs.ListAppInstallations(c.Request().Context(), actor(c), app.Slug, q, r)
	if err != nil {
		return err
	}
	v := s.partnerView(c, app, "Installations")
	v.Data = map[string]any{"App": app, "Installations": list, "Query": c.QueryParams(), "Filter": q,
		"Statuses": []string{marketplace.InstallPending, marketplace.InstallInstalled, marketplace.InstallFailed, marketplace.InstallDeleted}}
	return s.render(c, http.StatusOK, "partner_installations", v)
}
