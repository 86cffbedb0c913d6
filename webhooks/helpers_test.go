package webhooks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	gormlogger "gorm.io/gorm/logger"

	"github.com/plugboard/plugboard/app/secret"
	"github.com/plugboard/plugboard/app/testenv"
)

// tableDir is the Directory port answered from tables: it stands for the
// marketplace, not for our storage.
type tableDir struct {
	mu         sync.Mutex
	recipients map[string][]Recipient // by event type
	endpoints  map[int64]*Endpoint
	changes    []string          // "appID status reason"
	held       map[int64][]int64 // suspended installations, by app
}

func (d *tableDir) Recipients(_ context.Context, _ *gorm.DB, _ int64, eventType, _ string, installationID int64) ([]Recipient, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []Recipient
	for _, r := range d.recipients[eventType] {
		if installationID == 0 || r.InstallationID == installationID {
			out = append(out, r)
		}
	}
	return out, nil
}

func (d *tableDir) Endpoint(_ context.Context, appID int64) (*Endpoint, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	ep, ok := d.endpoints[appID]
	if !ok {
		return nil, fmt.Errorf("no app %d", appID)
	}
	if ep.Secrets == nil { // as the marketplace answers when the key changed
		return nil, fmt.Errorf("opening webhook secret of %s: %w", ep.Slug, secret.ErrOpen)
	}
	cp := *ep
	return &cp, nil
}

func (d *tableDir) EndpointChanged(_ context.Context, appID int64, status, reason string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.changes = append(d.changes, fmt.Sprintf("%d %s %s", appID, status, reason))
}

func (d *tableDir) Held(_ context.Context, _ *gorm.DB, appID int64) ([]int64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]int64(nil), d.held[appID]...), nil
}

func (d *tableDir) setURL(appID int64, url string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.endpoints[appID].URL = url
}

// world is every webhooks part on a real database and a real Redis
// database of the test's own, built as the composition root builds them.
type world struct {
	t          *testing.T
	ctx        context.Context
	db         *gorm.DB
	rdb        *redis.Client
	queue      *asynq.Client
	inspector  *asynq.Inspector
	clock      *testenv.Clock
	dir        *tableDir
	opts       Options
	drains     *Drains
	outbox     *Outbox
	store      *Store
	sender     *Sender
	endpoints  *Endpoints
	limiter    *Limiter
	listeners  *Listeners
	dispatcher *Dispatcher
	org        int64
}

