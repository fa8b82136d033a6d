package federation

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/node/outbox"
	"github.com/parley-chat/parley/protocol/wire"
)

// Config is the delivery part of the node configuration (suggested
// section: [federation.delivery]). Zero fields take their defaults.
type Config struct {
	// MaxBatch is the most envelopes the sender puts in one Batch frame.
	// Default 256; at most wire.MaxDeliverEnvelopes (1024).
	MaxBatch int `toml:"max_batch" comment:"Most envelopes per delivery frame (default 256, max 1024)."`
	// Window is how many Batches the sender writes to one destination
	// ahead of their Acks (spec 12-delivery §1). A Batch goes ahead of
	// another's Ack only with at least a quarter of MaxBatch entries
	// queued, so that light load is sent one Batch at a time and heavy
	// load in large Batches. Default 4; 1 to MaxWindow.
	Window int `toml:"window" comment:"Delivery frames in flight per destination before their acks (default 4, max 16)."`
	// DialTimeout bounds opening a delivery stream to a destination.
	// Default 10s.
	DialTimeout time.Duration `toml:"dial_timeout" comment:"How long opening a delivery stream may take (default \"10s\")."`
	// AckTimeout bounds writing a Batch and reading its Ack, and, on the
	// receiving side, storing a Batch and writing its Ack. Default 30s.
	AckTimeout time.Duration `toml:"ack_timeout" comment:"How long a batch may wait for its acknowledgement (default \"30s\")."`
	// IdleTimeout is how long the receiving side waits for the next frame
	// on a delivery stream before closing it. Default 2m.
	IdleTimeout time.Duration `toml:"idle_timeout" comment:"How long an idle incoming delivery stream stays open (default \"2m\")."`
	// BackoffBase is the first retry delay's cap after a failed delivery;
	// each further failure doubles it, up to BackoffMax. Delays are drawn
	// uniformly from zero to the cap (full jitter). Default 1s.
	BackoffBase time.Duration `toml:"backoff_base" comment:"Cap of the first retry delay; doubles per failure (default \"1s\")."`
	// BackoffMax caps every retry delay. Default 5m.
	BackoffMax time.Duration `toml:"backoff_max" comment:"Largest retry delay (default \"5m\")."`
	// Retention is how long an envelope may wait in the outbox; older ones
	// are dropped and counted (parley_federation_drops_total{reason="expired"}).
	// Default 23h: below the receivers' default acceptance window (relay
	// tx_retention 24h less the clock skew), beyond which they would reject
	// it as expired anyway.
	Retention time.Duration `toml:"retention" comment:"How long an undelivered envelope is kept in the outbox (default \"23h\")."`
	// PeerRate is how many envelopes per second one peer may deliver to
	// this node, sustained. Default 5000.
	PeerRate float64 `toml:"peer_rate" comment:"Envelopes per second one peer may deliver, sustained (default 5000)."`
	// PeerBurst is the most envelopes one peer may deliver at once after a
	// quiet spell. Default 8192; at least wire.MaxDeliverEnvelopes, so that
	// every valid Batch can pass.
	PeerBurst int `toml:"peer_burst" comment:"Envelopes one peer may deliver in a burst (default 8192, at least 1024)."`
	// ThrottledPeerRate is PeerRate for a peer the operator throttles
	// (parleyd admin nodes throttle); its burst is one full batch
	// (wire.MaxDeliverEnvelopes). Default 20.
	ThrottledPeerRate float64 `toml:"throttled_peer_rate" comment:"Envelopes per second a throttled peer may deliver (default 20; burst one full batch)."`
	// MaxPeers is how many peers' rate-limit buckets are kept. Default 4096.
	MaxPeers int `toml:"max_peers" comment:"Peers whose delivery rate is tracked (default 4096)."`
}

// MaxWindow bounds Config.Window.
const MaxWindow = 16

