package lottery

import (
	"bytes"
	"crypto/sha256"
	"fmt"

	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/stamp"
	"github.com/parley-chat/parley/protocol/wire"
)

// BatchVersion is the encoding version of a TicketBatch. Version 2 sends
// the batch's stamp once and each ticket's keys and tags, not each
// ticket's whole stamp (its Merkle path follows from the other tickets).
const BatchVersion = 2

// Sizes of a ticket batch's encoding (spec 07-lottery §13.2), in bytes.
const (
	// batchHeaderSize: u8 version, u64 epoch, node, i64 stamp time,
	// signature, u16 count.
	batchHeaderSize = 1 + 8 + 32 + 8 + keys.SignatureSize + 2
	// batchItemMin: the two keys and two empty tag lists.
	batchItemMin = 32 + 32 + 2 + 2
)

// TicketBatch is one node's tickets for one epoch as it gossips them
// (spec 07-lottery §13.2): exactly one stamp batch, whole and in order, so
// the batch needs no signature of its own and nobody but its node can make
// a different valid batch for the same epoch.
type TicketBatch struct {
	Epoch   uint64
	Node    keys.NodeID
	Tickets []*Ticket // 1 to wire.MaxTicketBatch, stamp indices 0, 1, ...

	// root is the Merkle root ParseTicketBatch computed while rebuilding
	// the stamps (so Verify need not walk every path again); zero
	// otherwise.
	root [32]byte
}

// MarshalBinary returns the batch's canonical encoding: u8 version (2),
// u64 epoch, the node (32), the stamp's i64 time and signature (64), a u16
// ticket count, then for each ticket in stamp order its sign key, DH key,
// and interest and avoid tags (u16 count, then the tags). It fails with
// ErrBadTicket if the count is out of range, a ticket cannot be encoded, or
// the tickets are not one whole stamp batch of the node for the epoch, in
// order.
func (b *TicketBatch) MarshalBinary() ([]byte, error) {
	n := len(b.Tickets)
	if n == 0 || n > wire.MaxTicketBatch {
		return nil, fmt.Errorf("%w: batch of %d tickets (want 1 to %d)", ErrBadTicket, n, wire.MaxTicketBatch)
	}
	e := wire.NewEncoder(batchHeaderSize + n*batchItemMin)
	for i, t := range b.Tickets {
		if err := t.check(); err != nil {
			return nil, fmt.Errorf("ticket %d: %w", i, err)
		}
		if reason := batchMember(b, t, i, n); reason != "" {
			return nil, fmt.Errorf("%w: ticket %d: %s", ErrBadTicket, i, reason)
		}
	}
	s := b.Tickets[0].Stamp
	e.U8(BatchVersion)
	e.U64(b.Epoch)
	e.Fixed(b.Node[:])
	e.I64(s.Time)
	e.Fixed(s.Sig[:])
	e.Count(n)
	for _, t := range b.Tickets {
		e.Fixed(t.Keys.Sign[:])
		e.Fixed(t.Keys.DH[:])
		for _, tags := range [][]Tag{t.Interests, t.Avoid} {
			e.Count(len(tags))
			for i := range tags {
				e.Fixed(tags[i][:])
			}
		}
	}
	return e.Bytes(), nil
}

// ParseTicketBatch decodes a ticket batch: at most wire.MaxTicketBatchSize
// bytes (checked first), version 2, 1 to wire.MaxTicketBatch tickets, tags
// within their limits and strictly ascending, no trailing bytes. It
// rebuilds each ticket (the batch's epoch and node as its epoch and home)
// with its stamp (the batch's time and signature, index i of the count,
// the Merkle path over the tickets' leaves, spec 04-stamps). It does not
// check the signature: see Verify. Every error is a *wire.ParseError.
func ParseTicketBatch(b []byte) (*TicketBatch, error) {
	d := wire.NewDecoder("ticket batch", b)
	if len(b) > wire.MaxTicketBatchSize {
		d.Fail("%d bytes, limit %d", len(b), wire.MaxTicketBatchSize)
		return nil, d.Err()
	}
	tb := &TicketBatch{}
	d.Version(BatchVersion)
	tb.Epoch = d.Field("epoch").U64()
	d.Field("node").Fixed(tb.Node[:])
	ms := d.Field("time").I64()
	var sig keys.Signature
	d.Field("signature").Fixed(sig[:])
	n := d.Field("tickets").Count(wire.MaxTicketBatch, batchItemMin)
	if d.Err() == nil && n == 0 {
		d.Fail("no tickets")
	}
	ts := make([]Ticket, n)
	for i := 0; i < n && d.Err() == nil; i++ {
		t := &ts[i]
		t.Epoch, t.Home = tb.Epoch, tb.Node
		d.Field("sign_key").Fixed(t.Keys.Sign[:])
		d.Field("dh_key").Fixed(t.Keys.DH[:])
		t.Interests = readTags(d.Field("interests"), wire.MaxInterestTags)
		t.Avoid = readTags(d.Field("avoid"), wire.MaxAvoidTags)
	}
	if err := d.Finish(); err != nil {
		return nil, err
	}
	leaves := make([][]byte, n)
	for i := range ts {
		leaves[i] = ts[i].Leaf()
	}
	stamps, root := rebuildStamps(tb.Node, ms, sig, leaves)
	tb.Tickets = make([]*Ticket, n)
	for i := range ts {
		ts[i].Stamp = &stamps[i]
		tb.Tickets[i] = &ts[i]
	}
	tb.root = root
	return tb, nil
}

