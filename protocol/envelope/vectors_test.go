package envelope_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/parley-chat/parley/protocol/envelope"
	"github.com/parley-chat/parley/protocol/franking"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/wire"
	"github.com/parley-chat/parley/spec/vectortest"
)

// vector is one entry of spec/testdata/envelope.json (spec 03-envelope §10).
type vector struct {
	Name        string `json:"name"`
	MessageKey  string `json:"message_key"`
	Nonce       string `json:"nonce"`
	NodeID      string `json:"node_id"`
	NowMs       int64  `json:"now_ms"`
	Envelope    string `json:"envelope"`
	Error       string `json:"error,omitempty"`
	FrankingKey string `json:"franking_key,omitempty"`
	Content     string `json:"content,omitempty"`
	Header      string `json:"header,omitempty"`
	Commitment  string `json:"commitment,omitempty"`
	AD          string `json:"associated_data,omitempty"`
	Inner       string `json:"inner_plaintext,omitempty"`
	ID          string `json:"id,omitempty"`
}

// errorClass names the first check of the vector pipeline that fails:
// Parse, CheckHeader, VerifyStamp, Open.
func errorClass(err error) string {
	for _, c := range []struct {
		err  error
		name string
	}{
		{wire.ErrMalformed, "malformed"},
		{envelope.ErrBadContentType, "bad_content_type"},
		{envelope.ErrBadTime, "bad_time"},
		{envelope.ErrSelfAddressed, "self_addressed"},
		{envelope.ErrUnstamped, "unstamped"},
		{envelope.ErrBadStamp, "bad_stamp"},
		{envelope.ErrDecrypt, "decrypt"},
		{envelope.ErrMalformedPlaintext, "malformed_plaintext"},
		{envelope.ErrBadCommitment, "bad_commitment"},
	} {
		if errors.Is(err, c.err) {
			return c.name
		}
	}
	return fmt.Sprintf("unexpected error %v", err)
}

// process runs the pipeline of spec 03-envelope §10 on one stored vector.
func process(b []byte, mk *keys.MessageKey, node keys.NodeID, now time.Time) (*envelope.Envelope, envelope.Opened, error) {
	e, err := envelope.Parse(b)
	if err != nil {
		return nil, envelope.Opened{}, err
	}
	if err := envelope.CheckHeader(&e.Header, now); err != nil {
		return e, envelope.Opened{}, err
	}
	if err := e.VerifyStamp(node); err != nil {
		return e, envelope.Opened{}, err
	}
	o, err := envelope.Open(mk, e)
	return e, o, err
}

func unhex(t *testing.T, name, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("%s: bad hex: %v", name, err)
	}
	return b
}

