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
//
// It scans data's bytes (memberScan): data has been decoded already, so
// it is valid JSON. Walking it with json.Decoder.Token, as before, was a
// tenth of the process's CPU in the batch bench (100 events of 1 KiB per
// request); the scan is the same walk without a token per value. The
// token walk is kept in the tests as the model the scan is checked
// against.
func exactMembers(data []byte, t reflect.Type) error {
	s := memberScan{data: data}
	err := s.value(t)
	if errors.Is(err, errMemberScan) {
		// Only text that is not JSON gets here, which decode has refused.
		return fault.Invalid(fault.MalformedJSON, "The request body is not valid JSON.", nil)
	}
	return err
}

// errMemberScan stops a memberScan that met what valid JSON does not hold
// there.
var errMemberScan = errors.New("unexpected JSON text")

// memberScan is exactMembers' walk over the bytes of a valid JSON value.
// It answers with the first member, in document order, that
// appears twice in its object or names no field of its struct.
type memberScan struct {
	data []byte
	i    int
	// fields caches jsonFields by type for this walk (a batch's events
	// are objects of one type).
	fields map[reflect.Type]map[string]reflect.Type
	// path is the names of the members s is in, from the top.
	path [][]byte
}

func (s *memberScan) space() {
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case ' ', '\t', '\r', '\n':
			s.i++
		default:
			return
		}
	}
}

// str reads the string at s.i (its opening quote) and returns its text
// as encoding/json decodes it; the bytes of data when it holds no
// escape, so a member name costs no allocation.
func (s *memberScan) str() ([]byte, error) {
	start := s.i
	end := bytes.IndexByte(s.data[start+1:], '"')
	if end < 0 {
		return nil, errMemberScan
	}
	end += start + 1
	raw := s.data[start+1 : end]
	if bytes.IndexByte(raw, '\\') < 0 {
		s.i = end + 1
		return raw, nil
	}
	// Escapes: find the closing quote past them, then decode.
	j := start + 1
	for ; j < len(s.data); j++ {
		if c := s.data[j]; c == '\\' {
			j++
		} else if c == '"' {
			break
		}
	}
	if j >= len(s.data) {
		return nil, errMemberScan
	}
	s.i = j + 1
	var text string
	if err := json.Unmarshal(s.data[start:j+1], &text); err != nil {
		return nil, errMemberScan
	}
	return []byte(text), nil
}

// name is the name of key in the object s is in: the member
// names from the top, dotted, spelled out only for an error.
func (s *memberScan) name(key []byte) string {
	name := ""
	for _, k := range append(s.path, key) {
		if name != "" {
			name += "." + string(k)
		} else {
			name = string(k)
		}
	}
	return name
}

func (s *memberScan) value(t reflect.Type) error {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	s.space()
	if s.i >= len(s.data) {
		return errMemberScan
	}
	switch s.data[s.i] {
	case '{':
		return s.object(t)
	case '[':
		var elem reflect.Type
		if !wholeValue(t) && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		s.i++
		s.space()
		if s.i < len(s.data) && s.data[s.i] == ']' {
			s.i++
			return nil
		}
		for {
			if err := s.value(elem); err != nil {
				return err
			}
			if done, err := s.next(']'); done || err != nil {
				return err
			}
		}
	case '"':
		_, err := s.str()
		return err
	}
	// A number, true, false or null.
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case ',', ']', '}', ' ', '\t', '\r', '\n':
			return nil
		}
		s.i++
	}
	return nil
}

// next passes the comma after a member or element (false) or the closing
// delimiter (true).
func (s *memberScan) next(closing byte) (bool, error) {
	s.space()
	if s.i >= len(s.data) {
		return false, errMemberScan
	}
	switch s.data[s.i] {
	case ',':
		s.i++
		return false, nil
	case closing:
		s.i++
		return true, nil
	}
	return false, errMemberScan
}

func (s *memberScan) object(t reflect.Type) error {
	whole := wholeValue(t)
	var fields map[string]reflect.Type
	if !whole && t.Kind() == reflect.Struct {
		if fields = s.fields[t]; fields == nil {
			fields = jsonFields(t)
			if s.fields == nil {
				s.fields = map[reflect.Type]map[string]reflect.Type{}
			}
			s.fields[t] = fields
		}
	}
	s.i++
	s.space()
	if s.i < len(s.data) && s.data[s.i] == '}' {
		s.i++
		return nil
	}
	// The names seen so far: a slice while the object is small, then a map.
	var few [16][]byte
	seen := few[:0]
	var many map[string]bool
	for {
		s.space()
		if s.i >= len(s.data) || s.data[s.i] != '"' {
			return errMemberScan
		}
		key, err := s.str()
		if err != nil {
			return err
		}
		s.space()
		if s.i >= len(s.data) || s.data[s.i] != ':' {
			return errMemberScan
		}
		s.i++
		if many != nil {
			if many[string(key)] {
				return fault.Field(s.name(key), "appears more than once")
			}
			many[string(key)] = true
		} else {
			for _, k := range seen {
				if bytes.Equal(k, key) {
					return fault.Field(s.name(key), "appears more than once")
				}
			}
			if len(seen) < len(few) {
				seen = append(seen, key)
			} else {
				many = make(map[string]bool, 2*len(few))
				for _, k := range seen {
					many[string(k)] = true
				}
				many[string(key)] = true
			}
		}
		var elem reflect.Type
		switch {
		case whole:
		case t.Kind() == reflect.Struct:
			ft, ok := fields[string(key)]
			if !ok {
				return fault.Field(s.name(key), "is not a known field (names are case-sensitive)")
			}
			elem = ft
		case t.Kind() == reflect.Map:
			elem = t.Elem()
		}
		s.path = append(s.path, key)
		err = s.value(elem)
		s.path = s.path[:len(s.path)-1]
		if err != nil {
			return err
		}
		if done, err := s.next('}'); done || err != nil {
			return err
		}
	}
}

// wholeValue reports whether t takes a JSON value whole (its members'
// names are not checked, only their repeats): no type, an interface, or
// a type that unmarshals itself.
func wholeValue(t reflect.Type) bool {
	return t == nil || t.Kind() == reflect.Interface || reflect.PointerTo(t).Implements(unmarshalerType)
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

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
