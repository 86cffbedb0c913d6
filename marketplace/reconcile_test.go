package marketplace_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/plugboard/plugboard/app/page"
	"github.com/plugboard/plugboard/marketplace"
)

// runSummary is what tests compare of a run.
type runSummary struct {
	Job                       string
	Examined, Found, Repaired int
	Errors                    []string
}

func summarize(runs []*marketplace.Run) []runSummary {
	var out []runSummary
	for _, r := range runs {
		out = append(out, runSummary{Job: r.Job, Examined: r.Examined, Found: r.Found, Repaired: r.Repaired, Errors: []string(r.Errors)})
	}
	return out
}

func TestVerificationDeadlineFailsPendingInstallation(t *testing.T) {
	in := appFields("Flow App")
	in.VerifyInstall = ptr(true)
	w := newWorld(t, in, withVerifyTimeout(time.Hour))
	e := w.env
	ni := e.mustInstall(w.admin, w.customer, w.app.Slug, "free")
	set := e.mustExchange(e.mustClient(w.app), ni.Code)
	// An installation the app verified in time is left alone.
	other := e.mustUser("owner@other.example")
	e.mustOrg(other, "Other")
	ok := e.mustInstall(other, "other", w.app.Slug, "free")
	okAccess := e.mustExchange(e.mustClient(w.app), ok.Code).AccessToken
	okTok := e.mustBearer(okAccess)
	if _, err := e.Installs.UpdateInstallation(e.ctx, okTok, ok.Installation.UUID, marketplace.InstallationUpdate{Status: ptr("installed")}); err != nil {
		t.Fatal(err)
	}

	e.clock.Advance(59 * time.Minute)
	runs, err := e.Reconciler.RunJob(e.ctx, marketplace.JobVerification)
	wantCode(t, err, "")
	if diff := cmp.Diff([]runSummary{{Job: marketplace.JobVerification, Errors: []string{}}}, summarize(runs)); diff != "" {
		t.Errorf("run before the deadline (-want +got):\n%s", diff)
	}
	if st := e.installation(ni.Installation.UUID).Status; st != marketplace.InstallPending {
		t.Fatalf("status before the deadline = %s", st)
	}

	e.clock.Advance(2 * time.Minute)
	runs, err = e.Reconciler.RunJob(e.ctx, marketplace.JobVerification)
	wantCode(t, err, "")
	want := []runSummary{{Job: marketplace.JobVerification, Examined: 1, Found: 1, Repaired: 1, Errors: []string{}}}
	if diff := cmp.Diff(want, summarize(runs)); diff != "" {
		t.Errorf("run past the deadline (-want +got):\n%s", diff)
	}
	if runs[0].FinishedAt == nil || !runs[0].FinishedAt.Equal(e.clock.Now()) {
		t.Errorf("run finished at %v", runs[0].FinishedAt)
	}
	inst := e.installation(ni.Installation.UUID)
	if inst.Status != marketplace.InstallFailed || inst.StatusReason != marketplace.ReasonVerificationTimeout || inst.SyncCheckedAt == nil {
		t.Errorf("installation = %+v", inst)
	}
	if st := e.installation(ok.Installation.UUID).Status; st != marketplace.InstallInstalled {
		t.Errorf("verified installation became %s", st)
	}
	_, err = e.Accounts.AuthenticateBearer(e.ctx, set.AccessToken)
	wantCode(t, err, "invalid_token")
	e.mustBearer(okAccess)

	var findings []marketplace.Finding
	e.db.Order("id").Find(&findings)
	if len(findings) != 1 || findings[0].InstallationUUID != inst.UUID || findings[0].Reason != marketplace.ReasonVerificationTimeout ||
		!findings[0].Repaired || findings[0].RunID != runs[0].ID || findings[0].AppID != w.app.ID {
		t.Errorf("findings = %+v", findings)
	}
	if deleted := e.deliveries("installation.deleted"); len(deleted) != 1 || deleted[0].InstallationUUID != inst.UUID {
		t.Errorf("installation.deleted deliveries = %+v", deleted)
	}
	if data := e.eventData(inst.OrganizationID, "installation.deleted"); data["reason"] != marketplace.ReasonVerificationTimeout {
		t.Errorf("installation.deleted reason = %v", data["reason"])
	}
	if n := e.count("audit_logs", "action = 'installation.fail' AND actor_type = 'system' AND target_id = ?", inst.UUID); n != 1 {
		t.Errorf("installation.fail audit entries = %d, want 1", n)
	}

	// A second start in the same period is a no-op: one run per slot.
	runs, err = e.Reconciler.RunJob(e.ctx, marketplace.JobVerification)
	wantCode(t, err, "")
	if len(runs) != 0 {
		t.Errorf("second run in one slot = %+v", summarize(runs))
	}
	if n := e.count("reconciliation_runs", ""); n != 2 {
		t.Errorf("runs recorded = %d, want 2", n)
	}
}

