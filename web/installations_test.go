package web_test

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"

	"github.com/plugboard/plugboard/cmd/platform/apptest"
	"github.com/plugboard/plugboard/sdk/plugboard"
)

// partner is a fake partner site: it records what its redirect URL receives.
type partner struct {
	srv  *httptest.Server
	mu   sync.Mutex
	hits []url.Values
}

func newPartner(t *testing.T) *partner {
	p := &partner{}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.hits = append(p.hits, r.URL.Query())
		p.mu.Unlock()
		io.WriteString(w, "set-up page")
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *partner) last(t *testing.T) url.Values {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.hits) == 0 {
		t.Fatal("the partner's redirect URL was never reached")
	}
	return p.hits[len(p.hits)-1]
}

// world is a platform with a partner organization owning a published app and
// a customer organization whose admin installs it.
type world struct {
	p        *apptest.Platform
	partner  *partner
	dev      *client // partner developer
	admin    *client // customer admin
	app      plugboard.App
	oauth    *oauth2.Config
	customer string
}

func newWorld(t *testing.T, verify bool, scopes ...string) *world {
	t.Helper()
	return newWorldOn(t, apptest.Start(t), verify, scopes...)
}

// newWorldOn is newWorld on a platform the test started.
func newWorldOn(t *testing.T, p *apptest.Platform, verify bool, scopes ...string) *world {
	t.Helper()
	w := &world{p: p, partner: newPartner(t), customer: "customer"}
	w.dev = signUp(t, p, "dev@partner.example")
	w.dev.do("POST", "/api/0/organizations/", map[string]string{"name": "Partner"}).ok(t, 201, nil)
	body := publicApp("Flow App")
	body["redirectUrl"] = w.partner.srv.URL + "/setup"
	body["verifyInstall"] = verify
	if scopes != nil {
		body["scopes"] = scopes
	}
	w.app = decode[plugboard.App](t, w.dev.do("POST", "/api/0/organizations/partner/apps/", body), 201)
	w.dev.do("POST", "/api/0/apps/flow-app/plans/", map[string]any{"name": "Free"}).ok(t, 201, nil)
	w.dev.do("POST", "/api/0/apps/flow-app/plans/", map[string]any{"name": "Pro", "price": "10"}).ok(t, 201, nil)
	w.dev.do("POST", "/api/0/apps/flow-app/publish-requests/", nil).ok(t, 201, nil)
	operator(t, p, "ops@plugboard.example").do("PUT", "/api/0/apps/flow-app/", map[string]any{"status": "published"}).ok(t, 200, nil)
	w.admin = signUp(t, p, "admin@customer.example")
	w.admin.do("POST", "/api/0/organizations/", map[string]string{"name": "Customer"}).ok(t, 201, nil)
	w.oauth = &oauth2.Config{
		ClientID: w.app.ClientID, ClientSecret: w.app.ClientSecret,
		Endpoint:    oauth2.Endpoint{AuthURL: p.URL + "/oauth/authorize", TokenURL: p.URL + "/oauth/token"},
		RedirectURL: w.partner.srv.URL + "/setup", Scopes: []string{"org:read"},
	}
	return w
}

// install installs the app from the marketplace and follows the redirect,
// returning what the partner received.
func (w *world) install(t *testing.T, plan string) (plugboard.Installation, url.Values) {
	t.Helper()
	inst := decode[plugboard.Installation](t, w.admin.do("POST", "/api/0/organizations/customer/installations/", map[string]any{"app": "flow-app", "plan": plan}), 201)
	res, err := http.Get(inst.RedirectURL)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return inst, w.partner.last(t)
}

// getInstallation reads an installation as c sees it.
func getInstallation(t *testing.T, c *client, uuid string) plugboard.Installation {
	t.Helper()
	return decode[plugboard.Installation](t, c.do("GET", "/api/0/installations/"+uuid+"/", nil), 200)
}

func oauthErrorCode(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		return re.ErrorCode
	}
	return ""
}

func bearer(t *testing.T, p *apptest.Platform, token string) *client { return newClient(t, p, token) }

