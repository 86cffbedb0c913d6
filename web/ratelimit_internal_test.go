package web

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/plugboard/plugboard/app/testenv"
)

// countCalls counts the commands a client sends.
type countCalls struct{ n *atomic.Int64 }

func (h countCalls) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) { return next(ctx, network, addr) }
}

func (h countCalls) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { h.n.Add(1); return next(ctx, cmd) }
}

func (h countCalls) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { h.n.Add(int64(len(cmds))); return next(ctx, cmds) }
}

// Leased budgets hold across processes: however the requests of two
// processes interleave, no more are served than the budget (plus what it
// refills while the test runs), no fewer than the budget less what the
// other process may hold leased, and a busy caller costs a Redis call per
// lease, not per request. A budget under 200 is counted exactly.
func TestLeasedBudgetsHoldAcrossProcesses(t *testing.T) {
	opts, err := redis.ParseURL(testenv.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tc := range []struct {
		name   string
		budget int
		slack  int // units the other process may hold leased
	}{
		{"exact", 100, 0},
		{"leased", 1000, 2 * (leaseSize(perWindow(1000, time.Minute)) - 1)},
		{"big", 100000, 2 * (leaseSize(perWindow(100000, time.Minute)) - 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int64
			procs := make([]*Limiter, 2)
			for i := range procs {
				rdb := redis.NewClient(opts)
				rdb.AddHook(countCalls{&calls})
				t.Cleanup(func() { _ = rdb.Close() })
				procs[i] = NewLimiter(rdb, log)
			}
			lim := perWindow(tc.budget, time.Minute)
			key := "test:" + t.Name()
			tries := min(tc.budget+tc.budget/2, 3000)
			var served, refused atomic.Int64
			start := time.Now()
			var wg sync.WaitGroup
			for g := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := g; i < tries; i += 8 {
						res, ok := procs[i%2].spend(context.Background(), key, lim)
						if !ok {
							t.Error("Redis did not answer")
							return
						}
						if res.Allowed == 1 {
							served.Add(1)
						} else {
							refused.Add(1)
							if res.RetryAfter <= 0 {
								t.Errorf("refused without a Retry-After: %+v", res)
							}
						}
					}
				}()
			}
			wg.Wait()
			refill := int(time.Since(start)*time.Duration(tc.budget)/time.Minute) + 1
			want := min(tc.budget, tries)
			if got := int(served.Load()); got > want+refill+tc.slack/2 || got < want-tc.slack {
				t.Errorf("served %d of %d tries on a budget of %d (refill %d, slack %d)", got, tries, tc.budget, refill, tc.slack)
			}
			t.Logf("served %d, refused %d, %d Redis calls", served.Load(), refused.Load(), calls.Load())
			perLease := max(leaseSize(lim), 1)
			if n := int(calls.Load()); perLease > 1 && n > 4*tries/perLease+64 {
				t.Errorf("%d Redis calls for %d requests with leases of up to %d", n, tries, perLease)
			}
		})
	}
}
