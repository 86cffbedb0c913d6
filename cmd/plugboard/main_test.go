package main

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/plugboard/plugboard/app/testenv"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "plugboard-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "plugboard")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building plugboard: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// plugboard runs the binary with env added to a clean environment.
func plugboard(t *testing.T, env map[string]string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = t.TempDir()
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + cmd.Dir}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	return cmd
}

func testEnv(t *testing.T) map[string]string {
	return map[string]string{
		"PLUGBOARD_ENV":           "test",
		"PLUGBOARD_DATABASE_URL":  testenv.DB(t),
		"PLUGBOARD_REDIS_URL":     testenv.Redis(t),
		"PLUGBOARD_SECRET_KEY":    "test-secret-key-0123456789abcdef0123456789",
		"PLUGBOARD_PASSWORD_COST": "4",
	}
}

func TestBadConfigExitsWithOneLine(t *testing.T) {
	cmd := plugboard(t, map[string]string{"PLUGBOARD_HTTP_ADDR": "nonsense"}, "serve")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if err == nil {
		t.Fatal("serve accepted PLUGBOARD_HTTP_ADDR=nonsense")
	}
	out := strings.TrimSpace(stderr.String())
	if strings.Count(out, "\n") != 0 || !strings.Contains(out, "PLUGBOARD_HTTP_ADDR") {
		t.Errorf("stderr %q: want one line naming PLUGBOARD_HTTP_ADDR", out)
	}
}

func TestHelpAndVersion(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"serve", "--help"}, {"migrate", "--help"}, {"worker", "--help"}, {"api", "--help"}, {"version"}} {
		out, err := plugboard(t, nil, args...).CombinedOutput()
		if err != nil {
			t.Errorf("%v: %v\n%s", args, err, out)
		}
		if !strings.Contains(string(out), "plugboard") {
			t.Errorf("%v printed %q", args, out)
		}
	}
	if err := plugboard(t, nil, "frobnicate").Run(); err == nil {
		t.Error("unknown command exited 0")
	}
}

func TestMigrateCommands(t *testing.T) {
	env := testEnv(t)
	env["PLUGBOARD_DATABASE_URL"] = strings.Replace(env["PLUGBOARD_DATABASE_URL"], "plugboard_test_", "plugboard_fresh_", 1)
	t.Cleanup(func() {
		exec.Command("psql", "-h", "127.0.0.1", "-U", "postgres", "-c", "DROP DATABASE IF EXISTS "+filepath.Base(strings.Split(env["PLUGBOARD_DATABASE_URL"], "?")[0])+" WITH (FORCE)").Run()
	})
	steps := []struct {
		args []string
		want string
	}{
		{[]string{"migrate", "up"}, "applied"},
		{[]string{"migrate", "status"}, "applied 20"},
		{[]string{"migrate", "down"}, "rolled back"},
		{[]string{"migrate", "status"}, "pending"},
		{[]string{"migrate", "up"}, "applied 1 migration"},
	}
	for _, s := range steps {
		out, err := plugboard(t, env, s.args...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), s.want) {
			t.Fatalf("%v: %v\n%s\nwant %q", s.args, err, out, s.want)
		}
	}
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestServeExitsZeroOnSIGTERM(t *testing.T) {
	cmd, addr, logs := serveProcess(t, testEnv(t))
	// Load while the signal arrives: every answered request must be whole.
	stop := make(chan struct{})
	failures := make(chan string, 1000)
	for range 8 {
		go func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				res, err := http.Get("http://" + addr + "/healthz")
				if err != nil {
					continue // refused once the listener closed: never accepted
				}
				if res.StatusCode != 200 {
					failures <- res.Status
				}
				res.Body.Close()
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	close(stop)
	if err != nil {
		t.Fatalf("serve exited with %v after SIGTERM:\n%s", err, logs.String())
	}
	close(failures)
	for f := range failures {
		t.Errorf("request during shutdown: %s", f)
	}
	if !strings.Contains(logs.String(), "stopped") {
		t.Errorf("logs lack the shutdown line:\n%s", logs.String())
	}
}

func TestUsersCreateMakesAnOperator(t *testing.T) {
	env := testEnv(t)
	out, err := plugboard(t, env, "users", "create", "--email", "root@example.com", "--password", "correct horse battery", "--operator").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "created operator root@example.com") {
		t.Fatalf("users create: %v\n%s", err, out)
	}
	out, err = plugboard(t, env, "users", "create", "--email", "root@example.com", "--password", "correct horse battery").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "already taken") {
		t.Errorf("duplicate users create: %v\n%s", err, out)
	}
	out, err = plugboard(t, env, "users", "create", "--email", "x@example.com", "--password", "short").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "password") {
		t.Errorf("short password: %v\n%s", err, out)
	}
}

// serveProcess starts `plugboard serve` on a free port and waits until it
// is ready; it returns the process, its address and its logs.
func serveProcess(t *testing.T, env map[string]string) (*exec.Cmd, string, *bytes.Buffer) {
	t.Helper()
	addr := freePort(t)
	env["PLUGBOARD_HTTP_ADDR"] = addr
	cmd := plugboard(t, env, "serve")
	logs := &bytes.Buffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := http.Get("http://" + addr + "/readyz")
		if err == nil && res.StatusCode == 200 {
			res.Body.Close()
			return cmd, addr, logs
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("serve never became ready:\n%s", logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startServe runs `plugboard serve` until the test ends and returns its URL.
func startServe(t *testing.T, env map[string]string) string {
	t.Helper()
	cmd, addr, _ := serveProcess(t, env)
	t.Cleanup(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() })
	return "http://" + addr
}

func TestDocsWalkthroughRuns(t *testing.T) {
	env := testEnv(t)
	base := startServe(t, env)
	script, _ := filepath.Abs("../../docs/walkthrough.sh")
	cmd := exec.Command("bash", script)
	cmd.Env = append(os.Environ(), "BASE="+base, "PLUGBOARD="+binary, "RUN=42")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("walkthrough failed: %v\n%s", err, out)
	}
	for _, want := range []string{"organization: pager-co-42", "app: pager-bot-42", "submitted", "created operator", "published"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("walkthrough output lacks %q:\n%s", want, out)
		}
	}
	if lines := strings.Split(strings.TrimSpace(string(out)), "\n"); lines[len(lines)-1] != "pager-bot-42" {
		t.Errorf("the directory did not find the app; output:\n%s", out)
	}
}
