package marketplace_test

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/plugboard/plugboard/app/page"
	"github.com/plugboard/plugboard/marketplace"
)

// subscriber is appFields for an app that receives issue.created.
func subscriber(name string) marketplace.AppFields {
	in := appFields(name)
	in.Scopes, in.Events = ptr([]string{"org:read", "issue:read"}), ptr([]string{"issue.created"})
	return in
}

// market is a studio whose apps are published, and a customer organization.
type market struct {
	*studio
	customer marketplace.Actor // owner of "customer"
	custID   int64
}

func newMarket(t *testing.T) *market {
	t.Helper()
	m := &market{studio: newStudio(t)}
	m.customer = m.mustUser("owner@customer.example")
	m.custID = m.mustOrg(m.customer, "Customer").Org.ID
	return m
}

// published creates and publishes an app of acme.
func (m *market) published(in marketplace.AppFields) *marketplace.CreatedApp {
	m.t.Helper()
	app := m.mustApp(m.admin, "acme", in)
	m.mustPublish(m.admin, m.op, app.Slug)
	return app
}

func TestPublishEventFansOutToSubscribedInstallations(t *testing.T) {
	m := newMarket(t)
	subscribed := m.published(subscriber("Subscribed"))
	deaf := m.published(appFields("Deaf"))
	pendingIn := subscriber("Pending")
	pendingIn.VerifyInstall = ptr(true)
	pending := m.published(pendingIn)
	late := m.published(appFields("Late")) // gains the scope after it was installed
	for _, app := range []string{subscribed.Slug, deaf.Slug, pending.Slug, late.Slug} {
		m.mustInstall(m.customer, "customer", app, "free")
	}
	if _, err := m.Apps.UpdateApp(m.ctx, m.admin, late.Slug, marketplace.AppUpdate{AppFields: marketplace.AppFields{
		Scopes: ptr([]string{"org:read", "issue:read"}), Events: ptr([]string{"issue.created"})}}); err != nil {
		t.Fatal(err)
	}
	// Another organization's installation of the subscriber hears nothing.
	elsewhere := m.mustUser("owner@elsewhere.example")
	m.mustOrg(elsewhere, "Elsewhere")
	m.mustInstall(elsewhere, "elsewhere", subscribed.Slug, "free")

	member := m.mustUser("member@customer.example")
	m.mustMember(m.customer, "customer", member, marketplace.RoleMember)
	_, err := m.Events.PublishEvent(m.ctx, member, "customer", "issue.created", json.RawMessage(`{"id": 1}`))
	wantCode(t, err, "insufficient_role")
	_, err = m.Events.PublishEvent(m.ctx, m.stranger, "customer", "issue.created", json.RawMessage(`{"id": 1}`))
	wantCode(t, err, "not_found")

	ev, err := m.Events.PublishEvent(m.ctx, m.customer, "customer", "issue.created", json.RawMessage(`{"id": 42}`))
	wantCode(t, err, "")
	if ev.Type != "issue.created" || ev.OrganizationID != m.custID || ev.CreatedBy != "owner@customer.example" || ev.DeliveriesCount != 1 || ev.InstallationID != nil {
		t.Errorf("event = %+v", ev)
	}
	var inst marketplace.Installation
	m.db.Where("app_id = ? AND organization_id = ?", subscribed.ID, m.custID).Take(&inst)
	want := []delivery{{EventType: "issue.created", AppID: subscribed.ID, InstallationUUID: inst.UUID, OrganizationID: m.custID, Status: "pending"}}
	if diff := cmp.Diff(want, m.deliveries("issue.created")); diff != "" {
		t.Errorf("deliveries (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]any{"id": float64(42)}, m.eventData(m.custID, "issue.created")); diff != "" {
		t.Errorf("event data (-want +got):\n%s", diff)
	}
}

func TestPublishEventValidation(t *testing.T) {
	m := newMarket(t)
	tests := []struct {
		name, typ, data string
		code            string
		fields          []string
	}{
		{"wrong type in data", "issue.created", `{"id": "forty-two"}`, "schema_mismatch", []string{"data.id"}},
		{"required property missing", "issue.created", `{"title": "x"}`, "schema_mismatch", []string{"data"}},
		{"no data at all", "issue.created", ``, "schema_mismatch", []string{"data"}},
		{"data not an object", "issue.created", `[1]`, "invalid_input", []string{"data"}},
		{"no type", "", `{}`, "invalid_input", []string{"type"}},
		{"unknown type", "issue.closed", `{}`, "invalid_input", []string{"type"}},
		{"builtin type", "installation.created", `{}`, "invalid_input", []string{"type"}},
		{"matches the schema", "issue.created", `{"id": 7, "title": "x"}`, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := m.Events.PublishEvent(m.ctx, m.customer, "customer", tt.typ, json.RawMessage(tt.data))
			wantCode(t, err, tt.code)
			if tt.fields != nil {
				wantFields(t, err, tt.fields...)
			}
		})
	}
	if n := m.count("events", "organization_id = ?", m.custID); n != 1 {
		t.Errorf("events stored = %d, want only the valid one", n)
	}
}

