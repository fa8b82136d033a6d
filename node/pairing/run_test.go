package pairing_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/parley-chat/parley/node/pairing"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/wire"
)

// Run processes an epoch once the clock passes its end, and stops cleanly
// when its context ends (TestMain checks that no goroutine leaks).
func TestRunDrivenByClock(t *testing.T) {
	e := newEnv(t, pairing.Config{EpochLength: 10 * time.Millisecond})
	epoch := uint64(t0.UnixMilli()) / 10
	// 1ms before the end of epoch.
	e.clock.Set(time.UnixMilli(int64(epoch+1)*10 - 1).UTC())
	e.reopen(t)
	a, b := newUser(t, 1), newUser(t, 2)
	if info := e.ask(t, a); info.Epoch != epoch {
		t.Fatalf("RequestTicket().Epoch = %d, want %d", info.Epoch, epoch)
	}
	e.ask(t, b)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.lt.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run() = %v, want nil", err)
		}
	}()

	e.clock.Advance(2 * time.Millisecond)
	wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer wcancel()
	if err := e.mb.Wait(wctx, a.acct, 0); err != nil {
		t.Fatalf("waiting for a's paired event: %v", err)
	}
	if e.pairedOnce(t, a).Room != e.pairedOnce(t, b).Room {
		t.Error("a and b not paired together by Run")
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	e := newEnv(t, pairing.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.lt.Run(ctx) }()
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run() = %v, want nil", err)
	}
}

func TestPurge(t *testing.T) {
	e := newEnv(t, pairing.Config{})
	ctx := context.Background()
	a, b, c := newUser(t, 1), newUser(t, 2), newUser(t, 3)
	e.ask(t, a)
	e.ask(t, b)
	e.run(t, e0)
	room := e.pairedOnce(t, a).Room
	e.ask(t, c)
	if err := e.lt.Withdraw(ctx, c.acct); err != nil {
		t.Fatal(err)
	}

	purge := func(want int) {
		t.Helper()
		if n, err := e.lt.Purge(ctx); err != nil || n != want {
			t.Errorf("Purge() at %s = %d, %v, want %d", e.clock.Now(), n, err, want)
		}
	}
	purge(0)
	if _, err := e.lt.Audit(ctx, e0); err != nil {
		t.Errorf("Audit(%d) within the retention = %v, want a report", e0, err)
	}
	// Past the epoch retention (24h) the inputs are gone.
	e.clock.Advance(25 * time.Hour)
	purge(0)
	if _, err := e.lt.Audit(ctx, e0); !errors.Is(err, pairing.ErrUnknownEpoch) {
		t.Errorf("Audit(%d) after the retention = %v, want ErrUnknownEpoch", e0, err)
	}

	// Past wire.MaxDisclosureAge: c's link (never paired) goes; a's and
	// b's stay while their room is open, since their messages stay
	// reportable.
	e.clock.Set(t0.Add(wire.MaxDisclosureAge + time.Hour))
	purge(1)
	if _, err := e.lt.Link(ctx, c.tk.Public().Sign); !errors.Is(err, pairing.ErrUnknownTicket) {
		t.Errorf("Link(c) after purge = %v, want ErrUnknownTicket", err)
	}
	closeRoom(t, e, room, a)
	purge(0) // closed just now: reportable for MaxDisclosureAge more
	e.clock.Advance(wire.MaxDisclosureAge + time.Hour)
	purge(2)
	for _, u := range []*user{a, b} {
		if _, err := e.lt.Link(ctx, u.tk.Public().Sign); !errors.Is(err, pairing.ErrUnknownTicket) {
			t.Errorf("Link(%s) after purge = %v, want ErrUnknownTicket", u.acct, err)
		}
	}
}

