package room_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"io"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/curve25519"
	xhkdf "golang.org/x/crypto/hkdf"

	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/room"
	"github.com/parley-chat/parley/protocol/wire"
	"github.com/parley-chat/parley/spec/vectortest"
)

// ticket returns deterministic ticket keys for label.
func ticket(t testing.TB, label string) keys.TicketKeys {
	t.Helper()
	// vectortest.Rand uses the first 32 bytes of its label as the seed.
	label = "room " + label
	if len(label) > 32 {
		t.Fatalf("ticket label %q longer than 32 bytes", label)
	}
	k, err := keys.GenerateTicketKeys(vectortest.Rand(label))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// pair derives the room of two fresh deterministic tickets from both sides.
func pair(t testing.TB, label string) (a, b *room.Room, ka, kb keys.TicketKeys) {
	t.Helper()
	ka, kb = ticket(t, label+" a"), ticket(t, label+" b")
	a, err := room.Derive(ka, kb.Public())
	if err != nil {
		t.Fatalf("Derive(a, b) error = %v", err)
	}
	b, err = room.Derive(kb, ka.Public())
	if err != nil {
		t.Fatalf("Derive(b, a) error = %v", err)
	}
	return a, b, ka, kb
}

func marshal(t testing.TB, r *room.Room) []byte {
	t.Helper()
	b, err := r.MarshalBinary()
	if err != nil {
		t.Fatalf("MarshalBinary() error = %v", err)
	}
	return b
}

// ---- a reference implementation of spec 06-room-keys §1-3 ----
//
// It is written from the spec with x/crypto's HKDF (its own Expand, not the
// standard library's that package room uses), so the tests compare two
// implementations rather than the code with itself.

// refRoom holds every value of spec 06-room-keys §1-2 for a pair of tickets.
type refRoom struct {
	id     [32]byte
	shared []byte
	root   [32]byte
	chain  [2][32]byte // direction 0: lower signing key to higher
	avoid  [32]byte
	low    keys.TicketPublic // the ticket with the lower signing key
	high   keys.TicketPublic
}

func refExpand(t testing.TB, prk []byte, info string, n int) []byte {
	t.Helper()
	out := make([]byte, n)
	if _, err := io.ReadFull(xhkdf.Expand(sha256.New, prk, []byte(info)), out); err != nil {
		t.Fatal(err)
	}
	return out
}

// refDerive computes the room of mine and theirs following the spec.
func refDerive(t testing.TB, mine keys.TicketKeys, theirs keys.TicketPublic) refRoom {
	t.Helper()
	var r refRoom
	me := mine.Public()
	r.low, r.high = me, theirs
	if bytes.Compare(me.Sign[:], theirs.Sign[:]) > 0 {
		r.low, r.high = theirs, me
	}
	h := sha256.New()
	label := wire.LabelRoomID
	h.Write([]byte{byte(len(label) >> 8), byte(len(label))})
	h.Write([]byte(label))
	h.Write(r.low.Sign[:])
	h.Write(r.low.DH[:])
	h.Write(r.high.Sign[:])
	h.Write(r.high.DH[:])
	h.Sum(r.id[:0])

	_, dhSeed := mine.Seeds()
	shared, err := curve25519.X25519(dhSeed, theirs.DH[:])
	if err != nil {
		t.Fatal(err)
	}
	r.shared = shared
	prk := xhkdf.Extract(sha256.New, shared, r.id[:])
	copy(r.root[:], refExpand(t, prk, wire.LabelRoomRoot, 32))
	copy(r.chain[0][:], refExpand(t, r.root[:], wire.LabelRoomChain+"\x00", 32))
	copy(r.chain[1][:], refExpand(t, r.root[:], wire.LabelRoomChain+"\x01", 32))
	copy(r.avoid[:], refExpand(t, r.root[:], wire.LabelAvoidTag, 32))
	return r
}

// refChain returns the first n message keys of the chain starting at ck,
// and the chain keys CK_0 .. CK_n.
func refChain(t testing.TB, ck [32]byte, n int) (mks []*keys.MessageKey, cks [][32]byte) {
	t.Helper()
	cks = append(cks, ck)
	for range n {
		m := refExpand(t, ck[:], wire.LabelRoomMessage, 56)
		mk := new(keys.MessageKey)
		copy(mk.Key[:], m[:32])
		copy(mk.Nonce[:], m[32:])
		mks = append(mks, mk)
		mac := hmac.New(sha256.New, ck[:])
		mac.Write([]byte{0, byte(len(wire.LabelRoomNext))})
		mac.Write([]byte(wire.LabelRoomNext))
		mac.Sum(ck[:0])
		cks = append(cks, ck)
	}
	return mks, cks
}

// sendDir returns the direction index of messages sent by the holder of
// ticket me in r.
func (r refRoom) sendDir(me keys.TicketPublic) int {
	if me.Sign == r.low.Sign {
		return 0
	}
	return 1
}

// ---- messages: XChaCha20-Poly1305 under the message key ----

// errOpen is what the test opener returns when a message does not open.
var errOpen = errors.New("test: message does not open")

// seal encrypts msg under mk, as a sender does (spec 03-envelope).
func seal(t testing.TB, mk *keys.MessageKey, msg []byte) []byte {
	t.Helper()
	aead, err := chacha20poly1305.NewX(mk.Key[:])
	if err != nil {
		t.Fatal(err)
	}
	return aead.Seal(nil, mk.Nonce[:], msg, nil)
}

// opener returns an open callback that decrypts ct and stores the
// plaintext in *out.
func opener(ct []byte, out *[]byte) func(*keys.MessageKey) error {
	return func(mk *keys.MessageKey) error {
		aead, err := chacha20poly1305.NewX(mk.Key[:])
		if err != nil {
			return err
		}
		pt, err := aead.Open(nil, mk.Nonce[:], ct, nil)
		if err != nil {
			return errOpen
		}
		*out = pt
		return nil
	}
}

// wire message in flight in the tests.
type message struct {
	seq uint64
	ct  []byte
	pt  []byte
}

// send seals msg from r.
func send(t testing.TB, r *room.Room, msg string) message {
	t.Helper()
	seq, mk := r.NextSend()
	defer mk.Wipe()
	return message{seq: seq, ct: seal(t, &mk, []byte(msg)), pt: []byte(msg)}
}

// receive delivers m to r and checks the plaintext.
func receive(t testing.TB, r *room.Room, m message) error {
	t.Helper()
	var got []byte
	if err := r.Receive(m.seq, opener(m.ct, &got)); err != nil {
		return err
	}
	if !bytes.Equal(got, m.pt) {
		t.Fatalf("Receive(%d) plaintext = %q, want %q", m.seq, got, m.pt)
	}
	return nil
}

// mustNotOpen is an open callback that fails the test if called.
func mustNotOpen(t testing.TB) func(*keys.MessageKey) error {
	return func(*keys.MessageKey) error {
		t.Helper()
		t.Error("open called for a message that must be refused first")
		return errOpen
	}
}
