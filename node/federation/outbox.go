package federation

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/parley-chat/parley/node/relay"
	"github.com/parley-chat/parley/node/store"
	"github.com/parley-chat/parley/protocol/envelope"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/wire"
)

var (
	_ relay.Forwarder      = (*Outbox)(nil)
	_ relay.CommitNotifier = (*Outbox)(nil)
)

// ErrUnstamped is returned by Forward for an envelope without a stamp.
var ErrUnstamped = errors.New("federation: forwarding an unstamped envelope")

// outboxVersion is the version byte of an outbox entry.
const outboxVersion = 1

// Outbox is the durable per-destination queue of stamped envelopes waiting
// to be delivered to other nodes (spec 12-delivery §5). It implements
// relay.Forwarder and relay.CommitNotifier: the relay writes an envelope
// into the outbox inside the store batch of its send, and tells the outbox
// once that batch is durable, which makes the entry visible to the
// destination's Sender worker and wakes it.
//
// Each destination's entries are numbered in Forward order (send order); a
// destination's entries become visible only up to its watermark, the
// highest number below every entry still in an uncommitted batch, so that
// the sender never sends entry n+1 before entry n is durable. Its methods
// are safe for concurrent use.
type Outbox struct {
	st  *store.Store
	now func() time.Time

	mu     sync.Mutex
	queues map[keys.NodeID]*queue
	txns   map[*store.Batch][]forwarded
	added  chan struct{} // cap 1: a destination may have appeared
}

type queue struct {
	dest keys.NodeID
	wake chan struct{} // cap 1: entries became visible

	// Guarded by Outbox.mu.
	next    uint64   // the next number to give out
	pending []uint64 // numbers in uncommitted batches, ascending
	depth   int      // committed entries not yet removed
	// floor is a number at or below the queue's first entry: every entry
	// below it was removed. Scans start at the floor, so they do not walk
	// over the deletion tombstones of delivered entries.
	floor uint64
}

type forwarded struct {
	q   *queue
	seq uint64
}

// Entry is one queued envelope.
type Entry struct {
	Seq      uint64
	Enqueued time.Time
	// Env is the stamped envelope; nil if the stored entry does not decode
	// (the sender drops such an entry as corrupt).
	Env  *envelope.Envelope
	Size int // the envelope's encoded size
}

