package lotterynet

import (
	"context"
	"fmt"
	"io"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-chat/parley/node/pairing"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/lottery"
)

// Results of confirmations (metric label values).
const (
	confirmYes       = "yes"
	confirmNo        = "no"
	confirmError     = "error"
	confirmMalformed = "malformed"
)

// Confirm asks the home node of remote, over the confirm protocol, whether
// it confirms pair, drawn between this node's ticket local and remote from
// the view with digest view (spec 07-lottery §13.4). It returns true on a
// signed yes from that node. If that node already asked this one about the
// same pair and got a yes, it returns true without asking: both have then
// confirmed.
func (n *Network) Confirm(ctx context.Context, view [32]byte, pair lottery.Pair, local, remote *lottery.Ticket) (bool, error) {
	if local == nil || remote == nil {
		return false, ErrNoRemote
	}
	if err := n.live(ctx); err != nil {
		return false, err
	}
	epoch := local.Epoch
	if n.askedAndConfirmed(epoch, pair) {
		n.metric.confirms.WithLabelValues("out", confirmYes).Inc()
		return true, nil
	}
	req := lottery.ConfirmRequest{Epoch: epoch, Mine: local.ID(), Yours: remote.ID(), View: view}
	yes, err := n.ask(ctx, remote.Home, req)
	if !yes && n.askedAndConfirmed(epoch, pair) {
		// The two requests crossed: the remote's arrived here and was
		// confirmed while this one failed.
		yes, err = true, nil
	}
	n.countOut(yes, err)
	return yes, err
}

// CheckView asks node, over the confirm protocol, whether its view of
// epoch has digest view (a view check, spec 07-lottery §13.4). It returns
// true on a signed yes from that node.
func (n *Network) CheckView(ctx context.Context, epoch uint64, view [32]byte, node keys.NodeID) (bool, error) {
	if node == n.node {
		return false, ErrSelf
	}
	if err := n.live(ctx); err != nil {
		return false, err
	}
	yes, err := n.ask(ctx, node, lottery.ConfirmRequest{Epoch: epoch, View: view})
	n.countOut(yes, err)
	return yes, err
}

func (n *Network) countOut(yes bool, err error) {
	result := confirmNo
	switch {
	case err != nil:
		result = confirmError
	case yes:
		result = confirmYes
	}
	n.metric.confirms.WithLabelValues("out", result).Inc()
}

func (n *Network) askedAndConfirmed(epoch uint64, pair lottery.Pair) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	st := n.epochs[epoch]
	return st != nil && st.confirmed[pair]
}

// ask sends req to node and returns its signed answer, checked: from node,
// about req's epoch, pair and view.
func (n *Network) ask(ctx context.Context, node keys.NodeID, req lottery.ConfirmRequest) (bool, error) {
	pid, err := peer.IDFromBytes(node.PeerIDBytes())
	if err != nil {
		return false, fmt.Errorf("lotterynet: remote home: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ConfirmTimeout)
	defer cancel()
	s, err := n.h.NewStream(ctx, pid, n.names.ConfirmProtocol)
	if err != nil {
		return false, fmt.Errorf("lotterynet: opening confirm stream: %w", err)
	}
	defer func() { _ = s.Close() }()
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(dl)
	}
	enc, _ := req.MarshalBinary()
	if _, err := s.Write(enc); err != nil {
		_ = s.Reset()
		return false, fmt.Errorf("lotterynet: sending confirm request: %w", err)
	}
	if err := s.CloseWrite(); err != nil {
		_ = s.Reset()
		return false, fmt.Errorf("lotterynet: sending confirm request: %w", err)
	}
	b, err := io.ReadAll(io.LimitReader(s, lottery.ConfirmAnswerSize+1))
	if err != nil {
		_ = s.Reset()
		return false, fmt.Errorf("lotterynet: reading confirm answer: %w", err)
	}
	a, err := lottery.ParseConfirmAnswer(b)
	if err != nil {
		return false, fmt.Errorf("%w: %w", ErrBadAnswer, err)
	}
	if a.Node != node || a.Epoch != req.Epoch || a.Pair != req.Pair() || a.View != req.View {
		return false, fmt.Errorf("%w: from another node or about another pair or view", ErrBadAnswer)
	}
	if err := a.Verify(); err != nil {
		return false, fmt.Errorf("%w: %w", ErrBadAnswer, err)
	}
	return a.Yes, nil
}

// handleConfirm answers one confirm request (spec 07-lottery §13.4).
func (n *Network) handleConfirm(s network.Stream) {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		_ = s.Reset()
		return
	}
	n.wg.Add(1)
	n.mu.Unlock()
	defer n.wg.Done()

	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.ConfirmTimeout)
	defer cancel()
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(dl)
	}
	b, err := io.ReadAll(io.LimitReader(s, lottery.ConfirmRequestSize+1))
	if err != nil {
		_ = s.Reset()
		n.metric.confirms.WithLabelValues("in", confirmError).Inc()
		return
	}
	req, err := lottery.ParseConfirmRequest(b)
	if err != nil {
		_ = s.Reset()
		n.metric.confirms.WithLabelValues("in", confirmMalformed).Inc()
		return
	}
	from, err := keys.NodeIDFromPeerIDBytes([]byte(s.Conn().RemotePeer()))
	yes := false
	if err == nil {
		yes, err = n.decide(ctx, req, from)
	}
	if err != nil {
		n.log.Debug("confirm request", "epoch", req.Epoch, "err", err)
	}
	a := lottery.SignConfirmAnswer(n.key, req.Epoch, req.Pair(), req.View, yes)
	enc, _ := a.MarshalBinary()
	if _, err := s.Write(enc); err != nil {
		_ = s.Reset()
		n.metric.confirms.WithLabelValues("in", confirmError).Inc()
		return
	}
	_ = s.Close()
	result := confirmNo
	if yes {
		result = confirmYes
	}
	n.metric.confirms.WithLabelValues("in", result).Inc()
}

// decide answers req from node from: after this node's Collect of the
// epoch, for a pair, the answering ticket must be this node's and the
// asking one from's, both in the epoch's snapshot; then the Confirmer
// decides (it also compares the views). A view check goes to the
// Confirmer directly.
func (n *Network) decide(ctx context.Context, req *lottery.ConfirmRequest, from keys.NodeID) (bool, error) {
	n.mu.Lock()
	st := n.epochs[req.Epoch]
	n.mu.Unlock()
	if st == nil {
		return false, nil
	}
	select {
	case <-st.collected:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	if req.ViewCheck() {
		return n.confirm(ctx, pairing.PairQuery{Epoch: req.Epoch, View: req.View, From: from})
	}
	n.mu.Lock()
	mine, theirs := st.mine[req.Yours], st.index[req.Mine]
	n.mu.Unlock()
	if mine == nil || theirs == nil || theirs.Home != from {
		return false, nil
	}
	q := pairing.PairQuery{Epoch: req.Epoch, Pair: req.Pair(), View: req.View, Local: mine, Remote: theirs, From: from}
	yes, err := n.confirm(ctx, q)
	if err != nil {
		return false, err
	}
	if yes {
		n.mu.Lock()
		st.confirmed[q.Pair] = true
		n.mu.Unlock()
	}
	return yes, nil
}
