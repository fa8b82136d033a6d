// Package blob implements Parley's file encryption (spec 08-blobs): files
// are encrypted on the client in fixed-size chunks under a fresh random key,
// addressed by the hash of their ciphertext, and shared as a link that
// carries the key only in its #fragment.
//
// The construction, in one paragraph: a 32-byte blob Key is expanded with
// HKDF-SHA256 into a ChaCha20-Poly1305 key and a 32-byte key commitment. The
// plaintext is cut into chunks of wire.BlobChunkSize bytes (the last one
// shorter; an empty file is one empty chunk), each sealed with a nonce and
// associated data that encode its index and whether it is the last one (the
// STREAM construction), so chunks cannot be reordered, dropped or appended.
// A Manifest lists the plaintext size, the chunk count, the key commitment and
// the hash of every ciphertext chunk; the blob's Address is the hash of the
// manifest's encoding.
//
// A node never has the key. It checks each chunk it stores, serves or
// fetches against the manifest with VerifyChunk, so a transfer stops at the
// first bad chunk. A key holder opens chunks with OpenChunk, which checks the
// key commitment first: the manifest, and so the address, fixes the one key
// that opens the blob, so a disclosed key proves what the blob contains
// (no "invisible salamanders").
//
// Nothing here does I/O: Encrypt and Decrypt take an io.Reader or io.Writer
// and callbacks; a node or client supplies storage and transport.
package blob

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/parley-chat/parley/protocol/wire"
)

// Version is the version of the blob format: the first byte of a manifest's
// encoding and of every chunk's associated data.
const Version = 1

// Sizes and limits of the blob format (spec 08-blobs §8). The chunk size and
// chunk-count limit themselves are wire.BlobChunkSize and wire.MaxBlobChunks.
const (
	// KeySize is the size of a blob key in bytes.
	KeySize = 32
	// Overhead is the number of bytes a chunk's ciphertext adds to its
	// plaintext: the Poly1305 tag.
	Overhead = chacha20poly1305.Overhead
	// MaxChunkSize is the largest ciphertext chunk: a full chunk plus its tag.
	MaxChunkSize = wire.BlobChunkSize + Overhead
	// MaxSize is the largest plaintext a blob may hold, in bytes (2 GiB).
	MaxSize = uint64(wire.MaxBlobChunks) * wire.BlobChunkSize
)

// Errors. Each is wrapped with detail; match with errors.Is.
var (
	// ErrWrongKey: the key's commitment is not the manifest's, so this key
	// does not open this blob.
	ErrWrongKey = errors.New("blob: wrong key")
	// ErrBadChunk: a ciphertext chunk does not match the manifest (wrong
	// hash, wrong length or index out of range). It comes in a *ChunkError
	// that names the index.
	ErrBadChunk = errors.New("blob: bad chunk")
	// ErrDecrypt: a chunk matches the manifest and the key matches the
	// commitment, yet the chunk does not authenticate: whoever made the
	// manifest listed a chunk the key did not seal at that position. It comes
	// in a *ChunkError that names the index.
	ErrDecrypt = errors.New("blob: chunk does not decrypt")
	// ErrBadManifest: an in-memory Manifest is inconsistent (its chunk
	// count does not follow from its size, or it lists another number of
	// chunk hashes). Parsed manifests are always consistent.
	ErrBadManifest = errors.New("blob: inconsistent manifest")
	// ErrWrongAddress: a manifest's encoding does not hash to the address
	// it was fetched for.
	ErrWrongAddress = errors.New("blob: manifest does not match its address")
	// ErrSize: the plaintext given to an Encryptor or to Encrypt does not
	// match the size declared up front.
	ErrSize = errors.New("blob: plaintext does not match the declared size")
	// ErrTooLarge: the declared size exceeds MaxSize.
	ErrTooLarge = errors.New("blob: too large")
	// ErrNoKey: a link has no #fragment, so no key. It comes together with
	// a *wire.ParseError.
	ErrNoKey = errors.New("blob: link has no key")
)

// ChunkError reports the chunk at which verification or decryption failed.
// Err is ErrBadChunk or ErrDecrypt.
type ChunkError struct {
	Index  uint32
	Err    error
	Reason string
}

// Error names the error class, the chunk index and the reason.
func (e *ChunkError) Error() string {
	return fmt.Sprintf("%v: chunk %d: %s", e.Err, e.Index, e.Reason)
}

// Unwrap returns e.Err, so errors.Is(err, ErrBadChunk) works.
func (e *ChunkError) Unwrap() error { return e.Err }

