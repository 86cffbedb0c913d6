package web_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/plugboard/plugboard/cmd/platform"
	"github.com/plugboard/plugboard/cmd/platform/apptest"
	"github.com/plugboard/plugboard/sdk/plugboard"
)

func publicApp(name string) map[string]any {
	return map[string]any{
		"name": name, "overview": "Pages the on-call person when something breaks.", "categories": []string{"alerting"},
		"scopes": []string{"org:read", "member:read"}, "events": []string{"installation.created"},
		"webhookUrl": "https://partner.example/webhooks", "redirectUrl": "https://partner.example/setup",
	}
}

// slugs lists the apps' slugs, in order.
func slugs(apps []plugboard.App) []string {
	out := make([]string, len(apps))
	for i, a := range apps {
		out[i] = a.Slug
	}
	return out
}

// The README's curl walk-through, as a test.
func TestPartnerPublishesAndDirectoryFindsIt(t *testing.T) {
	var logs bytes.Buffer
	p := apptest.StartLogged(t, platform.AllRoles, apptest.Config(t), slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	partner := signUp(t, p, "partner@example.com")
	partner.do("POST", "/api/0/organizations/", map[string]string{"name": "Pager Co"}).ok(t, 201, nil)

	res := partner.do("POST", "/api/0/organizations/pager-co/apps/", publicApp("Pager Bot"))
	created := decode[plugboard.App](t, res, 201)
	if res.Header.Get("Location") != "/api/0/apps/pager-bot/" {
		t.Errorf("Location %q", res.Header.Get("Location"))
	}
	clientSecret, webhookSecret := created.ClientSecret, created.WebhookSecret
	if created.Slug != "pager-bot" || created.Status != "draft" || created.Kind != "public" || created.ClientID == "" ||
		!strings.HasPrefix(clientSecret, "pbcs_") || !strings.HasPrefix(webhookSecret, "whsec_") {
		t.Fatalf("created %+v", created)
	}

	plan := decode[plugboard.Plan](t, partner.do("POST", "/api/0/apps/pager-bot/plans/", map[string]any{"name": "Team", "price": "29", "currency": "EUR", "interval": "year"}), 201)
	if plan.Slug != "team" || plan.Price != "29.00" || plan.IsFree {
		t.Errorf("plan %+v", plan)
	}
	plan = decode[plugboard.Plan](t, partner.do("POST", "/api/0/apps/pager-bot/plans/", map[string]any{"name": "Free"}), 201)
	if !plan.IsFree || plan.Price != "0.00" || plan.Currency != "USD" || plan.Interval != "month" {
		t.Errorf("free plan %+v", plan)
	}

	anon := newClient(t, p, "")
	if found := decode[[]plugboard.App](t, anon.do("GET", "/api/0/apps/?query=pager", nil), 200); len(found) != 0 {
		t.Fatalf("a draft is listed publicly: %+v", found)
	}
	anon.do("GET", "/api/0/apps/pager-bot/", nil).problem(t, 404, "not_found")

	if submitted := decode[plugboard.App](t, partner.do("POST", "/api/0/apps/pager-bot/publish-requests/", nil), 201); submitted.Status != "submitted" {
		t.Fatalf("submitted %+v", submitted)
	}
	partner.do("PUT", "/api/0/apps/pager-bot/", map[string]any{"status": "published"}).problem(t, 403, "operator_only")

	op := operator(t, p, "op@example.com")
	if queue := decode[[]plugboard.App](t, op.do("GET", "/api/0/apps/?status=submitted", nil), 200); len(queue) != 1 || queue[0].Slug != "pager-bot" {
		t.Fatalf("review queue %+v", queue)
	}
	op.do("PUT", "/api/0/apps/pager-bot/", map[string]any{"status": "rejected"}).problem(t, 400, "invalid_input")
	if published := decode[plugboard.App](t, op.do("PUT", "/api/0/apps/pager-bot/", map[string]any{"status": "published"}), 200); published.Status != "published" || published.DatePublished == nil {
		t.Fatalf("published %+v", published)
	}

	res = anon.do("GET", "/api/0/apps/?query=pager&expand=plans", nil)
	found := decode[[]plugboard.App](t, res, 200)
	if len(found) != 1 || found[0].Slug != "pager-bot" {
		t.Fatalf("directory %+v", found)
	}
	if plans := found[0].Plans; len(plans) != 2 || plans[0].Slug != "free" {
		t.Errorf("expanded plans %+v", plans)
	}
	// The public sees the listing, not the partner's URLs or client id.
	// Raw JSON on purpose: the members must be absent, which the typed
	// App cannot tell from empty.
	listing := res.rawItems(t)[0]
	for _, private := range []string{"clientId", "webhookUrl", "redirectUrl", "statusReason"} {
		if _, ok := listing[private]; ok {
			t.Errorf("public listing shows %s", private)
		}
	}

	// Secrets never appear again: not in reads, not in logs. Raw bodies on
	// purpose: a secret must be under no member at all, which only the
	// bytes show.
	var everything bytes.Buffer
	for _, path := range []string{"/api/0/apps/pager-bot/", "/api/0/organizations/pager-co/apps/", "/api/0/apps/?query=pager", "/api/0/organizations/pager-co/audit-logs/"} {
		everything.Write(partner.do("GET", path, nil).ok(t, 200, nil).Body)
	}
	rotated := decode[plugboard.ClientSecretRotation](t, partner.do("POST", "/api/0/apps/pager-bot/rotate-secret/", nil), 200)
	rotatedHook := decode[plugboard.WebhookSecretRotation](t, partner.do("POST", "/api/0/apps/pager-bot/rotate-webhook-secret/", nil), 200)
	everything.Write(partner.do("GET", "/api/0/apps/pager-bot/", nil).ok(t, 200, nil).Body)
	newSecrets := []string{clientSecret, webhookSecret, rotated.ClientSecret, rotatedHook.WebhookSecret}
	for _, s := range newSecrets {
		if strings.Contains(everything.String(), s) {
			t.Errorf("secret %s… shown after creation", s[:8])
		}
		if strings.Contains(logs.String(), s) {
			t.Errorf("secret %s… in logs", s[:8])
		}
	}
	if rotated.ClientSecret == clientSecret || rotatedHook.WebhookSecret == webhookSecret {
		t.Error("rotation returned the old secret")
	}
}

func TestWebhookSecretRotationKeepsOldSecretADay(t *testing.T) {
	p := apptest.Start(t)
	partner := signUp(t, p, "rot@example.com")
	partner.do("POST", "/api/0/organizations/", map[string]string{"name": "Rot"}).ok(t, 201, nil)
	created := decode[plugboard.App](t, partner.do("POST", "/api/0/organizations/rot/apps/", publicApp("Rotator")), 201)
	rotated := decode[plugboard.WebhookSecretRotation](t, partner.do("POST", "/api/0/apps/rotator/rotate-webhook-secret/", nil), 200)
	v, err := p.App.Marketplace.Apps.GetApp(t.Context(), signInActor(t, p, "rot@example.com"), "rotator")
	if err != nil {
		t.Fatal(err)
	}
	secrets, err := p.App.Marketplace.Apps.WebhookSecrets(&v.App)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprint([]string{rotated.WebhookSecret, created.WebhookSecret})
	if fmt.Sprint(secrets) != want {
		t.Errorf("signing secrets %v, want new then old", secrets)
	}
	var row struct{ WebhookSecret []byte }
	p.App.DB.Raw("SELECT webhook_secret FROM apps").Scan(&row)
	if len(row.WebhookSecret) == 0 || bytes.Contains(row.WebhookSecret, []byte("whsec_")) {
		t.Error("webhook secret stored in the clear")
	}
}

func TestAppValidationWritesNothing(t *testing.T) {
	p := apptest.Start(t)
	partner := signUp(t, p, "bad@example.com")
	partner.do("POST", "/api/0/organizations/", map[string]string{"name": "Bad Input"}).ok(t, 201, nil)
	partner.do("POST", "/api/0/organizations/bad-input/apps/", publicApp("Taken")).ok(t, 201, nil)
	// An event type that needs a scope, as the host would declare one.
	p.App.DB.Exec("INSERT INTO event_types (name, resource, scope) VALUES ('issue.created', 'issue', 'issue:read')")

	with := func(change map[string]any) map[string]any {
		body := publicApp("Fresh App")
		for k, v := range change {
			if v == nil {
				delete(body, k)
			} else {
				body[k] = v
			}
		}
		return body
	}
	tests := []struct {
		name   string
		body   any
		status int
		code   string
		field  string
	}{
		{"missing name", with(map[string]any{"name": nil}), 400, "invalid_input", "name"},
		{"wrong type", with(map[string]any{"verifyInstall": "yes"}), 400, "invalid_input", "verifyInstall"},
		{"scopes not a list", with(map[string]any{"scopes": "org:read"}), 400, "invalid_input", "scopes"},
		{"unknown field", with(map[string]any{"colour": "red"}), 400, "invalid_input", "colour"},
		{"duplicate slug", with(map[string]any{"name": "Taken"}), 409, "slug_taken", "slug"},
		{"bad slug", with(map[string]any{"slug": "Not A Slug"}), 400, "invalid_input", "slug"},
		{"invalid URL", with(map[string]any{"webhookUrl": "not a url"}), 400, "invalid_input", "webhookUrl"},
		{"URL with credentials", with(map[string]any{"redirectUrl": "https://u:p@x.example/"}), 400, "invalid_input", "redirectUrl"},
		{"unknown scope", with(map[string]any{"scopes": []string{"org:read", "root:all"}}), 400, "invalid_input", "scopes"},
		{"event not allowed by scopes", with(map[string]any{"events": []string{"issue.created"}}), 400, "invalid_input", "events"},
		{"unknown event", with(map[string]any{"events": []string{"nothing.happened"}}), 400, "invalid_input", "events"},
		{"webhook URL not http", with(map[string]any{"webhookUrl": "ftp://partner.example/hooks"}), 400, "invalid_input", "webhookUrl"},
		{"unknown category", with(map[string]any{"categories": []string{"toys"}}), 400, "invalid_input", "categories"},
		{"bad kind", with(map[string]any{"kind": "secret"}), 400, "invalid_input", "kind"},
		{"oversized body", with(map[string]any{"overview": strings.Repeat("x", 2<<20)}), 413, "body_too_large", ""},
		{"malformed JSON", `{"name": "x"`, 400, "malformed_json", ""},
	}
	tables := []string{"apps", "plans", "audit_logs"}
	before := map[string]int64{}
	for _, tb := range tables {
		before[tb] = count(t, p, tb)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := partner.do("POST", "/api/0/organizations/bad-input/apps/", tt.body).problem(t, tt.status, tt.code)
			if tt.field != "" && f.Fields[tt.field] == "" {
				t.Errorf("fields %v lack %s", f.Fields, tt.field)
			}
		})
	}
	// The right scope makes the event acceptable.
	okBody := with(map[string]any{"scopes": []string{"issue:read"}, "events": []string{"issue.created"}})
	for _, tb := range tables {
		if n := count(t, p, tb); n != before[tb] {
			t.Errorf("%s: %d rows after bad requests, want %d", tb, n, before[tb])
		}
	}
	partner.do("POST", "/api/0/organizations/bad-input/apps/", okBody).ok(t, 201, nil)

	// Updates and plans validate the same way.
	partner.do("PUT", "/api/0/apps/taken/", map[string]any{"events": []string{"issue.created"}}).problem(t, 400, "invalid_input")
	partner.do("PUT", "/api/0/apps/taken/", map[string]any{"kind": "internal"}).problem(t, 400, "invalid_input")
	partner.do("POST", "/api/0/apps/taken/plans/", map[string]any{"name": "Pro", "price": "9.999"}).problem(t, 400, "invalid_input")
	partner.do("POST", "/api/0/apps/taken/plans/", map[string]any{"name": "Pro", "price": 9}).problem(t, 400, "invalid_input")
	partner.do("POST", "/api/0/apps/taken/plans/", map[string]any{"name": "Pro", "currency": "dollars"}).problem(t, 400, "invalid_input")
	partner.do("POST", "/api/0/apps/taken/plans/", map[string]any{"name": "Pro", "interval": "week"}).problem(t, 400, "invalid_input")
	if n := count(t, p, "plans"); n != 0 {
		t.Errorf("bad plans wrote %d rows", n)
	}
}

