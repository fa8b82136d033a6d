package pairing

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/parley-chat/parley/node/mailbox"
	"github.com/parley-chat/parley/node/rooms"
	"github.com/parley-chat/parley/node/store"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/lottery"
	"github.com/parley-chat/parley/protocol/wire"
)

// maxBatchWrites bounds the writes of the batches that store an epoch's
// inputs and purge old links.
const maxBatchWrites = 4096

// Run processes each epoch when it ends and purges old records every
// Config.PurgeEvery (and once at the start), until ctx ends; then it
// waits for the epochs in progress and returns nil. The owner calls it in
// a goroutine and waits for it. Epochs are pipelined: epoch k's draw,
// confirmations and settling run while epoch k+1 closes and publishes (a
// ticket still being drawn in k waits for k's settling before it joins a
// later epoch), and the second halves run in epoch order. If
// processing falls behind by more than an epoch, the missed epochs are
// skipped: their tickets join the next one processed.
func (l *Lottery) Run(ctx context.Context) error {
	nextPurge := l.now()
	var backs sync.WaitGroup
	defer backs.Wait()
	var prev chan struct{} // closed when the previous epoch is settled
	for {
		now := l.now()
		cur := l.epochAt(now)
		l.mu.Lock()
		open := l.nextOpen
		l.mu.Unlock()
		if cur > 0 && cur-1 >= open {
			if skipped := cur - 1 - open; skipped > 0 {
				l.log.Warn("epochs skipped", "epochs", skipped)
			}
			epoch := cur - 1
			p, err := l.drawEpoch(ctx, epoch)
			if p == nil {
				l.epochDone(epoch, p, err)
			} else {
				after, done := prev, make(chan struct{})
				prev = done
				backs.Go(func() {
					defer close(done)
					if after != nil {
						<-after
					}
					l.epochDone(epoch, p, l.settleEpoch(ctx, p))
				})
			}
		}
		if !now.Before(nextPurge) && ctx.Err() == nil {
			if n, err := l.Purge(ctx); err != nil && ctx.Err() == nil {
				l.log.Error("purging", "err", err)
			} else if n > 0 {
				l.log.Info("purged expired ticket links", "links", n)
			}
			nextPurge = now.Add(l.cfg.PurgeEvery)
		}
		timer := time.NewTimer(l.epochStart(cur + 1).Sub(l.now()))
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-timer.C:
		}
	}
}

// epochDone records the end of epoch's processing (p nil if it never
// closed) with its error, and logs the error.
func (l *Lottery) epochDone(epoch uint64, p *pendingEpoch, err error) {
	l.finishDraw(epoch)
	if p != nil {
		l.metric.epochSeconds.Observe(l.now().Sub(p.start).Seconds())
	}
	if err != nil && !errors.Is(err, ErrEpochClosed) {
		l.metric.epochFailures.Inc()
		l.log.Error("processing epoch", "epoch", epoch, "err", err)
	}
}

// RunEpoch processes epoch, which must not be closed yet (ErrEpochClosed
// otherwise): it closes it (later requests join later epochs), stamps the
// tickets waiting for it, commits, reveals, collects, stores the inputs,
// draws, confirms and settles, as the package documentation describes.
// Run does the same in two halves, pipelined; tests call it directly.
// When it fails, every ticket that took part rolls over (or expires), as
// if unpaired.
func (l *Lottery) RunEpoch(ctx context.Context, epoch uint64) (err error) {
	p, err := l.drawEpoch(ctx, epoch)
	if p != nil {
		err = l.settleEpoch(ctx, p)
	}
	if err != nil && !errors.Is(err, ErrEpochClosed) {
		l.metric.epochFailures.Inc()
	}
	l.finishDraw(epoch)
	if p != nil {
		l.metric.epochSeconds.Observe(l.now().Sub(p.start).Seconds())
	}
	return err
}

// pendingEpoch is an epoch closed and drawn, to be confirmed and settled.
type pendingEpoch struct {
	epoch   uint64
	start   time.Time
	ents    []*waiting
	res     *lottery.Result
	matches []match
	sum     summary
	mine    []*lottery.Ticket // this node's tickets of the epoch, stamped
	local   map[[32]byte]int  // their IDs, to their index in mine and ents
	err     error             // the publication's
}

