package pairing_test

import (
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/node/pairing"
	"github.com/parley-chat/parley/node/store"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/lottery"
	"github.com/parley-chat/parley/protocol/room"
	"github.com/parley-chat/parley/protocol/wire"
)

func TestTwoUsersPair(t *testing.T) {
	e := newEnv(t, pairing.Config{})
	a, b := newUser(t, 1), newUser(t, 2)
	for _, u := range []*user{a, b} {
		info := e.ask(t, u)
		// spec 09 §4: the ticket joins the next epoch that has not closed.
		if info.Epoch != e0 {
			t.Errorf("RequestTicket().Epoch = %d, want %d", info.Epoch, e0)
		}
		if want := time.UnixMilli(int64(e0+1) * 2000).UTC(); !info.EpochEnds.Equal(want) {
			t.Errorf("RequestTicket().EpochEnds = %s, want %s", info.EpochEnds, want)
		}
		want := (&lottery.Ticket{Epoch: e0, Home: e.key.Public(), Keys: u.tk.Public()}).ID()
		if info.ID != want {
			t.Errorf("RequestTicket().ID = %x, want the lottery ticket ID %x", info.ID, want)
		}
	}
	e.clock.Advance(2 * time.Second)
	e.run(t, e0)

	pa, pb := e.pairedOnce(t, a), e.pairedOnce(t, b)
	if pa.Room != pb.Room {
		t.Fatalf("paired rooms = %s and %s, want the same", pa.Room, pb.Room)
	}
	// spec 06-room-keys §1: both clients derive the room ID from the tickets.
	for _, c := range []struct {
		name    string
		me      *user
		partner *user
		ev      pairing.PairedEvent
	}{{"a", a, b, pa}, {"b", b, a, pb}} {
		r, err := room.Derive(c.me.tk, sideKeys(c.ev.Partner))
		if err != nil {
			t.Fatalf("room.Derive(%s) = %v", c.name, err)
		}
		if r.ID() != c.ev.Room {
			t.Errorf("room.Derive(%s).ID() = %s, want the paired event's %s", c.name, r.ID(), c.ev.Room)
		}
		if got, want := sideKeys(c.ev.Me), c.me.tk.Public(); got != want {
			t.Errorf("%s's paired event: me = %v, want %v", c.name, got, want)
		}
		if got, want := sideKeys(c.ev.Partner), c.partner.tk.Public(); got != want {
			t.Errorf("%s's paired event: partner = %v, want %v", c.name, got, want)
		}
		if c.ev.Me.Home != e.key.Public() || c.ev.Partner.Home != e.key.Public() {
			t.Errorf("%s's paired event: homes %s, %s, want this node %s", c.name, c.ev.Me.Home, c.ev.Partner.Home, e.key.Public())
		}
		if want := e.clock.Now().Truncate(time.Millisecond); !c.ev.Created.Equal(want) {
			t.Errorf("%s's paired event: created %s, want %s", c.name, c.ev.Created, want)
		}
	}

	rec, err := e.rm.Get(context.Background(), pa.Room)
	if err != nil {
		t.Fatalf("rooms.Get(%s) = %v, want the room", pa.Room, err)
	}
	for _, u := range []*user{a, b} {
		me, partner, ok := rec.SideOf(u.acct)
		if !ok || me.Ticket != u.tk.Public() || !me.Local || partner.Ticket == u.tk.Public() {
			t.Errorf("room record side of %s = %+v (ok %v), want its ticket, local", u.acct, me, ok)
		}
		link, err := e.lt.Link(context.Background(), u.tk.Public().Sign)
		if err != nil {
			t.Fatalf("Link(%s) = %v", u.tk.Public().Sign, err)
		}
		if link.Account != u.acct || link.Room != pa.Room || link.Epoch != e0 || !link.Issued.Equal(t0) {
			t.Errorf("Link(%s) = %+v, want account %s, room %s, epoch %d, issued %s", u.tk.Public().Sign, link, u.acct, pa.Room, e0, t0)
		}
	}

	// Paired tickets no longer wait: both can ask again.
	for _, u := range []*user{a, b} {
		u.fresh(t)
		e.ask(t, u)
	}
	e.metrics(t, map[string]float64{
		"parley_pairing_pairs_total":                      1,
		"parley_pairing_wait_seconds":                     2, // samples
		`parley_pairing_tickets_total{result="accepted"}`: 4,
		"parley_pairing_waiting_tickets":                  2,
	})
}

