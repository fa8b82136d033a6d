package blob

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"math/big"
	"math/rand/v2"
	"testing"

	"golang.org/x/crypto/chacha20"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/hkdf"

	"github.com/parley-chat/parley/protocol/wire"
	"github.com/parley-chat/parley/spec/vectortest"
)

// This file demonstrates why blobs carry a key commitment (spec 08-blobs
// §2): ChaCha20-Poly1305 is not key-committing. It builds one ciphertext and
// tag that authenticate under two different keys and decrypt to two
// different plaintexts (an "invisible salamander"), then shows that the blob
// construction opens it under one key only.
//
// Poly1305 (RFC 8439 §2.5) evaluates a polynomial over GF(p), p = 2^130-5:
// with the message cut into 16-byte blocks m_1..m_q, each read little-endian
// with a 2^128 bit added (c_i = m_i + 2^128), h = Σ c_i·r^(q-i+1) mod p and
// the tag is (h + s) mod 2^128, where (r, s) is the one-time key that
// ChaCha20 derives from the AEAD key and nonce. Fix every block but one free
// block x: then h is linear in x for each key, and tag1 = tag2 is one linear
// equation in x, which we solve mod p. The solution must fit a 16-byte block
// (x + 2^128 in [2^128, 2^129)), and h1 - h2 must equal the target exactly
// as integers (not just mod p) for the mod-2^128 truncation to line up; when
// either fails we try another integer target or other random fixed blocks.

var (
	p1305  = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 130), big.NewInt(5))
	two128 = new(big.Int).Lsh(big.NewInt(1), 128)
)

// leInt reads b as a little-endian unsigned integer.
func leInt(b []byte) *big.Int {
	r := make([]byte, len(b))
	for i := range b {
		r[len(b)-1-i] = b[i]
	}
	return new(big.Int).SetBytes(r)
}

// le16 writes x < 2^128 as 16 little-endian bytes.
func le16(x *big.Int) []byte {
	b := x.FillBytes(make([]byte, 16))
	for i, j := 0, 15; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
	return b
}

// polyKey returns the Poly1305 one-time key (r clamped, s) that
// ChaCha20-Poly1305 uses under key and nonce: the first 32 bytes of the
// ChaCha20 block with counter 0 (RFC 8439 §2.6).
func polyKey(t *testing.T, key [32]byte, nonce []byte) (r, s *big.Int) {
	c, err := chacha20.NewUnauthenticatedCipher(key[:], nonce)
	if err != nil {
		t.Fatal(err)
	}
	var block [64]byte
	c.XORKeyStream(block[:], block[:])
	rb := block[:16]
	for _, i := range []int{3, 7, 11, 15} {
		rb[i] &= 15
	}
	for _, i := range []int{4, 8, 12} {
		rb[i] &= 252
	}
	return leInt(rb), leInt(block[16:32])
}

// macBlocks returns the 16-byte blocks ChaCha20-Poly1305 authenticates for
// ad and ciphertext ct (RFC 8439 §2.8): ad and ct each zero-padded to 16
// bytes, then both lengths as little-endian uint64s.
func macBlocks(ad, ct []byte) [][]byte {
	var msg []byte
	pad := func(b []byte) {
		msg = append(msg, b...)
		if r := len(b) % 16; r != 0 {
			msg = append(msg, make([]byte, 16-r)...)
		}
	}
	pad(ad)
	pad(ct)
	msg = binary.LittleEndian.AppendUint64(msg, uint64(len(ad)))
	msg = binary.LittleEndian.AppendUint64(msg, uint64(len(ct)))
	var blocks [][]byte
	for i := 0; i < len(msg); i += 16 {
		blocks = append(blocks, msg[i:i+16])
	}
	return blocks
}

// polyEval returns Σ c_i·r^(q-i+1) mod p over the blocks, leaving out block
// skip (its term is added by the caller).
func polyEval(blocks [][]byte, r *big.Int, skip int) *big.Int {
	h := new(big.Int)
	for i, b := range blocks {
		if i != skip {
			h.Add(h, leInt(b))
			h.Add(h, two128)
		}
		h.Mul(h, r)
		h.Mod(h, p1305)
	}
	return h
}

