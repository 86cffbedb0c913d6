package webhooks

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"gorm.io/gorm"

	"github.com/plugboard/plugboard/app/fault"
)

// EndpointState is an app's or a host endpoint's health and limits
// (webhooks' own table).
type EndpointState struct {
	// AppID is the destination key (destinations.go); the row holds it in
	// app_id or host_endpoint_id.
	AppID          int64 `gorm:"-"`
	HostEndpointID *int64
	Status         string
	DisabledReason string
	DisabledAt     *time.Time
	FailingSince   *time.Time
	RateLimit      *int
	MaxInFlight    *int
	UpdatedAt      time.Time
}

// TableName is the migration's table.
func (EndpointState) TableName() string { return "endpoints" }

// Endpoint statuses.
const (
	EndpointEnabled  = "enabled"
	EndpointDisabled = "disabled"
)

// Endpoints is endpoint administration: state and health, limits, the
// replay of paused and failed deliveries, and the per-process cache of
// every app's endpoint that the Dispatcher sends with.
type Endpoints struct {
	db     *gorm.DB
	queue  *asynq.Client
	drains *Drains
	dir    Directory
	opts   Options

	mu    sync.Mutex
	cache map[int64]cachedEndpoint
}

// cachedEndpoint is an app's endpoint as the Dispatcher uses it.
type cachedEndpoint struct {
	ep          *Endpoint
	signer      *Signer
	state       EndpointState
	rateLimit   int
	maxInFlight int
	at          time.Time
}

// NewEndpoints returns endpoint administration on db: dir says where an app's
// endpoint is, queue runs bulk redeliveries, drains sends replays.
func NewEndpoints(db *gorm.DB, queue *asynq.Client, drains *Drains, dir Directory, opts Options) *Endpoints {
	return &Endpoints{db: db, queue: queue, drains: drains, dir: dir, opts: opts.withDefaults(), cache: map[int64]cachedEndpoint{}}
}

// endpoint returns an app's endpoint, cached for Options.EndpointCacheTTL.
func (e *Endpoints) endpoint(ctx context.Context, appID int64) (cachedEndpoint, error) {
	e.mu.Lock()
	c, ok := e.cache[appID]
	e.mu.Unlock()
	if ok && e.opts.Now().Sub(c.at) < e.opts.EndpointCacheTTL {
		return c, nil
	}
	ep, err := e.dir.Endpoint(ctx, appID)
	if err != nil {
		return c, err
	}
	c = cachedEndpoint{ep: ep, at: e.opts.Now()}
	if c.signer, err = NewSigner(ep.Secrets); err != nil {
		return c, err
	}
	if c.state, err = e.State(ctx, appID); err != nil {
		return c, err
	}
	c.rateLimit, c.maxInFlight = e.Limits(c.state)
	e.mu.Lock()
	e.cache[appID] = c
	e.mu.Unlock()
	return c, nil
}

// ManyEndpoints is a Directory that also answers Endpoint for many apps in
// one query: a sweep (sweep.go) loads its apps' endpoints through it. An
// app it leaves out of both maps is asked of Endpoint alone.
type ManyEndpoints interface {
	// EndpointsOf returns the endpoints of appIDs (app keys, not host
	// endpoints'), and why each of the others cannot be used, as Endpoint
	// would say (a secret that cannot be opened: secret.ErrOpen).
	EndpointsOf(ctx context.Context, appIDs []int64) (map[int64]*Endpoint, map[int64]error, error)
}

