// Package relay is the send path of a node (DESIGN §3.2, §3.4; spec
// 03-envelope §8, spec 09-client-api §5): it checks what an account sends,
// stamps it, and writes it durably to the recipient's mailbox (or, for a
// recipient on another node, to the outbox through a Forwarder) before it
// answers.
//
// Send checks a request in the caller's goroutine and queues it; the
// pipeline (Run) takes whatever is queued, up to MaxBatch, stamps the whole
// batch with one signature (envelope.StampBatch), writes every envelope,
// its de-duplication record and its send result into one store batch,
// commits it with one synced write, and only then wakes the recipients'
// syncs and answers every sender. Up to four batches commit at once, so
// one is stamped while another syncs; when all four are busy the queue
// fills, so the batch size follows the load (group commit) and durability
// costs one fsync per batch, not per message. Positions are given out in
// queue order, and the mailbox shows them in order whichever batch
// finishes first, so each sender's messages stay in order.
//
// # Idempotency
//
// A send carries a client-chosen transaction ID. Its result is stored under
// tx/<account><txid>; a retry with the same ID gets that result back with
// Duplicate set and changes nothing, and so does a second send of the same
// envelope (same envelope ID) to a local recipient, found through
// seen/<recipient><envelope ID>. Sends of one transaction ID or one
// envelope that are in flight at the same time are joined: one leads and
// is stored, the others get its result (or its error).
//
// # Key layout and encoding
//
// Under the prefixes node/store assigns (PrefixSendTx, PrefixEnvelopeSeen);
// integers big-endian, times Unix nanoseconds:
//
//	tx/<AccountID 32><txid>              -> u8 1, i64 time, [32] envelope ID, u64 position, stamp (spec 04 §3)
//	seen/<AccountID 32><envelope ID 32>  -> u8 1, i64 time, u64 position, u8 len, txid
//
// Both are kept for Config.TxRetention (Run deletes older ones hourly), far
// longer than the MaxClockSkew window in which an envelope's header time
// lets it be sent at all. An envelope delivered by another node (Accept)
// gets a seen/ record with an empty txid.
//
// # Remote recipients and the receiving side
//
// A send to a recipient homed at another node goes, stamped, into the
// outbox through the Forwarder, in the same store batch; if the Forwarder
// is a CommitNotifier it learns when that batch is durable. Accept is the
// other end (spec 12-delivery §4): envelopes another node stamped for this
// node's accounts, checked, de-duplicated and committed with one synced
// write before the delivery protocol acknowledges them.
package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/node/mailbox"
	"github.com/parley-chat/parley/node/rooms"
	"github.com/parley-chat/parley/node/store"
	"github.com/parley-chat/parley/protocol/envelope"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/stamp"
	"github.com/parley-chat/parley/protocol/wire"
)

// MaxTxID is the longest client transaction ID, in bytes.
const MaxTxID = 64

// maxBatchBytes stops a batch from growing further once its envelopes
// reach this size, so a batch of large envelopes stays a few MiB.
const maxBatchBytes = 8 << 20

// maxCommits is how many batches may be committing at once.
const maxCommits = 4

// sweepEvery is how often Run deletes expired tx/ and seen/ records.
const sweepEvery = time.Hour

// Errors returned by Send and Leave. Match them with errors.Is. The API maps
// each to a stable error code.
var (
	// ErrBadTxID: the transaction ID is empty or longer than MaxTxID.
	ErrBadTxID = errors.New("relay: bad transaction ID")
	// ErrNoRoom: the room does not exist, or the account is not a member of
	// it. The two are one error so that nobody learns of others' rooms.
	ErrNoRoom = errors.New("relay: no such room")
	// ErrRoomClosed: the room was closed.
	ErrRoomClosed = errors.New("relay: room closed")
	// ErrBadHeader: the header does not name the sender's ticket and the
	// partner's ticket in the room, or fails envelope.CheckHeader (then it
	// also matches envelope.ErrBadTime, ErrBadContentType or
	// ErrSelfAddressed), or the ciphertext has an impossible size.
	ErrBadHeader = errors.New("relay: bad envelope header")
	// ErrStamped: the envelope arrived stamped; a client cannot bring its
	// own stamp.
	ErrStamped = errors.New("relay: envelope already stamped")
	// ErrDuplicateEnvelope: the envelope was already delivered under
	// another transaction ID whose record has expired.
	ErrDuplicateEnvelope = errors.New("relay: envelope already sent")
	// ErrRemoteUnsupported: the recipient is on another node and this node
	// has no Forwarder.
	ErrRemoteUnsupported = errors.New("relay: recipient on another node; federation is not configured")
	// ErrBusy: the send queue is full. Retry later (HTTP 503).
	ErrBusy = errors.New("relay: send queue full")
	// ErrClosed: the relay stopped (Run returned).
	ErrClosed = errors.New("relay: closed")
	// ErrRunning: Run was called while it is already running.
	ErrRunning = errors.New("relay: already running")
)

