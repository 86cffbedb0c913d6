package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/labstack/echo/v4"
	"github.com/plugboard/plugboard/app/fault"
	"github.com/plugboard/plugboard/app/page"
)

func newTestServer(t *testing.T, checks ...Check) *Server {
	t.Helper()
	return New(Options{
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		Env:       "test",
		BaseURL:   "http://plugboard.test",
		BodyLimit: 64,
		Checks:    checks,
	})
}

// do sends a request to h and returns the response and its body, which
// must be JSON when there is one.
func do(t *testing.T, h http.Handler, method, path, body string) (*http.Response, []byte) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	res := rec.Result()
	b, _ := io.ReadAll(res.Body)
	if len(b) > 0 && !json.Valid(b) {
		t.Fatalf("%s %s: body is not JSON: %s", method, path, b)
	}
	return res, b
}

// decodeAs decodes a JSON body into a T, refusing members T lacks.
func decodeAs[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decoding %s into %T: %v", b, v, err)
	}
	return v
}

// problemJSON is the problem document as a client reads it. It is written
// out here, not borrowed from Problem, so that a member Problem renames or
// retypes fails these tests instead of changing with them.
type problemJSON struct {
	Type      string            `json:"type"`
	Title     string            `json:"title"`
	Status    int               `json:"status"`
	Detail    string            `json:"detail"`
	Instance  string            `json:"instance"`
	Code      string            `json:"code"`
	RequestID string            `json:"requestId"`
	Fields    map[string]string `json:"fields"`
	Checks    map[string]string `json:"checks"` // not_ready: each check's state
}

type widget struct {
	Name  string `json:"name"`
	Count int    `json:"count"`
	Tags  []struct {
		Label string `json:"label"`
	} `json:"tags"`
}

func TestProblemDocuments(t *testing.T) {
	s := newTestServer(t)
	s.e.POST("/api/0/widgets/", func(c echo.Context) error {
		var w widget
		if err := bindJSON(c, &w); err != nil {
			return err
		}
		return c.JSON(http.StatusCreated, w)
	})
	s.e.GET("/api/0/boom/", func(c echo.Context) error {
		return errors.New("pq: password authentication failed for user secret")
	})
	s.e.GET("/api/0/panic/", func(c echo.Context) error { panic("kaboom") })
	s.e.GET("/api/0/taken/", func(c echo.Context) error {
		return &fault.Error{Kind: fault.KindConflict, Code: fault.SlugTaken, Message: "That slug is taken.", Fields: map[string]string{"slug": "is already taken"}}
	})

	tests := []struct {
		name, method, path, body string
		status                   int
		code                     string
		fields                   map[string]string
	}{
		{"unknown field", "POST", "/api/0/widgets/", `{"name":"a","colour":"red"}`, 400, "invalid_input", map[string]string{"colour": "is not a known field"}},
		{"wrong type", "POST", "/api/0/widgets/", `{"name":"a","count":"three"}`, 400, "invalid_input", map[string]string{"count": "must be an integer, not string"}},
		{"nested wrong type", "POST", "/api/0/widgets/", `{"tags":[{"label":7}]}`, 400, "invalid_input", map[string]string{"tags.label": "must be a string, not number"}},
		{"malformed", "POST", "/api/0/widgets/", `{"name":`, 400, "malformed_json", nil},
		{"empty body", "POST", "/api/0/widgets/", ``, 400, "malformed_json", nil},
		{"two values", "POST", "/api/0/widgets/", `{} {}`, 400, "malformed_json", nil},
		{"too large", "POST", "/api/0/widgets/", `{"name":"` + strings.Repeat("x", 100) + `"}`, 413, "body_too_large", nil},
		{"no route", "GET", "/api/0/nothing/", ``, 404, "not_found", nil},
		{"wrong method", "DELETE", "/healthz", ``, 405, "method_not_allowed", nil},
		{"internal", "GET", "/api/0/boom/", ``, 500, "internal_error", nil},
		{"panic", "GET", "/api/0/panic/", ``, 500, "internal_error", nil},
		{"domain conflict", "GET", "/api/0/taken/", ``, 409, "slug_taken", map[string]string{"slug": "is already taken"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, body := do(t, s, tt.method, tt.path, tt.body)
			if res.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", res.StatusCode, tt.status, body)
			}
			if ct := res.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("content type %q", ct)
			}
			doc := decodeAs[problemJSON](t, body)
			if doc.Code != tt.code || doc.Status != tt.status || doc.Title == "" || doc.Type == "" {
				t.Errorf("problem %+v, want code %s", doc, tt.code)
			}
			rid := res.Header.Get("X-Request-Id")
			if rid == "" || doc.RequestID != rid {
				t.Errorf("requestId %q, header %q", doc.RequestID, rid)
			}
			if diff := cmp.Diff(tt.fields, doc.Fields); diff != "" {
				t.Errorf("fields (-want +got):\n%s", diff)
			}
			if tt.status == 500 && (doc.Detail == "" || strings.Contains(doc.Detail, "password") || strings.Contains(doc.Detail, "kaboom")) {
				t.Errorf("internal error leaked: %q", doc.Detail)
			}
		})
	}
}

