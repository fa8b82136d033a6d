// Package franking implements Parley's message franking commitments (spec
// 03-envelope §3, DESIGN §3.4).
//
// A sender draws a fresh random franking Key for every message and commits to
// the plaintext with HMAC-SHA256 under that key. The Commitment travels in the
// clear, in the envelope header that the sender's node stamps; the key travels
// inside the ciphertext. A recipient who later discloses the plaintext and the
// key lets anyone check the commitment against the stamped header.
//
// HMAC-SHA256 under a fresh key is a commitment: finding a second (key,
// plaintext) pair with the same output would break SHA-256's collision
// resistance. An AEAD tag is not a commitment (Poly1305 tags are not key- or
// message-committing) and must never stand in for one.
package franking

import (
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"io"

	"github.com/parley-chat/parley/protocol/wire"
)

// KeySize is the size of a franking key in bytes.
const KeySize = 32

// Key is a one-time franking key. It is sealed inside the message it commits
// to and revealed only by a disclosure. It does not print its contents.
type Key [KeySize]byte

// String returns a placeholder, so the key never ends up in a log.
func (Key) String() string { return "[franking key]" }

// GoString keeps %#v from printing key material.
func (Key) GoString() string { return "[franking key]" }

// Commitment is HMAC-SHA256 over the labeled plaintext under a franking key.
type Commitment [sha256.Size]byte

// prefix is u16 len(label) || label: the start of every MAC input.
var prefix = wire.Labeled(wire.LabelFranking)

// NewKey reads a fresh franking key from r.
func NewKey(r io.Reader) (Key, error) {
	var k Key
	if _, err := io.ReadFull(r, k[:]); err != nil {
		return Key{}, fmt.Errorf("franking: reading randomness: %w", err)
	}
	return k, nil
}

// Commit returns the commitment to plaintext under k:
// HMAC-SHA256(k, u16 len(label) || "parley/v1/franking" || plaintext).
func Commit(k *Key, plaintext []byte) Commitment {
	m := hmac.New(sha256.New, k[:])
	m.Write(prefix)
	m.Write(plaintext)
	var c Commitment
	m.Sum(c[:0])
	return c
}

// Verify reports, in constant time, whether c is the commitment to plaintext
// under k.
func Verify(k *Key, plaintext []byte, c Commitment) bool {
	got := Commit(k, plaintext)
	return hmac.Equal(got[:], c[:])
}
