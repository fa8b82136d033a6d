package federation

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/node/outbox"
	"github.com/parley-chat/parley/protocol/envelope"
	fed "github.com/parley-chat/parley/protocol/federation"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/wire"
)

// maxAckBody bounds the Ack the sender reads: an Ack with one result per
// envelope of the largest Batch.
const maxAckBody = 1 + 1 + 8 + 1 + 4 + 2 + 2*wire.MaxDeliverEnvelopes

// ErrBadAck is the error of a delivery attempt whose Ack does not decode or
// does not match its Batch (sequence number or result count).
var ErrBadAck = errors.New("federation: bad ack")

// ErrRunning is returned by Run when it is already running.
var ErrRunning = errors.New("federation: sender already running")

// busyError is a delivery attempt answered busy.
type busyError struct{ retryAfter time.Duration }

func (e busyError) Error() string {
	return fmt.Sprintf("federation: peer busy, retry after %s", e.retryAfter)
}

// Sender delivers the outbox: one worker per destination opens a delivery
// stream, sends up to Config.MaxBatch envelopes as one Batch, waits for the
// Ack, and removes what the destination stored, found duplicate or
// rejected (spec 12-delivery §5). Failures are retried with exponential
// backoff and full jitter, capped, and the backoff is reset when a
// connection to the destination is established.
type Sender struct {
	cfg     Config
	ob      *Outbox
	host    host.Host
	proto   protocol.ID
	now     func() time.Time
	log     *slog.Logger
	metrics *metrics

	mu      sync.Mutex
	running bool
	workers map[keys.NodeID]*worker
}

// worker is one destination's delivery state.
type worker struct {
	dest      keys.NodeID
	peer      peer.ID
	reconnect chan struct{} // cap 1: a connection to dest was established

	mu    sync.Mutex
	state string // stateConnected or stateBackoff

	// Owned by the worker goroutine.
	seq uint64
	buf []byte
}

// NewSender returns a sender of ob's entries over h, on protocol proto (the
// caller builds it: fed.ProtocolID(network)). Run must be running.
func NewSender(cfg Config, ob *Outbox, h host.Host, proto protocol.ID, opts ...Option) (*Sender, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o := buildOptions(opts)
	m, err := newMetrics(o.reg)
	if err != nil {
		return nil, err
	}
	s := &Sender{
		cfg:     cfg.withDefaults(),
		ob:      ob,
		host:    h,
		proto:   proto,
		now:     o.now,
		log:     o.logger.With("subsystem", "federation"),
		metrics: m,
		workers: make(map[keys.NodeID]*worker),
	}
	if o.reg != nil {
		if err := o.reg.Register(outboxCollector{s}); err != nil {
			return nil, fmt.Errorf("federation: registering metrics: %w", err)
		}
	}
	return s, nil
}

// Run delivers until ctx ends, then closes its streams and returns nil
// once every worker has stopped. Entries left in the outbox stay there for
// the next Run (after a restart: a fresh backoff).
func (s *Sender) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return ErrRunning
	}
	s.running = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.running = false
		s.mu.Unlock()
	}()

	stop := outbox.Watch(s.host.Network(), func(id keys.NodeID) {
		s.mu.Lock()
		w := s.workers[id]
		s.mu.Unlock()
		if w != nil {
			poke(w.reconnect)
		}
	})
	defer stop()

	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		for _, dest := range s.ob.Destinations() {
			s.mu.Lock()
			w := s.workers[dest]
			if w == nil {
				w = &worker{dest: dest, reconnect: make(chan struct{}, 1), state: stateConnected}
				w.peer, _ = peer.IDFromBytes(dest.PeerIDBytes())
				s.workers[dest] = w
				wg.Go(func() { s.work(ctx, w) })
			}
			s.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.ob.Added():
		}
	}
}

