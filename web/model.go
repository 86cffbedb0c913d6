package web

import (
	"strconv"
	"time"

	"github.com/plugboard/plugboard/marketplace"
	"github.com/plugboard/plugboard/webhooks"
)

// Wire types: camelCase attributes, ids as strings, and named converters
// from the domain types.

func id(n int64) string { return strconv.FormatInt(n, 10) }

type userJSON struct {
	ID          string    `json:"id"`
	Email       string    `json:"email"`
	Name        string    `json:"name"`
	IsOperator  bool      `json:"isOperator"`
	DateCreated time.Time `json:"dateCreated"`
}

func toUserJSON(u *marketplace.User) userJSON {
	return userJSON{ID: id(u.ID), Email: u.Email, Name: u.Name, IsOperator: u.IsOperator, DateCreated: u.CreatedAt}
}

type apiTokenJSON struct {
	ID                  string     `json:"id"`
	Name                string     `json:"name"`
	TokenLastCharacters string     `json:"tokenLastCharacters"`
	DateCreated         time.Time  `json:"dateCreated"`
	DateLastUsed        *time.Time `json:"dateLastUsed"`
	ExpiresAt           *time.Time `json:"expiresAt"`
	Token               string     `json:"token,omitempty"`
}

func toAPITokenJSON(t marketplace.APIToken) apiTokenJSON {
	return apiTokenJSON{ID: id(t.ID), Name: t.Name, TokenLastCharacters: t.TokenSuffix, DateCreated: t.CreatedAt,
		DateLastUsed: t.LastUsedAt, ExpiresAt: t.ExpiresAt}
}

type orgJSON struct {
	ID          string    `json:"id"`
	Slug        string    `json:"slug"`
	Name        string    `json:"name"`
	Role        string    `json:"role,omitempty"`
	DateCreated time.Time `json:"dateCreated"`
}

func toOrgJSON(o marketplace.OrgAccess) orgJSON {
	return orgJSON{ID: id(o.Org.ID), Slug: o.Org.Slug, Name: o.Org.Name, Role: o.Role, DateCreated: o.Org.CreatedAt}
}

type orgRefJSON struct {
	ID   string `json:"id"`
	Slug string `json:"slug"`
	Name string `json:"name"`
}

type memberUserJSON struct {
	ID    string `json:"id"`
	Email string `json:"email"`
	Name  string `json:"name"`
}

type memberJSON struct {
	ID          string         `json:"id"`
	Role        string         `json:"role"`
	User        memberUserJSON `json:"user"`
	DateCreated time.Time      `json:"dateCreated"`
}

func toMemberJSON(m marketplace.Member) memberJSON {
	out := memberJSON{ID: id(m.ID), Role: m.Role, DateCreated: m.CreatedAt}
	if m.User != nil {
		out.User = memberUserJSON{ID: id(m.User.ID), Email: m.User.Email, Name: m.User.Name}
	}
	return out
}

