package lotterynet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

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

// Confirm settles, with node, the home of every pair's remote ticket,
// whether each pair, drawn in epoch between this node's ticket Local and
// node's ticket Remote from the view with digest view, goes ahead (spec
// 07-lottery §13.4). Of the two nodes, the one with the lower node ID
// decides: it does not ask; it waits, within the confirm deadline, for
// node's request, and a pair goes ahead iff it answered it yes (what it
// answered, and from the deadline on no, is final: a later request gets
// the same answer). The other node asks, in one exchange, and retries a
// failed exchange for askFor epochs: a pair goes ahead iff
// the decider's signed answer says yes. So the two never disagree unless
// the asker cannot reach the decider for that long. It returns one answer
// per pair, and with an error (the asker's exchanges all failed, or an
// answer was bad) still the answers.
func (n *Network) Confirm(ctx context.Context, epoch uint64, view [32]byte, node keys.NodeID, pairs []pairing.Proposal) ([]bool, error) {
	for _, p := range pairs {
		if p.Local == nil || p.Remote == nil {
			return nil, ErrNoRemote
		}
		if p.Remote.Home != node || p.Local.Home != n.node {
			return nil, fmt.Errorf("%w: a pair of other nodes' tickets", ErrNoRemote)
		}
	}
	if node == n.node {
		return nil, ErrSelf
	}
	if err := n.live(ctx); err != nil {
		return nil, err
	}
	if decides(n.node, node) {
		return n.awaitAsker(ctx, epoch, node, pairs), nil
	}
	deadline := time.Now().Add(max(2*n.cfg.ConfirmTimeout, askFor*n.cfg.EpochLength))
	actx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	got := make([]bool, len(pairs))
	ask := map[[32]byte]int{} // local ticket ID -> index in pairs
	var items []lottery.ConfirmItem
	for i, p := range pairs {
		it := lottery.ConfirmItem{Mine: p.Local.ID(), Yours: p.Remote.ID()}
		if _, dup := ask[it.Mine]; dup || it.Mine == it.Yours {
			continue // a ticket in two pairs: the draw never makes that
		}
		ask[it.Mine] = i
		items = append(items, it)
	}
	slices.SortFunc(items, func(a, b lottery.ConfirmItem) int { return bytes.Compare(a.Mine[:], b.Mine[:]) })
	var firstErr error
	for len(items) > 0 {
		chunk := items[:min(len(items), lottery.MaxConfirmPairs)]
		items = items[len(chunk):]
		a, err := n.askRetrying(actx, node, &lottery.ConfirmRequest{Epoch: epoch, View: view, Items: chunk})
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		for j, it := range chunk {
			got[ask[it.Mine]] = a.Yes[j]
		}
	}
	n.mu.Lock()
	if st := n.epochs[epoch]; st != nil {
		for i, p := range pairs {
			st.final[p.Pair] = got[i]
		}
	}
	n.mu.Unlock()
	for _, y := range got {
		n.countOut(y, firstErr)
	}
	return got, firstErr
}

// askFor is how many epochs the asking node keeps asking the deciding node
// for an answer it lost (well within RetainEpochs, the decider's memory of
// its answers): only a decider unreachable for that long leaves the two
// sides in disagreement.
const askFor = 2

// decides reports whether node a, rather than b, decides their pairs: the
// lower node ID does (spec 07-lottery §13.4).
func decides(a, b keys.NodeID) bool { return bytes.Compare(a[:], b[:]) < 0 }

// awaitAsker is Confirm on the deciding side: it waits until asker's
// request was answered, the confirm deadline or ctx's end, then fixes each
// pair's fate as what it answered (no if it was not asked).
func (n *Network) awaitAsker(ctx context.Context, epoch uint64, asker keys.NodeID, pairs []pairing.Proposal) []bool {
	n.mu.Lock()
	st := n.epochs[epoch]
	var answered chan struct{}
	if st != nil {
		answered = st.answeredBy(asker)
	}
	n.mu.Unlock()
	yes := make([]bool, len(pairs))
	if st == nil {
		return yes
	}
	timer := time.NewTimer(n.cfg.ConfirmTimeout)
	select {
	case <-answered:
	case <-timer.C:
	case <-ctx.Done():
	}
	timer.Stop()
	n.mu.Lock()
	defer n.mu.Unlock()
	for i, p := range pairs {
		yes[i] = st.confirmed[p.Pair]
		st.final[p.Pair] = yes[i]
	}
	return yes
}

// askRetrying asks node until it answers, ctx ends or the answer is bad:
// a lost answer of the deciding node is asked for again (it answers the
// same).
func (n *Network) askRetrying(ctx context.Context, node keys.NodeID, req *lottery.ConfirmRequest) (*lottery.ConfirmAnswer, error) {
	for {
		a, err := n.ask(ctx, node, req)
		if err == nil || errors.Is(err, ErrBadAnswer) {
			return a, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(50 * time.Millisecond):
		}
	}
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
	a, err := n.ask(ctx, node, &lottery.ConfirmRequest{Epoch: epoch, View: view})
	yes := err == nil && a.ViewOK
	n.countOut(yes, err)
	return yes, err
}

func (n *Network) countOut(yes bool, err error) {
	result := confirmNo
	switch {
	case yes:
		result = confirmYes
	case err != nil:
		result = confirmError
	}
	n.metric.confirms.WithLabelValues("out", result).Inc()
}

