package blob

import (
	"encoding/base32"
	"fmt"
	"strings"

	"github.com/parley-chat/parley/protocol/wire"
)

// Manifest describes a blob's ciphertext: what a node stores and serves next
// to the chunks, and what the blob's Address is the hash of (spec 08-blobs
// §4). It holds no secret: the key commitment reveals nothing about the key.
type Manifest struct {
	Size          uint64     // plaintext bytes, at most MaxSize
	ChunkCount    uint32     // chunks: ceil(Size / wire.BlobChunkSize), 1 for an empty blob
	KeyCommitment [32]byte   // the blob key's commitment (Key.Commitment)
	ChunkHashes   [][32]byte // ChunkHash(i, chunk i) for every chunk, in order
}

// manifestHeaderSize is the size of a manifest's encoding before its chunk
// hashes.
const manifestHeaderSize = 1 + 8 + 4 + 32

// MaxManifestSize is the size of the largest manifest encoding, for a blob of
// wire.MaxBlobChunks chunks (a little over 1 MiB).
const MaxManifestSize = manifestHeaderSize + 32*wire.MaxBlobChunks

// check reports whether m is consistent: what every function that reads a
// manifest relies on.
func (m *Manifest) check() error {
	if m.Size > MaxSize {
		return fmt.Errorf("%w: size %d exceeds %d", ErrBadManifest, m.Size, MaxSize)
	}
	if want := chunkCount(m.Size); m.ChunkCount != want {
		return fmt.Errorf("%w: %d chunks for %d bytes, want %d", ErrBadManifest, m.ChunkCount, m.Size, want)
	}
	if len(m.ChunkHashes) != int(m.ChunkCount) {
		return fmt.Errorf("%w: %d chunk hashes for %d chunks", ErrBadManifest, len(m.ChunkHashes), m.ChunkCount)
	}
	return nil
}

// encode returns the canonical encoding of m's fields, whether or not they
// are consistent.
func (m *Manifest) encode() []byte {
	e := wire.NewEncoder(manifestHeaderSize + 32*len(m.ChunkHashes))
	e.U8(Version)
	e.U64(m.Size)
	e.U32(m.ChunkCount)
	e.Fixed(m.KeyCommitment[:])
	for i := range m.ChunkHashes {
		e.Fixed(m.ChunkHashes[i][:])
	}
	return e.Bytes()
}

// MarshalBinary returns the canonical encoding of m, or an error matching
// ErrBadManifest if m is inconsistent (it would not parse).
func (m *Manifest) MarshalBinary() ([]byte, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	return m.encode(), nil
}

// ParseManifest decodes a manifest. It refuses, with a *wire.ParseError, any
// input that is not the canonical encoding of a consistent manifest: a size
// above MaxSize, a chunk count that does not follow from the size, a
// different number of chunk hashes, trailing bytes.
func ParseManifest(b []byte) (*Manifest, error) {
	d := wire.NewDecoder("blob manifest", b)
	m := new(Manifest)
	d.Version(Version)
	m.Size = d.Field("size").U64()
	if d.Err() == nil && m.Size > MaxSize {
		d.Fail("size %d exceeds limit %d", m.Size, MaxSize)
	}
	m.ChunkCount = d.Field("chunk count").U32()
	if d.Err() == nil && m.ChunkCount != chunkCount(m.Size) {
		d.Fail("chunk count %d does not match size %d (want %d)", m.ChunkCount, m.Size, chunkCount(m.Size))
	}
	d.Field("key commitment").Fixed(m.KeyCommitment[:])
	d.Field("chunk hashes")
	// The count is at most wire.MaxBlobChunks here; also make sure the input
	// holds that many hashes before allocating them.
	if d.Err() == nil && d.Remaining() != 32*int(m.ChunkCount) {
		d.Fail("%d bytes for %d chunk hashes, want %d", d.Remaining(), m.ChunkCount, 32*int(m.ChunkCount))
	}
	if err := d.Err(); err != nil {
		return nil, err
	}
	m.ChunkHashes = make([][32]byte, m.ChunkCount)
	for i := range m.ChunkHashes {
		d.Fixed(m.ChunkHashes[i][:])
	}
	if err := d.Finish(); err != nil {
		return nil, err
	}
	return m, nil
}

// VerifyManifest decodes a manifest fetched for addr and checks that it is
// the manifest addr names. It returns a *wire.ParseError for malformed input
// and an error matching ErrWrongAddress for a well-formed manifest of another
// blob.
func VerifyManifest(addr Address, b []byte) (*Manifest, error) {
	m, err := ParseManifest(b)
	if err != nil {
		return nil, err
	}
	// Encodings are canonical, so hashing b is hashing m's encoding.
	if got := Address(wire.Hash(wire.LabelBlobAddress, b)); got != addr {
		return nil, fmt.Errorf("%w: manifest of %s fetched for %s", ErrWrongAddress, got, addr)
	}
	return m, nil
}

// Address returns the blob's address: H("parley/v1/blob-address", manifest
// encoding). It commits to every byte of the ciphertext, the plaintext size
// and the key commitment.
func (m *Manifest) Address() Address {
	return Address(wire.Hash(wire.LabelBlobAddress, m.encode()))
}

// Address names a blob by the hash of its manifest, and so of its
// ciphertext (spec 08-blobs §5). Its text form is "blob_" followed by the 32
// bytes in unpadded lowercase base32 (RFC 4648 alphabet): case-insensitive
// file systems and URL handling cannot conflate two addresses.
type Address [32]byte

const addressPrefix = "blob_"

// addressTextLen is the length of an address's text form.
const addressTextLen = len(addressPrefix) + 52

var b32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// String returns the address's text form, "blob_" + 52 base32 characters.
func (a Address) String() string { return addressPrefix + b32.EncodeToString(a[:]) }

// ParseAddress parses the text form of an Address. It accepts only the form
// String returns (no upper case, padding, whitespace or non-zero trailing
// bits) and returns a *wire.ParseError otherwise.
func ParseAddress(s string) (Address, error) {
	var a Address
	if err := parseAddress(s, &a); err != "" {
		return Address{}, &wire.ParseError{What: "blob address", Reason: err}
	}
	return a, nil
}

// parseAddress fills a from s, or returns why it cannot.
func parseAddress(s string, a *Address) string {
	if len(s) != addressTextLen {
		return fmt.Sprintf("%d characters, want %d", len(s), addressTextLen)
	}
	rest, ok := strings.CutPrefix(s, addressPrefix)
	if !ok {
		return fmt.Sprintf("does not start with %q", addressPrefix)
	}
	b, err := b32.DecodeString(rest)
	if err != nil || len(b) != len(a) {
		return "not lowercase base32"
	}
	copy(a[:], b)
	// The decoder ignores line breaks and the unused low bits of the last
	// character; only the canonical form is accepted.
	if b32.EncodeToString(a[:]) != rest {
		return "not the canonical base32 form"
	}
	return ""
}

// MarshalText implements encoding.TextMarshaler.
func (a Address) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (a *Address) UnmarshalText(b []byte) error {
	p, err := ParseAddress(string(b))
	if err == nil {
		*a = p
	}
	return err
}
