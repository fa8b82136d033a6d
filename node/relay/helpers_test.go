package relay_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/parley-chat/parley/node/internal/poll"
	"github.com/parley-chat/parley/node/mailbox"
	"github.com/parley-chat/parley/node/relay"
	"github.com/parley-chat/parley/node/rooms"
	"github.com/parley-chat/parley/node/store"
	"github.com/parley-chat/parley/protocol/envelope"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/room"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fixture is a node's data path: store, rooms, mailbox and relay, with a
// fixed clock.
type fixture struct {
	fs    vfs.FS
	st    *store.Store
	rooms *rooms.Rooms
	mb    *mailbox.Mailbox
	relay *relay.Relay
	reg   *prometheus.Registry
	key   keys.NodeKey
	node  keys.NodeID
	now   time.Time
}

var nodeKey = func() keys.NodeKey {
	k, err := keys.NodeKeyFromSeed(make([]byte, keys.SeedSize))
	if err != nil {
		panic(err)
	}
	return k
}()

// newFixture opens everything on fs (a fresh memory filesystem if nil). It
// does not start the relay's pipeline: start does.
func newFixture(tb testing.TB, cfg relay.Config, fs vfs.FS, opts ...relay.Option) *fixture {
	tb.Helper()
	if fs == nil {
		fs = vfs.NewMem()
	}
	f := &fixture{fs: fs, reg: prometheus.NewRegistry(), key: nodeKey, node: nodeKey.Public(), now: t0}
	dir := "/d"
	if fs == vfs.Default {
		dir = tb.TempDir()
	}
	st, err := store.Open(store.Config{Dir: dir}, store.WithFS(fs))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	f.st = st
	f.rooms = rooms.New(st)
	clock := func() time.Time { return f.now }
	f.mb, err = mailbox.New(mailbox.Config{}, st, mailbox.WithRegisterer(f.reg), mailbox.WithClock(clock))
	if err != nil {
		tb.Fatal(err)
	}
	opts = append([]relay.Option{relay.WithRegisterer(f.reg), relay.WithClock(clock)}, opts...)
	f.relay, err = relay.New(cfg, st, f.rooms, f.mb, f.key, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	return f
}

// start runs the relay's pipeline until the test ends.
func (f *fixture) start(tb testing.TB) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := f.relay.Run(ctx); err != nil {
			tb.Errorf("Run = %v, want nil", err)
		}
	})
	tb.Cleanup(func() { cancel(); wg.Wait() })
}

// member is one side of a room, as its client holds it.
type member struct {
	acct   keys.AccountID
	ticket keys.TicketKeys
	room   *room.Room
}

type pair struct {
	rec  rooms.Record
	a, b *member
}

func account(i, j byte) keys.AccountID { return keys.AccountID{i, j, 0xac} }

// pair pairs a and b in a new room, both on this node, and returns it.
func (f *fixture) pair(tb testing.TB, a, b keys.AccountID) *pair {
	tb.Helper()
	ma, mb := &member{acct: a}, &member{acct: b}
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
	rec := rooms.Record{
		ID: ma.room.ID(),
		Sides: [2]rooms.Side{
			{Ticket: ma.ticket.Public(), Home: f.node, Account: a, Local: true},
			{Ticket: mb.ticket.Public(), Home: f.node, Account: b, Local: true},
		},
		Created: f.now,
	}
	f.putRoom(tb, rec)
	return &pair{rec: rec, a: ma, b: mb}
}

func (f *fixture) putRoom(tb testing.TB, rec rooms.Record) {
	tb.Helper()
	batch := f.st.NewBatch()
	if err := f.rooms.Put(batch, rec); err != nil {
		tb.Fatal(err)
	}
	if err := f.st.Commit(context.Background(), batch); err != nil {
		tb.Fatal(err)
	}
}

// seal seals text as m's next message at the fixture's time.
func (f *fixture) seal(tb testing.TB, m *member, text string) *envelope.Envelope {
	tb.Helper()
	env, err := m.room.Seal(envelope.ContentText, []byte(text), f.now, rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return env
}

// reparse returns an independent copy of env, as the API would parse it
// from a request.
func reparse(tb testing.TB, env *envelope.Envelope) *envelope.Envelope {
	tb.Helper()
	b, _ := env.MarshalBinary()
	e, err := envelope.Parse(b)
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

// snapshot returns every key and value in st, for before/after comparisons.
func snapshot(tb testing.TB, st *store.Store) string {
	tb.Helper()
	var sb strings.Builder
	err := st.Scan(nil, nil, 0, func(k, v []byte) bool {
		sb.WriteString(hex.EncodeToString(k) + "=" + hex.EncodeToString(v) + "\n")
		return true
	})
	if err != nil {
		tb.Fatal(err)
	}
	return sb.String()
}

// metric returns the metric family name from reg, or nil.
func metric(tb testing.TB, reg *prometheus.Registry, name string) *dto.MetricFamily {
	tb.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf
		}
	}
	return nil
}

// sends returns parley_relay_sends_total{result}.
func sends(tb testing.TB, reg *prometheus.Registry, result string) int {
	tb.Helper()
	for _, m := range metric(tb, reg, "parley_relay_sends_total").GetMetric() {
		if m.GetLabel()[0].GetValue() == result {
			return int(m.GetCounter().GetValue())
		}
	}
	return -1
}

// batches returns the number of batches and envelopes the pipeline
// committed, from parley_relay_batch_size.
func batches(tb testing.TB, reg *prometheus.Registry) (count, envelopes int) {
	tb.Helper()
	h := metric(tb, reg, "parley_relay_batch_size").GetMetric()[0].GetHistogram()
	return int(h.GetSampleCount()), int(h.GetSampleSum())
}

// waitQueued polls parley_relay_queue_depth until it is n.
func waitQueued(tb testing.TB, reg *prometheus.Registry, n int) {
	tb.Helper()
	poll.Until(tb, fmt.Sprintf("parley_relay_queue_depth is %d", n), func() bool {
		return int(metric(tb, reg, "parley_relay_queue_depth").GetMetric()[0].GetGauge().GetValue()) == n
	})
}
