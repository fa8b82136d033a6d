package api

import (
	"testing"
)

// BenchmarkDecodeWSSend decodes a sync WebSocket send of a 1 KiB message,
// the node's per-message decoding cost on that path.
func BenchmarkDecodeWSSend(b *testing.B) {
	f := newFakeNode(b)
	alice, bob := newUser(b, "alice"), newUser(b, "bob")
	r := f.addRoom(alice, bob, "alice-bob")
	e, _ := sealed(b, r, 0, 1, t0)
	e.Ciphertext = make([]byte, 1040)
	msg := []byte(`{"send":{"req":1,"room":"` + r.id.String() + `","txid":"m-1","envelope":"` + encodeEnvelope(b, e) + `"}}`)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeWSClientMessage(msg, 128<<10); err != nil {
			b.Fatal(err)
		}
	}
}
