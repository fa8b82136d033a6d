package envelope

import (
	"math"
	"time"

	"github.com/parley-chat/parley/protocol/keys"
)

// CloseNoticeSeq is the sequence number of a close notice (spec 03-envelope
// §8.1): above room.MaxSeq, so no message of a room ever has it.
const CloseNoticeSeq = math.MaxUint64

// CloseNotice returns the close notice a node sends the home node of the
// partner of sender when sender leaves room at t (spec 03-envelope §8.1):
// an unsealed envelope of content type control, sequence CloseNoticeSeq,
// a zero commitment and a ciphertext of zeros of the smallest padding
// bucket. The node stamps it like any envelope; the stamp is what the
// receiving node checks.
func CloseNotice(room keys.RoomID, sender, recipient keys.TicketID, t time.Time) *Envelope {
	return &Envelope{
		Header: Header{
			ContentType: ContentControl,
			Room:        room,
			Sender:      sender,
			Recipient:   recipient,
			Seq:         CloseNoticeSeq,
			Time:        t.UnixMilli(),
		},
		Ciphertext: make([]byte, buckets[0]+TagSize),
	}
}

// IsCloseNotice reports whether e's header is that of a close notice:
// content type control and sequence CloseNoticeSeq. Only its stamp makes
// it one a node acts on.
func (e *Envelope) IsCloseNotice() bool {
	return e.Header.ContentType == ContentControl && e.Header.Seq == CloseNoticeSeq
}
