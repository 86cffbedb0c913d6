package plugboard_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/plugboard/plugboard/sdk/plugboard"
)

func TestOrganizationRoutes(t *testing.T) {
	member := func(id string) string {
		return `{"id":"` + id + `","role":"admin","user":{"id":"u` + id + `","email":"m` + id + `@globex.example","name":"M"},"dateCreated":"2026-01-02T15:04:05Z"}`
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+instToken {
			problem(w, r, 401, "invalid_token", "The token is not valid.", nil, nil)
			return
		}
		switch r.URL.Path {
		case "/api/0/organizations/globex/":
			w.Write([]byte(`{"id":"8","slug":"globex","name":"Globex","dateCreated":"2026-01-02T15:04:05Z"}`))
		case "/api/0/organizations/globex/members/":
			if r.URL.Query().Get("limit") != "100" {
				t.Errorf("members query %q", r.URL.RawQuery)
			}
			if r.URL.Query().Get("cursor") == "" {
				w.Header().Set("Link", `<`+r.URL.Path+`?cursor=c2>; rel="next"; results="true"; cursor="c2"`)
				w.Write([]byte("[" + member("1") + "," + member("2") + "]"))
				return
			}
			w.Write([]byte("[" + member("3") + "]"))
		default:
			problem(w, r, 403, "missing_scope", "The installation lacks the scope member:read.", nil, nil)
		}
	}))
	defer srv.Close()
	c, _ := plugboard.NewClient(srv.URL, plugboard.WithToken(instToken))
	ctx := context.Background()

	org, err := c.GetOrganization(ctx, "globex")
	if err != nil || org.Slug != "globex" || org.ID != "8" {
		t.Errorf("organization %+v %v", org, err)
	}
	var ids []string
	for m, err := range c.AllMembers(ctx, "globex") {
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID+" "+m.User.Email)
	}
	if len(ids) != 3 || ids[2] != "3 m3@globex.example" {
		t.Errorf("members %v", ids)
	}
	var apiErr *plugboard.APIError
	if _, err := c.ListMembers(ctx, "initech", "", 0); !errors.As(err, &apiErr) || apiErr.Code != "missing_scope" {
		t.Errorf("without the scope: %v", err)
	}
}
