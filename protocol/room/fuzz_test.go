package room_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/room"
	"github.com/parley-chat/parley/protocol/wire"
)

// FuzzUnmarshalRoom checks that UnmarshalRoom refuses anything malformed
// with a *wire.ParseError, that whatever it accepts re-encodes to the same
// bytes (the encoding is canonical), and that an accepted state can be used
// without panicking. Seeds: encodings from live rooms here, and the files
// under testdata/fuzz/FuzzUnmarshalRoom (from spec/testdata/room.json).
func FuzzUnmarshalRoom(f *testing.F) {
	a, b, _, _ := pair(f, "fuzz")
	f.Add(marshal(f, a))
	var msgs []message
	for range 8 {
		msgs = append(msgs, send(f, a, "m"))
	}
	for _, i := range []int{1, 4, 7} {
		if err := receive(f, b, msgs[i]); err != nil {
			f.Fatal(err)
		}
	}
	f.Add(marshal(f, a))
	f.Add(marshal(f, b))
	f.Add([]byte{})
	f.Add([]byte{room.StateVersion})

	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := room.UnmarshalRoom(in)
		if err != nil {
			var pe *wire.ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("UnmarshalRoom error %T %v, want *wire.ParseError", err, err)
			}
			if r != nil {
				t.Fatalf("UnmarshalRoom returned a room with error %v", err)
			}
			return
		}
		out, err := r.MarshalBinary()
		if err != nil {
			t.Fatalf("MarshalBinary() of a decoded room: %v", err)
		}
		if !bytes.Equal(out, in) {
			t.Fatalf("MarshalBinary(UnmarshalRoom(x)) = %x, want x = %x", out, in)
		}
		// A decoded room works: receiving around its position must not
		// panic, and a failing open leaves it unchanged.
		next := r.NextRecvSeq()
		for _, seq := range []uint64{0, next - 1, next, next + 1, next + wire.MaxSkipAhead, next + wire.MaxSkipAhead + 1} {
			_ = r.Receive(seq, func(*keys.MessageKey) error { return errors.New("no") })
		}
		if again, _ := r.MarshalBinary(); !bytes.Equal(again, in) {
			t.Fatal("failing opens changed a decoded room")
		}
		if r.NextSendSeq() <= room.MaxSeq {
			r.NextSend()
		}
		_ = r.Receive(next, func(*keys.MessageKey) error { return nil })
	})
}
