package webhooks

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/redis/go-redis/v9"
	"gorm.io/gorm"
)

// EndpointState is an app's endpoint health and limits (webhooks' own table).
type EndpointState struct {
	AppID          int64 `gorm:"primaryKey;autoIncrement:false"`
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

// Error classes of failed attempts.
const (
	ClassTimeout    = "timeout"
	ClassConnection = "connection"
	ClassTLS        = "tls"
	ClassDNS        = "dns"
	ClassHTTPStatus = "http_status"
	ClassBlocked    = "blocked"
)

// Attempt is one HTTP try of a delivery.
type Attempt struct {
	ID              int64
	DeliveryID      int64
	AppID           int64
	Number          int
	URL             string
	RequestHeaders  json.RawMessage `gorm:"type:jsonb"`
	ResponseStatus  *int
	ResponseHeaders json.RawMessage `gorm:"type:jsonb"`
	ResponseBody    string
	DurationUS      int64 `gorm:"column:duration_us"`
	ErrorClass      string
	ErrorMessage    string
	CreatedAt       time.Time
}

// Dispatcher delivers webhooks: the asynq handler, the HTTP client, the
// limits and the bookkeeping.
type Dispatcher struct {
	db  *gorm.DB
	sql *sql.DB
	// held bounds the connections drains hold across a batch's requests,
	// so the API and other jobs always find some in the pool.
	held    chan struct{}
	outbox  *Outbox
	limits  *limits
	client  *http.Client
	opts    Options
	log     *slog.Logger
	metrics *Metrics
	// Listeners gets a copy of every delivery for `plugboard listen`.
	listeners *Listeners

	mu    sync.Mutex
	cache map[int64]cachedEndpoint
}

type cachedEndpoint struct {
	ep          *Endpoint
	signer      *Signer
	state       EndpointState
	rateLimit   int
	maxInFlight int
	at          time.Time
}

// NewDispatcher builds the dispatcher.
func NewDispatcher(db *gorm.DB, rdb redis.UniversalClient, outbox *Outbox, metrics *Metrics, log *slog.Logger) *Dispatcher {
	opts := outbox.opts
	outbox.rdb = rdb
	sqlDB, err := db.DB()
	if err != nil {
		panic(fmt.Sprintf("webhooks: gorm without a *sql.DB: %v", err))
	}
	held := 1 << 16
	if m := sqlDB.Stats().MaxOpenConnections; m > 0 {
		held = max(1, m-max(2, m/5))
	}
	d := &Dispatcher{db: db, sql: sqlDB, held: make(chan struct{}, held), outbox: outbox, limits: newLimits(rdb), opts: opts, log: log, metrics: metrics, cache: map[int64]cachedEndpoint{},
		listeners: NewListeners(rdb)}
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second, Control: d.checkAddress}
	d.client = &http.Client{
		Timeout: opts.Timeout,
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           dialer.DialContext,
			MaxIdleConns:          1024,
			MaxIdleConnsPerHost:   256,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: opts.Timeout,
			ForceAttemptHTTP2:     true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return d
}

var errBlocked = errors.New("address not allowed")

// checkAddress refuses loopback, private, link-local (cloud metadata) and
// unspecified addresses at connect time, on the IP actually dialled, so DNS
// rebinding does not get through.
func (d *Dispatcher) checkAddress(network, address string, _ syscall.RawConn) error {
	if d.opts.AllowPrivate {
		return nil
	}
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return errBlocked
	}
	ip := net.ParseIP(host)
	if ip == nil || ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsUnspecified() || ip.IsMulticast() || cgnat.Contains(ip) {
		return fmt.Errorf("%w: %s", errBlocked, ip)
	}
	return nil
}

var _, cgnat, _ = net.ParseCIDR("100.64.0.0/10")

// Register adds the dispatcher's task handlers to mux.
func (d *Dispatcher) Register(mux *asynq.ServeMux) {
	mux.HandleFunc(TypeDeliver, d.handleDeliver)
	mux.HandleFunc(TypeRelay, d.handleRelay)
	mux.HandleFunc(TypeRetention, d.handleRetention)
	mux.HandleFunc(TypeRedeliver, d.handleRedeliver)
}

