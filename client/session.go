package client

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/parley-chat/parley/client/keystore"
	"github.com/parley-chat/parley/protocol/disclosure"
	"github.com/parley-chat/parley/protocol/envelope"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/lottery"
	"github.com/parley-chat/parley/protocol/room"
	"github.com/parley-chat/parley/protocol/wire"
)

// Session errors. Match them with errors.Is; a Session also returns the
// API sentinels (ErrRoomClosed for a room it knows is closed, for one).
var (
	// ErrUnknownRoom: the keystore has no such room.
	ErrUnknownRoom = errors.New("client: no such room in the keystore")
	// ErrRoomMismatch: the room ID the node reported for a pairing is not
	// the one the two tickets derive (spec 06-room-keys §1); the room is
	// refused.
	ErrRoomMismatch = errors.New("client: the node's room ID does not match the tickets")
	// ErrNothingToReport: the room has no received messages to disclose.
	ErrNothingToReport = errors.New("client: no received messages to report")
	// ErrNotDelivered: the node did not accept a message after every
	// attempt; it stays in the outbox, and Flush sends it again with the
	// same txid.
	ErrNotDelivered = errors.New("client: message not accepted by the node yet")
	// ErrTooManyInterests: more than wire.MaxInterestTags interests.
	ErrTooManyInterests = errors.New("client: too many interests")
)

// tokenMargin is how long before its expiry a token is renewed.
const tokenMargin = time.Minute

// lateMessageGrace is how long a room this side left keeps its keys when
// the partner is on another node: envelopes the partner's node stamped
// before it learnt of the close are still delivered (spec 12 §4), after
// the room_closed event. Later ones no longer open (forward secrecy wins).
const lateMessageGrace = 10 * time.Minute

// outboxMaxAge is how long after sealing an envelope is still sent: the
// node refuses an envelope whose time is more than wire.MaxClockSkew away
// from its clock (spec 09 §5), so older ones are dropped, with a margin for
// the clocks' difference.
const outboxMaxAge = wire.MaxClockSkew - 30*time.Second

// Message is a received message that verified and opened: its stamp is the
// partner's home node's, its header names this room, the partner as sender
// and this side as recipient, and its franking commitment opened, so it can
// be reported.
type Message struct {
	Room        keys.RoomID
	ID          [32]byte // the envelope ID
	Seq         uint64   // the sender's sequence number in the room
	ContentType uint8    // envelope.ContentText, ...
	Content     []byte
	Sent        time.Time // the sender's clock, as sealed
	Stamped     time.Time // the sender's node's stamp
}

// Text returns the content as text.
func (m *Message) Text() string { return string(m.Content) }

// Event is what Receive returns for each mailbox event, in mailbox order.
type Event struct {
	Kind EventKind
	Pos  uint64 // the event's mailbox position
	Room keys.RoomID
	Time time.Time // the node's time of the event
	// Message is the opened message (EventMessage).
	Message *Message
	// Paired is the new room (EventPaired).
	Paired *Room
	// By is ClosedByMe or ClosedByPartner (EventRoomClosed).
	By string
	// Reason (one of the Reason* constants) and Err say why an event was
	// skipped (EventWarning). Nothing of a skipped message is shown.
	Reason string
	Err    error
}

// Sent describes a message the node accepted.
type Sent struct {
	Room      keys.RoomID
	ID        [32]byte // the envelope ID
	Seq       uint64
	TxID      string
	Duplicate bool // the node had accepted this txid before (a retry)
	Stamped   time.Time
}

// Waiting is a ticket waiting for a partner.
type Waiting struct {
	// Ticket is this side's ticket: the Me.Sign of the room it pairs into.
	Ticket keys.TicketID
	// Node is the node's answer (its ticket ID, the epoch).
	Node PairTicket
}

// RoomState is a room as the keystore knows it.
type RoomState struct {
	Room
	// Left is when this side left, or zero.
	Left time.Time
	// ClosedBy is who closed the room, once the node said so.
	ClosedBy string
	// Messages is how many received messages are kept for reports.
	Messages int
	// Pending is how many sent messages the node has not accepted yet.
	Pending int
}

// Open reports whether messages can be sent to the room.
func (r *RoomState) Open() bool { return r.Left.IsZero() && r.Closed.IsZero() }

// Report is a disclosure ready to send, with what it discloses.
type Report struct {
	Room     keys.RoomID
	Reason   disclosure.Reason
	Text     string
	Messages []Message // the disclosed messages, oldest first
	// Disclosure is the signed disclosure (spec 05-disclosures).
	Disclosure *disclosure.Disclosure
}

