package room

import (
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"sort"

	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/wire"
)

// The HMAC inputs of a chain step, computed once (spec 06-room-keys §3):
// HKDF-Expand's two blocks for the message key use the info string
// "parley/v1/room-message" followed by the block counter, and the next
// chain key is the HMAC of Labeled("parley/v1/room-next").
var (
	messageInfo1 = []byte(wire.LabelRoomMessage + "\x01")
	messageInfo2 = []byte(wire.LabelRoomMessage + "\x02")
	nextInput    = wire.Labeled(wire.LabelRoomNext)
)

// messageKeySize is the HKDF output per message: a 32-byte key, then a
// 24-byte nonce.
const messageKeySize = 32 + 24

// step returns the message key of chain key ck and the next chain key
// (spec 06-room-keys §3):
//
//	mk  = HKDF-Expand-SHA256(ck, "parley/v1/room-message", 56)
//	ck' = HMAC-SHA256(ck, Labeled("parley/v1/room-next"))
//
// All three HMACs are keyed with ck, so one keyed crypto/hmac instance
// computes them: HKDF-Expand of 56 bytes is, per RFC 5869 §2.3,
// T(1) = HMAC(ck, info || 0x01) and T(2) = HMAC(ck, T(1) || info || 0x02),
// written out here so that the key schedule runs once per step instead of
// three times. TestStepIsHKDF checks it against crypto/hkdf and the tests'
// reference against x/crypto/hkdf.
func step(ck *[32]byte) (mk keys.MessageKey, next [32]byte) {
	var t [2 * sha256.Size]byte // T(1) || T(2)
	h := hmac.New(sha256.New, ck[:])
	h.Write(messageInfo1)
	h.Sum(t[:0])
	h.Reset()
	h.Write(t[:sha256.Size])
	h.Write(messageInfo2)
	h.Sum(t[sha256.Size:sha256.Size])
	h.Reset()
	h.Write(nextInput)
	h.Sum(next[:0])
	copy(mk.Key[:], t[:32])
	copy(mk.Nonce[:], t[32:messageKeySize])
	clear(t[:])
	return mk, next
}

// NextSend returns the sequence number and message key of the next message
// to send, and steps the send chain: the previous chain key is overwritten,
// so the room cannot derive this key again. The caller seals one message
// with mk and then wipes it (mk.Wipe).
func (r *Room) NextSend() (seq uint64, mk keys.MessageKey) {
	r.check()
	if r.send.next == 1<<64-1 {
		// Reaching this takes 2^63 sends after the last encodable state.
		panic("room: send chain exhausted")
	}
	mk, next := step(&r.send.key)
	r.send.key = next
	clear(next[:])
	seq = r.send.next
	r.send.next++
	return seq, mk
}

// Receive finds the message key of the received message seq and calls open
// with it; open is the caller's AEAD open and franking check. Only if open
// returns nil does Receive commit: it steps the receive chain or deletes the
// used skipped key, and keeps the keys of messages the new position skipped.
// If open fails, the room is unchanged (a forged message neither advances
// the chain nor burns a key) and open's error is returned as it is. The key
// passed to open is wiped when open returns; open must not keep it.
//
// Receive refuses, without calling open, a seq already received (ErrReplay),
// one below every key the room still holds (ErrTooOld) and one more than
// wire.MaxSkipAhead past NextRecvSeq or above MaxSeq (ErrTooFarAhead)
// (spec 06-room-keys §4).
func (r *Room) Receive(seq uint64, open func(*keys.MessageKey) error) error {
	r.check()
	switch next := r.recv.next; {
	case seq < next:
		return r.receiveSkipped(seq, open)
	case seq > MaxSeq || seq-next > wire.MaxSkipAhead:
		return fmt.Errorf("%w: seq %d, expecting %d", ErrTooFarAhead, seq, next)
	}

	// seq >= next: walk a copy of the chain up to seq, keeping the keys it
	// skips, without touching r until open succeeds.
	ck := r.recv.key
	defer clear(ck[:])
	var pending []skippedKey
	if seq > r.recv.next {
		pending = make([]skippedKey, 0, seq-r.recv.next) // at most MaxSkipAhead
	}
	for s := r.recv.next; s < seq; s++ {
		mk, next := step(&ck)
		ck = next
		clear(next[:])
		pending = append(pending, skippedKey{seq: s, mk: mk})
	}
	mk, next := step(&ck)
	defer clear(next[:])
	err := open(&mk)
	mk.Wipe()
	defer func() {
		for i := range pending {
			pending[i].mk.Wipe()
		}
	}()
	if err != nil {
		return err
	}

	clear(r.recv.key[:])
	r.recv.key = next
	r.recv.next = seq + 1
	r.appendSkipped(pending)
	if n := len(r.skipped) - wire.MaxSkippedKeys; n > 0 {
		// Evict the oldest keys; their messages will be refused as too old.
		r.floor = r.skipped[n-1].seq + 1
		for i := range n {
			r.skipped[i].mk.Wipe()
		}
		r.skipped = append(r.skipped[:0], r.skipped[n:]...)
		r.wipeTail(n)
	}
	return nil
}

// receiveSkipped handles a seq below the receive chain's position: it can
// only be opened with a stored skipped key.
func (r *Room) receiveSkipped(seq uint64, open func(*keys.MessageKey) error) error {
	i := sort.Search(len(r.skipped), func(i int) bool { return r.skipped[i].seq >= seq })
	if i == len(r.skipped) || r.skipped[i].seq != seq {
		if seq < r.floor {
			return fmt.Errorf("%w: seq %d, keys kept from %d", ErrTooOld, seq, r.floor)
		}
		return fmt.Errorf("%w: seq %d", ErrReplay, seq)
	}
	mk := r.skipped[i].mk
	err := open(&mk)
	mk.Wipe()
	if err != nil {
		return err
	}
	r.skipped[i].mk.Wipe()
	r.skipped = append(r.skipped[:i], r.skipped[i+1:]...)
	r.wipeTail(1)
	return nil
}

// appendSkipped appends add to r.skipped. When the slice must grow, it
// wipes the old backing array rather than leave copies of keys to the
// garbage collector.
func (r *Room) appendSkipped(add []skippedKey) {
	need := len(r.skipped) + len(add)
	if need > cap(r.skipped) {
		grown := make([]skippedKey, len(r.skipped), max(need, min(2*cap(r.skipped), wire.MaxSkippedKeys+wire.MaxSkipAhead)))
		copy(grown, r.skipped)
		clear(r.skipped)
		r.skipped = grown
	}
	r.skipped = append(r.skipped, add...)
}

// wipeTail wipes the n slots past the end of r.skipped that a deletion
// left holding copies of keys.
func (r *Room) wipeTail(n int) {
	tail := r.skipped[len(r.skipped) : len(r.skipped)+n]
	for i := range tail {
		tail[i] = skippedKey{}
	}
}
