package lottery

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/parley-chat/parley/protocol/stamp"
	"github.com/parley-chat/parley/protocol/wire"
)

// ScanBound is how many waiting tickets the matching examines for one ticket
// before it gives up and makes the ticket wait (spec 07-lottery §4). Only
// tickets incompatible with everything ahead of them (shared avoid tags,
// reused keys) ever get that far, so the bound only caps an attacker's cost
// on every node.
const ScanBound = 64

// Pair is two tickets the draw paired, by ticket ID, with A < B bytewise.
type Pair struct {
	A, B [32]byte
}

func newPair(x, y [32]byte) Pair {
	if bytes.Compare(x[:], y[:]) > 0 {
		x, y = y, x
	}
	return Pair{A: x, B: y}
}

func comparePairs(p, q Pair) int {
	if c := bytes.Compare(p.A[:], q.A[:]); c != 0 {
		return c
	}
	return bytes.Compare(p.B[:], q.B[:])
}

// Compatible reports whether two tickets may be paired: they share no room
// key (a user cannot meet itself) and no avoid tag (two users who just left
// each other do not meet again at once).
func Compatible(a, b *Ticket) bool {
	if a.Keys.Sign == b.Keys.Sign || a.Keys.DH == b.Keys.DH {
		return false
	}
	return !shareTag(a.Avoid, b.Avoid)
}

// shareTag reports whether two sorted tag lists intersect.
func shareTag(x, y []Tag) bool {
	for i, j := 0, 0; i < len(x) && j < len(y); {
		switch c := bytes.Compare(x[i][:], y[j][:]); {
		case c == 0:
			return true
		case c < 0:
			i++
		default:
			j++
		}
	}
	return false
}

type drawn struct {
	t     *Ticket
	id    [32]byte
	order [32]byte
	taken bool
}

// Match computes the epoch's pairs from the seed and the ticket set (spec
// 07-lottery §4). It is deterministic and ignores input order: the draw
// order is each ticket's H("parley/v1/lottery-order", seed, ID), ties (never
// seen in practice) broken by ID. Duplicate tickets count once.
//
// Phase 1 walks the draw order and pairs each ticket that has interest tags
// with the earliest waiting compatible ticket that shares one of them.
// Phase 2 walks the tickets still unpaired, in draw order, and pairs each
// with the earliest waiting compatible ticket. With no tags and no shared
// keys, phase 2 pairs draw positions (0,1), (2,3), ...: a uniformly random
// perfect matching, because the draw order is a uniformly random
// permutation under a random seed.
func Match(seed [32]byte, tickets []*Ticket) (pairs []Pair, unmatched []*Ticket) {
	ds := make([]*drawn, 0, len(tickets))
	seen := make(map[[32]byte]bool, len(tickets))
	for _, t := range tickets {
		id := t.ID()
		if seen[id] {
			continue
		}
		seen[id] = true
		ds = append(ds, &drawn{t: t, id: id, order: wire.Hash(wire.LabelLotteryOrder, seed[:], id[:])})
	}
	slices.SortFunc(ds, func(a, b *drawn) int {
		if c := bytes.Compare(a.order[:], b.order[:]); c != 0 {
			return c
		}
		return bytes.Compare(a.id[:], b.id[:])
	})

	pair := func(a, b *drawn) {
		a.taken, b.taken = true, true
		pairs = append(pairs, newPair(a.id, b.id))
	}

	// Phase 1: interests. waiting[tag] lists untaken tickets with that tag,
	// in draw order (taken ones are dropped lazily).
	waiting := map[Tag][]*drawn{}
	for _, d := range ds {
		if len(d.t.Interests) == 0 {
			continue
		}
		var best *drawn
		bestPos := -1
		for _, tag := range d.t.Interests {
			q := waiting[tag]
			// Drop taken tickets from the front.
			for len(q) > 0 && q[0].taken {
				q = q[1:]
			}
			waiting[tag] = q
			for i, c := range q {
				if i >= ScanBound {
					break
				}
				if c.taken || !Compatible(c.t, d.t) {
					continue
				}
				if pos := indexOf(ds, c); best == nil || pos < bestPos {
					best, bestPos = c, pos
				}
				break
			}
		}
		if best != nil {
			pair(best, d)
			continue
		}
		for _, tag := range d.t.Interests {
			waiting[tag] = append(waiting[tag], d)
		}
	}

	// Phase 2: everyone left, in draw order.
	var queue []*drawn
	for _, d := range ds {
		if d.taken {
			continue
		}
		matched := false
		for i, c := range queue {
			if i >= ScanBound {
				break
			}
			if Compatible(c.t, d.t) {
				pair(c, d)
				queue = append(queue[:i], queue[i+1:]...)
				matched = true
				break
			}
		}
		if !matched {
			queue = append(queue, d)
		}
	}
	for _, d := range queue {
		unmatched = append(unmatched, d.t)
	}
	slices.SortFunc(pairs, comparePairs)
	return pairs, unmatched
}

