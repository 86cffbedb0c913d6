package web_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/plugboard/plugboard/sdk/plugboard"
)

// idClaims are the claims of Plugboard's id_tokens and UserInfo answers.
type idClaims struct {
	Sub           string `json:"sub"`
	Email         string `json:"email"`
	EmailVerified *bool  `json:"email_verified"`
	Name          string `json:"name"`
	AuthTime      int64  `json:"auth_time"`
}

func randomNonce(t *testing.T) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// oidcPartner is the partner's side of "Sign in with Plugboard", built
// only from go-oidc and x/oauth2, from the issuer URL alone.
type oidcPartner struct {
	provider *oidc.Provider
	config   *oauth2.Config
	verifier *oidc.IDTokenVerifier
}

func newOIDCPartner(t *testing.T, w *world, scopes ...string) *oidcPartner {
	t.Helper()
	provider, err := oidc.NewProvider(t.Context(), w.p.URL) // discovery; the issuer must match exactly
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	return &oidcPartner{provider: provider,
		config: &oauth2.Config{ClientID: w.app.ClientID, ClientSecret: w.app.ClientSecret, Endpoint: provider.Endpoint(),
			RedirectURL: w.partner.srv.URL + "/setup", Scopes: scopes},
		verifier: provider.Verifier(&oidc.Config{ClientID: w.app.ClientID})}
}

// signIn runs the code flow with a nonce and PKCE through the consent page
// and returns the tokens and the nonce sent.
func (op *oidcPartner) signIn(t *testing.T, hc *http.Client) (*oauth2.Token, string) {
	t.Helper()
	nonce, verifier := randomNonce(t), oauth2.GenerateVerifier()
	q := consent(t, hc, op.config.AuthCodeURL("st4te", oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)), "customer", "approve")
	if q.Get("state") != "st4te" || q.Get("code") == "" {
		t.Fatalf("redirect %v", q)
	}
	tok, err := op.config.Exchange(t.Context(), q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	return tok, nonce
}

func (op *oidcPartner) verify(t *testing.T, tok *oauth2.Token) (*oidc.IDToken, idClaims) {
	t.Helper()
	raw, ok := tok.Extra("id_token").(string)
	if !ok || raw == "" {
		t.Fatalf("the token response has no id_token: %+v", tok)
	}
	id, err := op.verifier.Verify(t.Context(), raw)
	if err != nil {
		t.Fatalf("id_token does not verify: %v", err)
	}
	var c idClaims
	if err := id.Claims(&c); err != nil {
		t.Fatal(err)
	}
	return id, c
}

