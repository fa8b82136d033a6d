// Package mailbox is each account's durable, ordered event log: the
// messages, pairings and room closings a client receives through sync
// (spec 09-client-api §6, DESIGN §3.2).
//
// Producers (the relay, the lottery, room closing) write events into their
// own store batch with Append, which gives each event the account's next
// position, and commit the batch with Commit, which makes it durable and
// wakes the account's waiters. Clients read with Read, block with Wait, and
// delete what they processed with Ack; Expire drops what nobody
// acknowledged within the retention limit.
//
// # Positions
//
// Positions are per account, start at 1 and strictly increase; a batch that
// fails to commit leaves a gap, and no position is ever used twice, not even
// after its event was acknowledged and deleted. Several batches may hold
// positions of one account at once and commit in any order, so the mailbox
// shows an account's events only up to its watermark: the highest position
// below every position still in an uncommitted batch. A reader therefore
// never sees position p+1 before p (or before p's batch failed), and a
// client that syncs from its last position misses nothing.
//
// # Key layout and encoding
//
// Under the prefixes node/store assigns to this package:
//
//	mbox/<AccountID 32><position u64>  -> event (below)
//	mhead/<AccountID 32>               -> u64: a position no event of the account is at or above
//
// An event is, integers big-endian:
//
//	u8  version (1)
//	u8  kind (Kind)
//	[32] room ID
//	i64 time, Unix nanoseconds
//	body: every remaining byte
//
// The head is written with every event (pos+1) and by every deletion (the
// in-memory next position). Because batches may commit out of order the
// stored head can lag; on first use after a start the next position is the
// larger of the head and one past the highest stored event, which is
// always past every position ever made visible.
package mailbox

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/node/store"
	"github.com/parley-chat/parley/protocol/keys"
)

// Read limits (spec 09-client-api §6).
const (
	// DefaultReadLimit is the number of events Read returns when limit is 0
	// or negative.
	DefaultReadLimit = 100
	// MaxReadLimit is the most events one Read returns.
	MaxReadLimit = 1000
	// MaxBody bounds an event's body: a stamped envelope of the largest
	// size fits with room to spare.
	MaxBody = 128 << 10
)

// Errors returned by this package. Match them with errors.Is.
var (
	// ErrBadEvent: Append was given an event of unknown kind or with a body
	// over MaxBody.
	ErrBadEvent = errors.New("mailbox: bad event")
	// ErrCorrupt: a stored event or head does not decode.
	ErrCorrupt = errors.New("mailbox: corrupt record")
)

// Kind is the kind of an event.
type Kind uint8

// Event kinds.
const (
	// KindMessage: Body is a stamped envelope's canonical encoding
	// (spec 03-envelope §7).
	KindMessage Kind = 1
	// KindPaired: Body is the lottery's JSON description of the new room.
	KindPaired Kind = 2
	// KindRoomClosed: Body is a JSON document saying who closed the room
	// (the relay's RoomClosed).
	KindRoomClosed Kind = 3
	// KindNotice: Body is a JSON notice from the node to the account.
	KindNotice Kind = 4
)

var kinds = []Kind{KindMessage, KindPaired, KindRoomClosed, KindNotice}

// String returns the kind's name, as used in the metrics' kind label.
func (k Kind) String() string {
	switch k {
	case KindMessage:
		return "message"
	case KindPaired:
		return "paired"
	case KindRoomClosed:
		return "room_closed"
	case KindNotice:
		return "notice"
	default:
		return fmt.Sprintf("kind(%d)", uint8(k))
	}
}

func (k Kind) valid() bool { return k >= KindMessage && k <= KindNotice }

// Event is one entry of an account's mailbox.
type Event struct {
	Pos  uint64      // the event's position; set by Append
	Kind Kind        // what Body holds
	Room keys.RoomID // the room the event is about
	Time time.Time   // when the producer wrote it; Expire compares it
	Body []byte      // see Kind
}

