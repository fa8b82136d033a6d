package federation_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/parley-chat/parley/protocol/federation"
)

// FuzzDecodeBatch: every failure is a *wire.ParseError; whatever decodes
// re-encodes to the same body (one encoding per value; spec 12 §2).
func FuzzDecodeBatch(f *testing.F) {
	for _, n := range []int{1, 2, 5} {
		frame, err := (&federation.Batch{Seq: uint64(n), Envelopes: stamped(f, n, 272)}).AppendFrame(nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(frame[4:])
	}
	f.Add([]byte{1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		batch, err := federation.DecodeBatch(b)
		if err != nil {
			requireParseError(t, "DecodeBatch", err)
			return
		}
		again, err := batch.AppendFrame(nil)
		if err != nil || !bytes.Equal(again[4:], b) {
			t.Fatalf("AppendFrame(DecodeBatch(b)) = %x, %v, want %x", again, err, b)
		}
	})
}

// FuzzDecodeAck: as FuzzDecodeBatch, for acks.
func FuzzDecodeAck(f *testing.F) {
	for _, a := range []*federation.Ack{
		{Seq: 1, Results: []federation.Result{{Status: federation.Stored}, {Status: federation.Rejected, Reason: federation.ReasonExpired}}},
		{Seq: 2, Busy: true, RetryAfter: time.Second},
	} {
		frame, err := a.AppendFrame(nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(frame[4:])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := federation.DecodeAck(b)
		if err != nil {
			requireParseError(t, "DecodeAck", err)
			return
		}
		again, err := a.AppendFrame(nil)
		if err != nil || !bytes.Equal(again[4:], b) {
			t.Fatalf("AppendFrame(DecodeAck(b)) = %x, %v, want %x", again, err, b)
		}
	})
}