// spec 07-lottery: with an odd count one ticket is left over; it rolls
// over and is paired in the next epoch.
func TestOddOneOutRollsOver(t *testing.T) {
	e := newEnv(t, pairing.Config{})
	users := make([]*user, 101)
	for i := range users {
		users[i] = newUser(t, i)
		e.ask(t, users[i])
	}
	e.run(t, e0)

	partner := map[keys.AccountID]keys.RoomID{}
	var left *user
	for _, u := range users {
		switch evs := e.paired(t, u); len(evs) {
		case 0:
			if left != nil {
				t.Fatalf("%s and %s both unpaired, want one", left.acct, u.acct)
			}
			left = u
		case 1:
			partner[u.acct] = evs[0].Room
		default:
			t.Fatalf("%s has %d paired events, want at most 1", u.acct, len(evs))
		}
	}
	perRoom := map[keys.RoomID]int{}
	for _, r := range partner {
		perRoom[r]++
	}
	if len(perRoom) != 50 {
		t.Errorf("rooms = %d, want 50", len(perRoom))
	}
	for r, n := range perRoom {
		if n != 2 {
			t.Errorf("room %s has %d members, want 2", r, n)
		}
	}
	if left == nil {
		t.Fatal("no user left unpaired, want one")
	}

	// The leftover still waits, in the next epoch; a newcomer now joins
	// that epoch too, since e0 is closed.
	if _, err := e.lt.RequestTicket(context.Background(), left.acct, left.request()); !errors.Is(err, pairing.ErrAlreadyWaiting) {
		t.Errorf("RequestTicket(leftover) = %v, want ErrAlreadyWaiting", err)
	}
	if got := e.lt.Epoch(); got != e0+1 {
		t.Errorf("Epoch() after closing %d = %d, want %d", e0, got, e0+1)
	}
	newcomer := newUser(t, 1000)
	if info := e.ask(t, newcomer); info.Epoch != e0+1 {
		t.Errorf("RequestTicket(newcomer).Epoch = %d, want %d (e0 is closed)", info.Epoch, e0+1)
	}
	e.run(t, e0+1)
	pl, pn := e.pairedOnce(t, left), e.pairedOnce(t, newcomer)
	if pl.Room != pn.Room || sideKeys(pl.Partner) != newcomer.tk.Public() {
		t.Errorf("leftover paired into %s with %v, want newcomer's room %s", pl.Room, pl.Partner, pn.Room)
	}
	e.metrics(t, map[string]float64{
		"parley_pairing_pairs_total":       51,
		"parley_pairing_rolled_over_total": 1,
		"parley_pairing_waiting_tickets":   0,
	})
}

// spec 07-lottery: two tickets that share an avoid tag are never paired,
// even when each is the other's only candidate.
func TestAvoidTagHonoured(t *testing.T) {
	e := newEnv(t, pairing.Config{})
	tag := lottery.AvoidTag([32]byte{1, 2, 3}, e0)
	a, b := newUser(t, 1), newUser(t, 2)
	e.ask(t, a, nil, []lottery.Tag{tag})
	e.ask(t, b, nil, []lottery.Tag{tag})
	e.run(t, e0)
	for _, u := range []*user{a, b} {
		if evs := e.paired(t, u); len(evs) != 0 {
			t.Fatalf("%s paired %d times with the only candidate that shares its avoid tag, want 0", u.acct, len(evs))
		}
	}
	// A third ticket without the tag is a candidate for either.
	c := newUser(t, 3)
	e.ask(t, c)
	e.run(t, e0+1)
	pc := e.pairedOnce(t, c)
	if p := sideKeys(pc.Partner); p != a.tk.Public() && p != b.tk.Public() {
		t.Errorf("newcomer paired with %v, want a or b", p)
	}
	if n := len(e.paired(t, a)) + len(e.paired(t, b)); n != 1 {
		t.Errorf("a and b have %d paired events, want 1", n)
	}
	e.metrics(t, map[string]float64{"parley_pairing_rolled_over_total": 3})
}

// The zero account cannot ask: its room could not be recorded, and a
// settling that fails on it would fail every pair of the epoch, after this
// node confirmed the remote ones.
func TestZeroAccountRefused(t *testing.T) {
	e := newEnv(t, pairing.Config{})
	u := newUser(t, 1)
	if _, err := e.lt.RequestTicket(context.Background(), keys.AccountID{}, u.request()); !errors.Is(err, pairing.ErrNoAccount) {
		t.Errorf("RequestTicket(zero account) = %v, want ErrNoAccount", err)
	}
}

