package moderation

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/parley-chat/parley/node/ratelimit"
)

// Config is the moderation policy (section [moderation] of the node
// configuration, spec 13-moderation §3). Zero fields take their defaults;
// the thresholds that may be switched off say so.
type Config struct {
	// Window is how far back verified reports count towards the thresholds.
	// Default 24h.
	Window time.Duration `toml:"window" comment:"How far back verified reports count towards the thresholds (default \"24h\")."`
	// ThrottleReporters throttles an account once this many distinct
	// reporters reported it within Window. Default 3; -1 switches it off.
	ThrottleReporters int `toml:"throttle_reporters" comment:"Throttle an account after this many distinct reporters within the window (default 3; -1: never)."`
	// SuspendReporters suspends an account once this many distinct
	// reporters reported it within Window. Default 5; -1 switches it off.
	SuspendReporters int `toml:"suspend_reporters" comment:"Suspend an account after this many distinct reporters within the window (default 5; -1: never)."`
	// ThrottleNodeReports throttles a remote node (p2p.Host.Throttle:
	// its deliveries held to federation.throttled_peer_rate) once this
	// node's users filed this many verified reports about its users within
	// Window. Default 10; -1 switches it off. Counted in memory.
	ThrottleNodeReports int `toml:"throttle_node_reports" comment:"Throttle a remote node after this many verified reports about its users within the window (default 10; -1: never)."`
	// ThrottleFor is how long an automatic throttle lasts unless an
	// operator lifts it first. Default 72h.
	ThrottleFor time.Duration `toml:"throttle_for" comment:"How long an automatic throttle lasts (default \"72h\")."`
	// Messages is a throttled account's message rate. Default 0.1/s,
	// burst 5.
	Messages ratelimit.Limit `toml:"messages" comment:"A throttled account's message rate (default rate 0.1, burst 5)."`
	// Tickets is a throttled account's lottery ticket rate. Default one
	// per 10 minutes, burst 1.
	Tickets ratelimit.Limit `toml:"tickets" comment:"A throttled account's ticket rate (default rate 0.0016667 (one per 10 minutes), burst 1)."`
	// SignalWindow is how far back rooms count for the spam signals.
	// Default 24h.
	SignalWindow time.Duration `toml:"signal_window" comment:"How far back rooms count for the spam signals (default \"24h\")."`
	// ShortPairing: a room the partner left within this long counts as a
	// quick exit. Default 30s.
	ShortPairing time.Duration `toml:"short_pairing" comment:"A room the partner left within this long is a quick exit (default \"30s\")."`
	// ShortConversation: a closed room that lasted less than this counts as
	// a short conversation. Default 2m.
	ShortConversation time.Duration `toml:"short_conversation" comment:"A closed room that lasted less than this is a short conversation (default \"2m\")."`
	// ChurnHigh is the number of new rooms in the last hour at which the
	// churn signal is full. Default 20.
	ChurnHigh int `toml:"churn_high" comment:"New rooms in one hour at which the churn signal is full (default 20)."`
	// ScoreThrottle throttles an account whose spam score reaches it (0 to
	// 1). Default 0.7; -1 switches it off.
	ScoreThrottle float64 `toml:"score_throttle" comment:"Throttle an account whose spam score reaches this (default 0.7; -1: never)."`
	// ScoreSuspend suspends an account whose spam score reaches it.
	// Default -1 (off): a score alone only throttles unless the operator
	// says otherwise.
	ScoreSuspend float64 `toml:"score_suspend" comment:"Suspend an account whose spam score reaches this (default -1: never)."`
	// ScoreMinRooms: the score acts only on accounts with at least this
	// many rooms in SignalWindow. Default 10.
	ScoreMinRooms int `toml:"score_min_rooms" comment:"The spam score acts only with at least this many rooms in the signal window (default 10)."`
	// MaxTracked bounds the in-memory per-room message counters and the
	// throttled accounts' rate-limit buckets. Default 65536.
	MaxTracked int `toml:"max_tracked" comment:"Rooms whose messages are counted in memory, and throttled buckets kept (default 65536)."`
	// ReportRetention is how long a resolved report, with the plaintext
	// its disclosure reveals, is kept after it was resolved; then the node
	// deletes it (node/reports.Expire, hourly). Open reports are kept
	// until resolved. Default 720h (30 days); at least 1h.
	ReportRetention time.Duration `toml:"report_retention" comment:"How long a resolved report (and the plaintext its disclosure reveals) is kept after it was resolved (default \"720h\", 30 days; open reports are kept until resolved)."`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config { return Config{}.withDefaults() }

func (c Config) withDefaults() Config {
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.Window, 24*time.Hour)
	def(&c.ThrottleFor, 72*time.Hour)
	def(&c.SignalWindow, 24*time.Hour)
	def(&c.ShortPairing, 30*time.Second)
	def(&c.ShortConversation, 2*time.Minute)
	def(&c.ReportRetention, 30*24*time.Hour)
	if c.ThrottleReporters == 0 {
		c.ThrottleReporters = 3
	}
	if c.SuspendReporters == 0 {
		c.SuspendReporters = 5
	}
	if c.ThrottleNodeReports == 0 {
		c.ThrottleNodeReports = 10
	}
	if c.Messages == (ratelimit.Limit{}) {
		c.Messages = ratelimit.Limit{Rate: 0.1, Burst: 5}
	}
	if c.Tickets == (ratelimit.Limit{}) {
		c.Tickets = ratelimit.Limit{Rate: 1.0 / 600, Burst: 1}
	}
	if c.ChurnHigh == 0 {
		c.ChurnHigh = 20
	}
	if c.ScoreThrottle == 0 {
		c.ScoreThrottle = 0.7
	}
	if c.ScoreSuspend == 0 {
		c.ScoreSuspend = -1
	}
	if c.ScoreMinRooms == 0 {
		c.ScoreMinRooms = 10
	}
	if c.MaxTracked == 0 {
		c.MaxTracked = 1 << 16
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
	}{{"window", c.Window}, {"throttle_for", c.ThrottleFor}, {"signal_window", c.SignalWindow}, {"short_pairing", c.ShortPairing}, {"short_conversation", c.ShortConversation}} {
		if d.v < time.Second {
			errs = append(errs, fmt.Errorf("moderation.%s %s is below 1s", d.name, d.v))
		}
	}
	if c.ReportRetention < time.Hour {
		errs = append(errs, fmt.Errorf("moderation.report_retention %s is below 1h", c.ReportRetention))
	}
	for _, n := range []struct {
		name string
		v    int
	}{{"throttle_reporters", c.ThrottleReporters}, {"suspend_reporters", c.SuspendReporters}, {"throttle_node_reports", c.ThrottleNodeReports}} {
		if n.v < -1 || n.v > 1000 {
			errs = append(errs, fmt.Errorf("moderation.%s %d is not -1 (off) or 1 to 1000", n.name, n.v))
		}
	}
	for _, s := range []struct {
		name string
		v    float64
	}{{"score_throttle", c.ScoreThrottle}, {"score_suspend", c.ScoreSuspend}} {
		if math.IsNaN(s.v) || (s.v != -1 && (s.v <= 0 || s.v > 1)) {
			errs = append(errs, fmt.Errorf("moderation.%s %v is not -1 (off) or in (0, 1]", s.name, s.v))
		}
	}
	if err := c.Messages.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("moderation.messages: %w", err))
	}
	if err := c.Tickets.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("moderation.tickets: %w", err))
	}
	if c.ChurnHigh < 1 {
		errs = append(errs, fmt.Errorf("moderation.churn_high %d is below 1", c.ChurnHigh))
	}
	if c.ScoreMinRooms < 1 {
		errs = append(errs, fmt.Errorf("moderation.score_min_rooms %d is below 1", c.ScoreMinRooms))
	}
	if c.MaxTracked < 16 || c.MaxTracked > 1<<24 {
		errs = append(errs, fmt.Errorf("moderation.max_tracked %d is not 16 to %d", c.MaxTracked, 1<<24))
	}
	return errors.Join(errs...)
}
