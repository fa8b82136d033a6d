package relay_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/parley-chat/parley/node/mailbox"
	"github.com/parley-chat/parley/node/relay"
	"github.com/parley-chat/parley/node/rooms"
	"github.com/parley-chat/parley/node/store"
	"github.com/parley-chat/parley/protocol/envelope"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/wire"
)

// TestSendDelivers: a sent envelope lands stamped in the recipient's
// mailbox; the stamp verifies against the node key and the partner's room
// opens it (spec 03-envelope §6, §8).
func TestSendDelivers(t *testing.T) {
	f := newFixture(t, relay.Config{}, nil)
	f.start(t)
	p := f.pair(t, account(1, 1), account(1, 2))
	env := f.seal(t, p.a, "hello")
	ctx := context.Background()

	res, err := f.relay.Send(ctx, p.a.acct, "tx-1", env)
	if err != nil {
		t.Fatalf("Send = %v, want nil", err)
	}
	if res.ID != env.ID() || res.Pos != 1 || res.Duplicate {
		t.Errorf("Send = {ID %x, Pos %d, Duplicate %v}, want {ID %x, Pos 1, Duplicate false}", res.ID, res.Pos, res.Duplicate, env.ID())
	}
	if env.Stamp != nil {
		t.Errorf("Send stamped the caller's envelope; it must stamp a copy")
	}
	stamped := &envelope.Envelope{Header: env.Header, Ciphertext: env.Ciphertext, Stamp: &res.Stamp}
	if err := stamped.VerifyStamp(f.node); err != nil {
		t.Errorf("Result.Stamp.Verify = %v, want nil", err)
	}

	evs, err := f.mb.Read(ctx, p.b.acct, 0, 0)
	if err != nil || len(evs) != 1 {
		t.Fatalf("Read(recipient) = %d events, %v, want 1", len(evs), err)
	}
	ev := evs[0]
	if ev.Pos != 1 || ev.Kind != mailbox.KindMessage || ev.Room != p.rec.ID || !ev.Time.Equal(t0) {
		t.Errorf("event = {Pos %d, Kind %v, Room %s, Time %s}, want {1, message, %s, %s}", ev.Pos, ev.Kind, ev.Room, ev.Time, p.rec.ID, t0)
	}
	got, err := envelope.Parse(ev.Body)
	if err != nil {
		t.Fatalf("envelope.Parse(event body) = %v", err)
	}
	if err := got.VerifyStamp(f.node); err != nil {
		t.Errorf("VerifyStamp(delivered) = %v, want nil", err)
	}
	opened, err := p.b.room.Open(got, f.node)
	if err != nil || string(opened.Content) != "hello" {
		t.Fatalf("partner's Open = %q, %v, want %q, nil", opened.Content, err, "hello")
	}
	if evs, _ := f.mb.Read(ctx, p.a.acct, 0, 0); len(evs) != 0 {
		t.Errorf("Read(sender) = %d events, want 0", len(evs))
	}
	if sends(t, f.reg, "ok") != 1 {
		t.Errorf("parley_relay_sends_total{result=ok} = %d, want 1", sends(t, f.reg, "ok"))
	}
}

// TestSendIdempotent: retries by transaction ID or by envelope store
// nothing new and return the first result.
func TestSendIdempotent(t *testing.T) {
	f := newFixture(t, relay.Config{}, nil)
	f.start(t)
	p := f.pair(t, account(1, 1), account(1, 2))
	ctx := context.Background()
	env := f.seal(t, p.a, "once")
	first, err := f.relay.Send(ctx, p.a.acct, "tx", reparse(t, env))
	if err != nil {
		t.Fatal(err)
	}
	other := f.seal(t, p.a, "other")
	for _, tc := range []struct {
		name string
		txid string
		env  *envelope.Envelope
	}{
		{"same txid, same envelope", "tx", env},
		{"same txid, another envelope", "tx", other},
		{"same envelope, another txid", "tx-2", env},
	} {
		res, err := f.relay.Send(ctx, p.a.acct, tc.txid, reparse(t, tc.env))
		if err != nil || !res.Duplicate || res.ID != first.ID || res.Pos != first.Pos || res.Stamp.Sig != first.Stamp.Sig {
			t.Errorf("Send(%s) = %+v, %v, want the first result with Duplicate", tc.name, res, err)
		}
	}
	// A retry is answered even after the room closed.
	if err := f.relay.Leave(ctx, p.b.acct, p.rec.ID); err != nil {
		t.Fatal(err)
	}
	if res, err := f.relay.Send(ctx, p.a.acct, "tx", reparse(t, env)); err != nil || !res.Duplicate {
		t.Errorf("Send(retry after close) = %+v, %v, want Duplicate", res, err)
	}
	evs, _ := f.mb.Read(ctx, p.b.acct, 0, 0)
	if len(evs) != 2 || evs[0].Kind != mailbox.KindMessage || evs[1].Kind != mailbox.KindRoomClosed {
		t.Fatalf("recipient's mailbox = %d events, want the message once and the close", len(evs))
	}
	if got := sends(t, f.reg, "duplicate"); got != 4 {
		t.Errorf("parley_relay_sends_total{result=duplicate} = %d, want 4", got)
	}
}