func TestOneWaitingTicketPerAccount(t *testing.T) {
	e := newEnv(t, pairing.Config{})
	u := newUser(t, 1)
	e.ask(t, u)
	u.fresh(t)
	if _, err := e.lt.RequestTicket(context.Background(), u.acct, u.request()); !errors.Is(err, pairing.ErrAlreadyWaiting) {
		t.Errorf("second RequestTicket() = %v, want ErrAlreadyWaiting", err)
	}
	e.metrics(t, map[string]float64{
		`parley_pairing_tickets_total{result="accepted"}`: 1,
		`parley_pairing_tickets_total{result="rejected"}`: 1,
	})
}

func TestTicketKeysNeverReused(t *testing.T) {
	e := newEnv(t, pairing.Config{})
	a, b := newUser(t, 1), newUser(t, 2)
	e.ask(t, a)
	e.ask(t, b)
	paired := a.tk.Public()
	e.run(t, e0)
	waiting := newUser(t, 3)
	e.ask(t, waiting)
	fresh := func() keys.TicketPublic { u := newUser(t, 0); return u.tk.Public() }

	tests := []struct {
		name string
		keys keys.TicketPublic
	}{
		{"signing key of a paired ticket", keys.TicketPublic{Sign: paired.Sign, DH: fresh().DH}},
		{"X25519 key of a paired ticket", keys.TicketPublic{Sign: fresh().Sign, DH: paired.DH}},
		{"both keys of a paired ticket", paired},
		{"signing key of a waiting ticket", keys.TicketPublic{Sign: waiting.tk.Public().Sign, DH: fresh().DH}},
		{"X25519 key of a waiting ticket", keys.TicketPublic{Sign: fresh().Sign, DH: waiting.tk.Public().DH}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			acct := keys.AccountID{0x10 + byte(i)}
			_, err := e.lt.RequestTicket(context.Background(), acct, pairing.TicketRequest{Keys: tt.keys})
			if !errors.Is(err, pairing.ErrKeyReused) {
				t.Errorf("RequestTicket(%s) = %v, want ErrKeyReused", tt.name, err)
			}
		})
	}
	// The paired account itself may not reuse them either.
	if _, err := e.lt.RequestTicket(context.Background(), a.acct, pairing.TicketRequest{Keys: paired}); !errors.Is(err, pairing.ErrKeyReused) {
		t.Errorf("RequestTicket(own old keys) = %v, want ErrKeyReused", err)
	}
}

func TestBadTicketRequests(t *testing.T) {
	e := newEnv(t, pairing.Config{})
	tags := func(n int) []lottery.Tag {
		out := make([]lottery.Tag, n)
		for i := range out {
			out[i] = lottery.InterestTag(strings.Repeat("x", i+1))
		}
		return out
	}
	good := newUser(t, 0).tk.Public()
	tests := []struct {
		name string
		req  pairing.TicketRequest
		want error
	}{
		{"too many interests", pairing.TicketRequest{Keys: good, Interests: tags(wire.MaxInterestTags + 1)}, pairing.ErrBadTicket},
		{"too many avoid tags", pairing.TicketRequest{Keys: good, Avoid: tags(wire.MaxAvoidTags + 1)}, pairing.ErrBadTicket},
		{"zero signing key", pairing.TicketRequest{Keys: keys.TicketPublic{DH: good.DH}}, pairing.ErrBadTicket},
		{"zero X25519 key", pairing.TicketRequest{Keys: keys.TicketPublic{Sign: good.Sign}}, pairing.ErrBadTicket},
		// 1 is the X25519 encoding of a point of order 4 (RFC 7748 §6.1).
		{"small-order X25519 key", pairing.TicketRequest{Keys: keys.TicketPublic{Sign: good.Sign, DH: keys.DHPublic{1}}}, pairing.ErrBadTicket},
		{"repeated tags count once", pairing.TicketRequest{Keys: good, Interests: append(tags(wire.MaxInterestTags), tags(3)...)}, nil},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.lt.RequestTicket(context.Background(), keys.AccountID{byte(i + 1)}, tt.req)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Errorf("RequestTicket(%s) = %v, want %v", tt.name, err, tt.want)
			}
		})
	}
}

