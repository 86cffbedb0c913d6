package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
)

// TestStrictDecoder covers what bindJSON refuses besides bad fields: null
// or an array where an object is expected, and bodies not declared JSON.
func TestStrictDecoder(t *testing.T) {
	s := newTestServer(t)
	s.e.PUT("/api/0/widgets/", func(c echo.Context) error {
		var w widget
		if err := bindJSON(c, &w); err != nil {
			return err
		}
		return c.JSON(http.StatusOK, w)
	})
	tests := []struct {
		name, contentType, body string
		status                  int
		code                    string
	}{
		{"object", "application/json", `{"name":"a"}`, 200, ""},
		{"charset parameter", "application/json; charset=utf-8", `{"name":"a"}`, 200, ""},
		{"null", "application/json", `null`, 400, "malformed_json"},
		{"null after whitespace", "application/json", " \n\tnull ", 400, "malformed_json"},
		{"array", "application/json", `[]`, 400, "malformed_json"},
		{"string", "application/json", `"x"`, 400, "malformed_json"},
		{"no content type", "", `{"name":"a"}`, 415, "unsupported_media_type"},
		{"no content type, null", "", `null`, 415, "unsupported_media_type"},
		{"text", "text/plain", `{"name":"a"}`, 415, "unsupported_media_type"},
		{"json lookalike", "application/jsonx", `{"name":"a"}`, 415, "unsupported_media_type"},
		{"unparsable content type", "application/json; =", `{"name":"a"}`, 415, "unsupported_media_type"},
		{"no content type, no body", "", ``, 400, "malformed_json"},
		{"member in another case", "application/json", `{"NAME":"a"}`, 400, "invalid_input"},
		{"nested member in another case", "application/json", `{"tags":[{"label":"x"},{"Label":"y"}]}`, 400, "invalid_input"},
		{"stray closing brace", "application/json", `{"name":"a"}}`, 400, "malformed_json"},
		{"stray closing bracket", "application/json", `{"name":"a"} ]`, 400, "malformed_json"},
		{"trailing whitespace", "application/json", "{\"name\":\"a\"} \r\n\t", 200, ""},
		{"member twice", "application/json", `{"name":"a","count":1,"name":"b"}`, 400, "invalid_input"},
		{"nested objects", "application/json", `{"name":"a","tags":[{"label":"x"},{"label":"y"}]}`, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest("PUT", "/api/0/widgets/", strings.NewReader(tt.body))
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, req)
			b, _ := io.ReadAll(rec.Result().Body)
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.status, b)
			}
			if tt.code != "" {
				if doc := decodeAs[problemJSON](t, b); doc.Code != tt.code || doc.Status != tt.status || doc.Detail == "" {
					t.Errorf("problem %+v, want code %s", doc, tt.code)
				}
			}
		})
	}
}
