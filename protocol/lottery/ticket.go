// Package lottery implements Parley's pairing lottery (spec 07-lottery):
// tickets, the commit-then-reveal epoch seed, the deterministic matching,
// and the audit of a past epoch.
//
// Nobody chooses who meets whom. A user who wants a partner gets a Ticket
// from its home node (fresh room keys, optional interest and avoid tags, no
// account name); the node stamps its tickets for the epoch in one batch.
// Every node commits to a random value before tickets close and reveals it
// after; the epoch's Seed hashes the valid reveals, so no one knows it while
// tickets can still be added. Every node then computes the same Match from
// (seed, ticket set); Draw does all of this for one epoch and Audit checks
// a set of confirmed pairs against it.
package lottery

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/stamp"
	"github.com/parley-chat/parley/protocol/wire"
)

// TicketVersion is the encoding version of a Ticket.
const TicketVersion = 1

// Errors.
var (
	// ErrBadTicket: a ticket's stamp does not verify against its home node,
	// or StampTickets was given tickets of another home node.
	ErrBadTicket = errors.New("lottery: bad ticket")
	// ErrNoReveals: no node gave a valid reveal, so the epoch has no seed.
	ErrNoReveals = errors.New("lottery: no valid reveals")
	// ErrBadMessage: a commit or reveal message's signature does not verify.
	ErrBadMessage = errors.New("lottery: bad signature on lottery message")
)

// Tag is an opaque 16-byte interest or avoid tag.
type Tag [16]byte

// InterestTag returns the tag of an interest (spec 07-lottery §1): the text
// is trimmed and lower-cased (strings.ToLower, Unicode simple case mapping),
// then hashed, so nodes see which tickets share an interest but not, without
// guessing, which interest it is.
func InterestTag(text string) Tag {
	h := wire.Hash(wire.LabelInterestTag, []byte(strings.ToLower(strings.TrimSpace(text))))
	var t Tag
	copy(t[:], h[:])
	return t
}

// AvoidTag returns the avoid tag for epoch from a room's avoid key (spec
// 07-lottery §1, 06-room-keys §2.3): HMAC-SHA256(avoidKey,
// Labeled("parley/v1/avoid-tag", u64 epoch)) truncated to 16 bytes. Both
// users of a room they left compute the same tag and put it in their next
// tickets; the matching never pairs two tickets that share an avoid tag.
// Without the key, tags of different epochs cannot be linked.
func AvoidTag(avoidKey [32]byte, epoch uint64) Tag {
	var e [8]byte
	binary.BigEndian.PutUint64(e[:], epoch)
	m := hmac.New(sha256.New, avoidKey[:])
	m.Write(wire.Labeled(wire.LabelAvoidTag, e[:]))
	var t Tag
	copy(t[:], m.Sum(nil))
	return t
}

// Ticket is one user's entry in one epoch's lottery.
type Ticket struct {
	Epoch     uint64
	Home      keys.NodeID       // the node that issued and stamped the ticket
	Keys      keys.TicketPublic // the user's fresh room keys
	Interests []Tag             // sorted, unique, at most wire.MaxInterestTags
	Avoid     []Tag             // sorted, unique, at most wire.MaxAvoidTags
	Stamp     *stamp.Stamp      // the home node's stamp; nil until stamped
}

// appendLeaf appends the ticket's encoding without the stamp: the stamp's
// leaf and the input of the ticket ID.
func (t *Ticket) appendLeaf(e *wire.Encoder) {
	e.U8(TicketVersion)
	e.U64(t.Epoch)
	e.Fixed(t.Home[:])
	e.Fixed(t.Keys.Sign[:])
	e.Fixed(t.Keys.DH[:])
	e.U8(uint8(len(t.Interests)))
	for i := range t.Interests {
		e.Fixed(t.Interests[i][:])
	}
	e.U8(uint8(len(t.Avoid)))
	for i := range t.Avoid {
		e.Fixed(t.Avoid[i][:])
	}
}

// Leaf returns the ticket's encoding without its stamp (spec 07-lottery §2).
func (t *Ticket) Leaf() []byte {
	e := wire.NewEncoder(1 + 8 + 96 + 2 + 16*(len(t.Interests)+len(t.Avoid)))
	t.appendLeaf(e)
	return e.Bytes()
}

