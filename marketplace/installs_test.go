package marketplace_test

import (
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"

	"github.com/plugboard/plugboard/app/fault"
	"github.com/plugboard/plugboard/app/page"
	"github.com/plugboard/plugboard/marketplace"
)

func TestInstallFlow(t *testing.T) {
	tests := []struct {
		name       string
		verify     bool
		wantStatus string
	}{
		{"installed at once", false, marketplace.InstallInstalled},
		{"pending until the app verifies", true, marketplace.InstallPending},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := appFields("Flow App")
			in.VerifyInstall = ptr(tt.verify)
			w := newWorld(t, in)
			e := w.env
			cust, _ := e.Orgs.GetOrganization(e.ctx, w.admin, w.customer)

			ni := e.mustInstall(w.admin, w.customer, w.app.Slug, "pro")
			inst := ni.Installation
			if inst.Status != tt.wantStatus || inst.Plan == nil || inst.Plan.Slug != "pro" || inst.InstalledBy == nil || *inst.InstalledBy != w.admin.User.ID {
				t.Fatalf("installation = %+v", inst)
			}
			if diff := cmp.Diff(marketplace.Strings{"org:read"}, inst.Scopes); diff != "" {
				t.Errorf("scopes (-want +got):\n%s", diff)
			}

			// The browser goes to the partner's redirect URL with the code
			// and a state the partner can verify with the platform's key.
			if !strings.HasPrefix(ni.RedirectURL, "https://partner.example/setup?") {
				t.Errorf("redirect URL = %s", ni.RedirectURL)
			}
			q := query(t, ni.RedirectURL)
			if q.Get("code") != ni.Code || !strings.HasPrefix(ni.Code, marketplace.PrefixCode) || q.Get("installationId") != inst.UUID || q.Get("orgSlug") != "customer" {
				t.Errorf("redirect query = %v", q)
			}
			claims := jwt.MapClaims{}
			_, err := jwt.ParseWithClaims(q.Get("state"), claims, func(tok *jwt.Token) (any, error) {
				if tok.Header["kid"] != e.OAuth.StateKeyID() {
					t.Errorf("state kid = %v, want %s", tok.Header["kid"], e.OAuth.StateKeyID())
				}
				return e.OAuth.PublicStateKey(), nil
			}, jwt.WithValidMethods([]string{"EdDSA"}), jwt.WithTimeFunc(e.clock.Now), jwt.WithAudience(w.app.ClientID), jwt.WithIssuer("http://plugboard.test"))
			if err != nil {
				t.Fatalf("state does not verify: %v", err)
			}
			if claims["sub"] != inst.UUID || claims["org"] != "customer" || claims["exp"] != float64(e.clock.Now().Add(10*time.Minute).Unix()) {
				t.Errorf("state claims = %v", claims)
			}

			var g marketplace.Grant
			e.db.Where("installation_id = ?", inst.ID).Take(&g)
			if !g.ExpiresAt.Equal(e.clock.Now().Add(10*time.Minute)) || g.UsedAt != nil {
				t.Errorf("grant = %+v", g)
			}
			want := []delivery{{EventType: "installation.created", AppID: w.app.ID, InstallationUUID: inst.UUID, OrganizationID: cust.Org.ID, Status: "pending"}}
			if diff := cmp.Diff(want, e.deliveries("installation.created")); diff != "" {
				t.Errorf("installation.created deliveries (-want +got):\n%s", diff)
			}
			data := e.eventData(cust.Org.ID, "installation.created")
			if data["code"] != ni.Code {
				t.Errorf("installation.created carries code %v, want the grant's", data["code"])
			}
			if got := data["installation"].(map[string]any)["status"]; got != tt.wantStatus {
				t.Errorf("installation.created status = %v", got)
			}
			app, _ := e.Apps.GetApp(e.ctx, w.dev, w.app.Slug)
			if app.InstallsCount != 1 {
				t.Errorf("installs count = %d, want 1", app.InstallsCount)
			}

			// The app's token reads the organization once it is installed.
			access := e.mustExchange(e.mustClient(w.app), ni.Code).AccessToken
			tok := e.mustBearer(access)
			_, err = e.Orgs.GetOrganization(e.ctx, tok, w.customer)
			if tt.verify {
				wantCode(t, err, "installation_pending")
				// Only the app verifies, with its token.
				_, err = e.Installs.UpdateInstallation(e.ctx, w.admin, inst.UUID, marketplace.InstallationUpdate{Status: ptr("installed")})
				wantCode(t, err, "app_only")
				_, err = e.Installs.UpdateInstallation(e.ctx, tok, inst.UUID, marketplace.InstallationUpdate{Status: ptr("deleted")})
				wantFields(t, err, "status")
				e.clock.Advance(time.Minute)
				v, verr := e.Installs.UpdateInstallation(e.ctx, tok, inst.UUID, marketplace.InstallationUpdate{Status: ptr("installed")})
				wantCode(t, verr, "")
				if v.Status != marketplace.InstallInstalled || v.VerifiedAt == nil || !v.VerifiedAt.Equal(e.clock.Now()) {
					t.Errorf("verified installation: %s at %v", v.Status, v.VerifiedAt)
				}
				if n := e.count("audit_logs", "action = 'installation.verify' AND actor_type = 'installation'"); n != 1 {
					t.Errorf("installation.verify audit entries = %d, want 1", n)
				}
				tok = e.mustBearer(access) // the same token, now of an installed installation
				_, err = e.Orgs.GetOrganization(e.ctx, tok, w.customer)
			}
			wantCode(t, err, "")
			_, err = e.Orgs.ListMembers(e.ctx, tok, w.customer, page.Request{})
			wantCode(t, err, "missing_scope")
			_, err = e.Orgs.GetOrganization(e.ctx, tok, w.partner)
			wantCode(t, err, "not_found")
		})
	}
}

