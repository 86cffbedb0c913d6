package marketplace

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/plugboard/plugboard/app/fault"
	"github.com/plugboard/plugboard/app/page"
)

// Usage is metered usage: the quantities of a per-unit plan's units an app
// reports for its installations (Shopify's appUsageRecordCreate), which
// closing the period bills. A record is idempotent on its key, belongs to
// the open period (or, for an hour after a period ends, to that one), and
// is taken only for a time the installation was on a per_unit plan.
type Usage struct {
	*core
	installs *Installs
}

// NewUsageRecord is what the app reports.
type NewUsageRecord struct {
	Quantity       *int64
	Timestamp      *time.Time // when the units were used; nil: now
	IdempotencyKey string
}

// ReportUsage records usage for installation id, by its app (its
// credentials or the installation's token). created is false when the
// same record was reported before with the same key: it is returned as
// it was kept.
func (s *Usage) ReportUsage(ctx context.Context, a Actor, id string, in NewUsageRecord) (rec *UsageRecord, created bool, err error) {
	inst, err := s.installs.loadInstallation(ctx, s.db, id, false)
	if err != nil {
		return nil, false, err
	}
	switch sd, err := s.installs.sideOf(ctx, s.db, a, inst); {
	case err != nil:
		return nil, false, err
	case sd == sideNone: // another app's installation, or a stranger's
		return nil, false, fault.NotFound("installation")
	case sd != sideApp:
		return nil, false, fault.Forbidden(fault.AppOnly, "Only the app reports usage, with its own credentials or the installation's token.")
	}
	now := s.now()
	ts, err := checkUsage(in, now, inst)
	if err != nil {
		return nil, false, err
	}
	if prior, err := s.priorRecord(ctx, inst, in); prior != nil || err != nil {
		return prior, false, err
	}
	start := periodStart(ts)
	if err := s.checkOpen(ctx, inst.OrganizationID, start, now); err != nil {
		return nil, false, err
	}
	planID, err := s.meteredPlanAt(ctx, inst, ts, start)
	if err != nil {
		return nil, false, err
	}
	rec = &UsageRecord{InstallationID: inst.ID, OrganizationID: inst.OrganizationID, AppID: inst.AppID, PlanID: planID,
		Quantity: *in.Quantity, RecordedAt: ts, IdempotencyKey: in.IdempotencyKey, CreatedAt: now}
	res := s.db.WithContext(ctx).Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "installation_id"}, {Name: "idempotency_key"}}, DoNothing: true}).
		Omit("Installation").Create(rec)
	if res.Error != nil {
		return nil, false, fmt.Errorf("recording usage of %s: %w", inst.UUID, res.Error)
	}
	if res.RowsAffected == 0 { // the same key at the same moment: one of them is kept
		prior, err := s.priorRecord(ctx, inst, in)
		return prior, false, err
	}
	rec.Installation = inst
	return rec, true, nil
}

// checkUsage checks a record's fields and returns its timestamp.
func checkUsage(in NewUsageRecord, now time.Time, inst *Installation) (time.Time, error) {
	f := fault.Fields{}
	key := in.IdempotencyKey
	f.Check(strings.TrimSpace(key) == "" || utf8.RuneCountInString(key) > maxUsageIdempotencyKey, "idempotencyKey",
		fmt.Sprintf("is required: 1 to %d characters naming this record, the same when it is sent again", maxUsageIdempotencyKey))
	switch {
	case in.Quantity == nil:
		f.Add("quantity", "is required: a whole number of units, 0 or more")
	case *in.Quantity < 0:
		f.Add("quantity", "must not be negative: report the units used, 0 or more")
	case *in.Quantity > maxUsageQuantity:
		f.Add("quantity", "must be at most 1099511627776 per record")
	}
	ts := now
	if in.Timestamp != nil {
		ts = in.Timestamp.UTC().Truncate(time.Microsecond)
		f.Check(ts.After(now.Add(usageFutureSkew)), "timestamp", "is in the future: report usage once it happened")
		f.Check(ts.Before(inst.CreatedAt), "timestamp", "is before the installation was made")
	}
	return ts, f.Err()
}

