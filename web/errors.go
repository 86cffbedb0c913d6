package web

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/labstack/echo/v4"
	"github.com/plugboard/plugboard/app/fault"
	"github.com/plugboard/plugboard/app/page"
	"github.com/plugboard/plugboard/marketplace"
	"github.com/redis/go-redis/v9"
)

// Problem is an RFC 9457 problem document, extended with a stable machine
// code, the request id and per-field messages.
type Problem struct {
	Type      string            `json:"type"`
	Title     string            `json:"title"`
	Status    int               `json:"status"`
	Detail    string            `json:"detail,omitempty"`
	Instance  string            `json:"instance,omitempty"`
	Code      fault.Code        `json:"code"`
	RequestID string            `json:"requestId,omitempty"`
	Fields    map[string]string `json:"fields,omitempty"`
	Extra     map[string]any    `json:"-"`
}

// MarshalJSON adds the extension members in Extra.
func (p Problem) MarshalJSON() ([]byte, error) {
	type plain Problem
	if len(p.Extra) == 0 {
		return marshal(plain(p))
	}
	m := map[string]any{}
	for k, v := range p.Extra {
		m[k] = v
	}
	b, err := marshal(plain(p))
	if err != nil {
		return nil, err
	}
	var base map[string]any
	if err := unmarshal(b, &base); err != nil {
		return nil, err
	}
	for k, v := range base {
		m[k] = v
	}
	return marshal(m)
}

// kindStatus answers each kind; KindOAuth is answered with its code's status.
var kindStatus = map[fault.Kind]int{
	fault.KindInternal:     http.StatusInternalServerError,
	fault.KindInvalid:      http.StatusBadRequest,
	fault.KindUnauthorized: http.StatusUnauthorized,
	fault.KindForbidden:    http.StatusForbidden,
	fault.KindNotFound:     http.StatusNotFound,
	fault.KindConflict:     http.StatusConflict,
	fault.KindUnavailable:  http.StatusServiceUnavailable,
	fault.KindUpstream:     http.StatusBadGateway,
	fault.KindRateLimited:  http.StatusTooManyRequests,
}

// statusCode is the code of an error that has none of its own (echo's).
var statusCode = map[int]fault.Code{
	http.StatusBadRequest:            fault.InvalidInput,
	http.StatusUnauthorized:          fault.CodeUnauthorized,
	http.StatusForbidden:             fault.CodeForbidden,
	http.StatusNotFound:              fault.CodeNotFound,
	http.StatusMethodNotAllowed:      fault.MethodNotAllowed,
	http.StatusConflict:              fault.CodeConflict,
	http.StatusRequestEntityTooLarge: fault.BodyTooLarge,
	http.StatusUnsupportedMediaType:  fault.UnsupportedMediaType,
	http.StatusTooManyRequests:       fault.RateLimited,
	http.StatusInternalServerError:   fault.InternalError,
	http.StatusServiceUnavailable:    fault.Unavailable,
}

// faultStatus is the status fe is answered with.
func faultStatus(fe *fault.Error) int {
	if fe.Kind == fault.KindOAuth {
		if d, ok := fault.Lookup(fe.Code); ok {
			return d.Status
		}
		return http.StatusBadRequest
	}
	return kindStatus[fe.Kind]
}

// problemExtra renders a fault's details as extension members. An OAuth
// error's details (the authorize redirect) are web's own, never shown.
func problemExtra(fe *fault.Error) map[string]any {
	if len(fe.Details) == 0 || fe.Kind == fault.KindOAuth {
		return nil
	}
	out := make(map[string]any, len(fe.Details))
	for k, v := range fe.Details {
		if k == fault.DetailRetryAfter {
			continue // the Retry-After header
		}
		switch v := v.(type) {
		case *marketplace.Installation:
			out[k] = toInstallationJSON(v)
		default:
			out[k] = v
		}
	}
	return out
}

// problemType is the /docs/problems anchor of code.
func problemType(code fault.Code) string { return "/docs/problems#" + string(code) }