// salamander returns a ciphertext+tag of 48 ciphertext bytes that opens
// under both enc1 and enc2 with the given nonce and associated data, and
// the number of attempts it took.
func salamander(t *testing.T, enc1, enc2 [32]byte, nonce, ad []byte) ([]byte, int) {
	r1, s1 := polyKey(t, enc1, nonce)
	r2, s2 := polyKey(t, enc2, nonce)
	rng := rand.New(vectortest.Rand("salamander blocks"))
	const free = 1 // block 0 is the associated data; block 1 is the first ciphertext block
	for try := 1; try <= 1000; try++ {
		ct := make([]byte, 48)
		for i := 16; i < len(ct); i++ {
			ct[i] = byte(rng.Uint32())
		}
		blocks := macBlocks(ad, ct)
		e := big.NewInt(int64(len(blocks) - free)) // the free block's power of r
		a1, a2 := polyEval(blocks, r1, free), polyEval(blocks, r2, free)
		re1, re2 := new(big.Int).Exp(r1, e, p1305), new(big.Int).Exp(r2, e, p1305)
		den := new(big.Int).Sub(re1, re2)
		den.Mod(den, p1305)
		inv := new(big.Int).ModInverse(den, p1305)
		if inv == nil {
			continue
		}
		// tag1 = tag2 iff h1 + s1 = h2 + s2 + k·2^128 for some integer k,
		// that is h1 - h2 = s2 - s1 + k·2^128 =: delta. With h_j = a_j +
		// y·r_j^e (mod p) and y = x + 2^128: y = (delta - a1 + a2) / (r1^e - r2^e).
		for k := int64(-4); k <= 4; k++ {
			delta := new(big.Int).Sub(s2, s1)
			delta.Add(delta, new(big.Int).Mul(big.NewInt(k), two128))
			y := new(big.Int).Sub(delta, a1)
			y.Add(y, a2)
			y.Mul(y, inv)
			y.Mod(y, p1305)
			x := new(big.Int).Sub(y, two128)
			if x.Sign() < 0 || x.Cmp(two128) >= 0 {
				continue // does not fit a 16-byte block with its 2^128 bit
			}
			copy(ct[16*(free-1):], le16(x))
			h1 := new(big.Int).Add(a1, new(big.Int).Mul(y, re1))
			h1.Mod(h1, p1305)
			h2 := new(big.Int).Add(a2, new(big.Int).Mul(y, re2))
			h2.Mod(h2, p1305)
			tag1 := new(big.Int).Add(h1, s1)
			tag1.Mod(tag1, two128)
			tag2 := new(big.Int).Add(h2, s2)
			tag2.Mod(tag2, two128)
			if tag1.Cmp(tag2) != 0 {
				continue // equal mod p but not as integers: the truncation differs
			}
			return append(ct, le16(tag1)...), try
		}
	}
	t.Fatal("no two-key ciphertext found in 1000 attempts")
	return nil, 0
}