// drawEpoch is the first half of RunEpoch: it closes epoch, then stamps,
// publishes and reveals (it returns once the epoch's tickets closed). It
// returns nil (and the error) if the epoch could not be closed; otherwise
// the pending epoch, whose tickets are being drawn until settleEpoch.
func (l *Lottery) drawEpoch(ctx context.Context, epoch uint64) (*pendingEpoch, error) {
	l.runMu.Lock()
	defer l.runMu.Unlock()
	p := &pendingEpoch{epoch: epoch, start: l.now()}
	if done, err := l.st.Has(epochKey(epoch, epochSummary)); err != nil {
		return nil, fmt.Errorf("pairing: epoch %d: %w", epoch, err)
	} else if done {
		return nil, fmt.Errorf("%w: %d", ErrEpochClosed, epoch)
	}
	ents, err := l.close(epoch)
	if err != nil {
		return nil, err
	}
	p.ents = ents
	// Confirmations about the epoch wait for its draw from now on.
	l.mu.Lock()
	l.drawnEntry(epoch)
	l.mu.Unlock()
	p.mine, p.local, p.err = l.publish(ctx, epoch, ents)
	return p, nil
}

// settleEpoch is the second half of RunEpoch: it collects, stores and
// draws p's epoch, confirms its pairs with the other nodes and settles it.
// These halves run one at a time, in epoch order.
func (l *Lottery) settleEpoch(ctx context.Context, p *pendingEpoch) error {
	l.settleMu.Lock()
	defer l.settleMu.Unlock()
	err := p.err
	var kept []match
	if err == nil {
		p.res, p.matches, p.sum, err = l.draw(ctx, p.epoch, p.ents, p.mine, p.local)
	}
	if err == nil && p.res != nil {
		var disagreed bool
		kept, disagreed = l.confirm(ctx, p.epoch, p.res, p.matches)
		if disagreed {
			l.metric.disagreed.Inc()
		}
	}
	if serr := l.settle(ctx, p.epoch, p.ents, kept, p.sum); serr != nil {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return fmt.Errorf("pairing: epoch %d: %w", p.epoch, err)
	}
	return nil
}

// close closes epoch and returns the waiting tickets that take part in it,
// oldest first, at most the node's quota.
func (l *Lottery) close(epoch uint64) ([]*waiting, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if epoch < l.nextOpen {
		return nil, fmt.Errorf("%w: %d", ErrEpochClosed, epoch)
	}
	l.nextOpen = epoch + 1
	var ents []*waiting
	for _, w := range l.waiting {
		if w.epoch <= epoch && !w.drawing {
			ents = append(ents, w)
		}
	}
	slices.SortFunc(ents, func(a, b *waiting) int {
		if c := a.issued.Compare(b.issued); c != 0 {
			return c
		}
		return bytes.Compare(a.acct[:], b.acct[:])
	})
	if len(ents) > l.cfg.MaxTicketsPerEpoch {
		// Only after a restart with a smaller quota: the newest wait.
		for _, w := range ents[l.cfg.MaxTicketsPerEpoch:] {
			w.epoch = epoch + 1
		}
		l.metric.rolled.Add(float64(len(ents) - l.cfg.MaxTicketsPerEpoch))
		ents = ents[:l.cfg.MaxTicketsPerEpoch]
	}
	for _, w := range ents {
		w.epoch, w.drawing = epoch, true
	}
	return ents, nil
}

// match is a drawn pair with at least one ticket of this node, a. The
// other is b if it is this node's too; otherwise it is another node's
// ticket remote (found by remoteID), and local is a's ticket in the draw.
type match struct {
	pair     lottery.Pair
	a, b     *waiting
	local    *lottery.Ticket
	remoteID [32]byte
	remote   *lottery.Ticket
}

// publish stamps ents' tickets for epoch, publishes them with this node's
// commit, and reveals once the tickets closed. It returns the stamped
// tickets and their index by ID.
func (l *Lottery) publish(ctx context.Context, epoch uint64, ents []*waiting) ([]*lottery.Ticket, map[[32]byte]int, error) {
	now := l.now()
	mine := make([]*lottery.Ticket, len(ents))
	for i, w := range ents {
		mine[i] = w.ticket(epoch, l.node)
	}
	for i := 0; i < len(mine); i += wire.MaxStampBatch {
		if err := lottery.StampTickets(l.key, now, mine[i:min(i+wire.MaxStampBatch, len(mine))]); err != nil {
			return nil, nil, err
		}
	}
	local := make(map[[32]byte]int, len(mine))
	for i, t := range mine {
		local[t.ID()] = i
	}

	reveal, err := lottery.NewReveal(l.rand)
	if err != nil {
		return nil, nil, err
	}
	if err := l.net.Publish(ctx, epoch, mine, lottery.SignCommit(l.key, epoch, reveal)); err != nil {
		return nil, nil, fmt.Errorf("publishing: %w", err)
	}
	if err := l.net.Reveal(ctx, epoch, lottery.SignReveal(l.key, epoch, reveal)); err != nil {
		return nil, nil, fmt.Errorf("revealing: %w", err)
	}
	return mine, local, nil
}