// endpointsOf is endpoint for many apps at once: what the cache holds,
// the rest in two queries (the Directory's, through ManyEndpoints, and the
// endpoint states), cached as endpoint caches them. An app that cannot be
// loaded has its error in the second map, as endpoint would return it.
func (e *Endpoints) endpointsOf(ctx context.Context, appIDs []int64) (map[int64]cachedEndpoint, map[int64]error) {
	out := make(map[int64]cachedEndpoint, len(appIDs))
	errs := map[int64]error{}
	at := e.opts.Now()
	var miss []int64
	e.mu.Lock()
	for _, id := range appIDs {
		if c, ok := e.cache[id]; ok && at.Sub(c.at) < e.opts.EndpointCacheTTL {
			out[id] = c
		} else {
			miss = append(miss, id)
		}
	}
	e.mu.Unlock()
	if len(miss) == 0 {
		return out, errs
	}
	eps := map[int64]*Endpoint{}
	if many, ok := e.dir.(ManyEndpoints); ok {
		got, failed, err := many.EndpointsOf(ctx, miss)
		if err != nil {
			for _, id := range miss {
				errs[id] = err
			}
			return out, errs
		}
		for id, ep := range got {
			eps[id] = ep
		}
		for id, err := range failed {
			errs[id] = err
		}
	}
	var found []int64
	for _, id := range miss {
		if _, ok := eps[id]; !ok && errs[id] == nil {
			ep, err := e.dir.Endpoint(ctx, id)
			if err != nil {
				errs[id] = err
				continue
			}
			eps[id] = ep
		}
		if eps[id] != nil {
			found = append(found, id)
		}
	}
	states, err := e.states(ctx, found)
	if err != nil {
		for _, id := range found {
			errs[id] = err
		}
		return out, errs
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, id := range found {
		c := cachedEndpoint{ep: eps[id], state: states[id], at: at}
		if c.signer, err = NewSigner(c.ep.Secrets); err != nil {
			errs[id] = err
			continue
		}
		c.rateLimit, c.maxInFlight = e.Limits(c.state)
		e.cache[id] = c
		out[id] = c
	}
	return out, errs
}

// states is State of many destinations, in one query.
func (e *Endpoints) states(ctx context.Context, keys []int64) (map[int64]EndpointState, error) {
	out := make(map[int64]EndpointState, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	var apps, hosts []int64
	for _, k := range keys {
		out[k] = EndpointState{AppID: k, Status: EndpointEnabled}
		if id, ok := IsHostKey(k); ok {
			hosts = append(hosts, id)
		} else {
			apps = append(apps, k)
		}
	}
	// One column at a time: an OR of the two would be read as a scan of
	// every endpoint.
	for _, q := range []struct {
		col string
		ids []int64
	}{{"app_id", apps}, {"host_endpoint_id", hosts}} {
		if len(q.ids) == 0 {
			continue
		}
		var rows []struct {
			EndpointState
			Key int64
		}
		err := e.db.WithContext(ctx).Raw("SELECT *, "+keyExpr+" AS key FROM endpoints WHERE "+q.col+" = ANY(?)", pgArray(q.ids)).Scan(&rows).Error
		if err != nil {
			return nil, fmt.Errorf("reading endpoints of %d destinations: %w", len(keys), err)
		}
		for _, r := range rows {
			r.EndpointState.AppID = r.Key
			out[r.Key] = r.EndpointState
		}
	}
	return out, nil
}

// Signer returns the signer of an app's requests, from the cache.
func (e *Endpoints) Signer(ctx context.Context, appID int64) (*Signer, error) {
	c, err := e.endpoint(ctx, appID)
	if err != nil {
		return nil, fmt.Errorf("loading endpoint of app %d: %w", appID, err)
	}
	if c.signer == nil {
		return nil, fmt.Errorf("app %d has no signing secret", appID)
	}
	return c.signer, nil
}

// Forget drops an app's cached endpoint (its URL, secrets and limits), so
// a change is used at once by this process; others see it within
// Options.EndpointCacheTTL.
func (e *Endpoints) Forget(appID int64) {
	e.mu.Lock()
	delete(e.cache, appID)
	e.mu.Unlock()
}

// State returns an app's endpoint health.
func (e *Endpoints) State(ctx context.Context, appID int64) (EndpointState, error) {
	st := EndpointState{Status: EndpointEnabled}
	col, dest := keyCol(appID)
	err := e.db.WithContext(ctx).Where(col+" = ?", dest).Take(&st).Error
	if err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
		return st, fmt.Errorf("reading endpoint of app %d: %w", appID, err)
	}
	st.AppID = appID
	return st, nil
}

// Limits returns the app's effective rate limit and in-flight cap.
func (e *Endpoints) Limits(st EndpointState) (int, int) {
	rate, inFlight := e.opts.DefaultRateLimit, e.opts.DefaultMaxInFlight
	if st.RateLimit != nil {
		rate = *st.RateLimit
	}
	if st.MaxInFlight != nil {
		inFlight = *st.MaxInFlight
	}
	return rate, inFlight
}

// ValidateEndpointUpdate checks a change of an app's endpoint: status is
// enabled or disabled, the limits in range (nil: unchanged). The field
// names are the API's.
func ValidateEndpointUpdate(status *string, rate, inFlight *int) error {
	f := fault.Fields{}
	f.Check(status != nil && *status != EndpointEnabled && *status != EndpointDisabled, "webhookStatus", "must be enabled or disabled")
	f.Check(rate != nil && (*rate < 1 || *rate > 100000), "webhookRateLimit", "must be from 1 to 100000 deliveries per second")
	f.Check(inFlight != nil && (*inFlight < 1 || *inFlight > 10000), "webhookMaxInFlight", "must be from 1 to 10000")
	return f.Err()
}

// pauseSQL pauses an app's pending deliveries that no worker holds. It
// locks the queue row before the delivery (claimSQL says why).
const pauseSQL = `UPDATE deliveries SET status = 'paused', next_attempt_at = NULL WHERE id IN (
	SELECT d.id FROM delivery_queue q JOIN deliveries d ON d.id = q.delivery_id
	WHERE q.app_id = ? AND q.status = 'pending' AND d.status = 'pending' AND (d.claimed_until IS NULL OR d.claimed_until < now())
	FOR NO KEY UPDATE OF q, d SKIP LOCKED)`

// Set changes an app's endpoint inside the caller's transaction: limits
// (nil keeps one) and, when status is set, enabled (paused deliveries
// replayed after the commit) or disabled (pending ones paused). The caller
// audits the change; call Forget after the commit.
func (e *Endpoints) Set(ctx context.Context, tx *gorm.DB, appID int64, status *string, reason string, rate, inFlight *int) error {
	if err := ValidateEndpointUpdate(status, rate, inFlight); err != nil {
		return err
	}
	db := tx.WithContext(ctx)
	col, dest := keyCol(appID)
	if err := db.Exec(`INSERT INTO endpoints (`+col+`, rate_limit, max_in_flight, updated_at) VALUES (?, ?, ?, now())
		ON CONFLICT (`+col+`) DO UPDATE SET rate_limit = COALESCE(EXCLUDED.rate_limit, endpoints.rate_limit),
		max_in_flight = COALESCE(EXCLUDED.max_in_flight, endpoints.max_in_flight), updated_at = now()`, dest, rate, inFlight).Error; err != nil {
		return fmt.Errorf("setting limits of app %d: %w", appID, err)
	}
	switch {
	case status == nil:
	case *status == EndpointEnabled:
		if err := db.Exec(`UPDATE endpoints SET status = 'enabled', disabled_reason = '', disabled_at = NULL, failing_since = NULL, updated_at = now()
			WHERE `+col+` = ? AND status <> 'enabled'`, dest).Error; err != nil {
			return fmt.Errorf("enabling endpoint of app %d: %w", appID, err)
		}
		held, err := e.held(ctx, db, appID) // suspended installations' deliveries stay paused (holds.go)
		if err != nil {
			return err
		}
		var rows []ref
		if err := db.Raw(`UPDATE deliveries SET status = 'pending', next_attempt_at = now(), enqueued_at = now()
			WHERE id IN (SELECT delivery_id FROM delivery_queue WHERE `+col+` = ? AND status = 'paused') AND status = 'paused' AND `+notHeld+`
			RETURNING id, `+keyExpr+` AS app_id`, dest, held).Scan(&rows).Error; err != nil {
			return fmt.Errorf("replaying paused deliveries of app %d: %w", appID, err)
		}
		afterCommit(ctx, tx, e.drains, rows)
	default:
		if err := db.Exec(`UPDATE endpoints SET status = 'disabled', disabled_reason = ?, disabled_at = now(), updated_at = now()
			WHERE `+col+` = ? AND status <> 'disabled'`, reason, dest).Error; err != nil {
			return fmt.Errorf("disabling endpoint of app %d: %w", appID, err)
		}
		if err := db.Exec(forKey(pauseSQL, appID)).Error; err != nil {
			return fmt.Errorf("pausing deliveries of app %d: %w", appID, err)
		}
	}
	return nil
}

// Disable stops deliveries to an app's endpoint: pending ones are paused,
// and the Directory is told.
func (e *Endpoints) Disable(ctx context.Context, appID int64, reason string) error {
	var changed bool
	col, dest := keyCol(appID)
	err := e.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Exec(`INSERT INTO endpoints (`+col+`, status, disabled_reason, disabled_at, updated_at) VALUES (?, 'disabled', ?, now(), now())
			ON CONFLICT (`+col+`) DO UPDATE SET status = 'disabled', disabled_reason = EXCLUDED.disabled_reason, disabled_at = now(), updated_at = now()
			WHERE endpoints.status <> 'disabled'`, dest, reason)
		if res.Error != nil {
			return fmt.Errorf("disabling endpoint of app %d: %w", appID, res.Error)
		}
		changed = res.RowsAffected > 0
		if err := tx.Exec(forKey(pauseSQL, appID)).Error; err != nil {
			return fmt.Errorf("pausing deliveries of app %d: %w", appID, err)
		}
		return nil
	})
	e.Forget(appID)
	if err == nil && changed {
		e.dir.EndpointChanged(ctx, appID, EndpointDisabled, reason)
	}
	return err
}

