package webhooks

import (
	"encoding/json"
	"net/http"
	"reflect"
	"testing"
)

func TestHeadersJSON(t *testing.T) {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("Webhook-Signature", "v1,abc+/= v1,def")
	h.Add("Set-Cookie", "a=1")
	h.Add("Set-Cookie", "b=2")
	h.Set("X-Odd", "quote \" backslash \\ tab \t nul \x00 bad \xff <&> é")
	got := headersJSON(h)
	var m map[string]string
	if err := json.Unmarshal(got, &m); err != nil {
		t.Fatalf("not JSON: %v: %s", err, got)
	}
	want := map[string]string{
		"content-type":      "application/json",
		"webhook-signature": "v1,abc+/= v1,def",
		"set-cookie":        "a=1, b=2",
		"x-odd":             "quote \" backslash \\ tab \t nul \uFFFD bad \uFFFD <&> é",
	}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("got %q, want %q", m, want)
	}
	if string(headersJSON(http.Header{})) != "{}" {
		t.Errorf("empty headers: %s", headersJSON(http.Header{}))
	}
}