// Forwarder writes an envelope for a recipient on another node into the
// outbox, in the same batch as the rest of the send, so that the send is
// acknowledged only once the outbox holds it. Forward must not write to b
// if it returns an error. The federation subsystem implements it (and
// CommitNotifier, which a Forwarder may implement to learn when what it
// wrote is durable).
type Forwarder interface {
	Forward(b *store.Batch, home keys.NodeID, env *envelope.Envelope) error
}

// Config is the relay's part of the node configuration.
type Config struct {
	// MaxBatch is the most envelopes stamped with one signature and
	// committed with one write. Default 256; at most wire.MaxStampBatch.
	MaxBatch int `toml:"max_batch" comment:"Most envelopes per stamp and per synced write (default 256, max 4096)."`
	// MaxBatchDelay is how long the pipeline waits to fill a batch. Default
	// 0: it takes whatever queued while earlier batches committed (natural
	// group commit), which is the lowest latency.
	MaxBatchDelay time.Duration `toml:"max_batch_delay" comment:"How long to wait to fill a batch (default \"0s\": take what queued during earlier commits)."`
	// QueueSize is the most sends waiting for the pipeline; beyond it Send
	// fails with ErrBusy. Default 4096.
	QueueSize int `toml:"queue_size" comment:"Most sends waiting to be stamped; more are refused as busy (default 4096)."`
	// TxRetention is how long send results and delivered-envelope records
	// are kept, the window in which a client's retry is recognised.
	// Default 24h; at least 2 × wire.MaxClockSkew.
	TxRetention time.Duration `toml:"tx_retention" comment:"How long a send's result is kept for retries with the same transaction ID (default \"24h\")."`
}