// Config is the mailbox part of the node configuration.
type Config struct {
	// Retention is how long an event that nobody acknowledged is kept.
	// Default 720h (30 days, wire.MaxDisclosureAge: the reporting window).
	Retention time.Duration `toml:"retention" comment:"How long unacknowledged events are kept (default \"720h\")."`
	// ExpireEvery is how often Run drops expired events. Default 1h.
	ExpireEvery time.Duration `toml:"expire_every" comment:"How often expired events are dropped (default \"1h\")."`
}

// Validate reports every problem with c at once. Zero fields take their
// defaults.
func (c Config) Validate() error {
	var errs []error
	if c.Retention < 0 {
		errs = append(errs, fmt.Errorf("mailbox: retention %s is negative", c.Retention))
	} else if c.Retention != 0 && c.Retention < time.Hour {
		errs = append(errs, fmt.Errorf("mailbox: retention %s is below 1h", c.Retention))
	}
	if c.ExpireEvery < 0 {
		errs = append(errs, fmt.Errorf("mailbox: expire_every %s is negative", c.ExpireEvery))
	} else if c.ExpireEvery != 0 && c.ExpireEvery < time.Second {
		errs = append(errs, fmt.Errorf("mailbox: expire_every %s is below 1s", c.ExpireEvery))
	}
	return errors.Join(errs...)
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config { return Config{}.withDefaults() }

func (c Config) withDefaults() Config {
	if c.Retention == 0 {
		c.Retention = 720 * time.Hour
	}
	if c.ExpireEvery == 0 {
		c.ExpireEvery = time.Hour
	}
	return c
}

type options struct {
	now    func() time.Time
	logger *slog.Logger
	reg    prometheus.Registerer
}

// Option is a test seam or wiring choice for New.
type Option func(*options)

// WithClock replaces time.Now (Run uses it for the expiry cutoff).
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithLogger sets the logger; the default discards.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithRegisterer registers the mailbox's metrics with r.
func WithRegisterer(r prometheus.Registerer) Option { return func(o *options) { o.reg = r } }

// Mailbox is every account's event log. Its methods are safe for concurrent
// use.
type Mailbox struct {
	cfg     Config
	st      *store.Store
	now     func() time.Time
	log     *slog.Logger
	metrics *metrics

	// mu guards accts, txns and every account's position and waiter
	// fields. It is held only for in-memory bookkeeping, never across I/O:
	// one mutex costs tens of nanoseconds per event and the relay appends
	// from a single goroutine, so sharding it would buy nothing.
	mu    sync.Mutex
	accts map[keys.AccountID]*account
	txns  map[*store.Batch][]appended
}

// account is the in-memory state of one account's mailbox. One is kept for
// every account used since the node started (a few dozen bytes each); its
// wake channel exists only while someone waits.
type account struct {
	id    keys.AccountID
	ready chan struct{} // closed once next is loaded (or err set)
	err   error

	// Guarded by Mailbox.mu.
	next    uint64   // the next position to give out
	pending []uint64 // positions in uncommitted batches, ascending
	wake    chan struct{}
	waiters int

	// delMu serialises the deleters (Ack, Expire) of this account, which
	// write its head; held across their commit.
	delMu sync.Mutex
}

// visible returns the account's watermark. Call with Mailbox.mu held.
func (a *account) visible() uint64 {
	if len(a.pending) > 0 {
		return a.pending[0] - 1
	}
	return a.next - 1
}

type appended struct {
	a    *account
	pos  uint64
	kind Kind
}

// New opens the mailboxes kept in st. It counts the stored events once, for
// the parley_mailbox_events gauge, which it then maintains as events are
// appended and deleted.
func New(cfg Config, st *store.Store, opts ...Option) (*Mailbox, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o := options{now: time.Now, logger: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(&o)
	}
	m := &Mailbox{
		cfg:     cfg.withDefaults(),
		st:      st,
		now:     o.now,
		log:     o.logger.With("subsystem", "mailbox"),
		metrics: newMetrics(),
		accts:   make(map[keys.AccountID]*account),
		txns:    make(map[*store.Batch][]appended),
	}
	n := 0
	if err := st.Scan([]byte(store.PrefixMailbox), nil, 0, func(_, _ []byte) bool { n++; return true }); err != nil {
		return nil, fmt.Errorf("mailbox: counting events: %w", err)
	}
	m.metrics.events.Set(float64(n))
	if o.reg != nil {
		if err := m.metrics.register(o.reg); err != nil {
			return nil, fmt.Errorf("mailbox: registering metrics: %w", err)
		}
	}
	return m, nil
}

// Keys.

func accountPrefix(acct keys.AccountID) []byte { return store.Key(store.PrefixMailbox, acct[:]) }

func eventKey(acct keys.AccountID, pos uint64) []byte {
	k := make([]byte, 0, len(store.PrefixMailbox)+32+8)
	k = append(k, store.PrefixMailbox...)
	k = append(k, acct[:]...)
	return binary.BigEndian.AppendUint64(k, pos)
}

func headKey(acct keys.AccountID) []byte { return store.Key(store.PrefixMailboxHead, acct[:]) }

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

const eventHeader = 1 + 1 + 32 + 8

func encodeEvent(ev Event) []byte {
	v := make([]byte, eventHeader, eventHeader+len(ev.Body))
	v[0] = 1
	v[1] = byte(ev.Kind)
	copy(v[2:34], ev.Room[:])
	binary.BigEndian.PutUint64(v[34:42], uint64(ev.Time.UnixNano()))
	return append(v, ev.Body...)
}

// decodeEvent decodes a stored event; with body false it skips the body.
func decodeEvent(pos uint64, v []byte, body bool) (Event, error) {
	if len(v) < eventHeader || v[0] != 1 || !Kind(v[1]).valid() {
		return Event{}, fmt.Errorf("%w: event %d", ErrCorrupt, pos)
	}
	ev := Event{Pos: pos, Kind: Kind(v[1]), Time: time.Unix(0, int64(binary.BigEndian.Uint64(v[34:42]))).UTC()}
	copy(ev.Room[:], v[2:34])
	if body {
		ev.Body = append([]byte(nil), v[eventHeader:]...)
	}
	return ev, nil
}

// account returns acct's state, loading its next position on first use.
func (m *Mailbox) account(acct keys.AccountID) (*account, error) {
	m.mu.Lock()
	a, ok := m.accts[acct]
	if !ok {
		a = &account{id: acct, ready: make(chan struct{})}
		m.accts[acct] = a
	}
	m.mu.Unlock()
	if ok {
		<-a.ready
		if a.err != nil {
			return m.account(acct) // the loader failed and removed a; try again
		}
		return a, nil
	}
	next, err := m.loadNext(acct)
	m.mu.Lock()
	if err != nil {
		a.err = err
		delete(m.accts, acct)
	} else {
		a.next = next
	}
	m.mu.Unlock()
	close(a.ready)
	if err != nil {
		return nil, err
	}
	return a, nil
}

// loadNext returns the account's next position: the larger of its stored
// head and one past its highest stored event.
func (m *Mailbox) loadNext(acct keys.AccountID) (uint64, error) {
	next := uint64(1)
	v, err := m.st.Get(headKey(acct))
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return 0, fmt.Errorf("mailbox: reading head: %w", err)
	case len(v) != 8 || binary.BigEndian.Uint64(v) == 0:
		return 0, fmt.Errorf("%w: head of %s", ErrCorrupt, acct)
	default:
		next = binary.BigEndian.Uint64(v)
	}
	// Events at or above the head exist only when batches committed out
	// of order; there are at most a few of them.
	prefix := accountPrefix(acct)
	err = m.st.Scan(prefix, eventKey(acct, next-1), 0, func(key, _ []byte) bool {
		if pos := binary.BigEndian.Uint64(key[len(prefix):]); pos >= next {
			next = pos + 1
		}
		return true
	})
	if err != nil {
		return 0, fmt.Errorf("mailbox: reading head: %w", err)
	}
	return next, nil
}