func TestMarketplaceInstallFlowWithOAuth2Client(t *testing.T) {
	w := newWorld(t, true)
	ctx := context.Background()
	inst, q := w.install(t, "pro")
	uuid := inst.UUID
	if inst.Status != plugboard.StatusPending || inst.Plan == nil || inst.Plan.Slug != "pro" || inst.SyncState != plugboard.InSync {
		t.Fatalf("installation %+v", inst)
	}
	if q.Get("installationId") != uuid || q.Get("orgSlug") != "customer" || q.Get("code") == "" {
		t.Fatalf("redirect carried %v", q)
	}

	// The state is a JWT the partner verifies with the platform's JWKS.
	var jwks struct {
		Keys []struct{ Kid, X string }
	}
	res, _ := http.Get(w.p.URL + "/.well-known/jwks.json")
	json.NewDecoder(res.Body).Decode(&jwks)
	res.Body.Close()
	pub, _ := base64.RawURLEncoding.DecodeString(jwks.Keys[0].X)
	claims := jwt.MapClaims{}
	if _, err := jwt.ParseWithClaims(q.Get("state"), claims, func(*jwt.Token) (any, error) { return ed25519.PublicKey(pub), nil },
		jwt.WithValidMethods([]string{"EdDSA"}), jwt.WithAudience(w.oauth.ClientID)); err != nil {
		t.Fatalf("state does not verify: %v", err)
	}
	if claims["sub"] != uuid || claims["org"] != "customer" {
		t.Errorf("state claims %v", claims)
	}

	// Exchange the code exactly as a partner using x/oauth2 would.
	tok, err := w.oauth.Exchange(ctx, q.Get("code"))
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	if !strings.HasPrefix(tok.AccessToken, "pbi_") || !strings.HasPrefix(tok.RefreshToken, "pbr_") || tok.Extra("installation_id") != uuid ||
		tok.Extra("scope") != "org:read member:read" || time.Until(tok.Expiry) < 7*time.Hour {
		t.Fatalf("token %+v scope=%v", tok, tok.Extra("scope"))
	}

	// Pending: no Platform API until the partner verifies.
	app := bearer(t, w.p, tok.AccessToken)
	app.do("GET", "/api/0/organizations/customer/", nil).problem(t, 403, "installation_pending")
	verified := decode[plugboard.Installation](t, app.do("PUT", "/api/0/installations/"+uuid+"/", map[string]any{"status": "installed", "externalId": "acct_42", "configUrl": "https://partner.example/acct_42"}), 200)
	if verified.Status != plugboard.StatusInstalled || verified.DateVerified == nil || verified.ExternalID != "acct_42" {
		t.Fatalf("verified %+v", verified)
	}
	// An installation token reads the organization as the SDK's
	// Organization: no role.
	if org := decode[plugboard.Organization](t, app.do("GET", "/api/0/organizations/customer/", nil), 200); org.Slug != "customer" {
		t.Errorf("org %+v", org)
	}
	decode[[]plugboard.Member](t, app.do("GET", "/api/0/organizations/customer/members/", nil), 200)
	decode[plugboard.Installation](t, app.do("GET", "/api/0/installations/"+uuid+"/", nil), 200)
	// Never another organization, never a user's route.
	app.do("GET", "/api/0/organizations/partner/", nil).problem(t, 404, "not_found")
	app.do("POST", "/api/0/organizations/", map[string]string{"name": "Nope"}).problem(t, 403, "users_only")
	// The organization sees who it is connected to.
	if seen := decode[plugboard.Installation](t, w.admin.do("GET", "/api/0/installations/"+uuid+"/", nil), 200); seen.ExternalID != "acct_42" || seen.ConfigURL != "https://partner.example/acct_42" {
		t.Errorf("org's view %+v", seen)
	}

	// Refresh through TokenSource: the expired token is renewed and the
	// refresh token rotates.
	stale := &oauth2.Token{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Minute)}
	httpc := w.oauth.Client(ctx, stale)
	r, err := httpc.Get(w.p.URL + "/api/0/installations/" + uuid + "/")
	if err != nil || r.StatusCode != 200 {
		t.Fatalf("call through TokenSource: %v %v", err, r)
	}
	r.Body.Close()
	renewed, err := w.oauth.TokenSource(ctx, stale).Token()
	if err != nil || renewed.AccessToken == tok.AccessToken || renewed.RefreshToken == tok.RefreshToken {
		// the first refresh rotated tok.RefreshToken; a second refresh with it is reuse
		if oauthErrorCode(err) != "invalid_grant" {
			t.Fatalf("second refresh with a rotated token: %v", err)
		}
	}

	// Uninstall: every token stops working at once; the app is told.
	w.admin.do("DELETE", "/api/0/installations/"+uuid+"/", nil).ok(t, 204, nil)
	app.do("GET", "/api/0/installations/"+uuid+"/", nil).problem(t, 401, "invalid_token")
	if after := decode[plugboard.Installation](t, w.admin.do("GET", "/api/0/installations/"+uuid+"/", nil), 200); after.Status != plugboard.StatusDeleted || after.DateDeleted == nil {
		t.Errorf("after uninstall %+v", after)
	}
	var types []string
	w.p.App.DB.Raw("SELECT e.type FROM events e JOIN installations i ON i.id = e.installation_id WHERE i.uuid = ? ORDER BY e.id", uuid).Scan(&types)
	if strings.Join(types, " ") != "installation.created installation.deleted" {
		t.Errorf("lifecycle events %v", types)
	}
	var actions []string
	for _, e := range decode[[]plugboard.AuditLogEntry](t, w.admin.do("GET", "/api/0/organizations/customer/audit-logs/", nil), 200) {
		actions = append(actions, e.Action)
	}
	for _, want := range []string{"installation.create", "installation.token_exchange", "installation.verify", "installation.delete"} {
		if !strings.Contains(strings.Join(actions, " "), want) {
			t.Errorf("audit lacks %s: %v", want, actions)
		}
	}
}

