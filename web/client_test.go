package web_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"

	"github.com/plugboard/plugboard/cmd/platform/apptest"
	"github.com/plugboard/plugboard/marketplace"
	"github.com/plugboard/plugboard/sdk/plugboard"
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

// ok fails unless the status is want, and decodes the body into v (when not
// nil) strictly: see strictUnmarshal.
func (r *response) ok(t testing.TB, want int, v any) *response {
	t.Helper()
	if r.Status != want {
		t.Fatalf("status %d, want %d: %s", r.Status, want, r.Body)
	}
	if v != nil {
		if err := strictUnmarshal(r.Body, v); err != nil {
			t.Fatalf("decoding %s into %T: %v", r.Body, v, err)
		}
	}
	return r
}

// decode fails unless the status is want, and returns the body decoded
// strictly into a T, usually one of the SDK's types:
//
//	app := decode[plugboard.App](t, partner.do("GET", "/api/0/apps/x/", nil), 200)
func decode[T any](t testing.TB, r *response, want int) T {
	t.Helper()
	var v T
	r.ok(t, want, &v)
	return v
}

// strictUnmarshal decodes one JSON value into v and refuses members v has no
// field for, so a field the API renames or adds fails the test where it is
// decoded, instead of leaving a zero value that compares equal by chance.
func strictUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("more than one JSON value")
	}
	return nil
}

// problemDoc is the API's problem document (RFC 9457 with a stable code,
// the request id and per-field messages), with the extension member the
// already_installed conflict carries.
type problemDoc struct {
	Type         string                  `json:"type"`
	Title        string                  `json:"title"`
	Status       int                     `json:"status"`
	Detail       string                  `json:"detail"`
	Instance     string                  `json:"instance"`
	Code         string                  `json:"code"`
	RequestID    string                  `json:"requestId"`
	Fields       map[string]string       `json:"fields"`
	Installation *plugboard.Installation `json:"installation"` // already_installed: the live installation
	Reason       string                  `json:"reason"`       // provision_failed, plan_change_failed: the class
}

// problem checks the response is a problem document with status and code
// (any code when ""), and returns it.
func (r *response) problem(t testing.TB, status int, code string) problemDoc {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d: %s", r.Status, status, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("content type %q, want application/problem+json", ct)
	}
	var p problemDoc
	if err := strictUnmarshal(r.Body, &p); err != nil {
		t.Fatalf("not a problem document: %v: %s", err, r.Body)
	}
	if code != "" && p.Code != code {
		t.Errorf("code %v, want %s: %s", p.Code, code, r.Body)
	}
	if p.RequestID == "" {
		t.Errorf("problem lacks requestId: %s", r.Body)
	}
	return p
}

// rawItems is raw for a list: each item's members, undecoded.
func (r *response) rawItems(t testing.TB) []map[string]json.RawMessage {
	t.Helper()
	var items []map[string]json.RawMessage
	if err := json.Unmarshal(r.Body, &items); err != nil {
		t.Fatalf("not a list of objects: %s", r.Body)
	}
	return items
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
	session := decode[plugboard.Session](t, c.do("POST", "/api/0/auth/", map[string]string{"email": email, "password": "correct horse battery"}), 200)
	c.token = session.Token
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
