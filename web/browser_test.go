package web_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// Browser tests drive Debian's Chromium, headless, through the UI as a
// person would. Without Chromium they skip, except in CI (CI=true), where a
// missing browser fails the run.

// chromiumPath finds the browser: PLUGBOARD_CHROMIUM, then the usual paths.
func chromiumPath() string {
	for _, p := range []string{os.Getenv("PLUGBOARD_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"} {
		if p == "" {
			continue
		}
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	return ""
}

// startChrome starts a headless browser of its own (its own profile and
// cookies) for the test and returns its context.
func startChrome(t testing.TB) context.Context {
	t.Helper()
	exe := chromiumPath()
	if exe == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("Chromium is required in CI for the browser tests: apt-get install chromium (or set PLUGBOARD_CHROMIUM)")
		}
		t.Skip("Chromium not installed (apt-get install chromium); browser tests skipped outside CI")
	}
	// Not t.TempDir: Chromium's helpers may still be writing when the
	// test's cleanup runs, and a failed RemoveAll would fail the test.
	profile, err := os.MkdirTemp("", "plugboard-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("headless", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1280, 800),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		_ = os.RemoveAll(profile)
	})
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("starting %s: %v", exe, err)
	}
	return ctx
}

// tab is a browser, with its own profile, on the platform at base: one per
// person in a test.
type tab struct {
	t    testing.TB
	ctx  context.Context
	base string
}

func newTab(t testing.TB, base string) *tab {
	b := &tab{t: t, ctx: startChrome(t), base: base}
	b.run(emulation.SetDeviceMetricsOverride(1280, 800, 1, false))
	return b
}

// patience is how long a browser test waits for what a person would wait
// for: long enough for a machine at load average 8 on 2 cores.
const patience = 60 * time.Second

// run runs actions, failing the test with where the tab was and what it
// showed.
func (b *tab) run(actions ...chromedp.Action) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, patience)
	defer cancel()
	if err := chromedp.Run(ctx, actions...); err != nil {
		b.fail("%v", err)
	}
}

func (b *tab) fail(format string, args ...any) {
	b.t.Helper()
	var loc, text string
	ctx, cancel := context.WithTimeout(b.ctx, 3*time.Second)
	defer cancel()
	_ = chromedp.Run(ctx, chromedp.Location(&loc), chromedp.Evaluate(`document.body ? document.body.innerText : ""`, &text))
	var png []byte
	if chromedp.Run(ctx, chromedp.CaptureScreenshot(&png)) == nil {
		f := filepath.Join(os.TempDir(), "plugboard-"+strings.ReplaceAll(b.t.Name(), "/", "_")+".png")
		if os.WriteFile(f, png, 0o644) == nil {
			text += "\n(screenshot: " + f + ")"
		}
	}
	if len(text) > 2500 {
		text = text[:2500] + "…"
	}
	b.t.Fatalf("%s\nat %s:\n%s", fmt.Sprintf(format, args...), loc, text)
}

// open loads a page of the platform.
func (b *tab) open(path string) {
	b.t.Helper()
	b.run(chromedp.Navigate(b.base + path))
}

// fill sets an input's value the way typing would (query selector).
func (b *tab) fill(sel, value string) {
	b.t.Helper()
	b.run(chromedp.WaitVisible(sel, chromedp.ByQuery), chromedp.SetValue(sel, value, chromedp.ByQuery))
}

// click clicks the element sel (a query selector) finds.
func (b *tab) click(sel string) {
	b.t.Helper()
	b.runRetrying(chromedp.WaitVisible(sel, chromedp.ByQuery), chromedp.Click(sel, chromedp.ByQuery))
}

// runRetrying is run for actions on an element the page may replace
// between finding and using it (an htmx swap): a person would click again.
func (b *tab) runRetrying(actions ...chromedp.Action) {
	b.t.Helper()
	for try := 0; ; try++ {
		ctx, cancel := context.WithTimeout(b.ctx, patience)
		err := chromedp.Run(ctx, actions...)
		cancel()
		if err == nil {
			return
		}
		if try == 4 || !strings.Contains(err.Error(), "No node with given id") {
			b.fail("%v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// press clicks the button or link whose text contains label.
func (b *tab) press(label string) {
	b.t.Helper()
	xp := fmt.Sprintf(`//main//*[self::button or self::a][contains(normalize-space(.), %q)]`, label)
	b.runRetrying(chromedp.WaitVisible(xp, chromedp.BySearch), chromedp.Click(xp, chromedp.BySearch))
}

// see waits until the page shows every text.
func (b *tab) see(texts ...string) {
	b.t.Helper()
	deadline := time.Now().Add(patience)
	for {
		var body string
		ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
		_ = chromedp.Run(ctx, chromedp.Evaluate(`document.body ? document.body.innerText : ""`, &body))
		cancel()
		missing := ""
		for _, s := range texts {
			if !strings.Contains(body, s) {
				missing = s
				break
			}
		}
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			b.fail("the page never showed %q", missing)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// seeAfterReload reloads the page until it shows every text: for work
// that finishes in the background.
func (b *tab) seeAfterReload(texts ...string) {
	b.t.Helper()
	deadline := time.Now().Add(patience)
	for {
		var body string
		b.run(chromedp.Reload(), chromedp.Evaluate(`document.body ? document.body.innerText : ""`, &body))
		all := true
		for _, s := range texts {
			all = all && strings.Contains(body, s)
		}
		if all {
			return
		}
		if time.Now().After(deadline) {
			b.fail("the page never showed %q, however often reloaded", texts)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// at waits until the tab is at a URL whose path starts with prefix, and
// returns the URL.
func (b *tab) at(prefix string) string {
	b.t.Helper()
	deadline := time.Now().Add(patience)
	for {
		var loc string
		ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
		_ = chromedp.Run(ctx, chromedp.Location(&loc))
		cancel()
		path := strings.TrimPrefix(loc, b.base)
		if strings.HasPrefix(path, prefix) || strings.HasPrefix(loc, prefix) {
			return loc
		}
		if time.Now().After(deadline) {
			b.fail("never reached %s (at %s)", prefix, loc)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// screenshot saves the viewport (1280×800) as a PNG.
func (b *tab) screenshot(file string) {
	b.t.Helper()
	var png []byte
	b.run(chromedp.CaptureScreenshot(&png))
	if err := os.WriteFile(file, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// chromedpSelect chooses an option of a select by value.
func chromedpSelect(sel, value string) chromedp.Action {
	return chromedp.SetValue(sel, value, chromedp.ByQuery)
}
