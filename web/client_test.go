package web_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"

	"github.com/plugboard/plugboard/cmd/platform/apptest"
	"github.com/plugboard/plugboard/marketplace"
)

// client talks to a running platform as an API user would; every exchange is
// checked against the OpenAPI document.
type client struct {
	t     testing.TB
	base  string
	token string
	http  *http.Client
}

func newClient(t testing.TB, p *apptest.Platform, token string) *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: t, base: p.URL, token: token, http: &http.Client{Jar: jar}}
}

type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// do sends body (a value, marshalled; a string, sent as is) and returns the
// response.
func (c *client) do(method, path string, body any) *response {
	c.t.Helper()
	var raw []byte
	switch b := body.(type) {
	case nil:
	case string:
		raw = []byte(b)
	default:
		raw, _ = json.Marshal(b)
	}
	req, err := http.NewRequest(method, c.base+path, bytes.NewReader(raw))
	if err != nil {
		c.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
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
	validateOpenAPI(c.t, req, raw, res, b)
	return &response{Status: res.StatusCode, Header: res.Header, Body: b}
}

// ok fails unless the status is want, and decodes the body into v.
func (r *response) ok(t testing.TB, want int, v any) *response {
	t.Helper()
	if r.Status != want {
		t.Fatalf("status %d, want %d: %s", r.Status, want, r.Body)
	}
	if v != nil {
		if err := json.Unmarshal(r.Body, v); err != nil {
			t.Fatalf("decoding %s: %v", r.Body, err)
		}
	}
	return r
}

func (r *response) obj(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("not an object: %s", r.Body)
	}
	return m
}

// problem checks the response is a problem document with status and code,
// and returns its field messages.
func (r *response) problem(t testing.TB, status int, code string) map[string]any {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d: %s", r.Status, status, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("content type %q, want application/problem+json", ct)
	}
	m := r.obj(t)
	if code != "" && m["code"] != code {
		t.Errorf("code %v, want %s: %s", m["code"], code, r.Body)
	}
	if m["requestId"] == "" || m["requestId"] == nil {
		t.Errorf("problem lacks requestId: %s", r.Body)
	}
	f, _ := m["fields"].(map[string]any)
	return f
}

// signUp creates a user and returns a client signed in as them (with a JWT).
func signUp(t testing.TB, p *apptest.Platform, email string) *client {
	t.Helper()
	anon := newClient(t, p, "")
	anon.do("POST", "/api/0/users/", map[string]string{"email": email, "name": strings.Split(email, "@")[0], "password": "correct horse battery"}).ok(t, 201, nil)
	return signIn(t, p, email)
}

func signIn(t testing.TB, p *apptest.Platform, email string) *client {
	t.Helper()
	c := newClient(t, p, "")
	var out struct{ Token string }
	c.do("POST", "/api/0/auth/", map[string]string{"email": email, "password": "correct horse battery"}).ok(t, 200, &out)
	c.token = out.Token
	return c
}

// operator makes an operator the way `plugboard users create --operator`
// does, and signs them in.
func operator(t testing.TB, p *apptest.Platform, email string) *client {
	t.Helper()
	_, err := p.App.Marketplace.Accounts.SignUp(t.Context(), marketplace.Anonymous, marketplace.NewUser{Email: email, Password: "correct horse battery", IsOperator: true})
	if err != nil {
		t.Fatal(err)
	}
	return signIn(t, p, email)
}

// count returns the rows of a table, to prove a failed request wrote nothing.
func count(t testing.TB, p *apptest.Platform, table string) int64 {
	t.Helper()
	var n int64
	if err := p.App.DB.Table(table).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

// signInActor resolves a user as the service sees them, for tests that call
// a service method directly.
func signInActor(t testing.TB, p *apptest.Platform, email string) marketplace.Actor {
	t.Helper()
	res, err := p.App.Marketplace.Accounts.SignIn(t.Context(), marketplace.Anonymous, email, "correct horse battery", "test")
	if err != nil {
		t.Fatal(err)
	}
	return marketplace.Actor{User: res.User}
}