// problemFor turns any error into a problem document. Internal errors get a
// generic message; their cause is logged by handleError, never shown.
func problemFor(err error) Problem {
	var (
		fe *fault.Error
		he *echo.HTTPError
	)
	p := Problem{Status: http.StatusInternalServerError, Detail: "Something went wrong on our side; the request id identifies it in our logs."}
	switch {
	case errors.As(err, &fe) && fe.Kind != fault.KindInternal:
		p.Status, p.Code, p.Detail, p.Fields, p.Extra = faultStatus(fe), fe.Code, fe.Message, fe.Fields, problemExtra(fe)
	case errors.Is(err, page.ErrCursorSort):
		p.Status, p.Code, p.Detail = http.StatusBadRequest, fault.InvalidCursor, "The cursor was made for another sort order; start again without it."
		p.Fields = map[string]string{"cursor": "was made for another sortBy"}
	case errors.Is(err, page.ErrBadCursor):
		p.Status, p.Code, p.Detail = http.StatusBadRequest, fault.InvalidCursor, "The cursor is not one this API returned."
		p.Fields = map[string]string{"cursor": "is not a cursor this API returned"}
	case badTextInDB(err):
		// The door refuses such text (refuseBadText, decodeJSON); should
		// some reach the database all the same, it is still the input's
		// fault, not ours.
		p.Status, p.Code, p.Detail = http.StatusBadRequest, fault.InvalidEncoding, "The request holds NUL characters or text that is not UTF-8."
	case errors.As(err, &he):
		p.Status = he.Code
		switch he.Code {
		case http.StatusNotFound:
			p.Detail = "There is nothing at this path."
		case http.StatusMethodNotAllowed:
			p.Detail = "This path does not accept that method."
		default:
			if msg, ok := he.Message.(string); ok && he.Code < 500 {
				p.Detail = msg
			} else if he.Code < 500 {
				p.Detail = http.StatusText(he.Code)
			}
		}
	case dependencyDown(err):
		p.Status, p.Code, p.Detail = http.StatusServiceUnavailable, fault.Unavailable, "A service the platform depends on is unreachable; nothing was changed. Try again shortly."
	case errors.Is(err, context.DeadlineExceeded):
		p.Status, p.Code, p.Detail = http.StatusServiceUnavailable, fault.Timeout, "The request took too long; try again."
	}
	if p.Code == "" {
		p.Code = statusCode[p.Status]
		if p.Code == "" { // a status echo answers that nothing here names
			p.Code = fault.Code(strings.ReplaceAll(strings.ToLower(http.StatusText(p.Status)), " ", "_"))
		}
	}
	p.Title = http.StatusText(p.Status)
	p.Type = problemType(p.Code)
	return p
}

// retryAfter is the Retry-After of every 503, in seconds: long enough for
// a pool to reconnect, short enough that a client does not give up.
const retryAfter = "5"

// badTextInDB is true for PostgreSQL refusing text: a NUL byte or bytes
// that are not UTF-8 (22021 character_not_in_repertoire), or \u0000 in
// jsonb (22P05 untranslatable_character).
func badTextInDB(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && (pg.Code == "22021" || pg.Code == "22P05")
}

// dependencyDown is true for errors that say PostgreSQL or Redis cannot be
// reached (refused, reset or closed connections, connect timeouts, a
// server shutting down or out of connections): they are answered 503
// unavailable, for every route, since nothing is wrong with the request.
func dependencyDown(err error) bool {
	var (
		pg       *pgconn.PgError
		connect  *pgconn.ConnectError
		netErr   net.Error
		outbound *url.Error
	)
	switch {
	case errors.As(err, &pg):
		// Class 08 is connection exceptions; 57P01-03 a server shutting
		// down or starting; 53300 too many connections.
		return strings.HasPrefix(pg.Code, "08") || pg.Code == "57P01" || pg.Code == "57P02" || pg.Code == "57P03" || pg.Code == "53300"
	case errors.As(err, &outbound):
		// A call to a partner's URL failed: the domain says what that
		// means; it is not the platform's dependency that is down.
		return false
	case errors.As(err, &connect), errors.As(err, &netErr):
		return true
	case errors.Is(err, driver.ErrBadConn), errors.Is(err, sql.ErrConnDone),
		// what pgx answers when the server closed a pooled connection
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, redis.ErrClosed), errors.Is(err, redis.ErrPoolTimeout), errors.Is(err, redis.ErrPoolExhausted),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return true
	}
	// pgx marks the errors of a connection lost before a query was sent
	// (conn closed, a failed write) as safe to retry.
	return pgconn.SafeToRetry(err)
}

