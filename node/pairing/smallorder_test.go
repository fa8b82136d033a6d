package pairing

import (
	"crypto/rand"
	"testing"

	"golang.org/x/crypto/curve25519"
)

// probeScalar is any X25519 scalar: X25519(probeScalar, P) is all zeros
// exactly when P has small order (clamping makes every scalar a multiple
// of the cofactor), which is what a partner's room derivation refuses.
var probeScalar = [32]byte{1: 1, 2: 2, 3: 3, 31: 0x40}

// x25519SmallOrder is the reference: X25519 with a clamped scalar gives
// zero exactly for a point of small order.
func x25519SmallOrder(u [32]byte) bool {
	_, err := curve25519.X25519(probeScalar[:], u[:])
	return err != nil
}

// spec 06 §2 (a partner's X25519 key of small order would give a zero
// shared secret): smallOrder agrees with the scalar multiplication on each
// listed point, with and without the ignored top bit, on their neighbours
// and on random keys.
func TestSmallOrder(t *testing.T) {
	var cases [][32]byte
	for _, p := range smallOrderPoints {
		hi := p
		hi[31] |= 0x80
		cases = append(cases, p, hi)
		for _, d := range []byte{1, 0xff} {
			q := p
			q[0] += d
			cases = append(cases, q)
		}
	}
	for _, k := range []int{2, 3, 18, 19, -2, -18} {
		cases = append(cases, pMinus(k))
	}
	for range 2000 {
		var u [32]byte
		_, _ = rand.Read(u[:])
		cases = append(cases, u)
	}
	listed := map[[32]byte]bool{}
	for _, u := range cases {
		got, want := smallOrder(u), x25519SmallOrder(u)
		if got != want {
			t.Errorf("smallOrder(%x) = %v, want %v (X25519)", u, got, want)
		}
		if want {
			u[31] &= 0x7f
			listed[u] = true
		}
	}
	if len(listed) != len(smallOrderPoints) {
		t.Errorf("%d small-order values (top bit ignored), want the %d listed", len(listed), len(smallOrderPoints))
	}
}
