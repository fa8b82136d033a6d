package forward_test

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/parley-chat/parley/node/accounts"
	"github.com/parley-chat/parley/node/internal/poll"
	"github.com/parley-chat/parley/node/internal/storetest"
	"github.com/parley-chat/parley/node/moderation"
	"github.com/parley-chat/parley/node/reports"
	"github.com/parley-chat/parley/node/reports/forward"
	"github.com/parley-chat/parley/node/rooms"
	"github.com/parley-chat/parley/node/store"
	"github.com/parley-chat/parley/protocol/disclosure"
	"github.com/parley-chat/parley/protocol/envelope"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/room"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/ipfs/go-log/v2/writer.(*MirrorWriter).logRoutine"),
		goleak.IgnoreTopFunction("github.com/libp2p/go-libp2p/p2p/transport/quicreuse.(*reuse).gc"),
		goleak.IgnoreAnyFunction("go.opencensus.io/stats/view.(*worker).start"),
	)
}

const proto = protocol.ID("/parley/test/report/1.0.0")

type penalizer struct {
	mu  sync.Mutex
	got []string
}

func (p *penalizer) Penalize(_ peer.ID, reason string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.got = append(p.got, reason)
}

func (p *penalizer) reasons() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.got...)
}

// fakeAccounts: every account exists; suspension in memory.
type fakeAccounts struct {
	mu        sync.Mutex
	suspended map[keys.AccountID]bool
}

func (f *fakeAccounts) Get(_ context.Context, id keys.AccountID) (accounts.Account, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return accounts.Account{ID: id, Suspended: f.suspended[id]}, nil
}

func (f *fakeAccounts) Suspend(_ context.Context, id keys.AccountID, _ string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.suspended[id] = true
	return nil
}

func (f *fakeAccounts) Unsuspend(_ context.Context, id keys.AccountID) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.suspended, id)
	return nil
}

func (f *fakeAccounts) RevokeAll(context.Context, keys.AccountID) (int, error) { return 0, nil }

func (f *fakeAccounts) is(id keys.AccountID) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.suspended[id]
}

// tnode is one node: store, rooms, moderation, reports, outbox, sender and
// handler on a loopback libp2p host.
type tnode struct {
	key   keys.NodeKey
	st    *store.Store
	rooms *rooms.Rooms
	accts *fakeAccounts
	mod   *moderation.Moderation
	rep   *reports.Reports
	ob    *forward.Outbox
	host  host.Host
	reg   *prometheus.Registry
	pen   *penalizer
}

func newNode(ctx context.Context, t *testing.T, wg *sync.WaitGroup) *tnode {
	t.Helper()
	return newNodeCfg(ctx, t, wg, forward.Config{Poll: 5 * time.Millisecond, BackoffBase: 5 * time.Millisecond, BackoffMax: 20 * time.Millisecond, Timeout: 5 * time.Second, PeerBurst: 4})
}

func newNodeCfg(ctx context.Context, t *testing.T, wg *sync.WaitGroup, cfg forward.Config) *tnode {
	t.Helper()
	n := &tnode{reg: prometheus.NewRegistry(), pen: &penalizer{}, accts: &fakeAccounts{suspended: map[keys.AccountID]bool{}}}
	var err error
	if n.key, err = keys.GenerateNodeKey(rand.Reader); err != nil {
		t.Fatal(err)
	}
	n.st = storetest.New(t, nil).Open()
	n.rooms = rooms.New(n.st)
	if n.mod, err = moderation.New(moderation.Config{ThrottleReporters: 1, SuspendReporters: 1}, n.st, n.accts, n.rooms, moderation.WithRegisterer(n.reg)); err != nil {
		t.Fatal(err)
	}
	n.ob = forward.NewOutbox(n.st)
	n.rep = reports.New(n.st, n.rooms, nil, reports.WithPolicy(n.mod), reports.WithForwarder(n.ob), reports.WithRegisterer(n.reg))
	priv, err := crypto.UnmarshalEd25519PrivateKey(append(n.key.Seed(), n.key.Public().PeerIDBytes()[6:]...))
	if err != nil {
		t.Fatal(err)
	}
	if n.host, err = libp2p.New(libp2p.Identity(priv), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.host.Close() })
	opts := []forward.Option{forward.WithRegisterer(n.reg), forward.WithPenalizer(n.pen)}
	h, err := forward.NewHandler(cfg, n.rep, opts...)
	if err != nil {
		t.Fatal(err)
	}
	n.host.SetStreamHandler(proto, h.StreamHandler(ctx))
	s, err := forward.NewSender(cfg, n.ob, n.host, proto, opts...)
	if err != nil {
		t.Fatal(err)
	}
	wg.Go(func() { _ = s.Run(ctx) })
	return n
}

