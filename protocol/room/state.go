package room

import (
	"encoding"
	"errors"

	"github.com/parley-chat/parley/protocol/wire"
)

// StateVersion is the version byte of a room state encoding.
const StateVersion = 1

// Sizes of the state encoding (spec 06-room-keys §5).
const (
	stateHeaderSize = 1 + 32*5 + 8 + 32 + 8 + 8 + 2
	skippedSize     = 8 + 32 + 24
)

// ErrExhausted is returned by MarshalBinary for a room whose counters went
// past MaxSeq+1, which no real room reaches.
var ErrExhausted = errors.New("room: sequence numbers exhausted")

var _ encoding.BinaryMarshaler = (*Room)(nil)

// MarshalBinary returns the room's state encoding (spec 06-room-keys §5),
// for the client's keystore. It contains the room's secrets: store it like
// a private key, and overwrite the old copy when the room advances, or the
// forward secrecy of deleted keys is lost.
func (r *Room) MarshalBinary() ([]byte, error) {
	r.check()
	if r.send.next > MaxSeq+1 || r.recv.next > MaxSeq+1 {
		return nil, ErrExhausted
	}
	e := wire.NewEncoder(stateHeaderSize + skippedSize*len(r.skipped))
	e.U8(StateVersion)
	e.Fixed(r.id[:])
	e.Fixed(r.me[:])
	e.Fixed(r.partner[:])
	e.Fixed(r.avoid[:])
	e.Fixed(r.send.key[:])
	e.U64(r.send.next)
	e.Fixed(r.recv.key[:])
	e.U64(r.recv.next)
	e.U64(r.floor)
	e.Count(len(r.skipped))
	for i := range r.skipped {
		s := &r.skipped[i]
		e.U64(s.seq)
		e.Fixed(s.mk.Key[:])
		e.Fixed(s.mk.Nonce[:])
	}
	return e.Bytes(), nil
}

// UnmarshalRoom decodes a state encoding written by MarshalBinary. Any
// malformed input (wrong version, a counter above MaxSeq+1, more than
// wire.MaxSkippedKeys skipped keys, skipped sequence numbers unsorted,
// repeated or outside [floor, next receive seq), trailing bytes) fails with
// a *wire.ParseError.
func UnmarshalRoom(b []byte) (*Room, error) {
	d := wire.NewDecoder("room state", b)
	d.Version(StateVersion)
	r := new(Room)
	d.Field("room_id").Fixed(r.id[:])
	d.Field("me").Fixed(r.me[:])
	d.Field("partner").Fixed(r.partner[:])
	if d.Err() == nil && r.me == r.partner {
		d.Fail("own ticket is the partner")
	}
	d.Field("avoid_key").Fixed(r.avoid[:])
	d.Field("send_key").Fixed(r.send.key[:])
	r.send.next = d.Field("send_next").U64()
	if d.Err() == nil && r.send.next > MaxSeq+1 {
		d.Fail("send_next %d above MaxSeq+1", r.send.next)
	}
	d.Field("recv_key").Fixed(r.recv.key[:])
	r.recv.next = d.Field("recv_next").U64()
	if d.Err() == nil && r.recv.next > MaxSeq+1 {
		d.Fail("recv_next %d above MaxSeq+1", r.recv.next)
	}
	r.floor = d.Field("floor").U64()
	if d.Err() == nil && r.floor > r.recv.next {
		d.Fail("floor %d above recv_next %d", r.floor, r.recv.next)
	}
	n := d.Field("skipped").Count(wire.MaxSkippedKeys, skippedSize)
	if n > 0 {
		r.skipped = make([]skippedKey, n)
	}
	for i := range n {
		s := &r.skipped[i]
		s.seq = d.Field("skipped.seq").U64()
		if d.Err() != nil {
			break
		}
		switch {
		case s.seq < r.floor || s.seq >= r.recv.next:
			d.Fail("skipped seq %d outside [%d, %d)", s.seq, r.floor, r.recv.next)
		case i > 0 && s.seq <= r.skipped[i-1].seq:
			d.Fail("skipped seq %d not above %d", s.seq, r.skipped[i-1].seq)
		}
		d.Field("skipped.key").Fixed(s.mk.Key[:])
		d.Field("skipped.nonce").Fixed(s.mk.Nonce[:])
	}
	if err := d.Finish(); err != nil {
		r.Wipe()
		return nil, err
	}
	return r, nil
}
