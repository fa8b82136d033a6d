// Package rooms keeps a node's room records: for every room one of its
// accounts was paired into, both sides' tickets and home nodes, which side
// is whose account on this node, and whether the room is still open.
//
// Writes go into a caller's store batch (Put, Close), so that creating or
// closing a room commits atomically with the mailbox events that announce
// it. Reads (Get, ForAccount) see only committed records.
//
// # Key layout and encoding
//
// Under the prefixes node/store assigns to this package:
//
//	room/<RoomID 32>                 -> record (below)
//	aroom/<AccountID 32><RoomID 32>  -> "" (one per local side: the account's rooms)
//
// A record is a fixed-size binary encoding, version 1, integers big-endian:
//
//	u8  version (1)
//	[32] room ID
//	2 × side: [32] ticket signing key, [32] ticket X25519 key, [32] home node ID,
//	          u8 local (0 or 1), [32] account ID (zero unless local)
//	i64 created, Unix nanoseconds
//	u8  closed (0 or 1), i64 closed time (Unix nanoseconds), [32] ticket that closed it
//
// A later version adds a new version byte; decoders refuse versions they do
// not know rather than guess.
package rooms

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/parley-chat/parley/node/store"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/wire"
)

// Errors returned by this package. Match them with errors.Is.
var (
	// ErrNotFound: no room has this ID.
	ErrNotFound = errors.New("rooms: room not found")
	// ErrInvalid: Put was given a record that breaks the invariants listed
	// on Record.
	ErrInvalid = errors.New("rooms: invalid record")
	// ErrNotSide: Close was given a ticket that is neither side of the room.
	ErrNotSide = errors.New("rooms: ticket is not a side of the room")
	// ErrAlreadyClosed: Close was called on a closed room. Closing is
	// idempotent: the caller treats this as success and announces nothing.
	ErrAlreadyClosed = errors.New("rooms: room already closed")
	// ErrCorrupt: a stored record does not decode.
	ErrCorrupt = errors.New("rooms: corrupt record")
)

// Side is one member of a room.
type Side struct {
	// Ticket is the side's ticket: its signing key (its identity in the
	// room's envelope headers) and its X25519 key.
	Ticket keys.TicketPublic
	// Home is the node that stamped the ticket and stamps this side's
	// messages.
	Home keys.NodeID
	// Account is the side's account. It is valid only if Local.
	Account keys.AccountID
	// Local says that Home is this node, so Account is known here.
	Local bool
}

// Record is a room as this node stores it.
//
// Invariants (Put checks them): ID is not zero; Created is set; the two
// sides have different signing keys and different X25519 keys; at least one
// side is local (a node keeps no rooms of others); a local side has a
// non-zero Account; two local sides belong to different accounts. Closed is
// zero while the room is open, and ClosedBy is then zero too.
type Record struct {
	ID       keys.RoomID
	Sides    [2]Side
	Created  time.Time
	Closed   time.Time     // zero while open
	ClosedBy keys.TicketID // the side that closed the room; zero while open
}

// IsClosed reports whether the room was closed.
func (r Record) IsClosed() bool { return !r.Closed.IsZero() }

// SideOf returns acct's side of the room and its partner's. ok is false if
// acct is not a local side of the room.
func (r Record) SideOf(acct keys.AccountID) (me, partner Side, ok bool) {
	for i, s := range r.Sides {
		if s.Local && s.Account == acct {
			return s, r.Sides[1-i], true
		}
	}
	return Side{}, Side{}, false
}

// SideByTicket returns the side whose ticket signing key is t and its
// partner's. ok is false if t is neither side.
func (r Record) SideByTicket(t keys.TicketID) (me, partner Side, ok bool) {
	for i, s := range r.Sides {
		if s.Ticket.Sign == t {
			return s, r.Sides[1-i], true
		}
	}
	return Side{}, Side{}, false
}

