// Package room holds the keys of one Parley room (spec 06-room-keys): the
// key agreement between the two tickets the lottery paired, and the
// per-direction symmetric ratchet that gives every message its own key.
//
// Two users who were paired each hold their ticket's private keys and know
// the partner's public ticket keys. Derive turns those into the same Room on
// both sides: a room ID both can name, one chain key per direction and an
// avoid key for the lottery. Each message key comes from the chain of its
// direction at its sequence number; stepping a chain overwrites the old chain
// key, so once a message key is deleted no later state can recompute it
// (forward secrecy). There is no post-compromise security: whoever steals a
// chain key can derive every later key of that direction. Rooms are short
// lived and ticket keys are fresh for every pairing, which bounds the damage.
//
// A Room holds secrets. It prints only its public parts, its encoding
// (MarshalBinary) must be stored like a private key, and Wipe overwrites it
// when the room ends. A Room is not safe for concurrent use.
package room

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/wire"
)

// Errors returned by Derive and Receive, matched with errors.Is.
var (
	// ErrSelf is returned by Derive when the partner's ticket has the
	// caller's own signing or X25519 public key: nobody is paired with
	// themselves, and the direction rule needs two different signing keys.
	ErrSelf = errors.New("room: paired with own ticket")
	// ErrInvalidPeer is returned by Derive when the partner's X25519 key is
	// a low-order point, which would make the shared secret all zeros. The
	// error also matches keys.ErrInvalidKey.
	ErrInvalidPeer = errors.New("room: invalid partner key")
	// ErrReplay is returned by Receive for a sequence number whose message
	// was already received.
	ErrReplay = errors.New("room: message already received")
	// ErrTooOld is returned by Receive for a sequence number older than
	// every key the receiver still keeps: its message was either received
	// already or skipped and then evicted (spec 06-room-keys §4).
	ErrTooOld = errors.New("room: message too old")
	// ErrTooFarAhead is returned by Receive for a sequence number more than
	// wire.MaxSkipAhead past the next expected one, or above MaxSeq.
	ErrTooFarAhead = errors.New("room: message too far ahead")
)

// MaxSeq is the highest sequence number a chain uses. It is far beyond what
// any room reaches (2^63 messages) and keeps every counter clear of
// overflow: Receive refuses larger sequence numbers, and a state whose
// counters passed MaxSeq+1 does not encode.
const MaxSeq = 1<<63 - 1

// Room is the key state of one room as seen by one of its two members: the
// room's identity, the chain key of each direction and the message keys of
// skipped (not yet received) messages. Create it with Derive or
// UnmarshalRoom.
type Room struct {
	id      keys.RoomID
	me      keys.TicketID
	partner keys.TicketID
	avoid   [32]byte

	send chain
	recv chain
	// floor is the lowest receive sequence number the room can still say
	// something exact about: every skipped key below it was evicted. Every
	// seq in [floor, recv.next) is either in skipped or was received.
	floor uint64
	// skipped holds the keys of skipped messages, sorted by seq, all in
	// [floor, recv.next), at most wire.MaxSkippedKeys.
	skipped []skippedKey
	wiped   bool
}

// chain is one direction's ratchet: the key for sequence number next.
type chain struct {
	key  [32]byte
	next uint64
}

// skippedKey is the stored message key of a message not yet received.
type skippedKey struct {
	seq uint64
	mk  keys.MessageKey
}

