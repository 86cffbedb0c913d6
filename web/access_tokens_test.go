package web_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"

	"github.com/plugboard/plugboard/sdk/plugboard"
)

// mint is POST /api/0/installations/{uuid}/access-tokens/ as c.
func mint(c *client, uuid string, body any) *response {
	c.t.Helper()
	return c.do("POST", "/api/0/installations/"+uuid+"/access-tokens/", body)
}

// An app mints its installation's tokens from its own credentials: every
// scope of the installation, or a subset it names, which the token then
// cannot exceed at Plugboard's routes or at introspection.
func TestAppMintsInstallationTokens(t *testing.T) {
	w := newTenants(t)
	res := mint(w.aApp, w.instA, nil)
	all := decode[plugboard.AccessToken](t, res, 201)
	if res.Header.Get("Cache-Control") != "no-store" || !strings.HasPrefix(all.Token, "pbi_") ||
		!slices.Equal(all.Scopes, []string{"org:read", "member:read", "issue:read"}) ||
		time.Until(all.ExpiresAt) < 8*time.Hour-time.Minute || time.Until(all.ExpiresAt) > 8*time.Hour+time.Minute {
		t.Fatalf("minted %+v (%s)", all, res.Header.Get("Cache-Control"))
	}
	tok := newClient(t, w.p, all.Token)
	tok.do("GET", "/api/0/organizations/alpha/members/", nil).ok(t, 200, nil)
	tok.do("GET", "/api/0/organizations/beta/", nil).problem(t, 404, "not_found")

	// The app JWT that exists already mints too (HS256 under the client
	// secret here; RS256 and EdDSA under the registered key work alike).
	now := time.Now()
	appJWT, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": w.clientIDA, "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()}).SignedString([]byte(w.secretA))
	if again := decode[plugboard.AccessToken](t, mint(newClient(t, w.p, appJWT), w.instA, map[string]any{}), 201); again.Token == all.Token || len(again.Scopes) != 3 {
		t.Fatalf("by app JWT %+v", again)
	}

	// Down-scoped: only org:read, in the installation's order, once.
	narrow := decode[plugboard.AccessToken](t, mint(w.aApp, w.instA, map[string]any{"scopes": []string{"org:read", "org:read"}}), 201)
	if !slices.Equal(narrow.Scopes, []string{"org:read"}) {
		t.Fatalf("narrowed %+v", narrow)
	}
	two := decode[plugboard.AccessToken](t, mint(w.aApp, w.instA, map[string]any{"scopes": []string{"issue:read", "org:read"}}), 201)
	if !slices.Equal(two.Scopes, []string{"org:read", "issue:read"}) {
		t.Fatalf("two %+v", two)
	}
	small := newClient(t, w.p, narrow.Token)
	small.do("GET", "/api/0/organizations/alpha/", nil).ok(t, 200, nil)
	small.do("GET", "/api/0/organizations/alpha/members/", nil).problem(t, 403, "missing_scope")
	if got := decode[plugboard.Introspection](t, introspect(t, w.p, "Bearer "+w.hostToken, narrow.Token), 200); !got.Active || got.Scope != "org:read" {
		t.Fatalf("introspection of the narrowed token %+v", got)
	}

	// Bad input is refused field by field, and mints nothing.
	before := count(t, w.p, "tokens")
	for _, body := range []any{
		map[string]any{"scopes": []string{"org:write"}},             // not the installation's
		map[string]any{"scopes": []string{"org:read", "nope:nope"}}, // one of them
		map[string]any{"scopes": []string{}},                        // nothing
		map[string]any{"scopes": "org:read"},
		map[string]any{"scope": []string{"org:read"}},
		`[]`,
	} {
		p := mint(w.aApp, w.instA, body).problem(t, 400, "")
		if p.Code != "invalid_input" && p.Code != "malformed_json" {
			t.Errorf("%v: %+v", body, p)
		}
		if p.Code == "invalid_input" && len(p.Fields) != 1 {
			t.Errorf("%v: fields %v", body, p.Fields)
		}
	}
	if after := count(t, w.p, "tokens"); after != before {
		t.Fatalf("refused requests made %d tokens", after-before)
	}

	// Only the app itself: not its installation's token, not the
	// organization's admins; another app does not find the installation.
	mint(w.aInst, w.instA, nil).problem(t, 403, "app_credentials_required")
	mint(w.aAdmin, w.instA, nil).problem(t, 403, "app_only")
	mint(w.bApp, w.instA, nil).problem(t, 404, "not_found")
	mint(w.aApp, w.instB, nil).problem(t, 404, "not_found")
	mint(w.aApp, "not-a-uuid", nil).problem(t, 404, "not_found")

	var actions []string
	for _, e := range decode[[]plugboard.AuditLogEntry](t, w.aAdmin.do("GET", "/api/0/organizations/alpha/audit-logs/", nil), 200) {
		actions = append(actions, e.Action)
	}
	if n := strings.Count(strings.Join(actions, " "), "installation.access_token"); n != 4 {
		t.Errorf("%d installation.access_token audit entries, want 4: %v", n, actions)
	}

	// Suspended by the organization's admin: nothing minted until lifted.
	w.aAdmin.do("POST", "/api/0/installations/"+w.instA+"/suspensions/", map[string]any{"reason": "Billing is overdue."}).ok(t, 201, nil)
	if p := mint(w.aApp, w.instA, nil).problem(t, 401, "installation_suspended"); !strings.Contains(p.Detail, "Billing is overdue.") {
		t.Errorf("suspended: %+v", p)
	}
	w.aAdmin.do("DELETE", "/api/0/installations/"+w.instA+"/suspensions/", nil).ok(t, 204, nil)
	mint(w.aApp, w.instA, nil).ok(t, 201, nil)

	// Uninstalled: never again.
	w.aAdmin.do("DELETE", "/api/0/installations/"+w.instA+"/", nil).ok(t, 204, nil)
	mint(w.aApp, w.instA, nil).problem(t, 409, "installation_not_live")
	tok.do("GET", "/api/0/organizations/alpha/", nil).problem(t, 401, "invalid_token")
}