// endpoint returns an app's endpoint, cached for two seconds.
func (d *Dispatcher) endpoint(ctx context.Context, appID int64) (cachedEndpoint, error) {
	d.mu.Lock()
	c, ok := d.cache[appID]
	d.mu.Unlock()
	if ok && time.Since(c.at) < 2*time.Second {
		return c, nil
	}
	ep, err := d.outbox.dir.Endpoint(ctx, appID)
	if err != nil {
		return c, err
	}
	c = cachedEndpoint{ep: ep, at: time.Now()}
	if ep.URL != "" {
		if c.signer, err = NewSigner(ep.Secrets); err != nil {
			return c, err
		}
	}
	if c.state, err = d.State(ctx, appID); err != nil {
		return c, err
	}
	c.rateLimit, c.maxInFlight = d.Limits(c.state)
	d.mu.Lock()
	d.cache[appID] = c
	d.mu.Unlock()
	return c, nil
}

// Forget drops an app's cached endpoint (its URL, secrets and limits), so
// a change is used at once by this process; others see it within 2 s.
func (d *Dispatcher) Forget(appID int64) { d.forget(appID) }

func (d *Dispatcher) forget(appID int64) {
	d.mu.Lock()
	delete(d.cache, appID)
	d.mu.Unlock()
}

// claimed is a delivery this worker holds, with what its body needs.
type claimed struct {
	ID               int64
	UUID             string
	Attempts         int
	MaxAttempts      int
	EventType        string
	InstallationUUID *string
	Data             json.RawMessage
	EventCreatedAt   time.Time
	DueAt            time.Time
}

// result is the outcome of one attempt.
type result struct {
	c        claimed
	attempt  Attempt
	ok       bool
	retryIn  time.Duration // from Retry-After
	gone     bool          // 410: the partner asks us to stop
	body     []byte        // what was sent, for listen sessions
	deferred time.Duration // limiter said wait; not an attempt
}

func (d *Dispatcher) handleDeliver(ctx context.Context, t *asynq.Task) error {
	var p deliverPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil || p.AppID == 0 {
		return fmt.Errorf("bad deliver payload: %w", asynq.SkipRetry)
	}
	return d.drain(ctx, p.AppID)
}

// drainFor bounds one task's work; what is left gets a fresh task.
const drainFor = 5 * time.Second

// A drain whose batch was small lingers this long before the next claim
// when that batch's oldest delivery had been due for more than behindFor:
// the machine is saturated, and bigger batches make each delivery cheaper
// (in the throughput bench, 3.3 → 9 deliveries per batch and about a third
// less CPU per delivery). A drain that keeps up never waits.
const (
	linger    = 40 * time.Millisecond
	behindFor = 50 * time.Millisecond
)

// drain delivers what is due for an app, a batch at a time, until nothing
// is due: batches grow with the load, so one claim, one limiter round and
// one write cover many deliveries. It is registered as the app's drain
// meanwhile, so publishes need not enqueue another (drains.go).
func (d *Dispatcher) drain(ctx context.Context, appID int64) error {
	start := time.Now()
	reg := d.outbox.register(ctx, appID, drainFor+d.lease()+5*time.Second)
	helped := false
	for {
		n, behind, err := d.deliver(ctx, appID)
		if err != nil {
			reg.leave(ctx, false)
			return err
		}
		if n == 0 {
			if reg.again(ctx) {
				continue
			}
			return nil
		}
		if n < d.opts.BatchSize/4 && behind > behindFor {
			// Behind, with a small batch: the machine is busy rather than
			// the app. Let the next batch fill a little: per-batch costs
			// (claim, limiter, commit) then spread over more deliveries.
			// Never when keeping up: that would only add latency.
			select {
			case <-ctx.Done():
			case <-time.After(linger):
			}
		}
		if n >= d.opts.BatchSize && !helped {
			// A backlog: a second drain shares it (SKIP LOCKED).
			helped = true
			d.outbox.kickApps(ctx, []int64{appID}, 2, false)
		}
		if time.Since(start) > drainFor {
			reg.leave(ctx, false)
			d.outbox.kickApps(ctx, []int64{appID}, 1, false)
			return nil
		}
	}
}