// Derive computes the room of the two tickets mine and theirs (spec
// 06-room-keys §1-2). Both members get the same room ID, avoid key and
// chains, with their send and receive roles swapped. It fails with ErrSelf
// when theirs shares a public key with mine and with ErrInvalidPeer when
// theirs.DH is a low-order point.
func Derive(mine keys.TicketKeys, theirs keys.TicketPublic) (*Room, error) {
	me := mine.Public()
	if keys.Equal(me.Sign, theirs.Sign) || keys.Equal(me.DH, theirs.DH) {
		return nil, ErrSelf
	}
	shared, err := mine.SharedSecret(theirs.DH)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidPeer, err)
	}
	defer clear(shared)

	lo, hi, meLow := me, theirs, true
	if bytes.Compare(me.Sign[:], theirs.Sign[:]) > 0 {
		lo, hi, meLow = theirs, me, false
	}
	r := &Room{
		id:      keys.RoomID(wire.Hash(wire.LabelRoomID, lo.Sign[:], lo.DH[:], hi.Sign[:], hi.DH[:])),
		me:      me.Sign,
		partner: theirs.Sign,
	}

	root := mustHKDF(hkdf.Key(sha256.New, shared, r.id[:], wire.LabelRoomRoot, 32))
	defer clear(root)
	// Direction 0 runs from the ticket with the lower signing key to the
	// higher, direction 1 the other way.
	c0 := mustHKDF(hkdf.Expand(sha256.New, root, chainInfo0, 32))
	c1 := mustHKDF(hkdf.Expand(sha256.New, root, chainInfo1, 32))
	avoid := mustHKDF(hkdf.Expand(sha256.New, root, wire.LabelAvoidTag, 32))
	if meLow {
		copy(r.send.key[:], c0)
		copy(r.recv.key[:], c1)
	} else {
		copy(r.send.key[:], c1)
		copy(r.recv.key[:], c0)
	}
	copy(r.avoid[:], avoid)
	clear(c0)
	clear(c1)
	clear(avoid)
	return r, nil
}

// The HKDF info strings of the two direction chains: the chain label
// followed by the direction byte.
const (
	chainInfo0 = wire.LabelRoomChain + "\x00"
	chainInfo1 = wire.LabelRoomChain + "\x01"
)

// mustHKDF unwraps the result of crypto/hkdf, which fails only for output
// lengths this package never asks for (or under FIPS 140-only mode with a
// non-approved hash, which SHA-256 is not).
func mustHKDF(b []byte, err error) []byte {
	if err != nil {
		panic("room: HKDF-SHA256 failed: " + err.Error())
	}
	return b
}

// ID returns the room ID, the same for both members.
func (r *Room) ID() keys.RoomID { return r.id }

// Me returns the caller's own ticket signing key in this room.
func (r *Room) Me() keys.TicketID { return r.me }

// Partner returns the partner's ticket signing key.
func (r *Room) Partner() keys.TicketID { return r.partner }

// AvoidKey returns the room's avoid key (spec 06-room-keys §2.3), the same
// for both members: the lottery derives per-epoch avoid tags from it so that
// two users who left each other are not paired again at once. It is secret:
// outsiders must not be able to link the tags to the room.
func (r *Room) AvoidKey() [32]byte {
	r.check()
	return r.avoid
}

// NextSendSeq returns the sequence number the next NextSend will use.
func (r *Room) NextSendSeq() uint64 { return r.send.next }

// NextRecvSeq returns the lowest sequence number not yet received in order:
// the receive chain's position.
func (r *Room) NextRecvSeq() uint64 { return r.recv.next }

// Skipped returns how many message keys of skipped messages the room keeps.
func (r *Room) Skipped() int { return len(r.skipped) }

// Wipe overwrites every secret the room holds. A room is wiped when it ends;
// using it afterwards panics.
func (r *Room) Wipe() {
	clear(r.avoid[:])
	clear(r.send.key[:])
	clear(r.recv.key[:])
	for i := range r.skipped {
		r.skipped[i].mk.Wipe()
	}
	r.skipped = nil
	r.wiped = true
}

// check panics if r was wiped: using a wiped room is a programming error.
func (r *Room) check() {
	if r.wiped {
		panic("room: use of a wiped Room")
	}
}

// String returns the room's public description; it never contains key
// material. It has a value receiver so that printing a Room value (not only
// a pointer) cannot reach the secret fields.
func (r Room) String() string {
	return fmt.Sprintf("room{%v me=%v partner=%v send=%d recv=%d skipped=%d}",
		r.id, r.me, r.partner, r.send.next, r.recv.next, len(r.skipped))
}

// GoString keeps %#v from printing key material.
func (r Room) GoString() string { return r.String() }