// work delivers dest's queue until ctx ends: sessions (one stream each)
// separated by backoffs.
func (s *Sender) work(ctx context.Context, w *worker) {
	wake := s.ob.wakeChan(w.dest)
	attempt := 0
	retriedAtOnce := false
	for ctx.Err() == nil {
		acked, reused, err := s.session(ctx, w, wake)
		if ctx.Err() != nil {
			return
		}
		if acked > 0 {
			attempt, retriedAtOnce = 0, false
		}
		var be busyError
		isBusy := errors.As(err, &be)
		// A stream kept from an earlier Batch may have been closed by the
		// destination while idle: one failure on it earns a fresh stream
		// at once, not a backoff.
		if reused && !isBusy && !errors.Is(err, ErrBadAck) && !retriedAtOnce {
			retriedAtOnce = true
			continue
		}
		var wait time.Duration
		if isBusy {
			s.metrics.busy.WithLabelValues("received").Inc()
			wait = be.retryAfter
		} else {
			attempt++
			retriedAtOnce = false
			wait = s.cfg.backoff().Delay(attempt)
			s.log.Debug("delivery failed", "dest", w.dest, "attempt", attempt, "retry_in", wait, "err", err)
		}
		s.metrics.retries.Inc()
		w.setState(stateBackoff)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-t.C:
		case <-w.reconnect:
			attempt = 0
		}
		t.Stop()
	}
}

// flight is a Batch written and not yet acknowledged.
type flight struct {
	seq     uint64  // the Batch's seq
	entries []Entry // its outbox entries, in order
	sent    time.Time
}

// session delivers dest's queue on one stream, with up to Config.Window
// Batches written ahead of their Acks (spec 12-delivery §1, §5), until
// a delivery fails or ctx ends. The stream stays open while the queue
// is empty. acked counts the Acks it processed; reused says whether the
// failure came on a stream that had carried an acknowledged Batch. On
// return nothing is in flight: the next session starts again at the
// first entry not acknowledged.
func (s *Sender) session(ctx context.Context, w *worker, wake <-chan struct{}) (acked int, reused bool, err error) {
	var (
		st       network.Stream
		inflight = make(chan *flight, s.cfg.Window)
		slots    = make(chan struct{}, s.cfg.Window)
		failed   = make(chan error, 1)
		freed    = make(chan struct{}, 1) // an Ack freed a slot
		nacked   atomic.Int64
		reader   sync.WaitGroup
		stop     func() bool
	)
	defer func() {
		if st != nil {
			_ = st.Reset()
			stop()
		}
		close(inflight)
		reader.Wait()
		acked = int(nacked.Load())
		reused = acked > 0
	}()
	next := uint64(0) // the first entry not yet written; 0: the queue's head
	for {
		// A slot first, then the entries: what queued while the window
		// was full goes into this Batch.
		select {
		case <-ctx.Done():
			return 0, false, ctx.Err()
		case err := <-failed:
			return 0, false, err
		case slots <- struct{}{}:
		}
		// Ahead of an Ack only a Batch worth it: under light load one
		// Batch at a time (each Ack brings what queued meanwhile), under
		// load up to Window of them.
		if len(slots) > 1 && s.ob.available(w.dest, next) < s.cfg.aheadMin() {
			<-slots
			select {
			case <-ctx.Done():
				return 0, false, ctx.Err()
			case err := <-failed:
				return 0, false, err
			case <-wake:
			case <-freed:
			}
			continue
		}
		entries, err := s.ob.Peek(w.dest, next, s.cfg.MaxBatch, wire.MaxDeliverFrame-fed.BatchOverhead)
		if err == nil {
			entries, err = s.dropStale(ctx, w.dest, entries)
		}
		if err != nil {
			return 0, false, err
		}
		if len(entries) == 0 {
			<-slots
			select {
			case <-ctx.Done():
				return 0, false, ctx.Err()
			case err := <-failed:
				return 0, false, err
			case <-wake:
			}
			continue
		}
		if st == nil {
			if st, err = s.open(ctx, w); err != nil {
				return 0, false, err
			}
			// The stream is captured: the func may run after session
			// returned and the worker opened another.
			str := st
			stop = context.AfterFunc(ctx, func() { _ = str.SetDeadline(time.Now()) })
			rd := bufio.NewReaderSize(st, 4096)
			reader.Go(func() { s.readAcks(ctx, w, str, rd, inflight, slots, freed, failed, &nacked) })
		}
		w.seq++
		f := &flight{seq: w.seq, entries: entries, sent: time.Now()}
		if err := s.write(w, st, f); err != nil {
			return 0, false, err
		}
		inflight <- f
		next = entries[len(entries)-1].Seq + 1
	}
}

