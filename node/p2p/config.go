package p2p

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/parley-chat/parley/protocol/noderecord"
)

// Config is the federation host's part of the node configuration (the
// [p2p] section). Zero fields take their defaults, except NetworkID, which
// every node must set.
type Config struct {
	// NetworkID names the network this node belongs to: 1 to 32 bytes of
	// [a-z0-9-]. Protocol IDs, topic names and the DHT prefix carry it, so
	// nodes of different networks never mix. Required.
	// parleyd sets it from the top-level network setting, so the config
	// file has no key for it.
	NetworkID string `toml:"-"`
	// ListenAddrs are the multiaddrs the host listens on. Default
	// ["/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1"].
	ListenAddrs []string `toml:"listen_addrs" comment:"Multiaddrs to listen on (default [\"/ip4/0.0.0.0/tcp/4001\", \"/ip4/0.0.0.0/udp/4001/quic-v1\"])."`
	// AnnounceAddrs, when set, replace the listen addresses in what this
	// node tells others (its node record and identify): the public
	// addresses of a node behind NAT or a load balancer. Default empty.
	AnnounceAddrs []string `toml:"announce_addrs" comment:"Multiaddrs to tell other nodes instead of the listen addresses (default: the listen addresses)."`
	// Bootstrap are peers to connect to at start, as multiaddrs ending in
	// /p2p/<peer ID>. The host keeps retrying them with backoff. Default
	// empty (a first node).
	Bootstrap []string `toml:"bootstrap" comment:"Bootstrap peers, multiaddrs ending in /p2p/<peer ID> (default none)."`
	// Deny lists peer IDs whose connections are refused in both
	// directions. Default empty.
	Deny []string `toml:"deny" comment:"Peer IDs of nodes whose connections are refused (default none)."`

	// ConnLow is the connection count the connection manager trims down
	// to. Default 64.
	ConnLow int `toml:"conn_low" comment:"Connection manager: trim down to this many connections (default 64)."`
	// ConnHigh is the connection count above which the connection manager
	// trims. Default 192; above ConnLow and below MaxConns.
	ConnHigh int `toml:"conn_high" comment:"Connection manager: trim when above this many connections (default 192)."`
	// ConnGrace is how long a new connection is safe from trimming.
	// Default 1m.
	ConnGrace time.Duration `toml:"conn_grace" comment:"Connection manager: new connections are not trimmed for this long (default \"1m\")."`

	// MaxMemory is the memory the libp2p resource manager lets the whole
	// host use, in bytes; its other limits scale from it. Default 512 MiB.
	MaxMemory int64 `toml:"max_memory" comment:"Resource manager: memory for all of libp2p, in bytes (default 536870912)."`
	// MaxFDs is the file descriptors the resource manager lets the host
	// use. Default 2048.
	MaxFDs int `toml:"max_fds" comment:"Resource manager: file descriptors for all of libp2p (default 2048)."`
	// MaxConns is the system-wide connection limit. Default 1024.
	MaxConns int `toml:"max_conns" comment:"Resource manager: most connections at once (default 1024)."`
	// MaxStreams is the system-wide stream limit. Default 8192.
	MaxStreams int `toml:"max_streams" comment:"Resource manager: most streams at once (default 8192)."`

	// MDNS turns on local-network discovery by mDNS. Default false.
	MDNS bool `toml:"mdns" comment:"Discover nodes on the local network by mDNS (default false)."`
	// DHT turns on a Kademlia DHT with protocol prefix /parley/<network>,
	// in server mode, used for peer routing only. Default true (set by
	// DefaultConfig: a zero Config has it off).
	DHT bool `toml:"dht" comment:"Find nodes beyond the bootstrap peers through a private Kademlia DHT (default true)."`

	// GossipThreshold: below this score a peer gets no gossip from this
	// node and its gossip is ignored. Default -100; at most 0.
	GossipThreshold float64 `toml:"gossip_threshold" comment:"Peer score below which gossip is not exchanged (default -100)."`
	// PublishThreshold: below this score this node does not publish to a
	// peer. Default -200; at most GossipThreshold.
	PublishThreshold float64 `toml:"publish_threshold" comment:"Peer score below which this node does not publish to a peer (default -200)."`
	// GraylistThreshold: below this score a peer's messages are dropped
	// and its connection is closed. Default -400; at most
	// PublishThreshold.
	GraylistThreshold float64 `toml:"graylist_threshold" comment:"Peer score below which a peer is ignored and disconnected (default -400)."`

	// RecordInterval is how often this node re-publishes its node record.
	// Default 5m; 1s to MaxRecordAge/4.
	RecordInterval time.Duration `toml:"record_interval" comment:"How often this node re-publishes its signed node record (default \"5m\")."`
}

