// Package keys holds Parley's key and identifier types (spec 02-encoding §2):
// node keys, whose public half is a libp2p Ed25519 peer ID; account identity
// keys; and the fresh per-pairing ticket keys (Ed25519 for signing in a room,
// X25519 for key agreement).
//
// Public keys are fixed-size arrays with a text form that round-trips through
// Parse/String. Private keys are structs that cannot be compared with ==, do
// not print their contents, and sign only under a domain-separation label.
package keys

import (
	"crypto/ed25519"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/crypto/curve25519"

	"github.com/parley-chat/parley/protocol/wire"
)

// Sizes of keys and signatures in bytes.
const (
	PublicKeySize = 32
	SignatureSize = 64
	SeedSize      = 32
)

// ErrInvalidKey is returned for a key or signature that cannot be used: wrong
// size, bad text form, or a low-order X25519 point.
var ErrInvalidKey = errors.New("keys: invalid key")

// Signature is an Ed25519 signature.
type Signature [SignatureSize]byte

// noCompare makes a struct incomparable with ==.
type noCompare [0]func()

// signer is the private half shared by every Ed25519 key type.
type signer struct {
	_    noCompare
	priv ed25519.PrivateKey
}

func newSigner(r io.Reader) (signer, error) {
	var seed [SeedSize]byte
	if _, err := io.ReadFull(r, seed[:]); err != nil {
		return signer{}, fmt.Errorf("keys: reading randomness: %w", err)
	}
	return signer{priv: ed25519.NewKeyFromSeed(seed[:])}, nil
}

func signerFromSeed(seed []byte) (signer, error) {
	if len(seed) != SeedSize {
		return signer{}, fmt.Errorf("%w: seed is %d bytes, want %d", ErrInvalidKey, len(seed), SeedSize)
	}
	return signer{priv: ed25519.NewKeyFromSeed(seed)}, nil
}

func (s signer) public() (p [PublicKeySize]byte) {
	if s.priv == nil {
		panic("keys: use of zero private key")
	}
	copy(p[:], s.priv[SeedSize:])
	return p
}

func (s signer) sign(label string, parts ...[]byte) Signature {
	if s.priv == nil {
		panic("keys: use of zero private key")
	}
	var sig Signature
	copy(sig[:], ed25519.Sign(s.priv, wire.Labeled(label, parts...)))
	return sig
}

func (s signer) seed() []byte {
	if s.priv == nil {
		return nil
	}
	return append([]byte(nil), s.priv.Seed()...)
}

func (s signer) String() string { return "[private key]" }

// GoString keeps %#v from printing key material.
func (s signer) GoString() string { return "[private key]" }

func verify(pub [PublicKeySize]byte, label string, sig Signature, parts ...[]byte) bool {
	return ed25519.Verify(pub[:], wire.Labeled(label, parts...), sig[:])
}

// Format text: "<prefix>" + unpadded base64url of the 32 bytes.
var b64 = base64.RawURLEncoding

func formatKey(prefix string, k [PublicKeySize]byte) string {
	return prefix + b64.EncodeToString(k[:])
}