// claimSQL locks up to a batch of the app's due deliveries for the
// transaction that will record their outcome. SKIP LOCKED: concurrent
// drains split the work, no two send the same delivery. A lock (not a
// written claim) holds them: a worker that dies mid-batch drops its
// connection, PostgreSQL rolls back, and the deliveries are due again at
// once, with no second row version and no index entries for the claim.
// claimed_until is still honoured for claims written by older versions.
const claimSQL = `
	SELECT d.id, d.uuid::text, d.attempts, d.max_attempts, d.event_type, d.installation_uuid::text, e.data::text, e.created_at, d.next_attempt_at
	FROM deliveries d JOIN events e ON e.id = d.event_id
	WHERE d.app_id = $1 AND d.status = 'pending' AND d.next_attempt_at <= now() + interval '100 milliseconds'
	  AND (d.claimed_until IS NULL OR d.claimed_until < now())
	ORDER BY d.next_attempt_at LIMIT $2
	FOR NO KEY UPDATE OF d SKIP LOCKED`

// deliver locks up to a batch of the app's due deliveries in Postgres,
// sends them, and records every attempt and outcome in the same
// transaction: two round trips to Postgres and one commit per batch. It
// returns how many it claimed and how long the oldest of them had been due.
func (d *Dispatcher) deliver(ctx context.Context, appID int64) (int, time.Duration, error) {
	// Everything that needs a connection of its own comes before the
	// transaction takes one, so drains never wait on the pool while
	// holding a connection.
	ep, err := d.endpoint(ctx, appID)
	if err != nil {
		return 0, 0, fmt.Errorf("loading endpoint of app %d: %w", appID, err)
	}
	select {
	case d.held <- struct{}{}:
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	}
	defer func() { <-d.held }()
	conn, err := d.sql.Conn(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("claiming deliveries: %w", err)
	}
	defer conn.Close()
	var (
		n     int
		out   outcome
		inner error
	)
	err = conn.Raw(func(dc any) error {
		c := dc.(*stdlib.Conn).Conn()
		n, out, inner = d.deliverOn(ctx, c, ep, appID)
		if pc := c.PgConn(); !pc.IsClosed() && pc.TxStatus() != 'I' {
			// Failed midway: give the locks back, or drop the connection.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if _, err := c.Exec(rctx, "ROLLBACK"); err != nil {
				return driver.ErrBadConn
			}
		}
		return nil
	})
	if inner != nil {
		return n, out.behind, inner
	}
	if err != nil {
		return n, out.behind, fmt.Errorf("delivering: %w", err)
	}
	// After commit, with the connection back in the pool.
	if out.nextDrain >= 0 {
		d.outbox.kick(context.WithoutCancel(ctx), appID, out.nextDrain)
	}
	if out.anyOK && ep.state.FailingSince == nil && !out.anyFail {
		return n, out.behind, nil // healthy, and known to be: nothing to write
	}
	if out.anyOK || out.anyFail {
		return n, out.behind, d.health(context.WithoutCancel(ctx), appID, out.anyOK, out.anyFail, out.gone)
	}
	return n, out.behind, nil
}

// outcome is what a recorded batch leaves to do after its commit.
type outcome struct {
	nextDrain            time.Duration // kick a drain after this; -1: none
	behind               time.Duration // how long the oldest claimed delivery had been due
	anyOK, anyFail, gone bool
}

