package plugboard_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plugboard/plugboard/sdk/plugboard"
)

// fakeIntrospection answers POST /oauth/introspect like web/introspect.go
// for the host token pbh_host: pbi_good is active with org:read and
// issue:read in organization 7, anything else inactive.
func fakeIntrospection(t *testing.T) (*httptest.Server, *atomic.Int32) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		if r.Method != http.MethodPost || r.URL.Path != "/oauth/introspect" || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
			t.Errorf("%s %s %s", r.Method, r.URL.Path, r.Header.Get("Content-Type"))
		}
		if r.Header.Get("Authorization") != "Bearer pbh_host" {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"status":401,"code":"host_token_required","detail":"Introspection answers the host."}`))
			return
		}
		if r.PostFormValue("token") != "pbi_good" {
			w.Write([]byte(`{"active":false}`))
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"active": true, "scope": "org:read issue:read", "client_id": clientID, "token_type": "bearer",
			"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(), "sub": instUUID, "installation_id": instUUID,
			"organization": map[string]string{"id": "7", "slug": "acme", "name": "Acme"}, "app": map[string]string{"id": "3", "slug": "alerts", "name": "Alerts"}})
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

func TestIntrospector(t *testing.T) {
	srv, calls := fakeIntrospection(t)
	in := plugboard.NewIntrospector(srv.URL, "pbh_host")
	got, err := in.Introspect(t.Context(), "pbi_good")
	if err != nil || !got.Active || got.InstallationID != instUUID || got.Organization == nil || got.Organization.ID != "7" ||
		got.App.Slug != "alerts" || !got.HasScope("issue:read") || got.HasScope("issue:write") || len(got.Scopes()) != 2 {
		t.Fatalf("active: %+v %v", got, err)
	}
	// Kept for a second: the second question is not sent.
	if again, err := in.Introspect(t.Context(), "pbi_good"); err != nil || again != got || calls.Load() != 1 {
		t.Fatalf("again: %+v %v after %d calls", again, err, calls.Load())
	}
	// Inactive answers are never kept.
	for range 2 {
		if got, err := in.Introspect(t.Context(), "pbi_bad"); err != nil || got.Active || got.Organization != nil {
			t.Fatalf("inactive: %+v %v", got, err)
		}
	}
	if calls.Load() != 3 {
		t.Fatalf("%d calls, want 3", calls.Load())
	}
	// Without a cache every question is sent.
	none := &plugboard.Introspector{BaseURL: srv.URL, ServiceToken: "pbh_host"}
	none.Introspect(t.Context(), "pbi_good")
	none.Introspect(t.Context(), "pbi_good")
	if calls.Load() != 5 {
		t.Fatalf("%d calls, want 5", calls.Load())
	}
	// A wrong service token is Plugboard's refusal, an error.
	_, err = plugboard.NewIntrospector(srv.URL, "pbh_wrong").Introspect(t.Context(), "pbi_good")
	var apiErr *plugboard.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 401 || apiErr.Code != "host_token_required" {
		t.Fatalf("wrong service token: %v", err)
	}
	// Plugboard unreachable.
	srv.Close()
	if _, err := none.Introspect(t.Context(), "pbi_good"); err == nil {
		t.Fatal("unreachable: no error")
	}
}

// introspectorFunc is a TokenIntrospector.
type introspectorFunc func(ctx context.Context, token string) (*plugboard.Introspection, error)

func (f introspectorFunc) Introspect(ctx context.Context, token string) (*plugboard.Introspection, error) {
	return f(ctx, token)
}

func TestRequireScopes(t *testing.T) {
	in := introspectorFunc(func(_ context.Context, token string) (*plugboard.Introspection, error) {
		switch token {
		case "pbi_read":
			return &plugboard.Introspection{Active: true, Scope: "org:read issue:read", Organization: &plugboard.OrganizationRef{ID: "7"}}, nil
		case "pbi_org":
			return &plugboard.Introspection{Active: true, Scope: "org:read", Organization: &plugboard.OrganizationRef{ID: "7"}}, nil
		case "pbi_down":
			return nil, errors.New("connection refused")
		}
		return &plugboard.Introspection{}, nil
	})
	h := plugboard.RequireScopes(in, "issue:read")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t, ok := plugboard.IntrospectionFrom(r.Context())
		if !ok {
			http.Error(w, "no introspection", 500)
			return
		}
		w.Write([]byte("issues of " + t.Organization.ID))
	}))
	for _, c := range []struct {
		auth      string
		status    int
		challenge string
		body      string
	}{
		{"Bearer pbi_read", 200, "", "issues of 7"},
		{"bearer pbi_read", 200, "", "issues of 7"},
		{"", 401, "Bearer", `"error_description"`},
		{"Basic eDp5", 401, "Bearer", `"error_description"`},
		{"Bearer ", 401, "Bearer", `"error_description"`},
		{"Bearer pbi_revoked", 401, `Bearer error="invalid_token"`, `"error":"invalid_token"`},
		{"Bearer pbi_org", 403, `Bearer error="insufficient_scope", scope="issue:read"`, `"error":"insufficient_scope"`},
		{"Bearer pbi_down", 503, "", `"error":"temporarily_unavailable"`},
	} {
		r := httptest.NewRequest("GET", "/api/issues", nil)
		if c.auth != "" {
			r.Header.Set("Authorization", c.auth)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != c.status || w.Header().Get("WWW-Authenticate") != c.challenge || !strings.Contains(w.Body.String(), c.body) {
			t.Errorf("%q: %d %q %s", c.auth, w.Code, w.Header().Get("WWW-Authenticate"), w.Body)
		}
		if c.status == 503 && w.Header().Get("Retry-After") == "" {
			t.Errorf("%q: no Retry-After", c.auth)
		}
	}
	if _, ok := plugboard.IntrospectionFrom(context.Background()); ok {
		t.Error("an introspection in a bare context")
	}
}