// newWorld builds the parts with opts, on the test's own database and
// Redis database (so the test runs in parallel), with w.clock as Options.Now
// unless opts has a clock.
func newWorld(t *testing.T, opts Options) *world {
	t.Helper()
	t.Parallel()
	db, err := gorm.Open(postgres.Open(testenv.DB(t)), &gorm.Config{Logger: gormlogger.Discard, SkipDefaultTransaction: true,
		NowFunc: func() time.Time { return time.Now().UTC() }})
	if err != nil {
		t.Fatal(err)
	}
	sqlDB, _ := db.DB()
	t.Cleanup(func() { sqlDB.Close() })
	ropt, err := redis.ParseURL(testenv.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(ropt)
	t.Cleanup(func() { rdb.Close() })
	w := &world{t: t, ctx: context.Background(), db: db, rdb: rdb, queue: asynq.NewClientFromRedisClient(rdb),
		inspector: asynq.NewInspectorFromRedisClient(rdb),
		clock:     testenv.NewClock(time.Now()), dir: &tableDir{recipients: map[string][]Recipient{}, endpoints: map[int64]*Endpoint{}}}
	if opts.Now == nil {
		opts.Now = w.clock.Now
	}
	w.opts = opts
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	w.drains = NewDrains(rdb, w.queue, opts, log)
	w.listeners = NewListeners(rdb, ListenLimits{}, nil)
	t.Cleanup(w.listeners.Close)
	w.outbox = NewOutbox(w.drains, w.dir, w.listeners, opts)
	if w.store, err = NewStore(db, opts); err != nil {
		t.Fatal(err)
	}
	w.sender = NewSender(opts, nil)
	w.endpoints = NewEndpoints(db, w.queue, w.drains, w.dir, opts)
	w.limiter = NewLimiter(rdb, opts)
	w.dispatcher = NewDispatcher(DispatcherDeps{Store: w.store, Sender: w.sender, Endpoints: w.endpoints, Drains: w.drains,
		Limiter: w.limiter, Listeners: w.listeners, Log: log}, opts)
	w.org = w.id("INSERT INTO organizations (slug, name) VALUES (?, 'Acme') RETURNING id", "acme-"+uuid.NewString()[:8])
	w.exec("INSERT INTO event_types (name, resource, scope) VALUES ('issue.created', 'issue', 'issue:read')")
	return w
}

// private is Options for tests that send to httptest servers on loopback.
func private() Options { return Options{AllowPrivate: true} }

func (w *world) exec(q string, args ...any) int64 {
	w.t.Helper()
	res := w.db.Exec(q, args...)
	if res.Error != nil {
		w.t.Fatalf("%s: %v", q, res.Error)
	}
	return res.RowsAffected
}

func (w *world) id(q string, args ...any) int64 {
	w.t.Helper()
	var id int64
	if err := w.db.Raw(q, args...).Scan(&id).Error; err != nil {
		w.t.Fatalf("%s: %v", q, err)
	}
	return id
}

// app inserts an app of the org, known to the directory with url and a
// fresh secret, and subscribed (through one installation) to
// issue.created. It returns the app and installation.
func (w *world) app(url string) (appID int64, inst Recipient, secret string) {
	w.t.Helper()
	slug := "app-" + uuid.NewString()[:8]
	appID = w.id(`INSERT INTO apps (organization_id, slug, name, kind, status, client_id, client_secret_hash, webhook_secret, webhook_url)
		VALUES (?, ?, ?, 'public', 'published', ?, '\x00', '\x00', ?) RETURNING id`, w.org, slug, slug, uuid.NewString(), url)
	inst = Recipient{AppID: appID, InstallationUUID: uuid.NewString()}
	inst.InstallationID = w.id(`INSERT INTO installations (uuid, app_id, organization_id, status, scopes)
		VALUES (?, ?, ?, 'installed', '["issue:read"]') RETURNING id`, inst.InstallationUUID, appID, w.org)
	secret = NewSecret()
	w.dir.mu.Lock()
	w.dir.endpoints[appID] = &Endpoint{AppID: appID, Slug: slug, URL: url, Secrets: []string{secret}}
	w.dir.recipients["issue.created"] = append(w.dir.recipients["issue.created"], inst)
	w.dir.mu.Unlock()
	return appID, inst, secret
}

// publish publishes issue.created in a transaction and returns the event.
func (w *world) publish(data any) *Event {
	w.t.Helper()
	var ev *Event
	err := w.outbox.Transaction(w.ctx, w.db, func(tx *gorm.DB) error {
		var err error
		ev, err = w.outbox.Publish(w.ctx, tx, NewEvent{OrganizationID: w.org, Type: "issue.created", Data: data, CreatedBy: "test"})
		return err
	})
	if err != nil {
		w.t.Fatal(err)
	}
	return ev
}

// deliveries returns an app's deliveries, oldest first.
func (w *world) deliveries(appID int64) []Delivery {
	w.t.Helper()
	var out []Delivery
	if err := w.db.Where("app_id = ?", appID).Order("id").Find(&out).Error; err != nil {
		w.t.Fatal(err)
	}
	return out
}

// delivery inserts a delivery of appID's event with status, created at
// created and completed (when not pending) at created.
func (w *world) delivery(appID int64, inst Recipient, eventType, status string, created time.Time) Delivery {
	w.t.Helper()
	evID := w.id(`INSERT INTO events (uuid, organization_id, type, data, created_at) VALUES (?, ?, ?, '{"n": 1}', ?) RETURNING id`,
		uuid.NewString(), w.org, eventType, created)
	var next, completed *time.Time
	if status == DeliveryPending {
		next = &created
	} else if status != DeliveryPaused {
		completed = &created
	}
	d := Delivery{UUID: uuid.NewString(), EventID: evID, AppID: appID, InstallationID: &inst.InstallationID, InstallationUUID: &inst.InstallationUUID,
		OrganizationID: w.org, EventType: eventType, Status: status, Attempts: 1, MaxAttempts: 8, NextAttemptAt: next, CreatedAt: created, CompletedAt: completed}
	if err := w.db.Create(&d).Error; err != nil {
		w.t.Fatal(err)
	}
	return d
}

// attempt inserts an attempt of d at created.
func (w *world) attempt(d Delivery, status int, class string, dur time.Duration, created time.Time) {
	w.t.Helper()
	w.exec(`INSERT INTO attempts (delivery_id, app_id, number, url, request_headers, response_status, duration_us, error_class, created_at)
		VALUES (?, ?, 1, 'https://example.com/hook', '{}', ?, ?, ?, ?)`, d.ID, d.AppID, status, dur.Microseconds(), class, created)
}

// tasks returns the tasks waiting in queue (pending and scheduled), by type.
func (w *world) tasks(queue string) map[string][]*asynq.TaskInfo {
	w.t.Helper()
	out := map[string][]*asynq.TaskInfo{}
	pending, err := w.inspector.ListPendingTasks(queue)
	if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
		w.t.Fatal(err)
	}
	scheduled, err := w.inspector.ListScheduledTasks(queue)
	if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
		w.t.Fatal(err)
	}
	for _, ti := range append(pending, scheduled...) {
		out[ti.Type] = append(out[ti.Type], ti)
	}
	return out
}

// sink is an httptest server that records what it receives and answers
// with status.
type sink struct {
	*httptest.Server
	mu     sync.Mutex
	status int
	// answer, when set, decides each request's status instead (under mu).
	answer func() int
	hits   []hit
}

type hit struct {
	Header http.Header
	Body   []byte
}

func newSink(t *testing.T, status int) *sink {
	s := &sink{status: status}
	s.Server = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.hits = append(s.hits, hit{Header: r.Header.Clone(), Body: b})
		code := s.status
		if s.answer != nil {
			code = s.answer()
		}
		s.mu.Unlock()
		rw.WriteHeader(code)
		fmt.Fprint(rw, `{"ok": true}`)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *sink) received() []hit {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]hit(nil), s.hits...)
}

func ptr[T any](v T) *T { return &v }

func itoa(n int64) string { return fmt.Sprint(n) }
