// Package reports receives disclosures (spec 05-disclosures, spec 09 §7,
// spec 13-moderation §2) and keeps them for the operator.
//
// Submit takes a report from one of this node's users: it checks that the
// reporter really is the caller's side of the room the disclosure names,
// verifies the disclosure against the home node of the accused side (the
// node that stamped the messages), and stores it once. If the accused is a
// local account, the policy (node/moderation) gets the evidence; if not,
// the report goes to the Forwarder, in the same write, for the accused's
// home node.
//
// Receive takes a report another node forwarded: this node verifies it
// again on its own (with its own ID as the stamping node), maps the accused
// ticket to the local account through its room record, stores it once and
// gives the evidence to the policy. Replays are stored and counted once.
//
// Key layout (node/store.PrefixReport):
//
//	rep/<report ID 32> -> u8 version 2 || fixed[32] reporter account (zero if remote) ||
//	                      fixed[32] forwarding node (zero if a local user reported) ||
//	                      i64 received (Unix ms) || u8 accused local ||
//	                      fixed[32] accused account (zero unless local) ||
//	                      u8 resolved || i64 resolved (Unix ms) || string16 resolved by ||
//	                      string16 resolution || bytes32 disclosure
//
// Version 1 records (reporter, received, disclosure) still decode. The
// report ID is H("parley/v1/disclosure", disclosure encoding). A disclosure
// holds the plaintext its reporter chose to reveal: it is the one place a
// node stores plaintext, because a participant gave it.
package reports

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/node/moderation"
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
	// ErrNotReporter: the disclosure's reporter is not the caller's ticket
	// (Submit) or not the accused's partner in the room (Receive).
	ErrNotReporter = errors.New("reports: the reporter is not the caller's side of the room")
	// ErrInvalid: the disclosure does not verify; it wraps the
	// *disclosure.VerifyError naming the failed check, or the parse error.
	ErrInvalid = errors.New("reports: disclosure does not verify")
	// ErrNotLocal: a forwarded report names a room or accused ticket that is
	// not one of this node's accounts' rooms.
	ErrNotLocal = errors.New("reports: the accused is not a local account")
	// ErrWrongOrigin: a report was forwarded by another node than the
	// reporter's home node.
	ErrWrongOrigin = errors.New("reports: forwarded by a node that is not the reporter's home")
	// ErrBadResolution: Resolve's name or note is too long or not UTF-8.
	ErrBadResolution = errors.New("reports: bad resolution")
)

// Bounds of Resolve's text.
const (
	MaxResolvedBy  = 64
	MaxResolution  = 1024
	resolvedFields = 1 + 8 + 2 + 2
)

// Receipt acknowledges a stored report.
type Receipt struct {
	ID        [32]byte
	Received  time.Time
	Duplicate bool
}

// Policy is what the reports need of node/moderation: it gets the evidence
// of every verified report about a local account (and again for a
// duplicate, which it counts once).
type Policy interface {
	Reported(ctx context.Context, ev moderation.Evidence) (moderation.Outcome, error)
}

var _ Policy = (*moderation.Moderation)(nil)

// Forwarder takes reports about remote accused to their home node. Enqueue
// adds the durable queue entry to b, which the caller commits with the
// report itself.
type Forwarder interface {
	Enqueue(b *store.Batch, to keys.NodeID, id [32]byte, enc []byte, now time.Time)
}

// Option is a wiring choice or test seam for New.
type Option func(*Reports)

// WithPolicy gives verified reports about local accounts to p.
func WithPolicy(p Policy) Option { return func(r *Reports) { r.policy = p } }

// WithForwarder queues reports about remote accused on f.
func WithForwarder(f Forwarder) Option { return func(r *Reports) { r.fwd = f } }

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(r *Reports) { r.log = l } }

// WithRegisterer registers the metrics with reg (default: a private
// registry).
func WithRegisterer(reg prometheus.Registerer) Option { return func(r *Reports) { r.reg = reg } }

// Reports stores verified disclosures.
type Reports struct {
	st     *store.Store
	rooms  *rooms.Rooms
	now    func() time.Time
	policy Policy
	fwd    Forwarder
	log    *slog.Logger
	reg    prometheus.Registerer
	m      *metrics
	mu     sync.Mutex // serialises the check-then-write of one report ID
}

// New returns the reports service. If its metrics cannot be registered
// (a wiring bug: two services on one registerer) it logs that and counts
// into unregistered metrics.
func New(st *store.Store, rs *rooms.Rooms, now func() time.Time, opts ...Option) *Reports {
	if now == nil {
		now = time.Now
	}
	r := &Reports{st: st, rooms: rs, now: now, log: slog.New(slog.DiscardHandler), reg: prometheus.NewRegistry()}
	for _, opt := range opts {
		opt(r)
	}
	r.log = r.log.With("subsystem", "reports")
	m, err := newMetrics(r.reg)
	if err != nil {
		r.log.Error("registering the reports metrics", "err", err)
	}
	r.m = m
	return r
}

