package marketplace_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	gormlogger "gorm.io/gorm/logger"

	"github.com/plugboard/plugboard/app/fault"
	"github.com/plugboard/plugboard/app/testenv"
	"github.com/plugboard/plugboard/marketplace"
	"github.com/plugboard/plugboard/webhooks"
)

// password is every test user's password.
const password = "correct horse battery"

// env is a fresh database and Redis space with every marketplace service
// built on them, as the composition root builds them.
type env struct {
	*marketplace.Services
	t     *testing.T
	ctx   context.Context
	db    *gorm.DB
	clock *testenv.Clock
	dir   *marketplace.WebhookDirectory
	opts  marketplace.Options
}

// option changes the options the services are built with.
type option func(*marketplace.Options, *marketplace.ReconcileOptions)

// withGrantTTL sets how long install codes last.
func withGrantTTL(d time.Duration) option {
	return func(o *marketplace.Options, _ *marketplace.ReconcileOptions) { o.GrantTTL = d }
}

// withVerifyTimeout sets how long an installation may stay pending.
func withVerifyTimeout(d time.Duration) option {
	return func(_ *marketplace.Options, r *marketplace.ReconcileOptions) { r.VerifyTimeout = d }
}

// newTestServices is the one place that builds the marketplace's
// dependencies (webhooks' outbox, catalogue and dispatcher) for tests: when
// their constructors change, only this function does.
func newTestServices(t *testing.T, opts ...option) *env {
	t.Helper()
	ctx := t.Context()
	clk := testenv.NewClock(time.Date(2030, 3, 4, 9, 0, 0, 0, time.UTC))
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	db, err := gorm.Open(postgres.Open(testenv.DB(t)), &gorm.Config{SkipDefaultTransaction: true, Logger: gormlogger.Discard})
	if err != nil {
		t.Fatalf("opening database: %v", err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		t.Fatal(err)
	}
	sqlDB.SetMaxOpenConns(8)
	t.Cleanup(func() { sqlDB.Close() })

	ropt, err := redis.ParseURL(testenv.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(ropt)
	t.Cleanup(func() { rdb.Close() })
	queue := asynq.NewClientFromRedisClient(rdb)

	mopts := marketplace.Options{
		SecretKey:    "test-secret-key-0123456789abcdef0123456789",
		Issuer:       "http://plugboard.test",
		TokenTTL:     time.Hour,
		SessionTTL:   14 * 24 * time.Hour,
		PasswordCost: 4,
		GrantTTL:     10 * time.Minute,
		AccessTTL:    8 * time.Hour,
		Logger:       log,
		Now:          clk.Now,
	}
	ropts := marketplace.ReconcileOptions{Interval: time.Minute, VerifyTimeout: time.Hour}
	for _, o := range opts {
		o(&mopts, &ropts)
	}

	dir, err := marketplace.NewWebhookDirectory(db, mopts)
	if err != nil {
		t.Fatal(err)
	}
	wopts := webhooks.Options{AllowPrivate: true, Version: "test", Now: clk.Now}
	drains := webhooks.NewDrains(rdb, queue, wopts, log)
	store, err := webhooks.NewStore(db, wopts)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := marketplace.New(db, marketplace.Deps{
		Outbox:    webhooks.NewOutbox(drains, dir, webhooks.NewListeners(rdb, webhooks.ListenLimits{}, nil), wopts),
		Catalog:   webhooks.NewCatalog(db, webhooks.Options{}),
		Log:       store,
		Endpoints: webhooks.NewEndpoints(db, queue, drains, dir, wopts),
		Sender:    webhooks.NewSender(wopts, nil),
		Stream:    webhooks.NewListeners(rdb, webhooks.ListenLimits{}, nil),
	}, mopts, ropts)
	if err != nil {
		t.Fatal(err)
	}
	return &env{Services: svc, t: t, ctx: ctx, db: db, clock: clk, dir: dir, opts: mopts}
}

// ---------------------------------------------------------------------------
// Error assertions

// codeOf is err's fault code: "" for nil, "<not a fault: …>" otherwise.
func codeOf(err error) string {
	if err == nil {
		return ""
	}
	if f, ok := fault.As(err); ok {
		switch {
		case f.Kind == fault.KindOAuth && f.Details[marketplace.DetailRedirectURI] != nil:
			return "authorize:" + string(f.Code)
		case f.Kind == fault.KindOAuth:
			return "oauth:" + string(f.Code)
		}
		return string(f.Code)
	}
	return "<not a fault: " + err.Error() + ">"
}

// wantCode fails t unless err carries code ("" means success).
func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := codeOf(err); got != code {
		t.Fatalf("error code = %q, want %q (err: %v)", got, code, err)
	}
}

// fieldsOf is the field errors of err (nil when it has none).
func fieldsOf(err error) map[string]string {
	if f, ok := fault.As(err); ok {
		return f.Fields
	}
	return nil
}

// wantFields fails t unless err names exactly the fields given (messages
// are not compared; the code is wantCode's business).
func wantFields(t *testing.T, err error, fields ...string) {
	t.Helper()
	f, ok := fault.As(err)
	if !ok {
		t.Fatalf("want errors on fields %v, got %v", fields, err)
	}
	got := map[string]bool{}
	for k := range f.Fields {
		got[k] = true
	}
	want := map[string]bool{}
	for _, k := range fields {
		want[k] = true
	}
	if len(got) != len(want) {
		t.Fatalf("fields = %v, want %v", f.Fields, fields)
	}
	for k := range want {
		if !got[k] {
			t.Fatalf("fields = %v, want %v", f.Fields, fields)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// ---------------------------------------------------------------------------
// Fixtures

func as(u *marketplace.User) marketplace.Actor { return marketplace.Actor{User: u} }

// mustSignUp creates a user named after its email.
func (e *env) mustSignUp(email string) *marketplace.User {
	e.t.Helper()
	u, err := e.Accounts.SignUp(e.ctx, marketplace.Anonymous, marketplace.NewUser{Email: email, Name: strings.Split(email, "@")[0], Password: password})
	if err != nil {
		e.t.Fatalf("signing up %s: %v", email, err)
	}
	return u
}

// mustUser is mustSignUp as an actor.
func (e *env) mustUser(email string) marketplace.Actor { return as(e.mustSignUp(email)) }

// mustOperator creates an operator, as the command line does.
func (e *env) mustOperator(email string) marketplace.Actor {
	e.t.Helper()
	u, err := e.Accounts.SignUp(e.ctx, marketplace.Anonymous, marketplace.NewUser{Email: email, Password: password, IsOperator: true})
	if err != nil {
		e.t.Fatalf("creating operator %s: %v", email, err)
	}
	return as(u)
}

// mustOrg creates an organization owned by a.
func (e *env) mustOrg(a marketplace.Actor, name string) *marketplace.OrgAccess {
	e.t.Helper()
	acc, err := e.Orgs.CreateOrganization(e.ctx, a, marketplace.NewOrganization{Name: name})
	if err != nil {
		e.t.Fatalf("creating organization %s: %v", name, err)
	}
	return acc
}

// mustMember adds a user with role to org and returns the membership.
func (e *env) mustMember(owner marketplace.Actor, org string, u marketplace.Actor, role string) *marketplace.Member {
	e.t.Helper()
	m, err := e.Orgs.AddMember(e.ctx, owner, org, u.User.Email, role)
	if err != nil {
		e.t.Fatalf("adding %s to %s as %s: %v", u.User.Email, org, role, err)
	}
	return m
}

// mustEventType adds a host event type to the catalogue, as an operator.
func (e *env) mustEventType(op marketplace.Actor, name, scope, schema string) *webhooks.EventType {
	e.t.Helper()
	n := webhooks.NewEventType{Name: name, Scope: scope, Description: "test event " + name}
	if schema != "" {
		n.Schema = json.RawMessage(schema)
	}
	et, err := e.Events.CreateEventType(e.ctx, op, n)
	if err != nil {
		e.t.Fatalf("creating event type %s: %v", name, err)
	}
	return et
}

// appFields are complete fields of a public app ready for review.
func appFields(name string) marketplace.AppFields {
	return marketplace.AppFields{
		Name:        ptr(name),
		Overview:    ptr("Does useful things with " + name + "."),
		Categories:  ptr([]string{"developer-tools"}),
		Scopes:      ptr([]string{"org:read"}),
		RedirectURL: ptr("https://partner.example/setup"),
		WebhookURL:  ptr("https://partner.example/hooks"),
	}
}

// mustApp creates an app owned by org.
func (e *env) mustApp(a marketplace.Actor, org string, in marketplace.AppFields) *marketplace.CreatedApp {
	e.t.Helper()
	app, err := e.Apps.CreateApp(e.ctx, a, org, in)
	if err != nil {
		e.t.Fatalf("creating app: %v", err)
	}
	return app
}

// mustPublish submits an app (by an admin of its organization) and publishes
// it (by an operator).
// An app without a plan gets a free one first: review needs a plan.
func (e *env) mustPublish(admin, op marketplace.Actor, app string) {
	e.t.Helper()
	if v, err := e.Apps.GetApp(e.ctx, admin, app); err != nil {
		e.t.Fatalf("finding %s: %v", app, err)
	} else if len(v.Plans) == 0 {
		e.mustPlan(admin, app, "Free", "0")
	}
	if _, err := e.Apps.SubmitApp(e.ctx, admin, app); err != nil {
		e.t.Fatalf("submitting %s: %v", app, err)
	}
	if _, err := e.Apps.UpdateApp(e.ctx, op, app, marketplace.AppUpdate{Status: ptr(marketplace.StatusPublished)}); err != nil {
		e.t.Fatalf("publishing %s: %v", app, err)
	}
}

// mustPlan adds a plan to an app.
func (e *env) mustPlan(a marketplace.Actor, app, name, price string) *marketplace.Plan {
	e.t.Helper()
	p, err := e.Apps.CreatePlan(e.ctx, a, app, marketplace.PlanFields{Name: ptr(name), Price: ptr(price)})
	if err != nil {
		e.t.Fatalf("creating plan %s of %s: %v", name, app, err)
	}
	return p
}

// mustInstall installs app into org.
func (e *env) mustInstall(a marketplace.Actor, org, app, plan string) *marketplace.NewInstallation {
	e.t.Helper()
	ni, err := e.Installs.Install(e.ctx, a, org, app, plan)
	if err != nil {
		e.t.Fatalf("installing %s into %s: %v", app, org, err)
	}
	return ni
}

// mustClient authenticates an app with its client credentials.
func (e *env) mustClient(app *marketplace.CreatedApp) *marketplace.App {
	e.t.Helper()
	a, err := e.OAuth.AuthenticateClient(e.ctx, app.ClientID, app.ClientSecret)
	if err != nil {
		e.t.Fatalf("authenticating client %s: %v", app.Slug, err)
	}
	return a
}

// mustExchange trades an install code for tokens.
func (e *env) mustExchange(client *marketplace.App, code string) *marketplace.TokenSet {
	e.t.Helper()
	set, err := e.OAuth.Token(e.ctx, client, marketplace.TokenRequest{GrantType: "authorization_code", Code: code})
	if err != nil {
		e.t.Fatalf("exchanging code: %v", err)
	}
	return set
}

// mustBearer authenticates a bearer token.
func (e *env) mustBearer(token string) marketplace.Actor {
	e.t.Helper()
	a, err := e.Accounts.AuthenticateBearer(e.ctx, token)
	if err != nil {
		e.t.Fatalf("authenticating bearer token: %v", err)
	}
	return a
}

// world is a partner organization with a published public app (plans Free
// and Pro, a webhook URL) and a customer organization whose owner may
// install it.
type world struct {
	*env
	op       marketplace.Actor // an operator
	dev      marketplace.Actor // owner of the partner organization
	admin    marketplace.Actor // owner of the customer organization
	app      *marketplace.CreatedApp
	partner  string
	customer string
}

func newWorld(t *testing.T, in marketplace.AppFields, opts ...option) *world {
	t.Helper()
	e := newTestServices(t, opts...)
	w := &world{env: e, partner: "partner", customer: "customer"}
	w.op = e.mustOperator("ops@plugboard.example")
	w.dev = e.mustUser("dev@partner.example")
	e.mustOrg(w.dev, "Partner")
	w.app = e.mustApp(w.dev, w.partner, in)
	e.mustPlan(w.dev, w.app.Slug, "Free", "0")
	e.mustPlan(w.dev, w.app.Slug, "Pro", "10")
	e.mustPublish(w.dev, w.op, w.app.Slug)
	w.admin = e.mustUser("admin@customer.example")
	e.mustOrg(w.admin, "Customer")
	return w
}

// ---------------------------------------------------------------------------
// Reading the database

// delivery is the part of a deliveries row tests compare.
type delivery struct {
	EventType        string
	AppID            int64
	InstallationUUID string
	OrganizationID   int64
	Status           string
}

// deliveries lists the deliveries of events of type typ, oldest first.
func (e *env) deliveries(typ string) []delivery {
	e.t.Helper()
	var rows []delivery
	if err := e.db.Raw(`SELECT event_type, app_id, COALESCE(installation_uuid::text, '') AS installation_uuid, organization_id, status
		FROM deliveries WHERE event_type = ? ORDER BY id`, typ).Scan(&rows).Error; err != nil {
		e.t.Fatal(err)
	}
	return rows
}

// eventData returns the data of the latest event of type typ for org.
func (e *env) eventData(orgID int64, typ string) map[string]any {
	e.t.Helper()
	var ev webhooks.Event
	if err := e.db.Where("organization_id = ? AND type = ?", orgID, typ).Order("id DESC").Take(&ev).Error; err != nil {
		e.t.Fatalf("finding %s event: %v", typ, err)
	}
	var out map[string]any
	if err := json.Unmarshal(ev.Data, &out); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// installation reads an installation's row.
func (e *env) installation(uuid string) marketplace.Installation {
	e.t.Helper()
	var inst marketplace.Installation
	if err := e.db.Where("uuid = ?", uuid).Take(&inst).Error; err != nil {
		e.t.Fatalf("reading installation %s: %v", uuid, err)
	}
	return inst
}

// count counts the rows of table matching where.
func (e *env) count(table, where string, args ...any) int64 {
	e.t.Helper()
	var n int64
	q := e.db.Table(table)
	if where != "" {
		q = q.Where(where, args...)
	}
	if err := q.Count(&n).Error; err != nil {
		e.t.Fatal(err)
	}
	return n
}

// query parses the query of a URL.
func query(t *testing.T, raw string) url.Values {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}

func idStr(id int64) string { return strconv.FormatInt(id, 10) }

// with is e reporting to t, for subtests.
func (e *env) with(t *testing.T) *env {
	c := *e
	c.t = t
	return &c
}
