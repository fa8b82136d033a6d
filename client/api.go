package client

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/parley-chat/parley/protocol/disclosure"
	"github.com/parley-chat/parley/protocol/envelope"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/lottery"
	"github.com/parley-chat/parley/protocol/stamp"
	"github.com/parley-chat/parley/protocol/wire"
)

// The client API's types (spec 09-client-api). Keys and IDs use their text
// forms on the wire (they implement encoding.TextUnmarshaler), byte strings
// standard base64 with padding (encoding/json's []byte), times RFC 3339.

// Account is an account as the node describes it (spec 09 §3).
type Account struct {
	ID        keys.AccountID `json:"id"`
	Username  string         `json:"username"`
	Created   time.Time      `json:"created"`
	Suspended bool           `json:"suspended"`
}

// Challenge is a login challenge (spec 09 §3).
type Challenge struct {
	Nonce    [32]byte
	Audience keys.NodeID // the node the signature is for
	Expires  time.Time
}

// LoginResult is a successful login: the bearer token and its expiry.
type LoginResult struct {
	Token   string
	Expires time.Time
	Account Account
}

// PairRequest asks for a partner (spec 09 §4).
type PairRequest struct {
	Ticket    keys.TicketPublic // fresh keys for this pairing
	Interests []lottery.Tag     // at most wire.MaxInterestTags
	Avoid     []lottery.Tag     // at most wire.MaxAvoidTags
}

// PairTicket is the node's answer to a pair request.
type PairTicket struct {
	ID        [32]byte
	Epoch     uint64
	EpochEnds time.Time
}

// Side is one member of a room: its ticket's public keys and home node.
type Side struct {
	Sign keys.TicketID `json:"sign"`
	DH   keys.DHPublic `json:"dh"`
	Home keys.NodeID   `json:"home"`
}

// Public returns the side's ticket keys.
func (s Side) Public() keys.TicketPublic { return keys.TicketPublic{Sign: s.Sign, DH: s.DH} }

// Room is a room as the node describes it (spec 09 §5): Me is the caller's
// ticket, Partner the other one. Closed is zero while the room is open.
type Room struct {
	ID      keys.RoomID `json:"id"`
	Me      Side        `json:"me"`
	Partner Side        `json:"partner"`
	Created time.Time   `json:"created"`
	Closed  time.Time   `json:"closed,omitzero"`
}

// SendResult is the node's answer to a send (spec 09 §5).
type SendResult struct {
	ID        [32]byte    // the envelope ID
	Stamp     stamp.Stamp // the node's stamp of the envelope's header
	Duplicate bool        // a retry of a txid the node had already accepted
}

// EventKind is the kind of a mailbox event (spec 09 §6), or of a Session
// event.
type EventKind string

// Event kinds. EventWarning is the Session's own: an event it skipped.
const (
	EventMessage    EventKind = "message"
	EventPaired     EventKind = "paired"
	EventRoomClosed EventKind = "room_closed"
	EventWarning    EventKind = "warning"
)

// Who closed a room, in a room_closed event.
const (
	ClosedByMe      = "me"
	ClosedByPartner = "partner"
)

// SyncEvent is one mailbox event as the node sends it (spec 09 §6). The
// envelope is unverified: Session opens it.
type SyncEvent struct {
	Pos      uint64
	Kind     EventKind
	Room     keys.RoomID
	Time     time.Time
	Envelope []byte // message: the stamped envelope's encoding
	RoomInfo *Room  // paired: the room
	By       string // room_closed: ClosedByMe or ClosedByPartner
}

