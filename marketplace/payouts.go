package marketplace

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/plugboard/plugboard/app/fault"
)

// Payouts: the platform keeps a commission on every paid invoice line of
// an app, and pays the rest out to the partner. The rules
// (docs/guides/revenue.md):
//
//   - only lines of invoices the host marked paid count, and only lines
//     that charge something;
//   - a line is paid out in the calendar month (UTC) its invoice was paid
//     in: one statement per month and currency, final once the month is
//     over (an invoice paid late shows in the month it was paid, so a
//     final statement never changes);
//   - the rate is the app's commission in force when the invoice was
//     paid (app_commissions, 00021), or the platform's default
//     (PLUGBOARD_BILLING_COMMISSION) where the app has none;
//   - each line's commission is gross × rate, rounded half to even to the
//     minor unit, like invoice lines; net is gross − commission, so
//     gross = commission + net exactly, per line and so per statement.

// Statement statuses.
const (
	StatementOpen  = "open"  // the month is under way: more may be paid in it
	StatementFinal = "final" // the month is over: the statement will not change
)

// CommissionView is an app's commission.
type CommissionView struct {
	Bps        int  // in force now
	DefaultBps int  // the platform's default
	Override   *int // the app's own rate; nil: the default applies
	// EffectiveAt is when the present rate was set (nil: never set).
	EffectiveAt *time.Time
}

// AppCommission is one commission an operator set on an app; Bps nil
// returns the app to the platform's default.
type AppCommission struct {
	ID          int64
	AppID       int64
	Bps         *int
	EffectiveAt time.Time
	SetBy       *int64
	CreatedAt   time.Time
}

// PayoutLine is one paid invoice line and its split.
type PayoutLine struct {
	InvoiceID        int64
	InvoiceLineID    int64
	Organization     string // the customer organization's slug ("" once deleted)
	InstallationUUID string
	Plan             PlanRef
	Kind             string
	Period           time.Time // the billing period the line is for
	PaidAt           time.Time
	CommissionBps    int
	Gross            int64
	Commission       int64
	Net              int64
}

// PayoutStatement is what an app earned from invoices paid in one month,
// in one currency.
type PayoutStatement struct {
	Period     time.Time // the month the invoices were paid in
	Currency   string
	Status     string
	Gross      int64
	Commission int64
	Net        int64
	Lines      []PayoutLine
}

// ID names the statement: "2026-11-USD".
func (p PayoutStatement) ID() string { return FormatPeriod(p.Period) + "-" + p.Currency }

// splitCommission is gross's commission at bps, rounded half to even, and
// the net left.
func splitCommission(gross int64, bps int) (commission, net int64) {
	commission = prorate(gross, int64(bps), 10000)
	return commission, gross - commission
}

// commissionHistory is the app's commissions, oldest first.
func (s *Revenue) commissionHistory(ctx context.Context, db *gorm.DB, appIDs []int64) (map[int64][]AppCommission, error) {
	var rows []AppCommission
	q := db.WithContext(ctx).Order("app_id, effective_at, id")
	if appIDs != nil {
		q = q.Where("app_id IN ?", appIDs)
	}
	if err := q.Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("reading commissions: %w", err)
	}
	out := map[int64][]AppCommission{}
	for _, r := range rows {
		out[r.AppID] = append(out[r.AppID], r)
	}
	return out, nil
}

// rateAt is the commission in force at t: the latest set at or before t,
// else the default.
func (s *Revenue) rateAt(history []AppCommission, t time.Time) int {
	bps := s.defaultBps
	for _, c := range history {
		if c.EffectiveAt.After(t) {
			break
		}
		bps = s.defaultBps
		if c.Bps != nil {
			bps = *c.Bps
		}
	}
	return bps
}

func (s *Revenue) commissionOf(ctx context.Context, v *AppView) (CommissionView, error) {
	h, err := s.commissionHistory(ctx, s.db, []int64{v.ID})
	if err != nil {
		return CommissionView{}, err
	}
	return s.commissionView(h[v.ID]), nil
}

