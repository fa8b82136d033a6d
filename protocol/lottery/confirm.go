package lottery

import (
	"bytes"
	"fmt"

	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/wire"
)

// ConfirmVersion is the encoding version of pair-confirmation frames.
// Version 2 added the view digest; version 3 carries all the pairs two
// nodes confirm in an epoch in one request and one signed answer.
const ConfirmVersion = 3

// MaxConfirmPairs is the most pairs one confirm request asks about (spec
// 07-lottery §13.4): a node has at most wire.MaxTicketBatch tickets in an
// epoch, so it asks another node about at most as many pairs.
const MaxConfirmPairs = wire.MaxTicketBatch

// Sizes of the pair-confirmation frames (spec 07-lottery §13.4), in bytes.
const (
	// MaxConfirmRequestSize: u8 version, u64 epoch, the asker's view
	// digest, u16 count, then count × (the asker's ticket ID, the
	// answering node's ticket ID).
	MaxConfirmRequestSize = confirmRequestHeader + MaxConfirmPairs*confirmRequestItem
	// MaxConfirmAnswerSize: u8 version, u64 epoch, the view digest, the
	// answering node, u8 view answer, u16 count, count × (pair A, pair B,
	// u8 answer), the signature.
	MaxConfirmAnswerSize = confirmAnswerHeader + MaxConfirmPairs*confirmAnswerItem + keys.SignatureSize

	confirmRequestHeader = 1 + 8 + 32 + 2
	confirmRequestItem   = 32 + 32
	confirmAnswerHeader  = 1 + 8 + 32 + 32 + 1 + 2
	confirmAnswerItem    = 32 + 32 + 1
)

// ConfirmItem is one pair of a ConfirmRequest: the asking node's ticket
// Mine and the answering node's ticket Yours.
type ConfirmItem struct {
	Mine  [32]byte // the asking node's ticket ID
	Yours [32]byte // the answering node's ticket ID
}

// Pair returns the pair the item is about.
func (it ConfirmItem) Pair() Pair { return newPair(it.Mine, it.Yours) }

// ConfirmRequest asks the answering node whether it confirms each of Items,
// pairs of the asker's ticket Mine with the answering node's ticket Yours
// drawn in Epoch from a view with digest View, and whether its own view of
// Epoch has that digest (spec 07-lottery §8.3, §13.4). It travels on an
// authenticated stream from the asking node, so it is not signed. A request
// without items is a view check. Items are in strictly ascending order of
// Mine (so no ticket of the asker is asked about twice).
type ConfirmRequest struct {
	Epoch uint64
	View  [32]byte // the asking node's ViewDigest of the epoch
	Items []ConfirmItem
}

// ViewCheck reports whether the request is a view check (no pairs).
func (r *ConfirmRequest) ViewCheck() bool { return len(r.Items) == 0 }

// MarshalBinary returns the request's canonical encoding. It fails if the
// request has more than MaxConfirmPairs items.
func (r *ConfirmRequest) MarshalBinary() ([]byte, error) {
	if len(r.Items) > MaxConfirmPairs {
		return nil, fmt.Errorf("%w: %d pairs in a confirm request, limit %d", ErrLimit, len(r.Items), MaxConfirmPairs)
	}
	e := wire.NewEncoder(confirmRequestHeader + len(r.Items)*confirmRequestItem)
	e.U8(ConfirmVersion)
	e.U64(r.Epoch)
	e.Fixed(r.View[:])
	e.Count(len(r.Items))
	for _, it := range r.Items {
		e.Fixed(it.Mine[:])
		e.Fixed(it.Yours[:])
	}
	return e.Bytes(), nil
}

