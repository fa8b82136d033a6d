package api

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/parley-chat/parley/protocol/keys"
)

// Config is the client API's part of the node configuration. A zero field
// takes the default its comment names; DefaultConfig returns them all.
type Config struct {
	// NodeID is this node's peer ID, which /v1/health reports (it is the
	// audience of logins and the home of the node's tickets). Required; the
	// node sets it from its key, it is not a config file setting.
	NodeID string `toml:"-"`
	// Version is the software version /v1/health reports. Default "dev".
	Version string `toml:"-"`
	// Network is the network ID /v1/health reports. Required; the node sets
	// it from its own network setting.
	Network string `toml:"-"`

	// MaxBodyBytes bounds a request body, except for the two endpoints
	// below (spec 09 §1). Default 64 KiB.
	MaxBodyBytes int64 `toml:"max_body_bytes" comment:"Request body limit in bytes for most endpoints (default 65536, 64 KiB)."`
	// MaxMessageBodyBytes bounds the body of POST /v1/rooms/{room}/messages.
	// Default 128 KiB, which holds the largest envelope in base64.
	MaxMessageBodyBytes int64 `toml:"max_message_body_bytes" comment:"Request body limit in bytes for sending a message (default 131072, 128 KiB)."`
	// MaxReportBodyBytes bounds the body of POST /v1/reports. Default 4 MiB,
	// which holds the largest disclosure in base64.
	MaxReportBodyBytes int64 `toml:"max_report_body_bytes" comment:"Request body limit in bytes for a report (default 4194304, 4 MiB)."`

	// SyncMaxWait bounds the wait of a long-poll sync. Default 60s.
	SyncMaxWait time.Duration `toml:"sync_max_wait" comment:"Longest wait of a long-poll sync (default \"60s\")."`
	// SyncDefaultLimit is the event count of a sync without limit. Default 100.
	SyncDefaultLimit int `toml:"sync_default_limit" comment:"Events per sync response when the client gives no limit (default 100)."`
	// SyncMaxLimit caps the limit a sync may ask for. Default 1000.
	SyncMaxLimit int `toml:"sync_max_limit" comment:"Most events per sync response (default 1000)."`
	// SyncMaxBytes caps the encoded events of one long-poll response; a
	// response holds at least one event whatever its size. Default 4 MiB.
	SyncMaxBytes int `toml:"sync_max_bytes" comment:"Soft cap on the size of one sync response in bytes (default 4194304, 4 MiB)."`

	// AccountRate limits the requests of one account. Default 20/s, burst 40.
	AccountRate Rate `toml:"account_rate" comment:"Request rate limit per account (default 20 per second, burst 40)."`
	// IPRate limits the requests from one client IP address (IPv6: one /64).
	// Default 50/s, burst 100.
	IPRate Rate `toml:"ip_rate" comment:"Request rate limit per client IP address, IPv6 per /64 (default 50 per second, burst 100)."`
	// RateLimitKeys bounds the keys (accounts, addresses) each built-in
	// limiter tracks. Default 100000.
	RateLimitKeys int `toml:"rate_limit_keys" comment:"Most accounts or addresses each rate limiter tracks at once (default 100000)."`
	// TrustProxyHeaders takes the client IP from the last address of
	// X-Forwarded-For, as set by a reverse proxy in front of the node.
	// Default false: the connection's address. Turn it on only behind a
	// proxy that sets the header, or clients can pick their own address.
	TrustProxyHeaders bool `toml:"trust_proxy_headers" comment:"Take the client IP from X-Forwarded-For; only behind a reverse proxy that sets it (default false)."`

	// WebSocketPingInterval is how often a sync WebSocket is pinged; a
	// connection that answers no ping for two intervals is closed. Default 30s.
	WebSocketPingInterval time.Duration `toml:"websocket_ping_interval" comment:"Ping interval of sync WebSockets; two missed pings close one (default \"30s\")."`
	// WebSocketsPerAccount bounds the open sync WebSockets of one account.
	// Default 4.
	WebSocketsPerAccount int `toml:"websockets_per_account" comment:"Most open sync WebSockets per account (default 4)."`
	// MaxWebSockets bounds the open sync WebSockets of the node. Default 10000.
	MaxWebSockets int `toml:"max_websockets" comment:"Most open sync WebSockets on the node (default 10000)."`
	// WebSocketSendsInFlight bounds the sends one sync WebSocket may have
	// unanswered (spec 09 §6); the node reads no further frame from that
	// socket until one is answered. Default 64.
	WebSocketSendsInFlight int `toml:"websocket_sends_in_flight" comment:"Most unanswered sends per sync WebSocket; further frames wait (default 64)."`
}