func TestInstallRefusals(t *testing.T) {
	w := newWorld(t, appFields("Flow App"))
	e := w.env
	member := e.mustUser("member@customer.example")
	e.mustMember(w.admin, w.customer, member, marketplace.RoleMember)
	draft := e.mustApp(w.dev, w.partner, appFields("Unreleased"))
	noRedirect := appFields("Nowhere")
	noRedirect.RedirectURL = nil
	e.mustApp(w.admin, w.customer, noRedirect)

	tests := []struct {
		name                 string
		actor                marketplace.Actor
		org, app, plan, code string
		fields               []string
	}{
		{"member", member, w.customer, w.app.Slug, "free", "insufficient_role", nil},
		{"stranger", e.mustUser("x@else.example"), w.customer, w.app.Slug, "free", "not_found", nil},
		{"no app", w.admin, w.customer, " ", "", "invalid_input", []string{"app"}},
		{"unknown app", w.admin, w.customer, "nope", "", "invalid_input", []string{"app"}},
		{"another organization's draft", w.admin, w.customer, draft.Slug, "", "invalid_input", []string{"app"}},
		{"no redirect URL", w.admin, w.customer, "nowhere", "", "invalid_input", []string{"app"}},
		{"plan required", w.admin, w.customer, w.app.Slug, "", "invalid_input", []string{"plan"}},
		{"unknown plan", w.admin, w.customer, w.app.Slug, "gold", "invalid_input", []string{"plan"}},
		{"plan by id", w.admin, w.customer, w.app.Slug, "", "", nil}, // plan filled in below
	}
	var pro marketplace.Plan
	e.db.Where("slug = 'pro'").Take(&pro)
	tests[len(tests)-1].plan = idStr(pro.ID)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ni, err := e.Installs.Install(e.ctx, tt.actor, tt.org, tt.app, tt.plan)
			wantCode(t, err, tt.code)
			if tt.fields != nil {
				wantFields(t, err, tt.fields...)
			}
			if err == nil && (ni.Installation.PlanID == nil || *ni.Installation.PlanID != pro.ID) {
				t.Errorf("installed on plan %v, want %d", ni.Installation.PlanID, pro.ID)
			}
		})
	}
	if n := e.count("installations", ""); n != 1 {
		t.Errorf("installations = %d, want 1", n)
	}
	// The owner organization may install its own draft app.
	e.mustInstall(w.dev, w.partner, draft.Slug, "")
}

