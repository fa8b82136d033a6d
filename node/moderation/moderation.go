// Package moderation is a node's policy on its own accounts (spec
// 13-moderation, DESIGN §3.7): what verified reports and content-free spam
// signals do to an account, and the record of every action taken.
//
// A verified report about a local account is recorded once per distinct
// reporter (a replayed or repeated report counts once). When the number of
// distinct reporters within Config.Window reaches Config.ThrottleReporters
// the account is throttled (its messages and tickets pass through the
// tighter buckets of Config.Messages and Config.Tickets); at
// Config.SuspendReporters it is suspended (node/accounts) and its sessions
// end. The spam signals (Signals) are computed from the account's rooms:
// pairing churn, conversation length, quick exits by the partner, and
// reports; their score can throttle (Config.ScoreThrottle) or suspend.
//
// Every action, automatic or by an operator, is stored with who took it,
// why, and its evidence (report IDs). Automatic actions are reversible:
// Unthrottle and Unsuspend record who reversed them, and reports received
// before a reversal no longer count towards the thresholds.
//
// # Key layout
//
// Under Prefix (spec 13 §5), values in protocol/wire's encoding, times in
// Unix milliseconds:
//
//	mod/rep/<AccountID 32><reporter 32>  u8 1 | i64 last report | fixed[32] last report ID
//	mod/act/<AccountID 32><seq u64>      action (u8 1 | u8 kind | i64 time | u8 automatic |
//	                                     string16 by | string16 reason | u16 n | n × fixed[32] report ID)
//	mod/actn/<AccountID 32>              u64 next action seq
//	mod/thr/<AccountID 32>               u8 1 | i64 since | i64 until
//	mod/reset/<AccountID 32>             i64 time of the last reversal by an operator
//
// Nothing under it holds plaintext.
package moderation

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/node/accounts"
	"github.com/parley-chat/parley/node/ratelimit"
	"github.com/parley-chat/parley/node/rooms"
	"github.com/parley-chat/parley/node/store"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/wire"
)

// Prefix is the store prefix this package owns (to be listed in
// node/store/keys.go as PrefixModeration).
const Prefix = store.PrefixModeration

const (
	prefixReporter = Prefix + "rep/"
	prefixAction   = Prefix + "act/"
	prefixActionN  = Prefix + "actn/"
	prefixThrottle = Prefix + "thr/"
	prefixReset    = Prefix + "reset/"
)

// Bounds.
const (
	// MaxBy bounds who took an action (an operator's name), in bytes.
	MaxBy = 64
	// MaxReason bounds an action's reason, in bytes (as accounts.MaxReason).
	MaxReason = 1024
	// MaxEvidence is the most report IDs one action records.
	MaxEvidence = 64
	// MaxActions is the most actions Actions returns for one account.
	MaxActions = 1000
)

// Errors. Match them with errors.Is.
var (
	// ErrBadInput: a name or reason is too long or not UTF-8.
	ErrBadInput = errors.New("moderation: bad input")
	// ErrNotThrottled: Unthrottle of an account that is not throttled.
	ErrNotThrottled = errors.New("moderation: account is not throttled")
	// ErrCorrupt: a stored record does not decode.
	ErrCorrupt = errors.New("moderation: corrupt record")
)

// Accounts is what moderation needs of node/accounts (*accounts.Service).
type Accounts interface {
	Get(ctx context.Context, id keys.AccountID) (accounts.Account, error)
	Suspend(ctx context.Context, id keys.AccountID, reason string) error
	Unsuspend(ctx context.Context, id keys.AccountID) error
	RevokeAll(ctx context.Context, id keys.AccountID) (int, error)
}

// Rooms is what moderation needs of node/rooms (*rooms.Rooms).
type Rooms interface {
	ForAccount(ctx context.Context, acct keys.AccountID) ([]rooms.Record, error)
}

var (
	_ Accounts = (*accounts.Service)(nil)
	_ Rooms    = (*rooms.Rooms)(nil)
)

// Kind is an action's kind.
type Kind uint8

// Action kinds.
const (
	KindThrottle   Kind = 1
	KindSuspend    Kind = 2
	KindUnthrottle Kind = 3
	KindUnsuspend  Kind = 4
)

