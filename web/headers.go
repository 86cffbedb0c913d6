package web

import (
	"crypto/rand"
	"encoding/base64"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
)

// Security headers. Every response says nosniff (a JSON body or an
// attachment is never taken for HTML) and may not be framed; production
// asks browsers to come back over HTTPS only. What an authenticated
// caller is answered on the API, and every OAuth token response, is
// no-store: tokens, secrets and private data stay out of caches. Pages
// set their own Content-Security-Policy (render, the docs pages).

// hstsValue is sent in production: two years, subdomains included.
const hstsValue = "max-age=63072000; includeSubDomains"

// securityHeaders is the server-wide middleware that sets them.
func (s *Server) securityHeaders() echo.MiddlewareFunc {
	secure := middleware.SecureWithConfig(middleware.SecureConfig{
		ContentTypeNosniff: "nosniff",
		XFrameOptions:      "DENY",
		// HSTS is set below: echo's sends it only to requests it sees
		// arrive over TLS, which a TLS-terminating proxy hides.
	})
	production := s.opts.Env == "production"
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		h := secure(next)
		return func(c echo.Context) error {
			if production {
				c.Response().Header().Set("Strict-Transport-Security", hstsValue)
			}
			path := c.Request().URL.Path
			api := strings.HasPrefix(path, "/api/0/")
			if api || oauthEndpoint(path) {
				// Decided when the answer is written: authentication runs
				// after this middleware.
				c.Response().Before(func() {
					hd := c.Response().Header()
					if hd.Get("Cache-Control") != "" {
						return
					}
					if !api || authenticated(c) {
						hd.Set("Cache-Control", "no-store")
						hd.Set("Pragma", "no-cache")
					}
				})
			}
			return h(c)
		}
	}
}

// authenticated reports whether the request came with credentials or a
// session: its answer is that caller's.
func authenticated(c echo.Context) bool {
	a := actor(c)
	if a.User != nil || a.App != nil || a.Installation != nil || a.Service != nil {
		return true
	}
	r := c.Request()
	if r.Header.Get("Authorization") != "" {
		return true
	}
	_, err := r.Cookie(SessionCookie)
	return err == nil
}

// docsCSP is the policy of the API reference (/docs/api): Redoc, served
// from here, renders it. The styles it injects carry the page's nonce,
// except perfect-scrollbar's stylesheet, inserted as the bundle loads
// (before Redoc knows the nonce), admitted by its hash; its search index
// runs in a worker made from a blob: URL; it fetches the OpenAPI document
// from here. Nothing from elsewhere (the "API docs by Redocly" logo it
// links from its CDN is refused, and hidden when it fails to load), no
// inline script, no eval. TestAPIDocsRenderUnderTheirPolicy renders the
// page in Chromium and fails on any violation: a new Redoc with another
// stylesheet says so there.
func docsCSP(nonce string) string {
	return "default-src 'self'; script-src 'self'; style-src 'self' 'nonce-" + nonce + "' '" + redocScrollbarCSS + "' '" + emptyCSS + "'; " +
		"worker-src 'self' blob:; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; object-src 'none'; " +
		"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}

// redocScrollbarCSS is the hash of the perfect-scrollbar stylesheet the
// vendored Redoc (2.5.4) inserts.
const redocScrollbarCSS = "sha256-QMIg+bpjm3JdElJ388KYke01izlUW0UoNOeKjpMxdgc="

// emptyCSS is the hash of nothing: Redoc inserts that stylesheet's element
// empty, then fills it.
const emptyCSS = "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="

// problemsCSP is the policy of /docs/problems: no script, its one
// inline stylesheet by nonce.
func problemsCSP(nonce string) string {
	return "default-src 'none'; style-src 'nonce-" + nonce + "'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}

// docsHeaders sets a docs page's policy and its other page headers.
func docsHeaders(c echo.Context, csp string) {
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, echo.MIMETextHTMLCharsetUTF8)
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
}

// newNonce is a fresh CSP nonce: 128 random bits.
func newNonce() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawStdEncoding.EncodeToString(b)
}
