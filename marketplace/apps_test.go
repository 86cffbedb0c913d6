package marketplace_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/plugboard/plugboard/app/page"
	"github.com/plugboard/plugboard/marketplace"
	"github.com/plugboard/plugboard/webhooks"
)

// studio is an organization "acme" with an owner, an admin and a member, an
// operator, and the host event type issue.created (scope issue:read).
type studio struct {
	*env
	op, owner, admin, member, stranger marketplace.Actor
}

func newStudio(t *testing.T, opts ...option) *studio {
	t.Helper()
	e := newTestServices(t, opts...)
	s := &studio{env: e}
	s.op = e.mustOperator("ops@plugboard.example")
	s.owner = e.mustUser("owner@acme.example")
	s.admin = e.mustUser("admin@acme.example")
	s.member = e.mustUser("member@acme.example")
	s.stranger = e.mustUser("stranger@other.example")
	e.mustOrg(s.owner, "Acme")
	e.mustMember(s.owner, "acme", s.admin, marketplace.RoleAdmin)
	e.mustMember(s.owner, "acme", s.member, marketplace.RoleMember)
	e.mustEventType(s.op, "issue.created", "issue:read", `{"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}}}`)
	return s
}

func TestCreateAppValidation(t *testing.T) {
	s := newStudio(t)
	with := func(change func(*marketplace.AppFields)) marketplace.AppFields {
		f := appFields("Good App")
		change(&f)
		return f
	}
	tests := []struct {
		name   string
		actor  marketplace.Actor
		in     marketplace.AppFields
		code   string
		fields []string
	}{
		{"no name", s.admin, with(func(f *marketplace.AppFields) { f.Name = nil }), "invalid_input", []string{"name"}},
		{"name too long", s.admin, with(func(f *marketplace.AppFields) { f.Name = ptr(strings.Repeat("a", 81)) }), "invalid_input", []string{"name"}},
		{"bad slug", s.admin, with(func(f *marketplace.AppFields) { f.Slug = ptr("Bad Slug") }), "invalid_input", []string{"slug"}},
		{"unknown kind", s.admin, with(func(f *marketplace.AppFields) { f.Kind = ptr("secret") }), "invalid_input", []string{"kind"}},
		{"author too long", s.admin, with(func(f *marketplace.AppFields) { f.Author = ptr(strings.Repeat("a", 101)) }), "invalid_input", []string{"author"}},
		{"unknown category", s.admin, with(func(f *marketplace.AppFields) { f.Categories = ptr([]string{"games"}) }), "invalid_input", []string{"categories"}},
		{"unknown scope", s.admin, with(func(f *marketplace.AppFields) { f.Scopes = ptr([]string{"repo:write"}) }), "invalid_input", []string{"scopes"}},
		{"unknown event", s.admin, with(func(f *marketplace.AppFields) { f.Events = ptr([]string{"nope.happened"}) }), "invalid_input", []string{"events"}},
		{"event without its scope", s.admin, with(func(f *marketplace.AppFields) { f.Events = ptr([]string{"issue.created"}) }), "invalid_input", []string{"events"}},
		{"webhook URL not http", s.admin, with(func(f *marketplace.AppFields) { f.WebhookURL = ptr("ftp://partner.example/hooks") }), "invalid_input", []string{"webhookUrl"}},
		{"redirect URL with credentials", s.admin, with(func(f *marketplace.AppFields) { f.RedirectURL = ptr("https://u:p@partner.example/") }), "invalid_input", []string{"redirectUrl"}},
		{"logo URL with fragment", s.admin, with(func(f *marketplace.AppFields) { f.LogoURL = ptr("https://partner.example/logo.png#x") }), "invalid_input", []string{"logoUrl"}},
		{"sync URL relative", s.admin, with(func(f *marketplace.AppFields) { f.SyncURL = ptr("/sync") }), "invalid_input", []string{"syncUrl"}},
		{"public key not PEM", s.admin, with(func(f *marketplace.AppFields) { f.PublicKey = ptr("ssh-ed25519 AAAA") }), "invalid_input", []string{"publicKey"}},
		{"several at once", s.admin, marketplace.AppFields{Kind: ptr("x"), Categories: ptr([]string{"games"}), WebhookURL: ptr("nope")},
			"invalid_input", []string{"name", "kind", "categories", "webhookUrl"}},
		{"member", s.member, appFields("Good App"), "insufficient_role", nil},
		{"stranger", s.stranger, appFields("Good App"), "not_found", nil},
		{"operator outside the organization", s.op, appFields("Good App"), "not_found", nil},
		{"anonymous", marketplace.Anonymous, appFields("Good App"), "not_authenticated", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Apps.CreateApp(s.ctx, tt.actor, "acme", tt.in)
			wantCode(t, err, tt.code)
			if tt.fields != nil {
				wantFields(t, err, tt.fields...)
			}
		})
	}
	if n := s.count("apps", ""); n != 0 {
		t.Fatalf("refused apps were stored: %d rows", n)
	}

	app := s.mustApp(s.admin, "acme", appFields("Good App"))
	want := marketplace.App{OrganizationID: app.OrganizationID, Slug: "good-app", Name: "Good App", Kind: marketplace.KindPublic,
		Status: marketplace.StatusDraft, Author: "Acme", Overview: "Does useful things with Good App.",
		Categories: marketplace.Strings{"developer-tools"}, Scopes: marketplace.Strings{"org:read"}, Events: marketplace.Strings{},
		WebhookURL: "https://partner.example/hooks", RedirectURL: "https://partner.example/setup"}
	got := app.App
	got.ID, got.ClientID, got.ClientSecretHash, got.ClientSecretSealed, got.WebhookSecret = 0, "", nil, nil, nil
	got.CreatedBy, got.CreatedAt, got.UpdatedAt, got.Organization = nil, time.Time{}, time.Time{}, nil
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("created app (-want +got):\n%s", diff)
	}
	if len(app.ClientID) != 32 || !strings.HasPrefix(app.ClientSecret, "pbcs_") || !strings.HasPrefix(app.WebhookSecret, webhooks.SecretPrefix) {
		t.Errorf("credentials: client id %q, secret %q, webhook secret %q", app.ClientID, app.ClientSecret, app.WebhookSecret)
	}
	if app.Installation != nil || app.Token != "" {
		t.Errorf("a public app was installed on creation: %+v", app.Installation)
	}
	if n := s.count("audit_logs", "action = 'app.create' AND target_label = 'good-app' AND actor_label = 'admin@acme.example'"); n != 1 {
		t.Errorf("app.create audit entries = %d, want 1", n)
	}
	_, err := s.Apps.CreateApp(s.ctx, s.admin, "acme", appFields("Good App"))
	wantCode(t, err, "slug_taken")
	wantFields(t, err, "slug")
}