func TestInstallTwiceConflicts(t *testing.T) {
	w := newWorld(t, appFields("Flow App"))
	e := w.env
	first := e.mustInstall(w.admin, w.customer, w.app.Slug, "free")

	_, err := e.Installs.Install(e.ctx, w.admin, w.customer, w.app.Slug, "pro")
	wantCode(t, err, "already_installed")
	if live, ok := marketplace.ExistingInstallation(err); !ok || live.UUID != first.Installation.UUID {
		t.Fatalf("error %v does not carry the live installation %s", err, first.Installation.UUID)
	}
	if n := e.count("installations", ""); n != 1 {
		t.Errorf("installations = %d, want 1", n)
	}

	wantCode(t, e.Installs.Uninstall(e.ctx, w.admin, first.Installation.UUID), "")
	again := e.mustInstall(w.admin, w.customer, w.app.Slug, "pro")
	if again.Installation.UUID == first.Installation.UUID {
		t.Error("reinstalling reused the deleted installation")
	}
	live, err := e.Installs.InstalledAppsPage(e.ctx, w.admin, w.customer, page.Request{})
	wantCode(t, err, "")
	if len(live.Installations.Items) != 1 || live.Installations.Items[0].UUID != again.Installation.UUID {
		t.Errorf("live installations = %+v", live.Installations.Items)
	}
	all, err := e.Installs.ListOrgInstallations(e.ctx, w.admin, w.customer, marketplace.InstallationQuery{Status: marketplace.InstallDeleted}, page.Request{})
	wantCode(t, err, "")
	if len(all.Items) != 1 || all.Items[0].UUID != first.Installation.UUID || all.Items[0].StatusReason != "uninstalled" {
		t.Errorf("deleted installations = %+v", all.Items)
	}
}