// Submit verifies d as a report by acct and stores it durably before it
// returns. A disclosure submitted twice is stored once.
func (r *Reports) Submit(ctx context.Context, acct keys.AccountID, d *disclosure.Disclosure) (Receipt, error) {
	rc, err := r.submit(ctx, acct, d)
	r.m.count(sourceClient, rc, err)
	return rc, err
}

func (r *Reports) submit(ctx context.Context, acct keys.AccountID, d *disclosure.Disclosure) (Receipt, error) {
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
	s := Stored{
		ID: wire.Hash(wire.LabelDisclosure, enc), Reporter: acct, Received: now,
		AccusedLocal: partner.Local, Accused: partner.Account, Disclosure: d,
	}
	var forward func(b *store.Batch)
	if !partner.Local && r.fwd != nil {
		forward = func(b *store.Batch) { r.fwd.Enqueue(b, partner.Home, s.ID, enc, now) }
	}
	rc, err := r.store(ctx, s, enc, forward)
	if err != nil {
		return rc, err
	}
	if partner.Local {
		r.apply(ctx, s.ID, partner.Account, acct, rc.Received)
	}
	return rc, nil
}

// Receive verifies enc, a report that node from forwarded about one of
// this node's accounts, and stores it durably before it returns (spec 05
// §5, spec 13 §2). A report received twice is stored and counted once.
func (r *Reports) Receive(ctx context.Context, from keys.NodeID, enc []byte) (Receipt, error) {
	rc, err := r.receive(ctx, from, enc)
	r.m.count(sourceFederation, rc, err)
	return rc, err
}