// String returns the kind's name (a metric label value).
func (k Kind) String() string {
	switch k {
	case KindThrottle:
		return "throttle"
	case KindSuspend:
		return "suspend"
	case KindUnthrottle:
		return "unthrottle"
	case KindUnsuspend:
		return "unsuspend"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// PolicyBy is the By of every automatic action.
const PolicyBy = "policy"

// Action is one recorded action on an account.
type Action struct {
	Seq       uint64
	Kind      Kind
	Time      time.Time
	Automatic bool       // taken by the policy, not an operator
	By        string     // PolicyBy, or the operator's name
	Reason    string     // why, in words
	Evidence  [][32]byte // the report IDs the action rests on (automatic actions)
}

// Evidence is one verified report about a local account, for Reported.
type Evidence struct {
	// Report is the report ID (spec 05 §5: H("parley/v1/disclosure", encoding)).
	Report [32]byte
	// Accused is the local account the report is about.
	Accused keys.AccountID
	// Reporter identifies the reporter: its account ID if it is local, its
	// ticket signing key otherwise. Reports by one reporter count once.
	Reporter [32]byte
	// Time is when this node received the report.
	Time time.Time
}

// Outcome is what Reported did.
type Outcome struct {
	// Duplicate: the report does not count (counted before, its reporter
	// counts already, or it is stale); nothing changed.
	Duplicate bool
	// Reporters is the number of distinct reporters that count now.
	Reporters int
	// Actions are the actions the policy took because of this report.
	Actions []Action
}

// Kinds of rate a throttle gates.
const (
	RateMessage = "message"
	RateTicket  = "ticket"
)

// Option is a test seam or wiring choice for New.
type Option func(*options)

type options struct {
	now    func() time.Time
	logger *slog.Logger
	reg    prometheus.Registerer
}

// WithClock replaces time.Now.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithRegisterer registers the metrics with r (default: a private registry).
func WithRegisterer(r prometheus.Registerer) Option { return func(o *options) { o.reg = r } }

// Moderation applies the policy. Its methods are safe for concurrent use;
// it starts no goroutines.
type Moderation struct {
	cfg   Config
	st    *store.Store
	accts Accounts
	rooms Rooms
	now   func() time.Time
	log   *slog.Logger
	m     *metrics

	msgLim, tktLim *ratelimit.Limiter

	mu        sync.Mutex // serialises read-check-write of one account's records
	throttled map[keys.AccountID]throttle
	counts    map[keys.RoomID]uint32 // messages sent per room, in memory
}

type throttle struct{ since, until time.Time }

// New returns the policy on the store st, loading the current throttles.
func New(cfg Config, st *store.Store, accts Accounts, rms Rooms, opts ...Option) (*Moderation, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if st == nil || accts == nil || rms == nil {
		return nil, errors.New("moderation: store, accounts and rooms are required")
	}
	o := options{now: time.Now, logger: slog.New(slog.DiscardHandler), reg: prometheus.NewRegistry()}
	for _, opt := range opts {
		opt(&o)
	}
	m, err := newMetrics(o.reg)
	if err != nil {
		return nil, err
	}
	msgLim, err := ratelimit.New(cfg.Messages, cfg.MaxTracked, ratelimit.WithClock(o.now), ratelimit.WithName("throttled_message"), ratelimit.WithRegisterer(o.reg))
	if err != nil {
		return nil, fmt.Errorf("moderation: %w", err)
	}
	tktLim, err := ratelimit.New(cfg.Tickets, cfg.MaxTracked, ratelimit.WithClock(o.now), ratelimit.WithName("throttled_ticket"), ratelimit.WithRegisterer(o.reg))
	if err != nil {
		return nil, fmt.Errorf("moderation: %w", err)
	}
	md := &Moderation{
		cfg: cfg, st: st, accts: accts, rooms: rms, now: o.now, m: m,
		log:    o.logger.With("subsystem", "moderation"),
		msgLim: msgLim, tktLim: tktLim,
		throttled: make(map[keys.AccountID]throttle),
		counts:    make(map[keys.RoomID]uint32),
	}
	var perr error
	err = st.Scan([]byte(prefixThrottle), nil, 0, func(k, v []byte) bool {
		var id keys.AccountID
		copy(id[:], k[len(prefixThrottle):])
		t, err := decodeThrottle(v)
		if err != nil {
			perr = err
			return false
		}
		md.throttled[id] = t
		return true
	})
	if err = errors.Join(err, perr); err != nil {
		return nil, fmt.Errorf("moderation: loading throttles: %w", err)
	}
	md.m.throttled.Set(float64(len(md.throttled)))
	return md, nil
}

// Config returns the policy in force (defaults filled in).
func (md *Moderation) Config() Config { return md.cfg }

// Allow is the throttle gate: it reports whether acct may send one message
// (kind RateMessage) or get one ticket (RateTicket) now, and if not, when
// to retry. Accounts that are not throttled always pass; the node's
// ordinary per-account limits apply in any case.
func (md *Moderation) Allow(acct keys.AccountID, kind string) (bool, time.Duration) {
	md.mu.Lock()
	t, ok := md.throttled[acct]
	md.mu.Unlock()
	if !ok || !md.now().Before(t.until) {
		return true, 0
	}
	lim := md.msgLim
	if kind == RateTicket {
		lim = md.tktLim
	}
	ok, retry := lim.Allow(string(acct[:]))
	if !ok {
		md.m.throttleHits.WithLabelValues(kind).Inc()
	}
	return ok, retry
}

// Throttled returns until when acct is throttled, or false.
func (md *Moderation) Throttled(acct keys.AccountID) (until time.Time, ok bool) {
	md.mu.Lock()
	defer md.mu.Unlock()
	t, ok := md.throttled[acct]
	if !ok || !md.now().Before(t.until) {
		return time.Time{}, false
	}
	return t.until, true
}

// CountMessage counts one message sent in room, for the conversation
// length signal. The counters live in memory, at most Config.MaxTracked
// rooms (all are forgotten when full): the signal is a hint, not a record.
func (md *Moderation) CountMessage(room keys.RoomID) {
	md.mu.Lock()
	defer md.mu.Unlock()
	if _, ok := md.counts[room]; !ok && len(md.counts) >= md.cfg.MaxTracked {
		clear(md.counts)
	}
	md.counts[room]++
}

// Reported records a verified report about a local account and applies the
// policy. The report must already be verified and stored (node/reports
// does both); ev.Time is when it was first received. A report counted
// before, a second report by a reporter who counts already, and a report
// received before the window or the last operator reversal do not raise
// the count (Outcome.Duplicate).
func (md *Moderation) Reported(ctx context.Context, ev Evidence) (Outcome, error) {
	md.mu.Lock()
	defer md.mu.Unlock()
	since, err := md.countingSince(ev.Accused)
	if err != nil {
		return Outcome{}, err
	}
	if !ev.Time.After(since) {
		// Received before the window or a reversal: it no longer counts.
		md.m.reports.WithLabelValues("stale").Inc()
		return md.unchanged(ev.Accused)
	}
	key := store.Key(prefixReporter, ev.Accused[:], ev.Reporter[:])
	if v, err := md.st.Get(key); err == nil {
		// This reporter counts already (or this very report): once.
		if t, last, err := decodeReporter(v); err == nil && (last == ev.Report || t.After(since)) {
			md.m.reports.WithLabelValues("duplicate").Inc()
			return md.unchanged(ev.Accused)
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		return Outcome{}, err
	}
	b := md.st.NewBatch()
	b.Set(key, encodeReporter(ev.Time, ev.Report))
	if err := md.st.Commit(ctx, b); err != nil {
		return Outcome{}, err
	}
	md.m.reports.WithLabelValues("counted").Inc()
	ids, err := md.countingReports(ev.Accused)
	if err != nil {
		return Outcome{}, err
	}
	out := Outcome{Reporters: len(ids)}
	n := len(ids)
	reason := fmt.Sprintf("%d distinct reporters within %s", n, md.cfg.Window)
	if md.cfg.SuspendReporters > 0 && n >= md.cfg.SuspendReporters {
		acts, err := md.autoSuspend(ctx, ev.Accused, reason, ids)
		if err != nil {
			return out, err
		}
		out.Actions = append(out.Actions, acts...)
	}
	if md.cfg.ThrottleReporters > 0 && n >= md.cfg.ThrottleReporters {
		acts, err := md.autoThrottle(ctx, ev.Accused, reason, ids)
		if err != nil {
			return out, err
		}
		out.Actions = append(out.Actions, acts...)
	}
	return out, nil
}

// unchanged is the outcome of a report that does not count. md.mu is held.
func (md *Moderation) unchanged(acct keys.AccountID) (Outcome, error) {
	ids, err := md.countingReports(acct)
	return Outcome{Duplicate: true, Reporters: len(ids)}, err
}

// countingReports returns the last report ID of each reporter whose last
// report is within the window and after the last operator reversal.
func (md *Moderation) countingReports(acct keys.AccountID) ([][32]byte, error) {
	since, err := md.countingSince(acct)
	if err != nil {
		return nil, err
	}
	var ids [][32]byte
	var perr error
	prefix := store.Key(prefixReporter, acct[:])
	err = md.st.Scan(prefix, nil, 0, func(_, v []byte) bool {
		t, id, err := decodeReporter(v)
		if err != nil {
			perr = err
			return false
		}
		if t.After(since) {
			ids = append(ids, id)
		}
		return true
	})
	return ids, errors.Join(err, perr)
}

// countingSince is the time after which reports about acct count: the
// window's start, or the last operator reversal if later.
func (md *Moderation) countingSince(acct keys.AccountID) (time.Time, error) {
	since := md.now().Add(-md.cfg.Window)
	r, ok, err := md.resetTime(acct)
	if err != nil {
		return since, err
	}
	if ok && r.After(since) {
		since = r
	}
	return since, nil
}

func (md *Moderation) resetTime(acct keys.AccountID) (time.Time, bool, error) {
	v, err := md.st.Get(store.Key(prefixReset, acct[:]))
	if errors.Is(err, store.ErrNotFound) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, err
	}
	if len(v) != 8 {
		return time.Time{}, false, fmt.Errorf("%w: reset time of %d bytes", ErrCorrupt, len(v))
	}
	return time.UnixMilli(int64(binary.BigEndian.Uint64(v))), true, nil
}

// autoSuspend suspends acct unless it is suspended already. md.mu is held.
func (md *Moderation) autoSuspend(ctx context.Context, acct keys.AccountID, reason string, evidence [][32]byte) ([]Action, error) {
	a, err := md.accts.Get(ctx, acct)
	if err != nil || a.Suspended {
		return nil, err
	}
	act, err := md.suspend(ctx, acct, Action{Kind: KindSuspend, Automatic: true, By: PolicyBy, Reason: reason, Evidence: evidence})
	if err != nil {
		return nil, err
	}
	return []Action{act.Action}, nil
}

// autoThrottle throttles acct unless it is throttled already. md.mu is held.
func (md *Moderation) autoThrottle(ctx context.Context, acct keys.AccountID, reason string, evidence [][32]byte) ([]Action, error) {
	if t, ok := md.throttled[acct]; ok && md.now().Before(t.until) {
		return nil, nil
	}
	act, err := md.throttle(ctx, acct, Action{Kind: KindThrottle, Automatic: true, By: PolicyBy, Reason: reason, Evidence: evidence})
	if err != nil {
		return nil, err
	}
	return []Action{act}, nil
}

func validText(s string, limit int) bool { return len(s) <= limit && utf8.ValidString(s) }

func checkBy(by, reason string) error {
	if by == "" || !validText(by, MaxBy) || !validText(reason, MaxReason) {
		return fmt.Errorf("%w: by must be 1 to %d bytes and reason at most %d bytes of UTF-8", ErrBadInput, MaxBy, MaxReason)
	}
	return nil
}

// Suspend suspends acct on an operator's word (by), ends its sessions and
// records the action. It returns the number of sessions revoked.
func (md *Moderation) Suspend(ctx context.Context, acct keys.AccountID, by, reason string) (int, error) {
	if err := checkBy(by, reason); err != nil {
		return 0, err
	}
	md.mu.Lock()
	defer md.mu.Unlock()
	if _, err := md.accts.Get(ctx, acct); err != nil {
		return 0, err
	}
	act, err := md.suspend(ctx, acct, Action{Kind: KindSuspend, By: by, Reason: reason})
	if err != nil {
		return 0, err
	}
	return act.revoked, nil
}

type revokedAction struct {
	Action
	revoked int
}

// suspend suspends, revokes the sessions and records act. md.mu is held.
func (md *Moderation) suspend(ctx context.Context, acct keys.AccountID, act Action) (revokedAction, error) {
	if err := md.accts.Suspend(ctx, acct, act.Reason); err != nil {
		return revokedAction{}, err
	}
	n, err := md.accts.RevokeAll(ctx, acct)
	if err != nil {
		return revokedAction{}, err
	}
	rec, err := md.record(ctx, nil, acct, act)
	if err != nil {
		return revokedAction{}, err
	}
	md.log.Info("account suspended", "account", acct.String(), "by", act.By, "automatic", act.Automatic, "evidence", len(act.Evidence), "sessions_revoked", n)
	return revokedAction{rec, n}, nil
}

// Unsuspend lifts acct's suspension on an operator's word and records who
// did; reports received before now no longer count towards the thresholds.
func (md *Moderation) Unsuspend(ctx context.Context, acct keys.AccountID, by, reason string) error {
	if err := checkBy(by, reason); err != nil {
		return err
	}
	md.mu.Lock()
	defer md.mu.Unlock()
	if err := md.accts.Unsuspend(ctx, acct); err != nil {
		return err
	}
	b := md.st.NewBatch()
	md.setReset(b, acct)
	_, err := md.record(ctx, b, acct, Action{Kind: KindUnsuspend, By: by, Reason: reason})
	if err == nil {
		md.log.Info("account unsuspended", "account", acct.String(), "by", by)
	}
	return err
}

func (md *Moderation) setReset(b *store.Batch, acct keys.AccountID) {
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], uint64(md.now().UnixMilli()))
	b.Set(store.Key(prefixReset, acct[:]), v[:])
}

