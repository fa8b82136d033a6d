package lottery

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"slices"

	"github.com/parley-chat/parley/protocol/wire"
)

// MaxScan bounds each scan of the matching (spec 07-lottery §7.3): the
// waiting tickets one ticket is compared with in phases 1 and 2, and the
// tickets and pairs phase 3 tries. It keeps the matching's work at
// O(n · MaxScan) compatibility checks (plus at most 2 · MaxScan³ in phase
// 3) even when a hostile population makes many tickets incompatible with
// each other; in an ordinary population the first ticket looked at is
// compatible and the work is O(n). It is part of
// the protocol: every node must use the same bound to draw the same pairs.
const MaxScan = 64

// Pair is two matched tickets, by ticket ID, with A < B bytewise.
type Pair struct {
	A, B [32]byte
}

// newPair orders x and y.
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

// Compatible reports whether the matching may pair a and b (spec
// 07-lottery §7.1): they have different signing keys, different X25519
// keys, and no avoid tag in common.
func Compatible(a, b *Ticket) bool {
	if a.Keys.Sign == b.Keys.Sign || a.Keys.DH == b.Keys.DH {
		return false
	}
	for _, x := range a.Avoid {
		for _, y := range b.Avoid {
			if x == y {
				return false
			}
		}
	}
	return true
}

// entry is a ticket in the matching.
type entry struct {
	t     *Ticket
	id    [32]byte
	order [32]byte
}

// Match pairs tickets under seed (spec 07-lottery §7). It is deterministic
// and does not depend on the order of tickets; tickets with the same ID
// count once. It does not verify the tickets: Draw does, and bounds their
// number by wire.MaxTicketsPerEpoch.
//
// Draw order: tickets sorted by H("parley/v1/lottery-order", seed, ID),
// ties broken by ID. Phase 1 walks the draw order and pairs each ticket
// that has interest tags with the earliest waiting compatible ticket that
// shares one of them, looking at no more than the MaxScan earliest waiting
// tickets that share one; an unpaired ticket waits. Phase 2 walks the
// tickets still unpaired, in draw order, and pairs each with the earliest
// waiting compatible ticket among the MaxScan earliest waiting; an unpaired
// ticket waits. Phase 3 repairs what phase 2 left: for each of the first
// MaxScan tickets u still waiting, it looks for a later waiting ticket v
// (at most MaxScan) and a phase-2 pair (x, y) not yet split (at most the
// first MaxScan, in the order made) such that (u, x) and (v, y), or else
// (u, y) and (v, x), are compatible, and splits (x, y) into those two
// pairs. Pairs are sorted; unmatched tickets are in draw order.
//
// Without interest or avoid tags and with distinct keys, phase 2 pairs
// positions 0-1, 2-3, ... of the draw order, a uniformly random
// permutation of the tickets, and phase 3 has nothing to do: the matching
// is uniformly random among all perfect matchings (one ticket unmatched
// when the count is odd).
func Match(seed [32]byte, tickets []*Ticket) (pairs []Pair, unmatched []*Ticket) {
	ents := make([]entry, 0, len(tickets))
	seen := make(map[[32]byte]struct{}, len(tickets))
	for _, t := range tickets {
		id := t.ID()
		if _, dup := seen[id]; dup {
			continue
		}
		seen[id] = struct{}{}
		ents = append(ents, entry{t: t, id: id})
	}
	return match(seed, ents)
}