// write writes f's Batch frame on st.
func (s *Sender) write(w *worker, st network.Stream, f *flight) error {
	b := fed.Batch{Seq: f.seq, Envelopes: make([]*envelope.Envelope, len(f.entries))}
	for i, e := range f.entries {
		b.Envelopes[i] = e.Env
	}
	frame, err := b.AppendFrame(w.buf[:0])
	if err != nil {
		return err
	}
	w.buf = frame
	if err := st.SetWriteDeadline(f.sent.Add(s.cfg.AckTimeout)); err != nil {
		return err
	}
	if _, err := st.Write(frame); err != nil {
		return fmt.Errorf("federation: writing a batch: %w", err)
	}
	s.metrics.bytesOut.Add(float64(len(frame)))
	return nil
}

// readAcks reads the Acks of the flights in order, each within the ack
// timeout of its write, and removes what they answer. It reports the
// first failure on failed and stops; it stops too when inflight is
// closed.
func (s *Sender) readAcks(ctx context.Context, w *worker, st network.Stream, rd *bufio.Reader,
	inflight <-chan *flight, slots <-chan struct{}, freed chan struct{}, failed chan<- error, nacked *atomic.Int64) {
	for f := range inflight {
		err := st.SetReadDeadline(f.sent.Add(s.cfg.AckTimeout))
		if err == nil {
			err = s.readAck(ctx, w, rd, f)
		}
		if err != nil {
			failed <- err
			return
		}
		nacked.Add(1)
		w.setState(stateConnected)
		<-slots
		poke(freed)
	}
}

// readAck reads f's Ack and removes every entry it answers.
func (s *Sender) readAck(ctx context.Context, w *worker, rd *bufio.Reader, f *flight) error {
	ack, n, err := readAck(rd)
	if err != nil {
		return err
	}
	s.metrics.bytesIn.Add(float64(n))
	if ack.Seq != f.seq || (!ack.Busy && len(ack.Results) != len(f.entries)) {
		return fmt.Errorf("%w: seq %d with %d results for batch %d of %d", ErrBadAck, ack.Seq, len(ack.Results), f.seq, len(f.entries))
	}
	if ack.Busy {
		return busyError{retryAfter: max(ack.RetryAfter, time.Millisecond)}
	}
	done := make([]uint64, len(f.entries))
	now := s.now()
	for i, r := range ack.Results {
		done[i] = f.entries[i].Seq
		s.metrics.envelopesOut.WithLabelValues(r.Status.String()).Inc()
		if r.Status == fed.Rejected {
			s.metrics.drops.WithLabelValues(r.Reason.String()).Inc()
			s.log.Warn("envelope rejected by its destination", "dest", w.dest, "reason", r.Reason.String())
			continue
		}
		s.metrics.latency.Observe(now.Sub(f.entries[i].Env.Stamp.TimeOf()).Seconds())
	}
	// Acks come in order and every earlier entry was acknowledged or
	// dropped: nothing below this Batch's last entry is left.
	return s.ob.Remove(context.WithoutCancel(ctx), w.dest, done, done[len(done)-1]+1)
}

// dropStale removes entries older than Config.Retention, and corrupt ones,
// from entries, and returns the rest.
func (s *Sender) dropStale(ctx context.Context, dest keys.NodeID, entries []Entry) ([]Entry, error) {
	cutoff := s.now().Add(-s.cfg.Retention)
	var drop []uint64
	keep := entries[:0]
	expired, corrupt := 0, 0
	for _, e := range entries {
		switch {
		case e.Env == nil:
			corrupt++
			drop = append(drop, e.Seq)
		case e.Enqueued.Before(cutoff):
			expired++
			drop = append(drop, e.Seq)
		default:
			keep = append(keep, e)
		}
	}
	if len(drop) == 0 {
		return keep, nil
	}
	if err := s.ob.Remove(ctx, dest, drop, 0); err != nil {
		return nil, err
	}
	s.metrics.drops.WithLabelValues(dropExpired).Add(float64(expired))
	s.metrics.drops.WithLabelValues(dropCorrupt).Add(float64(corrupt))
	s.log.Warn("dropped undeliverable envelopes", "dest", dest, "expired", expired, "corrupt", corrupt)
	return keep, nil
}

