package blobs

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/parley-chat/parley/node/store"
	"github.com/parley-chat/parley/protocol/blob"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/wire"
)

// Takedown notices (spec 08 §13). The origin of a blob remembers which
// nodes fetched it (recorded before the first byte is sent to them); when
// it takes the blob down it queues, in the same synced write, a notice for
// each of them, and a Notifier sends them, signed with the node's key,
// over "/parley/<network>/blob-takedown/1.0.0", retrying with backoff
// while a node is down. A caching node remembers which node each cached
// blob came from (recorded with the cache entry, before the first chunk)
// and, on a notice signed by that node and sent by it, takes the address
// down itself: it deletes the copy and refuses the address from then on.
//
// Keys under store.PrefixBlobFederation:
//
//	bfed/o<Address 32>            -> [32] origin NodeID of a cached blob (or cache entry)
//	bfed/f<Address 32><NodeID 32> -> i64 time (Unix ms) that node first fetched the blob here
//	bfed/q<NodeID 32><Address 32> -> u8 1, i64 takedown time (Unix ms), i64 next attempt (Unix ms), u32 attempts

const (
	fedOrigin  = 'o'
	fedFetcher = 'f'
	fedQueue   = 'q'
)

func originKey(a blob.Address) []byte {
	return store.Key(store.PrefixBlobFederation, []byte{fedOrigin}, a[:])
}

func fetchersPrefix(a blob.Address) []byte {
	return store.Key(store.PrefixBlobFederation, []byte{fedFetcher}, a[:])
}

func fetcherKey(a blob.Address, n keys.NodeID) []byte {
	return store.Key(store.PrefixBlobFederation, []byte{fedFetcher}, a[:], n[:])
}

func queuePrefix() []byte { return store.Key(store.PrefixBlobFederation, []byte{fedQueue}) }

func queueKey(n keys.NodeID, a blob.Address) []byte {
	return store.Key(store.PrefixBlobFederation, []byte{fedQueue}, n[:], a[:])
}

// notice is a queued takedown notice.
type notice struct {
	to       keys.NodeID
	addr     blob.Address
	time     int64 // takedown time, Unix ms
	next     int64 // next attempt, Unix ms
	attempts uint32
}

func (n *notice) encode() []byte {
	e := wire.NewEncoder(1 + 8 + 8 + 4)
	e.U8(recordVersion)
	e.I64(n.time)
	e.I64(n.next)
	e.U32(n.attempts)
	return e.Bytes()
}

func decodeNotice(k, v []byte) (notice, error) {
	var n notice
	p := len(queuePrefix())
	if len(k) != p+64 {
		return n, fmt.Errorf("blobs: takedown queue key of %d bytes", len(k))
	}
	copy(n.to[:], k[p:])
	copy(n.addr[:], k[p+32:])
	d := wire.NewDecoder("takedown queue entry", v)
	d.Version(recordVersion)
	n.time = d.Field("time").I64()
	n.next = d.Field("next").I64()
	n.attempts = d.Field("attempts").U32()
	return n, d.Finish()
}

// recordFetcher remembers that node fetched addr from this node, so a
// takedown reaches it. Called before the blob is sent.
func (s *Store) recordFetcher(ctx context.Context, addr blob.Address, from peer.ID) error {
	id, err := keys.NodeIDFromPeerIDBytes([]byte(from))
	if err != nil {
		return fmt.Errorf("blobs: fetching node %s: %w", from, err)
	}
	k := fetcherKey(addr, id)
	if ok, err := s.db.Has(k); err != nil || ok {
		return err
	}
	var t [8]byte
	binary.BigEndian.PutUint64(t[:], uint64(s.now().UnixMilli()))
	b := s.db.NewBatch()
	b.Set(k, t[:])
	return s.db.Commit(ctx, b)
}

