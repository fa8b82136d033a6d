// Package node is parleyd: it wires the node's subsystems together and runs
// them. Each subsystem lives in its own package under node/ and does one job:
//
//   - store: the pebble database; synced, group-committed writes.
//   - accounts: registration, challenge login, session tokens, suspension.
//   - rooms, mailbox, relay: rooms, each account's event log (what sync
//     returns), and the send path that stamps and durably stores envelopes.
//   - pairing: the lottery on this node: tickets, epochs, the draw.
//   - p2p: the libp2p host: transports, discovery, node records, gossip.
//   - federation: the outbox and delivery of envelopes between nodes.
//   - lotterynet: the lottery's gossip between nodes and pair confirmation.
//   - moderation, reports: verified reports, forwarded to the accused's
//     node, and what they and spam signals do to local accounts.
//   - blobs: encrypted files by address: resumable uploads, quotas, GC.
//   - api: the client HTTP API (spec 09).
//   - ops: the operator listener (metrics, liveness, readiness, admin).
//   - config, nodekey: the config file and the node's key file.
//
// New builds everything from a Config, in dependency order, explicitly; Run
// serves until its context ends and then shuts down gracefully: it stops
// being ready, stops accepting requests, drains in-flight ones, stops the
// subsystems' goroutines and closes the store last.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/parley-chat/parley/node/accounts"
	"github.com/parley-chat/parley/node/admin"
	"github.com/parley-chat/parley/node/api"
	"github.com/parley-chat/parley/node/blobs"
	"github.com/parley-chat/parley/node/federation"
	"github.com/parley-chat/parley/node/lotterynet"
	"github.com/parley-chat/parley/node/mailbox"
	"github.com/parley-chat/parley/node/moderation"
	"github.com/parley-chat/parley/node/nodekey"
	"github.com/parley-chat/parley/node/ops"
	"github.com/parley-chat/parley/node/p2p"
	"github.com/parley-chat/parley/node/pairing"
	"github.com/parley-chat/parley/node/ratelimit"
	"github.com/parley-chat/parley/node/relay"
	"github.com/parley-chat/parley/node/reports"
	"github.com/parley-chat/parley/node/reports/forward"
	"github.com/parley-chat/parley/node/rooms"
	"github.com/parley-chat/parley/node/store"
	"github.com/parley-chat/parley/protocol/keys"
)

// Version is the software version, set at build time with
// -ldflags "-X github.com/parley-chat/parley/node.Version=...".
var Version = "dev"

// Config is the whole node configuration, as in the config file that
// `parleyd init` writes. Every field's default is in its comment.
type Config struct {
	// DataDir holds the store, the node key and the admin token. Required.
	DataDir string `toml:"data_dir" comment:"Directory for the node's data: the store, node.key, admin.token. Required."`
	// Network separates Parley networks; nodes with different IDs never mix.
	// Default "parley-local".
	Network string `toml:"network" comment:"Network ID: nodes of different networks never talk (default \"parley-local\")."`
	// Log configures logging.
	Log LogConfig `toml:"log" comment:"Logging."`
	// Client is the client API listener.
	Client ListenerConfig `toml:"client" comment:"The client API (spec/09-client-api.md)."`
	// Operator is the operator listener (metrics, health, admin).
	Operator ListenerConfig `toml:"operator" comment:"The operator listener: /metrics, /livez, /readyz and the admin API. Keep it private."`
	// ShutdownTimeout bounds the graceful drain on shutdown. Default 15s.
	ShutdownTimeout time.Duration `toml:"shutdown_timeout" comment:"How long a graceful shutdown may drain requests before it forces them closed (default \"15s\")."`
	// Store configures the database.
	Store store.Config `toml:"store" comment:"The database (pebble), under <data_dir>/store."`
	// Accounts configures registration and login.
	Accounts accounts.Config `toml:"accounts" comment:"Accounts: registration, login challenges, session tokens."`
	// API configures the client API.
	API api.Config `toml:"api" comment:"Client API limits."`
	// Mailbox configures the accounts' event logs.
	Mailbox mailbox.Config `toml:"mailbox" comment:"Mailboxes: what sync returns, kept until acknowledged or expired."`
	// Relay configures the send path.
	Relay relay.Config `toml:"relay" comment:"The send path: stamping and durable storage of messages."`
	// Pairing configures the lottery.
	Pairing pairing.Config `toml:"pairing" comment:"The pairing lottery."`
	// Admin configures the admin API (admin section).
	Admin admin.Config `toml:"admin" comment:"The admin API on the operator listener (spec/10-admin-api.md); its token is <data_dir>/admin.token."`
	// Limits are every account's budgets per kind of request.
	Limits ratelimit.AccountConfig `toml:"limits" comment:"Every account's budget per kind of request: token buckets; over it, 429 (DESIGN §3.7)."`
	// Moderation configures what verified reports and spam signals do.
	Moderation moderation.Config `toml:"moderation" comment:"Moderation: what verified reports and spam signals do to local accounts (spec/13-moderation.md)."`
	// ReportForward configures forwarding reports to the accused's node.
	ReportForward forward.Config `toml:"report_forward" comment:"Forwarding reports to the accused's home node: outbox, retries, limits (spec/13-moderation.md)."`
	// Blobs configures blob storage under <data_dir>/blobs.
	Blobs blobs.Config `toml:"blobs" comment:"Blob storage: encrypted files under <data_dir>/blobs (spec/08-blobs.md §11)."`
	// P2P configures the libp2p host; its network ID is Network.
	P2P p2p.Config `toml:"p2p" comment:"Federation: the libp2p host, discovery and gossip (spec/11-federation.md). The network ID is the top-level network."`
	// Federation configures delivery between nodes.
	Federation federation.Config `toml:"federation" comment:"Delivery of messages between nodes: outbox, retries, limits (spec/12-delivery.md)."`
	// LotteryNet configures the lottery's gossip between nodes; its epoch
	// length is Pairing.EpochLength.
	LotteryNet lotterynet.Config `toml:"lottery_net" comment:"The lottery between nodes: gossip phases and bounds (spec/07-lottery.md §13). The epoch length is [pairing] epoch_length."`
}

