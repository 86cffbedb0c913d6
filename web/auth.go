package web

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/plugboard/plugboard/app/fault"
	"github.com/plugboard/plugboard/marketplace"
)

// SessionCookie is the name of the UI's session cookie.
const SessionCookie = "plugboard_session"

const ctxActor = "actor"

// authenticate resolves who makes the request: a Bearer token (API token or
// sign-in JWT) or the session cookie. A bad Bearer token is a 401; a stale
// cookie is ignored. Cookie-authenticated writes must come from our origin.
func (s *Server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		ctx := r.Context()
		actor := marketplace.Anonymous
		if id, secret, ok := r.BasicAuth(); ok {
			// An app authenticating as itself with its client credentials.
			a, err := s.opts.OAuth.AuthenticateApp(ctx, id, secret)
			if err != nil {
				return err
			}
			actor = a
		} else if h := r.Header.Get("Authorization"); h != "" {
			token, ok := strings.CutPrefix(h, "Bearer ")
			if !ok {
				return fault.Unauthorized(fault.InvalidAuthorization, "Send credentials as Authorization: Bearer <token>, or Basic with an app's client id and secret.")
			}
			a, err := s.opts.Accounts.AuthenticateBearer(ctx, strings.TrimSpace(token))
			if err != nil {
				return err
			}
			actor = a
		} else if ck, err := r.Cookie(SessionCookie); err == nil && ck.Value != "" {
			if a, err := s.opts.Accounts.AuthenticateSession(ctx, ck.Value); err == nil {
				if unsafeMethod(r.Method) && !s.sameOrigin(r) {
					return fault.Forbidden(fault.CrossOrigin, "Cookie-authenticated changes must come from Plugboard's own pages.")
				}
				actor = a
			} else if _, ok := fault.As(err); !ok {
				return err
			}
		}
		actor.IP = c.RealIP()
		c.Set(ctxActor, actor)
		return next(c)
	}
}

func unsafeMethod(m string) bool {
	return m != http.MethodGet && m != http.MethodHead && m != http.MethodOptions
}

// sameOrigin accepts requests whose Origin (or, lacking it, Sec-Fetch-Site)
// says they come from this server's pages.
func (s *Server) sameOrigin(r *http.Request) bool {
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		base, _ := url.Parse(s.opts.BaseURL)
		return err == nil && base != nil && u.Scheme == base.Scheme && u.Host == base.Host
	}
	site := r.Header.Get("Sec-Fetch-Site")
	return site == "" || site == "same-origin" || site == "none"
}

// actor returns the request's actor (Anonymous when nobody signed in).
func actor(c echo.Context) marketplace.Actor {
	if a, ok := c.Get(ctxActor).(marketplace.Actor); ok {
		return a
	}
	return marketplace.Anonymous
}

func (s *Server) setSessionCookie(c echo.Context, token string, expires time.Time) {
	c.SetCookie(&http.Cookie{
		Name: SessionCookie, Value: token, Path: "/", Expires: expires, HttpOnly: true,
		SameSite: http.SameSiteLaxMode, Secure: s.secureCookies(),
	})
}

func (s *Server) clearSessionCookie(c echo.Context) {
	c.SetCookie(&http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode})
}
