package forward

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/node/outbox"
	"github.com/parley-chat/parley/node/reports"
	"github.com/parley-chat/parley/node/store"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/wire"
)

// PrefixOutbox is the store prefix the outbox owns (to be listed in
// node/store/keys.go as PrefixReportOutbox):
//
//	repout/<destination NodeID 32><report ID 32> -> u8 1 || i64 enqueued (Unix ms) ||
//	                                               i64 next attempt (Unix ms) || u32 attempts ||
//	                                               bytes32 disclosure encoding
//
// An entry is deleted once the destination answers accepted, duplicate or
// rejected, or when it is older than Config.Retention.
const PrefixOutbox = store.PrefixReportOutbox

// maxScan is the most outbox entries one pass looks at.
const maxScan = 256

// Outbox is the durable queue of reports to forward. It implements
// reports.Forwarder.
type Outbox struct{ st *store.Store }

var _ reports.Forwarder = (*Outbox)(nil)

// NewOutbox returns the outbox kept in st.
func NewOutbox(st *store.Store) *Outbox { return &Outbox{st: st} }

// Enqueue adds to b the entry that forwards report id (encoding enc) to
// node to; the caller commits b.
func (o *Outbox) Enqueue(b *store.Batch, to keys.NodeID, id [32]byte, enc []byte, now time.Time) {
	b.Set(outboxKey(to, id), encodeEntry(entry{enqueued: now, next: now, enc: enc}))
}

func outboxKey(to keys.NodeID, id [32]byte) []byte {
	return store.Key(PrefixOutbox, to[:], id[:])
}

type entry struct {
	to       keys.NodeID
	id       [32]byte
	enqueued time.Time
	next     time.Time
	attempts uint32
	enc      []byte
}

func encodeEntry(e entry) []byte {
	w := wire.NewEncoder(1 + 8 + 8 + 4 + 4 + len(e.enc))
	w.U8(1)
	w.I64(e.enqueued.UnixMilli())
	w.I64(e.next.UnixMilli())
	w.U32(e.attempts)
	w.Bytes32(e.enc)
	return w.Bytes()
}

func decodeEntry(k, v []byte) (entry, error) {
	var e entry
	if len(k) != len(PrefixOutbox)+64 {
		return e, fmt.Errorf("forward: outbox key of %d bytes", len(k))
	}
	copy(e.to[:], k[len(PrefixOutbox):])
	copy(e.id[:], k[len(PrefixOutbox)+32:])
	d := wire.NewDecoder("report outbox entry", v)
	d.Version(1)
	e.enqueued = time.UnixMilli(d.Field("enqueued").I64())
	e.next = time.UnixMilli(d.Field("next").I64())
	e.attempts = d.Field("attempts").U32()
	e.enc = d.Field("disclosure").Bytes32(wire.MaxDisclosureSize)
	return e, d.Finish()
}

// Pending returns the number of queued reports (for tests and the
// operator), counting at most limit.
func (o *Outbox) Pending(limit int) (int, error) {
	n := 0
	err := o.st.Scan([]byte(PrefixOutbox), nil, limit, func(_, _ []byte) bool { n++; return true })
	return n, err
}

// Sender delivers the outbox's reports. Run is its one goroutine.
type Sender struct {
	cfg   Config
	ob    *Outbox
	host  host.Host
	proto protocol.ID
	now   func() time.Time
	log   *slog.Logger

	sent    *prometheus.CounterVec
	dropped prometheus.Counter
	pending prometheus.Gauge

	kick chan struct{} // cap 1: a destination reconnected

	mu          sync.Mutex
	reconnected map[keys.NodeID]bool // connected to since the last pass
}

// NewSender returns a sender that opens proto streams (node/p2p:
// Host.ProtocolID(Name, Version)) on h.
func NewSender(cfg Config, ob *Outbox, h host.Host, proto protocol.ID, opts ...Option) (*Sender, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o := buildOptions(opts)
	s := &Sender{
		cfg: cfg.withDefaults(), ob: ob, host: h, proto: proto, now: o.now, log: o.logger,
		kick: make(chan struct{}, 1), reconnected: make(map[keys.NodeID]bool),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_report_forward_sent_total",
			Help: "Attempts to forward a report to the accused's node, by outcome (accepted, duplicate, rejected, busy, failed).",
		}, []string{"outcome"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_report_forward_dropped_total",
			Help: "Reports dropped from the outbox after the retention without delivery.",
		}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "parley_report_forward_pending",
			Help: "Reports in the outbox at the last pass (counted up to 256).",
		}),
	}
	if err := errors.Join(o.reg.Register(s.sent), o.reg.Register(s.dropped), o.reg.Register(s.pending)); err != nil {
		return nil, err
	}
	return s, nil
}

