// Package marketplace is Plugboard's account, catalogue and installation
// domain, one service per concept, each owning its SQL:
//
//   - Accounts (accounts.go): users, sessions, API tokens, CSRF, and the
//     authentication of every bearer credential;
//   - Orgs (orgs.go, audit.go, org_pages.go): organizations, members, the
//     audit log;
//   - Apps (apps.go, app_*.go, plans.go, directory.go): partner apps, their
//     plans, review and secrets, and the marketplace directory;
//   - Installs (installations.go, installation_*.go): installing, grants,
//     verification, plan changes, uninstalling, installed-apps read models;
//   - Provisioning (provision.go, reconcile_provision.go): the calls to an
//     app's provisioning endpoint that installing, changing plan and
//     uninstalling make, Heroku-style;
//   - ConfigVars (config_vars.go): the sealed config vars a partner sets
//     on an installation;
//   - OAuth (oauth.go, authorize.go, tokens.go): the authorization server;
//   - AccessTokens (access_tokens.go): the installation tokens an app mints
//     for itself from its own credentials;
//   - Introspection (introspection.go): the host's RFC 7662 questions
//     about installation tokens;
//   - ServiceTokens (service_tokens.go): the host product's tokens;
//   - Events (events.go, scopes.go): the event and scope catalogues, and
//     the host's publishing;
//   - Deliveries (deliveries.go, delivery_*.go): the partner's view of
//     an app's webhooks;
//   - Reconciler (reconcile*.go, runs.go, tasks.go): the periodic jobs;
//   - Operators (operators.go): the operators' pages;
//   - HostEndpoints (host_endpoints.go, host_events.go): the host's own
//     webhook endpoints and the platform events they receive;
//   - Suspensions (suspensions.go): suspending installations, lifting
//     suspensions, and the operator's kill switch on an app.
//   - Billing (billing*.go, money.go): plans' pricing, price versions, the
//     calculator and closing periods into invoices, the billing jobs;
//     Usage (usage.go): metered usage the apps report; Invoices
//     (invoices.go): invoices for organizations' admins and the host;
//     Revenue (revenue.go, payouts.go): partners' revenue, payout
//     statements and the platform's commission.
//
// Each page of the UI reads its data with one call: a read model on the
// service of the concept it shows (Installs.InstalledAppsPage,
// Orgs.MembersPage, Apps.ListingPage, Deliveries.HealthPage, ...), which
// checks once who may see it.
//
// They share a small core (marketplace.go: the database, the clock, keys,
// the audit log) and one access helper (access.go) that answers "may this
// actor see or change app X". What they need of the webhooks domain is
// declared here as ports (ports.go); WebhookDirectory is the marketplace's
// side of webhooks.Directory. New builds them all in one pass.
//
// marketplace imports webhooks (its types and ports' implementations), and
// the app/ kernel (fault, page, secret); it never imports echo or web.
// web and the composition root (cmd/platform) import it. Errors it returns
// are *fault.Error values; web maps them to problem documents.
package marketplace

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/plugboard/plugboard/app/fault"
	"github.com/plugboard/plugboard/app/secret"
)

// Options configure the service.
type Options struct {
	SecretKey    string
	Issuer       string // the platform's base URL, the JWT issuer
	TokenTTL     time.Duration
	SessionTTL   time.Duration
	PasswordCost int
	GrantTTL     time.Duration // how long an install code may be exchanged
	AccessTTL    time.Duration // how long an installation access token lasts
	// RequireHTTPS refuses http:// sign-on URLs (ssoUrl): production sets
	// it; development and tests sign in to partners on loopback.
	RequireHTTPS bool
	Logger       *slog.Logger
	Now          func() time.Time
	// ProvisionTimeout bounds each call to an app's provisioning endpoint
	// (provision.go); 25 s when zero.
	ProvisionTimeout time.Duration

	// PasswordConcurrency bounds the password hashes computed at once (0:
	// half of GOMAXPROCS, at least 1); a sign-in waits for a slot at most
	// PasswordWait (0: 1 s), then is refused as busy.
	PasswordConcurrency int
	PasswordWait        time.Duration

	// CommissionBps is the platform's commission on paid invoices, in
	// basis points (PLUGBOARD_BILLING_COMMISSION: 20 % is 2000), where an
	// operator set none for the app; nil: 2000.
	CommissionBps *int
}

