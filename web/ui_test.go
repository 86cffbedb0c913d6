package web_test

import (
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/plugboard/plugboard/cmd/platform/apptest"
)

// browser drives the HTML UI over HTTP the way a browser does: it keeps
// cookies, asks for text/html, sends Origin on form posts and carries the
// CSRF token of the last page it loaded.
type browser struct {
	t    testing.TB
	base string
	http *http.Client
	csrf string
}

// htmlPage is a loaded page: the status and URL after redirects, and the body.
type htmlPage struct {
	t        testing.TB
	Status   int
	URL      *url.URL
	Location string // a redirect's target, when redirects are not followed
	Body     string
}

func newBrowser(t testing.TB, p *apptest.Platform) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: p.URL, http: &http.Client{Jar: jar}}
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (b *browser) do(req *http.Request) *htmlPage {
	b.t.Helper()
	req.Header.Set("Accept", "text/html,application/xhtml+xml")
	res, err := b.http.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if m := csrfRe.FindSubmatch(body); m != nil {
		b.csrf = html.UnescapeString(string(m[1]))
	}
	return &htmlPage{t: b.t, Status: res.StatusCode, URL: res.Request.URL, Location: res.Header.Get("Location"), Body: string(body)}
}

// get loads a page, following redirects.
func (b *browser) get(path string) *htmlPage {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.base+path, nil)
	return b.do(req)
}