// draw collects and stores the epoch's inputs, draws, and returns the
// draw and the drawn pairs this node is part of (not yet confirmed); no
// draw (nil) for an idle epoch. mine and local are publish's.
func (l *Lottery) draw(ctx context.Context, epoch uint64, ents []*waiting, mine []*lottery.Ticket, local map[[32]byte]int) (*lottery.Result, []match, summary, error) {
	var sum summary
	in, err := l.net.Collect(ctx, epoch)
	if err != nil {
		return nil, nil, sum, fmt.Errorf("collecting: %w", err)
	}
	in.Epoch = epoch
	if err := l.storeProofs(ctx, epoch); err != nil {
		return nil, nil, sum, err
	}
	if len(in.Tickets) == 0 {
		return nil, nil, sum, nil // an idle epoch: nothing to draw or keep
	}
	// Draw (nothing is told yet), then persist before telling anyone:
	// the inputs are the evidence for every pair this epoch announces.
	res, err := lottery.Draw(in)
	if serr := l.storeInputs(ctx, in, res); serr != nil {
		return nil, nil, sum, serr
	}
	if err != nil {
		return nil, nil, sum, fmt.Errorf("drawing: %w", err)
	}
	sum = summary{seed: res.Seed, tickets: uint32(len(in.Tickets)), drawn: uint32(len(res.Pairs))}
	l.metric.excluded.Add(float64(len(res.Excluded)))
	for _, rj := range res.Rejected {
		if _, ok := local[rj.ID]; ok {
			l.log.Warn("own ticket rejected by the draw", "epoch", epoch, "err", rj.Err)
		}
	}
	unmatched := 0
	for _, t := range res.Unmatched {
		if t.Home == l.node {
			unmatched++
		}
	}
	l.metric.unmatched.Add(float64(unmatched))

	var matches []match
	remote := map[[32]byte]*lottery.Ticket{}
	for _, p := range res.Pairs {
		ia, okA := local[p.A]
		ib, okB := local[p.B]
		switch {
		case okA && okB:
			matches = append(matches, match{pair: p, a: ents[ia], b: ents[ib]})
		case okA:
			matches = append(matches, match{pair: p, a: ents[ia], local: mine[ia], remoteID: p.B})
			remote[p.B] = nil
		case okB:
			matches = append(matches, match{pair: p, a: ents[ib], local: mine[ib], remoteID: p.A})
			remote[p.A] = nil
		}
	}
	if len(remote) > 0 {
		for _, t := range in.Tickets {
			if _, ok := remote[t.ID()]; ok {
				remote[t.ID()] = t
			}
		}
		for i := range matches {
			if matches[i].b == nil {
				matches[i].remote = remote[matches[i].remoteID]
			}
		}
	}
	l.recordDraw(epoch, res.View, matches)
	return res, matches, sum, nil
}

// maxConfirms bounds the confirm exchanges (one per other node) one epoch
// runs at once.
const maxConfirms = 16

