package marketplace

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/gorm"

	"github.com/plugboard/plugboard/webhooks"
)

// Reconciliation jobs. Each runs periodically, records a run, and is safe
// when two schedulers start it at once: one run per job, app and period, and
// every repair locks its rows (SKIP LOCKED). Every job leaves a suspended
// installation (suspended_at set) alone: nothing is failed, marked or
// resent while its organization or the operators hold it (suspensions.go).
const (
	JobVerification = "verification_deadline"
	JobGrants       = "unexchanged_grant"
	JobLifecycle    = "lifecycle_delivery"
	JobPartnerSync  = "partner_sync"
)

// Jobs lists the reconciliation jobs in the order they run.
var Jobs = []string{JobVerification, JobGrants, JobLifecycle, JobPartnerSync, JobProvisionDeadline, JobDeprovision}

// Reasons an installation is out of sync.
const (
	ReasonVerificationTimeout = "verification_timeout"
	ReasonNeverExchanged      = "token_never_exchanged"
	ReasonLifecycleFailed     = "lifecycle_delivery_failed"
	ReasonMissingAtPartner    = "missing_at_partner"
	ReasonUnknownHere         = "unknown_to_plugboard"
	ReasonDeletedHere         = "deleted_in_plugboard"
)

// Run is one reconciliation run.
type Run struct {
	ID         int64
	Job        string
	AppID      *int64
	Slot       string
	StartedAt  time.Time
	FinishedAt *time.Time
	Examined   int
	Found      int
	Repaired   int
	Errors     Strings   `gorm:"type:jsonb"`
	Findings   []Finding `gorm:"foreignKey:RunID"`
}

// TableName is the migration's table.
func (Run) TableName() string { return "reconciliation_runs" }

// Finding is one out-of-sync installation a run found.
type Finding struct {
	ID               int64
	RunID            int64
	AppID            int64
	InstallationUUID string
	Reason           string
	Action           string
	Repaired         bool
	CreatedAt        time.Time
}

// TableName is the migration's table.
func (Finding) TableName() string { return "reconciliation_findings" }

// ReconcileOptions tune the jobs.
type ReconcileOptions struct {
	Interval      time.Duration
	VerifyTimeout time.Duration
	// ProvisionDeadline is how long an installation may stay provisioning
	// (reconcile_provision.go); 12 h when zero.
	ProvisionDeadline time.Duration
	Registry          prometheus.Registerer
}

// Reconciler runs the jobs.
type Reconciler struct {
	*core
	installs  *Installs
	endpoints EndpointAdmin
	sender    SignedGetter
	opts      ReconcileOptions
	findings  *prometheus.CounterVec
	runs      *prometheus.CounterVec
}

func newReconciler(c *core, installs *Installs, endpoints EndpointAdmin, sender SignedGetter, opts ReconcileOptions) *Reconciler {
	r := &Reconciler{core: c, installs: installs, endpoints: endpoints, sender: sender, opts: opts,
		findings: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "plugboard_reconcile_findings_total",
			Help: "Out-of-sync installations found, by job, reason and whether they were repaired."}, []string{"job", "reason", "repaired"}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "plugboard_reconcile_runs_total",
			Help: "Reconciliation runs by job and outcome (ok, error, skipped)."}, []string{"job", "outcome"}),
	}
	if opts.Registry != nil {
		opts.Registry.MustRegister(r.findings, r.runs)
	}
	return r
}

var system = Actor{}

// slot names the period a run belongs to.
func (r *Reconciler) slot(now time.Time) string {
	return now.Truncate(r.opts.Interval).UTC().Format(time.RFC3339)
}

// run records a run of job (for app, when set) in the current period and
// calls fn; a run already recorded for the period makes this a no-op.
func (r *Reconciler) run(ctx context.Context, job string, appID *int64, fn func(run *Run) error) (*Run, error) {
	s := r.installs
	run := &Run{Job: job, AppID: appID, Slot: r.slot(s.now()), StartedAt: s.now(), Errors: Strings{}}
	if err := s.db.WithContext(ctx).Omit("Findings").Create(run).Error; err != nil {
		var pg *pgconn.PgError
		if errors.As(err, &pg) && pg.Code == "23505" {
			r.runs.WithLabelValues(job, "skipped").Inc()
			return nil, nil
		}
		return nil, fmt.Errorf("recording %s run: %w", job, err)
	}
	err := fn(run)
	if err != nil {
		run.Errors = append(run.Errors, err.Error())
	}
	run.FinishedAt = ptr(s.now())
	if uerr := s.db.WithContext(ctx).Model(run).Updates(map[string]any{"finished_at": run.FinishedAt, "examined": run.Examined,
		"found": run.Found, "repaired": run.Repaired, "errors": run.Errors}).Error; uerr != nil {
		return run, fmt.Errorf("finishing %s run: %w", job, uerr)
	}
	outcome := "ok"
	if len(run.Errors) > 0 {
		outcome = "error"
	}
	r.runs.WithLabelValues(job, outcome).Inc()
	return run, nil
}