// TestSendConcurrentDuplicates: 50 concurrent sends of one txid store one
// message; exactly one of them is not a duplicate.
func TestSendConcurrentDuplicates(t *testing.T) {
	for _, tc := range []struct {
		name string
		txid func(i int) string
	}{
		{"one txid", func(int) string { return "same" }},
		{"one envelope, many txids", func(i int) string { return fmt.Sprint("tx-", i) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, relay.Config{}, nil)
			f.start(t)
			p := f.pair(t, account(1, 1), account(1, 2))
			env := f.seal(t, p.a, "dup")
			const n = 50
			results := make([]relay.Result, n)
			var wg sync.WaitGroup
			for i := range n {
				e := reparse(t, env)
				wg.Go(func() {
					var err error
					if results[i], err = f.relay.Send(context.Background(), p.a.acct, tc.txid(i), e); err != nil {
						t.Errorf("Send %d = %v", i, err)
					}
				})
			}
			wg.Wait()
			fresh := 0
			for i, r := range results {
				if !r.Duplicate {
					fresh++
				}
				if r.ID != env.ID() || r.Pos != 1 {
					t.Errorf("Send %d = {ID %x, Pos %d}, want {%x, 1}", i, r.ID, r.Pos, env.ID())
				}
			}
			if fresh != 1 {
				t.Errorf("%d of %d concurrent duplicate sends were not duplicates, want 1", fresh, n)
			}
			if evs, _ := f.mb.Read(context.Background(), p.b.acct, 0, 0); len(evs) != 1 {
				t.Errorf("recipient has %d events, want 1", len(evs))
			}
		})
	}
}

