package blob_test

import (
	"bytes"
	"crypto/sha256"
	"io"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/parley-chat/parley/protocol/blob"
)

// benchSize is the blob size of BenchmarkEncrypt and BenchmarkDecrypt.
const benchSize = 16 << 20

// BenchmarkEncrypt encrypts a 16 MiB blob: derivation, 256 chunk seals and
// 256 chunk hashes. Compare with BenchmarkRawChaCha20Poly1305_64KiB plus
// BenchmarkRawSHA256_64KiB.
func BenchmarkEncrypt(b *testing.B) {
	key := testKey(b, "bench")
	pt := pattern(benchSize)
	emit := func(uint32, []byte) error { return nil }
	b.SetBytes(benchSize)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := blob.Encrypt(key, bytes.NewReader(pt), benchSize, emit); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecrypt verifies and decrypts a 16 MiB blob.
func BenchmarkDecrypt(b *testing.B) {
	key := testKey(b, "bench")
	m, chunks := encrypt(b, key, pattern(benchSize))
	next := serve(chunks)
	b.SetBytes(benchSize)
	b.ReportAllocs()
	for b.Loop() {
		if err := blob.Decrypt(key, m, next, io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyChunk is a node checking one full 64 KiB chunk.
func BenchmarkVerifyChunk(b *testing.B) {
	key := testKey(b, "bench")
	m, chunks := encrypt(b, key, pattern(2*C))
	b.SetBytes(int64(len(chunks[0])))
	b.ReportAllocs()
	for b.Loop() {
		if err := blob.VerifyChunk(m, 0, chunks[0]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRawChaCha20Poly1305_64KiB seals 64 KiB in place with the raw
// AEAD: the floor for Encrypt's per-chunk cost.
func BenchmarkRawChaCha20Poly1305_64KiB(b *testing.B) {
	aead, err := chacha20poly1305.New(make([]byte, 32))
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, C, C+blob.Overhead)
	nonce := make([]byte, chacha20poly1305.NonceSize)
	b.SetBytes(C)
	b.ReportAllocs()
	for b.Loop() {
		aead.Seal(buf[:0], nonce, buf[:C], nil)
	}
}

// BenchmarkRawSHA256_64KiB hashes 64 KiB: the floor for VerifyChunk.
func BenchmarkRawSHA256_64KiB(b *testing.B) {
	buf := make([]byte, C)
	b.SetBytes(C)
	b.ReportAllocs()
	for b.Loop() {
		sha256.Sum256(buf)
	}
}