type planJSON struct {
	ID          string    `json:"id"`
	Slug        string    `json:"slug"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	Price       string    `json:"price"`
	Currency    string    `json:"currency"`
	Interval    string    `json:"interval"`
	IsFree      bool      `json:"isFree"`
	DateCreated time.Time `json:"dateCreated"`
	// Billing (billing_plans.go): unitPrice and cappedAmount are null
	// unless the plan is per_unit (cappedAmount: and capped).
	PricingModel  string  `json:"pricingModel"`
	UnitPrice     *string `json:"unitPrice"`
	UnitName      string  `json:"unitName"`
	IncludedUnits int64   `json:"includedUnits"`
	CappedAmount  *string `json:"cappedAmount"`
	TrialDays     int     `json:"trialDays"`
}

func toPlanJSON(p marketplace.Plan) planJSON {
	return planJSON{ID: id(p.ID), Slug: p.Slug, Name: p.Name, Description: p.Description, Price: p.Price,
		Currency: p.Currency, Interval: p.Interval, IsFree: p.IsFree(), DateCreated: p.CreatedAt,
		PricingModel: p.PricingModel, UnitPrice: p.UnitPrice, UnitName: p.UnitName, IncludedUnits: p.IncludedUnits,
		CappedAmount: p.CappedAmount, TrialDays: p.TrialDays}
}

type appJSON struct {
	ID            string      `json:"id"`
	Slug          string      `json:"slug"`
	Name          string      `json:"name"`
	Kind          string      `json:"kind"`
	Status        string      `json:"status"`
	Author        string      `json:"author"`
	Overview      string      `json:"overview"`
	Categories    []string    `json:"categories"`
	Scopes        []string    `json:"scopes"`
	Events        []string    `json:"events"`
	LogoURL       string      `json:"logoUrl"`
	Installs      int         `json:"installs"`
	Organization  orgRefJSON  `json:"organization"`
	DateCreated   time.Time   `json:"dateCreated"`
	DateUpdated   time.Time   `json:"dateUpdated"`
	DatePublished *time.Time  `json:"datePublished"`
	Plans         *[]planJSON `json:"plans,omitempty"`

	// Shown to the owner organization and operators only.
	StatusReason  *string `json:"statusReason,omitempty"`
	ClientID      *string `json:"clientId,omitempty"`
	WebhookURL    *string `json:"webhookUrl,omitempty"`
	RedirectURL   *string `json:"redirectUrl,omitempty"`
	SyncURL       *string `json:"syncUrl,omitempty"`
	SSOURL        *string `json:"ssoUrl,omitempty"`
	ProvisionURL  *string `json:"provisionUrl,omitempty"`
	ConfigPrefix  *string `json:"configPrefix,omitempty"` // the effective one: set, or derived from the slug
	VerifyInstall *bool   `json:"verifyInstall,omitempty"`

	PublicKey *string `json:"publicKey,omitempty"`

	// The endpoint's health and limits, for the owner organization.
	WebhookStatus       string `json:"webhookStatus,omitempty"`
	WebhookStatusReason string `json:"webhookStatusReason,omitempty"`
	WebhookRateLimit    int    `json:"webhookRateLimit,omitempty"`
	WebhookMaxInFlight  int    `json:"webhookMaxInFlight,omitempty"`

	// Shown once, in the response that creates or rotates them.
	ClientSecret  string `json:"clientSecret,omitempty"`
	WebhookSecret string `json:"webhookSecret,omitempty"`
	// Internal integrations: their installation and its token, at creation.
	Installation *installationJSON `json:"installation,omitempty"`
	Token        string            `json:"token,omitempty"`
	// The draft or submitted revision of a published app, for the owner
	// organization and operators (api_revisions.go).
	PendingRevision *revisionJSON `json:"pendingRevision,omitempty"`
}

func toAppJSON(v marketplace.AppView, withPlans bool) appJSON {
	a := v.App
	out := appJSON{ID: id(a.ID), Slug: a.Slug, Name: a.Name, Kind: a.Kind, Status: a.Status, Author: a.Author,
		Overview: a.Overview, Categories: orEmpty(a.Categories), Scopes: orEmpty(a.Scopes), Events: orEmpty(a.Events),
		LogoURL: a.LogoURL, Installs: a.InstallsCount, DateCreated: a.CreatedAt, DateUpdated: a.UpdatedAt, DatePublished: a.PublishedAt}
	if a.Organization != nil {
		out.Organization = orgRefJSON{ID: id(a.Organization.ID), Slug: a.Organization.Slug, Name: a.Organization.Name}
	}
	if withPlans {
		plans := make([]planJSON, len(a.Plans))
		for i, p := range a.Plans {
			plans[i] = toPlanJSON(p)
		}
		out.Plans = &plans
	}
	if v.Private {
		out.StatusReason, out.ClientID = &a.StatusReason, &a.ClientID
		out.WebhookURL, out.RedirectURL, out.SyncURL, out.VerifyInstall = &a.WebhookURL, &a.RedirectURL, &a.SyncURL, &a.VerifyInstall
		out.PublicKey = &a.PublicKey
		out.SSOURL = &a.SSOURL
		prefix := a.ConfigVarPrefix()
		out.ProvisionURL, out.ConfigPrefix = &a.ProvisionURL, &prefix
		out.WebhookStatus, out.WebhookStatusReason = v.WebhookStatus, v.WebhookStatusReason
		out.WebhookRateLimit, out.WebhookMaxInFlight = v.WebhookRateLimit, v.WebhookMaxInFlight
		if v.Revision != nil {
			rev := *v.Revision
			rev.App = &a
			j := toRevisionJSON(&rev)
			out.PendingRevision = &j
		}
	}
	return out
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

type scopeJSON struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Builtin     bool     `json:"builtin"`
	Routes      []string `json:"routes"`
	UsedBy      string   `json:"usedBy"` // platform or host
}

type eventTypeJSON struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Resource    string    `json:"resource"`
	Scope       string    `json:"scope"`
	Description string    `json:"description"`
	Schema      any       `json:"schema"`
	Builtin     bool      `json:"builtin"`
	DateCreated time.Time `json:"dateCreated"`
}

func toEventTypeJSON(t webhooks.EventType) eventTypeJSON {
	out := eventTypeJSON{ID: id(t.ID), Name: t.Name, Resource: t.Resource, Scope: t.Scope, Description: t.Description,
		Builtin: t.Builtin, DateCreated: t.CreatedAt}
	if len(t.Schema) > 0 {
		_ = unmarshal(t.Schema, &out.Schema)
	}
	return out
}

type auditActorJSON struct {
	Type string `json:"type"`
	ID   string `json:"id"`
	Name string `json:"name"`
}

type auditTargetJSON struct {
	Type string `json:"type"`
	ID   string `json:"id"`
	Name string `json:"name"`
}

type auditJSON struct {
	ID          string          `json:"id"`
	Action      string          `json:"action"`
	Actor       auditActorJSON  `json:"actor"`
	Target      auditTargetJSON `json:"target"`
	IPAddress   string          `json:"ipAddress"`
	Data        map[string]any  `json:"data"`
	DateCreated time.Time       `json:"dateCreated"`
}

func toAuditJSON(e marketplace.AuditEntry) auditJSON {
	data := map[string]any(e.Data)
	if data == nil {
		data = map[string]any{}
	}
	return auditJSON{ID: id(e.ID), Action: e.Action, Actor: auditActorJSON{e.ActorType, e.ActorID, e.ActorLabel},
		Target: auditTargetJSON{e.TargetType, e.TargetID, e.TargetLabel}, IPAddress: e.IP, Data: data, DateCreated: e.CreatedAt}
}

type appRefJSON struct {
	ID   string `json:"id"`
	Slug string `json:"slug"`
	Name string `json:"name"`
}

type installationJSON struct {
	UUID          string       `json:"uuid"`
	App           appRefJSON   `json:"app"`
	Organization  orgRefJSON   `json:"organization"`
	Status        string       `json:"status"`
	StatusReason  string       `json:"statusReason"`
	SyncState     string       `json:"syncState"`
	SyncReason    string       `json:"syncReason"`
	SyncCheckedAt *time.Time   `json:"syncCheckedAt"`
	Plan          *planRefJSON `json:"plan"`
	Scopes        []string     `json:"scopes"`
	ExternalID    string       `json:"externalId"`
	ConfigURL     string       `json:"configUrl"`
	// What the partner's provisioning answer said, for the organization.
	ProvisionMessage string     `json:"provisionMessage,omitempty"`
	DateCreated      time.Time  `json:"dateCreated"`
	DateUpdated      time.Time  `json:"dateUpdated"`
	DateVerified     *time.Time `json:"dateVerified"`
	DateDeleted      *time.Time `json:"dateDeleted"`
	RedirectURL      string     `json:"redirectUrl,omitempty"`
	// The events it receives, and what an approved revision of its app
	// asks beyond them and its scopes, until an admin accepts it.
	Events             []string               `json:"events"`
	PendingPermissions *permissionRequestJSON `json:"pendingPermissions"`
	// Suspension is null unless the installation is suspended (api_suspensions.go).
	Suspension *suspensionJSON `json:"suspension"`
}

type planRefJSON struct {
	Slug     string `json:"slug"`
	Name     string `json:"name"`
	Price    string `json:"price"`
	Currency string `json:"currency"`
	Interval string `json:"interval"`
}

func toInstallationJSON(i *marketplace.Installation) installationJSON {
	out := installationJSON{UUID: i.UUID, Status: i.Status, StatusReason: i.StatusReason, SyncState: i.SyncState,
		SyncReason: i.SyncReason, SyncCheckedAt: i.SyncCheckedAt, Scopes: orEmpty(i.Scopes), ExternalID: i.ExternalID,
		ConfigURL: i.ConfigURL, ProvisionMessage: i.ProvisionMessage, DateCreated: i.CreatedAt, DateUpdated: i.UpdatedAt, DateVerified: i.VerifiedAt, DateDeleted: i.DeletedAt,
		Suspension: toSuspensionJSON(i.Suspension())}
	if i.App != nil {
		out.App = appRefJSON{ID: id(i.App.ID), Slug: i.App.Slug, Name: i.App.Name}
	}
	if i.Organization != nil {
		out.Organization = orgRefJSON{ID: id(i.Organization.ID), Slug: i.Organization.Slug, Name: i.Organization.Name}
	}
	if i.Plan != nil {
		out.Plan = &planRefJSON{Slug: i.Plan.Slug, Name: i.Plan.Name, Price: i.Plan.Price, Currency: i.Plan.Currency, Interval: i.Plan.Interval}
	}
	out.Events, out.PendingPermissions = orEmpty(i.Events), toPermissionRequestJSON(i.PendingPermissions)
	return out
}

// Billing (api_billing.go). Amounts are decimal strings with the
// currency's ISO 4217 digits, written by marketplace.FormatAmount, as
// plans' prices are; an invoice here has the shape invoice.created
// carries (marketplace.InvoiceData).

type usageRecordJSON struct {
	ID             string    `json:"id"`
	Installation   string    `json:"installation"` // its uuid
	PlanID         string    `json:"planId"`
	Quantity       int64     `json:"quantity"`
	Timestamp      time.Time `json:"timestamp"`
	IdempotencyKey string    `json:"idempotencyKey"`
	DateCreated    time.Time `json:"dateCreated"`
}

func toUsageRecordJSON(r marketplace.UsageRecord) usageRecordJSON {
	out := usageRecordJSON{ID: id(r.ID), PlanID: id(r.PlanID), Quantity: r.Quantity, Timestamp: r.RecordedAt,
		IdempotencyKey: r.IdempotencyKey, DateCreated: r.CreatedAt}
	if r.Installation != nil {
		out.Installation = r.Installation.UUID
	}
	return out
}

type invoiceLineJSON struct {
	ID           *string   `json:"id"` // null on the upcoming invoice
	Kind         string    `json:"kind"`
	Description  string    `json:"description"`
	Installation string    `json:"installation"` // its uuid
	AppID        string    `json:"appId"`
	PlanID       string    `json:"planId"`
	Currency     string    `json:"currency"`
	Quantity     int64     `json:"quantity"`
	Included     int64     `json:"included"`
	UnitPrice    string    `json:"unitPrice"`
	Interval     string    `json:"interval"`
	CappedAmount *string   `json:"cappedAmount"`
	Amount       string    `json:"amount"`
	PeriodStart  time.Time `json:"periodStart"`
	PeriodEnd    time.Time `json:"periodEnd"`
}

type invoiceJSON struct {
	ID                *string           `json:"id"` // null on the upcoming invoice
	Organization      *orgRefJSON       `json:"organization"`
	Period            string            `json:"period"` // 2026-11
	PeriodStart       time.Time         `json:"periodStart"`
	PeriodEnd         time.Time         `json:"periodEnd"`
	Currency          string            `json:"currency"`
	Total             string            `json:"total"`
	Status            string            `json:"status"`
	Lines             []invoiceLineJSON `json:"lines"`
	DateCreated       *time.Time        `json:"dateCreated"` // null on the upcoming invoice
	DatePaid          *time.Time        `json:"datePaid"`
	DateVoided        *time.Time        `json:"dateVoided"`
	DateUncollectible *time.Time        `json:"dateUncollectible"`
}

// optionalID is an id, or null for a row not written (the upcoming
// invoice's).
func optionalID(n int64) *string {
	if n == 0 {
		return nil
	}
	s := id(n)
	return &s
}

func toInvoiceLineJSON(l marketplace.InvoiceLine) invoiceLineJSON {
	out := invoiceLineJSON{ID: optionalID(l.ID), Kind: l.Kind, Description: l.Description, Installation: l.InstallationUUID,
		AppID: id(l.AppID), PlanID: id(l.PlanID), Currency: l.Currency, Quantity: l.Quantity, Included: l.Included,
		UnitPrice: marketplace.FormatAmount(l.UnitPrice, l.Currency), Interval: l.Interval,
		Amount: marketplace.FormatAmount(l.Amount, l.Currency), PeriodStart: l.StartsAt, PeriodEnd: l.EndsAt}
	if l.CappedAmount != nil {
		capped := marketplace.FormatAmount(*l.CappedAmount, l.Currency)
		out.CappedAmount = &capped
	}
	return out
}

func toInvoiceJSON(inv marketplace.Invoice) invoiceJSON {
	out := invoiceJSON{ID: optionalID(inv.ID), Period: marketplace.FormatPeriod(inv.Period), PeriodStart: inv.Period,
		PeriodEnd: inv.PeriodEnd, Currency: inv.Currency, Total: marketplace.FormatAmount(inv.Total, inv.Currency),
		Status: inv.Status, Lines: make([]invoiceLineJSON, len(inv.Lines)),
		DatePaid: inv.PaidAt, DateVoided: inv.VoidedAt, DateUncollectible: inv.UncollectibleAt}
	if !inv.CreatedAt.IsZero() {
		out.DateCreated = &inv.CreatedAt
	}
	if o := inv.Organization; o != nil {
		out.Organization = &orgRefJSON{ID: id(o.ID), Slug: o.Slug, Name: o.Name}
	}
	for i, l := range inv.Lines {
		out.Lines[i] = toInvoiceLineJSON(l)
	}
	return out
}

type upcomingInvoiceJSON struct {
	Period       string        `json:"period"`
	PeriodStart  time.Time     `json:"periodStart"`
	PeriodEnd    time.Time     `json:"periodEnd"`
	DateComputed time.Time     `json:"dateComputed"`
	Invoices     []invoiceJSON `json:"invoices"` // one per currency
}

func toUpcomingInvoiceJSON(u *marketplace.Upcoming) upcomingInvoiceJSON {
	out := upcomingInvoiceJSON{Period: marketplace.FormatPeriod(u.Period), PeriodStart: u.Period, PeriodEnd: u.PeriodEnd,
		DateComputed: u.ComputedAt, Invoices: make([]invoiceJSON, len(u.Invoices))}
	for i, inv := range u.Invoices {
		out.Invoices[i] = toInvoiceJSON(inv)
	}
	return out
}