// LogConfig configures the node's log output.
type LogConfig struct {
	// Level is debug, info, warn or error. Default info.
	Level string `toml:"level" comment:"debug, info, warn or error (default \"info\")."`
	// Format is text or json. Default text.
	Format string `toml:"format" comment:"text or json (default \"text\")."`
}

// ListenerConfig is one HTTP listener.
type ListenerConfig struct {
	// Listen is host:port. Client default 127.0.0.1:7480, operator
	// 127.0.0.1:7481. Port 0 picks a free port.
	Listen string `toml:"listen" comment:"host:port to listen on; port 0 picks a free port."`
}

// DefaultConfig returns the defaults of every setting, with DataDir empty.
func DefaultConfig() Config {
	return Config{
		Network:         "parley-local",
		Log:             LogConfig{Level: "info", Format: "text"},
		Client:          ListenerConfig{Listen: "127.0.0.1:7480"},
		Operator:        ListenerConfig{Listen: "127.0.0.1:7481"},
		ShutdownTimeout: 15 * time.Second,
		Store:           store.DefaultConfig(),
		Accounts:        accounts.DefaultConfig(),
		API:             api.DefaultConfig(),
		Mailbox:         mailbox.DefaultConfig(),
		Relay:           relay.DefaultConfig(),
		Pairing:         pairing.DefaultConfig(),
		Admin:           admin.DefaultConfig(), // admin
		Limits:          ratelimit.DefaultAccountConfig(),
		Moderation:      moderation.DefaultConfig(),
		ReportForward:   forward.DefaultConfig(),
		Blobs:           blobs.DefaultConfig(),
		P2P:             p2p.DefaultConfig(),
		Federation:      federation.DefaultConfig(),
	}
}

