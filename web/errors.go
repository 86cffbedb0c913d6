package web

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/plugboard/plugboard/app/fault"
	"github.com/plugboard/plugboard/app/page"
	"github.com/plugboard/plugboard/marketplace"
)

// Problem is an RFC 9457 problem document, extended with a stable machine
// code, the request id and per-field messages.
type Problem struct {
	Type      string            `json:"type"`
	Title     string            `json:"title"`
	Status    int               `json:"status"`
	Detail    string            `json:"detail,omitempty"`
	Instance  string            `json:"instance,omitempty"`
	Code      string            `json:"code"`
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

// problemError is an error web itself raises with a chosen status.
type problemError struct {
	status int
	code   string
	detail string
	extra  map[string]any
}

func (e *problemError) Error() string { return e.detail }

var kindStatus = map[fault.Kind]int{
	fault.KindInternal:     http.StatusInternalServerError,
	fault.KindInvalid:      http.StatusBadRequest,
	fault.KindUnauthorized: http.StatusUnauthorized,
	fault.KindForbidden:    http.StatusForbidden,
	fault.KindNotFound:     http.StatusNotFound,
	fault.KindConflict:     http.StatusConflict,
	fault.KindGone:         http.StatusGone,
	fault.KindRateLimited:  http.StatusTooManyRequests,
	fault.KindUnavailable:  http.StatusServiceUnavailable,
}

var statusCode = map[int]string{
	http.StatusBadRequest:            "invalid_input",
	http.StatusUnauthorized:          "unauthorized",
	http.StatusForbidden:             "forbidden",
	http.StatusNotFound:              "not_found",
	http.StatusMethodNotAllowed:      "method_not_allowed",
	http.StatusConflict:              "conflict",
	http.StatusRequestEntityTooLarge: "body_too_large",
	http.StatusUnsupportedMediaType:  "unsupported_media_type",
	http.StatusTooManyRequests:       "rate_limited",
	http.StatusInternalServerError:   "internal_error",
	http.StatusServiceUnavailable:    "unavailable",
}

// problemFor turns any error into a problem document. Internal errors get a
// generic message; their cause is logged by handleError, never shown.
func problemFor(err error) Problem {
	var (
		fe  *fault.Error
		he  *echo.HTTPError
		pe  *problemError
		oe  *marketplace.OAuthError
		dup *marketplace.AlreadyInstalledError
	)
	p := Problem{Status: http.StatusInternalServerError, Detail: "Something went wrong on our side; the request id identifies it in our logs."}
	switch {
	case errors.As(err, &pe):
		p.Status, p.Code, p.Detail, p.Extra = pe.status, pe.code, pe.detail, pe.extra
	case errors.As(err, &oe): // OAuth errors on the JSON API (the /oauth/ endpoints answer RFC 6749 JSON)
		p.Status, p.Code, p.Detail = oe.Status, oe.Code, oe.Description
	case errors.As(err, &dup): // installing twice: the live installation comes with the conflict
		p.Status, p.Code, p.Detail = http.StatusConflict, "already_installed", dup.Err.Message
		p.Extra = map[string]any{"installation": toInstallationJSON(dup.Installation)}
	case errors.As(err, &fe) && fe.Kind != fault.KindInternal:
		p.Status, p.Code, p.Detail, p.Fields = kindStatus[fe.Kind], fe.Code, fe.Message, fe.Fields
	case errors.Is(err, page.ErrBadCursor):
		p.Status, p.Code, p.Detail = http.StatusBadRequest, "invalid_input", "The cursor is not one this API returned."
		p.Fields = map[string]string{"cursor": "is not a cursor this API returned"}
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
	case errors.Is(err, context.DeadlineExceeded):
		p.Status, p.Code, p.Detail = http.StatusServiceUnavailable, "timeout", "The request took too long; try again."
	}
	if p.Code == "" {
		p.Code = statusCode[p.Status]
		if p.Code == "" {
			p.Code = strings.ReplaceAll(strings.ToLower(http.StatusText(p.Status)), " ", "_")
		}
	}
	p.Title = http.StatusText(p.Status)
	p.Type = "/docs/problems#" + p.Code
	return p
}

// handleError is echo's HTTPErrorHandler: the one place errors are rendered.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	p := problemFor(err)
	p.RequestID = requestID(c)
	p.Instance = c.Request().URL.Path
	if p.Status >= 500 {
		s.log.Error("request failed", "requestId", p.RequestID, "method", c.Request().Method,
			"path", c.Request().URL.Path, "err", err)
	}
	if p.Status == http.StatusUnauthorized {
		c.Response().Header().Set("WWW-Authenticate", `Bearer realm="plugboard"`)
	}
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

// wantsHTML is true for browser navigations outside the API.
func wantsHTML(c echo.Context) bool {
	path := c.Request().URL.Path
	if strings.HasPrefix(path, "/api/") || strings.HasPrefix(path, "/oauth/token") || strings.HasPrefix(path, "/oauth/revoke") {
		return false
	}
	return strings.Contains(c.Request().Header.Get("Accept"), "text/html")
}
