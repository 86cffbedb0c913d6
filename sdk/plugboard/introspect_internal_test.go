package plugboard

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// The cache's promise is a clock's: an active answer is kept at most a
// second (whatever CacheFor says), never past the token's exp, and the
// cache stays bounded.
func TestIntrospectorCacheLifetime(t *testing.T) {
	var calls atomic.Int32
	exp := time.Date(2030, 1, 1, 12, 0, 30, 0, time.UTC) // the token's exp
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		fmt.Fprintf(w, `{"active":true,"scope":"issue:read","exp":%d}`, exp.Unix())
	}))
	defer srv.Close()
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	in := &Introspector{BaseURL: srv.URL, ServiceToken: "pbh_x", CacheFor: time.Hour, now: func() time.Time { return now }}
	ask := func(token string) {
		t.Helper()
		if got, err := in.Introspect(t.Context(), token); err != nil || !got.Active {
			t.Fatalf("%s: %+v %v", token, got, err)
		}
	}
	steps := []struct {
		advance time.Duration
		want    int32 // calls so far
	}{
		{0, 1},                      // asked
		{999 * time.Millisecond, 1}, // kept
		{time.Millisecond, 2},       // a second on: asked again, though CacheFor is an hour
		{500 * time.Millisecond, 2}, // kept
		{28 * time.Second, 3},       // 12:00:29.5: asked again
		{400 * time.Millisecond, 3}, // kept
		{100 * time.Millisecond, 4}, // 12:00:30, the token's exp: not kept past it
		{100 * time.Millisecond, 5}, // past exp: each answer kept until exp, so none
	}
	for i, s := range steps {
		now = now.Add(s.advance)
		ask("pbi_a")
		if got := calls.Load(); got != s.want {
			t.Fatalf("step %d (%v): %d calls, want %d", i, now.Format("15:04:05.000"), got, s.want)
		}
	}

	// Bounded: past maxCached entries, what expired goes, and if nothing
	// did the cache starts again.
	exp = now.Add(time.Hour)
	for i := range maxCached + 5 {
		ask(fmt.Sprintf("pbi_%d", i))
	}
	if n := len(in.cache); n > maxCached {
		t.Fatalf("%d entries cached", n)
	}
}