// Validate reports every problem with c at once.
func (c Config) Validate() error {
	var errs []error
	if c.MaxBatch < 0 || c.MaxBatch > wire.MaxDeliverEnvelopes {
		errs = append(errs, fmt.Errorf("federation: max_batch %d is not 1 to %d", c.MaxBatch, wire.MaxDeliverEnvelopes))
	}
	if c.Window < 0 || c.Window > MaxWindow {
		errs = append(errs, fmt.Errorf("federation: window %d is not 1 to %d", c.Window, MaxWindow))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"dial_timeout", c.DialTimeout}, {"ack_timeout", c.AckTimeout}, {"idle_timeout", c.IdleTimeout}, {"backoff_base", c.BackoffBase}, {"backoff_max", c.BackoffMax}, {"retention", c.Retention}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("federation: %s %s is negative", d.name, d.v))
		}
	}
	if c.BackoffBase > 0 && c.BackoffMax > 0 && c.BackoffBase > c.BackoffMax {
		errs = append(errs, fmt.Errorf("federation: backoff_base %s is above backoff_max %s", c.BackoffBase, c.BackoffMax))
	}
	if c.Retention != 0 && c.Retention < time.Minute {
		errs = append(errs, fmt.Errorf("federation: retention %s is below 1m", c.Retention))
	}
	if c.PeerRate < 0 || c.PeerRate > 1e6 {
		errs = append(errs, fmt.Errorf("federation: peer_rate %v is not 0 to 1e6", c.PeerRate))
	}
	if c.ThrottledPeerRate < 0 || c.ThrottledPeerRate > 1e6 {
		errs = append(errs, fmt.Errorf("federation: throttled_peer_rate %v is not 0 to 1e6", c.ThrottledPeerRate))
	}
	if c.PeerBurst != 0 && c.PeerBurst < wire.MaxDeliverEnvelopes {
		errs = append(errs, fmt.Errorf("federation: peer_burst %d is below %d", c.PeerBurst, wire.MaxDeliverEnvelopes))
	}
	if c.MaxPeers < 0 {
		errs = append(errs, fmt.Errorf("federation: max_peers %d is negative", c.MaxPeers))
	}
	return errors.Join(errs...)
}

// aheadMin is how many entries a Batch written ahead of another's Ack
// must have available.
func (c Config) aheadMin() int { return max(c.MaxBatch/4, 1) }

// backoff is the retry policy (spec 12-delivery §5).
func (c Config) backoff() outbox.Backoff {
	return outbox.Backoff{Base: c.BackoffBase, Max: c.BackoffMax}
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config { return Config{}.withDefaults() }

func (c Config) withDefaults() Config {
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = 256
	}
	if c.Window == 0 {
		c.Window = 4
	}
	def(&c.DialTimeout, 10*time.Second)
	def(&c.AckTimeout, 30*time.Second)
	def(&c.IdleTimeout, 2*time.Minute)
	def(&c.BackoffBase, time.Second)
	def(&c.BackoffMax, 5*time.Minute)
	def(&c.Retention, 23*time.Hour)
	if c.BackoffBase > c.BackoffMax {
		c.BackoffMax = c.BackoffBase
	}
	if c.PeerRate == 0 {
		c.PeerRate = 5000
	}
	if c.ThrottledPeerRate == 0 {
		c.ThrottledPeerRate = 20
	}
	if c.PeerBurst == 0 {
		c.PeerBurst = 8192
	}
	if c.MaxPeers == 0 {
		c.MaxPeers = 4096
	}
	return c
}

type options struct {
	now       func() time.Time
	logger    *slog.Logger
	reg       prometheus.Registerer
	penalizer PeerPenalizer
	throttled func(peer.ID) bool
}

// Option is a test seam or wiring choice for NewOutbox, NewSender and
// NewHandler; each takes the options that concern it and ignores others.
type Option func(*options)

// WithClock replaces time.Now for enqueue times, retention, delivery
// latency and rate limits. Timeouts and backoff use real timers.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithLogger sets the logger; the default discards.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithRegisterer registers the metrics with r. The sender and the handler
// may share one registerer: they share the metric families.
func WithRegisterer(r prometheus.Registerer) Option { return func(o *options) { o.reg = r } }

// WithThrottled tells the handler which peers the operator throttles; they
// are held to Config.ThrottledPeerRate. Default: none.
func WithThrottled(throttled func(peer.ID) bool) Option {
	return func(o *options) { o.throttled = throttled }
}

// WithPenalizer makes the handler report peers that send malformed or
// oversized frames to p (the p2p layer lowers their score).
func WithPenalizer(p PeerPenalizer) Option { return func(o *options) { o.penalizer = p } }

func buildOptions(opts []Option) options {
	o := options{now: time.Now, logger: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}
