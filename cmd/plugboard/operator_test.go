package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/plugboard/plugboard/cmd/platform"
	"github.com/plugboard/plugboard/cmd/platform/apptest"
	"github.com/plugboard/plugboard/config"
	"github.com/plugboard/plugboard/marketplace"
)

// operatorCLI runs plugboard in process with the environment env and
// returns what it printed.
func operatorCLI(env map[string]string) func(args ...string) (string, error) {
	return func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(context.Background(), args, &out, &out, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
		return out.String(), err
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestEventTypesCreateAndList(t *testing.T) {
	cli := operatorCLI(testEnv(t))
	schema := writeFile(t, "schema.json", `{"type":"object","required":["id"],"properties":{"id":{"type":"string"}}}`)
	out, err := cli("event-types", "create", "--name", "deploy.finished", "--scope", "deploy:read", "--description", "A deploy finished.", "--schema", schema)
	if err != nil || out != "created event type deploy.finished (scope deploy:read)\n" {
		t.Fatalf("create: %v\n%s", err, out)
	}
	if _, err := cli("event-types", "create", "--name", "deploy.finished", "--scope", "deploy:read"); err == nil || !strings.Contains(err.Error(), "That event type exists.") {
		t.Errorf("creating it twice: %v", err)
	}
	if _, err := cli("event-types", "create", "--name", "deploy.started", "--scope", "deploy:read", "--schema", writeFile(t, "bad.json", "{nope")); err == nil || !strings.Contains(err.Error(), "is not JSON") {
		t.Errorf("a schema that is not JSON: %v", err)
	}
	out, err = cli("event-types", "list")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if !regexp.MustCompile(`^NAME +SCOPE +DESCRIPTION$`).MatchString(lines[0]) {
		t.Errorf("list header %q", lines[0])
	}
	if !slices.ContainsFunc(lines, regexp.MustCompile(`^deploy\.finished +deploy:read +A deploy finished\.$`).MatchString) {
		t.Errorf("list lacks deploy.finished:\n%s", out)
	}
	if !slices.ContainsFunc(lines, regexp.MustCompile(`^installation\.created +- +`).MatchString) {
		t.Errorf("list lacks the lifecycle events, with no scope:\n%s", out)
	}
}

// The binary reads --schema - from stdin.
func TestEventTypesCreateReadsTheSchemaFromStdin(t *testing.T) {
	env := testEnv(t)
	cmd := plugboard(t, env, "event-types", "create", "--name", "issue.moved", "--scope", "issue:read", "--schema", "-")
	cmd.Stdin = strings.NewReader(`{"type":"object","required":["to"]}`)
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "created event type issue.moved") {
		t.Fatalf("%v\n%s", err, out)
	}
	schemaOf(t, env, "issue.moved", `{"type":"object","required":["to"]}`)
}

func TestEventTypesDemoInstallsOnce(t *testing.T) {
	env := testEnv(t)
	cli := operatorCLI(env)
	out, err := cli("event-types", "create", "--demo")
	if err != nil || strings.Count(out, "created event type") != 3 {
		t.Fatalf("--demo: %v\n%s", err, out)
	}
	for _, want := range []string{"issue.created (scope issue:read)", "issue.resolved (scope issue:read)", "comment.created (scope comment:read)"} {
		if !strings.Contains(out, want) {
			t.Errorf("--demo did not create %s:\n%s", want, out)
		}
	}
	out, err = cli("event-types", "create", "--demo")
	if err != nil || strings.Contains(out, "created event type") || !strings.Contains(out, "already installed; nothing changed") {
		t.Errorf("--demo again: %v\n%s", err, out)
	}
	schemaOf(t, env, "issue.created", `{"type":"object","required":["id","title"],"properties":{"id":{"type":"string"},"title":{"type":"string"},"url":{"type":"string","format":"uri"}}}`)
	schemaOf(t, env, "comment.created", `{"type":"object","required":["id","issueId","body"],"properties":{"body":{"type":"string"},"id":{"type":"string"},"issueId":{"type":"string"}}}`)
}

// schemaOf checks the catalogue holds want, as JSON, for the event type.
func schemaOf(t *testing.T, env map[string]string, name, want string) {
	t.Helper()
	a, err := openPlatform(context.Background(), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	types, err := a.Marketplace.Events.ListEventTypes(context.Background(), cliOperator())
	if err != nil {
		t.Fatal(err)
	}
	for _, et := range types {
		if et.Name == name {
			if got := compactJSON(string(et.Schema)); got != compactJSON(want) {
				t.Errorf("%s has schema %s, want %s", name, got, want)
			}
			return
		}
	}
	t.Errorf("the catalogue has no %s", name)
}

// compactJSON is s re-encoded, its object keys sorted.
func compactJSON(s string) string {
	var v any
	json.Unmarshal([]byte(s), &v)
	b, _ := json.Marshal(v)
	return string(b)
}

// envOf is the environment that makes the CLI use cfg's database, Redis
// and secret key.
func envOf(cfg config.Config) map[string]string {
	return map[string]string{
		"PLUGBOARD_ENV":           config.EnvTest,
		"PLUGBOARD_DATABASE_URL":  cfg.DatabaseURL,
		"PLUGBOARD_REDIS_URL":     cfg.RedisURL,
		"PLUGBOARD_SECRET_KEY":    cfg.SecretKey.Reveal(),
		"PLUGBOARD_PASSWORD_COST": "4",
		"PLUGBOARD_AUTO_MIGRATE":  "false",
	}
}

// hookSink records the webhooks it is sent and answers 204.
type hookSink struct {
	*httptest.Server
	mu   sync.Mutex
	hits []hookHit
}

type hookHit struct {
	header http.Header
	body   []byte
}

func newHookSink(t *testing.T) *hookSink {
	s := &hookSink{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.hits = append(s.hits, hookHit{r.Header.Clone(), b})
		s.mu.Unlock()
		w.WriteHeader(204)
	}))
	t.Cleanup(s.Close)
	return s
}