// TestSendRejected: each refused send gets its typed error and writes
// nothing.
func TestSendRejected(t *testing.T) {
	f := newFixture(t, relay.Config{}, nil)
	f.start(t)
	ctx := context.Background()
	p := f.pair(t, account(1, 1), account(1, 2))
	closed := f.pair(t, account(2, 1), account(2, 2))
	if err := f.relay.Leave(ctx, closed.a.acct, closed.rec.ID); err != nil {
		t.Fatal(err)
	}
	remote := f.pair(t, account(3, 1), account(3, 2))
	remote.rec.Sides[1].Local, remote.rec.Sides[1].Account = false, keys.AccountID{}
	f.putRoom(t, remote.rec)
	unknown := newFixture(t, relay.Config{}, nil).pair(t, account(4, 1), account(4, 2)) // a room this node never saw

	stamped := f.seal(t, p.a, "stamped")
	if err := envelope.StampBatch(f.key, t0, []*envelope.Envelope{stamped}); err != nil {
		t.Fatal(err)
	}
	forgedRecipient := f.seal(t, p.a, "to someone else")
	forgedRecipient.Header.Recipient = closed.a.ticket.Public().Sign
	badType := f.seal(t, p.a, "bad type")
	badType.Header.ContentType = 0
	old := *f
	old.now = t0.Add(-wire.MaxClockSkew - time.Second)
	stale := old.seal(t, p.a, "stale")
	truncated := f.seal(t, p.a, "short")
	truncated.Ciphertext = truncated.Ciphertext[:envelope.TagSize-1]

	for _, tc := range []struct {
		name string
		from keys.AccountID
		txid string
		env  *envelope.Envelope
		want []error
	}{
		{"empty txid", p.a.acct, "", f.seal(t, p.a, "x"), []error{relay.ErrBadTxID}},
		{"long txid", p.a.acct, strings.Repeat("x", relay.MaxTxID+1), f.seal(t, p.a, "x"), []error{relay.ErrBadTxID}},
		{"no envelope", p.a.acct, "t", nil, []error{relay.ErrBadHeader}},
		{"unknown room", unknown.a.acct, "t", f.seal(t, unknown.a, "x"), []error{relay.ErrNoRoom}},
		{"not a member", account(9, 9), "t", f.seal(t, p.a, "x"), []error{relay.ErrNoRoom}},
		{"closed room", closed.a.acct, "t", f.seal(t, closed.a, "x"), []error{relay.ErrRoomClosed}},
		{"forged sender", p.a.acct, "t", f.seal(t, p.b, "as the partner"), []error{relay.ErrBadHeader}},
		{"forged recipient", p.a.acct, "t", forgedRecipient, []error{relay.ErrBadHeader}},
		{"pre-stamped", p.a.acct, "t", stamped, []error{relay.ErrStamped}},
		{"bad time", p.a.acct, "t", stale, []error{relay.ErrBadHeader, envelope.ErrBadTime}},
		{"bad content type", p.a.acct, "t", badType, []error{relay.ErrBadHeader, envelope.ErrBadContentType}},
		{"short ciphertext", p.a.acct, "t", truncated, []error{relay.ErrBadHeader}},
		{"remote recipient, no forwarder", remote.a.acct, "t", f.seal(t, remote.a, "x"), []error{relay.ErrRemoteUnsupported}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshot(t, f.st)
			res, err := f.relay.Send(ctx, tc.from, tc.txid, tc.env)
			for _, want := range tc.want {
				if !errors.Is(err, want) {
					t.Errorf("Send(%s) = %+v, %v, want %v", tc.name, res, err, want)
				}
			}
			if after := snapshot(t, f.st); after != before {
				t.Errorf("Send(%s) changed the store", tc.name)
			}
		})
	}
	if got := sends(t, f.reg, "rejected"); got != 13 {
		t.Errorf("parley_relay_sends_total{result=rejected} = %d, want 13", got)
	}
}

// TestSendManyPairs: 500 concurrent sends from 50 pairs land exactly once,
// in each sender's order, in batches, with far fewer syncs than sends.
func TestSendManyPairs(t *testing.T) {
	f := newFixture(t, relay.Config{}, nil)
	f.start(t)
	const pairs, each = 50, 5 // each side sends `each`: 500 sends
	ps := make([]*pair, pairs)
	for i := range ps {
		ps[i] = f.pair(t, account(byte(i), 1), account(byte(i), 2))
	}
	syncs := f.st.Syncs()
	var wg sync.WaitGroup
	for _, p := range ps {
		for _, m := range []*member{p.a, p.b} {
			envs := make([]*envelope.Envelope, each)
			for j := range envs {
				envs[j] = f.seal(t, m, fmt.Sprintf("%s #%d", m.acct, j))
			}
			wg.Go(func() {
				for j, env := range envs {
					if _, err := f.relay.Send(context.Background(), m.acct, fmt.Sprint(j), env); err != nil {
						t.Errorf("Send = %v", err)
					}
				}
			})
		}
	}
	wg.Wait()
	syncs = f.st.Syncs() - syncs

	for _, p := range ps {
		for _, pr := range [][2]*member{{p.a, p.b}, {p.b, p.a}} {
			sender, recipient := pr[0], pr[1]
			evs, err := f.mb.Read(context.Background(), recipient.acct, 0, 0)
			if err != nil || len(evs) != each {
				t.Fatalf("recipient %s has %d events, %v, want %d", recipient.acct, len(evs), err, each)
			}
			for j, ev := range evs {
				env, err := envelope.Parse(ev.Body)
				if err != nil {
					t.Fatal(err)
				}
				o, err := recipient.room.Open(env, f.node)
				if want := fmt.Sprintf("%s #%d", sender.acct, j); err != nil || string(o.Content) != want {
					t.Fatalf("event %d of %s opens to %q, %v, want %q (exactly once, in order)", j, recipient.acct, o.Content, err, want)
				}
			}
		}
	}
	n, envs := batches(t, f.reg)
	t.Logf("%d sends in %d batches, %d syncs", envs, n, syncs)
	if envs != 2*pairs*each || n >= envs {
		t.Errorf("batches = %d holding %d envelopes, want %d envelopes in fewer batches", n, envs, 2*pairs*each)
	}
	if syncs*2 > int64(envs) {
		t.Errorf("%d syncs for %d sends, want at most half as many", syncs, envs)
	}
}