func TestTokenExchangeAndRefresh(t *testing.T) {
	w := newWorld(t, appFields("Flow App"))
	e := w.env
	ni := e.mustInstall(w.admin, w.customer, w.app.Slug, "free")
	client := e.mustClient(w.app)
	other := e.mustApp(w.dev, w.partner, appFields("Other App"))

	// Requests the token endpoint refuses before looking at the code.
	for _, tt := range []struct {
		name string
		r    marketplace.TokenRequest
		code string
	}{
		{"no grant type", marketplace.TokenRequest{Code: ni.Code}, "oauth:invalid_request"},
		{"password grant", marketplace.TokenRequest{GrantType: "password"}, "oauth:unsupported_grant_type"},
		{"no code", marketplace.TokenRequest{GrantType: "authorization_code"}, "oauth:invalid_request"},
		{"unknown code", marketplace.TokenRequest{GrantType: "authorization_code", Code: "pbg_nope"}, "oauth:invalid_grant"},
		{"another installation", marketplace.TokenRequest{GrantType: "authorization_code", Code: ni.Code, InstallationUUID: "9b2f4c1e-7d7e-4b8c-9f55-2d1d1b3c0a11"}, "oauth:invalid_grant"},
		{"wrong redirect URI", marketplace.TokenRequest{GrantType: "authorization_code", Code: ni.Code, RedirectURI: "https://evil.example/"}, "oauth:invalid_grant"},
		{"no refresh token", marketplace.TokenRequest{GrantType: "refresh_token"}, "oauth:invalid_request"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.OAuth.Token(e.ctx, client, tt.r)
			wantCode(t, err, tt.code)
		})
	}
	_, err := e.OAuth.Token(e.ctx, e.mustClient(other), marketplace.TokenRequest{GrantType: "authorization_code", Code: ni.Code})
	wantCode(t, err, "oauth:invalid_grant") // issued to another client

	set, err := e.OAuth.Token(e.ctx, client, marketplace.TokenRequest{GrantType: "authorization_code", Code: ni.Code,
		RedirectURI: "https://partner.example/setup", InstallationUUID: ni.Installation.UUID})
	wantCode(t, err, "")
	if !strings.HasPrefix(set.AccessToken, marketplace.PrefixAccess) || !strings.HasPrefix(set.RefreshToken, marketplace.PrefixRefresh) {
		t.Errorf("tokens %q, %q", set.AccessToken, set.RefreshToken)
	}
	if diff := cmp.Diff(e.clock.Now().Add(8*time.Hour), set.ExpiresAt); diff != "" {
		t.Errorf("access token expiry (-want +got):\n%s", diff)
	}
	if set.ExpiresIn(e.clock.Now()) != 8*3600 || set.Installation.UUID != ni.Installation.UUID {
		t.Errorf("expires in %d, installation %s", set.ExpiresIn(e.clock.Now()), set.Installation.UUID)
	}
	a := e.mustBearer(set.AccessToken)
	if a.Installation == nil || a.Installation.UUID != ni.Installation.UUID || cmp.Diff([]string{"org:read"}, []string(a.Scopes)) != "" {
		t.Errorf("access token actor = %+v", a)
	}
	var grant marketplace.Grant
	e.db.Where("installation_id = ?", ni.Installation.ID).Take(&grant)
	if grant.UsedAt == nil || !grant.UsedAt.Equal(e.clock.Now()) {
		t.Errorf("grant used at %v", grant.UsedAt)
	}

	// Refreshing rotates both tokens; the old access token lives on.
	e.clock.Advance(time.Hour)
	next, err := e.OAuth.Token(e.ctx, client, marketplace.TokenRequest{GrantType: "refresh_token", RefreshToken: set.RefreshToken})
	wantCode(t, err, "")
	if next.AccessToken == set.AccessToken || next.RefreshToken == set.RefreshToken || !next.ExpiresAt.Equal(e.clock.Now().Add(8*time.Hour)) {
		t.Errorf("refreshed set = %+v", next)
	}
	e.mustBearer(next.AccessToken)
	_, err = e.OAuth.Token(e.ctx, e.mustClient(other), marketplace.TokenRequest{GrantType: "refresh_token", RefreshToken: next.RefreshToken})
	wantCode(t, err, "oauth:invalid_grant")

	// The first access token expires after AccessTTL.
	e.clock.Advance(7 * time.Hour)
	_, err = e.Accounts.AuthenticateBearer(e.ctx, set.AccessToken)
	wantCode(t, err, "invalid_token")
	e.mustBearer(next.AccessToken)

	// Reusing a rotated refresh token revokes its whole family.
	_, err = e.OAuth.Token(e.ctx, client, marketplace.TokenRequest{GrantType: "refresh_token", RefreshToken: set.RefreshToken})
	wantCode(t, err, "oauth:invalid_grant")
	_, err = e.Accounts.AuthenticateBearer(e.ctx, next.AccessToken)
	wantCode(t, err, "invalid_token")
	_, err = e.OAuth.Token(e.ctx, client, marketplace.TokenRequest{GrantType: "refresh_token", RefreshToken: next.RefreshToken})
	wantCode(t, err, "oauth:invalid_grant")
	if n := e.count("tokens", "installation_id = ? AND revoked_at IS NULL", ni.Installation.ID); n != 0 {
		t.Errorf("live tokens after reuse = %d, want 0", n)
	}
}

func TestCodeReuseRefused(t *testing.T) {
	w := newWorld(t, appFields("Flow App"))
	e := w.env
	ni := e.mustInstall(w.admin, w.customer, w.app.Slug, "free")
	client := e.mustClient(w.app)
	set := e.mustExchange(client, ni.Code)

	_, err := e.OAuth.Token(e.ctx, client, marketplace.TokenRequest{GrantType: "authorization_code", Code: ni.Code})
	wantCode(t, err, "oauth:invalid_grant")
	if fe, ok := fault.As(err); ok && !strings.Contains(fe.Message, "already used") {
		t.Errorf("description = %q", fe.Message)
	}
	// Someone else may hold the code: what it gave is revoked.
	_, err = e.Accounts.AuthenticateBearer(e.ctx, set.AccessToken)
	wantCode(t, err, "invalid_token")
	_, err = e.OAuth.Token(e.ctx, client, marketplace.TokenRequest{GrantType: "refresh_token", RefreshToken: set.RefreshToken})
	wantCode(t, err, "oauth:invalid_grant")
}

