package room

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/parley-chat/parley/protocol/envelope"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/wire"
)

// ErrNotForMe is returned by Open for an envelope whose header does not name
// this room, the partner as sender and this side as recipient: such a message
// could not be reported (spec 03-envelope §6), so it is never shown.
var ErrNotForMe = errors.New("room: envelope not addressed to this side of this room")

// Seal seals content as this side's next message in the room: it fills the
// header (room, sender, recipient, sequence, time), steps the send ratchet
// and seals with the one-time message key (spec 03-envelope §5). The
// advanced room state must be persisted before the envelope is sent (spec
// 06-room-keys §5).
func (r *Room) Seal(contentType uint8, content []byte, now time.Time, rnd io.Reader) (*envelope.Envelope, error) {
	// Refuse what Seal would refuse before a sequence number is spent.
	if len(content) > wire.MaxPlaintext {
		return nil, fmt.Errorf("%w: %d bytes (max %d)", envelope.ErrTooLarge, len(content), wire.MaxPlaintext)
	}
	if contentType == 0 || contentType > wire.MaxContentType {
		return nil, fmt.Errorf("%w: %d", envelope.ErrBadContentType, contentType)
	}
	seq, mk := r.NextSend()
	defer mk.Wipe()
	h := envelope.Header{
		ContentType: contentType,
		Room:        r.ID(),
		Sender:      r.Me(),
		Recipient:   r.Partner(),
		Seq:         seq,
		Time:        now.UnixMilli(),
	}
	return envelope.Seal(&mk, h, content, rnd)
}

// Open opens an envelope received in this room and enforces sender binding
// (spec 03-envelope §6): the header must name this room, the partner as
// sender and this side as recipient; the stamp must verify against the
// partner's home node; the ratchet must yield a key for the sequence number
// (no replays); and envelope.Open must succeed, commitment included. The
// receive state advances only if every check passes.
func (r *Room) Open(e *envelope.Envelope, partnerHome keys.NodeID) (envelope.Opened, error) {
	h := &e.Header
	if h.Room != r.ID() || h.Sender != r.Partner() || h.Recipient != r.Me() {
		return envelope.Opened{}, ErrNotForMe
	}
	if err := e.VerifyStamp(partnerHome); err != nil {
		return envelope.Opened{}, err
	}
	var opened envelope.Opened
	err := r.Receive(h.Seq, func(mk *keys.MessageKey) error {
		var err error
		opened, err = envelope.Open(mk, e)
		return err
	})
	if err != nil {
		return envelope.Opened{}, err
	}
	return opened, nil
}
