package main

import (
	"context"
	"math"
	"math/rand/v2"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// load is the publishers of the measurement window: -publishers goroutines
// that publish bench.ping events until the window ends, at -rate or, in
// throughput mode, as fast as the backlog allows.
type load struct {
	o   options
	pub *publisher
	sk  *sink
	t0  time.Time
	end time.Time

	seq       atomic.Int64 // the next event's data.seq
	expected  atomic.Int64 // deliveries the published events fan out to
	events    atomic.Int64 // events published
	pubErrors atomic.Int64
	maxLag    atomic.Int64 // nanoseconds a publisher fell behind schedule, at most
	firstErr  atomic.Value // string

	mu        sync.Mutex
	latencies []int64 // of each publish request, in µs

	wg sync.WaitGroup
}

// startLoad starts the publishers; they stop at t0+o.duration or with ctx.
func startLoad(ctx context.Context, o options, pub *publisher, sk *sink, t0 time.Time) *load {
	l := &load{o: o, pub: pub, sk: sk, t0: t0, end: t0.Add(o.duration)}
	for i := range o.publishers {
		rng := rand.New(rand.NewPCG(uint64(o.seed), uint64(i)))
		l.wg.Go(func() { pprof.Do(ctx, roleLoad, func(ctx context.Context) { l.publishLoop(ctx, rng) }) })
	}
	return l
}

// wait returns once every publisher has stopped.
func (l *load) wait() { l.wg.Wait() }

func (l *load) publishLoop(ctx context.Context, rng *rand.Rand) {
	per := int64(max(1, l.o.batch)) // events per request
	guess := int64(math.Ceil(l.pub.w.meanFanout() * float64(per)))
	for ctx.Err() == nil {
		n := l.seq.Add(per) - per
		if l.o.rate > 0 {
			at := l.t0.Add(time.Duration(float64(n) * float64(time.Second) / l.o.rate))
			if !at.Before(l.end) {
				return
			}
			if d := time.Until(at); d > 0 {
				time.Sleep(d)
			} else if lag := -d; int64(lag) > l.maxLag.Load() {
				l.maxLag.Store(int64(lag))
			}
		}
		if l.o.mode == "throughput" {
			for l.expected.Load()-l.sk.pings.Load() > int64(l.o.backlog) && time.Now().Before(l.end) {
				time.Sleep(time.Millisecond)
			}
		}
		if !time.Now().Before(l.end) {
			return
		}
		// Counted before the request, so the backlog never looks smaller
		// than it is; corrected by what the answer says.
		l.expected.Add(guess)
		start := time.Now()
		events, deliveries, err := l.pub.publish(ctx, rng, n, start)
		took := time.Since(start).Microseconds()
		l.mu.Lock()
		l.latencies = append(l.latencies, took)
		l.mu.Unlock()
		l.expected.Add(int64(deliveries) - guess)
		l.events.Add(int64(events))
		if err != nil {
			l.pubErrors.Add(1)
			l.firstErr.CompareAndSwap(nil, err.Error())
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// publishLatencies are the publish requests' durations in µs so far.
func (l *load) publishLatencies() []int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.latencies)
}

// sampler watches the window: the asynq webhooks queue every 2 s (are the
// workers busy?) and the progress every 10 s.
type sampler struct {
	stop chan struct{}
	once sync.Once
	mu   sync.Mutex
	qs   []queueInfo
}

func startSampler(w *window, l *load, sk *sink, logf func(string, ...any)) *sampler {
	s := &sampler{stop: make(chan struct{})}
	go func() {
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				if q := w.queue(); q != nil {
					s.mu.Lock()
					s.qs = append(s.qs, *q)
					s.mu.Unlock()
				}
			}
		}
	}()
	go func() {
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		last := int64(0)
		for {
			select {
			case <-s.stop:
				return
			case now := <-t.C:
				p := sk.pings.Load()
				logf("%5.0fs  %7.0f deliveries/s  backlog %d", now.Sub(l.t0).Seconds(), float64(p-last)/10, l.expected.Load()-p)
				last = p
			}
		}
	}()
	return s
}

// close stops the sampling; it may be called more than once.
func (s *sampler) close() { s.once.Do(func() { close(s.stop) }) }

// average is the queue's average over the samples; nil without any.
func (s *sampler) average() *queueAvg {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.qs)
	if n == 0 {
		return nil
	}
	var pend, act float64
	for _, q := range s.qs {
		pend += float64(q.Pending)
		act += float64(q.Active)
	}
	return &queueAvg{Samples: n, Pending: pend / float64(n), Active: act / float64(n)}
}
