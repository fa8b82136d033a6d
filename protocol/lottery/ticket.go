package lottery

import (
	"bytes"
	"fmt"
	"slices"
	"time"

	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/stamp"
	"github.com/parley-chat/parley/protocol/wire"
)

// TicketVersion is the encoding version of a Ticket.
const TicketVersion = 1

// MaxTicketSize is the length of the longest valid ticket encoding, in
// bytes: wire.MaxInterestTags and wire.MaxAvoidTags tags and a stamp with a
// wire.MaxStampPath path (spec 07-lottery §3.2). A node can bound a
// ticket's read with it before parsing.
const MaxTicketSize = leafFixedSize + tagSize*(wire.MaxInterestTags+wire.MaxAvoidTags) +
	1 + (1 + 32 + 8 + 4 + 4 + 1 + 32*wire.MaxStampPath + keys.SignatureSize)

const (
	tagSize = len(Tag{})
	// leafFixedSize is a leaf without tags: version, epoch, home, the two
	// keys and the two tag counts.
	leafFixedSize = 1 + 8 + 32 + 32 + 32 + 2 + 2
)

// Ticket is one user's entry in one epoch's lottery (spec 07-lottery §3).
// It carries no account name: only the home node can map it to an account.
type Ticket struct {
	Epoch     uint64
	Home      keys.NodeID       // the node that issued and stamped the ticket
	Keys      keys.TicketPublic // the user's fresh keys for this pairing
	Interests []Tag             // strictly ascending, at most wire.MaxInterestTags
	Avoid     []Tag             // strictly ascending, at most wire.MaxAvoidTags
	Stamp     *stamp.Stamp      // the home node's stamp over Leaf; nil until stamped
}

// check reports whether the ticket can be encoded canonically.
func (t *Ticket) check() error {
	if err := checkTags("interest", t.Interests, wire.MaxInterestTags); err != nil {
		return err
	}
	return checkTags("avoid", t.Avoid, wire.MaxAvoidTags)
}

func checkTags(what string, tags []Tag, limit int) error {
	if len(tags) > limit {
		return fmt.Errorf("%w: %d %s tags, limit %d", ErrBadTicket, len(tags), what, limit)
	}
	for i := 1; i < len(tags); i++ {
		if bytes.Compare(tags[i-1][:], tags[i][:]) >= 0 {
			return fmt.Errorf("%w: %s tags not strictly ascending", ErrBadTicket, what)
		}
	}
	return nil
}

func (t *Ticket) appendLeaf(e *wire.Encoder) {
	e.U8(TicketVersion)
	e.U64(t.Epoch)
	e.Fixed(t.Home[:])
	e.Fixed(t.Keys.Sign[:])
	e.Fixed(t.Keys.DH[:])
	for _, tags := range [][]Tag{t.Interests, t.Avoid} {
		e.Count(len(tags))
		for i := range tags {
			e.Fixed(tags[i][:])
		}
	}
}

// Leaf returns the ticket's encoding without its stamp (spec 07-lottery
// §3.1): what the home node stamps and what the ticket ID hashes. The
// ticket must be canonical (see Normalize).
func (t *Ticket) Leaf() []byte {
	e := wire.NewEncoder(leafFixedSize + tagSize*(len(t.Interests)+len(t.Avoid)))
	t.appendLeaf(e)
	return e.Bytes()
}

// ID returns the ticket's identity, H("parley/v1/ticket", Leaf()). The
// stamp is not part of it.
func (t *Ticket) ID() [32]byte { return wire.Hash(wire.LabelTicket, t.Leaf()) }

// Normalize sorts the tags and removes repeats, as the encoding requires.
// It does not enforce the tag limits.
func (t *Ticket) Normalize() {
	t.Interests = sortTags(t.Interests)
	t.Avoid = sortTags(t.Avoid)
}

func sortTags(tags []Tag) []Tag {
	if len(tags) == 0 {
		return nil
	}
	out := slices.Clone(tags)
	slices.SortFunc(out, func(a, b Tag) int { return bytes.Compare(a[:], b[:]) })
	return slices.Compact(out)
}

