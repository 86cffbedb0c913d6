package marketplace

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/gorm"

	"github.com/plugboard/plugboard/app/fault"
	"github.com/plugboard/plugboard/app/page"
	"github.com/plugboard/plugboard/webhooks"
)

// Reconciliation jobs. Each runs periodically, records a run, and is safe
// when two schedulers start it at once: one run per job, app and period, and
// every repair locks its rows (SKIP LOCKED).
const (
	JobVerification = "verification_deadline"
	JobGrants       = "unexchanged_grant"
	JobLifecycle    = "lifecycle_delivery"
	JobPartnerSync  = "partner_sync"
)

// Jobs lists the reconciliation jobs in the order they run.
var Jobs = []string{JobVerification, JobGrants, JobLifecycle, JobPartnerSync}

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
	Registry      prometheus.Registerer
}

// Reconciler runs the jobs.
type Reconciler struct {
	s        *Service
	opts     ReconcileOptions
	findings *prometheus.CounterVec
	runs     *prometheus.CounterVec
}

// NewReconciler returns the reconciler for s.
func NewReconciler(s *Service, opts ReconcileOptions) *Reconciler {
	r := &Reconciler{s: s, opts: opts,
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
	s := r.s
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
	f := Finding{RunID: run.ID, AppID: inst.AppID, InstallationUUID: inst.UUID, Reason: reason, Action: action, Repaired: repaired, CreatedAt: r.s.now()}
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
	case JobPartnerSync:
		var ids []int64
		if err := r.s.db.WithContext(ctx).Model(&App{}).Where("sync_url <> '' AND webhook_url <> ''").Pluck("id", &ids).Error; err != nil {
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
	s := r.s
	return s.tx(ctx, func(tx *gorm.DB) error {
		var due []Installation
		if err := tx.Preload("App").Preload("Organization").Preload("Plan").Clauses(skipLocked).
			Where("status = ? AND created_at < ?", InstallPending, s.now().Add(-r.opts.VerifyTimeout)).Find(&due).Error; err != nil {
			return fmt.Errorf("finding overdue installations: %w", err)
		}
		run.Examined = len(due)
		for i := range due {
			inst := &due[i]
			if err := s.endInstallation(ctx, tx, system, inst, InstallFailed, ReasonVerificationTimeout); err != nil {
				return err
			}
			if err := tx.Model(&Installation{}).Where("id = ?", inst.ID).Update("sync_checked_at", s.now()).Error; err != nil {
				return err
			}
			if err := r.found(tx, run, inst, ReasonVerificationTimeout, "failed the installation and sent installation.deleted", true); err != nil {
				return err
			}
		}
		return nil
	})
}

// grants marks installations whose codes all expired unexchanged.
func (r *Reconciler) grants(ctx context.Context, run *Run) error {
	s := r.s
	return s.tx(ctx, func(tx *gorm.DB) error {
		var live []Installation
		if err := tx.Clauses(skipLocked).Where(`status IN ? AND sync_state = ? AND
			EXISTS (SELECT 1 FROM grants g WHERE g.installation_id = installations.id) AND
			NOT EXISTS (SELECT 1 FROM grants g WHERE g.installation_id = installations.id AND (g.used_at IS NOT NULL OR g.expires_at > ?)) AND
			NOT EXISTS (SELECT 1 FROM tokens t WHERE t.installation_id = installations.id)`,
			[]string{InstallPending, InstallInstalled}, InSync, s.now()).Find(&live).Error; err != nil {
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
	s := r.s
	if err := tx.Model(&Installation{}).Where("id = ?", inst.ID).Updates(map[string]any{
		"sync_state": OutOfSync, "sync_reason": reason, "sync_checked_at": s.now()}).Error; err != nil {
		return fmt.Errorf("marking installation out of sync: %w", err)
	}
	return s.audit(tx, system, &inst.OrganizationID, "installation.out_of_sync", "installation", inst.UUID, "", JSON{"reason": reason})
}

func (r *Reconciler) markInSync(tx *gorm.DB, inst *Installation, why string) error {
	s := r.s
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
	s := r.s
	type resendItem struct {
		appID    int64
		delivery string
	}
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
			WHERE latest.delivery_status IN ('failed', 'paused') OR (latest.sync_state = 'out_of_sync' AND latest.sync_reason = ?)`,
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
	// Resent after the run commits, so a rolled-back run sends nothing.
	for _, x := range resend {
		if _, err := s.endpoints.Redeliver(ctx, x.appID, []string{x.delivery}); err != nil {
			return fmt.Errorf("resending a lifecycle event: %w", err)
		}
	}
	return nil
}

type syncPage struct {
	Installations []string `json:"installations"`
	NextCursor    string   `json:"nextCursor"`
}

// partnerSync asks an app's sync URL which installations it knows and
// repairs the difference. Any failure records an error and changes nothing.
func (r *Reconciler) partnerSync(ctx context.Context, appID int64, run *Run) error {
	s := r.s
	var app App
	if err := s.db.WithContext(ctx).First(&app, appID).Error; err != nil {
		return fmt.Errorf("loading app: %w", err)
	}
	known := map[string]bool{}
	cursor := ""
	for pageNo := 0; ; pageNo++ {
		if pageNo == 100 {
			return errors.New("the sync URL returned more than 100 pages")
		}
		u, err := url.Parse(app.SyncURL)
		if err != nil {
			return fmt.Errorf("bad sync URL: %w", err)
		}
		if cursor != "" {
			q := u.Query()
			q.Set("cursor", cursor)
			u.RawQuery = q.Encode()
		}
		signer, err := s.endpoints.Signer(ctx, app.ID)
		if err != nil {
			return fmt.Errorf("asking the sync URL: %w", err)
		}
		body, err := s.sender.SignedGet(ctx, signer, u.String(), 4<<20)
		if err != nil {
			return fmt.Errorf("asking the sync URL: %w", err)
		}
		var p syncPage
		if err := json.Unmarshal(body, &p); err != nil || p.Installations == nil {
			return errors.New(`the sync URL did not answer {"installations": [uuid, …], "nextCursor": "…"}`)
		}
		for _, id := range p.Installations {
			parsed, err := uuid.Parse(id)
			if err != nil {
				return fmt.Errorf("the sync URL listed %q, which is not an installation uuid", id)
			}
			known[parsed.String()] = true // canonical: lower case, as Postgres writes it
		}
		if p.NextCursor == "" || p.NextCursor == cursor {
			break
		}
		cursor = p.NextCursor
	}
	return s.tx(ctx, func(tx *gorm.DB) error {
		var ours []Installation
		if err := tx.Preload("App").Preload("Organization").Preload("Plan").Where("app_id = ?", app.ID).Find(&ours).Error; err != nil {
			return fmt.Errorf("listing installations: %w", err)
		}
		run.Examined = len(ours)
		byUUID := map[string]*Installation{}
		for i := range ours {
			inst := &ours[i]
			byUUID[inst.UUID] = inst
			if err := tx.Model(&Installation{}).Where("id = ?", inst.ID).Update("sync_checked_at", s.now()).Error; err != nil {
				return err
			}
			missingThere, goneHere := inst.Live() && !known[inst.UUID], !inst.Live() && known[inst.UUID]
			if missingThere || goneHere {
				reason := map[bool]string{true: ReasonMissingAtPartner, false: ReasonDeletedHere}[missingThere]
				recent, err := r.recentlyRepaired(tx, inst.UUID, reason)
				if err != nil {
					return err
				}
				if recent {
					// Told within a day; say so, and do not flood the partner.
					if err := r.found(tx, run, inst, reason, "already repaired within a day; waiting for the partner", false); err != nil {
						return err
					}
					continue
				}
			}
			switch {
			case missingThere:
				// Missing at the partner: installation.created again, with a fresh code.
				code, grant, err := s.newGrant(ctx, tx, inst.ID, grantOptions{})
				if err != nil {
					return err
				}
				if err := s.lifecycle(ctx, tx, inst, EventInstallationCreated, map[string]any{"code": code, "codeExpiresAt": grant.ExpiresAt, "resent": true}); err != nil {
					return err
				}
				if err := s.audit(tx, system, &inst.OrganizationID, "installation.resend_lifecycle", "installation", inst.UUID, app.Slug, JSON{"event": EventInstallationCreated, "reason": ReasonMissingAtPartner}); err != nil {
					return err
				}
				if err := r.found(tx, run, inst, ReasonMissingAtPartner, "resent installation.created with a fresh code", true); err != nil {
					return err
				}
			case goneHere:
				if err := s.lifecycle(ctx, tx, inst, EventInstallationDeleted, map[string]any{"reason": ReasonDeletedHere, "resent": true}); err != nil {
					return err
				}
				if err := s.audit(tx, system, &inst.OrganizationID, "installation.resend_lifecycle", "installation", inst.UUID, app.Slug, JSON{"event": EventInstallationDeleted, "reason": ReasonDeletedHere}); err != nil {
					return err
				}
				if err := r.found(tx, run, inst, ReasonDeletedHere, "sent installation.deleted again", true); err != nil {
					return err
				}
			}
		}
		for id := range known {
			if byUUID[id] != nil {
				continue
			}
			// Unknown here: tell the partner it does not exist.
			if recent, err := r.recentlyRepaired(tx, id, ReasonUnknownHere); err != nil || recent {
				if err != nil {
					return err
				}
				if err := r.found(tx, run, &Installation{AppID: app.ID, UUID: id}, ReasonUnknownHere, "already repaired within a day; waiting for the partner", false); err != nil {
					return err
				}
				continue
			}
			if _, err := s.outbox.Publish(ctx, tx, webhooks.NewEvent{OrganizationID: app.OrganizationID, Type: EventInstallationDeleted, AppID: app.ID,
				CreatedBy: "plugboard", Data: map[string]any{"installation": map[string]any{"uuid": id}, "reason": ReasonUnknownHere}}); err != nil {
				return err
			}
			if err := r.found(tx, run, &Installation{AppID: app.ID, UUID: id}, ReasonUnknownHere, "sent installation.deleted", true); err != nil {
				return err
			}
		}
		return nil
	})
}

// recentlyRepaired reports whether a run repaired this installation for this
// reason within the last day.
func (r *Reconciler) recentlyRepaired(tx *gorm.DB, installationUUID, reason string) (bool, error) {
	var n int64
	err := tx.Model(&Finding{}).Where("installation_uuid = ? AND reason = ? AND repaired AND created_at > ?",
		installationUUID, reason, r.s.now().Add(-24*time.Hour)).Count(&n).Error
	return n > 0, err
}

// RequestGrant issues a fresh code for an installation whose code expired
// and resends installation.created with it; the app itself asks.
func (s *Service) RequestGrant(ctx context.Context, a Actor, id string) (*Grant, string, error) {
	var g *Grant
	var code string
	err := s.tx(ctx, func(tx *gorm.DB) error {
		inst, sd, err := s.installationFor(ctx, tx, a, id)
		if err != nil {
			return err
		}
		if sd != sideApp {
			return fault.Forbidden("app_only", "Only the app asks for a fresh code, with its own credentials.")
		}
		if !inst.Live() {
			return fault.Conflict("installation_not_live", fmt.Sprintf("The installation is %s.", inst.Status))
		}
		code, g, err = s.newGrant(ctx, tx, inst.ID, grantOptions{})
		if err != nil {
			return err
		}
		if err := s.lifecycle(ctx, tx, inst, EventInstallationCreated, map[string]any{"code": code, "codeExpiresAt": g.ExpiresAt, "resent": true}); err != nil {
			return err
		}
		return s.audit(tx, a, &inst.OrganizationID, "installation.grant", "installation", inst.UUID, inst.App.Slug, nil)
	})
	return g, code, err
}

// RunQuery filters run lists.
type RunQuery struct{ Job string }

// ListAppRuns shows an app's owner the runs that concern the app, with only
// the app's findings.
func (s *Service) ListAppRuns(ctx context.Context, a Actor, ref string, q RunQuery, r page.Request) (page.Page[Run], error) {
	v, err := s.partnerApp(ctx, a, ref)
	if err != nil {
		return page.Page[Run]{}, err
	}
	db := s.db.WithContext(ctx).Where("app_id = ? OR id IN (SELECT run_id FROM reconciliation_findings WHERE app_id = ?)", v.ID, v.ID)
	return s.listRuns(ctx, db, q, r, &v.ID)
}

// ListRuns shows operators every run.
func (s *Service) ListRuns(ctx context.Context, a Actor, q RunQuery, r page.Request) (page.Page[Run], error) {
	if err := requireOperator(a); err != nil {
		return page.Page[Run]{}, err
	}
	return s.listRuns(ctx, s.db.WithContext(ctx), q, r, nil)
}

func (s *Service) listRuns(ctx context.Context, db *gorm.DB, q RunQuery, r page.Request, appID *int64) (page.Page[Run], error) {
	if q.Job != "" {
		db = db.Where("job = ?", q.Job)
	}
	db = db.Preload("Findings", func(f *gorm.DB) *gorm.DB {
		if appID != nil {
			f = f.Where("app_id = ?", *appID)
		}
		return f.Order("id")
	})
	var rows []Run
	if err := page.Query(db, "id", page.Sort{Column: "id", Desc: true}, r).Find(&rows).Error; err != nil {
		return page.Page[Run]{}, fmt.Errorf("listing runs: %w", err)
	}
	if appID != nil {
		for i := range rows {
			scopeRun(&rows[i])
		}
	}
	return page.Finish(rows, r, func(x Run) (string, int64) { return "", x.ID }), nil
}

// scopeRun narrows a run across every app to what one app's partner may
// see: its figures count only that app's findings (all of them were
// examined and found), and errors, which may name other apps, are dropped.
func scopeRun(run *Run) {
	if run.AppID != nil {
		return
	}
	run.Examined, run.Found, run.Repaired, run.Errors = len(run.Findings), len(run.Findings), 0, Strings{}
	for _, f := range run.Findings {
		if f.Repaired {
			run.Repaired++
		}
	}
}

// TaskPrefix starts the reconciliation task types: "reconcile:<job>".
const TaskPrefix = "reconcile:"

// HandleTask is the asynq handler of every reconciliation job.
func (r *Reconciler) HandleTask(ctx context.Context, taskType string) error {
	_, err := r.RunJob(ctx, taskType[len(TaskPrefix):])
	return err
}
