package disclosure_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/parley-chat/parley/protocol/disclosure"
	"github.com/parley-chat/parley/protocol/wire"
)

// FuzzParseDisclosure: every failure is a *wire.ParseError; whatever parses
// re-encodes to the same bytes, and Verify handles it without panicking.
func FuzzParseDisclosure(f *testing.F) {
	r := newRoom(f)
	for _, n := range []int{1, 2, 5} {
		b, _ := r.report(f, n).MarshalBinary()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := disclosure.Parse(b)
		if err != nil {
			var pe *wire.ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Parse error %v (%T) is not a *wire.ParseError", err, err)
			}
			return
		}
		again, err := d.MarshalBinary()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("Marshal(Parse(b)) = %x, %v; want %x", again, err, b)
		}
		if err := disclosure.Verify(d, r.node.Public(), now); err != nil {
			var ve *disclosure.VerifyError
			if !errors.As(err, &ve) {
				t.Fatalf("Verify error %v is not a *VerifyError", err)
			}
		}
	})
}