// oauthBrowser is a signed-in browser that does not follow redirects off-site.
func oauthBrowser(t *testing.T, w *world, email string) *http.Client {
	c := signIn(t, w.p, email)
	hc := c.http
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return hc
}

// consent opens authURL, approves for org (or denies) and returns the
// redirect's query.
func consent(t *testing.T, hc *http.Client, authURL, org, decision string) url.Values {
	t.Helper()
	res, err := hc.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(page), "Install Flow App") {
		t.Fatalf("consent page %d: %s", res.StatusCode, page)
	}
	u, _ := url.Parse(authURL)
	form := u.Query()
	form.Set("csrf", csrfRe.FindStringSubmatch(string(page))[1])
	form.Set("org", org)
	form.Set("plan", "free")
	form.Set("decision", decision)
	res, err = hc.PostForm(u.Scheme+"://"+u.Host+"/oauth/authorize", form)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 302 {
		t.Fatalf("decision answered %d", res.StatusCode)
	}
	loc, _ := url.Parse(res.Header.Get("Location"))
	return loc.Query()
}

func TestAuthorizeWithPKCE(t *testing.T) {
	w := newWorld(t, false)
	ctx := context.Background()
	hc := oauthBrowser(t, w, "admin@customer.example")

	verifier := oauth2.GenerateVerifier()
	q := consent(t, hc, w.oauth.AuthCodeURL("st4te", oauth2.S256ChallengeOption(verifier)), "customer", "approve")
	if q.Get("state") != "st4te" || q.Get("code") == "" || q.Get("installationId") == "" {
		t.Fatalf("redirect %v", q)
	}
	// A wrong verifier fails and leaves the code unused…
	if _, err := w.oauth.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(oauth2.GenerateVerifier())); oauthErrorCode(err) != "invalid_grant" {
		t.Fatalf("PKCE mismatch: %v", err)
	}
	if n := count(t, w.p, "tokens"); n != 0 {
		t.Fatalf("PKCE mismatch issued %d tokens", n)
	}
	// …the right one works.
	tok, err := w.oauth.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("Exchange with verifier: %v", err)
	}
	bearer(t, w.p, tok.AccessToken).do("GET", "/api/0/organizations/customer/", nil).ok(t, 200, nil)

	// Authorizing again reuses the live installation with a fresh code.
	q2 := consent(t, hc, w.oauth.AuthCodeURL("again", oauth2.S256ChallengeOption(verifier)), "customer", "approve")
	if q2.Get("installationId") != q.Get("installationId") || q2.Get("code") == q.Get("code") {
		t.Errorf("re-authorize %v vs %v", q2, q)
	}
	// The redirect_uri the code was issued for must be sent again.
	other := *w.oauth
	other.RedirectURL = w.partner.srv.URL + "/elsewhere"
	if _, err := other.Exchange(ctx, q2.Get("code"), oauth2.VerifierOption(verifier)); oauthErrorCode(err) != "invalid_grant" {
		t.Errorf("wrong redirect_uri at exchange: %v", err)
	}

	// Deny.
	d := consent(t, hc, w.oauth.AuthCodeURL("nope"), "customer", "deny")
	if d.Get("error") != "access_denied" || d.Get("state") != "nope" {
		t.Errorf("deny redirect %v", d)
	}
	// A redirect_uri that is not registered is shown, never followed.
	bad := other.AuthCodeURL("x")
	res, err := hc.Get(bad)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 400 || res.Header.Get("Location") != "" {
		t.Errorf("bad redirect_uri: %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	// plain PKCE is refused, with a redirect carrying the error.
	res, _ = hc.Get(w.oauth.AuthCodeURL("p", oauth2.SetAuthURLParam("code_challenge", "abc"), oauth2.SetAuthURLParam("code_challenge_method", "plain")))
	res.Body.Close()
	if loc, _ := url.Parse(res.Header.Get("Location")); res.StatusCode != 302 || loc.Query().Get("error") != "invalid_request" {
		t.Errorf("plain PKCE: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
	// Signed out, the user is sent to sign in first.
	anon := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, _ = anon.Get(w.oauth.AuthCodeURL("s"))
	res.Body.Close()
	if res.StatusCode != 302 || !strings.HasPrefix(res.Header.Get("Location"), "/login?next=") {
		t.Errorf("signed out: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
}

func TestTokenEndpointRefusals(t *testing.T) {
	w := newWorld(t, false, "org:read")
	ctx := context.Background()

	// Wrong client secret: invalid_client, nothing issued.
	_, q := w.install(t, "free")
	wrong := *w.oauth
	wrong.ClientSecret = "pbcs_wrong"
	if _, err := wrong.Exchange(ctx, q.Get("code")); oauthErrorCode(err) != "invalid_client" {
		t.Errorf("wrong secret: %v", err)
	}
	if n := count(t, w.p, "tokens"); n != 0 {
		t.Errorf("wrong secret issued %d tokens", n)
	}

	// Reused code: the second use fails and revokes what the first gave.
	tok, err := w.oauth.Exchange(ctx, q.Get("code"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.oauth.Exchange(ctx, q.Get("code")); oauthErrorCode(err) != "invalid_grant" {
		t.Errorf("reused code: %v", err)
	}
	bearer(t, w.p, tok.AccessToken).do("GET", "/api/0/organizations/customer/", nil).problem(t, 401, "invalid_token")

	// Missing scope: the app has org:read only.
	w.admin.do("DELETE", "/api/0/installations/"+q.Get("installationId")+"/", nil).ok(t, 204, nil)
	_, q = w.install(t, "free")
	tok, err = w.oauth.Exchange(ctx, q.Get("code"))
	if err != nil {
		t.Fatal(err)
	}
	f := bearer(t, w.p, tok.AccessToken).do("GET", "/api/0/organizations/customer/members/", nil)
	f.problem(t, 403, "missing_scope")
	if !strings.Contains(string(f.Body), "member:read") {
		t.Errorf("missing scope not named: %s", f.Body)
	}

	// Refresh token reuse revokes the family.
	first, err := w.oauth.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Hour)}).Token()
	if err != nil {
		t.Fatal(err)
	}
	bearer(t, w.p, first.AccessToken).do("GET", "/api/0/organizations/customer/", nil).ok(t, 200, nil)
	if _, err := w.oauth.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Hour)}).Token(); oauthErrorCode(err) != "invalid_grant" {
		t.Fatalf("refresh reuse: %v", err)
	}
	bearer(t, w.p, first.AccessToken).do("GET", "/api/0/organizations/customer/", nil).problem(t, 401, "invalid_token")
	if _, err := w.oauth.TokenSource(ctx, &oauth2.Token{RefreshToken: first.RefreshToken, Expiry: time.Now().Add(-time.Hour)}).Token(); oauthErrorCode(err) != "invalid_grant" {
		t.Errorf("family member after reuse: %v", err)
	}

	// Expired code.
	w.admin.do("DELETE", "/api/0/installations/"+q.Get("installationId")+"/", nil).ok(t, 204, nil)
	_, q = w.install(t, "free")
	w.p.App.DB.Exec("UPDATE grants SET expires_at = now() - interval '1 second' WHERE used_at IS NULL")
	if _, err := w.oauth.Exchange(ctx, q.Get("code")); oauthErrorCode(err) != "invalid_grant" {
		t.Errorf("expired code: %v", err)
	}
	// Unsupported grant and unknown code.
	form := url.Values{"grant_type": {"password"}}
	req, _ := http.NewRequest("POST", w.p.URL+"/oauth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(w.oauth.ClientID, w.oauth.ClientSecret)
	res, _ := http.DefaultClient.Do(req)
	// RFC 6749's error document, snake_case: the standard's shape, not an
	// SDK type (x/oauth2 reads it for partners).
	var oe struct {
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description"`
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if err := strictUnmarshal(body, &oe); err != nil || res.StatusCode != 400 || oe.Error != "unsupported_grant_type" {
		t.Errorf("password grant: %d %s (%v)", res.StatusCode, body, err)
	}
}

func TestInstallRules(t *testing.T) {
	w := newWorld(t, false)
	inst, q := w.install(t, "free")
	uuid := inst.UUID
	// Installing again: 409 with the live installation.
	dup := w.admin.do("POST", "/api/0/organizations/customer/installations/", map[string]any{"app": "flow-app", "plan": "free"}).problem(t, 409, "already_installed")
	if dup.Installation == nil || dup.Installation.UUID != uuid {
		t.Errorf("409 carries %+v, want %s", dup.Installation, uuid)
	}
	before := count(t, w.p, "installations")
	for _, bad := range []map[string]any{{"app": "flow-app"}, {"app": "flow-app", "plan": "gold"}, {"app": "no-such-app", "plan": "free"}, {"plan": "free"}} {
		w.admin.do("POST", "/api/0/organizations/customer/installations/", bad).problem(t, 400, "invalid_input")
	}
	if count(t, w.p, "installations") != before {
		t.Error("bad installs wrote rows")
	}
	// Members neither install nor uninstall nor change plans.
	signUp(t, w.p, "member@customer.example")
	w.admin.do("POST", "/api/0/organizations/customer/members/", map[string]string{"email": "member@customer.example"}).ok(t, 201, nil)
	member := signIn(t, w.p, "member@customer.example")
	member.do("GET", "/api/0/organizations/customer/installations/", nil).ok(t, 200, nil)
	member.do("PUT", "/api/0/installations/"+uuid+"/", map[string]any{"plan": "pro"}).problem(t, 403, "insufficient_role")
	member.do("DELETE", "/api/0/installations/"+uuid+"/", nil).problem(t, 403, "insufficient_role")
	signUp(t, w.p, "stranger@example.com").do("GET", "/api/0/installations/"+uuid+"/", nil).problem(t, 404, "not_found")
	// Users cannot verify; the app verifies.
	w.admin.do("PUT", "/api/0/installations/"+uuid+"/", map[string]any{"status": "installed"}).problem(t, 403, "app_only")

	// Plan change emits installation.updated with old and new plan.
	if changed := decode[plugboard.Installation](t, w.admin.do("PUT", "/api/0/installations/"+uuid+"/", map[string]any{"plan": "pro"}), 200); changed.Plan == nil || changed.Plan.Slug != "pro" {
		t.Errorf("plan %+v", changed.Plan)
	}
	var data []byte
	w.p.App.DB.Raw("SELECT data FROM events WHERE type = 'installation.updated'").Row().Scan(&data)
	if !strings.Contains(string(data), `"previousPlan": {"name": "Free"`) && !strings.Contains(string(data), `"previousPlan":{"name":"Free"`) {
		// The event's data as the partner's SDK decodes it.
		var m plugboard.InstallationUpdated
		if err := strictUnmarshal(data, &m); err != nil {
			t.Fatalf("installation.updated data %s: %v", data, err)
		}
		if m.PreviousPlan == nil || m.PreviousPlan.Slug != "free" || m.Installation.Plan == nil || m.Installation.Plan.Slug != "pro" {
			t.Errorf("installation.updated data %s", data)
		}
	}

	// The Sentry-style exchange, camelCase, scoped to the installation.
	ex := newClient(t, w.p, "")
	body := map[string]any{"grantType": "authorization_code", "code": q.Get("code"), "clientId": w.oauth.ClientID, "clientSecret": w.oauth.ClientSecret}
	ex.do("POST", "/api/0/installations/00000000-0000-0000-0000-000000000000/authorizations/", body).problem(t, 400, "invalid_grant")
	auth := decode[plugboard.Authorization](t, ex.do("POST", "/api/0/installations/"+uuid+"/authorizations/", body), 201)
	if !strings.HasPrefix(auth.Token, "pbi_") || auth.InstallationID != uuid {
		t.Errorf("authorization %+v", auth)
	}
	refreshed := decode[plugboard.Authorization](t, ex.do("POST", "/api/0/installations/"+uuid+"/authorizations/", map[string]any{"grantType": "refresh_token",
		"refreshToken": auth.RefreshToken, "clientId": w.oauth.ClientID, "clientSecret": w.oauth.ClientSecret}), 201)
	ex.do("POST", "/api/0/installations/"+uuid+"/authorizations/", map[string]any{"grantType": "refresh_token",
		"refreshToken": auth.RefreshToken, "clientId": w.oauth.ClientID, "clientSecret": "wrong"}).problem(t, 401, "invalid_client")

	// The app itself can uninstall, with its token.
	bearer(t, w.p, refreshed.Token).do("DELETE", "/api/0/installations/"+uuid+"/", nil).ok(t, 204, nil)
	w.admin.do("DELETE", "/api/0/installations/"+uuid+"/", nil).problem(t, 409, "installation_not_live")

	// RFC 8414 metadata: the standard's snake_case members, not an SDK
	// type; only the two asserted on are decoded.
	res, _ := http.Get(w.p.URL + "/.well-known/oauth-authorization-server")
	var md struct {
		Issuer           string   `json:"issuer"`
		TokenEndpoint    string   `json:"token_endpoint"`
		UserinfoEndpoint string   `json:"userinfo_endpoint"`
		Scopes           []string `json:"scopes_supported"`
	}
	json.NewDecoder(res.Body).Decode(&md)
	res.Body.Close()
	if md.TokenEndpoint != w.p.URL+"/oauth/token" || md.Issuer != w.p.URL || md.UserinfoEndpoint != w.p.URL+"/oauth/userinfo" ||
		!slices.Contains(md.Scopes, "openid") || !slices.Contains(md.Scopes, "org:read") {
		t.Errorf("metadata %v", md)
	}
}

func TestAppAuthenticatesAsItself(t *testing.T) {
	w := newWorld(t, false)
	w.install(t, "free")
	pub, priv, _ := ed25519.GenerateKey(nil)
	der, _ := x509.MarshalPKIXPublicKey(pub)
	pemKey := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	w.dev.do("PUT", "/api/0/apps/flow-app/", map[string]any{"publicKey": pemKey}).ok(t, 200, nil)
	w.dev.do("PUT", "/api/0/apps/flow-app/", map[string]any{"publicKey": "not a key"}).problem(t, 400, "invalid_input")

	list := func(c *client, q string) []plugboard.Installation {
		return decode[[]plugboard.Installation](t, c.do("GET", "/api/0/apps/flow-app/installations/"+q, nil), 200)
	}
	// Client credentials over Basic.
	basic := newClient(t, w.p, "")
	basic.http.Transport = basicAuth{w.oauth.ClientID, w.oauth.ClientSecret}
	if got := list(basic, ""); len(got) != 1 || got[0].Status != plugboard.StatusInstalled {
		t.Fatalf("basic: %v", got)
	}
	// A short HS256 JWT signed with the client secret.
	now := time.Now()
	hs, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": w.oauth.ClientID, "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()}).SignedString([]byte(w.oauth.ClientSecret))
	if got := list(bearer(t, w.p, hs), "?status=installed"); len(got) != 1 {
		t.Errorf("HS256: %v", got)
	}
	// An EdDSA JWT verified with the registered public key.
	ed, _ := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{"iss": w.oauth.ClientID, "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()}).SignedString(priv)
	if got := list(bearer(t, w.p, ed), "?syncState=out_of_sync"); len(got) != 0 {
		t.Errorf("EdDSA filtered: %v", got)
	}
	// Too long-lived, or signed with the wrong key: refused.
	long, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": w.oauth.ClientID, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}).SignedString([]byte(w.oauth.ClientSecret))
	bearer(t, w.p, long).do("GET", "/api/0/apps/flow-app/installations/", nil).problem(t, 401, "invalid_token")
	// Without iat it could live for years: refused.
	noIat, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": w.oauth.ClientID, "exp": now.Add(5 * 365 * 24 * time.Hour).Unix()}).SignedString([]byte(w.oauth.ClientSecret))
	bearer(t, w.p, noIat).do("GET", "/api/0/apps/flow-app/installations/", nil).problem(t, 401, "invalid_token")
	forged, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": w.oauth.ClientID, "iat": now.Unix(), "exp": now.Add(time.Minute).Unix()}).SignedString([]byte("guess"))
	bearer(t, w.p, forged).do("GET", "/api/0/apps/flow-app/installations/", nil).problem(t, 401, "invalid_token")
	// The partner's developers see the same list; others do not.
	if got := list(w.dev, ""); len(got) != 1 {
		t.Errorf("owner org: %v", got)
	}
	w.admin.do("GET", "/api/0/apps/flow-app/installations/", nil).problem(t, 404, "not_found")
	w.dev.do("GET", "/api/0/apps/flow-app/installations/?status=gone", nil).problem(t, 400, "invalid_input")
}

type basicAuth struct{ id, secret string }

func (b basicAuth) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.SetBasicAuth(b.id, b.secret)
	return http.DefaultTransport.RoundTrip(r)
}

func TestInternalIntegration(t *testing.T) {
	p := apptest.Start(t)
	team := signUp(t, p, "team@acme.example")
	team.do("POST", "/api/0/organizations/", map[string]string{"name": "Acme"}).ok(t, 201, nil)
	app := decode[plugboard.App](t, team.do("POST", "/api/0/organizations/acme/apps/", map[string]any{"name": "Deploy Bot", "kind": "internal",
		"scopes": []string{"org:read"}, "events": []string{"installation.created"}, "webhookUrl": "https://internal.acme.example/hook"}), 201)
	if !strings.HasPrefix(app.Token, "pbi_") || app.Installation == nil || app.Installation.Status != plugboard.StatusInstalled || app.Installs != 1 {
		t.Fatalf("internal app %+v", app)
	}
	bot := bearer(t, p, app.Token)
	bot.do("GET", "/api/0/organizations/acme/", nil).ok(t, 200, nil)
	rotated := decode[plugboard.ClientSecretRotation](t, team.do("POST", "/api/0/apps/deploy-bot/rotate-secret/", nil), 200)
	bot.do("GET", "/api/0/organizations/acme/", nil).problem(t, 401, "invalid_token")
	bearer(t, p, rotated.Token).do("GET", "/api/0/organizations/acme/", nil).ok(t, 200, nil)
	// It is never listed nor installed elsewhere.
	team.do("POST", "/api/0/organizations/acme/installations/", map[string]any{"app": "deploy-bot"}).problem(t, 400, "invalid_input")
	if dir := decode[[]plugboard.App](t, newClient(t, p, "").do("GET", "/api/0/apps/", nil), 200); len(dir) != 0 {
		t.Errorf("internal app listed: %v", slugs(dir))
	}
}

func TestDeletingAnOrganizationUninstallsItsApps(t *testing.T) {
	w := newWorld(t, false)
	inst, _ := w.install(t, "free")
	// The partner's organization cannot vanish while its app is installed elsewhere.
	w.dev.do("DELETE", "/api/0/organizations/partner/", nil).problem(t, 409, "has_installations")
	w.admin.do("DELETE", "/api/0/organizations/customer/", nil).ok(t, 204, nil)
	var types []string
	w.p.App.DB.Raw("SELECT type FROM events WHERE installation_id IS NOT NULL ORDER BY id").Scan(&types)
	if strings.Join(types, " ") != "installation.created installation.deleted" {
		t.Errorf("events %v", types)
	}
	var data []byte
	w.p.App.DB.Raw("SELECT data FROM events WHERE type = 'installation.deleted'").Row().Scan(&data)
	if !strings.Contains(string(data), inst.UUID) || !strings.Contains(string(data), "organization_deleted") {
		t.Errorf("installation.deleted data %s", data)
	}
	if app := decode[plugboard.App](t, w.dev.do("GET", "/api/0/apps/flow-app/", nil), 200); app.Installs != 0 {
		t.Errorf("installs %d", app.Installs)
	}
	w.dev.do("DELETE", "/api/0/organizations/partner/", nil).ok(t, 204, nil)
}
