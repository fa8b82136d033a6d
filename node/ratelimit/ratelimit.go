// Package ratelimit is a set of token buckets keyed by string: an account
// ID, a client address, a peer ID (DESIGN §3.7; spec 09 §1). Each key has a
// bucket of Burst tokens that refills at Rate tokens per second; a request
// takes tokens or, when there are too few, is refused with the exact time
// until there will be enough.
//
// Buckets are kept as a theoretical arrival time (the generic cell rate
// algorithm, which is a token bucket written differently): one time per key,
// integer nanoseconds, no floating-point drift, so the retry-after it reports
// is exact. Nothing runs in the background: a bucket refills when it is next
// asked, from the (injectable) clock.
//
// Memory is bounded: a Limiter tracks at most maxKeys keys and, to admit a
// new one, forgets the least recently used. A forgotten key comes back with
// a fresh, full bucket, so eviction can only ever grant more, never less.
// That loses nothing when the evicted bucket had refilled (the usual case
// for the least recently used key); otherwise it gives that key a free
// burst, which parley_ratelimit_evictions_total counts. Size maxKeys above
// the number of keys active within one refill time (Burst/Rate) and eviction
// is harmless.
package ratelimit

import (
	"container/list"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Never is the retry-after of a request that can never succeed: AllowN with
// more tokens than the bucket holds.
const Never = time.Duration(math.MaxInt64)

// maxWindow bounds Burst/Rate, the time a bucket takes to fill, so that
// every duration the limiter computes fits in an int64 of nanoseconds.
const maxWindow = 100 * 365 * 24 * time.Hour

// Limit is the shape of every bucket of a Limiter.
type Limit struct {
	// Rate is how many tokens a bucket regains per second: the sustained
	// request rate. Must be positive and at most 1e9 (one per nanosecond).
	Rate float64 `toml:"rate" comment:"Tokens regained per second (the sustained rate)."`
	// Burst is how many tokens a full bucket holds: the most requests
	// allowed at once after a quiet spell. Must be at least 1.
	Burst int `toml:"burst" comment:"Tokens in a full bucket (the largest burst)."`
}

// Validate reports every problem with l at once.
func (l Limit) Validate() error {
	var errs []error
	switch {
	case math.IsNaN(l.Rate) || math.IsInf(l.Rate, 0):
		errs = append(errs, fmt.Errorf("ratelimit: rate %v is not a finite number", l.Rate))
	case l.Rate <= 0:
		errs = append(errs, fmt.Errorf("ratelimit: rate %v must be positive", l.Rate))
	case l.Rate > 1e9:
		errs = append(errs, fmt.Errorf("ratelimit: rate %v is above 1e9 per second", l.Rate))
	}
	if l.Burst < 1 {
		errs = append(errs, fmt.Errorf("ratelimit: burst %d must be at least 1", l.Burst))
	}
	if len(errs) == 0 && float64(l.Burst)/l.Rate > maxWindow.Seconds() {
		errs = append(errs, fmt.Errorf("ratelimit: burst/rate is %.0fs, above the %v a bucket may take to fill",
			float64(l.Burst)/l.Rate, maxWindow))
	}
	return errors.Join(errs...)
}

// interval is the time one token takes to come back, rounded to the
// nanosecond (at least 1ns, which Validate's bound on Rate guarantees).
func (l Limit) interval() time.Duration {
	return max(time.Duration(math.Round(float64(time.Second)/l.Rate)), 1)
}

type options struct {
	now  func() time.Time
	name string
	reg  prometheus.Registerer
}

// Option is a test seam or wiring choice for New.
type Option func(*options)

// WithClock makes the limiter read time from now instead of time.Now.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithName names the limiter in its metrics' limiter label ("account",
// "ip", "fed_peer"). It must be a fixed word, never a key. Default
// "default".
func WithName(name string) Option { return func(o *options) { o.name = name } }

// WithRegisterer registers the limiter's metrics with r. Limiters with
// different names may share one registerer.
func WithRegisterer(r prometheus.Registerer) Option { return func(o *options) { o.reg = r } }

// Limiter is a bounded set of token buckets. Its methods are safe for
// concurrent use.
type Limiter struct {
	interval time.Duration // time for one token to come back
	window   time.Duration // interval * Burst: time for an empty bucket to fill
	burst    int
	maxKeys  int
	now      func() time.Time

	limited   prometheus.Counter
	evictions prometheus.Counter
	keys      prometheus.Gauge

	mu    sync.Mutex
	byKey map[string]*list.Element // of *bucket
	lru   list.List                // front: most recently used
}

// bucket is one key's state. tat (theoretical arrival time) is when the
// bucket will be full again: a bucket holds (window - (tat - now)) /
// interval tokens, and tat <= now means it is full.
type bucket struct {
	key string
	tat time.Time
}

// New returns a Limiter whose buckets have the shape l and which tracks at
// most maxKeys keys (at least 1).
func New(l Limit, maxKeys int, opts ...Option) (*Limiter, error) {
	o := options{now: time.Now, name: "default"}
	for _, opt := range opts {
		opt(&o)
	}
	errs := []error{l.Validate()}
	if maxKeys < 1 {
		errs = append(errs, fmt.Errorf("ratelimit: max keys %d must be at least 1", maxKeys))
	}
	if o.name == "" {
		errs = append(errs, errors.New("ratelimit: name is empty"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	m, err := newMetrics(o.reg)
	if err != nil {
		return nil, err
	}
	iv := l.interval()
	return &Limiter{
		interval:  iv,
		window:    iv * time.Duration(l.Burst),
		burst:     l.Burst,
		maxKeys:   maxKeys,
		now:       o.now,
		limited:   m.limited.WithLabelValues(o.name),
		evictions: m.evictions.WithLabelValues(o.name),
		keys:      m.keys.WithLabelValues(o.name),
		byKey:     make(map[string]*list.Element),
	}, nil
}

// Allow takes one token from key's bucket. When there is none it takes
// nothing and returns false and how long until there will be one.
func (l *Limiter) Allow(key string) (ok bool, retryAfter time.Duration) {
	return l.AllowN(key, 1)
}

// AllowN takes n tokens from key's bucket, all or none. When there are
// fewer than n it takes nothing and returns false and exactly how long
// until there will be n (if nothing else takes from the bucket meanwhile).
// n larger than Burst can never succeed: it returns false and Never. n <= 0
// takes nothing and succeeds.
func (l *Limiter) AllowN(key string, n int) (ok bool, retryAfter time.Duration) {
	if n <= 0 {
		return true, 0
	}
	if n > l.burst {
		l.limited.Inc()
		return false, Never
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.lookup(key, now)
	// Taking n tokens moves the time the bucket is full again by n
	// intervals; allowed if that stays within one window of now.
	tat := b.tat
	if tat.Before(now) {
		tat = now
	}
	tat = tat.Add(time.Duration(n) * l.interval)
	if over := tat.Sub(now) - l.window; over > 0 {
		l.limited.Inc()
		return false, over
	}
	b.tat = tat
	return true, 0
}

// lookup returns key's bucket, marking it most recently used, or a new,
// full one, evicting the least recently used key if the set is full.
// l.mu is held.
func (l *Limiter) lookup(key string, now time.Time) *bucket {
	if e, ok := l.byKey[key]; ok {
		l.lru.MoveToFront(e)
		return e.Value.(*bucket)
	}
	if l.lru.Len() >= l.maxKeys {
		oldest := l.lru.Back()
		ob := l.lru.Remove(oldest).(*bucket)
		delete(l.byKey, ob.key)
		if ob.tat.After(now) { // not yet full: eviction grants tokens
			l.evictions.Inc()
		}
	}
	b := &bucket{key: key, tat: now}
	l.byKey[key] = l.lru.PushFront(b)
	l.keys.Set(float64(l.lru.Len()))
	return b
}

// Len returns the number of keys tracked.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lru.Len()
}

type metrics struct {
	limited   *prometheus.CounterVec
	evictions *prometheus.CounterVec
	keys      *prometheus.GaugeVec
}

// newMetrics builds the metric families and registers them with reg (if
// not nil). A family already registered by another Limiter is shared.
func newMetrics(reg prometheus.Registerer) (metrics, error) {
	m := metrics{
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_ratelimit_limited_total",
			Help: "Requests refused because their bucket had too few tokens.",
		}, []string{"limiter"}),
		evictions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_ratelimit_evictions_total",
			Help: "Keys forgotten to make room while their bucket was not full (each got a fresh bucket).",
		}, []string{"limiter"}),
		keys: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "parley_ratelimit_keys",
			Help: "Keys tracked.",
		}, []string{"limiter"}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.limited, err = register(reg, m.limited); err != nil {
		return metrics{}, err
	}
	if m.evictions, err = register(reg, m.evictions); err != nil {
		return metrics{}, err
	}
	if m.keys, err = register(reg, m.keys); err != nil {
		return metrics{}, err
	}
	return m, nil
}

// register registers c with reg, or returns the identical collector that
// another Limiter registered first.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, fmt.Errorf("ratelimit: registering metrics: %w", err)
}
