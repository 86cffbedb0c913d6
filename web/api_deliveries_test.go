package web_test

import (
	"bytes"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"
)

// The delivery log list and the health figures are written by hand
// (api_deliveries_json.go): through HTTP, each body is byte for byte what
// encoding/json writes for the same document (?pretty still goes through
// it: compacted, it is the body), with the Content-Type and Link header as
// before.
func TestDeliveryLogBodiesAreEncodingJSONs(t *testing.T) {
	h := newHooks(t)
	h.dev.do("POST", "/api/0/apps/hook-app/test-events/", nil)
	waitDelivery(t, h, "webhook.test", "succeeded")
	first := h.dev.do("GET", "/api/0/apps/hook-app/deliveries/?limit=1", nil)
	for _, tc := range []struct {
		name, path string
		link       bool
	}{
		{"list", "/api/0/apps/hook-app/deliveries/", true},
		{"list, second page", "/api/0/apps/hook-app/deliveries/?limit=1&cursor=" + url.QueryEscape(nextCursor(t, first)), true},
		{"list, filtered", "/api/0/apps/hook-app/deliveries/?status=succeeded&eventType=webhook.test", true},
		{"stats", "/api/0/apps/hook-app/stats/", false},
		{"stats by the minute", "/api/0/apps/hook-app/stats/?resolution=5m&since=" + url.QueryEscape(time.Now().UTC().Add(-3*time.Hour).Format(time.RFC3339)), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := h.dev.do("GET", tc.path, nil)
			if res.Status != 200 || res.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("status %d, Content-Type %q: %s", res.Status, res.Header.Get("Content-Type"), res.Body)
			}
			if got := res.Header.Get("Link") != ""; got != tc.link {
				t.Errorf("Link header %q", res.Header.Get("Link"))
			}
			if !json.Valid(res.Body) || !bytes.HasSuffix(res.Body, []byte("}\n")) && !bytes.HasSuffix(res.Body, []byte("]\n")) {
				t.Fatalf("body %q", res.Body)
			}
			sep := "?"
			if strings.Contains(tc.path, "?") {
				sep = "&"
			}
			pretty := h.dev.do("GET", tc.path+sep+"pretty", nil)
			var compact bytes.Buffer
			if err := json.Compact(&compact, pretty.Body); err != nil {
				t.Fatal(err)
			}
			if got, want := res.Body, append(compact.Bytes(), '\n'); !bytes.Equal(got, want) {
				t.Errorf("body\n%s\nencoding/json\n%s", got, want)
			}
			if !bytes.Contains(pretty.Body, []byte("\n  ")) {
				t.Errorf("?pretty is not indented: %s", pretty.Body)
			}
		})
	}
}
