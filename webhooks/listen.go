package webhooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/plugboard/plugboard/app/fault"
)

// Forwarded is a delivery as sent to an app's endpoint, given to `plugboard
// listen` sessions so a developer's local server receives it too, with the
// same headers and signature.
type Forwarded struct {
	DeliveryID string            `json:"deliveryId"`
	EventType  string            `json:"eventType"`
	Attempt    int               `json:"attempt"`
	Headers    map[string]string `json:"headers"`
	Body       string            `json:"body"`
	Status     *int              `json:"status"`
	ErrorClass string            `json:"errorClass"`
}

// ListenLimits bound the listen sessions (delivery streams) open at once.
// Zero is the default.
type ListenLimits struct {
	PerOwner int // per user, or app authenticating as itself, across the platform (default 10)
	PerApp   int // per app, across the platform (default 50)
	Process  int // in this process, for every app (default 1000)
}

func (l ListenLimits) withDefaults() ListenLimits {
	if l.PerOwner == 0 {
		l.PerOwner = 10
	}
	if l.PerApp == 0 {
		l.PerApp = 50
	}
	if l.Process == 0 {
		l.Process = 1000
	}
	return l
}

// Listeners is the hub of listen sessions. Across the platform, Redis
// holds a sorted set of sessions per app and per owner, scored by expiry
// (the dispatcher forwards to an app only while its set has a live
// session; the caps are counted there), and a pub/sub channel per app.
//
// In a process, every session is served from one Redis connection: the hub
// subscribes to an app's channel while the process has a session of that
// app, and fans each message out to the sessions in memory. A session
// has a buffer of listenBuffer deliveries; one that falls that far behind
// (its client reads too slowly) is closed, never waited for, so it cannot
// hold up the others; its client reconnects (`plugboard listen` does) and
// the deliveries it missed are in the log. When the subscription breaks
// (Redis goes away) every session is closed the same way, and new ones
// are refused as unavailable until Redis answers again.
type Listeners struct {
	rdb    redis.UniversalClient
	limits ListenLimits
	log    *slog.Logger

	mu     sync.Mutex
	cache  map[int64]listenCache
	apps   map[int64]map[*session]struct{} // this process's open sessions
	open   int                             // sessions of this process, admitted or being admitted
	closed bool
	stop   chan struct{}
	broken bool // the subscription failed and has not answered since
	// confirmed has a waiter per channel being subscribed to, told when
	// Redis confirms.
	confirmed map[string]chan struct{}

	// subMu orders SUBSCRIBE and UNSUBSCRIBE with the count of sessions
	// each app's channel is subscribed for.
	subMu      sync.Mutex
	ps         *redis.PubSub // the one subscription, opened for the first session
	subscribed map[int64]int
}

type listenCache struct {
	any bool
	at  time.Time
}

// session is one open stream.
type session struct {
	appID     int64
	owner, id string
	out       chan Forwarded
	closed    bool // out is closed and the hub sends no more (under mu)
	removed   bool // its counts are given back (under mu)
}

const (
	// listenBuffer is how many deliveries a session may fall behind: more
	// than a drain's batch (100), which is published at once.
	listenBuffer = 256
	// sessionTTL is how long Redis keeps a session not renewed: a process
	// that dies gives its sessions back after this long.
	sessionTTL  = 30 * time.Second
	renewEvery  = 10 * time.Second
	pingEvery   = 15 * time.Second
	retryStream = 5 * time.Second // Retry-After when the platform takes no more streams
)

// NewListeners returns the hub; log says when a slow session is closed
// and when the subscription breaks and comes back (nil: not said).
func NewListeners(rdb redis.UniversalClient, limits ListenLimits, log *slog.Logger) *Listeners {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Listeners{rdb: rdb, limits: limits.withDefaults(), log: log, cache: map[int64]listenCache{},
		apps: map[int64]map[*session]struct{}{}, subscribed: map[int64]int{}, confirmed: map[string]chan struct{}{},
		stop: make(chan struct{})}
}