// deliverOn runs one batch on c: claim, send, record, commit.
func (d *Dispatcher) deliverOn(ctx context.Context, c *pgx.Conn, ep cachedEndpoint, appID int64) (int, outcome, error) {
	none := outcome{nextDrain: -1}
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	// The claim and the record are index lookups by design. Plan them once
	// per connection (planning them for every batch cost a fifth of
	// PostgreSQL's time), and never as a sequential scan, which a plan made
	// while the table was young and small could otherwise keep for good.
	b.Queue("SELECT set_config('plan_cache_mode', 'force_generic_plan', true), set_config('enable_seqscan', 'off', true)")
	b.Queue(claimSQL, appID, d.opts.BatchSize)
	br := c.SendBatch(ctx, b)
	var rows []claimed
	_, err := br.Exec()
	if err == nil {
		_, err = br.Exec()
	}
	if err == nil {
		var q pgx.Rows
		q, err = br.Query()
		if err == nil {
			for q.Next() {
				var r claimed
				var data string
				if err = q.Scan(&r.ID, &r.UUID, &r.Attempts, &r.MaxAttempts, &r.EventType, &r.InstallationUUID, &data, &r.EventCreatedAt, &r.DueAt); err != nil {
					break
				}
				r.Data = json.RawMessage(data)
				rows = append(rows, r)
			}
			q.Close()
			if err == nil {
				err = q.Err()
			}
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, none, fmt.Errorf("claiming deliveries: %w", err)
	}
	if len(rows) == 0 {
		_, err := c.Exec(ctx, "COMMIT")
		return 0, none, err
	}
	if ep.state.Status == EndpointDisabled || ep.ep.URL == "" {
		ids := make([]int64, len(rows))
		for i, r := range rows {
			ids[i] = r.ID
		}
		b := &pgx.Batch{}
		b.Queue("UPDATE deliveries SET status = 'paused', claimed_until = NULL, next_attempt_at = NULL WHERE id = ANY($1)", ids)
		b.Queue("COMMIT")
		if err := c.SendBatch(ctx, b).Close(); err != nil {
			return len(rows), none, fmt.Errorf("pausing deliveries: %w", err)
		}
		return len(rows), none, nil
	}
	none.behind = time.Since(rows[0].DueAt)
	results := make([]result, len(rows))
	// The batch may wait for the limiters this long in all; the rest is
	// deferred. Slots and leases are taken a chunk at a time (a few Redis
	// calls per chunk); chunks send concurrently up to the in-flight cap.
	// No chunk starts unless it can finish within the lease, which bounds
	// how long the transaction stays open.
	lease := d.lease()
	budget := time.Now().Add(waitBudget)
	lastStart := time.Now().Add(lease - d.opts.Timeout - 2*time.Second)
	deferRest := func(from int, wait time.Duration) {
		for j := from; j < len(rows); j++ {
			results[j] = result{c: rows[j], deferred: wait}
		}
	}
	var wg sync.WaitGroup
	for i := 0; i < len(rows); {
		if time.Now().After(lastStart) || ctx.Err() != nil {
			deferRest(i, 10*time.Millisecond)
			break
		}
		n, release, wait := d.admit(ctx, appID, ep, min(len(rows)-i, ep.maxInFlight), lease, budget)
		if n == 0 {
			deferRest(i, wait) // waiting for the limiters: not an attempt
			break
		}
		var chunk sync.WaitGroup
		for j := i; j < i+n; j++ {
			wg.Add(1)
			chunk.Add(1)
			go func() {
				defer wg.Done()
				defer chunk.Done()
				results[j] = d.send(ctx, ep, rows[j])
			}()
		}
		go func() { chunk.Wait(); release() }()
		i += n
	}
	wg.Wait()
	d.listeners.forward(context.WithoutCancel(ctx), appID, results)
	// The outcome is written even when the task is being stopped: what
	// was sent must be logged.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	out, err := d.record(rctx, c, ep, results)
	out.behind = none.behind
	return len(rows), out, err
}

// admit takes up to want slots of the app's rate limit and in-flight cap,
// waiting for them while the batch's budget allows. It returns how many it
// took and the func that releases their in-flight leases; with none, how
// long to defer the rest of the batch (always > 0).
func (d *Dispatcher) admit(ctx context.Context, appID int64, ep cachedEndpoint, want int, lease time.Duration, budget time.Time) (int, func(), time.Duration) {
	deadline := budget
	if least := time.Now().Add(10 * time.Millisecond); deadline.Before(least) {
		deadline = least
	}
	for {
		n, retry, full, release, err := d.limits.admit(ctx, appID, ep.rateLimit, ep.maxInFlight, want, lease)
		if err != nil {
			if ctx.Err() != nil {
				return 0, nil, time.Second // stopped: take nothing
			}
			d.log.Warn("limiters unavailable; delivering without them", "err", err)
			return want, func() {}, 0
		}
		if n > 0 {
			return n, release, 0
		}
		wait := 5 * time.Millisecond // the in-flight cap: poll
		if !full {
			if retry > time.Second || time.Now().Add(retry).After(budget) {
				return 0, nil, max(retry, 50*time.Millisecond)
			}
			wait = retry
		} else if time.Now().After(deadline) {
			return 0, nil, 500 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return 0, nil, time.Second
		case <-time.After(wait):
		}
	}
}

// waitBudget bounds how long one batch waits for the limiters.
const waitBudget = 2 * time.Second

// lease is how long a worker holds a claim: the limiter budget, a request's
// timeout and room to record. A worker that dies mid-batch frees its
// deliveries for the relay after this.
func (d *Dispatcher) lease() time.Duration { return waitBudget + 2*d.opts.Timeout + 5*time.Second }

// Envelope builds the body partners receive.
func Envelope(deliveryID, eventType string, at time.Time, installationUUID *string, data json.RawMessage) []byte {
	var b bytes.Buffer
	b.Grow(len(data) + 200)
	b.WriteString(`{"id":"`)
	b.WriteString(deliveryID)
	b.WriteString(`","type":"`)
	b.WriteString(eventType)
	b.WriteString(`","timestamp":"`)
	b.WriteString(at.UTC().Format(time.RFC3339Nano))
	b.WriteString(`","installation":`)
	if installationUUID != nil {
		b.WriteString(`{"uuid":"` + *installationUUID + `"}`)
	} else {
		b.WriteString("null")
	}
	b.WriteString(`,"data":`)
	if len(data) == 0 {
		b.WriteString("{}")
	} else {
		b.Write(data)
	}
	b.WriteByte('}')
	return b.Bytes()
}

const maxBody = 4 << 10

func (d *Dispatcher) send(ctx context.Context, ep cachedEndpoint, c claimed) result {
	body := Envelope(c.UUID, c.EventType, c.EventCreatedAt, c.InstallationUUID, c.Data)
	now := time.Now()
	ts := now.Unix()
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "Plugboard-Webhooks/"+d.opts.Version)
	h.Set("Webhook-Id", c.UUID)
	h.Set("Webhook-Timestamp", strconv.FormatInt(ts, 10))
	h.Set("Webhook-Signature", ep.signer.Sign(c.UUID, ts, body))
	h.Set("Plugboard-Event", c.EventType)
	if c.InstallationUUID != nil {
		h.Set("Plugboard-Installation", *c.InstallationUUID)
	}
	h.Set("Plugboard-Delivery-Attempt", strconv.Itoa(c.Attempts+1))
	reqHeaders := headersJSON(h)
	r := result{c: c, body: body, attempt: Attempt{AppID: ep.ep.AppID, DeliveryID: c.ID, Number: c.Attempts + 1, URL: ep.ep.URL,
		RequestHeaders: reqHeaders, CreatedAt: now.UTC()}}
	rctx, cancel := context.WithTimeout(ctx, d.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, ep.ep.URL, bytes.NewReader(body))
	if err != nil {
		r.attempt.ErrorClass, r.attempt.ErrorMessage = ClassConnection, err.Error()
		return r
	}
	req.Header = h
	res, err := d.client.Do(req)
	r.attempt.DurationUS = time.Since(now).Microseconds()
	if err != nil && ctx.Err() != nil {
		// We were stopped (shutdown), the partner did not fail: not an
		// attempt; the delivery goes back to the queue.
		return result{c: c, deferred: time.Second}
	}
	if err != nil {
		r.attempt.ErrorClass, r.attempt.ErrorMessage = classify(err), trimErr(err)
		d.metrics.attempt(r.attempt.ErrorClass, time.Since(now))
		return r
	}
	buf, _ := io.ReadAll(io.LimitReader(res.Body, maxBody))
	io.Copy(io.Discard, io.LimitReader(res.Body, 1<<20))
	res.Body.Close()
	r.attempt.DurationUS = time.Since(now).Microseconds()
	status := res.StatusCode
	r.attempt.ResponseStatus = &status
	r.attempt.ResponseHeaders = headersJSON(res.Header)
	r.attempt.ResponseBody = strings.ToValidUTF8(string(buf), "\uFFFD")
	r.ok = status >= 200 && status < 300
	if !r.ok {
		r.attempt.ErrorClass = ClassHTTPStatus
		r.attempt.ErrorMessage = "the endpoint answered " + res.Status
		if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
			r.retryIn = retryAfter(res.Header.Get("Retry-After"), now)
		}
		r.gone = status == http.StatusGone
	}
	d.metrics.attempt(r.attempt.ErrorClass, time.Since(now))
	return r
}

