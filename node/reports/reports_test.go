package reports_test

import (
	"context"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

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
	e, err := w.roomB.Seal(envelope.ContentText, []byte("you are awful"), w.now, rand.Reader)
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
