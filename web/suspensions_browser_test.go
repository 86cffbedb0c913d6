package web_test

import (
	"testing"
)

// signInTab signs a person in through the login page.
func signInTab(b *tab, email string) {
	b.t.Helper()
	b.open("/login?next=/marketplace")
	b.fill("#f-email", email)
	b.fill("#f-password", "correct horse battery")
	b.press("Sign in")
	b.at("/marketplace")
}

// In a browser: an organization admin suspends an installed app with a
// reason and sees it, and who can lift it, on the app's page and in the
// list, then lifts it; an operator suspends the whole app from its
// review page, the organization sees the operators' reason and that only
// they lift it, and the operator lifts it.
func TestBrowserSuspensionControls(t *testing.T) {
	h := newHooks(t)
	admin := newTab(t, h.p.URL)
	signInTab(admin, "admin@customer.example")
	page := "/orgs/customer/installations/" + h.inst

	admin.open(page)
	admin.see("Suspension", "Suspending stops Hook App at once")
	admin.fill("#f-reason", "Paused for an audit.")
	admin.press("Suspend Hook App")
	admin.see("Hook App is suspended: its tokens are refused", "Reason: “Paused for an audit.”",
		"Who can lift it: any admin of Customer, or Plugboard's operators.", "Lift the suspension")
	admin.open("/orgs/customer/installations")
	admin.see("Suspended", "Paused for an audit.")
	admin.open(page)
	admin.press("Lift the suspension")
	admin.see("The suspension is lifted", "Suspend Hook App")
	if i := getInstallation(t, h.admin, h.inst); i.Suspension != nil {
		t.Fatalf("still suspended: %+v", i.Suspension)
	}

	// The operator's kill switch, from the marketplace to the review page.
	ops := newTab(t, h.p.URL)
	signInTab(ops, "ops@plugboard.example")
	ops.open("/marketplace/hook-app")
	ops.press("Review or suspend")
	ops.at("/admin/review/hook-app")
	ops.press("Suspend Hook App")
	ops.see("is required to suspend an app") // a reason first
	ops.fill("#f-suspensionReason", "It sends member data to a host it did not declare.")
	ops.press("Suspend Hook App")
	ops.see("Hook App is suspended: it left the marketplace", "Lift the suspension")

	admin.seeAfterReload("Plugboard's operators suspended Hook App for every organization",
		"Reason: “It sends member data to a host it did not declare.”",
		"Who can lift it: Plugboard's operators, when they lift the app's suspension.",
		"only they can lift the suspension")

	ops.press("Lift the suspension")
	ops.see("suspension is lifted")
	admin.seeAfterReload("Suspend Hook App")
	if i := getInstallation(t, h.admin, h.inst); i.Suspension != nil {
		t.Fatalf("still suspended after the lift: %+v", i.Suspension)
	}
}