// TestVectors writes and then consumes spec/testdata/envelope.json.
func TestVectors(t *testing.T) {
	node, other := nodeKey(t, "vectors"), nodeKey(t, "vectors other")
	mk := messageKey("vectors")
	rnd := vectortest.Rand("envelope vectors")
	now := t0
	base := header(t, 0)

	// Valid envelopes, one stamped batch.
	type valid struct {
		name    string
		ctype   uint8
		content []byte
		fk      franking.Key
		env     *envelope.Envelope
	}
	text := func(n int) []byte { return bytes.Repeat([]byte("parley "), n/7+1)[:n] }
	valids := []*valid{
		{name: "empty text", ctype: envelope.ContentText, content: []byte{}},
		{name: "short text", ctype: envelope.ContentText, content: []byte("hello, stranger")},
		{name: "220 bytes: fills the 256-byte bucket", ctype: envelope.ContentText, content: text(220)},
		{name: "221 bytes: first of the 512-byte bucket", ctype: envelope.ContentText, content: text(221)},
		{name: "1000 bytes: 2048-byte bucket", ctype: envelope.ContentText, content: text(1000)},
		{name: "blob link", ctype: envelope.ContentBlob, content: []byte("parley-blob:example#key")},
		{name: "control", ctype: envelope.ContentControl, content: []byte{0x01}},
	}
	var batch []*envelope.Envelope
	for i, v := range valids {
		v.fk, _ = franking.NewKey(rnd)
		h := base
		h.ContentType, h.Seq, h.Time = v.ctype, uint64(i), t0.UnixMilli()-int64(i)
		e, err := envelope.Seal(mk, h, v.content, bytes.NewReader(v.fk[:]))
		if err != nil {
			t.Fatal(err)
		}
		v.env = e
		batch = append(batch, e)
	}

	// Envelopes that a node stamps but the recipient must refuse.
	fk, _ := franking.NewKey(rnd)
	h := base
	h.Seq = 100
	h.Commitment = franking.Commit(&fk, []byte("innocent"))
	wrongContent := sealRaw(mk, h, inner(fk, 4, []byte("evil"), 256))
	h.Seq = 101
	h.Commitment = franking.Commit(&fk, []byte("padded"))
	dirtyPad := inner(fk, 6, []byte("padded"), 256)
	dirtyPad[200] = 0x42
	nonZeroPadding := sealRaw(mk, h, dirtyPad)
	h.Seq = 102
	h.Commitment = franking.Commit(&fk, []byte("big"))
	tooMuchPadding := sealRaw(mk, h, inner(fk, 3, []byte("big"), 1024))
	// A node that edits the header (here the time) before stamping: its
	// stamp verifies, the AEAD does not.
	nodeEdited, _ := envelope.Seal(mk, func() envelope.Header { h := base; h.Seq = 103; return h }(), []byte("edit me"), rnd)
	nodeEdited.Header.Time++
	batch = append(batch, wrongContent, nonZeroPadding, tooMuchPadding, nodeEdited)
	if err := envelope.StampBatch(node, now, batch); err != nil {
		t.Fatal(err)
	}

	otherNode, _ := envelope.Seal(mk, func() envelope.Header { h := base; h.Seq = 104; return h }(), []byte("elsewhere"), rnd)
	lateTime, _ := envelope.Seal(mk, func() envelope.Header {
		h := base
		h.Seq = 105
		h.Time += wire.MaxClockSkew.Milliseconds() + 1
		return h
	}(), []byte("late"), rnd)
	selfAddressed, _ := envelope.Seal(mk, func() envelope.Header { h := base; h.Seq = 106; h.Recipient = h.Sender; return h }(), []byte("me"), rnd)
	if err := envelope.StampBatch(other, now, []*envelope.Envelope{otherNode}); err != nil {
		t.Fatal(err)
	}
	if err := envelope.StampBatch(node, now, []*envelope.Envelope{lateTime, selfAddressed}); err != nil {
		t.Fatal(err)
	}
	unstamped, _ := envelope.Seal(mk, func() envelope.Header { h := base; h.Seq = 107; return h }(), []byte("no stamp"), rnd)

	common := func(name string, b []byte, errName string) vector {
		return vector{
			Name: name, MessageKey: hex.EncodeToString(mk.Key[:]), Nonce: hex.EncodeToString(mk.Nonce[:]),
			NodeID: node.Public().String(), NowMs: now.UnixMilli(), Envelope: hex.EncodeToString(b), Error: errName,
		}
	}
	var vs []vector
	for _, v := range valids {
		hb := headerBytes(v.env.Header)
		vec := common(v.name, marshal(t, v.env), "")
		id := v.env.ID()
		vec.FrankingKey = hex.EncodeToString(v.fk[:])
		vec.Content = hex.EncodeToString(v.content)
		vec.Header = hex.EncodeToString(hb)
		vec.Commitment = hex.EncodeToString(v.env.Header.Commitment[:])
		vec.AD = hex.EncodeToString(wire.Labeled(wire.LabelEnvelopeHeader, hb))
		vec.Inner = hex.EncodeToString(inner(v.fk, uint32(len(v.content)), v.content, envelope.PaddedSize(len(v.content))))
		vec.ID = hex.EncodeToString(id[:])
		vs = append(vs, vec)
	}
	good := marshal(t, valids[1].env)
	presence := 1 + envelope.HeaderSize + 4 + len(valids[1].env.Ciphertext)
	mut := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	wrongKey := common("wrong message key", good, "decrypt")
	wrongKey.MessageKey = hex.EncodeToString(append([]byte{mk.Key[0] ^ 1}, mk.Key[1:]...))
	vs = append(vs,
		common("flipped ciphertext byte", mut(func(b []byte) []byte { b[1+envelope.HeaderSize+4+10] ^= 1; return b }), "decrypt"),
		common("flipped tag byte", mut(func(b []byte) []byte { b[presence-1] ^= 0x80; return b }), "decrypt"),
		wrongKey,
		common("node edited the header before stamping", marshal(t, nodeEdited), "decrypt"),
		common("content does not match the commitment (sender binding)", marshal(t, wrongContent), "bad_commitment"),
		common("non-zero padding", marshal(t, nonZeroPadding), "malformed_plaintext"),
		common("padded beyond the smallest bucket", marshal(t, tooMuchPadding), "malformed_plaintext"),
		common("header seq edited after stamping", mut(func(b []byte) []byte { b[1+98+7] ^= 1; return b }), "bad_stamp"),
		common("flipped stamp signature", mut(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), "bad_stamp"),
		common("stamped by another node", marshal(t, otherNode), "bad_stamp"),
		common("unstamped", marshal(t, unstamped), "unstamped"),
		common("time beyond the clock skew", marshal(t, lateTime), "bad_time"),
		common("sender is the recipient", marshal(t, selfAddressed), "self_addressed"),
		common("envelope version 2", mut(func(b []byte) []byte { b[0] = 2; return b }), "malformed"),
		common("header version 2", mut(func(b []byte) []byte { b[1] = 2; return b }), "malformed"),
		common("content type 0", mut(func(b []byte) []byte { b[2] = 0; return b }), "malformed"),
		common("content type 4", mut(func(b []byte) []byte { b[2] = 4; return b }), "malformed"),
		common("stamp presence 2", mut(func(b []byte) []byte { b[presence] = 2; return b }), "malformed"),
		common("trailing byte", append(bytes.Clone(good), 0), "malformed"),
		common("truncated", good[:len(good)-1], "malformed"),
		common("ciphertext not a bucket plus tag", func() []byte {
			enc := wire.NewEncoder(0)
			enc.U8(envelope.Version)
			valids[1].env.Header.Append(enc)
			enc.Bytes32(valids[1].env.Ciphertext[1:])
			enc.U8(0)
			return enc.Bytes()
		}(), "malformed"),
	)
	vectortest.Golden(t, "envelope.json", vectortest.File[vector]{
		Description: "Sealed envelopes: header, padded inner plaintext under XChaCha20-Poly1305 with the labeled header as associated data, franking commitment, node stamp. " +
			"Process each vector: Parse, CheckHeader at now_ms, VerifyStamp against node_id, Open with message_key and nonce; error names the first step that fails.",
		Spec:    "03-envelope.md",
		Vectors: vs,
	})

	// Consume the committed file.
	for _, v := range vectortest.Load[vector](t, "envelope.json").Vectors {
		var vmk keys.MessageKey
		copy(vmk.Key[:], unhex(t, v.Name, v.MessageKey))
		copy(vmk.Nonce[:], unhex(t, v.Name, v.Nonce))
		nodeID, err := keys.ParseNodeID(v.NodeID)
		if err != nil {
			t.Fatalf("%s: %v", v.Name, err)
		}
		b := unhex(t, v.Name, v.Envelope)
		e, o, err := process(b, &vmk, nodeID, time.UnixMilli(v.NowMs))
		if v.Error != "" {
			if got := errorClass(err); err == nil || got != v.Error {
				t.Errorf("%s: error %v (%s), want %s", v.Name, err, got, v.Error)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v, want success", v.Name, err)
			continue
		}
		if got := hex.EncodeToString(o.Content); got != v.Content {
			t.Errorf("%s: content %s, want %s", v.Name, got, v.Content)
		}
		if got := hex.EncodeToString(o.FrankingKey[:]); got != v.FrankingKey {
			t.Errorf("%s: franking key %s, want %s", v.Name, got, v.FrankingKey)
		}
		hb := headerBytes(e.Header)
		if got := hex.EncodeToString(hb); got != v.Header {
			t.Errorf("%s: header %s, want %s", v.Name, got, v.Header)
		}
		if got := hex.EncodeToString(e.Header.Commitment[:]); got != v.Commitment {
			t.Errorf("%s: commitment %s, want %s", v.Name, got, v.Commitment)
		}
		if id := e.ID(); hex.EncodeToString(id[:]) != v.ID {
			t.Errorf("%s: ID %x, want %s", v.Name, id, v.ID)
		}
		// The stored intermediate values: the inner plaintext opens from the
		// ciphertext under the stored associated data.
		aead, _ := chacha20poly1305.NewX(vmk.Key[:])
		pt, err := aead.Open(nil, vmk.Nonce[:], e.Ciphertext, unhex(t, v.Name, v.AD))
		if err != nil || hex.EncodeToString(pt) != v.Inner {
			t.Errorf("%s: inner plaintext under the stored AD = %x, %v; want %s", v.Name, pt, err, v.Inner)
		}
		// Seal reproduces the ciphertext from the stored inputs.
		h := e.Header
		h.Commitment = franking.Commitment{}
		again, err := envelope.Seal(&vmk, h, o.Content, bytes.NewReader(unhex(t, v.Name, v.FrankingKey)))
		if err != nil || !bytes.Equal(again.Ciphertext, e.Ciphertext) || again.Header != e.Header {
			t.Errorf("%s: Seal from the stored inputs does not reproduce the envelope (%v)", v.Name, err)
		}
	}
}