// Append writes ev into b as acct's next event and returns its position
// (ev.Pos is ignored). The caller must pass b to Commit, or to Discard if
// it gives up on it: until then the account's later events stay invisible.
// Append reads the store only the first time it sees an account.
func (m *Mailbox) Append(b *store.Batch, acct keys.AccountID, ev Event) (uint64, error) {
	if !ev.Kind.valid() {
		return 0, fmt.Errorf("%w: kind %d", ErrBadEvent, ev.Kind)
	}
	if len(ev.Body) > MaxBody {
		return 0, fmt.Errorf("%w: body of %d bytes (max %d)", ErrBadEvent, len(ev.Body), MaxBody)
	}
	a, err := m.account(acct)
	if err != nil {
		return 0, err
	}
	m.mu.Lock()
	pos := a.next
	a.next++
	a.pending = append(a.pending, pos)
	m.txns[b] = append(m.txns[b], appended{a: a, pos: pos, kind: ev.Kind})
	m.mu.Unlock()
	b.Set(eventKey(acct, pos), encodeEvent(ev))
	b.Set(headKey(acct), u64(pos+1))
	return pos, nil
}

// Commit commits b durably (store.Commit) and then makes the events
// appended to it visible and wakes their accounts' waiters. If the commit
// fails, the positions become gaps. b may hold other writes, and need not
// hold any event.
func (m *Mailbox) Commit(ctx context.Context, b *store.Batch) error {
	m.mu.Lock()
	apps := m.txns[b]
	delete(m.txns, b)
	m.mu.Unlock()
	err := m.st.Commit(ctx, b)
	m.resolve(apps, err == nil)
	return err
}

