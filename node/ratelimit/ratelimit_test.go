package ratelimit_test

import (
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/parley-chat/parley/node/internal/fakeclock"
	"github.com/parley-chat/parley/node/ratelimit"
)

// clock is a manual clock for the limiter.
type clock = fakeclock.Clock

func newClock() *clock { return fakeclock.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) }

func mustNew(t *testing.T, l ratelimit.Limit, maxKeys int, opts ...ratelimit.Option) *ratelimit.Limiter {
	t.Helper()
	lim, err := ratelimit.New(l, maxKeys, opts...)
	if err != nil {
		t.Fatalf("New(%+v, %d) = %v", l, maxKeys, err)
	}
	return lim
}

func TestLimitValidate(t *testing.T) {
	tests := []struct {
		l    ratelimit.Limit
		want []string // substrings of the error; none: valid
	}{
		{ratelimit.Limit{Rate: 1, Burst: 1}, nil},
		{ratelimit.Limit{Rate: 0.001, Burst: 10}, nil},
		{ratelimit.Limit{Rate: 1e9, Burst: 1}, nil},
		{ratelimit.Limit{Rate: 0, Burst: 1}, []string{"rate 0 must be positive"}},
		{ratelimit.Limit{Rate: -1, Burst: 1}, []string{"must be positive"}},
		{ratelimit.Limit{Rate: math.NaN(), Burst: 1}, []string{"not a finite number"}},
		{ratelimit.Limit{Rate: math.Inf(1), Burst: 1}, []string{"not a finite number"}},
		{ratelimit.Limit{Rate: 2e9, Burst: 1}, []string{"above 1e9"}},
		{ratelimit.Limit{Rate: 1, Burst: 0}, []string{"burst 0 must be at least 1"}},
		{ratelimit.Limit{Rate: 0, Burst: -1}, []string{"must be positive", "burst -1"}}, // all problems at once
		{ratelimit.Limit{Rate: 1e-9, Burst: 1 << 30}, []string{"a bucket may take to fill"}},
	}
	for _, tt := range tests {
		err := tt.l.Validate()
		if len(tt.want) == 0 {
			if err != nil {
				t.Errorf("%+v.Validate() = %v, want nil", tt.l, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%+v.Validate() = nil, want an error", tt.l)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%+v.Validate() = %q, want it to contain %q", tt.l, err, w)
			}
		}
	}
}

func TestNewRefusesBadArguments(t *testing.T) {
	tests := []struct {
		name    string
		l       ratelimit.Limit
		maxKeys int
		opts    []ratelimit.Option
	}{
		{"bad limit", ratelimit.Limit{}, 10, nil},
		{"no keys", ratelimit.Limit{Rate: 1, Burst: 1}, 0, nil},
		{"empty name", ratelimit.Limit{Rate: 1, Burst: 1}, 10, []ratelimit.Option{ratelimit.WithName("")}},
	}
	for _, tt := range tests {
		if _, err := ratelimit.New(tt.l, tt.maxKeys, tt.opts...); err == nil {
			t.Errorf("%s: New(%+v, %d) = nil error, want one", tt.name, tt.l, tt.maxKeys)
		}
	}
}

// step is one request (or a clock advance) in a scripted run against one key.
type step struct {
	advance   time.Duration // first move the clock
	n         int           // then take n tokens
	ok        bool
	retryWant time.Duration
}