// A public app installed from the marketplace may mint tokens beside the
// refresh tokens of its install flow, which keep working; minting also
// marks an installation whose code was never exchanged as in sync.
func TestMintingBesideRefreshTokens(t *testing.T) {
	w := newWorld(t, false)
	ctx := context.Background()
	inst, q := w.install(t, "free")
	tok, err := w.oauth.Exchange(ctx, q.Get("code"))
	if err != nil {
		t.Fatal(err)
	}
	app := newClient(t, w.p, "")
	app.http.Transport = basicAuth{w.app.ClientID, w.app.ClientSecret}
	minted := decode[plugboard.AccessToken](t, mint(app, inst.UUID, nil), 201)
	if !slices.Equal(minted.Scopes, []string{"org:read", "member:read"}) {
		t.Fatalf("minted %+v", minted)
	}
	newClient(t, w.p, minted.Token).do("GET", "/api/0/organizations/customer/", nil).ok(t, 200, nil)

	// The refresh token still refreshes, and the minted token still works.
	stale := &oauth2.Token{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Minute)}
	renewed, err := w.oauth.TokenSource(ctx, stale).Token()
	if err != nil || renewed.AccessToken == tok.AccessToken || renewed.RefreshToken == tok.RefreshToken {
		t.Fatalf("refresh after minting: %+v %v", renewed, err)
	}
	newClient(t, w.p, renewed.AccessToken).do("GET", "/api/0/organizations/customer/", nil).ok(t, 200, nil)
	newClient(t, w.p, minted.Token).do("GET", "/api/0/organizations/customer/", nil).ok(t, 200, nil)

	// An installation flagged token_never_exchanged is in sync once its
	// app mints.
	if err := w.p.App.DB.Exec("UPDATE installations SET sync_state = 'out_of_sync', sync_reason = 'token_never_exchanged' WHERE uuid = ?", inst.UUID).Error; err != nil {
		t.Fatal(err)
	}
	mint(app, inst.UUID, map[string]any{"scopes": []string{"member:read"}}).ok(t, 201, nil)
	if got := getInstallation(t, w.admin, inst.UUID); got.SyncState != plugboard.InSync || got.SyncReason != "" {
		t.Errorf("after minting: %s %s", got.SyncState, got.SyncReason)
	}
	res := mint(w.admin, inst.UUID, nil)
	if res.Status != http.StatusForbidden {
		t.Errorf("the customer's admin minted: %d", res.Status)
	}
}