// found records a finding in tx and counts it.
func (r *Reconciler) found(tx *gorm.DB, run *Run, inst *Installation, reason, action string, repaired bool) error {
	f := Finding{RunID: run.ID, AppID: inst.AppID, InstallationUUID: inst.UUID, Reason: reason, Action: action, Repaired: repaired, CreatedAt: r.now()}
	if err := tx.Create(&f).Error; err != nil {
		return fmt.Errorf("recording finding: %w", err)
	}
	run.Found++
	if repaired {
		run.Repaired++
	}
	r.findings.WithLabelValues(run.Job, reason, strconv.FormatBool(repaired)).Inc()
	return nil
}

// RunJob runs one job now: for partner sync, once per app with a sync URL.
func (r *Reconciler) RunJob(ctx context.Context, job string) ([]*Run, error) {
	switch job {
	case JobVerification:
		return one(r.run(ctx, job, nil, func(run *Run) error { return r.verification(ctx, run) }))
	case JobGrants:
		return one(r.run(ctx, job, nil, func(run *Run) error { return r.grants(ctx, run) }))
	case JobLifecycle:
		return one(r.run(ctx, job, nil, func(run *Run) error { return r.lifecycle(ctx, run) }))
	case JobProvisionDeadline:
		return one(r.run(ctx, job, nil, func(run *Run) error { return r.provisioning(ctx, run) }))
	case JobDeprovision:
		return one(r.run(ctx, job, nil, func(run *Run) error { return r.deprovisions(ctx, run) }))
	case JobPartnerSync:
		var ids []int64
		if err := r.db.WithContext(ctx).Model(&App{}).Where("sync_url <> '' AND webhook_url <> ''").Pluck("id", &ids).Error; err != nil {
			return nil, fmt.Errorf("listing apps to sync: %w", err)
		}
		var out []*Run
		for _, id := range ids {
			run, err := r.run(ctx, job, &id, func(run *Run) error { return r.partnerSync(ctx, id, run) })
			if err != nil {
				return out, err
			}
			if run != nil {
				out = append(out, run)
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown reconciliation job %q", job)
}

func one(run *Run, err error) ([]*Run, error) {
	if run == nil {
		return nil, err
	}
	return []*Run{run}, err
}

// verification fails installations left pending past the verify timeout:
// grant and tokens revoked, installation.deleted sent with the reason.
func (r *Reconciler) verification(ctx context.Context, run *Run) error {
	return r.failOverdue(ctx, run, InstallPending, r.opts.VerifyTimeout, ReasonVerificationTimeout,
		"failed the installation and sent installation.deleted")
}

// failOverdue fails installations still in status past after they were
// created, with reason: ended as failed (what ending sends goes out), and
// each recorded as a finding of run.
func (r *Reconciler) failOverdue(ctx context.Context, run *Run, status string, past time.Duration, reason, action string) error {
	s := r.installs
	return s.publishTx(ctx, func(tx *gorm.DB) error {
		var due []Installation
		if err := tx.Preload("App").Preload("Organization").Preload("Plan").Clauses(skipLocked).
			Where("status = ? AND created_at < ? AND suspended_at IS NULL", status, s.now().Add(-past)).Find(&due).Error; err != nil {
			return fmt.Errorf("finding overdue %s installations: %w", status, err)
		}
		run.Examined = len(due)
		for i := range due {
			inst := &due[i]
			if err := s.endInstallation(ctx, tx, system, inst, InstallFailed, reason); err != nil {
				return err
			}
			if err := tx.Model(&Installation{}).Where("id = ?", inst.ID).Update("sync_checked_at", s.now()).Error; err != nil {
				return err
			}
			if err := r.found(tx, run, inst, reason, action, true); err != nil {
				return err
			}
		}
		return nil
	})
}

// grants marks installations whose codes all expired unexchanged.
func (r *Reconciler) grants(ctx context.Context, run *Run) error {
	s := r.installs
	return s.tx(ctx, func(tx *gorm.DB) error {
		var live []Installation
		if err := tx.Clauses(skipLocked).Where(`status IN ? AND sync_state = ? AND suspended_at IS NULL AND
			EXISTS (SELECT 1 FROM grants g WHERE g.installation_id = installations.id) AND
			NOT EXISTS (SELECT 1 FROM grants g WHERE g.installation_id = installations.id AND (g.used_at IS NOT NULL OR g.expires_at > ?)) AND
			NOT EXISTS (SELECT 1 FROM tokens t WHERE t.installation_id = installations.id)`,
			LiveStatuses, InSync, s.now()).Find(&live).Error; err != nil {
			return fmt.Errorf("finding unexchanged grants: %w", err)
		}
		run.Examined = len(live)
		for i := range live {
			inst := &live[i]
			if err := r.markOutOfSync(tx, inst, ReasonNeverExchanged); err != nil {
				return err
			}
			if err := r.found(tx, run, inst, ReasonNeverExchanged, "marked out of sync; the app may ask for a fresh code", false); err != nil {
				return err
			}
		}
		return nil
	})
}

func (r *Reconciler) markOutOfSync(tx *gorm.DB, inst *Installation, reason string) error {
	s := r.installs
	if err := tx.Model(&Installation{}).Where("id = ?", inst.ID).Updates(map[string]any{
		"sync_state": OutOfSync, "sync_reason": reason, "sync_checked_at": s.now()}).Error; err != nil {
		return fmt.Errorf("marking installation out of sync: %w", err)
	}
	return s.audit(tx, system, &inst.OrganizationID, "installation.out_of_sync", "installation", inst.UUID, "", JSON{"reason": reason})
}

func (r *Reconciler) markInSync(tx *gorm.DB, inst *Installation, why string) error {
	s := r.installs
	if err := tx.Model(&Installation{}).Where("id = ?", inst.ID).Updates(map[string]any{
		"sync_state": InSync, "sync_reason": "", "sync_checked_at": s.now()}).Error; err != nil {
		return fmt.Errorf("marking installation in sync: %w", err)
	}
	return s.audit(tx, system, &inst.OrganizationID, "installation.in_sync", "installation", inst.UUID, "", JSON{"repair": why})
}

// lifecycle marks installations whose installation.created/deleted delivery
// ran out of retries (or waits paused), resends once the endpoint works
// again, and marks them in sync when the resent event arrives.
func (r *Reconciler) lifecycle(ctx context.Context, run *Run) error {
	s := r.installs
	var resend []resendItem
	err := s.tx(ctx, func(tx *gorm.DB) error {
		type row struct {
			Installation
			DeliveryUUID   string
			DeliveryStatus string
			EventType      string
			LastAttemptAt  *time.Time
		}
		// The latest lifecycle delivery of each installation.
		var rows []row
		// The latest lifecycle delivery of each installation, then the
		// ones that failed or that an out-of-sync installation waits on.
		if err := tx.Raw(`
			SELECT * FROM (
				SELECT DISTINCT ON (i.id) i.*, d.uuid AS delivery_uuid, d.status AS delivery_status, d.event_type, d.last_attempt_at
				FROM installations i JOIN deliveries d ON d.installation_id = i.id
				WHERE d.event_type IN ('installation.created', 'installation.deleted')
				ORDER BY i.id, d.id DESC) latest
			WHERE latest.suspended_at IS NULL
			  AND (latest.delivery_status IN ('failed', 'paused') OR (latest.sync_state = 'out_of_sync' AND latest.sync_reason = ?))`,
			ReasonLifecycleFailed).Scan(&rows).Error; err != nil {
			return fmt.Errorf("finding failed lifecycle deliveries: %w", err)
		}
		run.Examined = len(rows)
		for _, x := range rows {
			inst := x.Installation
			switch {
			case x.DeliveryStatus == webhooks.DeliverySucceeded:
				if err := r.markInSync(tx, &inst, "the lifecycle event was delivered"); err != nil {
					return err
				}
				if err := r.found(tx, run, &inst, ReasonLifecycleFailed, "the resent "+x.EventType+" arrived; back in sync", true); err != nil {
					return err
				}
			case x.DeliveryStatus == webhooks.DeliveryFailed || x.DeliveryStatus == webhooks.DeliveryPaused:
				if inst.SyncState != OutOfSync || inst.SyncReason != ReasonLifecycleFailed {
					if err := r.markOutOfSync(tx, &inst, ReasonLifecycleFailed); err != nil {
						return err
					}
					if err := r.found(tx, run, &inst, ReasonLifecycleFailed, x.EventType+" never arrived; marked out of sync", false); err != nil {
						return err
					}
				}
				// Resend once the endpoint has worked since the failure.
				var since int64
				if x.DeliveryStatus == webhooks.DeliveryFailed && x.LastAttemptAt != nil {
					if err := tx.Raw(`SELECT count(*) FROM deliveries WHERE app_id = ? AND status = 'succeeded' AND last_attempt_at > ?`,
						inst.AppID, *x.LastAttemptAt).Scan(&since).Error; err != nil {
						return err
					}
				}
				// installation.created is resent only while the installation lives.
				resendable := x.EventType == EventInstallationDeleted || inst.Live()
				if since > 0 && resendable {
					resend = append(resend, resendItem{inst.AppID, x.DeliveryUUID})
					if err := s.audit(tx, system, &inst.OrganizationID, "installation.resend_lifecycle", "installation", inst.UUID, "", JSON{"event": x.EventType}); err != nil {
						return err
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return r.resendAll(ctx, resend, "a lifecycle event")
}

// resendItem is a delivery a run sends again: the same delivery (its
// webhook-id), so the partner can tell it is the one it missed.
type resendItem struct {
	appID    int64
	delivery string
}

// resendAll redelivers what a run found to resend. Runs call it after
// their transaction commits, so a rolled-back run sends nothing.
func (r *Reconciler) resendAll(ctx context.Context, items []resendItem, what string) error {
	for _, x := range items {
		if _, err := r.endpoints.Redeliver(ctx, x.appID, []string{x.delivery}); err != nil {
			return fmt.Errorf("resending %s: %w", what, err)
		}
	}
	return nil
}
