package web

// OpenID Connect: discovery (OpenID Connect Discovery 1.0) and UserInfo
// (OpenID Connect Core §5.3). The id_token itself comes from the token
// endpoint (oauth.go); what the identity scopes mean is marketplace's
// (marketplace/oidc.go).

import (
	"net/http"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/plugboard/plugboard/app/fault"
	"github.com/plugboard/plugboard/marketplace"
)

const userinfoPath = "/oauth/userinfo"

// openIDConfiguration is GET /.well-known/openid-configuration. The issuer
// is the base URL exactly, as OpenID clients compare it byte for byte.
func (s *Server) openIDConfiguration(c echo.Context) error {
	scopes, err := s.opts.Events.Scopes(c.Request().Context())
	if err != nil {
		return err
	}
	names := slices.Clone(marketplace.IdentityScopes)
	for _, sc := range scopes {
		names = append(names, sc.Name)
	}
	b := s.opts.BaseURL
	c.Response().Header().Set("Cache-Control", "public, max-age=3600")
	return c.JSON(http.StatusOK, map[string]any{
		"issuer": b, "authorization_endpoint": b + "/oauth/authorize", "token_endpoint": b + "/oauth/token",
		"userinfo_endpoint": b + userinfoPath, "jwks_uri": b + "/.well-known/jwks.json", "revocation_endpoint": b + "/oauth/revoke",
		"response_types_supported": []string{"code"}, "response_modes_supported": []string{"query"},
		"grant_types_supported":   []string{"authorization_code", "refresh_token"},
		"subject_types_supported": []string{"public"}, "id_token_signing_alg_values_supported": []string{"EdDSA"},
		"scopes_supported": names, "claims_supported": marketplace.IDTokenClaims, "claim_types_supported": []string{"normal"},
		"code_challenge_methods_supported":      []string{"S256"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
		// Unsupported, said so: request_uri_parameter_supported defaults to true.
		"claims_parameter_supported": false, "request_parameter_supported": false, "request_uri_parameter_supported": false,
	})
}

// userinfo is GET and POST /oauth/userinfo: the signed-in user's claims
// for an access token granted openid, sent as Authorization: Bearer or,
// on a POST, as the form field access_token (RFC 6750 §2.1, §2.2).
func (s *Server) userinfo(c echo.Context) error {
	token := ""
	if h := c.Request().Header.Get("Authorization"); h != "" {
		t, ok := strings.CutPrefix(h, "Bearer ")
		if !ok {
			return fault.Unauthorized(fault.InvalidAuthorization, "Send the access token as Authorization: Bearer <token>.")
		}
		token = strings.TrimSpace(t)
	} else if c.Request().Method == http.MethodPost {
		token = c.Request().PostFormValue("access_token")
	}
	if token == "" {
		return fault.Unauthorized(fault.NotAuthenticated, "Send an access token granted the openid scope as Authorization: Bearer <token>.")
	}
	claims, err := s.opts.OAuth.UserInfo(c.Request().Context(), token)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, claims)
}

// bearerChallenge sets /oauth/userinfo's and /oauth/introspect's
// WWW-Authenticate per RFC 6750 §3: no error for a request without a
// token, invalid_token for a bad one (for introspection, any credential
// but a host service token: RFC 7662 §2.3), insufficient_scope (403) for
// a token not granted openid; and, on every route, insufficient_scope for
// a missing_scope refusal. handleError calls it for every error.
func bearerChallenge(c echo.Context, p Problem) {
	if p.Code == fault.MissingScope {
		// An installation token lacking a Platform API route's scope: the
		// problem's code is missing_scope, the challenge RFC 6750's.
		c.Response().Header().Set("WWW-Authenticate", `Bearer realm="plugboard", error="insufficient_scope"`)
		return
	}
	if path := c.Request().URL.Path; path != userinfoPath && path != introspectPath {
		return
	}
	v := `Bearer realm="plugboard"`
	switch {
	case p.Code == fault.InsufficientScope:
		v += `, error="insufficient_scope", scope="openid"`
	case p.Status == http.StatusUnauthorized && p.Code != fault.NotAuthenticated:
		v += `, error="invalid_token"`
	case p.Status != http.StatusUnauthorized:
		return
	}
	c.Response().Header().Set("WWW-Authenticate", v)
}

// signInClaims says in plain words what an authorize request that signs
// the user in shares with the app, for the consent page; nil when it does
// not ask for openid.
func signInClaims(r marketplace.AuthorizeRequest) []string {
	if !r.SignsIn() {
		return nil
	}
	_, scopes := marketplace.SplitScope(r.Scope)
	out := []string{"Your Plugboard user id"}
	if slices.Contains(scopes, marketplace.ScopeProfile) {
		out = append(out, "Your name")
	}
	if slices.Contains(scopes, marketplace.ScopeEmail) {
		out = append(out, "Your email address")
	}
	return out
}