// Session is a logged-in user: it owns a keystore and does all of the
// client's cryptography (spec 09 §1: the node never sees a key, a
// plaintext or a franking key unless a disclosure carries it). It persists
// before it sends and acknowledges after it persists (DESIGN §3.2). Its
// methods are safe for concurrent use; Receives run one at a time.
type Session struct {
	ks    *keystore.Keystore
	c     *Client
	cfg   Config
	now   func() time.Time
	rand  io.Reader
	log   *slog.Logger
	m     *metrics
	sleep func(ctx context.Context, d time.Duration) error

	username string
	key      keys.AccountKey

	loginMu sync.Mutex // one login at a time
	recvMu  sync.Mutex // one Receive at a time: it owns the sync position

	mu        sync.Mutex // guards the keystore's read-modify-write-save sequences and the fields below
	rooms     map[keys.RoomID]*roomRecord
	pos       uint64 // the sync position, as in the keystore
	acked     uint64 // the highest position this process acknowledged
	expires   time.Time
	backlog   []Event                    // events Pair received for the next Receive
	pairFails map[keys.TicketID]error    // pairings refused, for WaitPaired
	warned    map[keys.TicketID]struct{} // tickets already reported as unknown
}

// NewSession starts a session on an open keystore, which must hold a node
// URL, a username and an account key. The Session owns ks from here on:
// Close closes it.
func NewSession(ks *keystore.Keystore, cfg Config, opts ...Option) (*Session, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o := newOptions(opts)
	m, err := newMetrics(o.reg)
	if err != nil {
		return nil, err
	}
	c := ks.Contents()
	key, err := c.AccountKey()
	if err != nil {
		return nil, err
	}
	if c.NodeURL == "" || c.Username == "" {
		return nil, errors.New("client: the keystore has no node URL or username")
	}
	s := &Session{
		ks:        ks,
		c:         New(c.NodeURL, opts...),
		cfg:       cfg.withDefaults(),
		now:       o.now,
		rand:      o.rand,
		log:       o.logger.With("subsystem", "client"),
		m:         m,
		sleep:     o.sleep,
		username:  c.Username,
		key:       key,
		rooms:     make(map[keys.RoomID]*roomRecord),
		pos:       c.SyncPosition,
		expires:   c.TokenExpires,
		pairFails: make(map[keys.TicketID]error),
		warned:    make(map[keys.TicketID]struct{}),
	}
	s.c.SetToken(c.Token)
	for name, b := range c.Rooms {
		id, err := keys.ParseRoomID(name)
		if err != nil {
			continue // not a room record of this package
		}
		rec, err := unmarshalRecord(b)
		if err != nil {
			return nil, fmt.Errorf("%w (room %s)", err, name)
		}
		s.rooms[id] = rec
	}
	return s, nil
}

// Client returns the session's low-level client.
func (s *Session) Client() *Client { return s.c }

// Username returns the account's username.
func (s *Session) Username() string { return s.username }

// AccountID returns the account's identity key.
func (s *Session) AccountID() keys.AccountID { return s.key.Public() }

// Close closes the keystore. It does not log out.
func (s *Session) Close() error { return s.ks.Close() }

// saveLocked writes the keystore. s.mu is held.
func (s *Session) saveLocked() error {
	if err := s.ks.Save(); err != nil {
		return fmt.Errorf("client: saving keystore: %w", err)
	}
	return nil
}

// putLocked stores rec as room id's record. s.mu is held; nothing is
// saved.
func (s *Session) putLocked(id keys.RoomID, rec *roomRecord) error {
	b, err := rec.marshal()
	if err != nil {
		return err
	}
	if err := s.ks.PutRoom(id.String(), b); err != nil {
		return err
	}
	clear(b)
	if old := s.rooms[id]; old != nil && old != rec && !bytes.Equal(old.State, rec.State) {
		clear(old.State)
	}
	s.rooms[id] = rec
	return nil
}

// ---- accounts ----

// Register creates the keystore's account on the node. invite is needed by
// nodes in invite mode.
func (s *Session) Register(ctx context.Context, invite string) (Account, error) {
	return s.c.Register(ctx, s.username, s.key.Public(), invite)
}

// Login logs in with the account key and stores the token in the
// keystore. Requests that need a token log in by themselves when there is
// none, it expires or the node refuses it.
func (s *Session) Login(ctx context.Context) error {
	s.loginMu.Lock()
	defer s.loginMu.Unlock()
	res, err := s.c.Login(ctx, s.username, s.key)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expires = res.Expires
	if err := s.ks.SetSession(res.Token, res.Expires); err != nil {
		return err
	}
	return s.saveLocked()
}

// Logout revokes the token and removes it from the keystore.
func (s *Session) Logout(ctx context.Context) error {
	if err := s.c.Logout(ctx); err != nil && !errors.Is(err, ErrUnauthenticated) {
		return err
	}
	s.c.SetToken("")
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expires = time.Time{}
	if err := s.ks.SetSession("", time.Time{}); err != nil {
		return err
	}
	return s.saveLocked()
}

// Account returns the account as the node sees it.
func (s *Session) Account(ctx context.Context) (Account, error) {
	var a Account
	err := s.authed(ctx, func() (err error) { a, err = s.c.Account(ctx); return err })
	return a, err
}

// authed runs fn with a valid token: it logs in first if there is none or
// it is about to expire, and once more if the node refuses the token.
func (s *Session) authed(ctx context.Context, fn func() error) error {
	s.mu.Lock()
	stale := s.c.getToken() == "" || !s.now().Before(s.expires.Add(-tokenMargin))
	s.mu.Unlock()
	if stale {
		if err := s.Login(ctx); err != nil {
			return err
		}
	}
	err := fn()
	if errors.Is(err, ErrUnauthenticated) {
		s.log.Info("token refused; logging in again")
		if err := s.Login(ctx); err != nil {
			return err
		}
		err = fn()
	}
	return err
}