func TestCodeExpires(t *testing.T) {
	w := newWorld(t, appFields("Flow App"), withGrantTTL(5*time.Minute))
	e := w.env
	ni := e.mustInstall(w.admin, w.customer, w.app.Slug, "free")
	client := e.mustClient(w.app)

	e.clock.Advance(5 * time.Minute)
	_, err := e.OAuth.Token(e.ctx, client, marketplace.TokenRequest{GrantType: "authorization_code", Code: ni.Code})
	wantCode(t, err, "oauth:invalid_grant")
	if fe, ok := fault.As(err); ok && !strings.Contains(fe.Message, "expired") {
		t.Errorf("description = %q", fe.Message)
	}

	// The app asks for a fresh code; nobody else may.
	_, _, err = e.Installs.RequestGrant(e.ctx, w.admin, ni.Installation.UUID)
	wantCode(t, err, "app_only")
	g, code, err := e.Installs.RequestGrant(e.ctx, marketplace.Actor{App: client}, ni.Installation.UUID)
	wantCode(t, err, "")
	if code == ni.Code || !g.ExpiresAt.Equal(e.clock.Now().Add(5*time.Minute)) {
		t.Errorf("fresh grant %+v", g)
	}
	if data := e.eventData(ni.Installation.OrganizationID, "installation.created"); data["code"] != code || data["resent"] != true {
		t.Errorf("resent installation.created = %v", data)
	}
	e.clock.Advance(5*time.Minute - time.Second)
	e.mustExchange(client, code)
}

