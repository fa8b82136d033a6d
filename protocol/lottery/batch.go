package lottery

import (
	"fmt"

	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/stamp"
	"github.com/parley-chat/parley/protocol/wire"
)

// BatchVersion is the encoding version of a TicketBatch.
const BatchVersion = 1

// TicketBatch is one node's tickets for one epoch as it gossips them
// (spec 07-lottery §13.2): exactly one stamp batch, whole and in order, so
// the batch needs no signature of its own and nobody but its node can make
// a different valid batch for the same epoch.
type TicketBatch struct {
	Epoch   uint64
	Node    keys.NodeID
	Tickets []*Ticket // 1 to wire.MaxTicketBatch, stamp indices 0, 1, ...
}

// MarshalBinary returns the batch's canonical encoding: u8 version, u64
// epoch, the node (32), a u16 ticket count, then each ticket's encoding
// (§3.2) with a u16 length prefix. It fails with ErrBadTicket if a ticket
// cannot be encoded or the count is out of range.
func (b *TicketBatch) MarshalBinary() ([]byte, error) {
	if n := len(b.Tickets); n == 0 || n > wire.MaxTicketBatch {
		return nil, fmt.Errorf("%w: batch of %d tickets (want 1 to %d)", ErrBadTicket, n, wire.MaxTicketBatch)
	}
	e := wire.NewEncoder(1 + 8 + 32 + 2 + len(b.Tickets)*(2+MaxTicketSize))
	e.U8(BatchVersion)
	e.U64(b.Epoch)
	e.Fixed(b.Node[:])
	e.Count(len(b.Tickets))
	for i, t := range b.Tickets {
		enc, err := t.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("ticket %d: %w", i, err)
		}
		e.Bytes16(enc)
	}
	return e.Bytes(), nil
}

// ParseTicketBatch decodes a ticket batch and checks its structure: at most
// wire.MaxTicketBatchSize bytes (checked first), 1 to wire.MaxTicketBatch
// tickets, every ticket for the batch's epoch and home node, stamped by that
// node, and the stamps one batch: the same time, count (the ticket count)
// and signature, indices 0, 1, ... in order. It does not check the
// signature: see Verify. Every error is a *wire.ParseError.
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
	n := d.Field("tickets").Count(wire.MaxTicketBatch, 2+leafFixedSize+1)
	if d.Err() == nil && n == 0 {
		d.Fail("no tickets")
	}
	for i := 0; i < n && d.Err() == nil; i++ {
		enc := d.Field("ticket").Bytes16(MaxTicketSize)
		if d.Err() != nil {
			break
		}
		t, err := ParseTicket(enc)
		if err != nil {
			d.Fail("ticket %d: %v", i, err)
			break
		}
		if reason := batchMember(tb, t, i, n); reason != "" {
			d.Fail("ticket %d: %s", i, reason)
			break
		}
		tb.Tickets = append(tb.Tickets, t)
	}
	if err := d.Finish(); err != nil {
		return nil, err
	}
	return tb, nil
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
// ErrBadTicket. A batch from ParseTicketBatch has a consistent structure;
// Verify also checks one built in memory.
func (b *TicketBatch) Verify() error {
	n := len(b.Tickets)
	if n == 0 || n > wire.MaxTicketBatch {
		return fmt.Errorf("%w: batch of %d tickets (want 1 to %d)", ErrBadTicket, n, wire.MaxTicketBatch)
	}
	var root [32]byte
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
		if (t.Stamp == nil) != (u.Stamp == nil) || (t.Stamp != nil && t.Stamp.Time != u.Stamp.Time) || t.ID() != u.ID() {
			return false
		}
	}
	return true
}