// Throttle throttles acct for Config.ThrottleFor on an operator's word.
func (md *Moderation) Throttle(ctx context.Context, acct keys.AccountID, by, reason string) (Action, error) {
	if err := checkBy(by, reason); err != nil {
		return Action{}, err
	}
	md.mu.Lock()
	defer md.mu.Unlock()
	if _, err := md.accts.Get(ctx, acct); err != nil {
		return Action{}, err
	}
	return md.throttle(ctx, acct, Action{Kind: KindThrottle, By: by, Reason: reason})
}

// throttle stores the throttle and records act. md.mu is held.
func (md *Moderation) throttle(ctx context.Context, acct keys.AccountID, act Action) (Action, error) {
	now := md.now()
	t := throttle{since: now, until: now.Add(md.cfg.ThrottleFor)}
	b := md.st.NewBatch()
	b.Set(store.Key(prefixThrottle, acct[:]), encodeThrottle(t))
	rec, err := md.record(ctx, b, acct, act)
	if err != nil {
		return Action{}, err
	}
	md.throttled[acct] = t
	md.m.throttled.Set(float64(len(md.throttled)))
	md.log.Info("account throttled", "account", acct.String(), "by", act.By, "automatic", act.Automatic, "until", t.until, "evidence", len(act.Evidence))
	return rec, nil
}

