package web_test

import (
	"context"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/plugboard/plugboard/app/testenv"
	"github.com/plugboard/plugboard/cmd/platform"
	"github.com/plugboard/plugboard/cmd/platform/apptest"
	"github.com/plugboard/plugboard/config"
	"github.com/plugboard/plugboard/sdk/plugboard"
)

// delivered returns the webhook-ids of issue.created requests the sink
// answered 2xx (respond decides; a nil respond answers 200).
func idsOf(hits []hit, event string) map[string]int {
	out := map[string]int{}
	for _, h := range hits {
		if h.Header.Get("Plugboard-Event") == event {
			out[h.Header.Get("Webhook-Id")]++
		}
	}
	return out
}

// allSucceeded waits until the log shows n issue.created deliveries, all
// succeeded, each with at least one attempt.
func allSucceeded(t *testing.T, h *hooks, n int, within time.Duration) []plugboard.Delivery {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		list := decode[[]plugboard.Delivery](t, h.dev.do("GET", "/api/0/apps/hook-app/deliveries/?eventType=issue.created&limit=100", nil), 200)
		done := len(list) == n
		for _, d := range list {
			if d.Status != plugboard.DeliverySucceeded || d.Attempts < 1 {
				done = false
			}
		}
		if done {
			return list
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s the log shows %+v", within, list)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestRedisFlushLosesNothing(t *testing.T) {
	addr := testenv.RedisServer(t)
	h := newHooks(t, func(c *config.Config) { c.RedisURL = "redis://" + addr + "/0" })
	var refuse atomic.Bool
	refuse.Store(true)
	h.sink.respond = func(n int, r *http.Request) (int, http.Header, time.Duration) {
		if refuse.Load() {
			return 503, http.Header{"Retry-After": {"3"}}, 0
		}
		return 200, nil, 0
	}
	for i := range 5 {
		h.publish(t, "flush "+string(rune('a'+i)))
	}
	h.sink.waitHits(t, 6, 10*time.Second) // every first try refused: retries now wait in Redis
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	if err := rdb.FlushAll(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	refuse.Store(false)
	list := allSucceeded(t, h, 5, 20*time.Second)
	got := idsOf(h.sink.all(), "issue.created")
	for _, d := range list {
		if got[d.ID] < 2 {
			t.Errorf("delivery %s reached the sink %d times, want the refused try and the success", d.ID, got[d.ID])
		}
	}
}

func TestPostgresOutageLosesNothing(t *testing.T) {
	pg := testenv.NewProxy(t, "127.0.0.1:5432")
	h := newHooks(t, func(c *config.Config) {
		u, _ := url.Parse(c.DatabaseURL)
		u.Host = pg.Addr()
		c.DatabaseURL = u.String()
		c.DatabaseMaxConns = 5
	})
	var slow atomic.Bool
	slow.Store(true)
	h.sink.respond = func(n int, r *http.Request) (int, http.Header, time.Duration) {
		if slow.Load() {
			return 200, nil, 700 * time.Millisecond
		}
		return 200, nil, 0
	}
	for i := range 3 {
		h.publish(t, "outage "+string(rune('a'+i)))
	}
	h.sink.waitHits(t, 2, 10*time.Second) // a delivery is in flight
	pg.Cut()                              // its outcome cannot be recorded
	time.Sleep(2 * time.Second)
	slow.Store(false)
	pg.Restore(t)
	list := allSucceeded(t, h, 3, 40*time.Second)
	got := idsOf(h.sink.all(), "issue.created")
	for _, d := range list {
		if got[d.ID] == 0 {
			t.Errorf("delivery %s never reached the sink", d.ID)
		}
	}
}

func TestRateLimitHoldsAcrossTwoWorkers(t *testing.T) {
	cfg := apptest.Config(t, fastRetries, freshEndpoints)
	h := &hooks{sink: newSink(t)}
	h.p = apptest.StartRoles(t, platform.AllRoles, cfg)
	apptest.StartRoles(t, platform.Roles{Worker: true}, cfg) // a second worker on the same database and Redis
	setupHooks(t, h)
	h.dev.do("PUT", "/api/0/apps/hook-app/", map[string]any{"webhookRateLimit": 20, "webhookMaxInFlight": 10}).ok(t, 200, nil)
	const n = 60
	for i := range n {
		h.publish(t, "burst "+string(rune('a'+i%26)))
	}
	hits := h.sink.waitHits(t, n+1, 30*time.Second)[1:]
	var times []time.Time
	for _, x := range hits {
		times = append(times, x.At)
	}
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	worst := 0
	for i := range times {
		j := i
		for j < len(times) && times[j].Sub(times[i]) < time.Second {
			j++
		}
		worst = max(worst, j-i)
	}
	if worst > 20 {
		t.Errorf("the sink saw %d requests within one second; the limit is 20", worst)
	}
	if span := times[len(times)-1].Sub(times[0]); span < 2*time.Second {
		t.Errorf("%d deliveries took %s: the limit did not hold", n, span)
	}
	allSucceeded(t, h, n, 30*time.Second)
}

func TestFailingEndpointIsDisabledAndReplayedWhenEnabled(t *testing.T) {
	h := newHooks(t, freshEndpoints, func(c *config.Config) {
		c.WebhookDisableAfter = time.Second
		c.WebhookRetrySchedule = "0s,700ms,700ms,700ms"
	})
	down := h.sink.failing(500)
	h.publish(t, "first")
	deadline := time.Now().Add(15 * time.Second)
	var app plugboard.App
	for {
		app = appStatus(t, h.dev, "hook-app")
		if app.WebhookStatus == "disabled" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("endpoint never disabled: %+v", app)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(app.WebhookStatusReason, "failed") {
		t.Errorf("reason %q", app.WebhookStatusReason)
	}
	// New deliveries wait, paused.
	before := len(h.sink.all())
	h.publish(t, "while disabled")
	time.Sleep(time.Second)
	if len(h.sink.all()) != before {
		t.Error("a disabled endpoint was called")
	}
	if paused := decode[[]plugboard.Delivery](t, h.dev.do("GET", "/api/0/apps/hook-app/deliveries/?status=paused", nil), 200); len(paused) == 0 {
		t.Fatal("no paused delivery")
	}
	if audit := decode[[]plugboard.AuditLogEntry](t, h.dev.do("GET", "/api/0/organizations/partner/audit-logs/?action=app.webhook_disabled", nil), 200); len(audit) != 1 || audit[0].Actor.Type != "system" {
		t.Errorf("audit %+v", audit)
	}
	// Re-enabling replays what was paused.
	down.Store(false)
	if app := decode[plugboard.App](t, h.dev.do("PUT", "/api/0/apps/hook-app/", map[string]any{"webhookStatus": "enabled"}), 200); app.WebhookStatus != "enabled" {
		t.Errorf("after enabling %q", app.WebhookStatus)
	}
	waitDeliveryWhere(t, h, "while disabled", "succeeded")
}

// waitDeliveryWhere waits for the delivery whose event title is title.
func waitDeliveryWhere(t *testing.T, h *hooks, title string, status plugboard.DeliveryStatus) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		for _, x := range h.sink.all() {
			if strings.Contains(string(x.Body), title) {
				if getDelivery(t, h, x.Header.Get("Webhook-Id")).Status == status {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			list := decode[[]plugboard.Delivery](t, h.dev.do("GET", "/api/0/apps/hook-app/deliveries/", nil), 200)
			t.Fatalf("%q never became %s; log: %+v", title, status, list)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestGoneDisablesAtOnce(t *testing.T) {
	h := newHooks(t)
	h.sink.respond = func(n int, r *http.Request) (int, http.Header, time.Duration) { return 410, nil, 0 }
	h.publish(t, "gone")
	d := waitDelivery(t, h, "issue.created", "failed")
	if len(d.AttemptsDetail) != 1 {
		t.Errorf("410 was retried: %+v", d.AttemptsDetail)
	}
	var app plugboard.App
	for range 50 { // the endpoint is disabled right after the attempt is recorded
		app = appStatus(t, h.dev, "hook-app")
		if app.WebhookStatus == "disabled" {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if app.WebhookStatus != "disabled" || !strings.Contains(app.WebhookStatusReason, "410") {
		t.Errorf("after 410: %q %q", app.WebhookStatus, app.WebhookStatusReason)
	}
}

func TestPrivateAddressesAreBlocked(t *testing.T) {
	sink := newSink(t)
	h := &hooks{sink: sink}
	h.p = apptest.Start(t, fastRetries, func(c *config.Config) { c.WebhookAllowPrivate = false })
	setupHooksNoWait(t, h)
	decode[plugboard.Delivery](t, h.dev.do("POST", "/api/0/apps/hook-app/test-events/", nil), 201)
	one := waitDelivery(t, h, "webhook.test", "failed")
	for _, a := range one.AttemptsDetail {
		if a.ErrorClass != "blocked" {
			t.Errorf("attempt %+v", a)
		}
	}
	if len(sink.all()) != 0 {
		t.Error("a loopback endpoint was called with private addresses refused")
	}
}

// A batch against a slow endpoint never outlives its claim: no delivery is
// sent twice.
func TestSlowEndpointGetsEachDeliveryOnce(t *testing.T) {
	h := newHooks(t)
	h.dev.do("PUT", "/api/0/apps/hook-app/", map[string]any{"webhookStatus": "disabled"}).ok(t, 200, nil)
	for i := range 20 {
		h.publish(t, "slow "+string(rune('a'+i)))
	}
	h.sink.respond = func(n int, r *http.Request) (int, http.Header, time.Duration) {
		return 200, nil, 900 * time.Millisecond
	}
	h.dev.do("PUT", "/api/0/apps/hook-app/", map[string]any{"webhookStatus": "enabled"}).ok(t, 200, nil)
	allSucceeded(t, h, 20, 40*time.Second)
	time.Sleep(2 * time.Second)
	for id, n := range idsOf(h.sink.all(), "issue.created") {
		if n != 1 {
			t.Errorf("delivery %s reached the sink %d times", id, n)
		}
	}
}
