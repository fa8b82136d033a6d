// Package p2p is a node's place in its federation (spec 11-federation §1 to
// §4): the go-libp2p host built from the node key, with TCP and QUIC, Noise,
// yamux, the resource manager, the connection manager and a connection gater
// that honours the operator's deny list; the bootstrap peers and a private
// Kademlia DHT for finding nodes; GossipSub with content-derived message IDs,
// strict signing and peer scoring; and the signed node records every node
// gossips about itself, from which the host keeps its table of known nodes.
//
// Everything that names a protocol carries the network ID: ProtocolID and
// Topic build the names, so two networks never mix. Other subsystems use
// the host through Raw (streams), PubSub and Join (topics with validators)
// and SetStreamHandler; node records advertise the stream protocols
// registered through SetStreamHandler.
//
// New builds and listens; Start connects, publishes and discovers; Close
// stops everything in order.
package p2p

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/noderecord"
	"github.com/parley-chat/parley/protocol/wire"
)

// Errors returned by the host. Match them with errors.Is.
var (
	// ErrConfig: the configuration is invalid (New).
	ErrConfig = errors.New("p2p: invalid configuration")
	// ErrClosed: the host was closed.
	ErrClosed = errors.New("p2p: host closed")
	// ErrStarted: Start was called twice.
	ErrStarted = errors.New("p2p: already started")
	// ErrJoined: Join was called twice for one topic.
	ErrJoined = errors.New("p2p: topic already joined")
	// ErrName: a protocol or topic name or version is not [a-z0-9-.]{1,32}.
	ErrName = errors.New("p2p: bad protocol or topic name")
)

// RecordsTopic is the name of the topic node records are gossiped on
// (Topic(RecordsTopic) = "parley/<network>/nodes").
const RecordsTopic = "nodes"

// Timeouts and bounds of the host's own work.
const (
	dialTimeout      = 10 * time.Second
	bootstrapMinWait = time.Second
	bootstrapMaxWait = time.Minute
	maxKnownNodes    = 4096 // peer table entries; records of further nodes are ignored
	dialQueue        = 64
	republishGap     = time.Second // least time between two publications of this node's record
	validateTimeout  = 5 * time.Second
)

type options struct {
	now          func() time.Time
	logger       *slog.Logger
	reg          prometheus.Registerer
	software     string
	policy       noderecord.Policy
	inspectEvery time.Duration
	tracer       pubsub.RawTracer // tests only
}

// Option configures New: test seams and what the node record advertises.
type Option func(*options)

