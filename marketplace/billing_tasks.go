package marketplace

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"gorm.io/gorm"

	"github.com/plugboard/plugboard/webhooks"
)

// Billing's periodic jobs: closing the periods that are due, and telling
// apps of trials about to end.
const (
	TypeBillingClose        = "billing:close"
	TypeBillingTrialWillEnd = "billing:trial_will_end"
	billingEvery            = 10 * time.Minute
)

// NewBillingTask is the task of one billing job, on the low queue; the
// copies enqueued within billingEvery are one task (asynq.Unique), so two
// schedulers run it once — and closing is once per organization and
// period whatever runs it.
func NewBillingTask(typ string) *asynq.Task {
	return asynq.NewTask(typ, nil, asynq.Queue(webhooks.QueueLow), asynq.Unique(billingEvery), asynq.MaxRetry(0))
}

// Register installs billing's job handlers on mux.
func (s *Billing) Register(mux *asynq.ServeMux) {
	mux.HandleFunc(TypeBillingClose, func(ctx context.Context, _ *asynq.Task) error {
		_, err := s.CloseDue(ctx)
		return err
	})
	mux.HandleFunc(TypeBillingTrialWillEnd, func(ctx context.Context, _ *asynq.Task) error {
		_, err := s.NotifyTrialsEnding(ctx)
		return err
	})
}

// Schedule registers billing's jobs, every ten minutes.
func (s *Billing) Schedule(sch *asynq.Scheduler) error {
	for _, typ := range []string{TypeBillingClose, TypeBillingTrialWillEnd} {
		if _, err := sch.Register(fmt.Sprintf("@every %s", billingEvery), NewBillingTask(typ)); err != nil {
			return fmt.Errorf("scheduling %s: %w", typ, err)
		}
	}
	return nil
}

// CloseDue closes every period that has ended (and its grace hour) and is
// not closed yet, oldest first.
func (s *Billing) CloseDue(ctx context.Context) ([]CloseReport, error) {
	var first *time.Time
	if err := s.db.WithContext(ctx).Raw(`SELECT min(started_at) FROM installation_plan_intervals`).Scan(&first).Error; err != nil {
		return nil, fmt.Errorf("finding the first billing period: %w", err)
	}
	if first == nil {
		return nil, nil
	}
	var closed []time.Time
	if err := s.db.WithContext(ctx).Model(&BillingPeriod{}).Pluck("period", &closed).Error; err != nil {
		return nil, fmt.Errorf("finding closed periods: %w", err)
	}
	done := map[string]bool{}
	for _, p := range closed {
		done[FormatPeriod(p)] = true
	}
	var out []CloseReport
	var errs []error
	for p := periodStart(*first); !s.now().Before(nextPeriod(p).Add(UsageGrace)); p = nextPeriod(p) {
		if done[FormatPeriod(p)] {
			continue
		}
		rep, err := s.ClosePeriod(ctx, p)
		if err != nil {
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		out = append(out, rep)
	}
	return out, errors.Join(errs...)
}

// NotifyTrialsEnding sends installation.trial_will_end to the app of each
// live installation whose trial ends within three days, once per
// installation; it returns how many were sent.
func (s *Billing) NotifyTrialsEnding(ctx context.Context) (int, error) {
	now := s.now()
	var due []Installation
	err := s.db.WithContext(ctx).Preload("App").Preload("Organization").Preload("Plan").
		Where("trial_ends_at IS NOT NULL AND trial_will_end_sent_at IS NULL AND trial_ends_at > ? AND trial_ends_at <= ? AND status IN ?",
			now, now.Add(TrialWillEndNotice), LiveStatuses).Order("id").Limit(1000).Find(&due).Error
	if err != nil {
		return 0, fmt.Errorf("finding trials that end soon: %w", err)
	}
	sent := 0
	for i := range due {
		inst := &due[i]
		mine := false
		err := s.publishTx(ctx, func(tx *gorm.DB) error {
			res := tx.Model(&Installation{}).Where("id = ? AND trial_will_end_sent_at IS NULL", inst.ID).UpdateColumn("trial_will_end_sent_at", now)
			if res.Error != nil || res.RowsAffected == 0 {
				return res.Error // another run sent it
			}
			mine = true
			data := map[string]any{"installation": lifecycleInstallation(inst), "trialEndsAt": inst.TrialEndsAt}
			_, err := s.outbox.Publish(ctx, tx, webhooks.NewEvent{OrganizationID: inst.OrganizationID, Type: EventTrialWillEnd, Data: data,
				InstallationID: inst.ID, CreatedBy: "plugboard"})
			return err
		})
		if err != nil {
			return sent, fmt.Errorf("telling %s its trial ends: %w", inst.UUID, err)
		}
		if mine {
			sent++
		}
	}
	return sent, nil
}
