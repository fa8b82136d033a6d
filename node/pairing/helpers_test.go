package pairing_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/parley-chat/parley/node/internal/fakeclock"
	"github.com/parley-chat/parley/node/internal/storetest"
	"github.com/parley-chat/parley/node/mailbox"
	"github.com/parley-chat/parley/node/pairing"
	"github.com/parley-chat/parley/node/rooms"
	"github.com/parley-chat/parley/node/store"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/lottery"
	"github.com/parley-chat/parley/protocol/room"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// t0 is inside an epoch of the default 2s length.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 500_000_000, time.UTC)

// e0 is the epoch t0 is in.
var e0 = uint64(t0.UnixMilli()) / 2000

// clock is a fake clock, safe for concurrent use.
type clock = fakeclock.Clock

// env is a node's lottery on an in-memory store.
type env struct {
	cfg   pairing.Config
	disk  *storetest.Disk
	clock *clock
	key   keys.NodeKey
	opts  []pairing.Option

	st  *store.Store
	rm  *rooms.Rooms
	mb  *mailbox.Mailbox
	lt  *pairing.Lottery
	reg *prometheus.Registry
}

func newEnv(t *testing.T, cfg pairing.Config, opts ...pairing.Option) *env {
	t.Helper()
	k, err := keys.GenerateNodeKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{cfg: cfg, disk: storetest.New(t, nil), clock: fakeclock.New(t0), key: k, opts: opts}
	e.reopen(t)
	return e
}

// reopen closes the store if it is open and opens it again, with a new
// mailbox and lottery, as a restarted node does.
func (e *env) reopen(t *testing.T) {
	t.Helper()
	st := e.disk.Open()
	e.st = st
	var err error
	e.rm = rooms.New(st)
	e.mb, err = mailbox.New(mailbox.Config{}, st, mailbox.WithClock(e.clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	e.reg = prometheus.NewRegistry()
	opts := append([]pairing.Option{pairing.WithClock(e.clock.Now), pairing.WithRegisterer(e.reg)}, e.opts...)
	e.lt, err = pairing.New(e.cfg, st, e.rm, e.mb, e.key, opts...)
	if err != nil {
		t.Fatal(err)
	}
}

// user is an account with the private keys of its current ticket.
type user struct {
	acct keys.AccountID
	tk   keys.TicketKeys
}

func newUser(t *testing.T, i int) *user {
	t.Helper()
	u := &user{acct: keys.AccountID{byte(i), byte(i >> 8), 0xac}}
	u.fresh(t)
	return u
}

// fresh gives u new ticket keys.
func (u *user) fresh(t *testing.T) {
	t.Helper()
	k, err := keys.GenerateTicketKeys(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u.tk = k
}

func (u *user) request(tags ...[]lottery.Tag) pairing.TicketRequest {
	req := pairing.TicketRequest{Keys: u.tk.Public()}
	if len(tags) > 0 {
		req.Interests = tags[0]
	}
	if len(tags) > 1 {
		req.Avoid = tags[1]
	}
	return req
}

// ask requests a ticket for u and fails the test if it is refused.
func (e *env) ask(t *testing.T, u *user, tags ...[]lottery.Tag) pairing.TicketInfo {
	t.Helper()
	info, err := e.lt.RequestTicket(context.Background(), u.acct, u.request(tags...))
	if err != nil {
		t.Fatalf("RequestTicket(%s) = %v, want nil", u.acct, err)
	}
	return info
}

func (e *env) run(t *testing.T, epoch uint64) {
	t.Helper()
	if err := e.lt.RunEpoch(context.Background(), epoch); err != nil {
		t.Fatalf("RunEpoch(%d) = %v, want nil", epoch, err)
	}
}

// paired returns the paired events in u's mailbox.
func (e *env) paired(t *testing.T, u *user) []pairing.PairedEvent {
	t.Helper()
	evs, err := e.mb.Read(context.Background(), u.acct, 0, mailbox.MaxReadLimit)
	if err != nil {
		t.Fatal(err)
	}
	var out []pairing.PairedEvent
	for _, ev := range evs {
		if ev.Kind != mailbox.KindPaired {
			t.Fatalf("event %d of kind %s, want paired", ev.Pos, ev.Kind)
		}
		var p pairing.PairedEvent
		if err := json.Unmarshal(ev.Body, &p); err != nil {
			t.Fatalf("paired event body %s: %v", ev.Body, err)
		}
		if p.Room != ev.Room {
			t.Fatalf("paired event for room %s names room %s", ev.Room, p.Room)
		}
		out = append(out, p)
	}
	return out
}

// pairedOnce returns u's only paired event.
func (e *env) pairedOnce(t *testing.T, u *user) pairing.PairedEvent {
	t.Helper()
	evs := e.paired(t, u)
	if len(evs) != 1 {
		t.Fatalf("%s has %d paired events, want 1", u.acct, len(evs))
	}
	return evs[0]
}

func sideKeys(s pairing.PairedSide) keys.TicketPublic {
	return keys.TicketPublic{Sign: s.Sign, DH: s.DH}
}

// metrics checks metric values gathered from e's registry: counters and
// gauges by value, histograms by sample count. A key is a metric name,
// optionally with labels in the exposition format's braces.
func (e *env) metrics(t *testing.T, want map[string]float64) {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			if len(m.GetLabel()) > 0 {
				var ls []string
				for _, l := range m.GetLabel() {
					ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
				}
				key += "{" + strings.Join(ls, ",") + "}"
			}
			switch {
			case m.GetCounter() != nil:
				got[key] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				got[key] = m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				got[key] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	for k, w := range want {
		if g, ok := got[k]; !ok || g != w {
			t.Errorf("metric %s = %v (present %v), want %v", k, g, ok, w)
		}
	}
	if problems, err := testutil.GatherAndLint(e.reg); err != nil || len(problems) > 0 {
		t.Errorf("GatherAndLint() = %v, %v, want no problems", problems, err)
	}
}

// remoteRoom is the room ID a remote client holding mine derives with u.
func remoteRoom(mine keys.TicketKeys, u *user) (keys.RoomID, error) {
	r, err := room.Derive(mine, u.tk.Public())
	if err != nil {
		return keys.RoomID{}, err
	}
	return r.ID(), nil
}