func parseKey(prefix, s string) (k [PublicKeySize]byte, err error) {
	rest, ok := strings.CutPrefix(s, prefix)
	if !ok {
		return k, fmt.Errorf("%w: %q does not start with %q", ErrInvalidKey, truncate(s), prefix)
	}
	if len(rest) != b64.EncodedLen(PublicKeySize) {
		return k, fmt.Errorf("%w: %q has the wrong length", ErrInvalidKey, truncate(s))
	}
	b, err := b64.Strict().DecodeString(rest)
	if err != nil || len(b) != PublicKeySize {
		return k, fmt.Errorf("%w: %q is not base64url", ErrInvalidKey, truncate(s))
	}
	copy(k[:], b)
	return k, nil
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// ---- accounts ----

// AccountID is an account's Ed25519 identity public key. Its text form is
// "acct_" followed by the key in unpadded base64url.
type AccountID [PublicKeySize]byte

const accountPrefix = "acct_"

func (a AccountID) String() string { return formatKey(accountPrefix, a) }

// ParseAccountID parses the text form of an AccountID.
func ParseAccountID(s string) (AccountID, error) {
	k, err := parseKey(accountPrefix, s)
	return AccountID(k), err
}

// Verify reports whether sig is a valid signature by a under label.
func (a AccountID) Verify(label string, sig Signature, parts ...[]byte) bool {
	return verify(a, label, sig, parts...)
}

// MarshalText implements encoding.TextMarshaler.
func (a AccountID) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (a *AccountID) UnmarshalText(b []byte) error {
	k, err := ParseAccountID(string(b))
	if err == nil {
		*a = k
	}
	return err
}

// AccountKey is an account's private identity key. It stays on the client.
type AccountKey struct{ signer }

// GenerateAccountKey returns a new account key using randomness from r.
func GenerateAccountKey(r io.Reader) (AccountKey, error) {
	s, err := newSigner(r)
	return AccountKey{s}, err
}

// AccountKeyFromSeed returns the account key with the given 32-byte seed.
func AccountKeyFromSeed(seed []byte) (AccountKey, error) {
	s, err := signerFromSeed(seed)
	return AccountKey{s}, err
}

// Public returns the key's AccountID.
func (k AccountKey) Public() AccountID { return k.public() }

// Sign signs the labeled parts.
func (k AccountKey) Sign(label string, parts ...[]byte) Signature { return k.sign(label, parts...) }

// Seed returns a copy of the 32-byte seed, for a keystore to save.
func (k AccountKey) Seed() []byte { return k.seed() }

// ---- tickets ----

// TicketID identifies a ticket's signing key: the Ed25519 public key a user
// signs with inside one room (its "room key"). Text form "tks_" + base64url.
type TicketID [PublicKeySize]byte

const ticketSignPrefix = "tks_"

func (t TicketID) String() string { return formatKey(ticketSignPrefix, t) }

// ParseTicketID parses the text form of a TicketID.
func ParseTicketID(s string) (TicketID, error) {
	k, err := parseKey(ticketSignPrefix, s)
	return TicketID(k), err
}

// Verify reports whether sig is a valid signature by t under label.
func (t TicketID) Verify(label string, sig Signature, parts ...[]byte) bool {
	return verify(t, label, sig, parts...)
}

// MarshalText implements encoding.TextMarshaler.
func (t TicketID) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (t *TicketID) UnmarshalText(b []byte) error {
	k, err := ParseTicketID(string(b))
	if err == nil {
		*t = k
	}
	return err
}

// DHPublic is a ticket's X25519 public key. Text form "tkx_" + base64url.
type DHPublic [PublicKeySize]byte

const ticketDHPrefix = "tkx_"

func (d DHPublic) String() string { return formatKey(ticketDHPrefix, d) }

// ParseDHPublic parses the text form of a DHPublic.
func ParseDHPublic(s string) (DHPublic, error) {
	k, err := parseKey(ticketDHPrefix, s)
	return DHPublic(k), err
}

// MarshalText implements encoding.TextMarshaler.
func (d DHPublic) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *DHPublic) UnmarshalText(b []byte) error {
	k, err := ParseDHPublic(string(b))
	if err == nil {
		*d = k
	}
	return err
}

// TicketPublic is the public half of a ticket's keys, as it appears in a
// lottery ticket.
type TicketPublic struct {
	Sign TicketID
	DH   DHPublic
}

// TicketKeys are the private keys of one pairing: fresh for every lottery
// ticket, deleted when the room ends.
type TicketKeys struct {
	signer
	dh [PublicKeySize]byte
}

// GenerateTicketKeys returns fresh ticket keys using randomness from r.
func GenerateTicketKeys(r io.Reader) (TicketKeys, error) {
	s, err := newSigner(r)
	if err != nil {
		return TicketKeys{}, err
	}
	var dh [PublicKeySize]byte
	if _, err := io.ReadFull(r, dh[:]); err != nil {
		return TicketKeys{}, fmt.Errorf("keys: reading randomness: %w", err)
	}
	return TicketKeys{signer: s, dh: dh}, nil
}

// TicketKeysFromSeeds rebuilds ticket keys from the seeds Seeds returned.
func TicketKeysFromSeeds(signSeed, dhSeed []byte) (TicketKeys, error) {
	s, err := signerFromSeed(signSeed)
	if err != nil {
		return TicketKeys{}, err
	}
	if len(dhSeed) != SeedSize {
		return TicketKeys{}, fmt.Errorf("%w: X25519 seed is %d bytes", ErrInvalidKey, len(dhSeed))
	}
	k := TicketKeys{signer: s}
	copy(k.dh[:], dhSeed)
	return k, nil
}

// Seeds returns copies of the signing and X25519 private seeds, for a
// keystore to save.
func (k TicketKeys) Seeds() (sign, dh []byte) {
	return k.seed(), append([]byte(nil), k.dh[:]...)
}

// Public returns the ticket's public keys.
func (k TicketKeys) Public() TicketPublic {
	pub, err := curve25519.X25519(k.dh[:], curve25519.Basepoint)
	if err != nil {
		panic("keys: X25519 base point multiplication failed: " + err.Error())
	}
	var p TicketPublic
	p.Sign = k.public()
	copy(p.DH[:], pub)
	return p
}

// Sign signs the labeled parts with the ticket's signing key.
func (k TicketKeys) Sign(label string, parts ...[]byte) Signature { return k.sign(label, parts...) }

// SharedSecret returns the X25519 shared secret with peer. It fails with
// ErrInvalidKey when peer is a low-order point (the result would be zero).
func (k TicketKeys) SharedSecret(peer DHPublic) ([]byte, error) {
	s, err := curve25519.X25519(k.dh[:], peer[:])
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidKey, err)
	}
	return s, nil
}

// Equal reports in constant time whether two public keys are the same.
func Equal(a, b [PublicKeySize]byte) bool { return subtle.ConstantTimeCompare(a[:], b[:]) == 1 }