func TestAppScopesAndEventsCheckedAgainstCatalogue(t *testing.T) {
	s := newStudio(t)
	in := appFields("Tracker")
	in.Scopes, in.Events = ptr([]string{"org:read", "ticket:read"}), ptr([]string{"ticket.opened"})

	_, err := s.Apps.CreateApp(s.ctx, s.admin, "acme", in)
	wantFields(t, err, "scopes", "events")

	// Only operators add to the catalogue, and it checks what they add.
	_, err = s.Events.CreateEventType(s.ctx, s.owner, webhooks.NewEventType{Name: "ticket.opened", Scope: "ticket:read"})
	wantCode(t, err, "operator_only")
	_, err = s.Events.CreateEventType(s.ctx, s.op, webhooks.NewEventType{Name: "Ticket Opened"})
	wantFields(t, err, "name", "scope")
	_, err = s.Events.CreateEventType(s.ctx, s.op, webhooks.NewEventType{Name: "ticket.opened", Scope: "ticket:read", Schema: []byte(`{"type": 12}`)})
	wantFields(t, err, "schema")
	et := s.mustEventType(s.op, "ticket.opened", "ticket:read", "")
	if et.Resource != "ticket" || et.Builtin {
		t.Errorf("event type = %+v", et)
	}
	_, err = s.Events.CreateEventType(s.ctx, s.op, webhooks.NewEventType{Name: "ticket.opened", Scope: "ticket:read"})
	wantCode(t, err, "name_taken")

	scopes, err := s.Events.Scopes(s.ctx)
	wantCode(t, err, "")
	var extra []string
	for _, sc := range scopes {
		if !sc.Builtin {
			extra = append(extra, sc.Name+": "+sc.Description)
		}
	}
	if diff := cmp.Diff([]string{"issue:read: Receive issue events", "ticket:read: Receive ticket events"}, extra); diff != "" {
		t.Errorf("scopes from event types (-want +got):\n%s", diff)
	}

	app, err := s.Apps.CreateApp(s.ctx, s.admin, "acme", in)
	wantCode(t, err, "")
	if diff := cmp.Diff(marketplace.Strings{"ticket.opened"}, app.Events); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	// The host's platform events are not for apps.
	_, err = s.Apps.UpdateApp(s.ctx, s.admin, app.Slug, marketplace.AppUpdate{AppFields: marketplace.AppFields{Events: ptr([]string{"app.published"})}})
	wantFields(t, err, "events")
	// Dropping the scope while keeping its event is refused.
	_, err = s.Apps.UpdateApp(s.ctx, s.admin, app.Slug, marketplace.AppUpdate{AppFields: marketplace.AppFields{Scopes: ptr([]string{"org:read"})}})
	wantFields(t, err, "events")

	types, err := s.Events.ListEventTypes(s.ctx, s.member)
	wantCode(t, err, "")
	var names []string
	for _, et := range types {
		names = append(names, et.Name)
	}
	want := []string{"app.published", "app.unpublished", "installation.config_updated", "installation.created", "installation.deleted", "installation.deprovision", "installation.permissions_accepted",
		"installation.suspended", "installation.trial_will_end", "installation.unsuspended", "installation.updated", "invoice.created", "issue.created", "ticket.opened", "webhook.test"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("catalogue (-want +got):\n%s", diff)
	}
	_, err = s.Events.ListEventTypes(s.ctx, marketplace.Anonymous)
	wantCode(t, err, "not_authenticated")
}