// Validate reports every problem with c at once.
func (c *Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("data_dir is required"))
	}
	if c.Network == "" {
		errs = append(errs, errors.New("network is required"))
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log.level %q is not debug, info, warn or error", c.Log.Level))
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		errs = append(errs, fmt.Errorf("log.format %q is not text or json", c.Log.Format))
	}
	for name, l := range map[string]string{"client.listen": c.Client.Listen, "operator.listen": c.Operator.Listen} {
		if _, _, err := net.SplitHostPort(l); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %w", name, l, err))
		}
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, errors.New("shutdown_timeout must be positive"))
	}
	st := c.Store
	st.Dir = c.StoreDir()
	// Fields the node fills in itself are given placeholders here.
	ac := c.Accounts
	ac.Audience = "node"
	ap := c.API
	ap.NodeID, ap.Network = keys.NodeID{}.String(), "network"
	bc := c.Blobs
	bc.Dir = c.BlobsDir()
	for _, err := range []error{st.Validate(), ac.Validate(), ap.Validate(), c.Mailbox.Validate(), c.Relay.Validate(), c.Pairing.Validate(), c.Admin.Validate(),
		bc.Validate(), c.Limits.Validate(), c.Moderation.Validate(), c.ReportForward.Validate(), c.p2pConfig().Validate(), c.Federation.Validate(), c.lotteryNetConfig().Validate()} {
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// p2pConfig is the P2P section with the network ID filled in.
func (c *Config) p2pConfig() p2p.Config {
	pc := c.P2P
	pc.NetworkID = c.Network
	return pc
}

// lotteryNetConfig is the LotteryNet section with the epoch length filled in.
func (c *Config) lotteryNetConfig() lotterynet.Config {
	lc := c.LotteryNet
	lc.EpochLength = c.Pairing.EpochLength
	return lc
}

// StoreDir is where the database lives.
func (c *Config) StoreDir() string { return filepath.Join(c.DataDir, "store") }

// BlobsDir is where blob ciphertexts live.
func (c *Config) BlobsDir() string { return filepath.Join(c.DataDir, "blobs") }

// KeyFile is the node key's path.
func (c *Config) KeyFile() string { return filepath.Join(c.DataDir, "node.key") }

// AdminTokenFile is the admin token's path.
func (c *Config) AdminTokenFile() string { return admin.TokenPath(c.DataDir) }

// Option is a test seam or wiring choice for New.
type Option func(*options)

type options struct {
	logger *slog.Logger
	reg    *prometheus.Registry
	storeO []store.Option
	now    func() time.Time
}

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithRegistry sets the metrics registry the operator listener serves.
func WithRegistry(r *prometheus.Registry) Option { return func(o *options) { o.reg = r } }

// WithStoreOptions passes options to store.Open (tests use a memory FS).
func WithStoreOptions(opts ...store.Option) Option {
	return func(o *options) { o.storeO = append(o.storeO, opts...) }
}

// WithClock replaces time.Now.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// Node is a running parleyd.
type Node struct {
	cfg   Config
	log   *slog.Logger
	reg   *prometheus.Registry
	key   keys.NodeKey
	store *store.Store
	ready *ops.Ready

	accounts *accounts.Service
	mailbox  *mailbox.Mailbox
	relay    *relay.Relay
	pairing  *pairing.Lottery
	host     *p2p.Host
	fedOut   *federation.Sender
	fedIn    *federation.Handler
	lotNet   *lotterynet.Network
	blobs    *blobs.Store
	blobNote *blobs.Notifier
	repOut   *forward.Sender
	reports  *reports.Reports
	repIn    *forward.Handler
	api      *api.Server
	admin    *admin.Server // admin: the operator's admin API

	adminTokenHash [32]byte // admin: SHA-256 of the admin token, all the node keeps

	mu        sync.Mutex
	clientLn  net.Listener
	opLn      net.Listener
	listening chan struct{}
}

// New opens the node's store and builds its subsystems. It does not listen:
// Run does.
func New(cfg Config, opts ...Option) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o := options{logger: slog.New(slog.DiscardHandler), now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	if o.reg == nil {
		o.reg = prometheus.NewRegistry()
		o.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	key, err := nodekey.Load(cfg.KeyFile())
	if err != nil {
		return nil, err
	}
	// admin: the admin token, read before anything is opened.
	tokenHash, err := admin.LoadTokenHash(cfg.AdminTokenFile())
	if errors.Is(err, admin.ErrNoToken) {
		return nil, fmt.Errorf("node: no admin token at %s: create one with `parleyd admin token --data %s`", cfg.AdminTokenFile(), cfg.DataDir)
	}
	if err != nil {
		return nil, err
	}
	log := o.logger.With("node", key.Public().String())
	n := &Node{cfg: cfg, log: log, reg: o.reg, key: key, ready: ops.NewReady("store", "listeners"), listening: make(chan struct{}), adminTokenHash: tokenHash}

	stCfg := cfg.Store
	stCfg.Dir = cfg.StoreDir()
	st, err := store.Open(stCfg, append([]store.Option{store.WithLogger(log), store.WithRegisterer(o.reg)}, o.storeO...)...)
	if err != nil {
		return nil, err
	}
	n.store = st
	if err := n.build(cfg, o); err != nil {
		n.closeNetwork()
		_ = st.Close()
		return nil, err
	}
	n.ready.Set("store", true)
	return n, nil
}

// The stream protocols' names and versions (p2p.Host.ProtocolID makes
// "/parley/<network>/<name>/<version>"; report forwarding's are
// forward.Name and forward.Version).
const (
	deliverProtocol     = "deliver" // spec 12
	deliverVersion      = "1.0.0"
	blobFetchProtocol   = "blob-fetch" // spec 08 §12
	blobFetchVersion    = "1.0.0"
	blobTakedownName    = "blob-takedown" // spec 08 §13
	blobTakedownVersion = "1.0.0"
	pairConfirmProtocol = "pair-confirm" // spec 07 §13.4
	pairConfirmVersion  = "3.1.0"
)

// build creates the subsystems on the open store, in dependency order.
func (n *Node) build(cfg Config, o options) error {
	log, reg, id := n.log, n.reg, n.key.Public()
	acCfg := cfg.Accounts
	acCfg.Audience = id.String()
	var err error
	if n.accounts, err = accounts.New(n.store, acCfg, accounts.WithClock(o.now), accounts.WithLogger(log), accounts.WithRegisterer(reg)); err != nil {
		return err
	}
	rms := rooms.New(n.store)
	if n.mailbox, err = mailbox.New(cfg.Mailbox, n.store, mailbox.WithClock(o.now), mailbox.WithLogger(log), mailbox.WithRegisterer(reg)); err != nil {
		return err
	}
	// Federation: the host, then the outbox the relay forwards into, the
	// delivery sender and receiver, and the lottery's network.
	if n.host, err = p2p.New(cfg.p2pConfig(), n.key, p2p.WithLogger(log), p2p.WithRegisterer(reg), p2p.WithClock(o.now), p2p.WithSoftware("parleyd/"+Version)); err != nil {
		return err
	}
	fedOpts := []federation.Option{federation.WithClock(o.now), federation.WithLogger(log), federation.WithRegisterer(reg),
		federation.WithPenalizer(n.host), federation.WithThrottled(n.host.Throttled)}
	outbox, err := federation.NewOutbox(n.store, fedOpts...)
	if err != nil {
		return err
	}
	if n.relay, err = relay.New(cfg.Relay, n.store, rms, n.mailbox, n.key, relay.WithClock(o.now), relay.WithLogger(log), relay.WithRegisterer(reg), relay.WithForwarder(outbox)); err != nil {
		return err
	}
	if n.fedOut, err = federation.NewSender(cfg.Federation, outbox, n.host.Raw(), n.host.ProtocolID(deliverProtocol, deliverVersion), fedOpts...); err != nil {
		return err
	}
	if n.fedIn, err = federation.NewHandler(cfg.Federation, n.relay, fedOpts...); err != nil {
		return err
	}
	// The lottery's network asks the lottery, built next, to confirm pairs;
	// it does so only after this node's own draw of the epoch.
	names := lotterynet.Names{TopicPrefix: n.host.Topic(""), ConfirmProtocol: n.host.ProtocolID(pairConfirmProtocol, pairConfirmVersion)}
	confirm := func(ctx context.Context, q pairing.PairQuery) (bool, error) { return n.pairing.ConfirmPair(ctx, q) }
	if n.lotNet, err = lotterynet.New(cfg.lotteryNetConfig(), names, n.host.Raw(), n.host.PubSub(), n.key, confirm,
		lotterynet.WithClock(o.now), lotterynet.WithLogger(log), lotterynet.WithRegisterer(reg), lotterynet.WithPenalizer(n.host),
		lotterynet.WithDenied(func(id keys.NodeID) bool { return n.host.Denied(p2p.PeerID(id)) })); err != nil {
		return err
	}
	if n.pairing, err = pairing.New(cfg.Pairing, n.store, rms, n.mailbox, n.key, pairing.WithClock(o.now), pairing.WithLogger(log), pairing.WithRegisterer(reg), pairing.WithNetwork(n.lotNet)); err != nil {
		return err
	}
	bCfg := cfg.Blobs
	bCfg.Dir = cfg.BlobsDir()
	if n.blobs, err = blobs.Open(bCfg, n.store, blobs.WithClock(o.now), blobs.WithLogger(log), blobs.WithRegisterer(reg)); err != nil {
		return err
	}
	n.blobNote = blobs.NewNotifier(n.blobs, n.host.Raw(), n.host.ProtocolID(blobTakedownName, blobTakedownVersion), n.key)
	// Moderation judges this node's own users on verified reports (its own
	// users' and other nodes' forwarded ones) and spam signals.
	mod, err := moderation.New(cfg.Moderation, n.store, n.accounts, rms, moderation.WithClock(o.now), moderation.WithLogger(log), moderation.WithRegisterer(reg))
	if err != nil {
		return err
	}
	lim, err := ratelimit.NewAccounts(cfg.Limits, ratelimit.WithClock(o.now), ratelimit.WithRegisterer(reg))
	if err != nil {
		return err
	}
	watch, err := moderation.NewNodeWatch(cfg.Moderation, func(id keys.NodeID) { n.host.Throttle(p2p.PeerID(id)) },
		moderation.WithClock(o.now), moderation.WithLogger(log), moderation.WithRegisterer(reg))
	if err != nil {
		return err
	}
	repOutbox := forward.NewOutbox(n.store)
	rep := reports.New(n.store, rms, o.now, reports.WithPolicy(mod), reports.WithForwarder(reportForwarder{ob: repOutbox, watch: watch}),
		reports.WithLogger(log), reports.WithRegisterer(reg))
	fwdOpts := []forward.Option{forward.WithClock(o.now), forward.WithLogger(log), forward.WithRegisterer(reg), forward.WithPenalizer(n.host)}
	if n.repOut, err = forward.NewSender(cfg.ReportForward, repOutbox, n.host.Raw(), n.host.ProtocolID(forward.Name, forward.Version), fwdOpts...); err != nil {
		return err
	}
	n.reports = rep
	if n.repIn, err = forward.NewHandler(cfg.ReportForward, rep, fwdOpts...); err != nil {
		return err
	}
	apiCfg := cfg.API
	apiCfg.NodeID, apiCfg.Version, apiCfg.Network = id.String(), Version, cfg.Network
	n.api, err = api.New(apiCfg, api.Deps{
		Accounts: accountsAdapter{s: n.accounts, node: id},
		Rooms:    roomsAdapter{rooms: rms, relay: n.relay, mod: mod, log: log},
		Mailbox:  mailboxAdapter{mb: n.mailbox},
		Sender:   senderAdapter{relay: n.relay, mod: mod, lim: lim},
		Pairing:  pairingAdapter{l: n.pairing, mod: mod, lim: lim},
		Reports:  reportsAdapter{r: rep, lim: lim},
		Blobs:    blobsAdapter{s: n.blobs, lim: lim, f: blobs.NewStreamFetcher(n.host.Raw(), n.host.ProtocolID(blobFetchProtocol, blobFetchVersion), bCfg)},
	}, api.WithClock(o.now), api.WithLogger(log), api.WithRegisterer(reg))
	if err != nil {
		return err
	}
	// admin: the operator's admin API, mounted on the operator listener by Run.
	n.admin, err = admin.New(cfg.Admin, admin.Deps{Accounts: n.accounts, Reports: rep, Lottery: n.pairing, Moderation: mod, Peers: n.host, Blobs: n.blobs},
		n.adminTokenHash, admin.WithLogger(log), admin.WithRegisterer(reg))
	return err
}

// ID returns the node's ID (its libp2p peer ID).
func (n *Node) ID() keys.NodeID { return n.key.Public() }

// Addrs returns the client and operator listeners' addresses once Run has
// bound them (it blocks until then or until ctx ends).
func (n *Node) Addrs(ctx context.Context) (client, operator string, err error) {
	select {
	case <-n.listening:
	case <-ctx.Done():
		return "", "", ctx.Err()
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.clientLn.Addr().String(), n.opLn.Addr().String(), nil
}

// Run serves until ctx ends, then shuts down gracefully and closes the
// store. It returns nil after a clean shutdown.
func (n *Node) Run(ctx context.Context) error {
	defer func() {
		if err := n.store.Close(); err != nil {
			n.log.Error("closing store", "err", err)
		}
	}()
	defer n.closeNetwork() // after the subsystems stop, before the store closes
	var lc net.ListenConfig
	clientLn, err := lc.Listen(ctx, "tcp", n.cfg.Client.Listen)
	if err != nil {
		return fmt.Errorf("node: client listener: %w", err)
	}
	opLn, err := lc.Listen(ctx, "tcp", n.cfg.Operator.Listen)
	if err != nil {
		_ = clientLn.Close()
		return fmt.Errorf("node: operator listener: %w", err)
	}
	n.mu.Lock()
	n.clientLn, n.opLn = clientLn, opLn
	n.mu.Unlock()
	close(n.listening)

	clientSrv := &http.Server{Handler: n.clientHandler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute, ErrorLog: slog.NewLogLogger(n.log.Handler(), slog.LevelWarn)}
	opSrv := &http.Server{Handler: ops.Handler(n.reg, n.ready, map[string]http.Handler{admin.Prefix: n.admin.Handler()}), ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(n.log.Handler(), slog.LevelWarn)}

	errc := make(chan error, 5)
	var wg sync.WaitGroup
	for _, s := range []struct {
		srv *http.Server
		ln  net.Listener
	}{{clientSrv, clientLn}, {opSrv, opLn}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
	}
	// The subsystems' own loops: the relay's pipeline, the lottery's epochs,
	// the mailbox's expiry, delivery to other nodes. They stop when runCtx
	// ends, after the listeners have drained.
	runCtx, stopSubsystems := context.WithCancel(context.WithoutCancel(ctx))
	defer stopSubsystems()
	// Federation: take deliveries, then join the network.
	if err := n.host.SetStreamHandler(deliverProtocol, deliverVersion, n.fedIn.StreamHandler(runCtx)); err != nil {
		return err
	}
	if err := n.host.SetStreamHandler(forward.Name, forward.Version, n.repIn.StreamHandler(runCtx)); err != nil {
		return err
	}
	if err := n.host.SetStreamHandler(blobFetchProtocol, blobFetchVersion, n.blobs.ServeFetch(runCtx)); err != nil {
		return err
	}
	if err := n.host.SetStreamHandler(blobTakedownName, blobTakedownVersion, n.blobNote.Handler(runCtx)); err != nil {
		return err
	}
	if err := n.host.Start(runCtx); err != nil {
		return err
	}
	var subs sync.WaitGroup
	for name, run := range map[string]func(context.Context) error{
		"relay": n.relay.Run, "pairing": n.pairing.Run, "mailbox": n.mailbox.Run, "federation": n.fedOut.Run, "blobs": n.blobs.Run, "blob_takedown": n.blobNote.Run, "report_forward": n.repOut.Run,
		"reports": func(ctx context.Context) error { return n.reports.Run(ctx, n.cfg.Moderation.ReportRetention) },
	} {
		subs.Add(1)
		go func() {
			defer subs.Done()
			if err := run(runCtx); err != nil && !errors.Is(err, context.Canceled) {
				n.log.Error("subsystem stopped", "subsystem", name, "err", err)
				errc <- err
			}
		}()
	}

	n.ready.Set("listeners", true)
	n.log.Info("node running", "client", clientLn.Addr().String(), "operator", opLn.Addr().String(), "network", n.cfg.Network, "version", Version)

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
		n.log.Error("listener failed", "err", runErr)
	}

	// Graceful shutdown: not ready, stop accepting, drain, then close.
	n.ready.Set("shutting down", false)
	n.log.Info("shutting down", "timeout", n.cfg.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), n.cfg.ShutdownTimeout)
	defer cancel()
	if err := n.api.Shutdown(sctx); err != nil {
		n.log.Warn("client API shutdown", "err", err)
	}
	if err := clientSrv.Shutdown(sctx); err != nil {
		n.log.Warn("client API drain incomplete", "err", err)
		_ = clientSrv.Close()
	}
	if err := opSrv.Shutdown(sctx); err != nil {
		_ = opSrv.Close()
	}
	wg.Wait()
	stopSubsystems()
	subs.Wait()
	n.log.Info("stopped")
	return runErr
}

// closeNetwork leaves the network: the lottery's gossip, then the host
// (its streams, gossip and connections). The store closes after it.
func (n *Node) closeNetwork() {
	if n.lotNet != nil {
		n.lotNet.Close()
	}
	if n.host != nil {
		if err := n.host.Close(); err != nil {
			n.log.Warn("closing the libp2p host", "err", err)
		}
	}
}

// P2P returns the node's libp2p host: its peers, deny list and scores.
func (n *Node) P2P() *p2p.Host { return n.host }

// P2PAddrs returns the node's libp2p addresses, each ending in /p2p/<node
// ID>: what another node puts in its bootstrap list.
func (n *Node) P2PAddrs() []string {
	h := n.host.Raw()
	out := make([]string, 0, len(h.Addrs()))
	for _, a := range h.Addrs() {
		out = append(out, a.String()+"/p2p/"+h.ID().String())
	}
	return out
}

func (n *Node) clientHandler() http.Handler { return n.api.Handler() }
