package lottery

import (
	"bytes"
	"fmt"

	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/wire"
)

// EquivocationVersion is the encoding version of an Equivocation.
const EquivocationVersion = 1

// EquivocationKind says what a node signed twice.
type EquivocationKind uint8

// Kinds of equivocation (spec 07-lottery §13.3).
const (
	// EquivocatedCommit: two commits for one epoch with different values.
	EquivocatedCommit EquivocationKind = 1
	// EquivocatedTickets: two ticket batches for one epoch; the proof
	// holds one ticket of each, stamped in two different batches.
	EquivocatedTickets EquivocationKind = 2
)

func (k EquivocationKind) String() string {
	switch k {
	case EquivocatedCommit:
		return "commit"
	case EquivocatedTickets:
		return "tickets"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// MaxEquivocationSize is the length of the longest Equivocation encoding.
const MaxEquivocationSize = 1 + 8 + 32 + 1 + 2*(2+MaxTicketSize)

// Equivocation is proof that Node signed two conflicting messages for
// Epoch (spec 07-lottery §13.3): First and Second are the encodings of two
// commits with different values, or of two tickets of Node for Epoch from
// two different stamp batches. Each verifies on its own, so anyone can
// check the proof with Verify and nothing else.
type Equivocation struct {
	Epoch  uint64
	Node   keys.NodeID
	Kind   EquivocationKind
	First  []byte
	Second []byte
}

// Verify checks the proof: both messages decode, are for e.Epoch and
// e.Node, carry e.Node's valid signatures, and conflict (two commit
// values, or two ticket stamps of different batches). Errors match
// ErrBadSignature, ErrBadTicket or ErrNotEquivocation, or are a
// *wire.ParseError.
func (e *Equivocation) Verify() error {
	switch e.Kind {
	case EquivocatedCommit:
		a, err := ParseCommit(e.First)
		if err != nil {
			return err
		}
		b, err := ParseCommit(e.Second)
		if err != nil {
			return err
		}
		for _, c := range []*Commit{a, b} {
			if c.Epoch != e.Epoch || c.Node != e.Node {
				return fmt.Errorf("%w: a commit of another epoch or node", ErrNotEquivocation)
			}
			if err := c.Verify(); err != nil {
				return err
			}
		}
		if a.Value == b.Value {
			return fmt.Errorf("%w: both commits carry one value", ErrNotEquivocation)
		}
		return nil
	case EquivocatedTickets:
		a, err := ParseTicket(e.First)
		if err != nil {
			return err
		}
		b, err := ParseTicket(e.Second)
		if err != nil {
			return err
		}
		var roots [2][32]byte
		for i, t := range []*Ticket{a, b} {
			if t.Epoch != e.Epoch || t.Home != e.Node {
				return fmt.Errorf("%w: a ticket of another epoch or node", ErrNotEquivocation)
			}
			if err := t.Verify(); err != nil {
				return err
			}
			roots[i], _ = t.Stamp.Root(wire.LabelTicket, t.Leaf()) // Verify checked it
		}
		if roots[0] == roots[1] && a.Stamp.Time == b.Stamp.Time && a.Stamp.Count == b.Stamp.Count {
			return fmt.Errorf("%w: both tickets are of one batch", ErrNotEquivocation)
		}
		return nil
	}
	return fmt.Errorf("%w: unknown kind %d", ErrNotEquivocation, e.Kind)
}

// MarshalBinary returns the proof's encoding: u8 version, u64 epoch, the
// node (32), u8 kind, then First and Second with u16 length prefixes.
func (e *Equivocation) MarshalBinary() ([]byte, error) {
	if len(e.First) > MaxTicketSize || len(e.Second) > MaxTicketSize {
		return nil, fmt.Errorf("%w: a message longer than %d bytes", ErrNotEquivocation, MaxTicketSize)
	}
	enc := wire.NewEncoder(1 + 8 + 32 + 1 + 4 + len(e.First) + len(e.Second))
	enc.U8(EquivocationVersion)
	enc.U64(e.Epoch)
	enc.Fixed(e.Node[:])
	enc.U8(uint8(e.Kind))
	enc.Bytes16(e.First)
	enc.Bytes16(e.Second)
	return enc.Bytes(), nil
}

// ParseEquivocation decodes a proof: at most MaxEquivocationSize bytes,
// version 1, kind 1 or 2, two messages of at most MaxTicketSize bytes that
// differ. It does not verify the proof. Every error is a *wire.ParseError.
func ParseEquivocation(b []byte) (*Equivocation, error) {
	d := wire.NewDecoder("equivocation", b)
	if len(b) > MaxEquivocationSize {
		d.Fail("%d bytes, limit %d", len(b), MaxEquivocationSize)
		return nil, d.Err()
	}
	e := &Equivocation{}
	d.Version(EquivocationVersion)
	e.Epoch = d.Field("epoch").U64()
	d.Field("node").Fixed(e.Node[:])
	e.Kind = EquivocationKind(d.Field("kind").U8())
	if d.Err() == nil && e.Kind != EquivocatedCommit && e.Kind != EquivocatedTickets {
		d.Fail("kind %d, want 1 or 2", e.Kind)
	}
	e.First = bytes.Clone(d.Field("first").Bytes16(MaxTicketSize))
	e.Second = bytes.Clone(d.Field("second").Bytes16(MaxTicketSize))
	if d.Err() == nil && bytes.Equal(e.First, e.Second) {
		d.Fail("both messages are the same")
	}
	if err := d.Finish(); err != nil {
		return nil, err
	}
	return e, nil
}