func TestWithdraw(t *testing.T) {
	e := newEnv(t, pairing.Config{})
	a, b := newUser(t, 1), newUser(t, 2)
	e.ask(t, a)
	e.ask(t, b)
	ctx := context.Background()
	if err := e.lt.Withdraw(ctx, a.acct); err != nil {
		t.Fatalf("Withdraw() = %v, want nil", err)
	}
	if err := e.lt.Withdraw(ctx, a.acct); err != nil {
		t.Errorf("Withdraw() without a ticket = %v, want nil", err)
	}
	e.run(t, e0)
	if n := len(e.paired(t, a)) + len(e.paired(t, b)); n != 0 {
		t.Fatalf("paired events after a withdrew = %d, want 0", n)
	}
	// The withdrawal is durable.
	e.reopen(t)
	a.fresh(t)
	e.ask(t, a)
	e.run(t, e0+1)
	if e.pairedOnce(t, a).Room != e.pairedOnce(t, b).Room {
		t.Error("a's new ticket and b's rolled-over ticket not paired together")
	}
}

// A withdrawal while the epoch is being drawn wins over the draw: the
// ticket is not paired and its drawn partner rolls over.
func TestWithdrawDuringDraw(t *testing.T) {
	net := &hookNetwork{Local: pairing.NewLocal()}
	e := newEnv(t, pairing.Config{}, pairing.WithNetwork(net))
	a, b, c := newUser(t, 1), newUser(t, 2), newUser(t, 3)
	e.ask(t, a)
	e.ask(t, b)
	net.onCollect = func(ctx context.Context) {
		if err := e.lt.Withdraw(ctx, a.acct); err != nil {
			t.Errorf("Withdraw() during the draw = %v, want nil", err)
		}
		// A request during the draw joins the next epoch.
		if info := e.ask(t, c); info.Epoch != e0+1 {
			t.Errorf("RequestTicket() during the draw: epoch %d, want %d", info.Epoch, e0+1)
		}
	}
	e.run(t, e0)
	net.onCollect = nil
	if n := len(e.paired(t, a)) + len(e.paired(t, b)); n != 0 {
		t.Fatalf("paired events = %d, want 0", n)
	}
	e.run(t, e0+1)
	if e.pairedOnce(t, b).Room != e.pairedOnce(t, c).Room {
		t.Error("b (rolled over) and c not paired together")
	}
	if evs := e.paired(t, a); len(evs) != 0 {
		t.Errorf("withdrawn a has %d paired events, want 0", len(evs))
	}
}

func TestTicketExpires(t *testing.T) {
	const ttl = 3
	e := newEnv(t, pairing.Config{TicketTTL: ttl})
	u := newUser(t, 1)
	e.ask(t, u)
	for i := range uint64(ttl) {
		e.run(t, e0+i)
		if _, err := e.lt.RequestTicket(context.Background(), u.acct, u.request()); !errors.Is(err, pairing.ErrAlreadyWaiting) {
			t.Fatalf("after epoch %d (rollover %d of %d): RequestTicket() = %v, want ErrAlreadyWaiting", e0+i, i+1, ttl, err)
		}
	}
	e.run(t, e0+ttl)
	e.metrics(t, map[string]float64{
		"parley_pairing_rolled_over_total": ttl,
		"parley_pairing_expired_total":     1,
		"parley_pairing_waiting_tickets":   0,
	})
	// Expired, so gone after a restart too; the link stays for reports.
	e.reopen(t)
	if _, err := e.lt.Link(context.Background(), u.tk.Public().Sign); err != nil {
		t.Errorf("Link(expired ticket) = %v, want the link", err)
	}
	u.fresh(t)
	e.ask(t, u)
}

func TestRestartKeepsTicketsAndLinks(t *testing.T) {
	e := newEnv(t, pairing.Config{})
	a, b, c := newUser(t, 1), newUser(t, 2), newUser(t, 3)
	e.ask(t, a)
	e.run(t, e0) // a rolls over
	e.ask(t, b)
	e.reopen(t)

	ctx := context.Background()
	for _, u := range []*user{a, b} {
		u2 := *u
		u2.fresh(t)
		if _, err := e.lt.RequestTicket(ctx, u.acct, u2.request()); !errors.Is(err, pairing.ErrAlreadyWaiting) {
			t.Errorf("after restart: RequestTicket(%s) = %v, want ErrAlreadyWaiting", u.acct, err)
		}
		link, err := e.lt.Link(ctx, u.tk.Public().Sign)
		if err != nil || link.Account != u.acct || link.DH != u.tk.Public().DH {
			t.Errorf("after restart: Link(%s) = %+v, %v, want account %s", u.tk.Public().Sign, link, err, u.acct)
		}
	}
	if _, err := e.lt.Link(ctx, c.tk.Public().Sign); !errors.Is(err, pairing.ErrUnknownTicket) {
		t.Errorf("Link(never issued) = %v, want ErrUnknownTicket", err)
	}
	e.metrics(t, map[string]float64{"parley_pairing_waiting_tickets": 2})
	e.run(t, e0+1)
	if e.pairedOnce(t, a).Room != e.pairedOnce(t, b).Room {
		t.Error("tickets restored after a restart not paired together")
	}
}