// TestRunDrains: sends queued when the pipeline stops still complete, and
// later sends are refused.
func TestRunDrains(t *testing.T) {
	f := newFixture(t, relay.Config{}, nil)
	p := f.pair(t, account(1, 1), account(1, 2))
	const n = 10
	errs := make(chan error, n)
	for i := range n {
		env := f.seal(t, p.a, fmt.Sprint(i))
		go func() {
			_, err := f.relay.Send(context.Background(), p.a.acct, fmt.Sprint(i), env)
			errs <- err
		}()
	}
	waitQueued(t, f.reg, n)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := f.relay.Run(ctx); err != nil {
		t.Fatalf("Run(cancelled) = %v, want nil", err)
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("queued Send = %v, want nil", err)
		}
	}
	if evs, _ := f.mb.Read(context.Background(), p.b.acct, 0, 0); len(evs) != n {
		t.Errorf("recipient has %d events after the drain, want %d", len(evs), n)
	}
	if _, err := f.relay.Send(context.Background(), p.a.acct, "late", f.seal(t, p.a, "late")); !errors.Is(err, relay.ErrClosed) {
		t.Errorf("Send after Run returned = %v, want ErrClosed", err)
	}
	if err := f.relay.Run(context.Background()); !errors.Is(err, relay.ErrClosed) {
		t.Errorf("Run after Run returned = %v, want ErrClosed", err)
	}
}

func TestRunTwice(t *testing.T) {
	f := newFixture(t, relay.Config{}, nil)
	f.start(t)
	p := f.pair(t, account(1, 1), account(1, 2))
	// A completed send proves the first Run is running.
	if _, err := f.relay.Send(context.Background(), p.a.acct, "t", f.seal(t, p.a, "x")); err != nil {
		t.Fatal(err)
	}
	if err := f.relay.Run(context.Background()); !errors.Is(err, relay.ErrRunning) {
		t.Fatalf("second Run = %v, want ErrRunning", err)
	}
}

