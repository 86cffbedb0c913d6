package main

import (
	"bytes"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/plugboard/plugboard/cmd/platform/apptest"
	"sigs.k8s.io/yaml"
)

// No Docker engine runs where the tests do, so the image is proven in two
// halves: the Dockerfile's own go build line builds a binary that reports
// the version it was given, and the compose file parses into the services,
// volumes and checks production needs.

func TestDockerfileBuildsAVersionedBinary(t *testing.T) {
	df, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^RUN (CGO_ENABLED=0 go build .*) -o /plugboard (\./cmd/plugboard)$`).FindSubmatch(df)
	if m == nil {
		t.Fatal("the Dockerfile has no `RUN CGO_ENABLED=0 go build … -o /plugboard ./cmd/plugboard` line")
	}
	if !regexp.MustCompile(`(?m)^ARG VERSION=`).Match(df) {
		t.Fatal("the Dockerfile takes no VERSION build argument")
	}
	bin := filepath.Join(t.TempDir(), "plugboard")
	line := strings.ReplaceAll(string(m[1]), "${VERSION}", "v9.9.9-test") + " -o " + bin + " " + string(m[2])
	cmd := exec.Command("sh", "-c", line)
	cmd.Dir = "../.."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", line, err, out)
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("version: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "plugboard v9.9.9-test" {
		t.Fatalf("the image's binary reports %q, want the version it was built with", got)
	}
}

func TestDockerignoreKeepsSecretsAndHistoryOut(t *testing.T) {
	b, err := os.ReadFile("../../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	for _, want := range []string{".git", "bin", ".plugboard"} {
		if !slices.Contains(lines, want) {
			t.Errorf(".dockerignore does not leave out %s", want)
		}
	}
}

type composeService struct {
	Image       string         `json:"image"`
	Command     []string       `json:"command"`
	Ports       []string       `json:"ports"`
	Volumes     []string       `json:"volumes"`
	Restart     string         `json:"restart"`
	Environment map[string]any `json:"environment"`
	DependsOn   map[string]struct {
		Condition string `json:"condition"`
	} `json:"depends_on"`
	Healthcheck *struct {
		Test []string `json:"test"`
	} `json:"healthcheck"`
}

func TestComposeFileIsProductionShaped(t *testing.T) {
	b, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Services map[string]composeService `json:"services"`
		Volumes  map[string]any            `json:"volumes"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("docker-compose.yml does not parse: %v", err)
	}
	s := doc.Services
	for _, name := range []string{"postgres", "redis", "secret-key", "migrate", "api", "worker"} {
		if _, ok := s[name]; !ok {
			t.Fatalf("no %s service", name)
		}
	}
	t.Run("the platform runs as api and worker after a one-shot migrate", func(t *testing.T) {
		for name, cmd := range map[string][]string{"api": {"api"}, "worker": {"worker"}, "migrate": {"migrate", "up"}} {
			if !slices.Equal(s[name].Command, cmd) {
				t.Errorf("%s runs %v, want %v", name, s[name].Command, cmd)
			}
		}
		for _, name := range []string{"api", "worker"} {
			if c := s[name].DependsOn["migrate"].Condition; c != "service_completed_successfully" {
				t.Errorf("%s waits for migrate with %q", name, c)
			}
			if s[name].Restart != "unless-stopped" {
				t.Errorf("%s has restart %q", name, s[name].Restart)
			}
		}
		if c := s["migrate"].DependsOn["postgres"].Condition; c != "service_healthy" {
			t.Errorf("migrate waits for postgres with %q", c)
		}
		if s["migrate"].Restart != "no" {
			t.Errorf("migrate restarts (%q); it is a one-shot", s["migrate"].Restart)
		}
	})
	t.Run("only the API is published on the host", func(t *testing.T) {
		for name, svc := range s {
			if len(svc.Ports) > 0 && name != "api" {
				t.Errorf("%s publishes %v on the host", name, svc.Ports)
			}
		}
		if !slices.Contains(s["api"].Ports, "8080:8080") {
			t.Errorf("api publishes %v", s["api"].Ports)
		}
	})
	t.Run("data and the secret key live in named volumes", func(t *testing.T) {
		for _, v := range []string{"postgres-data", "redis-data", "secret-key"} {
			if _, ok := doc.Volumes[v]; !ok {
				t.Errorf("no named volume %s", v)
			}
		}
		for _, name := range []string{"api", "worker", "migrate"} {
			env := s[name].Environment
			if env["PLUGBOARD_ENV"] != "production" || env["PLUGBOARD_SECRET_KEY_FILE"] != "/var/lib/plugboard/secret-key" {
				t.Errorf("%s: environment %v", name, env)
			}
			if !slices.Contains(s[name].Volumes, "secret-key:/var/lib/plugboard:ro") {
				t.Errorf("%s does not mount the secret key: %v", name, s[name].Volumes)
			}
		}
		if c := s["migrate"].DependsOn["secret-key"].Condition; c != "service_completed_successfully" {
			t.Errorf("migrate does not wait for the key: %q", c)
		}
	})
	t.Run("healthchecks ask what readiness means", func(t *testing.T) {
		pg := s["postgres"].Healthcheck
		if pg == nil || !slices.Contains(pg.Test, "-h") || !slices.Contains(pg.Test, "127.0.0.1") {
			t.Errorf("postgres healthcheck %v does not go over TCP", pg)
		}
		for _, name := range []string{"redis", "api"} {
			if s[name].Healthcheck == nil {
				t.Errorf("%s has no healthcheck", name)
			}
		}
	})
}

func TestHealthcheckCommand(t *testing.T) {
	p := apptest.Start(t)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(p.URL, "http://"))
	getenv := func(addr string) env {
		return func(k string) (string, bool) {
			if k == "PLUGBOARD_HTTP_ADDR" {
				return addr, true
			}
			return "", false
		}
	}
	var out bytes.Buffer
	if err := run(t.Context(), []string{"healthcheck"}, &out, io.Discard, getenv(":"+port)); err != nil || strings.TrimSpace(out.String()) != "ready" {
		t.Fatalf("healthcheck of a ready server: %v %q", err, out.String())
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	_, closed, _ := net.SplitHostPort(l.Addr().String())
	l.Close()
	if err := run(t.Context(), []string{"healthcheck"}, io.Discard, io.Discard, getenv(":"+closed)); err == nil || !strings.Contains(err.Error(), "cannot reach") {
		t.Fatalf("healthcheck of nothing: %v", err)
	}
}
