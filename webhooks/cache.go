package webhooks

import (
	"context"
	"fmt"
	"sync"
	"time"

	"gorm.io/gorm"
)

// ttlCache keeps values by key for ttl: the catalogue's event types and
// their scopes, read on every publish and changed rarely. Only what was
// found is kept, so a new event type is seen at once; a change made by
// another process is seen within ttl, one made here at once (forget).
type ttlCache[V any] struct {
	ttl time.Duration
	mu  sync.RWMutex
	m   map[string]ttlEntry[V]
}

type ttlEntry[V any] struct {
	v  V
	at time.Time
}

func newTTLCache[V any](ttl time.Duration) *ttlCache[V] {
	return &ttlCache[V]{ttl: ttl, m: map[string]ttlEntry[V]{}}
}

func (c *ttlCache[V]) get(key string) (V, bool) {
	c.mu.RLock()
	e, ok := c.m[key]
	c.mu.RUnlock()
	if !ok || time.Since(e.at) > c.ttl {
		var zero V
		return zero, false
	}
	return e.v, true
}

func (c *ttlCache[V]) put(key string, v V) {
	c.mu.Lock()
	if len(c.m) > 10000 {
		clear(c.m) // bounded: event types are few
	}
	c.m[key] = ttlEntry[V]{v: v, at: time.Now()}
	c.mu.Unlock()
}

func (c *ttlCache[V]) forget(key string) {
	c.mu.Lock()
	delete(c.m, key)
	c.mu.Unlock()
}

// catalogTTL is how long a process keeps an event type it read: event
// types are created, never changed by the API, so this bounds only how
// long a change made in SQL takes to be seen.
const catalogTTL = 30 * time.Second

// scopeCache is the scope of each event type, for Outbox.Publish.
type scopeCache struct{ c *ttlCache[string] }

func newScopeCache() *scopeCache { return &scopeCache{c: newTTLCache[string](catalogTTL)} }

// get returns typ's scope, from the catalogue on tx when not cached; ""
// for a type that is not in it (nothing is cached then).
func (s *scopeCache) get(ctx context.Context, tx *gorm.DB, typ string) (string, error) {
	if v, ok := s.c.get(typ); ok {
		return v, nil
	}
	var scopes []string
	if err := tx.WithContext(ctx).Model(&EventType{}).Where("name = ?", typ).Pluck("scope", &scopes).Error; err != nil {
		return "", fmt.Errorf("finding %s's scope: %w", typ, err)
	}
	if len(scopes) == 0 {
		return "", nil
	}
	s.c.put(typ, scopes[0])
	return scopes[0], nil
}
