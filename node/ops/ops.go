// Package ops serves the node's operator listener: Prometheus metrics,
// liveness and readiness. It binds to loopback by default and is separate
// from the client API, so operators can firewall it on its own.
//
//	GET /metrics  Prometheus exposition of the node's own registry
//	GET /livez    200 while the process serves HTTP
//	GET /readyz   200 once every registered check passes, 503 with the
//	              failing checks' names otherwise (and while shutting down)
package ops

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Ready tracks the conditions the node must meet to be ready.
type Ready struct {
	mu      sync.Mutex
	pending map[string]bool
}

// NewReady returns a tracker waiting for every named condition.
func NewReady(conditions ...string) *Ready {
	r := &Ready{pending: map[string]bool{}}
	for _, c := range conditions {
		r.pending[c] = true
	}
	return r
}

// Set marks a condition met (ok) or not.
func (r *Ready) Set(condition string, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ok {
		delete(r.pending, condition)
	} else {
		r.pending[condition] = true
	}
}

// Pending returns the unmet conditions, sorted.
func (r *Ready) Pending() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.pending))
	for c := range r.pending {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

// Handler returns the operator listener's handler. extra mounts further
// handlers (the admin API) on the same mux.
func Handler(g prometheus.Gatherer, ready *Ready, extra map[string]http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if p := ready.Pending(); len(p) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = fmt.Fprintf(w, "not ready: %s\n", strings.Join(p, ", "))
			return
		}
		_, _ = fmt.Fprintln(w, "ready")
	})
	for pattern, h := range extra {
		mux.Handle(pattern, h)
	}
	return mux
}