// "Sign in with Plugboard" with go-oidc and x/oauth2, none of our code on
// the partner's side: discovery from the issuer URL, the code flow with a
// nonce, the id_token verified (EdDSA, issuer, audience, expiry), the nonce
// checked, UserInfo; the identity scopes need no declaring on the app and
// add nothing to the installation's scopes.
func TestSignInWithPlugboardWithGoOIDC(t *testing.T) {
	w := newWorld(t, false) // the app declares org:read and member:read, no identity scope
	ctx := context.Background()
	user := decode[plugboard.User](t, w.admin.do("GET", "/api/0/users/me/", nil), 200)
	op := newOIDCPartner(t, w, oidc.ScopeOpenID, "email", "profile", "org:read")

	// Discovery describes the provider, as the OpenAPI document says.
	disc := map[string]any{}
	newClient(t, w.p, "").do("GET", "/.well-known/openid-configuration", nil).ok(t, 200, &disc)
	if disc["issuer"] != w.p.URL || disc["userinfo_endpoint"] != w.p.URL+"/oauth/userinfo" || disc["jwks_uri"] != w.p.URL+"/.well-known/jwks.json" {
		t.Errorf("discovery %v", disc)
	}

	// The consent page says what signing in shares.
	hc := oauthBrowser(t, w, "admin@customer.example")
	res, err := hc.Get(op.config.AuthCodeURL("x", oidc.Nonce("n")))
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, want := range []string{"It will sign you in", "Your Plugboard user id", "Your name", "Your email address"} {
		if !strings.Contains(string(page), want) {
			t.Errorf("consent page lacks %q", want)
		}
	}

	tok, nonce := op.signIn(t, hc)
	id, claims := op.verify(t, tok)
	if id.Nonce != nonce {
		t.Errorf("nonce %q, want %q", id.Nonce, nonce)
	}
	if id.Issuer != w.p.URL || id.Subject != user.ID || !slices.Equal(id.Audience, []string{w.app.ClientID}) {
		t.Errorf("id_token iss %q sub %q aud %v", id.Issuer, id.Subject, id.Audience)
	}
	if claims.Email != "admin@customer.example" || claims.EmailVerified == nil || *claims.EmailVerified || claims.Name != "admin" || claims.AuthTime == 0 {
		t.Errorf("id_token claims %+v", claims)
	}
	if id.Expiry.Sub(id.IssuedAt).Hours() != 1 {
		t.Errorf("id_token lasts %v", id.Expiry.Sub(id.IssuedAt))
	}
	if scope, _ := tok.Extra("scope").(string); !slices.Equal(strings.Fields(scope), []string{"openid", "email", "profile", "org:read"}) {
		t.Errorf("scope %q", scope)
	}

	// UserInfo, through go-oidc.
	info, err := op.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		t.Fatalf("userinfo: %v", err)
	}
	var infoClaims idClaims
	if err := info.Claims(&infoClaims); err != nil {
		t.Fatal(err)
	}
	if info.Subject != id.Subject || info.Email != "admin@customer.example" || info.EmailVerified || infoClaims.Name != "admin" {
		t.Errorf("userinfo %+v %+v", info, infoClaims)
	}

	// The identity scopes widen nothing: the installation holds the
	// installation scopes asked for (org:read), and the token is an
	// installation's, not the user's.
	inst := getInstallation(t, w.admin, plugboard.InstallationID(tok))
	if !slices.Equal(inst.Scopes, []string{"org:read"}) {
		t.Errorf("installation scopes %v", inst.Scopes)
	}
	app := bearer(t, w.p, tok.AccessToken)
	app.do("GET", "/api/0/users/me/", nil).problem(t, 403, "users_only") // no user acts with it
	app.do("GET", "/api/0/organizations/customer/", nil).ok(t, 200, nil)

	// A refresh brings a fresh id_token for the same user, without the
	// nonce; UserInfo answers the new access token.
	fresh, err := op.config.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	rid, rclaims := op.verify(t, fresh)
	if rid.Subject != id.Subject || rid.Nonce != "" || rclaims.AuthTime != claims.AuthTime {
		t.Errorf("refreshed id_token sub %q nonce %q auth_time %d", rid.Subject, rid.Nonce, rclaims.AuthTime)
	}
	if _, err := op.provider.UserInfo(ctx, oauth2.StaticTokenSource(fresh)); err != nil {
		t.Errorf("userinfo after refresh: %v", err)
	}
}

// A code is redeemed once: a second exchange fails and revokes what the
// first gave, so its access token no longer answers UserInfo.
func TestOIDCCodeIsRedeemedOnce(t *testing.T) {
	w := newWorld(t, false)
	op := newOIDCPartner(t, w, oidc.ScopeOpenID)
	hc := oauthBrowser(t, w, "admin@customer.example")
	nonce := randomNonce(t)
	q := consent(t, hc, op.config.AuthCodeURL("s", oidc.Nonce(nonce)), "customer", "approve")
	tok, err := op.config.Exchange(t.Context(), q.Get("code"))
	if err != nil {
		t.Fatal(err)
	}
	if id, claims := op.verify(t, tok); id.Nonce != nonce || claims.Email != "" || claims.Name != "" {
		t.Errorf("openid alone: nonce %q claims %+v", id.Nonce, claims)
	}
	if _, err := op.config.Exchange(t.Context(), q.Get("code")); oauthErrorCode(err) != "invalid_grant" {
		t.Fatalf("second exchange: %v", err)
	}
	res := bearer(t, w.p, tok.AccessToken).do("GET", "/oauth/userinfo", nil)
	res.problem(t, 401, "invalid_token")
	if got := res.Header.Get("WWW-Authenticate"); got != `Bearer realm="plugboard", error="invalid_token"` {
		t.Errorf("WWW-Authenticate %q", got)
	}
}