func (r Record) validate() error {
	var errs []error
	if r.ID == (keys.RoomID{}) {
		errs = append(errs, errors.New("zero room ID"))
	}
	if r.Created.IsZero() {
		errs = append(errs, errors.New("no creation time"))
	}
	a, b := r.Sides[0], r.Sides[1]
	if a.Ticket.Sign == b.Ticket.Sign || a.Ticket.DH == b.Ticket.DH {
		errs = append(errs, errors.New("both sides share a ticket key"))
	}
	if !a.Local && !b.Local {
		errs = append(errs, errors.New("no local side"))
	}
	for i, s := range r.Sides {
		if s.Local && s.Account == (keys.AccountID{}) {
			errs = append(errs, fmt.Errorf("side %d is local without an account", i))
		}
		if !s.Local && s.Account != (keys.AccountID{}) {
			errs = append(errs, fmt.Errorf("side %d is remote but names an account", i))
		}
	}
	if a.Local && b.Local && a.Account == b.Account {
		errs = append(errs, errors.New("one account on both sides"))
	}
	if r.Closed.IsZero() != (r.ClosedBy == keys.TicketID{}) {
		errs = append(errs, errors.New("closed time and closing side disagree"))
	}
	if r.ClosedBy != (keys.TicketID{}) && r.ClosedBy != a.Ticket.Sign && r.ClosedBy != b.Ticket.Sign {
		errs = append(errs, errors.New("closed by a ticket that is not a side"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}

// Cache bounds: Get keeps the records it read for cacheTTL, at most
// cacheMax of them (the cache is emptied when full).
const (
	cacheTTL = time.Second
	cacheMax = 1 << 16
)

// Rooms reads and writes room records. Its methods are safe for concurrent
// use.
//
// The send path reads a room for every message, so Get keeps what it read
// for a second. Put and Close drop the room from the cache, and a record
// cached by a Get that raced their commit lives at most a second: a room is
// seen closed on this node at most a second after its close committed.
type Rooms struct {
	st  *store.Store
	now func() time.Time

	mu    sync.Mutex
	cache map[keys.RoomID]cached
}

type cached struct {
	rec     Record
	expires time.Time
}

// Option is a test seam for New.
type Option func(*Rooms)

// WithClock replaces time.Now for the cache's expiry.
func WithClock(now func() time.Time) Option { return func(r *Rooms) { r.now = now } }

// New returns the room records kept in st.
func New(st *store.Store, opts ...Option) *Rooms {
	r := &Rooms{st: st, now: time.Now, cache: make(map[keys.RoomID]cached)}
	for _, opt := range opts {
		opt(r)
	}
	return r
}

func (r *Rooms) forget(id keys.RoomID) {
	r.mu.Lock()
	delete(r.cache, id)
	r.mu.Unlock()
}

func roomKey(id keys.RoomID) []byte { return store.Key(store.PrefixRoom, id[:]) }

func accountRoomKey(acct keys.AccountID, id keys.RoomID) []byte {
	return store.Key(store.PrefixAccountRooms, acct[:], id[:])
}

// Put writes rec, and the index entry of each local side, into b. It
// creates or replaces the record; the caller commits b. It fails with
// ErrInvalid, writing nothing, if rec breaks Record's invariants.
func (r *Rooms) Put(b *store.Batch, rec Record) error {
	if err := rec.validate(); err != nil {
		return err
	}
	r.forget(rec.ID)
	b.Set(roomKey(rec.ID), encode(rec))
	for _, s := range rec.Sides {
		if s.Local {
			b.Set(accountRoomKey(s.Account, rec.ID), nil)
		}
	}
	return nil
}

// Close writes into b the record of rec closed at now by the side whose
// ticket signing key is by, and returns that record. It fails with
// ErrNotSide if by is neither side, and with ErrAlreadyClosed, writing
// nothing and returning rec unchanged, if rec is already closed.
//
// Close does not read the store: the caller passes the record it read, and
// serialises closes of one room if it announces each close (so that two
// concurrent closes do not both announce it).
func (r *Rooms) Close(b *store.Batch, rec Record, by keys.TicketID, now time.Time) (Record, error) {
	if rec.IsClosed() {
		return rec, ErrAlreadyClosed
	}
	if _, _, ok := rec.SideByTicket(by); !ok {
		return rec, ErrNotSide
	}
	rec.Closed, rec.ClosedBy = now, by
	if err := r.Put(b, rec); err != nil {
		return rec, err
	}
	return rec, nil
}

// Get returns the committed record of room id (at most a second old, see
// Rooms), or ErrNotFound.
func (r *Rooms) Get(ctx context.Context, id keys.RoomID) (Record, error) {
	if err := ctx.Err(); err != nil {
		return Record{}, err
	}
	now := r.now()
	r.mu.Lock()
	c, ok := r.cache[id]
	r.mu.Unlock()
	if ok && now.Before(c.expires) {
		return c.rec, nil
	}
	v, err := r.st.Get(roomKey(id))
	if errors.Is(err, store.ErrNotFound) {
		return Record{}, ErrNotFound
	}
	if err != nil {
		return Record{}, fmt.Errorf("rooms: reading %s: %w", id, err)
	}
	rec, err := decode(v)
	if err != nil {
		return Record{}, err
	}
	if rec.ID != id {
		return Record{}, fmt.Errorf("%w: record under %s names %s", ErrCorrupt, id, rec.ID)
	}
	r.mu.Lock()
	if len(r.cache) >= cacheMax {
		clear(r.cache)
	}
	r.cache[id] = cached{rec: rec, expires: now.Add(cacheTTL)}
	r.mu.Unlock()
	return rec, nil
}

// ForAccount returns the rooms acct is a local side of, open and closed,
// oldest first (ties by room ID).
func (r *Rooms) ForAccount(ctx context.Context, acct keys.AccountID) ([]Record, error) {
	prefix := store.Key(store.PrefixAccountRooms, acct[:])
	var ids []keys.RoomID
	err := r.st.Scan(prefix, nil, 0, func(key, _ []byte) bool {
		var id keys.RoomID
		copy(id[:], key[len(prefix):])
		ids = append(ids, id)
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("rooms: listing rooms: %w", err)
	}
	recs := make([]Record, 0, len(ids))
	for _, id := range ids {
		rec, err := r.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		if _, _, ok := rec.SideOf(acct); !ok {
			// The index and the record disagree; trust the record.
			continue
		}
		recs = append(recs, rec)
	}
	slices.SortFunc(recs, func(a, b Record) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return bytes.Compare(a.ID[:], b.ID[:])
	})
	return recs, nil
}

// recordSize is the size of a version 1 record.
const recordSize = 1 + 32 + 2*(32+32+32+1+32) + 8 + 1 + 8 + 32

func encode(rec Record) []byte {
	e := wire.NewEncoder(recordSize)
	e.U8(1)
	e.Fixed(rec.ID[:])
	for _, s := range rec.Sides {
		e.Fixed(s.Ticket.Sign[:])
		e.Fixed(s.Ticket.DH[:])
		e.Fixed(s.Home[:])
		e.U8(boolByte(s.Local))
		e.Fixed(s.Account[:])
	}
	e.I64(rec.Created.UnixNano())
	if rec.IsClosed() {
		e.U8(1)
		e.I64(rec.Closed.UnixNano())
	} else {
		e.U8(0)
		e.I64(0)
	}
	e.Fixed(rec.ClosedBy[:])
	return e.Bytes()
}

func decode(v []byte) (Record, error) {
	var rec Record
	d := wire.NewDecoder("room record", v)
	d.Version(1)
	d.Field("id").Fixed(rec.ID[:])
	for i := range rec.Sides {
		s := &rec.Sides[i]
		d.Field("ticket sign").Fixed(s.Ticket.Sign[:])
		d.Field("ticket dh").Fixed(s.Ticket.DH[:])
		d.Field("home").Fixed(s.Home[:])
		s.Local = readBool(d.Field("local"))
		d.Field("account").Fixed(s.Account[:])
	}
	rec.Created = time.Unix(0, d.Field("created").I64()).UTC()
	closed := readBool(d.Field("closed"))
	closedAt := d.Field("closed time").I64()
	if closed {
		rec.Closed = time.Unix(0, closedAt).UTC()
	}
	d.Field("closed by").Fixed(rec.ClosedBy[:])
	if err := d.Finish(); err != nil {
		return Record{}, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return rec, nil
}

func boolByte(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

func readBool(d *wire.Decoder) bool {
	switch v := d.U8(); v {
	case 0:
		return false
	case 1:
		return true
	default:
		d.Fail("%d is not 0 or 1", v)
		return false
	}
}