// confirm returns the matches that go ahead (spec 07-lottery §8.3,
// §10.4): a pair with a remote ticket once its home node confirmed it
// from the same view (one exchange per remote node, for all its pairs);
// a pair of two local tickets once another included node's view is known
// to be the same (a confirmed remote pair shows it, or else a view check),
// so that a node whose view lacks what the others saw does not pair its
// own users by a draw the others did not make. disagreed reports whether
// a confirmation or view check failed.
func (l *Lottery) confirm(ctx context.Context, epoch uint64, res *lottery.Result, matches []match) (kept []match, disagreed bool) {
	ok := make([]bool, len(matches))
	byHome := map[keys.NodeID][]int{}
	var homes []keys.NodeID
	hasLocal := false
	// A ticket offered to its partner's node may be paired there: from
	// here on a withdrawal waits for the settling. One withdrawn already
	// is not offered (its node answers the partner's request no too).
	l.mu.Lock()
	for i, m := range matches {
		switch {
		case m.b != nil:
			hasLocal = true
		case m.remote == nil:
			// Not in the inputs (cannot happen): not confirmed.
		case l.waiting[m.a.acct] != m.a:
			// Withdrawn during the draw: not offered.
		default:
			m.a.offered = true
			if byHome[m.remote.Home] == nil {
				homes = append(homes, m.remote.Home)
			}
			byHome[m.remote.Home] = append(byHome[m.remote.Home], i)
		}
	}
	l.mu.Unlock()
	sem := make(chan struct{}, maxConfirms)
	var wg sync.WaitGroup
	for _, home := range homes {
		idx := byHome[home]
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			props := make([]Proposal, len(idx))
			for j, i := range idx {
				props[j] = Proposal{Pair: matches[i].pair, Local: matches[i].local, Remote: matches[i].remote}
			}
			yes, err := l.net.Confirm(ctx, epoch, res.View, home, props)
			if err != nil {
				l.log.Debug("remote pairs not confirmed", "epoch", epoch, "pairs", len(idx), "err", err)
			}
			if len(yes) != len(idx) {
				return
			}
			for j, i := range idx {
				ok[i] = yes[j]
			}
		})
	}
	wg.Wait()
	agreed := false
	for i, m := range matches {
		if m.b == nil {
			agreed = agreed || ok[i]
			disagreed = disagreed || !ok[i]
		}
	}
	localOK := true
	if hasLocal && !agreed {
		if witnesses := l.witnesses(res.Included); len(witnesses) > 0 {
			localOK = false
			for _, w := range witnesses {
				yes, err := l.net.CheckView(ctx, epoch, res.View, w)
				if err == nil && yes {
					localOK = true
					break
				}
				l.log.Debug("view check failed", "epoch", epoch, "witness", w, "err", err)
			}
			disagreed = disagreed || !localOK
		}
	}
	for i, m := range matches {
		if (m.b == nil && ok[i]) || (m.b != nil && localOK) {
			kept = append(kept, m)
		}
	}
	return kept, disagreed
}

// maxWitnesses is how many other nodes a view check asks, one after the
// other, before this node's local pairs of an epoch are delayed.
const maxWitnesses = 2

// witnesses returns up to maxWitnesses included nodes other than this one:
// the next ones after it in ascending ID order, wrapping around, so that
// the nodes of an epoch spread their view checks.
func (l *Lottery) witnesses(included []keys.NodeID) []keys.NodeID {
	var after, before []keys.NodeID
	for _, n := range included {
		switch c := bytes.Compare(n[:], l.node[:]); {
		case c > 0:
			after = append(after, n)
		case c < 0:
			before = append(before, n)
		}
	}
	all := append(after, before...)
	return all[:min(len(all), maxWitnesses)]
}

// storeProofs durably writes the equivocation proofs the network holds for
// epoch, if it keeps any (ProofSource), under epoch/<n>/q/.
func (l *Lottery) storeProofs(ctx context.Context, epoch uint64) error {
	src, ok := l.net.(ProofSource)
	if !ok {
		return nil
	}
	proofs := src.Proofs(epoch)
	if len(proofs) == 0 {
		return nil
	}
	b := l.st.NewBatch()
	for i := range proofs {
		enc, err := proofs[i].MarshalBinary()
		if err != nil {
			continue
		}
		h := sha256.Sum256(enc)
		b.Set(epochKey(epoch, epochProof, h[:]), enc)
	}
	if err := l.st.Commit(ctx, b); err != nil {
		return fmt.Errorf("storing equivocation proofs: %w", err)
	}
	l.metric.proofs.Add(float64(len(proofs)))
	return nil
}

// Proofs returns the equivocation proofs stored for epoch (spec 07-lottery
// §13.3), each verified again; none if there are none or the epoch was
// purged.
func (l *Lottery) Proofs(ctx context.Context, epoch uint64) ([]lottery.Equivocation, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []lottery.Equivocation
	var bad error
	err := l.st.Scan(epochKey(epoch, epochProof), nil, 0, func(_, v []byte) bool {
		e, err := lottery.ParseEquivocation(v)
		if err == nil {
			err = e.Verify()
		}
		if err != nil {
			bad = fmt.Errorf("%w: equivocation proof of epoch %d: %w", ErrCorrupt, epoch, err)
			return false
		}
		out = append(out, *e)
		return true
	})
	if err == nil {
		err = bad
	}
	return out, err
}