func (s *Revenue) commissionView(history []AppCommission) CommissionView {
	out := CommissionView{Bps: s.defaultBps, DefaultBps: s.defaultBps}
	now := s.now()
	for _, c := range history {
		if c.EffectiveAt.After(now) {
			break
		}
		out.Override, out.EffectiveAt = c.Bps, ptr(c.EffectiveAt)
	}
	if out.Override != nil {
		out.Bps = *out.Override
	}
	return out
}

// Commission is app ref's commission, to its members and operators.
func (s *Revenue) Commission(ctx context.Context, a Actor, ref string) (CommissionView, error) {
	v, err := s.revenueApp(ctx, a, ref)
	if err != nil {
		return CommissionView{}, err
	}
	return s.commissionOf(ctx, v)
}

var percentRe = regexp.MustCompile(`^(0|[1-9][0-9]{0,2})(\.([0-9]{1,2}))?$`)

// ParseCommission reads a percentage with at most two decimals ("12.5")
// into basis points.
func ParseCommission(s string) (int, error) {
	m := percentRe.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, fault.Field("commission", `must be a percentage from "0" to "100" with at most two decimals, such as "12.5", or null for the platform's default`)
	}
	whole, _ := strconv.Atoi(m[1])
	frac, _ := strconv.Atoi((m[3] + "00")[:2])
	bps := whole*100 + frac
	if bps > 10000 {
		return 0, fault.Field("commission", `must be at most "100"`)
	}
	return bps, nil
}

// FormatCommission writes basis points as a percentage: 1250 → "12.50".
func FormatCommission(bps int) string { return formatMinor(int64(bps), 2) }

// SetCommission sets app ref's commission from now on, operators only:
// percent is a percentage ("12.5"), nil returns the app to the platform's
// default. Invoices paid before keep the rate they were paid at.
func (s *Revenue) SetCommission(ctx context.Context, a Actor, ref string, percent *string) (CommissionView, error) {
	v, err := s.revenueApp(ctx, a, ref)
	if err != nil {
		return CommissionView{}, err
	}
	if !a.IsOperator() {
		return CommissionView{}, fault.Forbidden(fault.OperatorOnly, "Only operators set an app's commission; its members may read it.")
	}
	var bps *int
	if percent != nil {
		n, err := ParseCommission(*percent)
		if err != nil {
			return CommissionView{}, err
		}
		bps = &n
	}
	var out CommissionView
	err = s.tx(ctx, func(tx *gorm.DB) error {
		// The app row, locked: two operators at once take turns.
		if err := tx.Exec(`SELECT 1 FROM apps WHERE id = ? FOR UPDATE`, v.ID).Error; err != nil {
			return fmt.Errorf("locking app %d: %w", v.ID, err)
		}
		h, err := s.commissionHistory(ctx, tx, []int64{v.ID})
		if err != nil {
			return err
		}
		before := s.commissionView(h[v.ID])
		if (before.Override == nil) == (bps == nil) && (bps == nil || *before.Override == *bps) {
			out = before // said twice: the same answer
			return nil
		}
		row := AppCommission{AppID: v.ID, Bps: bps, EffectiveAt: s.now(), SetBy: &a.User.ID, CreatedAt: s.now()}
		if err := tx.Create(&row).Error; err != nil {
			return fmt.Errorf("setting the commission of %s: %w", v.Slug, err)
		}
		out = s.commissionView(append(h[v.ID], row))
		to := any(nil)
		if bps != nil {
			to = FormatCommission(*bps)
		}
		return s.audit(tx, a, &v.OrganizationID, "app.commission", "app", idStr(v.ID), v.Slug,
			JSON{"from": FormatCommission(before.Bps), "to": to, "rate": FormatCommission(out.Bps)})
	})
	return out, err
}

// paidLine is a paid invoice line as payouts read it.
type paidLine struct {
	ID               int64
	InvoiceID        int64
	AppID            int64
	OrganizationID   int64
	Period           time.Time
	InstallationUUID string
	PlanID           int64
	Kind             string
	Currency         string
	Amount           int64
	PaidAt           time.Time
}

