package disclosure_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/parley-chat/parley/protocol/disclosure"
	"github.com/parley-chat/parley/protocol/franking"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/wire"
	"github.com/parley-chat/parley/spec/vectortest"
)

// vector is one entry of spec/testdata/disclosure.json (spec
// 05-disclosures §7).
type vector struct {
	Name       string `json:"name"`
	NodeID     string `json:"node_id"`
	NowMs      int64  `json:"now_ms"`
	Disclosure string `json:"disclosure"`
	Error      string `json:"error,omitempty"`
	ErrorItem  *int   `json:"error_item,omitempty"`
	// Valid vectors only.
	ReporterSeed  string `json:"reporter_seed,omitempty"`
	Reporter      string `json:"reporter,omitempty"`
	AccusedRoom   string `json:"accused_room,omitempty"`
	AccusedSender string `json:"accused_sender,omitempty"`
	Items         int    `json:"items,omitempty"`
	Signed        string `json:"signed,omitempty"`
}

func signedMessage(t *testing.T, d *disclosure.Disclosure) []byte {
	t.Helper()
	b, err := d.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return wire.Labeled(wire.LabelDisclosure, b[:len(b)-keys.SignatureSize])
}

// TestVectors writes and then consumes spec/testdata/disclosure.json.
func TestVectors(t *testing.T) {
	r := newRoom(t)
	node := r.node.Public().String()
	at := now
	var vs []vector

	valid := func(name string, d *disclosure.Disclosure, at time.Time) {
		b, _ := d.MarshalBinary()
		room, sender := d.Accused()
		seed, _ := r.bob.Seeds()
		vs = append(vs, vector{
			Name: name, NodeID: node, NowMs: at.UnixMilli(), Disclosure: hex.EncodeToString(b),
			ReporterSeed: hex.EncodeToString(seed), Reporter: d.Reporter.String(),
			AccusedRoom: room.String(), AccusedSender: sender.String(), Items: len(d.Items),
			Signed: hex.EncodeToString(signedMessage(t, d)),
		})
	}
	invalid := func(name string, b []byte, at time.Time, check string, item int) {
		v := vector{Name: name, NodeID: node, NowMs: at.UnixMilli(), Disclosure: hex.EncodeToString(b), Error: check}
		if check != "malformed" || item != -2 {
			v.ErrorItem = &item
		}
		vs = append(vs, v)
	}
	const parseError = -2 // no item: Parse refuses the bytes
	enc := func(d *disclosure.Disclosure) []byte { b, _ := d.MarshalBinary(); return b }
	edited := func(d *disclosure.Disclosure, f func(d *disclosure.Disclosure), as *keys.TicketKeys) []byte {
		c := clone(t, d)
		f(c)
		if as != nil {
			resign(t, c, *as)
		}
		return enc(c)
	}

	one := r.report(t, 1)
	valid("one item", one, at)
	three := r.report(t, 3)
	valid("three items from one batch", three, at)
	// Two batches, stamped a day apart, reported together.
	early := items(t, r.send(t, r.node, t0.Add(-24*time.Hour), "first batch"))
	late := items(t, r.send(t, r.node, t0, "second batch, 1", "second batch, 2"))
	two, err := disclosure.New(r.bob, disclosure.ReasonHarassment, "Belästigung — harcèlement", t0.Add(time.Minute), append(early, late...))
	if err != nil {
		t.Fatal(err)
	}
	valid("items from two batches, non-ASCII reason text", two, at)
	valid("stamp exactly MaxDisclosureAge old", one, t0.Add(wire.MaxDisclosureAge))

	// Parse failures.
	good := enc(one)
	mut := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	countOff := 1 + 32 + 1 + 2 + len(one.Text) + 8
	invalid("version 2", mut(func(b []byte) []byte { b[0] = 2; return b }), at, "malformed", parseError)
	invalid("reason 0", mut(func(b []byte) []byte { b[33] = 0; return b }), at, "malformed", parseError)
	invalid("reason 5", mut(func(b []byte) []byte { b[33] = 5; return b }), at, "malformed", parseError)
	invalid("text not UTF-8", mut(func(b []byte) []byte { b[36] = 0xc3; return b }), at, "malformed", parseError)
	invalid("no items", append(bytes.Clone(good[:countOff]), append([]byte{0, 0}, good[len(good)-64:]...)...), at, "malformed", parseError)
	invalid("trailing byte", append(bytes.Clone(good), 0), at, "malformed", parseError)
	invalid("truncated", good[:len(good)-1], at, "malformed", parseError)

	// Verify failures, in check order.
	other := newRoom(t)
	other.id[0] ^= 1
	foreign := items(t, other.send(t, other.node, t0, "elsewhere"))[0]
	foreign.Header.Seq = 99
	invalid("item from another room", edited(three, func(d *disclosure.Disclosure) { d.Items[2] = foreign }, &r.bob), at, "malformed", 2)
	invalid("repeated sequence number", edited(three, func(d *disclosure.Disclosure) { d.Items[1] = d.Items[0] }, &r.bob), at, "malformed", 1)
	invalid("sender reports its own message", edited(one, func(d *disclosure.Disclosure) { d.Reporter = r.alice.Public().Sign }, &r.alice), at, "not_recipient", 0)
	invalid("third party re-signs as reporter", edited(three, func(d *disclosure.Disclosure) { d.Reporter = r.mallory.Public().Sign }, &r.mallory), at, "not_recipient", 0)
	invalid("edited plaintext (receiver binding)", edited(three, func(d *disclosure.Disclosure) { d.Items[1].Plaintext = []byte("I confess") }, &r.bob), at, "bad_commitment", 1)
	invalid("swapped franking key", edited(one, func(d *disclosure.Disclosure) {
		d.Items[0].FrankingKey, _ = franking.NewKey(vectortest.Rand("forger"))
	}, &r.bob), at, "bad_commitment", 0)
	invalid("new commitment to a new plaintext", edited(one, func(d *disclosure.Disclosure) {
		k, _ := franking.NewKey(vectortest.Rand("forger"))
		d.Items[0].Plaintext, d.Items[0].FrankingKey = []byte("I confess"), k
		d.Items[0].Header.Commitment = franking.Commit(&k, d.Items[0].Plaintext)
	}, &r.bob), at, "bad_stamp", 0)
	byOther := items(t, r.send(t, r.other, t0, "stamped elsewhere"))
	d, err := disclosure.New(r.bob, disclosure.ReasonSpam, "", t0.Add(time.Minute), byOther)
	if err != nil {
		t.Fatal(err)
	}
	invalid("stamped by another node", enc(d), at, "bad_stamp", 0)
	invalid("flipped stamp path byte", edited(three, func(d *disclosure.Disclosure) { d.Items[2].Stamp.Path[0][7] ^= 1 }, &r.bob), at, "bad_stamp", 2)
	invalid("stamp from the future", good, t0.Add(-wire.MaxClockSkew-time.Millisecond), "from_future", 0)
	invalid("expired", good, t0.Add(wire.MaxDisclosureAge+time.Millisecond), "expired", 0)
	invalid("flipped reporter signature", mut(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), at, "bad_signature", -1)
	invalid("reason changed after signing", mut(func(b []byte) []byte { b[33] = byte(disclosure.ReasonIllegal); return b }), at, "bad_signature", -1)
	invalid("signed by another key", edited(one, func(*disclosure.Disclosure) {}, &r.mallory), at, "bad_signature", -1)
	invalid("disclosure from the future", edited(one, func(d *disclosure.Disclosure) {
		d.Time = at.Add(wire.MaxClockSkew + time.Millisecond).UnixMilli()
	}, &r.bob), at, "from_future", -1)

	vectortest.Golden(t, "disclosure.json", vectortest.File[vector]{
		Description: "Disclosures (reports): stamped headers, plaintexts and franking keys signed by the reporter's ticket key. " +
			"Parse the disclosure, then Verify it against node_id at now_ms; error is the first failing check, error_item its item (-1: the whole disclosure).",
		Spec:    "05-disclosures.md",
		Vectors: vs,
	})

	// Consume the committed file.
	for _, v := range vectortest.Load[vector](t, "disclosure.json").Vectors {
		nodeID, err := keys.ParseNodeID(v.NodeID)
		if err != nil {
			t.Fatalf("%s: %v", v.Name, err)
		}
		b, err := hex.DecodeString(v.Disclosure)
		if err != nil {
			t.Fatalf("%s: %v", v.Name, err)
		}
		d, err := disclosure.Parse(b)
		if err != nil {
			if v.Error != "malformed" || v.ErrorItem != nil || !errors.Is(err, wire.ErrMalformed) {
				t.Errorf("%s: Parse = %v, want error %q item %v", v.Name, err, v.Error, v.ErrorItem)
			}
			continue
		}
		err = disclosure.Verify(d, nodeID, time.UnixMilli(v.NowMs))
		if v.Error != "" {
			var ve *disclosure.VerifyError
			if !errors.As(err, &ve) || ve.Check.String() != v.Error || v.ErrorItem == nil || ve.Item != *v.ErrorItem {
				t.Errorf("%s: Verify = %v, want %s on item %v", v.Name, err, v.Error, v.ErrorItem)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: Verify = %v, want nil", v.Name, err)
			continue
		}
		room, sender := d.Accused()
		if d.Reporter.String() != v.Reporter || room.String() != v.AccusedRoom || sender.String() != v.AccusedSender || len(d.Items) != v.Items {
			t.Errorf("%s: reporter %s, accused %s %s, %d items; want %s, %s %s, %d", v.Name, d.Reporter, room, sender, len(d.Items), v.Reporter, v.AccusedRoom, v.AccusedSender, v.Items)
		}
		signed := signedMessage(t, d)
		if hex.EncodeToString(signed) != v.Signed {
			t.Errorf("%s: signed message differs from the stored one", v.Name)
		}
		seed, _ := hex.DecodeString(v.ReporterSeed)
		priv := ed25519.NewKeyFromSeed(seed)
		if !bytes.Equal(priv.Public().(ed25519.PublicKey), d.Reporter[:]) {
			t.Errorf("%s: reporter seed does not give the reporter key", v.Name)
		}
		if sig := ed25519.Sign(priv, signed); !bytes.Equal(sig, d.Sig[:]) {
			t.Errorf("%s: signing the stored message with the seed gives %x, want %x", v.Name, sig, d.Sig)
		}
	}
}
