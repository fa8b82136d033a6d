// Package pairing runs the pairing lottery on one node (DESIGN §3.3, spec
// 07-lottery, spec 09-client-api §4): it takes ticket requests from the
// node's accounts, runs one epoch after the other, creates the rooms of the
// pairs the draw makes and tells both accounts through their mailboxes.
//
// # Tickets
//
// RequestTicket accepts one waiting ticket per account, with fresh keys: a
// signing or X25519 key already used by a ticket of this node is refused.
// Before it answers, it durably writes the ticket-to-account link (the Link
// that reports use to find the account behind a ticket key) and the
// waiting ticket. The ticket joins the next epoch that has not closed.
// Withdraw takes it back.
//
// # Epochs
//
// Time is cut into epochs of Config.EpochLength: epoch n runs from Unix
// time n·EpochLength to (n+1)·EpochLength. Run processes each epoch when it
// ends, with RunEpoch: it stamps the epoch's waiting tickets (one stamp
// signature per wire.MaxStampBatch tickets), commits to a fresh random
// value and reveals it, all through a Network; collects every node's
// tickets, commits and reveals; stores them under epoch/<n>/ for audit;
// draws (lottery.Draw); and settles: for each drawn pair of two of its own
// tickets it writes the room record and a paired event (PairedEvent) into
// both accounts' mailboxes, in one synced batch, and then wakes the
// accounts. A pair with a ticket of another node is confirmed with that
// node first (Network.Confirm). Tickets left unpaired roll over to the
// next epoch with the same keys and a new stamp, until Config.TicketTTL
// epochs after their first, when they expire.
//
// Audit recomputes a stored epoch and checks the pairs this node
// confirmed. Purge drops old epochs and expired links.
//
// # Key layout
//
//	tkt/<ticket signing key 32>  -> Link (records.go), kept wire.MaxDisclosureAge
//	tktdh/<ticket X25519 key 32> -> the ticket signing key (keys are never reused)
//	wait/<AccountID 32>          -> the account's waiting ticket
//	epoch/<n u64>/c/<hash 32>    -> a commit; r/<hash 32> a reveal;
//	             t/<ticket ID 32> a ticket; p/<A 32><B 32> a confirmed pair;
//	             s the epoch's summary (written when it is settled)
//
// tktdh/ and wait/ are proposed additions to node/store/keys.go.
package pairing

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/node/mailbox"
	"github.com/parley-chat/parley/node/rooms"
	"github.com/parley-chat/parley/node/store"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/lottery"
	"github.com/parley-chat/parley/protocol/wire"
)

// Errors returned by this package. Match them with errors.Is.
var (
	// ErrNoAccount: the request names the zero account (a caller's bug:
	// its room could not be recorded, and the epoch's settling with it).
	ErrNoAccount = errors.New("pairing: the zero account cannot ask")
	// ErrAlreadyWaiting: the account already has a ticket waiting.
	ErrAlreadyWaiting = errors.New("pairing: a ticket is already waiting")
	// ErrKeyReused: the request's signing or X25519 key was already used
	// by a ticket of this node.
	ErrKeyReused = errors.New("pairing: ticket key already used")
	// ErrBadTicket: the request has too many interest or avoid tags, a
	// zero key or an X25519 key of small order.
	ErrBadTicket = errors.New("pairing: bad ticket request")
	// ErrFull: the node already has Config.MaxTicketsPerEpoch tickets
	// waiting; the client retries later.
	ErrFull = errors.New("pairing: too many waiting tickets")
	// ErrEpochClosed: RunEpoch was asked for an epoch already processed or
	// older than one that was.
	ErrEpochClosed = errors.New("pairing: epoch already closed")
	// ErrUnknownEpoch: Audit was asked for an epoch with no stored inputs
	// (no ticket took part, it was never processed here, or it was pruned).
	ErrUnknownEpoch = errors.New("pairing: no stored inputs for epoch")
	// ErrUnknownTicket: Link knows no ticket with this signing key.
	ErrUnknownTicket = errors.New("pairing: unknown ticket")
	// ErrCorrupt: a stored record does not decode.
	ErrCorrupt = errors.New("pairing: corrupt record")
	// ErrNoFederation: Local.Confirm was asked about a remote ticket.
	ErrNoFederation = errors.New("pairing: no federation on a node alone")
)