// health clears an endpoint's failing mark on success, and disables it when
// it has failed everything for DisableAfter (or answered 410 Gone).
func (e *Endpoints) health(ctx context.Context, appID int64, anyOK, anyFail, gone bool) error {
	db := e.db.WithContext(ctx)
	col, dest := keyCol(appID)
	if anyOK {
		if err := db.Exec("UPDATE endpoints SET failing_since = NULL, updated_at = now() WHERE "+col+" = ? AND failing_since IS NOT NULL", dest).Error; err != nil {
			return fmt.Errorf("clearing endpoint health of app %d: %w", appID, err)
		}
		return nil
	}
	if !anyFail {
		return nil
	}
	var since time.Time
	if err := db.Raw(`INSERT INTO endpoints (`+col+`, failing_since, updated_at) VALUES (?, now(), now())
		ON CONFLICT (`+col+`) DO UPDATE SET failing_since = COALESCE(endpoints.failing_since, now())
		RETURNING failing_since`, dest).Scan(&since).Error; err != nil {
		return fmt.Errorf("tracking endpoint health of app %d: %w", appID, err)
	}
	switch {
	case gone:
		return e.Disable(ctx, appID, "The endpoint answered 410 Gone.")
	case e.opts.Now().Sub(since) >= e.opts.DisableAfter:
		return e.Disable(ctx, appID, fmt.Sprintf("Every delivery failed for %s.", e.opts.DisableAfter))
	}
	return nil
}

