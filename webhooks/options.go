package webhooks

import "time"

// Options tune delivery; app fills them from config. Every constructor
// that takes them fills the defaults itself.
type Options struct {
	// RetrySchedule is the delay before each attempt: the first is usually 0.
	RetrySchedule []time.Duration
	Timeout       time.Duration
	// AllowPrivate lets webhooks reach loopback and private addresses
	// (development and tests).
	AllowPrivate bool
	Retention    time.Duration
	// DisableAfter is how long an endpoint may fail every delivery before it
	// is disabled.
	DisableAfter       time.Duration
	DefaultRateLimit   int // deliveries per second per app
	DefaultMaxInFlight int // concurrent requests per app
	// RelayGrace is how long a due delivery may sit before the relay
	// enqueues it again.
	RelayGrace time.Duration
	BatchSize  int
	Version    string
	// EndpointCacheTTL is how long a process keeps an app's endpoint (URL,
	// secrets, limits) before reading it again; Forget drops it at once.
	// Zero is the default, 2 s; a negative value keeps nothing.
	EndpointCacheTTL time.Duration
	// MaxDataDepth bounds how deep event data may nest (objects and
	// arrays; data itself is level 1). Zero is DefaultMaxDataDepth, 64.
	MaxDataDepth int
	// Workers is the worker's task concurrency (PLUGBOARD_WORKER_CONCURRENCY):
	// at most a third of it, and 12, may be drains waiting for their app's
	// next publish (idleFor). Zero is 20.
	Workers int
	// Now is the clock for what tests need to move: publish times, the relay
	// grace, the retention cutoff, a redelivery's start, endpoint health
	// and the endpoint cache. Durations of requests use the real clock.
	Now func() time.Time
}

// DefaultSchedule: at once, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
var DefaultSchedule = []time.Duration{0, 5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour}

// withDefaults is o with every unset option at its default.
func (o Options) withDefaults() Options {
	if len(o.RetrySchedule) == 0 {
		o.RetrySchedule = DefaultSchedule
	}
	if o.Timeout == 0 {
		o.Timeout = 15 * time.Second
	}
	if o.Retention == 0 {
		o.Retention = 30 * 24 * time.Hour
	}
	if o.DisableAfter == 0 {
		o.DisableAfter = 72 * time.Hour
	}
	if o.DefaultRateLimit == 0 {
		o.DefaultRateLimit = 50
	}
	if o.DefaultMaxInFlight == 0 {
		o.DefaultMaxInFlight = 10
	}
	if o.Workers <= 0 {
		o.Workers = 20
	}
	if o.RelayGrace == 0 {
		o.RelayGrace = 30 * time.Second
	}
	if o.BatchSize == 0 {
		o.BatchSize = 100
	}
	if o.EndpointCacheTTL == 0 {
		o.EndpointCacheTTL = 2 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}