// Unthrottle lifts acct's throttle on an operator's word and records who
// did; reports received before now no longer count towards the thresholds.
func (md *Moderation) Unthrottle(ctx context.Context, acct keys.AccountID, by, reason string) error {
	if err := checkBy(by, reason); err != nil {
		return err
	}
	md.mu.Lock()
	defer md.mu.Unlock()
	if _, ok := md.throttled[acct]; !ok {
		return ErrNotThrottled
	}
	b := md.st.NewBatch()
	b.Delete(store.Key(prefixThrottle, acct[:]))
	md.setReset(b, acct)
	if _, err := md.record(ctx, b, acct, Action{Kind: KindUnthrottle, By: by, Reason: reason}); err != nil {
		return err
	}
	delete(md.throttled, acct)
	md.m.throttled.Set(float64(len(md.throttled)))
	md.log.Info("account unthrottled", "account", acct.String(), "by", by)
	return nil
}

// record appends act to acct's actions in b (a new batch if nil) and
// commits. md.mu is held.
func (md *Moderation) record(ctx context.Context, b *store.Batch, acct keys.AccountID, act Action) (Action, error) {
	if b == nil {
		b = md.st.NewBatch()
	}
	nkey := store.Key(prefixActionN, acct[:])
	var seq uint64
	switch v, err := md.st.Get(nkey); {
	case err == nil && len(v) == 8:
		seq = binary.BigEndian.Uint64(v)
	case err == nil:
		return Action{}, fmt.Errorf("%w: action counter of %d bytes", ErrCorrupt, len(v))
	case !errors.Is(err, store.ErrNotFound):
		return Action{}, err
	}
	act.Seq = seq
	act.Time = md.now()
	if len(act.Evidence) > MaxEvidence {
		act.Evidence = act.Evidence[len(act.Evidence)-MaxEvidence:]
	}
	if !validText(act.Reason, MaxReason) {
		act.Reason = "(reason not shown: too long or not UTF-8)"
	}
	var seqb [8]byte
	binary.BigEndian.PutUint64(seqb[:], seq)
	b.Set(store.Key(prefixAction, acct[:], seqb[:]), encodeAction(act))
	binary.BigEndian.PutUint64(seqb[:], seq+1)
	b.Set(nkey, seqb[:])
	if err := md.st.Commit(ctx, b); err != nil {
		return Action{}, err
	}
	md.m.actions.WithLabelValues(act.Kind.String(), byLabel(act.Automatic)).Inc()
	return act, nil
}

