package web

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"

	"github.com/plugboard/plugboard/app/fault"
	"github.com/plugboard/plugboard/marketplace"
)

// RateLimits are the budgets, from configuration.
type RateLimits struct {
	// The Platform API's budgets per caller and Window, by class of
	// credential.
	Window                                 time.Duration
	User, Installation, Service, Anonymous int
	// Attempts at passwords and client secrets per AuthWindow: sign-ins
	// per account, sign-ins and sign-ups per client IP, failed token
	// requests per client IP and per authenticated client.
	AuthWindow                      time.Duration
	AuthAccount, AuthIP, AuthClient int
}

// Limiter counts requests against budgets kept in Redis, so that every API
// process shares them: GCRA (github.com/go-redis/redis_rate), one script
// call, one round trip, per budget checked. Without Redis it fails open:
// the request is served unlimited, and the log says so once when Redis goes
// and once when it is back.
//
// The Platform API's budgets are leased (spend): a busy caller's process
// takes a few units from Redis at once and spends them locally, so that a
// host publishing thousands of events a second does not cost a Redis round
// trip per request. See leaseSize for the error this allows.
type Limiter struct {
	rl     *redis_rate.Limiter
	log    *slog.Logger
	leases leases
	// down is set while Redis does not answer; skipUntil (Unix ns) is when
	// the next request may try it again: meanwhile none waits for it.
	down      atomic.Bool
	skipUntil atomic.Int64
}

// NewLimiter counts on rdb. Give it a client with short timeouts
// (ContextTimeoutEnabled, no retries): a request waits for it.
func NewLimiter(rdb redis.UniversalClient, log *slog.Logger) *Limiter {
	return &Limiter{rl: redis_rate.NewLimiter(rdb), log: log}
}

// limiterTimeout bounds one call: past it the request is served unlimited.
const limiterTimeout = 250 * time.Millisecond

// allowN takes n units (0: only looks) of key's budget. ok is false when
// Redis could not be asked, and the request goes unlimited.
func (l *Limiter) allowN(ctx context.Context, key string, lim redis_rate.Limit, n int) (res *redis_rate.Result, ok bool) {
	return l.ask(ctx, key, lim, n, false)
}

// ask is allowN; atMost takes as many of the n units as are left (at
// least one, or none and a refusal).
func (l *Limiter) ask(ctx context.Context, key string, lim redis_rate.Limit, n int, atMost bool) (res *redis_rate.Result, ok bool) {
	if l == nil {
		return nil, false
	}
	now := time.Now().UnixNano()
	if l.down.Load() {
		// One request a second tries Redis again; the others do not wait.
		until := l.skipUntil.Load()
		if now < until || !l.skipUntil.CompareAndSwap(until, now+int64(time.Second)) {
			return nil, false
		}
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), limiterTimeout)
	defer cancel()
	var err error
	if atMost {
		res, err = l.rl.AllowAtMost(ctx, "plugboard:"+key, lim, n)
	} else {
		res, err = l.rl.AllowN(ctx, "plugboard:"+key, lim, n)
	}
	if err != nil {
		l.skipUntil.Store(now + int64(time.Second))
		if !l.down.Swap(true) {
			l.log.Warn("rate limits not enforced: Redis does not answer; serving requests unlimited until it does", "err", err)
		}
		return nil, false
	}
	if l.down.Swap(false) {
		l.log.Info("rate limits enforced again: Redis answers")
	}
	return res, true
}

// leaseTTL is how long a process keeps units it leased and has not spent;
// then they are given up (they stay spent in Redis).
const leaseTTL = time.Second

// leaseSize is the most units one process leases at once from a budget:
// 1 % of it, at most 64, so that a budget under 200 is counted exactly,
// one Redis call per request, as are the sign-in budgets (attempt).
//
// The error a lease allows, with P processes serving one caller: units are
// taken from Redis before they are spent, so no process serves a unit the
// shared budget did not grant; a unit granted up to leaseTTL before it is
// spent can exceed the budget at that moment by what it refilled in the
// meantime, at most leaseSize units per process. The other way, a caller
// can be refused while up to P × (leaseSize − 1) units sit leased in
// other processes, and units left when a lease expires are lost to it (a
// lease halves each time that happens and doubles each time it is spent
// within leaseTTL, so a caller whose rate falls loses a few units, not a
// lease per second). RateLimit's r= counts this process's leased units as
// remaining; another process's are not.
func leaseSize(lim redis_rate.Limit) int {
	return min(64, lim.Burst/100)
}

// leases are a process's leased units of the API budgets, by key.
type leases struct {
	mu    sync.Mutex
	m     map[string]*lease
	swept time.Time
}

// lease is one budget's units leased by this process.
type lease struct {
	mu    sync.Mutex
	left  int               // leased and not yet spent
	until time.Time         // when what is left is given up
	chunk int               // how many the next lease asks for
	res   redis_rate.Result // Redis's answer to the last lease, for the headers
	at    time.Time         // when it answered
}

