package forward_test

import (
	"errors"
	"testing"

	"github.com/parley-chat/parley/node/reports/forward"
	"github.com/parley-chat/parley/protocol/wire"
)

// The decoders of the report protocol (spec 13-moderation §2.3) return a
// *wire.ParseError for anything they refuse, and round-trip what they take.
func FuzzDecodeRequest(f *testing.F) {
	f.Add(forward.EncodeRequest([]byte("disclosure"))[4:])
	f.Add([]byte{1, 0, 0, 0, 0})
	f.Add([]byte{2})
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		enc, err := forward.DecodeRequest(b)
		if err != nil {
			if !errors.Is(err, wire.ErrMalformed) {
				t.Fatalf("DecodeRequest error %v is not a parse error", err)
			}
			return
		}
		if got := forward.EncodeRequest(enc)[4:]; string(got) != string(b) {
			t.Fatalf("EncodeRequest(DecodeRequest(%x)) = %x", b, got)
		}
	})
}

func FuzzDecodeAnswer(f *testing.F) {
	for _, a := range []forward.Answer{{Status: forward.StatusAccepted}, {Status: forward.StatusRejected, Reason: "bad_stamp"}, {Status: forward.StatusBusy, RetryAfter: 500}} {
		f.Add(forward.EncodeAnswer(a)[4:])
	}
	f.Add([]byte{1, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := forward.DecodeAnswer(b)
		if err != nil {
			if !errors.Is(err, wire.ErrMalformed) {
				t.Fatalf("DecodeAnswer error %v is not a parse error", err)
			}
			return
		}
		if got := forward.EncodeAnswer(a)[4:]; string(got) != string(b) {
			t.Fatalf("EncodeAnswer(DecodeAnswer(%x)) = %x", b, got)
		}
	})
}