// DefaultConfig returns the defaults, with NetworkID empty.
func DefaultConfig() Config { return Config{DHT: true}.withDefaults() }

// DefaultListenAddrs are the listen addresses when none are configured.
var DefaultListenAddrs = []string{"/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1"}

func (c Config) withDefaults() Config {
	if len(c.ListenAddrs) == 0 {
		c.ListenAddrs = append([]string(nil), DefaultListenAddrs...)
	}
	if c.ConnLow == 0 {
		c.ConnLow = 64
	}
	if c.ConnHigh == 0 {
		c.ConnHigh = 192
	}
	if c.ConnGrace == 0 {
		c.ConnGrace = time.Minute
	}
	if c.MaxMemory == 0 {
		c.MaxMemory = 512 << 20
	}
	if c.MaxFDs == 0 {
		c.MaxFDs = 2048
	}
	if c.MaxConns == 0 {
		c.MaxConns = 1024
	}
	if c.MaxStreams == 0 {
		c.MaxStreams = 8192
	}
	if c.GossipThreshold == 0 {
		c.GossipThreshold = -100
	}
	if c.PublishThreshold == 0 {
		c.PublishThreshold = -200
	}
	if c.GraylistThreshold == 0 {
		c.GraylistThreshold = -400
	}
	if c.RecordInterval == 0 {
		c.RecordInterval = 5 * time.Minute
	}
	return c
}

// maxRecordInterval keeps re-publication well inside a record's lifetime.
const maxRecordInterval = 6 * time.Hour // wire.MaxRecordAge / 4

// Validate reports every problem with c at once. Zero fields take their
// defaults first.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("p2p: "+format, args...)) }
	if !noderecord.ValidNetworkID(c.NetworkID) {
		bad("network_id %q is not 1 to 32 of a-z, 0-9 and -", c.NetworkID)
	}
	for _, a := range c.ListenAddrs {
		if _, err := ma.NewMultiaddr(a); err != nil {
			bad("listen_addrs: %q: %v", a, err)
		}
	}
	for _, a := range c.AnnounceAddrs {
		if _, err := ma.NewMultiaddr(a); err != nil {
			bad("announce_addrs: %q: %v", a, err)
		}
	}
	for _, a := range c.Bootstrap {
		if _, err := peer.AddrInfoFromString(a); err != nil {
			bad("bootstrap: %q is not a multiaddr ending in /p2p/<peer ID>: %v", a, err)
		}
	}
	for _, d := range c.Deny {
		if _, err := peer.Decode(d); err != nil {
			bad("deny: %q is not a peer ID: %v", d, err)
		}
	}
	if c.ConnLow < 1 || c.ConnHigh <= c.ConnLow || c.ConnHigh >= c.MaxConns {
		bad("need 1 <= conn_low (%d) < conn_high (%d) < max_conns (%d)", c.ConnLow, c.ConnHigh, c.MaxConns)
	}
	if c.ConnGrace < 0 {
		bad("conn_grace %s is negative", c.ConnGrace)
	}
	if c.MaxMemory < 64<<20 {
		bad("max_memory %d is below 64 MiB", c.MaxMemory)
	}
	if c.MaxFDs < 64 {
		bad("max_fds %d is below 64", c.MaxFDs)
	}
	if c.MaxStreams < 64 {
		bad("max_streams %d is below 64", c.MaxStreams)
	}
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	if !finite(c.GossipThreshold) || !finite(c.PublishThreshold) || !finite(c.GraylistThreshold) ||
		c.GossipThreshold > 0 || c.PublishThreshold > c.GossipThreshold || c.GraylistThreshold > c.PublishThreshold {
		bad("need graylist_threshold (%v) <= publish_threshold (%v) <= gossip_threshold (%v) <= 0",
			c.GraylistThreshold, c.PublishThreshold, c.GossipThreshold)
	}
	if c.RecordInterval < time.Second || c.RecordInterval > maxRecordInterval {
		bad("record_interval %s is not 1s to %s", c.RecordInterval, maxRecordInterval)
	}
	return errors.Join(errs...)
}
