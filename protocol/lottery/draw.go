package lottery

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/stamp"
	"github.com/parley-chat/parley/protocol/wire"
)

// EpochInputs is everything a node has received for one epoch: the inputs
// of Draw and Audit (spec 07-lottery §1).
type EpochInputs struct {
	Epoch   uint64
	Commits []Commit
	Reveals []Reveal
	Tickets []*Ticket
}

// Result is an epoch's draw, as every node with the same inputs computes
// it (spec 07-lottery §8).
type Result struct {
	Seed      [32]byte
	Included  []keys.NodeID // nodes with a valid reveal, ascending
	Excluded  []keys.NodeID // nodes that committed without a valid reveal, ascending
	Pairs     []Pair        // sorted
	Unmatched []*Ticket     // accepted tickets left unpaired, in draw order
	Rejected  []Rejection   // one per ticket ID, sorted by ID
	// View is the digest of the draw's inputs as they count (ViewDigest):
	// two nodes with the same View computed the same draw.
	View [32]byte
}

// ViewDigest returns the digest of a view of an epoch (spec 07-lottery
// §8.4): H("parley/v1/lottery-view", u64 epoch, seed, u32 n, the n
// accepted ticket IDs ascending). The seed binds the included nodes and
// their reveals, the IDs the accepted tickets, so nodes whose views have
// the same digest compute the same draw. Two nodes compare digests before
// they confirm a pair.
func ViewDigest(epoch uint64, seed [32]byte, accepted [][32]byte) [32]byte {
	ids := slices.Clone(accepted)
	slices.SortFunc(ids, func(a, b [32]byte) int { return bytes.Compare(a[:], b[:]) })
	e := wire.NewEncoder(8 + 32 + 4 + 32*len(ids))
	e.U64(epoch)
	e.Fixed(seed[:])
	e.U32(uint32(len(ids)))
	for i := range ids {
		e.Fixed(ids[i][:])
	}
	return wire.Hash(wire.LabelLotteryView, e.Bytes())
}

// Rejection is a ticket Draw refused, and why. A ticket ID with a refused
// copy is listed once, even if another copy was accepted.
type Rejection struct {
	ID     [32]byte // the ticket's ID; zero if it has more tags than can be encoded
	Ticket *Ticket
	// Err matches ErrBadTicket (not canonical, not stamped, bad stamp),
	// ErrWrongEpoch or ErrExcludedNode.
	Err error
}

// batch identifies one stamp signature: Draw verifies it once.
type batch struct {
	node  keys.NodeID
	root  [32]byte
	time  int64
	count uint32
	sig   keys.Signature
}

// Draw computes an epoch (spec 07-lottery §8): the seed from the commits and
// reveals (Seed), then the accepted tickets, then their Match. A ticket is
// accepted iff it is canonical, is for in.Epoch, its home node is included,
// and its stamp verifies against its home node; otherwise it is listed in
// Rejected with the first failing check in that order. Copies of a ticket
// (same ID) count once: the ticket is accepted if any copy is. Stamp
// signatures are checked once per distinct batch (node, root, time, count,
// signature), so tickets stamped in batches cost about one signature check
// per batch.
//
// Draw fails with ErrNoReveals when no node is included, and with ErrLimit
// when more than wire.MaxNodesPerEpoch nodes are included or more than
// wire.MaxTicketsPerEpoch distinct tickets are accepted. Per-node ticket
// quotas are the node's policy, applied before tickets are gossiped.
func Draw(in EpochInputs) (*Result, error) {
	seed, included, excluded, err := Seed(in.Epoch, in.Commits, in.Reveals)
	if err != nil {
		return nil, err
	}
	res := &Result{Seed: seed, Included: included, Excluded: excluded}
	isIncluded := make(map[keys.NodeID]bool, len(included))
	for _, n := range included {
		isIncluded[n] = true
	}
	isExcluded := make(map[keys.NodeID]bool, len(excluded))
	for _, n := range excluded {
		isExcluded[n] = true
	}
	verified := map[batch]bool{}
	accepted := make(map[[32]byte]struct{}, len(in.Tickets))
	ents := make([]entry, 0, len(in.Tickets))
	for _, t := range in.Tickets {
		if err := t.check(); err != nil {
			var id [32]byte
			if len(t.Interests) <= 0xffff && len(t.Avoid) <= 0xffff {
				id = t.ID()
			}
			res.Rejected = append(res.Rejected, Rejection{ID: id, Ticket: t, Err: err})
			continue
		}
		leaf := t.Leaf()
		id := wire.Hash(wire.LabelTicket, leaf)
		reject := func(err error) { res.Rejected = append(res.Rejected, Rejection{ID: id, Ticket: t, Err: err}) }
		switch {
		case t.Epoch != in.Epoch:
			reject(fmt.Errorf("%w: ticket for epoch %d, drawing %d", ErrWrongEpoch, t.Epoch, in.Epoch))
			continue
		case isExcluded[t.Home]:
			reject(fmt.Errorf("%w: %s committed without a valid reveal", ErrExcludedNode, t.Home))
			continue
		case !isIncluded[t.Home]:
			reject(fmt.Errorf("%w: %s did not commit", ErrExcludedNode, t.Home))
			continue
		}
		if err := verifyCached(verified, t, leaf); err != nil {
			reject(err)
			continue
		}
		if _, dup := accepted[id]; dup {
			continue
		}
		accepted[id] = struct{}{}
		ents = append(ents, entry{t: t, id: id})
	}
	if len(ents) > wire.MaxTicketsPerEpoch {
		return nil, fmt.Errorf("%w: %d tickets, limit %d", ErrLimit, len(ents), wire.MaxTicketsPerEpoch)
	}
	slices.SortFunc(res.Rejected, func(a, b Rejection) int {
		if c := bytes.Compare(a.ID[:], b.ID[:]); c != 0 {
			return c
		}
		return cmpStrings(a.Err.Error(), b.Err.Error())
	})
	// Copies of one ticket share its leaf, so they can differ only in
	// their stamps: one entry per ID says all there is to say.
	res.Rejected = slices.CompactFunc(res.Rejected, func(a, b Rejection) bool { return a.ID == b.ID })
	res.Pairs, res.Unmatched = match(seed, ents)
	acc := make([][32]byte, len(ents))
	for i := range ents {
		acc[i] = ents[i].id
	}
	res.View = ViewDigest(in.Epoch, seed, acc)
	return res, nil
}

func cmpStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// verifyCached checks t's stamp of leaf like Ticket.Verify, but checks each
// batch signature only once.
func verifyCached(verified map[batch]bool, t *Ticket, leaf []byte) error {
	s := t.Stamp
	if s == nil {
		return fmt.Errorf("%w: not stamped", ErrBadTicket)
	}
	if s.Node != t.Home {
		return fmt.Errorf("%w: stamped by %s, not its home node", ErrBadTicket, s.Node)
	}
	root, err := s.Root(wire.LabelTicket, leaf)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadTicket, err)
	}
	b := batch{node: s.Node, root: root, time: s.Time, count: s.Count, sig: s.Sig}
	ok, seen := verified[b]
	if !seen {
		ok = stamp.VerifyRoot(t.Home, wire.LabelTicket, root, s) == nil
		verified[b] = ok
	}
	if !ok {
		return fmt.Errorf("%w: stamp does not verify against its home node", ErrBadTicket)
	}
	return nil
}

// AuditReport is the outcome of Audit.
type AuditReport struct {
	// Result is the recomputed draw.
	Result *Result
	// NotDrawn lists the confirmed pairs the draw did not make: each is a
	// pair that should not exist. Sorted.
	NotDrawn []Pair
	// NotConfirmed lists the drawn pairs that were not confirmed, for
	// information: different views of the ticket set delay pairs, so an
	// unconfirmed pair is no fault. Sorted.
	NotConfirmed []Pair
}

// OK reports whether every confirmed pair was drawn.
func (r *AuditReport) OK() bool { return len(r.NotDrawn) == 0 }

// Audit recomputes an epoch's draw from its inputs and checks a list of
// confirmed pairs against it (spec 07-lottery §9). Pairs may be given in
// either order of their IDs; repeats count once. It fails when Draw fails.
func Audit(in EpochInputs, confirmed []Pair) (*AuditReport, error) {
	res, err := Draw(in)
	if err != nil {
		return nil, err
	}
	conf := make([]Pair, len(confirmed))
	for i, p := range confirmed {
		conf[i] = newPair(p.A, p.B)
	}
	slices.SortFunc(conf, comparePairs)
	conf = slices.Compact(conf)
	rep := &AuditReport{Result: res}
	// Both lists are sorted: walk them together.
	i, j := 0, 0
	for i < len(conf) || j < len(res.Pairs) {
		switch {
		case j == len(res.Pairs) || (i < len(conf) && comparePairs(conf[i], res.Pairs[j]) < 0):
			rep.NotDrawn = append(rep.NotDrawn, conf[i])
			i++
		case i == len(conf) || comparePairs(conf[i], res.Pairs[j]) > 0:
			rep.NotConfirmed = append(rep.NotConfirmed, res.Pairs[j])
			j++
		default:
			i++
			j++
		}
	}
	return rep, nil
}
