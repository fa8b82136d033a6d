// Package federation holds the frames of Parley's node-to-node delivery
// protocol, "/parley/<network>/deliver/1.0.0" (spec 12-delivery): the Batch
// a sending node writes, a list of envelopes its own node stamped, and the
// Ack the receiving node answers once it has durably stored them, with one
// status per envelope.
//
// Frames travel on a libp2p stream as a u32 length followed by that many
// bytes of body; the body is a canonical encoding (spec 02-encoding §1)
// that starts with a version and a frame type. Everything here is pure:
// streams, deadlines and storage belong to node/federation.
package federation

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/parley-chat/parley/protocol/envelope"
	"github.com/parley-chat/parley/protocol/wire"
)

// Version is the version byte that starts every frame body.
const Version = 1

// PrefixLen is the size of the length prefix in front of every frame body.
const PrefixLen = 4

// BatchOverhead is the size of a Batch body without its envelopes: version,
// type, sequence number and envelope count. A Batch body is BatchOverhead
// plus the sum of its envelopes' canonical encodings.
const BatchOverhead = 1 + 1 + 8 + 2

// minEnvelope is a lower bound on an envelope's encoding (version, header,
// ciphertext length, stamp presence), for Decoder.Count.
const minEnvelope = 1 + envelope.HeaderSize + 4 + 1

// ProtocolID returns the delivery protocol's ID on network (spec 12 §1).
func ProtocolID(network string) string { return "/parley/" + network + "/deliver/1.0.0" }

// Frame types.
const (
	typeBatch uint8 = 1
	typeAck   uint8 = 2
)

// Status is the outcome of one envelope of a Batch, as the receiver reports it.
type Status uint8

// Statuses (spec 12 §3). The sender deletes an envelope from its outbox on
// each of them; only Rejected is a loss, counted by Reason.
const (
	// Stored: the envelope is now durably in its recipient's mailbox.
	Stored Status = 1
	// Duplicate: the envelope was stored before (an earlier Batch whose Ack
	// was lost, or twice in one Batch); it was not stored again.
	Duplicate Status = 2
	// Rejected: the envelope was refused for its content and will never be
	// accepted; Reason says why.
	Rejected Status = 3
)

func (s Status) String() string {
	switch s {
	case Stored:
		return "stored"
	case Duplicate:
		return "duplicate"
	case Rejected:
		return "rejected"
	default:
		return fmt.Sprintf("status(%d)", uint8(s))
	}
}

// Reason says why an envelope was rejected. Its String is a metric label.
type Reason uint8

// Reasons (spec 12 §4). A Result that is not Rejected carries ReasonNone.
const (
	ReasonNone Reason = 0
	// ReasonBadStamp: the stamp's signature does not verify.
	ReasonBadStamp Reason = 1
	// ReasonWrongNode: the stamp names a node other than the sending peer.
	ReasonWrongNode Reason = 2
	// ReasonBadHeader: the header fails the sending node's own checks
	// (content type, sender is recipient, header time too far from the
	// stamp time), or the stamp time lies in the receiver's future.
	ReasonBadHeader Reason = 3
	// ReasonNoRoom: no room on the receiver has the header's room, the
	// recipient as a local side and the sender as the partner homed at the
	// sending node.
	ReasonNoRoom Reason = 4
	// ReasonRoomClosed: the room was closed before the envelope's stamp time.
	ReasonRoomClosed Reason = 5
	// ReasonExpired: the stamp is older than the receiver keeps de-duplication
	// records, so it could not tell a duplicate.
	ReasonExpired Reason = 6

	maxReason = ReasonExpired
)

// Reasons lists every rejection reason, for metrics that pre-create labels.
var Reasons = []Reason{ReasonBadStamp, ReasonWrongNode, ReasonBadHeader, ReasonNoRoom, ReasonRoomClosed, ReasonExpired}

func (r Reason) String() string {
	switch r {
	case ReasonNone:
		return "none"
	case ReasonBadStamp:
		return "bad_stamp"
	case ReasonWrongNode:
		return "wrong_node"
	case ReasonBadHeader:
		return "bad_header"
	case ReasonNoRoom:
		return "no_room"
	case ReasonRoomClosed:
		return "room_closed"
	case ReasonExpired:
		return "expired"
	default:
		return fmt.Sprintf("reason(%d)", uint8(r))
	}
}

// Batch is what a sending node writes: envelopes that it stamped, for
// recipients homed at the receiving node, in its outbox order.
type Batch struct {
	// Seq is the sender's number for this Batch; the Ack repeats it.
	Seq uint64
	// Envelopes holds 1 to wire.MaxDeliverEnvelopes stamped envelopes.
	Envelopes []*envelope.Envelope
}

