package marketplace

import (
	"context"
	"crypto/rand"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/plugboard/plugboard/app/fault"
)

// passwords hashes and checks passwords with bcrypt, a few at a time.
//
// bcrypt is meant to be slow: at cost 11 one check is ~130 ms of one core.
// Unbounded, a flood of bad sign-ins takes every core and every other
// request waits behind it; so at most cap checks run at once (by default
// half the cores), the others wait for a slot (with their request's
// context) for at most wait, and are then refused with 503 and Retry-After.
//
// An unknown email is checked against dummy, a hash of the configured cost
// made once at start, so that it costs what a known one does and the time
// of the answer says nothing about which accounts exist.
type passwords struct {
	cost  int
	wait  time.Duration
	slots chan struct{}
	dummy []byte

	inFlight, maxInFlight, refused atomic.Int64
}

// PasswordStats is what the password slots have seen since start.
type PasswordStats struct {
	Cap         int   // checks allowed at once
	InFlight    int64 // running now
	MaxInFlight int64 // the most that ever ran at once
	Refused     int64 // turned away after waiting too long for a slot
}

func newPasswords(cost, cap int, wait time.Duration) (*passwords, error) {
	if cost < bcrypt.MinCost {
		cost = bcrypt.DefaultCost
	}
	if cap <= 0 {
		// Half the cores: with all of them, 16 parallel bad sign-ins at
		// cost 11 still took other requests' median from 2 ms to 64 ms on
		// 2 cores; with half, to 3 ms.
		cap = max(1, runtime.GOMAXPROCS(0)/2)
	}
	if wait <= 0 {
		wait = time.Second
	}
	dummy, err := bcrypt.GenerateFromPassword([]byte(rand.Text()), cost)
	if err != nil {
		return nil, fmt.Errorf("hashing the dummy password: %w", err)
	}
	return &passwords{cost: cost, wait: wait, slots: make(chan struct{}, cap), dummy: dummy}, nil
}

var errPasswordsBusy = fault.Busy("Too many sign-ins are being checked at once; try again in a moment.", time.Second)

// acquire takes a slot, waiting at most p.wait; release gives it back.
func (p *passwords) acquire(ctx context.Context) (release func(), err error) {
	select {
	case p.slots <- struct{}{}:
	default:
		t := time.NewTimer(p.wait)
		defer t.Stop()
		select {
		case p.slots <- struct{}{}:
		case <-t.C:
			p.refused.Add(1)
			return nil, errPasswordsBusy
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting to check a password: %w", ctx.Err())
		}
	}
	n := p.inFlight.Add(1)
	for {
		if m := p.maxInFlight.Load(); n <= m || p.maxInFlight.CompareAndSwap(m, n) {
			break
		}
	}
	return func() {
		p.inFlight.Add(-1)
		<-p.slots
	}, nil
}

// hash returns password's bcrypt hash at the configured cost.
func (p *passwords) hash(ctx context.Context, password string) ([]byte, error) {
	release, err := p.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	h, err := bcrypt.GenerateFromPassword([]byte(password), p.cost)
	if err != nil {
		return nil, fmt.Errorf("hashing password: %w", err)
	}
	return h, nil
}

// check reports whether password matches hash; a nil hash (no such
// account) is checked against the dummy and never matches.
func (p *passwords) check(ctx context.Context, hash []byte, password string) (bool, error) {
	release, err := p.acquire(ctx)
	if err != nil {
		return false, err
	}
	defer release()
	if hash == nil {
		_ = bcrypt.CompareHashAndPassword(p.dummy, []byte(password))
		return false, nil
	}
	return bcrypt.CompareHashAndPassword(hash, []byte(password)) == nil, nil
}

func (p *passwords) stats() PasswordStats {
	return PasswordStats{Cap: cap(p.slots), InFlight: p.inFlight.Load(), MaxInFlight: p.maxInFlight.Load(), Refused: p.refused.Load()}
}