func TestAllowNScript(t *testing.T) {
	tests := []struct {
		name  string
		limit ratelimit.Limit
		steps []step
	}{
		{
			name:  "burst then refused",
			limit: ratelimit.Limit{Rate: 2, Burst: 3},
			steps: []step{
				{n: 1, ok: true}, {n: 1, ok: true}, {n: 1, ok: true},
				{n: 1, ok: false, retryWant: 500 * time.Millisecond},
				{n: 1, ok: false, retryWant: 500 * time.Millisecond}, // a refusal takes nothing
			},
		},
		{
			name:  "retry-after shrinks exactly with time",
			limit: ratelimit.Limit{Rate: 2, Burst: 3},
			steps: []step{
				{n: 3, ok: true},
				{advance: 100 * time.Millisecond, n: 1, ok: false, retryWant: 400 * time.Millisecond},
				{advance: 399 * time.Millisecond, n: 1, ok: false, retryWant: time.Millisecond},
				{advance: time.Millisecond, n: 1, ok: true},
				{n: 1, ok: false, retryWant: 500 * time.Millisecond},
			},
		},
		{
			name:  "refill is capped at burst",
			limit: ratelimit.Limit{Rate: 10, Burst: 2},
			steps: []step{
				{n: 2, ok: true},
				{advance: time.Hour, n: 2, ok: true},
				{n: 1, ok: false, retryWant: 100 * time.Millisecond},
			},
		},
		{
			name:  "all or none",
			limit: ratelimit.Limit{Rate: 1, Burst: 5},
			steps: []step{
				{n: 3, ok: true},
				{n: 3, ok: false, retryWant: time.Second}, // 2 left, need 3
				{n: 2, ok: true},
				{n: 5, ok: false, retryWant: 5 * time.Second},
				{advance: 5 * time.Second, n: 5, ok: true},
			},
		},
		{
			name:  "more than burst never succeeds",
			limit: ratelimit.Limit{Rate: 1, Burst: 5},
			steps: []step{
				{n: 6, ok: false, retryWant: ratelimit.Never},
				{advance: time.Hour, n: 6, ok: false, retryWant: ratelimit.Never},
				{n: 5, ok: true}, // and it took nothing
			},
		},
		{
			name:  "zero and negative take nothing",
			limit: ratelimit.Limit{Rate: 1, Burst: 1},
			steps: []step{
				{n: 0, ok: true}, {n: -3, ok: true}, {n: 1, ok: true},
				{n: 0, ok: true},
				{n: 1, ok: false, retryWant: time.Second},
			},
		},
		{
			name:  "slow rate",
			limit: ratelimit.Limit{Rate: 1.0 / 60, Burst: 1},
			steps: []step{
				{n: 1, ok: true},
				{advance: 15 * time.Second, n: 1, ok: false, retryWant: 45 * time.Second},
			},
		},
		{
			name:  "fractional rate rounds the interval to the nanosecond",
			limit: ratelimit.Limit{Rate: 3, Burst: 1},
			steps: []step{
				{n: 1, ok: true},
				{n: 1, ok: false, retryWant: 333333333 * time.Nanosecond},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClock()
			lim := mustNew(t, tt.limit, 10, ratelimit.WithClock(c.Now))
			for i, s := range tt.steps {
				c.Advance(s.advance)
				ok, retry := lim.AllowN("k", s.n)
				if ok != s.ok || retry != s.retryWant {
					t.Fatalf("step %d: AllowN(k, %d) = %v, %v, want %v, %v", i, s.n, ok, retry, s.ok, s.retryWant)
				}
			}
		})
	}
}

func TestKeysAreIndependent(t *testing.T) {
	c := newClock()
	lim := mustNew(t, ratelimit.Limit{Rate: 1, Burst: 1}, 10, ratelimit.WithClock(c.Now))
	if ok, _ := lim.Allow("a"); !ok {
		t.Fatal("Allow(a) = false, want true")
	}
	if ok, _ := lim.Allow("a"); ok {
		t.Fatal("second Allow(a) = true, want false")
	}
	if ok, _ := lim.Allow("b"); !ok {
		t.Fatal("Allow(b) after a is empty = false, want true")
	}
}

func TestEvictionBound(t *testing.T) {
	const maxKeys = 4
	c := newClock()
	lim := mustNew(t, ratelimit.Limit{Rate: 1, Burst: 1}, maxKeys, ratelimit.WithClock(c.Now))
	for i := range 100 {
		lim.Allow(fmt.Sprint("k", i))
		if got := lim.Len(); got > maxKeys {
			t.Fatalf("Len() after %d keys = %d, want at most %d", i+1, got, maxKeys)
		}
	}
	if got := lim.Len(); got != maxKeys {
		t.Errorf("Len() = %d, want %d", got, maxKeys)
	}
}