func TestPKCE(t *testing.T) {
	w := newWorld(t, appFields("Flow App"))
	e := w.env
	verifier := "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk-0123456789"
	sum := sha256.Sum256([]byte(verifier))
	challenge := base64.RawURLEncoding.EncodeToString(sum[:])
	req := marketplace.AuthorizeRequest{ResponseType: "code", ClientID: w.app.ClientID, RedirectURI: "https://partner.example/setup",
		Scope: "org:read", State: "xyz", CodeChallenge: challenge, CodeChallengeMethod: "S256"}

	// Bad authorize requests: redirected back when the client is known.
	bad := []struct {
		name     string
		change   func(*marketplace.AuthorizeRequest)
		code     string
		redirect bool
	}{
		{"plain method", func(r *marketplace.AuthorizeRequest) { r.CodeChallengeMethod = "plain" }, "invalid_request", true},
		{"short challenge", func(r *marketplace.AuthorizeRequest) { r.CodeChallenge = "abc" }, "invalid_request", true},
		{"scope not registered", func(r *marketplace.AuthorizeRequest) { r.Scope = "org:write" }, "invalid_scope", true},
		{"token response type", func(r *marketplace.AuthorizeRequest) { r.ResponseType = "token" }, "unsupported_response_type", true},
		{"unknown client", func(r *marketplace.AuthorizeRequest) { r.ClientID = "nope" }, "invalid_client", false},
		{"foreign redirect URI", func(r *marketplace.AuthorizeRequest) { r.RedirectURI = "https://evil.example/" }, "invalid_request", false},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			r := req
			tt.change(&r)
			_, err := e.OAuth.PrepareAuthorize(e.ctx, w.admin, r)
			fe, ok := fault.As(err)
			if !ok || fe.Kind != fault.KindOAuth || string(fe.Code) != tt.code || (fe.Details[marketplace.DetailRedirectURI] != nil) != tt.redirect {
				t.Fatalf("error = %#v, want %s (redirect %v)", err, tt.code, tt.redirect)
			}
		})
	}

	consent, err := e.OAuth.PrepareAuthorize(e.ctx, w.admin, req)
	wantCode(t, err, "")
	var orgs []string
	for _, o := range consent.Orgs {
		orgs = append(orgs, o.Org.Slug)
	}
	if diff := cmp.Diff([]string{"customer"}, orgs); diff != "" {
		t.Errorf("consent organizations (-want +got):\n%s", diff)
	}
	redirect, err := e.OAuth.Approve(e.ctx, w.admin, marketplace.Approval{AuthorizeRequest: req, Org: w.customer, Plan: "free"})
	wantCode(t, err, "")
	q := query(t, redirect)
	if q.Get("state") != "xyz" || q.Get("orgSlug") != "customer" || q.Get("code") == "" {
		t.Fatalf("approve redirect = %s", redirect)
	}
	code, client := q.Get("code"), e.mustClient(w.app)
	var g marketplace.Grant
	e.db.Take(&g)
	if g.CodeChallenge != challenge || g.CodeChallengeMethod != "S256" || g.RedirectURI != req.RedirectURI {
		t.Errorf("grant = %+v", g)
	}

	for _, tt := range []struct {
		name, verifier, redirectURI, code string
	}{
		{"no verifier", "", req.RedirectURI, "oauth:invalid_grant"},
		{"wrong verifier", verifier + "x", req.RedirectURI, "oauth:invalid_grant"},
		{"the challenge itself", challenge, req.RedirectURI, "oauth:invalid_grant"},
		{"redirect URI left out", verifier, "", "oauth:invalid_grant"},
		{"right verifier", verifier, req.RedirectURI, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			set, err := e.OAuth.Token(e.ctx, client, marketplace.TokenRequest{GrantType: "authorization_code", Code: code,
				CodeVerifier: tt.verifier, RedirectURI: tt.redirectURI})
			wantCode(t, err, tt.code)
			if err == nil {
				e.with(t).mustBearer(set.AccessToken)
			}
		})
	}

	// Approving again for the same organization reauthorizes: a new code,
	// the same installation.
	again, err := e.OAuth.Approve(e.ctx, w.admin, marketplace.Approval{AuthorizeRequest: req, Org: w.customer, Plan: "free"})
	wantCode(t, err, "")
	if q2 := query(t, again); q2.Get("installationId") != q.Get("installationId") || q2.Get("code") == code {
		t.Errorf("reauthorize redirect = %s", again)
	}
	if n := e.count("installations", ""); n != 1 {
		t.Errorf("installations = %d, want 1", n)
	}
	deny, err := e.OAuth.Deny(e.ctx, w.admin, req)
	wantCode(t, err, "")
	if dq := query(t, deny); dq.Get("error") != "access_denied" || dq.Get("state") != "xyz" {
		t.Errorf("deny redirect = %s", deny)
	}
}

