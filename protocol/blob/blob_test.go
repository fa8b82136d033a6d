package blob_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/parley-chat/parley/protocol/blob"
	"github.com/parley-chat/parley/protocol/wire"
	"github.com/parley-chat/parley/spec/vectortest"
)

const C = wire.BlobChunkSize

func testKey(t testing.TB, label string) blob.Key {
	t.Helper()
	k, err := blob.NewKey(vectortest.Rand(label))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// pattern returns n bytes of the deterministic test pattern byte(i % 251)
// (251 is prime, so the pattern does not line up with chunk boundaries).
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

// encrypt encrypts pt under key with Encrypt and returns the manifest and
// copies of the chunks.
func encrypt(t testing.TB, key blob.Key, pt []byte) (*blob.Manifest, [][]byte) {
	t.Helper()
	var chunks [][]byte
	m, err := blob.Encrypt(key, bytes.NewReader(pt), uint64(len(pt)), func(i uint32, c []byte) error {
		if int(i) != len(chunks) {
			t.Fatalf("Encrypt emitted chunk %d after %d chunks", i, len(chunks))
		}
		chunks = append(chunks, bytes.Clone(c))
		return nil
	})
	if err != nil {
		t.Fatalf("Encrypt(%d bytes) = %v", len(pt), err)
	}
	return m, chunks
}

// serve returns a Decrypt callback that hands out chunks.
func serve(chunks [][]byte) func(uint32) ([]byte, error) {
	return func(i uint32) ([]byte, error) {
		if int(i) >= len(chunks) {
			return nil, io.ErrUnexpectedEOF
		}
		return chunks[i], nil
	}
}

// chunkErr checks that err is a *ChunkError at index wrapping want.
func chunkErr(t *testing.T, call string, err error, index uint32, want error) {
	t.Helper()
	var ce *blob.ChunkError
	if !errors.Is(err, want) || !errors.As(err, &ce) || ce.Index != index {
		t.Errorf("%s = %v, want %v at chunk %d", call, err, want, index)
	}
}

// spec 08-blobs §3: chunking, including the empty blob (one empty chunk) and
// sizes around the chunk boundary; every chunk verifies and opens, and
// Encrypt, the Encryptor, OpenChunk and Decrypt agree.
func TestRoundTrip(t *testing.T) {
	key := testKey(t, "round trip")
	tests := []struct {
		size      int
		wantCount uint32
	}{
		{0, 1},
		{1, 1},
		{C - 1, 1},
		{C, 1},
		{C + 1, 2},
		{3*C + 5, 4},
		{4<<20 + 123, 65},
	}
	for _, tt := range tests {
		pt := pattern(tt.size)
		m, chunks := encrypt(t, key, pt)
		if m.Size != uint64(tt.size) || m.ChunkCount != tt.wantCount || len(chunks) != int(tt.wantCount) || len(m.ChunkHashes) != int(tt.wantCount) {
			t.Fatalf("Encrypt(%d bytes): size %d, %d chunks, %d emitted, %d hashes; want %d chunks", tt.size, m.Size, m.ChunkCount, len(chunks), len(m.ChunkHashes), tt.wantCount)
		}
		if m.KeyCommitment != key.Commitment() {
			t.Errorf("Encrypt(%d bytes): manifest commitment is not key.Commitment()", tt.size)
		}

		// The streaming Encryptor produces the same chunks and manifest.
		e, err := blob.NewEncryptor(key, uint64(tt.size))
		if err != nil {
			t.Fatal(err)
		}
		if e.ChunkCount() != tt.wantCount {
			t.Errorf("NewEncryptor(%d).ChunkCount() = %d, want %d", tt.size, e.ChunkCount(), tt.wantCount)
		}
		var got []byte
		for i := range chunks {
			c, err := e.SealChunk(pt[min(i*C, tt.size):min((i+1)*C, tt.size)])
			if err != nil {
				t.Fatalf("SealChunk(%d) = %v", i, err)
			}
			if !bytes.Equal(c, chunks[i]) {
				t.Fatalf("size %d: SealChunk(%d) differs from Encrypt's chunk", tt.size, i)
			}
			want := C + blob.Overhead
			if i == len(chunks)-1 {
				want = tt.size - i*C + blob.Overhead
			}
			if len(c) != want {
				t.Errorf("size %d: chunk %d is %d bytes, want %d", tt.size, i, len(c), want)
			}
			if err := blob.VerifyChunk(m, uint32(i), c); err != nil {
				t.Errorf("size %d: VerifyChunk(%d) = %v", tt.size, i, err)
			}
			p, err := blob.OpenChunk(key, m, uint32(i), c)
			if err != nil {
				t.Fatalf("size %d: OpenChunk(%d) = %v", tt.size, i, err)
			}
			got = append(got, p...)
		}
		m2, err := e.Manifest()
		if err != nil {
			t.Fatalf("Encryptor.Manifest() = %v", err)
		}
		if m2.Address() != m.Address() {
			t.Errorf("size %d: Encryptor and Encrypt manifests differ", tt.size)
		}
		if !bytes.Equal(got, pt) {
			t.Errorf("size %d: OpenChunk over all chunks does not give the plaintext back", tt.size)
		}

		var out bytes.Buffer
		if err := blob.Decrypt(key, m, serve(chunks), &out); err != nil {
			t.Fatalf("Decrypt(%d bytes) = %v", tt.size, err)
		}
		if !bytes.Equal(out.Bytes(), pt) {
			t.Errorf("Decrypt(%d bytes) returned %d bytes that differ from the plaintext", tt.size, out.Len())
		}

		// spec 08-blobs §4: the manifest encoding round-trips and so does
		// the address.
		enc, err := m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if want := 45 + 32*int(tt.wantCount); len(enc) != want {
			t.Errorf("size %d: manifest is %d bytes, want %d", tt.size, len(enc), want)
		}
		back, err := blob.VerifyManifest(m.Address(), enc)
		if err != nil {
			t.Fatalf("VerifyManifest(Address, Marshal(m)) = %v", err)
		}
		if back.Address() != m.Address() || back.Size != m.Size {
			t.Errorf("size %d: parsed manifest differs", tt.size)
		}
	}
}

// spec 08-blobs §3: the empty blob is one chunk of just the tag.
func TestEmptyBlob(t *testing.T) {
	key := testKey(t, "empty")
	m, chunks := encrypt(t, key, nil)
	if len(chunks) != 1 || len(chunks[0]) != blob.Overhead {
		t.Fatalf("Encrypt(empty) gave %d chunks (first %d bytes), want one of %d bytes", len(chunks), len(chunks[0]), blob.Overhead)
	}
	p, err := blob.OpenChunk(key, m, 0, chunks[0])
	if err != nil || len(p) != 0 {
		t.Errorf("OpenChunk(empty) = %x, %v, want empty, nil", p, err)
	}
}

// spec 08-blobs §7: a flipped byte anywhere in any chunk is caught at that
// chunk, by nodes (VerifyChunk) and by key holders (OpenChunk); Decrypt
// delivers every chunk before it, and nothing after.
func TestTamperEveryChunk(t *testing.T) {
	key := testKey(t, "tamper")
	pt := pattern(4*C + 100)
	m, chunks := encrypt(t, key, pt)
	for i, c := range chunks {
		for _, pos := range []int{0, len(c) / 2, len(c) - blob.Overhead - 1, len(c) - 1} {
			if pos < 0 {
				continue
			}
			bad := bytes.Clone(c)
			bad[pos] ^= 0x20
			idx := uint32(i)
			chunkErr(t, fmt.Sprintf("VerifyChunk(%d, flip at %d)", i, pos), blob.VerifyChunk(m, idx, bad), idx, blob.ErrBadChunk)
			_, err := blob.OpenChunk(key, m, idx, bad)
			chunkErr(t, fmt.Sprintf("OpenChunk(%d, flip at %d)", i, pos), err, idx, blob.ErrBadChunk)

			served := bytes.Clone(chunks[i])
			served[pos] ^= 0x20
			tampered := append([][]byte(nil), chunks...)
			tampered[i] = served
			var out bytes.Buffer
			err = blob.Decrypt(key, m, serve(tampered), &out)
			chunkErr(t, fmt.Sprintf("Decrypt(flip in chunk %d at %d)", i, pos), err, idx, blob.ErrBadChunk)
			if !bytes.Equal(out.Bytes(), pt[:i*C]) {
				t.Errorf("Decrypt(flip in chunk %d) wrote %d bytes, want the %d bytes before it", i, out.Len(), i*C)
			}
		}
	}
}

// spec 08-blobs §3, §7: reordering, truncating and extending are caught. A
// node serving the wrong chunk is caught by the chunk hash, which binds the
// index; a manifest that lists real chunks at the wrong positions (only
// its author could make one) is caught by the nonce and associated data,
// which bind index and final flag.
func TestReorderTruncateExtend(t *testing.T) {
	key := testKey(t, "stream")
	pt := pattern(3 * C)
	m, chunks := encrypt(t, key, pt)

	// Served out of order or cut short: the node-side check fails.
	chunkErr(t, "VerifyChunk(0, chunk 1)", blob.VerifyChunk(m, 0, chunks[1]), 0, blob.ErrBadChunk)
	chunkErr(t, "VerifyChunk(2, chunk 1)", blob.VerifyChunk(m, 2, chunks[1]), 2, blob.ErrBadChunk)
	chunkErr(t, "VerifyChunk(1, truncated)", blob.VerifyChunk(m, 1, chunks[1][:100]), 1, blob.ErrBadChunk)
	chunkErr(t, "VerifyChunk(1, extended)", blob.VerifyChunk(m, 1, append(bytes.Clone(chunks[1]), 0)), 1, blob.ErrBadChunk)
	chunkErr(t, "VerifyChunk(3, extra chunk)", blob.VerifyChunk(m, 3, chunks[2]), 3, blob.ErrBadChunk)
	swapped := [][]byte{chunks[1], chunks[0], chunks[2]}
	var out bytes.Buffer
	chunkErr(t, "Decrypt(swapped)", blob.Decrypt(key, m, serve(swapped), &out), 0, blob.ErrBadChunk)

	// A stream that ends early fails with the fetch error, not silently.
	out.Reset()
	if err := blob.Decrypt(key, m, serve(chunks[:2]), &out); !errors.Is(err, io.ErrUnexpectedEOF) || out.Len() != 2*C {
		t.Errorf("Decrypt(2 of 3 chunks) = %v after %d bytes, want ErrUnexpectedEOF after %d", err, out.Len(), 2*C)
	}

	h := func(i uint32, c []byte) [32]byte { return blob.ChunkHash(i, c) }
	forged := []struct {
		name  string
		m     blob.Manifest
		index uint32
		chunk []byte
	}{
		{"reordered", blob.Manifest{Size: m.Size, ChunkCount: 3, KeyCommitment: m.KeyCommitment,
			ChunkHashes: [][32]byte{h(0, chunks[1]), h(1, chunks[0]), m.ChunkHashes[2]}}, 0, chunks[1]},
		{"truncated", blob.Manifest{Size: 2 * C, ChunkCount: 2, KeyCommitment: m.KeyCommitment,
			ChunkHashes: [][32]byte{m.ChunkHashes[0], m.ChunkHashes[1]}}, 1, chunks[1]},
		{"extended", blob.Manifest{Size: 4 * C, ChunkCount: 4, KeyCommitment: m.KeyCommitment,
			ChunkHashes: [][32]byte{m.ChunkHashes[0], m.ChunkHashes[1], m.ChunkHashes[2], h(3, chunks[2])}}, 2, chunks[2]},
		{"final moved", blob.Manifest{Size: 4 * C, ChunkCount: 4, KeyCommitment: m.KeyCommitment,
			ChunkHashes: [][32]byte{m.ChunkHashes[0], m.ChunkHashes[1], h(2, chunks[1]), h(3, chunks[2])}}, 3, chunks[2]},
	}
	for _, f := range forged {
		if err := blob.VerifyChunk(&f.m, f.index, f.chunk); err != nil {
			t.Fatalf("%s: VerifyChunk = %v; the forged manifest should list the chunk", f.name, err)
		}
		if f.m.Address() == m.Address() {
			t.Errorf("%s: forged manifest has the blob's address", f.name)
		}
		_, err := blob.OpenChunk(key, &f.m, f.index, f.chunk)
		chunkErr(t, f.name+": OpenChunk", err, f.index, blob.ErrDecrypt)
	}
}

// spec 08-blobs §2: a key whose commitment is not the manifest's is refused
// before any chunk is looked at.
func TestWrongKey(t *testing.T) {
	key, other := testKey(t, "right"), testKey(t, "wrong")
	pt := pattern(C + 7)
	m, chunks := encrypt(t, key, pt)
	for i, c := range chunks {
		if _, err := blob.OpenChunk(other, m, uint32(i), c); !errors.Is(err, blob.ErrWrongKey) {
			t.Errorf("OpenChunk(other key, %d) = %v, want ErrWrongKey", i, err)
		}
		// Even a bad chunk reports the wrong key first.
		if _, err := blob.OpenChunk(other, m, uint32(i), c[:3]); !errors.Is(err, blob.ErrWrongKey) {
			t.Errorf("OpenChunk(other key, bad chunk %d) = %v, want ErrWrongKey", i, err)
		}
	}
	calls := 0
	var out bytes.Buffer
	err := blob.Decrypt(other, m, func(i uint32) ([]byte, error) { calls++; return chunks[i], nil }, &out)
	if !errors.Is(err, blob.ErrWrongKey) || calls != 0 || out.Len() != 0 {
		t.Errorf("Decrypt(other key) = %v after %d fetches and %d bytes, want ErrWrongKey before any", err, calls, out.Len())
	}
	if key.Commitment() == other.Commitment() {
		t.Error("two keys have the same commitment")
	}
	// The same plaintext under another key is another blob.
	m2, chunks2 := encrypt(t, other, pt)
	if m2.Address() == m.Address() || bytes.Equal(chunks2[0], chunks[0]) {
		t.Error("the same plaintext under two keys gives the same ciphertext or address")
	}
}

func TestEncryptorErrors(t *testing.T) {
	key := testKey(t, "errors")
	if _, err := blob.NewEncryptor(key, blob.MaxSize+1); !errors.Is(err, blob.ErrTooLarge) {
		t.Errorf("NewEncryptor(MaxSize+1) = %v, want ErrTooLarge", err)
	}
	if e, err := blob.NewEncryptor(key, blob.MaxSize); err != nil || e.ChunkCount() != wire.MaxBlobChunks {
		t.Errorf("NewEncryptor(MaxSize) = %v, want %d chunks", err, wire.MaxBlobChunks)
	}

	e, err := blob.NewEncryptor(key, C+10)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Manifest(); !errors.Is(err, blob.ErrSize) {
		t.Errorf("Manifest() before any chunk = %v, want ErrSize", err)
	}
	for _, n := range []int{0, 10, C - 1, C + 1} {
		if _, err := e.SealChunk(make([]byte, n)); !errors.Is(err, blob.ErrSize) {
			t.Errorf("SealChunk(%d bytes) as first of a %d-byte blob = %v, want ErrSize", n, C+10, err)
		}
	}
	if _, err := e.SealChunk(make([]byte, C)); err != nil {
		t.Fatalf("SealChunk(full chunk) = %v", err)
	}
	if _, err := e.Manifest(); !errors.Is(err, blob.ErrSize) {
		t.Errorf("Manifest() after 1 of 2 chunks = %v, want ErrSize", err)
	}
	if _, err := e.SealChunk(make([]byte, C)); !errors.Is(err, blob.ErrSize) {
		t.Errorf("SealChunk(full chunk) as the 10-byte last chunk = %v, want ErrSize", err)
	}
	if _, err := e.SealChunk(make([]byte, 10)); err != nil {
		t.Fatalf("SealChunk(last chunk) = %v", err)
	}
	if _, err := e.SealChunk(nil); !errors.Is(err, blob.ErrSize) {
		t.Errorf("SealChunk after the last chunk = %v, want ErrSize", err)
	}
	if _, err := e.Manifest(); err != nil {
		t.Errorf("Manifest() after all chunks = %v", err)
	}

	// Sealing in place: the returned slice may be passed back as plaintext.
	e, _ = blob.NewEncryptor(key, 2*C)
	c, err := e.SealChunk(make([]byte, C))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.SealChunk(c[:C]); err != nil {
		t.Errorf("SealChunk(previous output) = %v", err)
	}

	emitNothing := func(uint32, []byte) error { return nil }
	if _, err := blob.Encrypt(key, bytes.NewReader(make([]byte, C+9)), C+10, emitNothing); !errors.Is(err, blob.ErrSize) {
		t.Errorf("Encrypt(reader one byte short) = %v, want ErrSize", err)
	}
	if _, err := blob.Encrypt(key, strings.NewReader(""), 1, emitNothing); !errors.Is(err, blob.ErrSize) {
		t.Errorf("Encrypt(empty reader, size 1) = %v, want ErrSize", err)
	}
	if _, err := blob.Encrypt(key, nil, blob.MaxSize+1, emitNothing); !errors.Is(err, blob.ErrTooLarge) {
		t.Errorf("Encrypt(MaxSize+1) = %v, want ErrTooLarge", err)
	}
	readErr := errors.New("disk on fire")
	if _, err := blob.Encrypt(key, iotest.ErrReader(readErr), 5, emitNothing); !errors.Is(err, readErr) {
		t.Errorf("Encrypt(failing reader) = %v, want it wrapped", err)
	}
	emitErr := errors.New("upload failed")
	if _, err := blob.Encrypt(key, bytes.NewReader(make([]byte, 5)), 5, func(uint32, []byte) error { return emitErr }); !errors.Is(err, emitErr) {
		t.Errorf("Encrypt(failing emit) = %v, want the emit error", err)
	}
	// Bytes past the declared size are left unread.
	r := bytes.NewReader(make([]byte, 20))
	if _, err := blob.Encrypt(key, r, 15, emitNothing); err != nil || r.Len() != 5 {
		t.Errorf("Encrypt(15 of 20 bytes) = %v leaving %d bytes, want nil leaving 5", err, r.Len())
	}
	// A reader that returns one byte at a time still fills each chunk.
	pt := pattern(C + 3)
	m, err := blob.Encrypt(key, iotest.OneByteReader(bytes.NewReader(pt)), uint64(len(pt)), emitNothing)
	if want, _ := encrypt(t, key, pt); err != nil || m.Address() != want.Address() {
		t.Errorf("Encrypt(one-byte reader) = %v, or another blob", err)
	}
}

func TestDecryptErrors(t *testing.T) {
	key := testKey(t, "decrypt errors")
	m, chunks := encrypt(t, key, pattern(2*C))
	fetchErr := errors.New("peer gone")
	err := blob.Decrypt(key, m, func(i uint32) ([]byte, error) {
		if i == 1 {
			return nil, fetchErr
		}
		return chunks[i], nil
	}, io.Discard)
	if !errors.Is(err, fetchErr) || !strings.Contains(err.Error(), "chunk 1") {
		t.Errorf("Decrypt(fetch fails at 1) = %v, want the fetch error naming chunk 1", err)
	}
	writeErr := errors.New("disk full")
	w := writerFunc(func([]byte) (int, error) { return 0, writeErr })
	if err := blob.Decrypt(key, m, serve(chunks), w); !errors.Is(err, writeErr) {
		t.Errorf("Decrypt(failing writer) = %v, want the write error", err)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// Functions that take a Manifest refuse an inconsistent one instead of
// misreading or panicking.
func TestInconsistentManifest(t *testing.T) {
	key := testKey(t, "inconsistent")
	m, chunks := encrypt(t, key, pattern(C+1))
	bad := []blob.Manifest{
		{Size: m.Size, ChunkCount: 3, KeyCommitment: m.KeyCommitment, ChunkHashes: m.ChunkHashes},
		{Size: m.Size, ChunkCount: 2, KeyCommitment: m.KeyCommitment, ChunkHashes: m.ChunkHashes[:1]},
		{Size: m.Size, ChunkCount: 1, KeyCommitment: m.KeyCommitment, ChunkHashes: m.ChunkHashes[:1]},
		{Size: 0, ChunkCount: 0, KeyCommitment: m.KeyCommitment},
		{Size: blob.MaxSize + 1, ChunkCount: wire.MaxBlobChunks + 1, KeyCommitment: m.KeyCommitment, ChunkHashes: make([][32]byte, wire.MaxBlobChunks+1)},
	}
	for i := range bad {
		b := &bad[i]
		if err := blob.VerifyChunk(b, 0, chunks[0]); !errors.Is(err, blob.ErrBadManifest) {
			t.Errorf("VerifyChunk(bad manifest %d) = %v, want ErrBadManifest", i, err)
		}
		if _, err := blob.OpenChunk(key, b, 0, chunks[0]); !errors.Is(err, blob.ErrBadManifest) {
			t.Errorf("OpenChunk(bad manifest %d) = %v, want ErrBadManifest", i, err)
		}
		if err := blob.Decrypt(key, b, serve(chunks), io.Discard); !errors.Is(err, blob.ErrBadManifest) {
			t.Errorf("Decrypt(bad manifest %d) = %v, want ErrBadManifest", i, err)
		}
		if _, err := b.MarshalBinary(); !errors.Is(err, blob.ErrBadManifest) {
			t.Errorf("MarshalBinary(bad manifest %d) = %v, want ErrBadManifest", i, err)
		}
	}
}

// spec 08-blobs §1: a key never prints.
func TestKeyDoesNotPrint(t *testing.T) {
	key := testKey(t, "print")
	raw := fmt.Sprint(key[:]) // the bytes as a []byte, which does print
	hexKey := fmt.Sprintf("%x", key[:])
	type holder struct{ K blob.Key }
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T %v"} {
		for _, v := range []any{key, &key, holder{key}} {
			s := fmt.Sprintf(verb, v)
			if strings.Contains(s, hexKey) || strings.Contains(strings.ToLower(s), hexKey[:8]) || strings.Contains(s, strings.Trim(raw, "[]")) {
				t.Errorf("Sprintf(%q, %T) = %q prints the key", verb, v, s)
			}
		}
	}
	if got := fmt.Sprintf("%x", key); got != "[blob key]" {
		t.Errorf("Sprintf(%%x, key) = %q, want [blob key]", got)
	}
}

func TestNewKey(t *testing.T) {
	if _, err := blob.NewKey(strings.NewReader("short")); err == nil {
		t.Error("NewKey(5-byte reader) = nil error")
	}
	r := vectortest.Rand("new key")
	a, _ := blob.NewKey(r)
	b, _ := blob.NewKey(r)
	if a == b || a == (blob.Key{}) {
		t.Error("NewKey returned a repeated or zero key")
	}
}
