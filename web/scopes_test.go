package web_test

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/plugboard/plugboard/cmd/platform/apptest"
	"github.com/plugboard/plugboard/sdk/plugboard"
)

// hostOnlyBuiltins are the built-in scopes no Platform API route uses:
// an installation's own routes answer its token without a scope, and the
// host checks these on its own API (docs/guides/scopes.md).
var hostOnlyBuiltins = []string{"installation:read", "installation:write"}

// TestScopeCatalogueIsBoundToRoutes walks GET /api/0/scopes/: every scope
// is either bound to Platform API routes, each of which refuses an
// installation token without it (403 missing_scope with RFC 6750's
// challenge) and answers one that has it, or is the host's: one an event
// type declares, or one of hostOnlyBuiltins. The scopes guide's table
// says the same.
func TestScopeCatalogueIsBoundToRoutes(t *testing.T) {
	p := apptest.Start(t)
	admin := signUp(t, p, "admin@acme.example")
	admin.do("POST", "/api/0/organizations/", map[string]string{"name": "Acme"}).ok(t, 201, nil)
	signUp(t, p, "new@acme.example")
	signUp(t, p, "clerk@acme.example")
	signUp(t, p, "spare@acme.example")
	clerk := decode[plugboard.Member](t, admin.do("POST", "/api/0/organizations/acme/members/", map[string]string{"email": "clerk@acme.example"}), 201).ID
	spare := decode[plugboard.Member](t, admin.do("POST", "/api/0/organizations/acme/members/", map[string]string{"email": "spare@acme.example"}), 201).ID
	op := operator(t, p, "ops@plugboard.example")
	op.do("POST", "/api/0/event-types/", map[string]any{"name": "issue.created", "scope": "issue:read", "description": "An issue was opened.",
		"schema": map[string]any{"type": "object", "properties": map[string]any{"title": map[string]any{"type": "string"}}}}).ok(t, 201, nil)

	// What each bound route is called with; a token with the scope gets want.
	type call struct {
		path string
		body any
		want int
	}
	calls := map[string]call{
		"GET /api/0/organizations/{org}/":                        {"/api/0/organizations/acme/", nil, 200},
		"PUT /api/0/organizations/{org}/":                        {"/api/0/organizations/acme/", map[string]any{"name": "Acme"}, 200},
		"GET /api/0/organizations/{org}/members/":                {"/api/0/organizations/acme/members/", nil, 200},
		"POST /api/0/organizations/{org}/members/":               {"/api/0/organizations/acme/members/", map[string]any{"email": "new@acme.example"}, 201},
		"PUT /api/0/organizations/{org}/members/{member_id}/":    {"/api/0/organizations/acme/members/" + clerk + "/", map[string]any{"role": "admin"}, 200},
		"DELETE /api/0/organizations/{org}/members/{member_id}/": {"/api/0/organizations/acme/members/" + spare + "/", nil, 204},
		"GET /api/0/organizations/{org}/events/":                 {"/api/0/organizations/acme/events/", nil, 200},
		"POST /api/0/organizations/{org}/events/":                {"/api/0/organizations/acme/events/", map[string]any{"type": "issue.created", "data": map[string]any{"title": "Fire"}}, 201},
	}

	scopes := decode[[]plugboard.Scope](t, newClient(t, p, "").do("GET", "/api/0/scopes/", nil), 200)
	var all []string
	for _, sc := range scopes {
		all = append(all, sc.Name)
	}
	declared := map[string]bool{}
	for _, et := range decode[[]plugboard.EventType](t, admin.do("GET", "/api/0/event-types/", nil), 200) {
		declared[et.Scope] = et.Scope != ""
	}
	routed := map[string]bool{}
	param := regexp.MustCompile(`:([a-z_]+)`)
	for _, r := range p.App.Web.Echo().Routes() {
		routed[r.Method+" "+param.ReplaceAllString(r.Path, "{$1}")] = true
	}
	// An internal integration of Acme's with scopes is installed at once,
	// and its token carries them.
	token := func(name string, scopes []string) *client {
		app := decode[plugboard.App](t, admin.do("POST", "/api/0/organizations/acme/apps/", map[string]any{"name": name, "kind": "internal", "scopes": scopes}), 201)
		return newClient(t, p, app.Token)
	}
	full := token("Everything", all)
	guide, err := os.ReadFile("../docs/guides/scopes.md")
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	for _, sc := range scopes {
		row := regexp.MustCompile("(?m)^\\| `" + regexp.QuoteMeta(sc.Name) + "` \\| ([a-z]+) \\| (.*) \\|$").FindStringSubmatch(string(guide))
		switch {
		case len(sc.Routes) == 0:
			if sc.UsedBy != "host" {
				t.Errorf("%s: no routes, used by %q", sc.Name, sc.UsedBy)
			}
			if sc.Builtin != slices.Contains(hostOnlyBuiltins, sc.Name) || (!sc.Builtin && !declared[sc.Name]) {
				t.Errorf("%s is bound to no route, and is neither a host-only built-in nor declared by an event type", sc.Name)
			}
			if sc.Builtin && (row == nil || row[1] != "host") {
				t.Errorf("the scopes guide does not list %s as the host's: %q", sc.Name, row)
			}
			continue
		case sc.UsedBy != "platform" || !sc.Builtin:
			t.Errorf("%s: routes %v, used by %q, builtin %v", sc.Name, sc.Routes, sc.UsedBy, sc.Builtin)
		}
		if row == nil || row[1] != "platform" {
			t.Errorf("the scopes guide does not list %s as the platform's: %q", sc.Name, row)
		}
		without := token("Without "+sc.Name, slices.DeleteFunc(slices.Clone(all), func(s string) bool { return s == sc.Name }))
		for _, route := range sc.Routes {
			t.Run(sc.Name+" "+route, func(t *testing.T) {
				used[route] = true
				if !routed[route] {
					t.Fatalf("no such route")
				}
				if row != nil && !strings.Contains(row[2], "`"+route+"`") {
					t.Errorf("the scopes guide's row of %s lacks it: %s", sc.Name, row[2])
				}
				c, ok := calls[route]
				if !ok {
					t.Fatalf("the test has no call for it")
				}
				method := strings.Fields(route)[0]
				refused := without.do(method, c.path, c.body)
				refused.problem(t, 403, "missing_scope")
				if h := refused.Header.Get("WWW-Authenticate"); !strings.Contains(h, `error="insufficient_scope"`) {
					t.Errorf("WWW-Authenticate %q", h)
				}
				full.do(method, c.path, c.body).ok(t, c.want, nil)
			})
		}
	}
	for route := range calls {
		if !used[route] {
			t.Errorf("no scope opens %s any more: bind it in marketplace.BuiltinScopes or drop its call", route)
		}
	}
}