func TestPlans(t *testing.T) {
	p := apptest.Start(t)
	partner := signUp(t, p, "plans@example.com")
	partner.do("POST", "/api/0/organizations/", map[string]string{"name": "Planner"}).ok(t, 201, nil)
	partner.do("POST", "/api/0/organizations/planner/apps/", publicApp("Planned")).ok(t, 201, nil)
	partner.do("POST", "/api/0/apps/planned/plans/", map[string]any{"name": "Pro", "price": "10"}).ok(t, 201, nil)
	partner.do("POST", "/api/0/apps/planned/plans/", map[string]any{"name": "Pro"}).problem(t, 409, "slug_taken")
	upd := decode[plugboard.Plan](t, partner.do("PUT", "/api/0/apps/planned/plans/pro/", map[string]any{"price": "12.5", "description": "More"}), 200)
	if upd.Price != "12.50" || upd.Description != "More" || upd.Name != "Pro" {
		t.Errorf("updated %+v", upd)
	}
	partner.do("DELETE", "/api/0/apps/planned/plans/pro/", nil).problem(t, 409, "last_plan")
	partner.do("POST", "/api/0/apps/planned/plans/", map[string]any{"name": "Basic"}).ok(t, 201, nil)
	partner.do("DELETE", "/api/0/apps/planned/plans/pro/", nil).ok(t, 204, nil)
	partner.do("DELETE", "/api/0/apps/planned/plans/pro/", nil).problem(t, 404, "not_found")
	if plans := decode[[]plugboard.Plan](t, partner.do("GET", "/api/0/apps/planned/plans/", nil), 200); len(plans) != 1 || plans[0].Slug != "basic" {
		t.Errorf("plans %+v", plans)
	}
}

