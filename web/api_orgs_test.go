package web_test

import (
	"fmt"
	"net/url"
	"regexp"
	"testing"

	"github.com/plugboard/plugboard/cmd/platform/apptest"
)

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

var linkRe = regexp.MustCompile(`<([^>]*)>; rel="(previous|next)"; results="(true|false)"`)

// links parses a Sentry-style Link header into rel → (path, results).
func links(t testing.TB, h string) map[string][2]string {
	t.Helper()
	out := map[string][2]string{}
	for _, m := range linkRe.FindAllStringSubmatch(h, -1) {
		u := mustURL(m[1])
		out[m[2]] = [2]string{u.RequestURI(), m[3]}
	}
	if len(out) != 2 {
		t.Fatalf("Link header %q: want previous and next", h)
	}
	return out
}

func TestOrganizationsPaginate(t *testing.T) {
	p := apptest.Start(t)
	c := signUp(t, p, "pages@example.com")
	for i := range 5 {
		c.do("POST", "/api/0/organizations/", map[string]string{"name": fmt.Sprintf("Org %c", 'a'+i)}).ok(t, 201, nil)
	}
	var seen []string
	path := "/api/0/organizations/?limit=2"
	for range 10 {
		var page []map[string]any
		res := c.do("GET", path, nil).ok(t, 200, &page)
		for _, o := range page {
			seen = append(seen, o["slug"].(string))
			if o["role"] != "owner" {
				t.Errorf("role %v", o["role"])
			}
		}
		l := links(t, res.Header.Get("Link"))
		if l["next"][1] == "false" {
			break
		}
		path = l["next"][0]
	}
	want := "[org-a org-b org-c org-d org-e]"
	if fmt.Sprint(seen) != want {
		t.Fatalf("walked %v, want %s", seen, want)
	}
	// And back from the last page.
	var last []map[string]any
	res := c.do("GET", path, nil).ok(t, 200, &last)
	prev := links(t, res.Header.Get("Link"))["previous"]
	if prev[1] != "true" {
		t.Fatalf("previous from the last page: %v", prev)
	}
	var before []map[string]any
	c.do("GET", prev[0], nil).ok(t, 200, &before)
	if len(before) != 2 || before[0]["slug"] != "org-c" || before[1]["slug"] != "org-d" {
		t.Errorf("previous page %v", before)
	}
}

func TestOrganizationLifecycle(t *testing.T) {
	p := apptest.Start(t)
	owner := signUp(t, p, "owner@example.com")
	var org map[string]any
	owner.do("POST", "/api/0/organizations/", map[string]string{"name": "Acme Corp"}).ok(t, 201, &org)
	if org["slug"] != "acme-corp" || org["role"] != "owner" {
		t.Fatalf("org %v", org)
	}
	owner.do("POST", "/api/0/organizations/", map[string]string{"name": "Acme  Corp!"}).problem(t, 409, "slug_taken")
	owner.do("POST", "/api/0/organizations/", map[string]string{"name": "Other", "slug": "9lives"}).problem(t, 400, "invalid_input")
	// By slug or id.
	owner.do("GET", "/api/0/organizations/"+org["id"].(string)+"/", nil).ok(t, 200, nil)
	var updated map[string]any
	owner.do("PUT", "/api/0/organizations/acme-corp/", map[string]string{"name": "Acme Inc"}).ok(t, 200, &updated)
	if updated["name"] != "Acme Inc" || updated["slug"] != "acme-corp" {
		t.Errorf("partial update %v", updated)
	}

	signUp(t, p, "mia@example.com")
	signUp(t, p, "al@example.com")
	var mia, al map[string]any
	owner.do("POST", "/api/0/organizations/acme-corp/members/", map[string]string{"email": "mia@example.com"}).ok(t, 201, &mia)
	owner.do("POST", "/api/0/organizations/acme-corp/members/", map[string]string{"email": "al@example.com", "role": "admin"}).ok(t, 201, &al)
	if mia["role"] != "member" || al["role"] != "admin" {
		t.Errorf("roles %v %v", mia["role"], al["role"])
	}
	owner.do("POST", "/api/0/organizations/acme-corp/members/", map[string]string{"email": "mia@example.com"}).problem(t, 409, "already_member")
	f := owner.do("POST", "/api/0/organizations/acme-corp/members/", map[string]string{"email": "ghost@example.com"}).problem(t, 400, "invalid_input")
	if f["email"] == nil {
		t.Errorf("fields %v", f)
	}
	owner.do("POST", "/api/0/organizations/acme-corp/members/", map[string]string{"email": "x@example.com", "role": "boss"}).problem(t, 400, "invalid_input")

	alc := signIn(t, p, "al@example.com")
	miac := signIn(t, p, "mia@example.com")
	// Admins cannot make owners; members cannot change roles.
	alc.do("PUT", "/api/0/organizations/acme-corp/members/"+mia["id"].(string)+"/", map[string]string{"role": "owner"}).problem(t, 403, "insufficient_role")
	miac.do("PUT", "/api/0/organizations/acme-corp/members/"+mia["id"].(string)+"/", map[string]string{"role": "admin"}).problem(t, 403, "insufficient_role")
	alc.do("PUT", "/api/0/organizations/acme-corp/members/"+mia["id"].(string)+"/", map[string]string{"role": "admin"}).ok(t, 200, nil)

	// The last owner can neither be demoted nor leave.
	var members []map[string]any
	owner.do("GET", "/api/0/organizations/acme-corp/members/", nil).ok(t, 200, &members)
	var ownerID string
	for _, m := range members {
		if m["user"].(map[string]any)["email"] == "owner@example.com" {
			ownerID = m["id"].(string)
		}
	}
	owner.do("PUT", "/api/0/organizations/acme-corp/members/"+ownerID+"/", map[string]string{"role": "admin"}).problem(t, 409, "last_owner")
	owner.do("DELETE", "/api/0/organizations/acme-corp/members/"+ownerID+"/", nil).problem(t, 409, "last_owner")
	// A member may leave.
	miac.do("DELETE", "/api/0/organizations/acme-corp/members/"+mia["id"].(string)+"/", nil).ok(t, 204, nil)
	miac.do("GET", "/api/0/organizations/acme-corp/", nil).problem(t, 404, "not_found")

	// Only owners delete.
	alc.do("DELETE", "/api/0/organizations/acme-corp/", nil).problem(t, 403, "insufficient_role")
	owner.do("DELETE", "/api/0/organizations/acme-corp/", nil).ok(t, 204, nil)
	owner.do("GET", "/api/0/organizations/acme-corp/", nil).problem(t, 404, "not_found")
}

