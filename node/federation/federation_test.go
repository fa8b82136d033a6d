package federation_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/parley-chat/parley/node/federation"
	"github.com/parley-chat/parley/node/internal/fakeclock"
	"github.com/parley-chat/parley/node/internal/poll"
	"github.com/parley-chat/parley/node/internal/storetest"
	"github.com/parley-chat/parley/node/mailbox"
	"github.com/parley-chat/parley/node/relay"
	"github.com/parley-chat/parley/protocol/envelope"
	fed "github.com/parley-chat/parley/protocol/federation"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/wire"
)

func texts(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s %d", prefix, i)
	}
	return out
}

// spec 12-delivery §5, §6: envelopes sent on A for B's account arrive in
// B's mailbox once each, in send order, in both directions; A's outbox
// empties.
func TestDeliverOnceInOrder(t *testing.T) {
	a := start(t, newKey(t), nil, nodeOpts{cfg: testCfg()})
	b := start(t, newKey(t), nil, nodeOpts{cfg: testCfg()})
	a.knows(b)
	b.knows(a)
	ma, mb := pairAcross(t, a, b, 1)
	want := texts("a to b", 60)
	for i, text := range want {
		send(t, ma, fmt.Sprint("a", i), text)
	}
	send(t, mb, "b0", "b to a")
	poll.Until(t, "B holds 60 messages", func() bool { return count(t, mb) >= 60 })
	poll.Until(t, "A holds 1 message", func() bool { return count(t, ma) >= 1 })
	if got := received(t, mb, a.id); !slices.Equal(got, want) {
		t.Fatalf("B received %q, want %q", got, want)
	}
	poll.Until(t, "A's outbox is empty", func() bool { return a.ob.Depth(b.id) == 0 })
	if v := metric(t, a.reg, "parley_federation_envelopes_sent_total", "stored"); v != 60 {
		t.Errorf("A's envelopes_sent_total{stored} = %v, want 60", v)
	}
	if v := metric(t, b.reg, "parley_federation_envelopes_received_total", "stored"); v != 60 {
		t.Errorf("B's envelopes_received_total{stored} = %v, want 60", v)
	}
	if v := metric(t, a.reg, "parley_federation_delivery_latency_seconds"); v != 60 {
		t.Errorf("A's delivery latency samples = %v, want 60", v)
	}
}

// spec 12-delivery §5: with B down, A queues and retries with backoff;
// A restarts (store reopened) while B is still down and resumes from its
// outbox; once B is up everything arrives once, in order.
func TestStoreAndForwardAcrossRestart(t *testing.T) {
	bKey := newKey(t)
	bDisk := storetest.New(t, nil)
	b := start(t, bKey, bDisk, nodeOpts{cfg: testCfg()})
	aDisk := storetest.New(t, nil)
	a := start(t, newKey(t), aDisk, nodeOpts{cfg: testCfg()})
	a.knows(b)
	ma, mb := pairAcross(t, a, b, 2)
	b.stop()

	want := texts("while down", 10)
	for i, text := range want[:5] {
		send(t, ma, fmt.Sprint(i), text)
	}
	poll.Until(t, "A retries", func() bool { return metric(t, a.reg, "parley_federation_retries_total") >= 2 })
	if v := metric(t, a.reg, "parley_federation_outbox_envelopes", "backoff"); v != 5 {
		t.Errorf("outbox_envelopes{backoff} = %v, want 5", v)
	}

	a.stop()
	a = start(t, a.key, aDisk, nodeOpts{cfg: testCfg()})
	ma.node = a
	if d := a.ob.Depth(b.id); d != 5 {
		t.Fatalf("after restart A's outbox holds %d, want 5", d)
	}
	for i, text := range want[5:] {
		send(t, ma, fmt.Sprint(5+i), text)
	}

	b = start(t, bKey, bDisk, nodeOpts{cfg: testCfg()})
	mb.node = b
	a.knows(b)
	poll.Until(t, "B holds 10 messages", func() bool { return count(t, mb) >= 10 })
	if got := received(t, mb, a.id); !slices.Equal(got, want) {
		t.Fatalf("B received %q, want %q", got, want)
	}
	poll.Until(t, "A's outbox is empty", func() bool { return a.ob.Depth(b.id) == 0 })
}