// core is what every service of the package shares: the database, the
// clock, the keys and the audit log. It holds no behaviour of a concept.
type core struct {
	db        *gorm.DB
	opts      Options
	log       *slog.Logger
	box       *secret.Box
	jwtKey    []byte
	stateKey  ed25519.PrivateKey
	outbox    Publisher
	decisions *accessCache // access decisions reused for a second (access_cache.go)
}

func newCore(db *gorm.DB, outbox Publisher, opts Options) (*core, error) {
	if opts.GrantTTL == 0 {
		opts.GrantTTL = 10 * time.Minute
	}
	if opts.AccessTTL == 0 {
		opts.AccessTTL = 8 * time.Hour
	}
	if opts.ProvisionTimeout == 0 {
		opts.ProvisionTimeout = 25 * time.Second
	}
	if opts.Now == nil {
		opts.Now = func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	box, err := secret.NewBox(opts.SecretKey, boxPurpose)
	if err != nil {
		return nil, fmt.Errorf("creating secret box: %w", err)
	}
	// gorm stamps created_at and updated_at itself (Save, Create): with the
	// services' clock, so an injected one holds for every row.
	db = db.Session(&gorm.Session{NowFunc: opts.Now})
	return &core{db: db, opts: opts, log: opts.Logger, box: box, outbox: outbox, decisions: newAccessCache(),
		jwtKey:   secret.Derive(opts.SecretKey, "jwt"),
		stateKey: ed25519.NewKeyFromSeed(secret.Derive(opts.SecretKey, "install-state"))}, nil
}

// Services are the marketplace's services, one per concept, built together
// by New.
type Services struct {
	Accounts      *Accounts
	Orgs          *Orgs
	Apps          *Apps
	Installs      *Installs
	OAuth         *OAuth
	ServiceTokens *ServiceTokens
	Events        *Events
	Deliveries    *Deliveries
	Reconciler    *Reconciler
	Operators     *Operators
	ConfigVars    *ConfigVars
	HostEndpoints *HostEndpoints
	Revisions     *Revisions
	Permissions   *Permissions
	AccessTokens  *AccessTokens
	Introspection *Introspection
	Suspensions   *Suspensions
	Billing       *Billing
	Usage         *Usage
	Invoices      *Invoices
	Revenue       *Revenue
}

// Deps are what the marketplace uses of the webhooks domain, each a narrow
// port declared in ports.go.
type Deps struct {
	Outbox    Publisher
	Catalog   EventCatalog
	Log       DeliveryLog
	Endpoints EndpointAdmin
	Sender    SignedGetter
	Stream    DeliveryStream
	Caller    PartnerCaller
}

// New builds every service on db, in one pass.
func New(db *gorm.DB, deps Deps, opts Options, ropts ReconcileOptions) (*Services, error) {
	c, err := newCore(db, deps.Outbox, opts)
	if err != nil {
		return nil, err
	}
	tokens := &tokens{core: c}
	events := &Events{core: c, catalog: deps.Catalog, group: newPublishGroup(publishRunners)}
	installs := &Installs{core: c, tokens: tokens, events: events}
	installs.provisioning = &Provisioning{core: c, installs: installs, caller: deps.Caller, endpoints: deps.Endpoints}
	orgs := &Orgs{core: c, installs: installs}
	suspensions := &Suspensions{core: c, installs: installs, endpoints: deps.Endpoints}
	apps := &Apps{core: c, events: events, installs: installs, orgs: orgs, tokens: tokens, endpoints: deps.Endpoints, suspensions: suspensions}
	permissions := &Permissions{core: c, installs: installs, events: events}
	apps.revisions = &Revisions{core: c, apps: apps, events: events, permissions: permissions}
	oauth := &OAuth{core: c, events: events, installs: installs, tokens: tokens}
	hosts := &ServiceTokens{core: c}
	reconciler := newReconciler(c, installs, deps.Endpoints, deps.Sender, ropts)
	defaultBps := defaultCommissionBps
	if opts.CommissionBps != nil {
		if *opts.CommissionBps < 0 || *opts.CommissionBps > 10000 {
			return nil, fmt.Errorf("commission %d bps: must be from 0 to 10000", *opts.CommissionBps)
		}
		defaultBps = *opts.CommissionBps
	}
	passwords, err := newPasswords(opts.PasswordCost, opts.PasswordConcurrency, opts.PasswordWait)
	if err != nil {
		return nil, err
	}
	return &Services{
		Accounts:      &Accounts{core: c, tokens: tokens, hosts: hosts, oauth: oauth, passwords: passwords},
		Orgs:          orgs,
		Apps:          apps,
		Installs:      installs,
		OAuth:         oauth,
		ServiceTokens: hosts,
		Events:        events,
		Deliveries: &Deliveries{core: c, installs: installs, reconciler: reconciler, log: deps.Log,
			endpoints: deps.Endpoints, stream: deps.Stream},
		Reconciler:    reconciler,
		Operators:     &Operators{core: c, apps: apps, events: events, reconciler: reconciler},
		ConfigVars:    &ConfigVars{core: c, installs: installs},
		HostEndpoints: &HostEndpoints{core: c, endpoints: deps.Endpoints, log: deps.Log},
		Revisions:     apps.revisions,
		Permissions:   permissions,
		AccessTokens:  &AccessTokens{core: c, installs: installs, tokens: tokens},
		Introspection: &Introspection{core: c},
		Suspensions:   suspensions,
		Billing:       &Billing{core: c, closers: billingClosers},
		Usage:         &Usage{core: c, installs: installs},
		Invoices:      &Invoices{core: c},
		Revenue:       &Revenue{core: c, defaultBps: defaultBps},
	}, nil
}

// Actor is whoever makes a request: a user, an app authenticated as itself,
// or an installation's token.
type Actor struct {
	User *User
	IP   string
	// SessionID is set when the user signed in with a session or its JWT.
	SessionID int64
	// App is set when an app authenticates as itself (client credentials or
	// a JWT it signed).
	App *App
	// Installation is set for an installation's access token, with the
	// token's scopes.
	Installation *Installation
	Scopes       []string
	// Service is set for a host service token.
	Service *ServiceToken
}

// Anonymous is an actor nobody signed in as.
var Anonymous = Actor{}

// SignedIn reports whether a user makes the request.
func (a Actor) SignedIn() bool { return a.User != nil }

// IsOperator reports whether the actor reviews apps and manages the catalogue.
func (a Actor) IsOperator() bool { return a.User != nil && a.User.IsOperator }

func (s *core) now() time.Time { return s.opts.Now() }

// tx runs fn in a transaction that publishes nothing.
func (s *core) tx(ctx context.Context, fn func(tx *gorm.DB) error) error {
	return s.db.WithContext(ctx).Transaction(fn)
}

// publishTx is tx for writes that publish webhooks: the outbox enqueues
// what was published once the transaction commits.
func (s *core) publishTx(ctx context.Context, fn func(tx *gorm.DB) error) error {
	return s.outbox.Transaction(ctx, s.db, fn)
}

// takenCodes names the conflict of a unique violation on each field
// dbErr is given.
var takenCodes = map[string]fault.Code{
	"slug":  fault.SlugTaken,
	"email": fault.EmailTaken,
	"app":   fault.AppTaken,
}

// dbErr turns database errors into domain errors: no rows → not found (of
// what), unique violations → conflict on field (takenCodes); others are
// wrapped.
func dbErr(err error, what, field string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return fault.NotFound(what)
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) && pg.Code == "23505" {
		code, ok := takenCodes[field]
		if !ok {
			return &fault.Error{Kind: fault.KindConflict, Code: fault.CodeConflict,
				Message: fmt.Sprintf("That %s exists already.", what), Err: err}
		}
		return &fault.Error{Kind: fault.KindConflict, Code: code,
			Message: fmt.Sprintf("That %s is already taken.", field), Fields: map[string]string{field: "is already taken"}}
	}
	return fmt.Errorf("%s: %w", what, err)
}