// rebuildStamps returns the stamps of a batch of leaves signed by node at
// time ms with signature sig, and the batch's Merkle root: the tree of
// spec 04-stamps §2, as stamp.Sign builds it (leaves paired left to right
// at each level, an unpaired last node carried up unchanged).
func rebuildStamps(node keys.NodeID, ms int64, sig keys.Signature, leaves [][]byte) ([]stamp.Stamp, [32]byte) {
	n := len(leaves)
	// One SHA-256 state and the labeled prefixes built once: the values of
	// stamp.LeafHash and the stamp tree's node hash (TestTicketBatch checks
	// the root against the node's signature).
	h := sha256.New()
	var purpose wire.Encoder
	purpose.String16(wire.LabelTicket)
	leafPrefix, nodePrefix := wire.Labeled(wire.LabelStampLeaf, purpose.Bytes()), wire.Labeled(wire.LabelStampNode)
	level := make([][32]byte, n)
	for i, l := range leaves {
		h.Reset()
		h.Write(leafPrefix)
		h.Write(l)
		h.Sum(level[i][:0])
	}
	levels := [][][32]byte{level}
	for len(level) > 1 {
		next := make([][32]byte, (len(level)+1)/2)
		for i := range next {
			if 2*i+1 < len(level) {
				h.Reset()
				h.Write(nodePrefix)
				h.Write(level[2*i][:])
				h.Write(level[2*i+1][:])
				h.Sum(next[i][:0])
			} else {
				next[i] = level[2*i]
			}
		}
		levels = append(levels, next)
		level = next
	}
	depth := len(levels) - 1
	backing := make([][32]byte, n*depth)
	stamps := make([]stamp.Stamp, n)
	for i := range stamps {
		path := backing[i*depth : i*depth : (i+1)*depth]
		idx := i
		for _, lv := range levels[:depth] {
			if sib := idx ^ 1; sib < len(lv) {
				path = append(path, lv[sib])
			}
			idx /= 2
		}
		stamps[i] = stamp.Stamp{Node: node, Time: ms, Index: uint32(i), Count: uint32(n), Path: path, Sig: sig}
	}
	return stamps, level[0]
}

// batchMember reports why t cannot be ticket i of n in b, or "".
func batchMember(b *TicketBatch, t *Ticket, i, n int) string {
	s := t.Stamp
	switch {
	case t.Epoch != b.Epoch:
		return fmt.Sprintf("epoch %d, batch epoch %d", t.Epoch, b.Epoch)
	case t.Home != b.Node:
		return "home is not the batch's node"
	case s == nil:
		return "not stamped"
	case s.Node != b.Node:
		return "stamped by another node"
	case s.Index != uint32(i) || s.Count != uint32(n):
		return fmt.Sprintf("stamp index %d of %d, want %d of %d", s.Index, s.Count, i, n)
	case i > 0 && (s.Time != b.Tickets[0].Stamp.Time || s.Sig != b.Tickets[0].Stamp.Sig):
		return "stamp of another batch"
	}
	return ""
}

// Verify checks that the batch's stamps are its node's one signature over
// its tickets (spec 04-stamps §4), with one signature check. Errors match
// ErrBadTicket. For a batch from ParseTicketBatch it checks the signature
// over the root computed there; for one built in memory it also checks
// every ticket's structure and path.
func (b *TicketBatch) Verify() error {
	n := len(b.Tickets)
	if n == 0 || n > wire.MaxTicketBatch {
		return fmt.Errorf("%w: batch of %d tickets (want 1 to %d)", ErrBadTicket, n, wire.MaxTicketBatch)
	}
	root := b.root
	if root == ([32]byte{}) {
		for i, t := range b.Tickets {
			if err := t.check(); err != nil {
				return fmt.Errorf("ticket %d: %w", i, err)
			}
			if reason := batchMember(b, t, i, n); reason != "" {
				return fmt.Errorf("%w: ticket %d: %s", ErrBadTicket, i, reason)
			}
			r, err := t.Stamp.Root(wire.LabelTicket, t.Leaf())
			if err != nil {
				return fmt.Errorf("%w: ticket %d: %w", ErrBadTicket, i, err)
			}
			if i > 0 && r != root {
				return fmt.Errorf("%w: ticket %d: its path leads to another root", ErrBadTicket, i)
			}
			root = r
		}
	}
	if err := stamp.VerifyRoot(b.Node, wire.LabelTicket, root, b.Tickets[0].Stamp); err != nil {
		return fmt.Errorf("%w: %w", ErrBadTicket, err)
	}
	return nil
}

// Same reports whether b and o hold the same tickets in the same order,
// stamped at the same time, for the same node and epoch (their signatures
// may differ only if the node signed the same batch twice). Two valid
// batches of one node and epoch that are not the same are an
// equivocation: the node stamped two ticket batches for the epoch.
func (b *TicketBatch) Same(o *TicketBatch) bool {
	if b.Node != o.Node || b.Epoch != o.Epoch || len(b.Tickets) != len(o.Tickets) {
		return false
	}
	for i, t := range b.Tickets {
		u := o.Tickets[i]
		if (t.Stamp == nil) != (u.Stamp == nil) || (t.Stamp != nil && t.Stamp.Time != u.Stamp.Time) ||
			!bytes.Equal(t.Leaf(), u.Leaf()) {
			return false
		}
	}
	return true
}
