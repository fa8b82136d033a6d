package disclosure_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/parley-chat/parley/protocol/disclosure"
	"github.com/parley-chat/parley/protocol/envelope"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/wire"
	"github.com/parley-chat/parley/spec/vectortest"
)

// t0 is when the node stamps the room's messages.
var t0 = time.UnixMilli(1_790_000_000_000)

// room is a pairing of alice (sender) and bob (recipient, reporter), whose
// home node stamps alice's messages.
type room struct {
	alice, bob, mallory keys.TicketKeys
	node, other         keys.NodeKey
	id                  keys.RoomID
	lastSeq             uint64 // alice's last sequence number
}

func newRoom(t testing.TB) *room {
	t.Helper()
	r := &room{}
	var err error
	for _, k := range []struct {
		p     *keys.TicketKeys
		label string
	}{{&r.alice, "alice"}, {&r.bob, "bob"}, {&r.mallory, "mallory"}} {
		if *k.p, err = keys.GenerateTicketKeys(vectortest.Rand("disclosure ticket " + k.label)); err != nil {
			t.Fatal(err)
		}
	}
	if r.node, err = keys.GenerateNodeKey(vectortest.Rand("disclosure node")); err != nil {
		t.Fatal(err)
	}
	if r.other, err = keys.GenerateNodeKey(vectortest.Rand("disclosure other node")); err != nil {
		t.Fatal(err)
	}
	_, _ = vectortest.Rand("disclosure room").Read(r.id[:])
	return r
}

func messageKey(seq uint64) *keys.MessageKey {
	rnd := vectortest.Rand(fmt.Sprintf("disclosure message key %d", seq))
	mk := new(keys.MessageKey)
	_, _ = rnd.Read(mk.Key[:])
	_, _ = rnd.Read(mk.Nonce[:])
	return mk
}

// send seals one message per content from alice to bob, numbered on from
// the last message sent (the first is seq 1), and has node stamp them as one
// batch at stampTime.
func (r *room) send(t testing.TB, node keys.NodeKey, stampTime time.Time, contents ...string) []*envelope.Envelope {
	t.Helper()
	rnd := vectortest.Rand("disclosure franking")
	envs := make([]*envelope.Envelope, len(contents))
	for i, c := range contents {
		r.lastSeq++
		seq := r.lastSeq
		h := envelope.Header{
			ContentType: envelope.ContentText, Room: r.id,
			Sender: r.alice.Public().Sign, Recipient: r.bob.Public().Sign,
			Seq: seq, Time: stampTime.UnixMilli() - 1000,
		}
		e, err := envelope.Seal(messageKey(seq), h, []byte(c), rnd)
		if err != nil {
			t.Fatal(err)
		}
		envs[i] = e
	}
	if err := envelope.StampBatch(node, stampTime, envs); err != nil {
		t.Fatal(err)
	}
	return envs
}

// items opens envs as bob and turns them into disclosure items.
func items(t testing.TB, envs []*envelope.Envelope) []disclosure.Item {
	t.Helper()
	out := make([]disclosure.Item, len(envs))
	for i, e := range envs {
		o, err := envelope.Open(messageKey(e.Header.Seq), e)
		if err != nil {
			t.Fatal(err)
		}
		if out[i], err = disclosure.ItemFromOpened(e, o); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// report is bob's disclosure of n of alice's messages, signed a minute after
// they were stamped.
func (r *room) report(t testing.TB, n int) *disclosure.Disclosure {
	t.Helper()
	contents := make([]string, n)
	for i := range contents {
		contents[i] = fmt.Sprintf("buy cheap watches, message %d", i+1)
	}
	d, err := disclosure.New(r.bob, disclosure.ReasonSpam, "they keep sending this", t0.Add(time.Minute), items(t, r.send(t, r.node, t0, contents...)))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// now is when the tests verify: two minutes after stamping.
var now = t0.Add(2 * time.Minute)

// resign signs d's unsigned bytes with k, as a reporter who edited it would.
func resign(t testing.TB, d *disclosure.Disclosure, k keys.TicketKeys) {
	t.Helper()
	b, err := d.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	d.Sig = k.Sign(wire.LabelDisclosure, b[:len(b)-keys.SignatureSize])
}

// clone deep-copies d so a test can edit it.
func clone(t testing.TB, d *disclosure.Disclosure) *disclosure.Disclosure {
	t.Helper()
	b, err := d.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	c, err := disclosure.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
