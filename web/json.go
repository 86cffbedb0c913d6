package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/plugboard/plugboard/app/fault"
)

// jsonSerializer encodes without HTML escaping and decodes strictly.
type jsonSerializer struct{}

func (jsonSerializer) Serialize(c echo.Context, i any, indent string) error {
	enc := json.NewEncoder(c.Response())
	enc.SetEscapeHTML(false)
	if indent != "" {
		enc.SetIndent("", indent)
	}
	return enc.Encode(i)
}

func (jsonSerializer) Deserialize(c echo.Context, i any) error {
	return decodeJSON(c.Request().Body, i)
}

// bindJSON decodes the request body into v, rejecting unknown fields, wrong
// types, trailing data and non-JSON content types with field-level messages.
func bindJSON(c echo.Context, v any) error {
	ct := c.Request().Header.Get(echo.HeaderContentType)
	if ct != "" && !strings.HasPrefix(ct, echo.MIMEApplicationJSON) {
		return &fault.Error{Kind: fault.KindInvalid, Code: fault.UnsupportedMediaType,
			Message: fmt.Sprintf("Send the body as application/json, not %s.", ct)}
	}
	return decodeJSON(c.Request().Body, v)
}

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
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	err = dec.Decode(v)
	if err == nil {
		if dec.More() {
			return fault.Invalid(fault.MalformedJSON, "The body holds more than one JSON value.", nil)
		}
		return nil
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
			return fault.Invalid(fault.MalformedJSON, fmt.Sprintf("Expected a JSON %s, got %s.", jsonKind(typ.Type), typ.Value), nil)
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