// WithClock sets the clock (default time.Now).
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithRegisterer registers the host's metrics, and libp2p's own (resource
// manager, swarm, identify, ...), with r. Default: no metrics.
func WithRegisterer(r prometheus.Registerer) Option { return func(o *options) { o.reg = r } }

// WithSoftware sets the software version string of the node record (and
// libp2p's user agent). Default "parleyd".
func WithSoftware(v string) Option { return func(o *options) { o.software = v } }

// WithPolicy sets the policy summary of the node record (default zero:
// open registration, no limits advertised). SetPolicy changes it later.
func WithPolicy(p noderecord.Policy) Option { return func(o *options) { o.policy = p } }

// WithScoreInspectPeriod sets how often peer scores are read (for Peers,
// Score and the graylist disconnect). Default 5s.
func WithScoreInspectPeriod(d time.Duration) Option { return func(o *options) { o.inspectEvery = d } }

// Host is a node's libp2p host with its discovery, gossip and node records.
type Host struct {
	cfg      Config
	key      keys.NodeKey
	o        options
	log      *slog.Logger
	m        *metrics
	h        host.Host
	gater    *gater
	ps       *pubsub.PubSub
	records  *Topic
	boot     []peer.AddrInfo
	announce []ma.Multiaddr
	self     peer.ID

	// ctx is the host's lifetime, canceled by Close: pubsub and every
	// goroutine below run until then, not for the length of one call.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	dialq  chan peer.AddrInfo
	kick   chan struct{} // asks the record loop to publish now
	cutq   chan peer.ID  // peers to disconnect for their score

	mu        sync.Mutex
	started   bool
	closed    bool
	dht       *dht.IpfsDHT
	mdns      mdns.Service
	topics    map[string]*Topic
	peers     map[peer.ID]*peerEntry
	scores    map[peer.ID]float64
	protocols []string // advertised stream protocols, "name/version"
	policy    noderecord.Policy
	lastSeq   uint64
	lastPub   time.Time
	penalties map[peer.ID]int // Penalize's counts, at most maxPenalized peers
	throttled map[peer.ID]bool
}

// PrivKey converts a node key to the matching libp2p private key; its peer
// ID is the key's keys.NodeID.
func PrivKey(k keys.NodeKey) (crypto.PrivKey, error) {
	return crypto.UnmarshalEd25519PrivateKey(ed25519.NewKeyFromSeed(k.Seed()))
}

// PeerID returns the libp2p peer ID of a node ID.
func PeerID(n keys.NodeID) peer.ID { return peer.ID(n.PeerIDBytes()) }

// NodeID returns the node ID of a libp2p peer ID, or an error if it is not
// an Ed25519 identity peer ID.
func NodeID(p peer.ID) (keys.NodeID, error) { return keys.NodeIDFromPeerIDBytes([]byte(p)) }

// New builds the host from cfg and the node key and starts listening. It
// does not dial anyone: Start does.
func New(cfg Config, key keys.NodeKey, opts ...Option) (*Host, error) {
	o := options{now: time.Now, software: "parleyd", inspectEvery: 5 * time.Second}
	for _, opt := range opts {
		opt(&o)
	}
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	priv, err := PrivKey(key)
	if err != nil {
		return nil, fmt.Errorf("p2p: node key: %w", err)
	}
	x := &Host{
		cfg:    cfg,
		key:    key,
		o:      o,
		log:    o.logger.With("subsystem", "p2p"),
		self:   PeerID(key.Public()),
		dialq:  make(chan peer.AddrInfo, dialQueue),
		kick:   make(chan struct{}, 1),
		cutq:   make(chan peer.ID, dialQueue),
		topics: map[string]*Topic{},
		peers:  map[peer.ID]*peerEntry{},
		scores: map[peer.ID]float64{},
		policy: o.policy,
	}
	for _, a := range cfg.Bootstrap {
		ai, _ := peer.AddrInfoFromString(a) // checked by Validate
		x.boot = append(x.boot, *ai)
	}
	for _, a := range cfg.AnnounceAddrs {
		x.announce = append(x.announce, ma.StringCast(a))
	}
	x.m = newMetrics(o.reg)
	x.gater = newGater(x.m)
	for _, d := range cfg.Deny {
		id, _ := peer.Decode(d) // checked by Validate
		x.gater.deny(id)
	}

	h, err := x.newLibp2p(priv)
	if err != nil {
		return nil, err
	}
	x.h = h
	registerGauges(o.reg, x)
	x.ctx, x.cancel = context.WithCancel(context.Background())
	if err := x.newPubSub(); err != nil {
		x.cancel()
		_ = h.Close()
		return nil, err
	}
	if x.records, err = x.Join(RecordsTopic, x.validateRecord); err != nil {
		x.cancel()
		_ = h.Close()
		return nil, err
	}
	h.Network().Notify(&network.NotifyBundle{DisconnectedF: x.disconnected})
	return x, nil
}

func (x *Host) newLibp2p(priv crypto.PrivKey) (host.Host, error) {
	cfg := x.cfg
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	scaled := limits.Scale(cfg.MaxMemory, cfg.MaxFDs)
	concrete := rcmgr.PartialLimitConfig{System: rcmgr.ResourceLimits{
		Conns:   rcmgr.LimitVal(cfg.MaxConns),
		Streams: rcmgr.LimitVal(cfg.MaxStreams),
		Memory:  rcmgr.LimitVal64(cfg.MaxMemory),
		FD:      rcmgr.LimitVal(cfg.MaxFDs),
	}}.Build(scaled)
	var rmOpts []rcmgr.Option
	if x.o.reg == nil {
		rmOpts = append(rmOpts, rcmgr.WithMetricsDisabled())
	}
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(concrete), rmOpts...)
	if err != nil {
		return nil, fmt.Errorf("p2p: resource manager: %w", err)
	}
	cm, err := connmgr.NewConnManager(cfg.ConnLow, cfg.ConnHigh, connmgr.WithGracePeriod(cfg.ConnGrace))
	if err != nil {
		_ = rm.Close()
		return nil, fmt.Errorf("p2p: connection manager: %w", err)
	}
	opts := []libp2p.Option{
		libp2p.Identity(priv),
		libp2p.ListenAddrStrings(cfg.ListenAddrs...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(cm),
		libp2p.ConnectionGater(x.gater),
		libp2p.DisableRelay(),
		libp2p.UserAgent(x.o.software),
	}
	if len(x.announce) > 0 {
		announce := x.announce
		opts = append(opts, libp2p.AddrsFactory(func([]ma.Multiaddr) []ma.Multiaddr { return announce }))
	}
	if x.o.reg != nil {
		opts = append(opts, libp2p.PrometheusRegisterer(x.o.reg))
	} else {
		opts = append(opts, libp2p.DisableMetrics())
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("p2p: libp2p host: %w", err)
	}
	return h, nil
}

// msgID is the content-derived GossipSub message ID (spec 11-federation
// §4.1): H("parley/v1/gossip-id", string16(topic), data).
func msgID(m *pb.Message) string {
	var e wire.Encoder
	e.String16(m.GetTopic())
	id := wire.Hash(wire.LabelGossipID, e.Bytes(), m.Data)
	return string(id[:])
}

func (x *Host) newPubSub() error {
	params := &pubsub.PeerScoreParams{
		AppSpecificScore:            func(peer.ID) float64 { return 0 },
		AppSpecificWeight:           1,
		IPColocationFactorWeight:    -10,
		IPColocationFactorThreshold: 8,
		BehaviourPenaltyWeight:      -10,
		BehaviourPenaltyThreshold:   6,
		BehaviourPenaltyDecay:       0.99,
		DecayInterval:               time.Second,
		DecayToZero:                 0.01,
		RetainScore:                 time.Hour,
		Topics:                      map[string]*pubsub.TopicScoreParams{},
	}
	thresholds := &pubsub.PeerScoreThresholds{
		GossipThreshold:             x.cfg.GossipThreshold,
		PublishThreshold:            x.cfg.PublishThreshold,
		GraylistThreshold:           x.cfg.GraylistThreshold,
		AcceptPXThreshold:           10,
		OpportunisticGraftThreshold: 5,
	}
	inspect := pubsub.PeerScoreInspectFn(x.inspectScores) //nolint:unconvert // pubsub picks the inspector by a type switch on this named type
	psOpts := []pubsub.Option{
		pubsub.WithMessageIdFn(msgID),
		pubsub.WithMessageSignaturePolicy(pubsub.StrictSign),
		pubsub.WithPeerScore(params, thresholds),
		// A node sends what it publishes to every peer of the topic above
		// the publish threshold, not only to its mesh: Parley's topics are
		// small and quiet, and a record published before the mesh formed
		// would otherwise be lost.
		pubsub.WithFloodPublish(true),
		pubsub.WithPeerScoreInspect(inspect, x.o.inspectEvery),
		pubsub.WithLogger(x.log),
	}
	if x.o.tracer != nil {
		psOpts = append(psOpts, pubsub.WithRawTracer(x.o.tracer))
	}
	ps, err := pubsub.NewGossipSub(x.ctx, x.h, psOpts...)
	if err != nil {
		return fmt.Errorf("p2p: gossipsub: %w", err)
	}
	x.ps = ps
	return nil
}

// topicScoreParams are the score parameters of every joined topic (spec
// 11-federation §4.2): some credit for time in the mesh and for first
// deliveries, and a steep, slowly decaying penalty for invalid messages.
// Mesh delivery rates are not scored: Parley's topics are quiet.
func topicScoreParams() *pubsub.TopicScoreParams {
	return &pubsub.TopicScoreParams{
		SkipAtomicValidation:            true,
		TopicWeight:                     1,
		TimeInMeshWeight:                0.01,
		TimeInMeshQuantum:               time.Second,
		TimeInMeshCap:                   100,
		FirstMessageDeliveriesWeight:    1,
		FirstMessageDeliveriesDecay:     0.9,
		FirstMessageDeliveriesCap:       10,
		InvalidMessageDeliveriesWeight:  -100,
		InvalidMessageDeliveriesDecay:   0.99,
		MeshFailurePenaltyWeight:        0,
		MeshMessageDeliveriesWeight:     0,
		MeshMessageDeliveriesDecay:      0,
		MeshMessageDeliveriesCap:        0,
		MeshMessageDeliveriesThreshold:  0,
		MeshMessageDeliveriesWindow:     0,
		MeshMessageDeliveriesActivation: 0,
	}
}

// inspectScores runs on pubsub's score loop: it keeps the latest scores
// and queues peers below the graylist threshold for disconnection.
func (x *Host) inspectScores(scores map[peer.ID]float64) {
	x.mu.Lock()
	x.scores = scores
	x.mu.Unlock()
	for p, s := range scores {
		if s < x.cfg.GraylistThreshold {
			select {
			case x.cutq <- p:
			default:
			}
		}
	}
}

// Start connects to the bootstrap peers (retrying in the background),
// starts the DHT (if configured) and mDNS (if configured), and starts
// publishing this node's record every RecordInterval.
func (x *Host) Start(ctx context.Context) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed {
		return ErrClosed
	}
	if x.started {
		return ErrStarted
	}
	x.started = true
	if x.cfg.DHT {
		d, err := dht.New(x.h,
			dht.Mode(dht.ModeServer),
			dht.ProtocolPrefix(protocol.ID("/parley/"+x.cfg.NetworkID)),
			dht.DisableValues(),
			dht.DisableProviders(),
			dht.BootstrapPeers(x.boot...),
		)
		if err != nil {
			return fmt.Errorf("p2p: dht: %w", err)
		}
		x.dht = d
	}
	if x.cfg.MDNS {
		x.mdns = mdns.NewMdnsService(x.h, "parley-"+x.cfg.NetworkID, mdnsNotifee{x})
		if err := x.mdns.Start(); err != nil {
			return fmt.Errorf("p2p: mdns: %w", err)
		}
	}
	evts, err := x.records.t.EventHandler()
	if err != nil {
		return fmt.Errorf("p2p: topic events: %w", err)
	}
	x.goRun(func(c context.Context) { x.bootstrapLoop(c) })
	x.goRun(func(c context.Context) { x.dialLoop(c) })
	x.goRun(func(c context.Context) { x.cutLoop(c) })
	x.goRun(func(c context.Context) { x.recordLoop(c) })
	x.goRun(func(c context.Context) { x.joinLoop(c, evts) })
	_ = ctx // Start does not block; the goroutines live until Close.
	return nil
}