// ParseConfirmRequest decodes a request: at most MaxConfirmRequestSize
// bytes (checked first), version 3, at most MaxConfirmPairs items in
// strictly ascending order of Mine, each with two different ticket IDs,
// and no trailing bytes. Every error is a *wire.ParseError.
func ParseConfirmRequest(b []byte) (*ConfirmRequest, error) {
	d := wire.NewDecoder("pair confirm request", b)
	if len(b) > MaxConfirmRequestSize {
		d.Fail("%d bytes, limit %d", len(b), MaxConfirmRequestSize)
		return nil, d.Err()
	}
	r := &ConfirmRequest{}
	d.Version(ConfirmVersion)
	r.Epoch = d.Field("epoch").U64()
	d.Field("view").Fixed(r.View[:])
	n := d.Field("count").Count(MaxConfirmPairs, confirmRequestItem)
	if n > 0 {
		r.Items = make([]ConfirmItem, n)
	}
	for i := range r.Items {
		it := &r.Items[i]
		d.Field("pair").Fixed(it.Mine[:])
		d.Fixed(it.Yours[:])
		switch {
		case d.Err() != nil:
		case it.Mine == it.Yours:
			d.Fail("pair %d: both tickets are the same", i)
		case i > 0 && bytes.Compare(r.Items[i-1].Mine[:], it.Mine[:]) >= 0:
			d.Fail("pair %d: not in strictly ascending order of the asker's ticket", i)
		}
	}
	if err := d.Finish(); err != nil {
		return nil, err
	}
	return r, nil
}

// ConfirmAnswer is a node's signed answer to a ConfirmRequest: whether
// Node's view of Epoch has digest View (ViewOK), and for each pair asked
// about, in the request's order, whether Node confirms it. A yes is
// evidence that Node confirmed the pair in Epoch from a view with digest
// View (spec 07-lottery §9). A pair is never confirmed without ViewOK.
type ConfirmAnswer struct {
	Epoch  uint64
	View   [32]byte
	Node   keys.NodeID // the answering node
	ViewOK bool
	Pairs  []Pair // the pairs asked about, in the request's order, A < B
	Yes    []bool // Yes[i] answers Pairs[i]
	Sig    keys.Signature
}

func (a *ConfirmAnswer) signed() []byte {
	e := wire.NewEncoder(confirmAnswerHeader + len(a.Pairs)*confirmAnswerItem + keys.SignatureSize)
	e.U8(ConfirmVersion)
	e.U64(a.Epoch)
	e.Fixed(a.View[:])
	e.Fixed(a.Node[:])
	e.U8(boolByte(a.ViewOK))
	e.Count(len(a.Pairs))
	for i, p := range a.Pairs {
		e.Fixed(p.A[:])
		e.Fixed(p.B[:])
		e.U8(boolByte(i < len(a.Yes) && a.Yes[i]))
	}
	return e.Bytes()
}