// priorRecord is the record kept under in's key, if any: the same record
// (quantity, and timestamp when given, alike) or a conflict.
func (s *Usage) priorRecord(ctx context.Context, inst *Installation, in NewUsageRecord) (*UsageRecord, error) {
	var prior UsageRecord
	err := s.db.WithContext(ctx).Where("installation_id = ? AND idempotency_key = ?", inst.ID, in.IdempotencyKey).Take(&prior).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("finding usage record: %w", err)
	}
	same := prior.Quantity == *in.Quantity && (in.Timestamp == nil || prior.RecordedAt.Equal(in.Timestamp.UTC().Truncate(time.Microsecond)))
	if !same {
		return nil, fault.Conflict(fault.IdempotencyKeyReused, fmt.Sprintf(
			"A usage record with idempotencyKey %q was reported with another quantity or timestamp (%d at %s).",
			in.IdempotencyKey, prior.Quantity, prior.RecordedAt.Format(time.RFC3339Nano)))
	}
	prior.Installation = inst
	return &prior, nil
}

// checkOpen refuses a record for a period that is closed: one that ended
// more than the grace hour ago, or whose invoices are written.
func (s *Usage) checkOpen(ctx context.Context, orgID int64, start, now time.Time) error {
	closed := !now.Before(nextPeriod(start).Add(UsageGrace))
	if !closed {
		var n int64
		if err := s.db.WithContext(ctx).Model(&BillingClose{}).Where("organization_id = ? AND period = ?", orgID, start).Count(&n).Error; err != nil {
			return fmt.Errorf("finding billing close: %w", err)
		}
		closed = n > 0
	}
	if closed {
		return (&fault.Error{Kind: fault.KindConflict, Code: fault.BillingPeriodClosed,
			Message: fmt.Sprintf("The billing period %s is closed; usage is taken for the open period, and for an hour after a period ends.", FormatPeriod(start)),
			Fields:  map[string]string{"timestamp": "falls in a closed billing period"}})
	}
	return nil
}

// meteredPlanAt is the per_unit plan the installation was on at ts.
func (s *Usage) meteredPlanAt(ctx context.Context, inst *Installation, ts, start time.Time) (int64, error) {
	var model struct {
		PlanID       int64
		PricingModel string
	}
	err := s.db.WithContext(ctx).Raw(`SELECT i.plan_id, p.pricing_model FROM installation_plan_intervals i
		LEFT JOIN LATERAL (SELECT pricing_model FROM plan_prices WHERE plan_id = i.plan_id AND effective_from <= ?
			ORDER BY effective_from DESC LIMIT 1) p ON true
		WHERE i.installation_id = ? AND i.started_at <= ? AND (i.ended_at IS NULL OR i.ended_at > ?)
		ORDER BY i.started_at DESC LIMIT 1`, start, inst.ID, ts, ts).Scan(&model).Error
	if err != nil {
		return 0, fmt.Errorf("finding the plan of %s at %s: %w", inst.UUID, ts, err)
	}
	switch {
	case model.PlanID == 0:
		return 0, fault.Conflict(fault.NotMetered, "The installation was on no plan at that time, so there is nothing to meter.")
	case model.PricingModel != PricingPerUnit:
		return 0, fault.Conflict(fault.NotMetered, "The installation was not on a per_unit plan at that time: only per_unit plans take usage records.")
	}
	return model.PlanID, nil
}

// ListUsageRecords lists an installation's usage records, newest first:
// to its app, its organization's admins, and the host.
func (s *Usage) ListUsageRecords(ctx context.Context, a Actor, id string, r page.Request) (page.Page[UsageRecord], error) {
	inst, err := s.installs.loadInstallation(ctx, s.db, id, false)
	if err != nil {
		return page.Page[UsageRecord]{}, err
	}
	if a.Service == nil && !a.IsOperator() {
		sd, err := s.installs.sideOf(ctx, s.db, a, inst)
		switch {
		case err != nil:
			return page.Page[UsageRecord]{}, err
		case sd == sideNone:
			return page.Page[UsageRecord]{}, fault.NotFound("installation")
		case sd == sideMember:
			return page.Page[UsageRecord]{}, fault.Forbidden(fault.InsufficientRole, "Usage records need the admin role in the organization.")
		}
	}
	var rows []UsageRecord
	order := page.Sort{Column: "id", Desc: true}
	db := s.db.WithContext(ctx).Model(&UsageRecord{}).Where("installation_id = ?", inst.ID)
	if err := page.Query(db, "id", order, r).Find(&rows).Error; err != nil {
		return page.Page[UsageRecord]{}, fmt.Errorf("listing usage records: %w", err)
	}
	for i := range rows {
		rows[i].Installation = inst
	}
	return page.Finish(rows, r, order, func(x UsageRecord) (string, int64) { return "", x.ID }), nil
}