// storeInputs durably writes an epoch's tickets, commits and reveals under
// epoch/<n>/, in batches of at most maxBatchWrites: the tickets that make
// a whole stamp batch of one node (as gossiped, spec 07-lottery §13.2),
// all accepted by the draw res, as one record of that batch, the others
// one by one (without a draw, all one by one).
func (l *Lottery) storeInputs(ctx context.Context, in lottery.EpochInputs, res *lottery.Result) error {
	b := l.st.NewBatch()
	flush := func(force bool) error {
		if b.Len() == 0 || (!force && b.Len() < maxBatchWrites) {
			return nil
		}
		err := l.st.Commit(ctx, b)
		b = l.st.NewBatch()
		return err
	}
	put := func(sub string, id []byte, enc []byte) error {
		b.Set(epochKey(in.Epoch, sub, id), enc)
		return flush(false)
	}
	defer func() { b.Close() }()
	batches, loose := wholeBatches(in, res)
	for _, enc := range batches {
		h := sha256.Sum256(enc)
		if err := put(epochBatch, h[:], enc); err != nil {
			return fmt.Errorf("storing epoch inputs: %w", err)
		}
	}
	for _, t := range loose {
		enc, err := t.MarshalBinary()
		if err != nil {
			continue // a ticket that cannot be encoded is not canonical: the draw rejects it
		}
		id := t.ID()
		if err := put(epochTicket, id[:], enc); err != nil {
			return fmt.Errorf("storing epoch inputs: %w", err)
		}
	}
	for i := range in.Commits {
		enc, _ := in.Commits[i].MarshalBinary()
		h := sha256.Sum256(enc)
		if err := put(epochCommit, h[:], enc); err != nil {
			return fmt.Errorf("storing epoch inputs: %w", err)
		}
	}
	for i := range in.Reveals {
		enc, _ := in.Reveals[i].MarshalBinary()
		h := sha256.Sum256(enc)
		if err := put(epochReveal, h[:], enc); err != nil {
			return fmt.Errorf("storing epoch inputs: %w", err)
		}
	}
	if err := flush(true); err != nil {
		return fmt.Errorf("storing epoch inputs: %w", err)
	}
	return nil
}

// wholeBatches returns the encodings of the whole stamp batches (at most
// wire.MaxTicketBatch tickets) among in's tickets, and the tickets that
// are in none. Only a batch whose every ticket the draw res accepted is
// encoded as one: their stamps verified, so the batch encoding, which
// rebuilds each ticket's Merkle path from the leaves, gives back the very
// tickets drawn (spec 07-lottery §13.2). Without res, every ticket is
// loose.
func wholeBatches(in lottery.EpochInputs, res *lottery.Result) (batches [][]byte, loose []*lottery.Ticket) {
	if res == nil {
		return nil, in.Tickets
	}
	rejected := make(map[[32]byte]bool, len(res.Rejected))
	for _, rj := range res.Rejected {
		rejected[rj.ID] = true
	}
	type batchKey struct {
		node  keys.NodeID
		time  int64
		count uint32
		sig   keys.Signature
	}
	groups := map[batchKey][]*lottery.Ticket{}
	var order []batchKey
	for _, t := range in.Tickets {
		s := t.Stamp
		if s == nil || s.Count == 0 || s.Count > wire.MaxTicketBatch || s.Index >= s.Count {
			loose = append(loose, t)
			continue
		}
		k := batchKey{s.Node, s.Time, s.Count, s.Sig}
		g := groups[k]
		if g == nil {
			g = make([]*lottery.Ticket, s.Count)
			groups[k] = g
			order = append(order, k)
		}
		if g[s.Index] != nil {
			loose = append(loose, t) // a second copy
			continue
		}
		g[s.Index] = t
	}
	for _, k := range order {
		g := groups[k]
		var enc []byte
		if !slices.Contains(g, nil) && !slices.ContainsFunc(g, func(t *lottery.Ticket) bool { return rejected[t.ID()] }) {
			enc, _ = (&lottery.TicketBatch{Epoch: in.Epoch, Node: k.node, Tickets: g}).MarshalBinary()
		}
		if enc != nil {
			batches = append(batches, enc)
			continue
		}
		for _, t := range g {
			if t != nil {
				loose = append(loose, t)
			}
		}
	}
	return batches, loose
}