func TestEvictsLeastRecentlyUsed(t *testing.T) {
	c := newClock()
	lim := mustNew(t, ratelimit.Limit{Rate: 1, Burst: 1}, 2, ratelimit.WithClock(c.Now))
	lim.Allow("a") // a empty
	lim.Allow("b") // b empty
	lim.Allow("a") // a refused, but now most recently used
	lim.Allow("c") // evicts b, the least recently used
	if ok, _ := lim.Allow("a"); ok {
		t.Error("Allow(a) = true: a was evicted, want b evicted")
	}
	// b was forgotten, so it comes back with a fresh, full bucket
	// (documented: eviction grants, never takes).
	if ok, _ := lim.Allow("b"); !ok {
		t.Error("Allow(b) after eviction = false, want a fresh bucket")
	}
}

func TestConcurrentAllow(t *testing.T) {
	// The clock stands still, so exactly Burst tokens per key exist; many
	// goroutines racing for them must get exactly that many in total.
	const (
		burst      = 50
		goroutines = 16
		perG       = 100
		keys       = 4
	)
	c := newClock()
	lim := mustNew(t, ratelimit.Limit{Rate: 1, Burst: burst}, keys, ratelimit.WithClock(c.Now))
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		granted = map[string]int{}
	)
	for g := range goroutines {
		wg.Go(func() {
			local := map[string]int{}
			for i := range perG {
				k := fmt.Sprint("k", (g+i)%keys)
				if ok, _ := lim.Allow(k); ok {
					local[k]++
				}
			}
			mu.Lock()
			defer mu.Unlock()
			for k, n := range local {
				granted[k] += n
			}
		})
	}
	wg.Wait()
	for i := range keys {
		k := fmt.Sprint("k", i)
		if granted[k] != burst {
			t.Errorf("tokens granted to %s = %d, want %d", k, granted[k], burst)
		}
	}
}

func TestMetrics(t *testing.T) {
	c := newClock()
	reg := prometheus.NewPedanticRegistry()
	acct := mustNew(t, ratelimit.Limit{Rate: 1, Burst: 1}, 2,
		ratelimit.WithClock(c.Now), ratelimit.WithName("account"), ratelimit.WithRegisterer(reg))
	ip := mustNew(t, ratelimit.Limit{Rate: 1, Burst: 2}, 10,
		ratelimit.WithClock(c.Now), ratelimit.WithName("ip"), ratelimit.WithRegisterer(reg))

	acct.Allow("a")
	acct.Allow("a")     // limited
	acct.Allow("b")     // b empty
	acct.Allow("c")     // evicts a, which is not yet full: counted
	acct.AllowN("c", 2) // more than burst: limited
	ip.Allow("x")
	ip.Allow("x")

	want := `
# HELP parley_ratelimit_evictions_total Keys forgotten to make room while their bucket was not full (each got a fresh bucket).
# TYPE parley_ratelimit_evictions_total counter
parley_ratelimit_evictions_total{limiter="account"} 1
parley_ratelimit_evictions_total{limiter="ip"} 0
# HELP parley_ratelimit_keys Keys tracked.
# TYPE parley_ratelimit_keys gauge
parley_ratelimit_keys{limiter="account"} 2
parley_ratelimit_keys{limiter="ip"} 1
# HELP parley_ratelimit_limited_total Requests refused because their bucket had too few tokens.
# TYPE parley_ratelimit_limited_total counter
parley_ratelimit_limited_total{limiter="account"} 2
parley_ratelimit_limited_total{limiter="ip"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil || len(problems) > 0 {
		t.Errorf("GatherAndLint() = %v, %v, want no problems", problems, err)
	}
}
