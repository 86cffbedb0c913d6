package web

import (
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/plugboard/plugboard/app/fault"
	"github.com/plugboard/plugboard/marketplace"
)

// clientCredentials reads HTTP Basic or form client authentication; never
// the URL (refuseURLParams).
func clientCredentials(c echo.Context) (string, string) {
	if id, secret, ok := c.Request().BasicAuth(); ok {
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
		return id, secret
	}
	return c.Request().PostFormValue("client_id"), c.Request().PostFormValue("client_secret")
}

// tokenParams are the parameters of the token and revocation endpoints.
var tokenParams = []string{"client_id", "client_secret", "grant_type", "code", "code_verifier", "redirect_uri", "refresh_token", "scope", "token", "token_type_hint"}

// refuseURLParams refuses token and revocation requests that carry their
// parameters in the URL, where logs, proxies and browser history keep them:
// RFC 6749 §2.3.1 (client credentials "MUST NOT be included in the request
// URI") and §3.2 (the token endpoint's parameters are the form body's).
func refuseURLParams(c echo.Context) error {
	q := c.Request().URL.Query()
	for _, p := range tokenParams {
		if q.Has(p) {
			return fault.OAuth(fault.InvalidRequest, p+" was sent in the URL; send the client's credentials with HTTP Basic "+
				"(or as client_id and client_secret form fields) and every parameter in the application/x-www-form-urlencoded body.")
		}
	}
	return nil
}

