package disclosure_test

import (
	"fmt"
	"testing"

	"github.com/parley-chat/parley/protocol/disclosure"
)

// BenchmarkVerifyDisclosure verifies a disclosure of 1 and of 8 messages
// from one stamp batch (one stamp signature check thanks to the batch
// cache, plus the reporter's signature).
func BenchmarkVerifyDisclosure(b *testing.B) {
	r := newRoom(b)
	for _, n := range []int{1, 8} {
		d := r.report(b, n)
		b.Run(fmt.Sprintf("items=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := disclosure.Verify(d, r.node.Public(), now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkParseDisclosure parses an 8-item disclosure.
func BenchmarkParseDisclosure(b *testing.B) {
	r := newRoom(b)
	enc, _ := r.report(b, 8).MarshalBinary()
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := disclosure.Parse(enc); err != nil {
			b.Fatal(err)
		}
	}
}
