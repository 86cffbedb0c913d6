package platform_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/plugboard/plugboard/app/testenv"
	"github.com/plugboard/plugboard/cmd/platform"
	"github.com/plugboard/plugboard/cmd/platform/apptest"
	"github.com/plugboard/plugboard/marketplace"
)

func get(t *testing.T, u string) (int, map[string]any) {
	t.Helper()
	res, err := http.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer res.Body.Close()
	var doc map[string]any
	b, _ := io.ReadAll(res.Body)
	_ = json.Unmarshal(b, &doc)
	return res.StatusCode, doc
}

func TestPlatformServesProbesAndMetrics(t *testing.T) {
	p := apptest.Start(t)
	if code, doc := get(t, p.URL+"/healthz"); code != 200 {
		t.Fatalf("healthz %d %v", code, doc)
	}
	if code, doc := get(t, p.URL+"/readyz"); code != 200 {
		t.Fatalf("readyz %d %v", code, doc)
	}
	res, err := http.Get(p.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, want := range []string{`plugboard_http_requests_total{method="GET",route="/readyz",status="200"} 1`, "plugboard_http_request_duration_seconds_bucket", "go_goroutines"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	// The queue monitor is for operators only.
	if code, _ := get(t, p.URL+"/admin/queues"); code != 404 {
		t.Errorf("/admin/queues signed out: %d, want 404", code)
	}
	for _, u := range []struct {
		email    string
		operator bool
		want     int
	}{{"ops@example.com", true, 200}, {"dev@example.com", false, 404}} {
		if _, err := p.App.Marketplace.Accounts.SignUp(t.Context(), marketplace.Anonymous, marketplace.NewUser{Email: u.email, Password: "correct horse battery", IsOperator: u.operator}); err != nil {
			t.Fatal(err)
		}
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Jar: jar}
		res, err := c.Post(p.URL+"/api/0/auth/", "application/json", strings.NewReader(`{"email":"`+u.email+`","password":"correct horse battery"}`))
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("sign in: %v %v", err, res)
		}
		res.Body.Close()
		res, err = c.Get(p.URL + "/admin/queues")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != u.want {
			t.Errorf("/admin/queues for %s: %d, want %d", u.email, res.StatusCode, u.want)
		}
	}
}

// waitStatus polls url until it answers want, failing after 20 s.
func waitStatus(t *testing.T, u string, want int) map[string]any {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, doc := get(t, u)
		if code == want {
			return doc
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %d, want %d (%v)", u, code, want, doc)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestReadinessFollowsPostgresAndRedis(t *testing.T) {
	pg := testenv.NewProxy(t, "127.0.0.1:5432")
	rd := testenv.NewProxy(t, testenv.RedisAddr())
	cfg := apptest.Config(t)
	dbURL, _ := url.Parse(cfg.DatabaseURL)
	dbURL.Host = pg.Addr()
	cfg.DatabaseURL = dbURL.String()
	redisURL, _ := url.Parse(cfg.RedisURL)
	redisURL.Host = rd.Addr()
	cfg.RedisURL = redisURL.String()
	p := apptest.StartRoles(t, platform.AllRoles, cfg)

	waitStatus(t, p.URL+"/readyz", 200)
	for _, dep := range []struct {
		name  string
		proxy *testenv.Proxy
	}{{"redis", rd}, {"postgres", pg}} {
		dep.proxy.Cut()
		doc := waitStatus(t, p.URL+"/readyz", 503)
		if doc["code"] != "not_ready" || !strings.Contains(doc["detail"].(string), dep.name) {
			t.Errorf("%s down: problem %v", dep.name, doc)
		}
		if code, _ := get(t, p.URL+"/healthz"); code != 200 {
			t.Errorf("%s down: process should stay alive, healthz %d", dep.name, code)
		}
		dep.proxy.Restore(t)
		waitStatus(t, p.URL+"/readyz", 200)
	}
}

func TestShutdownDrainsInFlightRequests(t *testing.T) {
	cfg := apptest.Config(t)
	cfg.HTTPAddr = "127.0.0.1:0"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, err := platform.New(ctx, cfg, apptest.Logger(t), platform.AllRoles)
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{}, 100)
	a.Web.Echo().GET("/slow", func(c echo.Context) error {
		started <- struct{}{}
		time.Sleep(700 * time.Millisecond)
		return c.String(200, "done")
	})
	if err := a.Listen(); err != nil {
		t.Fatal(err)
	}
	base := "http://" + a.Addr()
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	<-a.Ready()

	const n = 20
	var wg sync.WaitGroup
	results := make(chan string, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := http.Get(base + "/slow")
			if err != nil {
				results <- err.Error()
				return
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			results <- string(b)
		}()
	}
	for range n {
		<-started
	}
	cancel() // what SIGTERM does in cmd/plugboard
	wg.Wait()
	close(results)
	for r := range results {
		if r != "done" {
			t.Errorf("in-flight request: %q, want done", r)
		}
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run returned %v, want nil", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return")
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("server still answers after shutdown")
	}
}

// A connection a client opened but has sent nothing on (an HTTP client
// dials ahead when requests come at once, and a balancer keeps spares) has
// nothing in flight: shutdown closes it at once instead of waiting the five
// seconds net/http gives such a connection before it counts as idle.
func TestShutdownClosesConnectionsThatSentNothing(t *testing.T) {
	cfg := apptest.Config(t)
	cfg.ShutdownTimeout = 3 * time.Second
	p := apptest.StartRoles(t, platform.Roles{HTTP: true}, cfg)
	conn, err := net.Dial("tcp", strings.TrimPrefix(p.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if code, _ := get(t, p.URL+"/healthz"); code != 200 { // the server has accepted conn by now
		t.Fatalf("healthz: %d", code)
	}
	start := time.Now()
	if err := p.Stop(); err != nil {
		t.Errorf("shutdown: %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("shutdown took %v with a connection that sent nothing", took)
	}
	_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("the connection that sent nothing is still open after shutdown: %v", err)
	}
}

// A platform started on an existing database with another secret key (a
// container recreated with a fresh key) stops at once, naming the
// variable, instead of serving while no webhook can be signed.
func TestStartRefusesAnotherSecretKey(t *testing.T) {
	cfg := apptest.Config(t)
	first := apptest.StartRoles(t, platform.Roles{HTTP: true}, cfg)
	if err := first.Stop(); err != nil {
		t.Fatal(err)
	}
	cfg.SecretKey = "another-secret-key-0123456789abcdef01234567"
	_, err := platform.New(t.Context(), cfg, apptest.Logger(t), platform.Roles{HTTP: true})
	if err == nil {
		t.Fatal("the platform started with another secret key")
	}
	if msg := err.Error(); !strings.Contains(msg, "PLUGBOARD_SECRET_KEY") || strings.Contains(msg, "\n") ||
		!strings.Contains(msg, "plugboard secrets rotate-key") {
		t.Fatalf("start-up error is not one line naming PLUGBOARD_SECRET_KEY and the way out: %q", msg)
	}
}