// NewOutbox opens the outbox kept in st, counting the queued entries of
// every destination.
func NewOutbox(st *store.Store, opts ...Option) (*Outbox, error) {
	o := buildOptions(opts)
	ob := &Outbox{
		st:     st,
		now:    o.now,
		queues: make(map[keys.NodeID]*queue),
		txns:   make(map[*store.Batch][]forwarded),
		added:  make(chan struct{}, 1),
	}
	prefix := []byte(store.PrefixOutbox)
	err := st.Scan(prefix, nil, 0, func(key, _ []byte) bool {
		dest, seq, ok := parseKey(key)
		if !ok {
			return true // not ours to judge; Peek never sees it
		}
		q := ob.queueLocked(dest)
		if q.depth == 0 {
			q.floor = seq // keys come in order: the first is the lowest
		}
		q.next = max(q.next, seq+1)
		q.depth++
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("federation: opening the outbox: %w", err)
	}
	return ob, nil
}

func outboxKey(dest keys.NodeID, seq uint64) []byte {
	k := make([]byte, 0, len(store.PrefixOutbox)+32+8)
	k = append(k, store.PrefixOutbox...)
	k = append(k, dest[:]...)
	return binary.BigEndian.AppendUint64(k, seq)
}

func parseKey(key []byte) (keys.NodeID, uint64, bool) {
	var dest keys.NodeID
	rest := key[len(store.PrefixOutbox):]
	if len(rest) != 32+8 {
		return dest, 0, false
	}
	copy(dest[:], rest[:32])
	return dest, binary.BigEndian.Uint64(rest[32:]), true
}

// queueLocked returns dest's queue, creating it. Call with mu held (or
// before the Outbox is shared).
func (ob *Outbox) queueLocked(dest keys.NodeID) *queue {
	q := ob.queues[dest]
	if q == nil {
		q = &queue{dest: dest, next: 1, floor: 1, wake: make(chan struct{}, 1)}
		ob.queues[dest] = q
	}
	return q
}

func (q *queue) visible() uint64 {
	if len(q.pending) > 0 {
		return q.pending[0] - 1
	}
	return q.next - 1
}

func poke(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Forward implements relay.Forwarder: it writes env (stamped) into b as
// home's next outbox entry.
func (ob *Outbox) Forward(b *store.Batch, home keys.NodeID, env *envelope.Envelope) error {
	if env.Stamp == nil {
		return ErrUnstamped
	}
	body, err := env.MarshalBinary()
	if err != nil {
		return err
	}
	e := wire.NewEncoder(1 + 8 + len(body))
	e.U8(outboxVersion)
	e.I64(ob.now().UnixNano())
	e.Fixed(body)
	ob.mu.Lock()
	q := ob.queueLocked(home)
	seq := q.next
	q.next++
	q.pending = append(q.pending, seq)
	ob.txns[b] = append(ob.txns[b], forwarded{q: q, seq: seq})
	ob.mu.Unlock()
	b.Set(outboxKey(home, seq), e.Bytes())
	return nil
}

// Committed implements relay.CommitNotifier: the entries Forward wrote into
// b are durable (err nil) or will never be (err set, they become gaps).
// It wakes the senders of the destinations concerned.
func (ob *Outbox) Committed(b *store.Batch, err error) {
	ob.mu.Lock()
	fs := ob.txns[b]
	delete(ob.txns, b)
	var woken []*queue
	for _, f := range fs {
		q := f.q
		if i, ok := slices.BinarySearch(q.pending, f.seq); ok {
			q.pending = slices.Delete(q.pending, i, i+1)
		}
		if err == nil {
			q.depth++
		}
		if len(woken) == 0 || woken[len(woken)-1] != q {
			woken = append(woken, q)
		}
	}
	ob.mu.Unlock()
	for _, q := range woken {
		poke(q.wake)
	}
	if len(fs) > 0 {
		poke(ob.added)
	}
}

// Destinations returns every destination that has (or had, since the
// start) a queue.
func (ob *Outbox) Destinations() []keys.NodeID {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	out := make([]keys.NodeID, 0, len(ob.queues))
	for d := range ob.queues {
		out = append(out, d)
	}
	return out
}

// Added returns a channel that receives when a destination may have got
// its first entries since the last receive.
func (ob *Outbox) Added() <-chan struct{} { return ob.added }

// wakeChan returns dest's wake channel, creating its queue.
func (ob *Outbox) wakeChan(dest keys.NodeID) <-chan struct{} {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	return ob.queueLocked(dest).wake
}

// Depth returns the number of durable entries queued for dest.
func (ob *Outbox) Depth(dest keys.NodeID) int {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	if q := ob.queues[dest]; q != nil {
		return q.depth
	}
	return 0
}

// Peek returns dest's first visible entries numbered from on, in order:
// at most limit of them and, beyond the first, at most maxBytes of
// envelopes. from 0 means the head of the queue.
func (ob *Outbox) Peek(dest keys.NodeID, from uint64, limit, maxBytes int) ([]Entry, error) {
	ob.mu.Lock()
	q := ob.queues[dest]
	var visible uint64
	if q != nil {
		visible = q.visible()
		from = max(from, q.floor)
	}
	ob.mu.Unlock()
	if visible == 0 || from > visible {
		return nil, nil
	}
	var out []Entry
	size := 0
	prefix := store.Key(store.PrefixOutbox, dest[:])
	var after []byte
	if from > 1 {
		after = outboxKey(dest, from-1)
	}
	err := ob.st.Scan(prefix, after, 0, func(key, v []byte) bool {
		_, seq, ok := parseKey(key)
		if !ok || seq > visible || len(out) >= limit {
			return false
		}
		e := decodeEntry(seq, v)
		if len(out) > 0 && size+e.Size > maxBytes {
			return false
		}
		size += e.Size
		out = append(out, e)
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("federation: reading the outbox: %w", err)
	}
	return out, nil
}

// available returns how many of dest's entries numbered from on are
// visible, at most: numbers lost to a failed commit count too.
func (ob *Outbox) available(dest keys.NodeID, from uint64) int {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	q := ob.queues[dest]
	if q == nil {
		return 0
	}
	from = max(from, q.floor)
	if v := q.visible(); v >= from {
		return int(min(v-from+1, 1<<30))
	}
	return 0
}

func decodeEntry(seq uint64, v []byte) Entry {
	e := Entry{Seq: seq, Size: len(v)}
	if len(v) < 9 || v[0] != outboxVersion {
		return e
	}
	e.Enqueued = time.Unix(0, int64(binary.BigEndian.Uint64(v[1:9]))).UTC()
	env, err := envelope.Parse(v[9:])
	if err == nil && env.Stamp != nil {
		e.Env = env
		e.Size = len(v) - 9
	}
	return e
}

// Oldest returns the enqueue time of dest's first durable entry.
func (ob *Outbox) Oldest(dest keys.NodeID) (time.Time, bool) {
	ob.mu.Lock()
	var after []byte
	if q := ob.queues[dest]; q != nil && q.floor > 1 {
		after = outboxKey(dest, q.floor-1)
	}
	ob.mu.Unlock()
	var t time.Time
	found := false
	err := ob.st.Scan(store.Key(store.PrefixOutbox, dest[:]), after, 1, func(_, v []byte) bool {
		if len(v) >= 9 {
			t = time.Unix(0, int64(binary.BigEndian.Uint64(v[1:9]))).UTC()
			found = true
		}
		return false
	})
	return t, found && err == nil
}

// Remove deletes dest's entries seqs, which the destination acknowledged or
// which were dropped. The deletion is committed lazily: if a crash loses
// it, the entries are sent again and the destination answers duplicate.
// floor, if above 0, tells that every entry of dest numbered below it is
// now removed (the sender knows it when its Acks come in order); later
// reads start there.
func (ob *Outbox) Remove(ctx context.Context, dest keys.NodeID, seqs []uint64, floor uint64) error {
	if len(seqs) == 0 {
		return nil
	}
	b := ob.st.NewBatch()
	for _, s := range seqs {
		b.Delete(outboxKey(dest, s))
	}
	if err := ob.st.CommitLazy(ctx, b); err != nil {
		return fmt.Errorf("federation: removing from the outbox: %w", err)
	}
	ob.mu.Lock()
	if q := ob.queues[dest]; q != nil {
		q.depth = max(q.depth-len(seqs), 0)
		q.floor = max(q.floor, min(floor, q.visible()+1))
	}
	ob.mu.Unlock()
	return nil
}
