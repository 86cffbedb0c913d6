package web

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"reflect"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/plugboard/plugboard/app/fault"
)

// jsonSerializer encodes without HTML escaping and decodes strictly.
type jsonSerializer struct{}

// Serialize writes i; echo asks for an indent on ?pretty, which is done
// by prettyJSON: its indentation stops deepening past maxIndentDepth, so
// a deeply nested payload is not the square of its depth in whitespace.
func (jsonSerializer) Serialize(c echo.Context, i any, indent string) error {
	if indent == "" {
		enc := json.NewEncoder(c.Response())
		enc.SetEscapeHTML(false)
		return enc.Encode(i)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(i); err != nil {
		return err
	}
	_, err := io.WriteString(c.Response(), prettyJSON(buf.Bytes(), math.MaxInt).Text+"\n")
	return err
}

func (jsonSerializer) Deserialize(c echo.Context, i any) error {
	return decodeJSON(c.Request().Body, i)
}

// bindJSON decodes the request body into v, rejecting unknown fields, wrong
// types, trailing data, null where an object is expected and bodies that are
// not declared application/json (415, before the body is read) with
// field-level messages.
func bindJSON(c echo.Context, v any) error {
	r := c.Request()
	body := bufio.NewReader(r.Body)
	if ct := r.Header.Get(echo.HeaderContentType); ct == "" {
		// No Content-Type: an empty body is answered as empty below; a body
		// is not guessed to be JSON.
		if _, err := body.Peek(1); err == nil {
			return errUnsupportedMediaType("Send the body with Content-Type: application/json.")
		}
	} else if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != echo.MIMEApplicationJSON {
		return errUnsupportedMediaType(fmt.Sprintf("Send the body as application/json, not %s.", ct))
	}
	return decodeJSON(body, v)
}

func errUnsupportedMediaType(msg string) error {
	return echo.NewHTTPError(http.StatusUnsupportedMediaType, msg)
}

// decodeJSON decodes exactly one JSON value from r into v. A top-level null
// is refused when v is an object (a struct or a map): decoding it would
// leave v as it was and accept a body the API documents as an object.
func decodeJSON(r io.Reader, v any) error {
	body, err := io.ReadAll(r)
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return errTooLarge
	}
	if err != nil {
		return fault.Invalid(fault.MalformedJSON, "The request body could not be read: "+err.Error(), nil)
	}
	if err := checkJSONText(body); err != nil {
		return err
	}
	if wantsObject(v) && bytes.HasPrefix(bytes.TrimLeft(body, " \t\r\n"), []byte("n")) {
		return fault.Invalid(fault.MalformedJSON, "The request body must be a JSON object, not null.", nil)
	}
	br := bytes.NewReader(body)
	dec := json.NewDecoder(br)
	dec.DisallowUnknownFields()
	err = dec.Decode(v)
	if err == nil {
		// Only whitespace may follow the value (dec.More is false before a
		// stray "}" or "]", so it cannot tell).
		// encoding/json matches member names regardless of case and lets
		// a later duplicate win; the document's names are exact and once
		// each, so the body is checked again for both.
		rest, _ := io.ReadAll(io.MultiReader(dec.Buffered(), br))
		if len(bytes.TrimLeft(rest, " \t\r\n")) > 0 {
			return fault.Invalid(fault.MalformedJSON, "The body holds more than one JSON value, or data after it.", nil)
		}
		return exactMembers(body, reflect.TypeOf(v))
	}
	var (
		syn     *json.SyntaxError
		typ     *json.UnmarshalTypeError
		invalid *json.InvalidUnmarshalError
	)
	switch {
	case errors.Is(err, io.EOF):
		return fault.Invalid(fault.MalformedJSON, "The request body is empty; send a JSON object.", nil)
	case errors.As(err, &syn), errors.Is(err, io.ErrUnexpectedEOF):
		return fault.Invalid(fault.MalformedJSON, "The request body is not valid JSON: "+err.Error(), nil)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return fault.Invalid(fault.MalformedJSON, fmt.Sprintf("The request body must be %s, not %s.", jsonKind(typ.Type), typ.Value), nil)
		}
		return fault.Field(field, fmt.Sprintf("must be %s, not %s", jsonKind(typ.Type), typ.Value))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return fault.Field(name, "is not a known field")
	case errors.As(err, &invalid):
		return fmt.Errorf("decoding JSON: %w", err)
	}
	return fault.Invalid(fault.MalformedJSON, "The request body could not be read: "+err.Error(), nil)
}

// exactMembers checks that every object member in data, a JSON value
// decoded into t, names a field of t exactly (as its json tag, or its Go
// name when it has none) and at most once. Values t takes whole (an
// interface, json.RawMessage, a type that unmarshals itself) are not
// looked into.
func exactMembers(data []byte, t reflect.Type) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	return walkMembers(dec, t, "")
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

func walkMembers(dec *json.Decoder, t reflect.Type, path string) error {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	tok, err := dec.Token()
	if err != nil {
		return fault.Invalid(fault.MalformedJSON, "The request body is not valid JSON: "+err.Error(), nil)
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	whole := t == nil || t.Kind() == reflect.Interface || reflect.PointerTo(t).Implements(unmarshalerType)
	switch d {
	case '{':
		var fields map[string]reflect.Type
		if !whole && t.Kind() == reflect.Struct {
			fields = jsonFields(t)
		}
		seen := map[string]bool{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return fault.Invalid(fault.MalformedJSON, "The request body is not valid JSON: "+err.Error(), nil)
			}
			key, _ := kt.(string)
			name := key
			if path != "" {
				name = path + "." + key
			}
			if seen[key] {
				return fault.Field(name, "appears more than once")
			}
			seen[key] = true
			var elem reflect.Type
			switch {
			case whole:
			case t.Kind() == reflect.Struct:
				ft, ok := fields[key]
				if !ok {
					return fault.Field(name, "is not a known field (names are case-sensitive)")
				}
				elem = ft
			case t.Kind() == reflect.Map:
				elem = t.Elem()
			}
			if err := walkMembers(dec, elem, name); err != nil {
				return err
			}
		}
	case '[':
		var elem reflect.Type
		if !whole && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for dec.More() {
			if err := walkMembers(dec, elem, path); err != nil {
				return err
			}
		}
	}
	_, err = dec.Token() // the closing delimiter
	return err
}

// jsonFields maps the member names encoding/json decodes into t's fields
// (promoted through embedded structs) to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for _, f := range reflect.VisibleFields(t) {
		if !f.IsExported() || f.Anonymous && f.Tag.Get("json") == "" && f.Type.Kind() == reflect.Struct {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if _, dup := out[name]; !dup {
			out[name] = f.Type
		}
	}
	return out
}

// wantsObject reports whether v decodes a JSON object (a struct or a map,
// through pointers).
func wantsObject(v any) bool {
	t := reflect.TypeOf(v)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t != nil && (t.Kind() == reflect.Struct || t.Kind() == reflect.Map)
}

// jsonKind names a Go type as the JSON a client should send.
func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "a " + t.String()
}