func TestUpdateApp(t *testing.T) {
	s := newStudio(t)
	app := s.mustApp(s.admin, "acme", appFields("Editable"))
	s.clock.Advance(time.Minute)

	tests := []struct {
		name   string
		actor  marketplace.Actor
		u      marketplace.AppUpdate
		code   string
		fields []string
	}{
		{"member", s.member, marketplace.AppUpdate{AppFields: marketplace.AppFields{Name: ptr("Mine")}}, "insufficient_role", nil},
		{"stranger", s.stranger, marketplace.AppUpdate{AppFields: marketplace.AppFields{Name: ptr("Mine")}}, "not_found", nil},
		{"operator", s.op, marketplace.AppUpdate{AppFields: marketplace.AppFields{Name: ptr("Mine")}}, "not_owner", nil},
		{"kind cannot change", s.admin, marketplace.AppUpdate{AppFields: marketplace.AppFields{Kind: ptr(marketplace.KindInternal)}}, "invalid_input", []string{"kind"}},
		{"bad URL", s.admin, marketplace.AppUpdate{AppFields: marketplace.AppFields{RedirectURL: ptr("partner.example")}}, "invalid_input", []string{"redirectUrl"}},
		{"empty name", s.admin, marketplace.AppUpdate{AppFields: marketplace.AppFields{Name: ptr(" ")}}, "invalid_input", []string{"name"}},
		{"rate limit out of range", s.admin, marketplace.AppUpdate{WebhookRateLimit: ptr(0)}, "invalid_input", []string{"webhookRateLimit"}},
		{"unknown webhook status", s.admin, marketplace.AppUpdate{WebhookStatus: ptr("paused")}, "invalid_input", []string{"webhookStatus"}},
		{"status reason alone", s.admin, marketplace.AppUpdate{StatusReason: ptr("why")}, "invalid_input", []string{"statusReason"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Apps.UpdateApp(s.ctx, tt.actor, app.Slug, tt.u)
			wantCode(t, err, tt.code)
			if tt.fields != nil {
				wantFields(t, err, tt.fields...)
			}
		})
	}

	v, err := s.Apps.UpdateApp(s.ctx, s.admin, app.Slug, marketplace.AppUpdate{AppFields: marketplace.AppFields{
		Name: ptr("Edited"), Overview: ptr("New words."), VerifyInstall: ptr(true), Categories: ptr([]string{"security", "security", "data"})}})
	wantCode(t, err, "")
	if v.Name != "Edited" || v.Slug != "editable" || v.Overview != "New words." || !v.VerifyInstall {
		t.Errorf("updated app = %+v", v.App)
	}
	if diff := cmp.Diff(marketplace.Strings{"security", "data"}, v.Categories); diff != "" {
		t.Errorf("categories (-want +got):\n%s", diff)
	}
	var entry marketplace.AuditEntry
	s.db.Where("action = 'app.update'").Order("id DESC").Take(&entry)
	if diff := cmp.Diff(map[string]any{"fields": []any{"categories", "name", "overview", "verifyInstall"}}, map[string]any(entry.Data)); diff != "" {
		t.Errorf("app.update audit data (-want +got):\n%s", diff)
	}

	// The endpoint's status and limits go through the webhooks domain.
	v, err = s.Apps.UpdateApp(s.ctx, s.admin, app.Slug, marketplace.AppUpdate{WebhookStatus: ptr("disabled"), WebhookRateLimit: ptr(7)})
	wantCode(t, err, "")
	if v.WebhookStatus != "disabled" || v.WebhookRateLimit != 7 || !strings.Contains(v.WebhookStatusReason, "admin@acme.example") {
		t.Errorf("endpoint: status %q (%q), rate %d", v.WebhookStatus, v.WebhookStatusReason, v.WebhookRateLimit)
	}
	got, err := s.Apps.GetApp(s.ctx, s.member, app.Slug)
	wantCode(t, err, "")
	if got.WebhookStatus != "disabled" || got.Name != "Edited" || !got.Private || got.Role != marketplace.RoleMember {
		t.Errorf("member's view: %+v", got)
	}
}