func byLabel(automatic bool) string {
	if automatic {
		return "policy"
	}
	return "operator"
}

// Actions returns acct's recorded actions, oldest first, at most
// MaxActions (the latest).
func (md *Moderation) Actions(ctx context.Context, acct keys.AccountID) ([]Action, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []Action
	var perr error
	prefix := store.Key(prefixAction, acct[:])
	err := md.st.Scan(prefix, nil, 0, func(k, v []byte) bool {
		a, err := decodeAction(v)
		if err != nil {
			perr = err
			return false
		}
		a.Seq = binary.BigEndian.Uint64(k[len(prefix):])
		out = append(out, a)
		if len(out) > MaxActions {
			out = out[1:]
		}
		return true
	})
	return out, errors.Join(err, perr)
}

// Status is an account's moderation state, for the operator.
type Status struct {
	Throttled      bool
	ThrottledUntil time.Time
	Reporters      int        // distinct reporters that count now
	Reports        [][32]byte // their last report IDs
	Signals        Signals
	Actions        []Action
}

// Status returns acct's moderation state: throttle, counted reports, spam
// signals and actions.
func (md *Moderation) Status(ctx context.Context, acct keys.AccountID) (Status, error) {
	var s Status
	s.ThrottledUntil, s.Throttled = md.Throttled(acct)
	md.mu.Lock()
	ids, err := md.countingReports(acct)
	md.mu.Unlock()
	if err != nil {
		return s, err
	}
	s.Reporters, s.Reports = len(ids), ids
	if s.Signals, err = md.Signals(ctx, acct); err != nil {
		return s, err
	}
	s.Actions, err = md.Actions(ctx, acct)
	return s, err
}