// Fetchers returns the nodes recorded as having fetched addr from this
// node (tests and the admin API).
func (s *Store) Fetchers(addr blob.Address) ([]keys.NodeID, error) {
	var out []keys.NodeID
	p := fetchersPrefix(addr)
	err := s.db.Scan(p, nil, 0, func(k, _ []byte) bool {
		if len(k) == len(p)+32 {
			out = append(out, keys.NodeID(k[len(p):]))
		}
		return true
	})
	return out, err
}

// queueNotices adds to b a notice to each of fetchers, the nodes that
// fetched addr, and forgets them as fetchers.
func (s *Store) queueNotices(b *store.Batch, addr blob.Address, fetchers []keys.NodeID, now time.Time) {
	for _, to := range fetchers {
		n := notice{to: to, addr: addr, time: now.UnixMilli(), next: now.UnixMilli()}
		b.Set(queueKey(to, addr), n.encode())
	}
	b.DeleteRange(fetchersPrefix(addr), store.PrefixEnd(fetchersPrefix(addr)))
}

// PendingNotices returns the number of takedown notices waiting to be
// delivered, counting at most limit.
func (s *Store) PendingNotices(limit int) (int, error) {
	n := 0
	err := s.db.Scan(queuePrefix(), nil, limit, func(_, _ []byte) bool { n++; return true })
	return n, err
}

// Origin returns the node a cached blob (or a partial cache entry) at addr
// was fetched from; ok is false for a blob uploaded here or unknown.
func (s *Store) Origin(addr blob.Address) (id keys.NodeID, ok bool, err error) {
	v, err := s.db.Get(originKey(addr))
	if errors.Is(err, store.ErrNotFound) {
		return id, false, nil
	}
	if err != nil {
		return id, false, err
	}
	if len(v) != len(id) {
		return id, false, fmt.Errorf("blobs: corrupt origin record of %s", addr)
	}
	return keys.NodeID(v), true, nil
}

// Notifier delivers the takedown notices the store queued, and receives
// other nodes' (spec 08 §13). Run is its one goroutine.
type Notifier struct {
	s     *Store
	h     host.Host
	proto protocol.ID
	key   keys.NodeKey
	log   *slog.Logger
	// handling holds a token per notice being received.
	handling chan struct{}
}

// maxPacedPeers bounds the nodes whose served bytes are paced at once
// (the least recently served is forgotten first).
const maxPacedPeers = 4096

// maxNoticeScan is the most queued notices one pass looks at.
const maxNoticeScan = 256

// maxNoticeHandlers bounds the notices received at once; more are answered
// busy.
const maxNoticeHandlers = 8

// maxBackoff bounds the delay between two attempts to deliver a notice.
const maxBackoff = 10 * time.Minute

// NewNotifier returns the notifier of s that signs notices with key and
// opens streams of protocol proto on h.
func NewNotifier(s *Store, h host.Host, proto protocol.ID, key keys.NodeKey) *Notifier {
	return &Notifier{s: s, h: h, proto: proto, key: key, log: s.log, handling: make(chan struct{}, maxNoticeHandlers)}
}

// Run delivers the due notices whenever a takedown queues some and at
// least every TakedownRetry, until ctx ends; it returns nil then.
func (t *Notifier) Run(ctx context.Context) error {
	tick := time.NewTicker(t.s.cfg.TakedownRetry)
	defer tick.Stop()
	for {
		t.pass(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-t.s.noticeKick:
		}
	}
}

// pass tries every due notice once.
func (t *Notifier) pass(ctx context.Context) {
	s := t.s
	now := s.now()
	var due []notice
	err := s.db.Scan(queuePrefix(), nil, maxNoticeScan, func(k, v []byte) bool {
		n, err := decodeNotice(k, v)
		if err != nil {
			s.log.Error("dropping a corrupt takedown queue entry", "err", err)
			b := s.db.NewBatch()
			b.Delete(append([]byte(nil), k...))
			_ = s.db.Commit(ctx, b)
			return true
		}
		if n.next <= now.UnixMilli() {
			due = append(due, n)
		}
		return true
	})
	if err != nil {
		s.log.Error("scanning the takedown queue", "err", err)
		return
	}
	for _, n := range due {
		if ctx.Err() != nil {
			return
		}
		t.attempt(ctx, n)
	}
}