// Validate reports every problem with c at once. Zero fields take their
// defaults.
func (c Config) Validate() error {
	var errs []error
	if c.MaxBatch < 0 || c.MaxBatch > wire.MaxStampBatch {
		errs = append(errs, fmt.Errorf("relay: max_batch %d is not 1 to %d", c.MaxBatch, wire.MaxStampBatch))
	}
	if c.MaxBatchDelay < 0 || c.MaxBatchDelay > time.Second {
		errs = append(errs, fmt.Errorf("relay: max_batch_delay %s is not 0 to 1s", c.MaxBatchDelay))
	}
	if c.QueueSize < 0 {
		errs = append(errs, fmt.Errorf("relay: queue_size %d is negative", c.QueueSize))
	}
	if c.TxRetention < 0 || (c.TxRetention != 0 && c.TxRetention < 2*wire.MaxClockSkew) {
		errs = append(errs, fmt.Errorf("relay: tx_retention %s is below %s", c.TxRetention, 2*wire.MaxClockSkew))
	}
	return errors.Join(errs...)
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config { return Config{}.withDefaults() }

func (c Config) withDefaults() Config {
	if c.MaxBatch == 0 {
		c.MaxBatch = 256
	}
	if c.QueueSize == 0 {
		c.QueueSize = 4096
	}
	if c.TxRetention == 0 {
		c.TxRetention = 24 * time.Hour
	}
	return c
}

type options struct {
	now    func() time.Time
	logger *slog.Logger
	reg    prometheus.Registerer
	fwd    Forwarder
}

// Option is a test seam or wiring choice for New.
type Option func(*options)

// WithClock replaces time.Now: the time headers are checked against and
// stamps carry.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithLogger sets the logger; the default discards.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithRegisterer registers the relay's metrics with r.
func WithRegisterer(r prometheus.Registerer) Option { return func(o *options) { o.reg = r } }

// WithForwarder sends envelopes for remote recipients through f. Without
// one, sends to remote recipients fail with ErrRemoteUnsupported.
func WithForwarder(f Forwarder) Option { return func(o *options) { o.fwd = f } }

// Result is the outcome of a send.
type Result struct {
	ID        [32]byte    // the envelope ID (spec 03-envelope §8.1)
	Pos       uint64      // the position in the recipient's mailbox; 0 for a remote recipient
	Stamp     stamp.Stamp // this node's stamp of the header
	Duplicate bool        // the result of an earlier send with the same txid or envelope
}

// Relay stamps and stores what the node's accounts send.
type Relay struct {
	cfg     Config
	st      *store.Store
	rooms   *rooms.Rooms
	mb      *mailbox.Mailbox
	key     keys.NodeKey
	fwd     Forwarder
	now     func() time.Time
	log     *slog.Logger
	metrics *metrics

	queue   chan *call
	running atomic.Bool
	// closeMu orders enqueueing against shutdown: Send enqueues holding it
	// for reading, Run sets closed holding it for writing and then drains.
	closeMu sync.RWMutex
	closed  bool

	// flightMu guards inflight: the calls between their last store check
	// and their commit, by tx key and by seen key.
	flightMu sync.Mutex
	inflight map[string]*call

	// leaveMu serialises Leave, so each close is announced once.
	leaveMu sync.Mutex
}

// call is one queued send.
type call struct {
	from      keys.AccountID
	txid      string
	env       *envelope.Envelope
	id        [32]byte
	room      keys.RoomID
	local     bool
	recipient keys.AccountID // if local
	home      keys.NodeID    // if remote
	txKey     string
	seenKey   string // "" for a remote recipient
	queued    time.Time

	done chan struct{}
	res  Result
	err  error
}

// New returns a relay that stamps with nodeKey and writes to st, checking
// rooms and appending to mb. Run must be running for sends to complete.
func New(cfg Config, st *store.Store, rms *rooms.Rooms, mb *mailbox.Mailbox, nodeKey keys.NodeKey, opts ...Option) (*Relay, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	o := options{now: time.Now, logger: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(&o)
	}
	r := &Relay{
		cfg:      cfg,
		st:       st,
		rooms:    rms,
		mb:       mb,
		key:      nodeKey,
		fwd:      o.fwd,
		now:      o.now,
		log:      o.logger.With("subsystem", "relay"),
		queue:    make(chan *call, cfg.QueueSize),
		inflight: make(map[string]*call),
	}
	r.metrics = newMetrics(func() float64 { return float64(len(r.queue)) })
	if o.reg != nil {
		if err := r.metrics.register(o.reg); err != nil {
			return nil, fmt.Errorf("relay: registering metrics: %w", err)
		}
	}
	return r, nil
}

// Send checks env, which from sends with transaction ID txid, stamps (a copy
// of) it and stores it durably for its recipient, and returns only then. The room is
// the one the header names. If ctx ends before the send is durable, Send
// returns ctx's error and the send may still complete: the client retries
// with the same txid to learn the outcome. A send checked just before a
// concurrent Leave commits is still delivered, after the close.
func (r *Relay) Send(ctx context.Context, from keys.AccountID, txid string, env *envelope.Envelope) (Result, error) {
	res, err := r.send(ctx, from, txid, env)
	switch {
	case err == nil && res.Duplicate:
		r.metrics.sends.WithLabelValues("duplicate").Inc()
	case err == nil:
		// counted by the pipeline
	case isRejection(err):
		r.metrics.sends.WithLabelValues("rejected").Inc()
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		// the caller left; a queued send is still counted by the pipeline
	case errors.As(err, new(countedError)):
		// the pipeline failed it and counted it
	default:
		r.metrics.sends.WithLabelValues("error").Inc()
	}
	return res, err
}

func isRejection(err error) bool {
	for _, target := range []error{ErrBadTxID, ErrNoRoom, ErrRoomClosed, ErrBadHeader, ErrStamped, ErrDuplicateEnvelope, ErrRemoteUnsupported} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

func (r *Relay) send(ctx context.Context, from keys.AccountID, txid string, env *envelope.Envelope) (Result, error) {
	if len(txid) == 0 || len(txid) > MaxTxID {
		return Result{}, fmt.Errorf("%w: %d bytes (want 1 to %d)", ErrBadTxID, len(txid), MaxTxID)
	}
	if env == nil {
		return Result{}, fmt.Errorf("%w: no envelope", ErrBadHeader)
	}
	c := &call{from: from, txid: txid, txKey: string(txKey(from, txid)), done: make(chan struct{})}
	// Join a send of this txid that is in flight, or become the one others
	// join. From here on c must be finished, whatever happens.
	if leader := r.lead(c, c.txKey); leader != nil {
		return follow(ctx, leader)
	}
	// A retry of a finished send gets its result, whatever changed since
	// (the room may have closed). Registered first, we cannot miss a send
	// that finishes meanwhile: it is in the store by the time it leaves
	// the in-flight set.
	res, ok, err := r.loadTx([]byte(c.txKey))
	if err != nil || ok {
		r.finish(c, res, err)
		return res, err
	}
	if err := r.check(ctx, c, env); err != nil {
		r.finish(c, Result{}, err)
		return Result{}, err
	}
	if c.local {
		// The same for the envelope, under another txid.
		if leader := r.lead(c, c.seenKey); leader != nil {
			res, err := follow(ctx, leader)
			if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
				// Those who joined c should retry; our caller's context
				// is not theirs.
				r.finish(c, Result{}, ErrBusy)
			} else {
				r.finish(c, res, err)
			}
			return res, err
		}
		res, ok, err := r.loadSeen(c)
		if err != nil || ok {
			r.finish(c, res, err)
			return res, err
		}
	}

	r.closeMu.RLock()
	switch {
	case r.closed:
		err = ErrClosed
	default:
		c.queued = r.now()
		select {
		case r.queue <- c:
		default:
			err = ErrBusy
		}
	}
	r.closeMu.RUnlock()
	if err != nil {
		r.finish(c, Result{}, err)
		return Result{}, err
	}
	select {
	case <-c.done:
		return c.res, c.err
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
}

// lead registers c as the in-flight send under key, unless another one is
// registered: then it returns that one.
func (r *Relay) lead(c *call, key string) (leader *call) {
	r.flightMu.Lock()
	defer r.flightMu.Unlock()
	if l := r.inflight[key]; l != nil {
		return l
	}
	r.inflight[key] = c
	return nil
}

// follow waits for leader and returns its outcome as a duplicate.
func follow(ctx context.Context, leader *call) (Result, error) {
	select {
	case <-leader.done:
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
	if ce := (countedError{}); errors.As(leader.err, &ce) {
		// The leader's failure was counted as the leader's; this send is
		// another, counted by its own Send.
		return Result{}, ce.error
	}
	if leader.err != nil {
		return Result{}, leader.err
	}
	res := leader.res
	res.Duplicate = true
	return res, nil
}

// check makes the checks that do not depend on other sends, and fills in
// c: the room and membership, the header against the room, the header's
// own checks, and that the recipient can be reached.
func (r *Relay) check(ctx context.Context, c *call, env *envelope.Envelope) error {
	if env.Stamp != nil {
		return ErrStamped
	}
	if n := len(env.Ciphertext); n < envelope.TagSize || n > wire.MaxEnvelopeCiphertext {
		return fmt.Errorf("%w: ciphertext of %d bytes", ErrBadHeader, n)
	}
	if env.IsCloseNotice() {
		// Only a node makes close notices, when its user leaves (Leave).
		return fmt.Errorf("%w: a close notice's sequence number", ErrBadHeader)
	}
	h := &env.Header
	rec, err := r.rooms.Get(ctx, h.Room)
	if errors.Is(err, rooms.ErrNotFound) {
		return ErrNoRoom
	}
	if err != nil {
		return err
	}
	me, partner, ok := rec.SideOf(c.from)
	if !ok {
		return ErrNoRoom
	}
	if rec.IsClosed() {
		return ErrRoomClosed
	}
	if h.Sender != me.Ticket.Sign {
		return fmt.Errorf("%w: sender is not the account's ticket in the room", ErrBadHeader)
	}
	if h.Recipient != partner.Ticket.Sign {
		return fmt.Errorf("%w: recipient is not the partner's ticket", ErrBadHeader)
	}
	if err := envelope.CheckHeader(h, r.now()); err != nil {
		return fmt.Errorf("%w: %w", ErrBadHeader, err)
	}
	if !partner.Local && r.fwd == nil {
		return ErrRemoteUnsupported
	}
	// The pipeline stamps a copy: the caller's envelope is left as it was.
	c.env = &envelope.Envelope{Header: env.Header, Ciphertext: env.Ciphertext}
	c.id, c.room, c.local = c.env.ID(), h.Room, partner.Local
	if c.local {
		c.recipient = partner.Account
		c.seenKey = string(seenKey(partner.Account, c.id))
	} else {
		c.home = partner.Home
	}
	return nil
}

// loadTx returns the stored result of the send under key, if any.
func (r *Relay) loadTx(key []byte) (Result, bool, error) {
	v, err := r.st.Get(key)
	if errors.Is(err, store.ErrNotFound) {
		return Result{}, false, nil
	}
	if err != nil {
		return Result{}, false, fmt.Errorf("relay: reading send record: %w", err)
	}
	res, _, err := decodeResult(v)
	if err != nil {
		return Result{}, false, err
	}
	res.Duplicate = true
	return res, true, nil
}

// loadSeen returns the result of the earlier send of c's envelope to c's
// local recipient, if there was one.
func (r *Relay) loadSeen(c *call) (Result, bool, error) {
	v, err := r.st.Get([]byte(c.seenKey))
	if errors.Is(err, store.ErrNotFound) {
		return Result{}, false, nil
	}
	if err != nil {
		return Result{}, false, fmt.Errorf("relay: reading seen record: %w", err)
	}
	s, err := decodeSeen(v)
	if err != nil {
		return Result{}, false, err
	}
	res, ok, err := r.loadTx(txKey(c.from, s.txid))
	if err == nil && !ok {
		err = ErrDuplicateEnvelope
	}
	return res, ok, err
}

// finish completes c and lets later sends of its txid or envelope through.
func (r *Relay) finish(c *call, res Result, err error) {
	r.flightMu.Lock()
	if r.inflight[c.txKey] == c {
		delete(r.inflight, c.txKey)
	}
	if c.seenKey != "" && r.inflight[c.seenKey] == c {
		delete(r.inflight, c.seenKey)
	}
	r.flightMu.Unlock()
	c.res, c.err = res, err
	close(c.done)
}

// Run runs the send pipeline, and hourly deletes expired send records,
// until ctx ends. Then it refuses new sends (ErrClosed), completes every
// queued one, and returns nil. The owner calls it in a goroutine and waits
// for it; it runs at most once at a time.
func (r *Relay) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer r.running.Store(false)
	r.closeMu.RLock()
	closed := r.closed
	r.closeMu.RUnlock()
	if closed {
		return ErrClosed
	}

	var wg sync.WaitGroup
	wg.Go(func() { r.sweep(ctx) })
	defer wg.Wait()

	// Up to maxCommits batches commit at once: while one syncs, the next is
	// stamped and written, and the store syncs it right after (group
	// commit). A free slot is taken before the queue is read, so when all
	// are busy the queue fills and the next batch is bigger.
	slots := make(chan struct{}, maxCommits)
	var commits sync.WaitGroup
	defer commits.Wait()
	dispatch := func(batch []*call) {
		b, ok := r.build(batch)
		if b == nil {
			<-slots
			return
		}
		commits.Go(func() {
			defer func() { <-slots }()
			r.commit(ctx, b, ok)
		})
	}
	for ctx.Err() == nil {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			continue
		}
		select {
		case c := <-r.queue:
			dispatch(r.fill(ctx, append(make([]*call, 0, 64), c)))
		case <-ctx.Done():
			<-slots
		}
	}

	// Stopping: refuse new sends, complete the queued ones.
	r.closeMu.Lock()
	r.closed = true
	r.closeMu.Unlock()
	for {
		slots <- struct{}{}
		batch := r.fill(ctx, nil)
		if len(batch) == 0 {
			<-slots
			return nil
		}
		dispatch(batch)
	}
}

// fill adds queued sends to batch up to MaxBatch (and maxBatchBytes),
// waiting up to MaxBatchDelay for more unless ctx has ended.
func (r *Relay) fill(ctx context.Context, batch []*call) []*call {
	size := 0
	for _, c := range batch {
		size += len(c.env.Ciphertext)
	}
	var timer <-chan time.Time
	for len(batch) < r.cfg.MaxBatch && size < maxBatchBytes {
		select {
		case c := <-r.queue:
			batch = append(batch, c)
			size += len(c.env.Ciphertext)
			continue
		default:
		}
		if r.cfg.MaxBatchDelay == 0 || ctx.Err() != nil || len(batch) == 0 {
			break
		}
		if timer == nil {
			t := time.NewTimer(r.cfg.MaxBatchDelay)
			defer t.Stop()
			timer = t.C
		}
		select {
		case c := <-r.queue:
			batch = append(batch, c)
			size += len(c.env.Ciphertext)
			continue
		case <-timer:
		case <-ctx.Done():
		}
		break
	}
	return batch
}

// build stamps batch with one signature and writes it into a store batch.
// It returns the store batch and the calls in it, or nil if none is left
// (the others were answered with their error).
func (r *Relay) build(batch []*call) (*store.Batch, []*call) {
	now := r.now()
	r.metrics.batchSize.Observe(float64(len(batch)))
	envs := make([]*envelope.Envelope, len(batch))
	for i, c := range batch {
		envs[i] = c.env
	}
	if err := envelope.StampBatch(r.key, now, envs); err != nil {
		r.log.Error("stamping a batch", "err", err, "size", len(batch))
		r.fail(batch, fmt.Errorf("relay: stamping: %w", err))
		return nil, nil
	}

	b := r.st.NewBatch()
	ok := batch[:0]
	for _, c := range batch {
		res := Result{ID: c.id, Stamp: *c.env.Stamp}
		if c.local {
			body, err := c.env.MarshalBinary()
			if err == nil {
				res.Pos, err = r.mb.Append(b, c.recipient, mailbox.Event{Kind: mailbox.KindMessage, Room: c.room, Time: now, Body: body})
			}
			if err != nil {
				r.log.Error("appending to a mailbox", "err", err)
				r.fail([]*call{c}, fmt.Errorf("relay: writing to the mailbox: %w", err))
				continue
			}
			b.Set([]byte(c.seenKey), encodeSeen(now, res.Pos, c.txid))
		} else if err := r.fwd.Forward(b, c.home, c.env); err != nil {
			r.log.Error("forwarding", "err", err)
			r.fail([]*call{c}, fmt.Errorf("relay: writing to the outbox: %w", err))
			continue
		}
		b.Set([]byte(c.txKey), encodeResult(now, res))
		c.res = res
		ok = append(ok, c)
	}
	if len(ok) == 0 {
		r.mb.Discard(b)
		return nil, nil
	}
	return b, ok
}

// notify tells a CommitNotifier forwarder how the commit of b, which holds
// calls, ended, if any of them went to the outbox.
func (r *Relay) notify(b *store.Batch, calls []*call, err error) {
	n, ok := r.fwd.(CommitNotifier)
	if !ok {
		return
	}
	for _, c := range calls {
		if !c.local {
			n.Committed(b, err)
			return
		}
	}
}

// commit commits b, which holds calls, with one synced write, and then
// answers them: persist, then acknowledge.
func (r *Relay) commit(ctx context.Context, b *store.Batch, calls []*call) {
	// Once queued, a send completes even when the pipeline is stopping.
	err := r.mb.Commit(context.WithoutCancel(ctx), b)
	r.notify(b, calls, err)
	if err != nil {
		r.log.Error("committing a batch", "err", err, "size", len(calls))
		r.fail(calls, err)
		return
	}
	// Counted before answering, so a sender that reads the metrics once
	// its send returned sees it.
	end := r.now()
	for _, c := range calls {
		r.metrics.sends.WithLabelValues("ok").Inc()
		r.metrics.duration.Observe(end.Sub(c.queued).Seconds())
		r.finish(c, c.res, nil)
	}
}

// fail answers calls with err, and counts each as an error.
func (r *Relay) fail(calls []*call, err error) {
	for _, c := range calls {
		r.metrics.sends.WithLabelValues("error").Inc()
		r.finish(c, Result{}, countedError{err})
	}
}

// countedError is an error the pipeline answered a call with, and counted
// already; Send does not count it again. It matches what it wraps.
type countedError struct{ error }

func (e countedError) Unwrap() error { return e.error }

// sweep deletes expired send records every sweepEvery until ctx ends.
func (r *Relay) sweep(ctx context.Context) {
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := r.ExpireRecords(ctx, r.now().Add(-r.cfg.TxRetention))
		if err != nil && ctx.Err() == nil {
			r.log.Error("expiring send records", "err", err)
		} else if n > 0 {
			r.log.Debug("expired send records", "records", n)
		}
	}
}