// Result is the receiver's answer for one envelope of a Batch.
type Result struct {
	Status Status
	Reason Reason // ReasonNone unless Status is Rejected
}

// Ack is the receiver's answer to a Batch, written only after every envelope
// it reports Stored is durable.
type Ack struct {
	// Seq is the Batch's Seq.
	Seq uint64
	// Busy says the receiver took nothing because the sender is over its
	// rate limit; the sender retries after RetryAfter. Results is empty.
	Busy bool
	// RetryAfter is set only with Busy; it is sent in whole milliseconds,
	// at most wire.MaxRetryAfter.
	RetryAfter time.Duration
	// Results has one entry per envelope of the Batch, in order.
	Results []Result
}

// BodyLen checks a frame's length prefix and returns the body length: 1 to
// wire.MaxDeliverFrame bytes, else a *wire.ParseError (the reader must then
// not read the body).
func BodyLen(prefix [PrefixLen]byte) (int, error) {
	n := binary.BigEndian.Uint32(prefix[:])
	if n == 0 || n > wire.MaxDeliverFrame {
		return 0, wire.Errorf("delivery frame", "length", "%d bytes is not 1 to %d", n, wire.MaxDeliverFrame)
	}
	return int(n), nil
}

// BodySize returns the size of b's body, without the length prefix: the
// value a sender compares against wire.MaxDeliverFrame.
func (b *Batch) BodySize() int {
	n := BatchOverhead
	for _, e := range b.Envelopes {
		n += EnvelopeSize(e)
	}
	return n
}

// EnvelopeSize returns the size of e's canonical encoding.
func EnvelopeSize(e *envelope.Envelope) int {
	n := 1 + envelope.HeaderSize + 4 + len(e.Ciphertext) + 1
	if s := e.Stamp; s != nil {
		n += 1 + 32 + 8 + 4 + 4 + 1 + 32*len(s.Path) + 64
	}
	return n
}

// AppendFrame appends b's frame (length prefix and body) to dst. It fails,
// appending nothing, if b has no envelopes or more than
// wire.MaxDeliverEnvelopes, an unstamped envelope, or a body over
// wire.MaxDeliverFrame: the receiver would refuse any of them.
func (b *Batch) AppendFrame(dst []byte) ([]byte, error) {
	if n := len(b.Envelopes); n == 0 || n > wire.MaxDeliverEnvelopes {
		return dst, fmt.Errorf("federation: batch of %d envelopes (want 1 to %d)", n, wire.MaxDeliverEnvelopes)
	}
	for i, e := range b.Envelopes {
		if e.Stamp == nil {
			return dst, fmt.Errorf("federation: envelope %d is not stamped", i)
		}
	}
	size := b.BodySize()
	if size > wire.MaxDeliverFrame {
		return dst, fmt.Errorf("federation: batch of %d bytes (max %d)", size, wire.MaxDeliverFrame)
	}
	e := wire.NewEncoder(PrefixLen + size)
	e.U32(uint32(size))
	e.U8(Version)
	e.U8(typeBatch)
	e.U64(b.Seq)
	e.Count(len(b.Envelopes))
	for _, env := range b.Envelopes {
		env.Append(e)
	}
	return append(dst, e.Bytes()...), nil
}

// DecodeBatch decodes a Batch body (without its length prefix). Every error
// is a *wire.ParseError. It checks structure only: stamps and headers are
// the receiving node's to check.
func DecodeBatch(body []byte) (*Batch, error) {
	d := wire.NewDecoder("delivery batch", body)
	d.Version(Version)
	if t := d.Field("type").U8(); d.Err() == nil && t != typeBatch {
		d.Fail("frame type %d, want %d (batch)", t, typeBatch)
	}
	b := &Batch{Seq: d.Field("seq").U64()}
	n := d.Field("envelopes").Count(wire.MaxDeliverEnvelopes, minEnvelope)
	if d.Err() == nil && n == 0 {
		d.Fail("no envelopes")
	}
	if d.Err() == nil {
		b.Envelopes = make([]*envelope.Envelope, 0, n)
	}
	for i := 0; i < n && d.Err() == nil; i++ {
		env := envelope.Read(d.Field(fmt.Sprintf("envelope %d", i)))
		if d.Err() == nil && env.Stamp == nil {
			d.Fail("envelope %d is not stamped", i)
		}
		b.Envelopes = append(b.Envelopes, env)
	}
	if err := d.Finish(); err != nil {
		return nil, err
	}
	return b, nil
}