// Discard closes b, which the caller will not commit, and turns the
// positions appended to it into gaps.
func (m *Mailbox) Discard(b *store.Batch) {
	m.mu.Lock()
	apps := m.txns[b]
	delete(m.txns, b)
	m.mu.Unlock()
	b.Close()
	m.resolve(apps, false)
}

// resolve removes apps' positions from their accounts' pending lists and
// wakes the accounts' waiters (a failed batch can advance the watermark
// too, over events that other batches committed).
func (m *Mailbox) resolve(apps []appended, committed bool) {
	if len(apps) == 0 {
		return
	}
	m.mu.Lock()
	for _, ap := range apps {
		a := ap.a
		if i, ok := slices.BinarySearch(a.pending, ap.pos); ok {
			a.pending = slices.Delete(a.pending, i, i+1)
		}
		if a.wake != nil {
			close(a.wake)
			a.wake = nil
		}
	}
	m.mu.Unlock()
	if committed {
		for _, ap := range apps {
			m.metrics.appended.WithLabelValues(ap.kind.String()).Inc()
		}
		m.metrics.events.Add(float64(len(apps)))
	}
}

// Read returns up to limit of acct's events with positions above after, in
// position order. limit ≤ 0 means DefaultReadLimit; it is capped at
// MaxReadLimit.
func (m *Mailbox) Read(ctx context.Context, acct keys.AccountID, after uint64, limit int) ([]Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = DefaultReadLimit
	}
	limit = min(limit, MaxReadLimit)
	a, err := m.account(acct)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	visible := a.visible()
	m.mu.Unlock()
	return m.read(acct, after, visible, limit)
}

