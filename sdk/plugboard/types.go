package plugboard

import (
	"encoding/json"
	"fmt"
	"time"
)

// InstallationStatus is where an installation is in its life.
type InstallationStatus string

// Installation statuses.
const (
	StatusPending   InstallationStatus = "pending"   // waiting for an app that verifies installs to verify it
	StatusInstalled InstallationStatus = "installed" // live
	// StatusProvisioning: the app's provisioning endpoint answered 202 and
	// finishes later, with CompleteProvisioning.
	StatusProvisioning InstallationStatus = "provisioning"
	StatusDeleted      InstallationStatus = "deleted" // uninstalled
	StatusFailed       InstallationStatus = "failed"  // never verified in time
)

// SyncState says whether the app's view of an installation matches Plugboard's.
type SyncState string

// Sync states.
const (
	InSync    SyncState = "in_sync"
	OutOfSync SyncState = "out_of_sync"
)

// Sync reasons: why an installation is out of sync (Installation.SyncReason),
// and what reconciliation found (ReconciliationFinding.Reason).
const (
	SyncReasonVerificationTimeout = "verification_timeout"
	SyncReasonNeverExchanged      = "token_never_exchanged" // ask for a fresh code with Client.RequestGrant
	SyncReasonLifecycleFailed     = "lifecycle_delivery_failed"
	SyncReasonMissingAtPartner    = "missing_at_partner"
	SyncReasonUnknownToPlugboard  = "unknown_to_plugboard"
	SyncReasonDeletedInPlugboard  = "deleted_in_plugboard"
)

// DeliveryStatus is where a webhook delivery is.
type DeliveryStatus string

// Delivery statuses.
const (
	DeliveryPending   DeliveryStatus = "pending"   // attempts remain
	DeliverySucceeded DeliveryStatus = "succeeded" // the endpoint answered 2xx
	DeliveryFailed    DeliveryStatus = "failed"    // every attempt failed
	DeliveryPaused    DeliveryStatus = "paused"    // the endpoint is disabled
)

// AppRef names an app. The API's installations carry ID; lifecycle events
// carry ClientID instead.
type AppRef struct {
	ID       string `json:"id,omitempty"`
	Slug     string `json:"slug"`
	Name     string `json:"name"`
	ClientID string `json:"clientId,omitempty"`
}

// OrganizationRef names an organization.
type OrganizationRef struct {
	ID   string `json:"id"`
	Slug string `json:"slug"`
	Name string `json:"name"`
}

// PlanRef is the plan an organization is on.
type PlanRef struct {
	Slug     string `json:"slug"`
	Name     string `json:"name"`
	Price    string `json:"price"`    // a decimal string with two places: "9.00"
	Currency string `json:"currency"` // "USD"
	Interval string `json:"interval"` // "month" or "year"
}

// Installation is an app installed into an organization, as the API returns it.
type Installation struct {
	UUID          string             `json:"uuid"`
	App           AppRef             `json:"app"`
	Organization  OrganizationRef    `json:"organization"`
	Status        InstallationStatus `json:"status"`
	StatusReason  string             `json:"statusReason"` // why it ended; "" while live
	SyncState     SyncState          `json:"syncState"`
	SyncReason    string             `json:"syncReason"` // one of the SyncReason constants; "" when in sync
	SyncCheckedAt *time.Time         `json:"syncCheckedAt"`
	Plan          *PlanRef           `json:"plan"` // nil for an app without plans
	Scopes        []string           `json:"scopes"`
	ExternalID    string             `json:"externalId"` // the app's account id for the organization
	ConfigURL     string             `json:"configUrl"`  // where the organization configures the app
	// ProvisionMessage is what the app's provisioning answer said, shown to
	// the organization; "" when none.
	ProvisionMessage string     `json:"provisionMessage,omitempty"`
	DateCreated      time.Time  `json:"dateCreated"`
	DateUpdated      time.Time  `json:"dateUpdated"`
	DateVerified     *time.Time `json:"dateVerified"`
	DateDeleted      *time.Time `json:"dateDeleted"`
	// RedirectURL is only in the answer that installs: where to send the
	// browser to finish installing at the partner.
	RedirectURL string `json:"redirectUrl,omitempty"`
	// Events are the event types the installation receives.
	Events []string `json:"events"`
	// PendingPermissions is what an approved revision of the app asks
	// beyond Scopes and Events, until an admin accepts it; nil when none.
	PendingPermissions *PermissionRequest `json:"pendingPermissions"`
	// Suspension is nil unless the installation is suspended: then its
	// tokens are refused (401 installation_suspended) and its webhooks
	// wait until the suspension is lifted.
	Suspension *Suspension `json:"suspension"`
}