// paidLines reads the paid lines that charge something, of app appID (0:
// every app), for invoices paid in [from, to).
func (s *Revenue) paidLines(ctx context.Context, appID int64, from, to time.Time) ([]paidLine, error) {
	q := `SELECT l.id, l.invoice_id, l.app_id, l.organization_id, l.period, l.installation_uuid, l.plan_id, l.kind,
	             l.currency, l.amount, i.paid_at
		FROM invoice_lines l JOIN invoices i ON i.id = l.invoice_id
		WHERE i.status = ? AND l.amount > 0 AND i.paid_at >= ? AND i.paid_at < ?`
	args := []any{InvoicePaid, from, to}
	if appID != 0 {
		q += ` AND l.app_id = ?`
		args = append(args, appID)
	}
	var rows []paidLine
	if err := s.db.WithContext(ctx).Raw(q+` ORDER BY i.paid_at, l.id`, args...).Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("reading paid invoice lines: %w", err)
	}
	return rows, nil
}

// statements groups an app's paid lines into statements, newest month
// first, currencies alphabetically.
func (s *Revenue) statements(lines []paidLine, history []AppCommission, plans map[int64]Plan, orgs map[int64]string) []PayoutStatement {
	by := map[string]*PayoutStatement{}
	now := s.now()
	for _, l := range lines {
		month := periodStart(l.PaidAt)
		key := FormatPeriod(month) + "-" + l.Currency
		st := by[key]
		if st == nil {
			st = &PayoutStatement{Period: month, Currency: l.Currency, Status: StatementOpen}
			if !now.Before(nextPeriod(month)) {
				st.Status = StatementFinal
			}
			by[key] = st
		}
		bps := s.rateAt(history, l.PaidAt)
		c, n := splitCommission(l.Amount, bps)
		st.Lines = append(st.Lines, PayoutLine{InvoiceID: l.InvoiceID, InvoiceLineID: l.ID, Organization: orgs[l.OrganizationID],
			InstallationUUID: l.InstallationUUID, Plan: planRef(plans, l.PlanID), Kind: l.Kind, Period: l.Period, PaidAt: l.PaidAt,
			CommissionBps: bps, Gross: l.Amount, Commission: c, Net: n})
		st.Gross, st.Commission, st.Net = st.Gross+l.Amount, st.Commission+c, st.Net+n
	}
	out := make([]PayoutStatement, 0, len(by))
	for _, st := range by {
		out = append(out, *st)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Period.Equal(out[j].Period) {
			return out[i].Period.After(out[j].Period)
		}
		return out[i].Currency < out[j].Currency
	})
	return out
}

// Payouts are app ref's payout statements, newest first; period, when
// not zero, keeps the one month's (every currency).
func (s *Revenue) Payouts(ctx context.Context, a Actor, ref string, period time.Time) ([]PayoutStatement, error) {
	v, err := s.revenueApp(ctx, a, ref)
	if err != nil {
		return nil, err
	}
	from, to := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9000, 1, 1, 0, 0, 0, 0, time.UTC)
	if !period.IsZero() {
		from, to = periodStart(period), nextPeriod(periodStart(period))
	}
	lines, err := s.paidLines(ctx, v.ID, from, to)
	if err != nil {
		return nil, err
	}
	plans, _, err := s.appPlans(ctx, v.ID)
	if err != nil {
		return nil, err
	}
	h, err := s.commissionHistory(ctx, s.db, []int64{v.ID})
	if err != nil {
		return nil, err
	}
	orgs, err := s.orgSlugs(ctx, lines)
	if err != nil {
		return nil, err
	}
	return s.statements(lines, h[v.ID], plans, orgs), nil
}

func (s *Revenue) orgSlugs(ctx context.Context, lines []paidLine) (map[int64]string, error) {
	seen := map[int64]bool{}
	var ids []int64
	for _, l := range lines {
		if !seen[l.OrganizationID] {
			seen[l.OrganizationID] = true
			ids = append(ids, l.OrganizationID)
		}
	}
	out := map[int64]string{}
	if len(ids) == 0 {
		return out, nil
	}
	var rows []Organization
	if err := s.db.WithContext(ctx).Select("id, slug").Where("id IN ?", ids).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("reading organizations: %w", err)
	}
	for _, o := range rows {
		out[o.ID] = o.Slug
	}
	return out, nil
}

// PlatformRevenueRow is what one app brought in one month and currency.
type PlatformRevenueRow struct {
	AppID      int64
	AppSlug    string
	AppName    string
	Period     time.Time // the month the invoices were paid in
	Currency   string
	Lines      int
	Gross      int64
	Commission int64 // the platform's revenue
	Net        int64 // the partner's payout
}

