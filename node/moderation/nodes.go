package moderation

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/protocol/keys"
)

// maxWatchedNodes bounds the remote nodes NodeWatch tracks; when full, the
// node whose newest report is oldest is forgotten.
const maxWatchedNodes = 4096

// NodeWatch is the node-level policy (spec 13 §3.1): it counts the verified
// reports this node's users file about the users of each remote node, and
// throttles a node once Config.ThrottleNodeReports of them fall within
// Config.Window. Tickets are unlinkable, so other nodes cannot see a node
// keep suspended users in the lottery; reports about its users are the
// signal. The counts live in memory (a restart forgets them) and the
// throttle is the operator's to lift (parleyd admin nodes unthrottle).
type NodeWatch struct {
	cfg       Config
	throttle  func(keys.NodeID)
	now       func() time.Time
	log       *slog.Logger
	throttles prometheus.Counter

	mu    sync.Mutex
	times map[keys.NodeID][]time.Time // report times within the window, oldest first
	done  map[keys.NodeID]bool        // throttled by this watch
}

// NewNodeWatch returns the node-level policy of cfg (zero fields take their
// defaults); throttle is called once per node that reaches the threshold.
func NewNodeWatch(cfg Config, throttle func(keys.NodeID), opts ...Option) (*NodeWatch, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o := options{now: time.Now, logger: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(&o)
	}
	w := &NodeWatch{
		cfg: cfg.withDefaults(), throttle: throttle, now: o.now, log: o.logger.With("subsystem", "moderation"),
		throttles: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_moderation_node_throttles_total",
			Help: "Remote nodes throttled automatically for the verified reports about their users.",
		}),
		times: make(map[keys.NodeID][]time.Time),
		done:  make(map[keys.NodeID]bool),
	}
	if o.reg != nil {
		if err := o.reg.Register(w.throttles); err != nil {
			return nil, fmt.Errorf("moderation: registering metrics: %w", err)
		}
	}
	return w, nil
}

// Reported counts one verified report about a user of node, and throttles
// node if that reaches the threshold. It returns whether it throttled now.
func (w *NodeWatch) Reported(node keys.NodeID) bool {
	if w.cfg.ThrottleNodeReports < 0 {
		return false
	}
	now := w.now()
	w.mu.Lock()
	ts := w.times[node]
	cut := 0
	for cut < len(ts) && !ts[cut].After(now.Add(-w.cfg.Window)) {
		cut++
	}
	ts = append(ts[cut:], now)
	if len(ts) > w.cfg.ThrottleNodeReports {
		ts = ts[len(ts)-w.cfg.ThrottleNodeReports:]
	}
	if _, ok := w.times[node]; !ok && len(w.times) >= maxWatchedNodes {
		w.forgetOldestLocked()
	}
	w.times[node] = ts
	act := len(ts) >= w.cfg.ThrottleNodeReports && !w.done[node]
	if act {
		w.done[node] = true
	}
	w.mu.Unlock()
	if act {
		w.throttles.Inc()
		w.log.Warn("throttling a node for the verified reports about its users", "node", node.String(), "reports", w.cfg.ThrottleNodeReports, "window", w.cfg.Window.String())
		w.throttle(node)
	}
	return act
}

func (w *NodeWatch) forgetOldestLocked() {
	var oldest keys.NodeID
	var at time.Time
	first := true
	for n, ts := range w.times {
		if last := ts[len(ts)-1]; first || last.Before(at) {
			oldest, at, first = n, last, false
		}
	}
	delete(w.times, oldest)
	delete(w.done, oldest)
}
