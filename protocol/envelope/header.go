package envelope

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/parley-chat/parley/protocol/franking"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/wire"
)

// HeaderVersion is the version byte that starts a header's encoding.
const HeaderVersion = 1

// HeaderSize is the size of a header's encoding in bytes: version, content
// type, room, sender, recipient, sequence, time and commitment.
const HeaderSize = 1 + 1 + 32 + 32 + 32 + 8 + 8 + 32

// Content types (spec 03-envelope §2.1). 0 and values above
// wire.MaxContentType are malformed.
const (
	ContentText    uint8 = 1 // UTF-8 text
	ContentBlob    uint8 = 2 // a blob link (spec 08-blobs)
	ContentControl uint8 = 3 // room control, such as leaving the room
)

// Errors returned by CheckHeader and Seal. Match them with errors.Is.
var (
	// ErrBadContentType: the content type is 0 or above wire.MaxContentType.
	ErrBadContentType = errors.New("envelope: bad content type")
	// ErrBadTime: the header's time is more than wire.MaxClockSkew away
	// from the node's clock.
	ErrBadTime = errors.New("envelope: time outside the allowed clock skew")
	// ErrSelfAddressed: the sender and the recipient are the same ticket.
	ErrSelfAddressed = errors.New("envelope: sender is the recipient")
)

// Header is the cleartext part of an envelope: what the sender's node sees,
// checks and stamps, and what the AEAD binds as associated data.
type Header struct {
	ContentType uint8               // one of the Content* constants
	Room        keys.RoomID         // the room the message belongs to
	Sender      keys.TicketID       // the sender's ticket signing key
	Recipient   keys.TicketID       // the recipient's ticket signing key
	Seq         uint64              // the sender's message number in its direction of the room
	Time        int64               // the sender's clock when sealing, Unix milliseconds
	Commitment  franking.Commitment // the franking commitment to the content
}

func validContentType(t uint8) bool { return t >= 1 && t <= wire.MaxContentType }

// encode writes the header's canonical encoding into b: the same bytes as
// Append, without an Encoder, so Seal, Open and ID keep it on the stack.
func (h *Header) encode(b *[HeaderSize]byte) {
	b[0] = HeaderVersion
	b[1] = h.ContentType
	copy(b[2:34], h.Room[:])
	copy(b[34:66], h.Sender[:])
	copy(b[66:98], h.Recipient[:])
	binary.BigEndian.PutUint64(b[98:106], h.Seq)
	binary.BigEndian.PutUint64(b[106:114], uint64(h.Time))
	copy(b[114:146], h.Commitment[:])
}

// Append appends the header's canonical encoding (HeaderSize bytes) to e.
func (h *Header) Append(e *wire.Encoder) {
	var b [HeaderSize]byte
	h.encode(&b)
	e.Fixed(b[:])
}

// MarshalBinary returns the header's canonical encoding.
func (h *Header) MarshalBinary() ([]byte, error) {
	b := make([]byte, HeaderSize)
	h.encode((*[HeaderSize]byte)(b))
	return b, nil
}

// ReadHeader decodes a header from d. Errors are recorded in d.
func ReadHeader(d *wire.Decoder) Header {
	var h Header
	d.Version(HeaderVersion)
	h.ContentType = d.Field("content type").U8()
	if d.Err() == nil && !validContentType(h.ContentType) {
		d.Fail("content type %d is not 1 to %d", h.ContentType, wire.MaxContentType)
	}
	d.Field("room").Fixed(h.Room[:])
	d.Field("sender").Fixed(h.Sender[:])
	d.Field("recipient").Fixed(h.Recipient[:])
	h.Seq = d.Field("seq").U64()
	h.Time = d.Field("time").I64()
	d.Field("commitment").Fixed(h.Commitment[:])
	return h
}

// ParseHeader decodes a header encoded alone. Every error is a
// *wire.ParseError.
func ParseHeader(b []byte) (Header, error) {
	d := wire.NewDecoder("envelope header", b)
	h := ReadHeader(d)
	if err := d.Finish(); err != nil {
		return Header{}, err
	}
	return h, nil
}

// CheckHeader makes the checks a sender's node makes before it stamps a
// header (spec 03-envelope §8): the content type is defined, the time lies
// within wire.MaxClockSkew of now, and the sender is not the recipient. The
// node also checks, outside this package, that the sender is the ticket its
// authenticated user holds and that the room is one of that ticket's rooms.
func CheckHeader(h *Header, now time.Time) error {
	if !validContentType(h.ContentType) {
		return fmt.Errorf("%w: %d", ErrBadContentType, h.ContentType)
	}
	nowMs, skew := now.UnixMilli(), wire.MaxClockSkew.Milliseconds()
	// Compare against now±skew, which cannot overflow for any real clock,
	// rather than subtracting a hostile h.Time.
	if h.Time > nowMs+skew || h.Time < nowMs-skew {
		return fmt.Errorf("%w: header time %d, now %d", ErrBadTime, h.Time, nowMs)
	}
	if h.Sender == h.Recipient {
		return ErrSelfAddressed
	}
	return nil
}
