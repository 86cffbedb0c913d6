package web_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/plugboard/plugboard/sdk/plugboard"
)

// badText is the field message of every refusal of NUL or invalid UTF-8.
const badText = "must not contain NUL bytes or invalid UTF-8"

// TestHostileTextIsRefusedAtTheDoor sends NUL bytes, invalid UTF-8 and lone
// surrogates in path parameters, query parameters, form fields and JSON
// strings of every kind of resource: each is a 400 problem document naming
// the field (PostgreSQL would refuse them, and the answer used to be 500),
// and nothing is written.
func TestHostileTextIsRefusedAtTheDoor(t *testing.T) {
	h := newHooks(t)
	orgs, users := count(t, h.p, "organizations"), count(t, h.p, "users")
	for _, tt := range []struct {
		name   string
		c      *client
		method string
		path   string
		body   any // a string is sent as is, as JSON
		field  string
	}{
		{"query parameter", h.admin, "GET", "/api/0/apps/?query=%00", nil, "query"},
		{"query parameter, invalid UTF-8", h.admin, "GET", "/api/0/apps/?category=%ff", nil, "category"},
		{"unknown query parameter", h.admin, "GET", "/api/0/users/me/?x=a%00b", nil, "x"},
		{"query parameter name", h.admin, "GET", "/api/0/users/me/?a%00b=1", nil, "a%00b"}, // named as sent
		{"filter", h.dev, "GET", "/api/0/apps/hook-app/deliveries/?eventType=%00", nil, "eventType"},
		{"filter, invalid UTF-8", h.dev, "GET", "/api/0/apps/hook-app/installations/?status=%c3%28", nil, "status"},
		{"path parameter, invalid UTF-8", h.admin, "GET", "/api/0/apps/%ff/", nil, "app_slug"},
		{"path parameter, NUL", h.admin, "GET", "/api/0/organizations/%00/", nil, "org"},
		{"nested path parameter", h.dev, "GET", "/api/0/apps/hook-app/deliveries/%00/", nil, "delivery_id"},
		{"sign in", newClient(t, h.p, ""), "POST", "/api/0/auth/", map[string]string{"email": "a\x00@x", "password": "correct horse battery"}, "email"},
		{"sign up", newClient(t, h.p, ""), "POST", "/api/0/users/", map[string]string{"email": "new@example.com", "name": "N\x00", "password": "correct horse battery"}, "name"},
		{"organization", h.admin, "POST", "/api/0/organizations/", map[string]string{"name": "Acme\x00"}, "name"},
		{"organization update", h.admin, "PUT", "/api/0/organizations/customer/", map[string]string{"name": "\x00"}, "name"},
		{"member", h.admin, "POST", "/api/0/organizations/customer/members/", map[string]string{"email": "mia\x00@example.com"}, "email"},
		{"app", h.dev, "POST", "/api/0/organizations/partner/apps/", map[string]any{"name": "Pager", "categories": []string{"alerting\x00"}}, "categories.0"},
		{"app update", h.dev, "PUT", "/api/0/apps/hook-app/", map[string]any{"overview": "x\x00y"}, "overview"},
		{"API token", h.admin, "POST", "/api/0/api-tokens/", map[string]string{"name": "ci\x00"}, "name"},
		{"externalId", h.admin, "PUT", "/api/0/installations/" + h.inst + "/", map[string]string{"externalId": "acct\x00"}, "externalId"},
		{"event data", h.admin, "POST", "/api/0/organizations/customer/events/", map[string]any{"type": "issue.created", "data": map[string]any{"title": "t", "a": map[string]any{"b": "\x00"}}}, "data.a.b"},
		{"event data key", h.admin, "POST", "/api/0/organizations/customer/events/", map[string]any{"type": "issue.created", "data": map[string]any{"title": "t", "k\x00": 1}}, "data.k\x00"},
		{"raw invalid UTF-8 in JSON", h.admin, "POST", "/api/0/organizations/", "{\"name\": \"Acme \xff\"}", "name"},
		{"lone surrogate in JSON", h.admin, "POST", "/api/0/organizations/", `{"name": "Acme \ud800"}`, "name"},
		{"invalid UTF-8 deep in event data", h.admin, "POST", "/api/0/organizations/customer/events/", "{\"type\": \"issue.created\", \"data\": {\"title\": \"t\", \"list\": [1, \"\xc3\"]}}", "data.list.1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.c.do(tt.method, tt.path, tt.body).problem(t, 400, "invalid_encoding")
			if got := p.Fields[tt.field]; got != badText {
				t.Errorf("fields %q, want %s: %q", p.Fields, tt.field, badText)
			}
		})
	}
	if n := count(t, h.p, "organizations"); n != orgs {
		t.Errorf("%d organizations after, %d before", n, orgs)
	}
	if n := count(t, h.p, "users"); n != users {
		t.Errorf("%d users after, %d before", n, users)
	}

	// Pages and forms answer a 400 page; the OAuth endpoints an RFC 6749
	// invalid_request.
	for _, tt := range []struct {
		name, method, path string
		form               url.Values
	}{
		{"marketplace search", "GET", "/marketplace?q=%00", nil},
		{"app page", "GET", "/marketplace/%ff", nil},
		{"sign-in form", "POST", "/login", url.Values{"email": {"a\x00@x"}, "password": {"x"}}},
		{"sign-up form", "POST", "/signup", url.Values{"email": {"a@x"}, "name": {"\xff"}, "password": {"x"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader
			if tt.form != nil {
				body = strings.NewReader(tt.form.Encode())
			}
			req, _ := http.NewRequest(tt.method, h.p.URL+tt.path, body)
			req.Header.Set("Accept", "text/html")
			if tt.form != nil {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			b, _ := io.ReadAll(res.Body)
			if res.StatusCode != 400 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
				t.Errorf("%d %s: %.300s", res.StatusCode, res.Header.Get("Content-Type"), b)
			}
			if !bytes.Contains(b, []byte("NUL bytes or invalid UTF-8")) {
				t.Errorf("the page does not say what is wrong: %.2000s", b)
			}
		})
	}
	t.Run("OAuth token endpoint", func(t *testing.T) {
		res, err := http.PostForm(h.p.URL+"/oauth/token", url.Values{"grant_type": {"authorization_code"}, "code": {"\x00"}})
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var body struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		if err := json.NewDecoder(res.Body).Decode(&body); err != nil || res.StatusCode != 400 || body.Error != "invalid_request" || !strings.Contains(body.Description, "code") {
			t.Errorf("%d %+v %v", res.StatusCode, body, err)
		}
	})
}