// ask sends req to node and returns its signed answer, checked: from node,
// about req's epoch, view and pairs, in order.
func (n *Network) ask(ctx context.Context, node keys.NodeID, req *lottery.ConfirmRequest) (*lottery.ConfirmAnswer, error) {
	pid, err := peer.IDFromBytes(node.PeerIDBytes())
	if err != nil {
		return nil, fmt.Errorf("lotterynet: remote home: %w", err)
	}
	enc, err := req.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("lotterynet: encoding confirm request: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ConfirmTimeout)
	defer cancel()
	s, err := n.h.NewStream(ctx, pid, n.names.ConfirmProtocol)
	if err != nil {
		return nil, fmt.Errorf("lotterynet: opening confirm stream: %w", err)
	}
	defer func() { _ = s.Close() }()
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(dl)
	}
	if _, err := s.Write(enc); err != nil {
		_ = s.Reset()
		return nil, fmt.Errorf("lotterynet: sending confirm request: %w", err)
	}
	if err := s.CloseWrite(); err != nil {
		_ = s.Reset()
		return nil, fmt.Errorf("lotterynet: sending confirm request: %w", err)
	}
	b, err := io.ReadAll(io.LimitReader(s, lottery.MaxConfirmAnswerSize+1))
	if err != nil {
		_ = s.Reset()
		return nil, fmt.Errorf("lotterynet: reading confirm answer: %w", err)
	}
	a, err := lottery.ParseConfirmAnswer(b)
	if err != nil {
		n.penalize(pid, ReasonBadConfirm)
		return nil, fmt.Errorf("%w: %w", ErrBadAnswer, err)
	}
	if a.Node != node || !a.Answers(req) {
		n.penalize(pid, ReasonBadConfirm)
		return nil, fmt.Errorf("%w: from another node or about other pairs or another view", ErrBadAnswer)
	}
	if err := a.Verify(); err != nil {
		n.penalize(pid, ReasonBadConfirm)
		return nil, fmt.Errorf("%w: %w", ErrBadAnswer, err)
	}
	return a, nil
}

// penalize reports peer p to the PeerPenalizer, if any, for reason.
func (n *Network) penalize(p peer.ID, reason string) {
	if n.penal != nil && p != n.h.ID() {
		n.penal.Penalize(p, "lottery_"+reason)
	}
}

// handleConfirm answers one confirm request (spec 07-lottery §13.4): one
// signed answer for all its pairs. A request that does not decode resets
// the stream and costs the asking peer (ReasonBadConfirm).
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
	b, err := io.ReadAll(io.LimitReader(s, lottery.MaxConfirmRequestSize+1))
	if err != nil {
		_ = s.Reset()
		n.metric.confirms.WithLabelValues("in", confirmError).Inc()
		return
	}
	remote := s.Conn().RemotePeer()
	req, err := lottery.ParseConfirmRequest(b)
	if err != nil {
		_ = s.Reset()
		n.metric.confirms.WithLabelValues("in", confirmMalformed).Inc()
		n.penalize(remote, ReasonBadConfirm)
		return
	}
	from, err := keys.NodeIDFromPeerIDBytes([]byte(remote))
	viewOK, yes := false, make([]bool, len(req.Items))
	if err == nil {
		// Decide within 3/4 of the deadline, so that a yes reaches the
		// asker before its own deadline (a yes it never reads makes this
		// node pair alone, unless it hears from the asker).
		dctx, dcancel := context.WithTimeout(ctx, 3*n.cfg.ConfirmTimeout/4)
		viewOK, err = n.decide(dctx, req, from, yes)
		dcancel()
	}
	if err != nil {
		n.log.Debug("confirm request", "epoch", req.Epoch, "err", err)
	}
	a := lottery.SignConfirmAnswer(n.key, req, viewOK, yes)
	enc, _ := a.MarshalBinary()
	if _, err := s.Write(enc); err != nil {
		_ = s.Reset()
		n.metric.confirms.WithLabelValues("in", confirmError).Add(float64(max(1, len(req.Items))))
		return
	}
	_ = s.Close()
	if req.ViewCheck() {
		n.countIn(viewOK)
	}
	for _, y := range a.Yes {
		n.countIn(y)
	}
}

func (n *Network) countIn(yes bool) {
	result := confirmNo
	if yes {
		result = confirmYes
	}
	n.metric.confirms.WithLabelValues("in", result).Inc()
}

// decide answers req from node from, filling yes, and reports whether this
// node's view of the epoch has req's digest: after this node's Collect of
// the epoch, the Confirmer checks the view; then for each pair, the
// answering ticket must be this node's and the asking one from's, both in
// the epoch's snapshot, and the Confirmer decides. Pairs said yes to are
// remembered (crossing requests).
func (n *Network) decide(ctx context.Context, req *lottery.ConfirmRequest, from keys.NodeID, yes []bool) (bool, error) {
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
	defer func() {
		n.mu.Lock()
		if ch := st.answeredBy(from); !isClosed(ch) {
			close(ch)
		}
		n.mu.Unlock()
	}()
	viewOK, err := n.confirm(ctx, pairing.PairQuery{Epoch: req.Epoch, View: req.View, From: from})
	if err != nil || !viewOK {
		return false, err
	}
	for i, it := range req.Items {
		n.mu.Lock()
		mine, theirs := st.mine[it.Yours], st.index[it.Mine]
		n.mu.Unlock()
		if mine == nil || theirs == nil || theirs.Home != from {
			continue
		}
		if !decides(n.node, from) {
			// The asker decides their pairs; it should not ask.
			continue
		}
		q := pairing.PairQuery{Epoch: req.Epoch, Pair: it.Pair(), View: req.View, Local: mine, Remote: theirs, From: from}
		y, err := n.confirm(ctx, q)
		if err != nil {
			// Out of time: the pairs not yet decided are refused.
			return true, err
		}
		if y {
			n.mu.Lock()
			if final, decided := st.final[q.Pair]; !decided || final {
				st.confirmed[q.Pair] = true
				yes[i] = true
			}
			n.mu.Unlock()
		}
	}
	return true, nil
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
