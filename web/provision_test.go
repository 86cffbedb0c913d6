package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"golang.org/x/oauth2"

	"github.com/plugboard/plugboard/cmd/platform"
	"github.com/plugboard/plugboard/cmd/platform/apptest"
	"github.com/plugboard/plugboard/config"
	"github.com/plugboard/plugboard/sdk/plugboard"
)

// provCall is one request Plugboard sent to the provisioning endpoint.
type provCall struct {
	Method, Path string
	Header       http.Header
	Body         []byte
}

// provisioner is a partner's provisioning endpoint on loopback: answer
// decides each reply (nil: 200 {}), and every request is kept.
type provisioner struct {
	srv    *httptest.Server
	mu     sync.Mutex
	calls  []provCall
	answer func(c provCall) (status int, body any, delay time.Duration)
}

func newProvisioner(t *testing.T) *provisioner {
	p := &provisioner{}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		c := provCall{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body}
		p.mu.Lock()
		p.calls = append(p.calls, c)
		answer := p.answer
		p.mu.Unlock()
		status, out, delay := 200, any(map[string]any{}), time.Duration(0)
		if answer != nil {
			status, out, delay = answer(c)
		}
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		if out != nil {
			_ = json.NewEncoder(w).Encode(out)
		}
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *provisioner) setAnswer(fn func(c provCall) (int, any, time.Duration)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.answer = fn
}

func (p *provisioner) all() []provCall {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]provCall(nil), p.calls...)
}