// headersJSON logs headers as a JSON object of lower-case names (sorted)
// to values (repeated ones joined with ", "). Written by hand: the
// reflection of encoding/json on a map was 5% of the process's CPU in the
// throughput bench. Invalid UTF-8 and NUL, which PostgreSQL's jsonb
// refuses, become U+FFFD.
func headersJSON(h http.Header) json.RawMessage {
	var small [24]string
	keys := small[:0]
	size := 2
	for k, v := range h {
		keys = append(keys, k)
		size += len(k) + 6
		for _, x := range v {
			size += len(x) + 2
		}
	}
	slices.SortFunc(keys, compareLower)
	b := make([]byte, 0, size)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k, true)
		b = append(b, ':')
		if v := h[k]; len(v) == 1 {
			b = appendJSONString(b, v[0], false)
		} else {
			b = appendJSONString(b, strings.Join(v, ", "), false)
		}
	}
	return append(b, '}')
}

// lowerASCII is c in lower case when it is an ASCII capital.
func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// compareLower orders header names as their lower-case forms, without
// making them (sorting by strings.ToLower was most of headersJSON's cost).
func compareLower(a, b string) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if x, y := lowerASCII(a[i]), lowerASCII(b[i]); x != y {
			return int(x) - int(y)
		}
	}
	return len(a) - len(b)
}