// attempt sends n once and deletes or reschedules it.
func (t *Notifier) attempt(ctx context.Context, n notice) {
	s := t.s
	status, err := t.deliver(ctx, n)
	outcome := "failed"
	if err == nil {
		outcome = status.String()
	}
	s.m.noticesSent.WithLabelValues(outcome).Inc()
	b := s.db.NewBatch()
	now := s.now()
	switch {
	case err == nil && status != blob.TakedownBusy:
		if status == blob.TakedownRefused {
			s.log.Warn("takedown notice refused", "node", n.to.String(), "address", n.addr.String())
		}
		b.Delete(queueKey(n.to, n.addr))
	case now.Sub(time.UnixMilli(n.time)) > s.cfg.Retention:
		// The node's copy has expired by now.
		s.log.Warn("giving up an undelivered takedown notice", "node", n.to.String(), "address", n.addr.String(), "attempts", n.attempts)
		s.m.noticesSent.WithLabelValues("given_up").Inc()
		b.Delete(queueKey(n.to, n.addr))
	default:
		s.log.Debug("takedown notice not delivered", "node", n.to.String(), "err", err)
		n.attempts++
		n.next = now.Add(t.backoff(n.attempts)).UnixMilli()
		b.Set(queueKey(n.to, n.addr), n.encode())
	}
	if err := s.db.Commit(ctx, b); err != nil && ctx.Err() == nil {
		s.log.Error("updating the takedown queue", "err", err)
	}
}

// backoff is a delay in [d/2, d] with d = min(maxBackoff, TakedownRetry ×
// 2^(attempt-1)).
func (t *Notifier) backoff(attempt uint32) time.Duration {
	d := t.s.cfg.TakedownRetry
	for i := uint32(1); i < attempt && d < maxBackoff; i++ {
		d *= 2
	}
	d = min(d, maxBackoff)
	return d/2 + rand.N(d/2+1) //nolint:gosec // jitter, not a secret
}

// deliver opens a stream to n.to, writes the signed notice and reads the
// answer, each step within FetchTimeout.
func (t *Notifier) deliver(ctx context.Context, n notice) (blob.TakedownStatus, error) {
	timeout := t.s.cfg.FetchTimeout
	octx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	st, err := t.h.NewStream(octx, peer.ID(n.to.PeerIDBytes()), t.proto)
	if err != nil {
		return 0, err
	}
	defer func() { _ = st.Reset() }()
	stop := context.AfterFunc(octx, func() { _ = st.Reset() })
	defer stop()
	_ = st.SetDeadline(time.Now().Add(timeout))
	msg := blob.SignTakedown(t.key, n.addr, n.time)
	if _, err := st.Write(msg.AppendFrame(nil)); err != nil {
		return 0, err
	}
	_ = st.CloseWrite()
	body, err := readFixedFrame(st, blob.TakedownAnswerSize)
	if err != nil {
		return 0, err
	}
	return blob.DecodeTakedownAnswer(body)
}