// nextCursor is the cursor of a response's rel="next" link.
func nextCursor(t *testing.T, r *response) string {
	t.Helper()
	m := regexp.MustCompile(`rel="next"; results="(?:true|false)"; cursor="([^"]*)"`).FindStringSubmatch(r.Header.Get("Link"))
	if m == nil || m[1] == "" {
		t.Fatalf("no next cursor in Link: %q", r.Header.Get("Link"))
	}
	return m[1]
}

// TestCursorsAreChecked: a cursor is good for the list and sort it was made
// for; a forged, tampered, foreign or other-sort cursor is 400
// invalid_cursor, never 500 nor a wrong page.
func TestCursorsAreChecked(t *testing.T) {
	h := newHooks(t)
	h.admin.do("POST", "/api/0/organizations/", map[string]string{"name": "Second"}).ok(t, 201, nil)

	byName := nextCursor(t, h.admin.do("GET", "/api/0/apps/?limit=1", nil).ok(t, 200, nil))
	byInstalls := nextCursor(t, h.admin.do("GET", "/api/0/apps/?limit=1&sortBy=-installs", nil).ok(t, 200, nil))
	orgs := h.admin.do("GET", "/api/0/organizations/?limit=1", nil).ok(t, 200, nil)
	fromOrgs := nextCursor(t, orgs)

	// A cursor follows its own list.
	second := decode[[]plugboard.UserOrganization](t, h.admin.do("GET", "/api/0/organizations/?limit=1&cursor="+fromOrgs, nil), 200)
	first := decode[[]plugboard.UserOrganization](t, orgs, 200)
	if len(second) != 1 || len(first) != 1 || second[0].Slug == first[0].Slug {
		t.Fatalf("pages %+v then %+v", first, second)
	}
	h.admin.do("GET", "/api/0/apps/?limit=1&cursor="+byName, nil).ok(t, 200, nil)

	forged := base64.RawURLEncoding.EncodeToString([]byte(`{"v":"acme","i":42}`))
	tampered := []byte(byName)
	tampered[2] ^= 1
	for _, tt := range []struct{ name, path string }{
		{"forged", "/api/0/apps/?sortBy=-dateCreated&cursor=" + forged},
		{"forged, default sort", "/api/0/apps/?cursor=" + forged},
		{"tampered", "/api/0/apps/?cursor=" + string(tampered)},
		{"another sort", "/api/0/apps/?sortBy=-dateCreated&cursor=" + byName},
		{"another sort of the same type", "/api/0/apps/?cursor=" + byInstalls},
		{"another list", "/api/0/apps/?sortBy=-dateCreated&cursor=" + fromOrgs},
		{"another list's cursor on installations", "/api/0/apps/hook-app/installations/?cursor=" + byName},
		{"not base64", "/api/0/organizations/?cursor=%25%25"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := h.admin
			if strings.Contains(tt.path, "/hook-app/") {
				c = h.dev
			}
			p := c.do("GET", tt.path, nil).problem(t, 400, "invalid_cursor")
			if p.Fields["cursor"] == "" {
				t.Errorf("fields %v do not name the cursor", p.Fields)
			}
		})
	}
}

