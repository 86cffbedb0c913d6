package marketplace

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"gorm.io/gorm"

	"github.com/plugboard/plugboard/app/fault"
)

// Billing closes billing periods — calendar months, UTC — and writes each
// organization's invoices: the scheduled job (billing_tasks.go) and
// `plugboard billing close --period 2026-11`. Closing is once per
// organization and period: billing_closes' primary key, written in the
// same transaction as the organization's invoices and their
// invoice.created events, makes a second run, or a second closer at the
// same moment, write nothing; a close that fails or is killed midway
// leaves no part of an organization's invoices, and the next run does it.
type Billing struct {
	*core
	// closers is how many organizations close at once.
	closers int
}

// CloseReport says what closing a period did.
type CloseReport struct {
	Period        time.Time
	Organizations int // organizations closed by this run
	Invoices      int // invoices written by this run
	AlreadyClosed bool
}

// ParsePeriod reads a period as the CLI and API write it: "2026-11".
func ParsePeriod(s string) (time.Time, error) {
	t, err := time.Parse("2006-01", s)
	if err != nil {
		return time.Time{}, fault.Field("period", `must be a month such as "2026-11"`)
	}
	return t.UTC(), nil
}

// FormatPeriod writes a period's month: "2026-11".
func FormatPeriod(t time.Time) string { return t.UTC().Format("2006-01") }

// ClosePeriod closes the period starting at period (the first instant of
// a month, UTC) for every organization that had an installation on a plan
// during it. The period must have ended, and the hour of grace for late
// usage records after it too.
func (s *Billing) ClosePeriod(ctx context.Context, period time.Time) (CloseReport, error) {
	start := periodStart(period)
	rep := CloseReport{Period: start}
	if !start.Equal(period.UTC()) {
		return rep, fault.Field("period", "must be the first instant of a month, UTC")
	}
	end := nextPeriod(start)
	if closes := end.Add(UsageGrace); s.now().Before(closes) {
		return rep, fault.Field("period", fmt.Sprintf("%s has not ended: it closes at %s, an hour after it ends", FormatPeriod(start), closes.Format(time.RFC3339)))
	}
	var done int64
	if err := s.db.WithContext(ctx).Model(&BillingPeriod{}).Where("period = ?", start).Count(&done).Error; err != nil {
		return rep, fmt.Errorf("finding period %s: %w", FormatPeriod(start), err)
	}
	if done > 0 {
		rep.AlreadyClosed = true
		return rep, nil
	}
	var failed []error
	for after := int64(0); ; {
		orgs, err := s.openOrganizations(ctx, start, end, after)
		if err != nil {
			return rep, err
		}
		if len(orgs) == 0 {
			break
		}
		after = orgs[len(orgs)-1]
		facts, err := s.loadFacts(ctx, orgs, start, end)
		if err != nil {
			return rep, err
		}
		n, invoices, errs := s.closeOrganizations(ctx, orgs, facts)
		rep.Organizations, rep.Invoices = rep.Organizations+n, rep.Invoices+invoices
		failed = append(failed, errs...)
		if ctx.Err() != nil {
			return rep, fmt.Errorf("closing %s: %w", FormatPeriod(start), ctx.Err())
		}
	}
	if len(failed) > 0 {
		// The period stays open: the next run closes what is left.
		return rep, fmt.Errorf("closing %s: %d organizations failed: %w", FormatPeriod(start), len(failed), errors.Join(failed...))
	}
	err := s.db.WithContext(ctx).Exec(`INSERT INTO billing_periods (period, organizations, closed_at)
		SELECT ?, count(*), ? FROM billing_closes WHERE period = ? ON CONFLICT (period) DO NOTHING`, start, s.now(), start).Error
	if err != nil {
		return rep, fmt.Errorf("marking %s closed: %w", FormatPeriod(start), err)
	}
	s.log.Info("billing period closed", "period", FormatPeriod(start), "organizations", rep.Organizations, "invoices", rep.Invoices)
	return rep, nil
}

// openOrganizations are the next organizations (ids above after) that had
// an installation on a plan during [start, end) and whose period is not
// closed.
func (s *Billing) openOrganizations(ctx context.Context, start, end time.Time, after int64) ([]int64, error) {
	var ids []int64
	err := s.db.WithContext(ctx).Raw(`SELECT DISTINCT i.organization_id FROM installation_plan_intervals i
		WHERE i.started_at < ? AND (i.ended_at IS NULL OR i.ended_at > ?) AND i.organization_id > ?
		  AND NOT EXISTS (SELECT 1 FROM billing_closes c WHERE c.organization_id = i.organization_id AND c.period = ?)
		ORDER BY 1 LIMIT ?`, end, start, after, start, closeOrganizationsBatch).Scan(&ids).Error
	if err != nil {
		return nil, fmt.Errorf("finding organizations to close: %w", err)
	}
	return ids, nil
}

