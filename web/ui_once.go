package web

// One-time secrets: the page that shows an app's new credentials is reached
// by a redirect after the POST that made them (Post/Redirect/Get), so a
// reload never creates another app or rotates again. The POST leaves the
// secrets here, under an unguessable key tied to the browser's session, for
// a few minutes; the GET takes them out, so they are shown once.

import (
	"crypto/rand"
	"encoding/base64"
	"strconv"
	"sync"
	"time"

	"github.com/plugboard/plugboard/marketplace"
)

// onceTTL is how long one-time secrets wait for their page to be loaded.
const onceTTL = 10 * time.Minute

// onceMax bounds what the store holds; the oldest go first beyond it.
const onceMax = 10000

// oneTime holds secrets shown once. It lives in the server's memory: a
// restart (or a load balancer sending the GET to another instance) loses
// them, and the page then says how to rotate them — never shows them twice.
type oneTime struct {
	mu      sync.Mutex
	entries map[string]onceEntry
	now     func() time.Time
}

type onceEntry struct {
	owner   string // the session that made them
	appID   int64
	secrets any // *marketplace.CreatedApp or rotated
	expires time.Time
}

func newOneTime() *oneTime {
	return &oneTime{entries: map[string]onceEntry{}, now: time.Now}
}

// sessionOwner names the session of a: one-time secrets are for it alone.
func sessionOwner(a marketplace.Actor) string {
	if a.User == nil {
		return ""
	}
	return strconv.FormatInt(a.User.ID, 10) + "/" + strconv.FormatInt(a.SessionID, 10)
}

// put keeps secrets of app for the session of a and returns their key.
func (o *oneTime) put(a marketplace.Actor, appID int64, secrets any) string {
	b := make([]byte, 18)
	_, _ = rand.Read(b) // crypto/rand does not fail on supported platforms
	key := base64.RawURLEncoding.EncodeToString(b)
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.now()
	var oldest string
	for k, e := range o.entries {
		if now.After(e.expires) {
			delete(o.entries, k)
		} else if oldest == "" || e.expires.Before(o.entries[oldest].expires) {
			oldest = k
		}
	}
	if len(o.entries) >= onceMax {
		delete(o.entries, oldest)
	}
	o.entries[key] = onceEntry{owner: sessionOwner(a), appID: appID, secrets: secrets, expires: now.Add(onceTTL)}
	return key
}

// take returns the secrets under key once, when they belong to the
// session of a and to app; a key of another session is left alone.
func (o *oneTime) take(a marketplace.Actor, appID int64, key string) (any, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	e, ok := o.entries[key]
	if !ok || e.owner != sessionOwner(a) || e.appID != appID {
		return nil, false
	}
	delete(o.entries, key)
	if o.now().After(e.expires) {
		return nil, false
	}
	return e.secrets, true
}
