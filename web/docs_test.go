package web

import (
	"errors"
	"html"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/plugboard/plugboard/app/fault"
	"github.com/plugboard/plugboard/marketplace"
)

// TestProblemsPageDocumentsEveryCode walks the registry: every code has its
// anchor on the served page, with its title, status and description.
func TestProblemsPageDocumentsEveryCode(t *testing.T) {
	s := newTestServer(t)
	req := httptest.NewRequest("GET", "/docs/problems", nil)
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("GET /docs/problems: %d", rec.Code)
	}
	body := html.UnescapeString(rec.Body.String())
	codes := fault.Codes()
	if len(codes) == 0 {
		t.Fatal("the registry is empty")
	}
	for _, d := range codes {
		if d.Title == "" || d.Description == "" {
			t.Errorf("%s has no title or description", d.Code)
		}
		i := strings.Index(body, `id="`+string(d.Code)+`"`)
		if i < 0 {
			t.Errorf("/docs/problems has no anchor for %s", d.Code)
			continue
		}
		entry := body[i:]
		if j := strings.Index(entry[1:], "<dt "); j > 0 {
			entry = entry[:j+1]
		}
		for _, want := range []string{d.Title, d.Description, strconv.Itoa(d.Status)} {
			if !strings.Contains(entry, want) {
				t.Errorf("/docs/problems#%s lacks %q", d.Code, want)
			}
		}
	}
	if n := strings.Count(body, "<dt id="); n != len(codes) {
		t.Errorf("/docs/problems has %d entries, the registry %d", n, len(codes))
	}
}

// TestProblemsLinkToTheirCode checks that the problem document of each
// kind of error names a registered code and links to its anchor, and that
// a fault's details become extension members.
func TestProblemsLinkToTheirCode(t *testing.T) {
	live := &marketplace.Installation{UUID: "6f1c0d5e-0000-4000-8000-000000000001", Status: marketplace.InstallInstalled}
	for _, tt := range []struct {
		name   string
		err    error
		status int
		code   fault.Code
		extra  []string
	}{
		{"forbidden", fault.Forbidden(fault.UsersOnly, "x"), 403, fault.UsersOnly, nil},
		{"field", fault.Field("name", "is required"), 400, fault.InvalidInput, nil},
		{"not found", fault.NotFound("app"), 404, fault.CodeNotFound, nil},
		{"conflict with details", fault.Conflict(fault.AlreadyInstalled, "x").With(marketplace.DetailInstallation, live), 409, fault.AlreadyInstalled, []string{"installation"}},
		{"oauth on the API", fault.OAuth(fault.InvalidGrant, "The code is unknown."), 400, fault.InvalidGrant, nil},
		{"oauth client on the API", fault.OAuth(fault.InvalidClient, "Client authentication failed."), 401, fault.InvalidClient, nil},
		{"not ready", &fault.Error{Kind: fault.KindUnavailable, Code: fault.NotReady, Message: "x", Details: map[string]any{"checks": map[string]string{}}}, 503, fault.NotReady, []string{"checks"}},
		{"internal", errors.New("boom"), 500, fault.InternalError, nil},
		{"wrapped internal fault", &fault.Error{Kind: fault.KindInternal, Code: fault.UsersOnly, Message: "secret"}, 500, fault.InternalError, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := problemFor(tt.err)
			if p.Status != tt.status || p.Code != tt.code || p.Type != "/docs/problems#"+string(tt.code) {
				t.Errorf("status %d code %s type %s, want %d %s", p.Status, p.Code, p.Type, tt.status, tt.code)
			}
			if _, ok := fault.Lookup(p.Code); !ok {
				t.Errorf("%s is not registered", p.Code)
			}
			var got []string
			for k := range p.Extra {
				got = append(got, k)
			}
			if diff := cmp.Diff(tt.extra, got); diff != "" {
				t.Errorf("extension members (-want +got):\n%s", diff)
			}
		})
	}
	if inst, ok := problemFor(fault.Conflict(fault.AlreadyInstalled, "x").With(marketplace.DetailInstallation, live)).Extra["installation"].(installationJSON); !ok || inst.UUID != live.UUID {
		t.Errorf("the installation member is %#v, want the installation as the API shows it", inst)
	}
}

// TestOAuthErrorsOnTheOAuthEndpoints pins the RFC 6749 answers of
// /oauth/token and /oauth/revoke, rendered by handleError.
func TestOAuthErrorsOnTheOAuthEndpoints(t *testing.T) {
	s := newTestServer(t)
	for _, tt := range []struct {
		name, path string
		err        error
		status     int
		body       string
		header     http.Header
	}{
		{"invalid client", "/oauth/token", fault.OAuth(fault.InvalidClient, "Client authentication failed."), 401,
			`{"error":"invalid_client","error_description":"Client authentication failed."}`,
			http.Header{"Www-Authenticate": {`Basic realm="plugboard"`}, "Cache-Control": {"no-store"}, "Content-Type": {"application/json"}}},
		{"invalid grant", "/oauth/token", fault.OAuth(fault.InvalidGrant, "The code is unknown."), 400,
			`{"error":"invalid_grant","error_description":"The code is unknown."}`,
			http.Header{"Cache-Control": {"no-store"}, "Content-Type": {"application/json"}}},
		{"revoke without token", "/oauth/revoke", fault.OAuth(fault.InvalidRequest, "token is required."), 400,
			`{"error":"invalid_request","error_description":"token is required."}`,
			http.Header{"Cache-Control": {"no-store"}, "Content-Type": {"application/json"}}},
		{"internal error stays a problem", "/oauth/token", errors.New("db down"), 500, `"code":"internal_error"`,
			http.Header{"Content-Type": {"application/problem+json"}}},
		{"oauth error on the API is a problem", "/api/0/installations/x/authorizations/", fault.OAuth(fault.InvalidClient, "Client authentication failed."), 401,
			`"code":"invalid_client"`, http.Header{"Www-Authenticate": {`Bearer realm="plugboard"`}, "Content-Type": {"application/problem+json"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest("POST", tt.path, nil)
			rec := httptest.NewRecorder()
			s.handleError(tt.err, s.e.NewContext(req, rec))
			if rec.Code != tt.status {
				t.Errorf("status %d, want %d", rec.Code, tt.status)
			}
			if got := strings.TrimSpace(rec.Body.String()); !strings.Contains(got, tt.body) || (strings.HasPrefix(tt.body, "{") && got != tt.body) {
				t.Errorf("body %s, want %s", got, tt.body)
			}
			for k, v := range tt.header {
				if got := rec.Header().Values(k); !cmp.Equal(got, v) {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
		})
	}
}

// TestOpenAPIProblemTypesAreRegistered keeps the reference's examples on
// codes that /docs/problems explains.
func TestOpenAPIProblemTypesAreRegistered(t *testing.T) {
	for _, m := range regexp.MustCompile(`/docs/problems#([a-z_]+)`).FindAllStringSubmatch(string(openapiYAML), -1) {
		if _, ok := fault.Lookup(fault.Code(m[1])); !ok {
			t.Errorf("openapi.yaml links to %s, which is not registered", m[0])
		}
	}
}
