package pairing

import (
	"context"
	"slices"
	"sync"

	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/lottery"
)

// Network is how the lottery of one node meets the other nodes' (DESIGN
// §3.3). Each epoch the Lottery calls, in order, Publish, Reveal and
// Collect, then Confirm once per other node for the drawn pairs of one of
// its tickets with one of that node's and, when the draw paired two of its own tickets and no Confirm
// showed that another node drew from the same view, CheckView. Local is
// the implementation for a node alone; lotterynet implements it over
// gossip and a direct confirm protocol. Implementations are safe for
// concurrent use and honour ctx on every call.
type Network interface {
	// Publish announces this node's stamped tickets for epoch and its
	// signed commit. It returns once the epoch's tickets are closed: a
	// federated implementation waits until it has the other nodes' tickets
	// and commits, or until its deadline passes, so that the reveals that
	// follow cannot influence which tickets take part.
	Publish(ctx context.Context, epoch uint64, tickets []*lottery.Ticket, commit lottery.Commit) error
	// Reveal announces this node's reveal for epoch, after Publish.
	Reveal(ctx context.Context, epoch uint64, reveal lottery.Reveal) error
	// Collect returns everything known for epoch: every node's tickets,
	// commits and reveals, this node's included. A federated
	// implementation waits for the reveals until its deadline. The inputs
	// are unverified; lottery.Draw checks them.
	Collect(ctx context.Context, epoch uint64) (lottery.EpochInputs, error)
	// Confirm asks node, the home of every pair's remote ticket, in one
	// exchange, whether it confirms each pair, drawn in epoch between this
	// node's ticket Local and its ticket Remote from a view with digest
	// view (lottery.Result.View), before either user is told. It returns
	// one answer per pair; false drops the pair and both tickets roll
	// over. With an error it returns no answers, or those it could still
	// decide (pairs node confirmed by asking this node).
	Confirm(ctx context.Context, epoch uint64, view [32]byte, node keys.NodeID, pairs []Proposal) ([]bool, error)
	// CheckView asks node whether its view of epoch has digest view
	// (spec 07-lottery §13.4): a yes shows that node drew the same pairs.
	CheckView(ctx context.Context, epoch uint64, view [32]byte, node keys.NodeID) (bool, error)
}

// Proposal is a drawn pair of this node's ticket Local with another node's
// ticket Remote, to be confirmed with Remote's home node (Network.Confirm).
type Proposal struct {
	Pair          lottery.Pair
	Local, Remote *lottery.Ticket
}

// ProofSource is implemented by a Network that catches nodes equivocating
// (lotterynet.Network): RunEpoch stores the proofs of each epoch with its
// inputs, for as long as it keeps them (Proofs reads them back).
type ProofSource interface {
	// Proofs returns the equivocation proofs held for epoch.
	Proofs(epoch uint64) []lottery.Equivocation
}

// Local is the Network of a node alone: what it publishes is everything
// there is, and no pair has a remote ticket.
type Local struct {
	mu     sync.Mutex
	epochs map[uint64]*lottery.EpochInputs
}

var _ Network = (*Local)(nil)

// NewLocal returns the network of a node alone.
func NewLocal() *Local { return &Local{epochs: make(map[uint64]*lottery.EpochInputs)} }

func (n *Local) inputs(epoch uint64) *lottery.EpochInputs {
	in := n.epochs[epoch]
	if in == nil {
		in = &lottery.EpochInputs{Epoch: epoch}
		n.epochs[epoch] = in
	}
	return in
}

// Publish keeps the tickets and the commit for Collect.
func (n *Local) Publish(ctx context.Context, epoch uint64, tickets []*lottery.Ticket, commit lottery.Commit) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	in := n.inputs(epoch)
	in.Tickets = append(in.Tickets, tickets...)
	in.Commits = append(in.Commits, commit)
	return nil
}

// Reveal keeps the reveal for Collect.
func (n *Local) Reveal(ctx context.Context, epoch uint64, reveal lottery.Reveal) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	in := n.inputs(epoch)
	in.Reveals = append(in.Reveals, reveal)
	return nil
}

// Collect returns what was published and revealed for epoch, and forgets
// it and every earlier epoch.
func (n *Local) Collect(ctx context.Context, epoch uint64) (lottery.EpochInputs, error) {
	if err := ctx.Err(); err != nil {
		return lottery.EpochInputs{}, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	out := lottery.EpochInputs{Epoch: epoch}
	if in := n.epochs[epoch]; in != nil {
		out.Tickets = slices.Clone(in.Tickets)
		out.Commits = slices.Clone(in.Commits)
		out.Reveals = slices.Clone(in.Reveals)
	}
	for e := range n.epochs {
		if e <= epoch {
			delete(n.epochs, e)
		}
	}
	return out, nil
}

// Confirm is never needed on a node alone (every ticket is its own); it
// refuses with ErrNoFederation.
func (n *Local) Confirm(context.Context, uint64, [32]byte, keys.NodeID, []Proposal) ([]bool, error) {
	return nil, ErrNoFederation
}

// CheckView is never needed on a node alone; it refuses with
// ErrNoFederation.
func (n *Local) CheckView(context.Context, uint64, [32]byte, keys.NodeID) (bool, error) {
	return false, ErrNoFederation
}