// InstallationUpdate is a partial update of an installation: only the
// non-nil fields are sent. Status (only "installed"), ExternalID and
// ConfigURL are the app's to set; Plan is an organization admin's.
type InstallationUpdate struct {
	Status     *InstallationStatus `json:"status,omitempty"`
	Plan       *string             `json:"plan,omitempty"`
	ExternalID *string             `json:"externalId,omitempty"`
	ConfigURL  *string             `json:"configUrl,omitempty"`
}

// Delivery is one event sent to an app's webhook URL, and how it went.
type Delivery struct {
	// ID is the webhook-id header and the envelope's id.
	ID        string         `json:"id"`
	EventType string         `json:"eventType"`
	Status    DeliveryStatus `json:"status"`
	// Installation is the installation's uuid; "" for a test event.
	Installation string `json:"installation"`
	Attempts     int    `json:"attempts"`
	MaxAttempts  int    `json:"maxAttempts"`
	// LastStatusCode is the last attempt's HTTP status; 0 before any, or
	// when no response came.
	LastStatusCode int    `json:"lastStatusCode"`
	LastErrorClass string `json:"lastErrorClass"` // "", timeout, connection, tls, dns, http_status, blocked
	// OrderingKey is the event's ordering key, "" for none: a pending
	// delivery with one waits while an earlier delivery of the key to the
	// app is pending.
	OrderingKey     string     `json:"orderingKey"`
	DateCreated     time.Time  `json:"dateCreated"`
	DateLastAttempt *time.Time `json:"dateLastAttempt"`
	DateNextAttempt *time.Time `json:"dateNextAttempt"`
	DateCompleted   *time.Time `json:"dateCompleted"`
	// Payload is the envelope the delivery sends. Only GetDelivery fills it.
	// It is re-encoded by the API, so it is not byte-for-byte the signed
	// body: do not verify a signature against it.
	Payload *Event `json:"payload,omitempty"`
	// AttemptsDetail is every attempt still kept, oldest first. Only
	// GetDelivery fills it.
	AttemptsDetail []Attempt `json:"attemptsDetail,omitempty"`
	// Raw is the API's JSON for the delivery, as it answered, with any
	// fields this version of the SDK does not know. Only GetDelivery
	// fills it.
	Raw json.RawMessage `json:"-"`
}

// Attempt is one HTTP try of a delivery.
type Attempt struct {
	ID              string            `json:"id"`
	Number          int               `json:"number"`
	URL             string            `json:"url"`
	RequestHeaders  map[string]string `json:"requestHeaders"`
	ResponseStatus  int               `json:"responseStatus"` // 0 when no response came
	ResponseHeaders map[string]string `json:"responseHeaders"`
	ResponseBody    string            `json:"responseBody"` // the first 4 KiB
	DurationMs      float64           `json:"durationMs"`
	ErrorClass      string            `json:"errorClass"`
	ErrorMessage    string            `json:"errorMessage"`
	DateCreated     time.Time         `json:"dateCreated"`
}

// Duration is how long the attempt took.
func (a Attempt) Duration() time.Duration {
	return time.Duration(a.DurationMs * float64(time.Millisecond))
}

// Redelivery is the answer to a redelivery request.
type Redelivery struct {
	// Count is how many deliveries are sent again (listed ones still
	// pending are not counted).
	Count int `json:"count"`
	// Background is true when a background job sends them (RedeliverFailed).
	Background bool `json:"background"`
}