// ExpireRecords deletes the send results (tx/) and delivered-envelope
// records (seen/) written before olderThan, and returns how many.
func (r *Relay) ExpireRecords(ctx context.Context, olderThan time.Time) (int, error) {
	const chunk = 4096
	cutoff := olderThan.UnixNano()
	total := 0
	for _, prefix := range []string{store.PrefixSendTx, store.PrefixEnvelopeSeen} {
		var after []byte
		for {
			if err := ctx.Err(); err != nil {
				return total, err
			}
			b := r.st.NewBatch()
			n, scanned := 0, 0
			err := r.st.Scan([]byte(prefix), after, chunk, func(key, v []byte) bool {
				scanned++
				after = append(after[:0], key...)
				if t, ok := recordTime(v); !ok || t < cutoff {
					b.Delete(key)
					n++
				}
				return true
			})
			if err == nil && n > 0 {
				err = r.st.Commit(ctx, b)
			} else {
				b.Close()
			}
			if err != nil {
				return total, fmt.Errorf("relay: expiring records: %w", err)
			}
			total += n
			r.metrics.recordsExpired.Add(float64(n))
			if scanned < chunk {
				break
			}
		}
	}
	return total, nil
}

// RoomClosed is the body of a mailbox.KindRoomClosed event that Leave
// writes: {"by":"me"} for the account that left, {"by":"partner"} for the
// other side.
type RoomClosed struct {
	By string `json:"by"`
}