// readFixedFrame reads one frame whose body must be exactly size bytes.
func readFixedFrame(r io.Reader, size int) ([]byte, error) {
	var p [blob.FramePrefixLen]byte
	if _, err := io.ReadFull(r, p[:]); err != nil {
		return nil, err
	}
	n, err := blob.FrameLen(p)
	if err == nil && n != size {
		err = wire.Errorf("blob takedown frame", "length", "%d bytes, want %d", n, size)
	}
	if err != nil {
		return nil, err
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	return body, nil
}

// Handler returns the stream handler of the takedown protocol to register
// on the node's p2p host. A notice is applied when it is signed by, and
// comes from, the node this node fetched the blob from: the address is
// taken down here (Store.Takedown). Streams stop when ctx ends.
func (t *Notifier) Handler(ctx context.Context) network.StreamHandler {
	return func(st network.Stream) { t.handle(ctx, st) }
}

// Results of received notices, the values of the result label.
const (
	noticeDropped   = "dropped"   // the copy (or partial copy) was deleted
	noticeNothing   = "not_held"  // nothing cached from that node
	noticeRefused   = "refused"   // bad signature, or not from the blob's origin
	noticeMalformed = "malformed" // the frame did not decode
	noticeBusy      = "busy"
)

func (t *Notifier) handle(ctx context.Context, st network.Stream) {
	s := t.s
	stop := context.AfterFunc(ctx, func() { _ = st.Reset() })
	defer stop()
	_ = st.SetDeadline(time.Now().Add(s.cfg.FetchTimeout))
	body, err := readFixedFrame(st, blob.TakedownNoticeSize)
	var n blob.TakedownNotice
	if err == nil {
		n, err = blob.DecodeTakedownNotice(body)
	}
	if err != nil {
		s.m.noticesReceived.WithLabelValues(noticeMalformed).Inc()
		s.log.Debug("bad takedown notice", "peer", st.Conn().RemotePeer(), "err", err)
		_ = st.Reset()
		return
	}
	answer := func(result string, status blob.TakedownStatus) {
		s.m.noticesReceived.WithLabelValues(result).Inc()
		_, _ = st.Write(blob.AppendTakedownAnswer(nil, status))
		_ = st.Close()
	}
	select {
	case t.handling <- struct{}{}:
		defer func() { <-t.handling }()
	default:
		answer(noticeBusy, blob.TakedownBusy)
		return
	}
	result, status, err := t.apply(ctx, st.Conn().RemotePeer(), &n)
	if err != nil {
		s.log.Error("applying a takedown notice", "address", n.Address.String(), "err", err)
		answer(noticeBusy, blob.TakedownBusy)
		return
	}
	answer(result, status)
}

// fromOrigin reports whether the notice is signed by its origin and was
// sent by it.
func fromOrigin(from peer.ID, n *blob.TakedownNotice) bool {
	sender, err := keys.NodeIDFromPeerIDBytes([]byte(from))
	return err == nil && keys.Equal(sender, n.Origin) && n.Verify()
}

// apply checks n, received from the node from, and takes its address down
// if it names a blob cached from that node.
func (t *Notifier) apply(ctx context.Context, from peer.ID, n *blob.TakedownNotice) (string, blob.TakedownStatus, error) {
	s := t.s
	if !fromOrigin(from, n) {
		s.log.Warn("refused a takedown notice: not signed by the sending node", "peer", from, "address", n.Address.String())
		return noticeRefused, blob.TakedownRefused, nil
	}
	origin, cached, err := s.Origin(n.Address)
	if err != nil {
		return "", 0, err
	}
	if !cached {
		// Nothing cached (never fetched, expired, dropped before), or a
		// blob uploaded here: no other node decides about those.
		if _, gerr := s.get(n.Address); gerr == nil {
			s.log.Warn("refused a takedown notice for a blob uploaded here", "peer", from, "address", n.Address.String())
			return noticeRefused, blob.TakedownRefused, nil
		}
		return noticeNothing, blob.TakedownDone, nil
	}
	if !keys.Equal(origin, n.Origin) {
		s.log.Warn("refused a takedown notice: the blob came from another node", "peer", from, "address", n.Address.String())
		return noticeRefused, blob.TakedownRefused, nil
	}
	if err := s.Takedown(ctx, n.Address); err != nil {
		return "", 0, err
	}
	s.log.Info("dropped a cached blob on its origin's takedown notice", "address", n.Address.String(), "origin", n.Origin.String())
	return noticeDropped, blob.TakedownDone, nil
}
