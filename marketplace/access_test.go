package marketplace_test

import (
	"testing"

	"github.com/plugboard/plugboard/app/page"
	"github.com/plugboard/plugboard/marketplace"
	"github.com/plugboard/plugboard/webhooks"
)

// TestAccessRule is the rule shared by every service that shows an app:
// who may see it (GetApp) and who may see its partner data (its deliveries
// and installations).
func TestAccessRule(t *testing.T) {
	w := newWorld(t, appFields("Flow App"))
	e := w.env
	ownerAdmin := e.mustUser("admin@partner.example")
	e.mustMember(w.dev, w.partner, ownerAdmin, marketplace.RoleAdmin)
	ownerMember := e.mustUser("member@partner.example")
	e.mustMember(w.dev, w.partner, ownerMember, marketplace.RoleMember)
	stranger := e.mustUser("stranger@else.example")
	ni := e.mustInstall(w.admin, w.customer, w.app.Slug, "free")
	self := marketplace.Actor{App: e.mustClient(w.app)}
	otherApp := e.mustApp(w.dev, w.partner, appFields("Other App"))
	other := marketplace.Actor{App: e.mustClient(otherApp)}
	installation := e.mustBearer(e.mustExchange(self.App, ni.Code).AccessToken)
	_, hostToken, err := e.ServiceTokens.CreateServiceToken(e.ctx, w.op, "host")
	if err != nil {
		t.Fatal(err)
	}
	host := e.mustBearer(hostToken)
	draft := e.mustApp(w.dev, w.partner, appFields("Draft App"))

	type want struct {
		code    string
		private bool // GetApp's view, when it succeeds
	}
	tests := []struct {
		name  string
		actor marketplace.Actor
		// The partner data: ListDeliveries and ListAppInstallations agree.
		partner string
		// GetApp of the published app, and of a draft.
		published, draft want
	}{
		{"owner's admin", ownerAdmin, "", want{"", true}, want{"", true}},
		{"owner's member", ownerMember, "", want{"", true}, want{"", true}},
		{"customer admin (installed it)", w.admin, "not_found", want{"", false}, want{"not_found", false}},
		{"stranger", stranger, "not_found", want{"", false}, want{"not_found", false}},
		{"operator", w.op, "not_found", want{"", true}, want{"", true}},
		{"the app itself", self, "", want{"", false}, want{"not_found", false}},
		{"another app", other, "not_found", want{"", false}, want{"not_found", false}},
		{"an installation token", installation, "app_credentials_required", want{"", false}, want{"not_found", false}},
		{"a host service token", host, "users_only", want{"", false}, want{"not_found", false}},
		{"anonymous", marketplace.Anonymous, "not_authenticated", want{"", false}, want{"not_found", false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := e.Deliveries.ListDeliveries(e.ctx, tt.actor, w.app.Slug, webhooks.DeliveryQuery{}, page.Request{})
			wantCode(t, err, tt.partner)
			if err == nil && (len(d.Items) != 1 || d.Items[0].EventType != "installation.created") {
				t.Errorf("deliveries = %+v, want the one installation.created", d.Items)
			}
			insts, err := e.Installs.ListAppInstallations(e.ctx, tt.actor, w.app.Slug, marketplace.InstallationQuery{}, page.Request{})
			wantCode(t, err, tt.partner)
			if err == nil && (len(insts.Items) != 1 || insts.Items[0].UUID != ni.Installation.UUID) {
				t.Errorf("installations = %+v", insts.Items)
			}
			for _, c := range []struct {
				slug string
				want want
			}{{w.app.Slug, tt.published}, {draft.Slug, tt.draft}} {
				v, err := e.Apps.GetApp(e.ctx, tt.actor, c.slug)
				wantCode(t, err, c.want.code)
				if err != nil {
					continue
				}
				if v.Private != c.want.private {
					t.Errorf("GetApp(%s).Private = %v, want %v", c.slug, v.Private, c.want.private)
				}
				// Private views carry the endpoint's state, public ones do not.
				if (v.WebhookStatus != "") != c.want.private {
					t.Errorf("GetApp(%s).WebhookStatus = %q for a private=%v view", c.slug, v.WebhookStatus, c.want.private)
				}
				if c.slug == w.app.Slug && len(v.Plans) != 2 {
					t.Errorf("GetApp(%s) plans = %d, want 2", c.slug, len(v.Plans))
				}
			}
		})
	}

	// A filter the delivery log refuses is an error of the caller's input,
	// after access was granted.
	_, err = e.Deliveries.ListDeliveries(e.ctx, ownerMember, w.app.Slug, webhooks.DeliveryQuery{Status: "lost"}, page.Request{})
	wantFields(t, err, "status")
	_, err = e.Installs.ListAppInstallations(e.ctx, self, w.app.Slug, marketplace.InstallationQuery{Status: "gone"}, page.Request{})
	wantFields(t, err, "status")
	_, err = e.Deliveries.ListDeliveries(e.ctx, ownerMember, "no-such-app", webhooks.DeliveryQuery{}, page.Request{})
	wantCode(t, err, "not_found")
}