// ---- pairing ----

// InterestTags returns the lottery tags of interests (spec 07-lottery,
// lottery.InterestTag), without blanks and repeats. More than
// wire.MaxInterestTags distinct interests is ErrTooManyInterests.
func InterestTags(interests []string) ([]lottery.Tag, error) {
	var tags []lottery.Tag
	for _, in := range interests {
		if strings.TrimSpace(in) == "" {
			continue
		}
		t := lottery.InterestTag(in)
		if !slices.Contains(tags, t) {
			tags = append(tags, t)
		}
	}
	if len(tags) > wire.MaxInterestTags {
		return nil, fmt.Errorf("%w: %d, at most %d", ErrTooManyInterests, len(tags), wire.MaxInterestTags)
	}
	return tags, nil
}

// avoidTagsLocked returns the room tags (spec 07-lottery §2.2) of the rooms
// this side was in that have ended, the most recent first, at most
// wire.MaxAvoidTags of them: so the user is not paired again with any of
// its last partners. A room's tag is lottery.AvoidTag of the room's avoid
// key (06 §2.3) with epoch 0, which both sides compute alike; the home node
// turns it into a different tag in every epoch (07 §2.3), so nobody can
// link the user's tickets by it.
func (s *Session) avoidTagsLocked() []lottery.Tag {
	var ended []*roomRecord
	for _, rec := range s.rooms {
		if !rec.endedAt().IsZero() && len(rec.Avoid) == 32 {
			ended = append(ended, rec)
		}
	}
	slices.SortFunc(ended, func(a, b *roomRecord) int { return b.endedAt().Compare(a.endedAt()) })
	tags := make([]lottery.Tag, 0, min(len(ended), wire.MaxAvoidTags))
	for _, rec := range ended[:min(len(ended), wire.MaxAvoidTags)] {
		key := [32]byte(rec.Avoid)
		if t := lottery.AvoidTag(key, 0); !slices.Contains(tags, t) {
			tags = append(tags, t)
		}
		clear(key[:])
	}
	return tags
}

