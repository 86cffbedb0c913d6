package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/plugboard/plugboard/cmd/platform"
	"github.com/plugboard/plugboard/cmd/platform/apptest"
	"github.com/plugboard/plugboard/marketplace"
)

// syncBuffer is an io.Writer safe for a goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) waitFor(t *testing.T, text string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(s.String(), text) {
		if time.Now().After(deadline) {
			t.Fatalf("output never said %q:\n%s", text, s.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// call makes one JSON API request and decodes the answer.
// call is apptest.Call.
var call = apptest.Call

func TestListenForwardsSignedDeliveriesAndSurvivesARestart(t *testing.T) {
	cfg := apptest.Config(t)
	p := apptest.StartRoles(t, platform.AllRoles, cfg)
	base := p.URL + "/api/0"
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	defer sink.Close()

	call(t, "POST", base+"/users/", "", map[string]string{"email": "dev@partner.example", "password": "correct horse battery"}, nil)
	var auth struct{ Token string }
	call(t, "POST", base+"/auth/", "", map[string]string{"email": "dev@partner.example", "password": "correct horse battery"}, &auth)
	call(t, "POST", base+"/organizations/", auth.Token, map[string]string{"name": "Partner"}, nil)
	var created struct{ WebhookSecret string }
	call(t, "POST", base+"/organizations/partner/apps/", auth.Token, map[string]any{"name": "Local Dev", "webhookUrl": sink.URL}, &created)
	var tok struct{ Token string }
	call(t, "POST", base+"/api-tokens/", auth.Token, map[string]string{"name": "cli"}, &tok)

	var mu sync.Mutex
	var got []*http.Request
	var bodies [][]byte
	local := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got, bodies = append(got, r), append(bodies, b)
		mu.Unlock()
		w.WriteHeader(200)
	}))
	defer local.Close()

	out := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	env := map[string]string{"PLUGBOARD_API_URL": p.URL, "PLUGBOARD_API_TOKEN": tok.Token}
	go func() {
		done <- run(ctx, []string{"listen", "--app", "local-dev", "--forward-to", local.URL + "/webhooks"}, out, out,
			func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	}()
	out.waitFor(t, "Ready.")

	wh, _ := standardwebhooks.NewWebhook(created.WebhookSecret)
	check := func(n int) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			mu.Lock()
			k := len(got)
			mu.Unlock()
			if k >= n {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the local server got %d deliveries, want %d:\n%s", k, n, out.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
		mu.Lock()
		defer mu.Unlock()
		r, b := got[n-1], bodies[n-1]
		if err := wh.Verify(b, r.Header); err != nil {
			t.Errorf("forwarded delivery does not verify: %v", err)
		}
		if r.URL.Path != "/webhooks" || r.Header.Get("Plugboard-Event") != "webhook.test" {
			t.Errorf("forwarded %s %v", r.URL.Path, r.Header)
		}
	}
	call(t, "POST", base+"/apps/local-dev/test-events/", auth.Token, nil, nil)
	check(1)
	out.waitFor(t, "webhook.test")

	// The platform restarts on the same address: listen says so and goes on.
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	out.waitFor(t, "reconnecting")
	cfg.HTTPAddr = strings.TrimPrefix(p.URL, "http://")
	if restarted := apptest.StartRoles(t, platform.AllRoles, cfg); restarted.URL != p.URL {
		t.Fatalf("restarted on %s, want %s", restarted.URL, p.URL)
	}
	out.waitFor(t, "Reconnected.")
	call(t, "POST", base+"/apps/local-dev/test-events/", auth.Token, nil, nil)
	check(2)

	cancel() // Ctrl-C
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("listen returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("listen did not stop")
	}
	if !strings.Contains(out.String(), "Forwarded 2 deliveries: 2 answered 2xx") {
		t.Errorf("summary missing:\n%s", out.String())
	}
}

