package envelope_test

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/parley-chat/parley/protocol/envelope"
	"github.com/parley-chat/parley/protocol/wire"
	"github.com/parley-chat/parley/spec/vectortest"
)

// BenchmarkSealOpen1KiB seals and opens 1 KiB of content (padded to the
// 4096-byte bucket) given a message key. Compare with the raw primitives
// below: one AEAD seal+open of 4096 bytes, two HMACs of 1 KiB (commit and
// verify) and one 32-byte HMAC (a ratchet step).
func BenchmarkSealOpen1KiB(b *testing.B) {
	mk := messageKey("bench")
	h := header(b, 1)
	content := make([]byte, 1024)
	r := vectortest.Rand("bench")
	b.SetBytes(1024)
	b.ReportAllocs()
	for b.Loop() {
		e, err := envelope.Seal(mk, h, content, r)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := envelope.Open(mk, e); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRawXChaCha20Poly1305SealOpen1KiB is the AEAD alone on the padded
// size of 1 KiB of content, with the same associated data.
func BenchmarkRawXChaCha20Poly1305SealOpen1KiB(b *testing.B) {
	mk := messageKey("bench")
	size := envelope.PaddedSize(1024)
	pt := make([]byte, size)
	ct := make([]byte, 0, size+envelope.TagSize)
	out := make([]byte, 0, size)
	ad := wire.Labeled(wire.LabelEnvelopeHeader, headerBytes(header(b, 1)))
	b.SetBytes(1024)
	b.ReportAllocs()
	for b.Loop() {
		aead, _ := chacha20poly1305.NewX(mk.Key[:])
		ct = aead.Seal(ct[:0], mk.Nonce[:], pt, ad)
		var err error
		if out, err = aead.Open(out[:0], mk.Nonce[:], ct, ad); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRawHMACSHA256_1KiB is one HMAC-SHA256 of 1 KiB (one franking
// commitment or verification).
func BenchmarkRawHMACSHA256_1KiB(b *testing.B) {
	key := make([]byte, 32)
	msg := make([]byte, 1024)
	b.SetBytes(1024)
	b.ReportAllocs()
	for b.Loop() {
		m := hmac.New(sha256.New, key)
		m.Write(msg)
		m.Sum(nil)
	}
}

// BenchmarkRawHMACSHA256_32 is one HMAC-SHA256 of 32 bytes: about the cost
// of one ratchet step (spec 06-room-keys).
func BenchmarkRawHMACSHA256_32(b *testing.B) {
	key := make([]byte, 32)
	msg := make([]byte, 32)
	b.ReportAllocs()
	for b.Loop() {
		m := hmac.New(sha256.New, key)
		m.Write(msg)
		m.Sum(nil)
	}
}

func stampedBatch(b *testing.B, n int) []*envelope.Envelope {
	mk := messageKey("bench")
	envs := make([]*envelope.Envelope, n)
	for i := range envs {
		envs[i] = seal(b, mk, header(b, uint64(i)), []byte("m"), "bench")
	}
	return envs
}

// BenchmarkStampBatch100 stamps a batch of 100 envelopes; ns/envelope is
// the figure to hold under 2µs.
func BenchmarkStampBatch100(b *testing.B) {
	node := nodeKey(b, "bench")
	envs := stampedBatch(b, 100)
	b.ReportAllocs()
	for b.Loop() {
		if err := envelope.StampBatch(node, t0, envs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/100, "ns/envelope")
}

// BenchmarkVerifyStamp verifies the stamp of one envelope of a 100-batch.
func BenchmarkVerifyStamp(b *testing.B) {
	node := nodeKey(b, "bench")
	envs := stampedBatch(b, 100)
	if err := envelope.StampBatch(node, t0, envs); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := envs[42].VerifyStamp(node.Public()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRawEd25519Sign is one signature over a stamp's signed bytes' size.
func BenchmarkRawEd25519Sign(b *testing.B) {
	priv := ed25519.NewKeyFromSeed(make([]byte, 32))
	msg := make([]byte, 2+len(wire.LabelStampBatch)+1+2+len(wire.LabelEnvelopeHeader)+32+8+4+32)
	b.ReportAllocs()
	for b.Loop() {
		ed25519.Sign(priv, msg)
	}
}

// BenchmarkRawEd25519Verify is one verification of such a signature.
func BenchmarkRawEd25519Verify(b *testing.B) {
	priv := ed25519.NewKeyFromSeed(make([]byte, 32))
	msg := make([]byte, 2+len(wire.LabelStampBatch)+1+2+len(wire.LabelEnvelopeHeader)+32+8+4+32)
	sig := ed25519.Sign(priv, msg)
	pub := priv.Public().(ed25519.PublicKey)
	b.ReportAllocs()
	for b.Loop() {
		ed25519.Verify(pub, msg, sig)
	}
}
