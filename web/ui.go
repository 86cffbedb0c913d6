package web

// The HTML UI: server-rendered html/template pages over the same services
// the JSON API calls.
//
// Conventions for UI handlers (ui_*.go):
//   - Register pages in the area's function (marketplacePages, orgPages, …)
//     through uiRouter: r.page(...) for pages anyone may open, r.user(...)
//     for pages that need a signed-in user (others are sent to /login).
//     Every POST is checked for the session's CSRF token (form field "csrf")
//     before the handler runs.
//   - A handler builds a view with s.newView(c, title), fills Data and calls
//     s.render(c, status, "template", v). Templates live in web/templates:
//     one file per page defining "content"; layout.html wraps them;
//     partials*.html hold shared pieces (input, pager, badge, app_tabs…).
//   - Form errors: when a service returns a fault with Fields, re-render the
//     form with v.fail(err, c) (sets Errors, ErrorMsg and keeps Form values),
//     status from uiStatus(err). Inputs are named like the API's JSON fields
//     so fault field names match them.
//   - After a successful POST, redirect (303) with s.flash(c, "message").
//   - Destructive actions go through a confirmation page (template
//     "confirm", via s.confirm) before the POST that does them.
//   - Other errors are returned: handleError renders them as an HTML page.

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/plugboard/plugboard/app/fault"
	"github.com/plugboard/plugboard/app/page"
	"github.com/plugboard/plugboard/marketplace"
)

//go:embed templates
var templateFS embed.FS

const (
	flashCookie = "plugboard_flash"
	orgCookie   = "plugboard_org"
)

// view is what every page template receives.
type view struct {
	Title   string
	Section string // highlights the navigation: marketplace, installed, developer, members, audit, admin
	Actor   marketplace.Actor
	Orgs    []marketplace.OrgAccess // the user's organizations, for the switcher
	Org     *marketplace.OrgAccess  // the current organization, when there is one
	CSRF    string
	Flash   string
	Path    string
	Here    string // path and query of a GET, where signing in returns to
	Version string

	// Forms: the submitted values, per-field errors and a form-level error.
	Form     url.Values
	Errors   map[string]string
	ErrorMsg string
	// FirstInvalid is the id of the first field, in page order, that shows
	// an error: the error banner links to it and it gets autofocus, so the
	// browser lands there without JavaScript. render finds it (see Invalid).
	FirstInvalid string
	firstSeen    string

	Data any
}

// fail puts a service error on the view so the form shows it beside its
// fields; the submitted values stay filled in.
func (v *view) fail(err error, c echo.Context) {
	v.Form, _ = c.FormParams()
	p := problemFor(err)
	v.ErrorMsg = p.Detail
	v.Errors = p.Fields
	if len(p.Fields) > 0 {
		v.ErrorMsg = "Please correct the fields marked below."
	}
}

// Invalid is called by a template for each field it marks invalid, with
// the field's id, in page order; it reports whether that field is the
// first one, which gets autofocus. The first rendering of a page with
// errors only records the first id; render then renders it again.
func (v *view) Invalid(id string) bool {
	if v.firstSeen == "" {
		v.firstSeen = id
	}
	return id == v.FirstInvalid
}

// failAbove is fail for a form whose fields show no errors of their own
// (menus in a table): each field's fault is named in the form-level
// message, and the form is not refilled.
func (v *view) failAbove(err error, c echo.Context) {
	v.fail(err, c)
	if len(v.Errors) > 0 {
		msgs := make([]string, 0, len(v.Errors))
		for f, m := range v.Errors {
			msgs = append(msgs, f+": "+m)
		}
		sort.Strings(msgs)
		v.ErrorMsg = strings.Join(msgs, "; ")
	}
	v.Form, v.Errors = url.Values{}, nil
}

// uiStatus is the status a page re-rendered after err answers with.
func uiStatus(err error) int { return problemFor(err).Status }

// formFault reports whether err is one a form shows to its user (invalid
// input, a conflict, a refusal) rather than a failure of ours.
func formFault(err error) bool {
	fe, ok := fault.As(err)
	return ok && (fe.Kind == fault.KindInvalid || fe.Kind == fault.KindConflict || fe.Kind == fault.KindForbidden ||
		fe.Kind == fault.KindUpstream) // a partner's endpoint that failed: the user reads why
}

// templates are the parsed pages by name.
type templates map[string]*template.Template

