package pairing

import (
	"context"

	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/lottery"
)

// PairQuery is another node's question to this one (spec 07-lottery §8.3,
// §13.4): does it confirm Pair, drawn in Epoch from a view with digest View
// between its ticket Local and the asking node From's ticket Remote? A
// query with a zero Pair (and no tickets) is a view check: is this node's
// view of Epoch the one with digest View?
type PairQuery struct {
	Epoch  uint64
	Pair   lottery.Pair
	View   [32]byte        // the asking node's view digest (lottery.Result.View)
	Local  *lottery.Ticket // this node's ticket of the pair
	Remote *lottery.Ticket // the asking node's ticket of the pair
	From   keys.NodeID     // the asking node, as its connection authenticated it
}

// drawnEpoch is what an epoch's draw made of this node's tickets with
// remote partners, for ConfirmPair. done is closed once the draw is known
// (or the epoch failed).
type drawnEpoch struct {
	done  chan struct{}
	pairs map[lottery.Pair]*drawnPair
	view  [32]byte // the draw's view digest
	drawn bool     // the draw was made (view is set)
}

type drawnPair struct {
	w          *waiting
	local      [32]byte // the local ticket's ID in the epoch
	remoteHome keys.NodeID
	settled    bool // the room was created
}

// keepDrawn is how many epochs' draws ConfirmPair can still answer about.
const keepDrawn = 3

// ConfirmPair answers a remote node's confirmation request: true iff this
// node's own draw of q.Epoch was made from the view with digest q.View and
// made q.Pair, between q.Local (this node's ticket, still waiting in that
// epoch or paired in that very pair) and q.Remote, a ticket of q.From. For
// a view check (q.Pair zero) it is true iff this node's draw of q.Epoch
// has view digest q.View. While the epoch is being drawn it waits for the
// draw, until ctx ends (then it returns ctx's error). It never confirms a
// pair its own draw did not make (spec 07-lottery §8.3).
func (l *Lottery) ConfirmPair(ctx context.Context, q PairQuery) (bool, error) {
	viewCheck := q.Pair == (lottery.Pair{})
	if !viewCheck && (q.Local == nil || q.Remote == nil) {
		return false, nil
	}
	l.mu.Lock()
	d := l.drawn[q.Epoch]
	if d == nil {
		if q.Epoch+1 != l.nextOpen {
			l.mu.Unlock()
			return false, nil // not the epoch being drawn, nor a recent one
		}
		d = l.drawnEntry(q.Epoch)
	}
	l.mu.Unlock()
	select {
	case <-d.done:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !d.drawn || d.view != q.View {
		return false, nil
	}
	if viewCheck {
		return true, nil
	}
	p := d.pairs[q.Pair]
	switch {
	case p == nil, p.local != q.Local.ID(), p.remoteHome != q.From, q.Remote.Home != q.From:
		return false, nil
	case p.settled:
		return true, nil
	}
	if l.waiting[p.w.acct] != p.w || p.w.epoch != q.Epoch {
		return false, nil
	}
	p.w.offered = true // the asking node takes the pair on this yes
	return true, nil
}

// drawnEntry returns the entry of epoch, creating it. l.mu is held.
func (l *Lottery) drawnEntry(epoch uint64) *drawnEpoch {
	d := l.drawn[epoch]
	if d == nil {
		d = &drawnEpoch{done: make(chan struct{}), pairs: map[lottery.Pair]*drawnPair{}}
		l.drawn[epoch] = d
	}
	return d
}

// recordDraw records the view digest and the matches of epoch with a
// remote ticket, and opens the epoch to ConfirmPair.
func (l *Lottery) recordDraw(epoch uint64, view [32]byte, matches []match) {
	l.mu.Lock()
	defer l.mu.Unlock()
	d := l.drawnEntry(epoch)
	d.view, d.drawn = view, true
	for _, m := range matches {
		if m.b == nil && m.remote != nil {
			d.pairs[m.pair] = &drawnPair{w: m.a, local: m.local.ID(), remoteHome: m.remote.Home}
		}
	}
	d.closeDone()
}

// finishDraw opens epoch to ConfirmPair whatever became of its draw, and
// forgets old epochs. RunEpoch calls it when it returns.
func (l *Lottery) finishDraw(epoch uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.drawnEntry(epoch).closeDone()
	for e, d := range l.drawn {
		if e+keepDrawn <= epoch {
			d.closeDone()
			delete(l.drawn, e)
		}
	}
}

func (d *drawnEpoch) closeDone() {
	select {
	case <-d.done:
	default:
		close(d.done)
	}
}
