// Package lotterynet runs the pairing lottery across nodes (DESIGN §3.3,
// spec 07-lottery §13): it implements pairing.Network over GossipSub and a
// direct pair-confirmation stream protocol.
//
// Each epoch, every node gossips one ticket batch (its tickets of the
// epoch, one stamp signature) and its signed commit on two topics before
// the epoch's tickets close, then its reveal on a third. Topic validators
// parse strictly, check the originating node's signatures and the epoch's
// timing, keep per-epoch state bounded, and detect equivocation (two
// different commits or ticket batches of one node for one epoch): that
// node's inputs are dropped for the epoch, the proof is kept (Proofs,
// Equivocations; pairing stores it with the epoch's inputs) and the node
// is penalized. Every node enforces a per-node quota of tickets per epoch
// (Config.MaxTicketsPerNode): a bigger batch is rejected. A node that
// committed and did not reveal by Collect's deadline is excluded from the
// epoch (lottery.Draw drops it and its tickets), counted and penalized.
// Collect returns a frozen snapshot of the epoch's inputs; the two home
// nodes of drawn pairs then confirm them to each other over the confirm
// protocol, one exchange per other node and epoch carrying all the pairs
// with that node, from the same view (lottery.Result.View), each answer
// signed, each side asking its Confirmer (the local pairing subsystem,
// pairing.Lottery.ConfirmPair); a node with pairs of two of its own
// tickets checks its view with another node (CheckView).
//
// Timing, with L the epoch length, S the clock skew bound and end(n) the
// end of epoch n ((n+1)·L): tickets and commits of epoch n are accepted
// from n·L−S until end(n)+TicketPhase (tickets close); Publish returns at
// end(n)+TicketPhase+S, when every node's clock has passed the close, and
// the reveal goes out; reveals are accepted from the close until
// end(n)+TicketPhase+3S+RevealPhase; Collect returns at
// end(n)+TicketPhase+2S+RevealPhase, or as soon as every committed node
// has revealed.
package lotterynet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/node/pairing"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/lottery"
	"github.com/parley-chat/parley/protocol/wire"
)

// Errors returned by this package. Match them with errors.Is.
var (
	// ErrLate: Publish was called after the epoch's tickets closed; nothing
	// was sent and the tickets roll over.
	ErrLate = errors.New("lotterynet: epoch's tickets already closed")
	// ErrClosed: the Network was closed.
	ErrClosed = errors.New("lotterynet: closed")
	// ErrNoRemote: Confirm was given no remote ticket.
	ErrNoRemote = errors.New("lotterynet: no remote ticket to confirm with")
	// ErrBadAnswer: the remote node's confirm answer was malformed, not
	// signed by the remote ticket's home node, or about another pair or
	// view.
	ErrBadAnswer = errors.New("lotterynet: bad confirm answer")
	// ErrSelf: CheckView was asked to check with this node itself.
	ErrSelf = errors.New("lotterynet: view check with this node")
)

// Topic names under Names.TopicPrefix.
const (
	TopicTickets = "lottery-tickets"
	TopicCommits = "lottery-commits"
	TopicReveals = "lottery-reveals"
)

// Names are the network's topic prefix and confirm protocol ID, supplied by
// the federation layer (they carry the network ID).
type Names struct {
	// TopicPrefix is prepended to TopicTickets, TopicCommits and
	// TopicReveals, e.g. "parley/main/".
	TopicPrefix string
	// ConfirmProtocol is the pair-confirmation stream protocol, e.g.
	// "/parley/main/pair-confirm/3.1.0".
	ConfirmProtocol protocol.ID
}