// healthOf is what one app's attempts in a sweep say of its endpoint's
// health (health's arguments).
type healthOf struct{ anyOK, anyFail, gone bool }

// healthMany is health for many apps (app keys) at once: the failing
// mark of every app with a success is cleared, every app that failed
// everything is marked and answers since when it has, and only an
// endpoint that is to be disabled costs more (Disable, as health does).
//
// Two sweeps that finish together may hold health for the same apps, so
// the rows are locked in app order before they are written (an update of
// one set, then an insert of another, deadlocked when each met the rows
// in a different order), and only the rows that will be written: the
// usual sweep, every endpoint healthy, writes and locks nothing, in one
// statement.
func (e *Endpoints) healthMany(ctx context.Context, apps map[int64]healthOf) error {
	var ok, failing []int64
	for id, h := range apps {
		switch {
		case h.anyOK:
			ok = append(ok, id)
		case h.anyFail:
			failing = append(failing, id)
		}
	}
	slices.Sort(ok)
	slices.Sort(failing)
	const clear = `UPDATE endpoints SET failing_since = NULL, updated_at = now() WHERE app_id IN (
		SELECT app_id FROM endpoints WHERE app_id = ANY(?) AND failing_since IS NOT NULL ORDER BY app_id FOR UPDATE)`
	if len(failing) == 0 {
		if len(ok) > 0 {
			if err := e.db.WithContext(ctx).Exec(clear, pgArray(ok)).Error; err != nil {
				return fmt.Errorf("clearing endpoint health of %d apps: %w", len(ok), err)
			}
		}
		return nil
	}
	var rows []struct {
		AppID        int64
		FailingSince time.Time
	}
	err := e.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Exec(`SELECT 1 FROM endpoints WHERE (app_id = ANY(?) AND failing_since IS NOT NULL) OR app_id = ANY(?)
			ORDER BY app_id FOR UPDATE`, pgArray(ok), pgArray(failing)).Error; err != nil {
			return fmt.Errorf("locking endpoint health of %d apps: %w", len(ok)+len(failing), err)
		}
		if len(ok) > 0 {
			if err := tx.Exec(clear, pgArray(ok)).Error; err != nil {
				return fmt.Errorf("clearing endpoint health of %d apps: %w", len(ok), err)
			}
		}
		if err := tx.Raw(`INSERT INTO endpoints (app_id, failing_since, updated_at) SELECT id, now(), now() FROM unnest(?::bigint[]) AS id
			ON CONFLICT (app_id) DO UPDATE SET failing_since = COALESCE(endpoints.failing_since, now())
			RETURNING app_id, failing_since`, pgArray(failing)).Scan(&rows).Error; err != nil {
			return fmt.Errorf("tracking endpoint health of %d apps: %w", len(failing), err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("recording endpoint health of %d apps: %w", len(ok)+len(failing), err)
	}
	var errs []error
	for _, r := range rows {
		switch {
		case apps[r.AppID].gone:
			errs = append(errs, e.Disable(ctx, r.AppID, "The endpoint answered 410 Gone."))
		case e.opts.Now().Sub(r.FailingSince) >= e.opts.DisableAfter:
			errs = append(errs, e.Disable(ctx, r.AppID, fmt.Sprintf("Every delivery failed for %s.", e.opts.DisableAfter)))
		}
	}
	return errors.Join(errs...)
}

// Redeliver sends the given deliveries once more, now: each gets one more
// attempt, with the same webhook-id.
func (e *Endpoints) Redeliver(ctx context.Context, appID int64, ids []string) (int, error) {
	f := fault.Fields{}
	f.Check(len(ids) == 0, "deliveries", "list at least one delivery id")
	f.Check(len(ids) > 1000, "deliveries", "at most 1000 at once; use status to redeliver in bulk")
	for _, id := range ids {
		if _, err := uuid.Parse(id); err != nil {
			f.Add("deliveries", fmt.Sprintf("%q is not a delivery id", id))
		}
	}
	if err := f.Err(); err != nil {
		return 0, err
	}
	var known int64
	col, dest := keyCol(appID)
	if err := e.db.WithContext(ctx).Model(&Delivery{}).Where(col+" = ? AND uuid IN ?", dest, ids).Count(&known).Error; err != nil {
		return 0, fmt.Errorf("finding deliveries of app %d: %w", appID, err)
	}
	if int(known) != len(ids) {
		return 0, fault.Field("deliveries", "some ids are not deliveries of this app")
	}
	held, err := e.held(ctx, e.db, appID) // a suspended installation's deliveries are not sent (holds.go)
	if err != nil {
		return 0, err
	}
	var rows []ref
	err = e.db.WithContext(ctx).Raw(`UPDATE deliveries SET status = 'pending', next_attempt_at = now(), completed_at = NULL,
		max_attempts = attempts + 1, enqueued_at = now()
		WHERE `+col+` = ? AND uuid IN ? AND status IN ('succeeded', 'failed', 'paused') AND `+notHeld+`
		RETURNING id, `+keyExpr+` AS app_id`, dest, ids, held).Scan(&rows).Error
	if err != nil {
		return 0, fmt.Errorf("redelivering deliveries of app %d: %w", appID, err)
	}
	e.drains.enqueue(ctx, rows)
	return len(rows), nil
}

// RedeliverFailed counts the app's failed deliveries in [since, until) and
// starts a background job (NewRedeliverTask) that sends each once more.
func (e *Endpoints) RedeliverFailed(ctx context.Context, appID int64, since, until *time.Time) (int, error) {
	if since != nil && until != nil && !until.After(*since) {
		return 0, fault.Field("until", "must be after since")
	}
	col, dest := keyCol(appID)
	held, err := e.held(ctx, e.db, appID)
	if err != nil {
		return 0, err
	}
	q := e.db.WithContext(ctx).Model(&Delivery{}).Where("id IN (SELECT delivery_id FROM delivery_queue WHERE "+col+" = ? AND status = 'failed') AND status = 'failed' AND "+notHeld, dest, held)
	if since != nil {
		q = q.Where("created_at >= ?", *since)
	}
	if until != nil {
		q = q.Where("created_at < ?", *until)
	}
	var n int64
	if err := q.Count(&n).Error; err != nil {
		return 0, fmt.Errorf("counting failed deliveries of app %d: %w", appID, err)
	}
	if n == 0 {
		return 0, nil
	}
	task, err := NewRedeliverTask(appID, since, until)
	if err != nil {
		return 0, err
	}
	if _, err := e.queue.EnqueueContext(ctx, task); err != nil {
		return 0, fmt.Errorf("starting redelivery of app %d: %w", appID, err)
	}
	return int(n), nil
}

// redeliverFailed is the job RedeliverFailed starts: it sends once more,
// a thousand at a time, the deliveries that had failed when it started
// (one that fails again while the job runs is not picked up a second time).
func (e *Endpoints) redeliverFailed(ctx context.Context, p redeliverPayload) error {
	started := e.opts.Now()
	held, err := e.held(ctx, e.db, p.AppID)
	if err != nil {
		return err
	}
	for {
		var rows []ref
		q, dest := forKey(`UPDATE deliveries SET status = 'pending', next_attempt_at = now(), max_attempts = attempts + 1, completed_at = NULL, enqueued_at = now()
			WHERE id IN (SELECT d.id FROM delivery_queue q JOIN deliveries d ON d.id = q.delivery_id
			  WHERE q.app_id = ? AND q.status = 'failed' AND d.status = 'failed' AND d.completed_at < ?
			  AND d.created_at >= COALESCE(?::timestamptz, '-infinity') AND d.created_at < COALESCE(?::timestamptz, 'infinity') AND `+notHeld+` LIMIT 1000)
			RETURNING id, `+keyExpr+` AS app_id`, p.AppID)
		if err := e.db.WithContext(ctx).Raw(q, dest, started, p.Since, p.Until, held).Scan(&rows).Error; err != nil {
			return fmt.Errorf("redelivering failed deliveries of app %d: %w", p.AppID, err)
		}
		e.drains.enqueue(ctx, rows)
		if len(rows) < 1000 {
			return nil
		}
	}
}