func listenKey(appID int64) string {
	return "plugboard:listen:sessions:" + strconv.FormatInt(appID, 10)
}
func ownerKey(owner string) string     { return "plugboard:listen:owners:" + owner }
func listenChannel(appID int64) string { return "plugboard:listen:" + strconv.FormatInt(appID, 10) }
func channelApp(ch string) (int64, error) {
	return strconv.ParseInt(strings.TrimPrefix(ch, "plugboard:listen:"), 10, 64)
}

// reserve admits a session when its app and its owner are under their
// caps: it drops their expired sessions, counts the live ones and adds
// it, in one step. 0: admitted; 1: the app is at its cap; 2: the owner.
var reserve = redis.NewScript(`
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 1 end
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[5]) then return 2 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[6])
redis.call('EXPIRE', KEYS[2], ARGV[6])
return 0`)

// unavailable is the answer when the platform takes no more streams.
func unavailable(msg string, cause error) error {
	e := fault.Busy(msg, retryStream)
	e.Err = cause
	return e
}

// Listen opens session id of owner (who opens it: "user:7", "app:3") for
// appID and returns the forwarded deliveries until ctx ends or the hub
// closes the session (it fell behind, or Redis went away). Past a cap it
// refuses with too_many_streams (429); when this process has as many as
// it takes, or Redis does not answer, with unavailable (503); both say
// when to try again (RetryAfter).
func (l *Listeners) Listen(ctx context.Context, appID int64, owner, id string) (<-chan Forwarded, error) {
	l.mu.Lock()
	if l.closed || l.open >= l.limits.Process {
		l.mu.Unlock()
		return nil, unavailable("This server has as many delivery streams open as it takes; try again shortly.", nil)
	}
	l.open++
	l.mu.Unlock()
	s := &session{appID: appID, owner: owner, id: id, out: make(chan Forwarded, listenBuffer), closed: true}

	now := time.Now()
	res, err := reserve.Run(ctx, l.rdb, []string{listenKey(appID), ownerKey(owner)},
		now.Unix(), now.Add(sessionTTL).Unix(), id, l.limits.PerApp, l.limits.PerOwner, int(2*sessionTTL/time.Second)).Int()
	if err != nil {
		l.giveBack(s, false)
		return nil, unavailable("Delivery streams are unavailable for a moment; try again shortly.", fmt.Errorf("opening a listen session: %w", err))
	}
	if res != 0 {
		l.giveBack(s, false)
		who, limit := "the app", l.limits.PerApp
		if res == 2 {
			who, limit = "you", l.limits.PerOwner
		}
		return nil, (&fault.Error{Kind: fault.KindRateLimited, Code: fault.TooManyStreams,
			Message: fmt.Sprintf("There are %d delivery streams open for %s, as many as may be: close one (a plugboard listen session) and try again. Streams of a server that stopped are let go within %d s.",
				limit, who, int(sessionTTL/time.Second))}).With(fault.DetailRetryAfter, sessionTTL)
	}
	if err := l.subscribe(ctx, appID); err != nil {
		l.giveBack(s, true)
		return nil, unavailable("Delivery streams are unavailable for a moment; try again shortly.", fmt.Errorf("subscribing to app %d: %w", appID, err))
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		l.unsubscribe(appID)
		l.giveBack(s, true)
		return nil, unavailable("This server is shutting down; try again shortly.", nil)
	}
	if l.apps[appID] == nil {
		l.apps[appID] = map[*session]struct{}{}
	}
	l.apps[appID][s] = struct{}{}
	s.closed = false
	l.mu.Unlock()
	go func() {
		<-ctx.Done()
		l.remove(s)
	}()
	return s.out, nil
}

// giveBack returns a session that was not opened: its place in the
// process and, when reserved, its places in Redis.
func (l *Listeners) giveBack(s *session, reserved bool) {
	l.mu.Lock()
	l.open--
	s.removed = true
	l.mu.Unlock()
	if reserved {
		l.forget(s)
	}
}

