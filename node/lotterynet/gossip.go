package lotterynet

import (
	"bytes"
	"context"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/lottery"
	"github.com/parley-chat/parley/protocol/wire"
)

// Kinds of gossiped messages (metric labels).
const (
	KindTickets = "tickets"
	KindCommit  = "commit"
	KindReveal  = "reveal"
)

// nodeInputs is one node's gossip for one epoch.
type nodeInputs struct {
	batch  *lottery.TicketBatch
	commit *lottery.Commit
	reveal *lottery.Reveal
	bad    bool // equivocated: inputs dropped
}

// epochState is what this node has of one epoch. Guarded by Network.mu.
type epochState struct {
	nodes   map[keys.NodeID]*nodeInputs
	tickets int           // tickets held, over all nodes
	changed chan struct{} // closed (and replaced) when a commit or reveal arrives

	collected chan struct{} // closed when Collect took the snapshot
	frozen    bool
	index     map[[32]byte]*lottery.Ticket // the snapshot's tickets by ID
	mine      map[[32]byte]*lottery.Ticket // this node's tickets by ID
	confirmed map[lottery.Pair]bool        // pairs this node said yes to when asked
	// final holds the pairs whose fate this node's Confirm decided; a
	// request about one decided no is answered no (spec 07-lottery §13.4).
	final    map[lottery.Pair]bool
	answered map[keys.NodeID]chan struct{} // closed once a request of that node was answered
}

// answeredBy returns the channel closed once a confirm request of node for
// the epoch was answered. n.mu is held.
func (st *epochState) answeredBy(node keys.NodeID) chan struct{} {
	ch := st.answered[node]
	if ch == nil {
		ch = make(chan struct{})
		st.answered[node] = ch
	}
	return ch
}

func newEpochState() *epochState {
	return &epochState{nodes: map[keys.NodeID]*nodeInputs{}, changed: make(chan struct{}),
		collected: make(chan struct{}), confirmed: map[lottery.Pair]bool{}, final: map[lottery.Pair]bool{},
		answered: map[keys.NodeID]chan struct{}{}}
}

func (st *epochState) notify() {
	close(st.changed)
	st.changed = make(chan struct{})
}

func (st *epochState) closeCollected() {
	select {
	case <-st.collected:
	default:
		close(st.collected)
	}
}

// allRevealed reports whether every node with a commit has revealed.
func (st *epochState) allRevealed() bool {
	for _, in := range st.nodes {
		if !in.bad && in.commit != nil && in.reveal == nil {
			return false
		}
	}
	return true
}

// snapshot freezes the epoch and returns its inputs.
func (st *epochState) snapshot(epoch uint64, self keys.NodeID) lottery.EpochInputs {
	out := lottery.EpochInputs{Epoch: epoch}
	if !st.frozen {
		st.frozen = true
		st.index = map[[32]byte]*lottery.Ticket{}
		st.mine = map[[32]byte]*lottery.Ticket{}
		for node, in := range st.nodes {
			if in.bad || in.batch == nil {
				continue
			}
			for _, t := range in.batch.Tickets {
				st.index[t.ID()] = t
				if node == self {
					st.mine[t.ID()] = t
				}
			}
		}
		st.closeCollected()
	}
	for _, in := range st.nodes {
		if in.bad {
			continue
		}
		if in.batch != nil {
			out.Tickets = append(out.Tickets, in.batch.Tickets...)
		}
		if in.commit != nil {
			out.Commits = append(out.Commits, *in.commit)
		}
		if in.reveal != nil {
			out.Reveals = append(out.Reveals, *in.reveal)
		}
	}
	return out
}

// state returns epoch's state, creating it if the epoch is within the
// retention window (current - RetainEpochs to current + 1), and drops
// states that fell out of it. n.mu is held.
func (n *Network) state(epoch uint64) *epochState {
	if n.closed {
		return nil
	}
	cur := n.epochAt(n.now())
	lo := uint64(0)
	if cur > uint64(n.cfg.RetainEpochs) {
		lo = cur - uint64(n.cfg.RetainEpochs)
	}
	for e, st := range n.epochs {
		if e < lo {
			st.closeCollected()
			delete(n.epochs, e)
		}
	}
	if epoch < lo || epoch > cur+1 {
		return nil
	}
	st := n.epochs[epoch]
	if st == nil {
		st = newEpochState()
		n.epochs[epoch] = st
	}
	return st
}

