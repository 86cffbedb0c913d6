package web

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/plugboard/plugboard/app/page"
)

// FuzzDecodeJSON sends bodies through the strict decoder into a real
// request type and checks what it accepts against encoding/json as the
// reference: only one valid JSON object, each member a field of the type
// named exactly and once, and what was decoded encodes and decodes back to
// the same value.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{`{"name":"Acme","slug":"acme"}`, `{"name":"x","categories":["a"],"webhookRateLimit":5}`, `null`, `[]`, `{}`,
		`{"NAME":"x"}`, `{"name":"a","name":"b"}`, `{"name":"\u0000"}`, "{\"name\":\"\xff\"}", `{"webhookRateLimit":1e400}`, `{} {}`, ` {"status":"published"} `,
		`{"scopes":null}`, `{"publicKey":"-----BEGIN"}`, `{"name":{"a":[1,{"b":2}]}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var got appUpdateRequest
		err := decodeJSON(bytes.NewReader(body), &got)
		if err != nil {
			return
		}
		if !json.Valid(body) {
			t.Fatalf("accepted invalid JSON %q", body)
		}
		var members map[string]json.RawMessage
		if err := json.Unmarshal(body, &members); err != nil || members == nil {
			t.Fatalf("accepted %q, which is not an object", body)
		}
		known := jsonFields(reflect.TypeFor[appUpdateRequest]())
		for k := range members {
			if _, ok := known[k]; !ok {
				t.Fatalf("accepted member %q, not a field: %q", k, body)
			}
		}
		again, _ := json.Marshal(got)
		var back appUpdateRequest
		if err := decodeJSON(bytes.NewReader(again), &back); err != nil {
			t.Fatalf("re-encoded %s is refused: %v", again, err)
		}
		if !reflect.DeepEqual(got, back) {
			t.Fatalf("round trip changed %+v into %+v", got, back)
		}
	})
}

// FuzzListQuery parses list query strings as the list routes do (cursor,
// limit, sortBy, expand) and checks what is accepted is within bounds and
// that an accepted cursor encodes back to itself.
func FuzzListQuery(f *testing.F) {
	srv := &Server{cursors: page.NewCodec([]byte("a key for the fuzz target"))}
	cur := srv.cursors.Encode(&page.Cursor{Value: "acme", ID: 42})
	for _, s := range []string{"", "limit=10", "limit=0", "limit=101", "limit=-1", "limit=99999999999999999999", "cursor=" + cur, "cursor=%00", "cursor=e30",
		"sortBy=name", "sortBy=-dateCreated", "sortBy=%ff", "expand=plans", "expand=plans,owner", "expand=plans&expand=plans", "expand=%20plans%20", "a=%zz&limit=5"} {
		f.Add(s)
	}
	e := echo.New()
	f.Fuzz(func(t *testing.T, rawQuery string) {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.URL.RawQuery = rawQuery
		c := e.NewContext(req, httptest.NewRecorder())
		q, _ := url.ParseQuery(rawQuery) // the reference; echo drops what it cannot parse the same way
		if r, err := srv.pageRequest(c); err == nil {
			if r.Limit != 0 && (r.Limit < 1 || r.Limit > page.MaxLimit) {
				t.Fatalf("limit %d accepted from %q", r.Limit, rawQuery)
			}
			if (r.Cursor == nil) != (q.Get("cursor") == "") {
				t.Fatalf("cursor %+v from %q", r.Cursor, rawQuery)
			}
			if r.Cursor != nil {
				back, err := srv.cursors.Decode(srv.cursors.Encode(r.Cursor))
				if err != nil || *back != *r.Cursor {
					t.Fatalf("cursor %+v does not round-trip: %+v %v", r.Cursor, back, err)
				}
			}
		}
		allowed := []string{"name", "-dateCreated"}
		if s, err := sortParam(c, "name", allowed...); err == nil && !slices.Contains(allowed, s) {
			t.Fatalf("sortBy %q accepted from %q", s, rawQuery)
		}
		if ex, err := expandParam(c, "plans"); err == nil {
			for k := range ex {
				if k != "plans" {
					t.Fatalf("expand %q accepted from %q", k, rawQuery)
				}
			}
		}
	})
}

// FuzzLoginForm posts sign-in form bodies as the login page reads them and
// checks the page never sends the browser off the site: the `next` it
// redirects to, read the way browsers do (tabs and newlines dropped, "\"
// as "/"), stays on this origin.
func FuzzLoginForm(f *testing.F) {
	for _, s := range []string{"email=a%40b.example&password=x&next=%2Forgs%2Facme%2F", "next=%2F%2Fevil.example", "next=%2F%09%2Fevil.example",
		"next=%2F%5Cevil.example", "next=https%3A%2F%2Fevil.example", "next=%2F%2F%2Fevil", "next=%2Fa%3Fb%3D%2F%2Fc", "next=javascript%3Aalert(1)",
		"email=%00&password=%ff", "next=/%2F/evil", "next=%2F%E3%80%82evil", "next=%2F..%2F..%2F"} {
		f.Add(s)
	}
	e := echo.New()
	base, _ := url.Parse("https://plugboard.example/login")
	f.Fuzz(func(t *testing.T, form string) {
		req := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader(form))
		req.Header.Set(echo.HeaderContentType, echo.MIMEApplicationForm)
		c := e.NewContext(req, httptest.NewRecorder())
		_, _ = c.FormValue("email"), c.FormValue("password")
		in := c.FormValue("next")
		next := safeNext(in)
		if next != "/" && next != in {
			t.Fatalf("safeNext(%q) = %q", in, next)
		}
		browser := strings.NewReplacer("\t", "", "\n", "", "\r", "", `\`, "/").Replace(next)
		u, err := base.Parse(browser)
		if err != nil {
			if next != "/" {
				t.Fatalf("safeNext passed %q, which does not parse: %v", next, err)
			}
			return
		}
		if u.Host != "plugboard.example" || u.Scheme != "https" {
			t.Fatalf("next %q (from %q) leads to %s", next, in, u)
		}
	})
}