// waitFor returns the first webhook of event type typ.
func (s *hookSink) waitFor(t *testing.T, typ string) hookHit {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		for _, h := range s.hits {
			if h.header.Get("Plugboard-Event") == typ {
				s.mu.Unlock()
				return h
			}
		}
		s.mu.Unlock()
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no %s webhook arrived", typ)
	return hookHit{}
}

// TestRotateKeyKeepsWebhooksVerifying seals an app's webhook secret under
// key A, rotates A → B with the platform stopped, and proves the platform
// starts with B (and no longer with A) and signs webhooks with the secret
// the app was given at creation.
func TestRotateKeyKeepsWebhooksVerifying(t *testing.T) {
	cfg := apptest.Config(t)
	keyA, keyB := cfg.SecretKey.Reveal(), "rotated-test-key-"+strings.Repeat("b", 32)
	p := apptest.StartRoles(t, platform.AllRoles, cfg)
	if out, err := operatorCLI(envOf(cfg))("event-types", "create", "--demo"); err != nil {
		t.Fatalf("event-types create --demo: %v\n%s", err, out)
	}
	sink := newHookSink(t)
	base := p.URL + "/api/0"
	signIn := func(base string) string {
		var auth struct{ Token string }
		call(t, "POST", base+"/auth/", "", map[string]string{"email": "dev@partner.example", "password": "correct horse battery"}, &auth)
		return auth.Token
	}
	call(t, "POST", base+"/users/", "", map[string]string{"email": "dev@partner.example", "password": "correct horse battery"}, nil)
	token := signIn(base)
	call(t, "POST", base+"/organizations/", token, map[string]string{"name": "Partner"}, nil)
	var app struct{ WebhookSecret string }
	call(t, "POST", base+"/organizations/partner/apps/", token, map[string]any{"name": "Team Bot", "kind": "internal",
		"scopes": []string{"issue:read"}, "events": []string{"issue.created"}, "webhookUrl": sink.URL}, &app)
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}

	out, err := operatorCLI(envOf(cfg))("secrets", "rotate-key", "--old", keyA, "--new-file", writeFile(t, "new-key", keyB+"\n"))
	if err != nil {
		t.Fatalf("rotate-key: %v\n%s", err, out)
	}
	if m := regexp.MustCompile(`^Re-sealed ([1-9]\d*) secret values under the new key\.\n`).FindStringSubmatch(out); m == nil ||
		!strings.Contains(out, "start the platform with PLUGBOARD_SECRET_KEY=<new>") {
		t.Errorf("rotate-key printed:\n%s", out)
	}
	if _, err := operatorCLI(envOf(cfg))("secrets", "rotate-key", "--old", keyA, "--new", keyB+"x"); err == nil || !strings.Contains(err.Error(), "nothing changed") {
		t.Errorf("rotating again from the old key: %v", err)
	}

	// The old key no longer opens the database's secrets.
	if a, err := platform.New(context.Background(), cfg, apptest.Logger(t), platform.Roles{}); !errors.Is(err, marketplace.ErrSecretKeyMismatch) {
		if a != nil {
			a.Close()
		}
		t.Fatalf("starting with the old key: %v, want ErrSecretKeyMismatch", err)
	}

	cfg.SecretKey = config.Secret(keyB)
	p = apptest.StartRoles(t, platform.AllRoles, cfg)
	base = p.URL + "/api/0"
	call(t, "POST", base+"/organizations/partner/events/", signIn(base), map[string]any{"type": "issue.created",
		"data": map[string]any{"id": "1", "title": "After the rotation"}}, nil)
	hit := sink.waitFor(t, "issue.created")
	wh, err := standardwebhooks.NewWebhook(app.WebhookSecret)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(hit.body, hit.header); err != nil {
		t.Errorf("the webhook sent after the rotation does not verify with the app's secret: %v", err)
	}
	if !strings.Contains(string(hit.body), "After the rotation") {
		t.Errorf("webhook body %s", hit.body)
	}
}