// Grant is a fresh single-use install code; it also arrives in a resent
// installation.created.
type Grant struct {
	Code      string    `json:"code"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// WebhookStats are an app's webhook attempts in [Since, Until).
type WebhookStats struct {
	Since       time.Time     `json:"since"`
	Until       time.Time     `json:"until"`
	Resolution  time.Duration `json:"-"`
	Attempts    int           `json:"attempts"`
	SuccessRate float64       `json:"successRate"`
	Buckets     []StatsBucket `json:"buckets"` // oldest first, including empty ones
}

// UnmarshalJSON reads the resolution, which the API writes as a Go
// duration string ("1h0m0s").
func (s *WebhookStats) UnmarshalJSON(b []byte) error {
	type plain WebhookStats
	var aux struct {
		*plain
		Resolution string `json:"resolution"`
	}
	aux.plain = (*plain)(s)
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	if aux.Resolution != "" {
		d, err := time.ParseDuration(aux.Resolution)
		if err != nil {
			return fmt.Errorf("plugboard: stats resolution %q: %w", aux.Resolution, err)
		}
		s.Resolution = d
	}
	return nil
}

// StatsBucket is one resolution-long slice of WebhookStats.
type StatsBucket struct {
	Start        time.Time      `json:"start"`
	Attempts     int            `json:"attempts"`
	Succeeded    int            `json:"succeeded"`
	Failed       int            `json:"failed"`
	SuccessRate  float64        `json:"successRate"`
	LatencyP50Ms float64        `json:"latencyP50Ms"`
	LatencyP95Ms float64        `json:"latencyP95Ms"`
	LatencyP99Ms float64        `json:"latencyP99Ms"`
	ErrorClasses map[string]int `json:"errorClasses"` // failed attempts by error class
}

// ReconciliationRun is one run of a reconciliation job, with the findings
// that concern the app.
type ReconciliationRun struct {
	ID           string                  `json:"id"`
	Job          string                  `json:"job"` // verification_deadline, unexchanged_grant, lifecycle_delivery, partner_sync
	App          string                  `json:"app"` // the app's id for partner_sync; "" for jobs over every app
	DateStarted  time.Time               `json:"dateStarted"`
	DateFinished *time.Time              `json:"dateFinished"`
	Examined     int                     `json:"examined"`
	Found        int                     `json:"found"`
	Repaired     int                     `json:"repaired"`
	Errors       []string                `json:"errors"`
	Findings     []ReconciliationFinding `json:"findings"`
}

// ReconciliationFinding is one installation a run found out of sync.
type ReconciliationFinding struct {
	Installation string    `json:"installation"` // its uuid
	App          string    `json:"app"`          // the app's id
	Reason       string    `json:"reason"`       // one of the SyncReason constants
	Action       string    `json:"action"`       // what the run did, for a person
	Repaired     bool      `json:"repaired"`
	DateCreated  time.Time `json:"dateCreated"`
}

// The API's other resources, as its JSON carries them. The Client does not
// fetch these (they are a user's or an operator's business, not an app's);
// they are here so that whoever calls those routes decodes into the same
// shapes the API documents.

// User is a person's account.
type User struct {
	ID          string    `json:"id"`
	Email       string    `json:"email"`
	Name        string    `json:"name"`
	IsOperator  bool      `json:"isOperator"` // operators review apps and keep the event catalogue
	DateCreated time.Time `json:"dateCreated"`
}

// Session is the answer to signing in (POST /api/0/auth/).
type Session struct {
	Token     string    `json:"token"` // a JWT to send as a bearer token; it stops working at sign-out
	ExpiresAt time.Time `json:"expiresAt"`
	User      User      `json:"user"`
}

// APIToken is a user's personal API token (pbu_…).
type APIToken struct {
	ID                  string     `json:"id"`
	Name                string     `json:"name"`
	TokenLastCharacters string     `json:"tokenLastCharacters"` // to tell tokens apart
	DateCreated         time.Time  `json:"dateCreated"`
	DateLastUsed        *time.Time `json:"dateLastUsed"`    // nil if never used
	ExpiresAt           *time.Time `json:"expiresAt"`       // nil if it does not expire
	Token               string     `json:"token,omitempty"` // only in the answer that creates it
}

// ServiceToken is a host service's token, kept by operators.
type ServiceToken struct {
	ID                  string     `json:"id"`
	Name                string     `json:"name"`
	TokenLastCharacters string     `json:"tokenLastCharacters"`
	DateCreated         time.Time  `json:"dateCreated"`
	DateLastUsed        *time.Time `json:"dateLastUsed"`
	Token               string     `json:"token,omitempty"` // only in the answer that creates it
}

// UserOrganization is an organization as a signed-in user reads it: with
// their role in it.
type UserOrganization struct {
	Organization
	Role string `json:"role,omitempty"` // owner, admin or member; "" for an installation token
}

// Plan is one of an app's plans.
type Plan struct {
	ID          string    `json:"id"`
	Slug        string    `json:"slug"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	Price       string    `json:"price"`    // a decimal string with the currency's digits: "9.00" (USD), "900" (JPY)
	Currency    string    `json:"currency"` // "USD"
	Interval    string    `json:"interval"` // "month" or "year"
	IsFree      bool      `json:"isFree"`
	DateCreated time.Time `json:"dateCreated"`
	// How the plan bills: "flat", "per_unit" or "free". per_unit plans
	// price each unit the app reports (UnitPrice, UnitName), with
	// IncludedUnits free per period and at most CappedAmount (nil: no cap).
	PricingModel  string  `json:"pricingModel"`
	UnitPrice     *string `json:"unitPrice"`
	UnitName      string  `json:"unitName"`
	IncludedUnits int64   `json:"includedUnits"`
	CappedAmount  *string `json:"cappedAmount"`
	TrialDays     int     `json:"trialDays"` // free days from installing
}

