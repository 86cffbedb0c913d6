package web_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/plugboard/plugboard/sdk/plugboard"
)

// deepJSON is {"a":{"a":…1…}} nested depth deep.
func deepJSON(depth int) string {
	return strings.Repeat(`{"a":`, depth) + "1" + strings.Repeat("}", depth)
}

// storeDeepEvent makes the data of the newest issue.created event data,
// through the database: the API bounds the depth of what it accepts, but a
// stored event from before that bound (or a raised one) is still shown.
// It sends the delivery again, so the endpoint receives the new body, and
// returns the delivery's id and the body received.
func storeDeepEvent(t *testing.T, h *hooks, data string) (string, []byte) {
	t.Helper()
	h.publish(t, "Deep")
	d := waitDelivery(t, h, "issue.created", plugboard.DeliverySucceeded)
	res := h.p.App.DB.Exec(`UPDATE events SET data = ?::jsonb WHERE id = (SELECT event_id FROM deliveries WHERE uuid = ?)`, data, d.ID)
	if res.Error != nil || res.RowsAffected != 1 {
		t.Fatalf("storing the deep event: %v (%d rows)", res.Error, res.RowsAffected)
	}
	before := len(h.sink.all())
	h.dev.do("POST", "/api/0/apps/hook-app/redeliveries/", map[string]any{"deliveries": []string{d.ID}}).ok(t, 202, nil)
	return d.ID, h.sink.waitHits(t, before+1, 15*time.Second)[before].Body
}

// download fetches the raw payload the way a browser follows the page's
// link, and checks it is an attachment of JSON.
func download(t *testing.T, b *browser, path string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.base+path, nil)
	res, err := b.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode == 200 {
		if cd := res.Header.Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment;") || !strings.Contains(cd, ".json") {
			t.Errorf("Content-Disposition %q", cd)
		}
		if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("Content-Type %q", ct)
		}
	}
	return res.StatusCode, body
}

// The delivery page of an event nested 9,000 deep (54 KB) was 162 MB and
// took ~560 MB of the server per view. It is now a page under 1 MB that
// shows the first 64 KiB indented and links to the raw body; each view
// allocates a few MB, and repeated views leave the heap where it was.
func TestDeepPayloadPageIsBounded(t *testing.T) {
	h := newHooks(t)
	id, sent := storeDeepEvent(t, h, deepJSON(9000))
	if !bytes.Contains(sent, []byte(strings.Repeat(`{"a": `, 100))) {
		t.Fatalf("the endpoint did not receive the deep body: %.200s", sent)
	}
	dev := uiSignIn(t, h.p, "dev@partner.example")
	path := "/apps/hook-app/deliveries/" + id

	start := time.Now()
	pg := dev.get(path)
	took := time.Since(start)
	if len(pg.Body) >= 1<<20 {
		t.Fatalf("the page is %d bytes", len(pg.Body))
	}
	pg.ok(200, "Download the raw body", `href="`+path+`/payload"`, "the page shows its first 64.0 KiB")
	t.Logf("deep delivery page: %d bytes in %v", len(pg.Body), took)

	t.Run("the raw body is a download of exactly what was sent", func(t *testing.T) {
		status, body := download(t, dev, path+"/payload")
		if status != 200 || !bytes.Equal(body, sent) {
			t.Errorf("status %d, %d bytes; the endpoint received %d", status, len(body), len(sent))
		}
		outsider := uiSignUp(t, h.p, "outsider@elsewhere.example")
		if status, _ := download(t, outsider, path+"/payload"); status != 404 {
			t.Errorf("another user's download: %d", status)
		}
	})

	t.Run("repeated views cost the same and leave nothing behind", func(t *testing.T) {
		dev.t = t
		const views = 10
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for range views {
			dev.get(path).ok(200)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		perView := (after.TotalAlloc - before.TotalAlloc) / views
		grew := int64(after.HeapAlloc) - int64(before.HeapAlloc)
		t.Logf("%d views: %.1f MB allocated per view (client and server), heap %+.1f MB", views, float64(perView)/1e6, float64(grew)/1e6)
		if perView > 16<<20 {
			t.Errorf("each view allocates %d bytes", perView)
		}
		if grew > 16<<20 {
			t.Errorf("the heap grew by %d bytes over %d views", grew, views)
		}
	})
}

// The deepest document the API takes, made large by width, is shown in
// part with the link, like a deep one; the download has all of it.
func TestLargePublishedPayloadPageIsBounded(t *testing.T) {
	h := newHooks(t)
	items := make([]map[string]any, 3000)
	for i := range items {
		items[i] = map[string]any{"n": i, "text": "a line of text that makes the payload wide"}
	}
	var data any = map[string]any{"items": items}
	for range 60 {
		data = map[string]any{"a": data}
	}
	data.(map[string]any)["title"] = "Wide"
	h.admin.do("POST", "/api/0/organizations/customer/events/", map[string]any{"type": "issue.created", "data": data}).ok(t, 201, nil)
	d := waitDelivery(t, h, "issue.created", plugboard.DeliverySucceeded)
	dev := uiSignIn(t, h.p, "dev@partner.example")
	path := "/apps/hook-app/deliveries/" + d.ID
	pg := dev.get(path)
	if len(pg.Body) >= 1<<20 {
		t.Fatalf("the page is %d bytes", len(pg.Body))
	}
	pg.ok(200, "Download the raw body", "the page shows its first 64.0 KiB")
	status, body := download(t, dev, path+"/payload")
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	if status != 200 || json.Unmarshal(body, &env) != nil || !bytes.Contains(env.Data, []byte(`"n":2999`)) {
		t.Errorf("download: %d, %d bytes", status, len(body))
	}
}

// The API's ?pretty indents with the same bounded indentation: the deep
// delivery is not the square of its depth in whitespace there either.
func TestDeepPayloadPrettyAPIIsBounded(t *testing.T) {
	h := newHooks(t)
	id, _ := storeDeepEvent(t, h, deepJSON(9000))
	res := h.dev.do("GET", "/api/0/apps/hook-app/deliveries/"+id+"/?pretty", nil)
	if res.Status != 200 || len(res.Body) > 2<<20 {
		t.Fatalf("status %d, %d bytes", res.Status, len(res.Body))
	}
	var d plugboard.Delivery
	res.ok(t, 200, &d)
	if d.ID != id || !strings.Contains(string(res.Body), "\n  \"id\": ") {
		t.Errorf("not the indented delivery: %.300s", res.Body)
	}
}