// Rate is a token bucket: PerSecond tokens are added each second, up to
// Burst.
type Rate struct {
	// PerSecond is the sustained rate.
	PerSecond float64 `toml:"per_second" comment:"Sustained requests per second."`
	// Burst is how many requests may come at once.
	Burst int `toml:"burst" comment:"Requests allowed at once."`
}

// DefaultConfig returns the defaults, with NodeID and Network empty.
func DefaultConfig() Config { return Config{}.withDefaults() }

func (c Config) withDefaults() Config {
	setDefault(&c.Version, "dev")
	setDefault(&c.MaxBodyBytes, 64<<10)
	setDefault(&c.MaxMessageBodyBytes, 128<<10)
	setDefault(&c.MaxReportBodyBytes, 4<<20)
	setDefault(&c.SyncMaxWait, 60*time.Second)
	setDefault(&c.SyncDefaultLimit, 100)
	setDefault(&c.SyncMaxLimit, 1000)
	setDefault(&c.SyncMaxBytes, 4<<20)
	setDefault(&c.AccountRate, Rate{PerSecond: 20, Burst: 40})
	setDefault(&c.IPRate, Rate{PerSecond: 50, Burst: 100})
	setDefault(&c.RateLimitKeys, 100000)
	setDefault(&c.WebSocketPingInterval, 30*time.Second)
	setDefault(&c.WebSocketsPerAccount, 4)
	setDefault(&c.MaxWebSockets, 10000)
	setDefault(&c.WebSocketSendsInFlight, 64)
	return c
}

func setDefault[T comparable](p *T, def T) {
	var zero T
	if *p == zero {
		*p = def
	}
}

// Validate reports every problem with c at once. Zero fields are valid:
// they take their defaults.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("api: "+format, args...)) }
	if c.NodeID == "" {
		bad("node ID is required")
	} else if _, err := keys.ParseNodeID(c.NodeID); err != nil {
		bad("node ID: %w", err)
	}
	if c.Network == "" {
		bad("network is required")
	}
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"max_body_bytes", c.MaxBodyBytes},
		{"max_message_body_bytes", c.MaxMessageBodyBytes},
		{"max_report_body_bytes", c.MaxReportBodyBytes},
		{"sync_max_wait", int64(c.SyncMaxWait)},
		{"sync_default_limit", int64(c.SyncDefaultLimit)},
		{"sync_max_limit", int64(c.SyncMaxLimit)},
		{"sync_max_bytes", int64(c.SyncMaxBytes)},
		{"rate_limit_keys", int64(c.RateLimitKeys)},
		{"websocket_ping_interval", int64(c.WebSocketPingInterval)},
		{"websockets_per_account", int64(c.WebSocketsPerAccount)},
		{"max_websockets", int64(c.MaxWebSockets)},
		{"websocket_sends_in_flight", int64(c.WebSocketSendsInFlight)},
	} {
		if f.v < 0 {
			bad("%s must not be negative", f.name)
		}
	}
	d := c.withDefaults()
	if d.SyncDefaultLimit > d.SyncMaxLimit {
		bad("sync_default_limit %d is above sync_max_limit %d", d.SyncDefaultLimit, d.SyncMaxLimit)
	}
	if d.WebSocketPingInterval > 0 && d.WebSocketPingInterval < 10*time.Millisecond {
		bad("websocket_ping_interval %v is below 10ms", d.WebSocketPingInterval)
	}
	if d.WebSocketsPerAccount > d.MaxWebSockets {
		bad("websockets_per_account %d is above max_websockets %d", d.WebSocketsPerAccount, d.MaxWebSockets)
	}
	for _, f := range []struct {
		name string
		r    Rate
	}{{"account_rate", c.AccountRate}, {"ip_rate", c.IPRate}} {
		name, r := f.name, f.r
		if r == (Rate{}) {
			continue
		}
		if !(r.PerSecond > 0) || math.IsInf(r.PerSecond, 0) {
			bad("%s.per_second %v must be a positive number", name, r.PerSecond)
		}
		if r.Burst < 1 {
			bad("%s.burst %d must be at least 1", name, r.Burst)
		}
	}
	return errors.Join(errs...)
}
