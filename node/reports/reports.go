// Package reports receives a user's disclosures (spec 05-disclosures,
// spec 09 §7) and keeps them for the operator.
//
// Submit checks that the reporter really is the caller's side of the room
// the disclosure names, verifies the disclosure against the home node of the
// accused side (the node that stamped the messages), and stores it once.
// Forwarding to a remote accused's node, policy and the operator's review
// queue are the reports issue; this package is where they attach.
//
// Key layout (node/store.PrefixReport):
//
//	rep/<report ID 32> -> u8 version 1 || fixed[32] reporter account ||
//	                      i64 received (Unix ms) || bytes32 disclosure
//
// The report ID is H("parley/v1/disclosure", disclosure encoding). A
// disclosure holds the plaintext its reporter chose to reveal: it is the one
// place a node stores plaintext, because a participant gave it.
package reports

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/parley-chat/parley/node/rooms"
	"github.com/parley-chat/parley/node/store"
	"github.com/parley-chat/parley/protocol/disclosure"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/wire"
)

// Errors.
var (
	// ErrNotFound: the room does not exist or the caller is not in it.
	ErrNotFound = errors.New("reports: no such room for this account")
	// ErrNotReporter: the disclosure's reporter is not the caller's ticket.
	ErrNotReporter = errors.New("reports: the reporter is not the caller's side of the room")
	// ErrInvalid: the disclosure does not verify; it wraps the
	// *disclosure.VerifyError naming the failed check.
	ErrInvalid = errors.New("reports: disclosure does not verify")
)

// Receipt acknowledges a stored report.
type Receipt struct {
	ID        [32]byte
	Received  time.Time
	Duplicate bool
}

// Reports stores verified disclosures.
type Reports struct {
	st    *store.Store
	rooms *rooms.Rooms
	now   func() time.Time
	mu    sync.Mutex // serialises the check-then-write of one report ID
}

// New returns the reports service.
func New(st *store.Store, rs *rooms.Rooms, now func() time.Time) *Reports {
	if now == nil {
		now = time.Now
	}
	return &Reports{st: st, rooms: rs, now: now}
}

// Submit verifies d as a report by acct and stores it durably before it
// returns. A disclosure submitted twice is stored once.
func (r *Reports) Submit(ctx context.Context, acct keys.AccountID, d *disclosure.Disclosure) (Receipt, error) {
	roomID, _ := d.Accused()
	rec, err := r.rooms.Get(ctx, roomID)
	if errors.Is(err, rooms.ErrNotFound) {
		return Receipt{}, ErrNotFound
	}
	if err != nil {
		return Receipt{}, err
	}
	me, partner, ok := rec.SideOf(acct)
	if !ok {
		return Receipt{}, ErrNotFound
	}
	if d.Reporter != me.Ticket.Sign {
		return Receipt{}, ErrNotReporter
	}
	now := r.now()
	if err := disclosure.Verify(d, partner.Home, now); err != nil {
		return Receipt{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	enc, err := d.MarshalBinary()
	if err != nil {
		return Receipt{}, err
	}
	id := wire.Hash(wire.LabelDisclosure, enc)
	key := store.Key(store.PrefixReport, id[:])

	r.mu.Lock()
	defer r.mu.Unlock()
	if ok, err := r.st.Has(key); err != nil {
		return Receipt{}, err
	} else if ok {
		return Receipt{ID: id, Received: now, Duplicate: true}, nil
	}
	e := wire.NewEncoder(1 + 32 + 8 + 4 + len(enc))
	e.U8(1)
	e.Fixed(acct[:])
	e.I64(now.UnixMilli())
	e.Bytes32(enc)
	b := r.st.NewBatch()
	b.Set(key, e.Bytes())
	if err := r.st.Commit(ctx, b); err != nil {
		return Receipt{}, err
	}
	return Receipt{ID: id, Received: now}, nil
}

// Stored is a report as kept.
type Stored struct {
	ID         [32]byte
	Reporter   keys.AccountID
	Received   time.Time
	Disclosure *disclosure.Disclosure
}

// List returns stored reports in ID order, at most limit (0: all).
func (r *Reports) List(ctx context.Context, limit int) ([]Stored, error) {
	var out []Stored
	var perr error
	err := r.st.Scan([]byte(store.PrefixReport), nil, limit, func(k, v []byte) bool {
		s, err := decodeStored(k[len(store.PrefixReport):], v)
		if err != nil {
			perr = err
			return false
		}
		out = append(out, s)
		return ctx.Err() == nil
	})
	if err == nil {
		err = perr
	}
	return out, err
}

func decodeStored(id, v []byte) (Stored, error) {
	var s Stored
	copy(s.ID[:], id)
	dec := wire.NewDecoder("stored report", v)
	dec.Version(1)
	dec.Field("reporter").Fixed(s.Reporter[:])
	s.Received = time.UnixMilli(dec.Field("received").I64())
	enc := dec.Field("disclosure").Bytes32(wire.MaxDisclosureSize)
	if err := dec.Finish(); err != nil {
		return s, err
	}
	d, err := disclosure.Parse(enc)
	if err != nil {
		return s, err
	}
	s.Disclosure = d
	return s, nil
}