func (x *Host) goRun(f func(context.Context)) {
	x.wg.Add(1)
	go func() {
		defer x.wg.Done()
		f(x.ctx)
	}()
}

// Close stops discovery and publishing, leaves the topics, closes the DHT
// and the libp2p host (and with it the resource and connection managers),
// and waits for the host's goroutines.
func (x *Host) Close() error {
	x.mu.Lock()
	if x.closed {
		x.mu.Unlock()
		return nil
	}
	x.closed = true
	d, md := x.dht, x.mdns
	topics := make([]*Topic, 0, len(x.topics))
	for _, t := range x.topics {
		topics = append(topics, t)
	}
	x.mu.Unlock()

	var errs []error
	if md != nil {
		errs = append(errs, md.Close())
	}
	for _, t := range topics {
		t.close()
	}
	x.cancel() // stops our loops and pubsub
	x.wg.Wait()
	if d != nil {
		errs = append(errs, d.Close())
	}
	errs = append(errs, x.h.Close())
	return errors.Join(errs...)
}

// Raw returns the go-libp2p host, for streams.
func (x *Host) Raw() host.Host { return x.h }

// PubSub returns the GossipSub router. Join topics through Host.Join, so
// they get the network's name, a validator and score parameters.
func (x *Host) PubSub() *pubsub.PubSub { return x.ps }