func closeRoom(t *testing.T, e *env, id keys.RoomID, by *user) {
	t.Helper()
	rec, err := e.rm.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	b := e.st.NewBatch()
	if _, err := e.rm.Close(b, rec, by.tk.Public().Sign, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if err := e.st.Commit(context.Background(), b); err != nil {
		t.Fatal(err)
	}
}

func TestConfig(t *testing.T) {
	def := pairing.DefaultConfig()
	want := pairing.Config{EpochLength: 2 * time.Second, TicketTTL: 150, MaxTicketsPerEpoch: 10000, EpochRetention: 24 * time.Hour, PurgeEvery: time.Hour}
	if def != want {
		t.Errorf("DefaultConfig() = %+v, want %+v", def, want)
	}
	tests := []struct {
		name string
		cfg  pairing.Config
		want []string // substrings of the error, all reported at once
	}{
		{"zero takes defaults", pairing.Config{}, nil},
		{"defaults", def, nil},
		{"epoch too short", pairing.Config{EpochLength: 5 * time.Millisecond}, []string{"epoch_length"}},
		{"epoch not whole ms", pairing.Config{EpochLength: 1500 * time.Microsecond}, []string{"epoch_length"}},
		{"epoch too long", pairing.Config{EpochLength: 2 * time.Hour}, []string{"epoch_length"}},
		{"quota over the protocol limit", pairing.Config{MaxTicketsPerEpoch: wire.MaxTicketsPerEpoch + 1}, []string{"max_tickets_per_epoch"}},
		{"everything wrong", pairing.Config{EpochLength: -1, TicketTTL: -1, MaxTicketsPerEpoch: -1, EpochRetention: -1, PurgeEvery: -1},
			[]string{"epoch_length", "ticket_ttl", "max_tickets_per_epoch", "epoch_retention", "purge_every"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if (err == nil) != (tt.want == nil) {
				t.Fatalf("Validate() = %v, want errors about %v", err, tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %v, want it to mention %s", err, w)
				}
			}
		})
	}
	if _, err := pairing.New(pairing.Config{TicketTTL: -1}, nil, nil, nil, keys.NodeKey{}); err == nil || !strings.Contains(err.Error(), "ticket_ttl") || !strings.Contains(err.Error(), "required") {
		t.Errorf("New(bad config, nil store) = %v, want both problems", err)
	}
}

// spec 09-client-api §5: the paired event carries the room as the
// account sees it.
func TestPairedEventJSON(t *testing.T) {
	a, b := newUser(t, 1), newUser(t, 2)
	ev := pairing.PairedEvent{
		Room:    pairing.RoomID(a.tk.Public(), b.tk.Public()),
		Me:      pairing.PairedSide{Sign: a.tk.Public().Sign, DH: a.tk.Public().DH},
		Partner: pairing.PairedSide{Sign: b.tk.Public().Sign, DH: b.tk.Public().DH},
		Created: time.Date(2026, 3, 1, 12, 0, 0, 123_000_000, time.UTC),
	}
	body, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	var generic map[string]any
	if err := json.Unmarshal(body, &generic); err != nil {
		t.Fatal(err)
	}
	if generic["id"] != ev.Room.String() || generic["created"] != "2026-03-01T12:00:00.123Z" {
		t.Errorf("json.Marshal(PairedEvent) = %s, want id %s and created 2026-03-01T12:00:00.123Z", body, ev.Room)
	}
	me, _ := generic["me"].(map[string]any)
	if me["sign"] != ev.Me.Sign.String() || me["dh"] != ev.Me.DH.String() || me["home"] != ev.Me.Home.String() {
		t.Errorf("json.Marshal(PairedEvent).me = %v, want sign, dh, home text forms", me)
	}
	var back pairing.PairedEvent
	if err := json.Unmarshal(body, &back); err != nil || back != ev {
		t.Errorf("json.Unmarshal(%s) = %+v, %v, want %+v", body, back, err, ev)
	}
	for _, bad := range []string{
		`{}`,
		`{"id":"room_x","me":{},"partner":{},"created":"2026-03-01T12:00:00.000Z"}`,
		strings.Replace(string(body), "2026-03-01T12:00:00.123Z", "yesterday", 1),
		`[]`,
	} {
		if err := json.Unmarshal([]byte(bad), &back); !errors.Is(err, pairing.ErrCorrupt) {
			t.Errorf("json.Unmarshal(%s) = %v, want ErrCorrupt", bad, err)
		}
	}
}

// Requests, withdrawals and epochs in parallel (run with -race): every
// ticket is paired at most once, never with its own account, and every
// room has two members.
func TestConcurrentRequestsAndEpochs(t *testing.T) {
	e := newEnv(t, pairing.Config{})
	const nUsers, rounds = 32, 3
	users := make([]*user, nUsers)
	tickets := make([][]keys.TicketPublic, nUsers)
	for i := range users {
		users[i] = newUser(t, i+1)
		for range rounds {
			users[i].fresh(t)
			tickets[i] = append(tickets[i], users[i].tk.Public())
		}
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	for i, u := range users {
		wg.Go(func() {
			for r, k := range tickets[i] {
				_, err := e.lt.RequestTicket(ctx, u.acct, pairing.TicketRequest{Keys: k})
				if err != nil && !errors.Is(err, pairing.ErrAlreadyWaiting) {
					t.Errorf("RequestTicket() = %v", err)
				}
				if r%2 == 1 {
					if err := e.lt.Withdraw(ctx, u.acct); err != nil {
						t.Errorf("Withdraw() = %v", err)
					}
				}
			}
		})
	}
	wg.Go(func() {
		for i := range uint64(6) {
			if err := e.lt.RunEpoch(ctx, e0+i); err != nil {
				t.Errorf("RunEpoch() = %v", err)
			}
		}
	})
	wg.Wait()
	e.run(t, e0+6)

	seenTicket := map[keys.TicketID]bool{}
	members := map[keys.RoomID]int{}
	for _, u := range users {
		for _, p := range e.paired(t, u) {
			if seenTicket[p.Me.Sign] {
				t.Errorf("ticket %s paired twice", p.Me.Sign)
			}
			seenTicket[p.Me.Sign] = true
			members[p.Room]++
			rec, err := e.rm.Get(ctx, p.Room)
			if err != nil {
				t.Fatal(err)
			}
			if rec.Sides[0].Account == rec.Sides[1].Account {
				t.Errorf("room %s pairs %s with itself", p.Room, rec.Sides[0].Account)
			}
		}
	}
	for r, n := range members {
		if n != 2 {
			t.Errorf("room %s has %d paired events, want 2", r, n)
		}
	}
	e.metrics(t, map[string]float64{"parley_pairing_pairs_total": float64(len(members))})
}

func TestMetricsExposition(t *testing.T) {
	e := newEnv(t, pairing.Config{TicketTTL: 1})
	a, b, c := newUser(t, 1), newUser(t, 2), newUser(t, 3)
	e.ask(t, a)
	e.ask(t, b)
	e.ask(t, c)
	if _, err := e.lt.RequestTicket(context.Background(), a.acct, a.request()); err == nil {
		t.Fatal("duplicate RequestTicket() = nil, want an error")
	}
	e.run(t, e0)   // one pair, one rolls over
	e.run(t, e0+1) // and expires
	const want = `
# HELP parley_pairing_expired_total Tickets dropped unpaired after rolling over ticket_ttl epochs.
# TYPE parley_pairing_expired_total counter
parley_pairing_expired_total 1
# HELP parley_pairing_pairs_total Pairs this node confirmed and announced (rooms created).
# TYPE parley_pairing_pairs_total counter
parley_pairing_pairs_total 1
# HELP parley_pairing_rolled_over_total Tickets of this node left unpaired in an epoch and rolled over to the next.
# TYPE parley_pairing_rolled_over_total counter
parley_pairing_rolled_over_total 1
# HELP parley_pairing_tickets_total Ticket requests, by result (accepted or rejected).
# TYPE parley_pairing_tickets_total counter
parley_pairing_tickets_total{result="accepted"} 3
parley_pairing_tickets_total{result="rejected"} 1
`
	if err := testutil.GatherAndCompare(e.reg, strings.NewReader(want),
		"parley_pairing_expired_total", "parley_pairing_pairs_total", "parley_pairing_rolled_over_total", "parley_pairing_tickets_total"); err != nil {
		t.Error(err)
	}
	e.metrics(t, map[string]float64{
		"parley_pairing_wait_seconds":           2,
		"parley_pairing_epoch_duration_seconds": 2,
		"parley_pairing_epoch_failures_total":   0,
	})
}
