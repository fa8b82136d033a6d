package federation_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
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
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/parley-chat/parley/node/federation"
	"github.com/parley-chat/parley/node/internal/fakeclock"
	"github.com/parley-chat/parley/node/internal/storetest"
	"github.com/parley-chat/parley/node/mailbox"
	"github.com/parley-chat/parley/node/relay"
	"github.com/parley-chat/parley/node/rooms"
	"github.com/parley-chat/parley/node/store"
	"github.com/parley-chat/parley/protocol/envelope"
	fed "github.com/parley-chat/parley/protocol/federation"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/room"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// libp2p's process-wide background goroutines.
		goleak.IgnoreAnyFunction("github.com/ipfs/go-log/v2/writer.(*MirrorWriter).logRoutine"),
		goleak.IgnoreTopFunction("github.com/libp2p/go-libp2p/p2p/transport/quicreuse.(*reuse).gc"),
		goleak.IgnoreAnyFunction("go.opencensus.io/stats/view.(*worker).start"),
	)
}

var proto = protocol.ID(fed.ProtocolID("test"))

// testCfg has short backoffs so retries happen within a test.
func testCfg() federation.Config {
	return federation.Config{BackoffBase: 5 * time.Millisecond, BackoffMax: 40 * time.Millisecond, AckTimeout: 5 * time.Second, DialTimeout: 2 * time.Second}
}

