package marketplace

import (
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Roles a member holds in an organization, weakest first.
const (
	RoleMember = "member"
	RoleAdmin  = "admin"
	RoleOwner  = "owner"
)

var roleRank = map[string]int{RoleMember: 1, RoleAdmin: 2, RoleOwner: 3}

// App kinds and statuses.
const (
	KindPublic   = "public"
	KindInternal = "internal"

	StatusDraft     = "draft"
	StatusSubmitted = "submitted"
	StatusPublished = "published"
	StatusRejected  = "rejected"
	// StatusSuspended: the operator's kill switch (00015_suspension.sql).
	StatusSuspended = "suspended"
)

// User is a person who signs in.
type User struct {
	ID           int64
	Email        string
	Name         string
	PasswordHash string
	IsOperator   bool
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// Session is a signed-in browser or JWT holder.
type Session struct {
	ID        int64
	UserID    int64
	TokenHash []byte
	IP        string
	UserAgent string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// APIToken is a personal token; the token itself is shown once.
type APIToken struct {
	ID          int64
	UserID      int64
	Name        string
	TokenHash   []byte
	TokenSuffix string
	CreatedAt   time.Time
	LastUsedAt  *time.Time
	ExpiresAt   *time.Time
}

// Organization groups members, owns apps and installs them.
type Organization struct {
	ID        int64
	Slug      string
	Name      string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Membership is a user's role in an organization.
type Membership struct {
	ID             int64
	OrganizationID int64
	UserID         int64
	Role           string
	CreatedAt      time.Time
	User           *User `gorm:"foreignKey:UserID"`
}

// Member is a membership with its user, as the API shows it.
type Member = Membership

// App is a partner's integration.
type App struct {
	ID                      int64
	OrganizationID          int64
	Slug                    string
	Name                    string
	Kind                    string
	Status                  string
	StatusReason            string
	Author                  string
	Overview                string
	Categories              Strings `gorm:"type:jsonb"`
	Scopes                  Strings `gorm:"type:jsonb"`
	Events                  Strings `gorm:"type:jsonb"`
	WebhookURL              string
	RedirectURL             string
	VerifyInstall           bool
	SyncURL                 string
	SSOURL                  string `gorm:"column:sso_url"` // where "Open {App}" signs members in
	ProvisionURL            string // called to provision, change plan and deprovision (provision.go)
	ConfigPrefix            string // starts every config var's name; "" derives it from the slug
	LogoURL                 string
	ClientID                string
	ClientSecretHash        []byte
	WebhookSecret           []byte
	PreviousWebhookSecret   []byte
	PreviousSecretExpiresAt *time.Time
	InstallsCount           int
	ClientSecretSealed      []byte
	PublicKey               string
	CreatedBy               *int64
	CreatedAt               time.Time
	UpdatedAt               time.Time
	SubmittedAt             *time.Time
	PublishedAt             *time.Time
	// SuspendedFrom is the status a suspended app had, restored when the
	// operator lifts the suspension.
	SuspendedFrom string

	Organization *Organization `gorm:"foreignKey:OrganizationID"`
	Plans        []Plan        `gorm:"foreignKey:AppID"`
}

// Plan is one way to pay for an app.
type Plan struct {
	ID          int64
	AppID       int64
	Slug        string
	Name        string
	Description string
	Price       string // decimal, with the currency's digits: "9.00", "900" (JPY)
	Currency    string
	Interval    string
	CreatedAt   time.Time
	UpdatedAt   time.Time
	// Billing (00018_billing.sql, billing_plans.go): how the plan bills.
	// The amounts are decimals with the currency's digits, as the API
	// shows them; the ledger (PlanPrice) keeps them in minor units.
	PricingModel  string  `gorm:"default:flat"` // PricingFlat, PricingPerUnit or PricingFree
	UnitPrice     *string // per_unit: the price of one unit
	UnitName      string  // per_unit: what a unit is ("API call")
	IncludedUnits int64   // per_unit: units free per period
	CappedAmount  *string // per_unit: the most a period costs; nil: no cap
	TrialDays     int     // free days from installing
}

// IsFree reports whether the plan costs nothing.
func (p Plan) IsFree() bool {
	return p.PricingModel != PricingPerUnit && (p.Price == "" || strings.Trim(p.Price, "0.") == "")
}

// AuditEntry records who did what to which resource.
type AuditEntry struct {
	ID             int64
	OrganizationID *int64
	ActorType      string
	ActorID        string
	ActorLabel     string
	Action         string
	TargetType     string
	TargetID       string
	TargetLabel    string
	IP             string
	Data           JSON `gorm:"type:jsonb"`
	CreatedAt      time.Time
	// ActorIsOperator is read, not stored: the acting user is an operator
	// (a reviewer, not a member of the organization). AuditLog fills it.
	ActorIsOperator bool `gorm:"-"`
}

// TableName keeps gorm on the migration's table name.
func (AuditEntry) TableName() string { return "audit_logs" }

// Strings is a list stored as a JSON array.
type Strings []string

// Value implements driver.Valuer.
func (s Strings) Value() (driver.Value, error) {
	if s == nil {
		s = Strings{}
	}
	b, err := json.Marshal([]string(s))
	return string(b), err
}

// Scan implements sql.Scanner.
func (s *Strings) Scan(v any) error {
	b, err := jsonColumn(v, "Strings")
	if err != nil || b == nil {
		*s = Strings{}
		return err
	}
	return json.Unmarshal(b, (*[]string)(s))
}

// jsonColumn returns a jsonb column's bytes; nil for NULL.
func jsonColumn(v any, into string) ([]byte, error) {
	switch x := v.(type) {
	case []byte:
		return x, nil
	case string:
		return []byte(x), nil
	case nil:
		return nil, nil
	}
	return nil, fmt.Errorf("scanning %T into %s", v, into)
}

// JSON is an object stored as jsonb.
type JSON map[string]any

// Value implements driver.Valuer.
func (j JSON) Value() (driver.Value, error) {
	if j == nil {
		return "{}", nil
	}
	b, err := json.Marshal(map[string]any(j))
	return string(b), err
}

// Scan implements sql.Scanner.
func (j *JSON) Scan(v any) error {
	b, err := jsonColumn(v, "JSON")
	if err != nil || b == nil {
		*j = JSON{}
		return err
	}
	return json.Unmarshal(b, (*map[string]any)(j))
}

// Installation statuses and sync states.
const (
	InstallPending   = "pending"
	InstallInstalled = "installed"
	// InstallProvisioning: the partner answered its provisioning call with
	// 202 and finishes later (provision.go).
	InstallProvisioning = "provisioning"
	InstallDeleted      = "deleted"
	InstallFailed       = "failed"

	InSync    = "in_sync"
	OutOfSync = "out_of_sync"
)

// Installation is an app installed into an organization.
type Installation struct {
	ID             int64
	UUID           string
	AppID          int64
	OrganizationID int64
	PlanID         *int64
	Status         string
	StatusReason   string
	SyncState      string
	SyncReason     string
	SyncCheckedAt  *time.Time
	Scopes         Strings `gorm:"type:jsonb"`
	ExternalID     string
	ConfigURL      string
	// ProvisionMessage is what the partner's provisioning answer said,
	// shown to the organization.
	ProvisionMessage string
	InstalledBy      *int64
	CreatedAt        time.Time
	UpdatedAt        time.Time
	VerifiedAt       *time.Time
	DeletedAt        *time.Time
	// SuspendedAt is set while the installation is suspended; SuspendedBy
	// says who suspended it ("user:<id>", "app", "operator:<id>",
	// "app_suspension") and so who may lift it (00015_suspension.sql).
	SuspendedAt      *time.Time
	SuspendedBy      string
	SuspensionReason string
	// TrialEndsAt: the end of its free trial, set by the database when it
	// is installed (00018_billing.sql); TrialWillEndSentAt: the app was
	// told, three days before.
	TrialEndsAt        *time.Time
	TrialWillEndSentAt *time.Time

	// Events are the event types the installation receives: its app's
	// when installed; an approved revision's new ones only once the
	// organization accepts them (permission_requests.go).
	Events Strings `gorm:"type:jsonb"`

	App          *App          `gorm:"foreignKey:AppID"`
	Organization *Organization `gorm:"foreignKey:OrganizationID"`
	Plan         *Plan         `gorm:"foreignKey:PlanID"`
	// PendingPermissions is what an approved revision of the app asks of
	// the installation beyond what it has, until an admin accepts it; nil
	// when nothing waits (loaded by preloadPending).
	PendingPermissions *PermissionRequest `gorm:"foreignKey:InstallationID"`
}

// LiveStatuses are the statuses of an installation that has not ended.
var LiveStatuses = []string{InstallPending, InstallProvisioning, InstallInstalled}

// Live reports whether the installation is pending, provisioning or installed.
func (i *Installation) Live() bool {
	return i.Status == InstallPending || i.Status == InstallProvisioning || i.Status == InstallInstalled
}

// Grant is a single-use authorization code.
type Grant struct {
	ID                  int64
	InstallationID      int64
	CodeHash            []byte
	RedirectURI         string
	CodeChallenge       string
	CodeChallengeMethod string
	CreatedAt           time.Time
	ExpiresAt           time.Time
	UsedAt              *time.Time
	RevokedAt           *time.Time
	// Scopes the authorize request asked for; empty: the installation's.
	Scopes Strings `gorm:"type:jsonb"`
}

// Token is an installation's access or refresh token, stored hashed.
type Token struct {
	ID             int64
	InstallationID int64
	GrantID        *int64
	Family         string
	Kind           string
	TokenHash      []byte
	Scopes         Strings `gorm:"type:jsonb"`
	CreatedAt      time.Time
	ExpiresAt      *time.Time
	UsedAt         *time.Time
	RevokedAt      *time.Time
}
