package web_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/plugboard/plugboard/sdk/plugboard"
)

// Revisions of a published app (marketplace/app_revisions.go) and the
// permissions they ask of installations (permission_requests.go), through
// the API as partners, operators, organization admins and the host use it.

// freshToken is a new access token of h's installation: the app asks for a
// fresh code with its client credentials and exchanges it.
func freshToken(t *testing.T, h *hooks) *client {
	t.Helper()
	appCreds := newClient(t, h.p, "")
	appCreds.http.Transport = basicAuth{h.clientID, h.app.ClientSecret}
	grant := decode[plugboard.Grant](t, appCreds.do("POST", "/api/0/installations/"+h.inst+"/grants/", nil), 201)
	authz := decode[plugboard.Authorization](t, newClient(t, h.p, "").do("POST", "/api/0/installations/"+h.inst+"/authorizations/", map[string]any{
		"grantType": "authorization_code", "code": grant.Code, "clientId": h.clientID, "clientSecret": h.app.ClientSecret}), 201)
	return newClient(t, h.p, authz.Token)
}

// submitAndDecide submits the app's draft revision and has the operator
// decide it; it returns the decided revision.
func submitAndDecide(t *testing.T, h *hooks, number, status, reason string) plugboard.Revision {
	t.Helper()
	if got := decode[plugboard.Revision](t, h.dev.do("POST", "/api/0/apps/hook-app/revisions/"+number+"/publish-requests/", nil), 201); got.Status != plugboard.RevisionSubmitted {
		t.Fatalf("submitted revision %+v", got)
	}
	body := map[string]any{"status": status}
	if reason != "" {
		body["statusReason"] = reason
	}
	return decode[plugboard.Revision](t, h.op.do("PUT", "/api/0/apps/hook-app/revisions/"+number+"/", body), 200)
}

// applyReviewed changes a published app's reviewed fields (scopes, events,
// URLs) the way a partner must: the PUT drafts a revision, the partner
// submits it and an operator approves it. It returns the app after.
func applyReviewed(t testing.TB, dev, op *client, slug string, body map[string]any) plugboard.App {
	t.Helper()
	app := decode[plugboard.App](t, dev.do("PUT", "/api/0/apps/"+slug+"/", body), 200)
	if app.PendingRevision == nil {
		return app // nothing to review: unchanged, or never published
	}
	n := app.PendingRevision.ID
	dev.do("POST", "/api/0/apps/"+slug+"/revisions/"+n+"/publish-requests/", nil).ok(t, 201, nil)
	op.do("PUT", "/api/0/apps/"+slug+"/revisions/"+n+"/", map[string]any{"status": "approved"}).ok(t, 200, nil)
	return decode[plugboard.App](t, dev.do("GET", "/api/0/apps/"+slug+"/", nil), 200)
}

func pendingInstallations(t *testing.T, h *hooks) []plugboard.Installation {
	t.Helper()
	return decode[[]plugboard.Installation](t, h.admin.do("GET", "/api/0/organizations/customer/installations/?permissions=pending", nil), 200)
}

func deliveriesOf(t *testing.T, h *hooks, eventType string) []plugboard.Delivery {
	t.Helper()
	return decode[[]plugboard.Delivery](t, h.dev.do("GET", "/api/0/apps/hook-app/deliveries/?eventType="+eventType+"&installation="+h.inst, nil), 200)
}