// Key is a blob key: 32 random bytes, fresh for every blob. It exists only on
// clients and in links' fragments; a node sees it only when a participant
// discloses it in a report. It does not print: every fmt verb shows
// "[blob key]".
type Key [KeySize]byte

// NewKey returns a fresh blob key read from r (a cryptographic source such as
// crypto/rand.Reader). A key MUST NOT be used for two different blobs.
func NewKey(r io.Reader) (Key, error) {
	var k Key
	if _, err := io.ReadFull(r, k[:]); err != nil {
		return Key{}, fmt.Errorf("blob: reading randomness: %w", err)
	}
	return k, nil
}

const keyPlaceholder = "[blob key]"

// String returns "[blob key]", never the key.
func (Key) String() string { return keyPlaceholder }

// GoString keeps %#v from printing key material.
func (Key) GoString() string { return keyPlaceholder }

// Format implements fmt.Formatter so that no verb (%x, %d, ...) prints the
// key's bytes.
func (Key) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, keyPlaceholder) }

// Commitment returns the key's commitment (spec 08-blobs §2): the value a
// manifest stores so that only this key opens the blob.
func (k Key) Commitment() [32]byte {
	_, c := derive(k)
	return c
}

// derive expands a blob key into its ChaCha20-Poly1305 key and its key
// commitment (spec 08-blobs §2): PRK = HKDF-Extract(salt = empty, key), then
// HKDF-Expand(PRK, info = label, 32) for each.
func derive(k Key) (enc, commit [32]byte) {
	prk, err := hkdf.Extract(sha256.New, k[:], nil)
	if err != nil {
		panic("blob: HKDF-Extract failed: " + err.Error())
	}
	e, err := hkdf.Expand(sha256.New, prk, wire.LabelBlobKeys, 32)
	if err != nil {
		panic("blob: HKDF-Expand failed: " + err.Error())
	}
	c, err := hkdf.Expand(sha256.New, prk, wire.LabelBlobCommit, 32)
	if err != nil {
		panic("blob: HKDF-Expand failed: " + err.Error())
	}
	copy(enc[:], e)
	copy(commit[:], c)
	return enc, commit
}

func newAEAD(enc [32]byte) cipher.AEAD {
	a, err := chacha20poly1305.New(enc[:])
	if err != nil {
		panic("blob: ChaCha20-Poly1305 key setup failed: " + err.Error())
	}
	return a
}

// nonce is a chunk's 12-byte ChaCha20-Poly1305 nonce (spec 08-blobs §3):
// seven zero bytes, the index as a big-endian uint32, the final flag.
func nonce(index uint32, final bool) (n [chacha20poly1305.NonceSize]byte) {
	binary.BigEndian.PutUint32(n[7:11], index)
	if final {
		n[11] = 1
	}
	return n
}

// adSize is the length of a chunk's associated data.
const adSize = 6

// ad is a chunk's associated data (spec 08-blobs §3): the format version,
// the index as a big-endian uint32, the final flag.
func ad(index uint32, final bool) (a [adSize]byte) {
	a[0] = Version
	binary.BigEndian.PutUint32(a[1:5], index)
	if final {
		a[5] = 1
	}
	return a
}

// ChunkHash is the hash of ciphertext chunk number index, as a manifest
// lists it: H("parley/v1/blob-chunk", u32 index, chunk).
func ChunkHash(index uint32, chunk []byte) [32]byte {
	var i [4]byte
	binary.BigEndian.PutUint32(i[:], index)
	return wire.Hash(wire.LabelBlobChunk, i[:], chunk)
}

// chunkCount is the number of chunks of a blob of size plaintext bytes, for
// size <= MaxSize: ceil(size / BlobChunkSize), and 1 for an empty blob.
func chunkCount(size uint64) uint32 {
	if size == 0 {
		return 1
	}
	return uint32((size + wire.BlobChunkSize - 1) / wire.BlobChunkSize)
}

// plainLen is the plaintext length of chunk index of a consistent blob of
// size bytes in count chunks; index < count.
func plainLen(size uint64, count, index uint32) int {
	if index+1 < count {
		return wire.BlobChunkSize
	}
	return int(size - uint64(count-1)*wire.BlobChunkSize)
}

// maxCipherLen is the length of a blob's longest ciphertext chunk, for
// size <= MaxSize: the first chunk is never shorter than a later one.
func maxCipherLen(size uint64) int {
	if size < wire.BlobChunkSize {
		return int(size) + Overhead
	}
	return MaxChunkSize
}