// NetworkID returns the network ID.
func (x *Host) NetworkID() string { return x.cfg.NetworkID }

// ID returns this node's peer ID.
func (x *Host) ID() peer.ID { return x.self }

// ProtocolID returns "/parley/<network>/<name>/<version>" (spec
// 11-federation §2).
func (x *Host) ProtocolID(name, version string) protocol.ID {
	return protocol.ID("/parley/" + x.cfg.NetworkID + "/" + name + "/" + version)
}

// Topic returns "parley/<network>/<name>" (spec 11-federation §2).
func (x *Host) Topic(name string) string { return "parley/" + x.cfg.NetworkID + "/" + name }

// validName reports whether s is 1 to 32 bytes of [a-z0-9-.].
func validName(s string) bool {
	if len(s) == 0 || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

// SetStreamHandler registers handler for ProtocolID(name, version) and
// advertises "name/version" in this node's record. The handler owns the
// stream: it must bound its reads, set deadlines and close or reset it.
func (x *Host) SetStreamHandler(name, version string, handler network.StreamHandler) error {
	if !validName(name) || !validName(version) {
		return fmt.Errorf("%w: %q/%q", ErrName, name, version)
	}
	x.h.SetStreamHandler(x.ProtocolID(name, version), handler)
	p := name + "/" + version
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, q := range x.protocols {
		if q == p {
			return nil
		}
	}
	if len(x.protocols) < wire.MaxRecordProtocols {
		x.protocols = append(x.protocols, p)
	}
	return nil
}

// RemoveStreamHandler removes the handler of ProtocolID(name, version).
func (x *Host) RemoveStreamHandler(name, version string) {
	x.h.RemoveStreamHandler(x.ProtocolID(name, version))
	p := name + "/" + version
	x.mu.Lock()
	defer x.mu.Unlock()
	for i, q := range x.protocols {
		if q == p {
			x.protocols = append(x.protocols[:i], x.protocols[i+1:]...)
			break
		}
	}
}

// SetPolicy changes the policy summary this node's next record carries.
func (x *Host) SetPolicy(p noderecord.Policy) {
	x.mu.Lock()
	x.policy = p
	x.mu.Unlock()
}

// Penalty bounds: every penaltyLimit penalties cut a peer's connections;
// counts are kept for at most maxPenalized peers (all are forgotten when
// the table is full, so it never grows without bound).
const (
	penaltyLimit = 3
	maxPenalized = 4096
)

// Penalize records that p sent this node something invalid on a stream
// (a malformed or oversized frame, say; reason is a short fixed word). Every
// penaltyLimit penalties its connections are closed, as for a peer whose
// gossip score fell below the graylist threshold (spec 11 §4); a peer that
// keeps at it keeps being cut. It implements the PeerPenalizer of
// node/federation.
func (x *Host) Penalize(p peer.ID, reason string) {
	x.mu.Lock()
	if x.penalties == nil || len(x.penalties) >= maxPenalized {
		x.penalties = make(map[peer.ID]int)
	}
	x.penalties[p]++
	n := x.penalties[p]
	x.mu.Unlock()
	x.log.Debug("peer penalized", "peer", p, "reason", reason, "count", n)
	if n%penaltyLimit == 0 {
		select {
		case x.cutq <- p:
		default: // the cut loop is busy: the next penalty tries again
		}
	}
}

// Throttle marks p as throttled by the operator (moderation of a node whose
// users draw reports, spec 13): the subsystems that serve other nodes hold
// its traffic to their throttled limits (delivery: federation's
// throttled_peer_rate). In memory, like Deny. Unthrottle lifts it.
func (x *Host) Throttle(p peer.ID) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.throttled == nil {
		x.throttled = make(map[peer.ID]bool)
	}
	x.throttled[p] = true
}