func (r *Reports) receive(ctx context.Context, from keys.NodeID, enc []byte) (Receipt, error) {
	d, err := disclosure.Parse(enc)
	if err != nil {
		return Receipt{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	roomID, accused := d.Accused()
	rec, err := r.rooms.Get(ctx, roomID)
	if errors.Is(err, rooms.ErrNotFound) {
		return Receipt{}, ErrNotLocal
	}
	if err != nil {
		return Receipt{}, err
	}
	me, partner, ok := rec.SideByTicket(accused)
	if !ok || !me.Local {
		return Receipt{}, ErrNotLocal
	}
	if d.Reporter != partner.Ticket.Sign {
		return Receipt{}, ErrNotReporter
	}
	if partner.Local || partner.Home != from {
		return Receipt{}, ErrWrongOrigin
	}
	now := r.now()
	// Our own stamps: me.Home is this node.
	if err := disclosure.Verify(d, me.Home, now); err != nil {
		return Receipt{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	s := Stored{
		ID: wire.Hash(wire.LabelDisclosure, enc), From: from, Received: now,
		AccusedLocal: true, Accused: me.Account, Disclosure: d,
	}
	rc, err := r.store(ctx, s, enc, nil)
	if err != nil {
		return rc, err
	}
	r.apply(ctx, s.ID, me.Account, d.Reporter, rc.Received)
	return rc, nil
}

// apply gives the evidence to the policy, with the time the report was
// first received. A failure is logged: the report is stored, and its next
// submission (a duplicate) applies it again.
func (r *Reports) apply(ctx context.Context, id [32]byte, accused keys.AccountID, reporter [32]byte, now time.Time) {
	if r.policy == nil {
		return
	}
	if _, err := r.policy.Reported(ctx, moderation.Evidence{Report: id, Accused: accused, Reporter: reporter, Time: now}); err != nil {
		r.log.Error("applying the policy to a report", "err", err)
	}
}

// store writes s once (a duplicate ID changes nothing), with extra's writes
// in the same batch.
func (r *Reports) store(ctx context.Context, s Stored, enc []byte, extra func(b *store.Batch)) (Receipt, error) {
	key := store.Key(store.PrefixReport, s.ID[:])
	r.mu.Lock()
	defer r.mu.Unlock()
	switch v, err := r.st.Get(key); {
	case err == nil:
		// The first receipt's time: a replay does not make a report new.
		prev, _, err := decodeStored(s.ID[:], v)
		if err != nil {
			return Receipt{}, err
		}
		return Receipt{ID: s.ID, Received: prev.Received, Duplicate: true}, nil
	case !errors.Is(err, store.ErrNotFound):
		return Receipt{}, err
	}
	b := r.st.NewBatch()
	b.Set(key, encodeStored(s, enc))
	if extra != nil {
		extra(b)
	}
	if err := r.st.Commit(ctx, b); err != nil {
		return Receipt{}, err
	}
	return Receipt{ID: s.ID, Received: s.Received}, nil
}

// Stored is a report as kept.
type Stored struct {
	ID           [32]byte
	Reporter     keys.AccountID // the reporting account; zero if the report came from another node
	From         keys.NodeID    // the node that forwarded it; zero if a local user reported
	Received     time.Time
	AccusedLocal bool           // the accused is one of this node's accounts
	Accused      keys.AccountID // the accused account, if local
	Resolved     time.Time      // zero while open
	ResolvedBy   string         // who resolved it
	Resolution   string         // the operator's note
	Disclosure   *disclosure.Disclosure
}

// IsResolved reports whether an operator resolved the report.
func (s Stored) IsResolved() bool { return !s.Resolved.IsZero() }

// List returns stored reports in ID order, at most limit (0: all).
func (r *Reports) List(ctx context.Context, limit int) ([]Stored, error) {
	var out []Stored
	var perr error
	err := r.st.Scan([]byte(store.PrefixReport), nil, limit, func(k, v []byte) bool {
		s, _, err := decodeStored(k[len(store.PrefixReport):], v)
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

// Resolve marks report id resolved by by, with a note (spec 10 §3). A
// resolved report stays stored until moderation.report_retention has passed
// (Expire); resolving again replaces the note.
func (r *Reports) Resolve(ctx context.Context, id [32]byte, by, note string) (Stored, error) {
	if by == "" || len(by) > MaxResolvedBy || len(note) > MaxResolution || !utf8.ValidString(by) || !utf8.ValidString(note) {
		return Stored{}, fmt.Errorf("%w: by must be 1 to %d bytes and the note at most %d, UTF-8", ErrBadResolution, MaxResolvedBy, MaxResolution)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	s, enc, err := r.get(ctx, id)
	if err != nil {
		return Stored{}, err
	}
	s.Resolved, s.ResolvedBy, s.Resolution = r.now(), by, note
	b := r.st.NewBatch()
	b.Set(store.Key(store.PrefixReport, id[:]), encodeStored(s, enc))
	if err := r.st.Commit(ctx, b); err != nil {
		return Stored{}, err
	}
	r.log.Info("report resolved", "report", fmt.Sprintf("%x", id), "by", by)
	return s, nil
}

func encodeStored(s Stored, enc []byte) []byte {
	e := wire.NewEncoder(1 + 32 + 32 + 8 + 1 + 32 + resolvedFields + len(s.ResolvedBy) + len(s.Resolution) + 4 + len(enc))
	e.U8(2)
	e.Fixed(s.Reporter[:])
	e.Fixed(s.From[:])
	e.I64(s.Received.UnixMilli())
	e.U8(boolByte(s.AccusedLocal))
	e.Fixed(s.Accused[:])
	e.U8(boolByte(s.IsResolved()))
	var resolved int64
	if s.IsResolved() {
		resolved = s.Resolved.UnixMilli()
	}
	e.I64(resolved)
	e.String16(s.ResolvedBy)
	e.String16(s.Resolution)
	e.Bytes32(enc)
	return e.Bytes()
}

func boolByte(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

func decodeStored(id, v []byte) (Stored, []byte, error) {
	var s Stored
	copy(s.ID[:], id)
	dec := wire.NewDecoder("stored report", v)
	version := dec.Field("version").U8()
	switch version {
	case 1:
		dec.Field("reporter").Fixed(s.Reporter[:])
		s.Received = time.UnixMilli(dec.Field("received").I64())
	case 2:
		dec.Field("reporter").Fixed(s.Reporter[:])
		dec.Field("from").Fixed(s.From[:])
		s.Received = time.UnixMilli(dec.Field("received").I64())
		s.AccusedLocal = dec.Field("accused local").U8() == 1
		dec.Field("accused").Fixed(s.Accused[:])
		resolved := dec.Field("resolved").U8() == 1
		at := dec.Field("resolved time").I64()
		if resolved {
			s.Resolved = time.UnixMilli(at)
		}
		s.ResolvedBy = dec.Field("resolved by").String16(MaxResolvedBy)
		s.Resolution = dec.Field("resolution").String16(MaxResolution)
	default:
		dec.Fail("unknown version %d", version)
	}
	enc := dec.Field("disclosure").Bytes32(wire.MaxDisclosureSize)
	if err := dec.Finish(); err != nil {
		return s, nil, err
	}
	d, err := disclosure.Parse(enc)
	if err != nil {
		return s, nil, err
	}
	s.Disclosure = d
	return s, enc, nil
}