func TestRequestIDIsEchoed(t *testing.T) {
	s := newTestServer(t)
	req := httptest.NewRequest("GET", "/healthz", nil)
	req.Header.Set("X-Request-ID", "abc-123")
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	if got := rec.Header().Get("X-Request-Id"); got != "abc-123" {
		t.Errorf("X-Request-Id %q, want abc-123", got)
	}
}

func TestTrailingSlashOptional(t *testing.T) {
	s := newTestServer(t)
	s.e.GET("/api/0/things/", func(c echo.Context) error { return c.JSON(200, map[string]string{}) })
	for _, p := range []string{"/api/0/things/", "/api/0/things", "/api/0/things?limit=3"} {
		if res, _ := do(t, s, "GET", p, ""); res.StatusCode != 200 {
			t.Errorf("GET %s: %d", p, res.StatusCode)
		}
	}
}

func TestReadiness(t *testing.T) {
	var redisDown bool
	s := newTestServer(t,
		Check{"postgres", func(context.Context) error { return nil }},
		Check{"redis", func(context.Context) error {
			if redisDown {
				return errors.New("dial tcp: connection refused")
			}
			return nil
		}},
	)
	res, body := do(t, s, "GET", "/readyz", "")
	if res.StatusCode != 200 {
		t.Fatalf("ready: %d %s", res.StatusCode, body)
	}
	if ready := decodeAs[struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
	}](t, body); ready.Status != "ok" {
		t.Fatalf("ready: %d %s", res.StatusCode, body)
	}
	redisDown = true
	res, body = do(t, s, "GET", "/readyz", "")
	if res.StatusCode != 503 {
		t.Fatalf("not ready: %d %s", res.StatusCode, body)
	}
	doc := decodeAs[problemJSON](t, body)
	if doc.Code != "not_ready" || !strings.Contains(doc.Detail, "redis") {
		t.Fatalf("not ready: %d %s", res.StatusCode, body)
	}
	if checks := doc.Checks; checks["redis"] != "down" || checks["postgres"] != "ok" {
		t.Errorf("checks %v", checks)
	}
}

func TestLinkHeader(t *testing.T) {
	base, _ := url.Parse("http://plugboard.test/api/0/apps/?query=x&cursor=old")
	next := &page.Cursor{Value: "b", ID: 2}
	codec := page.NewCodec([]byte("key"))
	got := linkHeader(base, codec, nil, next, false, true)
	enc := codec.Encode(next)
	want := `<http://plugboard.test/api/0/apps/?query=x>; rel="previous"; results="false"; cursor="", ` +
		`<http://plugboard.test/api/0/apps/?cursor=` + enc + `&query=x>; rel="next"; results="true"; cursor="` + enc + `"`
	if got != want {
		t.Errorf("Link:\n got %s\nwant %s", got, want)
	}
}

func TestPageRequestValidation(t *testing.T) {
	s := newTestServer(t)
	s.e.GET("/api/0/things/", func(c echo.Context) error {
		r, err := s.pageRequest(c)
		if err != nil {
			return err
		}
		return c.JSON(200, map[string]int{"size": r.Size()})
	})
	for q, status := range map[string]int{"": 200, "?limit=5": 200, "?limit=0": 400, "?limit=101": 400, "?limit=x": 400, "?cursor=zzz": 400} {
		if res, body := do(t, s, "GET", "/api/0/things/"+q, ""); res.StatusCode != status {
			t.Errorf("%s: %d, want %d (%s)", q, res.StatusCode, status, body)
		}
	}
}

func TestDocsPages(t *testing.T) {
	s := newTestServer(t)
	for path, want := range map[string]string{
		"/docs/api": `spec-url="/api/0/openapi.json"`,
		"/assets/vendor/redoc/redoc.standalone.js": "Redoc",
		"/docs/problems": `id="invalid_grant"`,
	} {
		req := httptest.NewRequest("GET", path, nil)
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code != 200 || !strings.Contains(rec.Body.String(), want) {
			t.Errorf("GET %s: %d, body lacks %q", path, rec.Code, want)
		}
	}
	// Every code the handlers use is explained.
	for _, code := range statusCode {
		if d, ok := fault.Lookup(code); !ok || d.Description == "" {
			t.Errorf("code %q has no explanation on /docs/problems", code)
		}
	}
}