// settle writes, in one synced batch: for each match whose local tickets
// still wait, the room, the paired events of its local sides, the links'
// room and the confirmed pair; the deletion of paired and expired tickets;
// and the epoch's summary. Then it updates the waiting tickets in memory:
// every other ticket of ents that still waits rolls over.
func (l *Lottery) settle(ctx context.Context, epoch uint64, ents []*waiting, matches []match, sum summary) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	defer func() {
		// Settled or not, the tickets are no longer being drawn: those
		// still waiting join the next epoch that closes.
		for _, w := range ents {
			w.drawing, w.offered = false, false
		}
		close(l.drawEnd)
		l.drawEnd = make(chan struct{})
	}()
	still := func(w *waiting) bool { return l.waiting[w.acct] == w }
	now := l.now().UTC().Truncate(time.Millisecond)
	b := l.st.NewBatch()
	done := make(map[*waiting]bool)
	var paired, expired, rolled []*waiting
	var settledRemote []lottery.Pair
	for _, m := range matches {
		if !still(m.a) || (m.b != nil && !still(m.b)) {
			continue
		}
		if err := l.createRoom(b, m, now); errors.Is(err, rooms.ErrInvalid) {
			// Refused before anything was written for it (a bug, or a
			// corrupt ticket): this pair only is lost, not every pair
			// of the epoch, which other nodes may have taken already.
			l.log.Error("a drawn pair's room is invalid; its tickets roll over", "epoch", epoch, "err", err)
			continue
		} else if err != nil {
			l.mb.Discard(b)
			return err
		}
		b.Set(epochKey(epoch, epochPair, m.pair.A[:], m.pair.B[:]), nil)
		sum.confirmed++
		if m.b == nil {
			settledRemote = append(settledRemote, m.pair)
		}
		for _, w := range []*waiting{m.a, m.b} {
			if w != nil {
				b.Delete(waitKey(w.acct))
				done[w] = true
				paired = append(paired, w)
			}
		}
	}
	for _, w := range ents {
		switch {
		case done[w] || !still(w):
		case epoch >= w.first && epoch-w.first >= uint64(l.cfg.TicketTTL):
			b.Delete(waitKey(w.acct))
			expired = append(expired, w)
		default:
			rolled = append(rolled, w)
		}
	}
	if sum.tickets > 0 {
		b.Set(epochKey(epoch, epochSummary), encodeSummary(sum))
	}
	if b.Len() > 0 {
		// Commit without l.mu (the next epoch may close meanwhile); the
		// accounts it pairs or expires wait for it (waitSettled).
		done := make(chan struct{})
		l.settleDone = done
		l.settlingAccts = make(map[keys.AccountID]bool, len(paired)+len(expired))
		for _, w := range append(paired, expired...) {
			l.settlingAccts[w.acct] = true
		}
		l.mu.Unlock()
		err := l.mb.Commit(ctx, b)
		l.mu.Lock()
		l.settlingAccts, l.settleDone = nil, nil
		close(done)
		if err != nil {
			// Nothing changed: the tickets wait for the next epoch.
			return fmt.Errorf("settling: %w", err)
		}
	} else {
		l.mb.Discard(b)
	}
	if d := l.drawn[epoch]; d != nil {
		for _, p := range settledRemote {
			if dp := d.pairs[p]; dp != nil {
				dp.settled = true
			}
		}
	}
	for _, w := range paired {
		delete(l.waiting, w.acct)
		l.metric.waitSeconds.Observe(now.Sub(w.issued).Seconds())
		if epoch >= w.first {
			l.metric.waitEpochs.Observe(float64(epoch - w.first))
		}
	}
	for _, w := range expired {
		delete(l.waiting, w.acct)
	}
	for _, w := range rolled {
		w.epoch = epoch + 1
	}
	l.metric.pairs.Add(float64(sum.confirmed))
	l.metric.expired.Add(float64(len(expired)))
	l.metric.rolled.Add(float64(len(rolled)))
	l.metric.waiting.Set(float64(len(l.waiting)))
	if len(ents) > 0 {
		l.log.Debug("epoch settled", "epoch", epoch, "tickets", len(ents), "pairs", sum.confirmed,
			"rolled_over", len(rolled), "expired", len(expired))
	}
	return nil
}

