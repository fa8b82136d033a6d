package forward

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/node/outbox"
)

// Config is the report forwarding part of the node configuration
// (suggested section [moderation.forward]). Zero fields take their
// defaults.
type Config struct {
	// Timeout bounds one report's exchange: opening the stream, writing
	// the report and reading the answer; and, on the receiving side,
	// reading the report, verifying and storing it and writing the answer.
	// Default 30s.
	Timeout time.Duration `toml:"timeout" comment:"How long forwarding one report may take, each side (default \"30s\")."`
	// Poll is how often the sender looks for reports due in its outbox.
	// Default 2s.
	Poll time.Duration `toml:"poll" comment:"How often the outbox is checked for reports due (default \"2s\")."`
	// BackoffBase caps the first retry delay; each failure doubles it up to
	// BackoffMax, and delays are drawn from zero to the cap. Default 5s.
	BackoffBase time.Duration `toml:"backoff_base" comment:"Cap of the first retry delay; doubles per failure (default \"5s\")."`
	// BackoffMax caps every retry delay. Default 30m.
	BackoffMax time.Duration `toml:"backoff_max" comment:"Largest retry delay (default \"30m\")."`
	// Retention is how long an undelivered report is retried before it is
	// dropped (counted). Default 7 days.
	Retention time.Duration `toml:"retention" comment:"How long an undelivered report is retried (default \"168h\")."`
	// PeerRate is how many reports per second one peer may forward,
	// sustained. Default 1.
	PeerRate float64 `toml:"peer_rate" comment:"Reports per second one peer may forward, sustained (default 1)."`
	// PeerBurst is how many reports one peer may forward at once. Default 30.
	PeerBurst int `toml:"peer_burst" comment:"Reports one peer may forward in a burst (default 30)."`
	// MaxPeers is how many peers' rate-limit buckets are kept. Default 4096.
	MaxPeers int `toml:"max_peers" comment:"Peers whose report rate is tracked (default 4096)."`
}

// backoff is the retry policy (spec 13-moderation §2.1).
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
	def(&c.Timeout, 30*time.Second)
	def(&c.Poll, 2*time.Second)
	def(&c.BackoffBase, 5*time.Second)
	def(&c.BackoffMax, 30*time.Minute)
	def(&c.Retention, 7*24*time.Hour)
	if c.PeerRate == 0 {
		c.PeerRate = 1
	}
	if c.PeerBurst == 0 {
		c.PeerBurst = 30
	}
	if c.MaxPeers == 0 {
		c.MaxPeers = 4096
	}
	return c
}

// Validate reports every problem with c at once.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"timeout", c.Timeout}, {"poll", c.Poll}, {"backoff_base", c.BackoffBase}, {"backoff_max", c.BackoffMax}, {"retention", c.Retention}} {
		if d.v < time.Millisecond {
			errs = append(errs, fmt.Errorf("forward: %s %s is below 1ms", d.name, d.v))
		}
	}
	if c.BackoffBase > c.BackoffMax {
		errs = append(errs, fmt.Errorf("forward: backoff_base %s is above backoff_max %s", c.BackoffBase, c.BackoffMax))
	}
	if c.PeerRate <= 0 || c.PeerRate > 1e4 {
		errs = append(errs, fmt.Errorf("forward: peer_rate %v is not in (0, 10000]", c.PeerRate))
	}
	if c.PeerBurst < 1 {
		errs = append(errs, fmt.Errorf("forward: peer_burst %d is below 1", c.PeerBurst))
	}
	if c.MaxPeers < 1 {
		errs = append(errs, fmt.Errorf("forward: max_peers %d is below 1", c.MaxPeers))
	}
	return errors.Join(errs...)
}

// PeerPenalizer is told about peers that break the protocol (garbage
// frames, reports that do not verify); *p2p.Host implements it. Reason is
// a fixed word.
type PeerPenalizer interface {
	Penalize(p peer.ID, reason string)
}

type options struct {
	now       func() time.Time
	logger    *slog.Logger
	reg       prometheus.Registerer
	penalizer PeerPenalizer
}

// Option is a test seam or wiring choice for New, NewSender and
// NewHandler.
type Option func(*options)

// WithClock replaces time.Now for queue times and retention (timeouts and
// backoff use real timers).
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithRegisterer registers the metrics with r (default: a private
// registry). Outbox, Sender and Handler each register their own metrics.
func WithRegisterer(r prometheus.Registerer) Option { return func(o *options) { o.reg = r } }

// WithPenalizer reports misbehaving peers to p.
func WithPenalizer(p PeerPenalizer) Option { return func(o *options) { o.penalizer = p } }

func buildOptions(opts []Option) options {
	o := options{now: time.Now, logger: slog.New(slog.DiscardHandler), reg: prometheus.NewRegistry()}
	for _, opt := range opts {
		opt(&o)
	}
	o.logger = o.logger.With("subsystem", "report_forward")
	return o
}
