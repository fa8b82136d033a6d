package relay_test

import (
	"context"
	"crypto/rand"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/node/relay"
	"github.com/parley-chat/parley/node/rooms"
	"github.com/parley-chat/parley/node/store"
	"github.com/parley-chat/parley/protocol/envelope"
	fed "github.com/parley-chat/parley/protocol/federation"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/wire"
)

// remotePair is a room between local account a and b, b homed at remote.
func (f *fixture) remotePair(tb testing.TB, remote keys.NodeID) *pair {
	tb.Helper()
	p := f.pair(tb, account(3, 1), account(3, 2))
	p.rec.Sides[1] = rooms.Side{Ticket: p.rec.Sides[1].Ticket, Home: remote}
	f.putRoom(tb, p.rec)
	return p
}

// fromRemote seals texts as b's messages and stamps them with k at f.now.
func (f *fixture) fromRemote(tb testing.TB, k keys.NodeKey, p *pair, texts ...string) []*envelope.Envelope {
	tb.Helper()
	envs := make([]*envelope.Envelope, len(texts))
	for i, text := range texts {
		envs[i] = f.seal(tb, p.b, text)
	}
	if err := envelope.StampBatch(k, f.now, envs); err != nil {
		tb.Fatal(err)
	}
	return envs
}

func newNodeKey(tb testing.TB) keys.NodeKey {
	tb.Helper()
	k, err := keys.GenerateNodeKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func statuses(res []relay.AcceptResult) []fed.Result {
	out := make([]fed.Result, len(res))
	for i, r := range res {
		out[i] = fed.Result{Status: r.Status, Reason: r.Reason}
	}
	return out
}

// spec 12-delivery §4: accepted envelopes land in the recipient's mailbox,
// in order, once; a second delivery (a lost ack) and a repeat within one
// batch are duplicates.
func TestAcceptStoresOnce(t *testing.T) {
	f := newFixture(t, relay.Config{}, nil)
	remote := newNodeKey(t)
	p := f.remotePair(t, remote.Public())
	envs := f.fromRemote(t, remote, p, "one", "two", "three")
	ctx := context.Background()

	res, err := f.relay.Accept(ctx, remote.Public(), append(envs, envs[1]))
	if err != nil {
		t.Fatalf("Accept = %v", err)
	}
	want := []fed.Result{{Status: fed.Stored}, {Status: fed.Stored}, {Status: fed.Stored}, {Status: fed.Duplicate}}
	if got := statuses(res); !equalResults(got, want) {
		t.Fatalf("Accept = %v, want %v", got, want)
	}
	res, err = f.relay.Accept(ctx, remote.Public(), envs)
	if err != nil || !equalResults(statuses(res), []fed.Result{{Status: fed.Duplicate}, {Status: fed.Duplicate}, {Status: fed.Duplicate}}) {
		t.Fatalf("second Accept = %v, %v, want three duplicates", statuses(res), err)
	}
	evs, err := f.mb.Read(ctx, p.a.acct, 0, 0)
	if err != nil || len(evs) != 3 {
		t.Fatalf("Read(recipient) = %d events, %v, want 3", len(evs), err)
	}
	for i, ev := range evs {
		got, err := envelope.Parse(ev.Body)
		if err != nil {
			t.Fatal(err)
		}
		opened, err := p.a.room.Open(got, remote.Public())
		if err != nil || string(opened.Content) != []string{"one", "two", "three"}[i] {
			t.Errorf("event %d opens to %q, %v", i, opened.Content, err)
		}
	}
}

func equalResults(a, b []fed.Result) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// spec 12-delivery §4: each bad envelope is rejected with its reason and
// changes nothing; the good ones of the same batch are stored.
func TestAcceptRejects(t *testing.T) {
	f := newFixture(t, relay.Config{}, nil)
	remote, other := newNodeKey(t), newNodeKey(t)
	p := f.remotePair(t, remote.Public())
	ctx := context.Background()

	forged := f.fromRemote(t, other, p, "forged")[0]
	forged.Stamp.Node = remote.Public() // claims remote, signed by other
	wrongNode := f.fromRemote(t, other, p, "other node")[0]

	// A room whose remote side is homed at another node.
	q := f.remotePair(t, other.Public())
	notPartner := f.fromRemote(t, remote, q, "not your room")[0]
	// A room that does not exist here.
	stray := f.fromRemote(t, remote, p, "stray")[0]
	stray.Header.Room = keys.RoomID{9}
	if err := envelope.StampBatch(remote, f.now, []*envelope.Envelope{stray}); err != nil {
		t.Fatal(err)
	}
	// Stamped in the receiver's future, and too old.
	saved := f.now
	f.now = saved.Add(wire.MaxClockSkew + time.Minute)
	future := f.fromRemote(t, remote, p, "future")[0]
	f.now = saved.Add(-relay.DefaultConfig().TxRetention)
	old := f.fromRemote(t, remote, p, "old")[0]
	f.now = saved
	good := f.fromRemote(t, remote, p, "good")[0]

	before := snapshot(t, f.st)
	bad := []*envelope.Envelope{forged, wrongNode, notPartner, stray, future, old}
	res, err := f.relay.Accept(ctx, remote.Public(), bad)
	if err != nil {
		t.Fatal(err)
	}
	want := []fed.Result{
		{Status: fed.Rejected, Reason: fed.ReasonBadStamp},
		{Status: fed.Rejected, Reason: fed.ReasonWrongNode},
		{Status: fed.Rejected, Reason: fed.ReasonNoRoom},
		{Status: fed.Rejected, Reason: fed.ReasonNoRoom},
		{Status: fed.Rejected, Reason: fed.ReasonBadHeader},
		{Status: fed.Rejected, Reason: fed.ReasonExpired},
	}
	if got := statuses(res); !equalResults(got, want) {
		t.Fatalf("Accept(bad) = %v, want %v", got, want)
	}
	if snapshot(t, f.st) != before {
		t.Errorf("rejected envelopes changed the store")
	}
	res, err = f.relay.Accept(ctx, remote.Public(), []*envelope.Envelope{forged, good})
	if err != nil || !equalResults(statuses(res), []fed.Result{want[0], {Status: fed.Stored}}) {
		t.Fatalf("Accept(forged, good) = %v, %v", statuses(res), err)
	}
	if evs, _ := f.mb.Read(ctx, p.a.acct, 0, 0); len(evs) != 1 {
		t.Errorf("recipient has %d events, want 1 (the good one)", len(evs))
	}

	// Closed room: envelopes stamped before the close still arrive, later ones not.
	before1 := f.fromRemote(t, remote, p, "before close")[0]
	f.now = f.now.Add(time.Second)
	if err := f.relay.Leave(ctx, p.a.acct, p.rec.ID); err != nil {
		t.Fatal(err)
	}
	after := f.fromRemote(t, remote, p, "after close")[0]
	f.now = f.now.Add(2 * time.Second) // past the rooms cache
	res, err = f.relay.Accept(ctx, remote.Public(), []*envelope.Envelope{before1, after})
	if err != nil || !equalResults(statuses(res), []fed.Result{{Status: fed.Stored}, {Status: fed.Rejected, Reason: fed.ReasonRoomClosed}}) {
		t.Fatalf("Accept(closed room) = %v, %v", statuses(res), err)
	}
	if _, err := f.relay.Accept(ctx, remote.Public(), make([]*envelope.Envelope, wire.MaxDeliverEnvelopes+1)); !errors.Is(err, relay.ErrTooManyEnvelopes) {
		t.Errorf("Accept(too many) = %v, want ErrTooManyEnvelopes", err)
	}
}

// spec 12-delivery §4: concurrent deliveries of one envelope store it once.
func TestAcceptConcurrent(t *testing.T) {
	f := newFixture(t, relay.Config{}, nil)
	remote := newNodeKey(t)
	p := f.remotePair(t, remote.Public())
	envs := f.fromRemote(t, remote, p, "a", "b")
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := f.relay.Accept(context.Background(), remote.Public(), envs); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if evs, _ := f.mb.Read(context.Background(), p.a.acct, 0, 0); len(evs) != 2 {
		t.Errorf("recipient has %d events, want 2", len(evs))
	}
}

// notifyingOutbox is a Forwarder and CommitNotifier.
type notifyingOutbox struct {
	outbox
	mu2       sync.Mutex
	committed []error
}

func (o *notifyingOutbox) Committed(_ *store.Batch, err error) {
	o.mu2.Lock()
	o.committed = append(o.committed, err)
	o.mu2.Unlock()
}

// The relay tells a CommitNotifier forwarder once per committed batch that
// went to the outbox, and not about local-only batches.
func TestCommitNotifier(t *testing.T) {
	out := &notifyingOutbox{}
	f := newFixture(t, relay.Config{}, nil, relay.WithForwarder(out))
	f.start(t)
	remote := newNodeKey(t)
	p := f.remotePair(t, remote.Public())
	ctx := context.Background()
	if _, err := f.relay.Send(ctx, p.a.acct, "r", f.seal(t, p.a, "far")); err != nil {
		t.Fatal(err)
	}
	q := f.pair(t, account(4, 1), account(4, 2))
	if _, err := f.relay.Send(ctx, q.a.acct, "l", f.seal(t, q.a, "near")); err != nil {
		t.Fatal(err)
	}
	out.mu2.Lock()
	defer out.mu2.Unlock()
	if len(out.committed) != 1 || out.committed[0] != nil {
		t.Errorf("Committed calls = %v, want one with nil", out.committed)
	}
}
