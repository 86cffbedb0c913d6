package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"
)

// readInfo is the API read load's outcome: the delivery log list and the
// health figures of the apps, read by their partner at a fixed rate.
type readInfo struct {
	Attempts     int64   `json:"attemptsStored"`
	RateTarget   float64 `json:"requestsPerSecondTarget"`
	Requests     int64   `json:"requests"`
	PerSec       float64 `json:"requestsPerSecond"`
	Errors       int64   `json:"errors"`
	FirstError   string  `json:"firstError,omitempty"`
	MaxLagMs     float64 `json:"maxScheduleLagMs"`
	List         dist    `json:"list"`
	Stats        dist    `json:"stats"`
	All          dist    `json:"all"`
	ListPath     string  `json:"listPath"`
	StatsPath    string  `json:"statsPath"`
	ListRowsSeen int64   `json:"listRowsSeen"`
}

// runAPI is the api mode: o.publishers readers follow a fixed schedule of
// o.rate requests/s for o.duration, alternating GET …/deliveries/ and GET
// …/stats/ (the defaults a dashboard asks for: the newest page, the last 24
// hours by the hour) of an app chosen at random, as its partner.
func runAPI(ctx context.Context, o options, p *rig, w *world, win *window, rep *report, hc *http.Client, logf func(string, ...any)) error {
	c := &client{base: p.base, token: w.partnerToken, hc: hc}
	ri := &readInfo{Attempts: o.attempts, RateTarget: o.rate, ListPath: "/api/0/apps/{app}/deliveries/", StatsPath: "/api/0/apps/{app}/stats/"}
	// Every app's first page and figures once, unmeasured: the connections
	// and the plans warm up as they would in a process that has been up.
	for _, slug := range w.appSlugs {
		if err := c.do(ctx, "GET", "/api/0/apps/"+slug+"/deliveries/", nil, 200, nil); err != nil {
			return err
		}
		if err := c.do(ctx, "GET", "/api/0/apps/"+slug+"/stats/", nil, 200, nil); err != nil {
			return err
		}
	}
	logf("api mode: %.0f requests/s for %s over %d apps, %d readers", o.rate, o.duration, len(w.appSlugs), o.publishers)
	t0 := win.start(ctx)
	end := t0.Add(o.duration)
	var (
		seq, errs, maxLag atomic.Int64
		firstErr          atomic.Value
		mu                sync.Mutex
		lists, stats      []int64
		wg                sync.WaitGroup
	)
	for g := range o.publishers {
		rng := rand.New(rand.NewPCG(uint64(o.seed), uint64(g)))
		wg.Go(func() {
			pprof.Do(ctx, roleLoad, func(ctx context.Context) {
				var myL, myS []int64
				for ctx.Err() == nil {
					n := seq.Add(1) - 1
					at := t0.Add(time.Duration(float64(n) * float64(time.Second) / o.rate))
					if !at.Before(end) {
						break
					}
					if d := time.Until(at); d > 0 {
						time.Sleep(d)
					} else if lag := int64(-d); lag > maxLag.Load() {
						maxLag.Store(lag)
					}
					slug := w.appSlugs[rng.IntN(len(w.appSlugs))]
					path := "/api/0/apps/" + slug + "/deliveries/"
					if n%2 == 1 {
						path = "/api/0/apps/" + slug + "/stats/"
					}
					start := time.Now()
					err := c.do(ctx, "GET", path, nil, 200, nil)
					took := time.Since(start).Microseconds()
					if err != nil {
						errs.Add(1)
						firstErr.CompareAndSwap(nil, err.Error())
						continue
					}
					if n%2 == 1 {
						myS = append(myS, took)
					} else {
						myL = append(myL, took)
					}
				}
				mu.Lock()
				lists, stats = append(lists, myL...), append(stats, myS...)
				mu.Unlock()
			})
		})
	}
	wg.Wait()
	m := win.close(ctx)
	ri.Requests = int64(len(lists) + len(stats))
	ri.PerSec = float64(ri.Requests) / m.window.Seconds()
	ri.Errors = errs.Load()
	if e, ok := firstErr.Load().(string); ok {
		ri.FirstError = e
	}
	ri.MaxLagMs = float64(maxLag.Load()) / 1e6
	all := append(append([]int64(nil), lists...), stats...)
	ri.List, ri.Stats, ri.All = percentiles(lists), percentiles(stats), percentiles(all)
	rep.Reads = ri
	l := &load{o: o, t0: t0, end: end}
	rep.fillReads(o, m, l, ri.Requests)
	if ri.Requests == 0 {
		return fmt.Errorf("no read succeeded: %s", ri.FirstError)
	}
	return nil
}
