package marketplace

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/plugboard/plugboard/app/fault"
	"github.com/plugboard/plugboard/webhooks"
)

// publishGroup coalesces concurrent single-event publishes into shared
// transactions (group commit). At most runners publish transactions run at
// once; a publish that finds them all busy waits, and the next transaction
// to start takes every publish waiting by then, up to MaxBatch. Each caller
// is answered after the transaction holding its event commits, so a 201
// still means the event and its deliveries are durable. Unloaded, a publish
// finds a free runner and goes at once: nothing waits for company.
//
// One event per transaction made the single-event route cost a commit (and
// a WAL fsync), seven round trips and a Redis call per event, where the
// batch route spreads them over up to a thousand; under load the group
// route gets most of that.
type publishGroup struct {
	mu      sync.Mutex
	cond    *sync.Cond
	queue   []*pendingPublish
	running int
	runners int
}

// pendingPublish is one caller's event, waiting to be written.
type pendingPublish struct {
	ref   string // the organization, by slug or id
	ev    webhooks.NewEvent
	taken bool // a transaction holds it (under publishGroup.mu)
	done  chan struct{}
	out   *webhooks.Event
	err   error
}

// publishRunners is how many grouped publish transactions run at once:
// enough that a commit's fsync overlaps another transaction's statements,
// few enough that waiting publishes pile up into bigger groups.
const publishRunners = 2

func newPublishGroup(runners int) *publishGroup {
	g := &publishGroup{runners: runners}
	g.cond = sync.NewCond(&g.mu)
	return g
}

// publish writes p's event, in a transaction of its own or shared with
// the publishes waiting beside it (run writes a group, and returns the
// kick of its drains, or nil), and returns what became of it. The runner
// is given back at the commit: the kick runs after, in the caller that
// ran the group, while the next group starts.
func (g *publishGroup) publish(p *pendingPublish, run func([]*pendingPublish) (kick func())) (*webhooks.Event, error) {
	p.done = make(chan struct{})
	g.mu.Lock()
	g.queue = append(g.queue, p)
	for !p.taken {
		if g.running < g.runners {
			n := min(len(g.queue), MaxBatch)
			group := g.queue[:n:n]
			g.queue = append([]*pendingPublish(nil), g.queue[n:]...)
			for _, q := range group {
				q.taken = true
			}
			g.running++
			g.mu.Unlock()
			kick := run(group)
			g.mu.Lock()
			g.running--
			g.cond.Broadcast()
			g.mu.Unlock()
			for _, q := range group {
				close(q.done)
			}
			if kick != nil {
				kick()
			}
			g.mu.Lock()
			break
		}
		g.cond.Wait()
	}
	g.mu.Unlock()
	<-p.done
	return p.out, p.err
}

// publishGroupTimeout bounds a grouped transaction: it runs for many
// callers, so no one caller's cancellation stops it.
const publishGroupTimeout = 30 * time.Second

// writeGroup publishes a group of single-event publishes in one
// transaction: their organizations in one query, every event and delivery
// in one statement (Outbox.PublishMany). If the transaction fails, each
// event is tried again in one of its own, so that an event that cannot be
// written fails alone. It returns the kick of the written deliveries'
// drains (webhooks.Prelude.Kick), nil for none.
func (s *Events) writeGroup(ctx context.Context, group []*pendingPublish) (kick func()) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), publishGroupTimeout)
	defer cancel()
	var at []*pendingPublish
	refs := make([]string, len(group))
	for i, p := range group {
		refs[i] = p.ref
	}
	q, args := orgsQuery(refs)
	orgs := make(map[string]int64, len(group))
	var kicks []func()
	kickAll := func() {
		for _, k := range kicks {
			k()
		}
	}
	res, err := s.outbox.PublishTx(ctx, s.db, webhooks.Prelude{
		Kick: func(k func()) { kicks = append(kicks, k) },
		SQL:  q, Args: args,
		Scan: func(rows pgx.Rows) error { return scanOrgs(rows, orgs) },
		Events: func() ([]webhooks.NewEvent, error) {
			var valid []webhooks.NewEvent
			at = at[:0]
			for _, p := range group {
				p.out, p.err = nil, nil
				org, ok := orgs[p.ref]
				if !ok {
					p.err = fault.NotFound("organization")
					continue
				}
				p.ev.OrganizationID = org
				valid, at = append(valid, p.ev), append(at, p)
			}
			return valid, nil
		},
	})
	for k, r := range res {
		at[k].out, at[k].err = r.Event, r.Err
	}
	if err == nil {
		return kickAll
	}
	if len(group) == 1 {
		group[0].out, group[0].err = nil, err
		return kickAll
	}
	for _, p := range group {
		if k := s.writeGroup(ctx, []*pendingPublish{p}); k != nil {
			kicks = append(kicks, k)
		}
	}
	return kickAll
}
