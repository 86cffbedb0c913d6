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
	closed, invoices, failed, err := s.closeOrganizations(ctx, start, end)
	rep.Organizations, rep.Invoices = closed, invoices
	if err != nil {
		return rep, err
	}
	if ctx.Err() != nil {
		return rep, fmt.Errorf("closing %s: %w", FormatPeriod(start), ctx.Err())
	}
	if len(failed) > 0 {
		// The period stays open: the next run closes what is left.
		return rep, fmt.Errorf("closing %s: %d organizations failed: %w", FormatPeriod(start), len(failed), errors.Join(failed...))
	}
	err = s.db.WithContext(ctx).Exec(`INSERT INTO billing_periods (period, organizations, closed_at)
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

// closeOrganizations closes the period's open organizations in chunks
// of up to closeChunk, s.closers chunks at once, each chunk loading its
// facts (a few queries for all of it) and writing its invoices in one
// transaction: a commit and a dozen statements per organization were
// most of the time of a close (issue 18's benchmark). A chunk that fails
// is retried an organization at a time, so one that fails does not stop
// the others and leaves none of its invoices. err is a failure to find
// the organizations; failed, those that did not close.
func (s *Billing) closeOrganizations(ctx context.Context, start, end time.Time) (closed, invoices int, failed []error, err error) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	next := make(chan []int64)
	for range max(s.closers, 1) {
		wg.Go(func() {
			for chunk := range next {
				written, err := s.closeChunk(ctx, chunk, start, end)
				if err != nil && len(chunk) > 1 && ctx.Err() == nil {
					written, failed1 := make([]int, len(chunk)), []error(nil)
					for i, id := range chunk {
						n, err := s.closeChunk(ctx, []int64{id}, start, end)
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
	err = s.feedClosers(ctx, start, end, next)
	close(next)
	wg.Wait()
	return closed, invoices, failed, err
}

// feedClosers sends the period's open organizations to next, in chunks.
func (s *Billing) feedClosers(ctx context.Context, start, end time.Time, next chan<- []int64) error {
	for after := int64(0); ctx.Err() == nil; {
		orgs, err := s.openOrganizations(ctx, start, end, after)
		if err != nil {
			return err
		}
		if len(orgs) == 0 {
			return nil
		}
		after = orgs[len(orgs)-1]
		// Each closer gets a few chunks of the batch, so none idles at its
		// end (and a small close still closes an organization at a time).
		size := min(closeChunk, max(1, len(orgs)/(4*max(s.closers, 1))))
		for i := 0; i < len(orgs) && ctx.Err() == nil; i += size {
			next <- orgs[i:min(i+size, len(orgs))]
		}
	}
	return nil
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

// closeChunk loads the organizations' facts for the period [start, end),
// and writes their invoices, lines and invoice.created events in one
// transaction, a statement per table for the whole chunk: how many
// invoices each got, -1 for one another closer did first. The billing_closes rows go first, in
// organization id order, so two closers of overlapping chunks wait for
// each other rather than deadlock, and the one that waited writes none of
// the other's organizations.
func (s *Billing) closeChunk(ctx context.Context, orgs []int64, start, end time.Time) ([]int, error) {
	period := start
	facts, err := s.loadFacts(ctx, orgs, start, end)
	if err != nil {
		return nil, fmt.Errorf("closing %s: %w", FormatPeriod(period), err)
	}
	now := s.now()
	chunk, counts := make([]*orgFacts, len(orgs)), make([]int32, len(orgs))
	invoices := make([][]Invoice, len(orgs))
	for i, id := range orgs {
		f := facts[id]
		invoices[i] = invoicesOf(f.Org.ID, f.Start, f.End, billLines(f.billingFacts))
		chunk[i], counts[i] = f, int32(len(invoices[i]))
	}
	written := make([]int, len(chunk))
	err = s.publishTx(ctx, func(tx *gorm.DB) error {
		tx = tx.WithContext(ctx)
		// Index plans for the foreign-key checks of the lines (on
		// invoices), which each connection plans once and keeps: planned
		// while invoices was small, a check by sequential scan per line
		// made writing a chunk's lines most of a close (issue 18's
		// benchmark, 7 s of 10).
		if err := tx.Exec("SELECT set_config('enable_seqscan', 'off', true)").Error; err != nil {
			return fmt.Errorf("closing %d organizations: %w", len(orgs), err)
		}
		var won []int64
		if err := tx.Raw(`INSERT INTO billing_closes (organization_id, period, invoices, closed_at)
			SELECT v.o, ?, v.n, ? FROM unnest(?::bigint[], ?::int[]) AS v(o, n) ORDER BY v.o
			ON CONFLICT (organization_id, period) DO NOTHING RETURNING organization_id`,
			period, now, pgArray(orgs), pgArray(counts)).Scan(&won).Error; err != nil {
			return fmt.Errorf("closing %d organizations: %w", len(orgs), err)
		}
		mine := make(map[int64]bool, len(won))
		for _, id := range won {
			mine[id] = true
		}
		var todo []*Invoice
		for i, f := range chunk {
			if !mine[f.Org.ID] {
				written[i] = -1 // closed already, by another run
				continue
			}
			written[i] = len(invoices[i])
			for j := range invoices[i] {
				inv := &invoices[i][j]
				inv.CreatedAt, inv.UpdatedAt, inv.Organization = now, now, &f.Org
				todo = append(todo, inv)
			}
		}
		return s.writeInvoices(ctx, tx, todo)
	})
	if err != nil {
		return nil, fmt.Errorf("closing %s: %w", FormatPeriod(period), err)
	}
	return written, nil
}

// writeInvoices inserts invoices and their lines, a statement each for
// all of them, and tells host endpoints (invoice.created, one event per
// invoice, with the ids just written).
func (s *Billing) writeInvoices(ctx context.Context, tx *gorm.DB, invs []*Invoice) error {
	if len(invs) == 0 {
		return nil
	}
	type invoiceKey struct {
		org      int64
		currency string
	}
	var (
		iOrg                    = make([]int64, len(invs))
		iPeriod, iEnd, iCreated = make([]time.Time, len(invs)), make([]time.Time, len(invs)), make([]time.Time, len(invs))
		iCurrency, iStatus      = make([]string, len(invs)), make([]string, len(invs))
		iTotal                  = make([]int64, len(invs))
	)
	for i, inv := range invs {
		iOrg[i], iPeriod[i], iEnd[i], iCreated[i] = inv.OrganizationID, inv.Period, inv.PeriodEnd, inv.CreatedAt
		iCurrency[i], iStatus[i], iTotal[i] = inv.Currency, inv.Status, inv.Total
	}
	var made []struct {
		ID             int64
		OrganizationID int64
		Currency       string
	}
	if err := tx.Raw(`INSERT INTO invoices (organization_id, period, period_end, currency, total, status, created_at, updated_at)
		SELECT v.o, v.p, v.e, v.c, v.t, v.s, v.at, v.at
		FROM unnest(?::bigint[], ?::timestamptz[], ?::timestamptz[], ?::text[], ?::bigint[], ?::text[], ?::timestamptz[]) AS v(o, p, e, c, t, s, at)
		RETURNING id, organization_id, currency`,
		pgArray(iOrg), pgArray(iPeriod), pgArray(iEnd), pgArray(iCurrency), pgArray(iTotal), pgArray(iStatus), pgArray(iCreated)).
		Scan(&made).Error; err != nil {
		return fmt.Errorf("writing %d invoices: %w", len(invs), err)
	}
	// Matched by their unique key (organization, period, currency): one
	// period per chunk.
	byKey := make(map[invoiceKey]int64, len(made))
	for _, m := range made {
		byKey[invoiceKey{m.OrganizationID, m.Currency}] = m.ID
	}
	var lb lineBatch
	for _, inv := range invs {
		id, ok := byKey[invoiceKey{inv.OrganizationID, inv.Currency}]
		if !ok {
			return fmt.Errorf("writing invoices: the %s invoice of organization %d was not written", inv.Currency, inv.OrganizationID)
		}
		inv.ID = id
		for j := range inv.Lines {
			inv.Lines[j].InvoiceID = id
			lb.add(&inv.Lines[j])
		}
	}
	if err := lb.write(ctx, tx); err != nil {
		return err
	}
	data := make([]any, len(invs))
	for i, inv := range invs {
		data[i] = map[string]any{"invoice": InvoiceData(inv), "organization": hostOrgData(inv.Organization)}
	}
	return s.publishHostMany(ctx, tx, EventInvoiceCreated, data)
}

// lineBatch is invoice lines to insert, as the columns of one statement.
type lineBatch struct {
	lines                                           []*InvoiceLine
	invoice, org, inst, app, plan, price            []int64
	qty, included, unitPrice, amount                []int64
	capped                                          []*int64
	period, starts, ends                            []time.Time
	instUUID, kind, description, currency, interval []string
}

func (b *lineBatch) add(l *InvoiceLine) {
	b.lines = append(b.lines, l)
	b.invoice, b.org, b.inst, b.app, b.plan, b.price = append(b.invoice, l.InvoiceID), append(b.org, l.OrganizationID),
		append(b.inst, l.InstallationID), append(b.app, l.AppID), append(b.plan, l.PlanID), append(b.price, l.PlanPriceID)
	b.qty, b.included, b.unitPrice, b.amount, b.capped = append(b.qty, l.Quantity), append(b.included, l.Included),
		append(b.unitPrice, l.UnitPrice), append(b.amount, l.Amount), append(b.capped, l.CappedAmount)
	b.period, b.starts, b.ends = append(b.period, l.Period), append(b.starts, l.StartsAt), append(b.ends, l.EndsAt)
	b.instUUID, b.kind, b.description, b.currency, b.interval = append(b.instUUID, l.InstallationUUID), append(b.kind, l.Kind),
		append(b.description, l.Description), append(b.currency, l.Currency), append(b.interval, l.Interval)
}

// write inserts the lines and gives each its id. A line is one per
// invoice, installation and plan (billLines), which matches it to the
// id the statement returns.
func (b *lineBatch) write(ctx context.Context, tx *gorm.DB) error {
	if len(b.lines) == 0 {
		return nil
	}
	type lineKey struct{ invoice, inst, plan int64 }
	var made []struct {
		ID, InvoiceID, InstallationID, PlanID int64
	}
	if err := tx.WithContext(ctx).Raw(`INSERT INTO invoice_lines (invoice_id, organization_id, period, installation_id, installation_uuid,
			app_id, plan_id, plan_price_id, kind, description, currency, quantity, included, unit_price, interval, capped_amount,
			amount, starts_at, ends_at)
		SELECT * FROM unnest(?::bigint[], ?::bigint[], ?::timestamptz[], ?::bigint[], ?::uuid[], ?::bigint[], ?::bigint[], ?::bigint[],
			?::text[], ?::text[], ?::text[], ?::bigint[], ?::bigint[], ?::bigint[], ?::text[], ?::bigint[], ?::bigint[],
			?::timestamptz[], ?::timestamptz[])
		RETURNING id, invoice_id, installation_id, plan_id`,
		pgArray(b.invoice), pgArray(b.org), pgArray(b.period), pgArray(b.inst), pgArray(b.instUUID), pgArray(b.app), pgArray(b.plan),
		pgArray(b.price), pgArray(b.kind), pgArray(b.description), pgArray(b.currency), pgArray(b.qty), pgArray(b.included),
		pgArray(b.unitPrice), pgArray(b.interval), pgArray(b.capped), pgArray(b.amount), pgArray(b.starts), pgArray(b.ends)).
		Scan(&made).Error; err != nil {
		return fmt.Errorf("writing %d invoice lines: %w", len(b.lines), err)
	}
	ids := make(map[lineKey]int64, len(made))
	for _, m := range made {
		ids[lineKey{m.InvoiceID, m.InstallationID, m.PlanID}] = m.ID
	}
	for _, l := range b.lines {
		id, ok := ids[lineKey{l.InvoiceID, l.InstallationID, l.PlanID}]
		if !ok {
			return fmt.Errorf("writing invoice lines: invoice %d's line for installation %d was not written", l.InvoiceID, l.InstallationID)
		}
		l.ID = id
	}
	return nil
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
