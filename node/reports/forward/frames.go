// Package forward carries reports between nodes (spec 13-moderation §2):
// the reporter's node queues a verified report about a remote account in a
// durable outbox (Outbox, a reports.Forwarder) and a Sender delivers it to
// the accused's home node over the versioned stream protocol
// "/parley/<network>/report/1.0.0"; there a Handler reads it (bounded, with
// deadlines, rate-limited per peer) and hands it to reports.Receive, which
// verifies it again on its own and applies the policy.
//
// One stream carries one report:
//
//	request: u32 length || u8 version 1 || bytes32 disclosure encoding
//	answer:  u32 length || u8 version 1 || u8 status || string16 reason || i64 retry after (ms)
//
// with length the byte count that follows it, at most wire.MaxReportFrame
// (request) or maxAnswer (answer). Status is accepted (stored and counted),
// duplicate (stored before), rejected (never retry: reason names the
// failed check) or busy (retry after the given time).
package forward

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/parley-chat/parley/protocol/wire"
)

// Name and Version name the stream protocol for node/p2p's ProtocolID and
// SetStreamHandler.
const (
	Name    = "report"
	Version = "1.0.0"
)

// Status is a report answer's status.
type Status uint8

// Answer statuses.
const (
	StatusAccepted  Status = 0
	StatusDuplicate Status = 1
	StatusRejected  Status = 2
	StatusBusy      Status = 3
)

// String returns the status's name (a metric label value).
func (s Status) String() string {
	switch s {
	case StatusAccepted:
		return "accepted"
	case StatusDuplicate:
		return "duplicate"
	case StatusRejected:
		return "rejected"
	case StatusBusy:
		return "busy"
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// maxReason bounds an answer's reason text.
const maxReason = 64

// maxAnswer bounds an answer frame's body.
const maxAnswer = 1 + 1 + 2 + maxReason + 8

// Answer is the accused's node's answer to one report.
type Answer struct {
	Status     Status
	Reason     string // a fixed word (reports.RejectReason) for rejected; empty otherwise
	RetryAfter int64  // milliseconds, for busy
}

// appendFrame appends u32 len(body) and body.
func appendFrame(dst, body []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(body)))
	return append(dst, body...)
}

// EncodeRequest returns the request frame carrying a disclosure encoding.
func EncodeRequest(enc []byte) []byte {
	e := wire.NewEncoder(1 + 4 + len(enc))
	e.U8(1)
	e.Bytes32(enc)
	return appendFrame(make([]byte, 0, 4+e.Len()), e.Bytes())
}

// DecodeRequest decodes a request body (after its length prefix) and
// returns the disclosure encoding it carries. Every error is a
// *wire.ParseError.
func DecodeRequest(body []byte) ([]byte, error) {
	d := wire.NewDecoder("report request", body)
	d.Version(1)
	enc := d.Field("disclosure").Bytes32(wire.MaxDisclosureSize)
	if err := d.Finish(); err != nil {
		return nil, err
	}
	return enc, nil
}

// EncodeAnswer returns the answer frame for a.
func EncodeAnswer(a Answer) []byte {
	reason := a.Reason
	if len(reason) > maxReason {
		reason = reason[:maxReason]
	}
	e := wire.NewEncoder(maxAnswer)
	e.U8(1)
	e.U8(uint8(a.Status))
	e.String16(reason)
	e.I64(a.RetryAfter)
	return appendFrame(make([]byte, 0, 4+e.Len()), e.Bytes())
}

// DecodeAnswer decodes an answer body (after its length prefix). Every
// error is a *wire.ParseError.
func DecodeAnswer(body []byte) (Answer, error) {
	var a Answer
	d := wire.NewDecoder("report answer", body)
	d.Version(1)
	a.Status = Status(d.Field("status").U8())
	if d.Err() == nil && a.Status > StatusBusy {
		d.Fail("undefined status %d", uint8(a.Status))
	}
	a.Reason = d.Field("reason").String16(maxReason)
	a.RetryAfter = d.Field("retry after").I64()
	if d.Err() == nil && (a.RetryAfter < 0 || a.RetryAfter > wire.MaxRetryAfter.Milliseconds()) {
		d.Fail("retry after %d ms is not 0 to %d", a.RetryAfter, wire.MaxRetryAfter.Milliseconds())
	}
	if err := d.Finish(); err != nil {
		return Answer{}, err
	}
	return a, nil
}

// frameError is a frame that breaks the protocol before its body decodes:
// truncated or oversized. Reason is a fixed word.
type frameError struct {
	reason string
	err    error
}

func (e *frameError) Error() string { return "report frame " + e.reason + ": " + e.err.Error() }
func (e *frameError) Unwrap() error { return e.err }

// readFrame reads one length-prefixed frame of at most limit bytes; reserve
// is called with the body length before the body is allocated (nil: no
// reservation) and may refuse it.
func readFrame(r io.Reader, limit int, reserve func(n int) error) ([]byte, error) {
	var prefix [4]byte
	if _, err := io.ReadFull(r, prefix[:]); err != nil {
		return nil, &frameError{"truncated", err}
	}
	n := binary.BigEndian.Uint32(prefix[:])
	if n > uint32(limit) {
		return nil, &frameError{"oversized", fmt.Errorf("%d bytes, limit %d", n, limit)}
	}
	if reserve != nil {
		if err := reserve(int(n)); err != nil {
			return nil, &frameError{"no_memory", err}
		}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, &frameError{"truncated", err}
	}
	return body, nil
}