// appendJSONString appends s as a JSON string, its ASCII capitals in lower
// case when lower is set.
func appendJSONString(b []byte, s string, lower bool) []byte {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == 0:
			b = append(b, "\\ufffd"...)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		case lower:
			b = append(b, lowerASCII(c))
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

func trimErr(err error) string {
	s := err.Error()
	if len(s) > 500 {
		s = s[:500]
	}
	return s
}

// classify names why a request failed.
func classify(err error) string {
	var (
		dnsErr  *net.DNSError
		certErr *tls.CertificateVerificationError
		unknown x509.UnknownAuthorityError
		hostErr x509.HostnameError
		recErr  tls.RecordHeaderError
		netErr  net.Error
		urlErr  *url.Error
	)
	switch {
	case errors.Is(err, errBlocked):
		return ClassBlocked
	case errors.As(err, &dnsErr):
		return ClassDNS
	case errors.As(err, &certErr), errors.As(err, &unknown), errors.As(err, &hostErr), errors.As(err, &recErr):
		return ClassTLS
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return ClassTimeout
	case errors.As(err, &urlErr) && strings.Contains(urlErr.Err.Error(), "tls"):
		return ClassTLS
	}
	return ClassConnection
}

// retryAfter reads seconds or an HTTP date, bounded to [1 s, 1 h].
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, time.Second), time.Hour)
}

// delay is the wait before attempt number next (1-based), with ±20 % jitter.
func (d *Dispatcher) delay(next int) time.Duration {
	s := d.opts.RetrySchedule
	base := s[min(next-1, len(s)-1)]
	if base <= 0 {
		return 0
	}
	jitter := 1 + (rand.Float64()*0.4 - 0.2)
	return time.Duration(float64(base) * jitter)
}

// recordSQL writes a batch's attempts and its deliveries' new state in
// one statement, from arrays: the same text for any batch size.
const recordSQL = `
	WITH recorded AS (
		INSERT INTO attempts (delivery_id, app_id, number, url, request_headers, response_status, response_headers,
			response_body, duration_us, error_class, error_message, created_at)
		SELECT t.d, $10, t.n, t.u, t.rq::jsonb, t.rs, t.rh::jsonb, t.b, t.du, t.ec, t.em, t.ca
		FROM unnest($11::bigint[], $12::int[], $13::text[], $14::text[], $15::int[], $16::text[], $17::text[], $18::bigint[],
			$19::text[], $20::text[], $21::timestamptz[]) AS t(d, n, u, rq, rs, rh, b, du, ec, em, ca)
	)
	UPDATE deliveries d SET status = v.status, attempts = v.attempts, next_attempt_at = v.next, claimed_until = NULL,
		last_attempt_at = CASE WHEN v.tried THEN v.last ELSE d.last_attempt_at END,
		last_status_code = CASE WHEN v.tried THEN v.code ELSE d.last_status_code END,
		last_error_class = CASE WHEN v.tried THEN v.class ELSE d.last_error_class END,
		completed_at = v.completed, enqueued_at = now()
	FROM unnest($1::bigint[], $2::text[], $3::int[], $4::timestamptz[], $5::timestamptz[], $6::int[], $7::text[],
		$8::timestamptz[], $9::bool[]) AS v(id, status, attempts, next, last, code, class, completed, tried)
	WHERE d.id = v.id AND d.id = ANY($1::bigint[])`

