package pairing

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/wire"
)

// RoomID returns the ID of the room of two paired tickets, as both clients
// compute it (spec 06-room-keys §1): H("parley/v1/room-id", low.Sign ||
// low.DH || high.Sign || high.DH), where low is the ticket with the smaller
// signing key. protocol/room computes the same inside Derive but does not
// export it on its own.
func RoomID(a, b keys.TicketPublic) keys.RoomID {
	if bytes.Compare(a.Sign[:], b.Sign[:]) > 0 {
		a, b = b, a
	}
	return keys.RoomID(wire.Hash(wire.LabelRoomID, a.Sign[:], a.DH[:], b.Sign[:], b.DH[:]))
}

// PairedEvent is the body of a mailbox.KindPaired event: the new room as the
// receiving account sees it, in the JSON form of spec 09-client-api §5:
//
//	{"id": "room_...", "me": {"sign": "tks_...", "dh": "tkx_...", "home": "<peer ID>"},
//	 "partner": {...}, "created": "2026-03-01T12:00:00.000Z"}
//
// Decode a body with json.Unmarshal.
type PairedEvent struct {
	Room    keys.RoomID
	Me      PairedSide
	Partner PairedSide
	Created time.Time // whole milliseconds, UTC
}

// PairedSide is one member of a new room: its ticket keys and home node.
type PairedSide struct {
	Sign keys.TicketID
	DH   keys.DHPublic
	Home keys.NodeID
}

// timeFormat is spec 09 §1's: RFC 3339 in UTC with milliseconds.
const timeFormat = "2006-01-02T15:04:05.000Z"

type pairedSideJSON struct {
	Sign keys.TicketID `json:"sign"`
	DH   keys.DHPublic `json:"dh"`
	Home keys.NodeID   `json:"home"`
}

type pairedJSON struct {
	ID      keys.RoomID    `json:"id"`
	Me      pairedSideJSON `json:"me"`
	Partner pairedSideJSON `json:"partner"`
	Created string         `json:"created"`
}

// MarshalJSON encodes the event body.
func (p PairedEvent) MarshalJSON() ([]byte, error) {
	return json.Marshal(pairedJSON{
		ID:      p.Room,
		Me:      pairedSideJSON(p.Me),
		Partner: pairedSideJSON(p.Partner),
		Created: p.Created.UTC().Format(timeFormat),
	})
}

// UnmarshalJSON decodes an event body. Every field is required.
func (p *PairedEvent) UnmarshalJSON(b []byte) error {
	var j struct {
		ID      *keys.RoomID    `json:"id"`
		Me      *pairedSideJSON `json:"me"`
		Partner *pairedSideJSON `json:"partner"`
		Created *string         `json:"created"`
	}
	if err := json.Unmarshal(b, &j); err != nil {
		return fmt.Errorf("%w: paired event: %w", ErrCorrupt, err)
	}
	if j.ID == nil || j.Me == nil || j.Partner == nil || j.Created == nil {
		return fmt.Errorf("%w: paired event: missing field", ErrCorrupt)
	}
	created, err := time.Parse(time.RFC3339, *j.Created)
	if err != nil {
		return fmt.Errorf("%w: paired event: %w", ErrCorrupt, err)
	}
	*p = PairedEvent{Room: *j.ID, Me: PairedSide(*j.Me), Partner: PairedSide(*j.Partner), Created: created.UTC()}
	return nil
}