// UnmarshalJSON decodes an event. The spec writes a paired event's room
// as `"room": {...}` while every event's "room" is also the room ID; the
// reference node sends the ID in "room" and the room in "room_info". Both
// forms are accepted.
func (e *SyncEvent) UnmarshalJSON(b []byte) error {
	var raw struct {
		Pos      *uint64         `json:"pos"`
		Kind     EventKind       `json:"kind"`
		Room     json.RawMessage `json:"room"`
		Time     time.Time       `json:"time"`
		Envelope []byte          `json:"envelope"`
		RoomInfo *Room           `json:"room_info"`
		By       string          `json:"by"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	if raw.Pos == nil {
		return errEmpty("pos")
	}
	*e = SyncEvent{Pos: *raw.Pos, Kind: raw.Kind, Time: raw.Time, Envelope: raw.Envelope, RoomInfo: raw.RoomInfo, By: raw.By}
	switch {
	case len(raw.Room) > 0 && raw.Room[0] == '{':
		var r Room
		if err := json.Unmarshal(raw.Room, &r); err != nil {
			return fmt.Errorf("event %d: room: %w", e.Pos, err)
		}
		e.Room = r.ID
		if e.RoomInfo == nil {
			e.RoomInfo = &r
		}
	case len(raw.Room) > 0:
		if err := json.Unmarshal(raw.Room, &e.Room); err != nil {
			return fmt.Errorf("event %d: room: %w", e.Pos, err)
		}
	case e.RoomInfo != nil:
		e.Room = e.RoomInfo.ID
	default:
		return fmt.Errorf("event %d: %w", e.Pos, errEmpty("room"))
	}
	switch e.Kind {
	case EventMessage:
		if len(e.Envelope) == 0 {
			return fmt.Errorf("message event %d: %w", e.Pos, errEmpty("envelope"))
		}
	case EventPaired:
		if e.RoomInfo == nil {
			return fmt.Errorf("paired event %d: %w", e.Pos, errEmpty("room"))
		}
	case EventRoomClosed:
		if e.By != ClosedByMe && e.By != ClosedByPartner {
			return fmt.Errorf("room_closed event %d: by %q", e.Pos, e.By)
		}
	}
	return nil
}

// SyncResult is one page of the mailbox.
type SyncResult struct {
	Events []SyncEvent
	// Next is the position to pass as after next time.
	Next uint64
}

// ReportReceipt is the node's answer to a report (spec 09 §7).
type ReportReceipt struct {
	ID       [32]byte
	Received time.Time
}

// Health is the node's self-description (spec 09 §8).
type Health struct {
	Node    keys.NodeID `json:"node"`
	Version string      `json:"version"`
	Network string      `json:"network"`
}

// ---- accounts and sessions (spec 09 §3) ----

// Register creates an account for username with the identity key id.
// invite is sent only if not empty.
func (c *Client) Register(ctx context.Context, username string, id keys.AccountID, invite string) (Account, error) {
	body := struct {
		Username    string         `json:"username"`
		IdentityKey keys.AccountID `json:"identity_key"`
		Invite      string         `json:"invite,omitempty"`
	}{username, id, invite}
	var out accountAnswer
	err := c.do(ctx, request{method: http.MethodPost, path: "/v1/register", body: body, want: http.StatusCreated, out: &out})
	return out.Account, err
}

type accountAnswer struct {
	Account Account `json:"account"`
}

func (a *accountAnswer) check() error {
	if a.Account.Username == "" {
		return errEmpty("account")
	}
	return nil
}

// Challenge asks for a login challenge for username.
func (c *Client) Challenge(ctx context.Context, username string) (Challenge, error) {
	body := struct {
		Username string `json:"username"`
	}{username}
	var out challengeAnswer
	if err := c.do(ctx, request{method: http.MethodPost, path: "/v1/login/challenge", body: body, want: http.StatusOK, out: &out}); err != nil {
		return Challenge{}, err
	}
	ch := Challenge{Audience: out.Audience, Expires: out.Expires}
	copy(ch.Nonce[:], out.Nonce)
	return ch, nil
}

type challengeAnswer struct {
	Nonce    []byte      `json:"nonce"`
	Audience keys.NodeID `json:"audience"`
	Expires  time.Time   `json:"expires"`
}

func (a *challengeAnswer) check() error {
	if len(a.Nonce) != 32 {
		return fmt.Errorf("nonce is %d bytes, want 32", len(a.Nonce))
	}
	return nil
}

// LoginMessage returns what an account key signs, under
// wire.LabelAccountLogin, to log in (spec 09 §3): the canonical encoding of
// u8 1 || string16 audience || string16 username || fixed[32] nonce.
func LoginMessage(audience, username string, nonce [32]byte) []byte {
	e := wire.NewEncoder(1 + 2 + len(audience) + 2 + len(username) + 32)
	e.U8(1)
	e.String16(audience)
	e.String16(username)
	e.Fixed(nonce[:])
	return e.Bytes()
}

// Login logs username in: it asks for a challenge, signs it with key and
// presents the signature. On success the client uses the new token.
func (c *Client) Login(ctx context.Context, username string, key keys.AccountKey) (LoginResult, error) {
	ch, err := c.Challenge(ctx, username)
	if err != nil {
		return LoginResult{}, err
	}
	sig := key.Sign(wire.LabelAccountLogin, LoginMessage(ch.Audience.String(), username, ch.Nonce))
	body := struct {
		Username  string `json:"username"`
		Nonce     []byte `json:"nonce"`
		Signature []byte `json:"signature"`
	}{username, ch.Nonce[:], sig[:]}
	var out loginAnswer
	if err := c.do(ctx, request{method: http.MethodPost, path: "/v1/login", body: body, want: http.StatusOK, out: &out}); err != nil {
		return LoginResult{}, err
	}
	c.SetToken(out.Token)
	return LoginResult(out), nil
}

type loginAnswer struct {
	Token   string    `json:"token"`
	Expires time.Time `json:"expires"`
	Account Account   `json:"account"`
}

func (a *loginAnswer) check() error {
	if a.Token == "" {
		return errEmpty("token")
	}
	return nil
}

// Logout revokes the client's token and forgets it.
func (c *Client) Logout(ctx context.Context) error {
	err := c.do(ctx, request{method: http.MethodPost, path: "/v1/logout", auth: true, want: http.StatusNoContent})
	if err == nil {
		c.SetToken("")
	}
	return err
}

// Account returns the logged-in account.
func (c *Client) Account(ctx context.Context) (Account, error) {
	var out accountAnswer
	err := c.do(ctx, request{method: http.MethodGet, path: "/v1/account", auth: true, want: http.StatusOK, out: &out})
	return out.Account, err
}

// ---- pairing (spec 09 §4) ----

// Pair asks the node to enter a ticket into the lottery.
func (c *Client) Pair(ctx context.Context, p PairRequest) (PairTicket, error) {
	type ticket struct {
		Sign keys.TicketID `json:"sign"`
		DH   keys.DHPublic `json:"dh"`
	}
	body := struct {
		Ticket    ticket   `json:"ticket"`
		Interests [][]byte `json:"interests,omitempty"`
		Avoid     [][]byte `json:"avoid,omitempty"`
	}{Ticket: ticket{p.Ticket.Sign, p.Ticket.DH}, Interests: tagBytes(p.Interests), Avoid: tagBytes(p.Avoid)}
	var out pairAnswer
	if err := c.do(ctx, request{method: http.MethodPost, path: "/v1/pair", body: body, auth: true, want: http.StatusAccepted, out: &out}); err != nil {
		return PairTicket{}, err
	}
	t := PairTicket{Epoch: out.Epoch, EpochEnds: out.EpochEnds}
	copy(t.ID[:], out.TicketID)
	return t, nil
}

func tagBytes(tags []lottery.Tag) [][]byte {
	var out [][]byte
	for i := range tags {
		out = append(out, tags[i][:])
	}
	return out
}

type pairAnswer struct {
	TicketID  []byte    `json:"ticket_id"`
	Epoch     uint64    `json:"epoch"`
	EpochEnds time.Time `json:"epoch_ends"`
}

func (a *pairAnswer) check() error {
	if len(a.TicketID) != 32 {
		return fmt.Errorf("ticket_id is %d bytes, want 32", len(a.TicketID))
	}
	return nil
}

// Withdraw withdraws the account's waiting ticket.
func (c *Client) Withdraw(ctx context.Context) error {
	return c.do(ctx, request{method: http.MethodDelete, path: "/v1/pair", auth: true, want: http.StatusNoContent})
}

// ---- rooms and messages (spec 09 §5) ----

// Rooms lists the account's rooms.
func (c *Client) Rooms(ctx context.Context) ([]Room, error) {
	var out struct {
		Rooms []Room `json:"rooms"`
	}
	err := c.do(ctx, request{method: http.MethodGet, path: "/v1/rooms", auth: true, want: http.StatusOK, out: &out})
	return out.Rooms, err
}

func roomPath(room keys.RoomID, what string) string {
	return "/v1/rooms/" + url.PathEscape(room.String()) + "/" + what
}

// Send posts a sealed, unstamped envelope to room under the client
// transaction ID txid (1 to 64 visible ASCII characters). Retrying with the
// same txid and envelope is safe: the node answers the first result again,
// with Duplicate set, and delivers nothing more.
func (c *Client) Send(ctx context.Context, room keys.RoomID, txid string, env *envelope.Envelope) (SendResult, error) {
	b, err := env.MarshalBinary()
	if err != nil {
		return SendResult{}, fmt.Errorf("client: encoding envelope: %w", err)
	}
	body := struct {
		TxID     string `json:"txid"`
		Envelope []byte `json:"envelope"`
	}{txid, b}
	var out sendAnswer
	if err := c.do(ctx, request{method: http.MethodPost, path: roomPath(room, "messages"), body: body, auth: true, want: http.StatusOK, out: &out}); err != nil {
		return SendResult{}, err
	}
	res := SendResult{Stamp: out.stamp, Duplicate: out.Duplicate}
	copy(res.ID[:], out.ID)
	return res, nil
}

type sendAnswer struct {
	ID        []byte `json:"id"`
	Stamp     []byte `json:"stamp"`
	Duplicate bool   `json:"duplicate"`

	stamp stamp.Stamp
}

func (a *sendAnswer) check() (err error) {
	if len(a.ID) != 32 {
		return fmt.Errorf("id is %d bytes, want 32", len(a.ID))
	}
	a.stamp, err = stamp.Parse(a.Stamp)
	return err
}

// Leave closes room for both members.
func (c *Client) Leave(ctx context.Context, room keys.RoomID) error {
	return c.do(ctx, request{method: http.MethodPost, path: roomPath(room, "leave"), auth: true, want: http.StatusNoContent})
}

// ---- sync (spec 09 §6) ----

// MaxSyncWait is the longest wait the API allows a long-poll.
const MaxSyncWait = 60 * time.Second

// Sync returns the mailbox events after position after: at most limit (0
// for the node's default). If there are none and wait > 0, the node holds
// the request until one arrives or wait (rounded up to whole seconds, at
// most MaxSyncWait) ends.
func (c *Client) Sync(ctx context.Context, after uint64, limit int, wait time.Duration) (SyncResult, error) {
	q := url.Values{"after": {strconv.FormatUint(after, 10)}}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	wait = min(max(wait, 0), MaxSyncWait)
	secs := int(math.Ceil(wait.Seconds()))
	if secs > 0 {
		q.Set("wait", strconv.Itoa(secs))
	}
	var out syncAnswer
	if err := c.do(ctx, request{method: http.MethodGet, path: "/v1/sync", query: q, auth: true, want: http.StatusOK, out: &out, extra: time.Duration(secs) * time.Second}); err != nil {
		return SyncResult{}, err
	}
	for i := range out.Events {
		if out.Events[i].Pos <= after || (i > 0 && out.Events[i].Pos <= out.Events[i-1].Pos) {
			return SyncResult{}, fmt.Errorf("%w: sync: event positions not increasing after %d", ErrBadResponse, after)
		}
	}
	if out.Next == nil || *out.Next < after || (len(out.Events) > 0 && *out.Next < out.Events[len(out.Events)-1].Pos) {
		return SyncResult{}, fmt.Errorf("%w: sync: next position missing or behind the events", ErrBadResponse)
	}
	return SyncResult{Events: out.Events, Next: *out.Next}, nil
}

type syncAnswer struct {
	Events []SyncEvent `json:"events"`
	Next   *uint64     `json:"next"`
}

// Ack acknowledges every event up to position upto: the node deletes them.
func (c *Client) Ack(ctx context.Context, upto uint64) error {
	body := struct {
		Upto uint64 `json:"upto"`
	}{upto}
	return c.do(ctx, request{method: http.MethodPost, path: "/v1/ack", body: body, auth: true, want: http.StatusNoContent})
}

// ---- reports (spec 09 §7) ----

// Report submits a disclosure.
func (c *Client) Report(ctx context.Context, d *disclosure.Disclosure) (ReportReceipt, error) {
	b, err := d.MarshalBinary()
	if err != nil {
		return ReportReceipt{}, fmt.Errorf("client: encoding disclosure: %w", err)
	}
	body := struct {
		Disclosure []byte `json:"disclosure"`
	}{b}
	var out reportAnswer
	if err := c.do(ctx, request{method: http.MethodPost, path: "/v1/reports", body: body, auth: true, want: http.StatusAccepted, out: &out}); err != nil {
		return ReportReceipt{}, err
	}
	r := ReportReceipt{Received: out.Received}
	copy(r.ID[:], out.ReportID)
	return r, nil
}

type reportAnswer struct {
	ReportID []byte    `json:"report_id"`
	Received time.Time `json:"received"`
}

func (a *reportAnswer) check() error {
	if len(a.ReportID) != 32 {
		return fmt.Errorf("report_id is %d bytes, want 32", len(a.ReportID))
	}
	return nil
}

// ---- health (spec 09 §8) ----

// Health returns the node's ID, version and network.
func (c *Client) Health(ctx context.Context) (Health, error) {
	var out Health
	err := c.do(ctx, request{method: http.MethodGet, path: "/v1/health", want: http.StatusOK, out: &out})
	return out, err
}

func (h *Health) check() error {
	if h.Node == (keys.NodeID{}) {
		return errEmpty("node")
	}
	return nil
}