// Encryptor seals a blob chunk by chunk, in order, and then yields its
// manifest. Its size is declared up front, so it knows which chunk is the
// last one. An Encryptor is not safe for concurrent use.
type Encryptor struct {
	aead cipher.AEAD
	// The chunk's nonce and associated data live here rather than on the
	// stack: slices passed to the AEAD interface would escape, costing two
	// allocations per chunk.
	nonce  [chacha20poly1305.NonceSize]byte
	ad     [adSize]byte
	size   uint64
	count  uint32
	next   uint32
	commit [32]byte
	hashes [][32]byte
	buf    []byte
}

// NewEncryptor starts encrypting a blob of size plaintext bytes under key.
// It fails with ErrTooLarge if size exceeds MaxSize.
func NewEncryptor(key Key, size uint64) (*Encryptor, error) {
	if size > MaxSize {
		return nil, fmt.Errorf("%w: %d bytes (limit %d)", ErrTooLarge, size, MaxSize)
	}
	enc, commit := derive(key)
	count := chunkCount(size)
	return &Encryptor{
		aead:   newAEAD(enc),
		size:   size,
		count:  count,
		commit: commit,
		hashes: make([][32]byte, 0, count),
	}, nil
}

// ChunkCount returns the number of chunks the blob has.
func (e *Encryptor) ChunkCount() uint32 { return e.count }

// SealChunk encrypts the next chunk and returns its ciphertext. Every chunk
// but the last takes exactly wire.BlobChunkSize bytes of plaintext; the last
// takes the rest (none for an empty blob). A chunk of another length, or a
// chunk after the last, fails with ErrSize and changes nothing.
//
// The returned slice is owned by the Encryptor and overwritten by the next
// call: copy it to keep it. plaintext may be that slice (exactly, to seal in
// place) but must not otherwise overlap it.
func (e *Encryptor) SealChunk(plaintext []byte) ([]byte, error) {
	if need := len(plaintext) + Overhead; cap(e.buf) < need {
		e.buf = make([]byte, 0, max(need, maxCipherLen(e.size)))
	}
	return e.seal(e.buf[:0], plaintext)
}

// seal checks plaintext against the next chunk's expected length, seals it
// appending to dst (which may be plaintext[:0]) and records its hash.
func (e *Encryptor) seal(dst, plaintext []byte) ([]byte, error) {
	if e.next >= e.count {
		return nil, fmt.Errorf("%w: all %d chunks are already sealed", ErrSize, e.count)
	}
	i := e.next
	if want := plainLen(e.size, e.count, i); len(plaintext) != want {
		return nil, fmt.Errorf("%w: chunk %d has %d bytes, want %d", ErrSize, i, len(plaintext), want)
	}
	final := i+1 == e.count
	e.nonce, e.ad = nonce(i, final), ad(i, final)
	out := e.aead.Seal(dst, e.nonce[:], plaintext, e.ad[:])
	e.hashes = append(e.hashes, ChunkHash(i, out))
	e.next++
	return out, nil
}

// Manifest returns the blob's manifest once every chunk is sealed, or an
// error matching ErrSize before that.
func (e *Encryptor) Manifest() (*Manifest, error) {
	if e.next != e.count {
		return nil, fmt.Errorf("%w: %d of %d chunks sealed", ErrSize, e.next, e.count)
	}
	return &Manifest{
		Size:          e.size,
		ChunkCount:    e.count,
		KeyCommitment: e.commit,
		ChunkHashes:   slices.Clone(e.hashes),
	}, nil
}

// Encrypt reads exactly size bytes of plaintext from r, encrypts them under
// key and hands each ciphertext chunk to emit, in order, before returning
// the manifest. The chunk passed to emit is valid only during the call. A
// reader that ends early fails with ErrSize; bytes after size are not read.
// An error from emit is returned as it is.
func Encrypt(key Key, r io.Reader, size uint64, emit func(index uint32, chunk []byte) error) (*Manifest, error) {
	e, err := NewEncryptor(key, size)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, maxCipherLen(size))
	var read uint64
	for i := range e.count {
		n := plainLen(size, e.count, i)
		if got, err := io.ReadFull(r, buf[:n]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, fmt.Errorf("%w: reader ended after %d of %d bytes", ErrSize, read+uint64(got), size)
			}
			return nil, fmt.Errorf("blob: reading plaintext: %w", err)
		}
		read += uint64(n)
		// Seal in place: the chunk's ciphertext replaces its plaintext.
		c, err := e.seal(buf[:0], buf[:n])
		if err != nil {
			panic("blob: Encrypt sealed a chunk of the wrong size: " + err.Error())
		}
		if err := emit(i, c); err != nil {
			return nil, err
		}
	}
	return e.Manifest()
}

