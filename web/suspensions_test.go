package web_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/plugboard/plugboard/sdk/plugboard"
)

// hookToken exchanges the code of the installation.created the partner's
// sink received, as a partner would with x/oauth2, and returns the token.
func hookToken(t *testing.T, h *hooks) *oauth2.Token {
	t.Helper()
	created := h.sink.waitEvent(t, "installation.created", 10*time.Second)
	ev, err := plugboard.ParseEvent(created.Body)
	if err != nil {
		t.Fatal(err)
	}
	data, err := ev.InstallationCreated()
	if err != nil {
		t.Fatal(err)
	}
	tok, err := hookOAuth(h).Exchange(context.Background(), data.Code)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func hookOAuth(h *hooks) *oauth2.Config {
	return &oauth2.Config{ClientID: h.clientID, ClientSecret: h.app.ClientSecret, Endpoint: oauth2.Endpoint{TokenURL: h.p.URL + "/oauth/token"}}
}

// hookApp is a client authenticated as the hook app itself (HTTP Basic).
func hookApp(t *testing.T, h *hooks) *client {
	c := newClient(t, h.p, "")
	c.http.Transport = basicAuth{h.clientID, h.app.ClientSecret}
	return c
}

// eventsOf returns the sink's requests of event type typ, in arrival order.
func (s *sink) eventsOf(typ string) []hit {
	var out []hit
	for _, x := range s.all() {
		if x.Header.Get("Plugboard-Event") == typ {
			out = append(out, x)
		}
	}
	return out
}

// deliveriesWith lists the app's deliveries with status, as the partner
// reads its delivery log.
func deliveriesWith(t *testing.T, c *client, app, status string) []plugboard.Delivery {
	t.Helper()
	return decode[[]plugboard.Delivery](t, c.do("GET", "/api/0/apps/"+app+"/deliveries/?status="+status, nil), 200)
}

func sortedIDs(ds []plugboard.Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.ID
	}
	slices.Sort(out)
	return out
}

// auditActions lists the actions of an organization's audit log.
func auditActions(t *testing.T, c *client, org string) []string {
	t.Helper()
	var out []string
	for _, e := range decode[[]plugboard.AuditLogEntry](t, c.do("GET", "/api/0/organizations/"+org+"/audit-logs/?limit=100", nil), 200) {
		out = append(out, e.Action)
	}
	return out
}

