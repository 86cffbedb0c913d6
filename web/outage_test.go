package web_test

import (
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/plugboard/plugboard/app/testenv"
	"github.com/plugboard/plugboard/config"
	"github.com/plugboard/plugboard/marketplace"
)

// TestPostgresDownAnswers503: while PostgreSQL is unreachable every route
// answers 503 unavailable with Retry-After, not 500; once it is back the
// same requests work again.
func TestPostgresDownAnswers503(t *testing.T) {
	pg := testenv.NewProxy(t, "127.0.0.1:5432")
	h := newHooks(t, func(c *config.Config) {
		u, _ := url.Parse(c.DatabaseURL)
		u.Host = pg.Addr()
		c.DatabaseURL = u.String()
		c.DatabaseMaxConns = 5
	})
	anon := newClient(t, h.p, "")
	requests := []struct {
		name   string
		c      *client
		method string
		path   string
		body   any
	}{
		{"publish", h.admin, "POST", "/api/0/organizations/customer/events/", map[string]any{"type": "issue.created", "data": map[string]any{"title": "in the dark"}}},
		{"directory", anon, "GET", "/api/0/apps/", nil},
		{"me", h.admin, "GET", "/api/0/users/me/", nil},
		{"sign in", anon, "POST", "/api/0/auth/", map[string]string{"email": "admin@customer.example", "password": "correct horse battery"}},
		{"deliveries", h.dev, "GET", "/api/0/apps/hook-app/deliveries/", nil},
		{"new organization", h.dev, "POST", "/api/0/organizations/", map[string]string{"name": "Dark"}},
	}
	h.publish(t, "before")

	pg.Cut()
	// A signed-in user's access is reused for marketplace.AccessTTL; past
	// it, every request needs PostgreSQL again.
	time.Sleep(marketplace.AccessTTL + 100*time.Millisecond)
	for _, r := range requests {
		t.Run("down/"+r.name, func(t *testing.T) {
			res := r.c.do(r.method, r.path, r.body)
			res.problem(t, 503, "unavailable")
			if s, err := strconv.Atoi(res.Header.Get("Retry-After")); err != nil || s < 1 {
				t.Errorf("Retry-After %q", res.Header.Get("Retry-After"))
			}
		})
	}

	pg.Restore(t)
	deadline := time.Now().Add(20 * time.Second)
	for _, r := range requests {
		for {
			res := r.c.do(r.method, r.path, r.body)
			if res.Status < 300 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s after the restore: %d %s", r.name, res.Status, res.Body)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}