// TestBusy: a full queue refuses at once, and a caller that gives up
// waiting gets its context's error.
func TestBusy(t *testing.T) {
	f := newFixture(t, relay.Config{QueueSize: 1}, nil)
	p := f.pair(t, account(1, 1), account(1, 2))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	first := f.seal(t, p.a, "first")
	go func() {
		_, err := f.relay.Send(ctx, p.a.acct, "1", first)
		done <- err
	}()
	waitQueued(t, f.reg, 1)
	if _, err := f.relay.Send(context.Background(), p.a.acct, "2", f.seal(t, p.a, "second")); !errors.Is(err, relay.ErrBusy) {
		t.Errorf("Send with a full queue = %v, want ErrBusy", err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Send whose caller left = %v, want context.Canceled", err)
	}
	// The queued send still completes once the pipeline runs, and its
	// retry learns the outcome.
	f.start(t)
	res, err := f.relay.Send(context.Background(), p.a.acct, "1", first)
	if err != nil || res.ID != first.ID() {
		t.Fatalf("retry = %+v, %v, want the first send's result", res, err)
	}
	if got := sends(t, f.reg, "error"); got != 1 {
		t.Errorf("parley_relay_sends_total{result=error} = %d, want 1 (busy)", got)
	}
}

// TestCrash: every send that returned nil before a crash survives it
// (DESIGN §4: no acknowledged message is lost), exactly once. The crash
// happens while sends are in flight.
func TestCrash(t *testing.T) {
	for _, unsynced := range []int{0, 50} {
		t.Run(fmt.Sprint("unsynced data kept ", unsynced, "%"), func(t *testing.T) {
			fs := vfs.NewCrashableMem()
			f := newFixture(t, relay.Config{}, fs)
			f.start(t)
			const senders, each, crashAfter = 4, 40, 60
			var mu sync.Mutex
			acked := make(map[keys.AccountID]map[[32]byte]bool)
			count := 0
			crashNow := make(chan struct{})
			var wg sync.WaitGroup
			for i := range senders {
				p := f.pair(t, account(byte(i), 1), account(byte(i), 2))
				ids := make(map[[32]byte]bool)
				acked[p.b.acct] = ids
				envs := make([]*envelope.Envelope, each)
				for j := range envs {
					envs[j] = f.seal(t, p.a, fmt.Sprint(j))
				}
				wg.Go(func() {
					for j, env := range envs {
						res, err := f.relay.Send(context.Background(), p.a.acct, fmt.Sprint(j), env)
						if err != nil {
							t.Errorf("Send = %v", err)
							return
						}
						mu.Lock()
						ids[res.ID] = true
						if count++; count == crashAfter {
							close(crashNow)
						}
						mu.Unlock()
					}
				})
			}
			<-crashNow
			// Everything acknowledged so far must be in the crashed copy.
			mu.Lock()
			crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: unsynced, RNG: mrand.New(mrand.NewPCG(1, 2))})
			want := make(map[keys.AccountID][][32]byte)
			for recipient, ids := range acked {
				for id := range ids {
					want[recipient] = append(want[recipient], id)
				}
			}
			mu.Unlock()
			wg.Wait()

			g := newFixture(t, relay.Config{}, crashed)
			n := 0
			for recipient, ids := range want {
				evs, err := g.mb.Read(context.Background(), recipient, 0, mailbox.MaxReadLimit)
				if err != nil {
					t.Fatal(err)
				}
				seen := make(map[[32]byte]int)
				for _, ev := range evs {
					env, err := envelope.Parse(ev.Body)
					if err != nil {
						t.Fatal(err)
					}
					seen[env.ID()]++
				}
				for _, id := range ids {
					n++
					if seen[id] != 1 {
						t.Errorf("acknowledged envelope %x is in the recovered mailbox %d times, want 1", id[:4], seen[id])
					}
				}
			}
			if n < crashAfter {
				t.Errorf("checked %d acknowledged sends, want at least %d", n, crashAfter)
			}
		})
	}
}

func TestLeave(t *testing.T) {
	f := newFixture(t, relay.Config{}, nil)
	f.start(t)
	ctx := context.Background()
	p := f.pair(t, account(1, 1), account(1, 2))
	if err := f.relay.Leave(ctx, account(9, 9), p.rec.ID); !errors.Is(err, relay.ErrNoRoom) {
		t.Errorf("Leave(not a member) = %v, want ErrNoRoom", err)
	}
	if err := f.relay.Leave(ctx, p.a.acct, keys.RoomID{1}); !errors.Is(err, relay.ErrNoRoom) {
		t.Errorf("Leave(unknown room) = %v, want ErrNoRoom", err)
	}
	for range 2 { // the second time does nothing
		if err := f.relay.Leave(ctx, p.a.acct, p.rec.ID); err != nil {
			t.Fatalf("Leave = %v, want nil", err)
		}
	}
	for _, tc := range []struct {
		acct keys.AccountID
		by   string
	}{{p.a.acct, relay.ClosedByMe}, {p.b.acct, relay.ClosedByPartner}} {
		evs, err := f.mb.Read(ctx, tc.acct, 0, 0)
		if err != nil || len(evs) != 1 || evs[0].Kind != mailbox.KindRoomClosed || evs[0].Room != p.rec.ID {
			t.Fatalf("Read(%s) after Leave = %+v, %v, want one room_closed event", tc.acct, evs, err)
		}
		var body relay.RoomClosed
		if err := json.Unmarshal(evs[0].Body, &body); err != nil || body.By != tc.by {
			t.Errorf("room_closed body for %s = %s, want by %q", tc.acct, evs[0].Body, tc.by)
		}
	}
	rec, err := f.rooms.Get(ctx, p.rec.ID)
	if err != nil || !rec.IsClosed() || rec.ClosedBy != p.a.ticket.Public().Sign || !rec.Closed.Equal(t0) {
		t.Errorf("room after Leave = %+v, %v, want closed by the leaver at t0", rec, err)
	}
	if _, err := f.relay.Send(ctx, p.b.acct, "t", f.seal(t, p.b, "anyone?")); !errors.Is(err, relay.ErrRoomClosed) {
		t.Errorf("Send after Leave = %v, want ErrRoomClosed", err)
	}
}

