package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Browser helpers, a few of web/browser_test.go's (that package's test
// files cannot be imported): Debian's Chromium, headless, with a profile of
// its own. Without Chromium the test skips, except under CI=true.

func chromium(t *testing.T) context.Context {
	t.Helper()
	exe := ""
	for _, p := range []string{os.Getenv("PLUGBOARD_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"} {
		if fi, err := os.Stat(p); p != "" && err == nil && !fi.IsDir() {
			exe = p
			break
		}
	}
	if exe == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("Chromium is required in CI for the browser tests: apt-get install chromium (or set PLUGBOARD_CHROMIUM)")
		}
		t.Skip("Chromium not installed (apt-get install chromium); browser tests skipped outside CI")
	}
	profile, err := os.MkdirTemp("", "plugboard-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.Flag("headless", true), chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-background-networking", true), chromedp.UserDataDir(profile))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc(); _ = os.RemoveAll(profile) })
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("starting %s: %v", exe, err)
	}
	return ctx
}

// run runs browser actions with a patient timeout (a loaded 2-core box).
func run(t *testing.T, b context.Context, actions ...chromedp.Action) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b, 60*time.Second)
	defer cancel()
	if err := chromedp.Run(ctx, actions...); err != nil {
		var loc, text string
		c, cancel := context.WithTimeout(b, 3*time.Second)
		defer cancel()
		_ = chromedp.Run(c, chromedp.Location(&loc), chromedp.Evaluate(`document.body ? document.body.innerText : ""`, &text))
		t.Fatalf("%v\nat %s:\n%s", err, loc, text)
	}
}

// bodyText waits until the page shows want and returns its text.
func bodyText(t *testing.T, ctx context.Context, want string) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var text, loc string
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		_ = chromedp.Run(c, chromedp.Location(&loc), chromedp.Evaluate(`document.body ? document.body.innerText : ""`, &text))
		cancel()
		if strings.Contains(text, want) {
			return text
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page never showed %q; at %s:\n%s", want, loc, text)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// tokenTap records the sign-on tokens posted to the partner's ssoUrl, so
// the test can post one again.
type tokenTap struct {
	next   http.Handler
	mu     sync.Mutex
	tokens []string
}

func (tt *tokenTap) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost && r.URL.Path == "/sso" {
		if err := r.ParseForm(); err == nil {
			tt.mu.Lock()
			tt.tokens = append(tt.tokens, r.PostForm.Get("token"))
			tt.mu.Unlock()
		}
	}
	tt.next.ServeHTTP(w, r)
}

// A member clicks "Open Example Partner" on the installed-app page in a
// real browser, and lands signed in on the example partner's dashboard,
// which shows their name and organization; the same token posted again is
// refused.
func TestExamplePartnerSingleSignOnInABrowser(t *testing.T) {
	p, base, ops := platform(t)
	ps := httptest.NewUnstartedServer(nil)
	ps.Start()
	defer ps.Close()
	call(t, "POST", base+"/users/", "", map[string]string{"email": "dev@partner.example", "password": "correct horse battery"}, nil)
	dev := signIn(t, base, "dev@partner.example")
	call(t, "POST", base+"/organizations/", dev, map[string]string{"name": "Partner"}, nil)
	var app struct{ ClientID, ClientSecret, WebhookSecret string }
	call(t, "POST", base+"/organizations/partner/apps/", dev, map[string]any{"name": "Example Partner", "overview": "The example.",
		"scopes": []string{"org:read"}, "redirectUrl": ps.URL + "/setup", "ssoUrl": ps.URL + "/sso"}, &app)
	partner := New(Config{PlugboardURL: p.URL, ClientID: app.ClientID, ClientSecret: app.ClientSecret, WebhookSecret: app.WebhookSecret,
		PublicURL: ps.URL}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	tap := &tokenTap{next: partner}
	ps.Config.Handler = tap
	call(t, "POST", base+"/apps/example-partner/plans/", dev, map[string]string{"name": "Free", "price": "0"}, nil)
	call(t, "POST", base+"/apps/example-partner/publish-requests/", dev, nil, nil)
	call(t, "PUT", base+"/apps/example-partner/", ops, map[string]string{"status": "published"}, nil)
	call(t, "POST", base+"/users/", "", map[string]string{"email": "admin@customer.example", "name": "Ada Admin", "password": "correct horse battery"}, nil)
	admin := signIn(t, base, "admin@customer.example")
	call(t, "POST", base+"/organizations/", admin, map[string]string{"name": "Customer"}, nil)
	var inst struct{ UUID string }
	call(t, "POST", base+"/organizations/customer/installations/", admin, map[string]string{"app": "example-partner", "plan": "free"}, &inst)
	call(t, "POST", base+"/users/", "", map[string]string{"email": "mia@customer.example", "name": "Mia Member", "password": "correct horse battery"}, nil)
	call(t, "POST", base+"/organizations/customer/members/", admin, map[string]string{"email": "mia@customer.example", "role": "member"}, nil)

	// Mia signs in to Plugboard, opens the installed app and clicks Open.
	b := chromium(t)
	run(t, b, chromedp.Navigate(p.URL+"/login"),
		chromedp.WaitVisible("#f-email", chromedp.ByQuery), chromedp.SetValue("#f-email", "mia@customer.example", chromedp.ByQuery),
		chromedp.SetValue("#f-password", "correct horse battery", chromedp.ByQuery),
		chromedp.Click(`//main//button[contains(normalize-space(.), "Sign in")]`, chromedp.BySearch))
	bodyText(t, b, "Installed apps") // signed in: at the organization's installed apps
	run(t, b, chromedp.Navigate(p.URL+"/orgs/customer/installations/"+inst.UUID))
	bodyText(t, b, "Open Example Partner")
	run(t, b, chromedp.Click(`//main//button[contains(normalize-space(.), "Open Example Partner")]`, chromedp.BySearch))

	// The browser carried the token to the partner, which signed her in.
	text := bodyText(t, b, "Welcome, Mia Member")
	for _, want := range []string{"mia@customer.example", "member of customer", inst.UUID} {
		if !strings.Contains(text, want) {
			t.Errorf("the dashboard lacks %q:\n%s", want, text)
		}
	}
	var loc string
	run(t, b, chromedp.Location(&loc))
	if loc != ps.URL+"/dashboard" {
		t.Errorf("at %s, want the partner's dashboard", loc)
	}

	// The token, posted again by anyone, signs nobody in.
	tap.mu.Lock()
	tokens := append([]string(nil), tap.tokens...)
	tap.mu.Unlock()
	if len(tokens) != 1 || tokens[0] == "" {
		t.Fatalf("tokens posted: %d", len(tokens))
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := noRedirect.PostForm(ps.URL+"/sso", url.Values{"token": {tokens[0]}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized || res.Header.Get("Set-Cookie") != "" {
		t.Errorf("a replayed token: %d, Set-Cookie %q", res.StatusCode, res.Header.Get("Set-Cookie"))
	}
	// And the dashboard needs the session.
	res, err = http.Get(ps.URL + "/dashboard")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Errorf("dashboard without a session: %d", res.StatusCode)
	}
}
