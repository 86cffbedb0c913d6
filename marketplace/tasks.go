package marketplace

import (
	"context"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/plugboard/plugboard/webhooks"
)

// Reconciliation task types, one per job.
const (
	TypeReconcileVerification = "reconcile:" + JobVerification
	TypeReconcileGrants       = "reconcile:" + JobGrants
	TypeReconcileLifecycle    = "reconcile:" + JobLifecycle
	TypeReconcilePartnerSync  = "reconcile:" + JobPartnerSync
	TypeReconcileProvisioning = "reconcile:" + JobProvisionDeadline
	TypeReconcileDeprovision  = "reconcile:" + JobDeprovision
)

// taskJobs maps each task type to the job it runs.
var taskJobs = map[string]string{
	TypeReconcileVerification: JobVerification,
	TypeReconcileGrants:       JobGrants,
	TypeReconcileLifecycle:    JobLifecycle,
	TypeReconcilePartnerSync:  JobPartnerSync,
	TypeReconcileProvisioning: JobProvisionDeadline,
	TypeReconcileDeprovision:  JobDeprovision,
}

// NewReconcileTask is the task that runs job once, on the low queue (it can
// wait behind webhooks); every enqueued copy
// within period is one task (asynq.Unique), so two schedulers run it once.
func NewReconcileTask(job string, period time.Duration) (*asynq.Task, error) {
	for typ, j := range taskJobs {
		if j == job {
			return asynq.NewTask(typ, nil, asynq.Queue(webhooks.QueueLow), asynq.Unique(period), asynq.MaxRetry(0)), nil
		}
	}
	return nil, fmt.Errorf("no reconciliation job %q", job)
}

// Register installs the reconciliation handlers on mux.
func (r *Reconciler) Register(mux *asynq.ServeMux) {
	for typ, job := range taskJobs {
		mux.HandleFunc(typ, func(ctx context.Context, _ *asynq.Task) error {
			_, err := r.RunJob(ctx, job)
			return err
		})
	}
}

// Schedule registers every job on the scheduler, each every r's interval.
func (r *Reconciler) Schedule(s *asynq.Scheduler) error {
	for _, job := range Jobs {
		t, err := NewReconcileTask(job, r.opts.Interval)
		if err != nil {
			return err
		}
		if _, err := s.Register(fmt.Sprintf("@every %s", r.opts.Interval), t); err != nil {
			return fmt.Errorf("scheduling %s: %w", job, err)
		}
	}
	return nil
}
