package marketplace

import "time"

// The billing ledger's rows (00018_billing.sql; the rules are in
// docs/guides/billing.md). Every amount here is in the currency's minor
// units; the API shows them as decimals (money.go).

// Pricing models of a plan.
const (
	PricingFlat    = "flat"     // a price per month or year, prorated by the second
	PricingPerUnit = "per_unit" // a price per unit the app reports, above the included units, capped
	PricingFree    = "free"
)

// Invoice statuses: open until the host says how collecting it went.
const (
	InvoiceOpen          = "open"
	InvoicePaid          = "paid"
	InvoiceVoid          = "void"
	InvoiceUncollectible = "uncollectible"
)

// Invoice line kinds.
const (
	LineFlat  = "flat"  // a flat plan's prorated price
	LineUsage = "usage" // a per-unit plan's reported usage
)

// Billing events.
const (
	EventInvoiceCreated     = "invoice.created"             // to host endpoints
	EventTrialWillEnd       = "installation.trial_will_end" // to the app
	UsageGrace              = time.Hour                     // usage for a period is taken this long after it ends
	TrialWillEndNotice      = 72 * time.Hour                // the app hears this long before a trial ends
	defaultCommissionBps    = 2000
	maxUsageIdempotencyKey  = 200
	maxUsageQuantity        = 1 << 40
	usageFutureSkew         = 5 * time.Minute
	closeOrganizationsBatch = 2000
	billingClosers          = 4   // chunks of organizations closing at once
	closeChunk              = 100 // organizations closed in one transaction
)

// PlanPrice is one version of a plan's price: it prices every period that
// starts at or after EffectiveFrom, until a later version.
type PlanPrice struct {
	ID            int64
	PlanID        int64
	AppID         int64
	EffectiveFrom time.Time
	PricingModel  string
	Currency      string
	Interval      string
	Amount        int64 // flat: the price per interval
	UnitPrice     int64 // per_unit: the price of one unit
	UnitName      string
	IncludedUnits int64
	CappedAmount  *int64 // per_unit: the most a period costs; nil: no cap
	CreatedAt     time.Time
}

// PlanInterval is a stretch of time an installation was live on a plan,
// [StartedAt, EndedAt); EndedAt nil while it lasts. The database keeps
// them (a trigger on installations).
type PlanInterval struct {
	ID             int64
	InstallationID int64
	OrganizationID int64
	AppID          int64
	PlanID         int64
	StartedAt      time.Time
	EndedAt        *time.Time
}

// TableName keeps gorm on the migration's table name.
func (PlanInterval) TableName() string { return "installation_plan_intervals" }

// UsageRecord is a quantity of a per-unit plan's units the app reported.
type UsageRecord struct {
	ID             int64
	InstallationID int64
	OrganizationID int64
	AppID          int64
	PlanID         int64
	Quantity       int64
	RecordedAt     time.Time // the record's timestamp: when the units were used
	IdempotencyKey string
	CreatedAt      time.Time

	Installation *Installation `gorm:"foreignKey:InstallationID"`
}

// BillingClose says an organization's period is closed: its invoices are
// written. Its primary key (organization, period) makes closing once.
type BillingClose struct {
	OrganizationID int64     `gorm:"primaryKey"`
	Period         time.Time `gorm:"primaryKey"` // the period's first instant
	Invoices       int
	ClosedAt       time.Time
}

// BillingPeriod says every organization of a period is closed.
type BillingPeriod struct {
	Period        time.Time `gorm:"primaryKey"`
	Organizations int
	ClosedAt      time.Time
}

// Invoice is what an organization owes for a period in one currency.
type Invoice struct {
	ID              int64
	OrganizationID  int64
	Period          time.Time // the period's first instant (UTC midnight of the 1st)
	PeriodEnd       time.Time
	Currency        string
	Total           int64
	Status          string
	CreatedAt       time.Time
	UpdatedAt       time.Time
	PaidAt          *time.Time
	VoidedAt        *time.Time
	UncollectibleAt *time.Time

	Lines        []InvoiceLine `gorm:"foreignKey:InvoiceID"`
	Organization *Organization `gorm:"foreignKey:OrganizationID"`
}

// InvoiceLine is one charge: an installation's time on a flat plan, or
// its usage of a per-unit plan, within the invoice's period.
type InvoiceLine struct {
	ID               int64
	InvoiceID        int64
	OrganizationID   int64
	Period           time.Time
	InstallationID   int64
	InstallationUUID string
	AppID            int64
	PlanID           int64
	PlanPriceID      int64
	Kind             string // LineFlat or LineUsage
	Description      string
	Currency         string
	Quantity         int64  // flat: billable seconds; usage: units reported outside the trial
	Included         int64  // flat: seconds in the period; usage: units free per period
	UnitPrice        int64  // flat: the price per interval; usage: the price of one unit
	Interval         string // flat: month or year
	CappedAmount     *int64
	Amount           int64
	StartsAt         time.Time // the first and last instant the line covers
	EndsAt           time.Time
}
