package web_test

import (
	"bytes"
	"io"
	"mime"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/plugboard/plugboard/sdk/plugboard"
)

// raw sends a request exactly as given (no Content-Type unless ct) and
// returns the response with its body read.
func (c *client) raw(method, path, ct, body string) *response {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	res, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if method != http.MethodHead {
		validateOpenAPI(c.t, req, []byte(body), res, b)
	}
	return &response{Status: res.StatusCode, Header: res.Header, Body: b}
}

// TestNullBodyIsRefused: a JSON body is an object where the document says
// object; null used to be taken as an empty update.
func TestNullBodyIsRefused(t *testing.T) {
	w := newTenants(t)
	for _, path := range []string{"/api/0/apps/alpha-bot/", "/api/0/apps/alpha-bot/plans/pro/", "/api/0/organizations/alpha/"} {
		w.aAdmin.do("PUT", path, "null").problem(t, 400, "malformed_json")
		w.aAdmin.do("PUT", path, " null\n").problem(t, 400, "malformed_json")
	}
	w.aAdmin.do("POST", "/api/0/organizations/", "null").problem(t, 400, "malformed_json")
}

// TestBodyWithoutContentTypeIs415: a body is JSON only when it says so.
func TestBodyWithoutContentTypeIs415(t *testing.T) {
	w := newTenants(t)
	before := count(t, w.p, "organizations")
	w.aAdmin.raw("POST", "/api/0/organizations/", "", `{"name":"Gamma"}`).problem(t, 415, "unsupported_media_type")
	w.aAdmin.raw("POST", "/api/0/organizations/", "text/plain", `{"name":"Gamma"}`).problem(t, 415, "unsupported_media_type")
	w.aAdmin.raw("PUT", "/api/0/apps/alpha-bot/", "", `{"name":"Renamed"}`).problem(t, 415, "unsupported_media_type")
	if n := count(t, w.p, "organizations"); n != before {
		t.Errorf("organizations %d → %d", before, n)
	}
	w.aAdmin.raw("POST", "/api/0/organizations/", "application/json; charset=utf-8", `{"name":"Gamma"}`).ok(t, 201, nil)
}

// TestUsersMeIsForUsers: app, installation and service credentials get the
// 403 users_only the document promises, not 401.
func TestUsersMeIsForUsers(t *testing.T) {
	w := newTenants(t)
	for name, c := range map[string]*client{"installation token": w.aInst, "app credentials": w.aApp, "service token": w.host} {
		t.Run(name, func(t *testing.T) {
			c.do("GET", "/api/0/users/me/", nil).problem(t, 403, "users_only")
		})
	}
	w.anon.do("GET", "/api/0/users/me/", nil).problem(t, 401, "not_authenticated")
	decode[plugboard.User](t, w.aAdmin.do("GET", "/api/0/users/me/", nil), 200)
}

var pathParam = regexp.MustCompile(`:[a-z_]+`)

// TestAnonymousCallersAreRefusedFirst: every route that needs a credential
// answers an anonymous caller 401 before it reads the body or looks up
// what the path names; the routes open to anyone are the ones the document
// gives the empty security requirement.
func TestAnonymousCallersAreRefusedFirst(t *testing.T) {
	w := newTenants(t)
	w.anon.do("POST", "/api/0/apps/alpha-bot/redeliveries/", `{"nonsense":`).problem(t, 401, "not_authenticated")
	w.anon.do("GET", "/api/0/apps/no-such-app/installations/", nil).problem(t, 401, "not_authenticated")

	if err := loadOpenAPI(); err != nil {
		t.Fatal(err)
	}
	for _, r := range w.p.App.Web.Echo().Routes() {
		if !strings.HasPrefix(r.Path, "/api/0/") || strings.HasPrefix(r.Method, "echo_") {
			continue
		}
		doc := echoParam.ReplaceAllString(r.Path, "{$1}")
		op := openAPI.model.Paths.PathItems.GetOrZero(doc).GetOperations().GetOrZero(strings.ToLower(r.Method))
		if op == nil {
			t.Errorf("%s %s: not in the document", r.Method, doc)
			continue
		}
		open := false
		for _, req := range op.Security {
			open = open || req.Requirements == nil || req.Requirements.Len() == 0
		}
		// Names nothing exists under, and a body that is not JSON: what
		// answers first shows.
		path := pathParam.ReplaceAllString(r.Path, "nothing-here")
		res := w.anon.raw(r.Method, path, "application/json", `{"nonsense":`)
		switch {
		case !open && res.Status != 401:
			t.Errorf("%s %s anonymously: %d, want 401: %s", r.Method, path, res.Status, res.Body)
		case !open:
			res.problem(t, 401, "not_authenticated")
		case open && res.Status == 401:
			t.Errorf("%s %s is open to anyone in the document but answered 401: %s", r.Method, path, res.Body)
		}
	}
}