func encodeReporter(t time.Time, id [32]byte) []byte {
	e := wire.NewEncoder(1 + 8 + 32)
	e.U8(1)
	e.I64(t.UnixMilli())
	e.Fixed(id[:])
	return e.Bytes()
}

func decodeReporter(v []byte) (time.Time, [32]byte, error) {
	var id [32]byte
	d := wire.NewDecoder("moderation reporter", v)
	d.Version(1)
	t := d.Field("time").I64()
	d.Field("report").Fixed(id[:])
	if err := d.Finish(); err != nil {
		return time.Time{}, id, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return time.UnixMilli(t), id, nil
}

func encodeThrottle(t throttle) []byte {
	e := wire.NewEncoder(1 + 16)
	e.U8(1)
	e.I64(t.since.UnixMilli())
	e.I64(t.until.UnixMilli())
	return e.Bytes()
}

func decodeThrottle(v []byte) (throttle, error) {
	d := wire.NewDecoder("moderation throttle", v)
	d.Version(1)
	since := d.Field("since").I64()
	until := d.Field("until").I64()
	if err := d.Finish(); err != nil {
		return throttle{}, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return throttle{time.UnixMilli(since), time.UnixMilli(until)}, nil
}

func encodeAction(a Action) []byte {
	e := wire.NewEncoder(1 + 1 + 8 + 1 + 2 + len(a.By) + 2 + len(a.Reason) + 2 + 32*len(a.Evidence))
	e.U8(1)
	e.U8(uint8(a.Kind))
	e.I64(a.Time.UnixMilli())
	if a.Automatic {
		e.U8(1)
	} else {
		e.U8(0)
	}
	e.String16(a.By)
	e.String16(a.Reason)
	e.Count(len(a.Evidence))
	for _, id := range a.Evidence {
		e.Fixed(id[:])
	}
	return e.Bytes()
}

func decodeAction(v []byte) (Action, error) {
	var a Action
	d := wire.NewDecoder("moderation action", v)
	d.Version(1)
	a.Kind = Kind(d.Field("kind").U8())
	a.Time = time.UnixMilli(d.Field("time").I64())
	a.Automatic = d.Field("automatic").U8() == 1
	a.By = d.Field("by").String16(MaxBy)
	a.Reason = d.Field("reason").String16(MaxReason)
	n := d.Field("evidence").Count(MaxEvidence, 32)
	if d.Err() == nil {
		a.Evidence = make([][32]byte, n)
		for i := range a.Evidence {
			d.Fixed(a.Evidence[i][:])
		}
	}
	if err := d.Finish(); err != nil {
		return Action{}, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return a, nil
}