func TestSubmitAppRequirements(t *testing.T) {
	s := newStudio(t)
	bare := s.mustApp(s.admin, "acme", marketplace.AppFields{Name: ptr("Bare")})

	_, err := s.Apps.SubmitApp(s.ctx, s.member, bare.Slug)
	wantCode(t, err, "insufficient_role")
	_, err = s.Apps.SubmitApp(s.ctx, s.admin, bare.Slug)
	wantCode(t, err, "invalid_input")
	wantFields(t, err, "redirectUrl", "overview", "scopes", "plans")

	full := appFields("Bare")
	full.Name = nil
	if _, err := s.Apps.UpdateApp(s.ctx, s.admin, bare.Slug, marketplace.AppUpdate{AppFields: full}); err != nil {
		t.Fatal(err)
	}
	// Complete but for a plan: organizations install a plan, so review waits for one.
	_, err = s.Apps.SubmitApp(s.ctx, s.admin, bare.Slug)
	wantFields(t, err, "plans")
	if msg := fieldsOf(err)["plans"]; !strings.Contains(msg, "at least one plan") {
		t.Errorf("plans: %q", msg)
	}
	s.mustPlan(s.admin, bare.Slug, "Free", "0")
	s.clock.Advance(time.Hour)
	v, err := s.Apps.SubmitApp(s.ctx, s.admin, bare.Slug)
	wantCode(t, err, "")
	if v.Status != marketplace.StatusSubmitted || v.SubmittedAt == nil || !v.SubmittedAt.Equal(s.clock.Now()) {
		t.Errorf("submitted app: status %s at %v", v.Status, v.SubmittedAt)
	}
	_, err = s.Apps.SubmitApp(s.ctx, s.admin, bare.Slug)
	wantCode(t, err, "invalid_transition")

	internal := appFields("Inside")
	internal.Kind = ptr(marketplace.KindInternal)
	in := s.mustApp(s.admin, "acme", internal)
	_, err = s.Apps.SubmitApp(s.ctx, s.admin, in.Slug)
	wantCode(t, err, "not_public")

	// Events without a webhook URL go to plugboard listen alone: allowed
	// while developing, not for review.
	local := appFields("Laptop")
	local.Scopes, local.Events, local.WebhookURL = ptr([]string{"issue:read"}), ptr([]string{"issue.created"}), nil
	laptop := s.mustApp(s.admin, "acme", local)
	s.mustPlan(s.admin, laptop.Slug, "Free", "0")
	_, err = s.Apps.SubmitApp(s.ctx, s.admin, laptop.Slug)
	wantFields(t, err, "webhookUrl")

	// The review queue is what operators filter by status=submitted.
	queue, err := s.Apps.Directory(s.ctx, s.op, marketplace.DirectoryQuery{Status: marketplace.StatusSubmitted}, page.Request{})
	wantCode(t, err, "")
	if len(queue.Items) != 1 || queue.Items[0].Slug != bare.Slug {
		t.Errorf("review queue = %v", slugsOf(queue.Items))
	}
}