// An organization admin suspends an installation: its token is refused on
// the very next request and no token is issued for it, the partner is told
// with installation.suspended (and so is the host), and events published
// meanwhile wait paused through every replay; the app cannot lift the
// admin's suspension. Lifting it sends installation.unsuspended and
// replays what waited, each delivery with its original webhook-id, every
// request checked with the Standard Webhooks library.
func TestAdminSuspensionStopsTokensAndDeliveries(t *testing.T) {
	h := newHooks(t, freshEndpoints)
	host := newSink(t)
	ep := newHostEndpoint(t, h.op, host, "installation.suspended", "installation.unsuspended")
	tok := hookToken(t, h)
	inst := newClient(t, h.p, tok.AccessToken)
	app := hookApp(t, h)
	inst.do("GET", "/api/0/organizations/customer/", nil).ok(t, 200, nil)
	h.publish(t, "Before")
	before := h.sink.waitEvent(t, "issue.created", 10*time.Second)
	verify(t, h.secret, before)

	got := decode[plugboard.Installation](t, h.admin.do("POST", "/api/0/installations/"+h.inst+"/suspensions/",
		map[string]any{"reason": "  Reviewing what it reads.  "}), 201)
	sp := got.Suspension
	if sp == nil || sp.By != plugboard.SuspendedByOrganization || sp.Reason != "Reviewing what it reads." ||
		!slices.Equal(sp.LiftableBy, []string{"organization", "operator"}) || sp.DateSuspended.IsZero() {
		t.Fatalf("suspension %+v", sp)
	}

	// Tokens stop at once: the very next request, anywhere a token is
	// taken, and no new token is issued (the refresh token is refused).
	for _, path := range []string{"/api/0/installations/" + h.inst + "/", "/api/0/organizations/customer/", "/api/0/organizations/customer/members/"} {
		p := inst.do("GET", path, nil).problem(t, 401, "installation_suspended")
		if !strings.Contains(p.Detail, "Reviewing what it reads.") {
			t.Errorf("detail %q", p.Detail)
		}
	}
	if _, err := hookOAuth(h).TokenSource(context.Background(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); oauthErrorCode(err) != "invalid_grant" {
		t.Errorf("refresh while suspended: %v", err)
	}
	// The app sees its installation suspended, with its own credentials.
	if i := decode[plugboard.Installation](t, app.do("GET", "/api/0/installations/"+h.inst+"/", nil), 200); i.Suspension == nil || i.Suspension.By != "organization" {
		t.Errorf("the app sees %+v", i.Suspension)
	}

	// The partner and the host hear of it; nothing else goes out: what is
	// published now is stored paused.
	suspended := h.sink.waitEvent(t, "installation.suspended", 10*time.Second)
	verify(t, h.secret, suspended)
	ev, _ := plugboard.ParseEvent(suspended.Body)
	if d, err := ev.InstallationSuspended(); err != nil || d.Suspension.By != "organization" || d.Suspension.Reason != "Reviewing what it reads." || ev.InstallationUUID() != h.inst {
		t.Errorf("installation.suspended %+v %v", d, err)
	}
	hostHit := host.waitEvent(t, "installation.suspended", 10*time.Second)
	verify(t, ep.Secret, hostHit)
	if !strings.Contains(string(hostHit.Body), `"customer"`) || !strings.Contains(string(hostHit.Body), h.inst) {
		t.Errorf("host event %s", hostHit.Body)
	}
	e1, e2 := h.publish(t, "During one"), h.publish(t, "During two")
	if e1.Deliveries != 1 || e2.Deliveries != 1 {
		t.Fatalf("events %+v %+v", e1, e2)
	}
	paused := deliveriesWith(t, h.dev, "hook-app", "paused")
	if len(paused) != 2 || paused[0].EventType != "issue.created" || paused[0].Installation != h.inst || paused[0].Attempts != 0 {
		t.Fatalf("paused %+v", paused)
	}
	want := sortedIDs(paused)

	// The app may neither lift an admin's suspension nor replace it; the
	// installation's token cannot even ask.
	app.do("DELETE", "/api/0/installations/"+h.inst+"/suspensions/", nil).problem(t, 403, "not_suspender")
	inst.do("DELETE", "/api/0/installations/"+h.inst+"/suspensions/", nil).problem(t, 401, "installation_suspended")
	app.do("POST", "/api/0/installations/"+h.inst+"/suspensions/", map[string]any{"reason": "Mine now"}).problem(t, 409, "already_suspended")
	// Suspending again as the organization changes nothing.
	again := decode[plugboard.Installation](t, h.admin.do("POST", "/api/0/installations/"+h.inst+"/suspensions/", nil), 200)
	if again.Suspension.Reason != "Reviewing what it reads." || !again.Suspension.DateSuspended.Equal(sp.DateSuspended) {
		t.Errorf("again %+v", again.Suspension)
	}
	// Replays pass it by: re-enabling the endpoint, redelivering.
	h.dev.do("PUT", "/api/0/apps/hook-app/", map[string]any{"webhookStatus": "enabled"}).ok(t, 200, nil)
	if n := decode[plugboard.Redelivery](t, h.dev.do("POST", "/api/0/apps/hook-app/redeliveries/", map[string]any{"deliveries": want}), 202); n.Count != 0 {
		t.Errorf("redelivered %d held deliveries", n.Count)
	}
	if got := sortedIDs(deliveriesWith(t, h.dev, "hook-app", "paused")); !slices.Equal(got, want) {
		t.Errorf("paused after the replays %v, want %v", got, want)
	}

	// The admin lifts it: installation.unsuspended, then what waited, with
	// the webhook-ids the partner's log showed as paused.
	lifting := time.Now()
	h.admin.do("DELETE", "/api/0/installations/"+h.inst+"/suspensions/", nil).ok(t, 204, nil)
	inst.do("GET", "/api/0/organizations/customer/", nil).ok(t, 200, nil)
	if i := getInstallation(t, h.admin, h.inst); i.Suspension != nil {
		t.Errorf("still suspended: %+v", i.Suspension)
	}
	unsuspended := h.sink.waitEvent(t, "installation.unsuspended", 10*time.Second)
	verify(t, h.secret, unsuspended)
	ev, _ = plugboard.ParseEvent(unsuspended.Body)
	if d, err := ev.InstallationUnsuspended(); err != nil || d.LiftedBy != "organization" || d.Suspension.Reason != "Reviewing what it reads." {
		t.Errorf("installation.unsuspended %+v %v", d, err)
	}
	verify(t, ep.Secret, host.waitEvent(t, "installation.unsuspended", 10*time.Second))
	waitFor(t, 10*time.Second, func() bool { return len(h.sink.eventsOf("issue.created")) == 3 })
	var replayed []string
	for _, x := range h.sink.eventsOf("issue.created")[1:] {
		verify(t, h.secret, x)
		env, err := plugboard.ParseEvent(x.Body)
		if err != nil || env.ID != x.Header.Get("Webhook-Id") {
			t.Errorf("envelope %s: %v", x.Body, err)
		}
		replayed = append(replayed, x.Header.Get("Webhook-Id"))
	}
	slices.Sort(replayed)
	if !slices.Equal(replayed, want) {
		t.Errorf("replayed webhook-ids %v, want the paused deliveries' %v", replayed, want)
	}
	// Only those: nothing was sent while it was suspended.
	for _, x := range h.sink.all() {
		if x.At.After(suspended.At) && x.At.Before(lifting) {
			t.Errorf("sent while suspended: %s %s", x.Header.Get("Plugboard-Event"), x.Body)
		}
	}
	actions := auditActions(t, h.admin, "customer")
	if !slices.Contains(actions, "installation.suspend") || !slices.Contains(actions, "installation.unsuspend") {
		t.Errorf("audit log %v", actions)
	}
}

// The app suspends its own installation and lifts it; an admin takes over
// the app's suspension, which the app then cannot lift. Members, other
// organizations and bad input are refused, changing nothing.
func TestAppSuspensionAndItsRules(t *testing.T) {
	h := newHooks(t)
	app := hookApp(t, h)
	member := signUp(t, h.p, "member@customer.example")
	h.admin.do("POST", "/api/0/organizations/customer/members/", map[string]string{"email": "member@customer.example"}).ok(t, 201, nil)
	stranger := signUp(t, h.p, "admin@elsewhere.example")
	path := "/api/0/installations/" + h.inst + "/suspensions/"

	// Bad input, field by field, before anything changes.
	for _, tc := range []struct {
		body  any
		field string
	}{
		{map[string]any{"reason": strings.Repeat("x", 501)}, "reason"},
		{map[string]any{"reason": 42}, "reason"},
		{map[string]any{"why": "nope"}, "why"},
	} {
		p := h.admin.do("POST", path, tc.body).problem(t, 400, "")
		if p.Fields[tc.field] == "" {
			t.Errorf("%v: fields %v", tc.body, p.Fields)
		}
	}
	h.admin.do("POST", path, "[]").problem(t, 400, "malformed_json")
	member.do("POST", path, nil).problem(t, 403, "insufficient_role")
	stranger.do("POST", path, nil).problem(t, 404, "not_found")
	h.op.do("POST", path, nil).problem(t, 404, "not_found") // operators suspend whole apps
	h.admin.do("POST", "/api/0/installations/not-a-uuid/suspensions/", nil).problem(t, 404, "not_found")
	if i := getInstallation(t, h.admin, h.inst); i.Suspension != nil {
		t.Fatalf("refusals suspended it: %+v", i.Suspension)
	}

	// The app, as itself (the SDK with its client credentials).
	sdk, err := plugboard.NewClient(h.p.URL, plugboard.WithClientCredentials(h.clientID, h.app.ClientSecret))
	if err != nil {
		t.Fatal(err)
	}
	got, err := sdk.SuspendInstallation(t.Context(), h.inst, "Migrating the account.")
	if err != nil || got.Suspension == nil || got.Suspension.By != plugboard.SuspendedByApp ||
		!slices.Equal(got.Suspension.LiftableBy, []string{"app", "organization", "operator"}) {
		t.Fatalf("app suspension %+v %v", got, err)
	}
	if err := sdk.UnsuspendInstallation(t.Context(), h.inst); err != nil {
		t.Fatal(err)
	}
	// Lifting what is not suspended changes nothing.
	app.do("DELETE", path, nil).ok(t, 204, nil)
	member.do("DELETE", path, nil).problem(t, 403, "insufficient_role")
	stranger.do("DELETE", path, nil).problem(t, 404, "not_found")
	if n := len(h.sink.eventsOf("installation.unsuspended")); n > 1 {
		t.Errorf("%d installation.unsuspended", n)
	}

	// The admin takes the app's suspension over: only the organization
	// lifts it then, and it keeps the app's reason.
	decode[plugboard.Installation](t, app.do("POST", path, map[string]any{"reason": "Migrating again."}), 201)
	taken := decode[plugboard.Installation](t, h.admin.do("POST", path, nil), 200)
	if taken.Suspension.By != "organization" || taken.Suspension.Reason != "Migrating again." {
		t.Errorf("taken over %+v", taken.Suspension)
	}
	app.do("DELETE", path, nil).problem(t, 403, "not_suspender")
	h.op.do("DELETE", path, nil).ok(t, 204, nil) // an operator lifts any
	if i := getInstallation(t, h.admin, h.inst); i.Suspension != nil {
		t.Errorf("after the operator lifted it: %+v", i.Suspension)
	}
	// Each suspension told the partner once.
	waitFor(t, 10*time.Second, func() bool { return len(h.sink.eventsOf("installation.unsuspended")) == 2 })
	if n := len(h.sink.eventsOf("installation.suspended")); n != 2 {
		t.Errorf("%d installation.suspended, want 2", n)
	}

	// An ended installation is not suspended.
	h.admin.do("DELETE", "/api/0/installations/"+h.inst+"/", nil).ok(t, 204, nil)
	h.admin.do("POST", path, nil).problem(t, 409, "installation_not_live")
}

// The kill switch: an operator suspends the app in one step; it leaves the
// directory and cannot be installed, every installation is suspended with
// the operator's reason (one an admin suspended before keeps its own), and
// their tokens and deliveries stop. Lifting it restores the app and
// exactly the installations it suspended, replaying what waited.
func TestKillSwitchSuspendsEveryInstallationAndLiftsOnlyItsOwn(t *testing.T) {
	h := newHooks(t)
	tok := hookToken(t, h)
	inst := newClient(t, h.p, tok.AccessToken)
	// Two more organizations install it; the third's admin suspends it first.
	others := map[string]*client{}
	uuids := map[string]string{"customer": h.inst}
	for _, org := range []string{"second", "third"} {
		c := signUp(t, h.p, "admin@"+org+".example")
		c.do("POST", "/api/0/organizations/", map[string]string{"name": org}).ok(t, 201, nil)
		uuids[org] = decode[plugboard.Installation](t, c.do("POST", "/api/0/organizations/"+org+"/installations/", map[string]any{"app": "hook-app", "plan": "free"}), 201).UUID
		others[org] = c
	}
	waitFor(t, 10*time.Second, func() bool { return len(h.sink.eventsOf("installation.created")) == 3 })
	decode[plugboard.Installation](t, others["third"].do("POST", "/api/0/installations/"+uuids["third"]+"/suspensions/", map[string]any{"reason": "Ours."}), 201)

	// Only operators, and with a reason.
	h.dev.do("PUT", "/api/0/apps/hook-app/", map[string]any{"status": "suspended", "statusReason": "Mine"}).problem(t, 403, "operator_only")
	p := h.op.do("PUT", "/api/0/apps/hook-app/", map[string]any{"status": "suspended"}).problem(t, 400, "invalid_input")
	if p.Fields["statusReason"] == "" {
		t.Errorf("fields %v", p.Fields)
	}
	p = h.op.do("PUT", "/api/0/apps/hook-app/", map[string]any{"status": "suspended", "statusReason": strings.Repeat("y", 501)}).problem(t, 400, "invalid_input")
	if p.Fields["statusReason"] == "" {
		t.Errorf("fields %v", p.Fields)
	}
	h.op.do("PUT", "/api/0/apps/hook-app/", map[string]any{"status": "paused"}).problem(t, 400, "invalid_input")
	if a := decode[plugboard.App](t, h.dev.do("GET", "/api/0/apps/hook-app/", nil), 200); a.Status != "published" {
		t.Fatalf("refusals changed the app: %s", a.Status)
	}

	const reason = "It sends member data to an unknown host."
	app := decode[plugboard.App](t, h.op.do("PUT", "/api/0/apps/hook-app/", map[string]any{"status": "suspended", "statusReason": reason}), 200)
	if app.Status != "suspended" || app.StatusReason != reason {
		t.Fatalf("app %s %q", app.Status, app.StatusReason)
	}
	h.op.do("PUT", "/api/0/apps/hook-app/", map[string]any{"status": "suspended", "statusReason": reason}).problem(t, 409, "invalid_transition")
	h.op.do("PUT", "/api/0/apps/hook-app/", map[string]any{"status": "rejected", "statusReason": "x"}).problem(t, 409, "invalid_transition")
	// Every installation, in that one step; each organization sees why.
	admins := map[string]*client{"customer": h.admin, "second": others["second"], "third": others["third"]}
	for org, want := range map[string][2]string{"customer": {"app_suspension", reason}, "second": {"app_suspension", reason}, "third": {"organization", "Ours."}} {
		sp := getInstallation(t, admins[org], uuids[org]).Suspension
		if sp == nil || sp.By != want[0] || sp.Reason != want[1] {
			t.Errorf("%s: suspension %+v, want %v", org, sp, want)
		}
	}
	inst.do("GET", "/api/0/organizations/customer/", nil).problem(t, 401, "installation_suspended")
	// Out of the directory, and not installable.
	for _, a := range decode[[]plugboard.App](t, newClient(t, h.p, "").do("GET", "/api/0/apps/", nil), 200) {
		if a.Slug == "hook-app" {
			t.Error("a suspended app is listed")
		}
	}
	newClient(t, h.p, "").do("GET", "/api/0/apps/hook-app/", nil).problem(t, 404, "not_found")
	fourth := signUp(t, h.p, "admin@fourth.example")
	fourth.do("POST", "/api/0/organizations/", map[string]string{"name": "Fourth"}).ok(t, 201, nil)
	fourth.do("POST", "/api/0/organizations/fourth/installations/", map[string]any{"app": "hook-app", "plan": "free"}).problem(t, 409, "app_suspended")
	// Its organizations cannot lift what the operators did.
	h.admin.do("DELETE", "/api/0/installations/"+h.inst+"/suspensions/", nil).problem(t, 409, "app_suspended")
	// Deliveries wait.
	h.publish(t, "While the app is suspended")
	paused := deliveriesWith(t, h.dev, "hook-app", "paused")
	if len(paused) != 1 || paused[0].Installation != h.inst {
		t.Fatalf("paused %+v", paused)
	}
	waitFor(t, 10*time.Second, func() bool { return len(h.sink.eventsOf("installation.suspended")) == 3 }) // third's, then the two the switch made

	// Lifted: back to published, and exactly the installations it suspended.
	app = decode[plugboard.App](t, h.op.do("PUT", "/api/0/apps/hook-app/", map[string]any{"status": "published"}), 200)
	if app.Status != "published" || app.StatusReason != "" {
		t.Fatalf("lifted app %s %q", app.Status, app.StatusReason)
	}
	for org, suspended := range map[string]bool{"customer": false, "second": false, "third": true} {
		if sp := getInstallation(t, admins[org], uuids[org]).Suspension; (sp != nil) != suspended {
			t.Errorf("%s after the lift: %+v", org, sp)
		}
	}
	inst.do("GET", "/api/0/organizations/customer/", nil).ok(t, 200, nil)
	replayed := h.sink.waitEvent(t, "issue.created", 10*time.Second)
	verify(t, h.secret, replayed)
	if replayed.Header.Get("Webhook-Id") != paused[0].ID {
		t.Errorf("replayed %s, want the paused %s", replayed.Header.Get("Webhook-Id"), paused[0].ID)
	}
	waitFor(t, 10*time.Second, func() bool { return len(h.sink.eventsOf("installation.unsuspended")) == 2 })
	fourth.do("POST", "/api/0/organizations/fourth/installations/", map[string]any{"app": "hook-app", "plan": "free"}).ok(t, 201, nil)

	// Every step in the audit logs: the app's owner's, each organization's.
	owner := auditActions(t, h.dev, "partner")
	if !slices.Contains(owner, "app.suspend") || !slices.Contains(owner, "app.unsuspend") {
		t.Errorf("owner's audit log %v", owner)
	}
	var entries []plugboard.AuditLogEntry
	for _, e := range decode[[]plugboard.AuditLogEntry](t, h.admin.do("GET", "/api/0/organizations/customer/audit-logs/?limit=100", nil), 200) {
		if e.Action == "installation.suspend" || e.Action == "installation.unsuspend" {
			entries = append(entries, e)
		}
	}
	if len(entries) != 2 || entries[0].Actor.Name != "ops@plugboard.example" || entries[1].Data["by"] != "app_suspension" {
		b, _ := json.Marshal(entries)
		t.Errorf("customer's audit log %s", b)
	}
}

// Reconciliation leaves a suspended installation alone: one left pending
// past its verification deadline is not failed while suspended, and is
// once its suspension is lifted.
func TestReconciliationSkipsSuspendedInstallations(t *testing.T) {
	h := reconWorld(t, true)
	inst := h.install(t)
	h.admin.do("POST", "/api/0/installations/"+inst.UUID+"/suspensions/", nil).ok(t, 201, nil)
	// Runs keep coming every second; wait for two that began well past the
	// deadline (1 s after the install) and finished.
	deadline := inst.DateCreated.Add(2 * time.Second)
	waitFor(t, 20*time.Second, func() bool {
		n := 0
		for _, r := range decode[[]plugboard.ReconciliationRun](t, h.op.do("GET", "/api/0/reconciliation-runs/?job=verification_deadline", nil), 200) {
			if r.DateStarted.After(deadline) && r.DateFinished != nil {
				n++
			}
		}
		return n >= 2
	})
	if got := getInstallation(t, h.admin, inst.UUID); got.Status != plugboard.StatusPending || got.Suspension == nil {
		t.Fatalf("a suspended installation was reconciled: %s %+v", got.Status, got.Suspension)
	}
	h.admin.do("DELETE", "/api/0/installations/"+inst.UUID+"/suspensions/", nil).ok(t, 204, nil)
	waitInstallation(t, h, inst.UUID, func(i plugboard.Installation) bool { return i.Status == plugboard.StatusFailed })
}