// App is an app as the caller may see it.
type App struct {
	ID            string          `json:"id"`
	Slug          string          `json:"slug"`
	Name          string          `json:"name"`
	Kind          string          `json:"kind"`   // public or internal
	Status        string          `json:"status"` // draft, submitted, published, rejected
	Author        string          `json:"author"`
	Overview      string          `json:"overview"`
	Categories    []string        `json:"categories"`
	Scopes        []string        `json:"scopes"`
	Events        []string        `json:"events"`
	LogoURL       string          `json:"logoUrl"`
	Installs      int             `json:"installs"`
	Organization  OrganizationRef `json:"organization"`
	DateCreated   time.Time       `json:"dateCreated"`
	DateUpdated   time.Time       `json:"dateUpdated"`
	DatePublished *time.Time      `json:"datePublished"` // nil until published
	// Plans, cheapest first: in GET /api/0/apps/{app_slug}/ and with
	// expand=plans; nil otherwise.
	Plans []Plan `json:"plans,omitempty"`

	// Shown only to the owner organization and operators; empty otherwise.
	StatusReason        string `json:"statusReason,omitempty"` // why it was rejected
	ClientID            string `json:"clientId,omitempty"`
	WebhookURL          string `json:"webhookUrl,omitempty"`
	RedirectURL         string `json:"redirectUrl,omitempty"`
	SyncURL             string `json:"syncUrl,omitempty"`
	SSOURL              string `json:"ssoUrl,omitempty"`       // where "Open {App}" posts a sign-on token
	ProvisionURL        string `json:"provisionUrl,omitempty"` // called to provision, change plan and deprovision
	ConfigPrefix        string `json:"configPrefix,omitempty"` // every config var's name starts with it: PAGER_BOT_
	VerifyInstall       bool   `json:"verifyInstall,omitempty"`
	PublicKey           string `json:"publicKey,omitempty"`     // PEM
	WebhookStatus       string `json:"webhookStatus,omitempty"` // enabled or disabled
	WebhookStatusReason string `json:"webhookStatusReason,omitempty"`
	WebhookRateLimit    int    `json:"webhookRateLimit,omitempty"`   // deliveries per second
	WebhookMaxInFlight  int    `json:"webhookMaxInFlight,omitempty"` // requests in flight at once

	// Only in the answer that creates the app.
	ClientSecret  string `json:"clientSecret,omitempty"`  // pbcs_…
	WebhookSecret string `json:"webhookSecret,omitempty"` // whsec_…
	// An internal integration's installation in its own organization and
	// that installation's access token (pbi_…).
	Installation *Installation `json:"installation,omitempty"`
	Token        string        `json:"token,omitempty"`

	// PendingRevision is a published app's draft or submitted revision,
	// for the owner organization and operators; nil when none.
	PendingRevision *Revision `json:"pendingRevision,omitempty"`
}

// Revision statuses.
const (
	RevisionDraft     = "draft"
	RevisionSubmitted = "submitted"
	RevisionApproved  = "approved"
	RevisionRejected  = "rejected"
)