func TestUnexchangedGrantsMarkedOutOfSync(t *testing.T) {
	w := newWorld(t, appFields("Flow App"), withGrantTTL(10*time.Minute))
	e := w.env
	ni := e.mustInstall(w.admin, w.customer, w.app.Slug, "free")

	e.clock.Advance(9 * time.Minute)
	runs, err := e.Reconciler.RunJob(e.ctx, marketplace.JobGrants)
	wantCode(t, err, "")
	if diff := cmp.Diff([]runSummary{{Job: marketplace.JobGrants, Errors: []string{}}}, summarize(runs)); diff != "" {
		t.Errorf("run while the code lives (-want +got):\n%s", diff)
	}

	e.clock.Advance(2 * time.Minute)
	runs, err = e.Reconciler.RunJob(e.ctx, marketplace.JobGrants)
	wantCode(t, err, "")
	// Found, not repaired: the app has to ask for a fresh code.
	if diff := cmp.Diff([]runSummary{{Job: marketplace.JobGrants, Examined: 1, Found: 1, Errors: []string{}}}, summarize(runs)); diff != "" {
		t.Errorf("run after the code expired (-want +got):\n%s", diff)
	}
	inst := e.installation(ni.Installation.UUID)
	if inst.SyncState != marketplace.OutOfSync || inst.SyncReason != marketplace.ReasonNeverExchanged || inst.Status != marketplace.InstallInstalled {
		t.Errorf("installation = %s/%s (%s)", inst.SyncState, inst.SyncReason, inst.Status)
	}
	oos, err := e.Installs.ListAppInstallations(e.ctx, w.dev, w.app.Slug, marketplace.InstallationQuery{SyncState: marketplace.OutOfSync}, page.Request{})
	wantCode(t, err, "")
	if len(oos.Items) != 1 || oos.Items[0].UUID != inst.UUID {
		t.Errorf("out-of-sync installations = %+v", oos.Items)
	}

	// Exchanging a fresh code puts it back in sync.
	client := e.mustClient(w.app)
	_, code, err := e.Installs.RequestGrant(e.ctx, marketplace.Actor{App: client}, inst.UUID)
	wantCode(t, err, "")
	e.mustExchange(client, code)
	if got := e.installation(inst.UUID); got.SyncState != marketplace.InSync || got.SyncReason != "" {
		t.Errorf("after the exchange: %s/%s", got.SyncState, got.SyncReason)
	}
}

func TestListRunsOperatorsOnly(t *testing.T) {
	in := appFields("Flow App")
	in.VerifyInstall = ptr(true)
	w := newWorld(t, in)
	e := w.env
	ni := e.mustInstall(w.admin, w.customer, w.app.Slug, "free")
	other := e.mustApp(w.dev, w.partner, appFields("Other App"))

	e.clock.Advance(2 * time.Hour)
	for _, job := range []string{marketplace.JobVerification, marketplace.JobGrants} {
		if _, err := e.Reconciler.RunJob(e.ctx, job); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name  string
		actor marketplace.Actor
		q     marketplace.RunQuery
		want  []string
		code  string
	}{
		{"operator sees every run, newest first", w.op, marketplace.RunQuery{}, []string{marketplace.JobGrants, marketplace.JobVerification}, ""},
		{"operator filters by job", w.op, marketplace.RunQuery{Job: marketplace.JobVerification}, []string{marketplace.JobVerification}, ""},
		{"a partner", w.dev, marketplace.RunQuery{}, nil, "operator_only"},
		{"a customer", w.admin, marketplace.RunQuery{}, nil, "operator_only"},
		{"an app", marketplace.Actor{App: e.mustClient(w.app)}, marketplace.RunQuery{}, nil, "users_only"},
		{"anonymous", marketplace.Anonymous, marketplace.RunQuery{}, nil, "not_authenticated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := e.Reconciler.ListRuns(e.ctx, tt.actor, tt.q, page.Request{})
			wantCode(t, err, tt.code)
			var jobs []string
			for _, r := range p.Items {
				jobs = append(jobs, r.Job)
			}
			if diff := cmp.Diff(tt.want, jobs); diff != "" {
				t.Errorf("runs (-want +got):\n%s", diff)
			}
		})
	}
	all, _ := e.Reconciler.ListRuns(e.ctx, w.op, marketplace.RunQuery{Job: marketplace.JobVerification}, page.Request{})
	if f := all.Items[0].Findings; len(f) != 1 || f[0].InstallationUUID != ni.Installation.UUID {
		t.Errorf("verification run findings = %+v", f)
	}

	// The partner sees the runs that concern its app, and only its findings.
	mine, err := e.Reconciler.ListAppRuns(e.ctx, w.dev, w.app.Slug, marketplace.RunQuery{}, page.Request{})
	wantCode(t, err, "")
	if len(mine.Items) != 1 || mine.Items[0].Job != marketplace.JobVerification || mine.Items[0].Found != 1 || len(mine.Items[0].Findings) != 1 {
		t.Errorf("the app's runs = %+v", mine.Items)
	}
	none, err := e.Reconciler.ListAppRuns(e.ctx, w.dev, other.Slug, marketplace.RunQuery{}, page.Request{})
	wantCode(t, err, "")
	if len(none.Items) != 0 {
		t.Errorf("the other app's runs = %+v", none.Items)
	}
	_, err = e.Reconciler.ListAppRuns(e.ctx, w.admin, w.app.Slug, marketplace.RunQuery{}, page.Request{})
	wantCode(t, err, "not_found")
}