// MarshalBinary returns the ticket's canonical encoding (spec 07-lottery
// §3.2): the leaf, then the stamp as an optional field. It fails with
// ErrBadTicket if the tags are over their limits or not strictly ascending.
func (t *Ticket) MarshalBinary() ([]byte, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	e := wire.NewEncoder(MaxTicketSize)
	t.appendLeaf(e)
	if t.Stamp == nil {
		e.U8(0)
	} else {
		e.U8(1)
		t.Stamp.Append(e)
	}
	return e.Bytes(), nil
}

// ParseTicket decodes a ticket. It checks the structure (limits, tag order,
// the stamp's shape), not the stamp's signature: see Verify. Every error is
// a *wire.ParseError.
func ParseTicket(b []byte) (*Ticket, error) {
	d := wire.NewDecoder("ticket", b)
	if len(b) > MaxTicketSize {
		d.Fail("%d bytes, longer than the longest ticket (%d)", len(b), MaxTicketSize)
		return nil, d.Err()
	}
	t := &Ticket{}
	d.Version(TicketVersion)
	t.Epoch = d.Field("epoch").U64()
	d.Field("home").Fixed(t.Home[:])
	d.Field("sign_key").Fixed(t.Keys.Sign[:])
	d.Field("dh_key").Fixed(t.Keys.DH[:])
	t.Interests = readTags(d.Field("interests"), wire.MaxInterestTags)
	t.Avoid = readTags(d.Field("avoid"), wire.MaxAvoidTags)
	switch d.Field("stamp").U8() {
	case 0:
	case 1:
		s := stamp.Read(d)
		t.Stamp = &s
	default:
		d.Fail("presence byte must be 0 or 1")
	}
	if err := d.Finish(); err != nil {
		return nil, err
	}
	return t, nil
}

// readTags reads a list of strictly ascending tags of at most limit items.
func readTags(d *wire.Decoder, limit int) []Tag {
	n := d.Count(limit, tagSize)
	if n == 0 {
		return nil
	}
	tags := make([]Tag, n)
	for i := range tags {
		d.Fixed(tags[i][:])
		if i > 0 && d.Err() == nil && bytes.Compare(tags[i-1][:], tags[i][:]) >= 0 {
			d.Fail("tags not strictly ascending")
		}
	}
	return tags
}

// StampTickets stamps a batch of tickets, typically all of one epoch's
// tickets of the node, with one signature by their home node k at time now
// (spec 07-lottery §3.3). Every ticket's Home must be k's ID. Tags are
// normalised first; a ticket over the tag limits fails with ErrBadTicket.
// A batch holds 1 to wire.MaxStampBatch tickets. On error no ticket is
// changed.
func StampTickets(k keys.NodeKey, now time.Time, ts []*Ticket) error {
	node := k.Public()
	leaves := make([][]byte, len(ts))
	normal := make([]Ticket, len(ts))
	for i, t := range ts {
		if t.Home != node {
			return fmt.Errorf("%w: ticket %d names home %s, not the stamping node %s", ErrBadTicket, i, t.Home, node)
		}
		normal[i] = *t
		normal[i].Normalize()
		if err := normal[i].check(); err != nil {
			return fmt.Errorf("ticket %d: %w", i, err)
		}
		leaves[i] = normal[i].Leaf()
	}
	stamps, err := stamp.Sign(k, wire.LabelTicket, now, leaves)
	if err != nil {
		return fmt.Errorf("lottery: stamping tickets: %w", err)
	}
	for i, t := range ts {
		t.Interests, t.Avoid = normal[i].Interests, normal[i].Avoid
		t.Stamp = &stamps[i]
	}
	return nil
}

// Verify checks that the ticket is canonical and that its stamp is its home
// node's stamp of its leaf (spec 07-lottery §3.3). Errors match
// ErrBadTicket.
func (t *Ticket) Verify() error {
	if err := t.check(); err != nil {
		return err
	}
	if t.Stamp == nil {
		return fmt.Errorf("%w: not stamped", ErrBadTicket)
	}
	if err := stamp.Verify(t.Home, wire.LabelTicket, t.Leaf(), t.Stamp); err != nil {
		return fmt.Errorf("%w: %w", ErrBadTicket, err)
	}
	return nil
}