// readAck reads one Ack frame; n is its size with the prefix.
func readAck(r io.Reader) (*fed.Ack, int, error) {
	var prefix [fed.PrefixLen]byte
	if _, err := io.ReadFull(r, prefix[:]); err != nil {
		return nil, 0, fmt.Errorf("federation: reading an ack: %w", err)
	}
	n, err := fed.BodyLen(prefix)
	if err == nil && n > maxAckBody {
		err = fmt.Errorf("ack of %d bytes", n)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %w", ErrBadAck, err)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, 0, fmt.Errorf("federation: reading an ack: %w", err)
	}
	ack, err := fed.DecodeAck(body)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %w", ErrBadAck, err)
	}
	return ack, fed.PrefixLen + n, nil
}

func (s *Sender) open(ctx context.Context, w *worker) (network.Stream, error) {
	if w.peer == "" {
		return nil, fmt.Errorf("federation: destination %s has no peer ID", w.dest)
	}
	dctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
	defer cancel()
	st, err := s.host.NewStream(dctx, w.peer, s.proto)
	if err != nil {
		return nil, fmt.Errorf("federation: opening a delivery stream: %w", err)
	}
	// Our own dial announces a connection; it is no reconnection.
	select {
	case <-w.reconnect:
	default:
	}
	return st, nil
}

func (w *worker) setState(st string) {
	w.mu.Lock()
	w.state = st
	w.mu.Unlock()
}

func (w *worker) getState() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.state
}

// AddAddrs is a convenience for callers without a peer-routing layer: it
// puts addrs for dest into the host's peerstore for ttl.
func AddAddrs(h host.Host, dest keys.NodeID, addrs []multiaddr.Multiaddr, ttl time.Duration) error {
	id, err := peer.IDFromBytes(dest.PeerIDBytes())
	if err != nil {
		return err
	}
	h.Peerstore().AddAddrs(id, addrs, ttl)
	return nil
}

// outboxCollector exports each destination state's outbox depth and oldest
// entry age (labels: state only, never a peer).
type outboxCollector struct{ s *Sender }

var (
	depthDesc = prometheus.NewDesc("parley_federation_outbox_envelopes",
		"Envelopes waiting in the outbox, by their destination's state: connected (last attempt succeeded) or backoff.", []string{"state"}, nil)
	ageDesc = prometheus.NewDesc("parley_federation_outbox_oldest_age_seconds",
		"Age of the oldest envelope waiting in the outbox, by its destination's state.", []string{"state"}, nil)
)

func (c outboxCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- depthDesc
	ch <- ageDesc
}

func (c outboxCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	depth := map[string]int{stateConnected: 0, stateBackoff: 0}
	age := map[string]time.Duration{stateConnected: 0, stateBackoff: 0}
	now := s.now()
	for _, dest := range s.ob.Destinations() {
		d := s.ob.Depth(dest)
		if d == 0 {
			continue
		}
		state := stateConnected
		s.mu.Lock()
		w := s.workers[dest]
		s.mu.Unlock()
		if w != nil {
			state = w.getState()
		}
		depth[state] += d
		if t, ok := s.ob.Oldest(dest); ok {
			age[state] = max(age[state], now.Sub(t))
		}
	}
	for _, st := range []string{stateConnected, stateBackoff} {
		ch <- prometheus.MustNewConstMetric(depthDesc, prometheus.GaugeValue, float64(depth[st]), st)
		ch <- prometheus.MustNewConstMetric(ageDesc, prometheus.GaugeValue, age[st].Seconds(), st)
	}
}
