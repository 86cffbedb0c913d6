package plugboard_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/plugboard/plugboard/sdk/plugboard"
)

// fakeOAuth answers /oauth/token and /oauth/revoke like web/oauth.go.
func fakeOAuth(t *testing.T) (*httptest.Server, *[]url.Values) {
	var forms []url.Values
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, secret, ok := r.BasicAuth()
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
		if err := r.ParseForm(); err != nil {
			t.Error(err)
		}
		forms = append(forms, r.PostForm)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if !ok || id != clientID || secret != clientSecret {
			w.Header().Set("WWW-Authenticate", `Basic realm="plugboard"`)
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error":"invalid_client","error_description":"The client credentials are wrong."}`))
			return
		}
		switch r.URL.Path {
		case "/oauth/token":
			switch {
			case r.PostForm.Get("grant_type") == "authorization_code" && r.PostForm.Get("code") == "pbg_good":
			case r.PostForm.Get("grant_type") == "refresh_token" && r.PostForm.Get("refresh_token") == "pbr_1":
			default:
				w.WriteHeader(http.StatusBadRequest)
				w.Write([]byte(`{"error":"invalid_grant","error_description":"The code is not valid."}`))
				return
			}
			n := len(forms)
			json.NewEncoder(w).Encode(map[string]any{"access_token": "pbi_" + string(rune('0'+n)), "token_type": "bearer", "expires_in": 28800,
				"refresh_token": "pbr_" + string(rune('0'+n)), "scope": "org:read", "installation_id": "b23eb701-895a-480e-8501-d1a4f15441f8"})
		case "/oauth/revoke":
			if r.PostForm.Get("token") == "" {
				w.WriteHeader(http.StatusBadRequest)
				w.Write([]byte(`{"error":"invalid_request","error_description":"token is required."}`))
				return
			}
			w.WriteHeader(http.StatusOK)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &forms
}

func TestOAuth2Config(t *testing.T) {
	srv, forms := fakeOAuth(t)
	cfg := plugboard.OAuth2Config(srv.URL+"/", clientID, clientSecret, "https://alerts.acme.example/plugboard/callback", "org:read", "member:read")
	if cfg.Endpoint.AuthURL != srv.URL+"/oauth/authorize" || cfg.Endpoint.TokenURL != srv.URL+"/oauth/token" || cfg.Endpoint.AuthStyle != oauth2.AuthStyleInHeader {
		t.Errorf("endpoint %+v", cfg.Endpoint)
	}
	u, _ := url.Parse(cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	q := u.Query()
	if q.Get("client_id") != clientID || q.Get("response_type") != "code" || q.Get("scope") != "org:read member:read" ||
		q.Get("redirect_uri") != "https://alerts.acme.example/plugboard/callback" || q.Get("code_challenge_method") != "S256" {
		t.Errorf("auth URL %s", u)
	}

	ctx := context.Background()
	tok, err := cfg.Exchange(ctx, "pbg_good")
	if err != nil {
		t.Fatal(err)
	}
	if plugboard.InstallationID(tok) != "b23eb701-895a-480e-8501-d1a4f15441f8" || tok.AccessToken != "pbi_1" || time.Until(tok.Expiry) < 7*time.Hour {
		t.Errorf("token %+v, installation %q", tok, plugboard.InstallationID(tok))
	}
	if (*forms)[0].Get("redirect_uri") != "https://alerts.acme.example/plugboard/callback" || (*forms)[0].Get("client_secret") != "" {
		t.Errorf("token request %v", (*forms)[0])
	}

	// A refreshed token says its installation too.
	stale := &oauth2.Token{AccessToken: "pbi_old", RefreshToken: "pbr_1", Expiry: time.Now().Add(-time.Minute)}
	fresh, err := cfg.TokenSource(ctx, stale).Token()
	if err != nil || plugboard.InstallationID(fresh) != "b23eb701-895a-480e-8501-d1a4f15441f8" || fresh.RefreshToken != "pbr_2" {
		t.Errorf("refresh %+v %v", fresh, err)
	}
	if plugboard.InstallationID(stale) != "" || plugboard.InstallationID(nil) != "" {
		t.Error("installation id from nowhere")
	}

	_, err = cfg.Exchange(ctx, "pbg_used")
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
		t.Errorf("bad code: %v", err)
	}
}

func TestRevokeToken(t *testing.T) {
	srv, forms := fakeOAuth(t)
	ctx := context.Background()
	if err := plugboard.RevokeToken(ctx, srv.URL, clientID, clientSecret, "pbr_1"); err != nil {
		t.Fatal(err)
	}
	if got := (*forms)[0].Get("token"); got != "pbr_1" {
		t.Errorf("revoked %q", got)
	}
	err := plugboard.RevokeToken(ctx, srv.URL, clientID, "pbcs_wrong", "pbr_1")
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "invalid_client" || re.Response.StatusCode != 401 {
		t.Errorf("bad client: %v", err)
	}
	// The HTTP client comes from the context, as for oauth2.
	used := false
	hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		used = true
		return http.DefaultTransport.RoundTrip(r)
	})}
	if err := plugboard.RevokeToken(context.WithValue(ctx, oauth2.HTTPClient, hc), srv.URL, clientID, clientSecret, "pbi_1"); err != nil || !used {
		t.Errorf("context client: %v, used %v", err, used)
	}
	if err := plugboard.RevokeToken(ctx, "http://127.0.0.1:1", clientID, clientSecret, "x"); err == nil || !strings.Contains(err.Error(), "revoking") {
		t.Errorf("unreachable: %v", err)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