// UserInfo answers only an access token granted openid: RFC 6750
// challenges otherwise. The POST form carries the token too.
func TestUserInfoRefusals(t *testing.T) {
	w := newWorld(t, false)
	hc := oauthBrowser(t, w, "admin@customer.example")

	// A plain install token, without openid: no id_token, and UserInfo is
	// insufficient_scope.
	q := consent(t, hc, w.oauth.AuthCodeURL("s"), "customer", "approve")
	plain, err := w.oauth.Exchange(t.Context(), q.Get("code"))
	if err != nil {
		t.Fatal(err)
	}
	if plain.Extra("id_token") != nil {
		t.Errorf("id_token without openid: %v", plain.Extra("id_token"))
	}
	cases := []struct {
		name, token string
		status      int
		code        string
		challenge   string
	}{
		{"no token", "", 401, "not_authenticated", `Bearer realm="plugboard"`},
		{"unknown token", "pbi_nope", 401, "invalid_token", `Bearer realm="plugboard", error="invalid_token"`},
		{"a user's token", w.admin.token, 401, "invalid_token", `Bearer realm="plugboard", error="invalid_token"`},
		{"no openid", plain.AccessToken, 403, "insufficient_scope", `Bearer realm="plugboard", error="insufficient_scope", scope="openid"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, method := range []string{"GET", "POST"} {
				res := bearer(t, w.p, tc.token).do(method, "/oauth/userinfo", nil)
				res.problem(t, tc.status, tc.code)
				if got := res.Header.Get("WWW-Authenticate"); got != tc.challenge {
					t.Errorf("%s WWW-Authenticate %q, want %q", method, got, tc.challenge)
				}
			}
		})
	}

	// With openid, the form field works as the header does.
	op := newOIDCPartner(t, w, oidc.ScopeOpenID, "email")
	tok, _ := op.signIn(t, hc)
	res, err := http.PostForm(w.p.URL+"/oauth/userinfo", url.Values{"access_token": {tok.AccessToken}})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var got map[string]any
	if err := json.NewDecoder(res.Body).Decode(&got); err != nil || res.StatusCode != 200 {
		t.Fatalf("POST form: %d %v", res.StatusCode, err)
	}
	if got["email"] != "admin@customer.example" || got["email_verified"] != false || got["name"] != nil || res.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("userinfo %v (%s)", got, res.Header.Get("Cache-Control"))
	}
}

// A nonce is echoed as sent; one too long is refused to the client, as
// RFC 6749 errors are, and installs nothing.
func TestOIDCNonceIsChecked(t *testing.T) {
	w := newWorld(t, false)
	hc := oauthBrowser(t, w, "admin@customer.example")
	op := newOIDCPartner(t, w, oidc.ScopeOpenID)
	res, err := hc.Get(op.config.AuthCodeURL("s", oidc.Nonce(strings.Repeat("n", 513))))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	loc, _ := url.Parse(res.Header.Get("Location"))
	if res.StatusCode != 302 || loc.Query().Get("error") != "invalid_request" || loc.Query().Get("state") != "s" {
		t.Fatalf("long nonce: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
	if n := count(t, w.p, "installations"); n != 0 {
		t.Errorf("%d installations", n)
	}
	// The largest nonce allowed, with every printable character, comes back intact.
	nonce := strings.Repeat(`a-Z_0.9~ +/="'<>`, 32)
	q := consent(t, hc, op.config.AuthCodeURL("s", oidc.Nonce(nonce)), "customer", "approve")
	tok, err := op.config.Exchange(t.Context(), q.Get("code"))
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := op.verify(t, tok); id.Nonce != nonce {
		t.Errorf("nonce %q", id.Nonce)
	}
}