// record writes every attempt and every delivery's new state in one
// statement and commits the batch's transaction (one round trip). It
// returns what is left to do after the commit: schedule the next drain for
// retries, track endpoint health.
func (d *Dispatcher) record(ctx context.Context, c *pgx.Conn, ep cachedEndpoint, results []result) (outcome, error) {
	out := outcome{nextDrain: -1}
	now := time.Now().UTC()
	n := len(results)
	var (
		ids                 = make([]int64, 0, n)
		statuses, classes   = make([]string, 0, n), make([]string, 0, n)
		attempts            = make([]int32, 0, n)
		nexts, lasts, dones = make([]*time.Time, 0, n), make([]*time.Time, 0, n), make([]*time.Time, 0, n)
		codes               = make([]*int32, 0, n)
		tried               = make([]bool, 0, n)

		aDelivery, aDuration = make([]int64, 0, n), make([]int64, 0, n)
		aNumber, aStatus     = make([]int32, 0, n), make([]*int32, 0, n)
		aURL, aReq, aBody    = make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
		aResp                = make([]*string, 0, n)
		aClass, aMessage     = make([]string, 0, n), make([]string, 0, n)
		aCreated             = make([]time.Time, 0, n)
	)
	for _, r := range results {
		if r.c.ID == 0 {
			continue
		}
		if r.deferred > 0 {
			t := now.Add(r.deferred)
			ids, statuses, attempts, nexts = append(ids, r.c.ID), append(statuses, DeliveryPending), append(attempts, int32(r.c.Attempts)), append(nexts, &t)
			lasts, codes, classes, dones, tried = append(lasts, nil), append(codes, nil), append(classes, ""), append(dones, nil), append(tried, false)
			out.nextDrain = minDelay(out.nextDrain, r.deferred)
			continue
		}
		a := r.attempt
		var code *int32
		if a.ResponseStatus != nil {
			v := int32(*a.ResponseStatus)
			code = &v
		}
		var respHeaders *string
		if len(a.ResponseHeaders) > 0 {
			v := string(a.ResponseHeaders)
			respHeaders = &v
		}
		aDelivery, aNumber, aURL, aReq = append(aDelivery, a.DeliveryID), append(aNumber, int32(a.Number)), append(aURL, a.URL), append(aReq, string(a.RequestHeaders))
		aStatus, aResp, aBody, aDuration = append(aStatus, code), append(aResp, respHeaders), append(aBody, a.ResponseBody), append(aDuration, a.DurationUS)
		aClass, aMessage, aCreated = append(aClass, a.ErrorClass), append(aMessage, a.ErrorMessage), append(aCreated, a.CreatedAt)

		tries := r.c.Attempts + 1
		status, next, completed := DeliveryPending, (*time.Time)(nil), (*time.Time)(nil)
		switch {
		case r.ok:
			status, completed, out.anyOK = DeliverySucceeded, &now, true
		case r.gone || tries >= r.c.MaxAttempts:
			status, completed, out.anyFail = DeliveryFailed, &now, true
			out.gone = out.gone || r.gone
		default:
			out.anyFail = true
			wait := max(d.delay(tries+1), r.retryIn)
			t := now.Add(wait)
			next = &t
			out.nextDrain = minDelay(out.nextDrain, wait)
		}
		last := a.CreatedAt
		ids, statuses, attempts, nexts = append(ids, r.c.ID), append(statuses, status), append(attempts, int32(tries)), append(nexts, next)
		lasts, codes, classes, dones, tried = append(lasts, &last), append(codes, code), append(classes, a.ErrorClass), append(dones, completed), append(tried, true)
		d.metrics.delivery(status)
	}
	b := &pgx.Batch{}
	if len(ids) > 0 {
		b.Queue(recordSQL, ids, statuses, attempts, nexts, lasts, codes, classes, dones, tried,
			ep.ep.AppID, aDelivery, aNumber, aURL, aReq, aStatus, aResp, aBody, aDuration, aClass, aMessage, aCreated)
	}
	b.Queue("COMMIT")
	if err := c.SendBatch(ctx, b).Close(); err != nil {
		return outcome{nextDrain: -1}, fmt.Errorf("recording deliveries: %w", err)
	}
	return out, nil
}

