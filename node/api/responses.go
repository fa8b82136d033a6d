package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// Response bodies (spec 09 §3 to §8).

// timeFormat is RFC 3339 in UTC with milliseconds (spec 09 §1).
const timeFormat = "2006-01-02T15:04:05.000Z"

func formatTime(t time.Time) string { return t.UTC().Format(timeFormat) }

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Every response type marshals; failing is a broken invariant,
		// answered without a body rather than with half of one.
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	writeJSONBytes(w, status, append(b, '\n'))
}

func writeJSONBytes(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

type accountJSON struct {
	ID        string `json:"id"`
	Username  string `json:"username"`
	Created   string `json:"created"`
	Suspended bool   `json:"suspended"`
}

func toAccountJSON(a Account) accountJSON {
	return accountJSON{ID: a.ID.String(), Username: a.Username, Created: formatTime(a.Created), Suspended: a.Suspended}
}

type accountResponse struct {
	Account accountJSON `json:"account"`
}

type challengeResponse struct {
	Nonce    string `json:"nonce"`
	Audience string `json:"audience"`
	Expires  string `json:"expires"`
}

type loginResponse struct {
	Token   string      `json:"token"`
	Expires string      `json:"expires"`
	Account accountJSON `json:"account"`
}

type pairResponse struct {
	TicketID  string `json:"ticket_id"`
	Epoch     uint64 `json:"epoch"`
	EpochEnds string `json:"epoch_ends"`
}

type sideJSON struct {
	Sign string `json:"sign"`
	DH   string `json:"dh"`
	Home string `json:"home"`
}

func toSideJSON(s RoomSide) sideJSON {
	return sideJSON{Sign: s.Sign.String(), DH: s.DH.String(), Home: s.Home.String()}
}

type roomJSON struct {
	ID      string   `json:"id"`
	Me      sideJSON `json:"me"`
	Partner sideJSON `json:"partner"`
	Created string   `json:"created"`
	Closed  string   `json:"closed,omitempty"`
}

func toRoomJSON(r *Room) roomJSON {
	out := roomJSON{ID: r.ID.String(), Me: toSideJSON(r.Me), Partner: toSideJSON(r.Partner), Created: formatTime(r.Created)}
	if !r.Closed.IsZero() {
		out.Closed = formatTime(r.Closed)
	}
	return out
}

type roomsResponse struct {
	Rooms []roomJSON `json:"rooms"`
}

type sendResponse struct {
	ID        string `json:"id"`
	Stamp     string `json:"stamp"`
	Duplicate bool   `json:"duplicate"`
}

// wsAnswer answers a send over the sync WebSocket (spec 09 §6): one of
// {"sent": {"req": R, ...sendResponse}} and {"failed": {"req": R, "status":
// HTTP status, "error": {...}, "retry_after": S}}.
type wsAnswer struct {
	Sent   *wsSent   `json:"sent,omitempty"`
	Failed *wsFailed `json:"failed,omitempty"`
}

type wsSent struct {
	Req uint64 `json:"req"`
	sendResponse
}

type wsFailed struct {
	Req        uint64    `json:"req"`
	Status     int       `json:"status"`
	Error      errorJSON `json:"error"`
	RetryAfter int       `json:"retry_after,omitempty"`
}

type reportResponse struct {
	ReportID string `json:"report_id"`
	Received string `json:"received"`
}

type healthResponse struct {
	Node    string `json:"node"`
	Version string `json:"version"`
	Network string `json:"network"`
}

// eventJSON is one sync event (spec 09 §6). "room" is always the room's
// ID; a paired event carries the room itself in "room_info".
type eventJSON struct {
	Pos      uint64    `json:"pos"`
	Kind     EventKind `json:"kind"`
	Room     string    `json:"room"`
	Time     string    `json:"time"`
	Envelope string    `json:"envelope,omitempty"`
	RoomInfo *roomJSON `json:"room_info,omitempty"`
	By       ClosedBy  `json:"by,omitempty"`
}

// marshalEvent encodes ev, refusing events the mailbox should never hold.
func marshalEvent(ev *Event) ([]byte, error) {
	out := eventJSON{Pos: ev.Pos, Kind: ev.Kind, Room: ev.Room.String(), Time: formatTime(ev.Time)}
	switch ev.Kind {
	case EventMessage:
		if len(ev.Envelope) == 0 {
			return nil, fmt.Errorf("api: message event %d without an envelope", ev.Pos)
		}
		out.Envelope = b64.EncodeToString(ev.Envelope)
	case EventPaired:
		if ev.Paired == nil {
			return nil, fmt.Errorf("api: paired event %d without a room", ev.Pos)
		}
		r := toRoomJSON(ev.Paired)
		out.RoomInfo = &r
	case EventRoomClosed:
		if ev.By != ClosedByMe && ev.By != ClosedByPartner {
			return nil, fmt.Errorf("api: room_closed event %d closed by %q", ev.Pos, ev.By)
		}
		out.By = ev.By
	default:
		return nil, fmt.Errorf("api: event %d of unknown kind %q", ev.Pos, ev.Kind)
	}
	return json.Marshal(&out)
}