func TestReviewTransitions(t *testing.T) {
	s := newStudio(t)
	// appIn makes an app in status from.
	n := 0
	appIn := func(t *testing.T, from string) string {
		n++
		in := appFields("Reviewed " + string(rune('a'+n)))
		if from == "internal" {
			in.Kind = ptr(marketplace.KindInternal)
		}
		app := s.mustApp(s.admin, "acme", in)
		step := func(u marketplace.AppUpdate) {
			if _, err := s.Apps.UpdateApp(s.ctx, s.op, app.Slug, u); err != nil {
				t.Fatal(err)
			}
		}
		if from == "draft" || from == "internal" {
			return app.Slug
		}
		s.mustPlan(s.admin, app.Slug, "Free", "0")
		if _, err := s.Apps.SubmitApp(s.ctx, s.admin, app.Slug); err != nil {
			t.Fatal(err)
		}
		switch from {
		case "published":
			step(marketplace.AppUpdate{Status: ptr("published")})
		case "rejected":
			step(marketplace.AppUpdate{Status: ptr("rejected"), StatusReason: ptr("no")})
		}
		return app.Slug
	}
	tests := []struct {
		name       string
		from       string
		actor      marketplace.Actor
		status     string
		reason     *string
		code       string
		wantStatus string
	}{
		{"submitted to published", "submitted", s.op, "published", nil, "", "published"},
		{"submitted to rejected", "submitted", s.op, "rejected", ptr(" Missing docs. "), "", "rejected"},
		{"published to rejected", "published", s.op, "rejected", ptr("Broke the rules."), "", "rejected"},
		{"reject needs a reason", "submitted", s.op, "rejected", ptr(" "), "invalid_input", "submitted"},
		{"draft cannot be published", "draft", s.op, "published", nil, "invalid_transition", "draft"},
		{"rejected cannot be published", "rejected", s.op, "published", nil, "invalid_transition", "rejected"},
		{"published twice", "published", s.op, "published", nil, "invalid_transition", "published"},
		{"operators set only published or rejected", "submitted", s.op, "draft", nil, "invalid_input", "submitted"},
		{"internal apps are never published", "internal", s.op, "published", nil, "not_public", "draft"},
		{"the owner cannot publish", "submitted", s.owner, "published", nil, "operator_only", "submitted"},
		{"a stranger does not see a submitted app", "submitted", s.stranger, "published", nil, "not_found", "submitted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			slug := appIn(t, tt.from)
			s.clock.Advance(time.Minute)
			_, err := s.Apps.UpdateApp(s.ctx, tt.actor, slug, marketplace.AppUpdate{Status: ptr(tt.status), StatusReason: tt.reason})
			wantCode(t, err, tt.code)
			var app marketplace.App
			s.db.Where("slug = ?", slug).Take(&app)
			if app.Status != tt.wantStatus {
				t.Errorf("status = %s, want %s", app.Status, tt.wantStatus)
			}
			if tt.code == "" && tt.status == "published" && (app.PublishedAt == nil || !app.PublishedAt.Equal(s.clock.Now())) {
				t.Errorf("published at %v, want %v", app.PublishedAt, s.clock.Now())
			}
			if tt.code == "" && tt.reason != nil && app.StatusReason != strings.TrimSpace(*tt.reason) {
				t.Errorf("status reason = %q", app.StatusReason)
			}
		})
	}

	// A rejected app goes back to the queue when submitted again.
	slug := appIn(t, "rejected")
	v, err := s.Apps.SubmitApp(s.ctx, s.admin, slug)
	wantCode(t, err, "")
	if v.Status != marketplace.StatusSubmitted || v.StatusReason != "" {
		t.Errorf("resubmitted: %s (%q)", v.Status, v.StatusReason)
	}
	if n := s.count("audit_logs", "action IN ('app.publish', 'app.reject') AND actor_label = 'ops@plugboard.example'"); n < 5 {
		t.Errorf("review audit entries = %d, want at least 5", n)
	}
}

func slugsOf(apps []marketplace.AppView) []string {
	out := []string{}
	for _, a := range apps {
		out = append(out, a.Slug)
	}
	return out
}

func TestDirectoryListsPublishedPublicAppsSorted(t *testing.T) {
	s := newStudio(t)
	mk := func(name, category string, publish bool) *marketplace.CreatedApp {
		in := appFields(name)
		in.Categories = ptr([]string{category})
		app := s.mustApp(s.admin, "acme", in)
		if publish {
			s.mustPublish(s.admin, s.op, app.Slug)
		}
		s.clock.Advance(time.Minute)
		return app
	}
	mk("Zeta", "security", true)
	mk("Alpha", "data", true)
	mk("Mid", "security", true)
	mk("Draft Thing", "security", false)
	internal := appFields("Inside")
	internal.Kind = ptr(marketplace.KindInternal)
	s.mustApp(s.admin, "acme", internal)

	// Installs: Zeta twice, Mid once.
	for _, name := range []string{"One", "Two"} {
		u := s.mustUser(strings.ToLower(name) + "@customer.example")
		org := s.mustOrg(u, "Customer "+name)
		s.mustInstall(u, org.Org.Slug, "zeta", "free")
		if name == "One" {
			s.mustInstall(u, org.Org.Slug, "mid", "free")
		}
	}

	tests := []struct {
		name    string
		actor   marketplace.Actor
		q       marketplace.DirectoryQuery
		want    []string
		code    string
		private bool
	}{
		{"anonymous, by name", marketplace.Anonymous, marketplace.DirectoryQuery{}, []string{"alpha", "mid", "zeta"}, "", false},
		{"stranger, by installs", s.stranger, marketplace.DirectoryQuery{SortBy: marketplace.SortInstalls}, []string{"zeta", "mid", "alpha"}, "", false},
		{"newest first", s.stranger, marketplace.DirectoryQuery{SortBy: marketplace.SortCreated}, []string{"mid", "alpha", "zeta"}, "", false},
		{"by category", s.stranger, marketplace.DirectoryQuery{Category: "security"}, []string{"mid", "zeta"}, "", false},
		{"by query", s.stranger, marketplace.DirectoryQuery{Query: "ALP"}, []string{"alpha"}, "", false},
		{"like wildcards are literal", s.stranger, marketplace.DirectoryQuery{Query: "%"}, []string{}, "", false},
		{"members also see their drafts", s.member, marketplace.DirectoryQuery{}, []string{"alpha", "draft-thing", "mid", "zeta"}, "", true},
		{"operators filter by status", s.op, marketplace.DirectoryQuery{Status: marketplace.StatusDraft}, []string{"draft-thing"}, "", true},
		{"others cannot filter by status", s.stranger, marketplace.DirectoryQuery{Status: marketplace.StatusDraft}, nil, "invalid_input", false},
		{"unknown category", s.stranger, marketplace.DirectoryQuery{Category: "games"}, nil, "invalid_input", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := s.Apps.Directory(s.ctx, tt.actor, tt.q, page.Request{})
			wantCode(t, err, tt.code)
			if err != nil {
				return
			}
			if diff := cmp.Diff(tt.want, slugsOf(p.Items)); diff != "" {
				t.Errorf("directory (-want +got):\n%s", diff)
			}
			for _, a := range p.Items {
				if a.Private != tt.private {
					t.Errorf("%s private = %v, want %v", a.Slug, a.Private, tt.private)
				}
			}
		})
	}

	// Pages follow the sort.
	first, err := s.Apps.Directory(s.ctx, marketplace.Anonymous, marketplace.DirectoryQuery{SortBy: marketplace.SortInstalls}, page.Request{Limit: 2})
	wantCode(t, err, "")
	second, err := s.Apps.Directory(s.ctx, marketplace.Anonymous, marketplace.DirectoryQuery{SortBy: marketplace.SortInstalls}, page.Request{Limit: 2, Cursor: first.Next})
	wantCode(t, err, "")
	if diff := cmp.Diff([]string{"zeta", "mid", "alpha"}, append(slugsOf(first.Items), slugsOf(second.Items)...)); diff != "" {
		t.Errorf("two pages by installs (-want +got):\n%s", diff)
	}
	if !first.HasNext || second.HasNext {
		t.Errorf("HasNext: first %v, second %v", first.HasNext, second.HasNext)
	}
}