// createRoom writes into b the room of m, its local sides' paired events
// and their links' room.
func (l *Lottery) createRoom(b *store.Batch, m match, now time.Time) error {
	sides := [2]rooms.Side{{Ticket: m.a.keys, Home: l.node, Account: m.a.acct, Local: true}}
	if m.b != nil {
		sides[1] = rooms.Side{Ticket: m.b.keys, Home: l.node, Account: m.b.acct, Local: true}
	} else {
		sides[1] = rooms.Side{Ticket: m.remote.Keys, Home: m.remote.Home}
	}
	if bytes.Compare(sides[0].Ticket.Sign[:], sides[1].Ticket.Sign[:]) > 0 {
		sides[0], sides[1] = sides[1], sides[0]
	}
	rec := rooms.Record{ID: RoomID(sides[0].Ticket, sides[1].Ticket), Sides: sides, Created: now}
	if err := l.rooms.Put(b, rec); err != nil {
		return fmt.Errorf("creating room: %w", err)
	}
	for i, s := range sides {
		if !s.Local {
			continue
		}
		p := sides[1-i]
		body, err := json.Marshal(PairedEvent{
			Room:    rec.ID,
			Me:      PairedSide{Sign: s.Ticket.Sign, DH: s.Ticket.DH, Home: s.Home},
			Partner: PairedSide{Sign: p.Ticket.Sign, DH: p.Ticket.DH, Home: p.Home},
			Created: now,
		})
		if err != nil {
			return fmt.Errorf("encoding paired event: %w", err)
		}
		if _, err := l.mb.Append(b, s.Account, mailbox.Event{Kind: mailbox.KindPaired, Room: rec.ID, Time: now, Body: body}); err != nil {
			return fmt.Errorf("announcing room: %w", err)
		}
	}
	for _, w := range []*waiting{m.a, m.b} {
		if w != nil {
			b.Set(linkKey(w.keys.Sign), encodeLink(Link{
				Ticket: w.keys.Sign, DH: w.keys.DH, Account: w.acct, Epoch: w.first, Issued: w.issued, Room: rec.ID,
			}))
		}
	}
	return nil
}

// Audit recomputes a stored epoch's draw and checks the pairs this node
// confirmed in it against the draw (lottery.Audit, spec 07-lottery §9). It
// fails with ErrUnknownEpoch if no inputs of the epoch are stored.
func (l *Lottery) Audit(ctx context.Context, epoch uint64) (*lottery.AuditReport, error) {
	in, confirmed, err := l.EpochInputs(ctx, epoch)
	if err != nil {
		return nil, err
	}
	rep, err := lottery.Audit(in, confirmed)
	if err != nil {
		return nil, fmt.Errorf("pairing: auditing epoch %d: %w", epoch, err)
	}
	return rep, nil
}

// EpochInputs returns what this node stored of epoch: the inputs it drew
// from (tickets, commits and reveals as it held them) and the pairs it
// confirmed. Another node's inputs and confirmed pairs can be audited
// against the same or a merged set of inputs with lottery.Audit. It fails
// with ErrUnknownEpoch if no inputs of the epoch are stored.
func (l *Lottery) EpochInputs(ctx context.Context, epoch uint64) (lottery.EpochInputs, []lottery.Pair, error) {
	in := lottery.EpochInputs{Epoch: epoch}
	if err := ctx.Err(); err != nil {
		return in, nil, err
	}
	var confirmed []lottery.Pair
	var parseErr error
	prefix := epochKey(epoch, "")
	err := l.st.Scan(prefix, nil, 0, func(key, v []byte) bool {
		rest := key[len(prefix):]
		var err error
		switch {
		case bytes.HasPrefix(rest, []byte(epochTicket)):
			var t *lottery.Ticket
			if t, err = lottery.ParseTicket(v); err == nil {
				in.Tickets = append(in.Tickets, t)
			}
		case bytes.HasPrefix(rest, []byte(epochBatch)):
			var tb *lottery.TicketBatch
			if tb, err = lottery.ParseTicketBatch(v); err == nil {
				in.Tickets = append(in.Tickets, tb.Tickets...)
			}
		case bytes.HasPrefix(rest, []byte(epochCommit)):
			var c *lottery.Commit
			if c, err = lottery.ParseCommit(v); err == nil {
				in.Commits = append(in.Commits, *c)
			}
		case bytes.HasPrefix(rest, []byte(epochReveal)):
			var r *lottery.Reveal
			if r, err = lottery.ParseReveal(v); err == nil {
				in.Reveals = append(in.Reveals, *r)
			}
		case bytes.HasPrefix(rest, []byte(epochPair)):
			id := rest[len(epochPair):]
			if len(id) != 64 {
				err = fmt.Errorf("pair key of %d bytes", len(id))
				break
			}
			var p lottery.Pair
			copy(p.A[:], id[:32])
			copy(p.B[:], id[32:])
			confirmed = append(confirmed, p)
		}
		if err != nil {
			parseErr = fmt.Errorf("%w: epoch %d: %w", ErrCorrupt, epoch, err)
			return false
		}
		return true
	})
	if err == nil {
		err = parseErr
	}
	if err != nil {
		return in, nil, err
	}
	if len(in.Tickets) == 0 {
		return in, nil, fmt.Errorf("%w: %d", ErrUnknownEpoch, epoch)
	}
	return in, confirmed, nil
}