// closeOrganizations closes the organizations up to closeChunk at a time, each
// chunk in one transaction, s.closers chunks at once: a commit per
// organization was most of the time of a close (issue 18's benchmark).
// A chunk that fails is retried an organization at a time, so one that
// fails does not stop the others and leaves none of its invoices.
func (s *Billing) closeOrganizations(ctx context.Context, orgs []int64, facts map[int64]*orgFacts) (closed, invoices int, failed []error) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	next := make(chan []*orgFacts)
	for range max(s.closers, 1) {
		wg.Go(func() {
			for chunk := range next {
				written, err := s.closeChunk(ctx, chunk)
				if err != nil && len(chunk) > 1 && ctx.Err() == nil {
					written, failed1 := make([]int, len(chunk)), []error(nil)
					for i, f := range chunk {
						n, err := s.closeChunk(ctx, []*orgFacts{f})
						if err != nil {
							failed1 = append(failed1, err)
							n = []int{-1}
						}
						written[i] = n[0]
					}
					mu.Lock()
					closed, invoices = tally(written, closed, invoices)
					failed = append(failed, failed1...)
					mu.Unlock()
					continue
				}
				mu.Lock()
				if err != nil {
					failed = append(failed, err)
				} else {
					closed, invoices = tally(written, closed, invoices)
				}
				mu.Unlock()
			}
		})
	}
	// Each closer gets a few chunks of the batch, so none idles at its end.
	size := min(closeChunk, max(1, len(orgs)/(4*max(s.closers, 1))))
	for i := 0; i < len(orgs); i += size {
		if ctx.Err() != nil {
			break
		}
		chunk := make([]*orgFacts, 0, size)
		for _, id := range orgs[i:min(i+size, len(orgs))] {
			chunk = append(chunk, facts[id])
		}
		next <- chunk
	}
	close(next)
	wg.Wait()
	return closed, invoices, failed
}

// tally adds the organizations closed and invoices written of a chunk;
// -1 is one another closer did first.
func tally(written []int, closed, invoices int) (int, int) {
	for _, n := range written {
		if n >= 0 {
			closed, invoices = closed+1, invoices+n
		}
	}
	return closed, invoices
}

