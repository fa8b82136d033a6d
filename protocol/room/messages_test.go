package room_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"io"

	"bytes"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/hkdf"

	"github.com/parley-chat/parley/protocol/envelope"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/room"
	"github.com/parley-chat/parley/protocol/wire"
)

func pairRooms(t testing.TB) (a, b *room.Room) {
	t.Helper()
	ka, _ := keys.GenerateTicketKeys(rand.Reader)
	kb, _ := keys.GenerateTicketKeys(rand.Reader)
	a, err := room.Derive(ka, kb.Public())
	if err != nil {
		t.Fatal(err)
	}
	b, err = room.Derive(kb, ka.Public())
	if err != nil {
		t.Fatal(err)
	}
	return a, b
}

// spec 03-envelope §6: a message sealed by one side, stamped by its node,
// opens on the other side once, and only there.
func TestSealOpenThroughRoom(t *testing.T) {
	a, b := pairRooms(t)
	nodeA, _ := keys.GenerateNodeKey(rand.Reader)
	nodeB, _ := keys.GenerateNodeKey(rand.Reader)
	now := time.UnixMilli(1_790_000_000_000)

	var envs []*envelope.Envelope
	for i := 0; i < 5; i++ {
		e, err := a.Seal(envelope.ContentText, []byte{'m', byte('0' + i)}, now, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		envs = append(envs, e)
	}
	if err := envelope.StampBatch(nodeA, now, envs); err != nil {
		t.Fatal(err)
	}
	// Delivered out of order: 4, 0, 3, 1, 2.
	for _, i := range []int{4, 0, 3, 1, 2} {
		o, err := b.Open(envs[i], nodeA.Public())
		if err != nil {
			t.Fatalf("Open(msg %d) = %v", i, err)
		}
		if want := []byte{'m', byte('0' + i)}; !bytes.Equal(o.Content, want) {
			t.Fatalf("Open(msg %d) = %q, want %q", i, o.Content, want)
		}
	}
	if _, err := b.Open(envs[2], nodeA.Public()); !errors.Is(err, room.ErrReplay) {
		t.Fatalf("Open(replay) = %v, want ErrReplay", err)
	}

	// The sender cannot open its own message as if received, and a stamp by
	// the wrong node is refused before the ratchet moves.
	e, _ := a.Seal(envelope.ContentText, []byte("x"), now, rand.Reader)
	if err := envelope.StampBatch(nodeB, now, []*envelope.Envelope{e}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Open(e, nodeA.Public()); !errors.Is(err, room.ErrNotForMe) {
		t.Fatalf("Open(own message) = %v, want ErrNotForMe", err)
	}
	before, _ := b.MarshalBinary()
	if _, err := b.Open(e, nodeA.Public()); !errors.Is(err, envelope.ErrBadStamp) {
		t.Fatalf("Open(stamped by another node) = %v, want ErrBadStamp", err)
	}
	after, _ := b.MarshalBinary()
	if !bytes.Equal(before, after) {
		t.Fatal("a refused envelope changed the room state")
	}
	// Unstamped envelopes are never shown.
	e2, _ := a.Seal(envelope.ContentText, []byte("y"), now, rand.Reader)
	if _, err := b.Open(e2, nodeA.Public()); !errors.Is(err, envelope.ErrUnstamped) {
		t.Fatalf("Open(unstamped) = %v, want ErrUnstamped", err)
	}
}

// spec 03-envelope §6: an envelope naming another recipient is refused.
func TestOpenRefusesMisaddressed(t *testing.T) {
	a, b := pairRooms(t)
	_, c := pairRooms(t)
	node, _ := keys.GenerateNodeKey(rand.Reader)
	now := time.UnixMilli(1_790_000_000_000)
	e, _ := a.Seal(envelope.ContentText, []byte("hi"), now, rand.Reader)
	_ = envelope.StampBatch(node, now, []*envelope.Envelope{e})
	if _, err := c.Open(e, node.Public()); !errors.Is(err, room.ErrNotForMe) {
		t.Fatalf("Open(other room's envelope) = %v, want ErrNotForMe", err)
	}
	if _, err := b.Open(e, node.Public()); err != nil {
		t.Fatalf("Open(right room) = %v", err)
	}
}

func TestSealRefusesBeforeSpendingSeq(t *testing.T) {
	a, _ := pairRooms(t)
	now := time.UnixMilli(1_790_000_000_000)
	if _, err := a.Seal(envelope.ContentText, make([]byte, wire.MaxPlaintext+1), now, rand.Reader); !errors.Is(err, envelope.ErrTooLarge) {
		t.Fatalf("Seal(too large) = %v, want ErrTooLarge", err)
	}
	if _, err := a.Seal(0, []byte("x"), now, rand.Reader); !errors.Is(err, envelope.ErrBadContentType) {
		t.Fatalf("Seal(content type 0) = %v, want ErrBadContentType", err)
	}
	if a.NextSendSeq() != 0 {
		t.Fatalf("NextSendSeq() = %d after refused seals, want 0", a.NextSendSeq())
	}
}

// BenchmarkRoomSealOpen1KiB is the whole client-side message path for 1 KiB
// of content, without the stamp: one ratchet step on each side, seal
// (franking commitment, padding, XChaCha20-Poly1305) and open (AEAD,
// layout, commitment check). Compare with the raw primitives it is built
// from, printed by the same run: BenchmarkRawHMACSHA256_32B (the ratchet's
// unit) here, and in protocol/envelope the raw AEAD and HMAC benchmarks.
func BenchmarkRoomSealOpen1KiB(b *testing.B) {
	a, bb := pairRooms(b)
	content := make([]byte, 1024)
	now := time.UnixMilli(1_790_000_000_000)
	b.SetBytes(1024)
	b.ReportAllocs()
	for b.Loop() {
		seq, mk := a.NextSend()
		e, err := envelope.Seal(&mk, envelope.Header{ContentType: envelope.ContentBlob, Room: a.ID(), Sender: a.Me(), Recipient: a.Partner(), Seq: seq, Time: now.UnixMilli()}, content, rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		if err := bb.Receive(seq, func(mk *keys.MessageKey) error { _, err := envelope.Open(mk, e); return err }); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRawBaselineSealOpen1KiB runs, with no Parley code, the raw
// primitives BenchmarkRoomSealOpen1KiB is built from: on each side one
// ratchet step (HKDF-Expand of 56 bytes and one HMAC-SHA256, all keyed with
// the chain key), a franking HMAC-SHA256 over the content (commit on one
// side, verify on the other), 32 random bytes for the franking key, and
// XChaCha20-Poly1305 seal and open of the padded 2 KiB inner plaintext. The
// ratio of the two benchmarks is the cost of the composition (target: < 2x).
func BenchmarkRawBaselineSealOpen1KiB(b *testing.B) {
	content := make([]byte, 1024)
	buf := make([]byte, 2048, 2048+16)
	var ck, fk [32]byte
	var nonce [24]byte
	b.SetBytes(1024)
	b.ReportAllocs()
	for b.Loop() {
		for side := 0; side < 2; side++ {
			rawRatchetStep(&ck)
		}
		if _, err := rand.Read(fk[:]); err != nil {
			b.Fatal(err)
		}
		c1 := rawHMAC(fk[:], content)
		aead, _ := chacha20poly1305.NewX(ck[:])
		ct := aead.Seal(buf[:0], nonce[:], buf, c1)
		aead2, _ := chacha20poly1305.NewX(ck[:])
		pt, err := aead2.Open(ct[:0], nonce[:], ct, c1)
		if err != nil {
			b.Fatal(err)
		}
		benchSink = hmac.Equal(c1, rawHMAC(fk[:], pt[36:36+1024]))
		buf = pt[: 2048 : 2048+16]
	}
}

var benchSink bool

func rawRatchetStep(ck *[32]byte) {
	okm := make([]byte, 56)
	if _, err := io.ReadFull(hkdf.Expand(sha256.New, ck[:], []byte("info")), okm); err != nil {
		panic(err)
	}
	copy(ck[:], rawHMAC(ck[:], []byte("next")))
}

func rawHMAC(key, data []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(data)
	return m.Sum(nil)
}