// parseTemplates parses every page with templateFuncs and the server's own
// functions (cursor, which signs with the server's key).
func parseTemplates(own template.FuncMap) templates {
	base := template.Must(template.New("layout.html").Funcs(templateFuncs).Funcs(billingFuncs).Funcs(own).ParseFS(templateFS, "templates/layout.html", "templates/partials*.html"))
	pages, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		panic(err)
	}
	out := templates{}
	for _, p := range pages {
		name := strings.TrimSuffix(path.Base(p), ".html")
		if name == "layout" || strings.HasPrefix(name, "partials") {
			continue
		}
		out[name] = template.Must(template.Must(base.Clone()).ParseFS(templateFS, p))
	}
	return out
}

// render writes page name inside the layout.
func (s *Server) render(c echo.Context, status int, name string, v *view) error {
	t, ok := s.pages[name]
	if !ok {
		return fmt.Errorf("rendering: no template %q", name)
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout.html", v); err != nil {
		return fmt.Errorf("rendering %s: %w", name, err)
	}
	if len(v.Errors) > 0 && v.firstSeen != "" {
		// The banner comes before the fields: now that the first marked
		// field is known, render again so the banner can link to it.
		v.FirstInvalid = v.firstSeen
		buf.Reset()
		if err := t.ExecuteTemplate(&buf, "layout.html", v); err != nil {
			return fmt.Errorf("rendering %s: %w", name, err)
		}
	}
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, echo.MIMETextHTMLCharsetUTF8)
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data: https:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self' http: https:")
	return c.HTMLBlob(status, buf.Bytes())
}

// newView starts a page's view: who is signed in, their organizations, the
// current one and the flash message.
func (s *Server) newView(c echo.Context, title string) *view {
	a := actor(c)
	v := &view{Title: title, Actor: a, Path: c.Request().URL.Path, Here: here(c.Request()), Version: s.opts.Version, Form: url.Values{}}
	if ck, err := c.Cookie(flashCookie); err == nil && ck.Value != "" {
		v.Flash, _ = url.QueryUnescape(ck.Value)
		c.SetCookie(&http.Cookie{Name: flashCookie, Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	}
	if !a.SignedIn() {
		return v
	}
	v.CSRF = s.opts.Accounts.CSRFToken(a)
	orgs, err := s.opts.Orgs.ListOrganizations(c.Request().Context(), a, page.Request{Limit: page.MaxLimit})
	if err == nil {
		v.Orgs = orgs.Items
		sort.Slice(v.Orgs, func(i, j int) bool { return strings.ToLower(v.Orgs[i].Org.Name) < strings.ToLower(v.Orgs[j].Org.Name) })
	}
	want := c.Param("org")
	if want == "" {
		if ck, err := c.Cookie(orgCookie); err == nil {
			want = ck.Value
		}
	}
	for i := range v.Orgs {
		if v.Orgs[i].Org.Slug == want {
			v.Org = &v.Orgs[i]
		}
	}
	if v.Org == nil && c.Param("org") == "" && len(v.Orgs) > 0 {
		v.Org = &v.Orgs[0]
	}
	return v
}

// rememberOrg makes org the current organization of pages without one in
// their path.
func (s *Server) rememberOrg(c echo.Context, slug string) {
	c.SetCookie(&http.Cookie{Name: orgCookie, Value: slug, Path: "/", MaxAge: 365 * 24 * 3600, HttpOnly: true,
		SameSite: http.SameSiteLaxMode, Secure: s.secureCookies()})
}

// flash shows msg on the next page rendered.
func (s *Server) flash(c echo.Context, msg string) {
	c.SetCookie(&http.Cookie{Name: flashCookie, Value: url.QueryEscape(msg), Path: "/", MaxAge: 60, HttpOnly: true,
		SameSite: http.SameSiteLaxMode, Secure: s.secureCookies()})
}

// redirect answers a form post with a 303 to a page of ours, with a flash.
func (s *Server) redirect(c echo.Context, to, msg string) error {
	if msg != "" {
		s.flash(c, msg)
	}
	return c.Redirect(http.StatusSeeOther, to)
}

// confirmation is the data of the "confirm" page shown before a destructive
// action.
type confirmation struct {
	Heading string
	Message string
	Action  string // the POST target
	Button  string
	Cancel  string // where "Cancel" goes
	Hidden  map[string]string
	Danger  bool
}

// confirm renders the confirmation page for a destructive action.
func (s *Server) confirm(c echo.Context, title string, cf confirmation) error {
	v := s.newView(c, title)
	v.Data = cf
	return s.render(c, http.StatusOK, "confirm", v)
}

// uiRouter registers UI pages with authentication and CSRF checks.
type uiRouter struct {
	s *Server
	e *echo.Echo
}

// page registers a page anyone may open (signed in or not).
func (r uiRouter) page(method, path string, h echo.HandlerFunc) {
	r.e.Add(method, path, h, r.s.authenticate, r.s.uiForms)
}

// user registers a page for signed-in users; others go to /login first.
func (r uiRouter) user(method, path string, h echo.HandlerFunc) {
	r.e.Add(method, path, h, r.s.authenticate, r.s.uiForms, r.s.requireSignIn)
}

// requireSignIn sends signed-out browsers to /login and back.
func (s *Server) requireSignIn(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if actor(c).SignedIn() {
			return next(c)
		}
		back := c.Request().URL.RequestURI()
		if c.Request().Method != http.MethodGet {
			back = "/"
		}
		return c.Redirect(http.StatusSeeOther, "/login?next="+url.QueryEscape(back))
	}
}

// uiForms protects form posts: they must come from our pages (Origin or
// Sec-Fetch-Site) and, for a signed-in user, carry the session's CSRF token.
func (s *Server) uiForms(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !unsafeMethod(c.Request().Method) {
			return next(c)
		}
		if !s.sameOrigin(c.Request()) {
			return fault.Forbidden(fault.CrossOrigin, "This form must be sent from Plugboard's own pages.")
		}
		a := actor(c)
		if a.SignedIn() && !s.opts.Accounts.CheckCSRF(a, c.FormValue("csrf")) {
			return fault.Forbidden(fault.CSRF, "The form expired or did not come from Plugboard; go back, reload the page and try again.")
		}
		return next(c)
	}
}

