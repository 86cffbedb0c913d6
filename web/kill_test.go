package web_test

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/plugboard/plugboard/cmd/platform"
	"github.com/plugboard/plugboard/cmd/platform/apptest"
	"github.com/plugboard/plugboard/config"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// plugboardBinary builds cmd/plugboard once per test process.
func plugboardBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "plugboard-web-test")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "plugboard")
		out, err := exec.Command("go", "build", "-o", binPath, "../cmd/plugboard").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("%v: %s", err, out)
		}
	})
	if binErr != nil {
		t.Fatalf("building plugboard: %v", binErr)
	}
	return binPath
}

// workerProcess runs `plugboard worker` on cfg's database and Redis.
func workerProcess(t *testing.T, cfg config.Config) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(plugboardBinary(t), "worker")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(),
		"PLUGBOARD_ENV=test", "PLUGBOARD_AUTO_MIGRATE=false",
		"PLUGBOARD_DATABASE_URL=" + cfg.DatabaseURL, "PLUGBOARD_REDIS_URL=" + cfg.RedisURL,
		"PLUGBOARD_SECRET_KEY=" + cfg.SecretKey.Reveal(), "PLUGBOARD_BASE_URL=" + cfg.BaseURL,
		"PLUGBOARD_WEBHOOKS_RETRY_SCHEDULE=" + cfg.WebhookRetrySchedule, "PLUGBOARD_WEBHOOKS_TIMEOUT=" + cfg.WebhookTimeout.String(),
		"PLUGBOARD_WEBHOOKS_RELAY_INTERVAL=" + cfg.RelayInterval.String(), "PLUGBOARD_WEBHOOKS_RELAY_GRACE=" + cfg.RelayGrace.String(),
		"PLUGBOARD_LOG_LEVEL=warn"}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

func TestWorkerKilledMidDeliveryLosesNothing(t *testing.T) {
	cfg := apptest.Config(t, fastRetries, func(c *config.Config) { c.WebhookTimeout = 5 * time.Second })
	h := &hooks{sink: newSink(t)}
	h.p = apptest.StartRoles(t, platform.Roles{HTTP: true, Scheduler: true}, cfg)
	cfg.BaseURL = h.p.URL
	worker := workerProcess(t, cfg)
	setupHooks(t, h)

	arrived := make(chan struct{})
	var once sync.Once
	h.sink.respond = func(n int, r *http.Request) (int, http.Header, time.Duration) {
		if r.Header.Get("Plugboard-Event") == "issue.created" && n == 2 {
			once.Do(func() { close(arrived) })
			return 200, nil, 4 * time.Second // still answering when the worker dies
		}
		return 200, nil, 0
	}
	h.publish(t, "kill me")
	select {
	case <-arrived:
	case <-time.After(15 * time.Second):
		t.Fatal("the delivery never reached the sink")
	}
	if err := worker.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	worker.Wait()
	workerProcess(t, cfg) // a fresh worker

	list := allSucceeded(t, h, 1, 40*time.Second)
	id := list[0].ID
	var same []hit
	for _, x := range h.sink.all() {
		if x.Header.Get("Webhook-Id") == id {
			same = append(same, x)
		}
	}
	if len(same) < 2 {
		t.Fatalf("the sink saw delivery %s %d times, want the killed try and the redelivery", id, len(same))
	}
	for _, x := range same {
		verify(t, h.secret, x)
		if !strings.Contains(string(x.Body), id) {
			t.Errorf("body does not carry id %s", id)
		}
	}
}