var (
	slugRe    = regexp.MustCompile(`^[a-z][a-z0-9-]{1,48}[a-z0-9]$`)
	nonSlugRe = regexp.MustCompile(`[^a-z0-9]+`)
)

// Slugify derives a slug from a name: "My App!" → "my-app".
func Slugify(name string) string {
	s := strings.Trim(nonSlugRe.ReplaceAllString(strings.ToLower(name), "-"), "-")
	if len(s) > 50 {
		s = strings.TrimRight(s[:50], "-")
	}
	if s != "" && (s[0] >= '0' && s[0] <= '9') {
		s = "x-" + s
	}
	if s == "" || len(s) < 3 {
		// A name with too few Latin letters or digits ("°", "日本", "AB")
		// still gets a valid slug: what it has, and a short hash of it.
		sum := sha256.Sum256([]byte(name))
		s = strings.TrimLeft(s+"-"+hex.EncodeToString(sum[:4]), "-")
		if s[0] >= '0' && s[0] <= '9' {
			s = "x-" + s
		}
	}
	return s
}

// checkSlug validates an explicit or derived slug.
func checkSlug(f fault.Fields, field, slug string) {
	f.Check(!slugRe.MatchString(slug), field,
		"must be 3 to 50 lower-case letters, digits or hyphens, starting with a letter")
}