// get is key's lease, made on first use. Leases given up long ago are
// dropped once the map is large, at most once a second.
func (ls *leases) get(key string, now time.Time) *lease {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.m == nil {
		ls.m = map[string]*lease{}
	}
	le := ls.m[key]
	if le == nil {
		if len(ls.m) >= 4096 && now.Sub(ls.swept) > time.Second {
			ls.swept = now
			for k, v := range ls.m {
				if v.mu.TryLock() {
					if now.Sub(v.until) > time.Minute {
						delete(ls.m, k)
					}
					v.mu.Unlock()
				}
			}
		}
		le = &lease{}
		ls.m[key] = le
	}
	return le
}

// spend takes one unit of key's budget: from this process's lease of it,
// or from Redis, leasing up to leaseSize(lim) units at once for the
// requests that follow. As allowN, ok is false when Redis could not be
// asked.
func (l *Limiter) spend(ctx context.Context, key string, lim redis_rate.Limit) (*redis_rate.Result, bool) {
	if l == nil {
		return nil, false
	}
	most := leaseSize(lim)
	if most <= 1 {
		return l.allowN(ctx, key, lim, 1)
	}
	now := time.Now()
	le := l.leases.get(key, now)
	le.mu.Lock()
	defer le.mu.Unlock()
	fresh := now.Before(le.until)
	if le.left > 0 && fresh {
		le.left--
		return le.answer(now), true
	}
	switch {
	case le.chunk == 0:
		le.chunk = 1
	case le.left == 0 && fresh:
		le.chunk = min(2*le.chunk, most) // spent within leaseTTL: lease more
	case le.left > 0:
		le.chunk = max(le.chunk/2, 1) // given up unspent: lease less
	}
	le.left, le.until = 0, time.Time{}
	res, ok := l.ask(ctx, key, lim, min(le.chunk, most), true)
	if !ok || res.Allowed == 0 {
		return res, ok
	}
	le.left, le.until, le.res, le.at = res.Allowed-1, now.Add(leaseTTL), *res, now
	return le.answer(now), true
}

// answer is the Result of a unit spent from le: what Redis said at the
// lease, with the units still leased here counted as remaining.
func (le *lease) answer(now time.Time) *redis_rate.Result {
	r := le.res
	r.Allowed = 1
	r.Remaining += le.left
	r.ResetAfter = max(r.ResetAfter-now.Sub(le.at), 0)
	return &r
}

// perWindow is GCRA's limit for n per window, all of it usable at once.
func perWindow(n int, window time.Duration) redis_rate.Limit {
	return redis_rate.Limit{Rate: n, Burst: n, Period: window}
}

// ---------------------------------------------------------------------------
// The Platform API's budgets

// apiBudget is the class of a caller's credential and the key its budget
// is counted under.
func (s *Server) apiBudget(a marketplace.Actor) (class, key string, n int) {
	l := s.opts.RateLimits
	switch {
	case a.User != nil:
		return "user", "api:user:" + strconv.FormatInt(a.User.ID, 10), l.User
	case a.Installation != nil:
		return "installation", "api:installation:" + strconv.FormatInt(a.Installation.ID, 10), l.Installation
	case a.App != nil:
		// An app with its own credentials spends from the installation class.
		return "installation", "api:app:" + strconv.FormatInt(a.App.ID, 10), l.Installation
	case a.Service != nil:
		return "service", "api:service:" + strconv.FormatInt(a.Service.ID, 10), l.Service
	}
	return "anonymous", "api:ip:" + a.IP, l.Anonymous
}

const ctxCharged = "rateLimitCharged"

// chargeAPI counts the request against its caller's budget and writes the
// RateLimit-Policy and RateLimit headers (draft-ietf-httpapi-ratelimit-
// headers); past the budget it answers 429 with Retry-After.
func (s *Server) chargeAPI(c echo.Context, a marketplace.Actor) error {
	if s.opts.Limiter == nil || c.Get(ctxCharged) != nil {
		return nil
	}
	c.Set(ctxCharged, true)
	class, key, n := s.apiBudget(a)
	window := s.opts.RateLimits.Window
	h := c.Response().Header()
	h.Set("RateLimit-Policy", fmt.Sprintf("%q;q=%d;w=%d", class, n, int(math.Ceil(window.Seconds()))))
	res, ok := s.opts.Limiter.spend(c.Request().Context(), key, perWindow(n, window))
	if !ok {
		return nil // fail open: no RateLimit header, since nothing was counted
	}
	if res.Allowed == 0 {
		h.Set("RateLimit", fmt.Sprintf("%q;r=0;t=%d", class, retrySeconds(res.RetryAfter)))
		return fault.Throttled(fmt.Sprintf("The %s budget of %d requests per %s is spent; try again in %s.",
			class, n, seconds(int(math.Ceil(window.Seconds()))), seconds(retrySeconds(res.RetryAfter))), res.RetryAfter)
	}
	h.Set("RateLimit", fmt.Sprintf("%q;r=%d;t=%d", class, res.Remaining, int(math.Ceil(res.ResetAfter.Seconds()))))
	return nil
}

