package web

// Text at the door: every path parameter, query parameter, form field and
// JSON string a request carries must be UTF-8 without NUL characters.
// PostgreSQL stores neither NUL in text nor \u0000 in jsonb, and a value
// that is not UTF-8 would be altered (encoding/json turns it into U+FFFD)
// or refused by the database deep inside a service, so such input is
// refused here, once, with a 400 invalid_encoding naming each field.

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/labstack/echo/v4"

	"github.com/plugboard/plugboard/app/fault"
	"github.com/plugboard/plugboard/app/page"
)

// badTextMsg is the field message of text refused at the door.
const badTextMsg = "must not contain NUL bytes or invalid UTF-8"

// goodText reports whether s is UTF-8 without NUL characters.
func goodText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

// badTextError is the error for the fields given; on the OAuth endpoints it
// is an RFC 6749 invalid_request naming the parameters.
func badTextError(path string, f fault.Fields) error {
	if oauthEndpoint(path) {
		names := make([]string, 0, len(f))
		for k := range f {
			names = append(names, k)
		}
		sort.Strings(names)
		return fault.OAuth(fault.InvalidRequest, "The parameter "+strings.Join(names, ", ")+" holds a NUL byte or invalid UTF-8.")
	}
	return fault.Invalid(fault.InvalidEncoding, "The request holds NUL bytes or invalid UTF-8.", f)
}

// refuseBadText checks the path parameters, the query and a form body. It
// runs after routing (echo's Use middleware does), so it names path
// parameters as the route does; JSON bodies are checked by decodeJSON.
func (s *Server) refuseBadText(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		f, err := badText(c)
		if err != nil {
			return err
		}
		if len(f) > 0 {
			return badTextError(c.Request().URL.Path, f)
		}
		return next(c)
	}
}

// badText returns a message for each bad field of c's path, query and form.
func badText(c echo.Context) (fault.Fields, error) {
	r := c.Request()
	f := fault.Fields{}
	// Echo matches the raw path when the client escaped it unusually
	// ("%ff"), and then hands over parameters still escaped.
	escaped := r.URL.RawPath != ""
	values := c.ParamValues()
	for i, name := range c.ParamNames() {
		if i >= len(values) {
			break
		}
		v := values[i]
		if escaped {
			if u, err := url.PathUnescape(v); err == nil {
				v = u
			}
		}
		if !goodText(v) {
			if name == "*" {
				name = "path"
			}
			f.Add(name, badTextMsg)
		}
	}
	if len(f) == 0 && !goodText(r.URL.Path) {
		f.Add("path", badTextMsg)
	}
	checkValues(f, r.URL.Query())
	if hasFormBody(r) {
		if _, err := c.FormParams(); err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				return nil, errTooLarge
			}
			// A malformed form is the handler's to refuse, as before.
		}
		checkValues(f, r.PostForm)
	}
	return f, nil
}

// checkValues adds each key of v with a bad name or value. A bad name is
// named as the client escaped it.
func checkValues(f fault.Fields, v url.Values) {
	for k, vs := range v {
		name := k
		if !goodText(k) {
			f.Add(url.QueryEscape(k), badTextMsg)
			continue
		}
		for _, x := range vs {
			if !goodText(x) {
				f.Add(name, badTextMsg)
				break
			}
		}
	}
}

// hasFormBody is true for a request whose body is a form.
func hasFormBody(r *http.Request) bool {
	if r.Body == nil || r.Body == http.NoBody {
		return false
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get(echo.HeaderContentType))
	return mt == echo.MIMEApplicationForm || mt == echo.MIMEMultipartForm
}

// checkJSONText refuses a JSON body holding a NUL character (\u0000), bytes
// that are not UTF-8 or a lone surrogate escape in any string, key or value,
// naming its path ("data.a.b", "categories.0"). Bodies without an escape
// sequence that are valid UTF-8 (nearly all) are passed at the cost of one
// scan; the others are read token by token. A body that is not JSON at all
// is left to the decoder, which says what is wrong with it.
func checkJSONText(body []byte) error {
	if utf8.Valid(body) && !bytes.Contains(body, []byte(`\u`)) {
		return nil
	}
	dec := jsontext.NewDecoder(bytes.NewReader(body), jsontext.AllowDuplicateNames(true))
	f := fault.Fields{}
	for {
		tok, err := dec.ReadToken()
		if err != nil {
			var syn *jsontext.SyntacticError
			// encoding/json takes what jsontext refuses only for its
			// text: bytes that are not UTF-8 and lone surrogates.
			if errors.As(err, &syn) && json.Valid(body) {
				f.Add(jsonPath(syn.JSONPointer), badTextMsg)
			}
			break
		}
		if tok.Kind() == '"' && strings.ContainsRune(tok.String(), 0) {
			f.Add(jsonPath(dec.StackPointer()), badTextMsg)
		}
	}
	if len(f) > 0 {
		return fault.Invalid(fault.InvalidEncoding, "The request body holds NUL characters or invalid UTF-8.", f)
	}
	return nil
}

// jsonPath turns a JSON Pointer into the dotted path fault fields use; the
// whole body is "body".
func jsonPath(p jsontext.Pointer) string {
	var parts []string
	for tok := range p.Tokens() {
		parts = append(parts, tok)
	}
	if len(parts) == 0 {
		return "body"
	}
	return strings.Join(parts, ".")
}

// newCursorCodec signs cursors with key, or with a random key when none is
// configured.
func newCursorCodec(key []byte) page.Codec {
	if len(key) == 0 {
		key = make([]byte, 32)
		_, _ = rand.Read(key)
	}
	return page.NewCodec(key)
}
