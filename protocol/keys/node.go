package keys

import (
	"bytes"
	"fmt"
	"io"
)

// NodeID is a node's Ed25519 public key. Its text form is the node's libp2p
// peer ID ("12D3KooW..."): the base58btc identity multihash of the
// protobuf-encoded public key, exactly as libp2p computes it, so the key a
// node stamps with is the key its peer ID names (spec 02-encoding §2.1).
type NodeID [PublicKeySize]byte

// peerIDPrefix is the identity multihash header (code 0x00, length 36)
// followed by the libp2p PublicKey protobuf header (field 1 varint
// KeyType=Ed25519=1, field 2 bytes of length 32).
var peerIDPrefix = []byte{0x00, 0x24, 0x08, 0x01, 0x12, 0x20}

// PeerIDBytes returns the binary libp2p peer ID (38 bytes).
func (n NodeID) PeerIDBytes() []byte {
	b := make([]byte, 0, len(peerIDPrefix)+PublicKeySize)
	b = append(b, peerIDPrefix...)
	return append(b, n[:]...)
}

// String returns the libp2p peer ID in base58btc.
func (n NodeID) String() string { return base58Encode(n.PeerIDBytes()) }

// ParseNodeID parses a libp2p Ed25519 peer ID in base58btc. Peer IDs of
// other key types are refused: Parley nodes use Ed25519.
func ParseNodeID(s string) (NodeID, error) {
	var n NodeID
	if len(s) > 64 {
		return n, fmt.Errorf("%w: peer ID %q is too long", ErrInvalidKey, truncate(s))
	}
	b, err := base58Decode(s)
	if err != nil {
		return n, fmt.Errorf("%w: peer ID %q: %w", ErrInvalidKey, truncate(s), err)
	}
	return NodeIDFromPeerIDBytes(b)
}

// NodeIDFromPeerIDBytes parses a binary libp2p Ed25519 peer ID.
func NodeIDFromPeerIDBytes(b []byte) (NodeID, error) {
	var n NodeID
	if len(b) != len(peerIDPrefix)+PublicKeySize || !bytes.Equal(b[:len(peerIDPrefix)], peerIDPrefix) {
		return n, fmt.Errorf("%w: not an Ed25519 identity peer ID", ErrInvalidKey)
	}
	copy(n[:], b[len(peerIDPrefix):])
	return n, nil
}

// Verify reports whether sig is a valid signature by n under label.
func (n NodeID) Verify(label string, sig Signature, parts ...[]byte) bool {
	return verify(n, label, sig, parts...)
}

// MarshalText implements encoding.TextMarshaler.
func (n NodeID) MarshalText() ([]byte, error) { return []byte(n.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (n *NodeID) UnmarshalText(b []byte) error {
	k, err := ParseNodeID(string(b))
	if err == nil {
		*n = k
	}
	return err
}

// NodeKey is a node's private Ed25519 key: its libp2p identity and the key it
// stamps envelopes and tickets with.
type NodeKey struct{ signer }

// GenerateNodeKey returns a new node key using randomness from r.
func GenerateNodeKey(r io.Reader) (NodeKey, error) {
	s, err := newSigner(r)
	return NodeKey{s}, err
}

// NodeKeyFromSeed returns the node key with the given 32-byte seed.
func NodeKeyFromSeed(seed []byte) (NodeKey, error) {
	s, err := signerFromSeed(seed)
	return NodeKey{s}, err
}

// Public returns the node's ID.
func (k NodeKey) Public() NodeID { return k.public() }

// Sign signs the labeled parts.
func (k NodeKey) Sign(label string, parts ...[]byte) Signature { return k.sign(label, parts...) }

// Seed returns a copy of the 32-byte seed, for the node's key file and for
// building the matching libp2p private key.
func (k NodeKey) Seed() []byte { return k.seed() }

// ---- base58btc (the Bitcoin alphabet), as multibase and libp2p use ----

const b58Alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

var b58Index = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	for i := 0; i < len(b58Alphabet); i++ {
		t[b58Alphabet[i]] = int8(i)
	}
	return t
}()

func base58Encode(b []byte) string {
	zeros := 0
	for zeros < len(b) && b[zeros] == 0 {
		zeros++
	}
	// log(256)/log(58) < 1.37
	digits := make([]byte, (len(b)-zeros)*138/100+1)
	n := 0
	for _, c := range b[zeros:] {
		carry := int(c)
		for i := 0; i < n; i++ {
			carry += int(digits[i]) << 8
			digits[i] = byte(carry % 58)
			carry /= 58
		}
		for carry > 0 {
			digits[n] = byte(carry % 58)
			n++
			carry /= 58
		}
	}
	out := make([]byte, 0, zeros+n)
	for i := 0; i < zeros; i++ {
		out = append(out, '1')
	}
	for i := n - 1; i >= 0; i-- {
		out = append(out, b58Alphabet[digits[i]])
	}
	return string(out)
}

func base58Decode(s string) ([]byte, error) {
	if s == "" {
		return nil, fmt.Errorf("empty")
	}
	zeros := 0
	for zeros < len(s) && s[zeros] == '1' {
		zeros++
	}
	bytesOut := make([]byte, 0, len(s))
	for i := zeros; i < len(s); i++ {
		v := b58Index[s[i]]
		if v < 0 {
			return nil, fmt.Errorf("invalid base58 character %q", s[i])
		}
		carry := int(v)
		for j := 0; j < len(bytesOut); j++ {
			carry += int(bytesOut[j]) * 58
			bytesOut[j] = byte(carry)
			carry >>= 8
		}
		for carry > 0 {
			bytesOut = append(bytesOut, byte(carry))
			carry >>= 8
		}
	}
	out := make([]byte, zeros, zeros+len(bytesOut))
	for i := len(bytesOut) - 1; i >= 0; i-- {
		out = append(out, bytesOut[i])
	}
	return out, nil
}