// remove ends session s and gives its places back; it is called once the
// stream is over, and does nothing a second time.
func (l *Listeners) remove(s *session) {
	l.mu.Lock()
	if s.removed {
		l.mu.Unlock()
		return
	}
	s.removed = true
	l.drop(s)
	l.open--
	l.mu.Unlock()
	l.unsubscribe(s.appID)
	l.forget(s)
}

// drop stops sending to s and closes its channel; mu is held.
func (l *Listeners) drop(s *session) {
	if s.closed {
		return
	}
	s.closed = true
	delete(l.apps[s.appID], s)
	if len(l.apps[s.appID]) == 0 {
		delete(l.apps, s.appID)
	}
	close(s.out)
}

// forget takes s out of Redis's sets.
func (l *Listeners) forget(s *session) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	pipe := l.rdb.Pipeline()
	pipe.ZRem(ctx, listenKey(s.appID), s.id)
	pipe.ZRem(ctx, ownerKey(s.owner), s.id)
	_, _ = pipe.Exec(ctx) // else it expires within sessionTTL
}

// subscribe counts a session of appID, subscribing to its channel for the
// first; the first session of the process opens the subscription.
func (l *Listeners) subscribe(ctx context.Context, appID int64) error {
	l.subMu.Lock()
	defer l.subMu.Unlock()
	if l.ps == nil {
		l.ps = l.rdb.Subscribe(context.Background())
		go l.receive(l.ps)
		go l.renew()
	}
	if l.subscribed[appID] == 0 {
		// Once Listen returns, what is published reaches the session: wait
		// for Redis to confirm the subscription.
		ch := listenChannel(appID)
		done := make(chan struct{})
		l.mu.Lock()
		l.confirmed[ch] = done
		l.mu.Unlock()
		err := l.ps.Subscribe(ctx, ch)
		if err == nil {
			select {
			case <-done:
			case <-ctx.Done():
				err = ctx.Err()
			case <-time.After(5 * time.Second):
				err = errors.New("redis did not confirm the subscription")
			}
		}
		if err != nil {
			l.mu.Lock()
			delete(l.confirmed, ch)
			l.mu.Unlock()
			// go-redis keeps a channel to subscribe again on reconnect.
			_ = l.ps.Unsubscribe(context.WithoutCancel(ctx), ch)
			return err
		}
	}
	l.subscribed[appID]++
	return nil
}

// confirm tells the waiter of a subscription that Redis confirmed it.
func (l *Listeners) confirm(m *redis.Subscription) {
	if m.Kind != "subscribe" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if done, ok := l.confirmed[m.Channel]; ok {
		close(done)
		delete(l.confirmed, m.Channel)
	}
}

// unsubscribe is subscribe undone: the last session of an app leaves its
// channel.
func (l *Listeners) unsubscribe(appID int64) {
	l.subMu.Lock()
	defer l.subMu.Unlock()
	l.subscribed[appID]--
	if l.subscribed[appID] > 0 {
		return
	}
	delete(l.subscribed, appID)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = l.ps.Unsubscribe(ctx, listenChannel(appID)) // on a broken connection: not resubscribed
}

// receive reads the subscription until the hub closes: each message goes
// to the sessions of its app. When the connection fails, every session is
// closed; go-redis connects again and resubscribes.
func (l *Listeners) receive(ps *redis.PubSub) {
	ctx := context.Background()
	wait := 50 * time.Millisecond
	for {
		msg, err := ps.ReceiveTimeout(ctx, pingEvery)
		if l.isClosed() || errors.Is(err, redis.ErrClosed) {
			return
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			// Quiet: ask for a pong. A ping that cannot be written
			// reconnects; its answer comes in the next receive.
			if ps.Ping(ctx) == nil {
				continue
			}
		}
		if err != nil {
			l.fail(err)
			select {
			case <-l.stop:
				return
			case <-time.After(wait):
			}
			wait = min(2*wait, 2*time.Second)
			continue
		}
		wait = 50 * time.Millisecond
		l.recovered()
		switch m := msg.(type) {
		case *redis.Message:
			l.fanOut(m)
		case *redis.Subscription:
			l.confirm(m)
		}
	}
}