// secureCookies is true outside development and tests, or behind https.
func (s *Server) secureCookies() bool {
	return strings.HasPrefix(s.opts.BaseURL, "https://") || (s.opts.Env != "development" && s.opts.Env != "test")
}

var templateFuncs = template.FuncMap{
	// dict builds a map for passing several values to a partial.
	"dict": func(kv ...any) map[string]any {
		m := make(map[string]any, len(kv)/2)
		for i := 0; i+1 < len(kv); i += 2 {
			m[fmt.Sprint(kv[i])] = kv[i+1]
		}
		return m
	},
	"list": func(v ...any) []any { return v },
	// minPasswordLength is the shortest password sign-up accepts.
	"minPasswordLength": func() int { return marketplace.MinPasswordLength },
	// ago is a short relative time: "3 min ago".
	"ago": func(t any) string {
		tt, ok := timeOf(t)
		if !ok {
			return "never"
		}
		return ago(time.Since(tt))
	},
	// when is an absolute UTC timestamp for title attributes and tables.
	"when": func(t any) string {
		tt, ok := timeOf(t)
		if !ok {
			return "—"
		}
		return tt.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"isoTime": func(t any) string {
		tt, ok := timeOf(t)
		if !ok {
			return ""
		}
		return tt.UTC().Format(time.RFC3339)
	},
	// prettyJSON indents a JSON document for display, in at most
	// payloadLimit bytes (see pretty.go).
	"prettyJSON": func(v any) string {
		var raw []byte
		switch x := v.(type) {
		case json.RawMessage:
			raw = x
		case []byte:
			raw = x
		case string:
			raw = []byte(x)
		default:
			raw, _ = json.Marshal(v)
		}
		p := prettyJSON(raw, payloadLimit)
		if p.Truncated {
			return p.Text + "\n…"
		}
		return p.Text
	},
	// amount writes minor units with the currency's digits: "45.00".
	"amount": marketplace.FormatAmount,
	// period writes a billing period's month: "2026-11".
	"period": marketplace.FormatPeriod,
	// commission writes basis points as a percentage: "12.50".
	"commission": marketplace.FormatCommission,
	// money is a plan's price in a few words (ui_billing.go's planTerms has the rest).
	"money": func(p marketplace.Plan) string { return termsOf(p).Price },
	"initial": func(s string) string {
		s = strings.TrimSpace(s)
		if s == "" {
			return "?"
		}
		return strings.ToUpper(string([]rune(s)[:1]))
	},
	"join":  strings.Join,
	"lower": strings.ToLower,
	"title": func(s string) string {
		if s == "" {
			return s
		}
		s = strings.ReplaceAll(s, "_", " ")
		return strings.ToUpper(s[:1]) + s[1:]
	},
	"has": func(list any, s string) bool {
		switch l := list.(type) {
		case []string:
			for _, x := range l {
				if x == s {
					return true
				}
			}
		case marketplace.Strings:
			for _, x := range l {
				if x == s {
					return true
				}
			}
		}
		return false
	},
	"deref": func(v any) any {
		switch x := v.(type) {
		case *string:
			if x == nil {
				return ""
			}
			return *x
		case *int:
			if x == nil {
				return 0
			}
			return *x
		case *int64:
			if x == nil {
				return int64(0)
			}
			return *x
		}
		return v
	},
	"category": categoryLabel,
	// plural: "1 install", "3 installs".
	"plural": func(n int, one, many string) string {
		if n == 1 {
			return "1 " + one
		}
		return strconv.Itoa(n) + " " + many
	},
	// bytes is a size for people: "812 bytes", "63.2 KiB", "1.4 MiB".
	"bytes": func(n int) string {
		switch {
		case n < 1<<10:
			return strconv.Itoa(n) + " bytes"
		case n < 1<<20:
			return strconv.FormatFloat(float64(n)/(1<<10), 'f', 1, 64) + " KiB"
		}
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB"
	},
	"pct": func(f float64) string { return strconv.FormatFloat(f*100, 'f', 1, 64) + "%" },
	"ms":  func(f float64) string { return strconv.FormatFloat(f, 'f', 0, 64) + " ms" },
	"add": func(a, b int) int { return a + b },
	// withQuery returns the current URL's query with key set to value.
	"withQuery": func(q url.Values, kv ...string) string {
		out := url.Values{}
		for k, v := range q {
			out[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "" {
				out.Del(kv[i])
			} else {
				out.Set(kv[i], kv[i+1])
			}
		}
		if len(out) == 0 {
			return "?"
		}
		return "?" + out.Encode()
	},
	// statusTone maps a status word to a badge colour class.
	"statusTone": func(status string) string {
		switch status {
		case "published", "installed", "succeeded", "enabled", "in_sync", "ok", "active", "approved", "delivered", "repaired":
			return "good"
		case "pending", "submitted", "paused", "unknown", "draft", "checking", "provisioning":
			return "wait"
		case "failed", "rejected", "disabled", "out_of_sync", "deleted", "uninstalled", "error", "revoked", "suspended":
			return "bad"
		}
		return "plain"
	},
}

// categoryLabel spells a directory category the way people write it.
func categoryLabel(slug string) string {
	if l, ok := categoryLabels[slug]; ok {
		return l
	}
	return slug
}

var categoryLabels = map[string]string{
	"alerting": "Alerting", "analytics": "Analytics", "ci-cd": "CI/CD", "communication": "Communication", "data": "Data",
	"deployment": "Deployment", "developer-tools": "Developer tools", "issue-tracking": "Issue tracking", "monitoring": "Monitoring",
	"notifications": "Notifications", "project-management": "Project management", "security": "Security",
	"source-control": "Source control", "other": "Other",
}

func timeOf(t any) (time.Time, bool) {
	switch x := t.(type) {
	case time.Time:
		return x, !x.IsZero()
	case *time.Time:
		if x == nil {
			return time.Time{}, false
		}
		return *x, !x.IsZero()
	}
	return time.Time{}, false
}

func ago(d time.Duration) string {
	switch {
	case d < 0:
		return "just now" // clocks a little apart
	case d < 10*time.Second:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%d s ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d.Hours()))
	}
	return fmt.Sprintf("%d days ago", int(d.Hours()/24))
}

// here is where "Sign in" returns to: the page with its query for a GET,
// its path otherwise (a form's answer cannot be fetched again).
func here(r *http.Request) string {
	if r.Method == http.MethodGet {
		return r.URL.RequestURI()
	}
	return r.URL.Path
}

// refuse answers a form's refusal: the page name rebuilt by build as it
// now stands, with err beside its fields, in err's status.
func (s *Server) refuse(c echo.Context, err error, name string, build func(echo.Context) (*view, error)) error {
	v, verr := build(c)
	if verr != nil {
		return verr
	}
	v.fail(err, c)
	return s.render(c, uiStatus(err), name, v)
}