// spec 08-blobs §2: one ciphertext chunk that plain ChaCha20-Poly1305 opens
// under two keys, to two plaintexts; the blob construction opens it under
// the committed key only, and each key's manifest has its own address.
func TestInvisibleSalamander(t *testing.T) {
	r := vectortest.Rand("salamander keys")
	k1, _ := NewKey(r)
	k2, _ := NewKey(r)
	enc1, commit1 := derive(k1)
	enc2, commit2 := derive(k2)
	n, a := nonce(0, true), ad(0, true)

	chunk, tries := salamander(t, enc1, enc2, n[:], a[:])
	t.Logf("two-key chunk found after %d attempts", tries)

	// The attack is real: plain ChaCha20-Poly1305 accepts it under both keys.
	open := func(enc [32]byte) []byte {
		aead, err := chacha20poly1305.New(enc[:])
		if err != nil {
			t.Fatal(err)
		}
		p, err := aead.Open(nil, n[:], chunk, a[:])
		if err != nil {
			t.Fatalf("chacha20poly1305.Open(crafted chunk) = %v; the crafted chunk should authenticate under both keys", err)
		}
		return p
	}
	p1, p2 := open(enc1), open(enc2)
	if bytes.Equal(p1, p2) {
		t.Fatal("the crafted chunk decrypts to the same plaintext under both keys")
	}

	// As a one-chunk blob of 48 bytes committed to k1, the chunk passes the
	// node's checks and opens under k1, but k2 is refused by the commitment
	// before any decryption.
	m1 := &Manifest{Size: 48, ChunkCount: 1, KeyCommitment: commit1, ChunkHashes: [][32]byte{ChunkHash(0, chunk)}}
	if err := VerifyChunk(m1, 0, chunk); err != nil {
		t.Fatalf("VerifyChunk(crafted chunk) = %v", err)
	}
	if got, err := OpenChunk(k1, m1, 0, chunk); err != nil || !bytes.Equal(got, p1) {
		t.Errorf("OpenChunk(k1) = %x, %v, want %x", got, err, p1)
	}
	if got, err := OpenChunk(k2, m1, 0, chunk); !errors.Is(err, ErrWrongKey) {
		t.Errorf("OpenChunk(k2, manifest committed to k1) = %x, %v, want ErrWrongKey", got, err)
	}
	if err := Decrypt(k2, m1, func(uint32) ([]byte, error) { return chunk, nil }, new(bytes.Buffer)); !errors.Is(err, ErrWrongKey) {
		t.Errorf("Decrypt(k2, manifest committed to k1) = %v, want ErrWrongKey", err)
	}

	// Committing the same chunk to k2 instead makes another blob: another
	// address. An address therefore fixes one key and one plaintext.
	m2 := &Manifest{Size: 48, ChunkCount: 1, KeyCommitment: commit2, ChunkHashes: m1.ChunkHashes}
	if got, err := OpenChunk(k2, m2, 0, chunk); err != nil || !bytes.Equal(got, p2) {
		t.Errorf("OpenChunk(k2, manifest committed to k2) = %x, %v, want %x", got, err, p2)
	}
	if _, err := OpenChunk(k1, m2, 0, chunk); !errors.Is(err, ErrWrongKey) {
		t.Errorf("OpenChunk(k1, manifest committed to k2) = %v, want ErrWrongKey", err)
	}
	if m1.Address() == m2.Address() {
		t.Error("manifests committed to different keys share an address")
	}
}

// spec 08-blobs §2: the derivation is HKDF-SHA256 with an empty salt and
// the labels as info; the two outputs differ.
func TestDerive(t *testing.T) {
	k, _ := NewKey(vectortest.Rand("derive"))
	enc, commit := derive(k)
	if enc == commit || enc == [32]byte(k) || commit == [32]byte(k) {
		t.Error("derive: encryption key, commitment and blob key are not all distinct")
	}
	if k.Commitment() != commit {
		t.Error("Key.Commitment() differs from derive's commitment")
	}
	// An independent HKDF implementation with the spec's parameters.
	for _, c := range []struct {
		info string
		want [32]byte
	}{{wire.LabelBlobKeys, enc}, {wire.LabelBlobCommit, commit}} {
		var got [32]byte
		if _, err := io.ReadFull(hkdf.New(sha256.New, k[:], nil, []byte(c.info)), got[:]); err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("derive: output for info %q is not HKDF-SHA256(key, salt empty, info)", c.info)
		}
	}
	if n := nonce(0x01020304, true); n != [12]byte{0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 1} {
		t.Errorf("nonce(0x01020304, final) = %x", n)
	}
	if a := ad(0x01020304, false); a != [6]byte{1, 1, 2, 3, 4, 0} {
		t.Errorf("ad(0x01020304, not final) = %x", a)
	}
}
