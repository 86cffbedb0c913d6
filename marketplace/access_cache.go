package marketplace

import (
	"sync"
	"sync/atomic"
	"time"
)

// AccessTTL is how long an access decision is reused: a signed-in user's
// session and user row (authenticateJWT), a partner's view of an app
// (partnerApp). A delivery log dashboard polls several routes a second;
// each decision was four SQL lookups. Every audited change (memberships,
// apps, suspensions, tokens: core.audit) and every sign-out in this process
// drops every decision at once; another process's changes are seen within
// AccessTTL, so a session ended or a member removed elsewhere stops
// working within a second.
const AccessTTL = time.Second

// accessCache keeps access decisions for AccessTTL, each stamped with the
// generation it was read in; forget starts a new generation.
type accessCache struct {
	gen      atomic.Uint64
	mu       sync.Mutex
	sessions map[int64]sessionEntry // by session id
	views    map[viewKey]viewEntry
	// tokens are sign-in JWTs whose signature, issuer and audience were
	// verified, until they expire: parsing and verifying one again was a
	// tenth of a delivery log request. They say nothing of whether the
	// session still stands (sessions does), so forget keeps them.
	tokens map[string]tokenEntry
}

type tokenEntry struct {
	uid, sid int64
	exp      time.Time
}

type sessionEntry struct {
	user    User
	expires time.Time // the session's own expiry
	at      time.Time
	gen     uint64
}

type viewKey struct {
	user int64
	ref  string
}

type viewEntry struct {
	view AppView
	at   time.Time
	gen  uint64
}

func newAccessCache() *accessCache {
	return &accessCache{sessions: map[int64]sessionEntry{}, views: map[viewKey]viewEntry{}, tokens: map[string]tokenEntry{}}
}

// forget drops every decision (something that decides access changed).
func (c *accessCache) forget() {
	c.gen.Add(1)
	c.mu.Lock()
	clear(c.sessions)
	clear(c.views)
	c.mu.Unlock()
}

func (c *accessCache) fresh(at time.Time, gen uint64) bool {
	return gen == c.gen.Load() && time.Since(at) < AccessTTL
}

// session is session sid's user if it was read within AccessTTL and is
// not past its expiry at now.
func (c *accessCache) session(sid, uid int64, now time.Time) (User, bool) {
	c.mu.Lock()
	e, ok := c.sessions[sid]
	c.mu.Unlock()
	if !ok || !c.fresh(e.at, e.gen) || e.user.ID != uid || !now.Before(e.expires) {
		return User{}, false
	}
	return e.user, true
}

func (c *accessCache) putSession(sid int64, u User, expires time.Time, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.sessions) > 10000 {
		clear(c.sessions)
	}
	c.sessions[sid] = sessionEntry{user: u, expires: expires, at: time.Now(), gen: gen}
}

func (c *accessCache) view(k viewKey) (AppView, bool) {
	c.mu.Lock()
	e, ok := c.views[k]
	c.mu.Unlock()
	if !ok || !c.fresh(e.at, e.gen) {
		return AppView{}, false
	}
	return e.view, true
}

func (c *accessCache) putView(k viewKey, v AppView, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.views) > 10000 {
		clear(c.views)
	}
	c.views[k] = viewEntry{view: v, at: time.Now(), gen: gen}
}

// token is the user and session a verified sign-in JWT names, while it has
// not expired at now.
func (c *accessCache) token(raw string, now time.Time) (uid, sid int64, ok bool) {
	c.mu.Lock()
	e, ok := c.tokens[raw]
	c.mu.Unlock()
	if !ok || !now.Before(e.exp) {
		return 0, 0, false
	}
	return e.uid, e.sid, true
}

func (c *accessCache) putToken(raw string, uid, sid int64, exp time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.tokens) > 10000 {
		clear(c.tokens)
	}
	c.tokens[raw] = tokenEntry{uid: uid, sid: sid, exp: exp}
}