func TestRunEpochOnce(t *testing.T) {
	e := newEnv(t, pairing.Config{})
	e.ask(t, newUser(t, 1))
	e.ask(t, newUser(t, 2))
	e.run(t, e0+1)
	ctx := context.Background()
	for _, epoch := range []uint64{e0 + 1, e0} {
		if err := e.lt.RunEpoch(ctx, epoch); !errors.Is(err, pairing.ErrEpochClosed) {
			t.Errorf("RunEpoch(%d) again = %v, want ErrEpochClosed", epoch, err)
		}
	}
	// Settled epochs stay closed across a restart.
	e.reopen(t)
	e.clock.Set(t0.Add(-10 * time.Second))
	if err := e.lt.RunEpoch(ctx, e0+1); !errors.Is(err, pairing.ErrEpochClosed) {
		t.Errorf("after restart: RunEpoch(%d) = %v, want ErrEpochClosed", e0+1, err)
	}
}

func TestAudit(t *testing.T) {
	e := newEnv(t, pairing.Config{})
	users := make([]*user, 7)
	for i := range users {
		users[i] = newUser(t, i)
		e.ask(t, users[i])
	}
	e.run(t, e0)
	e.reopen(t)
	rep, err := e.lt.Audit(context.Background(), e0)
	if err != nil {
		t.Fatalf("Audit(%d) = %v, want a report", e0, err)
	}
	// spec 07-lottery: every confirmed pair is one the draw made.
	if !rep.OK() || len(rep.NotDrawn) != 0 || len(rep.NotConfirmed) != 0 {
		t.Errorf("Audit(%d): NotDrawn %v, NotConfirmed %v, want none", e0, rep.NotDrawn, rep.NotConfirmed)
	}
	if len(rep.Result.Pairs) != 3 || len(rep.Result.Unmatched) != 1 {
		t.Errorf("Audit(%d): %d pairs, %d unmatched, want 3 and 1", e0, len(rep.Result.Pairs), len(rep.Result.Unmatched))
	}
	// A pair the draw did not make, written under the epoch's confirmed
	// pairs (epoch/<n>/p/<A><B>), is flagged.
	forged := lottery.Pair{A: [32]byte{1}, B: [32]byte{2}}
	b := e.st.NewBatch()
	b.Set(store.Key(store.PrefixEpoch, binary.BigEndian.AppendUint64(nil, e0), []byte("/p/"), forged.A[:], forged.B[:]), nil)
	if err := e.st.Commit(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	rep, err = e.lt.Audit(context.Background(), e0)
	if err != nil || rep.OK() || len(rep.NotDrawn) != 1 || rep.NotDrawn[0] != forged {
		t.Errorf("Audit(%d) with a forged pair: NotDrawn %v, %v, want [%v]", e0, rep.NotDrawn, err, forged)
	}
	for _, ep := range []uint64{e0 - 1, e0 + 1} {
		if _, err := e.lt.Audit(context.Background(), ep); !errors.Is(err, pairing.ErrUnknownEpoch) {
			t.Errorf("Audit(%d) = %v, want ErrUnknownEpoch", ep, err)
		}
	}
}

func TestRoomRecordSides(t *testing.T) {
	e := newEnv(t, pairing.Config{})
	a, b := newUser(t, 1), newUser(t, 2)
	e.ask(t, a)
	e.ask(t, b)
	e.run(t, e0)
	recs, err := e.rm.ForAccount(context.Background(), a.acct)
	if err != nil || len(recs) != 1 {
		t.Fatalf("rooms.ForAccount(a) = %d rooms, %v, want 1", len(recs), err)
	}
	rec := recs[0]
	if want := pairing.RoomID(a.tk.Public(), b.tk.Public()); rec.ID != want {
		t.Errorf("room ID = %s, want RoomID(a, b) = %s", rec.ID, want)
	}
	if pairing.RoomID(a.tk.Public(), b.tk.Public()) != pairing.RoomID(b.tk.Public(), a.tk.Public()) {
		t.Error("RoomID(a, b) != RoomID(b, a)")
	}
	if rec.IsClosed() || !rec.Created.Equal(t0.Truncate(time.Millisecond)) {
		t.Errorf("room closed %v, created %s, want open, created %s", rec.IsClosed(), rec.Created, t0)
	}
}