// apiAuthenticate is authenticate, then the caller's budget, for every
// route under /api/0/. A request whose credentials are refused counts
// against its IP's anonymous budget.
func (s *Server) apiAuthenticate(next echo.HandlerFunc) echo.HandlerFunc {
	h := s.authenticate(func(c echo.Context) error {
		if err := s.chargeAPI(c, actor(c)); err != nil {
			return err
		}
		return next(c)
	})
	return func(c echo.Context) error {
		err := h(c)
		if err != nil && c.Get(ctxCharged) == nil {
			if lerr := s.chargeAPI(c, marketplace.Actor{IP: c.RealIP()}); lerr != nil {
				return lerr
			}
		}
		return err
	}
}

// apiUnrouted charges requests under /api/0/ that match no route (404,
// 405), which no route middleware saw, to their IP.
func (s *Server) apiUnrouted(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		err := next(c)
		if strings.HasPrefix(c.Request().URL.Path, "/api/0/") && c.Get(ctxCharged) == nil && !c.Response().Committed {
			if lerr := s.chargeAPI(c, marketplace.Actor{IP: c.RealIP()}); lerr != nil {
				return lerr
			}
		}
		return err
	}
}

// ---------------------------------------------------------------------------
// Attempts at passwords and client secrets

// budget is one key an attempt is counted under, and its size.
type budget struct {
	key string
	n   int
}

// emailKey names an account's budget without keeping its address in Redis.
func emailKey(email string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(email))))
	return hex.EncodeToString(sum[:12])
}

func (s *Server) signInBudgets(c echo.Context, email string) []budget {
	l := s.opts.RateLimits
	return []budget{{"auth:signin-ip:" + c.RealIP(), l.AuthIP}, {"auth:account:" + emailKey(email), l.AuthAccount}}
}

func (s *Server) signUpBudgets(c echo.Context) []budget {
	return []budget{{"auth:signup-ip:" + c.RealIP(), s.opts.RateLimits.AuthIP}}
}

// tooManyAttempts refuses an attempt past its budget.
func tooManyAttempts(wait time.Duration) error {
	return fault.Throttled(fmt.Sprintf("Too many attempts; try again in %s.", seconds(retrySeconds(wait))), wait)
}

func seconds(n int) string {
	if n == 1 {
		return "1 second"
	}
	return strconv.Itoa(n) + " seconds"
}

// attempt spends one try from each budget, in order, before a password is
// checked: every try counts, right or wrong, so that parallel guesses
// cannot outrun the count. The first budget spent refuses with 429.
func (s *Server) attempt(c echo.Context, budgets ...budget) error {
	if s.opts.Limiter == nil {
		return nil
	}
	for _, b := range budgets {
		res, ok := s.opts.Limiter.allowN(c.Request().Context(), b.key, perWindow(b.n, s.opts.RateLimits.AuthWindow), 1)
		if ok && res.Allowed == 0 {
			return tooManyAttempts(res.RetryAfter)
		}
	}
	return nil
}

// tokenBudgets are the failed token requests counted for a client IP and,
// once it authenticated, for the client: a client id alone (it is public)
// cannot spend a partner's budget.
func (s *Server) tokenBudgets(c echo.Context, clientID string) []budget {
	l := s.opts.RateLimits
	out := []budget{{"auth:token-ip:" + c.RealIP(), l.AuthIP}}
	if clientID != "" {
		out = append(out, budget{"auth:token-client:" + clientID, l.AuthClient})
	}
	return out
}

// exhausted refuses with 429 when any budget has no try left; it spends
// nothing. Token requests are counted when they fail (failed).
func (s *Server) exhausted(c echo.Context, budgets ...budget) error {
	if s.opts.Limiter == nil {
		return nil
	}
	for _, b := range budgets {
		lim := perWindow(b.n, s.opts.RateLimits.AuthWindow)
		res, ok := s.opts.Limiter.allowN(c.Request().Context(), b.key, lim, 0)
		if !ok || res.Remaining >= 1 {
			continue
		}
		// The next try is allowed once one unit has been emitted again.
		emission := lim.Period / time.Duration(lim.Rate)
		wait := res.ResetAfter - time.Duration(lim.Burst-1)*emission
		if res.RetryAfter > 0 {
			wait = res.RetryAfter
		}
		return tooManyAttempts(max(wait, time.Second))
	}
	return nil
}

// failed spends one try from each budget after a refused token request.
func (s *Server) failed(c echo.Context, budgets ...budget) {
	if s.opts.Limiter == nil {
		return
	}
	for _, b := range budgets {
		s.opts.Limiter.allowN(c.Request().Context(), b.key, perWindow(b.n, s.opts.RateLimits.AuthWindow), 1)
	}
}

// rateLimited reports whether err is a 429 of a budget.
func rateLimited(err error) bool {
	fe, ok := fault.As(err)
	return ok && fe.Kind == fault.KindRateLimited
}

// busy reports whether err says a bounded resource is saturated (503 with
// Retry-After), which a form shows like its own faults.
func busy(err error) bool {
	fe, ok := fault.As(err)
	_, retry := fault.Detail[time.Duration](err, fault.DetailRetryAfter)
	return ok && retry && fe.Kind == fault.KindUnavailable
}
