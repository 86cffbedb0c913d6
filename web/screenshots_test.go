package web_test

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

// TestScreenshots opens the main pages in Chromium at 1280×800 on the
// showcase data and saves each as a PNG: into PLUGBOARD_SCREENSHOTS when set
// (`make screenshots` writes docs/screenshots), otherwise into a temporary
// folder, checking every page rendered.
func TestScreenshots(t *testing.T) {
	dir := os.Getenv("PLUGBOARD_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	chrome := newTab(t, "") // started before the data, so a missing browser fails fast
	sc := seedShowcase(t, 2000)
	chrome.base = sc.p.URL

	signInTab := func(b *tab, email string) {
		b.open("/login?next=/marketplace")
		b.fill("#f-email", email)
		b.fill("#f-password", "correct horse battery")
		b.press("Sign in")
		b.at("/marketplace")
	}
	shots := []struct {
		who, file, path, see string
	}{
		{"", "sign-in.png", "/login", "Sign in to Plugboard"},
		{"sam@northwind.example", "marketplace.png", "/marketplace", "PagerPal"},
		{"sam@northwind.example", "marketplace-app.png", "/marketplace/pagerpal", "Permissions"},
		{"sam@northwind.example", "install-consent.png", "/marketplace/" + sc.uninstalled + "/install", "Approve and install"},
		{"sam@northwind.example", "installed-apps.png", "/orgs/" + sc.custOrg + "/installations", "Flow"},
		{"sam@northwind.example", "installation.png", "/orgs/" + sc.custOrg + "/installations/" + sc.installation, "Flow"},
		{"sam@northwind.example", "members.png", "/orgs/" + sc.custOrg + "/members", "Kim Alvarez"},
		{"sam@northwind.example", "audit-log.png", "/orgs/" + sc.custOrg + "/audit-log", "installation"},
		{"dana@acme.example", "partner-apps.png", "/orgs/" + sc.devOrg + "/apps", "Standup Bot"},
		{"dana@acme.example", "app-overview.png", "/apps/" + sc.app + "/", "Flow"},
		{"dana@acme.example", "app-settings.png", "/apps/" + sc.app + "/settings", "Webhook URL"},
		{"dana@acme.example", "app-installations.png", "/apps/" + sc.app + "/installations", "Northwind Traders"},
		{"dana@acme.example", "deliveries.png", "/apps/" + sc.app + "/deliveries", "incident.opened"},
		{"dana@acme.example", "delivery.png", "/apps/" + sc.app + "/deliveries/" + sc.delivery, "webhook-signature"},
		{"dana@acme.example", "health.png", "/apps/" + sc.app + "/health?range=7d", "p95"},
		{"olive@plugboard.example", "admin-review.png", "/admin/review", "Standup Bot"},
		{"olive@plugboard.example", "admin-event-types.png", "/admin/event-types", "incident.opened"},
		{"olive@plugboard.example", "admin-reconciliation.png", "/admin/reconciliation", "Partner sync"},
	}
	tabs := map[string]*tab{"": chrome}
	for _, s := range shots {
		b, ok := tabs[s.who]
		if !ok {
			b = newTab(t, sc.p.URL)
			signInTab(b, s.who)
			tabs[s.who] = b
		}
		b.open(s.path)
		b.see(s.see)
		file := filepath.Join(dir, s.file)
		b.screenshot(file)
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("%s: %v", s.file, err)
		}
		if b := img.Bounds(); b.Dx() != 1280 || b.Dy() != 800 {
			t.Errorf("%s is %dx%d, want 1280x800", s.file, b.Dx(), b.Dy())
		}
	}
}
