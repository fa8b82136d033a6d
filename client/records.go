package client

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/parley-chat/parley/protocol/disclosure"
	"github.com/parley-chat/parley/protocol/envelope"
	"github.com/parley-chat/parley/protocol/franking"
	"github.com/parley-chat/parley/protocol/stamp"
)

// recordVersion is the version of the room records the Session keeps in
// the keystore.
const recordVersion = 1

// roomRecord is what the Session keeps about one room, JSON-encoded in the
// keystore's Rooms map under the room ID's text form. The keystore file is
// encrypted; this record holds the room's secrets and received plaintexts.
type roomRecord struct {
	V int `json:"v"`
	// State is the room's state encoding (spec 06-room-keys §5) until
	// the room_closed event arrives; then it is deleted, and with it every
	// key that could open the room's messages.
	State []byte `json:"state,omitempty"`
	// Me is this side's ticket; its signing key (in the keystore's
	// Tickets) signs disclosures.
	Me Side `json:"me"`
	// Partner is the other side: its ticket keys and home node, which
	// stamps its messages.
	Partner Side `json:"partner"`
	// Avoid is the room's avoid key (spec 06-room-keys §2.3), kept after
	// the room closes for the next ticket's avoid tags.
	Avoid []byte `json:"avoid"`
	// Epoch is this side's ticket's epoch: the first epoch of the avoid
	// tags derived from Avoid.
	Epoch   uint64    `json:"epoch"`
	Created time.Time `json:"created"`
	// Left is when this side asked to leave; the room takes no more
	// sends, but still opens what the partner sent before.
	Left time.Time `json:"left,omitzero"`
	// Closed is when the room_closed event arrived, and ClosedBy its
	// "by".
	Closed   time.Time `json:"closed,omitzero"`
	ClosedBy string    `json:"closed_by,omitempty"`
	// OpenUntil, when set, is how long a room this side closed keeps its
	// keys after the close, to open what a partner on another node sent
	// before it (lateMessageGrace); zero: the keys went with the close.
	OpenUntil time.Time `json:"open_until,omitzero"`
	// History holds the last received messages, oldest first.
	History []historyEntry `json:"history,omitempty"`
	// Outbox holds sealed messages not yet accepted by the node, oldest
	// first, each with its txid, so a retry sends the same envelope under
	// the same txid.
	Outbox []outboxEntry `json:"outbox,omitempty"`
}

// historyEntry is one opened message, with what a disclosure needs: the
// stamped header, the content and the franking key. The ciphertext is not
// kept: a disclosure does not carry it.
type historyEntry struct {
	Header      []byte    `json:"header"` // envelope.Header encoding
	Stamp       []byte    `json:"stamp"`  // stamp.Stamp encoding
	Content     []byte    `json:"content"`
	FrankingKey []byte    `json:"franking_key"`
	Received    time.Time `json:"received"`
}

type outboxEntry struct {
	TxID     string    `json:"txid"`
	Envelope []byte    `json:"envelope"` // unstamped envelope encoding
	Sealed   time.Time `json:"sealed"`
}

// open reports whether the room still takes sends.
func (r *roomRecord) open() bool { return r.Left.IsZero() && r.Closed.IsZero() && len(r.State) > 0 }

// endedAt is when the room ended for this side (left or closed), or zero.
func (r *roomRecord) endedAt() time.Time {
	switch {
	case r.Left.IsZero():
		return r.Closed
	case r.Closed.IsZero() || r.Left.Before(r.Closed):
		return r.Left
	}
	return r.Closed
}

func (r *roomRecord) marshal() ([]byte, error) {
	r.V = recordVersion
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("client: encoding room record: %w", err)
	}
	return b, nil
}

func unmarshalRecord(b []byte) (*roomRecord, error) {
	var r roomRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("client: room record in keystore: %w", err)
	}
	if r.V != recordVersion {
		return nil, fmt.Errorf("client: room record version %d, this client reads %d", r.V, recordVersion)
	}
	return &r, nil
}

func newHistoryEntry(e *envelope.Envelope, o envelope.Opened, now time.Time) (historyEntry, error) {
	h, err := e.Header.MarshalBinary()
	if err != nil {
		return historyEntry{}, err
	}
	s, err := e.Stamp.MarshalBinary()
	if err != nil {
		return historyEntry{}, err
	}
	return historyEntry{Header: h, Stamp: s, Content: o.Content, FrankingKey: o.FrankingKey[:], Received: now}, nil
}

// item rebuilds the disclosure item of a history entry.
func (h *historyEntry) item() (disclosure.Item, error) {
	hdr, err := envelope.ParseHeader(h.Header)
	if err != nil {
		return disclosure.Item{}, err
	}
	st, err := stamp.Parse(h.Stamp)
	if err != nil {
		return disclosure.Item{}, err
	}
	if len(h.FrankingKey) != franking.KeySize {
		return disclosure.Item{}, fmt.Errorf("client: history franking key is %d bytes", len(h.FrankingKey))
	}
	var o envelope.Opened
	o.Content = h.Content
	copy(o.FrankingKey[:], h.FrankingKey)
	return disclosure.ItemFromOpened(&envelope.Envelope{Header: hdr, Stamp: &st}, o)
}

// message describes a history entry to the caller.
func (h *historyEntry) message() (Message, error) {
	hdr, err := envelope.ParseHeader(h.Header)
	if err != nil {
		return Message{}, err
	}
	st, err := stamp.Parse(h.Stamp)
	if err != nil {
		return Message{}, err
	}
	e := envelope.Envelope{Header: hdr}
	return Message{
		Room:        hdr.Room,
		ID:          e.ID(),
		Seq:         hdr.Seq,
		ContentType: hdr.ContentType,
		Content:     h.Content,
		Sent:        time.UnixMilli(hdr.Time),
		Stamped:     st.TimeOf(),
	}, nil
}

// trimHistory drops the oldest entries beyond n entries or maxBytes of
// content; the newest entry always stays.
func trimHistory(hs []historyEntry, n, maxBytes int) []historyEntry {
	if len(hs) > n {
		hs = hs[len(hs)-n:]
	}
	total := 0
	for i := len(hs) - 1; i >= 0; i-- {
		total += len(hs[i].Content)
		if total > maxBytes && i < len(hs)-1 {
			return hs[i+1:]
		}
	}
	return hs
}
