package web

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/plugboard/plugboard/app/fault"
	"github.com/plugboard/plugboard/app/page"
)

// pageRequest reads `cursor` and `limit` from the query string. Every
// cursor a list takes is decoded here, and checked against its signature:
// one the server did not make is page.ErrBadCursor (400 invalid_cursor).
func (s *Server) pageRequest(c echo.Context) (page.Request, error) {
	var r page.Request
	cur, err := s.cursors.Decode(c.QueryParam("cursor"))
	if err != nil {
		return r, err
	}
	r.Cursor = cur
	if s := c.QueryParam("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > page.MaxLimit {
			return r, fault.Field("limit", fmt.Sprintf("must be a whole number from 1 to %d", page.MaxLimit))
		}
		r.Limit = n
	}
	return r, nil
}

// sortParam reads `sortBy`, which must be one of allowed; def when absent.
func sortParam(c echo.Context, def string, allowed ...string) (string, error) {
	s := c.QueryParam("sortBy")
	if s == "" {
		return def, nil
	}
	if !slices.Contains(allowed, s) {
		return "", fault.Field("sortBy", "must be one of "+strings.Join(allowed, ", "))
	}
	return s, nil
}

// expandParam reads `expand` (repeated or comma-separated); each value must
// be one of allowed.
func expandParam(c echo.Context, allowed ...string) (map[string]bool, error) {
	out := map[string]bool{}
	for _, v := range c.QueryParams()["expand"] {
		for _, e := range strings.Split(v, ",") {
			e = strings.TrimSpace(e)
			if e == "" {
				continue
			}
			if !slices.Contains(allowed, e) {
				return nil, fault.Field("expand", fmt.Sprintf("%q cannot be expanded here; expandable: %s", e, strings.Join(allowed, ", ")))
			}
			out[e] = true
		}
	}
	return out, nil
}

// linkHeader builds the Link header for a page, Sentry style: both relations
// always present, results="true|false" saying whether following finds rows.
func linkHeader(base *url.URL, codec page.Codec, prev, next *page.Cursor, hasPrev, hasNext bool) string {
	link := func(rel string, c *page.Cursor, results bool) string {
		u := *base
		q := u.Query()
		q.Del("cursor")
		enc := codec.Encode(c)
		if enc != "" {
			q.Set("cursor", enc)
		}
		u.RawQuery = q.Encode()
		return fmt.Sprintf(`<%s>; rel="%s"; results="%t"; cursor="%s"`, u.String(), rel, results && c != nil, enc)
	}
	return link("previous", prev, hasPrev) + ", " + link("next", next, hasNext)
}

// writePage sends a page as a JSON array with its Link header.
func writePage[T, U any](s *Server, c echo.Context, p page.Page[T], conv func(T) U) error {
	base, _ := url.Parse(s.opts.BaseURL + c.Request().URL.RequestURI())
	c.Response().Header().Set("Link", linkHeader(base, s.cursors, p.Prev, p.Next, p.HasPrev, p.HasNext))
	out := make([]U, len(p.Items))
	for i, it := range p.Items {
		out[i] = conv(it)
	}
	return c.JSON(http.StatusOK, out)
}

// renderErrorPage shows a problem to a browser, inside the layout.
func (s *Server) renderErrorPage(c echo.Context, p Problem) error {
	v := s.newView(c, p.Title)
	v.Data = p
	return s.render(c, p.Status, "error", v)
}
