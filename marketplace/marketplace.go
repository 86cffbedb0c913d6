// Package marketplace is Plugboard's account and catalogue domain: users,
// sessions and API tokens, organizations and members, partner apps, plans,
// the marketplace directory, the scope catalogue and the audit log (and, in
// later issues, installations, grants, tokens and reconciliation).
//
// It never imports echo or web; it imports webhooks (to read the event
// catalogue and publish lifecycle events), config values passed in Options,
// and the app/fault, app/page and app/secret helpers. Errors it returns are
// *fault.Error values; web maps them to problem documents.
package marketplace

import (
	"context"
	"crypto/ed25519"
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
	"github.com/plugboard/plugboard/webhooks"
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
	Logger       *slog.Logger
	Now          func() time.Time
}

// Service is the marketplace's behaviour over its store.
type Service struct {
	db         *gorm.DB
	opts       Options
	log        *slog.Logger
	box        *secret.Box
	jwtKey     []byte
	stateKey   ed25519.PrivateKey
	catalog    *webhooks.Catalog
	outbox     *webhooks.Outbox
	deliveries *webhooks.Store
	endpoints  *webhooks.Endpoints
	sender     *webhooks.Sender
	listeners  *webhooks.Listeners
}

// New returns a service on db.
func New(db *gorm.DB, catalog *webhooks.Catalog, opts Options) (*Service, error) {
	if opts.GrantTTL == 0 {
		opts.GrantTTL = 10 * time.Minute
	}
	if opts.AccessTTL == 0 {
		opts.AccessTTL = 8 * time.Hour
	}
	if opts.Now == nil {
		opts.Now = func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	box, err := secret.NewBox(opts.SecretKey, "webhook-secrets")
	if err != nil {
		return nil, fmt.Errorf("creating secret box: %w", err)
	}
	return &Service{db: db, opts: opts, log: opts.Logger, box: box, catalog: catalog,
		jwtKey:   secret.Derive(opts.SecretKey, "jwt"),
		stateKey: ed25519.NewKeyFromSeed(secret.Derive(opts.SecretKey, "install-state"))}, nil
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

func (s *Service) now() time.Time { return s.opts.Now() }

// requireUser fails unless a user makes the request: 401 for nobody, 403
// for apps and installations, which have routes of their own.
func requireUser(a Actor) error {
	if a.App != nil || a.Installation != nil || a.Service != nil {
		return fault.Forbidden("users_only", "This route is for users; app and installation credentials cannot use it.")
	}
	if a.User == nil {
		return fault.Unauthorized("not_authenticated", "Sign in, or send an API token as Authorization: Bearer.")
	}
	return nil
}

// tx runs fn in a transaction; webhooks published in it are enqueued after
// it commits.
func (s *Service) tx(ctx context.Context, fn func(tx *gorm.DB) error) error {
	return s.outbox.Transaction(ctx, s.db, fn)
}

// dbErr turns database errors into domain errors: no rows → not found (of
// what), unique violations → conflict on field; others are wrapped.
func dbErr(err error, what, field string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return fault.NotFound(what)
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) && pg.Code == "23505" {
		return &fault.Error{Kind: fault.KindConflict, Code: field + "_taken",
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
func (s *Service) audit(tx *gorm.DB, a Actor, orgID *int64, action, targetType, targetID, targetLabel string, data JSON) error {
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