// Revision is a change to what a published app may do (its scopes, events
// and URLs), which operators review before it applies
// (GET /api/0/apps/{app_slug}/revisions/).
type Revision struct {
	ID            string          `json:"id"` // its number within the app: "1", "2", …
	App           AppRef          `json:"app"`
	Status        string          `json:"status"`       // one of the Revision constants
	StatusReason  string          `json:"statusReason"` // why operators rejected it
	Changes       RevisionChanges `json:"changes"`
	Diff          []RevisionDiff  `json:"diff"`
	DateCreated   time.Time       `json:"dateCreated"`
	DateUpdated   time.Time       `json:"dateUpdated"`
	DateSubmitted *time.Time      `json:"dateSubmitted"`
	DateReviewed  *time.Time      `json:"dateReviewed"`
}

// RevisionChanges are the values a revision proposes; nil: unchanged.
type RevisionChanges struct {
	Scopes       *[]string `json:"scopes,omitempty"`
	Events       *[]string `json:"events,omitempty"`
	WebhookURL   *string   `json:"webhookUrl,omitempty"`
	RedirectURL  *string   `json:"redirectUrl,omitempty"`
	ProvisionURL *string   `json:"provisionUrl,omitempty"`
	SSOURL       *string   `json:"ssoUrl,omitempty"`
	SyncURL      *string   `json:"syncUrl,omitempty"`
}

// RevisionDiff is one line of a revision's diff: Added and Removed for
// scopes and events, From and To for a URL.
type RevisionDiff struct {
	Field   string    `json:"field"`
	Added   *[]string `json:"added,omitempty"`
	Removed *[]string `json:"removed,omitempty"`
	From    *string   `json:"from,omitempty"`
	To      *string   `json:"to,omitempty"`
}

// PermissionRequest is what an approved revision asks of an installation
// beyond what it has, until an admin of its organization accepts it.
type PermissionRequest struct {
	ID          string    `json:"id"`
	Scopes      []string  `json:"scopes"`
	Events      []string  `json:"events"`
	DateCreated time.Time `json:"dateCreated"`
	DateUpdated time.Time `json:"dateUpdated"`
}

// ClientSecretRotation is the answer to rotating an app's client secret.
type ClientSecretRotation struct {
	ClientSecret string `json:"clientSecret"`
	// Token is an internal integration's new access token; the old one
	// stops working. "" for a public app.
	Token string `json:"token,omitempty"`
}

// WebhookSecretRotation is the answer to rotating an app's webhook secret.
type WebhookSecretRotation struct {
	WebhookSecret string `json:"webhookSecret"`
	// PreviousSecretValidUntil is until when the previous secret keeps
	// signing beside the new one.
	PreviousSecretValidUntil time.Time `json:"previousSecretValidUntil"`
}

// Authorization is the answer to the camelCase token exchange
// (POST /api/0/installations/{uuid}/authorizations/).
type Authorization struct {
	Token          string    `json:"token"`        // pbi_…
	RefreshToken   string    `json:"refreshToken"` // pbr_…; each is used once
	ExpiresAt      time.Time `json:"expiresAt"`
	Scopes         []string  `json:"scopes"`
	InstallationID string    `json:"installationId"` // the installation's uuid
}

// Scope is a permission an app may ask for.
type Scope struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Builtin     bool   `json:"builtin"` // the Platform API's own, not one an event type declares
	// Routes are the Platform API routes an installation token needs the
	// scope for ("GET /api/0/organizations/{org}/members/"); empty when
	// UsedBy is "host": the host product checks it on its own API.
	Routes []string `json:"routes"`
	UsedBy string   `json:"usedBy"` // "platform" or "host"
}

// AuditLogEntry is one line of an organization's audit log.
type AuditLogEntry struct {
	ID     string `json:"id"`
	Action string `json:"action"` // resource.verb
	Actor  struct {
		Type string `json:"type"` // user, app, installation or system
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"actor"`
	Target struct {
		Type string `json:"type"`
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"target"`
	IPAddress   string         `json:"ipAddress"` // "" when unknown
	Data        map[string]any `json:"data"`      // details that depend on the action
	DateCreated time.Time      `json:"dateCreated"`
}

// ConfigVars are an installation's config vars, as
// GET /api/0/installations/{uuid}/config-vars/ returns them.
type ConfigVars struct {
	Vars        map[string]string `json:"vars"`        // NAME → value
	DateUpdated *time.Time        `json:"dateUpdated"` // the latest change; nil with none
}