// match is Match over tickets with known, distinct IDs.
func match(seed [32]byte, ents []entry) ([]Pair, []*Ticket) {
	// Sort small records (the order key's first 8 bytes and an index)
	// rather than the entries themselves; equal prefixes fall back to the
	// whole key, then the ID.
	type rec struct {
		prefix uint64
		i      int32
	}
	recs := make([]rec, len(ents))
	for i := range ents {
		ents[i].order = wire.Hash(wire.LabelLotteryOrder, seed[:], ents[i].id[:])
		recs[i] = rec{binary.BigEndian.Uint64(ents[i].order[:8]), int32(i)}
	}
	slices.SortFunc(recs, func(a, b rec) int {
		if a.prefix != b.prefix {
			return cmp.Compare(a.prefix, b.prefix)
		}
		x, y := &ents[a.i], &ents[b.i]
		if c := bytes.Compare(x.order[:], y.order[:]); c != 0 {
			return c
		}
		return bytes.Compare(x.id[:], y.id[:])
	})
	sorted := make([]entry, len(ents))
	for k, r := range recs {
		sorted[k] = ents[r.i]
	}
	ents = sorted
	n := len(ents)
	// mate[p] is the draw position of p's partner, or -1.
	mate := make([]int32, n)
	for i := range mate {
		mate[i] = -1
	}
	var cands []int32

	// Phase 1: interests. One waiting list per interest tag.
	waitingFor := map[Tag]*queue{}
	for p := range n {
		t := ents[p].t
		if len(t.Interests) == 0 {
			continue
		}
		cands = cands[:0]
		for _, tag := range t.Interests {
			if q := waitingFor[tag]; q != nil {
				cands = q.live(mate, MaxScan, cands)
			}
		}
		// The MaxScan earliest waiting tickets sharing a tag: each list
		// gave its MaxScan earliest, so their union holds them.
		slices.Sort(cands)
		cands = slices.Compact(cands)
		if len(cands) > MaxScan {
			cands = cands[:MaxScan]
		}
		if c, ok := firstCompatible(ents, t, cands); ok {
			mate[p], mate[c] = c, int32(p)
			continue
		}
		for _, tag := range t.Interests {
			q := waitingFor[tag]
			if q == nil {
				q = &queue{}
				waitingFor[tag] = q
			}
			q.push(p)
		}
	}

	// Phase 2: everyone left, one waiting list.
	type made struct {
		early, late int32 // the waiting ticket, the ticket that took it
		split       bool  // broken up by phase 3
	}
	var phase2 []made
	var waiting queue
	for p := range n {
		if mate[p] >= 0 {
			continue
		}
		cands = waiting.live(mate, MaxScan, cands[:0])
		if c, ok := firstCompatible(ents, ents[p].t, cands); ok {
			mate[p], mate[c] = c, int32(p)
			phase2 = append(phase2, made{early: c, late: int32(p)})
			continue
		}
		waiting.push(p)
	}

	// Phase 3: repair. Two tickets left waiting (typically because they
	// may not meet each other) can both be paired by splitting a phase-2
	// pair (x, y) into (u, x) and (v, y), or (u, y) and (v, x).
	var left []int32
	for p := range n {
		if mate[p] < 0 {
			left = append(left, int32(p))
		}
	}
	compatible := func(a, b int32) bool { return Compatible(ents[a].t, ents[b].t) }
	for i := 0; i < len(left) && i < MaxScan; i++ {
		u := left[i]
		if mate[u] >= 0 {
			continue
		}
		repaired := false
		vs := 0
		for _, v := range left[i+1:] {
			if repaired {
				break
			}
			if mate[v] >= 0 {
				continue
			}
			if vs++; vs > MaxScan {
				break
			}
			cs := 0
			for k := range phase2 {
				m := &phase2[k]
				if m.split {
					continue
				}
				if cs++; cs > MaxScan {
					break
				}
				x, y := m.early, m.late
				if !compatible(u, x) || !compatible(v, y) {
					x, y = y, x
					if !compatible(u, x) || !compatible(v, y) {
						continue
					}
				}
				m.split = true
				mate[u], mate[x] = x, u
				mate[v], mate[y] = y, v
				repaired = true
				break
			}
		}
	}

	pairs := make([]Pair, 0, n/2)
	var unmatched []*Ticket
	for p := range n {
		switch m := mate[p]; {
		case m < 0:
			unmatched = append(unmatched, ents[p].t)
		case int(m) > p:
			pairs = append(pairs, newPair(ents[p].id, ents[m].id))
		}
	}
	if len(pairs) == 0 {
		return nil, unmatched
	}
	slices.SortFunc(pairs, comparePairs)
	return pairs, unmatched
}

func firstCompatible(ents []entry, t *Ticket, cands []int32) (int32, bool) {
	for _, c := range cands {
		if Compatible(t, ents[c].t) {
			return c, true
		}
	}
	return 0, false
}

// queue is a waiting list of draw positions in ascending order. Paired
// tickets are removed lazily, when a scan passes them.
type queue struct {
	items []int32
	head  int
}

func (q *queue) push(p int) { q.items = append(q.items, int32(p)) }

// live appends to out the first k positions in q not yet paired (mate
// -1), and drops the paired ones it passes, so each is passed at most once.
func (q *queue) live(mate []int32, k int, out []int32) []int32 {
	start := len(out)
	i := q.head
	for ; i < len(q.items) && len(out)-start < k; i++ {
		if p := q.items[i]; mate[p] < 0 {
			out = append(out, p)
		}
	}
	got := out[start:]
	q.head = i - len(got)
	copy(q.items[q.head:i], got)
	return out
}
