package webhooks

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// BucketStats reuses settled buckets' figures and reads only the open
// ones: over generated attempts, ranges and resolutions, every bucket is
// the direct pass's (computeStats) and the range's counts a direct count,
// both on the first computation and after attempts arrive in the open
// buckets.
func TestBucketStatsMatchADirectPass(t *testing.T) {
	w := newWorld(t, Options{})
	appID, inst, _ := w.app("https://example.com/hook")
	now := time.Now().UTC()
	d := w.delivery(appID, inst, "issue.created", DeliverySucceeded, now.Add(-8*24*time.Hour))
	rng := rand.New(rand.NewPCG(19, 23))
	classes := []string{"", "", "", ClassTimeout, ClassHTTPStatus, "connection"}
	add := func(n int, from, to time.Time) {
		for range n {
			at := from.Add(time.Duration(rng.Int64N(int64(to.Sub(from)))))
			class := classes[rng.IntN(len(classes))]
			status := 200
			if class != "" {
				status = 500
			}
			w.attempt(d, status, class, time.Duration(1+rng.IntN(5000))*time.Microsecond*37, at)
		}
	}
	add(400, now.Add(-26*time.Hour), now)
	add(100, now.Add(-8*24*time.Hour), now.Add(-26*time.Hour))
	hour := now.Truncate(time.Hour)
	ranges := []struct {
		name         string
		since, until time.Time
		res          time.Duration
	}{
		{"a day by the hour", hour.Add(-23 * time.Hour), hour.Add(time.Hour), time.Hour},
		{"a day by the hour, off the hour", now.Add(-24 * time.Hour), now, time.Hour},
		{"three hours by 15 minutes", hour.Add(-2 * time.Hour), hour.Add(time.Hour), 15 * time.Minute},
		{"the last two hours by the minute", now.Truncate(time.Minute).Add(-119 * time.Minute), now.Truncate(time.Minute).Add(time.Minute), time.Minute},
		{"a week by the day", hour.Add(-7 * 24 * time.Hour), hour.Add(time.Hour), 24 * time.Hour},
		{"the past only", hour.Add(-20 * time.Hour), hour.Add(-10 * time.Hour), time.Hour},
	}
	check := func(t *testing.T, since, until time.Time, res time.Duration) {
		t.Helper()
		got, total, err := w.store.computeBucketStats(w.ctx, appID, since, until, res)
		if err != nil {
			t.Fatal(err)
		}
		want, _, err := w.store.computeStats(w.ctx, appID, since, until, res)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%d buckets, want %d", len(got), len(want))
		}
		for i := range want {
			g, x := got[i], want[i]
			if !g.Start.Equal(x.Start) || g.Attempts != x.Attempts || g.Succeeded != x.Succeeded || g.Failed != x.Failed ||
				g.SuccessRate != x.SuccessRate || g.P50 != x.P50 || g.P95 != x.P95 || g.P99 != x.P99 || !equalMap(g.ErrorClasses, x.ErrorClasses) {
				t.Errorf("bucket %d: got %+v, want %+v", i, g, x)
			}
		}
		var n, ok int
		var byClass []struct {
			ErrorClass string
			N          int
		}
		w.db.Raw("SELECT count(*) FROM attempts WHERE app_id = ? AND created_at >= ? AND created_at < ?", appID, since, until).Scan(&n)
		w.db.Raw("SELECT count(*) FROM attempts WHERE app_id = ? AND created_at >= ? AND created_at < ? AND error_class = ''", appID, since, until).Scan(&ok)
		w.db.Raw("SELECT error_class, count(*) AS n FROM attempts WHERE app_id = ? AND created_at >= ? AND created_at < ? AND error_class <> '' GROUP BY 1",
			appID, since, until).Scan(&byClass)
		wantClasses := map[string]int{}
		for _, c := range byClass {
			wantClasses[c.ErrorClass] = c.N
		}
		rate := 0.0
		if n > 0 {
			rate = float64(ok) / float64(n)
		}
		if total.Attempts != n || total.Succeeded != ok || total.Failed != n-ok || total.SuccessRate != rate || !equalMap(total.ErrorClasses, wantClasses) {
			t.Errorf("total %+v, want %d attempts, %d succeeded, classes %v", total, n, ok, wantClasses)
		}
	}
	for round := range 3 {
		for _, r := range ranges {
			t.Run(fmt.Sprintf("%s, round %d", r.name, round), func(t *testing.T) { check(t, r.since, r.until, r.res) })
		}
		// New attempts, in the buckets still open.
		add(60, time.Now().Add(-statsSettle/2), time.Now())
	}

	// A settled bucket's figures are reused: an attempt written into it
	// late is not seen until they are read again (retention's pass, or
	// statsClosedTTL, drops them).
	r := ranges[0]
	before, _, _ := w.store.computeBucketStats(w.ctx, appID, r.since, r.until, r.res)
	w.attempt(d, 200, "", time.Millisecond, r.since.Add(time.Minute))
	after, _, _ := w.store.computeBucketStats(w.ctx, appID, r.since, r.until, r.res)
	if after[0].Attempts != before[0].Attempts {
		t.Errorf("settled bucket read again: %d attempts, then %d", before[0].Attempts, after[0].Attempts)
	}
	w.store.stats.changed(0)
	t.Run("after retention's pass", func(t *testing.T) { check(t, r.since, r.until, r.res) })
}