func TestListenRefusesABadToken(t *testing.T) {
	p := apptest.Start(t)
	env := map[string]string{"PLUGBOARD_API_URL": p.URL, "PLUGBOARD_API_TOKEN": "pbu_wrong"}
	err := run(context.Background(), []string{"listen", "--app", "x", "--forward-to", "http://localhost:1/"}, io.Discard, io.Discard,
		func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("listen with a bad token: %v", err)
	}
}

func TestDeliveriesAndTriggerCommands(t *testing.T) {
	p := apptest.Start(t)
	base := p.URL + "/api/0"
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	defer sink.Close()
	if _, err := p.App.Marketplace.Accounts.SignUp(context.Background(), marketplaceAnon, newOperator("ops@plugboard.example")); err != nil {
		t.Fatal(err)
	}
	var op struct{ Token string }
	call(t, "POST", base+"/auth/", "", map[string]string{"email": "ops@plugboard.example", "password": "correct horse battery"}, &op)
	call(t, "POST", base+"/event-types/", op.Token, map[string]any{"name": "issue.created", "scope": "issue:read",
		"schema": map[string]any{"type": "object", "required": []string{"title", "priority", "opened"},
			"properties": map[string]any{"title": map[string]any{"type": "string", "minLength": 1},
				"priority": map[string]any{"enum": []string{"high", "low"}}, "opened": map[string]any{"type": "string", "format": "date-time"}}}}, nil)
	call(t, "POST", base+"/users/", "", map[string]string{"email": "dev@partner.example", "password": "correct horse battery"}, nil)
	var auth struct{ Token string }
	call(t, "POST", base+"/auth/", "", map[string]string{"email": "dev@partner.example", "password": "correct horse battery"}, &auth)
	call(t, "POST", base+"/organizations/", auth.Token, map[string]string{"name": "Partner"}, nil)
	call(t, "POST", base+"/organizations/partner/apps/", auth.Token, map[string]any{"name": "Team Bot", "kind": "internal",
		"scopes": []string{"issue:read"}, "events": []string{"issue.created"}, "webhookUrl": sink.URL}, nil)
	var tok struct{ Token string }
	call(t, "POST", base+"/api-tokens/", auth.Token, map[string]string{"name": "cli"}, &tok)
	env := func(k string) (string, bool) {
		v, ok := map[string]string{"PLUGBOARD_API_URL": p.URL, "PLUGBOARD_API_TOKEN": tok.Token}[k]
		return v, ok
	}
	cli := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		if err := run(context.Background(), args, &out, &out, env); err != nil {
			t.Fatalf("plugboard %v: %v\n%s", args, err, out.String())
		}
		return out.String()
	}
	if out := cli("trigger", "issue.created", "--org", "partner", "--data", `{"title":"From the CLI","priority":"low","opened":"2026-11-22T00:00:00Z"}`); !strings.Contains(out, "to 1 installations") {
		t.Errorf("trigger: %s", out)
	}
	var list string
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(list, "issue.created") || !strings.Contains(list, "succeeded") {
		if time.Now().After(deadline) {
			t.Fatalf("deliveries list: %s", list)
		}
		time.Sleep(100 * time.Millisecond)
		list = cli("deliveries", "list", "--app", "team-bot", "--status", "succeeded")
	}
	id := strings.Fields(list)[1]
	if out := cli("deliveries", "show", "--app", "team-bot", id); !strings.Contains(out, "From the CLI") {
		t.Errorf("show: %s", out)
	}
	if out := cli("deliveries", "redeliver", "--app", "team-bot", id); !strings.Contains(out, "sending 1 deliveries again") {
		t.Errorf("redeliver: %s", out)
	}
	// With no --data, a sample that satisfies the type's schema.
	if out := cli("trigger", "issue.created", "--org", "partner"); !strings.Contains(out, "to 1 installations") {
		t.Errorf("sample trigger: %s", out)
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"trigger", "nothing.happened", "--org", "partner"}, &out, &out, env); err == nil || !strings.Contains(err.Error(), "400") {
		t.Errorf("unknown event: %v", err)
	}
}

var marketplaceAnon = marketplace.Anonymous

func newOperator(email string) marketplace.NewUser {
	return marketplace.NewUser{Email: email, Password: "correct horse battery", IsOperator: true}
}