func minDelay(cur, d time.Duration) time.Duration {
	if cur < 0 || d < cur {
		return d
	}
	return cur
}

// health clears an endpoint's failing mark on success, and disables it when
// it has failed everything for DisableAfter (or answered 410 Gone).
func (d *Dispatcher) health(ctx context.Context, appID int64, anyOK, anyFail, gone bool) error {
	db := d.db.WithContext(ctx)
	if anyOK {
		return db.Exec("UPDATE endpoints SET failing_since = NULL, updated_at = now() WHERE app_id = ? AND failing_since IS NOT NULL", appID).Error
	}
	if !anyFail {
		return nil
	}
	var since time.Time
	if err := db.Raw(`INSERT INTO endpoints (app_id, failing_since, updated_at) VALUES (?, now(), now())
		ON CONFLICT (app_id) DO UPDATE SET failing_since = COALESCE(endpoints.failing_since, now())
		RETURNING failing_since`, appID).Scan(&since).Error; err != nil {
		return fmt.Errorf("tracking endpoint health: %w", err)
	}
	switch {
	case gone:
		return d.Disable(ctx, appID, "The endpoint answered 410 Gone.")
	case time.Since(since) >= d.opts.DisableAfter:
		return d.Disable(ctx, appID, fmt.Sprintf("Every delivery failed for %s.", d.opts.DisableAfter))
	}
	return nil
}

// Disable stops deliveries to an app's endpoint: pending ones are paused.
func (d *Dispatcher) Disable(ctx context.Context, appID int64, reason string) error {
	var changed bool
	err := d.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Exec(`INSERT INTO endpoints (app_id, status, disabled_reason, disabled_at, updated_at) VALUES (?, 'disabled', ?, now(), now())
			ON CONFLICT (app_id) DO UPDATE SET status = 'disabled', disabled_reason = EXCLUDED.disabled_reason, disabled_at = now(), updated_at = now()
			WHERE endpoints.status <> 'disabled'`, appID, reason)
		if res.Error != nil {
			return fmt.Errorf("disabling endpoint: %w", res.Error)
		}
		changed = res.RowsAffected > 0
		return tx.Exec(`UPDATE deliveries SET status = 'paused', next_attempt_at = NULL WHERE id IN (
			SELECT id FROM deliveries WHERE app_id = ? AND status = 'pending' AND (claimed_until IS NULL OR claimed_until < now())
			FOR NO KEY UPDATE SKIP LOCKED)`, appID).Error
	})
	d.forget(appID)
	if err == nil && changed {
		d.outbox.dir.EndpointChanged(ctx, appID, EndpointDisabled, reason)
	}
	return err
}

// SignedGet calls an app's URL with a body-less request signed like a
// webhook (webhook-id, webhook-timestamp, webhook-signature over
// "id.timestamp." ) through the same guarded client, and returns at most
// limit bytes of a 2xx body.
func (d *Dispatcher) SignedGet(ctx context.Context, appID int64, rawURL string, limit int64) ([]byte, error) {
	ep, err := d.endpoint(ctx, appID)
	if err != nil {
		return nil, err
	}
	if ep.signer == nil {
		return nil, fmt.Errorf("app %d has no signing secret", appID)
	}
	id := "sync_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	ts := time.Now().Unix()
	rctx, cancel := context.WithTimeout(ctx, d.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", "Plugboard-Webhooks/"+d.opts.Version)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Webhook-Id", id)
	req.Header.Set("Webhook-Timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("Webhook-Signature", ep.signer.Sign(id, ts, nil))
	res, err := d.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %s", classify(err), trimErr(err))
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, limit))
	if err != nil {
		return nil, fmt.Errorf("reading response: %w", err)
	}
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return nil, fmt.Errorf("the sync URL answered %s", res.Status)
	}
	return body, nil
}

// Listen streams copies of the app's deliveries to a listen session.
func (d *Dispatcher) Listen(ctx context.Context, appID int64, session string) (<-chan Forwarded, error) {
	return d.listeners.Listen(ctx, appID, session)
}