// TestHeadIsGetWithoutBody: HEAD on any GET route answers what GET would,
// headers and status, without the body.
func TestHeadIsGetWithoutBody(t *testing.T) {
	w := newTenants(t)
	for _, tc := range []struct {
		c    *client
		path string
	}{
		{w.anon, "/healthz"}, {w.anon, "/api/0/apps/"}, {w.anon, "/api/0/openapi.json"}, {w.aAdmin, "/api/0/organizations/"},
		{w.aAdmin, "/api/0/apps/alpha-bot/deliveries/"}, {w.anon, "/api/0/users/me/"}, {w.anon, "/api/0/apps/nothing/"},
		{w.anon, "/assets/app.css"}, {w.anon, "/login"}, {w.anon, "/docs/problems"},
	} {
		get := tc.c.raw("GET", tc.path, "", "")
		head := tc.c.raw("HEAD", tc.path, "", "")
		if head.Status != get.Status || head.Header.Get("Content-Type") != get.Header.Get("Content-Type") {
			t.Errorf("HEAD %s: %d %q; GET: %d %q", tc.path, head.Status, head.Header.Get("Content-Type"), get.Status, get.Header.Get("Content-Type"))
		}
		if len(head.Body) != 0 {
			t.Errorf("HEAD %s has a body: %.80s", tc.path, head.Body)
		}
		if head.Status == 405 {
			t.Errorf("HEAD %s: 405", tc.path)
		}
	}
	// HEAD on the delivery stream ends at its headers: the connection is
	// free for the next request.
	c := newClient(t, w.p, w.aAdmin.token)
	c.http.Timeout = 5 * time.Second
	if res := c.raw("HEAD", "/api/0/apps/alpha-bot/delivery-stream/", "", ""); res.Status != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Errorf("HEAD stream: %d %q", res.Status, res.Header.Get("Content-Type"))
	}
	c.do("GET", "/api/0/users/me/", nil).ok(t, 200, nil)
	// A route without GET still refuses HEAD.
	if res := w.anon.raw("HEAD", "/api/0/auth/", "", ""); res.Status != 405 {
		t.Errorf("HEAD /api/0/auth/: %d, want 405", res.Status)
	}
}

// TestAssetsOutsideAreProblems: paths under /assets/ that are not a file
// there answer the 404 problem document.
func TestAssetsOutsideAreProblems(t *testing.T) {
	w := newTenants(t)
	for _, path := range []string{"/assets/%2e%2e/openapi.yaml", "/assets/%2e%2e/%2e%2e/go.mod", "/assets/..%2fopenapi.yaml", "/assets/vendor/",
		"/assets/nope.css", "/assets/%25zz", "/assets/", "/assets/app.css/x"} {
		res := w.anon.raw("GET", path, "", "")
		if res.Status != 404 {
			t.Errorf("GET %s: %d, want 404: %.100s", path, res.Status, res.Body)
			continue
		}
		if mt, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type")); mt != "application/problem+json" {
			t.Errorf("GET %s: %q, want a problem document: %.100s", path, res.Header.Get("Content-Type"), res.Body)
		}
	}
	res := w.anon.raw("GET", "/assets/app.css", "", "")
	if res.Status != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/css") || !bytes.Contains(res.Body, []byte("{")) {
		t.Errorf("GET /assets/app.css: %d %q", res.Status, res.Header.Get("Content-Type"))
	}
}

// TestSchemaValidNamesAreAccepted: a name the schema allows is accepted,
// whatever its script or length in bytes, and gets a valid slug.
func TestSchemaValidNamesAreAccepted(t *testing.T) {
	w := newTenants(t)
	slug := regexp.MustCompile(`^[a-z][a-z0-9-]{1,48}[a-z0-9]$`)
	for _, tc := range []struct{ path, name string }{
		{"/api/0/organizations/", "°"},
		{"/api/0/organizations/", "日本"},
		{"/api/0/organizations/", "AB"},
		{"/api/0/organizations/", "7"},
		{"/api/0/organizations/", strings.Repeat("°", 100)},
		{"/api/0/organizations/alpha/apps/", "°"},
		{"/api/0/organizations/alpha/apps/", strings.Repeat("é", 80)},
		{"/api/0/apps/alpha-bot/plans/", "½"},
		{"/api/0/apps/alpha-bot/plans/", strings.Repeat("€", 60)},
	} {
		got := decode[map[string]any](t, w.aAdmin.do("POST", tc.path, map[string]any{"name": tc.name}), 201)
		if s, _ := got["slug"].(string); !slug.MatchString(s) || got["name"] != tc.name {
			t.Errorf("POST %s %q: slug %q name %q", tc.path, tc.name, got["slug"], got["name"])
		}
	}
	// Past the limit in characters, and blank, the schema refuses too.
	w.aAdmin.do("POST", "/api/0/organizations/", map[string]any{"name": strings.Repeat("°", 101)}).problem(t, 400, "invalid_input")
	w.aAdmin.do("POST", "/api/0/organizations/", map[string]any{"name": "   "}).problem(t, 400, "invalid_input")
}