// Run delivers due reports until ctx ends; it returns nil then. When a
// connection to a destination is established, that destination's reports
// are due at once and their backoff starts afresh.
func (s *Sender) Run(ctx context.Context) error {
	stop := outbox.Watch(s.host.Network(), func(id keys.NodeID) {
		s.mu.Lock()
		s.reconnected[id] = true
		s.mu.Unlock()
		select {
		case s.kick <- struct{}{}:
		default:
		}
	})
	defer stop()
	t := time.NewTicker(s.cfg.Poll)
	defer t.Stop()
	for {
		s.pass(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-s.kick:
		}
	}
}

// pass tries every due entry once.
func (s *Sender) pass(ctx context.Context) {
	s.mu.Lock()
	reconnected := s.reconnected
	s.reconnected = make(map[keys.NodeID]bool)
	s.mu.Unlock()
	var due []entry
	n := 0
	now := s.now()
	err := s.ob.st.Scan([]byte(PrefixOutbox), nil, maxScan, func(k, v []byte) bool {
		n++
		e, err := decodeEntry(k, v)
		if err != nil {
			s.log.Error("dropping a corrupt outbox entry", "err", err)
			b := s.ob.st.NewBatch()
			b.Delete(append([]byte(nil), k...))
			_ = s.ob.st.Commit(ctx, b)
			return true
		}
		if reconnected[e.to] {
			e.attempts = 0 // a fresh backoff
		} else if e.next.After(now) {
			return true
		}
		due = append(due, e)
		return true
	})
	if err != nil {
		s.log.Error("scanning the report outbox", "err", err)
		return
	}
	s.pending.Set(float64(n))
	for _, e := range due {
		if ctx.Err() != nil {
			return
		}
		s.attempt(ctx, e)
	}
}

// attempt forwards e once and updates or deletes its entry.
func (s *Sender) attempt(ctx context.Context, e entry) {
	a, err := s.deliver(ctx, e)
	// Our own dial announces a connection; it is no reconnection.
	s.mu.Lock()
	delete(s.reconnected, e.to)
	s.mu.Unlock()
	outcome := "failed"
	if err == nil {
		outcome = a.Status.String()
	}
	s.sent.WithLabelValues(outcome).Inc()
	b := s.ob.st.NewBatch()
	key := outboxKey(e.to, e.id)
	now := s.now()
	switch {
	case err == nil && a.Status != StatusBusy:
		if a.Status == StatusRejected {
			s.log.Warn("forwarded report rejected", "report", fmt.Sprintf("%x", e.id), "node", e.to.String(), "reason", a.Reason)
		}
		b.Delete(key)
	case now.Sub(e.enqueued) > s.cfg.Retention:
		s.log.Warn("dropping an undelivered report", "report", fmt.Sprintf("%x", e.id), "node", e.to.String(), "attempts", e.attempts)
		s.dropped.Inc()
		b.Delete(key)
	default:
		if err != nil {
			s.log.Debug("forwarding a report failed", "node", e.to.String(), "err", err)
		}
		e.attempts++
		delay := s.cfg.backoff().Delay(int(e.attempts))
		if err == nil {
			delay = max(delay, time.Duration(a.RetryAfter)*time.Millisecond)
		}
		e.next = now.Add(delay)
		b.Set(key, encodeEntry(e))
	}
	if err := s.ob.st.Commit(ctx, b); err != nil && ctx.Err() == nil {
		s.log.Error("updating the report outbox", "err", err)
	}
}

// deliver opens a stream to e.to, writes the report and reads the answer.
func (s *Sender) deliver(ctx context.Context, e entry) (Answer, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	st, err := s.host.NewStream(ctx, peer.ID(e.to.PeerIDBytes()), s.proto)
	if err != nil {
		return Answer{}, err
	}
	defer func() { _ = st.Close() }()
	stop := context.AfterFunc(ctx, func() { _ = st.Reset() })
	defer stop()
	deadline := time.Now().Add(s.cfg.Timeout)
	_ = st.SetDeadline(deadline)
	if _, err := st.Write(EncodeRequest(e.enc)); err != nil {
		_ = st.Reset()
		return Answer{}, err
	}
	_ = st.CloseWrite()
	body, err := readFrame(st, maxAnswer, nil)
	if err != nil {
		_ = st.Reset()
		return Answer{}, err
	}
	a, err := DecodeAnswer(body)
	if err != nil {
		_ = st.Reset()
		return Answer{}, err
	}
	return a, nil
}