func TestPlansCRUDAndPriceValidation(t *testing.T) {
	s := newStudio(t)
	app := s.mustApp(s.admin, "acme", appFields("Priced"))
	tests := []struct {
		name      string
		in        marketplace.PlanFields
		wantPrice string
		fields    []string
	}{
		{"integer price", marketplace.PlanFields{Name: ptr("Pro"), Price: ptr("9")}, "9.00", nil},
		{"one decimal", marketplace.PlanFields{Name: ptr("Team"), Price: ptr("19.5")}, "19.50", nil},
		{"defaults to free", marketplace.PlanFields{Name: ptr("Free")}, "0.00", nil},
		{"two decimals", marketplace.PlanFields{Name: ptr("Max"), Price: ptr(" 99.99 "), Currency: ptr("EUR"), Interval: ptr("year")}, "99.99", nil},
		{"negative", marketplace.PlanFields{Name: ptr("Bad"), Price: ptr("-1")}, "", []string{"price"}},
		{"three decimals", marketplace.PlanFields{Name: ptr("Bad"), Price: ptr("9.999")}, "", []string{"price"}},
		{"leading zero", marketplace.PlanFields{Name: ptr("Bad"), Price: ptr("09")}, "", []string{"price"}},
		{"words", marketplace.PlanFields{Name: ptr("Bad"), Price: ptr("ten")}, "", []string{"price"}},
		{"lower-case currency", marketplace.PlanFields{Name: ptr("Bad"), Currency: ptr("usd")}, "", []string{"currency"}},
		{"weekly", marketplace.PlanFields{Name: ptr("Bad"), Interval: ptr("week")}, "", []string{"interval"}},
		{"no name", marketplace.PlanFields{Price: ptr("1")}, "", []string{"name"}},
		{"slug taken", marketplace.PlanFields{Name: ptr("PRO")}, "", []string{"slug"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := s.Apps.CreatePlan(s.ctx, s.admin, app.Slug, tt.in)
			if tt.fields != nil {
				wantFields(t, err, tt.fields...)
				return
			}
			wantCode(t, err, "")
			if p.Price != tt.wantPrice {
				t.Errorf("price = %q, want %q", p.Price, tt.wantPrice)
			}
		})
	}
	list := func() []string {
		t.Helper()
		_, err := s.Apps.ListPlans(s.ctx, s.stranger, app.Slug)
		wantCode(t, err, "not_found") // a draft app is hidden
		plans, err := s.Apps.ListPlans(s.ctx, s.member, app.Slug)
		wantCode(t, err, "")
		var out []string
		for _, p := range plans {
			out = append(out, p.Slug+" "+p.Price+" "+p.Currency+"/"+p.Interval)
		}
		return out
	}
	want := []string{"free 0.00 USD/month", "pro 9.00 USD/month", "team 19.50 USD/month", "max 99.99 EUR/year"}
	if diff := cmp.Diff(want, list()); diff != "" {
		t.Errorf("plans, cheapest first (-want +got):\n%s", diff)
	}

	_, err := s.Apps.CreatePlan(s.ctx, s.member, app.Slug, marketplace.PlanFields{Name: ptr("Mine")})
	wantCode(t, err, "insufficient_role")
	_, err = s.Apps.UpdatePlan(s.ctx, s.admin, app.Slug, "pro", marketplace.PlanFields{Price: ptr("0.5")})
	wantCode(t, err, "")
	_, err = s.Apps.UpdatePlan(s.ctx, s.admin, app.Slug, "pro", marketplace.PlanFields{Price: ptr("x")})
	wantFields(t, err, "price")
	_, err = s.Apps.UpdatePlan(s.ctx, s.admin, app.Slug, "team", marketplace.PlanFields{Slug: ptr("max")})
	wantCode(t, err, "slug_taken")
	_, err = s.Apps.UpdatePlan(s.ctx, s.admin, app.Slug, "gold", marketplace.PlanFields{Price: ptr("1")})
	wantCode(t, err, "not_found")
	for _, p := range []string{"team", "max", "free"} {
		wantCode(t, s.Apps.DeletePlan(s.ctx, s.admin, app.Slug, p), "")
	}
	wantCode(t, s.Apps.DeletePlan(s.ctx, s.admin, app.Slug, "pro"), "last_plan")
	if diff := cmp.Diff([]string{"pro 0.50 USD/month"}, list()); diff != "" {
		t.Errorf("plans left (-want +got):\n%s", diff)
	}
}

