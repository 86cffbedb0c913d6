package webhooks

import (
	"context"
	"testing"
	"time"
)

// A kick of an app whose drain runs in this process and looks again marks
// it here: no Redis mark, no task; the drain consumes the mark (waking if
// it waits for one), and once it has stopped looking, kicks go to Redis as
// before. A drain that quits with a local mark unconsumed kicks the app.
func TestLocalDrainMarks(t *testing.T) {
	w := newWorld(t, Options{})
	drains := func() int { return len(w.tasks(QueueWebhooks)[TypeDeliver]) }
	_, _, dirty := drainKeys(1)

	lease := w.drains.register(w.ctx, 1, time.Minute)
	w.drains.kickApps(w.ctx, []int64{1}, 1, false)
	if n := drains(); n != 0 {
		t.Fatalf("%d drains enqueued for an app whose drain runs here", n)
	}
	if n, _ := w.rdb.Exists(w.ctx, dirty).Result(); n != 0 {
		t.Error("a local kick marked the app in Redis")
	}
	if !lease.again(w.ctx) {
		t.Fatal("a locally marked app let its drain leave")
	}

	// A drain waiting for its app's next publish consumes a mark made
	// meanwhile, at the end of its wait.
	go func() {
		time.Sleep(20 * time.Millisecond)
		w.drains.kickApps(w.ctx, []int64{1}, 1, false)
	}()
	if !lease.againWithin(w.ctx, 200*time.Millisecond) {
		t.Fatal("a drain waiting for a publish left despite the kick")
	}
	if n := drains(); n != 0 {
		t.Fatalf("%d drains enqueued", n)
	}

	// Nothing marked: the drain waits, asks Redis and leaves; the next
	// kick enqueues a drain.
	if lease.againWithin(w.ctx, 10*time.Millisecond) {
		t.Fatal("a clean app kept its drain")
	}
	w.drains.kickApps(w.ctx, []int64{1}, 1, false)
	if n := drains(); n != 1 {
		t.Fatalf("%d drains after the drain left, want 1", n)
	}

	// A publish in another process marks Redis: the drain stays for it.
	other := NewDrains(w.rdb, w.queue, w.opts, w.dispatcher.log)
	lease = w.drains.register(w.ctx, 2, time.Minute)
	other.kickApps(w.ctx, []int64{2}, 1, false)
	if !lease.again(w.ctx) {
		t.Error("a drain left an app marked by another process")
	}

	// Quitting (an error, its time up) with a local mark unconsumed kicks
	// the app through Redis.
	w.drains.kickApps(w.ctx, []int64{2}, 1, false)
	before := drains()
	if !lease.leave(w.ctx) {
		t.Error("a drain quit with a local mark and did not kick")
	}
	if n := drains(); n != before+1 {
		t.Errorf("%d drains after quitting with a mark, want %d", n, before+1)
	}

	// A local entry counts only until its lease expires.
	lease = w.drains.register(w.ctx, 3, time.Second)
	w.clock.Advance(2 * time.Second)
	before = drains()
	w.drains.kickApps(w.ctx, []int64{3}, 1, false)
	if n := drains(); n != before+1 {
		t.Errorf("a kick past the local lease enqueued %d drains, want 1", n-before)
	}
	_ = lease
}

// In-flight leases a drain keeps after its requests ended (spent) count
// against the cap until its next call gives them back, which it does in
// the same call that takes new ones; a drain keeps at most a quarter of
// the cap that way.
func TestLimiterGivesSpentLeasesBackWithTheNextAdmit(t *testing.T) {
	w := newWorld(t, Options{})
	ctx := context.Background()
	sp := &spent{limiter: w.limiter, appID: 1}
	count := func() int64 { n, _ := w.rdb.ZCard(ctx, inflightKey(1)).Result(); return n }

	n, _, _, leases, err := w.limiter.admitGiving(ctx, 1, 1000, 8, 2, time.Minute, sp)
	if err != nil || n != 2 {
		t.Fatalf("took %d, %v", n, err)
	}
	if !sp.keep(leases, 8) {
		t.Fatal("two of a cap of 8 not kept")
	}
	if more := []any{"x:1"}; sp.keep(more, 8) {
		t.Error("kept more than a quarter of the cap")
	}
	if got := count(); got != 2 {
		t.Errorf("%d leases held while kept, want 2", got)
	}
	// Another drain sees them counted: 6 of 8 free.
	if n, _, _, other, _ := w.limiter.admitGiving(ctx, 1, 1000, 8, 8, time.Minute, nil); n != 6 {
		t.Errorf("another drain took %d beside 2 kept, want 6", n)
	} else {
		w.limiter.release(ctx, 1, other)
	}
	// The next admit gives the kept ones back first, in the same call.
	n, _, _, leases, err = w.limiter.admitGiving(ctx, 1, 1000, 8, 8, time.Minute, sp)
	if err != nil || n != 8 {
		t.Fatalf("after giving back: took %d, %v", n, err)
	}
	if len(sp.take()) != 0 {
		t.Error("spent leases still kept after the admit")
	}
	w.limiter.release(ctx, 1, leases)
	if got := count(); got != 0 {
		t.Errorf("%d leases left after release", got)
	}
	// A drain's registry call gives them back too.
	lease := w.drains.register(ctx, 1, time.Minute)
	lease.spent = sp
	_, _, _, leases, _ = w.limiter.admitGiving(ctx, 1, 1000, 8, 1, time.Minute, sp)
	sp.keep(leases, 8)
	if lease.again(ctx) {
		t.Error("a clean app kept its drain")
	}
	if got := count(); got != 0 {
		t.Errorf("%d leases left after the drain left", got)
	}
}