// tnode is one node's delivery path: store, rooms, mailbox, relay, outbox,
// sender and handler on a loopback libp2p host.
type tnode struct {
	key   keys.NodeKey
	id    keys.NodeID
	disk  *storetest.Disk
	st    *store.Store
	rooms *rooms.Rooms
	mb    *mailbox.Mailbox
	relay *relay.Relay
	ob    *federation.Outbox
	host  host.Host
	reg   *prometheus.Registry
	pen   *penalizer

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type nodeOpts struct {
	cfg   federation.Config
	inbox func(relay *relay.Relay) federation.Inbox
	clock *fakeclock.Clock // for the federation package only
	extra []federation.Option
}

func newKey(tb testing.TB) keys.NodeKey {
	tb.Helper()
	k, err := keys.GenerateNodeKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func newHost(tb testing.TB, k keys.NodeKey) host.Host {
	tb.Helper()
	priv, err := crypto.UnmarshalEd25519PrivateKey(append(k.Seed(), k.Public().PeerIDBytes()[6:]...))
	if err != nil {
		tb.Fatal(err)
	}
	h, err := libp2p.New(libp2p.Identity(priv), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

// start opens (or reopens) the node's store and runs everything until stop.
func start(tb testing.TB, k keys.NodeKey, disk *storetest.Disk, o nodeOpts) *tnode {
	tb.Helper()
	if disk == nil {
		disk = storetest.New(tb, nil)
	}
	n := &tnode{key: k, id: k.Public(), disk: disk, reg: prometheus.NewRegistry(), pen: &penalizer{}}
	n.st = disk.Open()
	n.rooms = rooms.New(n.st)
	var fopts []federation.Option
	fopts = append(fopts, federation.WithRegisterer(n.reg), federation.WithPenalizer(n.pen))
	if o.clock != nil {
		fopts = append(fopts, federation.WithClock(o.clock.Now))
	}
	var err error
	if n.mb, err = mailbox.New(mailbox.Config{}, n.st); err != nil {
		tb.Fatal(err)
	}
	if n.ob, err = federation.NewOutbox(n.st, fopts...); err != nil {
		tb.Fatal(err)
	}
	if n.relay, err = relay.New(relay.Config{}, n.st, n.rooms, n.mb, k, relay.WithForwarder(n.ob)); err != nil {
		tb.Fatal(err)
	}
	n.host = newHost(tb, k)
	var inbox federation.Inbox = n.relay
	if o.inbox != nil {
		inbox = o.inbox(n.relay)
	}
	h, err := federation.NewHandler(o.cfg, inbox, append(fopts, o.extra...)...)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := federation.NewSender(o.cfg, n.ob, n.host, proto, fopts...)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	n.host.SetStreamHandler(proto, h.StreamHandler(ctx))
	n.wg.Go(func() { _ = n.relay.Run(ctx) })
	n.wg.Go(func() {
		if err := s.Run(ctx); err != nil {
			tb.Errorf("Sender.Run = %v", err)
		}
	})
	tb.Cleanup(n.stop)
	return n
}

// stop stops the node (idempotent); its store stays open until reopened.
func (n *tnode) stop() {
	if n.cancel == nil {
		return
	}
	n.cancel()
	n.wg.Wait()
	_ = n.host.Close()
	n.cancel = nil
}

// knows tells n where other listens.
func (n *tnode) knows(other *tnode) {
	n.host.Peerstore().AddAddrs(other.host.ID(), other.host.Addrs(), peerstore.PermanentAddrTTL)
}

// member is one side of a cross-node room.
type member struct {
	node   *tnode
	acct   keys.AccountID
	ticket keys.TicketKeys
	room   *room.Room
}

// pairAcross pairs an account of a with one of b: each node stores the
// room with its own side local.
func pairAcross(tb testing.TB, a, b *tnode, i byte) (*member, *member) {
	tb.Helper()
	ma := &member{node: a, acct: keys.AccountID{i, 0xa}}
	mb := &member{node: b, acct: keys.AccountID{i, 0xb}}
	var err error
	for _, m := range []*member{ma, mb} {
		if m.ticket, err = keys.GenerateTicketKeys(rand.Reader); err != nil {
			tb.Fatal(err)
		}
	}
	if ma.room, err = room.Derive(ma.ticket, mb.ticket.Public()); err != nil {
		tb.Fatal(err)
	}
	if mb.room, err = room.Derive(mb.ticket, ma.ticket.Public()); err != nil {
		tb.Fatal(err)
	}
	for _, side := range []struct {
		n      *tnode
		local  *member
		remote *member
	}{{a, ma, mb}, {b, mb, ma}} {
		rec := rooms.Record{
			ID: ma.room.ID(),
			Sides: [2]rooms.Side{
				{Ticket: side.local.ticket.Public(), Home: side.local.node.id, Account: side.local.acct, Local: true},
				{Ticket: side.remote.ticket.Public(), Home: side.remote.node.id},
			},
			Created: time.Now(),
		}
		putRoom(tb, side.n, rec)
	}
	return ma, mb
}

func putRoom(tb testing.TB, n *tnode, rec rooms.Record) {
	tb.Helper()
	b := n.st.NewBatch()
	if err := n.rooms.Put(b, rec); err != nil {
		tb.Fatal(err)
	}
	if err := n.st.Commit(context.Background(), b); err != nil {
		tb.Fatal(err)
	}
}

// send seals text from m to its partner and sends it through m's node.
func send(tb testing.TB, m *member, txid, text string) {
	tb.Helper()
	env, err := m.room.Seal(envelope.ContentText, []byte(text), time.Now(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := m.node.relay.Send(context.Background(), m.acct, txid, env); err != nil {
		tb.Fatalf("Send(%s) = %v", txid, err)
	}
}

// received opens every message in m's mailbox.
func received(tb testing.TB, m *member, partnerHome keys.NodeID) []string {
	tb.Helper()
	evs, err := m.node.mb.Read(context.Background(), m.acct, 0, mailbox.MaxReadLimit)
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
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
	}
	return out
}

func count(tb testing.TB, m *member) int {
	tb.Helper()
	evs, err := m.node.mb.Read(context.Background(), m.acct, 0, mailbox.MaxReadLimit)
	if err != nil {
		tb.Fatal(err)
	}
	return len(evs)
}

// metric returns the value of name{labels...} in reg (counter, gauge, or
// a histogram's sample count); -1 if absent.
func metric(tb testing.TB, reg *prometheus.Registry, name string, labelValues ...string) float64 {
	tb.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if !labelsMatch(m, labelValues) {
				continue
			}
			switch {
			case m.Counter != nil:
				return m.GetCounter().GetValue()
			case m.Gauge != nil:
				return m.GetGauge().GetValue()
			case m.Histogram != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return -1
}

func labelsMatch(m *dto.Metric, values []string) bool {
	if len(values) != len(m.GetLabel()) {
		return false
	}
	for i, l := range m.GetLabel() {
		if l.GetValue() != values[i] {
			return false
		}
	}
	return true
}

// snapshot returns every key and value in st.
func snapshot(tb testing.TB, st *store.Store) string {
	tb.Helper()
	var sb strings.Builder
	if err := st.Scan(nil, nil, 0, func(k, v []byte) bool {
		sb.WriteString(hex.EncodeToString(k) + "=" + hex.EncodeToString(v) + "\n")
		return true
	}); err != nil {
		tb.Fatal(err)
	}
	return sb.String()
}

// penalizer records Penalize calls.
type penalizer struct {
	mu      sync.Mutex
	reasons []string
}

func (p *penalizer) Penalize(_ peer.ID, reason string) {
	p.mu.Lock()
	p.reasons = append(p.reasons, reason)
	p.mu.Unlock()
}

func (p *penalizer) got() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.reasons...)
}
