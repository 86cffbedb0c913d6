package webhooks

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
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

// Listeners tracks listen sessions in Redis: a sorted set of sessions per
// app scored by expiry, and a pub/sub channel per app.
type Listeners struct {
	rdb   redis.UniversalClient
	mu    sync.Mutex
	cache map[int64]listenCache
}

type listenCache struct {
	any bool
	at  time.Time
}

// NewListeners returns the registry.
func NewListeners(rdb redis.UniversalClient) *Listeners {
	return &Listeners{rdb: rdb, cache: map[int64]listenCache{}}
}

func listenKey(appID int64) string {
	return "plugboard:listen:sessions:" + strconv.FormatInt(appID, 10)
}
func listenChannel(appID int64) string { return "plugboard:listen:" + strconv.FormatInt(appID, 10) }

// Listen opens a session for appID and returns the forwarded deliveries
// until ctx ends. The session is kept alive while ctx lasts.
func (l *Listeners) Listen(ctx context.Context, appID int64, session string) (<-chan Forwarded, error) {
	sub := l.rdb.Subscribe(ctx, listenChannel(appID))
	if _, err := sub.Receive(ctx); err != nil {
		sub.Close()
		return nil, fmt.Errorf("subscribing: %w", err)
	}
	keep := func() {
		l.rdb.ZAdd(context.WithoutCancel(ctx), listenKey(appID), redis.Z{Score: float64(time.Now().Add(30 * time.Second).Unix()), Member: session})
	}
	keep()
	out := make(chan Forwarded, 64)
	go func() {
		defer close(out)
		defer sub.Close()
		defer l.rdb.ZRem(context.WithoutCancel(ctx), listenKey(appID), session)
		tick := time.NewTicker(10 * time.Second)
		defer tick.Stop()
		msgs := sub.Channel()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				keep()
			case m, ok := <-msgs:
				if !ok {
					return
				}
				var f Forwarded
				if json.Unmarshal([]byte(m.Payload), &f) == nil {
					select {
					case out <- f:
					default: // a slow listener drops, never the dispatcher
					}
				}
			}
		}
	}()
	return out, nil
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