func (n *tnode) knows(o *tnode) {
	n.host.Peerstore().AddAddrs(o.host.ID(), o.host.Addrs(), peerstore.PermanentAddrTTL)
}

// pair stores a room between acctA on a (the sender) and acctB on b (the
// reporter) on both nodes, and returns both sides' rooms.
func pair(t *testing.T, a, b *tnode, acctA, acctB keys.AccountID) (*room.Room, *room.Room, keys.TicketKeys) {
	t.Helper()
	ta, _ := keys.GenerateTicketKeys(rand.Reader)
	tb, _ := keys.GenerateTicketKeys(rand.Reader)
	ra, _ := room.Derive(ta, tb.Public())
	rb, _ := room.Derive(tb, ta.Public())
	sa := rooms.Side{Ticket: ta.Public(), Home: a.key.Public()}
	sb := rooms.Side{Ticket: tb.Public(), Home: b.key.Public()}
	for _, side := range []struct {
		n      *tnode
		local  *rooms.Side
		acct   keys.AccountID
		remote rooms.Side
	}{{a, &sa, acctA, sb}, {b, &sb, acctB, sa}} {
		l := *side.local
		l.Local, l.Account = true, side.acct
		batch := side.n.st.NewBatch()
		if err := side.n.rooms.Put(batch, rooms.Record{ID: ra.ID(), Created: time.Now(), Sides: [2]rooms.Side{l, side.remote}}); err != nil {
			t.Fatal(err)
		}
		if err := side.n.st.Commit(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
	}
	return ra, rb, tb
}

// harass has a's user send text to b's user, stamped by a, and returns
// b's user's disclosure of it.
func harass(t *testing.T, a *tnode, ra, rb *room.Room, reporter keys.TicketKeys, text string) *disclosure.Disclosure {
	t.Helper()
	now := time.Now()
	e, err := ra.Seal(envelope.ContentText, []byte(text), now, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if err := envelope.StampBatch(a.key, now, []*envelope.Envelope{e}); err != nil {
		t.Fatal(err)
	}
	o, err := rb.Open(e, a.key.Public())
	if err != nil {
		t.Fatal(err)
	}
	it, err := disclosure.ItemFromOpened(e, o)
	if err != nil {
		t.Fatal(err)
	}
	d, err := disclosure.New(reporter, disclosure.ReasonHarassment, "", now, []disclosure.Item{it})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// spec 13-moderation §2: a user of A harasses a user of B; B verifies the
// report and forwards it; A verifies it again, maps the ticket to its
// account and suspends it past its threshold; a replay counts once.
func TestForwardAcrossNodes(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	a, b := newNode(ctx, t, &wg), newNode(ctx, t, &wg)
	b.knows(a)
	harasser, victim := keys.AccountID{0xa1}, keys.AccountID{0xb1}
	ra, rb, tb := pair(t, a, b, harasser, victim)
	d := harass(t, a, ra, rb, tb, "I know where you live")
	rc, err := b.rep.Submit(ctx, victim, d)
	if err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "A suspends the harasser", func() bool { return a.accts.is(harasser) })
	poll.Until(t, "B's outbox is empty", func() bool { n, _ := b.ob.Pending(10); return n == 0 })
	got, err := a.rep.Get(ctx, rc.ID)
	if err != nil || got.From != b.key.Public() || got.Accused != harasser || string(got.Disclosure.Items[0].Plaintext) != "I know where you live" {
		t.Fatalf("A's stored report = %+v, %v", got, err)
	}
	acts, _ := a.mod.Actions(ctx, harasser)
	if len(acts) == 0 || acts[0].Evidence[0] != rc.ID {
		t.Fatalf("A's actions = %+v, want the report as evidence", acts)
	}

	// A replay: B queues it again (as after a lost answer); A counts it once.
	batch := b.st.NewBatch()
	enc, _ := d.MarshalBinary()
	b.ob.Enqueue(batch, a.key.Public(), rc.ID, enc, time.Now())
	if err := b.st.Commit(ctx, batch); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "the replay is answered", func() bool {
		return metric(b.reg, "parley_report_forward_sent_total", "duplicate") == 1
	})
	if n := metric(a.reg, "parley_moderation_reports_total", "counted"); n != 1 {
		t.Errorf("A counted %v reports, want 1", n)
	}

	// A forged report (B's node did not check it): A refuses it and
	// penalizes B; B drops it from its outbox.
	forged := harass(t, a, ra, rb, tb, "hello")
	forged.Items[0].Plaintext = []byte("I will hurt you")
	fenc, _ := forged.MarshalBinary()
	batch = b.st.NewBatch()
	b.ob.Enqueue(batch, a.key.Public(), [32]byte{1}, fenc, time.Now())
	if err := b.st.Commit(ctx, batch); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "the forgery is rejected", func() bool {
		return metric(b.reg, "parley_report_forward_sent_total", "rejected") == 1
	})
	poll.Until(t, "B's outbox is empty", func() bool { n, _ := b.ob.Pending(10); return n == 0 })
	if r := a.pen.reasons(); len(r) != 1 || r[0] != "report_invalid_report" {
		t.Errorf("A penalized %v, want report_invalid_report", r)
	}
	if n := metric(a.reg, "parley_reports_rejected_total", "bad_commitment", "federation"); n != 1 {
		t.Errorf("rejected{bad_commitment} = %v, want 1", n)
	}
}