// dropFirstAck stores like the relay but fails the first call after
// storing, so the handler resets the stream instead of acknowledging: a
// lost ack.
type dropFirstAck struct {
	*relay.Relay
	dropped atomic.Bool
}

func (d *dropFirstAck) Accept(ctx context.Context, from keys.NodeID, envs []*envelope.Envelope) ([]relay.AcceptResult, error) {
	res, err := d.Relay.Accept(ctx, from, envs)
	if err == nil && d.dropped.CompareAndSwap(false, true) {
		return nil, errors.New("test: ack lost")
	}
	return res, err
}

// spec 12-delivery §5: an ack lost after B committed makes A retry; B
// answers duplicate, and the recipient sees the message once.
func TestAckLostIsDuplicate(t *testing.T) {
	a := start(t, newKey(t), nil, nodeOpts{cfg: testCfg()})
	b := start(t, newKey(t), nil, nodeOpts{cfg: testCfg(), inbox: func(r *relay.Relay) federation.Inbox { return &dropFirstAck{Relay: r} }})
	a.knows(b)
	ma, mb := pairAcross(t, a, b, 3)
	send(t, ma, "x", "once")
	poll.Until(t, "A's outbox is empty", func() bool { return a.ob.Depth(b.id) == 0 })
	if got := received(t, mb, a.id); !slices.Equal(got, []string{"once"}) {
		t.Errorf("B received %q, want [once]", got)
	}
	if v := metric(t, a.reg, "parley_federation_envelopes_sent_total", "duplicate"); v != 1 {
		t.Errorf("envelopes_sent_total{duplicate} = %v, want 1", v)
	}
}

// rawStream opens a delivery stream from a bare libp2p host to n.
func rawStream(t *testing.T, n *tnode, k keys.NodeKey) network.Stream {
	t.Helper()
	h := newHost(t, k)
	t.Cleanup(func() { _ = h.Close() })
	h.Peerstore().AddAddrs(n.host.ID(), n.host.Addrs(), peerstore.PermanentAddrTTL)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := h.NewStream(ctx, n.host.ID(), proto)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// expectReset reads from s until the peer resets or closes it.
func expectReset(t *testing.T, s network.Stream) {
	t.Helper()
	_ = s.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(s); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("stream read = %v, want a reset", err)
	}
}

// spec 12-delivery §3: an oversized length, a malformed body or a
// truncated frame resets the stream, is counted and reported to the
// penalizer, and changes nothing in the store; the node keeps serving.
func TestHostileFrames(t *testing.T) {
	b := start(t, newKey(t), nil, nodeOpts{cfg: testCfg()})
	before := snapshot(t, b.st)
	for _, tc := range []struct {
		name, reason string
		frame        []byte
		close        bool
	}{
		{"huge length", "oversized", []byte{0xff, 0xff, 0xff, 0xff}, false},
		{"zero length", "oversized", []byte{0, 0, 0, 0}, false},
		{"garbage", "malformed", []byte{0, 0, 0, 3, 9, 9, 9}, false},
		{"truncated", "truncated", []byte{0, 0, 0, 9, 1}, true},
	} {
		s := rawStream(t, b, newKey(t))
		if _, err := s.Write(tc.frame); err != nil {
			t.Fatal(err)
		}
		if tc.close {
			_ = s.CloseWrite()
		}
		expectReset(t, s)
		poll.Until(t, tc.name+" counted", func() bool {
			return metric(t, b.reg, "parley_federation_invalid_frames_total", tc.reason) >= 1
		})
	}
	if got := b.pen.got(); !slices.Equal(got, []string{"oversized", "oversized", "malformed", "truncated"}) {
		t.Errorf("penalized for %q", got)
	}
	if snapshot(t, b.st) != before {
		t.Errorf("hostile frames changed the store")
	}
}