// indexOf returns d's position in the draw order. Draw positions are only
// compared between the few heads of tag queues, so a binary search by
// order key is enough.
func indexOf(ds []*drawn, d *drawn) int {
	i, _ := slices.BinarySearchFunc(ds, d, func(a, b *drawn) int {
		if c := bytes.Compare(a.order[:], b.order[:]); c != 0 {
			return c
		}
		return bytes.Compare(a.id[:], b.id[:])
	})
	return i
}

// EpochInputs is everything one epoch's draw depends on, as a node saw it.
type EpochInputs struct {
	Epoch   uint64
	Commits []Commit
	Reveals []Reveal
	Tickets []*Ticket
}

// Rejection is a ticket the draw did not take, and why.
type Rejection struct {
	Ticket *Ticket
	Reason string // "wrong epoch", "node not included", "bad stamp", "duplicate"
}

// Result is one epoch's draw.
type Result struct {
	SeedResult
	Pairs     []Pair
	Unmatched []*Ticket
	Rejected  []Rejection
}

// Draw computes an epoch as every node does (spec 07-lottery §5): the seed
// from the commits and reveals, then the tickets that take part (this
// epoch, home node included, valid stamp, not a duplicate), then Match.
// Stamp signatures are checked once per batch: each ticket's Merkle root is
// recomputed and the signature verified once per distinct batch.
func Draw(in EpochInputs) (*Result, error) {
	sr, err := Seed(in.Epoch, in.Commits, in.Reveals)
	if err != nil {
		return nil, err
	}
	res := &Result{SeedResult: *sr}
	included := make(map[[32]byte]bool, len(sr.Included))
	for _, n := range sr.Included {
		included[n] = true
	}
	type batchKey struct {
		node  [32]byte
		time  int64
		count uint32
		root  [32]byte
		sig   [64]byte
	}
	verified := map[batchKey]bool{}
	seen := make(map[[32]byte]bool, len(in.Tickets))
	accepted := make([]*Ticket, 0, len(in.Tickets))
	for _, t := range in.Tickets {
		reason := ""
		switch {
		case t.Epoch != in.Epoch:
			reason = "wrong epoch"
		case !included[t.Home]:
			reason = "node not included"
		case t.Stamp == nil:
			reason = "bad stamp"
		}
		if reason == "" {
			root, err := t.Stamp.Root(wire.LabelTicket, t.Leaf())
			k := batchKey{t.Home, t.Stamp.Time, t.Stamp.Count, root, t.Stamp.Sig}
			switch {
			case err != nil:
				reason = "bad stamp"
			case verified[k]:
			case stamp.VerifyRoot(t.Home, wire.LabelTicket, root, t.Stamp) != nil:
				reason = "bad stamp"
			default:
				verified[k] = true
			}
		}
		if reason == "" {
			id := t.ID()
			if seen[id] {
				reason = "duplicate"
			}
			seen[id] = true
		}
		if reason != "" {
			res.Rejected = append(res.Rejected, Rejection{Ticket: t, Reason: reason})
			continue
		}
		accepted = append(accepted, t)
	}
	if len(accepted) > wire.MaxTicketsPerEpoch {
		return nil, fmt.Errorf("lottery: %d tickets exceed the %d a matching takes", len(accepted), wire.MaxTicketsPerEpoch)
	}
	res.Pairs, res.Unmatched = Match(sr.Seed, accepted)
	return res, nil
}

// AuditReport compares confirmed pairs with the draw.
type AuditReport struct {
	Result *Result
	// NotDrawn are confirmed pairs the draw did not make: evidence that
	// whoever confirmed them did not follow the lottery (or saw other
	// inputs, which the caller can rule out by sharing its inputs).
	NotDrawn []Pair
	// Unconfirmed are drawn pairs nobody confirmed (informational: views
	// that disagree delay a pair to a later epoch).
	Unconfirmed []Pair
}

// Audit recomputes the epoch from in and checks confirmed against it (spec
// 07-lottery §6).
func Audit(in EpochInputs, confirmed []Pair) (*AuditReport, error) {
	res, err := Draw(in)
	if err != nil {
		return nil, err
	}
	drawnSet := make(map[Pair]bool, len(res.Pairs))
	for _, p := range res.Pairs {
		drawnSet[p] = true
	}
	rep := &AuditReport{Result: res}
	confirmedSet := map[Pair]bool{}
	for _, p := range confirmed {
		p = newPair(p.A, p.B)
		confirmedSet[p] = true
		if !drawnSet[p] {
			rep.NotDrawn = append(rep.NotDrawn, p)
		}
	}
	for _, p := range res.Pairs {
		if !confirmedSet[p] {
			rep.Unconfirmed = append(rep.Unconfirmed, p)
		}
	}
	slices.SortFunc(rep.NotDrawn, comparePairs)
	return rep, nil
}
