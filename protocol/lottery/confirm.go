package lottery

import (
	"bytes"
	"fmt"

	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/wire"
)

// ConfirmVersion is the encoding version of pair-confirmation frames.
// Version 2 added the view digest.
const ConfirmVersion = 2

// Sizes of the pair-confirmation frames (spec 07-lottery §13.4), in bytes.
const (
	// ConfirmRequestSize: u8 version, u64 epoch, the asker's ticket ID,
	// the answering node's ticket ID and the asker's view digest.
	ConfirmRequestSize = 1 + 8 + 32 + 32 + 32
	// ConfirmAnswerSize: u8 version, u64 epoch, the pair (A, B), u8
	// answer, the view digest, the answering node, its signature.
	ConfirmAnswerSize = confirmSignedSize + keys.SignatureSize

	confirmSignedSize = 1 + 8 + 32 + 32 + 1 + 32 + 32
)

// ConfirmRequest asks the home node of ticket Yours whether it confirms the
// pair of Yours and Mine, drawn in Epoch from a view with digest View
// (spec 07-lottery §8.3, §13.4). It travels on an authenticated stream from
// the home node of Mine, so it is not signed. A request with Mine and
// Yours both zero is a view check: does the answering node's view of Epoch
// have digest View?
type ConfirmRequest struct {
	Epoch uint64
	Mine  [32]byte // the asking node's ticket ID
	Yours [32]byte // the answering node's ticket ID
	View  [32]byte // the asking node's ViewDigest of the epoch
}

// Pair returns the pair the request is about (zero for a view check).
func (r *ConfirmRequest) Pair() Pair { return newPair(r.Mine, r.Yours) }

// ViewCheck reports whether the request is a view check.
func (r *ConfirmRequest) ViewCheck() bool { return r.Mine == [32]byte{} && r.Yours == [32]byte{} }

// MarshalBinary returns the request's canonical encoding.
func (r *ConfirmRequest) MarshalBinary() ([]byte, error) {
	e := wire.NewEncoder(ConfirmRequestSize)
	e.U8(ConfirmVersion)
	e.U64(r.Epoch)
	e.Fixed(r.Mine[:])
	e.Fixed(r.Yours[:])
	e.Fixed(r.View[:])
	return e.Bytes(), nil
}

// ParseConfirmRequest decodes a request: exactly ConfirmRequestSize bytes,
// version 2, two different ticket IDs or both zero (a view check). Every
// error is a *wire.ParseError.
func ParseConfirmRequest(b []byte) (*ConfirmRequest, error) {
	d := wire.NewDecoder("pair confirm request", b)
	if len(b) != ConfirmRequestSize {
		d.Fail("%d bytes, want %d", len(b), ConfirmRequestSize)
		return nil, d.Err()
	}
	r := &ConfirmRequest{}
	d.Version(ConfirmVersion)
	r.Epoch = d.Field("epoch").U64()
	d.Field("mine").Fixed(r.Mine[:])
	d.Field("yours").Fixed(r.Yours[:])
	d.Field("view").Fixed(r.View[:])
	if d.Err() == nil && r.Mine == r.Yours && !r.ViewCheck() {
		d.Fail("both tickets are the same")
	}
	if err := d.Finish(); err != nil {
		return nil, err
	}
	return r, nil
}

// ConfirmAnswer is a node's signed yes or no to a ConfirmRequest: with
// Yes, evidence that Node confirmed Pair in Epoch from a view with digest
// View (spec 07-lottery §9); for a view check (Pair zero), that Node's view
// of Epoch had digest View.
type ConfirmAnswer struct {
	Epoch uint64
	Pair  Pair
	Yes   bool
	View  [32]byte
	Node  keys.NodeID // the answering node
	Sig   keys.Signature
}

func (a *ConfirmAnswer) signed() []byte {
	e := wire.NewEncoder(ConfirmAnswerSize)
	e.U8(ConfirmVersion)
	e.U64(a.Epoch)
	e.Fixed(a.Pair.A[:])
	e.Fixed(a.Pair.B[:])
	if a.Yes {
		e.U8(1)
	} else {
		e.U8(0)
	}
	e.Fixed(a.View[:])
	e.Fixed(a.Node[:])
	return e.Bytes()
}

// SignConfirmAnswer returns k's signed answer about pair in epoch and the
// view digest asked about, under "parley/v1/pair-confirm".
func SignConfirmAnswer(k keys.NodeKey, epoch uint64, pair Pair, view [32]byte, yes bool) ConfirmAnswer {
	a := ConfirmAnswer{Epoch: epoch, Pair: pair, Yes: yes, View: view, Node: k.Public()}
	a.Sig = k.Sign(wire.LabelPairConfirm, a.signed())
	return a
}

// Verify checks the answer's signature by a.Node; errors match
// ErrBadSignature.
func (a *ConfirmAnswer) Verify() error {
	if !a.Node.Verify(wire.LabelPairConfirm, a.Sig, a.signed()) {
		return fmt.Errorf("%w: pair confirmation for epoch %d from %s", ErrBadSignature, a.Epoch, a.Node)
	}
	return nil
}

// MarshalBinary returns the answer's canonical encoding: the signed bytes,
// then the signature.
func (a *ConfirmAnswer) MarshalBinary() ([]byte, error) {
	return append(a.signed(), a.Sig[:]...), nil
}

// ParseConfirmAnswer decodes an answer: exactly ConfirmAnswerSize bytes,
// version 2, a pair with A < B or both zero (a view check), an answer byte
// of 0 or 1. It does not check the signature. Every error is a
// *wire.ParseError.
func ParseConfirmAnswer(b []byte) (*ConfirmAnswer, error) {
	d := wire.NewDecoder("pair confirm answer", b)
	if len(b) != ConfirmAnswerSize {
		d.Fail("%d bytes, want %d", len(b), ConfirmAnswerSize)
		return nil, d.Err()
	}
	a := &ConfirmAnswer{}
	d.Version(ConfirmVersion)
	a.Epoch = d.Field("epoch").U64()
	d.Field("pair").Fixed(a.Pair.A[:])
	d.Fixed(a.Pair.B[:])
	if d.Err() == nil && bytes.Compare(a.Pair.A[:], a.Pair.B[:]) >= 0 && a.Pair != (Pair{}) {
		d.Fail("pair not in ascending order")
	}
	switch v := d.Field("answer").U8(); {
	case d.Err() != nil:
	case v == 1:
		a.Yes = true
	case v != 0:
		d.Fail("answer %d, want 0 or 1", v)
	}
	d.Field("view").Fixed(a.View[:])
	d.Field("node").Fixed(a.Node[:])
	d.Field("signature").Fixed(a.Sig[:])
	if err := d.Finish(); err != nil {
		return nil, err
	}
	return a, nil
}