func TestRevisionAddsPermissionsOnlyOnceTheOrganizationAccepts(t *testing.T) {
	h := newHooks(t)
	h.op.do("POST", "/api/0/event-types/", map[string]any{"name": "comment.created", "scope": "issue:read", "description": "A comment was posted.",
		"schema": map[string]any{"type": "object", "properties": map[string]any{"body": map[string]any{"type": "string"}}}}).ok(t, 201, nil)
	host := newClient(t, h.p, decode[plugboard.ServiceToken](t, h.op.do("POST", "/api/0/service-tokens/", map[string]any{"name": "Host"}), 201).Token)
	before := freshToken(t, h)
	refused := before.do("GET", "/api/0/organizations/customer/members/", nil)
	refused.problem(t, 403, "missing_scope")
	if got := refused.Header.Get("WWW-Authenticate"); !strings.Contains(got, `error="insufficient_scope"`) {
		t.Errorf("WWW-Authenticate %q, want RFC 6750's insufficient_scope", got)
	}

	// The partner asks for member:read and comment.created, and renames
	// the app: the name applies at once, the permissions wait for review.
	app := decode[plugboard.App](t, h.dev.do("PUT", "/api/0/apps/hook-app/", map[string]any{"name": "Hook App Plus",
		"scopes": []string{"org:read", "issue:read", "member:read"}, "events": []string{"issue.created", "comment.created"}}), 200)
	if app.Name != "Hook App Plus" || slices.Contains(app.Scopes, "member:read") || slices.Contains(app.Events, "comment.created") {
		t.Fatalf("the app changed at once: %+v", app)
	}
	rev := app.PendingRevision
	if rev == nil || rev.ID != "1" || rev.Status != plugboard.RevisionDraft || len(rev.Diff) != 2 ||
		rev.Diff[0].Field != "scopes" || !slices.Equal(*rev.Diff[0].Added, []string{"member:read"}) || len(*rev.Diff[0].Removed) != 0 ||
		rev.Diff[1].Field != "events" || !slices.Equal(*rev.Diff[1].Added, []string{"comment.created"}) {
		t.Fatalf("pending revision %+v", rev)
	}
	if list := decode[[]plugboard.Revision](t, h.dev.do("GET", "/api/0/apps/hook-app/revisions/", nil), 200); len(list) != 1 || list[0].Status != plugboard.RevisionDraft {
		t.Fatalf("revisions %+v", list)
	}
	approved := submitAndDecide(t, h, "1", plugboard.RevisionApproved, "")
	if approved.Status != plugboard.RevisionApproved || approved.DateReviewed == nil {
		t.Fatalf("approved %+v", approved)
	}
	if app := decode[plugboard.App](t, h.dev.do("GET", "/api/0/apps/hook-app/", nil), 200); !slices.Contains(app.Scopes, "member:read") ||
		!slices.Contains(app.Events, "comment.created") || app.PendingRevision != nil {
		t.Fatalf("approved app %+v", app)
	}
	audit := decode[[]plugboard.AuditLogEntry](t, h.dev.do("GET", "/api/0/organizations/partner/audit-logs/?action=app.updated", nil), 200)
	if len(audit) != 1 || !strings.Contains(string(mustJSON(t, audit[0].Data)), `"added":["member:read"]`) {
		t.Errorf("app.updated audit %+v", audit)
	}

	// The organization sees what is new, and only that.
	pending := pendingInstallations(t, h)
	if len(pending) != 1 || pending[0].UUID != h.inst || pending[0].PendingPermissions == nil ||
		!slices.Equal(pending[0].PendingPermissions.Scopes, []string{"member:read"}) || !slices.Equal(pending[0].PendingPermissions.Events, []string{"comment.created"}) ||
		slices.Contains(pending[0].Scopes, "member:read") || slices.Contains(pending[0].Events, "comment.created") {
		t.Fatalf("pending installations %+v", pending)
	}

	// Until accepted: no token of the installation gains the scope, and
	// the new event makes no delivery for it.
	before.do("GET", "/api/0/organizations/customer/members/", nil).problem(t, 403, "missing_scope")
	freshToken(t, h).do("GET", "/api/0/organizations/customer/members/", nil).problem(t, 403, "missing_scope")
	if ev := decode[plugboard.PublishedEvent](t, host.do("POST", "/api/0/organizations/customer/events/", map[string]any{"type": "comment.created", "data": map[string]any{"body": "first"}}), 201); ev.Deliveries != 0 {
		t.Errorf("comment.created made %d deliveries before the organization accepted it", ev.Deliveries)
	}
	if ds := deliveriesOf(t, h, "comment.created"); len(ds) != 0 {
		t.Errorf("deliveries of comment.created before acceptance: %+v", ds)
	}
	// A later event still arrives: had the comment been sent, it would
	// have come first.
	h.publish(t, "after the comment")
	h.sink.waitEvent(t, "issue.created", 10*time.Second)
	for _, got := range h.sink.all() {
		if got.Header.Get("Plugboard-Event") == "comment.created" {
			t.Fatal("the partner received comment.created before the organization accepted it")
		}
	}

	// An admin accepts what they were shown.
	acc := h.admin.do("POST", "/api/0/installations/"+h.inst+"/permission-acceptances/", map[string]any{"request": pending[0].PendingPermissions.ID})
	var accepted struct {
		Installation plugboard.Installation `json:"installation"`
		Scopes       []string               `json:"scopes"`
		Events       []string               `json:"events"`
		DateAccepted time.Time              `json:"dateAccepted"`
	}
	acc.ok(t, 201, &accepted)
	if !slices.Equal(accepted.Scopes, []string{"member:read"}) || !slices.Contains(accepted.Installation.Scopes, "member:read") ||
		!slices.Contains(accepted.Installation.Events, "comment.created") || accepted.Installation.PendingPermissions != nil {
		t.Fatalf("acceptance %+v", accepted)
	}
	if left := pendingInstallations(t, h); len(left) != 0 {
		t.Errorf("still pending after acceptance: %+v", left)
	}
	got := h.sink.waitEvent(t, "installation.permissions_accepted", 10*time.Second)
	verify(t, h.secret, got)
	env, err := plugboard.ParseEvent(got.Body)
	if err != nil {
		t.Fatal(err)
	}
	var data struct {
		Installation struct {
			UUID   string   `json:"uuid"`
			Scopes []string `json:"scopes"`
		} `json:"installation"`
		Scopes []string `json:"scopes"`
		Events []string `json:"events"`
	}
	if err := json.Unmarshal(env.Data, &data); err != nil || env.Type != plugboard.EventInstallationPermissionsAccepted || data.Installation.UUID != h.inst ||
		!slices.Equal(data.Scopes, []string{"member:read"}) || !slices.Equal(data.Events, []string{"comment.created"}) || !slices.Contains(data.Installation.Scopes, "member:read") {
		t.Fatalf("permissions_accepted %s (%v)", got.Body, err)
	}

	// Tokens issued from now on list members; the new event is delivered.
	members := decode[[]plugboard.Member](t, freshToken(t, h).do("GET", "/api/0/organizations/customer/members/", nil), 200)
	if len(members) != 1 || members[0].User.Email != "admin@customer.example" {
		t.Errorf("members %+v", members)
	}
	before.do("GET", "/api/0/organizations/customer/members/", nil).problem(t, 403, "missing_scope")
	if ev := decode[plugboard.PublishedEvent](t, host.do("POST", "/api/0/organizations/customer/events/", map[string]any{"type": "comment.created", "data": map[string]any{"body": "second"}}), 201); ev.Deliveries != 1 {
		t.Errorf("comment.created made %d deliveries after acceptance", ev.Deliveries)
	}
	verify(t, h.secret, h.sink.waitEvent(t, "comment.created", 10*time.Second))
	// Accepting again: nothing is pending.
	h.admin.do("POST", "/api/0/installations/"+h.inst+"/permission-acceptances/", nil).problem(t, 409, "no_pending_permissions")
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRevisionRemovingAScopeRevokesItFromLiveTokens(t *testing.T) {
	h := newHooks(t)
	tok := freshToken(t, h)
	decode[plugboard.Organization](t, tok.do("GET", "/api/0/organizations/customer/", nil), 200)
	decode[plugboard.App](t, h.dev.do("PUT", "/api/0/apps/hook-app/", map[string]any{"scopes": []string{"issue:read"}}), 200)
	// Drafted, not yet approved: the token keeps the scope.
	decode[plugboard.Organization](t, tok.do("GET", "/api/0/organizations/customer/", nil), 200)
	approved := submitAndDecide(t, h, "1", plugboard.RevisionApproved, "")
	if len(approved.Diff) != 1 || !slices.Equal(*approved.Diff[0].Removed, []string{"org:read"}) {
		t.Fatalf("approved %+v", approved)
	}
	// At once, for the token issued before, with no acceptance asked.
	tok.do("GET", "/api/0/organizations/customer/", nil).problem(t, 403, "missing_scope")
	if inst := getInstallation(t, h.admin, h.inst); slices.Contains(inst.Scopes, "org:read") || inst.PendingPermissions != nil {
		t.Errorf("installation after the removal %+v", inst)
	}
	if p := pendingInstallations(t, h); len(p) != 0 {
		t.Errorf("a removal asked the organization: %+v", p)
	}
	freshToken(t, h).do("GET", "/api/0/organizations/customer/", nil).problem(t, 403, "missing_scope")
}

func TestRevisionListingAppliesAtOnceAndRejectionChangesNothing(t *testing.T) {
	h := newHooks(t)
	clerk := signUp(t, h.p, "clerk@partner.example")
	h.dev.do("POST", "/api/0/organizations/partner/members/", map[string]string{"email": "clerk@partner.example"}).ok(t, 201, nil)

	// Listing fields and plans' descriptions apply at once.
	app := decode[plugboard.App](t, h.dev.do("PUT", "/api/0/apps/hook-app/", map[string]any{"overview": "Now with comments.", "categories": []string{"notifications"}}), 200)
	if app.Overview != "Now with comments." || app.PendingRevision != nil {
		t.Fatalf("listing change %+v", app)
	}
	if plan := decode[plugboard.Plan](t, h.dev.do("PUT", "/api/0/apps/hook-app/plans/free/", map[string]any{"description": "All you need."}), 200); plan.Description != "All you need." {
		t.Errorf("plan %+v", plan)
	}
	if n := decode[[]plugboard.Revision](t, h.dev.do("GET", "/api/0/apps/hook-app/revisions/", nil), 200); len(n) != 0 {
		t.Errorf("listing changes made revisions: %+v", n)
	}

	// Bad input: field-level problems, nothing stored.
	p := h.dev.do("PUT", "/api/0/apps/hook-app/", map[string]any{"scopes": []string{"org:read", "nope:nothing"}, "webhookUrl": "not a url", "name": ""}).problem(t, 400, "invalid_input")
	for _, f := range []string{"scopes", "webhookUrl", "name"} {
		if p.Fields[f] == "" {
			t.Errorf("no message for %s: %+v", f, p.Fields)
		}
	}
	if n := decode[[]plugboard.Revision](t, h.dev.do("GET", "/api/0/apps/hook-app/revisions/", nil), 200); len(n) != 0 {
		t.Errorf("bad input made a revision: %+v", n)
	}
	h.dev.do("PUT", "/api/0/apps/hook-app/", map[string]any{"kind": "internal"}).problem(t, 400, "invalid_input")

	hooksURL := h.sink.srv.URL + "/v2/hooks"
	app = decode[plugboard.App](t, h.dev.do("PUT", "/api/0/apps/hook-app/", map[string]any{"webhookUrl": hooksURL, "scopes": []string{"org:read", "issue:read", "member:read"}}), 200)
	if app.WebhookURL == hooksURL || app.PendingRevision == nil || len(app.PendingRevision.Diff) != 2 {
		t.Fatalf("app %+v", app)
	}
	h.dev.do("PUT", "/api/0/apps/hook-app/revisions/1/", map[string]any{"status": "approved"}).problem(t, 403, "operator_only")
	h.op.do("PUT", "/api/0/apps/hook-app/revisions/1/", map[string]any{"status": "approved"}).problem(t, 409, "invalid_transition") // a draft
	clerk.do("POST", "/api/0/apps/hook-app/revisions/1/publish-requests/", nil).problem(t, 403, "insufficient_role")
	h.admin.do("GET", "/api/0/apps/hook-app/revisions/", nil).problem(t, 404, "not_found")
	h.dev.do("POST", "/api/0/apps/hook-app/revisions/1/publish-requests/", nil).ok(t, 201, nil)
	h.dev.do("POST", "/api/0/apps/hook-app/revisions/1/publish-requests/", nil).problem(t, 409, "invalid_transition")
	if p := h.op.do("PUT", "/api/0/apps/hook-app/revisions/1/", map[string]any{"status": "rejected"}).problem(t, 400, "invalid_input"); p.Fields["statusReason"] == "" {
		t.Errorf("no statusReason message: %+v", p.Fields)
	}
	if p := h.op.do("PUT", "/api/0/apps/hook-app/revisions/1/", map[string]any{"status": "published"}).problem(t, 400, "invalid_input"); p.Fields["status"] == "" {
		t.Errorf("no status message: %+v", p.Fields)
	}
	h.op.do("PUT", "/api/0/apps/hook-app/revisions/9/", map[string]any{"status": "approved"}).problem(t, 404, "not_found")
	rejected := decode[plugboard.Revision](t, h.op.do("PUT", "/api/0/apps/hook-app/revisions/1/", map[string]any{"status": "rejected", "statusReason": "Say why it needs members."}), 200)
	if rejected.Status != plugboard.RevisionRejected || rejected.StatusReason != "Say why it needs members." {
		t.Fatalf("rejected %+v", rejected)
	}
	app = decode[plugboard.App](t, h.dev.do("GET", "/api/0/apps/hook-app/", nil), 200)
	if app.WebhookURL == hooksURL || slices.Contains(app.Scopes, "member:read") || app.PendingRevision != nil {
		t.Errorf("a rejected revision changed the app: %+v", app)
	}
	if p := pendingInstallations(t, h); len(p) != 0 {
		t.Errorf("a rejected revision asked the organization: %+v", p)
	}
	h.admin.do("GET", "/api/0/organizations/customer/installations/?permissions=all", nil).problem(t, 400, "invalid_input")

	// Accepting: admins only, and only what is pending.
	h.admin.do("POST", "/api/0/installations/"+h.inst+"/permission-acceptances/", nil).problem(t, 409, "no_pending_permissions")
	freshToken(t, h).do("POST", "/api/0/installations/"+h.inst+"/permission-acceptances/", nil).problem(t, 403, "admin_only")
	h.dev.do("POST", "/api/0/installations/"+h.inst+"/permission-acceptances/", nil).problem(t, 404, "not_found")
	h.admin.do("POST", "/api/0/installations/"+h.inst+"/permission-acceptances/", map[string]any{"request": 7}).problem(t, 400, "invalid_input")

	// A second revision, approved: the organization's request names it;
	// an acceptance of another request is refused.
	h.dev.do("PUT", "/api/0/apps/hook-app/", map[string]any{"scopes": []string{"org:read", "issue:read", "member:read"}}).ok(t, 200, nil)
	submitAndDecide(t, h, "2", plugboard.RevisionApproved, "")
	h.admin.do("POST", "/api/0/installations/"+h.inst+"/permission-acceptances/", map[string]any{"request": "999"}).problem(t, 409, "permissions_changed")
	h.admin.do("POST", "/api/0/installations/"+h.inst+"/permission-acceptances/", nil).ok(t, 201, nil)
	if inst := getInstallation(t, h.admin, h.inst); !slices.Contains(inst.Scopes, "member:read") {
		t.Errorf("accepted installation %+v", inst)
	}
}
