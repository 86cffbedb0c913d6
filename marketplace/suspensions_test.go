package marketplace_test

import (
	"time"

	"testing"

	"github.com/plugboard/plugboard/marketplace"
)

// Who may lift a suspension, for each suspender and each caller, against
// the rule written out plainly (mayLift): B's admin never finds it, a
// member may not, an operator always may, and the app may not lift what
// an admin did. The suspension's time is the services' clock, and a lift
// that is refused leaves it as it was.
func TestWhoMayLiftASuspension(t *testing.T) {
	w := newWorld(t, appFields("Pager"))
	ni := w.mustInstall(w.admin, w.customer, w.app.Slug, "free")
	uuid := ni.Installation.UUID
	set := w.mustExchange(w.mustClient(w.app), ni.Code)
	other := w.mustUser("other@customer.example")
	w.mustMember(w.admin, w.customer, other, marketplace.RoleAdmin)
	member := w.mustUser("member@customer.example")
	w.mustMember(w.admin, w.customer, member, marketplace.RoleMember)
	stranger := w.mustUser("admin@elsewhere.example")
	w.mustOrg(stranger, "Elsewhere")
	actors := map[string]marketplace.Actor{
		"admin": w.admin, "other admin": other, "member": member, "stranger": stranger, "operator": w.op,
		"app": {App: w.mustClient(w.app)},
	}
	mayLift := func(by, lifter string) string {
		switch {
		case lifter == "stranger":
			return "not_found"
		case lifter == "member":
			return "insufficient_role"
		case lifter == "operator", by == "app":
			return ""
		case lifter == "app": // by an admin
			return "not_suspender"
		}
		return "" // an admin lifts an admin's: the organization suspended it
	}
	for _, by := range []string{"admin", "app"} {
		for _, lifter := range []string{"admin", "other admin", "member", "stranger", "operator", "app"} {
			t.Run(by+" then "+lifter, func(t *testing.T) {
				e := w.with(t)
				w.clock.Advance(time.Second)
				got, created, err := e.Suspensions.Suspend(e.ctx, actors[by], uuid, ptr("  why  "))
				wantCode(t, err, "")
				if !created || got.SuspendedAt == nil || !got.SuspendedAt.Equal(w.clock.Now()) || got.SuspensionReason != "why" {
					t.Fatalf("suspended %v %+v", created, got)
				}
				if _, err := e.Accounts.AuthenticateBearer(e.ctx, set.AccessToken); codeOf(err) != "installation_suspended" {
					t.Errorf("the token while suspended: %v", err)
				}
				want := mayLift(by, lifter)
				wantCode(t, e.Suspensions.Unsuspend(e.ctx, actors[lifter], uuid), want)
				if still := e.installation(uuid).SuspendedAt != nil; still != (want != "") {
					t.Errorf("suspended after %s lifted it: %v", lifter, still)
				}
				wantCode(t, e.Suspensions.Unsuspend(e.ctx, w.op, uuid), "") // clean up, or nothing to lift
				e.mustBearer(set.AccessToken)
			})
		}
	}
}