// closeChunk writes the organizations' invoices for the period, and their
// invoice.created events, in one transaction: how many each got, -1 for
// one another closer did first. Organizations are taken in id order, so
// two closers wait for each other rather than deadlock.
func (s *Billing) closeChunk(ctx context.Context, chunk []*orgFacts) ([]int, error) {
	written := make([]int, len(chunk))
	err := s.publishTx(ctx, func(tx *gorm.DB) error {
		for i, f := range chunk {
			invoices := invoicesOf(f.Org.ID, f.Start, f.End, billLines(f.billingFacts))
			res := tx.Exec(`INSERT INTO billing_closes (organization_id, period, invoices, closed_at) VALUES (?, ?, ?, ?)
				ON CONFLICT (organization_id, period) DO NOTHING`, f.Org.ID, f.Start, len(invoices), s.now())
			if res.Error != nil {
				return fmt.Errorf("closing organization %d: %w", f.Org.ID, res.Error)
			}
			if res.RowsAffected == 0 {
				written[i] = -1 // closed already, by another run
				continue
			}
			for j := range invoices {
				if err := s.writeInvoice(ctx, tx, &invoices[j], &f.Org); err != nil {
					return fmt.Errorf("closing organization %d: %w", f.Org.ID, err)
				}
			}
			written[i] = len(invoices)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("closing %s: %w", FormatPeriod(chunk[0].Start), err)
	}
	return written, nil
}

// writeInvoice inserts an invoice and its lines, and tells host endpoints.
func (s *Billing) writeInvoice(ctx context.Context, tx *gorm.DB, inv *Invoice, org *Organization) error {
	inv.CreatedAt, inv.UpdatedAt = s.now(), s.now()
	lines := inv.Lines
	if err := tx.WithContext(ctx).Omit("Lines", "Organization").Create(inv).Error; err != nil {
		return fmt.Errorf("writing the %s invoice: %w", inv.Currency, err)
	}
	for i := range lines {
		lines[i].InvoiceID = inv.ID
	}
	if err := tx.WithContext(ctx).CreateInBatches(lines, 1000).Error; err != nil {
		return fmt.Errorf("writing the %s invoice's lines: %w", inv.Currency, err)
	}
	inv.Lines, inv.Organization = lines, org
	return s.publishHost(ctx, tx, EventInvoiceCreated, map[string]any{"invoice": InvoiceData(inv), "organization": hostOrgData(org)})
}

// orgFacts are one organization's billing facts for a period.
type orgFacts struct {
	billingFacts
	Org Organization
}

// loadFacts reads the billing facts of organizations orgs for [start,
// end), a few queries for them all.
func (s *Billing) loadFacts(ctx context.Context, orgs []int64, start, end time.Time) (map[int64]*orgFacts, error) {
	return loadBillingFacts(ctx, s.db, orgs, start, end)
}

func loadBillingFacts(ctx context.Context, db *gorm.DB, orgs []int64, start, end time.Time) (map[int64]*orgFacts, error) {
	db = db.WithContext(ctx)
	out := make(map[int64]*orgFacts, len(orgs))
	var rows []Organization
	if err := db.Where("id IN ?", orgs).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("loading organizations: %w", err)
	}
	for _, o := range rows {
		out[o.ID] = &orgFacts{Org: o}
	}
	for _, id := range orgs {
		if out[id] == nil { // deleted since: its invoices still go out
			out[id] = &orgFacts{Org: Organization{ID: id, Slug: fmt.Sprintf("organization-%d", id)}}
		}
	}
	prices, labels := map[int64]PlanPrice{}, map[int64]string{}
	installations := map[int64]billedInstallation{}
	for _, f := range out {
		f.Start, f.End, f.Prices, f.Labels, f.Installations = start, end, prices, labels, installations
		f.Usage = map[usageKey]int64{}
	}
	var intervals []PlanInterval
	if err := db.Where("organization_id IN ? AND started_at < ? AND (ended_at IS NULL OR ended_at > ?)", orgs, end, start).
		Order("installation_id, started_at").Find(&intervals).Error; err != nil {
		return nil, fmt.Errorf("loading plan intervals: %w", err)
	}
	var plans, insts []int64
	seenPlan, seenInst := map[int64]bool{}, map[int64]bool{}
	for _, iv := range intervals {
		out[iv.OrganizationID].Intervals = append(out[iv.OrganizationID].Intervals, iv)
		if !seenPlan[iv.PlanID] {
			seenPlan[iv.PlanID] = true
			plans = append(plans, iv.PlanID)
		}
		if !seenInst[iv.InstallationID] {
			seenInst[iv.InstallationID] = true
			insts = append(insts, iv.InstallationID)
		}
	}
	if len(intervals) == 0 {
		return out, nil
	}
	var versions []PlanPrice
	if err := db.Raw(`SELECT DISTINCT ON (plan_id) * FROM plan_prices WHERE plan_id IN ? AND effective_from <= ?
		ORDER BY plan_id, effective_from DESC`, plans, start).Scan(&versions).Error; err != nil {
		return nil, fmt.Errorf("loading plan prices: %w", err)
	}
	for _, v := range versions {
		prices[v.PlanID] = v
	}
	var named []struct {
		ID       int64
		AppName  string
		PlanName string
	}
	if err := db.Raw(`SELECT p.id, a.name AS app_name, p.name AS plan_name FROM plans p JOIN apps a ON a.id = p.app_id
		WHERE p.id IN ?`, plans).Scan(&named).Error; err != nil {
		return nil, fmt.Errorf("loading plan names: %w", err)
	}
	for _, n := range named {
		labels[n.ID] = n.AppName + " — " + n.PlanName
	}
	var trials []struct {
		ID          int64
		UUID        string
		TrialEndsAt *time.Time
	}
	if err := db.Raw(`SELECT id, uuid, trial_ends_at FROM installations WHERE id IN ?`, insts).Scan(&trials).Error; err != nil {
		return nil, fmt.Errorf("loading installations: %w", err)
	}
	for _, t := range trials {
		installations[t.ID] = billedInstallation{UUID: t.UUID, TrialEndsAt: t.TrialEndsAt}
	}
	for _, id := range insts {
		if _, ok := installations[id]; !ok { // deleted with its app: billed for the time it was there
			installations[id] = billedInstallation{UUID: "00000000-0000-0000-0000-000000000000"}
		}
	}
	var usage []struct {
		OrganizationID, InstallationID, PlanID, Units int64
	}
	if err := db.Raw(`SELECT u.organization_id, u.installation_id, u.plan_id, sum(u.quantity) AS units
		FROM usage_records u LEFT JOIN installations i ON i.id = u.installation_id
		WHERE u.organization_id IN ? AND u.recorded_at >= ? AND u.recorded_at < ?
		  AND (i.trial_ends_at IS NULL OR u.recorded_at >= i.trial_ends_at)
		GROUP BY 1, 2, 3`, orgs, start, end).Scan(&usage).Error; err != nil {
		return nil, fmt.Errorf("loading usage: %w", err)
	}
	for _, u := range usage {
		out[u.OrganizationID].Usage[usageKey{u.InstallationID, u.PlanID}] = u.Units
	}
	return out, nil
}