// spec 13-moderation §2.1: a report whose forwarding failed waits out its
// backoff, unless a connection to its destination is established: then
// it is due at once.
func TestRetryOnReconnect(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	a := newNode(ctx, t, &wg)
	// B's first attempt fails (it knows no address of A); its backoff
	// would then last up to 10 hours.
	b := newNodeCfg(ctx, t, &wg, forward.Config{Poll: 5 * time.Millisecond, BackoffBase: 10 * time.Hour, BackoffMax: 10 * time.Hour, Timeout: 5 * time.Second})
	harasser, victim := keys.AccountID{0xa2}, keys.AccountID{0xb2}
	ra, rb, tb := pair(t, a, b, harasser, victim)
	if _, err := b.rep.Submit(ctx, victim, harass(t, a, ra, rb, tb, "go away")); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "B's first attempt fails", func() bool {
		return metric(b.reg, "parley_report_forward_sent_total", "failed") >= 1
	})
	cctx, ccancel := context.WithTimeout(ctx, poll.Timeout)
	defer ccancel()
	if err := b.host.Connect(cctx, peer.AddrInfo{ID: a.host.ID(), Addrs: a.host.Addrs()}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "B's outbox is empty", func() bool { n, _ := b.ob.Pending(10); return n == 0 })
	if v := metric(b.reg, "parley_report_forward_sent_total", "accepted"); v != 1 {
		t.Errorf("sent_total{accepted} = %v, want 1", v)
	}
}

// spec 13-moderation §2.3: garbage on the stream (an oversized length, a
// truncated frame, a malformed body) is refused, counted and penalized,
// and changes nothing.
func TestHandlerGarbage(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	a, b := newNode(ctx, t, &wg), newNode(ctx, t, &wg)
	b.knows(a)
	big := binary.BigEndian.AppendUint32(nil, 1<<30)
	for _, tc := range []struct {
		name  string
		frame []byte
		want  string
	}{
		{"oversized", big, "report_oversized"},
		{"truncated", append(binary.BigEndian.AppendUint32(nil, 100), 1, 2, 3), "report_truncated"},
		{"malformed", append(binary.BigEndian.AppendUint32(nil, 3), 9, 9, 9), "report_malformed"},
	} {
		s, err := b.host.NewStream(ctx, a.host.ID(), proto)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = s.Write(tc.frame)
		_ = s.CloseWrite()
		var one [1]byte
		if n, _ := s.Read(one[:]); n != 0 {
			t.Errorf("%s: got an answer", tc.name)
		}
		_ = s.Close()
		poll.Until(t, tc.name+" penalized", func() bool {
			r := a.pen.reasons()
			return len(r) > 0 && r[len(r)-1] == tc.want
		})
	}
	if list, _ := a.rep.List(ctx, 0); len(list) != 0 {
		t.Errorf("garbage stored %d reports", len(list))
	}
	if lint, err := testutil.GatherAndLint(a.reg); err != nil || len(lint) > 0 {
		t.Errorf("metric lint: %v, %v", lint, err)
	}
}

// metric returns the value of the counter name whose label values are
// values (in label-name order), or 0.
func metric(reg *prometheus.Registry, name string, values ...string) float64 {
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(values) {
				continue
			}
			for i, l := range m.GetLabel() {
				if l.GetValue() != values[i] {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}
