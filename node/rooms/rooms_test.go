package rooms_test

import (
	"context"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/goleak"

	"github.com/parley-chat/parley/node/rooms"
	"github.com/parley-chat/parley/node/store"
	"github.com/parley-chat/parley/protocol/keys"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func openStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(store.Config{Dir: "/d"}, store.WithFS(vfs.NewMem()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func ticket(t *testing.T) keys.TicketPublic {
	t.Helper()
	k, err := keys.GenerateTicketKeys(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k.Public()
}

func node(t *testing.T) keys.NodeID {
	t.Helper()
	k, err := keys.GenerateNodeKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k.Public()
}

func account(b byte) keys.AccountID { return keys.AccountID{b, 1, 2, 3} }

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)

// record returns an open room between two local accounts a and b.
func record(t *testing.T, id byte, a, b keys.AccountID, created time.Time) rooms.Record {
	home := node(t)
	return rooms.Record{
		ID: keys.RoomID{id},
		Sides: [2]rooms.Side{
			{Ticket: ticket(t), Home: home, Account: a, Local: true},
			{Ticket: ticket(t), Home: home, Account: b, Local: true},
		},
		Created: created,
	}
}

func put(t *testing.T, st *store.Store, r *rooms.Rooms, recs ...rooms.Record) {
	t.Helper()
	b := st.NewBatch()
	for _, rec := range recs {
		if err := r.Put(b, rec); err != nil {
			t.Fatalf("Put(%s) = %v, want nil", rec.ID, err)
		}
	}
	if err := st.Commit(context.Background(), b); err != nil {
		t.Fatal(err)
	}
}

func equal(a, b rooms.Record) bool {
	return a.ID == b.ID && a.Sides == b.Sides && a.Created.Equal(b.Created) && a.Closed.Equal(b.Closed) && a.ClosedBy == b.ClosedBy
}

func TestPutGet(t *testing.T) {
	remote := record(t, 2, account(3), keys.AccountID{}, t0)
	remote.Sides[1].Local = false
	remote.Sides[1].Home = node(t)
	closed := record(t, 3, account(4), account(5), t0)
	closed.Closed, closed.ClosedBy = t0.Add(time.Minute), closed.Sides[1].Ticket.Sign
	for _, tc := range []struct {
		name string
		rec  rooms.Record
	}{
		{"two local sides", record(t, 1, account(1), account(2), t0)},
		{"one remote side", remote},
		{"closed", closed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := openStore(t)
			r := rooms.New(st)
			put(t, st, r, tc.rec)
			got, err := r.Get(context.Background(), tc.rec.ID)
			if err != nil || !equal(got, tc.rec) {
				t.Fatalf("Get(%s) = %+v, %v, want %+v, nil", tc.rec.ID, got, err, tc.rec)
			}
			if got.Created.Location() != time.UTC {
				t.Errorf("Get(%s).Created location = %v, want UTC", tc.rec.ID, got.Created.Location())
			}
		})
	}
}

func TestGetNotFound(t *testing.T) {
	r := rooms.New(openStore(t))
	if _, err := r.Get(context.Background(), keys.RoomID{9}); !errors.Is(err, rooms.ErrNotFound) {
		t.Fatalf("Get(unknown) = %v, want ErrNotFound", err)
	}
}

func TestGetCorrupt(t *testing.T) {
	st := openStore(t)
	r := rooms.New(st)
	good := record(t, 1, account(1), account(2), t0)
	put(t, st, r, good)
	v, err := st.Get(store.Key(store.PrefixRoom, good.ID[:]))
	if err != nil {
		t.Fatal(err)
	}
	badVersion := append([]byte{2}, v[1:]...)
	badBool := append([]byte(nil), v...)
	badBool[1+32+32+32+32] = 7 // side 0's local flag
	otherID := append([]byte(nil), v...)
	otherID[1] ^= 1
	for _, tc := range []struct {
		name string
		v    []byte
	}{
		{"truncated", v[:len(v)-1]},
		{"trailing byte", append(append([]byte(nil), v...), 0)},
		{"unknown version", badVersion},
		{"flag not 0 or 1", badBool},
		{"names another room", otherID},
		{"empty", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := st.NewBatch()
			b.Set(store.Key(store.PrefixRoom, good.ID[:]), tc.v)
			if err := st.Commit(context.Background(), b); err != nil {
				t.Fatal(err)
			}
			if _, err := r.Get(context.Background(), good.ID); !errors.Is(err, rooms.ErrCorrupt) {
				t.Fatalf("Get(corrupt record) = %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestPutInvalid(t *testing.T) {
	valid := func() rooms.Record { return record(t, 1, account(1), account(2), t0) }
	for _, tc := range []struct {
		name   string
		mutate func(*rooms.Record)
	}{
		{"zero ID", func(r *rooms.Record) { r.ID = keys.RoomID{} }},
		{"no creation time", func(r *rooms.Record) { r.Created = time.Time{} }},
		{"same signing key", func(r *rooms.Record) { r.Sides[1].Ticket.Sign = r.Sides[0].Ticket.Sign }},
		{"same X25519 key", func(r *rooms.Record) { r.Sides[1].Ticket.DH = r.Sides[0].Ticket.DH }},
		{"no local side", func(r *rooms.Record) {
			r.Sides[0].Local, r.Sides[1].Local = false, false
			r.Sides[0].Account, r.Sides[1].Account = keys.AccountID{}, keys.AccountID{}
		}},
		{"local without account", func(r *rooms.Record) { r.Sides[0].Account = keys.AccountID{} }},
		{"remote with account", func(r *rooms.Record) { r.Sides[1].Local = false }},
		{"one account both sides", func(r *rooms.Record) { r.Sides[1].Account = r.Sides[0].Account }},
		{"closed without closer", func(r *rooms.Record) { r.Closed = t0 }},
		{"closer without time", func(r *rooms.Record) { r.ClosedBy = r.Sides[0].Ticket.Sign }},
		{"closed by a stranger", func(r *rooms.Record) { r.Closed, r.ClosedBy = t0, keys.TicketID{7} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := openStore(t)
			r := rooms.New(st)
			rec := valid()
			tc.mutate(&rec)
			b := st.NewBatch()
			defer b.Close()
			if err := r.Put(b, rec); !errors.Is(err, rooms.ErrInvalid) {
				t.Fatalf("Put(%s) = %v, want ErrInvalid", tc.name, err)
			}
			if b.Len() != 0 {
				t.Errorf("Put(%s) wrote %d keys, want 0", tc.name, b.Len())
			}
		})
	}
}

func TestForAccount(t *testing.T) {
	st := openStore(t)
	r := rooms.New(st)
	alice, bob, carol := account(1), account(2), account(3)
	r1 := record(t, 5, alice, bob, t0.Add(2*time.Hour))
	r2 := record(t, 6, carol, alice, t0)
	r3 := record(t, 4, alice, carol, t0.Add(time.Hour))
	r4 := record(t, 7, bob, carol, t0)
	put(t, st, r, r1, r2, r3, r4)

	for _, tc := range []struct {
		acct keys.AccountID
		want []rooms.Record
	}{
		{alice, []rooms.Record{r2, r3, r1}},
		{bob, []rooms.Record{r4, r1}},
		{carol, []rooms.Record{r2, r4, r3}},
		{account(9), nil},
	} {
		got, err := r.ForAccount(context.Background(), tc.acct)
		if err != nil {
			t.Fatalf("ForAccount(%s) = %v", tc.acct, err)
		}
		if len(got) != len(tc.want) {
			t.Fatalf("ForAccount(%s) = %d rooms, want %d", tc.acct, len(got), len(tc.want))
		}
		for i := range got {
			if !equal(got[i], tc.want[i]) {
				t.Errorf("ForAccount(%s)[%d] = %s, want %s", tc.acct, i, got[i].ID, tc.want[i].ID)
			}
		}
	}
}

func TestClose(t *testing.T) {
	st := openStore(t)
	r := rooms.New(st)
	rec := record(t, 1, account(1), account(2), t0)
	put(t, st, r, rec)
	ctx := context.Background()

	b := st.NewBatch()
	defer b.Close()
	if _, err := r.Close(b, rec, keys.TicketID{9}, t0); !errors.Is(err, rooms.ErrNotSide) || b.Len() != 0 {
		t.Fatalf("Close(by stranger) = %v with %d writes, want ErrNotSide and none", err, b.Len())
	}
	by := rec.Sides[1].Ticket.Sign
	closed, err := r.Close(b, rec, by, t0.Add(time.Minute))
	if err != nil || !closed.IsClosed() || closed.ClosedBy != by {
		t.Fatalf("Close = %+v, %v, want closed by side 1", closed, err)
	}
	if err := st.Commit(ctx, b); err != nil {
		t.Fatal(err)
	}
	got, err := r.Get(ctx, rec.ID)
	if err != nil || !equal(got, closed) {
		t.Fatalf("Get after Close = %+v, %v, want %+v", got, err, closed)
	}

	b2 := st.NewBatch()
	defer b2.Close()
	again, err := r.Close(b2, got, rec.Sides[0].Ticket.Sign, t0.Add(time.Hour))
	if !errors.Is(err, rooms.ErrAlreadyClosed) || !equal(again, got) || b2.Len() != 0 {
		t.Fatalf("Close(closed) = %+v, %v with %d writes, want unchanged, ErrAlreadyClosed, none", again, err, b2.Len())
	}
}

func TestSides(t *testing.T) {
	rec := record(t, 1, account(1), account(2), t0)
	rec.Sides[1].Local, rec.Sides[1].Account = false, keys.AccountID{}
	s0, s1 := rec.Sides[0], rec.Sides[1]
	for _, tc := range []struct {
		acct        keys.AccountID
		me, partner rooms.Side
		ok          bool
	}{
		{account(1), s0, s1, true},
		{account(2), rooms.Side{}, rooms.Side{}, false},       // not on this node
		{keys.AccountID{}, rooms.Side{}, rooms.Side{}, false}, // the remote side's zero account
	} {
		me, partner, ok := rec.SideOf(tc.acct)
		if me != tc.me || partner != tc.partner || ok != tc.ok {
			t.Errorf("SideOf(%s) = %v, %v, %v, want %v, %v, %v", tc.acct, me, partner, ok, tc.me, tc.partner, tc.ok)
		}
	}
	for _, tc := range []struct {
		ticket      keys.TicketID
		me, partner rooms.Side
		ok          bool
	}{
		{s0.Ticket.Sign, s0, s1, true},
		{s1.Ticket.Sign, s1, s0, true},
		{keys.TicketID{1}, rooms.Side{}, rooms.Side{}, false},
	} {
		me, partner, ok := rec.SideByTicket(tc.ticket)
		if me != tc.me || partner != tc.partner || ok != tc.ok {
			t.Errorf("SideByTicket(%s) = %v, %v, %v, want %v, %v, %v", tc.ticket, me, partner, ok, tc.me, tc.partner, tc.ok)
		}
	}
}

// TestCache: Get serves a record it read for a second; Put and Close on the
// same Rooms take effect at once.
func TestCache(t *testing.T) {
	st := openStore(t)
	now := t0
	r := rooms.New(st, rooms.WithClock(func() time.Time { return now }))
	other := rooms.New(st) // writes behind r's back
	ctx := context.Background()
	rec := record(t, 1, account(1), account(2), t0)
	put(t, st, r, rec)
	if got, err := r.Get(ctx, rec.ID); err != nil || got.IsClosed() {
		t.Fatalf("Get = %+v, %v, want the open room", got, err)
	}

	closedBehind := rec
	closedBehind.Closed, closedBehind.ClosedBy = t0, rec.Sides[0].Ticket.Sign
	put(t, st, other, closedBehind)
	for _, tc := range []struct {
		after      time.Duration
		wantClosed bool
	}{
		{0, false},
		{999 * time.Millisecond, false},
		{time.Second, true},
	} {
		now = t0.Add(tc.after)
		if got, err := r.Get(ctx, rec.ID); err != nil || got.IsClosed() != tc.wantClosed {
			t.Errorf("Get %s after a close written elsewhere = closed %v, %v, want closed %v", tc.after, got.IsClosed(), err, tc.wantClosed)
		}
	}

	put(t, st, r, rec) // reopened through r: seen at once
	if got, err := r.Get(ctx, rec.ID); err != nil || got.IsClosed() {
		t.Errorf("Get after Put through the same Rooms = closed %v, %v, want open", got.IsClosed(), err)
	}
}
