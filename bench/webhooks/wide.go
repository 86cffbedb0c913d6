package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"
)

// wideRound is one event published to every installation.
type wideRound struct {
	Deliveries int     `json:"deliveries"`
	PublishMs  float64 `json:"publishRequestMs"`
	Seconds    float64 `json:"allDeliveredSeconds"` // from just before the publish request to the last receipt
}

// runWide is the wide mode: o.rounds events, one after another, each to
// every installation of the one organization, each awaited until all its
// deliveries arrived (or -drain passed).
func runWide(ctx context.Context, o options, pub *publisher, p *rig, win *window, rep *report, logf func(string, ...any)) error {
	logf("wide mode: %d rounds of one event to %d installations", o.rounds, pub.w.installs)
	t0 := win.start(ctx)
	l := &load{o: o, pub: pub, sk: p.sink, t0: t0}
	rng := rand.New(rand.NewPCG(1, 1))
	for r := range o.rounds {
		start := time.Now()
		events, deliveries, err := pub.publish(ctx, rng, int64(r), start)
		took := time.Since(start)
		if err != nil {
			return fmt.Errorf("round %d: %w", r, err)
		}
		l.events.Add(int64(events))
		l.expected.Add(int64(deliveries))
		l.latencies = append(l.latencies, took.Microseconds())
		drain(ctx, l.expected.Load, p.sink, o.drain)
		last := p.sink.lastReceipt.Load()
		round := wideRound{Deliveries: deliveries, PublishMs: float64(took.Microseconds()) / 1000,
			Seconds: time.Unix(0, last).Sub(start).Seconds()}
		if p.sink.pings.Load() < l.expected.Load() {
			round.Seconds = -1 // not all arrived
		}
		rep.Wide = append(rep.Wide, round)
		logf("round %d: %d deliveries, publish request %.0f ms, all delivered after %.2f s", r, deliveries, round.PublishMs, round.Seconds)
	}
	l.end = time.Now()
	m := win.close(ctx)
	m.backlogAtEnd = l.expected.Load() - p.sink.pings.Load()
	lat, seen, dups := p.sink.snapshot()
	rep.fill(o, m, l, lat, p.sink)
	return checkLog(ctx, p, seen, dups, rep)
}