func TestUninstallRevokesTokensAndPublishesDeleted(t *testing.T) {
	w := newWorld(t, appFields("Flow App"))
	e := w.env
	member := e.mustUser("member@customer.example")
	e.mustMember(w.admin, w.customer, member, marketplace.RoleMember)
	cust, _ := e.Orgs.GetOrganization(e.ctx, w.admin, w.customer)
	ni := e.mustInstall(w.admin, w.customer, w.app.Slug, "free")
	client := e.mustClient(w.app)
	set := e.mustExchange(client, ni.Code)
	id := ni.Installation.UUID

	wantCode(t, e.Installs.Uninstall(e.ctx, member, id), "insufficient_role")
	wantCode(t, e.Installs.Uninstall(e.ctx, w.dev, id), "not_found") // the partner's user is no member here
	wantCode(t, e.Installs.Uninstall(e.ctx, w.admin, "not-a-uuid"), "not_found")
	e.mustBearer(set.AccessToken)

	e.clock.Advance(time.Minute)
	wantCode(t, e.Installs.Uninstall(e.ctx, w.admin, id), "")
	_, err := e.Accounts.AuthenticateBearer(e.ctx, set.AccessToken)
	wantCode(t, err, "invalid_token")
	_, err = e.OAuth.Token(e.ctx, client, marketplace.TokenRequest{GrantType: "refresh_token", RefreshToken: set.RefreshToken})
	wantCode(t, err, "oauth:invalid_grant")
	wantCode(t, e.Installs.Uninstall(e.ctx, w.admin, id), "installation_not_live")

	inst := e.installation(id)
	if inst.Status != marketplace.InstallDeleted || inst.StatusReason != "uninstalled" || inst.DeletedAt == nil || !inst.DeletedAt.Equal(e.clock.Now()) {
		t.Errorf("installation after uninstall = %+v", inst)
	}
	want := []delivery{
		{EventType: "installation.created", AppID: w.app.ID, InstallationUUID: id, OrganizationID: cust.Org.ID, Status: "pending"},
		{EventType: "installation.deleted", AppID: w.app.ID, InstallationUUID: id, OrganizationID: cust.Org.ID, Status: "pending"},
	}
	got := append(e.deliveries("installation.created"), e.deliveries("installation.deleted")...)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("lifecycle deliveries (-want +got):\n%s", diff)
	}
	data := e.eventData(cust.Org.ID, "installation.deleted")
	if data["reason"] != "uninstalled" || data["installation"].(map[string]any)["status"] != "deleted" {
		t.Errorf("installation.deleted data = %v", data)
	}

	// The app may uninstall itself too, with its own credentials.
	again := e.mustInstall(w.admin, w.customer, w.app.Slug, "free")
	wantCode(t, e.Installs.Uninstall(e.ctx, marketplace.Actor{App: client}, again.Installation.UUID), "")
	if n := e.count("audit_logs", "action = 'installation.delete' AND actor_type = 'app'"); n != 1 {
		t.Errorf("installation.delete by the app = %d, want 1", n)
	}
	if n := len(e.deliveries("installation.deleted")); n != 2 {
		t.Errorf("installation.deleted deliveries = %d, want 2", n)
	}
}

func TestInternalIntegrationInstalledOnCreation(t *testing.T) {
	s := newStudio(t)
	in := appFields("Inside")
	in.Kind = ptr(marketplace.KindInternal)
	in.Scopes = ptr([]string{"org:read", "member:read"})
	app := s.mustApp(s.admin, "acme", in)
	acme, _ := s.Orgs.GetOrganization(s.ctx, s.admin, "acme")

	inst := app.Installation
	if inst == nil || inst.Status != marketplace.InstallInstalled || inst.OrganizationID != acme.Org.ID || inst.VerifiedAt == nil || app.InstallsCount != 1 {
		t.Fatalf("internal installation = %+v (installs %d)", inst, app.InstallsCount)
	}
	if !strings.HasPrefix(app.Token, marketplace.PrefixAccess) {
		t.Fatalf("token = %q", app.Token)
	}
	var tok marketplace.Token
	s.db.Where("installation_id = ?", inst.ID).Take(&tok)
	if tok.ExpiresAt != nil || tok.Kind != "access" {
		t.Errorf("internal token = %+v, want an access token without expiry", tok)
	}
	s.clock.Advance(365 * 24 * time.Hour)
	a := s.mustBearer(app.Token)
	if a.Installation == nil || a.Installation.UUID != inst.UUID {
		t.Fatalf("token actor = %+v", a)
	}
	members, err := s.Orgs.ListMembers(s.ctx, a, "acme", page.Request{})
	wantCode(t, err, "")
	if len(members.Items) != 3 {
		t.Errorf("members seen by the token = %d, want 3", len(members.Items))
	}
	want := []delivery{{EventType: "installation.created", AppID: app.ID, InstallationUUID: inst.UUID, OrganizationID: acme.Org.ID, Status: "pending"}}
	if diff := cmp.Diff(want, s.deliveries("installation.created")); diff != "" {
		t.Errorf("installation.created deliveries (-want +got):\n%s", diff)
	}
	if n := s.count("grants", ""); n != 0 {
		t.Errorf("grants = %d: an internal integration needs no code", n)
	}

	// Never installed again, nor through OAuth.
	_, err = s.Installs.Install(s.ctx, s.admin, "acme", app.Slug, "")
	wantFields(t, err, "app")
	if msg := fieldsOf(err)["app"]; !strings.Contains(msg, "internal") {
		t.Errorf("message = %q", msg)
	}
	_, err = s.OAuth.PrepareAuthorize(s.ctx, s.admin, marketplace.AuthorizeRequest{ResponseType: "code", ClientID: app.ClientID})
	wantCode(t, err, "authorize:unauthorized_client")
}

