package room_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"testing"

	"golang.org/x/crypto/curve25519"

	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/room"
)

// BenchmarkRatchetStep is one NextSend: one HKDF-Expand of 56 bytes and one
// HMAC-SHA256, both keyed with the chain key (spec 06-room-keys §3).
func BenchmarkRatchetStep(b *testing.B) {
	r, _, _, _ := pair(b, "bench step")
	b.ReportAllocs()
	for b.Loop() {
		_, mk := r.NextSend()
		mk.Wipe()
	}
}

// BenchmarkReceiveInOrder is one Receive of the next message in order, with
// an open callback that does nothing: the receive side's ratchet cost.
func BenchmarkReceiveInOrder(b *testing.B) {
	r, _, _, _ := pair(b, "bench receive")
	open := func(*keys.MessageKey) error { return nil }
	b.ReportAllocs()
	for b.Loop() {
		if err := r.Receive(r.NextRecvSeq(), open); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDerive is one Derive: a public-key computation, one X25519, the
// room ID hash and four HKDF calls.
func BenchmarkDerive(b *testing.B) {
	mine, theirs := ticket(b, "bench derive a"), ticket(b, "bench derive b").Public()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := room.Derive(mine, theirs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRawHMACSHA256_32B is one HMAC-SHA256 over 32 bytes with a new
// 32-byte key, for comparison with a ratchet step.
func BenchmarkRawHMACSHA256_32B(b *testing.B) {
	key, msg := make([]byte, 32), make([]byte, 32)
	out := make([]byte, 0, 32)
	b.ReportAllocs()
	for b.Loop() {
		m := hmac.New(sha256.New, key)
		m.Write(msg)
		out = m.Sum(out[:0])
	}
}

// BenchmarkRawX25519 is one X25519 scalar multiplication, for comparison
// with Derive.
func BenchmarkRawX25519(b *testing.B) {
	scalar := make([]byte, 32)
	scalar[0] = 1
	point := curve25519.Basepoint
	b.ReportAllocs()
	for b.Loop() {
		p, err := curve25519.X25519(scalar, point)
		if err != nil {
			b.Fatal(err)
		}
		point = p
	}
}
