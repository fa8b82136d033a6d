package blob

import (
	"encoding/binary"

	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/wire"
)

// The takedown protocol (spec 08-blobs §13): when a node takes a blob
// down, it tells every node that fetched the blob from it with a signed
// notice, one per stream. Frames are a big-endian u32 body length and a
// body, as in the fetch protocol, but both bodies have a fixed size: the
// notifying node writes one notice, the other answers one TakedownAnswer.

// TakedownVersion is the version byte of the takedown protocol's frames
// and of the signed notice.
const TakedownVersion = 1

// Frame types of the takedown protocol.
const (
	frameTakedownNotice = 1
	frameTakedownAnswer = 2
)

// Body sizes of the takedown frames: both are fixed.
const (
	// TakedownNoticeSize is a notice's body: version, type, address,
	// origin, time, signature.
	TakedownNoticeSize = 1 + 1 + 32 + keys.PublicKeySize + 8 + keys.SignatureSize
	// TakedownAnswerSize is an answer's body: version, type, status.
	TakedownAnswerSize = 1 + 1 + 1
)

// TakedownNotice says that Origin, the node a blob was fetched from, took
// the blob at Address down at Time (Unix milliseconds). Sig is Origin's
// signature over the notice (Sign, Verify).
type TakedownNotice struct {
	Address Address
	Origin  keys.NodeID
	Time    int64
	Sig     keys.Signature
}

// signed returns the parts the signature covers, under the label
// wire.LabelTakedown: u8 version || [32] address || [32] origin || i64
// time. The fields are fixed-size, so the concatenation is canonical.
func (n *TakedownNotice) signed() [][]byte {
	var t [8]byte
	binary.BigEndian.PutUint64(t[:], uint64(n.Time))
	return [][]byte{{TakedownVersion}, n.Address[:], n.Origin[:], t[:]}
}

// SignTakedown returns the notice that key's node took addr down at
// timeMs (Unix milliseconds).
func SignTakedown(key keys.NodeKey, addr Address, timeMs int64) TakedownNotice {
	n := TakedownNotice{Address: addr, Origin: key.Public(), Time: timeMs}
	n.Sig = key.Sign(wire.LabelTakedown, n.signed()...)
	return n
}

// Verify reports whether the notice is signed by its Origin.
func (n *TakedownNotice) Verify() bool {
	return n.Origin.Verify(wire.LabelTakedown, n.Sig, n.signed()...)
}

// AppendFrame appends the notice's frame (length prefix and body) to dst.
func (n *TakedownNotice) AppendFrame(dst []byte) []byte {
	e := wire.NewEncoder(FramePrefixLen + TakedownNoticeSize)
	e.U32(TakedownNoticeSize)
	e.U8(TakedownVersion)
	e.U8(frameTakedownNotice)
	e.Fixed(n.Address[:])
	e.Fixed(n.Origin[:])
	e.I64(n.Time)
	e.Fixed(n.Sig[:])
	return append(dst, e.Bytes()...)
}

// DecodeTakedownNotice decodes a notice's body (without its prefix). It
// checks the shape only: the receiving node checks the signature with
// Verify and the origin against the one it fetched the blob from. Errors
// are *wire.ParseError.
func DecodeTakedownNotice(b []byte) (TakedownNotice, error) {
	var n TakedownNotice
	d := wire.NewDecoder("blob takedown notice", b)
	d.Version(TakedownVersion)
	if t := d.Field("type").U8(); d.Err() == nil && t != frameTakedownNotice {
		d.Fail("type %d, want %d", t, frameTakedownNotice)
	}
	d.Field("address").Fixed(n.Address[:])
	d.Field("origin").Fixed(n.Origin[:])
	n.Time = d.Field("time").I64()
	if d.Err() == nil && n.Time < 0 {
		d.Fail("negative time %d", n.Time)
	}
	d.Field("signature").Fixed(n.Sig[:])
	return n, d.Finish()
}

// TakedownStatus is a node's answer to a takedown notice.
type TakedownStatus uint8

// Takedown answer statuses.
const (
	// TakedownDone: the node dropped its copy, or held none; the notifying
	// node forgets it.
	TakedownDone TakedownStatus = 1
	// TakedownRefused: the signature does not verify, or the signer is not
	// the node the blob was fetched from; never retried.
	TakedownRefused TakedownStatus = 2
	// TakedownBusy: retry later.
	TakedownBusy TakedownStatus = 3
)

// String returns the status's name (a bounded metric label value).
func (s TakedownStatus) String() string {
	switch s {
	case TakedownDone:
		return "done"
	case TakedownRefused:
		return "refused"
	case TakedownBusy:
		return "busy"
	}
	return "unknown"
}

// AppendTakedownAnswer appends the frame of an answer with status s.
func AppendTakedownAnswer(dst []byte, s TakedownStatus) []byte {
	dst = binary.BigEndian.AppendUint32(dst, TakedownAnswerSize)
	return append(dst, TakedownVersion, frameTakedownAnswer, byte(s))
}

// DecodeTakedownAnswer decodes an answer's body. Errors are
// *wire.ParseError.
func DecodeTakedownAnswer(b []byte) (TakedownStatus, error) {
	d := wire.NewDecoder("blob takedown answer", b)
	d.Version(TakedownVersion)
	if t := d.Field("type").U8(); d.Err() == nil && t != frameTakedownAnswer {
		d.Fail("type %d, want %d", t, frameTakedownAnswer)
	}
	s := TakedownStatus(d.Field("status").U8())
	if d.Err() == nil && (s < TakedownDone || s > TakedownBusy) {
		d.Fail("unknown status %d", s)
	}
	return s, d.Finish()
}