// StartPair enters a fresh ticket into the lottery and returns without
// waiting: Receive reports the pairing, or WaitPaired waits for it. The
// ticket's private keys are saved in the keystore before the node hears of
// them. Its avoid tags are those of the room left last. If a ticket of an
// earlier, interrupted pairing is still waiting, it is withdrawn first.
func (s *Session) StartPair(ctx context.Context, interests []string) (Waiting, error) {
	tags, err := InterestTags(interests)
	if err != nil {
		return Waiting{}, err
	}
	tk, err := keys.GenerateTicketKeys(s.rand)
	if err != nil {
		return Waiting{}, err
	}
	id := tk.Public().Sign
	s.mu.Lock()
	avoid := s.avoidTagsLocked()
	_, err = s.ks.PutTicket(0, tk)
	if err == nil {
		err = s.saveLocked()
	}
	s.mu.Unlock()
	if err != nil {
		return Waiting{}, err
	}

	req := PairRequest{Ticket: tk.Public(), Interests: tags, Avoid: avoid}
	var pt PairTicket
	pair := func() (err error) { pt, err = s.c.Pair(ctx, req); return err }
	err = s.authed(ctx, pair)
	if errors.Is(err, ErrAlreadyWaiting) {
		s.log.Info("a ticket was already waiting; withdrawing it")
		if err = s.authed(ctx, func() error { return s.c.Withdraw(ctx) }); err == nil {
			if err = s.dropWaitingTickets(id); err == nil {
				err = s.authed(ctx, pair)
			}
		}
	}
	if err != nil {
		if _, refused := errors.AsType[*APIError](err); refused && !Retryable(err) {
			// The node refused the ticket: it will never pair.
			s.mu.Lock()
			if derr := s.ks.DeleteTicket(id); derr == nil {
				_ = s.saveLocked() // a stale ticket in the keystore only costs space
			}
			s.mu.Unlock()
		}
		return Waiting{}, err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if roomID, rec := s.roomOfTicketLocked(id); rec != nil {
		// A concurrent Receive already paired the ticket.
		r := *rec
		r.Epoch = pt.Epoch
		err = s.putLocked(roomID, &r)
	} else {
		_, err = s.ks.PutTicket(pt.Epoch, tk)
	}
	if err == nil {
		err = s.saveLocked()
	}
	return Waiting{Ticket: id, Node: pt}, err
}

// dropWaitingTickets forgets every ticket without a room but keep.
func (s *Session) dropWaitingTickets(keep keys.TicketID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id := range s.ks.Contents().Tickets {
		if _, rec := s.roomOfTicketLocked(id); rec == nil && id != keep {
			if err := s.ks.DeleteTicket(id); err != nil {
				return err
			}
		}
	}
	return s.saveLocked()
}

func (s *Session) roomOfTicketLocked(t keys.TicketID) (keys.RoomID, *roomRecord) {
	for id, rec := range s.rooms {
		if rec.Me.Sign == t {
			return id, rec
		}
	}
	return keys.RoomID{}, nil
}

// Pair asks for a partner and waits until the lottery pairs the ticket:
// StartPair, then WaitPaired.
func (s *Session) Pair(ctx context.Context, interests []string) (*Room, error) {
	w, err := s.StartPair(ctx, interests)
	if err != nil {
		return nil, err
	}
	return s.WaitPaired(ctx, w.Ticket)
}

// WaitPaired syncs until ticket is paired and returns the room, derived
// from the two tickets (spec 06-room-keys §1-2) and checked against the
// room ID the node reported (ErrRoomMismatch otherwise). Other events it
// receives meanwhile are kept for the next Receive. The ticket stays in
// the lottery when ctx ends; Withdraw takes it out.
func (s *Session) WaitPaired(ctx context.Context, ticket keys.TicketID) (*Room, error) {
	for {
		s.mu.Lock()
		id, rec := s.roomOfTicketLocked(ticket)
		var r Room
		if rec != nil {
			r = rec.room(id)
		}
		ferr := s.pairFails[ticket]
		s.mu.Unlock()
		if rec != nil {
			return &r, nil
		}
		if ferr != nil {
			return nil, ferr
		}
		evs, err := s.receive(ctx, s.cfg.PairWait)
		if err != nil {
			return nil, err
		}
		s.mu.Lock()
		for _, ev := range evs {
			if ev.Kind == EventPaired && ev.Paired.Me.Sign == ticket {
				continue
			}
			s.backlog = append(s.backlog, ev)
		}
		s.mu.Unlock()
	}
}

// Withdraw takes the waiting ticket out of the lottery and forgets its
// keys.
//
// The node may have paired the ticket just before the withdrawal reached it
// (the withdrawal then finds nothing waiting and succeeds all the same); the
// paired event is in the mailbox by then. So Withdraw first takes the
// mailbox's pending events, which keeps the keys of a ticket that did get a
// room, and the next Receive returns them; only then does it drop the keys
// of tickets left without a room. If those events cannot be fetched it keeps
// the keys (StartPair drops them later).
func (s *Session) Withdraw(ctx context.Context) error {
	if err := s.authed(ctx, func() error { return s.c.Withdraw(ctx) }); err != nil {
		return err
	}
	for {
		evs, err := s.receive(ctx, 0)
		if err != nil {
			s.log.Warn("fetching events after withdrawing; keeping the ticket keys", "err", err)
			return nil
		}
		s.mu.Lock()
		s.backlog = append(s.backlog, evs...)
		s.mu.Unlock()
		if len(evs) < s.cfg.SyncLimit {
			break
		}
	}
	return s.dropWaitingTickets(keys.TicketID{})
}

func (r *roomRecord) room(id keys.RoomID) Room {
	return Room{ID: id, Me: r.Me, Partner: r.Partner, Created: r.Created, Closed: r.Closed}
}

// ---- sending ----

// Send seals text as this side's next message in the room and posts it. It
// first persists the advanced room state and the sealed envelope (in the
// room's outbox) and saves the keystore; then it posts the envelope under a
// fresh random txid, and on a network failure, a 5xx or a 429 posts the
// same envelope with the same txid again (the node delivers it once), up
// to Config.SendAttempts times. If all fail the error matches
// ErrNotDelivered and Flush retries later.
func (s *Session) Send(ctx context.Context, roomID keys.RoomID, text string) (Sent, error) {
	return s.send(ctx, roomID, envelope.ContentText, []byte(text))
}

func (s *Session) send(ctx context.Context, roomID keys.RoomID, contentType uint8, content []byte) (Sent, error) {
	entry, seq, err := s.seal(roomID, contentType, content)
	if err != nil {
		return Sent{}, err
	}
	res, err := s.deliver(ctx, roomID, entry)
	if err != nil {
		return Sent{}, err
	}
	return Sent{Room: roomID, ID: res.ID, Seq: seq, TxID: entry.TxID, Duplicate: res.Duplicate, Stamped: res.Stamp.TimeOf()}, nil
}

// seal seals content in the room, and persists the new state and the
// envelope in the outbox.
func (s *Session) seal(roomID keys.RoomID, contentType uint8, content []byte) (outboxEntry, uint64, error) {
	var txid [16]byte
	if _, err := io.ReadFull(s.rand, txid[:]); err != nil {
		return outboxEntry{}, 0, fmt.Errorf("client: reading randomness: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.rooms[roomID]
	switch {
	case rec == nil:
		return outboxEntry{}, 0, fmt.Errorf("%w: %s", ErrUnknownRoom, roomID)
	case !rec.open():
		return outboxEntry{}, 0, fmt.Errorf("%w: %s", ErrRoomClosed, roomID)
	}
	r, err := room.UnmarshalRoom(rec.State)
	if err != nil {
		return outboxEntry{}, 0, fmt.Errorf("client: room state of %s: %w", roomID, err)
	}
	defer r.Wipe()
	now := s.now()
	env, err := r.Seal(contentType, content, now, s.rand)
	if err != nil {
		return outboxEntry{}, 0, err
	}
	state, err := r.MarshalBinary()
	if err != nil {
		return outboxEntry{}, 0, err
	}
	b, err := env.MarshalBinary()
	if err != nil {
		return outboxEntry{}, 0, err
	}
	entry := outboxEntry{TxID: base64.RawURLEncoding.EncodeToString(txid[:]), Envelope: b, Sealed: now}
	next := *rec
	next.State = state
	next.Outbox = append(slices.Clone(rec.Outbox), entry)
	if err := s.putLocked(roomID, &next); err != nil {
		return outboxEntry{}, 0, err
	}
	return entry, env.Header.Seq, s.saveLocked()
}

// deliver posts an outbox entry until the node accepts it, refuses it or
// the attempts run out.
func (s *Session) deliver(ctx context.Context, roomID keys.RoomID, entry outboxEntry) (SendResult, error) {
	env, err := envelope.Parse(entry.Envelope)
	if err != nil {
		return SendResult{}, s.dropOutbox(roomID, entry.TxID, err)
	}
	backoff := s.cfg.RetryBackoff
	for attempt := 1; ; attempt++ {
		var res SendResult
		err := s.authed(ctx, func() (err error) { res, err = s.c.Send(ctx, roomID, entry.TxID, env); return err })
		switch {
		case err == nil:
			s.m.sent.Inc()
			return res, s.dropOutbox(roomID, entry.TxID, nil)
		case ctx.Err() != nil:
			return SendResult{}, fmt.Errorf("%w: %w", ErrNotDelivered, err)
		case !Retryable(err):
			// The node refuses this envelope; it never will accept it.
			return SendResult{}, s.dropOutbox(roomID, entry.TxID, err)
		case attempt >= s.cfg.SendAttempts:
			return SendResult{}, fmt.Errorf("%w after %d attempts: %w", ErrNotDelivered, attempt, err)
		}
		wait := backoff
		if d, ok := RetryAfter(err); ok {
			wait = d
		}
		backoff = min(2*backoff, 16*s.cfg.RetryBackoff)
		s.m.retries.Inc()
		s.log.Info("send failed; retrying with the same txid", "attempt", attempt, "wait", wait, "err", err)
		if err := s.sleep(ctx, wait); err != nil {
			return SendResult{}, fmt.Errorf("%w: %w", ErrNotDelivered, err)
		}
	}
}

// dropOutbox removes an entry from the room's outbox and returns cause
// (or the save's error).
func (s *Session) dropOutbox(roomID keys.RoomID, txid string, cause error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.rooms[roomID]
	if rec == nil {
		return cause
	}
	i := slices.IndexFunc(rec.Outbox, func(e outboxEntry) bool { return e.TxID == txid })
	if i < 0 {
		return cause
	}
	next := *rec
	next.Outbox = slices.Delete(slices.Clone(rec.Outbox), i, i+1)
	if err := s.putLocked(roomID, &next); err != nil {
		return errors.Join(cause, err)
	}
	if err := s.saveLocked(); err != nil {
		return errors.Join(cause, err)
	}
	return cause
}

// Flush posts every message left in an outbox by an earlier Send that ran
// out of attempts or was interrupted, each under its own txid. Messages
// sealed too long ago for the node to accept (see wire.MaxClockSkew) are
// dropped. It returns the messages it delivered and every failure.
func (s *Session) Flush(ctx context.Context) ([]Sent, error) {
	type job struct {
		room  keys.RoomID
		entry outboxEntry
	}
	var jobs []job
	s.mu.Lock()
	for id, rec := range s.rooms {
		for _, e := range rec.Outbox {
			jobs = append(jobs, job{id, e})
		}
	}
	s.mu.Unlock()
	slices.SortFunc(jobs, func(a, b job) int { return a.entry.Sealed.Compare(b.entry.Sealed) })
	var sent []Sent
	var errs []error
	for _, j := range jobs {
		if s.now().Sub(j.entry.Sealed) > outboxMaxAge {
			s.log.Warn("dropping a message sealed too long ago to be accepted", "sealed", j.entry.Sealed)
			errs = append(errs, s.dropOutbox(j.room, j.entry.TxID, fmt.Errorf("%w: sealed at %s, too long ago; dropped", ErrNotDelivered, j.entry.Sealed.Format(time.RFC3339))))
			continue
		}
		res, err := s.deliver(ctx, j.room, j.entry)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		env, _ := envelope.Parse(j.entry.Envelope) // deliver parsed it
		sent = append(sent, Sent{Room: j.room, ID: res.ID, Seq: env.Header.Seq, TxID: j.entry.TxID, Duplicate: res.Duplicate, Stamped: res.Stamp.TimeOf()})
	}
	return sent, errors.Join(errs...)
}

// ---- receiving ----

// Receive syncs the mailbox after the stored position, waiting up to wait
// for an event, and processes what arrives, in order:
//
//   - message: the envelope is parsed and opened with the room
//     (room.Open: header addressed to this side by the partner, stamp of
//     the partner's home node, ratchet, AEAD and franking commitment); the
//     opened message is kept in the room's history for reports. A message
//     that fails any check is never returned: an EventWarning says why.
//   - paired: the room is derived from this side's ticket and the
//     partner's and checked against the node's room ID (ErrRoomMismatch,
//     as a warning, otherwise; the room is then left).
//   - room_closed: the room's keys are deleted; its history stays.
//
// Then it saves the keystore (room states, history, position) and only
// then acknowledges the events, so a crash in between only re-delivers
// them. Events an earlier Pair received are returned first.
func (s *Session) Receive(ctx context.Context, wait time.Duration) ([]Event, error) {
	s.mu.Lock()
	if len(s.backlog) > 0 {
		evs := s.backlog
		s.backlog = nil
		s.mu.Unlock()
		return evs, nil
	}
	s.mu.Unlock()
	return s.receive(ctx, wait)
}

func (s *Session) receive(ctx context.Context, wait time.Duration) ([]Event, error) {
	s.recvMu.Lock()
	defer s.recvMu.Unlock()
	s.mu.Lock()
	after := s.pos
	s.mu.Unlock()
	var res SyncResult
	err := s.authed(ctx, func() (err error) { res, err = s.c.Sync(ctx, after, s.cfg.SyncLimit, wait); return err })
	if err != nil {
		return nil, err
	}

	s.mu.Lock()
	var evs []Event
	var orphans []keys.RoomID
	for i := range res.Events {
		ev, leave := s.processLocked(&res.Events[i])
		if ev.Kind == EventWarning {
			s.m.rejected.WithLabelValues(ev.Reason).Inc()
			s.log.Warn("skipped an event", "pos", ev.Pos, "reason", ev.Reason, "err", ev.Err)
		}
		if leave {
			orphans = append(orphans, ev.Room)
		}
		evs = append(evs, ev)
	}
	err = s.pruneLocked()
	if err == nil && res.Next > s.pos {
		if err = s.ks.SetSyncPosition(res.Next); err == nil {
			s.pos = res.Next
		}
	}
	if err == nil {
		err = s.saveLocked()
	}
	pos, acked := s.pos, s.acked
	s.mu.Unlock()
	if err != nil {
		// Nothing is acknowledged: the node keeps the events, and a
		// later save or a restart processes them again.
		return nil, err
	}

	if pos > acked {
		if err := s.authed(ctx, func() error { return s.c.Ack(ctx, pos) }); err != nil {
			// The events are saved; the next Receive acknowledges them.
			s.log.Warn("acknowledging failed; will retry", "pos", pos, "err", err)
		} else {
			s.mu.Lock()
			s.acked = max(s.acked, pos)
			s.mu.Unlock()
		}
	}
	for _, id := range orphans {
		// A room this side cannot use: leave it so the partner is not
		// left waiting. Best effort.
		if err := s.authed(ctx, func() error { return s.c.Leave(ctx, id) }); err != nil {
			s.log.Warn("leaving a refused room failed", "err", err)
		}
	}
	return evs, nil
}

// processLocked handles one event; leave says the room should be left.
func (s *Session) processLocked(se *SyncEvent) (ev Event, leave bool) {
	ev = Event{Kind: se.Kind, Pos: se.Pos, Room: se.Room, Time: se.Time}
	warn := func(reason string, err error) Event {
		ev.Kind, ev.Reason, ev.Err = EventWarning, reason, err
		return ev
	}
	switch se.Kind {
	case EventMessage:
		msg, reason, err := s.openLocked(se)
		if err != nil {
			return warn(reason, err), false
		}
		s.m.received.Inc()
		ev.Message = msg
	case EventPaired:
		r, reason, err := s.pairedLocked(se)
		if err != nil {
			return warn(reason, err), reason != ReasonMalformed
		}
		ev.Paired = r
	case EventRoomClosed:
		if err := s.closedLocked(se); err != nil {
			return warn(ReasonMalformed, err), false
		}
		ev.By = se.By
	default:
		return warn(ReasonUnknownKind, fmt.Errorf("client: event kind %q", se.Kind)), false
	}
	return ev, false
}

func (s *Session) openLocked(se *SyncEvent) (*Message, string, error) {
	rec := s.rooms[se.Room]
	if rec == nil || len(rec.State) == 0 {
		return nil, ReasonUnknownRoom, fmt.Errorf("%w: message for %s, which this client has no keys for", ErrUnknownRoom, se.Room)
	}
	env, err := envelope.Parse(se.Envelope)
	if err != nil {
		return nil, ReasonMalformed, err
	}
	r, err := room.UnmarshalRoom(rec.State)
	if err != nil {
		return nil, ReasonMalformed, fmt.Errorf("client: room state of %s: %w", se.Room, err)
	}
	defer r.Wipe()
	// spec 03-envelope §6: nothing is shown unless every check passes.
	opened, err := r.Open(env, rec.Partner.Home)
	if err != nil {
		return nil, openFailure(err), err
	}
	state, err := r.MarshalBinary()
	if err != nil {
		return nil, ReasonMalformed, err
	}
	now := s.now()
	h, err := newHistoryEntry(env, opened, now)
	if err != nil {
		return nil, ReasonMalformed, err
	}
	next := *rec
	next.State = state
	next.History = trimHistory(append(slices.Clone(rec.History), h), s.cfg.HistoryPerRoom, s.cfg.HistoryBytesPerRoom)
	if err := s.putLocked(se.Room, &next); err != nil {
		return nil, ReasonMalformed, err
	}
	m, err := h.message()
	if err != nil {
		return nil, ReasonMalformed, err
	}
	return &m, "", nil
}

func (s *Session) pairedLocked(se *SyncEvent) (*Room, string, error) {
	info := se.RoomInfo
	if info.ID != se.Room {
		return nil, ReasonMalformed, fmt.Errorf("%w: paired event for %s describes %s", ErrBadResponse, se.Room, info.ID)
	}
	if rec := s.rooms[info.ID]; rec != nil {
		// Delivered again: the room is derived already, and deriving it
		// anew would reset its ratchet.
		r := rec.room(info.ID)
		return &r, "", nil
	}
	fail := func(reason string, err error) (*Room, string, error) {
		s.pairFails[info.Me.Sign] = err
		return nil, reason, err
	}
	t, ok := s.ks.Contents().Tickets[info.Me.Sign]
	if !ok {
		return fail(ReasonUnknownTicket, fmt.Errorf("client: paired with ticket %s, which this client does not hold", info.Me.Sign))
	}
	tk, err := t.Keys()
	if err != nil || tk.Public() != info.Me.Public() {
		return fail(ReasonUnknownTicket, fmt.Errorf("client: paired with ticket %s, whose keys this client does not hold", info.Me.Sign))
	}
	r, err := room.Derive(tk, info.Partner.Public())
	if err != nil {
		return fail(ReasonBadPartner, err)
	}
	defer r.Wipe()
	// spec 06-room-keys §1: both sides compute the room ID; a node that
	// names another room is refused.
	if r.ID() != info.ID {
		return fail(ReasonRoomMismatch, fmt.Errorf("%w: node says %s, tickets give %s", ErrRoomMismatch, info.ID, r.ID()))
	}
	state, err := r.MarshalBinary()
	if err != nil {
		return fail(ReasonMalformed, err)
	}
	avoid := r.AvoidKey()
	created := info.Created
	if created.IsZero() {
		created = se.Time
	}
	rec := &roomRecord{State: state, Me: info.Me, Partner: info.Partner, Avoid: avoid[:], Epoch: t.Epoch, Created: created}
	if err := s.putLocked(info.ID, rec); err != nil {
		return fail(ReasonMalformed, err)
	}
	// The room's chains hold everything the X25519 key gave: forget it
	// (forward secrecy). The signing key stays, to sign disclosures.
	sign, _ := tk.Seeds()
	var dh [keys.SeedSize]byte
	if _, err := io.ReadFull(s.rand, dh[:]); err == nil {
		if k, err := keys.TicketKeysFromSeeds(sign, dh[:]); err == nil {
			_, _ = s.ks.PutTicket(t.Epoch, k)
		}
	}
	clear(sign)
	out := rec.room(info.ID)
	return &out, "", nil
}

func (s *Session) closedLocked(se *SyncEvent) error {
	rec := s.rooms[se.Room]
	if rec == nil || !rec.Closed.IsZero() {
		return nil
	}
	next := *rec
	next.Closed = se.Time
	if next.Closed.IsZero() {
		next.Closed = s.now()
	}
	next.ClosedBy = se.By
	next.Outbox = nil
	if se.By == ClosedByMe && rec.Partner.Home != rec.Me.Home {
		// This side left and the partner is on another node: what the
		// partner sent before its node learnt of the close can still
		// arrive (spec 09 §5, 12 §4). The keys open it for a while.
		next.OpenUntil = next.Closed.Add(lateMessageGrace)
	} else {
		// Every message of the room came before this event: its keys
		// can go.
		next.State = nil
	}
	return s.putLocked(se.Room, &next)
}

// pruneLocked forgets closed rooms beyond Config.ClosedRoomsKept, and
// those ended longer than wire.MaxDisclosureAge ago (their messages can no
// longer be reported), with their ticket keys.
func (s *Session) pruneLocked() error {
	type ended struct {
		id  keys.RoomID
		rec *roomRecord
	}
	var closed []ended
	now := s.now()
	for id, rec := range s.rooms {
		if !rec.OpenUntil.IsZero() && !now.Before(rec.OpenUntil) {
			// The grace for late messages is over: the keys go.
			next := *rec
			next.State, next.OpenUntil = nil, time.Time{}
			if err := s.putLocked(id, &next); err != nil {
				return err
			}
			rec = s.rooms[id]
		}
		if end := rec.endedAt(); !end.IsZero() && (!rec.Closed.IsZero() || now.Sub(end) > wire.MaxDisclosureAge) {
			closed = append(closed, ended{id, rec})
		}
	}
	slices.SortFunc(closed, func(a, b ended) int {
		return cmp.Or(b.rec.endedAt().Compare(a.rec.endedAt()), bytes.Compare(a.id[:], b.id[:]))
	})
	for i, c := range closed {
		if i < s.cfg.ClosedRoomsKept && now.Sub(c.rec.endedAt()) <= wire.MaxDisclosureAge {
			continue
		}
		if err := s.ks.DeleteRoom(c.id.String()); err != nil {
			return err
		}
		if err := s.ks.DeleteTicket(c.rec.Me.Sign); err != nil {
			return err
		}
		clear(c.rec.State)
		delete(s.rooms, c.id)
	}
	return nil
}

// ---- leaving ----

// Leave closes the room for both sides (spec 09 §5). The room takes no
// more sends; messages the partner sent before still open until the
// room_closed event arrives. Its avoid key goes into the next ticket.
func (s *Session) Leave(ctx context.Context, roomID keys.RoomID) error {
	err := s.authed(ctx, func() error { return s.c.Leave(ctx, roomID) })
	if err != nil && !errors.Is(err, ErrRoomClosed) {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.rooms[roomID]
	if rec == nil || !rec.Left.IsZero() {
		return nil
	}
	next := *rec
	next.Left = s.now()
	next.Outbox = nil
	if err := s.putLocked(roomID, &next); err != nil {
		return err
	}
	return s.saveLocked()
}

// ---- rooms and history ----

// Rooms returns the rooms in the keystore, newest first.
func (s *Session) Rooms() []RoomState {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]RoomState, 0, len(s.rooms))
	for id, rec := range s.rooms {
		out = append(out, rec.state(id))
	}
	slices.SortFunc(out, func(a, b RoomState) int {
		return cmp.Or(b.Created.Compare(a.Created), bytes.Compare(a.ID[:], b.ID[:]))
	})
	return out
}

// RoomState returns one room of the keystore.
func (s *Session) RoomState(id keys.RoomID) (RoomState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.rooms[id]
	if rec == nil {
		return RoomState{}, false
	}
	return rec.state(id), true
}

func (r *roomRecord) state(id keys.RoomID) RoomState {
	return RoomState{Room: r.room(id), Left: r.Left, ClosedBy: r.ClosedBy, Messages: len(r.History), Pending: len(r.Outbox)}
}

// History returns the received messages the keystore keeps for the room,
// oldest first.
func (s *Session) History(id keys.RoomID) ([]Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.rooms[id]
	if rec == nil {
		return nil, fmt.Errorf("%w: %s", ErrUnknownRoom, id)
	}
	out := make([]Message, 0, len(rec.History))
	for i := range rec.History {
		m, err := rec.History[i].message()
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// ---- reports ----

// PrepareReport builds and signs a disclosure (spec 05-disclosures) of the
// partner's last lastN received messages in the room (all kept ones, at
// most wire.MaxDisclosureItems, if lastN <= 0), with the reason and the
// reporter's text. Nothing is sent: show Report.Messages to the user, then
// SendReport.
func (s *Session) PrepareReport(roomID keys.RoomID, lastN int, reason disclosure.Reason, text string) (*Report, error) {
	s.mu.Lock()
	rec := s.rooms[roomID]
	var hist []historyEntry
	if rec != nil {
		hist = slices.Clone(rec.History)
	}
	s.mu.Unlock()
	if rec == nil {
		return nil, fmt.Errorf("%w: %s", ErrUnknownRoom, roomID)
	}
	if len(hist) == 0 {
		return nil, fmt.Errorf("%w in %s", ErrNothingToReport, roomID)
	}
	if lastN <= 0 || lastN > maxReportItems {
		lastN = maxReportItems
	}
	if len(hist) > lastN {
		hist = hist[len(hist)-lastN:]
	}
	t, ok := s.ks.Contents().Tickets[rec.Me.Sign]
	if !ok {
		return nil, fmt.Errorf("client: the keystore no longer holds the ticket of %s", roomID)
	}
	tk, err := t.Keys()
	if err != nil {
		return nil, err
	}
	rep := &Report{Room: roomID, Reason: reason, Text: text}
	items := make([]disclosure.Item, 0, len(hist))
	for i := range hist {
		it, err := hist[i].item()
		if err != nil {
			return nil, err
		}
		m, err := hist[i].message()
		if err != nil {
			return nil, err
		}
		items = append(items, it)
		rep.Messages = append(rep.Messages, m)
	}
	rep.Disclosure, err = disclosure.New(tk, reason, text, s.now(), items)
	if err != nil {
		return nil, err
	}
	return rep, nil
}

// SendReport submits a prepared report to the node.
func (s *Session) SendReport(ctx context.Context, rep *Report) (ReportReceipt, error) {
	var rc ReportReceipt
	err := s.authed(ctx, func() (err error) { rc, err = s.c.Report(ctx, rep.Disclosure); return err })
	return rc, err
}

// Report prepares a report of the last lastN messages of the room and
// sends it; it returns what it disclosed.
func (s *Session) Report(ctx context.Context, roomID keys.RoomID, lastN int, reason disclosure.Reason, text string) (*Report, ReportReceipt, error) {
	rep, err := s.PrepareReport(roomID, lastN, reason, text)
	if err != nil {
		return nil, ReportReceipt{}, err
	}
	rc, err := s.SendReport(ctx, rep)
	return rep, rc, err
}
