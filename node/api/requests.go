package api

import (
	"github.com/parley-chat/parley/protocol/disclosure"
	"github.com/parley-chat/parley/protocol/envelope"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/wire"
)

// Request bodies (spec 09 §3 to §7). Exported-looking fields are the JSON;
// validate fills the unexported, parsed ones.

// Bounds on request fields.
const (
	minUsername = 3
	maxUsername = 32
	// maxInvite bounds an invite token's text.
	maxInvite = 256
	// maxTxID bounds a client transaction ID (spec 09 §5).
	maxTxID = 64
	// maxToken bounds a bearer token's text; longer ones are refused
	// without a lookup.
	maxToken = 512
	// maxEnvelopeEncoding is the largest envelope encoding: version,
	// header, ciphertext with its length, and a stamp with the longest path.
	maxEnvelopeEncoding = 1 + envelope.HeaderSize + 4 + wire.MaxEnvelopeCiphertext + 1 +
		(1 + 32 + 8 + 4 + 4 + 1 + 32*wire.MaxStampPath + keys.SignatureSize)
)

// validUsername: 3 to 32 characters of a-z 0-9 _ - ., starting with a
// letter (spec 09 §3).
func validUsername(s string) bool {
	if len(s) < minUsername || len(s) > maxUsername || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

func checkUsername(p *string) (string, error) {
	if p == nil {
		return "", missing("username")
	}
	if !validUsername(*p) {
		return "", badRequest("field \"username\": 3 to 32 characters of a-z 0-9 _ - ., starting with a letter")
	}
	return *p, nil
}

type registerRequest struct {
	Username    *string `json:"username"`
	IdentityKey *string `json:"identity_key"`
	Invite      *string `json:"invite"`

	username string
	id       keys.AccountID
	invite   string
}

func (q *registerRequest) validate() (err error) {
	if q.username, err = checkUsername(q.Username); err != nil {
		return err
	}
	if q.IdentityKey == nil {
		return missing("identity_key")
	}
	if q.id, err = keys.ParseAccountID(*q.IdentityKey); err != nil {
		return badRequest("field \"identity_key\": not an account key (acct_...)")
	}
	if q.Invite != nil {
		if len(*q.Invite) > maxInvite {
			return badRequest("field \"invite\": longer than %d bytes", maxInvite)
		}
		q.invite = *q.Invite
	}
	return nil
}

type challengeRequest struct {
	Username *string `json:"username"`

	username string
}

func (q *challengeRequest) validate() (err error) {
	q.username, err = checkUsername(q.Username)
	return err
}

type loginRequest struct {
	Username  *string `json:"username"`
	Nonce     *string `json:"nonce"`
	Signature *string `json:"signature"`

	username string
	nonce    [32]byte
	sig      keys.Signature
}

func (q *loginRequest) validate() (err error) {
	if q.username, err = checkUsername(q.Username); err != nil {
		return err
	}
	if q.Nonce == nil {
		return missing("nonce")
	}
	if err := decodeB64Fixed("nonce", *q.Nonce, q.nonce[:]); err != nil {
		return err
	}
	if q.Signature == nil {
		return missing("signature")
	}
	return decodeB64Fixed("signature", *q.Signature, q.sig[:])
}

type ticketKeysJSON struct {
	Sign *string `json:"sign"`
	DH   *string `json:"dh"`
}

type pairRequest struct {
	Ticket    *ticketKeysJSON `json:"ticket"`
	Interests []string        `json:"interests"`
	Avoid     []string        `json:"avoid"`

	req TicketRequest
}

func (q *pairRequest) validate() (err error) {
	if q.Ticket == nil {
		return missing("ticket")
	}
	if q.Ticket.Sign == nil {
		return missing("ticket.sign")
	}
	if q.req.Ticket.Sign, err = keys.ParseTicketID(*q.Ticket.Sign); err != nil {
		return badRequest("field \"ticket.sign\": not a ticket signing key (tks_...)")
	}
	if q.Ticket.DH == nil {
		return missing("ticket.dh")
	}
	if q.req.Ticket.DH, err = keys.ParseDHPublic(*q.Ticket.DH); err != nil {
		return badRequest("field \"ticket.dh\": not a ticket X25519 key (tkx_...)")
	}
	if q.req.Interests, err = decodeTags("interests", q.Interests, wire.MaxInterestTags); err != nil {
		return err
	}
	q.req.Avoid, err = decodeTags("avoid", q.Avoid, wire.MaxAvoidTags)
	return err
}

func decodeTags(field string, in []string, maxTags int) ([][16]byte, error) {
	if len(in) > maxTags {
		return nil, badRequest("field %q: more than %d tags", field, maxTags)
	}
	var out [][16]byte
	for _, s := range in {
		var t [16]byte
		if err := decodeB64Fixed(field, s, t[:]); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

type sendRequest struct {
	TxID     *string `json:"txid"`
	Envelope *string `json:"envelope"`

	txid string
	env  *envelope.Envelope
}

// validTxID: 1 to 64 visible ASCII characters (spec 09 §5).
func validTxID(s string) bool {
	if len(s) < 1 || len(s) > maxTxID {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func (q *sendRequest) validate() error {
	if q.TxID == nil {
		return missing("txid")
	}
	if !validTxID(*q.TxID) {
		return badRequest("field \"txid\": 1 to %d visible ASCII characters", maxTxID)
	}
	q.txid = *q.TxID
	if q.Envelope == nil {
		return missing("envelope")
	}
	b, err := decodeB64("envelope", *q.Envelope, maxEnvelopeEncoding, false)
	if err != nil {
		return err
	}
	env, err := envelope.Parse(b)
	if err != nil {
		return badEnvelope("%v", err)
	}
	if env.Stamp != nil {
		return badEnvelope("already stamped")
	}
	q.env = env
	return nil
}

type ackRequest struct {
	Upto *uint64 `json:"upto"`
}

func (q *ackRequest) validate() error {
	if q.Upto == nil {
		return missing("upto")
	}
	return nil
}

type reportRequest struct {
	Disclosure *string `json:"disclosure"`

	d *disclosure.Disclosure
}

func (q *reportRequest) validate() error {
	if q.Disclosure == nil {
		return missing("disclosure")
	}
	b, err := decodeB64("disclosure", *q.Disclosure, wire.MaxDisclosureSize, false)
	if err != nil {
		return err
	}
	if q.d, err = disclosure.Parse(b); err != nil {
		return &detailError{ErrBadDisclosure, disclosure.CheckMalformed.String()}
	}
	return nil
}

// wsClientMessage is what a sync WebSocket client sends (spec 09 §6):
// exactly one of {"ack": N} and {"send": {...}}.
type wsClientMessage struct {
	Ack  *uint64        `json:"ack"`
	Send *wsSendRequest `json:"send"`
}

// wsSendRequest is a send over the sync WebSocket: a numbered
// POST /v1/rooms/{room}/messages (spec 09 §6).
type wsSendRequest struct {
	Req  *uint64 `json:"req"`
	Room *string `json:"room"`
	sendRequest

	room keys.RoomID
}

func (m *wsClientMessage) validate() error {
	switch {
	case m.Ack != nil && m.Send != nil:
		return badRequest("a message holds either \"ack\" or \"send\", not both")
	case m.Ack != nil:
		return nil
	case m.Send == nil:
		return missing("ack")
	}
	q := m.Send
	if q.Req == nil {
		return missing("send.req")
	}
	if q.Room == nil {
		return missing("send.room")
	}
	id, err := keys.ParseRoomID(*q.Room)
	if err != nil {
		return badRequest("field \"send.room\": not a room ID (room_...)")
	}
	q.room = id
	return q.validate()
}

// decodeWSClientMessage decodes one client frame of at most limit bytes.
func decodeWSClientMessage(b []byte, limit int64) (*wsClientMessage, error) {
	if int64(len(b)) > limit {
		return nil, badRequest("message over %d bytes", limit)
	}
	var m wsClientMessage
	if err := decodeStrict(b, &m); err != nil {
		return nil, err
	}
	return &m, nil
}