// Config is the lottery's network timing and bounds (a [lottery_net]
// section). Zero fields take their defaults, most derived from
// EpochLength; the sum TicketPhase + 2·MaxClockSkew + RevealPhase +
// ConfirmTimeout must fit in one epoch.
type Config struct {
	// EpochLength must equal the pairing configuration's epoch length.
	// Default 2s.
	// parleyd sets it from [pairing] epoch_length, so the config file has
	// no key for it.
	EpochLength time.Duration `toml:"-"`
	// MaxClockSkew bounds the difference between any two nodes' clocks.
	// Default EpochLength/20.
	MaxClockSkew time.Duration `toml:"max_clock_skew" comment:"Largest clock difference between nodes tolerated (default epoch_length/20)."`
	// TicketPhase is how long after its epoch ends an epoch's tickets and
	// commits are accepted. More than MaxClockSkew. Default
	// 3·EpochLength/10.
	TicketPhase time.Duration `toml:"ticket_phase" comment:"How long after an epoch ends its tickets and commits are taken (default 3/10 epoch_length)."`
	// RevealPhase is how long reveals have to spread once every clock
	// passed the ticket close. Default EpochLength/5.
	RevealPhase time.Duration `toml:"reveal_phase" comment:"How long reveals have to spread (default epoch_length/5)."`
	// ConfirmTimeout bounds one confirm exchange, both ways. Default
	// 2·EpochLength/5: what the default phases leave of the epoch (the
	// next epoch's tickets are published meanwhile).
	ConfirmTimeout time.Duration `toml:"confirm_timeout" comment:"Deadline of one confirm exchange with another node (default 2/5 epoch_length)."`
	// RetainEpochs is how many past epochs' gossip state is kept (and a
	// deciding node's confirm answers, which an asking node may ask for
	// again for 2 epochs). At least 3. Default 4.
	RetainEpochs int `toml:"retain_epochs" comment:"Past epochs whose gossip state is kept in memory (default 4)."`
	// MaxTicketsPerEpoch bounds the tickets of all nodes kept for one
	// epoch; batches beyond it are ignored. At most
	// wire.MaxTicketsPerEpoch. Default 65536.
	MaxTicketsPerEpoch int `toml:"max_tickets_per_epoch" comment:"Most tickets of all nodes kept for one epoch (default 65536)."`
	// MaxTicketsPerNode is the per-node quota: the most tickets one node
	// may put into one epoch. A network-wide parameter: every node rejects
	// a bigger batch (the sending peer loses score), and publishes at most
	// this many of its own (the rest roll over). At most
	// wire.MaxTicketBatch. Default wire.MaxTicketBatch (1024).
	MaxTicketsPerNode int `toml:"max_tickets_per_node" comment:"Per-node quota of tickets in one epoch, the same on every node of the network (default 1024)."`
	// MaxProofs is how many equivocation proofs are kept in memory (the
	// oldest go first). Default 256.
	MaxProofs int `toml:"max_proofs" comment:"Equivocation proofs kept in memory (default 256)."`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config { return Config{}.withDefaults() }

func (c Config) withDefaults() Config {
	if c.EpochLength == 0 {
		c.EpochLength = 2 * time.Second
	}
	l := c.EpochLength
	if c.MaxClockSkew == 0 {
		c.MaxClockSkew = l / 20
	}
	if c.TicketPhase == 0 {
		c.TicketPhase = 3 * l / 10
	}
	if c.RevealPhase == 0 {
		c.RevealPhase = l / 5
	}
	if c.ConfirmTimeout == 0 {
		c.ConfirmTimeout = 2 * l / 5
	}
	if c.RetainEpochs == 0 {
		c.RetainEpochs = 4
	}
	if c.MaxTicketsPerEpoch == 0 {
		c.MaxTicketsPerEpoch = 65536
	}
	if c.MaxProofs == 0 {
		c.MaxProofs = 256
	}
	if c.MaxTicketsPerNode == 0 {
		c.MaxTicketsPerNode = wire.MaxTicketBatch
	}
	return c
}

// Validate reports every problem with c (after defaults) at once.
func (c Config) Validate() error {
	var errs []error
	if l := c.EpochLength; l != 0 && (l < 10*time.Millisecond || l > time.Hour || l%time.Millisecond != 0) {
		errs = append(errs, fmt.Errorf("lotterynet: epoch_length %s is not a whole number of milliseconds from 10ms to 1h", l))
	}
	for name, d := range map[string]time.Duration{"max_clock_skew": c.MaxClockSkew, "ticket_phase": c.TicketPhase,
		"reveal_phase": c.RevealPhase, "confirm_timeout": c.ConfirmTimeout} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("lotterynet: %s %s is negative", name, d))
		}
	}
	if c.RetainEpochs < 0 || c.MaxTicketsPerEpoch < 0 || c.MaxProofs < 0 || c.MaxTicketsPerNode < 0 {
		errs = append(errs, errors.New("lotterynet: retain_epochs, max_tickets_per_epoch, max_tickets_per_node and max_proofs must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	d := c.withDefaults()
	if d.TicketPhase <= d.MaxClockSkew {
		errs = append(errs, fmt.Errorf("lotterynet: ticket_phase %s must exceed max_clock_skew %s", d.TicketPhase, d.MaxClockSkew))
	}
	if sum := d.TicketPhase + 2*d.MaxClockSkew + d.RevealPhase + d.ConfirmTimeout; sum > d.EpochLength {
		errs = append(errs, fmt.Errorf("lotterynet: ticket_phase + 2·max_clock_skew + reveal_phase + confirm_timeout = %s exceeds epoch_length %s", sum, d.EpochLength))
	}
	if d.RetainEpochs < askFor+1 {
		// A deciding node must remember its answers as long as the asking
		// node may ask again (confirm.go).
		errs = append(errs, fmt.Errorf("lotterynet: retain_epochs %d is below %d", d.RetainEpochs, askFor+1))
	}
	if d.MaxTicketsPerNode > wire.MaxTicketBatch {
		errs = append(errs, fmt.Errorf("lotterynet: max_tickets_per_node %d exceeds %d", d.MaxTicketsPerNode, wire.MaxTicketBatch))
	}
	if d.MaxTicketsPerEpoch > wire.MaxTicketsPerEpoch {
		errs = append(errs, fmt.Errorf("lotterynet: max_tickets_per_epoch %d exceeds %d", d.MaxTicketsPerEpoch, wire.MaxTicketsPerEpoch))
	}
	return errors.Join(errs...)
}

// Confirmer decides an incoming pair confirmation: pairing.Lottery's
// ConfirmPair. The Network calls it only for an epoch whose Collect it has
// answered, so a Confirmer that refers to a pairing.Lottery built after the
// Network (with pairing.WithNetwork) and started before its first epoch is
// safe.
type Confirmer func(ctx context.Context, q pairing.PairQuery) (bool, error)

// PeerPenalizer is told about nodes that break the lottery's rules in ways
// gossip scoring cannot see (their messages are valid): a node that
// withholds its reveal or equivocates; and about peers that send malformed
// or false confirm frames (not gossip). p2p.Host implements it.
type PeerPenalizer interface {
	Penalize(p peer.ID, reason string)
}

// Reasons given to the PeerPenalizer (and label values of
// parley_lottery_net_excluded_nodes_total).
const (
	ReasonWithheld    = "withheld_reveal"
	ReasonEquivocated = "equivocated"
	// ReasonBadConfirm: a confirm request or answer that does not decode,
	// is not signed by the node asked, or answers another question (given
	// to the PeerPenalizer only).
	ReasonBadConfirm = "bad_confirm"
)

type options struct {
	now       func() time.Time
	logger    *slog.Logger
	reg       prometheus.Registerer
	penalizer PeerPenalizer
	drop      func(kind string, data []byte) bool
	denied    func(keys.NodeID) bool
}

// Option is a test seam or wiring choice for New.
type Option func(*options)

// WithClock replaces time.Now.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithLogger sets the logger; the default discards.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithRegisterer registers the metrics with r.
func WithRegisterer(r prometheus.Registerer) Option { return func(o *options) { o.reg = r } }

// WithPenalizer reports nodes that withhold their reveal or equivocate to
// p (with ReasonWithheld or ReasonEquivocated).
func WithPenalizer(p PeerPenalizer) Option { return func(o *options) { o.penalizer = p } }

// WithDenied leaves out of every epoch the tickets, commits and reveals of
// the nodes for which denied returns true (the operator's deny list, spec 07
// §13; p2p.Host.Denied behind it): relayed by others, they are ignored and
// counted as denied_node; such a node's users are never paired with this
// node's.
func WithDenied(denied func(keys.NodeID) bool) Option { return func(o *options) { o.denied = denied } }

// WithDropIncoming is a test seam: gossip from other peers for which drop
// returns true (kind is KindTickets, KindCommit or KindReveal, data the
// message) is treated as never received: ignored and not relayed. It
// simulates lost gossip towards this node.
func WithDropIncoming(drop func(kind string, data []byte) bool) Option {
	return func(o *options) { o.drop = drop }
}

// Network is the lottery of one node across the network. It is safe for
// concurrent use.
type Network struct {
	cfg     Config
	names   Names
	h       host.Host
	ps      *pubsub.PubSub
	key     keys.NodeKey
	node    keys.NodeID
	confirm Confirmer
	now     func() time.Time
	log     *slog.Logger
	metric  *metrics
	penal   PeerPenalizer
	drop    func(kind string, data []byte) bool
	denied  func(keys.NodeID) bool // WithDenied

	topics [3]*pubsub.Topic // tickets, commits, reveals
	subs   [3]*pubsub.Subscription
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	closed bool
	epochs map[uint64]*epochState
	proofs []lottery.Equivocation
}

var _ pairing.Network = (*Network)(nil)

// New joins the lottery topics on ps with validators, subscribes to them
// and serves the confirm protocol on h, as node key. confirm decides
// incoming confirmations. Close undoes it all.
func New(cfg Config, names Names, h host.Host, ps *pubsub.PubSub, key keys.NodeKey, confirm Confirmer, opts ...Option) (*Network, error) {
	err := cfg.Validate()
	if names.TopicPrefix == "" || names.ConfirmProtocol == "" {
		err = errors.Join(err, errors.New("lotterynet: topic prefix and confirm protocol are required"))
	}
	if h == nil || ps == nil || confirm == nil {
		err = errors.Join(err, errors.New("lotterynet: host, pubsub and confirmer are required"))
	}
	if err != nil {
		return nil, err
	}
	o := options{now: time.Now, logger: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(&o)
	}
	n := &Network{
		cfg: cfg.withDefaults(), names: names, h: h, ps: ps, key: key, node: key.Public(), confirm: confirm,
		now: o.now, log: o.logger.With("subsystem", "lotterynet"), metric: newMetrics(),
		penal: o.penalizer, drop: o.drop, denied: o.denied, epochs: make(map[uint64]*epochState),
	}
	if o.reg != nil {
		if err := n.metric.register(o.reg); err != nil {
			return nil, fmt.Errorf("lotterynet: registering metrics: %w", err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	vals := [3]pubsub.ValidatorEx{n.validateTickets, n.validateCommit, n.validateReveal}
	for i, name := range []string{TopicTickets, TopicCommits, TopicReveals} {
		topic := names.TopicPrefix + name
		if err := ps.RegisterTopicValidator(topic, vals[i]); err != nil {
			n.Close()
			return nil, fmt.Errorf("lotterynet: validator for %s: %w", topic, err)
		}
		t, err := ps.Join(topic)
		if err != nil {
			n.Close()
			return nil, fmt.Errorf("lotterynet: joining %s: %w", topic, err)
		}
		n.topics[i] = t
		sub, err := t.Subscribe()
		if err != nil {
			n.Close()
			return nil, fmt.Errorf("lotterynet: subscribing to %s: %w", topic, err)
		}
		n.subs[i] = sub
		n.wg.Go(func() {
			// Validators record the messages; the subscription only keeps
			// this node in the topic's mesh.
			for {
				if _, err := sub.Next(ctx); err != nil {
					return
				}
			}
		})
	}
	h.SetStreamHandler(names.ConfirmProtocol, n.handleConfirm)
	return n, nil
}

// Close stops serving the confirm protocol, leaves the topics and waits
// for its goroutines and in-flight confirm requests.
func (n *Network) Close() {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return
	}
	n.closed = true
	for _, st := range n.epochs {
		st.closeCollected()
	}
	n.mu.Unlock()
	n.h.RemoveStreamHandler(n.names.ConfirmProtocol)
	for _, s := range n.subs {
		if s != nil {
			s.Cancel()
		}
	}
	n.cancel()
	n.wg.Wait()
	for i, name := range []string{TopicTickets, TopicCommits, TopicReveals} {
		if n.topics[i] != nil {
			if err := n.topics[i].Close(); err != nil {
				n.log.Debug("closing topic", "topic", name, "err", err)
			}
		}
		_ = n.ps.UnregisterTopicValidator(n.names.TopicPrefix + name)
	}
}

// Epoch timing (package documentation).

func (n *Network) start(e uint64) time.Time {
	return time.UnixMilli(int64(e) * n.cfg.EpochLength.Milliseconds())
}
func (n *Network) end(e uint64) time.Time          { return n.start(e + 1) }
func (n *Network) ticketsClose(e uint64) time.Time { return n.end(e).Add(n.cfg.TicketPhase) }
func (n *Network) revealAt(e uint64) time.Time     { return n.ticketsClose(e).Add(n.cfg.MaxClockSkew) }
func (n *Network) collectAt(e uint64) time.Time {
	return n.revealAt(e).Add(n.cfg.MaxClockSkew + n.cfg.RevealPhase)
}
func (n *Network) revealsClose(e uint64) time.Time { return n.collectAt(e).Add(n.cfg.MaxClockSkew) }

func (n *Network) epochAt(t time.Time) uint64 {
	ms := t.UnixMilli()
	if ms < 0 {
		return 0
	}
	return uint64(ms) / uint64(n.cfg.EpochLength.Milliseconds())
}

// waitUntil waits until the clock reaches t, or ctx ends or n closes.
func (n *Network) waitUntil(ctx context.Context, t time.Time, wake <-chan struct{}) error {
	for {
		d := t.Sub(n.now())
		if d <= 0 {
			return nil
		}
		timer := time.NewTimer(d)
		select {
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-wake:
			timer.Stop()
			return nil
		case <-timer.C:
		}
	}
}

// Publish gossips this node's ticket batch for epoch (those of tickets
// that are for epoch and this node, at most Config.MaxTicketsPerNode, restamped
// as one batch if they are not one already) and its commit, then waits
// until every node's clock has passed the epoch's ticket close. It fails
// with ErrLate, sending nothing, if the tickets closed already.
func (n *Network) Publish(ctx context.Context, epoch uint64, tickets []*lottery.Ticket, commit lottery.Commit) error {
	if err := n.live(ctx); err != nil {
		return err
	}
	if !n.now().Before(n.ticketsClose(epoch)) {
		return fmt.Errorf("%w: epoch %d", ErrLate, epoch)
	}
	if b, err := n.batch(epoch, tickets); err != nil {
		return err
	} else if b != nil {
		enc, err := b.MarshalBinary()
		if err != nil {
			return fmt.Errorf("lotterynet: encoding ticket batch: %w", err)
		}
		if err := n.topics[0].Publish(ctx, enc); err != nil {
			return fmt.Errorf("lotterynet: publishing tickets: %w", err)
		}
	}
	enc, _ := commit.MarshalBinary()
	if err := n.topics[1].Publish(ctx, enc); err != nil {
		return fmt.Errorf("lotterynet: publishing commit: %w", err)
	}
	return n.waitUntil(ctx, n.revealAt(epoch), nil)
}

// batch returns this node's ticket batch for epoch from tickets, or nil if
// there are none.
func (n *Network) batch(epoch uint64, tickets []*lottery.Ticket) (*lottery.TicketBatch, error) {
	var own []*lottery.Ticket
	for _, t := range tickets {
		if t.Epoch == epoch && t.Home == n.node && len(own) < n.cfg.MaxTicketsPerNode {
			own = append(own, t)
		}
	}
	if len(own) == 0 {
		return nil, nil
	}
	b := &lottery.TicketBatch{Epoch: epoch, Node: n.node, Tickets: own}
	if b.Verify() == nil {
		return b, nil
	}
	copies := make([]*lottery.Ticket, len(own))
	for i, t := range own {
		c := *t
		c.Stamp = nil
		copies[i] = &c
	}
	if err := lottery.StampTickets(n.key, n.now(), copies); err != nil {
		return nil, fmt.Errorf("lotterynet: stamping ticket batch: %w", err)
	}
	b.Tickets = copies
	return b, nil
}

// Reveal gossips this node's reveal.
func (n *Network) Reveal(ctx context.Context, epoch uint64, reveal lottery.Reveal) error {
	if err := n.live(ctx); err != nil {
		return err
	}
	enc, _ := reveal.MarshalBinary()
	if err := n.topics[2].Publish(ctx, enc); err != nil {
		return fmt.Errorf("lotterynet: publishing reveal: %w", err)
	}
	return nil
}

// Collect waits until the epoch's reveals close, or until every node that
// committed has revealed, then returns the epoch's inputs: the ticket
// batches, commits and reveals of every node that did not equivocate. The
// snapshot is final: later messages of the epoch are ignored, and confirm
// requests are answered from it. A node whose commit it holds without a
// reveal is excluded by the draw; Collect counts it and penalizes it.
func (n *Network) Collect(ctx context.Context, epoch uint64) (lottery.EpochInputs, error) {
	out := lottery.EpochInputs{Epoch: epoch}
	if err := n.live(ctx); err != nil {
		return out, err
	}
	deadline := n.collectAt(epoch)
	for {
		n.mu.Lock()
		st := n.state(epoch)
		if st == nil {
			n.mu.Unlock()
			return out, nil
		}
		done, wake := st.allRevealed(), st.changed
		n.mu.Unlock()
		if done || !n.now().Before(deadline) {
			break
		}
		if err := n.waitUntil(ctx, deadline, wake); err != nil {
			return out, err
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	st := n.state(epoch)
	if st == nil {
		return out, nil
	}
	if !st.frozen {
		for node, in := range st.nodes {
			if !in.bad && in.commit != nil && in.reveal == nil {
				n.exclude(node, epoch, ReasonWithheld)
			}
		}
	}
	return st.snapshot(epoch, n.node), nil
}

// exclude counts node as excluded from epoch for reason and penalizes its
// peer.
func (n *Network) exclude(node keys.NodeID, epoch uint64, reason string) {
	n.metric.excluded.WithLabelValues(reason).Inc()
	n.log.Info("node excluded from the lottery epoch", "node", node, "epoch", epoch, "reason", reason)
	if node == n.node {
		return
	}
	if pid, err := peer.IDFromBytes(node.PeerIDBytes()); err == nil {
		n.penalize(pid, reason)
	}
}

// live reports ctx's error or ErrClosed.
func (n *Network) live(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	return nil
}

// Equivocations returns the equivocation proofs seen, oldest first (at
// most Config.MaxProofs).
func (n *Network) Equivocations() []lottery.Equivocation {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]lottery.Equivocation(nil), n.proofs...)
}

// Proofs returns the equivocation proofs seen for epoch (pairing.ProofSource).
func (n *Network) Proofs(epoch uint64) []lottery.Equivocation {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []lottery.Equivocation
	for _, p := range n.proofs {
		if p.Epoch == epoch {
			out = append(out, p)
		}
	}
	return out
}

var _ pairing.ProofSource = (*Network)(nil)