func TestAuditLog(t *testing.T) {
	p := apptest.Start(t)
	owner := signUp(t, p, "audit@example.com")
	owner.do("POST", "/api/0/organizations/", map[string]string{"name": "Audited"}).ok(t, 201, nil)
	owner.do("POST", "/api/0/organizations/audited/apps/", map[string]any{"name": "Audit App"}).ok(t, 201, nil)
	owner.do("PUT", "/api/0/apps/audit-app/", map[string]any{"overview": "hi"}).ok(t, 200, nil)
	var entries []map[string]any
	owner.do("GET", "/api/0/organizations/audited/audit-logs/", nil).ok(t, 200, &entries)
	var actions []string
	for _, e := range entries {
		actions = append(actions, e["action"].(string))
		actor := e["actor"].(map[string]any)
		if actor["type"] != "user" || actor["name"] != "audit@example.com" || e["ipAddress"] != "127.0.0.1" {
			t.Errorf("entry %v", e)
		}
	}
	if fmt.Sprint(actions) != "[app.update app.create organization.create]" {
		t.Errorf("actions %v", actions)
	}
	owner.do("GET", "/api/0/organizations/audited/audit-logs/?action=app.create", nil).ok(t, 200, &entries)
	if len(entries) != 1 || entries[0]["target"].(map[string]any)["name"] != "audit-app" {
		t.Errorf("filtered %v", entries)
	}
}

func TestPagingBackFromPastTheEnd(t *testing.T) {
	p := apptest.Start(t)
	c := signUp(t, p, "edge@example.com")
	for i := range 4 {
		c.do("POST", "/api/0/organizations/", map[string]string{"name": fmt.Sprintf("Org %c", 'a'+i)}).ok(t, 201, nil)
	}
	var page []map[string]any
	res := c.do("GET", "/api/0/organizations/?limit=2", nil).ok(t, 200, &page)
	res = c.do("GET", links(t, res.Header.Get("Link"))["next"][0], nil).ok(t, 200, &page) // org-c, org-d
	next := links(t, res.Header.Get("Link"))["next"]
	if next[1] != "false" {
		t.Fatalf("results after the last page: %v", next)
	}
	res = c.do("GET", next[0], nil).ok(t, 200, &page) // past the end: empty
	if len(page) != 0 {
		t.Fatalf("past the end: %v", page)
	}
	c.do("GET", links(t, res.Header.Get("Link"))["previous"][0], nil).ok(t, 200, &page)
	if len(page) != 2 || page[0]["slug"] != "org-c" || page[1]["slug"] != "org-d" {
		t.Errorf("back from past the end: %v", page)
	}
}
