package web_test

import (
	"net/http"
	"testing"
)

// validateOpenAPI checks one request and its response against the OpenAPI
// document. (Stub: replaced by the real validator.)
func validateOpenAPI(t testing.TB, req *http.Request, reqBody []byte, res *http.Response, resBody []byte) {
	t.Helper()
}