// Unthrottle lifts Throttle.
func (x *Host) Unthrottle(p peer.ID) {
	x.mu.Lock()
	defer x.mu.Unlock()
	delete(x.throttled, p)
}

// Throttled reports whether the operator throttles p.
func (x *Host) Throttled(p peer.ID) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.throttled[p]
}

// Deny refuses all connections to and from p from now on and closes any
// that are open (moderation: defederating a node). It is not persisted:
// put the peer in Config.Deny to keep it denied across restarts.
func (x *Host) Deny(p peer.ID) {
	x.gater.deny(p)
	_ = x.h.Network().ClosePeer(p)
}

// Allow lifts a Deny (or a Config.Deny entry) for p.
func (x *Host) Allow(p peer.ID) { x.gater.allow(p) }

// Denied reports whether p is denied.
func (x *Host) Denied(p peer.ID) bool { return x.gater.denied(p) }

// Score returns p's latest GossipSub peer score, read every score inspect
// period, and whether there is one.
func (x *Host) Score(p peer.ID) (float64, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	s, ok := x.scores[p]
	return s, ok
}

// mdnsNotifee connects to nodes found on the local network.
type mdnsNotifee struct{ x *Host }

func (n mdnsNotifee) HandlePeerFound(ai peer.AddrInfo) {
	if ai.ID != n.x.self {
		n.x.queueDial(ai)
	}
}