// token is POST /oauth/token (RFC 6749 §4.1.3, §6; RFC 7636). Failed
// requests are counted per client IP and, once the client authenticated,
// per client; past either budget the endpoint answers 429.
func (s *Server) token(c echo.Context) error {
	if err := refuseURLParams(c); err != nil {
		return err
	}
	ctx := c.Request().Context()
	id, secret := clientCredentials(c)
	if err := s.exhausted(c, s.tokenBudgets(c, id)...); err != nil {
		return err
	}
	app, err := s.opts.OAuth.AuthenticateClient(ctx, id, secret)
	if err != nil {
		if _, ok := fault.As(err); ok {
			s.failed(c, s.tokenBudgets(c, "")...)
		}
		return err
	}
	form := c.Request().PostFormValue
	set, err := s.opts.OAuth.Token(ctx, app, marketplace.TokenRequest{
		GrantType: form("grant_type"), Code: form("code"), RedirectURI: form("redirect_uri"),
		CodeVerifier: form("code_verifier"), RefreshToken: form("refresh_token"), Scope: form("scope")})
	if err != nil {
		if _, ok := fault.As(err); ok {
			s.failed(c, s.tokenBudgets(c, id)...)
		}
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	body := map[string]any{
		"access_token": set.AccessToken, "token_type": "bearer", "expires_in": int64(set.ExpiresAt.Sub(timeNow()).Seconds()),
		"refresh_token": set.RefreshToken, "scope": marketplace.ScopeString(set.Scopes), "installation_id": set.Installation.UUID,
	}
	if set.IDToken != "" { // OpenID Connect (oidc.go): the identity scopes are granted beside the installation's
		body["id_token"], body["scope"] = set.IDToken, marketplace.ScopeString(slices.Concat(set.IdentityScopes, set.Scopes))
	}
	return c.JSON(http.StatusOK, body)
}

// revoke is POST /oauth/revoke (RFC 7009): 200 whether or not the token was known.
func (s *Server) revoke(c echo.Context) error {
	if err := refuseURLParams(c); err != nil {
		return err
	}
	ctx := c.Request().Context()
	id, secret := clientCredentials(c)
	if err := s.exhausted(c, s.tokenBudgets(c, "")...); err != nil {
		return err
	}
	app, err := s.opts.OAuth.AuthenticateClient(ctx, id, secret)
	if err != nil {
		if _, ok := fault.As(err); ok {
			s.failed(c, s.tokenBudgets(c, "")...)
		}
		return err
	}
	tok := c.Request().PostFormValue("token")
	if tok == "" {
		return fault.OAuth(fault.InvalidRequest, "token is required.")
	}
	if err := s.opts.OAuth.Revoke(ctx, app, tok); err != nil {
		return err
	}
	return c.NoContent(http.StatusOK)
}

// metadata is GET /.well-known/oauth-authorization-server (RFC 8414).
func (s *Server) metadata(c echo.Context) error {
	scopes, err := s.opts.Events.Scopes(c.Request().Context())
	if err != nil {
		return err
	}
	// The identity scopes (OpenID Connect) beside the installation scopes.
	names := append([]string(nil), marketplace.IdentityScopes...)
	for _, sc := range scopes {
		names = append(names, sc.Name)
	}
	b := s.opts.BaseURL
	return c.JSON(http.StatusOK, map[string]any{
		"issuer": b, "authorization_endpoint": b + "/oauth/authorize", "token_endpoint": b + "/oauth/token",
		"userinfo_endpoint":   b + "/oauth/userinfo",
		"revocation_endpoint": b + "/oauth/revoke", "jwks_uri": b + "/.well-known/jwks.json",
		"introspection_endpoint":   b + introspectPath, // RFC 7662: the host asks, with its service token as Bearer
		"response_types_supported": []string{"code"}, "grant_types_supported": []string{"authorization_code", "refresh_token"},
		"code_challenge_methods_supported":           []string{"S256"},
		"token_endpoint_auth_methods_supported":      []string{"client_secret_basic", "client_secret_post"},
		"revocation_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
		"scopes_supported":                           names,
	})
}

func (s *Server) jwks(c echo.Context) error {
	return c.JSON(http.StatusOK, s.opts.OAuth.JWKS())
}

func authorizeRequest(c echo.Context) marketplace.AuthorizeRequest {
	return marketplace.AuthorizeRequest{ResponseType: c.FormValue("response_type"), ClientID: c.FormValue("client_id"),
		RedirectURI: c.FormValue("redirect_uri"), Scope: c.FormValue("scope"), State: c.FormValue("state"),
		CodeChallenge: c.FormValue("code_challenge"), CodeChallengeMethod: c.FormValue("code_challenge_method"),
		Nonce: c.FormValue("nonce")}
}

// authorizeFailure shows an untrusted failure, or redirects a trusted one
// (an OAuth error carrying the app's redirect URI).
func (s *Server) authorizeFailure(c echo.Context, r marketplace.AuthorizeRequest, err error) error {
	fe, ok := fault.As(err)
	if !ok || fe.Kind != fault.KindOAuth {
		return err
	}
	to, redirect := fe.Details[marketplace.DetailRedirectURI].(string)
	if !redirect {
		return s.renderErrorPage(c, Problem{Type: problemType(fe.Code), Status: http.StatusBadRequest, Title: "This link cannot be used",
			Code: fe.Code, Detail: fe.Message, RequestID: requestID(c)})
	}
	return c.Redirect(http.StatusFound, marketplace.AuthorizeRedirect(to, map[string]string{
		"error": string(fe.Code), "error_description": fe.Message, "state": r.State}))
}

// authorize is GET /oauth/authorize: the consent page.
func (s *Server) authorize(c echo.Context) error {
	a := actor(c)
	r := authorizeRequest(c)
	if !a.SignedIn() {
		// Validate the client first so a bad link never reaches sign-in.
		if _, err := s.opts.OAuth.PrepareAuthorize(c.Request().Context(), a, r); err != nil {
			if fe, ok := fault.As(err); !ok || fe.Kind == fault.KindOAuth {
				return s.authorizeFailure(c, r, err)
			}
		}
		return c.Redirect(http.StatusFound, "/login?next="+url.QueryEscape(c.Request().URL.RequestURI()))
	}
	consent, err := s.opts.OAuth.PrepareAuthorize(c.Request().Context(), a, r)
	if err != nil {
		return s.authorizeFailure(c, r, err)
	}
	return s.renderConsent(c, consent, r, nil)
}

// decide is POST /oauth/authorize: the consent form's answer.
func (s *Server) decide(c echo.Context) error {
	a := actor(c)
	r := authorizeRequest(c)
	if !a.SignedIn() {
		return c.Redirect(http.StatusFound, "/login")
	}
	if !s.opts.Accounts.CheckCSRF(a, c.FormValue("csrf")) {
		return fault.Forbidden(fault.CSRF, "The form expired; go back and try again.")
	}
	ctx := c.Request().Context()
	if c.FormValue("decision") != "approve" {
		to, err := s.opts.OAuth.Deny(ctx, a, r)
		if err != nil {
			return s.authorizeFailure(c, r, err)
		}
		return c.Redirect(http.StatusFound, to)
	}
	to, err := s.opts.OAuth.Approve(ctx, a, marketplace.Approval{AuthorizeRequest: r, Org: c.FormValue("org"), Plan: c.FormValue("plan")})
	if fe, ok := fault.As(err); ok && (fe.Kind == fault.KindInvalid || fe.Kind == fault.KindUpstream) {
		consent, cerr := s.opts.OAuth.PrepareAuthorize(ctx, a, r)
		if cerr != nil {
			return s.authorizeFailure(c, r, cerr)
		}
		return s.renderConsent(c, consent, r, err)
	}
	if err != nil {
		return s.authorizeFailure(c, r, err)
	}
	return c.Redirect(http.StatusFound, to)
}

func (s *Server) renderConsent(c echo.Context, consent *marketplace.Consent, r marketplace.AuthorizeRequest, failed error) error {
	cp := &consentPage{App: consent.App, Scopes: consent.Scopes, Orgs: consent.Orgs, Plans: consent.Plans,
		Action: "/oauth/authorize", OAuth: true, Org: c.FormValue("org"), Plan: c.FormValue("plan"), RedirectHost: consent.RedirectURI,
		Hidden: map[string]string{"response_type": r.ResponseType, "client_id": r.ClientID, "redirect_uri": r.RedirectURI,
			"scope": r.Scope, "state": r.State, "code_challenge": r.CodeChallenge, "code_challenge_method": r.CodeChallengeMethod,
			"nonce": r.Nonce}, SignIn: signInClaims(r)}
	if u, err := url.Parse(consent.RedirectURI); err == nil {
		cp.RedirectHost = u.Host
	}
	if cp.Plan == "" && len(cp.Plans) > 0 {
		cp.Plan = cp.Plans[0].Slug
	}
	v := s.newView(c, "Install "+consent.App.Name)
	if cp.Org == "" && v.Org != nil {
		cp.Org = v.Org.Org.Slug
	}
	v.Data = cp
	status := http.StatusOK
	if failed != nil {
		failConsent(v, failed, c, consent.App.Name)
		status = uiStatus(failed)
	}
	return s.render(c, status, "install", v)
}

// safeNext keeps post-sign-in redirects on this site.
func safeNext(next string) string {
	// Browsers drop tabs and newlines and read "\" as "/": "/\t/evil" would
	// become "//evil". Only a plain local path passes.
	if !strings.HasPrefix(next, "/") || strings.ContainsAny(next, "\\\t\r\n") {
		return "/"
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || strings.HasPrefix(u.Path, "//") {
		return "/"
	}
	return next
}