// spec 12-delivery §4: envelopes whose stamp is forged or names another
// node are rejected with their reason and not stored.
func TestForgedStamp(t *testing.T) {
	b := start(t, newKey(t), nil, nodeOpts{cfg: testCfg()})
	a := start(t, newKey(t), nil, nodeOpts{cfg: testCfg()})
	ma, mb := pairAcross(t, a, b, 4)
	other := newKey(t)
	envs := make([]*envelope.Envelope, 2)
	for i := range envs {
		env, err := ma.room.Seal(envelope.ContentText, []byte("forged"), time.Now(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		envs[i] = env
	}
	if err := envelope.StampBatch(other, time.Now(), envs); err != nil {
		t.Fatal(err)
	}
	envs[1].Stamp.Node = a.id // claims A, signed by other
	before := snapshot(t, b.st)

	s := rawStream(t, b, a.key) // the connection is authenticated as A
	frame, err := (&fed.Batch{Seq: 7, Envelopes: envs}).AppendFrame(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write(frame); err != nil {
		t.Fatal(err)
	}
	ack := readAckFrame(t, s)
	want := []fed.Result{{Status: fed.Rejected, Reason: fed.ReasonWrongNode}, {Status: fed.Rejected, Reason: fed.ReasonBadStamp}}
	if ack.Seq != 7 || !slices.Equal(ack.Results, want) {
		t.Errorf("ack = %+v, want seq 7 and %v", ack, want)
	}
	_ = s.Reset()
	if snapshot(t, b.st) != before || count(t, mb) != 0 {
		t.Errorf("forged envelopes changed the store")
	}
}

// spec 12-delivery §3: a peer over its rate limit gets a busy ack and
// nothing is stored for that batch.
func TestBusy(t *testing.T) {
	cfg := testCfg()
	cfg.PeerRate, cfg.PeerBurst = 1, wire.MaxDeliverEnvelopes
	testBusy(t, nodeOpts{cfg: cfg, clock: fakeclock.New(time.Now())})
}

// spec 12-delivery §3, 13: a peer the operator throttles is held to
// throttled_peer_rate, whatever peer_rate allows others.
func TestThrottledPeer(t *testing.T) {
	cfg := testCfg()
	cfg.ThrottledPeerRate = 1
	testBusy(t, nodeOpts{cfg: cfg, clock: fakeclock.New(time.Now()),
		extra: []federation.Option{federation.WithThrottled(func(peer.ID) bool { return true })}})
}

// testBusy sends two batches of 600 envelopes at once: the first is taken,
// the second answered busy.
func testBusy(t *testing.T, o nodeOpts) {
	b := start(t, newKey(t), nil, o)
	k := newKey(t)
	envs := stampedJunk(t, k, 600)
	s := rawStream(t, b, k)
	for seq, wantBusy := range []bool{false, true} {
		frame, _ := (&fed.Batch{Seq: uint64(seq), Envelopes: envs}).AppendFrame(nil)
		if _, err := s.Write(frame); err != nil {
			t.Fatal(err)
		}
		if ack := readAckFrame(t, s); ack.Busy != wantBusy {
			t.Fatalf("ack %d = %+v, want busy %v", seq, ack, wantBusy)
		} else if wantBusy && ack.RetryAfter <= 0 {
			t.Errorf("busy ack with retry after %s", ack.RetryAfter)
		}
	}
	_ = s.Reset()
}

// spec 12-delivery §5: an envelope older than the retention is dropped
// from the outbox and counted.
func TestRetentionDrops(t *testing.T) {
	clock := fakeclock.New(time.Now())
	cfg := testCfg()
	cfg.Retention = time.Hour
	a := start(t, newKey(t), nil, nodeOpts{cfg: cfg, clock: clock})
	b := start(t, newKey(t), nil, nodeOpts{cfg: testCfg()})
	a.knows(b)
	ma, _ := pairAcross(t, a, b, 5)
	b.stop()
	send(t, ma, "x", "too late")
	poll.Until(t, "A retries", func() bool { return metric(t, a.reg, "parley_federation_retries_total") >= 1 })
	clock.Advance(2 * time.Hour)
	poll.Until(t, "the envelope expires", func() bool {
		return metric(t, a.reg, "parley_federation_drops_total", "expired") == 1
	})
	if d := a.ob.Depth(b.id); d != 0 {
		t.Errorf("outbox depth = %d after expiry, want 0", d)
	}
}

// spec 12 §4: an envelope stamped moments ago for a room this node does
// not have yet (its side of the pair is not settled) is not lost: the
// Batch is answered busy, to be sent again.
func TestRoomPendingIsBusy(t *testing.T) {
	b := start(t, newKey(t), nil, nodeOpts{cfg: testCfg()})
	k := newKey(t)
	s := rawStream(t, b, k)
	frame, err := (&fed.Batch{Seq: 1, Envelopes: stampedFor(t, k, 3, time.Now())}).AppendFrame(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write(frame); err != nil {
		t.Fatal(err)
	}
	if ack := readAckFrame(t, s); !ack.Busy || ack.RetryAfter <= 0 || len(ack.Results) != 0 {
		t.Errorf("ack = %+v, want busy with a retry time", ack)
	}
	_ = s.Reset()
}

func TestMetricsLint(t *testing.T) {
	a := start(t, newKey(t), nil, nodeOpts{cfg: testCfg()})
	problems, err := testutil.GatherAndLint(a.reg)
	if err != nil || len(problems) != 0 {
		t.Fatalf("GatherAndLint = %v, %v", problems, err)
	}
}

// stampedJunk returns n envelopes stamped by k for a room nobody has,
// three minutes ago: too old for the room to be pending (rejected
// no_room).
func stampedJunk(t *testing.T, k keys.NodeKey, n int) []*envelope.Envelope {
	t.Helper()
	return stampedFor(t, k, n, time.Now().Add(-3*time.Minute))
}

// stampedFor returns n envelopes stamped by k at at for a room nobody has.
func stampedFor(t *testing.T, k keys.NodeKey, n int, at time.Time) []*envelope.Envelope {
	t.Helper()
	envs := make([]*envelope.Envelope, n)
	for i := range envs {
		envs[i] = &envelope.Envelope{Header: envelope.Header{ContentType: 1, Room: keys.RoomID{1}, Sender: keys.TicketID{2}, Recipient: keys.TicketID{3}, Seq: uint64(i), Time: at.UnixMilli()}, Ciphertext: make([]byte, 272)}
	}
	if err := envelope.StampBatch(k, at, envs); err != nil {
		t.Fatal(err)
	}
	return envs
}

// readAckFrame reads one Ack from s.
func readAckFrame(t *testing.T, s network.Stream) *fed.Ack {
	t.Helper()
	var prefix [4]byte
	_ = s.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(s, prefix[:]); err != nil {
		t.Fatal(err)
	}
	n, err := fed.BodyLen(prefix)
	if err != nil {
		t.Fatal(err)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(s, body); err != nil {
		t.Fatal(err)
	}
	ack, err := fed.DecodeAck(body)
	if err != nil {
		t.Fatal(err)
	}
	return ack
}

// spec 12-delivery §1, §3: a sender may write Batches ahead of their Acks;
// they are answered in order, and once one is answered busy every later
// Batch on the stream is answered busy too, even one the rate limit would
// let through, so that nothing is taken ahead of a refused Batch.
func TestBusyRefusesLaterBatches(t *testing.T) {
	cfg := testCfg()
	cfg.PeerRate, cfg.PeerBurst = 1, wire.MaxDeliverEnvelopes
	b := start(t, newKey(t), nil, nodeOpts{cfg: cfg, clock: fakeclock.New(time.Now())})
	k := newKey(t)
	s := rawStream(t, b, k)
	// 600 pass (burst 1024), 600 do not, 10 would (424 tokens left).
	sizes := []int{600, 600, 10}
	for seq, n := range sizes {
		frame, err := (&fed.Batch{Seq: uint64(seq + 1), Envelopes: stampedJunk(t, k, n)}).AppendFrame(nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Write(frame); err != nil {
			t.Fatal(err)
		}
	}
	for i, wantBusy := range []bool{false, true, true} {
		ack := readAckFrame(t, s)
		if ack.Seq != uint64(i+1) || ack.Busy != wantBusy || (!wantBusy && len(ack.Results) != sizes[i]) {
			t.Errorf("ack %d = seq %d busy %v with %d results, want seq %d busy %v", i, ack.Seq, ack.Busy, len(ack.Results), i+1, wantBusy)
		}
	}
	_ = s.Reset()
	if v := metric(t, b.reg, "parley_federation_busy_acks_total", "sent"); v != 2 {
		t.Errorf("busy_acks_total{sent} = %v, want 2", v)
	}
}

// spec 12-delivery §1, §5: with several small Batches in flight and a
// receiver that answers some of them busy, every envelope still arrives
// once and in send order, and the outbox empties.
func TestWindowKeepsOrder(t *testing.T) {
	cfg := testCfg()
	cfg.MaxBatch, cfg.Window = 7, federation.MaxWindow
	recv := testCfg()
	recv.PeerRate, recv.PeerBurst = 200, wire.MaxDeliverEnvelopes
	clock := fakeclock.New(time.Now()) // B's rate limit refills only when told
	bKey := newKey(t)
	bDisk := storetest.New(t, nil)
	b := start(t, bKey, bDisk, nodeOpts{cfg: recv})
	a := start(t, newKey(t), nil, nodeOpts{cfg: cfg})
	a.knows(b)
	ma, mb := pairAcross(t, a, b, 6)
	b.stop()
	// Queued while B is down, then sent at once: many Batches in flight,
	// more envelopes than B's burst.
	want := texts("window", 1200)
	for i, text := range want {
		send(t, ma, fmt.Sprint(i), text)
	}
	b = start(t, bKey, bDisk, nodeOpts{cfg: recv, clock: clock})
	mb.node = b
	a.knows(b)
	poll.Until(t, "A is answered busy", func() bool {
		return metric(t, a.reg, "parley_federation_busy_acks_total", "received") >= 1
	})
	clock.Advance(time.Hour) // B's bucket is full again
	poll.Until(t, "A's outbox is empty", func() bool { return a.ob.Depth(b.id) == 0 })
	if got := receivedAll(t, mb, a.id); !slices.Equal(got, want) {
		t.Fatalf("B received %d messages, want %d in order (first difference at %d)", len(got), len(want), firstDiff(got, want))
	}
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// receivedAll opens every message in m's mailbox, reading it in pages.
func receivedAll(tb testing.TB, m *member, partnerHome keys.NodeID) []string {
	tb.Helper()
	var out []string
	var after uint64
	for {
		evs, err := m.node.mb.Read(context.Background(), m.acct, after, mailbox.MaxReadLimit)
		if err != nil {
			tb.Fatal(err)
		}
		if len(evs) == 0 {
			return out
		}
		for _, ev := range evs {
			env, err := envelope.Parse(ev.Body)
			if err != nil {
				tb.Fatal(err)
			}
			o, err := m.room.Open(env, partnerHome)
			if err != nil {
				tb.Fatalf("Open(event %d) = %v", ev.Pos, err)
			}
			out = append(out, string(o.Content))
			after = ev.Pos
		}
	}
}
