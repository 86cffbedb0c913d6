package web_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/plugboard/plugboard/cmd/platform/apptest"
	"github.com/plugboard/plugboard/config"
	"github.com/plugboard/plugboard/sdk/plugboard"
)

// headerCheck is what one response must (or must not) say.
type headerCheck struct {
	name    string
	want    map[string]string // header → a substring its value must hold ("" only present)
	without []string          // headers it must not carry
}

func (hc headerCheck) check(t *testing.T, h http.Header) {
	t.Helper()
	for k, v := range hc.want {
		got, ok := h[http.CanonicalHeaderKey(k)]
		if !ok || !strings.Contains(strings.Join(got, ", "), v) {
			t.Errorf("%s: %s = %q, want it to hold %q", hc.name, k, got, v)
		}
	}
	for _, k := range hc.without {
		if got := h.Get(k); got != "" {
			t.Errorf("%s: %s = %q, want none", hc.name, k, got)
		}
	}
}

var (
	nosniff   = map[string]string{"X-Content-Type-Options": "nosniff"}
	noStore   = map[string]string{"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}
	framedNot = map[string]string{"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Content-Security-Policy": "frame-ancestors 'none'"}
)

func merge(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// Every response says nosniff; what an authenticated caller is answered
// on the API, OAuth token responses and pages with secrets are no-store;
// the docs pages have a policy and may not be framed, like the UI; HSTS
// only in production.
func TestSecurityHeaders(t *testing.T) {
	w := newWorld(t, false)
	p := w.p
	_, q := w.install(t, "free")
	anon := newClient(t, p, "")
	ui := uiSignIn(t, p, "dev@partner.example")

	get := func(c *http.Client, path string, header map[string]string) http.Header {
		t.Helper()
		req, _ := http.NewRequest("GET", p.URL+path, nil)
		for k, v := range header {
			req.Header.Set(k, v)
		}
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.Header
	}
	token := func(form url.Values, basic bool) http.Header {
		t.Helper()
		req, _ := http.NewRequest("POST", p.URL+"/oauth/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if basic {
			req.SetBasicAuth(w.oauth.ClientID, w.oauth.ClientSecret)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if form.Get("code") != "" && res.StatusCode != 200 {
			t.Fatalf("code exchange: %d", res.StatusCode)
		}
		return res.Header
	}

	cases := []struct {
		headerCheck
		do func() http.Header
	}{
		{headerCheck{"health", nosniff, []string{"Strict-Transport-Security"}},
			func() http.Header { return anon.do("GET", "/healthz", nil).Header }},
		{headerCheck{"the public directory", nosniff, nil},
			func() http.Header { return anon.do("GET", "/api/0/apps/", nil).Header }},
		{headerCheck{"a problem to an anonymous caller", nosniff, nil},
			func() http.Header { return anon.do("GET", "/api/0/users/me/", nil).Header }},
		{headerCheck{"no such path", nosniff, nil},
			func() http.Header { return anon.do("GET", "/api/0/no-such-thing/", nil).Header }},
		{headerCheck{"the signed-in user", noStore, nil},
			func() http.Header { return w.dev.do("GET", "/api/0/users/me/", nil).Header }},
		{headerCheck{"an organization's apps", noStore, nil},
			func() http.Header { return w.dev.do("GET", "/api/0/organizations/partner/apps/", nil).Header }},
		{headerCheck{"a new client secret", noStore, nil},
			func() http.Header { return w.dev.do("POST", "/api/0/apps/flow-app/rotate-secret/", nil).Header }},
		{headerCheck{"a problem to a signed-in caller", noStore, nil},
			func() http.Header { return w.dev.do("GET", "/api/0/organizations/nope/", nil).Header }},
		{headerCheck{"the directory to a signed-in caller", noStore, nil},
			func() http.Header { return w.dev.do("GET", "/api/0/apps/", nil).Header }},
		{headerCheck{"a token response", noStore, nil},
			func() http.Header {
				w.oauth.ClientSecret = decode[plugboard.ClientSecretRotation](t, w.dev.do("POST", "/api/0/apps/flow-app/rotate-secret/", nil), 200).ClientSecret
				return token(url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {w.oauth.RedirectURL}}, true)
			}},
		{headerCheck{"a token error", noStore, nil},
			func() http.Header { return token(url.Values{"grant_type": {"password"}}, false) }},
		{headerCheck{"an asset", nosniff, nil},
			func() http.Header { return get(http.DefaultClient, "/assets/app.css", nil) }},
		{headerCheck{"the API reference", merge(framedNot, map[string]string{"Content-Security-Policy": "script-src 'self';"}), nil},
			func() http.Header { return get(http.DefaultClient, "/docs/api", nil) }},
		{headerCheck{"the error codes", framedNot, nil},
			func() http.Header { return get(http.DefaultClient, "/docs/problems", nil) }},
		{headerCheck{"a page", framedNot, nil},
			func() http.Header { return get(http.DefaultClient, "/login", map[string]string{"Accept": "text/html"}) }},
		{headerCheck{"a page with secrets", merge(framedNot, noStore), nil},
			func() http.Header {
				return get(ui.http, "/apps/flow-app/credentials", map[string]string{"Accept": "text/html"})
			}},
		{headerCheck{"an error page", framedNot, nil},
			func() http.Header {
				return get(http.DefaultClient, "/no-such-page", map[string]string{"Accept": "text/html"})
			}},
	}
	for _, tc := range cases {
		tc.check(t, tc.do())
	}
	// The docs pages' policies admit no script or style from elsewhere,
	// nor inline script.
	csp := get(http.DefaultClient, "/docs/api", nil).Get("Content-Security-Policy")
	for _, bad := range []string{"unsafe-inline", "unsafe-eval", "http:", "https:", "*"} {
		if strings.Contains(csp, bad) {
			t.Errorf("/docs/api policy admits %s: %s", bad, csp)
		}
	}
}

// HSTS is sent in production, on every response.
func TestHSTSInProduction(t *testing.T) {
	p := apptest.Start(t, func(c *config.Config) { c.Env = config.EnvProduction })
	c := newClient(t, p, "")
	for _, path := range []string{"/healthz", "/api/0/apps/", "/api/0/users/me/", "/docs/api"} {
		headerCheck{path, map[string]string{"Strict-Transport-Security": "max-age=63072000; includeSubDomains"}, nil}.check(t, c.do("GET", path, nil).Header)
	}
}

// The API reference renders in a browser under its policy, with no
// violation reported (Redoc's styles by nonce, its search worker from a
// blob: URL).
func TestAPIDocsRenderUnderTheirPolicy(t *testing.T) {
	p := apptest.Start(t)
	b := newTab(t, p.URL)
	b.run(chromedp.ActionFunc(func(ctx context.Context) error {
		_, err := page.AddScriptToEvaluateOnNewDocument(`window.__csp = [];
document.addEventListener("securitypolicyviolation", function (e) { window.__csp.push(e.violatedDirective + " " + e.blockedURI + " " + e.sample + " " + (e.target && e.target.outerHTML ? e.target.outerHTML.slice(0, 200) : "") + " " + e.sourceFile + ":" + e.lineNumber + ":" + e.columnNumber); });`).Do(ctx)
		return err
	}))
	b.open("/docs/api")
	b.see("Plugboard", "Stream the app's deliveries as they are sent")
	var all, violations []string
	b.run(chromedp.Evaluate(`window.__csp`, &all))
	for _, v := range all {
		// Redoc's "API docs by Redocly" logo, from its CDN: refused, and
		// hidden by Redoc when it does not load.
		if !strings.HasPrefix(v, "img-src https://cdn.redoc.ly/") {
			violations = append(violations, v)
		}
	}
	if len(violations) > 0 {
		t.Errorf("policy violations on /docs/api:\n%s", strings.Join(violations, "\n"))
	}
	// Styles applied: Redoc's menu is laid out beside the content.
	var menuWidth float64
	b.run(chromedp.Evaluate(`document.querySelector(".menu-content") ? document.querySelector(".menu-content").getBoundingClientRect().width : 0`, &menuWidth))
	if menuWidth < 100 || menuWidth > 600 {
		t.Errorf("Redoc's menu is %v px wide: its styles did not apply", menuWidth)
	}
}