// nested is data nested depth levels deep (data itself is level 1), with
// the title the issue.created schema requires when withTitle.
func nested(depth int, withTitle bool) string {
	var b strings.Builder
	b.WriteString(`{`)
	if withTitle {
		b.WriteString(`"title": "deep", `)
	}
	for range depth - 1 {
		b.WriteString(`"a": {`)
	}
	b.WriteString(strings.Repeat("}", depth))
	return b.String()
}

// TestEventDataDepthIsBounded: data nested past PLUGBOARD_EVENTS_MAX_DEPTH
// (64) is refused with the path where it crossed the limit, before its
// schema is looked at.
func TestEventDataDepthIsBounded(t *testing.T) {
	h := newHooks(t)
	publish := func(data string) *response {
		return h.admin.do("POST", "/api/0/organizations/customer/events/", `{"type": "issue.created", "data": `+data+`}`)
	}
	publish(nested(64, true)).ok(t, 201, nil)
	want := "data" + strings.Repeat(".a", 64)
	for _, data := range []string{nested(65, true), nested(65, false), nested(5000, false)} {
		p := publish(data).problem(t, 400, "too_deep")
		if msg := p.Fields[want]; !strings.Contains(msg, "64") {
			t.Errorf("fields %v, want %s naming the limit", p.Fields, want)
		}
	}
	arrays := `{"title": "x", "l": ` + strings.Repeat("[", 64) + strings.Repeat("]", 64) + `}`
	p := publish(arrays).problem(t, 400, "too_deep")
	if want := "data.l" + strings.Repeat(".0", 63); p.Fields[want] == "" {
		t.Errorf("fields %v, want %s", p.Fields, want)
	}
}

// deepSchema is a JSON Schema nested levels deep through properties.
func deepSchema(levels int) string {
	return strings.Repeat(`{"type": "object", "properties": {"a": `, levels) + `{"type": "string"}` + strings.Repeat(`}}`, levels)
}

// refBomb is a schema of levels $defs, each an allOf of two references to
// the one below: about 1 KB that expands to 2^levels nodes (20 levels took
// 4 s to check each event).
func refBomb(levels int) string {
	var defs []string
	for i := range levels {
		defs = append(defs, fmt.Sprintf(`"l%d": {"allOf": [{"$ref": "#/$defs/l%d"}, {"$ref": "#/$defs/l%d"}]}`, i, i+1, i+1))
	}
	defs = append(defs, fmt.Sprintf(`"l%d": {"type": "object"}`, levels))
	return `{"$ref": "#/$defs/l0", "$defs": {` + strings.Join(defs, ", ") + `}}`
}

// TestEventTypeSchemaIsBounded: a schema nested past 32 levels of JSON,
// larger than 64 KiB, or whose references expand past 10,000 nodes is
// refused when the event type is created, before it is compiled (a
// 1,000-deep one used to take seconds of CPU; the reference bomb seconds
// per event).
func TestEventTypeSchemaIsBounded(t *testing.T) {
	h := newHooks(t)
	create := func(name, schema string) *response {
		return h.op.do("POST", "/api/0/event-types/", fmt.Sprintf(`{"name": %q, "scope": "issue:read", "schema": %s}`, name, schema))
	}
	create("deep.ok", deepSchema(15)).ok(t, 201, nil)
	for _, tt := range []struct{ name, schema, code, want string }{
		{"deep.sixteen", deepSchema(16), "too_deep", "32"},
		{"deep.thousand", deepSchema(1000), "too_deep", "32"},
		{"wide.schema", `{"type": "object", "description": "` + strings.Repeat("x", 64<<10) + `"}`, "schema_too_large", "65536"},
		{"ref.bomb", refBomb(20), "schema_too_large", "10000"},
		{"ref.remote", `{"$ref": "https://example.com/schema.json"}`, "invalid_input", "point into the schema"},
	} {
		p := create(tt.name, tt.schema).problem(t, 400, tt.code)
		if !strings.Contains(p.Fields["schema"], tt.want) {
			t.Errorf("%s: fields %v, want schema naming %s", tt.name, p.Fields, tt.want)
		}
	}
}