// ackSize is the size of an Ack body with n results.
func ackSize(n int) int { return 1 + 1 + 8 + 1 + 4 + 2 + 2*n }

// AppendFrame appends a's frame (length prefix and body) to dst. It fails,
// appending nothing, if a is not well formed: Busy with results or with a
// RetryAfter outside 0 to wire.MaxRetryAfter; not Busy with a RetryAfter;
// more than wire.MaxDeliverEnvelopes results; an unknown status; a reason
// on a result that is not Rejected, or none on one that is.
func (a *Ack) AppendFrame(dst []byte) ([]byte, error) {
	if err := a.check(); err != nil {
		return dst, err
	}
	size := ackSize(len(a.Results))
	e := wire.NewEncoder(PrefixLen + size)
	e.U32(uint32(size))
	e.U8(Version)
	e.U8(typeAck)
	e.U64(a.Seq)
	if a.Busy {
		e.U8(1)
	} else {
		e.U8(0)
	}
	e.U32(uint32(a.RetryAfter.Milliseconds()))
	e.Count(len(a.Results))
	for _, r := range a.Results {
		e.U8(uint8(r.Status))
		e.U8(uint8(r.Reason))
	}
	return append(dst, e.Bytes()...), nil
}

func (a *Ack) check() error {
	switch {
	case a.Busy && len(a.Results) > 0:
		return fmt.Errorf("federation: busy ack with %d results", len(a.Results))
	case a.RetryAfter < 0 || a.RetryAfter > wire.MaxRetryAfter:
		return fmt.Errorf("federation: retry after %s is not 0 to %s", a.RetryAfter, wire.MaxRetryAfter)
	case !a.Busy && a.RetryAfter != 0:
		return fmt.Errorf("federation: retry after %s on an ack that is not busy", a.RetryAfter)
	case len(a.Results) > wire.MaxDeliverEnvelopes:
		return fmt.Errorf("federation: ack of %d results (max %d)", len(a.Results), wire.MaxDeliverEnvelopes)
	}
	for i, r := range a.Results {
		if err := checkResult(r); err != nil {
			return fmt.Errorf("federation: result %d: %w", i, err)
		}
	}
	return nil
}

func checkResult(r Result) error {
	switch {
	case r.Status < Stored || r.Status > Rejected:
		return fmt.Errorf("unknown status %d", r.Status)
	case r.Status == Rejected && (r.Reason == ReasonNone || r.Reason > maxReason):
		return fmt.Errorf("rejected with reason %d (want 1 to %d)", r.Reason, maxReason)
	case r.Status != Rejected && r.Reason != ReasonNone:
		return fmt.Errorf("%s with reason %d", r.Status, r.Reason)
	}
	return nil
}

// DecodeAck decodes an Ack body (without its length prefix). Every error is
// a *wire.ParseError. Whether the results match the Batch (its Seq, one per
// envelope) is the sender's check.
func DecodeAck(body []byte) (*Ack, error) {
	d := wire.NewDecoder("delivery ack", body)
	d.Version(Version)
	if t := d.Field("type").U8(); d.Err() == nil && t != typeAck {
		d.Fail("frame type %d, want %d (ack)", t, typeAck)
	}
	a := &Ack{Seq: d.Field("seq").U64()}
	switch busy := d.Field("busy").U8(); {
	case d.Err() != nil:
	case busy <= 1:
		a.Busy = busy == 1
	default:
		d.Fail("%d is not 0 or 1", busy)
	}
	ms := d.Field("retry after").U32()
	if d.Err() == nil {
		a.RetryAfter = time.Duration(ms) * time.Millisecond
		if a.RetryAfter > wire.MaxRetryAfter || (!a.Busy && ms != 0) {
			d.Fail("%d ms with busy %v", ms, a.Busy)
		}
	}
	n := d.Field("results").Count(wire.MaxDeliverEnvelopes, 2)
	if d.Err() == nil && a.Busy && n != 0 {
		d.Fail("busy ack with %d results", n)
	}
	if d.Err() == nil && n > 0 {
		a.Results = make([]Result, n)
	}
	for i := 0; i < n && d.Err() == nil; i++ {
		r := Result{Status: Status(d.Field("status").U8()), Reason: Reason(d.Field("reason").U8())}
		if d.Err() == nil {
			if err := checkResult(r); err != nil {
				d.Fail("result %d: %s", i, err)
			}
		}
		a.Results[i] = r
	}
	if err := d.Finish(); err != nil {
		return nil, err
	}
	return a, nil
}