func TestDeleteAppRefusedWhileInstalledElsewhere(t *testing.T) {
	w := newWorld(t, appFields("Flow App"))
	e := w.env
	ni := e.mustInstall(w.admin, w.customer, w.app.Slug, "free")

	wantCode(t, e.Apps.DeleteApp(e.ctx, w.admin, w.app.Slug), "not_found") // the customer does not own it
	err := e.Apps.DeleteApp(e.ctx, w.dev, w.app.Slug)
	wantCode(t, err, "has_installations")
	if _, err := e.Apps.GetApp(e.ctx, w.dev, w.app.Slug); err != nil {
		t.Fatalf("the app went: %v", err)
	}

	wantCode(t, e.Installs.Uninstall(e.ctx, w.admin, ni.Installation.UUID), "")
	wantCode(t, e.Apps.DeleteApp(e.ctx, w.dev, w.app.Slug), "")
	_, err = e.Apps.GetApp(e.ctx, w.dev, w.app.Slug)
	wantCode(t, err, "not_found")
	if n := e.count("plans", ""); n != 0 {
		t.Errorf("plans left = %d", n)
	}
	if n := e.count("audit_logs", "action = 'app.delete' AND target_label = 'flow-app'"); n != 1 {
		t.Errorf("app.delete audit entries = %d, want 1", n)
	}
}

func TestRotateClientSecret(t *testing.T) {
	s := newStudio(t)
	app := s.mustApp(s.admin, "acme", appFields("Rotating"))
	internal := appFields("Inside")
	internal.Kind = ptr(marketplace.KindInternal)
	in := s.mustApp(s.admin, "acme", internal)

	_, err := s.Apps.RotateClientSecret(s.ctx, s.member, app.Slug)
	wantCode(t, err, "insufficient_role")

	rot, err := s.Apps.RotateClientSecret(s.ctx, s.admin, app.Slug)
	wantCode(t, err, "")
	if rot.ClientSecret == app.ClientSecret || !strings.HasPrefix(rot.ClientSecret, "pbcs_") || rot.Token != "" {
		t.Errorf("rotated = %+v", rot)
	}
	_, err = s.OAuth.AuthenticateClient(s.ctx, app.ClientID, app.ClientSecret)
	wantCode(t, err, "oauth:invalid_client")
	_, err = s.OAuth.AuthenticateApp(s.ctx, app.ClientID, app.ClientSecret)
	wantCode(t, err, "invalid_client")
	client, err := s.OAuth.AuthenticateClient(s.ctx, app.ClientID, rot.ClientSecret)
	wantCode(t, err, "")
	if client.ID != app.ID {
		t.Errorf("authenticated app %d, want %d", client.ID, app.ID)
	}

	// An internal integration's token is replaced with its secret.
	s.mustBearer(in.Token)
	rot, err = s.Apps.RotateClientSecret(s.ctx, s.admin, in.Slug)
	wantCode(t, err, "")
	if rot.Token == "" || rot.Token == in.Token {
		t.Fatalf("internal rotation gave token %q", rot.Token)
	}
	_, err = s.Accounts.AuthenticateBearer(s.ctx, in.Token)
	wantCode(t, err, "invalid_token")
	if a := s.mustBearer(rot.Token); a.Installation == nil || a.Installation.UUID != in.Installation.UUID {
		t.Errorf("new token's actor = %+v", a)
	}
	if n := s.count("audit_logs", "action = 'app.rotate_secret'"); n != 2 {
		t.Errorf("app.rotate_secret audit entries = %d, want 2", n)
	}
}