func TestDirectory(t *testing.T) {
	p := apptest.Start(t)
	partner := signUp(t, p, "dir@example.com")
	op := operator(t, p, "dirop@example.com")
	partner.do("POST", "/api/0/organizations/", map[string]string{"name": "Dir"}).ok(t, 201, nil)
	publish := func(name string, categories ...string) {
		body := publicApp(name)
		body["categories"] = categories
		a := decode[plugboard.App](t, partner.do("POST", "/api/0/organizations/dir/apps/", body), 201)
		partner.do("POST", "/api/0/apps/"+a.Slug+"/plans/", map[string]any{"name": "Free"}).ok(t, 201, nil) // review needs a plan
		partner.do("POST", "/api/0/apps/"+a.Slug+"/publish-requests/", nil).ok(t, 201, nil)
		op.do("PUT", "/api/0/apps/"+a.Slug+"/", map[string]any{"status": "published"}).ok(t, 200, nil)
	}
	publish("Charlie Chat", "communication")
	publish("Alpha Alerts", "alerting")
	publish("Bravo Builds", "ci-cd")
	p.App.DB.Exec("UPDATE apps SET installs_count = 7 WHERE slug = 'bravo-builds'")
	partner.do("POST", "/api/0/organizations/dir/apps/", publicApp("Draft Thing")).ok(t, 201, nil)
	partner.do("POST", "/api/0/organizations/dir/apps/", map[string]any{"name": "Internal Tool", "kind": "internal"}).ok(t, 201, nil)

	names := func(c *client, q string) string {
		return strings.Join(slugs(decode[[]plugboard.App](t, c.do("GET", "/api/0/apps/"+q, nil), 200)), " ")
	}
	anon := newClient(t, p, "")
	stranger := signUp(t, p, "stranger@example.com")
	for _, tt := range []struct {
		c    *client
		q    string
		want string
	}{
		{anon, "", "alpha-alerts bravo-builds charlie-chat"},
		{stranger, "", "alpha-alerts bravo-builds charlie-chat"},
		{partner, "", "alpha-alerts bravo-builds charlie-chat draft-thing"},   // its own unpublished public app
		{anon, "?sortBy=-installs", "bravo-builds alpha-alerts charlie-chat"}, // ties: newest first
		{anon, "?sortBy=-dateCreated", "bravo-builds alpha-alerts charlie-chat"},
		{anon, "?category=alerting", "alpha-alerts"},
		{anon, "?query=BUILD", "bravo-builds"},
		{anon, "?query=%25", ""},
		{op, "?status=draft", "draft-thing"},
	} {
		if got := names(tt.c, tt.q); got != tt.want {
			t.Errorf("GET /api/0/apps/%s = %q, want %q", tt.q, got, tt.want)
		}
	}
	// Paging through a sort by something other than the id.
	res := anon.do("GET", "/api/0/apps/?sortBy=-installs&limit=2", nil)
	first := decode[[]plugboard.App](t, res, 200)
	next := links(t, res.Header.Get("Link"))["next"]
	second := decode[[]plugboard.App](t, anon.do("GET", next[0], nil), 200)
	if len(first) != 2 || len(second) != 1 || second[0].Slug != "charlie-chat" {
		t.Errorf("pages %v / %v", slugs(first), slugs(second))
	}

	anon.do("GET", "/api/0/apps/?sortBy=popularity", nil).problem(t, 400, "invalid_input")
	anon.do("GET", "/api/0/apps/?category=toys", nil).problem(t, 400, "invalid_input")
	anon.do("GET", "/api/0/apps/?expand=organization", nil).problem(t, 400, "invalid_input")
	anon.do("GET", "/api/0/apps/?status=submitted", nil).problem(t, 400, "invalid_input")
	anon.do("GET", "/api/0/apps/internal-tool/", nil).problem(t, 404, "not_found")
	stranger.do("GET", "/api/0/apps/internal-tool/", nil).problem(t, 404, "not_found")
	partner.do("GET", "/api/0/apps/internal-tool/", nil).ok(t, 200, nil)
	partner.do("POST", "/api/0/apps/internal-tool/publish-requests/", nil).problem(t, 409, "not_public")

	if scopes := decode[[]plugboard.Scope](t, anon.do("GET", "/api/0/scopes/", nil), 200); len(scopes) < 8 {
		t.Errorf("scopes %+v", scopes)
	}
}
