package reports_test

import (
	"context"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/parley-chat/parley/node/moderation"
	"github.com/parley-chat/parley/node/reports"
	"github.com/parley-chat/parley/node/rooms"
	"github.com/parley-chat/parley/node/store"
	"github.com/parley-chat/parley/protocol/disclosure"
	"github.com/parley-chat/parley/protocol/envelope"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/room"
)

type world struct {
	st           *store.Store
	rs           *rooms.Rooms
	node         keys.NodeKey
	acctA, acctB keys.AccountID
	tkA, tkB     keys.TicketKeys
	roomA, roomB *room.Room
	now          time.Time
}

func setup(t *testing.T) *world {
	t.Helper()
	st, err := store.Open(store.Config{Dir: "/d"}, store.WithFS(vfs.NewMem()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	w := &world{st: st, rs: rooms.New(st), now: time.UnixMilli(1_790_000_000_000)}
	w.node, _ = keys.GenerateNodeKey(rand.Reader)
	a, _ := keys.GenerateAccountKey(rand.Reader)
	b, _ := keys.GenerateAccountKey(rand.Reader)
	w.acctA, w.acctB = a.Public(), b.Public()
	w.tkA, _ = keys.GenerateTicketKeys(rand.Reader)
	w.tkB, _ = keys.GenerateTicketKeys(rand.Reader)
	w.roomA, _ = room.Derive(w.tkA, w.tkB.Public())
	w.roomB, _ = room.Derive(w.tkB, w.tkA.Public())
	rec := rooms.Record{ID: w.roomA.ID(), Created: w.now, Sides: [2]rooms.Side{
		{Ticket: w.tkA.Public(), Home: w.node.Public(), Account: w.acctA, Local: true},
		{Ticket: w.tkB.Public(), Home: w.node.Public(), Account: w.acctB, Local: true},
	}}
	batch := st.NewBatch()
	if err := w.rs.Put(batch, rec); err != nil {
		t.Fatal(err)
	}
	if err := st.Commit(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	return w
}

// B harasses A; A reports the message.
func (w *world) disclosure(t *testing.T) *disclosure.Disclosure {
	t.Helper()
	return w.disclosureOf(t, "you are awful")
}

// disclosureOf is A's report of B's message text.
func (w *world) disclosureOf(t *testing.T, text string) *disclosure.Disclosure {
	t.Helper()
	e, err := w.roomB.Seal(envelope.ContentText, []byte(text), w.now, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if err := envelope.StampBatch(w.node, w.now, []*envelope.Envelope{e}); err != nil {
		t.Fatal(err)
	}
	o, err := w.roomA.Open(e, w.node.Public())
	if err != nil {
		t.Fatal(err)
	}
	item, err := disclosure.ItemFromOpened(e, o)
	if err != nil {
		t.Fatal(err)
	}
	d, err := disclosure.New(w.tkA, disclosure.ReasonHarassment, "", w.now, []disclosure.Item{item})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestSubmit(t *testing.T) {
	w := setup(t)
	r := reports.New(w.st, w.rs, func() time.Time { return w.now })
	d := w.disclosure(t)
	ctx := context.Background()
	rc, err := r.Submit(ctx, w.acctA, d)
	if err != nil || rc.Duplicate {
		t.Fatalf("Submit = %+v, %v", rc, err)
	}
	again, err := r.Submit(ctx, w.acctA, d)
	if err != nil || !again.Duplicate || again.ID != rc.ID {
		t.Fatalf("Submit(again) = %+v, %v, want a duplicate", again, err)
	}
	list, err := r.List(ctx, 0)
	if err != nil || len(list) != 1 || list[0].Reporter != w.acctA || string(list[0].Disclosure.Items[0].Plaintext) != "you are awful" {
		t.Fatalf("List = %+v, %v", list, err)
	}

	other, _ := keys.GenerateAccountKey(rand.Reader)
	if _, err := r.Submit(ctx, other.Public(), d); !errors.Is(err, reports.ErrNotFound) {
		t.Errorf("Submit(by a stranger) = %v, want ErrNotFound", err)
	}
	if _, err := r.Submit(ctx, w.acctB, d); !errors.Is(err, reports.ErrNotReporter) {
		t.Errorf("Submit(A's disclosure by B) = %v, want ErrNotReporter", err)
	}
	forged := *d
	forged.Items = append([]disclosure.Item(nil), d.Items...)
	forged.Items[0].Plaintext = []byte("you are lovely")
	if _, err := r.Submit(ctx, w.acctA, &forged); !errors.Is(err, reports.ErrInvalid) || !errors.Is(err, disclosure.ErrBadCommitment) {
		t.Errorf("Submit(tampered) = %v, want ErrInvalid wrapping ErrBadCommitment", err)
	}
	if list, _ := r.List(ctx, 0); len(list) != 1 {
		t.Fatalf("refused reports were stored: %d", len(list))
	}
}

type fakePolicy struct{ got []moderation.Evidence }

func (f *fakePolicy) Reported(_ context.Context, ev moderation.Evidence) (moderation.Outcome, error) {
	f.got = append(f.got, ev)
	return moderation.Outcome{}, nil
}

type fakeForwarder struct {
	to  []keys.NodeID
	ids [][32]byte
}

func (f *fakeForwarder) Enqueue(b *store.Batch, to keys.NodeID, id [32]byte, enc []byte, _ time.Time) {
	f.to, f.ids = append(f.to, to), append(f.ids, id)
	b.Set([]byte("test/fwd"), enc)
}

// spec 13-moderation §2: a report about a local account goes to the
// policy (again for a duplicate, which the policy counts once); one about a
// remote account is queued for its home node in the same write.
func TestSubmitPolicyAndForward(t *testing.T) {
	w := setup(t)
	pol, fwd := &fakePolicy{}, &fakeForwarder{}
	r := reports.New(w.st, w.rs, func() time.Time { return w.now }, reports.WithPolicy(pol), reports.WithForwarder(fwd))
	ctx := context.Background()
	d := w.disclosure(t)
	rc, err := r.Submit(ctx, w.acctA, d)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Submit(ctx, w.acctA, d); err != nil {
		t.Fatal(err)
	}
	if len(pol.got) != 2 || pol.got[0].Accused != w.acctB || pol.got[0].Reporter != [32]byte(w.acctA) || pol.got[0].Report != rc.ID || len(fwd.to) != 0 {
		t.Fatalf("policy got %+v, forwarder %v", pol.got, fwd.to)
	}
	got, _ := r.Get(ctx, rc.ID)
	if !got.AccusedLocal || got.Accused != w.acctB || got.IsResolved() {
		t.Errorf("stored = %+v", got)
	}
	res, err := r.Resolve(ctx, rc.ID, "carol", "warned")
	if err != nil || !res.IsResolved() || res.ResolvedBy != "carol" {
		t.Fatalf("Resolve = %+v, %v", res, err)
	}
	if got, _ := r.Get(ctx, rc.ID); got.Resolution != "warned" || !got.Resolved.Equal(w.now) {
		t.Errorf("after Resolve: %+v", got)
	}
	if _, err := r.Resolve(ctx, rc.ID, "", ""); !errors.Is(err, reports.ErrBadResolution) {
		t.Errorf("Resolve(no name) = %v", err)
	}
	if _, err := r.Resolve(ctx, [32]byte{1}, "carol", ""); !errors.Is(err, reports.ErrNoReport) {
		t.Errorf("Resolve(unknown) = %v", err)
	}

	// The same room with B on another node: the report is forwarded.
	other, _ := keys.GenerateNodeKey(rand.Reader)
	w2 := setup(t)
	w2.tkA, w2.tkB, w2.roomA, w2.roomB, w2.node = w.tkA, w.tkB, w.roomA, w.roomB, other
	rec := rooms.Record{ID: w.roomA.ID(), Created: w.now, Sides: [2]rooms.Side{
		{Ticket: w.tkA.Public(), Home: w.node.Public(), Account: w.acctA, Local: true},
		{Ticket: w.tkB.Public(), Home: other.Public()},
	}}
	b := w2.st.NewBatch()
	if err := w2.rs.Put(b, rec); err != nil {
		t.Fatal(err)
	}
	if err := w2.st.Commit(ctx, b); err != nil {
		t.Fatal(err)
	}
	pol2, fwd2 := &fakePolicy{}, &fakeForwarder{}
	r2 := reports.New(w2.st, w2.rs, func() time.Time { return w.now }, reports.WithPolicy(pol2), reports.WithForwarder(fwd2))
	rc2, err := r2.Submit(ctx, w.acctA, w2.disclosure(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(fwd2.to) != 1 || fwd2.to[0] != other.Public() || fwd2.ids[0] != rc2.ID || len(pol2.got) != 0 {
		t.Fatalf("forwarder got %v %x, policy %v", fwd2.to, fwd2.ids, pol2.got)
	}
	if ok, _ := w2.st.Has([]byte("test/fwd")); !ok {
		t.Error("the forwarder's write was not committed with the report")
	}
}

// spec 13-moderation §2.2: the accused's node takes a forwarded report only
// from the reporter's home node, and counts a replay once.
func TestReceive(t *testing.T) {
	c, files := loadCorpus(t)
	st, rs := corpusNode(t, c, false)
	pol := &fakePolicy{}
	r := reports.New(st, rs, func() time.Time { return time.UnixMilli(c.NowMs) }, reports.WithPolicy(pol))
	ctx := context.Background()
	raw := files["valid.b64"]
	if _, err := r.Receive(ctx, c.Node, raw); !errors.Is(err, reports.ErrWrongOrigin) {
		t.Errorf("Receive(from another node) = %v, want ErrWrongOrigin", err)
	}
	rc, err := r.Receive(ctx, c.ReporterNode, raw)
	if err != nil || rc.Duplicate {
		t.Fatalf("Receive = %+v, %v", rc, err)
	}
	again, err := r.Receive(ctx, c.ReporterNode, raw)
	if err != nil || !again.Duplicate {
		t.Fatalf("Receive(replay) = %+v, %v, want a duplicate", again, err)
	}
	if len(pol.got) != 2 || pol.got[0].Accused != c.Accused.Account || pol.got[0].Reporter != [32]byte(c.Reporter.Sign) {
		t.Fatalf("policy got %+v", pol.got)
	}
	s, err := r.Get(ctx, rc.ID)
	if err != nil || s.From != c.ReporterNode || s.Reporter != (keys.AccountID{}) || !s.AccusedLocal {
		t.Errorf("stored = %+v, %v", s, err)
	}
	// A report about a room this node does not have.
	w := setup(t)
	if _, err := reports.New(w.st, w.rs, nil).Receive(ctx, c.ReporterNode, raw); !errors.Is(err, reports.ErrNotLocal) {
		t.Errorf("Receive(unknown room) = %v, want ErrNotLocal", err)
	}
}
