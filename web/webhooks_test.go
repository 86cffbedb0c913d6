package web_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/plugboard/plugboard/cmd/platform/apptest"
	"github.com/plugboard/plugboard/config"
	"github.com/plugboard/plugboard/sdk/plugboard"
)

// hit is one request the sink received.
type hit struct {
	Header http.Header
	Body   []byte
	At     time.Time
}

// sink is a partner's webhook endpoint on loopback; respond decides each
// answer (nil: 200).
type sink struct {
	srv     *httptest.Server
	mu      sync.Mutex
	hits    []hit
	respond func(n int, r *http.Request) (int, http.Header, time.Duration)
}

func newSink(t *testing.T) *sink {
	s := &sink{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.hits = append(s.hits, hit{Header: r.Header.Clone(), Body: body, At: time.Now()})
		n := len(s.hits)
		respond := s.respond
		s.mu.Unlock()
		status, h, delay := 200, http.Header(nil), time.Duration(0)
		if respond != nil {
			status, h, delay = respond(n, r)
		}
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		for k, v := range h {
			w.Header()[k] = v
		}
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"received":%d}`, n)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

// failing makes the sink answer status while the returned flag is set
// (it starts set), and 200 after.
func (s *sink) failing(status int) *atomic.Bool {
	down := &atomic.Bool{}
	down.Store(true)
	s.respond = func(n int, r *http.Request) (int, http.Header, time.Duration) {
		if down.Load() {
			return status, nil, 0
		}
		return 200, nil, 0
	}
	return down
}

func (s *sink) all() []hit {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]hit(nil), s.hits...)
}

// waitHits waits until the sink has n requests.
// waitEvent waits for the first request of event type typ (requests of
// other events may arrive before or after it, in any order).
func (s *sink) waitEvent(t *testing.T, typ string, within time.Duration) hit {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		for _, h := range s.all() {
			if h.Header.Get("Plugboard-Event") == typ {
				return h
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s request within %s", typ, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *sink) waitHits(t *testing.T, n int, within time.Duration) []hit {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		h := s.all()
		if len(h) >= n {
			return h
		}
		if time.Now().After(deadline) {
			t.Fatalf("sink got %d requests in %s, want %d", len(h), within, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// hooks is a platform with a partner app subscribed to issue.created,
// installed in a customer organization.
type hooks struct {
	p        *apptest.Platform
	sink     *sink
	dev      *client
	admin    *client
	op       *client
	app      plugboard.App
	inst     string
	secret   string
	clientID string
}

func fastRetries(c *config.Config) {
	c.WebhookRetrySchedule = "0s,300ms,300ms"
	c.RelayInterval = time.Second
	c.RelayGrace = time.Second
	c.WebhookTimeout = time.Second
}

// freshEndpoints makes workers read an app's endpoint for every batch, so
// a test sees a change to it at once instead of waiting out the cache.
func freshEndpoints(c *config.Config) { c.WebhookEndpointCacheTTL = 0 }

func newHooks(t *testing.T, opts ...apptest.Option) *hooks {
	t.Helper()
	h := &hooks{sink: newSink(t)}
	h.p = apptest.Start(t, append([]apptest.Option{fastRetries}, opts...)...)
	setupHooks(t, h)
	return h
}

// setupHooks creates the event type, the partner's app and the customer's
// installation on h.p, and waits for installation.created.
func setupHooks(t *testing.T, h *hooks) {
	t.Helper()
	setupHooksNoWait(t, h)
	first := h.sink.waitHits(t, 1, 10*time.Second)[0]
	if first.Header.Get("Plugboard-Event") != "installation.created" {
		t.Fatalf("first webhook %q", first.Header.Get("Plugboard-Event"))
	}
}

func setupHooksNoWait(t *testing.T, h *hooks) {
	t.Helper()
	setupApp(t, h)
	h.inst = decode[plugboard.Installation](t, h.admin.do("POST", "/api/0/organizations/customer/installations/", map[string]any{"app": "hook-app", "plan": "free"}), 201).UUID
}

// setupApp creates the event type, the partner's published app and the
// customer organization, without installing.
func setupApp(t *testing.T, h *hooks) {
	t.Helper()
	h.op = operator(t, h.p, "ops@plugboard.example")
	h.op.do("POST", "/api/0/event-types/", map[string]any{"name": "issue.created", "scope": "issue:read", "description": "An issue was opened.",
		"schema": map[string]any{"type": "object", "required": []string{"title"}, "properties": map[string]any{"title": map[string]any{"type": "string"}}}}).ok(t, 201, nil)
	h.dev = signUp(t, h.p, "dev@partner.example")
	h.dev.do("POST", "/api/0/organizations/", map[string]string{"name": "Partner"}).ok(t, 201, nil)
	body := publicApp("Hook App")
	body["scopes"] = []string{"org:read", "issue:read"}
	body["events"] = []string{"issue.created"}
	body["webhookUrl"] = h.sink.srv.URL + "/hooks"
	h.app = decode[plugboard.App](t, h.dev.do("POST", "/api/0/organizations/partner/apps/", body), 201)
	h.secret, h.clientID = h.app.WebhookSecret, h.app.ClientID
	h.dev.do("POST", "/api/0/apps/hook-app/plans/", map[string]any{"name": "Free"}).ok(t, 201, nil) // review needs a plan
	h.dev.do("POST", "/api/0/apps/hook-app/publish-requests/", nil).ok(t, 201, nil)
	h.op.do("PUT", "/api/0/apps/hook-app/", map[string]any{"status": "published"}).ok(t, 200, nil)
	h.admin = signUp(t, h.p, "admin@customer.example")
	h.admin.do("POST", "/api/0/organizations/", map[string]string{"name": "Customer"}).ok(t, 201, nil)
}

func (h *hooks) publish(t *testing.T, title string) plugboard.PublishedEvent {
	t.Helper()
	return decode[plugboard.PublishedEvent](t, h.admin.do("POST", "/api/0/organizations/customer/events/", map[string]any{"type": "issue.created", "data": map[string]any{"title": title}}), 201)
}

// issue is the data of the issue.created events the tests publish.
type issue struct {
	Title string `json:"title"`
}

// verify checks a request with the Standard Webhooks reference library.
func verify(t *testing.T, secret string, h hit) {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(h.Body, h.Header); err != nil {
		t.Errorf("Standard Webhooks verification failed: %v\nheaders %v", err, h.Header)
	}
}

func TestWebhooksAreSignedDeliveredAndLogged(t *testing.T) {
	h := newHooks(t)
	ev := h.publish(t, "Database on fire")
	if ev.Deliveries != 1 {
		t.Fatalf("event %+v", ev)
	}
	hits := h.sink.waitHits(t, 2, 10*time.Second)
	got := hits[1]
	verify(t, h.secret, got)
	verify(t, h.secret, hits[0])
	for k, want := range map[string]string{"Plugboard-Event": "issue.created", "Plugboard-Installation": h.inst, "Content-Type": "application/json"} {
		if got.Header.Get(k) != want {
			t.Errorf("%s = %q, want %q", k, got.Header.Get(k), want)
		}
	}
	if !strings.HasPrefix(got.Header.Get("User-Agent"), "Plugboard-Webhooks/") {
		t.Errorf("user agent %q", got.Header.Get("User-Agent"))
	}
	// The envelope as the partner's SDK reads it.
	env, err := plugboard.ParseEvent(got.Body)
	if err != nil {
		t.Fatal(err)
	}
	var data issue
	if err := strictUnmarshal(env.Data, &data); err != nil || env.ID != got.Header.Get("Webhook-Id") || env.Type != "issue.created" ||
		env.Installation == nil || env.Installation.UUID != h.inst || data.Title != "Database on fire" {
		t.Errorf("envelope %s (%v)", got.Body, err)
	}

	// The delivery log tells the truth, once the attempt is recorded (the
	// sink has it before the platform has its answer).
	waitDelivery(t, h, "issue.created", "succeeded")
	list := decode[[]plugboard.Delivery](t, h.dev.do("GET", "/api/0/apps/hook-app/deliveries/?eventType=issue.created", nil), 200)
	if len(list) != 1 || list[0].Status != plugboard.DeliverySucceeded || list[0].Attempts != 1 || list[0].ID != env.ID {
		t.Fatalf("log %+v", list)
	}
	one := getDelivery(t, h, list[0].ID)
	if len(one.AttemptsDetail) == 0 {
		t.Fatalf("no attempts: %+v", one)
	}
	att := one.AttemptsDetail[0]
	if att.ResponseStatus != 200 || att.ResponseBody != `{"received":2}` || att.RequestHeaders["webhook-id"] != env.ID {
		t.Errorf("attempt %+v", att)
	}
	var payload issue
	if one.Payload == nil || strictUnmarshal(one.Payload.Data, &payload) != nil || payload.Title != "Database on fire" {
		t.Errorf("payload %+v", one.Payload)
	}
	// Outsiders see nothing.
	h.admin.do("GET", "/api/0/apps/hook-app/deliveries/", nil).problem(t, 404, "not_found")

	// The organization sees what the host published, never Plugboard's
	// lifecycle events and the grant codes in them.
	res := h.admin.do("GET", "/api/0/organizations/customer/events/", nil)
	// The raw body too, on purpose: no grant code anywhere in it.
	if events := decode[[]plugboard.PublishedEvent](t, res, 200); len(events) != 1 || events[0].Type != "issue.created" || strings.Contains(string(res.Body), "pbg_") {
		t.Errorf("events list %s", res.Body)
	}

	// Bad events change nothing.
	before := count(t, h.p, "events")
	f := h.admin.do("POST", "/api/0/organizations/customer/events/", map[string]any{"type": "issue.created", "data": map[string]any{"title": 7}}).problem(t, 400, "schema_mismatch")
	if f.Fields["data.title"] == "" {
		t.Errorf("schema failure fields %v", f.Fields)
	}
	h.admin.do("POST", "/api/0/organizations/customer/events/", map[string]any{"type": "nothing.happened"}).problem(t, 400, "invalid_input")
	h.admin.do("POST", "/api/0/organizations/customer/events/", map[string]any{"type": "installation.created"}).problem(t, 400, "invalid_input")
	if count(t, h.p, "events") != before {
		t.Error("bad events were written")
	}
}

func TestRetriesUntilTheEndpointRecovers(t *testing.T) {
	h := newHooks(t)
	h.sink.respond = func(n int, r *http.Request) (int, http.Header, time.Duration) {
		if n == 2 { // the first try of issue.created
			return 500, nil, 0
		}
		return 200, nil, 0
	}
	h.publish(t, "flaky")
	hits := h.sink.waitHits(t, 3, 10*time.Second)
	if hits[1].Header.Get("Webhook-Id") != hits[2].Header.Get("Webhook-Id") {
		t.Error("a retry changed the webhook-id")
	}
	if hits[2].Header.Get("Webhook-Signature") == hits[1].Header.Get("Webhook-Signature") && hits[2].Header.Get("Webhook-Timestamp") != hits[1].Header.Get("Webhook-Timestamp") {
		t.Error("signature did not follow the timestamp")
	}
	verify(t, h.secret, hits[2])
	d := waitDelivery(t, h, "issue.created", "succeeded")
	attempts := d.AttemptsDetail
	if len(attempts) != 2 || attempts[0].ResponseStatus != 500 || attempts[0].ErrorClass != "http_status" {
		t.Errorf("attempts %+v", attempts)
	}
	// The health figures count the failed try by its class.
	st := decode[plugboard.WebhookStats](t, h.dev.do("GET", "/api/0/apps/hook-app/stats/?resolution=1h", nil), 200)
	classes := map[string]int{}
	for _, b := range st.Buckets {
		for k, v := range b.ErrorClasses {
			classes[k] += v
		}
	}
	if st.Attempts != 3 || classes["http_status"] != 1 || len(classes) != 1 {
		t.Errorf("stats: %+v, classes %v", st, classes)
	}
}

// getDelivery reads one delivery of the hook app, with its attempts and
// payload.
func getDelivery(t *testing.T, h *hooks, id string) plugboard.Delivery {
	t.Helper()
	return decode[plugboard.Delivery](t, h.dev.do("GET", "/api/0/apps/hook-app/deliveries/"+id+"/", nil), 200)
}

// waitDelivery polls the log until the delivery of eventType has status.
func waitDelivery(t *testing.T, h *hooks, eventType string, status plugboard.DeliveryStatus) plugboard.Delivery {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		list := decode[[]plugboard.Delivery](t, h.dev.do("GET", "/api/0/apps/hook-app/deliveries/?eventType="+eventType, nil), 200)
		if len(list) > 0 && list[0].Status == status {
			return getDelivery(t, h, list[0].ID)
		}
		if time.Now().After(deadline) {
			t.Fatalf("delivery of %s never became %s: %+v", eventType, status, list)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	h := newHooks(t)
	h.sink.respond = func(n int, r *http.Request) (int, http.Header, time.Duration) {
		if n == 2 {
			return 429, http.Header{"Retry-After": {"2"}}, 0
		}
		return 200, nil, 0
	}
	h.publish(t, "slow down")
	hits := h.sink.waitHits(t, 3, 10*time.Second)
	if gap := hits[2].At.Sub(hits[1].At); gap < 1900*time.Millisecond {
		t.Errorf("retried after %s despite Retry-After: 2", gap)
	}
	waitDelivery(t, h, "issue.created", "succeeded")
}

func TestTimeoutsAreRetriedThenFail(t *testing.T) {
	h := newHooks(t)
	h.sink.respond = func(n int, r *http.Request) (int, http.Header, time.Duration) {
		if n >= 2 {
			return 200, nil, 3 * time.Second // slower than the 1 s timeout
		}
		return 200, nil, 0
	}
	h.publish(t, "too slow")
	d := waitDelivery(t, h, "issue.created", "failed")
	attempts := d.AttemptsDetail
	if len(attempts) != 3 {
		t.Fatalf("attempts %d, want 3 (the schedule)", len(attempts))
	}
	for _, a := range attempts {
		if a.ErrorClass != "timeout" {
			t.Errorf("attempt %+v", a)
		}
	}
	// Redelivering it once the endpoint recovers: one more attempt, same id.
	h.sink.respond = nil
	if res := decode[plugboard.Redelivery](t, h.dev.do("POST", "/api/0/apps/hook-app/redeliveries/", map[string]any{"deliveries": []string{d.ID}}), 202); res.Count != 1 {
		t.Errorf("redelivery %+v", res)
	}
	again := waitDelivery(t, h, "issue.created", "succeeded")
	if len(again.AttemptsDetail) != 4 {
		t.Errorf("after redelivery: %d attempts", len(again.AttemptsDetail))
	}
}

func TestSecretRotationSignsWithBoth(t *testing.T) {
	h := newHooks(t, freshEndpoints)
	rot := decode[plugboard.WebhookSecretRotation](t, h.dev.do("POST", "/api/0/apps/hook-app/rotate-webhook-secret/", nil), 200)
	h.publish(t, "rotating")
	got := h.sink.waitEvent(t, "issue.created", 10*time.Second)
	if n := len(strings.Fields(got.Header.Get("Webhook-Signature"))); n != 2 {
		t.Fatalf("%d signatures during rotation, want 2", n)
	}
	verify(t, h.secret, got)          // partners still on the old secret
	verify(t, rot.WebhookSecret, got) // and those already on the new one
}

func TestTestEventsAndStats(t *testing.T) {
	h := newHooks(t)
	d := decode[plugboard.Delivery](t, h.dev.do("POST", "/api/0/apps/hook-app/test-events/", nil), 201)
	got := h.sink.waitEvent(t, "webhook.test", 10*time.Second)
	if got.Header.Get("Plugboard-Event") != "webhook.test" || got.Header.Get("Webhook-Id") != d.ID {
		t.Errorf("test event %v", got.Header)
	}
	verify(t, h.secret, got)
	waitDelivery(t, h, "webhook.test", "succeeded")
	if st := decode[plugboard.WebhookStats](t, h.dev.do("GET", "/api/0/apps/hook-app/stats/?resolution=1h", nil), 200); st.Attempts != 2 || st.SuccessRate != 1 || st.Resolution != time.Hour {
		t.Errorf("stats %+v", st)
	}
	h.dev.do("GET", "/api/0/apps/hook-app/stats/?resolution=1s", nil).problem(t, 400, "invalid_input")
}

// TestStatsOverBucketsAndTheRange checks the figures against attempts of
// known durations: per bucket through the API, over the whole range on the
// health page.
func TestStatsOverBucketsAndTheRange(t *testing.T) {
	h := newHooks(t)
	// Two hours ago: 10 and 20 ms, both delivered. An hour ago: 30 ms
	// delivered, 40 ms timed out, 50 ms answered 500.
	// These five are the only attempts (the installation.created one goes,
	// once it is recorded: under load it may be after the delete otherwise).
	waitDelivery(t, h, "installation.created", "succeeded")
	hour := time.Now().UTC().Truncate(time.Hour)
	if err := h.p.App.DB.Exec(`DELETE FROM attempts`).Error; err != nil {
		t.Fatal(err)
	}
	if err := h.p.App.DB.Exec(`INSERT INTO attempts (delivery_id, app_id, number, url, request_headers, response_status, duration_us, error_class, created_at)
		SELECT d.id, d.app_id, 1, 'http://sink', '{}', x.status, x.us, x.class, x.at
		FROM (SELECT id, app_id FROM deliveries WHERE app_id = (SELECT id FROM apps WHERE slug = 'hook-app') LIMIT 1) d,
		(VALUES (200, 10000, '', ?::timestamptz), (200, 20000, '', ?::timestamptz),
		        (200, 30000, '', ?::timestamptz), (NULL, 40000, 'timeout', ?::timestamptz), (500, 50000, 'http_status', ?::timestamptz)) AS x(status, us, class, at)`,
		hour.Add(-110*time.Minute), hour.Add(-100*time.Minute), hour.Add(-50*time.Minute), hour.Add(-40*time.Minute), hour.Add(-30*time.Minute)).Error; err != nil {
		t.Fatal(err)
	}
	q := url.Values{"since": {hour.Add(-2 * time.Hour).Format(time.RFC3339)}, "until": {hour.Format(time.RFC3339)}, "resolution": {"1h"}}
	st := decode[plugboard.WebhookStats](t, h.dev.do("GET", "/api/0/apps/hook-app/stats/?"+q.Encode(), nil), 200)
	if st.Attempts != 5 || st.SuccessRate != 0.6 || len(st.Buckets) != 2 {
		t.Fatalf("stats %+v", st)
	}
	if b := st.Buckets[0]; b.Attempts != 2 || b.Failed != 0 || b.LatencyP50Ms != 15 || len(b.ErrorClasses) != 0 {
		t.Errorf("first hour %+v", b)
	}
	if b := st.Buckets[1]; b.Attempts != 3 || b.Failed != 2 || b.LatencyP50Ms != 40 || b.ErrorClasses["timeout"] != 1 || b.ErrorClasses["http_status"] != 1 {
		t.Errorf("second hour %+v", b)
	}
	// The page's figures are over the whole range: the median of all
	// five is 30 ms, and both error classes are counted.
	dev := uiSignIn(t, h.p, "dev@partner.example")
	pg := dev.get("/apps/hook-app/health?range=24h").ok(200)
	for _, want := range []string{`<div class="value">30 ms</div>`, "timeout", "http_status"} {
		if !strings.Contains(pg.Body, want) {
			t.Errorf("the health page lacks %q", want)
		}
	}
}