func (x *Host) queueDial(ai peer.AddrInfo) {
	select {
	case x.dialq <- ai:
	default: // a full queue drops the dial; records and the DHT bring the peer back
	}
}

// dialLoop connects, one at a time, to the nodes records and mDNS name,
// while the connection count is below ConnHigh.
func (x *Host) dialLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case ai := <-x.dialq:
			n := x.h.Network()
			if n.Connectedness(ai.ID) == network.Connected || x.gater.denied(ai.ID) || len(n.Peers()) >= x.cfg.ConnHigh {
				continue
			}
			c, cancel := context.WithTimeout(ctx, dialTimeout)
			if err := x.h.Connect(c, ai); err != nil {
				x.log.Debug("dialing a known node failed", "peer", ai.ID, "err", err)
			}
			cancel()
		}
	}
}

// cutLoop disconnects peers whose score fell below the graylist threshold.
func (x *Host) cutLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case p := <-x.cutq:
			if x.h.Network().Connectedness(p) == network.Connected {
				x.log.Info("disconnecting a peer for its gossip score", "peer", p)
				x.m.scoreCuts.Inc()
				_ = x.h.Network().ClosePeer(p)
			}
		}
	}
}

// bootstrapLoop connects to every bootstrap peer that is not connected,
// waits, and repeats, backing off (with jitter) while some stay
// unreachable and checking every bootstrapMaxWait once all are connected.
func (x *Host) bootstrapLoop(ctx context.Context) {
	if len(x.boot) == 0 {
		return
	}
	wait := bootstrapMinWait
	dhtBooted := false
	for {
		var wg sync.WaitGroup
		var mu sync.Mutex
		failed := 0
		for _, ai := range x.boot {
			if x.h.Network().Connectedness(ai.ID) == network.Connected || x.gater.denied(ai.ID) {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, cancel := context.WithTimeout(ctx, dialTimeout)
				defer cancel()
				if err := x.h.Connect(c, ai); err != nil {
					x.log.Debug("bootstrap peer unreachable", "peer", ai.ID, "err", err)
					mu.Lock()
					failed++
					mu.Unlock()
					return
				}
				x.h.ConnManager().Protect(ai.ID, "bootstrap")
			}()
		}
		wg.Wait()
		if ctx.Err() != nil {
			return
		}
		if failed < len(x.boot) && !dhtBooted && x.dht != nil {
			dhtBooted = true
			if err := x.dht.Bootstrap(ctx); err != nil {
				x.log.Warn("dht bootstrap", "err", err)
			}
		}
		sleep := bootstrapMaxWait // all connected: check again later
		if failed > 0 {
			sleep, wait = wait, min(wait*2, bootstrapMaxWait)
		} else {
			wait = bootstrapMinWait
		}
		t := time.NewTimer(jitter(sleep))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// jitter returns d scaled by a factor in [0.75, 1.25), from the clock's
// nanoseconds: no shared random source is needed for spreading retries.
func jitter(d time.Duration) time.Duration {
	f := 0.75 + float64(time.Now().UnixNano()%1000)/2000
	return time.Duration(float64(d) * f)
}
