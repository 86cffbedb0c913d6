package web_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/plugboard/plugboard/cmd/platform/apptest"
	"github.com/plugboard/plugboard/sdk/plugboard"
)

func TestSignUpSignInSignOut(t *testing.T) {
	p := apptest.Start(t)
	anon := newClient(t, p, "")

	u := decode[plugboard.User](t, anon.do("POST", "/api/0/users/", map[string]string{"email": "Ada@Example.com", "name": "Ada", "password": "correct horse battery"}), 201)
	if u.ID == "" || u.Email != "Ada@Example.com" || u.IsOperator {
		t.Errorf("user %+v", u)
	}
	// Emails are unique whatever their case.
	f := anon.do("POST", "/api/0/users/", map[string]string{"email": "ada@example.COM", "password": "another password"}).problem(t, 409, "email_taken")
	if f.Fields["email"] == "" {
		t.Errorf("fields %v", f.Fields)
	}
	for _, bad := range []map[string]string{{"email": "nope", "password": "correct horse"}, {"email": "b@example.com", "password": "short"}, {"password": "correct horse"}} {
		anon.do("POST", "/api/0/users/", bad).problem(t, 400, "invalid_input")
	}

	anon.do("POST", "/api/0/auth/", map[string]string{"email": "ada@example.com", "password": "wrong password"}).problem(t, 401, "invalid_credentials")
	anon.do("POST", "/api/0/auth/", map[string]string{"email": "nobody@example.com", "password": "wrong password"}).problem(t, 401, "invalid_credentials")
	anon.do("GET", "/api/0/users/me/", nil).problem(t, 401, "not_authenticated")

	// The JWT works as a Bearer token; the cookie works for the UI.
	c := signIn(t, p, "ada@example.com")
	me := decode[plugboard.User](t, c.do("GET", "/api/0/users/me/", nil), 200)
	if me.Email != "Ada@Example.com" {
		t.Errorf("me %+v", me)
	}
	cookieOnly := *c
	cookieOnly.token = ""
	cookieOnly.do("GET", "/api/0/users/me/", nil).ok(t, 200, nil)
	if len(c.http.Jar.Cookies(mustURL(p.URL))) == 0 {
		t.Fatal("sign-in set no cookie")
	}

	// Signing out ends the session: the JWT and the cookie stop working.
	jwt := c.token
	c.do("DELETE", "/api/0/auth/", nil).ok(t, 204, nil)
	c.do("GET", "/api/0/users/me/", nil).problem(t, 401, "invalid_token")
	stale := newClient(t, p, jwt)
	stale.do("GET", "/api/0/users/me/", nil).problem(t, 401, "invalid_token")
	cookieOnly.do("GET", "/api/0/users/me/", nil).problem(t, 401, "not_authenticated")

	newClient(t, p, "garbage").do("GET", "/api/0/users/me/", nil).problem(t, 401, "invalid_token")
	newClient(t, p, "a.b.c").do("GET", "/api/0/users/me/", nil).problem(t, 401, "invalid_token")
}

func TestAPITokens(t *testing.T) {
	p := apptest.Start(t)
	c := signUp(t, p, "tok@example.com")
	tok := decode[plugboard.APIToken](t, c.do("POST", "/api/0/api-tokens/", map[string]any{"name": "ci"}), 201)
	secret := tok.Token
	if !strings.HasPrefix(secret, "pbu_") || tok.TokenLastCharacters != secret[len(secret)-4:] {
		t.Fatalf("token %+v", tok)
	}
	// Shown once: the list never carries it. Raw body on purpose: the
	// secret must appear nowhere in it, under any member.
	list := c.do("GET", "/api/0/api-tokens/", nil)
	listed := decode[[]plugboard.APIToken](t, list, 200)
	if strings.Contains(string(list.Body), secret) || len(listed) != 1 || listed[0].Name != "ci" || listed[0].Token != "" {
		t.Errorf("list %s", list.Body)
	}
	withToken := newClient(t, p, secret)
	withToken.do("GET", "/api/0/users/me/", nil).ok(t, 200, nil)
	// Stored hashed.
	var row struct{ TokenHash []byte }
	p.App.DB.Raw("SELECT token_hash FROM api_tokens").Scan(&row)
	if strings.Contains(string(row.TokenHash), secret) || len(row.TokenHash) != 32 {
		t.Errorf("stored token %q", row.TokenHash)
	}
	c.do("POST", "/api/0/api-tokens/", map[string]any{"name": ""}).problem(t, 400, "invalid_input")
	c.do("POST", "/api/0/api-tokens/", map[string]any{"name": "old", "expiresAt": time.Now().Add(-time.Hour)}).problem(t, 400, "invalid_input")

	other := signUp(t, p, "other@example.com")
	other.do("DELETE", "/api/0/api-tokens/"+tok.ID+"/", nil).problem(t, 404, "not_found")
	withToken.do("GET", "/api/0/users/me/", nil).ok(t, 200, nil)

	c.do("DELETE", "/api/0/api-tokens/"+tok.ID+"/", nil).ok(t, 204, nil)
	withToken.do("GET", "/api/0/users/me/", nil).problem(t, 401, "invalid_token")
	newClient(t, p, "").do("GET", "/api/0/api-tokens/", nil).problem(t, 401, "not_authenticated")
}

func TestCrossSiteSignInIsRefused(t *testing.T) {
	p := apptest.Start(t)
	signUp(t, p, "victim@example.com")
	form := "email=victim%40example.com&password=correct+horse+battery&next=%2F"
	req, _ := http.NewRequest("POST", p.URL+"/login", strings.NewReader(form))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 403 || len(res.Cookies()) != 0 {
		t.Errorf("cross-site sign-in: %d, cookies %v", res.StatusCode, res.Cookies())
	}
}

func TestCookieWritesNeedOurOrigin(t *testing.T) {
	p := apptest.Start(t)
	c := signUp(t, p, "csrf@example.com")
	c.token = "" // cookie only
	req, _ := http.NewRequest("POST", p.URL+"/api/0/organizations/", strings.NewReader(`{"name":"Evil"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", "https://evil.example")
	res, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 403 {
		t.Errorf("cross-origin cookie POST: %d, want 403", res.StatusCode)
	}
	if n := count(t, p, "organizations"); n != 0 {
		t.Errorf("cross-origin POST created %d organizations", n)
	}
	req, _ = http.NewRequest("POST", p.URL+"/api/0/organizations/", strings.NewReader(`{"name":"Good"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", p.URL)
	res, _ = c.http.Do(req)
	res.Body.Close()
	if res.StatusCode != 201 {
		t.Errorf("same-origin cookie POST: %d, want 201", res.StatusCode)
	}
}