func TestChangePlan(t *testing.T) {
	w := newWorld(t, appFields("Flow App"))
	e := w.env
	member := e.mustUser("member@customer.example")
	e.mustMember(w.admin, w.customer, member, marketplace.RoleMember)
	ni := e.mustInstall(w.admin, w.customer, w.app.Slug, "free")
	id := ni.Installation.UUID
	self := marketplace.Actor{App: e.mustClient(w.app)}

	for _, tt := range []struct {
		name   string
		actor  marketplace.Actor
		plan   string
		code   string
		fields []string
	}{
		{"member", member, "pro", "insufficient_role", nil},
		{"the app", self, "pro", "admin_only", nil},
		{"stranger", w.dev, "pro", "not_found", nil},
		{"unknown plan", w.admin, "gold", "invalid_input", []string{"plan"}},
		{"the same plan", w.admin, "free", "", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.Installs.UpdateInstallation(e.ctx, tt.actor, id, marketplace.InstallationUpdate{Plan: ptr(tt.plan)})
			wantCode(t, err, tt.code)
			if tt.fields != nil {
				wantFields(t, err, tt.fields...)
			}
		})
	}
	if n := len(e.deliveries("installation.updated")); n != 0 {
		t.Fatalf("installation.updated deliveries before a change = %d", n)
	}

	v, err := e.Installs.UpdateInstallation(e.ctx, w.admin, id, marketplace.InstallationUpdate{Plan: ptr("pro")})
	wantCode(t, err, "")
	if v.Plan == nil || v.Plan.Slug != "pro" {
		t.Fatalf("plan after change = %+v", v.Plan)
	}
	if got := e.installation(id); got.PlanID == nil || *got.PlanID != v.Plan.ID {
		t.Errorf("stored plan = %v, want %d", got.PlanID, v.Plan.ID)
	}
	if n := len(e.deliveries("installation.updated")); n != 1 {
		t.Errorf("installation.updated deliveries = %d, want 1", n)
	}
	data := e.eventData(ni.Installation.OrganizationID, "installation.updated")
	prev, _ := data["previousPlan"].(map[string]any)
	now := data["installation"].(map[string]any)["plan"].(map[string]any)
	if prev["slug"] != "free" || now["slug"] != "pro" || now["price"] != "10.00" {
		t.Errorf("installation.updated data = %v", data)
	}
	if n := e.count("audit_logs", "action = 'installation.change_plan' AND target_id = ?", id); n != 1 {
		t.Errorf("installation.change_plan audit entries = %d, want 1", n)
	}

	// The app records its account at the partner; admins cannot.
	_, err = e.Installs.UpdateInstallation(e.ctx, w.admin, id, marketplace.InstallationUpdate{ExternalID: ptr("acct-9")})
	wantCode(t, err, "app_only")
	_, err = e.Installs.UpdateInstallation(e.ctx, self, id, marketplace.InstallationUpdate{ConfigURL: ptr("not a url")})
	wantFields(t, err, "configUrl")
	v, err = e.Installs.UpdateInstallation(e.ctx, self, id, marketplace.InstallationUpdate{ExternalID: ptr("acct-9"), ConfigURL: ptr("https://partner.example/acct-9")})
	wantCode(t, err, "")
	if v.ExternalID != "acct-9" {
		t.Errorf("the update answers externalId %q", v.ExternalID)
	}
	if got := e.installation(id); got.ExternalID != "acct-9" || got.ConfigURL != "https://partner.example/acct-9" {
		t.Errorf("installation = %+v", got)
	}

	wantCode(t, e.Installs.Uninstall(e.ctx, w.admin, id), "")
	_, err = e.Installs.UpdateInstallation(e.ctx, w.admin, id, marketplace.InstallationUpdate{Plan: ptr("free")})
	wantCode(t, err, "installation_not_live")
}
