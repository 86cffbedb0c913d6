package web_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/plugboard/plugboard/sdk/plugboard"
)

var (
	ssoFormRe  = regexp.MustCompile(`<form method="post" action="([^"]+)" class="card" data-autopost>`)
	ssoTokenRe = regexp.MustCompile(`<input type="hidden" name="token" value="([^"]+)">`)
)

// jwksKey is the platform's signing key, read as a partner reads it.
func jwksKey(t *testing.T, base string) (string, ed25519.PublicKey) {
	t.Helper()
	res, err := http.Get(base + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var jwks struct {
		Keys []struct{ Kid, X string }
	}
	if err := json.NewDecoder(res.Body).Decode(&jwks); err != nil || len(jwks.Keys) != 1 {
		t.Fatalf("jwks: %v %+v", err, jwks)
	}
	pub, _ := base64.RawURLEncoding.DecodeString(jwks.Keys[0].X)
	return jwks.Keys[0].Kid, pub
}

// "Open {App}" on the installed-app page and the installed-apps list, for
// any member: a CSRF-checked POST answers a form that carries a signed,
// one-minute token to the app's ssoUrl; each sign-on is audited.
func TestSingleSignOnFromTheInstalledAppPages(t *testing.T) {
	w := newWorld(t, false)
	ssoURL := w.partner.srv.URL + "/sso"

	// The partner sets ssoUrl through the API; bad values change nothing.
	bad := w.dev.do("PUT", "/api/0/apps/flow-app/", map[string]any{"ssoUrl": "ftp://partner.example/sso"}).problem(t, 400, "invalid_input")
	if bad.Fields["ssoUrl"] == "" {
		t.Errorf("fields %v", bad.Fields)
	}
	// The app is published: its ssoUrl changes through a reviewed revision.
	op := signIn(t, w.p, "ops@plugboard.example")
	app := applyReviewed(t, w.dev, op, "flow-app", map[string]any{"ssoUrl": ssoURL})
	if app.SSOURL != ssoURL {
		t.Fatalf("ssoUrl %q", app.SSOURL)
	}
	if public := decode[plugboard.App](t, w.admin.do("GET", "/api/0/apps/flow-app/", nil), 200); public.SSOURL != "" {
		t.Errorf("the public listing shows ssoUrl %q", public.SSOURL)
	}
	inst, _ := w.install(t, "free")

	// A member, not an admin, opens the app from both pages.
	signUp(t, w.p, "mia@customer.example")
	w.admin.do("POST", "/api/0/organizations/customer/members/", map[string]string{"email": "mia@customer.example", "role": "member"}).ok(t, 201, nil)
	mia := decode[plugboard.User](t, signIn(t, w.p, "mia@customer.example").do("GET", "/api/0/users/me/", nil), 200)
	b := uiSignIn(t, w.p, "mia@customer.example")
	action := "/orgs/customer/installations/" + inst.UUID + "/sso"
	b.get("/orgs/customer/installations").ok(200, `action="`+action+`"`, "Open Flow App")
	b.get("/orgs/customer/installations/"+inst.UUID).ok(200, `action="`+action+`"`, "Open Flow App")
	pg := b.post(action, nil).ok(200, "Opening Flow App", "Continue to Flow App")
	if m := ssoFormRe.FindStringSubmatch(pg.Body); m == nil || html.UnescapeString(m[1]) != ssoURL {
		t.Fatalf("the page does not post to %s:\n%s", ssoURL, excerpt(pg.Body))
	}
	m := ssoTokenRe.FindStringSubmatch(pg.Body)
	if m == nil {
		t.Fatalf("no token on the page:\n%s", excerpt(pg.Body))
	}

	// The token verifies with the platform's JWKS and says who, where, as what.
	kid, pub := jwksKey(t, w.p.URL)
	claims := jwt.MapClaims{}
	tok, err := jwt.ParseWithClaims(html.UnescapeString(m[1]), claims, func(*jwt.Token) (any, error) { return pub, nil },
		jwt.WithValidMethods([]string{"EdDSA"}), jwt.WithIssuer(w.p.URL), jwt.WithAudience(w.app.ClientID), jwt.WithExpirationRequired())
	if err != nil {
		t.Fatalf("the token does not verify: %v", err)
	}
	if tok.Header["kid"] != kid || tok.Header["typ"] != "plugboard-sso+jwt" {
		t.Errorf("header %v", tok.Header)
	}
	for k, want := range map[string]any{"sub": mia.ID, "email": "mia@customer.example", "name": "mia", "org": "customer",
		"installation": inst.UUID, "role": "member"} {
		if claims[k] != want {
			t.Errorf("claim %s = %v, want %v", k, claims[k], want)
		}
	}
	iat, _ := claims.GetIssuedAt()
	exp, _ := claims.GetExpirationTime()
	if exp.Sub(iat.Time) != time.Minute || claims["jti"] == "" {
		t.Errorf("iat %v exp %v jti %v", iat, exp, claims["jti"])
	}

	// Audited, with the jti.
	entries := decode[[]plugboard.AuditLogEntry](t, w.admin.do("GET", "/api/0/organizations/customer/audit-logs/?action=installation.sso", nil), 200)
	if len(entries) != 1 || entries[0].Actor.Name != "mia@customer.example" || entries[0].Target.ID != inst.UUID || entries[0].Data["jti"] != claims["jti"] {
		t.Errorf("audit %+v", entries)
	}

	// Refusals: a forged form, a stranger, and an app without ssoUrl.
	b.post(action, url.Values{"csrf": {"forged"}}).ok(403, "csrf")
	stranger := uiSignUp(t, w.p, "sam@elsewhere.example")
	stranger.uiOrg("Elsewhere")
	stranger.post(action, nil).ok(404)
	stranger.post("/orgs/elsewhere/installations/"+inst.UUID+"/sso", nil).ok(404)
	applyReviewed(t, w.dev, op, "flow-app", map[string]any{"ssoUrl": ""})
	if page := b.get("/orgs/customer/installations/" + inst.UUID).ok(200).Body; strings.Contains(page, "Open Flow App") {
		t.Error("Open is offered without an ssoUrl")
	}
	b.post(action, nil).ok(409, "no_sso_url")
	if n := len(decode[[]plugboard.AuditLogEntry](t, w.admin.do("GET", "/api/0/organizations/customer/audit-logs/?action=installation.sso", nil), 200)); n != 1 {
		t.Errorf("%d sign-ons audited after refusals, want 1", n)
	}
}

// The app settings form sets ssoUrl.
func TestPartnerSettingsSetSSOURL(t *testing.T) {
	w := newWorld(t, false)
	b := uiSignIn(t, w.p, "dev@partner.example")
	b.get("/apps/flow-app/settings").ok(200, `name="ssoUrl"`, "Single sign-on URL")
	form := appForm("Flow App")
	form.Set("redirectUrl", w.partner.srv.URL+"/setup")
	form.Set("ssoUrl", "not a url")
	b.post("/apps/flow-app/settings", form).ok(400).fieldError("ssoUrl")
	form.Set("ssoUrl", "https://flow.example/sso")
	// The app is published: the form drafts a revision, and shows it.
	b.post("/apps/flow-app/settings", form).ok(200, "Saved the settings", "wait in revision #1", `value="https://flow.example/sso"`)
	if app := decode[plugboard.App](t, w.dev.do("GET", "/api/0/apps/flow-app/", nil), 200); app.SSOURL != "" || app.PendingRevision == nil {
		t.Errorf("ssoUrl %q before review, revision %+v", app.SSOURL, app.PendingRevision)
	}
	w.dev.do("POST", "/api/0/apps/flow-app/revisions/1/publish-requests/", nil).ok(t, 201, nil)
	signIn(t, w.p, "ops@plugboard.example").do("PUT", "/api/0/apps/flow-app/revisions/1/", map[string]any{"status": "approved"}).ok(t, 200, nil)
	if app := decode[plugboard.App](t, w.dev.do("GET", "/api/0/apps/flow-app/", nil), 200); app.SSOURL != "https://flow.example/sso" {
		t.Errorf("ssoUrl %q after review", app.SSOURL)
	}
}
