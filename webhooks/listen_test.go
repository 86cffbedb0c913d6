package webhooks

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/plugboard/plugboard/app/fault"
)

// listenApp is an app id no other test's sessions use: pub/sub channels
// are shared by every Redis database the tests run on.
func listenApp() int64 { return 1_000_000 + rand.Int64N(1_000_000_000) }

// publishN publishes n forwarded deliveries to app's channel, as the
// dispatcher does.
func publishN(t *testing.T, w *world, appID int64, n int) {
	t.Helper()
	pipe := w.rdb.Pipeline()
	for i := range n {
		b, _ := json.Marshal(Forwarded{DeliveryID: fmt.Sprint(i), EventType: "issue.created", Body: "{}"})
		pipe.Publish(w.ctx, listenChannel(appID), b)
	}
	if _, err := pipe.Exec(w.ctx); err != nil {
		t.Fatal(err)
	}
}

// Every session of the process hears its app's deliveries; a session that
// does not read is closed once its buffer is full, and the others get
// everything all the same.
func TestListenersFanOutAndCloseSlowSessions(t *testing.T) {
	w := newWorld(t, Options{})
	appID := listenApp()
	ctx, cancel := context.WithCancel(w.ctx)
	defer cancel()
	const readers, chunk, chunks = 5, listenBuffer / 2, 3
	const n = chunk * chunks
	slow, err := w.listeners.Listen(ctx, appID, "user:slow", "slow")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	got := make([]int, readers)
	var wg sync.WaitGroup
	for i := range readers {
		ch, err := w.listeners.Listen(ctx, appID, fmt.Sprintf("user:%d", i), fmt.Sprintf("reader-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range ch {
				mu.Lock()
				got[i]++
				all := got[i] == n
				mu.Unlock()
				if all {
					return
				}
			}
		}()
	}
	// A chunk at a time, each read by the readers before the next, while
	// the slow session reads nothing.
	for c := 1; c <= chunks; c++ {
		publishN(t, w, appID, chunk)
		waitFor(t, func() bool {
			mu.Lock()
			defer mu.Unlock()
			for _, g := range got {
				if g < c*chunk {
					return false
				}
			}
			return true
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("the readers got %v of %d", got, n)
	}
	// The slow one kept what its buffer held, then was closed.
	held := 0
	for range slow {
		held++
	}
	if held != listenBuffer {
		t.Errorf("the slow session held %d, want %d", held, listenBuffer)
	}
	// Its places are given back once its stream is over.
	cancel()
	waitFor(t, func() bool {
		w.listeners.mu.Lock()
		defer w.listeners.mu.Unlock()
		return w.listeners.open == 0
	})
}

// Sessions are capped per owner and per app across the platform (429
// too_many_streams), and per process (503); a closed session's place is
// free again at once.
func TestListenersAreCapped(t *testing.T) {
	w := newWorld(t, Options{})
	l := NewListeners(w.rdb, ListenLimits{PerOwner: 2, PerApp: 3, Process: 4}, nil)
	t.Cleanup(l.Close)
	appID, other := listenApp(), listenApp()
	ctx, cancel := context.WithCancel(w.ctx)
	defer cancel()
	open := func(app int64, owner string) (context.CancelFunc, error) {
		sctx, stop := context.WithCancel(ctx)
		_, err := l.Listen(sctx, app, owner, fmt.Sprint(rand.Int64()))
		return stop, err
	}
	refused := func(err error, status int, code fault.Code) {
		t.Helper()
		fe, ok := fault.As(err)
		wait, _ := fault.Detail[time.Duration](err, fault.DetailRetryAfter)
		if !ok || fe.Code != code || wait <= 0 || (status == http.StatusTooManyRequests) != (fe.Kind == fault.KindRateLimited) {
			t.Errorf("got %v, want %s with a Retry-After", err, code)
		}
	}
	stopA1, err1 := open(appID, "user:a")
	_, err2 := open(appID, "user:a")
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	_, err := open(appID, "user:a")
	refused(err, http.StatusTooManyRequests, fault.TooManyStreams) // per owner
	if _, err := open(appID, "user:b"); err != nil {
		t.Fatal(err)
	}
	_, err = open(appID, "user:c")
	refused(err, http.StatusTooManyRequests, fault.TooManyStreams) // per app
	if _, err := open(other, "user:c"); err != nil {               // another app, under every cap
		t.Fatal(err)
	}
	_, err = open(other, "user:d")
	refused(err, http.StatusServiceUnavailable, fault.Unavailable) // per process
	// Closing one gives its places back.
	stopA1()
	waitFor(t, func() bool { _, err := open(appID, "user:a"); return err == nil })
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !ok(); {
		if time.Now().After(deadline) {
			t.Fatal("never")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