// Values of RoomClosed.By.
const (
	ClosedByMe      = "me"
	ClosedByPartner = "partner"
)

// Leave closes room for both sides on behalf of acct, a member, and puts a
// KindRoomClosed event in the mailbox of each local side, durably, before
// it returns. Leaving a closed room does nothing and succeeds. A room acct
// is not a member of is ErrNoRoom. (A remote partner's node is not told
// yet: the federation issue adds that notice.)
func (r *Relay) Leave(ctx context.Context, acct keys.AccountID, room keys.RoomID) error {
	r.leaveMu.Lock()
	defer r.leaveMu.Unlock()
	rec, err := r.rooms.Get(ctx, room)
	if errors.Is(err, rooms.ErrNotFound) {
		return ErrNoRoom
	}
	if err != nil {
		return err
	}
	me, partner, ok := rec.SideOf(acct)
	if !ok {
		return ErrNoRoom
	}
	if rec.IsClosed() {
		return nil
	}
	now := r.now()
	b := r.st.NewBatch()
	if _, err := r.rooms.Close(b, rec, me.Ticket.Sign, now); err != nil {
		b.Close()
		return err
	}
	// A partner on another node learns it from a close notice, sent through
	// the outbox like a message (spec 03-envelope §8.1, spec 12).
	remote := false
	// (Without a forwarder, as in tests of the relay alone, it closes here
	// only.)
	if !partner.Local && r.fwd != nil {
		notice := envelope.CloseNotice(room, me.Ticket.Sign, partner.Ticket.Sign, now)
		if err := envelope.StampBatch(r.key, now, []*envelope.Envelope{notice}); err != nil {
			b.Close()
			return fmt.Errorf("relay: stamping a close notice: %w", err)
		}
		if err := r.fwd.Forward(b, partner.Home, notice); err != nil {
			b.Close()
			return fmt.Errorf("relay: queueing a close notice: %w", err)
		}
		remote = true
	}
	for _, s := range rec.Sides {
		if !s.Local {
			continue
		}
		body := RoomClosed{By: ClosedByPartner}
		if s.Account == acct {
			body.By = ClosedByMe
		}
		j, err := json.Marshal(body)
		if err == nil {
			_, err = r.mb.Append(b, s.Account, mailbox.Event{Kind: mailbox.KindRoomClosed, Room: room, Time: now, Body: j})
		}
		if err != nil {
			r.mb.Discard(b)
			return fmt.Errorf("relay: leaving: %w", err)
		}
	}
	err = r.mb.Commit(ctx, b)
	if n, ok := r.fwd.(CommitNotifier); ok && remote {
		n.Committed(b, err)
	}
	if err != nil {
		return fmt.Errorf("relay: leaving: %w", err)
	}
	return nil
}