// Results of gossiped messages (metric label values).
const (
	resultAccepted     = "accepted"
	resultMalformed    = "malformed"
	resultBadSignature = "bad_signature"
	resultBadReveal    = "bad_reveal"
	resultWrongEpoch   = "wrong_epoch"
	resultEarly        = "early"
	resultLate         = "late"
	resultDuplicate    = "duplicate"
	resultUnknown      = "unknown_commit"
	resultLimit        = "limit"
	resultEquivocation = "equivocation"
	resultDropped      = "dropped_node"
	resultOverQuota    = "over_quota"
	resultDenied       = "denied_node" // from a node this node's operator denies
	resultLost         = "lost"        // dropped by the WithDropIncoming test seam
)

var messageResults = []string{resultAccepted, resultMalformed, resultBadSignature, resultBadReveal, resultWrongEpoch,
	resultEarly, resultLate, resultDuplicate, resultUnknown, resultLimit, resultEquivocation, resultDropped, resultOverQuota, resultDenied}

// verdict maps a result to the validation result: Reject (costs the
// sending peer score) only for what no honest peer relays.
func verdict(result string) pubsub.ValidationResult {
	switch result {
	case resultAccepted, resultEquivocation:
		// An equivocation is relayed so every node learns it and drops
		// the node; the relaying peer is not at fault.
		return pubsub.ValidationAccept
	case resultMalformed, resultBadSignature, resultBadReveal, resultWrongEpoch, resultOverQuota:
		return pubsub.ValidationReject
	}
	return pubsub.ValidationIgnore
}

func (n *Network) count(kind, result string) pubsub.ValidationResult {
	n.metric.messages.WithLabelValues(kind, result).Inc()
	return verdict(result)
}

// window classifies the time a message of kind for epoch arrives: "" if in
// its window, else wrongEpoch, early or late.
func (n *Network) window(kind string, epoch uint64) string {
	now := n.now()
	cur := n.epochAt(now)
	if epoch+2 < cur || epoch > cur+1 {
		return resultWrongEpoch
	}
	var from, until = n.start(epoch).Add(-n.cfg.MaxClockSkew), n.ticketsClose(epoch)
	if kind == KindReveal {
		from, until = n.ticketsClose(epoch), n.revealsClose(epoch)
	}
	switch {
	case now.Before(from):
		return resultEarly
	case !now.Before(until):
		return resultLate
	}
	return ""
}

// inputs returns the state of node in epoch, or a result saying why the
// message must be dropped. n.mu is held.
func (n *Network) inputs(epoch uint64, node keys.NodeID) (*epochState, *nodeInputs, string) {
	st := n.state(epoch)
	switch {
	case st == nil:
		return nil, nil, resultLate
	case st.frozen:
		return nil, nil, resultLate
	}
	if n.denied != nil && n.denied(node) {
		// Relayed by others, maybe: only the origin is denied, so this
		// is ignored, never a reject that would cost the relayer.
		return nil, nil, resultDenied
	}
	in := st.nodes[node]
	if in == nil {
		if len(st.nodes) >= wire.MaxNodesPerEpoch {
			return nil, nil, resultLimit
		}
		in = &nodeInputs{}
		st.nodes[node] = in
	}
	if in.bad {
		return nil, nil, resultDropped
	}
	return st, in, ""
}

// lost reports whether the WithDropIncoming seam drops msg from src.
func (n *Network) lost(kind string, src peer.ID, msg *pubsub.Message) bool {
	return n.drop != nil && src != n.h.ID() && n.drop(kind, msg.GetData())
}