func TestServiceTokenPublishes(t *testing.T) {
	m := newMarket(t)
	app := m.published(subscriber("Subscribed"))
	m.mustInstall(m.customer, "customer", app.Slug, "free")

	_, _, err := m.ServiceTokens.CreateServiceToken(m.ctx, m.owner, "host")
	wantCode(t, err, "operator_only")
	_, _, err = m.ServiceTokens.CreateServiceToken(m.ctx, m.op, " ")
	wantFields(t, err, "name")
	st, token, err := m.ServiceTokens.CreateServiceToken(m.ctx, m.op, "host app")
	wantCode(t, err, "")
	host := m.mustBearer(token)
	if host.Service == nil || host.Service.ID != st.ID || host.User != nil {
		t.Fatalf("service token actor = %+v", host)
	}

	ev, err := m.Events.PublishEvent(m.ctx, host, "customer", "issue.created", json.RawMessage(`{"id": 1}`))
	wantCode(t, err, "")
	if ev.CreatedBy != "service token host app" || ev.DeliveriesCount != 1 {
		t.Errorf("event = %+v", ev)
	}
	events, err := m.Events.ListEvents(m.ctx, host, "customer", "", page.Request{})
	wantCode(t, err, "")
	if len(events.Items) != 1 || events.Items[0].ID != ev.ID {
		t.Errorf("events seen by the host = %+v", events.Items)
	}
	_, err = m.Events.PublishEvent(m.ctx, host, "nowhere", "issue.created", json.RawMessage(`{"id": 1}`))
	wantCode(t, err, "not_found")
	// It publishes, nothing more.
	_, err = m.Orgs.GetOrganization(m.ctx, host, "customer")
	wantCode(t, err, "users_only")
	_, err = m.Installs.ListAppInstallations(m.ctx, host, app.Slug, marketplace.InstallationQuery{}, page.Request{})
	wantCode(t, err, "users_only")

	list, err := m.ServiceTokens.ListServiceTokens(m.ctx, m.op)
	wantCode(t, err, "")
	if len(list) != 1 || list[0].Name != "host app" || list[0].LastUsedAt == nil {
		t.Errorf("service tokens = %+v", list)
	}
	wantCode(t, m.ServiceTokens.RevokeServiceToken(m.ctx, m.owner, idStr(st.ID)), "operator_only")
	wantCode(t, m.ServiceTokens.RevokeServiceToken(m.ctx, m.op, idStr(st.ID)), "")
	wantCode(t, m.ServiceTokens.RevokeServiceToken(m.ctx, m.op, idStr(st.ID)), "not_found")
	_, err = m.Accounts.AuthenticateBearer(m.ctx, token)
	wantCode(t, err, "invalid_token")
}

func TestListEventsHidesLifecycleEvents(t *testing.T) {
	m := newMarket(t)
	m.mustEventType(m.op, "deploy.finished", "deploy:read", "")
	app := m.published(subscriber("Subscribed"))
	ni := m.mustInstall(m.customer, "customer", app.Slug, "free")
	if err := m.Installs.Uninstall(m.ctx, m.customer, ni.Installation.UUID); err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, typ := range []string{"issue.created", "deploy.finished", "issue.created"} {
		data := `{"id": 1}`
		ev, err := m.Events.PublishEvent(m.ctx, m.customer, "customer", typ, json.RawMessage(data))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ev.ID)
	}
	if n := m.count("events", "organization_id = ? AND type LIKE 'installation.%'", m.custID); n != 2 {
		t.Fatalf("lifecycle events in the organization = %d, want 2", n)
	}

	tests := []struct {
		name  string
		actor marketplace.Actor
		typ   string
		want  []int64
		code  string
	}{
		{"everything the host published, newest first", m.customer, "", []int64{ids[2], ids[1], ids[0]}, ""},
		{"by type", m.customer, "issue.created", []int64{ids[2], ids[0]}, ""},
		{"a lifecycle type finds nothing", m.customer, "installation.created", nil, ""},
		{"strangers", m.stranger, "", nil, "not_found"},
		{"anonymous", marketplace.Anonymous, "", nil, "not_authenticated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := m.Events.ListEvents(m.ctx, tt.actor, "customer", tt.typ, page.Request{})
			wantCode(t, err, tt.code)
			var got []int64
			for _, ev := range p.Items {
				got = append(got, ev.ID)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}