// fanOut gives m to every session of its app; a session whose buffer is
// full is closed.
func (l *Listeners) fanOut(m *redis.Message) {
	appID, err := channelApp(m.Channel)
	var f Forwarded
	if err != nil || json.Unmarshal([]byte(m.Payload), &f) != nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for s := range l.apps[appID] {
		select {
		case s.out <- f:
		default:
			l.log.Info("closed a delivery stream that fell behind", "app", appID, "session", s.id, "buffer", listenBuffer)
			l.drop(s)
		}
	}
}

// fail closes every session: the subscription broke, and what was
// published meanwhile is lost to them.
func (l *Listeners) fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.broken {
		l.broken = true
		n := 0
		for _, ss := range l.apps {
			n += len(ss)
		}
		l.log.Warn("delivery streams: the Redis subscription failed; closing the open streams", "streams", n, "err", err)
	}
	for _, ss := range l.apps {
		for s := range ss {
			l.drop(s)
		}
	}
}

func (l *Listeners) recovered() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.broken {
		l.broken = false
		l.log.Info("delivery streams: the Redis subscription is back")
	}
}

// renew keeps this process's sessions alive in Redis, all in one round
// trip, until the hub closes.
func (l *Listeners) renew() {
	tick := time.NewTicker(renewEvery)
	defer tick.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-tick.C:
		}
		l.mu.Lock()
		var open []*session
		for _, ss := range l.apps {
			for s := range ss {
				open = append(open, s)
			}
		}
		l.mu.Unlock()
		if len(open) == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		until := float64(time.Now().Add(sessionTTL).Unix())
		pipe := l.rdb.Pipeline()
		for _, s := range open {
			pipe.ZAdd(ctx, listenKey(s.appID), redis.Z{Score: until, Member: s.id})
			pipe.ZAdd(ctx, ownerKey(s.owner), redis.Z{Score: until, Member: s.id})
			pipe.Expire(ctx, listenKey(s.appID), 2*sessionTTL)
			pipe.Expire(ctx, ownerKey(s.owner), 2*sessionTTL)
		}
		_, _ = pipe.Exec(ctx)
		cancel()
	}
}

func (l *Listeners) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// Close closes every session and the subscription; the platform calls it
// once HTTP has stopped.
func (l *Listeners) Close() {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	close(l.stop)
	for _, ss := range l.apps {
		for s := range ss {
			l.drop(s)
		}
	}
	l.mu.Unlock()
	l.subMu.Lock()
	defer l.subMu.Unlock()
	if l.ps != nil {
		_ = l.ps.Close()
	}
}

// active reports whether an app has listen sessions, cached for a second.
func (l *Listeners) active(ctx context.Context, appID int64) bool {
	l.mu.Lock()
	c, ok := l.cache[appID]
	l.mu.Unlock()
	if ok && time.Since(c.at) < time.Second {
		return c.any
	}
	n, err := l.rdb.ZCount(ctx, listenKey(appID), strconv.FormatInt(time.Now().Unix(), 10), "+inf").Result()
	c = listenCache{any: err == nil && n > 0, at: time.Now()}
	l.mu.Lock()
	l.cache[appID] = c
	l.mu.Unlock()
	return c.any
}

// forward publishes what was sent to the app's listen sessions, if any.
func (l *Listeners) forward(ctx context.Context, appID int64, results []result) {
	if l == nil || !l.active(ctx, appID) {
		return
	}
	pipe := l.rdb.Pipeline()
	defer pipe.Exec(ctx) // one round trip for the batch
	for _, r := range results {
		if r.c.ID == 0 || r.deferred > 0 {
			continue
		}
		var h map[string]string
		_ = json.Unmarshal(r.attempt.RequestHeaders, &h)
		f := Forwarded{DeliveryID: r.c.UUID, EventType: r.c.EventType, Attempt: r.attempt.Number, Headers: h,
			Body: string(r.body), Status: r.attempt.ResponseStatus, ErrorClass: r.attempt.ErrorClass}
		b, _ := json.Marshal(f)
		pipe.Publish(ctx, listenChannel(appID), b)
	}
}