func (m *Mailbox) read(acct keys.AccountID, after, visible uint64, limit int) ([]Event, error) {
	if after >= visible {
		return nil, nil
	}
	prefix := accountPrefix(acct)
	var evs []Event
	var decodeErr error
	err := m.st.Scan(prefix, eventKey(acct, after), limit, func(key, v []byte) bool {
		pos := binary.BigEndian.Uint64(key[len(prefix):])
		if pos > visible {
			return false
		}
		ev, err := decodeEvent(pos, v, true)
		if err != nil {
			decodeErr = err
			return false
		}
		evs = append(evs, ev)
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("mailbox: reading events: %w", err)
	}
	if decodeErr != nil {
		return nil, decodeErr
	}
	return evs, nil
}

// Wait returns nil as soon as acct has an event with position above after,
// at once if there is one already, or ctx's error when ctx ends first.
func (m *Mailbox) Wait(ctx context.Context, acct keys.AccountID, after uint64) error {
	_, err := m.next(ctx, acct, after, 1)
	return err
}

// Next returns acct's events with positions above after, up to limit (as
// Read), waiting until there is at least one or ctx ends (then it returns
// ctx's error). It is Wait and Read in one: a push loop reads the store
// once per wake-up instead of twice.
func (m *Mailbox) Next(ctx context.Context, acct keys.AccountID, after uint64, limit int) ([]Event, error) {
	if limit <= 0 {
		limit = DefaultReadLimit
	}
	return m.next(ctx, acct, after, min(limit, MaxReadLimit))
}

func (m *Mailbox) next(ctx context.Context, acct keys.AccountID, after uint64, limit int) ([]Event, error) {
	a, err := m.account(acct)
	if err != nil {
		return nil, err
	}
	for {
		// Subscribe before looking, so that a commit between the look and
		// the wait still wakes us.
		m.mu.Lock()
		if a.wake == nil {
			a.wake = make(chan struct{})
		}
		wake := a.wake
		a.waiters++
		visible := a.visible()
		m.mu.Unlock()
		m.metrics.waiters.Inc()

		evs, err := m.read(acct, after, visible, limit)
		if err == nil && len(evs) == 0 {
			select {
			case <-wake:
			case <-ctx.Done():
				err = ctx.Err()
			}
		}
		m.mu.Lock()
		a.waiters--
		if a.waiters == 0 {
			a.wake = nil // nobody holds it: let it go
		}
		m.mu.Unlock()
		m.metrics.waiters.Dec()
		if err != nil || len(evs) > 0 {
			return evs, err
		}
	}
}

// Ack durably deletes acct's events with positions up to upto. It never
// deletes past the account's watermark (what Read can return), and it is
// idempotent: acknowledging deleted or never-used positions does nothing.
func (m *Mailbox) Ack(ctx context.Context, acct keys.AccountID, upto uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	a, err := m.account(acct)
	if err != nil {
		return err
	}
	a.delMu.Lock()
	defer a.delMu.Unlock()
	m.mu.Lock()
	upto = min(upto, a.visible())
	next := a.next
	m.mu.Unlock()
	if upto == 0 {
		return nil
	}
	// Point deletes of the events that exist, not a range deletion: every
	// range tombstone in the memtable is re-fragmented on each later read,
	// so one per ack made every read of the store slower until a flush.
	prefix := accountPrefix(acct)
	b := m.st.NewBatch()
	n := 0
	err = m.st.Scan(prefix, nil, 0, func(key, _ []byte) bool {
		if binary.BigEndian.Uint64(key[len(prefix):]) > upto {
			return false
		}
		b.Delete(key)
		n++
		return true
	})
	if err != nil {
		b.Close()
		return fmt.Errorf("mailbox: ack: %w", err)
	}
	if n == 0 {
		b.Close()
		return nil
	}
	b.Set(headKey(acct), u64(next))
	// A lazy commit: an acknowledgement lost in a crash only means the
	// client is offered those events again, and it skips positions at or
	// below the one it stored (spec 09 §6), so no sync is owed here.
	if err := m.st.CommitLazy(ctx, b); err != nil {
		return fmt.Errorf("mailbox: ack: %w", err)
	}
	m.metrics.acked.Add(float64(n))
	m.metrics.events.Sub(float64(n))
	return nil
}

// Expire durably deletes every visible event whose time is before
// olderThan, whether or not it was acknowledged, and returns how many it
// deleted (parley_mailbox_expired_total). It deletes in batches of a few
// thousand events, so it can be interrupted through ctx and resumed.
func (m *Mailbox) Expire(ctx context.Context, olderThan time.Time) (int, error) {
	const maxAccounts, maxDeletes = 64, 4096
	total := 0
	prefix := []byte(store.PrefixMailbox)
	var after []byte
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		// Collect a chunk of accounts and their expired events, then lock
		// the accounts (in key order, so two Expires cannot deadlock),
		// re-read under the lock, delete and commit.
		var accts []keys.AccountID
		done := true
		err := m.st.Scan(prefix, after, 0, func(key, _ []byte) bool {
			var acct keys.AccountID
			copy(acct[:], key[len(prefix):])
			switch {
			case len(accts) > 0 && accts[len(accts)-1] == acct:
			case len(accts) == maxAccounts:
				done = false
				return false
			default:
				accts = append(accts, acct)
			}
			return true
		})
		if err != nil {
			return total, fmt.Errorf("mailbox: expire: %w", err)
		}
		if len(accts) == 0 {
			return total, nil
		}
		n, err := m.expireAccounts(ctx, accts, olderThan, maxDeletes)
		total += n
		if err != nil {
			return total, err
		}
		if done {
			return total, nil
		}
		after = eventKey(accts[len(accts)-1], ^uint64(0))
	}
}

