package envelope_test

import (
	"encoding/binary"
	"testing"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/parley-chat/parley/protocol/envelope"
	"github.com/parley-chat/parley/protocol/franking"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/wire"
	"github.com/parley-chat/parley/spec/vectortest"
)

// t0 is the fixed clock of the tests and vectors.
var t0 = time.UnixMilli(1_790_000_000_000)

// messageKey stands in for the room ratchet (spec 06-room-keys): a
// deterministic key and nonce per label.
func messageKey(label string) *keys.MessageKey {
	r := vectortest.Rand("message key " + label)
	mk := new(keys.MessageKey)
	_, _ = r.Read(mk.Key[:])
	_, _ = r.Read(mk.Nonce[:])
	return mk
}

func ticketKeys(t testing.TB, label string) keys.TicketKeys {
	t.Helper()
	k, err := keys.GenerateTicketKeys(vectortest.Rand("ticket " + label))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func nodeKey(t testing.TB, label string) keys.NodeKey {
	t.Helper()
	k, err := keys.GenerateNodeKey(vectortest.Rand("node " + label))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// header returns a header from alice to bob in a fixed room.
func header(t testing.TB, seq uint64) envelope.Header {
	t.Helper()
	var room keys.RoomID
	_, _ = vectortest.Rand("room").Read(room[:])
	return envelope.Header{
		ContentType: envelope.ContentText,
		Room:        room,
		Sender:      ticketKeys(t, "alice").Public().Sign,
		Recipient:   ticketKeys(t, "bob").Public().Sign,
		Seq:         seq,
		Time:        t0.UnixMilli(),
	}
}

func headerBytes(h envelope.Header) []byte {
	b, _ := h.MarshalBinary()
	return b
}

// inner builds an inner plaintext by hand (spec 03-envelope §4): franking
// key, u32 length, content, then size-len zero bytes of padding.
func inner(fk franking.Key, length uint32, content []byte, size int) []byte {
	b := make([]byte, size)
	copy(b, fk[:])
	binary.BigEndian.PutUint32(b[32:], length)
	copy(b[36:], content)
	return b
}

// sealRaw encrypts an arbitrary inner plaintext with the raw AEAD under the
// header as associated data, as a malicious sender could.
func sealRaw(mk *keys.MessageKey, h envelope.Header, pt []byte) *envelope.Envelope {
	aead, err := chacha20poly1305.NewX(mk.Key[:])
	if err != nil {
		panic(err)
	}
	ad := wire.Labeled(wire.LabelEnvelopeHeader, headerBytes(h))
	return &envelope.Envelope{Header: h, Ciphertext: aead.Seal(nil, mk.Nonce[:], pt, ad)}
}

func seal(t testing.TB, mk *keys.MessageKey, h envelope.Header, content []byte, randLabel string) *envelope.Envelope {
	t.Helper()
	e, err := envelope.Seal(mk, h, content, vectortest.Rand("franking "+randLabel))
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	return e
}

func marshal(t testing.TB, e *envelope.Envelope) []byte {
	t.Helper()
	b, err := e.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
