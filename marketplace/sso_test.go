package marketplace_test

import (
	"crypto/ed25519"
	"fmt"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"

	"github.com/plugboard/plugboard/marketplace"
)

func withRequireHTTPS() option {
	return func(o *marketplace.Options, _ *marketplace.ReconcileOptions) { o.RequireHTTPS = true }
}

// ssoUrl is checked like the other URLs, and must be https where the
// platform requires it (production).
func TestSSOURLValidation(t *testing.T) {
	dev := newTestServices(t)
	prod := newTestServices(t, withRequireHTTPS())
	for i, tc := range []struct {
		name  string
		e     *env
		url   string
		field bool
	}{
		{"development: http on loopback", dev, "http://127.0.0.1:3000/sso", false},
		{"production: https", prod, "https://partner.example/sso", false},
		{"production: http refused", prod, "http://partner.example/sso", true},
		{"not absolute", dev, "/sso", true},
		{"another scheme", dev, "javascript:alert(1)", true},
		{"credentials in it", dev, "https://a:b@partner.example/sso", true},
		{"empty: none", prod, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := tc.e.with(t)
			owner := e.mustUser(fmt.Sprintf("dev%d@partner.example", i))
			org := e.mustOrg(owner, fmt.Sprintf("Partner %d", i))
			in := appFields(fmt.Sprintf("App %d", i))
			in.SSOURL = ptr(tc.url)
			app, err := e.Apps.CreateApp(e.ctx, owner, org.Org.Slug, in)
			if tc.field {
				wantCode(t, err, "invalid_input")
				wantFields(t, err, "ssoUrl")
				return
			}
			wantCode(t, err, "")
			if app.SSOURL != tc.url {
				t.Errorf("ssoUrl %q", app.SSOURL)
			}
		})
	}
}

// SignOn mints a one-minute EdDSA token for a member of the installation's
// organization, as the JWKS verifies it, and audits it; everyone else is
// refused.
func TestSignOn(t *testing.T) {
	in := appFields("Pager")
	in.SSOURL = ptr("https://pager.example/sso")
	w := newWorld(t, in)
	ni := w.mustInstall(w.admin, w.customer, w.app.Slug, "free")
	member := w.mustUser("mia@customer.example")
	w.mustMember(w.admin, w.customer, member, marketplace.RoleMember)

	so, err := w.Installs.SignOn(w.ctx, member, w.customer, ni.Installation.UUID)
	wantCode(t, err, "")
	if so.URL != "https://pager.example/sso" {
		t.Errorf("URL %q", so.URL)
	}
	claims := jwt.MapClaims{}
	tok, err := jwt.ParseWithClaims(so.Token, claims, func(*jwt.Token) (any, error) { return w.OAuth.PublicStateKey().(ed25519.PublicKey), nil },
		jwt.WithValidMethods([]string{"EdDSA"}), jwt.WithTimeFunc(w.clock.Now))
	if err != nil {
		t.Fatalf("token does not verify: %v", err)
	}
	if tok.Header["typ"] != marketplace.SSOTokenType || tok.Header["kid"] != w.OAuth.StateKeyID() {
		t.Errorf("header %v", tok.Header)
	}
	now := float64(w.clock.Now().Unix())
	want := jwt.MapClaims{"iss": "http://plugboard.test", "aud": w.app.ClientID, "sub": idStr(member.User.ID),
		"email": "mia@customer.example", "name": "mia", "org": "customer", "installation": ni.Installation.UUID, "role": "member",
		"iat": now, "exp": now + 60, "jti": so.JTI}
	if d := cmp.Diff(want, claims); d != "" {
		t.Errorf("claims (-want +got):\n%s", d)
	}
	again, err := w.Installs.SignOn(w.ctx, member, w.customer, ni.Installation.UUID)
	wantCode(t, err, "")
	if again.JTI == so.JTI {
		t.Error("two sign-ons share a jti")
	}
	if n := w.count("audit_logs", "action = 'installation.sso' AND actor_label = ? AND target_id = ?", "mia@customer.example", ni.Installation.UUID); n != 2 {
		t.Errorf("%d installation.sso audit entries, want 2", n)
	}

	// Refusals.
	stranger := w.mustUser("sam@elsewhere.example")
	w.mustOrg(stranger, "Elsewhere")
	plain := w.mustApp(w.dev, w.partner, appFields("Plain"))
	w.mustPublish(w.dev, w.op, plain.Slug)
	plainInst := w.mustInstall(w.admin, w.customer, plain.Slug, "free")
	client := w.mustClient(w.app)
	token := w.mustBearer(w.mustExchange(client, ni.Code).AccessToken)
	for _, tc := range []struct {
		name string
		a    marketplace.Actor
		org  string
		inst string
		code string
	}{
		{"nobody", marketplace.Anonymous, w.customer, ni.Installation.UUID, "not_authenticated"},
		{"the installation's token", token, w.customer, ni.Installation.UUID, "users_only"},
		{"a stranger", stranger, w.customer, ni.Installation.UUID, "not_found"},
		{"a stranger, through their own organization", stranger, "elsewhere", ni.Installation.UUID, "not_found"},
		{"an app without ssoUrl", member, w.customer, plainInst.Installation.UUID, "no_sso_url"},
		{"no such installation", member, w.customer, "00000000-0000-0000-0000-000000000000", "not_found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := w.Installs.SignOn(w.ctx, tc.a, tc.org, tc.inst)
			wantCode(t, err, tc.code)
		})
	}
	if err := w.Installs.Uninstall(w.ctx, w.admin, ni.Installation.UUID); err != nil {
		t.Fatal(err)
	}
	_, err = w.Installs.SignOn(w.ctx, member, w.customer, ni.Installation.UUID)
	wantCode(t, err, "not_found")
}

func TestSplitScope(t *testing.T) {
	inst, id := marketplace.SplitScope(" org:read openid  email org:read profile openid member:read ")
	if d := cmp.Diff([]string{"org:read", "member:read"}, inst); d != "" {
		t.Errorf("installation scopes (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"openid", "email", "profile"}, id); d != "" {
		t.Errorf("identity scopes (-want +got):\n%s", d)
	}
	for scope, signsIn := range map[string]bool{"openid": true, "org:read openid": true, "email profile": false, "": false, "openidx": false} {
		if got := (marketplace.AuthorizeRequest{Scope: scope}).SignsIn(); got != signsIn {
			t.Errorf("SignsIn(%q) = %v", scope, got)
		}
	}
}