// Config is the lottery part of the node configuration. Zero fields take
// their defaults.
type Config struct {
	// EpochLength is the length of one epoch, a whole number of
	// milliseconds from 10ms to 1h. Default 2s.
	EpochLength time.Duration `toml:"epoch_length" comment:"Length of a lottery epoch, whole milliseconds (default \"2s\")."`
	// TicketTTL is how many epochs an unpaired ticket rolls over before it
	// expires. Default 150 (5 minutes of 2s epochs).
	TicketTTL int `toml:"ticket_ttl" comment:"Epochs an unpaired ticket rolls over before it expires (default 150)."`
	// MaxTicketsPerEpoch is this node's quota: the most tickets it has
	// waiting, and so the most it stamps for one epoch. At most
	// wire.MaxTicketsPerEpoch. Default 10000.
	MaxTicketsPerEpoch int `toml:"max_tickets_per_epoch" comment:"Most tickets waiting on this node, and stamped per epoch (default 10000)."`
	// EpochRetention is how long an epoch's inputs are kept for audit.
	// Default 24h.
	EpochRetention time.Duration `toml:"epoch_retention" comment:"How long each epoch's lottery inputs are kept for audit (default \"24h\")."`
	// PurgeEvery is how often Run drops old epochs and expired
	// ticket-to-account links. Default 1h.
	PurgeEvery time.Duration `toml:"purge_every" comment:"How often old epochs and expired ticket links are dropped (default \"1h\")."`
}

