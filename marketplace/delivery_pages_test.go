package marketplace_test

import (
	"testing"
	"time"

	"github.com/plugboard/plugboard/app/page"
	"github.com/plugboard/plugboard/marketplace"
)

// appDeliveryUUID is the uuid of the app's only delivery of event type typ.
func (e *env) appDeliveryUUID(appID int64, typ string) string {
	e.t.Helper()
	var ids []string
	if err := e.db.Table("deliveries").Where("app_id = ? AND event_type = ?", appID, typ).Pluck("uuid::text", &ids).Error; err != nil || len(ids) != 1 {
		e.t.Fatalf("deliveries %s of app %d: %v (%v)", typ, appID, ids, err)
	}
	return ids[0]
}

func TestDeliveryPage(t *testing.T) {
	w := newWorld(t, appFields("Flow App"))
	e := w.env
	ni := e.mustInstall(w.admin, w.customer, w.app.Slug, "free")
	id := e.appDeliveryUUID(w.app.ID, marketplace.EventInstallationCreated)
	member := e.mustUser("member@partner.example")
	e.mustMember(w.dev, w.partner, member, marketplace.RoleMember)

	tests := []struct {
		name  string
		actor marketplace.Actor
		id    string
		code  string
	}{
		{"the app's owner", w.dev, id, ""},
		{"a member of the app's organization", member, id, ""},
		{"the app itself", marketplace.Actor{App: e.mustClient(w.app)}, id, ""},
		{"the customer it went to", w.admin, id, "not_found"},
		{"an operator", w.op, id, "not_found"},
		{"nobody signed in", marketplace.Anonymous, id, "not_authenticated"},
		{"an unknown delivery", w.dev, "00000000-0000-0000-0000-000000000000", "not_found"},
		{"not a uuid", w.dev, "nope", "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pg, err := e.Deliveries.DeliveryPage(e.ctx, tt.actor, w.app.Slug, tt.id)
			wantCode(t, err, tt.code)
			if tt.code != "" {
				return
			}
			d := pg.Delivery
			if d.UUID != id || d.EventType != marketplace.EventInstallationCreated || d.InstallationUUID == nil || *d.InstallationUUID != ni.Installation.UUID {
				t.Errorf("delivery = %+v", d.Delivery)
			}
			if pg.Org != "Customer" {
				t.Errorf("org = %q, want Customer", pg.Org)
			}
		})
	}
}

func TestHealthPage(t *testing.T) {
	in := appFields("Flow App")
	in.VerifyInstall = ptr(true)
	w := newWorld(t, in, withVerifyTimeout(time.Hour))
	e := w.env
	e.mustInstall(w.admin, w.customer, w.app.Slug, "free")
	// Another app's pending installation is found by the same run; its
	// finding is not this app's to see.
	in.Name = ptr("Other App")
	other := e.mustApp(w.dev, w.partner, in)
	e.mustPublish(w.dev, w.op, other.Slug)
	e.mustInstall(w.admin, w.customer, other.Slug, "free")
	e.clock.Advance(61 * time.Minute)
	if _, err := e.Reconciler.RunJob(e.ctx, marketplace.JobVerification); err != nil {
		t.Fatal(err)
	}
	until := e.clock.Now().Truncate(time.Hour).Add(time.Hour)
	hq := marketplace.HealthQuery{Since: until.Add(-24 * time.Hour), Until: until, Step: time.Hour}

	tests := []struct {
		name  string
		actor marketplace.Actor
		code  string
	}{
		{"the app's owner", w.dev, ""},
		{"the app itself", marketplace.Actor{App: e.mustClient(w.app)}, ""},
		{"a customer", w.admin, "not_found"},
		{"nobody signed in", marketplace.Anonymous, "not_authenticated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pg, err := e.Deliveries.HealthPage(e.ctx, tt.actor, w.app.Slug, hq, page.Request{Limit: 10})
			wantCode(t, err, tt.code)
			if tt.code != "" {
				return
			}
			if len(pg.Buckets) != 24 || !pg.Buckets[0].Start.Equal(hq.Since) {
				t.Errorf("%d buckets from %v, want 24 hourly from %v", len(pg.Buckets), pg.Buckets[0].Start, hq.Since)
			}
			// Nothing was sent yet: the deliveries wait for a dispatcher.
			if pg.Total.Attempts != 0 {
				t.Errorf("total = %+v", pg.Total)
			}
			if len(pg.Runs.Items) != 1 {
				t.Fatalf("runs = %+v", pg.Runs.Items)
			}
			run := pg.Runs.Items[0]
			if run.Job != marketplace.JobVerification || run.Found != 1 || len(run.Findings) != 1 || run.Findings[0].AppID != w.app.ID {
				t.Errorf("run = %+v", run)
			}
		})
	}
}