// PlatformApp is an app in the operators' revenue page, with its
// commission.
type PlatformApp struct {
	ID         int64
	Slug, Name string
	Commission CommissionView
}

// PlatformRevenue is the operators' page: the platform's revenue by app
// and month over the months.
type PlatformRevenue struct {
	Since, Until time.Time
	Rows         []PlatformRevenueRow // newest month first, then app, then currency
	Totals       []PlatformRevenueRow // per month and currency, every app (AppID 0)
	Apps         []PlatformApp        // apps with a paid line, or a commission of their own
	DefaultBps   int
}

// PlatformRevenue is the platform's revenue from invoices paid in the
// last months (operators only; to everyone else the page is not there).
func (s *Revenue) PlatformRevenue(ctx context.Context, a Actor, months int) (*PlatformRevenue, error) {
	if err := operatorPage(a); err != nil {
		return nil, err
	}
	if months < 1 || months > 120 {
		return nil, fault.Field("months", "must be from 1 to 120")
	}
	until := nextPeriod(periodStart(s.now()))
	since := until.AddDate(0, -months, 0)
	lines, err := s.paidLines(ctx, 0, since, until)
	if err != nil {
		return nil, err
	}
	history, err := s.commissionHistory(ctx, s.db, nil)
	if err != nil {
		return nil, err
	}
	type key struct {
		app      int64
		month    time.Time
		currency string
	}
	rows := map[key]*PlatformRevenueRow{}
	totals := map[key]*PlatformRevenueRow{}
	appIDs := map[int64]bool{}
	for id := range history {
		appIDs[id] = true
	}
	add := func(m map[key]*PlatformRevenueRow, k key, gross, c, n int64) {
		r := m[k]
		if r == nil {
			r = &PlatformRevenueRow{AppID: k.app, Period: k.month, Currency: k.currency}
			m[k] = r
		}
		r.Lines++
		r.Gross, r.Commission, r.Net = r.Gross+gross, r.Commission+c, r.Net+n
	}
	for _, l := range lines {
		c, n := splitCommission(l.Amount, s.rateAt(history[l.AppID], l.PaidAt))
		month := periodStart(l.PaidAt)
		add(rows, key{l.AppID, month, l.Currency}, l.Amount, c, n)
		add(totals, key{0, month, l.Currency}, l.Amount, c, n)
		appIDs[l.AppID] = true
	}
	ids := make([]int64, 0, len(appIDs))
	for id := range appIDs {
		ids = append(ids, id)
	}
	var apps []App
	if len(ids) > 0 {
		if err := s.db.WithContext(ctx).Select("id, slug, name").Where("id IN ?", ids).Find(&apps).Error; err != nil {
			return nil, fmt.Errorf("reading apps: %w", err)
		}
	}
	names := map[int64]App{}
	out := &PlatformRevenue{Since: since, Until: until, DefaultBps: s.defaultBps}
	for _, ap := range apps {
		names[ap.ID] = ap
		out.Apps = append(out.Apps, PlatformApp{ID: ap.ID, Slug: ap.Slug, Name: ap.Name, Commission: s.commissionView(history[ap.ID])})
	}
	sort.Slice(out.Apps, func(i, j int) bool { return out.Apps[i].Slug < out.Apps[j].Slug })
	order := func(list []PlatformRevenueRow) {
		sort.Slice(list, func(i, j int) bool {
			x, y := list[i], list[j]
			switch {
			case !x.Period.Equal(y.Period):
				return x.Period.After(y.Period)
			case x.AppSlug != y.AppSlug:
				return x.AppSlug < y.AppSlug
			}
			return x.Currency < y.Currency
		})
	}
	for _, r := range rows {
		ap, ok := names[r.AppID]
		r.AppSlug, r.AppName = ap.Slug, ap.Name
		if !ok {
			r.AppSlug, r.AppName = "app-"+idStr(r.AppID), "Deleted app"
		}
		out.Rows = append(out.Rows, *r)
	}
	for _, r := range totals {
		out.Totals = append(out.Totals, *r)
	}
	order(out.Rows)
	order(out.Totals)
	return out, nil
}