// Validate reports every problem with c at once.
func (c Config) Validate() error {
	var errs []error
	if l := c.EpochLength; l != 0 && (l < 10*time.Millisecond || l > time.Hour || l%time.Millisecond != 0) {
		errs = append(errs, fmt.Errorf("pairing: epoch_length %s is not a whole number of milliseconds from 10ms to 1h", l))
	}
	if c.TicketTTL < 0 {
		errs = append(errs, fmt.Errorf("pairing: ticket_ttl %d is negative", c.TicketTTL))
	}
	if c.MaxTicketsPerEpoch < 0 || c.MaxTicketsPerEpoch > wire.MaxTicketsPerEpoch {
		errs = append(errs, fmt.Errorf("pairing: max_tickets_per_epoch %d is not from 1 to %d", c.MaxTicketsPerEpoch, wire.MaxTicketsPerEpoch))
	}
	if c.EpochRetention < 0 {
		errs = append(errs, fmt.Errorf("pairing: epoch_retention %s is negative", c.EpochRetention))
	}
	if c.PurgeEvery < 0 {
		errs = append(errs, fmt.Errorf("pairing: purge_every %s is negative", c.PurgeEvery))
	}
	return errors.Join(errs...)
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config { return Config{}.withDefaults() }

func (c Config) withDefaults() Config {
	if c.EpochLength == 0 {
		c.EpochLength = 2 * time.Second
	}
	if c.TicketTTL == 0 {
		c.TicketTTL = 150
	}
	if c.MaxTicketsPerEpoch == 0 {
		c.MaxTicketsPerEpoch = 10000
	}
	if c.EpochRetention == 0 {
		c.EpochRetention = 24 * time.Hour
	}
	if c.PurgeEvery == 0 {
		c.PurgeEvery = time.Hour
	}
	return c
}

type options struct {
	now    func() time.Time
	rand   io.Reader
	logger *slog.Logger
	reg    prometheus.Registerer
	net    Network
}

// Option is a test seam or wiring choice for New.
type Option func(*options)

// WithClock replaces time.Now: it places requests and Run in epochs and
// times tickets, rooms and events.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithRand replaces crypto/rand as the source of the epochs' reveals.
func WithRand(r io.Reader) Option { return func(o *options) { o.rand = r } }

// WithLogger sets the logger; the default discards.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithRegisterer registers the lottery's metrics with r.
func WithRegisterer(r prometheus.Registerer) Option { return func(o *options) { o.reg = r } }

// WithNetwork sets the network of other nodes; the default is NewLocal(),
// a node alone.
func WithNetwork(n Network) Option { return func(o *options) { o.net = n } }

// TicketRequest is what an account asks the lottery for (spec 09 §4).
type TicketRequest struct {
	// Keys are the ticket's public keys, fresh for this request.
	Keys keys.TicketPublic
	// Interests are interest tags (lottery.InterestTag), at most
	// wire.MaxInterestTags distinct ones, in any order.
	Interests []lottery.Tag
	// Avoid are avoid tags (lottery.AvoidTag), at most wire.MaxAvoidTags
	// distinct ones, in any order.
	Avoid []lottery.Tag
}

// TicketInfo describes an accepted ticket.
type TicketInfo struct {
	// ID is the lottery ticket ID (lottery.Ticket.ID) in Epoch. A ticket
	// that rolls over gets a new ID in each epoch: the ID covers the epoch.
	ID        [32]byte
	Epoch     uint64    // the epoch the ticket joins
	EpochEnds time.Time // when that epoch ends and is drawn
}

// Lottery is the pairing lottery of one node. Its methods are safe for
// concurrent use.
type Lottery struct {
	cfg    Config
	lenMs  uint64
	st     *store.Store
	rooms  *rooms.Rooms
	mb     *mailbox.Mailbox
	key    keys.NodeKey
	node   keys.NodeID
	net    Network
	now    func() time.Time
	rand   io.Reader
	log    *slog.Logger
	metric *metrics

	// acctMu serialises the requests and withdrawals of one account (its
	// stripe), held across their commits; different accounts proceed in
	// parallel, so their commits share syncs.
	acctMu [64]sync.Mutex
	// runMu serialises the first halves of RunEpoch (close to draw),
	// settleMu the second ones (confirm and settle): epoch k+1 can be
	// drawn while k settles.
	runMu, settleMu sync.Mutex

	// mu guards the fields below. It is held for in-memory bookkeeping.
	// The settling commit of an epoch runs without it (so the next epoch
	// can close meanwhile), but the accounts whose tickets it pairs or
	// expires are marked (settlingAccts): a withdrawal or request of one
	// waits for the commit, so none can slip between the check that a
	// ticket still waits and the commit that pairs it.
	mu            sync.Mutex
	settlingAccts map[keys.AccountID]bool
	settleDone    chan struct{} // closed when the settling commit ends
	// drawEnd is closed (and replaced) whenever an epoch's tickets stop
	// being drawn (settle ends), for Withdraw to wait on.
	drawEnd  chan struct{}
	waiting  map[keys.AccountID]*waiting
	reserved int                        // requests between their checks and their commits
	signUsed map[keys.TicketID]struct{} // keys of those requests
	dhUsed   map[keys.DHPublic]struct{}
	nextOpen uint64 // the lowest epoch not yet closed
	// drawn is the recent epochs' pairs with remote tickets, for
	// ConfirmPair (confirm.go).
	drawn map[uint64]*drawnEpoch
}

// New returns the lottery of the node whose key is nodeKey, keeping its
// state in st and creating rooms and paired events in rms and mb. It loads
// the waiting tickets; they join the next epoch that closes.
func New(cfg Config, st *store.Store, rms *rooms.Rooms, mb *mailbox.Mailbox, nodeKey keys.NodeKey, opts ...Option) (*Lottery, error) {
	err := cfg.Validate()
	if st == nil || rms == nil || mb == nil {
		err = errors.Join(err, errors.New("pairing: store, rooms and mailbox are required"))
	}
	if err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	o := options{now: time.Now, rand: rand.Reader, logger: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(&o)
	}
	if o.net == nil {
		o.net = NewLocal()
	}
	l := &Lottery{
		cfg:      cfg,
		lenMs:    uint64(cfg.EpochLength.Milliseconds()),
		st:       st,
		rooms:    rms,
		mb:       mb,
		key:      nodeKey,
		node:     nodeKey.Public(),
		net:      o.net,
		now:      o.now,
		rand:     o.rand,
		log:      o.logger.With("subsystem", "pairing"),
		metric:   newMetrics(),
		waiting:  make(map[keys.AccountID]*waiting),
		drawEnd:  make(chan struct{}),
		signUsed: make(map[keys.TicketID]struct{}),
		dhUsed:   make(map[keys.DHPublic]struct{}),
		drawn:    make(map[uint64]*drawnEpoch),
	}
	l.nextOpen = l.epochAt(l.now())
	if err := l.load(); err != nil {
		return nil, err
	}
	if o.reg != nil {
		if err := l.metric.register(o.reg); err != nil {
			return nil, fmt.Errorf("pairing: registering metrics: %w", err)
		}
	}
	return l, nil
}

// load reads the waiting tickets into memory.
func (l *Lottery) load() error {
	prefix := []byte(prefixWaiting)
	var decodeErr error
	err := l.st.Scan(prefix, nil, 0, func(key, v []byte) bool {
		var acct keys.AccountID
		if len(key) != len(prefix)+len(acct) {
			decodeErr = fmt.Errorf("%w: waiting ticket key of %d bytes", ErrCorrupt, len(key))
			return false
		}
		copy(acct[:], key[len(prefix):])
		w, err := decodeWaiting(acct, v)
		if err != nil {
			decodeErr = err
			return false
		}
		w.epoch = l.nextOpen
		l.waiting[acct] = w
		return true
	})
	if err == nil {
		err = decodeErr
	}
	if err != nil {
		return fmt.Errorf("pairing: loading waiting tickets: %w", err)
	}
	l.metric.waiting.Set(float64(len(l.waiting)))
	if n := len(l.waiting); n > 0 {
		l.log.Info("waiting tickets loaded", "tickets", n, "epoch", l.nextOpen)
	}
	return nil
}

// epochAt returns the epoch that time t is in.
func (l *Lottery) epochAt(t time.Time) uint64 {
	ms := t.UnixMilli()
	if ms < 0 {
		return 0
	}
	return uint64(ms) / l.lenMs
}

// epochStart returns the time epoch n starts (and n-1 ends).
func (l *Lottery) epochStart(n uint64) time.Time {
	return time.UnixMilli(int64(n * l.lenMs)).UTC()
}

// Epoch returns the epoch a ticket requested now would join.
func (l *Lottery) Epoch() uint64 {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	return max(l.epochAt(now), l.nextOpen)
}

// checkRequest validates req and returns its tags sorted and unique.
func checkRequest(req TicketRequest) (interests, avoid []lottery.Tag, err error) {
	t := lottery.Ticket{Interests: req.Interests, Avoid: req.Avoid}
	t.Normalize()
	var errs []error
	if len(t.Interests) > wire.MaxInterestTags {
		errs = append(errs, fmt.Errorf("%d interest tags, limit %d", len(t.Interests), wire.MaxInterestTags))
	}
	if len(t.Avoid) > wire.MaxAvoidTags {
		errs = append(errs, fmt.Errorf("%d avoid tags, limit %d", len(t.Avoid), wire.MaxAvoidTags))
	}
	if req.Keys.Sign == (keys.TicketID{}) {
		errs = append(errs, errors.New("zero signing key"))
	}
	if smallOrder(req.Keys.DH) {
		errs = append(errs, errors.New("X25519 key of small order"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrBadTicket, err)
	}
	return t.Interests, t.Avoid, nil
}

// RequestTicket accepts a ticket for acct and returns the epoch it joins:
// the next one that has not closed (spec 09 §4). The caller has checked the
// account's standing and rate limits. It fails with ErrAlreadyWaiting if
// acct has a ticket waiting, ErrKeyReused if either key was used by a
// ticket of this node before, ErrBadTicket if the request is malformed and
// ErrFull if the node's quota of waiting tickets is reached. It returns
// only once the ticket and its ticket-to-account link are durably stored.
func (l *Lottery) RequestTicket(ctx context.Context, acct keys.AccountID, req TicketRequest) (TicketInfo, error) {
	info, err := l.requestTicket(ctx, acct, req)
	result := resultAccepted
	if err != nil {
		result = resultRejected
	}
	l.metric.tickets.WithLabelValues(result).Inc()
	return info, err
}

func (l *Lottery) requestTicket(ctx context.Context, acct keys.AccountID, req TicketRequest) (TicketInfo, error) {
	if err := ctx.Err(); err != nil {
		return TicketInfo{}, err
	}
	if acct == (keys.AccountID{}) {
		return TicketInfo{}, ErrNoAccount
	}
	interests, avoid, err := checkRequest(req)
	if err != nil {
		return TicketInfo{}, err
	}
	am := &l.acctMu[int(acct[0])%len(l.acctMu)]
	am.Lock()
	defer am.Unlock()

	now := l.now()
	sign, dh := req.Keys.Sign, req.Keys.DH
	l.mu.Lock()
	err = l.waitSettled(ctx, acct)
	_, signBusy := l.signUsed[sign]
	_, dhBusy := l.dhUsed[dh]
	switch {
	case err != nil:
	case l.waiting[acct] != nil:
		err = ErrAlreadyWaiting
	case signBusy || dhBusy:
		err = ErrKeyReused
	case len(l.waiting)+l.reserved >= l.cfg.MaxTicketsPerEpoch:
		err = ErrFull
	}
	if err != nil {
		l.mu.Unlock()
		return TicketInfo{}, err
	}
	first := max(l.epochAt(now), l.nextOpen)
	l.reserved++
	l.signUsed[sign], l.dhUsed[dh] = struct{}{}, struct{}{}
	l.mu.Unlock()

	w := &waiting{acct: acct, keys: req.Keys, interests: interests, avoid: avoid, first: first, issued: now}
	err = l.storeTicket(ctx, w)

	var epoch uint64
	l.mu.Lock()
	l.reserved--
	delete(l.signUsed, sign)
	delete(l.dhUsed, dh)
	if err == nil {
		// An epoch may have closed during the commit: the ticket joins the
		// next open one (TicketTTL still counts from first).
		epoch = max(first, l.nextOpen)
		w.epoch = epoch
		l.waiting[acct] = w
		l.metric.waiting.Set(float64(len(l.waiting)))
	}
	l.mu.Unlock()
	if err != nil {
		return TicketInfo{}, err
	}
	return TicketInfo{
		ID:        w.ticket(epoch, l.node).ID(),
		Epoch:     epoch,
		EpochEnds: l.epochStart(epoch + 1),
	}, nil
}

// storeTicket checks that w's keys are fresh and durably writes its link,
// its X25519 key's index entry and the waiting ticket.
func (l *Lottery) storeTicket(ctx context.Context, w *waiting) error {
	for _, k := range [][]byte{linkKey(w.keys.Sign), dhKey(w.keys.DH)} {
		used, err := l.st.Has(k)
		if err != nil {
			return fmt.Errorf("pairing: checking ticket keys: %w", err)
		}
		if used {
			return ErrKeyReused
		}
	}
	b := l.st.NewBatch()
	b.Set(linkKey(w.keys.Sign), encodeLink(Link{Ticket: w.keys.Sign, DH: w.keys.DH, Account: w.acct, Epoch: w.first, Issued: w.issued}))
	b.Set(dhKey(w.keys.DH), w.keys.Sign[:])
	b.Set(waitKey(w.acct), encodeWaiting(w))
	if err := l.st.Commit(ctx, b); err != nil {
		return fmt.Errorf("pairing: storing ticket: %w", err)
	}
	return nil
}

// waitSettled returns once acct's ticket is not in a settling commit
// (settle releases l.mu across it), or with ctx's error. l.mu is held, and
// released while it waits.
func (l *Lottery) waitSettled(ctx context.Context, acct keys.AccountID) error {
	for l.settlingAccts[acct] {
		ch := l.settleDone
		l.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			l.mu.Lock()
			return ctx.Err()
		}
		l.mu.Lock()
	}
	return nil
}

// Withdraw takes back acct's waiting ticket, durably; without one it does
// nothing. A ticket being drawn right now is either paired (the account
// gets its paired event) or withdrawn, never both: once it was offered to
// a remote partner's node, Withdraw waits until its epoch settled, and if
// that paired it, withdraws nothing (the account leaves the room as any
// other).
func (l *Lottery) Withdraw(ctx context.Context, acct keys.AccountID) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	am := &l.acctMu[int(acct[0])%len(l.acctMu)]
	am.Lock()
	defer am.Unlock()
	l.mu.Lock()
	if err := l.waitSettled(ctx, acct); err != nil {
		l.mu.Unlock()
		return err
	}
	// A ticket in an epoch being drawn that was offered to a partner's
	// node (asked about, or confirmed to it, spec 07 §13.4) may be paired
	// there: withdrawing it now could leave the partner in a room alone.
	// Its epoch settles first; if it was paired, there is nothing left to
	// withdraw. Before the offer, the withdrawal wins over the draw.
	for w := l.waiting[acct]; w != nil && w.drawing && w.offered; w = l.waiting[acct] {
		ch := l.drawEnd
		l.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		l.mu.Lock()
		if err := l.waitSettled(ctx, acct); err != nil {
			l.mu.Unlock()
			return err
		}
	}
	w := l.waiting[acct]
	delete(l.waiting, acct)
	l.metric.waiting.Set(float64(len(l.waiting)))
	l.mu.Unlock()
	if w == nil {
		return nil
	}
	b := l.st.NewBatch()
	b.Delete(waitKey(acct))
	if err := l.st.Commit(ctx, b); err != nil {
		// Still stored, so still waiting.
		l.mu.Lock()
		if l.waiting[acct] == nil {
			l.waiting[acct] = w
			l.metric.waiting.Set(float64(len(l.waiting)))
		}
		l.mu.Unlock()
		return fmt.Errorf("pairing: withdrawing: %w", err)
	}
	l.metric.withdrawn.Inc()
	return nil
}

// Link returns the ticket-to-account link of the ticket whose signing key
// is t, or ErrUnknownTicket if this node issued no such ticket (or purged
// its link).
func (l *Lottery) Link(ctx context.Context, t keys.TicketID) (Link, error) {
	if err := ctx.Err(); err != nil {
		return Link{}, err
	}
	v, err := l.st.Get(linkKey(t))
	if errors.Is(err, store.ErrNotFound) {
		return Link{}, ErrUnknownTicket
	}
	if err != nil {
		return Link{}, fmt.Errorf("pairing: reading link: %w", err)
	}
	return decodeLink(t, v)
}