func (n *Network) validateTickets(_ context.Context, src peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	if n.lost(KindTickets, src, msg) {
		return n.count(KindTickets, resultLost)
	}
	b, err := lottery.ParseTicketBatch(msg.GetData())
	if err != nil {
		return n.count(KindTickets, resultMalformed)
	}
	if len(b.Tickets) > n.cfg.MaxTicketsPerNode {
		return n.count(KindTickets, resultOverQuota)
	}
	if r := n.window(KindTickets, b.Epoch); r != "" {
		return n.count(KindTickets, r)
	}
	if err := b.Verify(); err != nil {
		return n.count(KindTickets, resultBadSignature)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	st, in, r := n.inputs(b.Epoch, b.Node)
	switch {
	case r != "":
		return n.count(KindTickets, r)
	case in.batch != nil && in.batch.Same(b):
		return n.count(KindTickets, resultDuplicate)
	case in.batch != nil:
		first, _ := in.batch.Tickets[0].MarshalBinary()
		second, _ := b.Tickets[0].MarshalBinary()
		if bytes.Equal(first, second) {
			// Same first ticket and stamp: the batches differ further on;
			// any ticket of the second batch has another stamp.
			second, _ = b.Tickets[len(b.Tickets)-1].MarshalBinary()
		}
		n.equivocated(st, in, lottery.Equivocation{Epoch: b.Epoch, Node: b.Node, Kind: lottery.EquivocatedTickets, First: first, Second: second})
		return n.count(KindTickets, resultEquivocation)
	case st.tickets+len(b.Tickets) > n.cfg.MaxTicketsPerEpoch:
		return n.count(KindTickets, resultLimit)
	}
	in.batch = b
	st.tickets += len(b.Tickets)
	return n.count(KindTickets, resultAccepted)
}

func (n *Network) validateCommit(_ context.Context, src peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	if n.lost(KindCommit, src, msg) {
		return n.count(KindCommit, resultLost)
	}
	c, err := lottery.ParseCommit(msg.GetData())
	if err != nil {
		return n.count(KindCommit, resultMalformed)
	}
	if r := n.window(KindCommit, c.Epoch); r != "" {
		return n.count(KindCommit, r)
	}
	if err := c.Verify(); err != nil {
		return n.count(KindCommit, resultBadSignature)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	st, in, r := n.inputs(c.Epoch, c.Node)
	switch {
	case r != "":
		return n.count(KindCommit, r)
	case in.commit != nil && *in.commit == *c:
		return n.count(KindCommit, resultDuplicate)
	case in.commit != nil && in.commit.Value == c.Value:
		return n.count(KindCommit, resultDuplicate) // signed twice, same value
	case in.commit != nil:
		first, _ := in.commit.MarshalBinary()
		second, _ := c.MarshalBinary()
		n.equivocated(st, in, lottery.Equivocation{Epoch: c.Epoch, Node: c.Node, Kind: lottery.EquivocatedCommit, First: first, Second: second})
		return n.count(KindCommit, resultEquivocation)
	}
	in.commit = c
	st.notify()
	return n.count(KindCommit, resultAccepted)
}

func (n *Network) validateReveal(_ context.Context, src peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	if n.lost(KindReveal, src, msg) {
		return n.count(KindReveal, resultLost)
	}
	rv, err := lottery.ParseReveal(msg.GetData())
	if err != nil {
		return n.count(KindReveal, resultMalformed)
	}
	if r := n.window(KindReveal, rv.Epoch); r != "" {
		return n.count(KindReveal, r)
	}
	if err := rv.Verify(); err != nil {
		return n.count(KindReveal, resultBadSignature)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	st, in, r := n.inputs(rv.Epoch, rv.Node)
	switch {
	case r != "":
		return n.count(KindReveal, r)
	case in.commit == nil:
		return n.count(KindReveal, resultUnknown)
	case lottery.CommitValue(rv.Epoch, rv.Node, rv.Value) != in.commit.Value:
		return n.count(KindReveal, resultBadReveal)
	case in.reveal != nil:
		return n.count(KindReveal, resultDuplicate)
	}
	in.reveal = rv
	st.notify()
	return n.count(KindReveal, resultAccepted)
}

// equivocated drops in's inputs for the epoch, keeps the proof and
// excludes the node. n.mu is held.
func (n *Network) equivocated(st *epochState, in *nodeInputs, proof lottery.Equivocation) {
	if in.batch != nil {
		st.tickets -= len(in.batch.Tickets)
	}
	*in = nodeInputs{bad: true}
	st.notify()
	n.proofs = append(n.proofs, proof)
	if over := len(n.proofs) - n.cfg.MaxProofs; over > 0 {
		n.proofs = append(n.proofs[:0:0], n.proofs[over:]...)
	}
	n.metric.equivocations.WithLabelValues(proof.Kind.String()).Inc()
	n.log.Warn("node equivocated; its lottery inputs are dropped for the epoch",
		"node", proof.Node, "epoch", proof.Epoch, "kind", proof.Kind.String())
	n.exclude(proof.Node, proof.Epoch, ReasonEquivocated)
}