// wait returns the first request with method to path within d.
func (p *provisioner) wait(t *testing.T, method, path string, d time.Duration) provCall {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		for _, c := range p.all() {
			if c.Method == method && c.Path == path {
				return c
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s %s within %s; got %d requests", method, path, d, len(p.all()))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *provisioner) count(method, path string) int {
	n := 0
	for _, c := range p.all() {
		if c.Method == method && c.Path == path {
			n++
		}
	}
	return n
}

// verifyCall checks a request to the provisioning endpoint with the
// Standard Webhooks library, as a partner would.
func verifyCall(t *testing.T, secret string, c provCall) {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(c.Body, c.Header); err != nil {
		t.Errorf("%s %s does not verify with the Standard Webhooks library: %v", c.Method, c.Path, err)
	}
}

// lockedBuffer collects the platform's log lines from every goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// provWorld is a platform with a partner app that provisions (Pager Bot,
// config prefix PAGER_BOT_, plans Free and Pro, no redirect URL) and a
// customer organization whose admin installs it. The platform logs
// everything, at debug level, into logs.
type provWorld struct {
	p      *apptest.Platform
	logs   *lockedBuffer
	part   *provisioner
	hooks  *sink
	dev    *client
	admin  *client
	op     *client
	host   *client // a host service token
	app    plugboard.App
	secret string
}

func newProvWorld(t *testing.T, opts ...apptest.Option) *provWorld {
	t.Helper()
	w := &provWorld{logs: &lockedBuffer{}, part: newProvisioner(t), hooks: newSink(t)}
	log := slog.New(slog.NewTextHandler(w.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	w.p = apptest.StartLogged(t, platform.AllRoles, apptest.Config(t, append([]apptest.Option{fastRetries}, opts...)...), log)
	w.op = operator(t, w.p, "ops@plugboard.example")
	w.dev = signUp(t, w.p, "dev@partner.example")
	w.dev.do("POST", "/api/0/organizations/", map[string]string{"name": "Partner"}).ok(t, 201, nil)
	body := publicApp("Pager Bot")
	delete(body, "redirectUrl")
	body["webhookUrl"] = w.hooks.srv.URL + "/hooks"
	body["provisionUrl"] = w.part.srv.URL + "/provision"
	body["events"] = []string{"installation.created"}
	w.app = decode[plugboard.App](t, w.dev.do("POST", "/api/0/organizations/partner/apps/", body), 201)
	w.secret = w.app.WebhookSecret
	if w.app.ProvisionURL != w.part.srv.URL+"/provision" || w.app.ConfigPrefix != "PAGER_BOT_" {
		t.Fatalf("app %+v", w.app)
	}
	w.dev.do("POST", "/api/0/apps/pager-bot/plans/", map[string]any{"name": "Free"}).ok(t, 201, nil)
	w.dev.do("POST", "/api/0/apps/pager-bot/plans/", map[string]any{"name": "Pro", "price": "10"}).ok(t, 201, nil)
	w.dev.do("POST", "/api/0/apps/pager-bot/publish-requests/", nil).ok(t, 201, nil)
	w.op.do("PUT", "/api/0/apps/pager-bot/", map[string]any{"status": "published"}).ok(t, 200, nil)
	w.admin = signUp(t, w.p, "admin@customer.example")
	w.admin.do("POST", "/api/0/organizations/", map[string]string{"name": "Customer"}).ok(t, 201, nil)
	tok := decode[plugboard.ServiceToken](t, w.op.do("POST", "/api/0/service-tokens/", map[string]any{"name": "Host"}), 201)
	w.host = newClient(t, w.p, tok.Token)
	return w
}

func (w *provWorld) install(plan string) *response {
	return w.admin.do("POST", "/api/0/organizations/customer/installations/", map[string]any{"app": "pager-bot", "plan": plan})
}

// provisionBody is what Plugboard POSTs to the provisioning endpoint.
type provisionBody struct {
	Installation struct {
		UUID string `json:"uuid"`
	} `json:"installation"`
	Organization struct {
		Slug string `json:"slug"`
		Name string `json:"name"`
	} `json:"organization"`
	Plan *struct {
		Slug string `json:"slug"`
		Name string `json:"name"`
	} `json:"plan"`
	Scopes []string `json:"scopes"`
	Grant  struct {
		Code      string    `json:"code"`
		ExpiresAt time.Time `json:"expiresAt"`
	} `json:"grant"`
	CallbackURL string `json:"callbackUrl"`
}

// exchange trades an install code for the installation's token with
// x/oauth2, as a partner does.
func (w *provWorld) exchange(t *testing.T, code string) *client {
	t.Helper()
	cfg := &oauth2.Config{ClientID: w.app.ClientID, ClientSecret: w.app.ClientSecret, Endpoint: oauth2.Endpoint{TokenURL: w.p.URL + "/oauth/token"}}
	tok, err := cfg.Exchange(context.Background(), code)
	if err != nil {
		t.Fatalf("exchanging the provisioning code: %v", err)
	}
	return newClient(t, w.p, tok.AccessToken)
}

// noneLogged fails when any value appears in the platform's logs or in
// the customer's audit log.
func (w *provWorld) noneLogged(t *testing.T, values ...string) {
	t.Helper()
	logs := w.logs.String()
	if !strings.Contains(logs, "msg=request") {
		t.Fatal("the platform logged no requests: the scan would prove nothing")
	}
	audit := string(w.admin.do("GET", "/api/0/organizations/customer/audit-logs/?limit=100", nil).ok(t, 200, nil).Body)
	for _, v := range values {
		if strings.Contains(logs, v) {
			t.Errorf("a config var value appears in the logs: %q", v)
		}
		if strings.Contains(audit, v) {
			t.Errorf("a config var value appears in the audit log: %q", v)
		}
	}
}

// A 200 with config vars: the installation is installed at once with them,
// the admin reads the partner's message, the app hears installation.created,
// and the host reads the config vars with its service token.
func TestSynchronousProvisionWithConfigVars(t *testing.T) {
	w := newProvWorld(t)
	pagerURL, pagerToken := "https://pager.example/hooks/h7Yd2kQ", "pgtok_9f8e7d6c5b4a39281706"
	w.part.setAnswer(func(c provCall) (int, any, time.Duration) {
		return 200, map[string]any{"config": map[string]string{"PAGER_BOT_URL": pagerURL, "PAGER_BOT_TOKEN": pagerToken},
			"message": "Your pager is ready: calls go to the on-call rota.", "externalId": "acct_42", "configUrl": "https://pager.example/acct_42"}, 0
	})
	inst := decode[plugboard.Installation](t, w.install("pro"), 201)
	if inst.Status != plugboard.StatusInstalled || inst.ProvisionMessage != "Your pager is ready: calls go to the on-call rota." ||
		inst.ExternalID != "acct_42" || inst.ConfigURL != "https://pager.example/acct_42" || inst.RedirectURL != "" || inst.DateVerified == nil {
		t.Fatalf("installation %+v", inst)
	}

	// The one request: signed, idempotent on the installation, with what
	// the partner needs to set up.
	calls := w.part.all()
	if len(calls) != 1 {
		t.Fatalf("%d requests to the provisioning endpoint, want 1", len(calls))
	}
	c := calls[0]
	if c.Method != "POST" || c.Path != "/provision" || c.Header.Get("Idempotency-Key") != inst.UUID ||
		c.Header.Get("Plugboard-Event") != "installation.provision" || c.Header.Get("Plugboard-Installation") != inst.UUID ||
		c.Header.Get("Content-Type") != "application/json" {
		t.Errorf("request %s %s %v", c.Method, c.Path, c.Header)
	}
	verifyCall(t, w.secret, c)
	var body provisionBody
	if err := strictUnmarshal(c.Body, &body); err != nil {
		t.Fatalf("body %s: %v", c.Body, err)
	}
	if body.Installation.UUID != inst.UUID || body.Organization.Slug != "customer" || body.Organization.Name != "Customer" ||
		body.Plan == nil || body.Plan.Slug != "pro" || body.Plan.Name != "Pro" || !cmp.Equal(body.Scopes, []string{"org:read", "member:read"}) ||
		body.Grant.Code == "" || !body.Grant.ExpiresAt.After(time.Now()) || body.CallbackURL != w.p.URL+"/api/0/installations/"+inst.UUID+"/" {
		t.Errorf("body %+v", body)
	}
	appTok := w.exchange(t, body.Grant.Code)

	// installation.created follows the partner's yes, signed, with the code.
	created := w.hooks.waitEvent(t, "installation.created", 10*time.Second)
	verify(t, w.secret, created)
	var ev struct {
		Data struct {
			Code        string `json:"code"`
			Provisioned bool   `json:"provisioned"`
		} `json:"data"`
	}
	if err := json.Unmarshal(created.Body, &ev); err != nil || !strings.Contains(string(created.Body), inst.UUID) ||
		!ev.Data.Provisioned || ev.Data.Code != body.Grant.Code {
		t.Errorf("installation.created %s", created.Body)
	}

	// The host reads the config vars with its service token, the admin and
	// the app's token too; a member may not, a stranger sees nothing.
	want := map[string]string{"PAGER_BOT_URL": pagerURL, "PAGER_BOT_TOKEN": pagerToken}
	path := "/api/0/installations/" + inst.UUID + "/config-vars/"
	for name, c := range map[string]*client{"host": w.host, "admin": w.admin, "app": appTok} {
		got := decode[plugboard.ConfigVars](t, c.do("GET", path, nil), 200)
		if diff := cmp.Diff(want, got.Vars); diff != "" || got.DateUpdated == nil {
			t.Errorf("%s reads (-want +got):\n%s", name, diff)
		}
	}
	signUp(t, w.p, "mia@customer.example")
	w.admin.do("POST", "/api/0/organizations/customer/members/", map[string]string{"email": "mia@customer.example", "role": "member"}).ok(t, 201, nil)
	signIn(t, w.p, "mia@customer.example").do("GET", path, nil).problem(t, 403, "insufficient_role")
	signUp(t, w.p, "sam@elsewhere.example").do("GET", path, nil).problem(t, 404, "not_found")

	// The app's token changes them: a new one, one deleted; each change
	// audited by name.
	changed := decode[plugboard.ConfigVars](t, appTok.do("PUT", path, map[string]any{"vars": map[string]any{
		"PAGER_BOT_REGION": "eu-west", "PAGER_BOT_TOKEN": nil}}), 200)
	if diff := cmp.Diff(map[string]string{"PAGER_BOT_URL": pagerURL, "PAGER_BOT_REGION": "eu-west"}, changed.Vars); diff != "" {
		t.Errorf("after PUT (-want +got):\n%s", diff)
	}
	entries := decode[[]plugboard.AuditLogEntry](t, w.admin.do("GET", "/api/0/organizations/customer/audit-logs/?action=installation.config_vars", nil), 200)
	if len(entries) != 2 || entries[0].Actor.Type != "installation" || !cmp.Equal(entries[0].Data["changed"], []any{"PAGER_BOT_REGION", "PAGER_BOT_TOKEN"}) ||
		entries[1].Actor.Type != "app" || !cmp.Equal(entries[1].Data["changed"], []any{"PAGER_BOT_TOKEN", "PAGER_BOT_URL"}) {
		t.Errorf("audit %+v", entries)
	}
	w.noneLogged(t, pagerURL, pagerToken, "eu-west")
}

// Config vars are the app's to set, within its prefix and the limits; bad
// input changes nothing.
func TestConfigVarRules(t *testing.T) {
	w := newProvWorld(t)
	inst := decode[plugboard.Installation](t, w.install("free"), 201)
	var body provisionBody
	_ = json.Unmarshal(w.part.all()[0].Body, &body)
	appTok := w.exchange(t, body.Grant.Code)
	path := "/api/0/installations/" + inst.UUID + "/config-vars/"

	many := map[string]any{}
	for i := range 65 {
		many["PAGER_BOT_V"+strings.Repeat("X", i%3)+string(rune('A'+i%26))+string(rune('A'+i/26))] = "v"
	}
	tests := []struct {
		name  string
		vars  any
		field string
	}{
		{"another prefix", map[string]any{"OTHER_URL": "x"}, "vars.OTHER_URL"},
		{"lower case", map[string]any{"PAGER_BOT_url": "x"}, "vars.PAGER_BOT_url"},
		{"too long a value", map[string]any{"PAGER_BOT_BIG": strings.Repeat("x", 8<<10+1)}, "vars.PAGER_BOT_BIG"},
		{"too many", many, "vars"},
		{"no vars", nil, "vars"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := map[string]any{}
			if tt.vars != nil {
				req["vars"] = tt.vars
			}
			p := appTok.do("PUT", path, req).problem(t, 400, "invalid_input")
			if p.Fields[tt.field] == "" {
				t.Errorf("fields %v, want %s", p.Fields, tt.field)
			}
		})
	}
	// 8 KiB exactly is allowed.
	appTok.do("PUT", path, map[string]any{"vars": map[string]any{"PAGER_BOT_BIG": strings.Repeat("x", 8<<10)}}).ok(t, 200, nil)
	// Only the app's token sets them.
	w.admin.do("PUT", path, map[string]any{"vars": map[string]any{"PAGER_BOT_X": "1"}}).problem(t, 403, "app_only")
	w.host.do("PUT", path, map[string]any{"vars": map[string]any{"PAGER_BOT_X": "1"}}).problem(t, 403, "app_only")
	got := decode[plugboard.ConfigVars](t, w.host.do("GET", path, nil), 200)
	if len(got.Vars) != 1 {
		t.Errorf("vars %v after refusals", got.Vars)
	}
}

// A 202: the installation is provisioning until the partner sets its
// config vars and marks it installed with its token; installation.created
// follows then.
func TestAsynchronousProvision(t *testing.T) {
	w := newProvWorld(t)
	// The host hears of the config vars the partner sets.
	hostSink := newSink(t)
	ep := newHostEndpoint(t, w.op, hostSink, "installation.config_updated", "installation.created")
	w.part.setAnswer(func(provCall) (int, any, time.Duration) {
		return 202, map[string]any{"message": "Setting up your pager; this takes a minute."}, 0
	})
	inst := decode[plugboard.Installation](t, w.install("free"), 201)
	if inst.Status != plugboard.StatusProvisioning || inst.ProvisionMessage != "Setting up your pager; this takes a minute." {
		t.Fatalf("installation %+v", inst)
	}
	c := w.part.wait(t, "POST", "/provision", time.Second)
	verifyCall(t, w.secret, c)
	var body provisionBody
	_ = json.Unmarshal(c.Body, &body)
	time.Sleep(300 * time.Millisecond)
	if n := len(w.hooks.all()); n != 0 {
		t.Fatalf("the app heard %d webhooks while provisioning", n)
	}
	// Later, the partner finishes through the callback URL.
	appTok := w.exchange(t, body.Grant.Code)
	appTok.do("PUT", "/api/0/installations/"+inst.UUID+"/config-vars/", map[string]any{"vars": map[string]any{"PAGER_BOT_URL": "https://pager.example/x1"}}).ok(t, 200, nil)
	done := decode[plugboard.Installation](t, appTok.do("PUT", strings.TrimPrefix(body.CallbackURL, w.p.URL), map[string]any{"status": "installed"}), 200)
	if done.Status != plugboard.StatusInstalled || done.DateVerified == nil {
		t.Fatalf("installation %+v", done)
	}
	verify(t, w.secret, w.hooks.waitEvent(t, "installation.created", 10*time.Second))
	got := decode[plugboard.ConfigVars](t, w.host.do("GET", "/api/0/installations/"+inst.UUID+"/config-vars/", nil), 200)
	if got.Vars["PAGER_BOT_URL"] != "https://pager.example/x1" {
		t.Errorf("vars %v", got.Vars)
	}
	var changed struct {
		Installation map[string]any `json:"installation"`
		Organization orgRef         `json:"organization"`
		Changed      []string       `json:"changed"`
	}
	hit, _ := hostEvent(t, hostSink, ep.Secret, "installation.config_updated", &changed)
	org, _ := changed.Installation["organization"].(map[string]any)
	if changed.Installation["uuid"] != inst.UUID || !slices.Equal(changed.Changed, []string{"PAGER_BOT_URL"}) || org["slug"] != "customer" || changed.Organization.Slug != "customer" {
		t.Errorf("installation.config_updated data %+v", changed)
	}
	if strings.Contains(string(hit.Body), "pager.example/x1") {
		t.Errorf("the host was sent a config var's value: %s", hit.Body)
	}
	hostEvent(t, hostSink, ep.Secret, "installation.created", &map[string]any{})
	w.noneLogged(t, "https://pager.example/x1")
}

// An installation left provisioning past PLUGBOARD_PROVISION_DEADLINE
// fails, and the partner is sent the deprovision.
func TestProvisionDeadlineDeprovisions(t *testing.T) {
	w := newProvWorld(t, fastReconcile, func(c *config.Config) { c.ProvisionDeadline = time.Second })
	w.part.setAnswer(func(provCall) (int, any, time.Duration) { return 202, nil, 0 })
	inst := decode[plugboard.Installation](t, w.install("free"), 201)
	failed := waitForInstallation(t, w.admin, inst.UUID, func(i plugboard.Installation) bool { return i.Status == plugboard.StatusFailed })
	if failed.StatusReason != "provision_deadline" {
		t.Errorf("reason %q", failed.StatusReason)
	}
	verifyCall(t, w.secret, w.part.wait(t, "DELETE", "/provision/"+inst.UUID, 10*time.Second))
	if len(w.hooks.all()) != 0 {
		t.Errorf("the app heard of an installation it never finished: %d webhooks", len(w.hooks.all()))
	}
}

// waitFor polls an installation until cond holds.
func waitForInstallation(t *testing.T, c *client, uuid string, cond func(plugboard.Installation) bool) plugboard.Installation {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := getInstallation(t, c, uuid)
		if cond(got) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("installation never reached the state: %+v", got)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A 4xx: the admin reads the partner's message, and nothing stays behind.
func TestRefusedProvisionLeavesNothing(t *testing.T) {
	w := newProvWorld(t)
	msg := "Pager Bot has no data centre in your region yet."
	w.part.setAnswer(func(provCall) (int, any, time.Duration) { return 422, map[string]any{"message": msg}, 0 })
	before := map[string]int64{}
	for _, table := range []string{"installations", "grants", "tokens", "deliveries", "installation_config_vars"} {
		before[table] = count(t, w.p, table)
	}
	p := w.install("free").problem(t, 400, "provision_refused")
	if p.Detail != msg {
		t.Errorf("detail %q, want the partner's message", p.Detail)
	}
	verifyCall(t, w.secret, w.part.wait(t, "POST", "/provision", time.Second))
	for table, n := range before {
		if got := count(t, w.p, table); got != n {
			t.Errorf("%s: %d rows, %d before", table, got, n)
		}
	}
	if list := decode[[]plugboard.Installation](t, w.admin.do("GET", "/api/0/organizations/customer/installations/", nil), 200); len(list) != 0 {
		t.Errorf("installations %+v", list)
	}
	if app := decode[plugboard.App](t, w.dev.do("GET", "/api/0/apps/pager-bot/", nil), 200); app.Installs != 0 {
		t.Errorf("installs %d", app.Installs)
	}
	// The consent page shows it too, and the admin may try again.
	b := uiSignIn(t, w.p, "admin@customer.example")
	b.post("/marketplace/pager-bot/install", map[string][]string{"org": {"customer"}, "plan": {"free"}}).ok(400, "Pager Bot has no data centre in your region yet.")
	w.part.setAnswer(nil)
	decode[plugboard.Installation](t, w.install("free"), 201)
}

// A timeout, a 5xx or a connection error fails the install with the
// reason class, and the partner is sent the deprovision for what it may
// have made.
func TestFailedProvisionIsDeprovisioned(t *testing.T) {
	w := newProvWorld(t, func(c *config.Config) { c.ProvisionTimeout = 300 * time.Millisecond })
	closedURL := refusedURL(t) + "/provision"
	tests := []struct {
		name   string
		answer func(provCall) (int, any, time.Duration)
		url    string
		reason string
	}{
		{"timeout", func(provCall) (int, any, time.Duration) { return 200, map[string]any{}, 2 * time.Second }, "", "timeout"},
		{"5xx", func(provCall) (int, any, time.Duration) { return 503, map[string]any{"message": "down"}, 0 }, "", "http_status"},
		{"bad config", func(provCall) (int, any, time.Duration) {
			return 200, map[string]any{"config": map[string]string{"DATABASE_URL": "postgres://x"}}, 0
		}, "", "invalid_answer"},
		{"connection", nil, closedURL, "connection"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w.part.setAnswer(func(c provCall) (int, any, time.Duration) {
				if c.Method == "DELETE" {
					return 204, nil, 0
				}
				return tt.answer(c)
			})
			if tt.url != "" {
				applyReviewed(t, w.dev, w.op, "pager-bot", map[string]any{"provisionUrl": tt.url})
				// A closure: deferring applyReviewed(…) would send the PUT now.
				defer func() {
					applyReviewed(t, w.dev, w.op, "pager-bot", map[string]any{"provisionUrl": w.part.srv.URL + "/provision"})
				}()
			}
			p := w.install("free").problem(t, 502, "provision_failed")
			if p.Reason != tt.reason {
				t.Errorf("reason %q, want %s: %s", p.Reason, tt.reason, p.Detail)
			}
			list := decode[[]plugboard.Installation](t, w.admin.do("GET", "/api/0/organizations/customer/installations/?status=failed", nil), 200)
			if len(list) == 0 || list[0].StatusReason != "provision_failed" {
				t.Fatalf("failed installations %+v", list)
			}
			if tt.url != "" {
				return // the deprovision goes to the same closed port; it retries there
			}
			del := w.part.wait(t, "DELETE", "/provision/"+list[0].UUID, 10*time.Second)
			verifyCall(t, w.secret, del)
			if del.Header.Get("Plugboard-Event") != "installation.deprovision" {
				t.Errorf("headers %v", del.Header)
			}
		})
	}
	// The deprovisions are in the delivery log, under their own event name.
	deadline := time.Now().Add(10 * time.Second)
	for {
		list := decode[[]plugboard.Delivery](t, w.dev.do("GET", "/api/0/apps/pager-bot/deliveries/?eventType=installation.deprovision", nil), 200)
		ok := 0
		for _, d := range list {
			if d.Status == plugboard.DeliverySucceeded {
				ok++
			}
		}
		if ok == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deprovisions in the log: %+v", list)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := len(w.hooks.all()); n != 0 {
		t.Errorf("the app heard %d webhooks of installs that never happened", n)
	}
}

// A plan change asks the partner first: a yes applies it (with the new
// config and message), a no leaves the plan, a timeout too.
func TestPlanChangesThePartnerMayRefuse(t *testing.T) {
	w := newProvWorld(t, func(c *config.Config) { c.ProvisionTimeout = 500 * time.Millisecond })
	inst := decode[plugboard.Installation](t, w.install("free"), 201)
	w.hooks.waitEvent(t, "installation.created", 10*time.Second)
	path := "/api/0/installations/" + inst.UUID + "/"

	w.part.setAnswer(func(provCall) (int, any, time.Duration) {
		return 200, map[string]any{"message": "You are on Pro: 10 rotas.", "config": map[string]string{"PAGER_BOT_ROTAS": "10"}}, 0
	})
	moved := decode[plugboard.Installation](t, w.admin.do("PUT", path, map[string]any{"plan": "pro"}), 200)
	if moved.Plan == nil || moved.Plan.Slug != "pro" || moved.ProvisionMessage != "You are on Pro: 10 rotas." {
		t.Fatalf("installation %+v", moved)
	}
	put := w.part.wait(t, "PUT", "/provision/"+inst.UUID, time.Second)
	verifyCall(t, w.secret, put)
	var planBody struct {
		Plan struct{ Slug, Name string } `json:"plan"`
	}
	if err := json.Unmarshal(put.Body, &planBody); err != nil || planBody.Plan.Slug != "pro" || put.Header.Get("Plugboard-Event") != "installation.change_plan" {
		t.Errorf("plan change request %s %v", put.Body, put.Header)
	}
	verify(t, w.secret, w.hooks.waitEvent(t, "installation.updated", 10*time.Second))
	if vars := decode[plugboard.ConfigVars](t, w.host.do("GET", path+"config-vars/", nil), 200); vars.Vars["PAGER_BOT_ROTAS"] != "10" {
		t.Errorf("vars %v", vars.Vars)
	}

	w.part.setAnswer(func(provCall) (int, any, time.Duration) {
		return 422, map[string]any{"message": "Downgrades need a call with our sales team."}, 0
	})
	p := w.admin.do("PUT", path, map[string]any{"plan": "free"}).problem(t, 409, "plan_change_refused")
	if p.Detail != "Downgrades need a call with our sales team." {
		t.Errorf("detail %q", p.Detail)
	}
	w.part.setAnswer(func(provCall) (int, any, time.Duration) { return 200, nil, 2 * time.Second })
	if p := w.admin.do("PUT", path, map[string]any{"plan": "free"}).problem(t, 502, "plan_change_failed"); p.Reason != "timeout" {
		t.Errorf("reason %q", p.Reason)
	}
	if got := getInstallation(t, w.admin, inst.UUID); got.Plan == nil || got.Plan.Slug != "pro" {
		t.Errorf("plan after refusals %+v", got.Plan)
	}
	time.Sleep(300 * time.Millisecond)
	n := 0
	for _, h := range w.hooks.all() {
		if h.Header.Get("Plugboard-Event") == "installation.updated" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d installation.updated, want the one of the accepted change", n)
	}
}

// Uninstalling sends the signed deprovision as a delivery; one that keeps
// failing marks the installation out of sync, and reconciliation repairs
// it once the partner's endpoint works again.
func TestDeprovisionOnUninstallAndItsRepair(t *testing.T) {
	w := newProvWorld(t, fastReconcile)
	inst := decode[plugboard.Installation](t, w.install("free"), 201)
	w.admin.do("DELETE", "/api/0/installations/"+inst.UUID+"/", nil).ok(t, 204, nil)
	if got := getInstallation(t, w.admin, inst.UUID); got.Status != plugboard.StatusDeleted {
		t.Errorf("status %s at once", got.Status)
	}
	del := w.part.wait(t, "DELETE", "/provision/"+inst.UUID, 10*time.Second)
	verifyCall(t, w.secret, del)
	if del.Header.Get("Plugboard-Event") != "installation.deprovision" || !strings.Contains(string(del.Body), inst.UUID) {
		t.Errorf("deprovision %v %s", del.Header, del.Body)
	}
	w.hooks.waitEvent(t, "installation.deleted", 10*time.Second)

	// The partner's endpoint is down for the next uninstall.
	var down sync.Mutex
	failing := true
	w.part.setAnswer(func(c provCall) (int, any, time.Duration) {
		down.Lock()
		defer down.Unlock()
		if c.Method == "DELETE" && failing {
			return 500, map[string]any{"message": "database unavailable"}, 0
		}
		return 200, map[string]any{}, 0
	})
	again := decode[plugboard.Installation](t, w.install("free"), 201)
	w.admin.do("DELETE", "/api/0/installations/"+again.UUID+"/", nil).ok(t, 204, nil)
	out := waitForInstallation(t, w.admin, again.UUID, func(i plugboard.Installation) bool { return i.SyncState == plugboard.OutOfSync })
	if out.SyncReason != "deprovision_failed" || out.Status != plugboard.StatusDeleted {
		t.Fatalf("installation %+v", out)
	}
	if n := w.part.count("DELETE", "/provision/"+again.UUID); n < 3 {
		t.Errorf("%d attempts before giving up, want the retry schedule's 3", n)
	}
	down.Lock()
	failing = false
	down.Unlock()
	waitForInstallation(t, w.admin, again.UUID, func(i plugboard.Installation) bool { return i.SyncState == plugboard.InSync })
	ok := false
	for _, d := range decode[[]plugboard.Delivery](t, w.dev.do("GET", "/api/0/apps/pager-bot/deliveries/?eventType=installation.deprovision&installation="+again.UUID, nil), 200) {
		ok = ok || d.Status == plugboard.DeliverySucceeded
	}
	if !ok {
		t.Error("the log shows no deprovision that arrived")
	}
	runs := decode[[]plugboard.ReconciliationRun](t, w.dev.do("GET", "/api/0/apps/pager-bot/reconciliation-runs/?job=deprovision_delivery", nil), 200)
	if findingsOf(runs, "deprovision_failed") < 2 {
		t.Errorf("runs %+v", runs)
	}
}

// The pages: the consent says the partner is asked, the installed-app page
// and the list show "Setting up with {App}…" and the partner's message,
// then the config vars by name, values hidden, revealed to admins only
// (each reveal audited), never logged.
func TestInstalledAppPagesShowProvisioningAndConfigVars(t *testing.T) {
	w := newProvWorld(t)
	w.part.setAnswer(func(provCall) (int, any, time.Duration) {
		return 202, map[string]any{"message": "Creating your pager account."}, 0
	})
	b := uiSignIn(t, w.p, "admin@customer.example")
	b.get("/marketplace/pager-bot/install").ok(200, "data-provisioning-form", "Setting up with Pager Bot…", "asks Pager Bot to set itself up")
	pg := b.post("/marketplace/pager-bot/install", map[string][]string{"org": {"customer"}, "plan": {"free"}}).ok(200,
		"Setting up with Pager Bot…", "Creating your pager account.")
	uuid := strings.TrimPrefix(pg.URL.Path, "/orgs/customer/installations/")
	b.get("/orgs/customer/installations").ok(200, "Setting up with Pager Bot…")

	var body provisionBody
	_ = json.Unmarshal(w.part.all()[0].Body, &body)
	appTok := w.exchange(t, body.Grant.Code)
	secretValue := "https://pager.example/hooks/s3cr3t-Qz81"
	appTok.do("PUT", "/api/0/installations/"+uuid+"/config-vars/", map[string]any{"vars": map[string]any{"PAGER_BOT_URL": secretValue}}).ok(t, 200, nil)
	appTok.do("PUT", "/api/0/installations/"+uuid+"/", map[string]any{"status": "installed"}).ok(t, 200, nil)

	page := b.get("/orgs/customer/installations/"+uuid).ok(200, "Config vars", "PAGER_BOT_URL", "Reveal", "Pager Bot says:")
	if strings.Contains(page.Body, secretValue) || strings.Contains(page.Body, "Setting up with") {
		t.Fatal("the page shows the value before a reveal, or still says it is setting up")
	}
	b.post("/orgs/customer/installations/"+uuid+"/config-vars/reveal", map[string][]string{"name": {"PAGER_BOT_URL"}}).ok(200, secretValue)
	entries := decode[[]plugboard.AuditLogEntry](t, w.admin.do("GET", "/api/0/organizations/customer/audit-logs/?action=installation.config_var_reveal", nil), 200)
	if len(entries) != 1 || entries[0].Data["name"] != "PAGER_BOT_URL" || entries[0].Actor.Name != "admin@customer.example" {
		t.Errorf("audit %+v", entries)
	}
	b.post("/orgs/customer/installations/"+uuid+"/config-vars/reveal", map[string][]string{"name": {"PAGER_BOT_NONE"}}).ok(404)

	// A member sees the names and nothing to reveal them with.
	signUp(t, w.p, "mia@customer.example")
	w.admin.do("POST", "/api/0/organizations/customer/members/", map[string]string{"email": "mia@customer.example", "role": "member"}).ok(t, 201, nil)
	m := uiSignIn(t, w.p, "mia@customer.example")
	if p := m.get("/orgs/customer/installations/"+uuid).ok(200, "PAGER_BOT_URL").Body; strings.Contains(p, "Reveal") {
		t.Error("a member is offered to reveal values")
	}
	m.post("/orgs/customer/installations/"+uuid+"/config-vars/reveal", map[string][]string{"name": {"PAGER_BOT_URL"}}).ok(403)
	w.noneLogged(t, secretValue)
}

// The app settings form sets the provisioning URL and the config prefix.
func TestPartnerSettingsSetProvisioning(t *testing.T) {
	w := newProvWorld(t)
	b := uiSignIn(t, w.p, "dev@partner.example")
	b.get("/apps/pager-bot/settings").ok(200, `name="provisionUrl"`, "Provisioning URL", `name="configPrefix"`, `placeholder="PAGER_BOT_"`)
	form := appForm("Pager Bot")
	form.Set("provisionUrl", "not a url")
	form.Set("configPrefix", "pager_")
	pg := b.post("/apps/pager-bot/settings", form).ok(400)
	pg.fieldError("provisionUrl")
	pg.fieldError("configPrefix")
	form.Set("provisionUrl", "https://pager.example/provision")
	form.Set("configPrefix", "PAGER_")
	b.post("/apps/pager-bot/settings", form).ok(200, "Saved the settings", `value="https://pager.example/provision"`, `value="PAGER_"`)
	// The config prefix applies at once; the published app's provisioning
	// URL waits for review in its revision.
	app := decode[plugboard.App](t, w.dev.do("GET", "/api/0/apps/pager-bot/", nil), 200)
	if app.ConfigPrefix != "PAGER_" || app.PendingRevision == nil || app.PendingRevision.Changes.ProvisionURL == nil ||
		*app.PendingRevision.Changes.ProvisionURL != "https://pager.example/provision" {
		t.Errorf("app %+v", app)
	}
	w.dev.do("PUT", "/api/0/apps/pager-bot/", map[string]any{"configPrefix": ""}).ok(t, 200, nil)
	if app := decode[plugboard.App](t, w.dev.do("GET", "/api/0/apps/pager-bot/", nil), 200); app.ConfigPrefix != "PAGER_BOT_" {
		t.Errorf("an emptied prefix is %q, want the slug's", app.ConfigPrefix)
	}
}

// refusedURL is an http URL on loopback that refuses every connection for
// the whole test: a socket bound to the port and never listening, so no
// server started meanwhile can take the port over (a closed httptest
// server's port can be handed to the next one).
func refusedURL(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("http://127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
}