// VerifyChunk checks, without the key, that chunk is ciphertext chunk number
// index of the blob m describes: the index is in range, the length is the
// one the manifest's size implies, and the chunk hashes to the manifest's
// entry. Nodes call it on every chunk they store, serve or fetch, so a
// transfer stops at the first bad chunk. It returns nil, an error matching
// ErrBadManifest, or a *ChunkError matching ErrBadChunk.
func VerifyChunk(m *Manifest, index uint32, chunk []byte) error {
	if err := m.check(); err != nil {
		return err
	}
	return verifyChunk(m, index, chunk)
}

func verifyChunk(m *Manifest, index uint32, chunk []byte) error {
	if index >= m.ChunkCount {
		return &ChunkError{Index: index, Err: ErrBadChunk, Reason: fmt.Sprintf("index out of range (blob has %d chunks)", m.ChunkCount)}
	}
	if want := plainLen(m.Size, m.ChunkCount, index) + Overhead; len(chunk) != want {
		return &ChunkError{Index: index, Err: ErrBadChunk, Reason: fmt.Sprintf("%d bytes, want %d", len(chunk), want)}
	}
	if ChunkHash(index, chunk) != m.ChunkHashes[index] {
		return &ChunkError{Index: index, Err: ErrBadChunk, Reason: "hash does not match the manifest"}
	}
	return nil
}

// opener opens the chunks of one blob under one key whose commitment it has
// checked.
type opener struct {
	aead  cipher.AEAD
	m     *Manifest
	nonce [chacha20poly1305.NonceSize]byte // as in Encryptor
	ad    [adSize]byte
}

func newOpener(key Key, m *Manifest) (*opener, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	enc, commit := derive(key)
	if subtle.ConstantTimeCompare(commit[:], m.KeyCommitment[:]) != 1 {
		return nil, fmt.Errorf("%w: its commitment is not the manifest's", ErrWrongKey)
	}
	return &opener{aead: newAEAD(enc), m: m}, nil
}

// open verifies chunk against the manifest and decrypts it, appending the
// plaintext to dst, which must not overlap chunk.
func (o *opener) open(dst []byte, index uint32, chunk []byte) ([]byte, error) {
	if err := verifyChunk(o.m, index, chunk); err != nil {
		return nil, err
	}
	final := index+1 == o.m.ChunkCount
	o.nonce, o.ad = nonce(index, final), ad(index, final)
	p, err := o.aead.Open(dst, o.nonce[:], chunk, o.ad[:])
	if err != nil {
		return nil, &ChunkError{Index: index, Err: ErrDecrypt, Reason: "authentication failed"}
	}
	return p, nil
}

// OpenChunk decrypts ciphertext chunk number index of the blob m describes.
// It checks, in this order: the key's commitment against the manifest's, in
// constant time (ErrWrongKey); the chunk against the manifest as VerifyChunk
// does (ErrBadChunk); the chunk's authentication tag (ErrDecrypt).
func OpenChunk(key Key, m *Manifest, index uint32, chunk []byte) ([]byte, error) {
	o, err := newOpener(key, m)
	if err != nil {
		return nil, err
	}
	return o.open(nil, index, chunk)
}

// Decrypt decrypts the blob m describes, asking next for each ciphertext
// chunk in order and writing each chunk's plaintext to w as soon as it is
// verified. It fails before calling next if key does not match the
// manifest's commitment. On any error, w has received exactly the chunks
// before the failing one; everything written is authentic, but the blob is
// incomplete. Errors from next and w are wrapped with the chunk's index.
func Decrypt(key Key, m *Manifest, next func(index uint32) ([]byte, error), w io.Writer) error {
	o, err := newOpener(key, m)
	if err != nil {
		return err
	}
	buf := make([]byte, 0, maxCipherLen(m.Size)-Overhead)
	for i := range m.ChunkCount {
		c, err := next(i)
		if err != nil {
			return fmt.Errorf("blob: fetching chunk %d: %w", i, err)
		}
		p, err := o.open(buf[:0], i, c)
		if err != nil {
			return err
		}
		if _, err := w.Write(p); err != nil {
			return fmt.Errorf("blob: writing chunk %d: %w", i, err)
		}
	}
	return nil
}