func TestRotateWebhookSecretOverlap(t *testing.T) {
	s := newStudio(t)
	app := s.mustApp(s.admin, "acme", appFields("Signing"))
	secrets := func() []string {
		t.Helper()
		var row marketplace.App
		s.db.First(&row, app.ID)
		out, err := s.Apps.WebhookSecrets(&row)
		if err != nil {
			t.Fatal(err)
		}
		// The webhooks domain reads the same through the directory.
		ep, err := s.dir.Endpoint(s.ctx, app.ID)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(out, ep.Secrets); diff != "" {
			t.Errorf("directory's secrets differ (-app +directory):\n%s", diff)
		}
		return out
	}
	if diff := cmp.Diff([]string{app.WebhookSecret}, secrets()); diff != "" {
		t.Fatalf("secrets at creation (-want +got):\n%s", diff)
	}

	_, _, err := s.Apps.RotateWebhookSecret(s.ctx, s.member, app.Slug)
	wantCode(t, err, "insufficient_role")
	fresh, until, err := s.Apps.RotateWebhookSecret(s.ctx, s.admin, app.Slug)
	wantCode(t, err, "")
	if !strings.HasPrefix(fresh, webhooks.SecretPrefix) || fresh == app.WebhookSecret {
		t.Errorf("fresh secret %q", fresh)
	}
	if diff := cmp.Diff(s.clock.Now().Add(24*time.Hour), until); diff != "" {
		t.Errorf("overlap ends (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{fresh, app.WebhookSecret}, secrets()); diff != "" {
		t.Errorf("secrets during the overlap (-want +got):\n%s", diff)
	}
	s.clock.Advance(24*time.Hour - time.Second)
	if n := len(secrets()); n != 2 {
		t.Errorf("secrets a second before the overlap ends = %d, want 2", n)
	}
	s.clock.Advance(time.Second)
	if diff := cmp.Diff([]string{fresh}, secrets()); diff != "" {
		t.Errorf("secrets after the overlap (-want +got):\n%s", diff)
	}
}

func TestDirectoryPagesEverySort(t *testing.T) {
	s := newStudio(t)
	installs := map[string]int{"Bravo": 1, "Alpha": 0, "Echo": 1, "Delta": 0, "Charlie": 2}
	var customers []string
	for i := range 2 {
		u := s.mustUser("c" + idStr(int64(i)) + "@customer.example")
		customers = append(customers, s.mustOrg(u, "Customer "+idStr(int64(i))).Org.Slug)
		s.mustMember(u, customers[i], s.owner, marketplace.RoleAdmin)
	}
	for i, name := range []string{"Bravo", "Alpha", "Echo", "Delta", "Charlie"} {
		app := s.mustApp(s.admin, "acme", appFields(name))
		s.mustPublish(s.admin, s.op, app.Slug)
		for n := range installs[name] {
			s.mustInstall(s.owner, customers[n], app.Slug, "free")
		}
		if i%2 == 1 { // pairs share a creation time: ties break by id
			s.clock.Advance(time.Minute)
		}
	}
	for _, sort := range []string{marketplace.SortName, marketplace.SortInstalls, marketplace.SortCreated} {
		t.Run(sort, func(t *testing.T) {
			q := marketplace.DirectoryQuery{SortBy: sort}
			all, err := s.Apps.Directory(s.ctx, s.stranger, q, page.Request{Limit: 100})
			wantCode(t, err, "")
			if len(all.Items) != 5 {
				t.Fatalf("directory = %v", slugsOf(all.Items))
			}
			var paged []string
			r := page.Request{Limit: 2}
			for range 5 {
				p, err := s.Apps.Directory(s.ctx, s.stranger, q, r)
				wantCode(t, err, "")
				paged = append(paged, slugsOf(p.Items)...)
				if !p.HasNext {
					break
				}
				r.Cursor = p.Next
			}
			if diff := cmp.Diff(slugsOf(all.Items), paged); diff != "" {
				t.Errorf("pages of 2 differ from one page (-one +pages):\n%s", diff)
			}
		})
	}
	byInstalls, _ := s.Apps.Directory(s.ctx, s.stranger, marketplace.DirectoryQuery{SortBy: marketplace.SortInstalls}, page.Request{})
	if got := slugsOf(byInstalls.Items)[0]; got != "charlie" {
		t.Errorf("most installed = %s, want charlie", got)
	}
}