// byRef adds a WHERE that matches a slug or a numeric id.
func byRef(q *gorm.DB, table, ref string) *gorm.DB {
	if id, err := strconv.ParseInt(ref, 10, 64); err == nil {
		return q.Where(table+".id = ?", id)
	}
	return q.Where(table+".slug = ?", ref)
}

// audit writes one audit entry inside tx.
func (s *core) audit(tx *gorm.DB, a Actor, orgID *int64, action, targetType, targetID, targetLabel string, data JSON) error {
	s.decisions.forget() // an audited change may change who may see what
	e := AuditEntry{OrganizationID: orgID, ActorType: "system", Action: action, TargetType: targetType,
		TargetID: targetID, TargetLabel: targetLabel, IP: a.IP, Data: data, CreatedAt: s.now()}
	switch {
	case a.User != nil:
		e.ActorType, e.ActorID, e.ActorLabel = "user", strconv.FormatInt(a.User.ID, 10), a.User.Email
	case a.Installation != nil:
		e.ActorType, e.ActorID, e.ActorLabel = "installation", a.Installation.UUID, ""
		if a.Installation.App != nil {
			e.ActorLabel = a.Installation.App.Slug
		}
	case a.App != nil:
		e.ActorType, e.ActorID, e.ActorLabel = "app", strconv.FormatInt(a.App.ID, 10), a.App.Slug
	case a.Service != nil:
		e.ActorType, e.ActorID, e.ActorLabel = "system", "service:"+strconv.FormatInt(a.Service.ID, 10), a.Service.Name
	}
	if err := tx.Create(&e).Error; err != nil {
		return fmt.Errorf("recording audit entry %s: %w", action, err)
	}
	return nil
}

func idStr(id int64) string { return strconv.FormatInt(id, 10) }

func ptr[T any](v T) *T { return &v }

var lockForUpdate = clause.Locking{Strength: "UPDATE"}

var skipLocked = clause.Locking{Strength: "UPDATE", Options: "SKIP LOCKED"}

func actorLabel(a Actor) string {
	switch {
	case a.User != nil:
		return a.User.Email
	case a.App != nil:
		return "app " + a.App.Slug
	case a.Service != nil:
		return "service token " + a.Service.Name
	case a.Installation != nil:
		return "installation " + a.Installation.UUID
	}
	return "system"
}