// ID is the ticket's identity: H("parley/v1/ticket", leaf).
func (t *Ticket) ID() [32]byte { return wire.Hash(wire.LabelTicket, t.Leaf()) }

// Normalize sorts and de-duplicates the tags, as the encoding requires.
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

// MarshalBinary returns the ticket's canonical encoding: the leaf, then a
// presence byte and the stamp.
func (t *Ticket) MarshalBinary() ([]byte, error) {
	e := wire.NewEncoder(256)
	t.Append(e)
	return e.Bytes(), nil
}

// Append appends the ticket's canonical encoding to e.
func (t *Ticket) Append(e *wire.Encoder) {
	t.appendLeaf(e)
	if t.Stamp == nil {
		e.U8(0)
		return
	}
	e.U8(1)
	t.Stamp.Append(e)
}

// ReadTicket decodes a ticket from d.
func ReadTicket(d *wire.Decoder) *Ticket {
	t := &Ticket{}
	d.Version(TicketVersion)
	t.Epoch = d.Field("epoch").U64()
	d.Field("home").Fixed(t.Home[:])
	d.Field("sign_key").Fixed(t.Keys.Sign[:])
	d.Field("dh_key").Fixed(t.Keys.DH[:])
	t.Interests = readTags(d, "interests", wire.MaxInterestTags)
	t.Avoid = readTags(d, "avoid", wire.MaxAvoidTags)
	switch d.Field("stamp_present").U8() {
	case 0:
	case 1:
		s := stamp.Read(d)
		t.Stamp = &s
	default:
		d.Fail("presence byte must be 0 or 1")
	}
	return t
}

func readTags(d *wire.Decoder, field string, limit int) []Tag {
	n := int(d.Field(field).U8())
	if d.Err() != nil {
		return nil
	}
	if n > limit {
		d.Fail("%d tags exceed limit %d", n, limit)
		return nil
	}
	if n == 0 {
		return nil
	}
	tags := make([]Tag, n)
	for i := range tags {
		d.Fixed(tags[i][:])
		if i > 0 && d.Err() == nil && bytes.Compare(tags[i-1][:], tags[i][:]) >= 0 {
			d.Fail("tags not sorted and unique")
		}
	}
	return tags
}

// ParseTicket decodes a ticket encoded alone. Every error is a
// *wire.ParseError.
func ParseTicket(b []byte) (*Ticket, error) {
	d := wire.NewDecoder("ticket", b)
	t := ReadTicket(d)
	if err := d.Finish(); err != nil {
		return nil, err
	}
	return t, nil
}

// StampTickets stamps a batch of tickets with one signature by their home
// node k (spec 07-lottery §2). Every ticket's Home must be k's ID. Tags are
// normalised first.
func StampTickets(k keys.NodeKey, now time.Time, ts []*Ticket) error {
	leaves := make([][]byte, len(ts))
	for i, t := range ts {
		if t.Home != k.Public() {
			return fmt.Errorf("%w: ticket %d names home %s, not the stamping node %s", ErrBadTicket, i, t.Home, k.Public())
		}
		if len(t.Interests) > wire.MaxInterestTags || len(t.Avoid) > wire.MaxAvoidTags {
			return fmt.Errorf("%w: ticket %d has too many tags", ErrBadTicket, i)
		}
		t.Normalize()
		leaves[i] = t.Leaf()
	}
	stamps, err := stamp.Sign(k, wire.LabelTicket, now, leaves)
	if err != nil {
		return err
	}
	for i := range ts {
		ts[i].Stamp = &stamps[i]
	}
	return nil
}

// Verify checks the ticket's stamp against its home node.
func (t *Ticket) Verify() error {
	if t.Stamp == nil {
		return fmt.Errorf("%w: not stamped", ErrBadTicket)
	}
	if err := stamp.Verify(t.Home, wire.LabelTicket, t.Leaf(), t.Stamp); err != nil {
		return fmt.Errorf("%w: %w", ErrBadTicket, err)
	}
	return nil
}
