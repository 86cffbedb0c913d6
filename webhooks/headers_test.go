package webhooks

import (
	"encoding/json"
	"net/http"
	"reflect"
	"regexp"
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
	// Sorted by lower-case name, whatever the case they came in.
	h.Set("a-first", "1")
	h["ZZ-Last"] = []string{"2"}
	order := regexp.MustCompile(`"([a-z-]+)":`).FindAllStringSubmatch(string(headersJSON(h)), -1)
	var names []string
	for _, m := range order {
		names = append(names, m[1])
	}
	if want := []string{"a-first", "content-type", "set-cookie", "webhook-signature", "x-odd", "zz-last"}; !reflect.DeepEqual(names, want) {
		t.Errorf("order %v, want %v", names, want)
	}
	if string(headersJSON(http.Header{})) != "{}" {
		t.Errorf("empty headers: %s", headersJSON(http.Header{}))
	}
}

// BenchmarkHeadersJSON logs a typical request's headers.
func BenchmarkHeadersJSON(b *testing.B) {
	h := http.Header{}
	for _, k := range []string{"Content-Type", "User-Agent", "Webhook-Id", "Webhook-Timestamp", "Webhook-Signature", "Plugboard-Event", "Plugboard-Installation"} {
		h.Set(k, "value-of-"+k+"-0123456789abcdef")
	}
	b.ReportAllocs()
	for b.Loop() {
		headersJSON(h)
	}
}

// TestWebhookHeadersJSON checks that an attempt's request headers are
// logged as headersJSON logs the header sent.
func TestWebhookHeadersJSON(t *testing.T) {
	inst := "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
	odd := "a\"b\\c\x01\x00\xff"
	tests := []struct {
		name string
		w    webhookHeaders
	}{
		{"installation", webhookHeaders{userAgent: "Plugboard-Webhooks/1.2", id: "9a5f1a43-0f5c-4a59-8b43-8d2b4a0f6c01", timestamp: "1764748800",
			signature: "v1,abc= v1,def=", event: "issue.created", attempt: "3", installation: &inst}},
		{"none", webhookHeaders{userAgent: "Plugboard-Webhooks/", id: "d", timestamp: "1", signature: "v1,x", event: "app.installed", attempt: "1"}},
		{"odd text", webhookHeaders{userAgent: odd, id: odd, timestamp: odd, signature: odd, event: odd, attempt: odd, installation: &odd}},
		{"empty", webhookHeaders{installation: new(string)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, want := string(tt.w.json()), string(headersJSON(tt.w.header())); got != want {
				t.Fatalf("json %s, headersJSON %s", got, want)
			}
			// header is what Header.Set makes of every header sent.
			want := http.Header{}
			want.Set("Content-Type", "application/json")
			want.Set("User-Agent", tt.w.userAgent)
			want.Set("Webhook-Id", tt.w.id)
			want.Set("Webhook-Timestamp", tt.w.timestamp)
			want.Set("Webhook-Signature", tt.w.signature)
			want.Set("Plugboard-Event", tt.w.event)
			if tt.w.installation != nil {
				want.Set("Plugboard-Installation", *tt.w.installation)
			}
			want.Set("Plugboard-Delivery-Attempt", tt.w.attempt)
			if got := tt.w.header(); !reflect.DeepEqual(got, want) {
				t.Fatalf("header %q, want %q", got, want)
			}
		})
	}
}
