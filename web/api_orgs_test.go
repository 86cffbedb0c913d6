package web_test

import (
	"fmt"
	"net/url"
	"regexp"
	"testing"

	"github.com/plugboard/plugboard/cmd/platform/apptest"
	"github.com/plugboard/plugboard/sdk/plugboard"
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

// orgSlugs lists the organizations' slugs, in order.
func orgSlugs(orgs []plugboard.UserOrganization) []string {
	out := make([]string, len(orgs))
	for i, o := range orgs {
		out[i] = o.Slug
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
		res := c.do("GET", path, nil)
		for _, o := range decode[[]plugboard.UserOrganization](t, res, 200) {
			seen = append(seen, o.Slug)
			if o.Role != "owner" {
				t.Errorf("role %q", o.Role)
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
	res := c.do("GET", path, nil).ok(t, 200, &[]plugboard.UserOrganization{})
	prev := links(t, res.Header.Get("Link"))["previous"]
	if prev[1] != "true" {
		t.Fatalf("previous from the last page: %v", prev)
	}
	if before := orgSlugs(decode[[]plugboard.UserOrganization](t, c.do("GET", prev[0], nil), 200)); fmt.Sprint(before) != "[org-c org-d]" {
		t.Errorf("previous page %v", before)
	}
}

func TestOrganizationLifecycle(t *testing.T) {
	p := apptest.Start(t)
	owner := signUp(t, p, "owner@example.com")
	org := decode[plugboard.UserOrganization](t, owner.do("POST", "/api/0/organizations/", map[string]string{"name": "Acme Corp"}), 201)
	if org.Slug != "acme-corp" || org.Role != "owner" {
		t.Fatalf("org %+v", org)
	}
	owner.do("POST", "/api/0/organizations/", map[string]string{"name": "Acme  Corp!"}).problem(t, 409, "slug_taken")
	owner.do("POST", "/api/0/organizations/", map[string]string{"name": "Other", "slug": "9lives"}).problem(t, 400, "invalid_input")
	// By slug or id.
	owner.do("GET", "/api/0/organizations/"+org.ID+"/", nil).ok(t, 200, nil)
	updated := decode[plugboard.UserOrganization](t, owner.do("PUT", "/api/0/organizations/acme-corp/", map[string]string{"name": "Acme Inc"}), 200)
	if updated.Name != "Acme Inc" || updated.Slug != "acme-corp" {
		t.Errorf("partial update %+v", updated)
	}

	signUp(t, p, "mia@example.com")
	signUp(t, p, "al@example.com")
	mia := decode[plugboard.Member](t, owner.do("POST", "/api/0/organizations/acme-corp/members/", map[string]string{"email": "mia@example.com"}), 201)
	al := decode[plugboard.Member](t, owner.do("POST", "/api/0/organizations/acme-corp/members/", map[string]string{"email": "al@example.com", "role": "admin"}), 201)
	if mia.Role != "member" || al.Role != "admin" {
		t.Errorf("roles %q %q", mia.Role, al.Role)
	}
	owner.do("POST", "/api/0/organizations/acme-corp/members/", map[string]string{"email": "mia@example.com"}).problem(t, 409, "already_member")
	f := owner.do("POST", "/api/0/organizations/acme-corp/members/", map[string]string{"email": "ghost@example.com"}).problem(t, 400, "invalid_input")
	if f.Fields["email"] == "" {
		t.Errorf("fields %v", f.Fields)
	}
	owner.do("POST", "/api/0/organizations/acme-corp/members/", map[string]string{"email": "x@example.com", "role": "boss"}).problem(t, 400, "invalid_input")

	alc := signIn(t, p, "al@example.com")
	miac := signIn(t, p, "mia@example.com")
	// Admins cannot make owners; members cannot change roles.
	alc.do("PUT", "/api/0/organizations/acme-corp/members/"+mia.ID+"/", map[string]string{"role": "owner"}).problem(t, 403, "insufficient_role")
	miac.do("PUT", "/api/0/organizations/acme-corp/members/"+mia.ID+"/", map[string]string{"role": "admin"}).problem(t, 403, "insufficient_role")
	alc.do("PUT", "/api/0/organizations/acme-corp/members/"+mia.ID+"/", map[string]string{"role": "admin"}).ok(t, 200, nil)

	// The last owner can neither be demoted nor leave.
	var ownerID string
	for _, m := range decode[[]plugboard.Member](t, owner.do("GET", "/api/0/organizations/acme-corp/members/", nil), 200) {
		if m.User.Email == "owner@example.com" {
			ownerID = m.ID
		}
	}
	owner.do("PUT", "/api/0/organizations/acme-corp/members/"+ownerID+"/", map[string]string{"role": "admin"}).problem(t, 409, "last_owner")
	owner.do("DELETE", "/api/0/organizations/acme-corp/members/"+ownerID+"/", nil).problem(t, 409, "last_owner")
	// A member may leave.
	miac.do("DELETE", "/api/0/organizations/acme-corp/members/"+mia.ID+"/", nil).ok(t, 204, nil)
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
	var actions []string
	for _, e := range decode[[]plugboard.AuditLogEntry](t, owner.do("GET", "/api/0/organizations/audited/audit-logs/", nil), 200) {
		actions = append(actions, e.Action)
		if e.Actor.Type != "user" || e.Actor.Name != "audit@example.com" || e.IPAddress != "127.0.0.1" {
			t.Errorf("entry %+v", e)
		}
	}
	if fmt.Sprint(actions) != "[app.update app.create organization.create]" {
		t.Errorf("actions %v", actions)
	}
	if entries := decode[[]plugboard.AuditLogEntry](t, owner.do("GET", "/api/0/organizations/audited/audit-logs/?action=app.create", nil), 200); len(entries) != 1 || entries[0].Target.Name != "audit-app" {
		t.Errorf("filtered %+v", entries)
	}
}

func TestPagingBackFromPastTheEnd(t *testing.T) {
	p := apptest.Start(t)
	c := signUp(t, p, "edge@example.com")
	for i := range 4 {
		c.do("POST", "/api/0/organizations/", map[string]string{"name": fmt.Sprintf("Org %c", 'a'+i)}).ok(t, 201, nil)
	}
	// page returns the slugs of the organizations at path, and its Link header.
	page := func(path string) ([]string, string) {
		res := c.do("GET", path, nil)
		return orgSlugs(decode[[]plugboard.UserOrganization](t, res, 200)), res.Header.Get("Link")
	}
	_, link := page("/api/0/organizations/?limit=2")
	_, link = page(links(t, link)["next"][0]) // org-c, org-d
	next := links(t, link)["next"]
	if next[1] != "false" {
		t.Fatalf("results after the last page: %v", next)
	}
	got, link := page(next[0]) // past the end: empty
	if len(got) != 0 {
		t.Fatalf("past the end: %v", got)
	}
	if got, _ := page(links(t, link)["previous"][0]); fmt.Sprint(got) != "[org-c org-d]" {
		t.Errorf("back from past the end: %v", got)
	}
}