// post submits a form from one of our pages, with the CSRF token of the
// last page unless the form sets its own.
func (b *browser) post(path string, form url.Values) *htmlPage {
	b.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if !form.Has("csrf") && b.csrf != "" {
		form.Set("csrf", b.csrf)
	}
	req, _ := http.NewRequest(http.MethodPost, b.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", b.base)
	return b.do(req)
}

// ok fails unless the page answered status and shows every text.
func (p *htmlPage) ok(status int, texts ...string) *htmlPage {
	p.t.Helper()
	if p.Status != status {
		p.t.Fatalf("%s: status %d, want %d\n%s", p.URL, p.Status, status, excerpt(p.Body))
	}
	for _, s := range texts {
		if !strings.Contains(p.Body, s) {
			p.t.Fatalf("%s: page lacks %q\n%s", p.URL, s, excerpt(p.Body))
		}
	}
	return p
}

// at fails unless the page is at path (after redirects).
func (p *htmlPage) at(path string) *htmlPage {
	p.t.Helper()
	if p.URL.Path != path {
		p.t.Fatalf("at %s, want %s", p.URL.Path, path)
	}
	return p
}

var fieldErrRe = regexp.MustCompile(`<p class="field-error" id="([^"]+)-error">([^<]*)</p>`)

// fieldErrors returns the messages shown beside the form's fields.
func (p *htmlPage) fieldErrors() map[string]string {
	out := map[string]string{}
	for _, m := range fieldErrRe.FindAllStringSubmatch(p.Body, -1) {
		out[m[1]] = html.UnescapeString(m[2])
	}
	return out
}

// fieldError fails unless the form shows an error beside field.
func (p *htmlPage) fieldError(field string) string {
	p.t.Helper()
	msg, ok := p.fieldErrors()[field]
	if !ok {
		p.t.Fatalf("%s: no error shown beside %q (shown: %v)\n%s", p.URL, field, p.fieldErrors(), excerpt(p.Body))
	}
	return msg
}

func excerpt(body string) string {
	if i := strings.Index(body, `<main`); i >= 0 {
		body = body[i:]
	}
	if len(body) > 3000 {
		body = body[:3000] + "…"
	}
	return body
}

// uiSignUp creates an account through the sign-up form and returns the
// signed-in browser.
func uiSignUp(t testing.TB, p *apptest.Platform, email string) *browser {
	t.Helper()
	b := newBrowser(t, p)
	b.get("/signup").ok(200)
	b.post("/signup", url.Values{"name": {strings.Split(email, "@")[0]}, "email": {email}, "password": {"correct horse battery"}}).ok(200).at("/orgs/new")
	return b
}

// uiSignIn signs a browser in through the sign-in form.
func uiSignIn(t testing.TB, p *apptest.Platform, email string) *browser {
	t.Helper()
	b := newBrowser(t, p)
	b.get("/login").ok(200)
	b.post("/login", url.Values{"email": {email}, "password": {"correct horse battery"}, "next": {"/marketplace"}}).ok(200).at("/marketplace")
	return b
}

// uiOrg creates an organization through the form and returns its slug.
func (b *browser) uiOrg(name string) string {
	b.t.Helper()
	pg := b.post("/orgs/new", url.Values{"name": {name}}).ok(200, name)
	parts := strings.Split(strings.Trim(pg.URL.Path, "/"), "/")
	if len(parts) < 2 || parts[0] != "orgs" {
		b.t.Fatalf("creating %s landed on %s", name, pg.URL.Path)
	}
	return parts[1]
}

func TestAccountPages(t *testing.T) {
	p := apptest.Start(t)

	t.Run("sign up shows field errors and writes nothing", func(t *testing.T) {
		b := newBrowser(t, p)
		b.get("/signup").ok(200, "Create your account")
		before := count(t, p, "users")
		pg := b.post("/signup", url.Values{"name": {"Ann"}, "email": {"not-an-email"}, "password": {"short"}}).ok(400)
		pg.fieldError("email")
		pg.fieldError("password")
		if !strings.Contains(pg.Body, `value="not-an-email"`) {
			t.Error("the form lost what was typed")
		}
		if strings.Contains(pg.Body, `value="short"`) {
			t.Error("the password was echoed back")
		}
		if count(t, p, "users") != before {
			t.Error("a bad sign-up wrote a user")
		}
	})

	t.Run("sign up, create an organization, switch, sign out", func(t *testing.T) {
		b := uiSignUp(t, p, "ann@example.com")
		pg := b.post("/orgs/new", url.Values{"name": {""}}).ok(400)
		pg.fieldError("name")
		slug := b.uiOrg("Ann Corp")
		second := b.uiOrg("Ann Labs")
		b.get("/orgs/"+slug+"/").ok(200, "Ann Corp", "Ann Labs").at("/orgs/" + slug + "/installations")
		// The switcher remembers the choice for pages without an org in the path.
		b.get("/").at("/orgs/" + slug + "/installations")
		b.get("/orgs/" + second + "/").at("/orgs/" + second + "/installations")
		b.get("/").at("/orgs/" + second + "/installations")

		b.post("/logout", nil).ok(200, "You are signed out").at("/marketplace")
		b.get("/orgs/new").at("/login")
	})

	t.Run("sign in: wrong password, then the page asked for", func(t *testing.T) {
		b := newBrowser(t, p)
		b.get("/orgs/new").ok(200, "Sign in").at("/login")
		b.post("/login", url.Values{"email": {"ann@example.com"}, "password": {"wrong password"}}).ok(401, "The email or password is wrong")
		b.post("/login", url.Values{"email": {"ann@example.com"}, "password": {"correct horse battery"}, "next": {"/orgs/new"}}).ok(200).at("/orgs/new")
	})

	t.Run("forms need the session's CSRF token and our origin", func(t *testing.T) {
		b := uiSignIn(t, p, "ann@example.com")
		before := count(t, p, "organizations")
		b.post("/orgs/new", url.Values{"name": {"Forged"}, "csrf": {"forged"}}).ok(403, "csrf")
		req, _ := http.NewRequest(http.MethodPost, p.URL+"/orgs/new", strings.NewReader(url.Values{"name": {"Forged"}, "csrf": {b.csrf}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", "https://evil.example")
		b.do(req).ok(403)
		if count(t, p, "organizations") != before {
			t.Error("a forged form created an organization")
		}
	})

	t.Run("API clients still get JSON at /", func(t *testing.T) {
		res, err := http.Get(p.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("content type %q", ct)
		}
	})

	t.Run("unknown pages render the error page", func(t *testing.T) {
		newBrowser(t, p).get("/no/such/page").ok(404, "We could not find that")
	})
}