// Purge drops the inputs of epochs that ended more than
// Config.EpochRetention ago, and the ticket-to-account links nobody can
// need any more: issued more than wire.MaxDisclosureAge ago, and, for a
// paired ticket, whose room closed more than wire.MaxDisclosureAge ago (or
// is gone), since messages are stamped only while a room is open. It
// returns the number of links dropped.
func (l *Lottery) Purge(ctx context.Context) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	now := l.now()
	if old := l.epochAt(now.Add(-l.cfg.EpochRetention)); old > 0 {
		b := l.st.NewBatch()
		b.DeleteRange(epochStartKey(0), epochStartKey(old))
		if err := l.st.Commit(ctx, b); err != nil {
			return 0, fmt.Errorf("pairing: pruning epochs: %w", err)
		}
	}
	cutoff := now.Add(-wire.MaxDisclosureAge)
	prefix := []byte(store.PrefixTicket)
	var after []byte
	total := 0
	for {
		var links []Link
		var last []byte
		var decodeErr error
		err := l.st.Scan(prefix, after, maxBatchWrites/2, func(key, v []byte) bool {
			last = append(last[:0], key...)
			var t keys.TicketID
			if len(key) != len(prefix)+len(t) {
				return true // not a link: leave it alone
			}
			copy(t[:], key[len(prefix):])
			lk, err := decodeLink(t, v)
			if err != nil {
				decodeErr = err
				return false
			}
			if lk.Issued.Before(cutoff) {
				links = append(links, lk)
			}
			return true
		})
		if err == nil {
			err = decodeErr
		}
		if err != nil {
			return total, fmt.Errorf("pairing: purging links: %w", err)
		}
		b := l.st.NewBatch()
		n := 0
		for _, lk := range links {
			keep, err := l.linkNeeded(ctx, lk, cutoff)
			if err != nil {
				b.Close()
				return total, fmt.Errorf("pairing: purging links: %w", err)
			}
			if !keep {
				b.Delete(linkKey(lk.Ticket))
				b.Delete(dhKey(lk.DH))
				n++
			}
		}
		if n > 0 {
			if err := l.st.Commit(ctx, b); err != nil {
				return total, fmt.Errorf("pairing: purging links: %w", err)
			}
		} else {
			b.Close()
		}
		total += n
		if last == nil {
			return total, nil
		}
		after = last
		if err := ctx.Err(); err != nil {
			return total, err
		}
	}
}

// linkNeeded reports whether a link issued before cutoff must still be
// kept: its ticket still waits, or its room is open or closed after cutoff.
func (l *Lottery) linkNeeded(ctx context.Context, lk Link, cutoff time.Time) (bool, error) {
	l.mu.Lock()
	w := l.waiting[lk.Account]
	l.mu.Unlock()
	if w != nil && w.keys.Sign == lk.Ticket {
		return true, nil
	}
	if lk.Room == (keys.RoomID{}) {
		return false, nil
	}
	rec, err := l.rooms.Get(ctx, lk.Room)
	switch {
	case errors.Is(err, rooms.ErrNotFound):
		return false, nil
	case err != nil:
		return false, err
	}
	return !rec.IsClosed() || !rec.Closed.Before(cutoff), nil
}