// handleError is echo's HTTPErrorHandler: the one place errors are rendered.
// OAuth errors on the OAuth endpoints answer RFC 6749 JSON; everything else
// is a problem document (or, for browsers, an error page).
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	setRetryAfter(c, err)
	if fe, ok := fault.As(err); ok && fe.Kind == fault.KindOAuth && oauthEndpoint(c.Request().URL.Path) {
		s.oauthError(c, fe)
		return
	}
	p := problemFor(err)
	p.RequestID = requestID(c)
	p.Instance = c.Request().URL.Path
	switch {
	case p.Code == fault.NotReady, busy(err): // readiness logs its own changes; shedding load is no failure
	case p.Code == fault.Unavailable: // an outage, not a bug of ours: a warning
		s.log.Warn("dependency down", "requestId", p.RequestID, "method", c.Request().Method,
			"path", c.Request().URL.Path, "err", err)
	case p.Status >= 500:
		s.log.Error("request failed", "requestId", p.RequestID, "method", c.Request().Method,
			"path", c.Request().URL.Path, "err", err)
	}
	if p.Status == http.StatusServiceUnavailable && c.Response().Header().Get("Retry-After") == "" {
		c.Response().Header().Set("Retry-After", retryAfter)
	}
	if p.Status == http.StatusUnauthorized {
		c.Response().Header().Set("WWW-Authenticate", `Bearer realm="plugboard"`)
	}
	bearerChallenge(c, p)
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(p.Status)
		return
	}
	if wantsHTML(c) {
		_ = s.renderErrorPage(c, p)
		return
	}
	c.Response().Header().Set(echo.HeaderContentType, "application/problem+json")
	c.Response().WriteHeader(p.Status)
	b, _ := marshal(p)
	_, _ = c.Response().Write(append(b, '\n'))
}

// setRetryAfter sends an error's fault.DetailRetryAfter as Retry-After, in
// whole seconds rounded up (at least 1).
func setRetryAfter(c echo.Context, err error) {
	if d, ok := fault.Detail[time.Duration](err, fault.DetailRetryAfter); ok {
		c.Response().Header().Set("Retry-After", strconv.Itoa(retrySeconds(d)))
	}
}

func retrySeconds(d time.Duration) int { return max(1, int(math.Ceil(d.Seconds()))) }

// oauthError writes an RFC 6749 error response (§5.2): invalid_client is
// 401 with a Basic challenge, the others 400.
func (s *Server) oauthError(c echo.Context, fe *fault.Error) {
	status := faultStatus(fe)
	if status == http.StatusUnauthorized {
		c.Response().Header().Set("WWW-Authenticate", `Basic realm="plugboard"`)
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	_ = c.JSON(status, map[string]string{"error": string(fe.Code), "error_description": fe.Message})
}

// oauthEndpoint is true for the RFC 6749 endpoints, which answer OAuth
// errors as {error, error_description} and never with HTML.
func oauthEndpoint(path string) bool {
	return strings.HasPrefix(path, "/oauth/token") || strings.HasPrefix(path, "/oauth/revoke") || strings.HasPrefix(path, introspectPath)
}

// wantsHTML is true for browser navigations outside the API.
func wantsHTML(c echo.Context) bool {
	path := c.Request().URL.Path
	if strings.HasPrefix(path, "/api/") || oauthEndpoint(path) {
		return false
	}
	return strings.Contains(c.Request().Header.Get("Accept"), "text/html")
}
