package api

import (
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Rate limiter scopes, the values of the scope label.
const (
	scopeAccount = "account"
	scopeIP      = "ip"
)

// buckets is the built-in Limiter: one token bucket per key, at most max
// keys. Buckets are filled lazily from the clock, so it needs no goroutine.
// When the map is full, buckets that have refilled completely are dropped
// (a new bucket starts full, so that loses nothing), then arbitrary ones,
// down to three quarters of max, so the sweep's cost is amortised.
type buckets struct {
	rate Rate
	max  int
	now  func() time.Time

	mu sync.Mutex
	m  map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

var _ Limiter = (*buckets)(nil)

func newBuckets(r Rate, maxKeys int, now func() time.Time) *buckets {
	return &buckets{rate: r, max: maxKeys, now: now, m: make(map[string]*bucket)}
}

// Allow implements Limiter.
func (b *buckets) Allow(key string) (bool, time.Duration) {
	now := b.now()
	burst := float64(b.rate.Burst)
	b.mu.Lock()
	defer b.mu.Unlock()
	bk := b.m[key]
	if bk == nil {
		if len(b.m) >= b.max {
			b.evict(now)
		}
		bk = &bucket{tokens: burst, last: now}
		b.m[key] = bk
	}
	if d := now.Sub(bk.last); d > 0 {
		bk.tokens = min(burst, bk.tokens+d.Seconds()*b.rate.PerSecond)
		bk.last = now
	}
	if bk.tokens >= 1 {
		bk.tokens--
		return true, 0
	}
	wait := time.Duration((1 - bk.tokens) / b.rate.PerSecond * float64(time.Second))
	return false, max(wait, time.Millisecond)
}

func (b *buckets) evict(now time.Time) {
	burst := float64(b.rate.Burst)
	for k, bk := range b.m {
		if bk.tokens+now.Sub(bk.last).Seconds()*b.rate.PerSecond >= burst {
			delete(b.m, k)
		}
	}
	target := b.max * 3 / 4
	for k := range b.m {
		if len(b.m) <= target {
			break
		}
		delete(b.m, k)
	}
}

// clientKey is the rate-limit key of r's client: its IP address, an IPv6
// address reduced to its /64 (one host usually holds a whole /64). With
// trustProxy, the address is the last one in the last X-Forwarded-For
// header: the one the proxy in front of the node added; earlier ones are
// the client's to choose.
func clientKey(r *http.Request, trustProxy bool) string {
	host := r.RemoteAddr
	if ap, err := netip.ParseAddrPort(host); err == nil {
		host = ap.Addr().String()
	}
	if trustProxy {
		if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
			last := xff[len(xff)-1]
			if i := strings.LastIndexByte(last, ','); i >= 0 {
				last = last[i+1:]
			}
			if a, err := netip.ParseAddr(strings.TrimSpace(last)); err == nil {
				host = a.String()
			}
		}
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	addr = addr.Unmap().WithZone("")
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		return p.String()
	}
	return addr.String()
}