// outbox is a Forwarder that writes envelopes under a test prefix.
type outbox struct {
	fail  error
	mu    sync.Mutex
	homes []keys.NodeID
}

func (o *outbox) Forward(b *store.Batch, home keys.NodeID, env *envelope.Envelope) error {
	if o.fail != nil {
		return o.fail
	}
	if env.Stamp == nil {
		return errors.New("forwarded unstamped")
	}
	o.mu.Lock()
	o.homes = append(o.homes, home)
	o.mu.Unlock()
	id := env.ID()
	enc, _ := env.MarshalBinary()
	b.Set(store.Key("test-out/", id[:]), enc)
	return nil
}

func TestForwarder(t *testing.T) {
	for _, fail := range []bool{false, true} {
		t.Run(fmt.Sprint("fail=", fail), func(t *testing.T) {
			out := &outbox{}
			if fail {
				out.fail = errors.New("outbox full")
			}
			f := newFixture(t, relay.Config{}, nil, relay.WithForwarder(out))
			f.start(t)
			p := f.pair(t, account(1, 1), account(1, 2))
			other, err := keys.GenerateNodeKey(rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			p.rec.Sides[1] = rooms.Side{Ticket: p.rec.Sides[1].Ticket, Home: other.Public()}
			f.putRoom(t, p.rec)
			env := f.seal(t, p.a, "far away")
			before := snapshot(t, f.st)
			res, err := f.relay.Send(context.Background(), p.a.acct, "t", env)
			if fail {
				if err == nil {
					t.Fatalf("Send with a failing forwarder = %+v, nil, want an error", res)
				}
				if snapshot(t, f.st) != before {
					t.Errorf("failed Send changed the store")
				}
				// The pipeline failed it: one send, one error.
				if got := sends(t, f.reg, "error"); got != 1 {
					t.Errorf("parley_relay_sends_total{result=error} = %d, want 1", got)
				}
				return
			}
			if err != nil || res.Pos != 0 || res.ID != env.ID() {
				t.Fatalf("Send(remote) = %+v, %v, want ID and no position", res, err)
			}
			if len(out.homes) != 1 || out.homes[0] != other.Public() {
				t.Errorf("forwarded to %v, want [%s]", out.homes, other.Public())
			}
			id := env.ID()
			v, err := f.st.Get(store.Key("test-out/", id[:]))
			if err != nil {
				t.Fatalf("outbox entry: %v", err)
			}
			fwd, err := envelope.Parse(v)
			if err != nil || fwd.VerifyStamp(f.node) != nil {
				t.Errorf("outbox holds %v, want a stamped envelope", err)
			}
			if res, err := f.relay.Send(context.Background(), p.a.acct, "t", env); err != nil || !res.Duplicate || len(out.homes) != 1 {
				t.Errorf("retry = %+v, %v with %d forwards, want Duplicate and 1 forward", res, err, len(out.homes))
			}
		})
	}
}

func TestExpireRecords(t *testing.T) {
	f := newFixture(t, relay.Config{}, nil)
	f.start(t)
	p := f.pair(t, account(1, 1), account(1, 2))
	ctx := context.Background()
	for i := range 3 {
		if _, err := f.relay.Send(ctx, p.a.acct, fmt.Sprint(i), f.seal(t, p.a, "x")); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		olderThan time.Time
		want      int
	}{
		{t0, 0},
		{t0.Add(time.Nanosecond), 6}, // a tx and a seen record per send
		{t0.Add(time.Hour), 0},
	} {
		if n, err := f.relay.ExpireRecords(ctx, tc.olderThan); n != tc.want || err != nil {
			t.Errorf("ExpireRecords(%s) = %d, %v, want %d, nil", tc.olderThan, n, err, tc.want)
		}
	}
	if evs, _ := f.mb.Read(ctx, p.b.acct, 0, 0); len(evs) != 3 {
		t.Errorf("recipient has %d events after ExpireRecords, want 3 (only records go)", len(evs))
	}
}

func TestMetricsLint(t *testing.T) {
	f := newFixture(t, relay.Config{}, nil)
	f.start(t)
	p := f.pair(t, account(1, 1), account(1, 2))
	if _, err := f.relay.Send(context.Background(), p.a.acct, "t", f.seal(t, p.a, "x")); err != nil {
		t.Fatal(err)
	}
	problems, err := testutil.GatherAndLint(f.reg)
	if err != nil || len(problems) != 0 {
		t.Fatalf("GatherAndLint = %v, %v, want no problems", problems, err)
	}
	if err := testutil.GatherAndCompare(f.reg, strings.NewReader(`
# HELP parley_relay_sends_total Sends by outcome: ok (stored), duplicate (a retry answered from the record), rejected (refused for its content), error (the node failed).
# TYPE parley_relay_sends_total counter
parley_relay_sends_total{result="duplicate"} 0
parley_relay_sends_total{result="error"} 0
parley_relay_sends_total{result="ok"} 1
parley_relay_sends_total{result="rejected"} 0
# HELP parley_relay_queue_depth Sends waiting for the pipeline.
# TYPE parley_relay_queue_depth gauge
parley_relay_queue_depth 0
`), "parley_relay_sends_total", "parley_relay_queue_depth"); err != nil {
		t.Error(err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  relay.Config
		errs int
	}{
		{relay.Config{}, 0},
		{relay.DefaultConfig(), 0},
		{relay.Config{MaxBatch: wire.MaxStampBatch + 1}, 1},
		{relay.Config{MaxBatch: -1, MaxBatchDelay: -1, QueueSize: -1, TxRetention: time.Minute}, 4},
		{relay.Config{MaxBatchDelay: 2 * time.Second}, 1},
	} {
		err := tc.cfg.Validate()
		n := 0
		if err != nil {
			n = strings.Count(err.Error(), "\n") + 1
		}
		if n != tc.errs {
			t.Errorf("%+v.Validate() = %v, want %d problems", tc.cfg, err, tc.errs)
		}
	}
	d := relay.DefaultConfig()
	if d.MaxBatch != 256 || d.MaxBatchDelay != 0 || d.QueueSize != 4096 || d.TxRetention != 24*time.Hour {
		t.Errorf("DefaultConfig() = %+v, want 256, 0s, 4096, 24h", d)
	}
	if _, err := relay.New(relay.Config{MaxBatch: -1}, nil, nil, nil, nodeKey); err == nil {
		t.Errorf("New(invalid config) = nil error")
	}
}

// TestBatchDelay: with MaxBatchDelay the pipeline waits (up to a second
// here) to fill a batch of MaxBatch.
func TestBatchDelay(t *testing.T) {
	f := newFixture(t, relay.Config{MaxBatchDelay: time.Second, MaxBatch: 4}, nil)
	p := f.pair(t, account(1, 1), account(1, 2))
	envs := make([]*envelope.Envelope, 8)
	for i := range envs {
		envs[i] = f.seal(t, p.a, fmt.Sprint(i))
	}
	f.start(t)
	var wg sync.WaitGroup
	for i, env := range envs {
		wg.Go(func() {
			if _, err := f.relay.Send(context.Background(), p.a.acct, fmt.Sprint(i), env); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	n, total := batches(t, f.reg)
	if total != len(envs) || n != 2 {
		t.Errorf("%d envelopes in %d batches, want %d in 2 (MaxBatch 4)", total, n, len(envs))
	}
	evs, _ := f.mb.Read(context.Background(), p.b.acct, 0, 0)
	if len(evs) != len(envs) {
		t.Fatalf("recipient has %d events, want %d", len(evs), len(envs))
	}
	for _, ev := range evs {
		if !bytes.HasPrefix(ev.Body, []byte{envelope.Version}) {
			t.Errorf("event body does not start with the envelope version")
		}
	}
}