// expireAccounts deletes the expired visible events of accts, in at most
// a few commits.
func (m *Mailbox) expireAccounts(ctx context.Context, accts []keys.AccountID, olderThan time.Time, maxDeletes int) (int, error) {
	total := 0
	for len(accts) > 0 {
		var locked []*account
		b := m.st.NewBatch()
		n := 0
		var err error
		for len(accts) > 0 && n < maxDeletes {
			var a *account
			a, err = m.account(accts[0])
			if err != nil {
				break
			}
			a.delMu.Lock()
			locked = append(locked, a)
			accts = accts[1:]
			var k int
			k, err = m.expireOne(b, a, olderThan)
			if err != nil {
				break
			}
			n += k
		}
		if err == nil && n > 0 {
			err = m.st.Commit(ctx, b)
		} else {
			b.Close()
		}
		for _, a := range locked {
			a.delMu.Unlock()
		}
		if err != nil {
			return total, fmt.Errorf("mailbox: expire: %w", err)
		}
		m.metrics.expired.Add(float64(n))
		m.metrics.events.Sub(float64(n))
		total += n
	}
	return total, nil
}

// expireOne writes into b the deletion of a's expired visible events and,
// if there are any, its head. Call with a.delMu held.
func (m *Mailbox) expireOne(b *store.Batch, a *account, olderThan time.Time) (int, error) {
	m.mu.Lock()
	visible, next := a.visible(), a.next
	m.mu.Unlock()
	prefix := accountPrefix(a.id)
	cutoff := olderThan.UnixNano()
	n := 0
	var decodeErr error
	err := m.st.Scan(prefix, nil, 0, func(key, v []byte) bool {
		pos := binary.BigEndian.Uint64(key[len(prefix):])
		if pos > visible {
			return false
		}
		if len(v) < eventHeader {
			decodeErr = fmt.Errorf("%w: event %d", ErrCorrupt, pos)
			return false
		}
		if int64(binary.BigEndian.Uint64(v[34:42])) < cutoff {
			b.Delete(key)
			n++
		}
		return true
	})
	if err == nil {
		err = decodeErr
	}
	if err != nil {
		return 0, err
	}
	if n > 0 {
		b.Set(headKey(a.id), u64(next))
	}
	return n, nil
}

// Run drops expired events every Config.ExpireEvery (and once at the
// start) until ctx ends. The owner calls it in a goroutine and waits for it
// to return.
func (m *Mailbox) Run(ctx context.Context) error {
	t := time.NewTicker(m.cfg.ExpireEvery)
	defer t.Stop()
	for {
		n, err := m.Expire(ctx, m.now().Add(-m.cfg.Retention))
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			m.log.Error("expiring events", "err", err)
		case n > 0:
			m.log.Info("expired unacknowledged events", "events", n, "retention", m.cfg.Retention.String())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