func boolByte(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// SignConfirmAnswer returns k's signed answer to req: viewOK says whether
// k's view of req.Epoch has digest req.View, yes[i] whether it confirms
// req.Items[i] (ignored, and no, without viewOK). Signed under
// "parley/v1/pair-confirm"; the version byte 3 leads the signed bytes, so
// no answer of another version verifies as this one. req must have at most
// MaxConfirmPairs items and yes one entry per item.
func SignConfirmAnswer(k keys.NodeKey, req *ConfirmRequest, viewOK bool, yes []bool) ConfirmAnswer {
	if len(req.Items) > MaxConfirmPairs || len(yes) != len(req.Items) {
		panic("lottery: SignConfirmAnswer: one answer per item, at most MaxConfirmPairs")
	}
	a := ConfirmAnswer{Epoch: req.Epoch, View: req.View, Node: k.Public(), ViewOK: viewOK}
	if len(req.Items) > 0 {
		a.Pairs = make([]Pair, len(req.Items))
		a.Yes = make([]bool, len(req.Items))
	}
	for i, it := range req.Items {
		a.Pairs[i] = it.Pair()
		a.Yes[i] = viewOK && yes[i]
	}
	a.Sig = k.Sign(wire.LabelPairConfirm, a.signed())
	return a
}

// Answers reports whether a answers req: same epoch, view and pairs, in
// order. It does not check the signature or who signed.
func (a *ConfirmAnswer) Answers(req *ConfirmRequest) bool {
	if a.Epoch != req.Epoch || a.View != req.View || len(a.Pairs) != len(req.Items) {
		return false
	}
	for i, it := range req.Items {
		if a.Pairs[i] != it.Pair() {
			return false
		}
	}
	return true
}

// Verify checks the answer's signature by a.Node; errors match
// ErrBadSignature.
func (a *ConfirmAnswer) Verify() error {
	if len(a.Pairs) > MaxConfirmPairs || len(a.Yes) != len(a.Pairs) {
		return fmt.Errorf("%w: pair confirmation for epoch %d from %s: %d pairs, %d answers", ErrBadSignature, a.Epoch, a.Node, len(a.Pairs), len(a.Yes))
	}
	if !a.Node.Verify(wire.LabelPairConfirm, a.Sig, a.signed()) {
		return fmt.Errorf("%w: pair confirmation for epoch %d from %s", ErrBadSignature, a.Epoch, a.Node)
	}
	return nil
}

// MarshalBinary returns the answer's canonical encoding: the signed bytes,
// then the signature.
func (a *ConfirmAnswer) MarshalBinary() ([]byte, error) {
	if len(a.Pairs) > MaxConfirmPairs || len(a.Yes) != len(a.Pairs) {
		return nil, fmt.Errorf("%w: confirm answer with %d pairs and %d answers", ErrLimit, len(a.Pairs), len(a.Yes))
	}
	return append(a.signed(), a.Sig[:]...), nil
}

// ParseConfirmAnswer decodes an answer: at most MaxConfirmAnswerSize bytes
// (checked first), version 3, answer bytes of 0 or 1, no pair confirmed
// without the view, at most MaxConfirmPairs pairs each with A < B, and no
// trailing bytes. It does not check the signature. Every error is a
// *wire.ParseError.
func ParseConfirmAnswer(b []byte) (*ConfirmAnswer, error) {
	d := wire.NewDecoder("pair confirm answer", b)
	if len(b) > MaxConfirmAnswerSize {
		d.Fail("%d bytes, limit %d", len(b), MaxConfirmAnswerSize)
		return nil, d.Err()
	}
	a := &ConfirmAnswer{}
	d.Version(ConfirmVersion)
	a.Epoch = d.Field("epoch").U64()
	d.Field("view").Fixed(a.View[:])
	d.Field("node").Fixed(a.Node[:])
	a.ViewOK = answerByte(d.Field("view answer"))
	n := d.Field("count").Count(MaxConfirmPairs, confirmAnswerItem)
	if n > 0 {
		a.Pairs = make([]Pair, n)
		a.Yes = make([]bool, n)
	}
	for i := range a.Pairs {
		p := &a.Pairs[i]
		d.Field("pair").Fixed(p.A[:])
		d.Fixed(p.B[:])
		if d.Err() == nil && bytes.Compare(p.A[:], p.B[:]) >= 0 {
			d.Fail("pair %d not in ascending order", i)
		}
		a.Yes[i] = answerByte(d.Field("answer"))
		if d.Err() == nil && a.Yes[i] && !a.ViewOK {
			d.Fail("pair %d confirmed without the view", i)
		}
	}
	d.Field("signature").Fixed(a.Sig[:])
	if err := d.Finish(); err != nil {
		return nil, err
	}
	return a, nil
}

// answerByte reads an answer byte: 1 yes, 0 no, anything else malformed.
func answerByte(d *wire.Decoder) bool {
	switch v := d.U8(); {
	case d.Err() != nil:
	case v == 1:
		return true
	case v != 0:
		d.Fail("answer %d, want 0 or 1", v)
	}
	return false
}
