package mailbox_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/parley-chat/parley/node/internal/poll"
	"github.com/parley-chat/parley/node/internal/storetest"
	"github.com/parley-chat/parley/node/mailbox"
	"github.com/parley-chat/parley/node/store"
	"github.com/parley-chat/parley/protocol/keys"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

type env struct {
	disk *storetest.Disk
	st   *store.Store
	mb   *mailbox.Mailbox
	reg  *prometheus.Registry
}

func open(t *testing.T) *env {
	t.Helper()
	e := &env{disk: storetest.New(t, nil)}
	e.reopen(t)
	return e
}

// reopen opens (again) the store and a new mailbox on e's filesystem.
func (e *env) reopen(t *testing.T) {
	t.Helper()
	st := e.disk.Open()
	e.st = st
	var err error
	e.reg = prometheus.NewRegistry()
	e.mb, err = mailbox.New(mailbox.Config{}, st, mailbox.WithRegisterer(e.reg), mailbox.WithClock(func() time.Time { return t0 }))
	if err != nil {
		t.Fatal(err)
	}
}

func acct(b byte) keys.AccountID { return keys.AccountID{b, 0xaa} }

func event(i int) mailbox.Event {
	return mailbox.Event{
		Kind: mailbox.KindMessage,
		Room: keys.RoomID{byte(i), 1},
		Time: t0.Add(time.Duration(i) * time.Second),
		Body: fmt.Appendf(nil, "event %d", i),
	}
}

// appendCommit appends evs to a in one batch and commits it.
func (e *env) appendCommit(t *testing.T, a keys.AccountID, evs ...mailbox.Event) []uint64 {
	t.Helper()
	b := e.st.NewBatch()
	var pos []uint64
	for _, ev := range evs {
		p, err := e.mb.Append(b, a, ev)
		if err != nil {
			t.Fatalf("Append = %v", err)
		}
		pos = append(pos, p)
	}
	if err := e.mb.Commit(context.Background(), b); err != nil {
		t.Fatalf("Commit = %v", err)
	}
	return pos
}

func (e *env) read(t *testing.T, a keys.AccountID, after uint64, limit int) []mailbox.Event {
	t.Helper()
	evs, err := e.mb.Read(context.Background(), a, after, limit)
	if err != nil {
		t.Fatalf("Read(%d, %d) = %v", after, limit, err)
	}
	return evs
}

func positions(evs []mailbox.Event) []uint64 {
	var p []uint64
	for _, ev := range evs {
		p = append(p, ev.Pos)
	}
	return p
}

func seq(from, to uint64) []uint64 {
	var p []uint64
	for i := from; i <= to; i++ {
		p = append(p, i)
	}
	return p
}

func samePositions(a, b []uint64) bool {
	return fmt.Sprint(a) == fmt.Sprint(b)
}

func wantMetrics(t *testing.T, reg *prometheus.Registry, text string, names ...string) {
	t.Helper()
	if err := testutil.GatherAndCompare(reg, strings.NewReader(text), names...); err != nil {
		t.Error(err)
	}
}

func TestAppendRead(t *testing.T) {
	e := open(t)
	alice, bob := acct(1), acct(2)
	var evs []mailbox.Event
	for i := range 5 {
		evs = append(evs, event(i))
	}
	evs[3].Kind = mailbox.KindPaired
	evs[4].Kind, evs[4].Body = mailbox.KindRoomClosed, nil
	if got := e.appendCommit(t, alice, evs[:2]...); !samePositions(got, seq(1, 2)) {
		t.Fatalf("Append positions = %v, want [1 2]", got)
	}
	if got := e.appendCommit(t, alice, evs[2:]...); !samePositions(got, seq(3, 5)) {
		t.Fatalf("Append positions = %v, want [3 4 5]", got)
	}
	if got := e.appendCommit(t, bob, event(9)); !samePositions(got, seq(1, 1)) {
		t.Fatalf("Append(bob) positions = %v, want [1]: positions are per account", got)
	}

	all := e.read(t, alice, 0, 0)
	if len(all) != 5 {
		t.Fatalf("Read(alice, 0) = %d events, want 5", len(all))
	}
	for i, got := range all {
		want := evs[i]
		if got.Pos != uint64(i+1) || got.Kind != want.Kind || got.Room != want.Room || !got.Time.Equal(want.Time) || !bytes.Equal(got.Body, want.Body) {
			t.Errorf("Read(alice)[%d] = %+v, want %+v at position %d", i, got, want, i+1)
		}
	}
	for _, tc := range []struct {
		after uint64
		limit int
		want  []uint64
	}{
		{0, 2, seq(1, 2)},
		{2, 0, seq(3, 5)},
		{4, 10, seq(5, 5)},
		{5, 10, nil},
		{99, 10, nil},
	} {
		if got := positions(e.read(t, alice, tc.after, tc.limit)); !samePositions(got, tc.want) {
			t.Errorf("Read(alice, after %d, limit %d) = %v, want %v", tc.after, tc.limit, got, tc.want)
		}
	}
	if got := e.read(t, acct(3), 0, 0); len(got) != 0 {
		t.Errorf("Read(unknown account) = %v, want none", got)
	}
	wantMetrics(t, e.reg, `
# HELP parley_mailbox_appended_total Events durably appended to mailboxes, by kind.
# TYPE parley_mailbox_appended_total counter
parley_mailbox_appended_total{kind="message"} 4
parley_mailbox_appended_total{kind="notice"} 0
parley_mailbox_appended_total{kind="paired"} 1
parley_mailbox_appended_total{kind="room_closed"} 1
# HELP parley_mailbox_events Events stored in mailboxes (counted at start, then maintained).
# TYPE parley_mailbox_events gauge
parley_mailbox_events 6
`, "parley_mailbox_appended_total", "parley_mailbox_events")
}

func TestReadLimit(t *testing.T) {
	e := open(t)
	a := acct(1)
	evs := make([]mailbox.Event, mailbox.MaxReadLimit+5)
	for i := range evs {
		evs[i] = event(i)
	}
	e.appendCommit(t, a, evs...)
	for _, tc := range []struct{ limit, want int }{
		{0, mailbox.DefaultReadLimit},
		{-1, mailbox.DefaultReadLimit},
		{7, 7},
		{mailbox.MaxReadLimit + 1, mailbox.MaxReadLimit},
	} {
		if got := len(e.read(t, a, 0, tc.limit)); got != tc.want {
			t.Errorf("Read(limit %d) = %d events, want %d", tc.limit, got, tc.want)
		}
	}
}

func TestAppendBadEvent(t *testing.T) {
	e := open(t)
	for _, tc := range []struct {
		name string
		ev   mailbox.Event
	}{
		{"kind 0", mailbox.Event{Kind: 0}},
		{"kind 5", mailbox.Event{Kind: 5}},
		{"body too large", mailbox.Event{Kind: mailbox.KindMessage, Body: make([]byte, mailbox.MaxBody+1)}},
	} {
		b := e.st.NewBatch()
		if _, err := e.mb.Append(b, acct(1), tc.ev); !errors.Is(err, mailbox.ErrBadEvent) {
			t.Errorf("Append(%s) = %v, want ErrBadEvent", tc.name, err)
		}
		if b.Len() != 0 {
			t.Errorf("Append(%s) wrote %d keys, want 0", tc.name, b.Len())
		}
		e.mb.Discard(b)
	}
}

// TestConcurrentAppend: positions handed out concurrently are unique and,
// when every batch commits, contiguous.
func TestConcurrentAppend(t *testing.T) {
	e := open(t)
	a := acct(1)
	const writers, each = 20, 25
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				b := e.st.NewBatch()
				if _, err := e.mb.Append(b, a, event(w*each+i)); err != nil {
					t.Error(err)
				}
				if err := e.mb.Commit(context.Background(), b); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if got := positions(e.read(t, a, 0, mailbox.MaxReadLimit)); !samePositions(got, seq(1, writers*each)) {
		t.Fatalf("Read after %d concurrent appends = %v, want 1..%d", writers*each, got, writers*each)
	}
}

// TestWatermark: an event committed while an earlier position is still in
// an uncommitted batch stays invisible until that batch commits or is
// discarded, so a reader never skips a position.
func TestWatermark(t *testing.T) {
	for _, tc := range []struct {
		name    string
		resolve func(e *env, b *store.Batch) error
		want    []uint64
	}{
		{"earlier batch commits", func(e *env, b *store.Batch) error { return e.mb.Commit(context.Background(), b) }, seq(1, 2)},
		{"earlier batch discarded", func(e *env, b *store.Batch) error { e.mb.Discard(b); return nil }, seq(2, 2)},
		{"earlier batch fails", func(e *env, b *store.Batch) error {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			if err := e.mb.Commit(ctx, b); !errors.Is(err, context.Canceled) {
				return fmt.Errorf("Commit(cancelled) = %w, want context.Canceled", err)
			}
			return nil
		}, seq(2, 2)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := open(t)
			a := acct(1)
			first := e.st.NewBatch()
			if p, err := e.mb.Append(first, a, event(1)); p != 1 || err != nil {
				t.Fatalf("Append = %d, %v, want 1, nil", p, err)
			}
			if got := e.appendCommit(t, a, event(2)); !samePositions(got, seq(2, 2)) {
				t.Fatalf("Append = %v, want [2]", got)
			}
			if got := e.read(t, a, 0, 0); len(got) != 0 {
				t.Fatalf("Read while position 1 is uncommitted = %v, want none", positions(got))
			}
			if err := e.mb.Ack(context.Background(), a, 2); err != nil {
				t.Fatal(err)
			}
			if err := tc.resolve(e, first); err != nil {
				t.Fatal(err)
			}
			if got := positions(e.read(t, a, 0, 0)); !samePositions(got, tc.want) {
				t.Fatalf("Read after resolving position 1 = %v, want %v (and Ack(2) before it deleted nothing)", got, tc.want)
			}
		})
	}
}

// TestPositionsNeverReused: after a restart, positions continue past every
// position ever used, even when the batches committed out of order and the
// events were acknowledged or expired.
func TestPositionsNeverReused(t *testing.T) {
	for _, tc := range []struct {
		name  string
		clear func(e *env, a keys.AccountID) error
	}{
		{"kept", func(*env, keys.AccountID) error { return nil }},
		{"acknowledged", func(e *env, a keys.AccountID) error { return e.mb.Ack(context.Background(), a, 100) }},
		{"expired", func(e *env, _ keys.AccountID) error {
			_, err := e.mb.Expire(context.Background(), t0.Add(time.Hour))
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := open(t)
			a := acct(1)
			e.appendCommit(t, a, event(1)) // 1
			// 2 and 3 commit in reverse order, so the stored head goes back to 3.
			b2 := e.st.NewBatch()
			if _, err := e.mb.Append(b2, a, event(2)); err != nil {
				t.Fatal(err)
			}
			e.appendCommit(t, a, event(3))
			if err := e.mb.Commit(context.Background(), b2); err != nil {
				t.Fatal(err)
			}
			if err := tc.clear(e, a); err != nil {
				t.Fatal(err)
			}
			e.reopen(t)
			if got := e.appendCommit(t, a, event(4)); !samePositions(got, seq(4, 4)) {
				t.Fatalf("Append after restart = %v, want [4]", got)
			}
		})
	}
}

func TestAck(t *testing.T) {
	e := open(t)
	a, other := acct(1), acct(2)
	ctx := context.Background()
	evs := []mailbox.Event{event(1), event(2), event(3), event(4), event(5)}
	e.appendCommit(t, a, evs...)
	e.appendCommit(t, other, event(1))
	for _, tc := range []struct {
		upto uint64
		want []uint64
	}{
		{0, seq(1, 5)},
		{2, seq(3, 5)},
		{2, seq(3, 5)}, // idempotent
		{1, seq(3, 5)},
		{100, nil}, // clamped to the head
	} {
		if err := e.mb.Ack(ctx, a, tc.upto); err != nil {
			t.Fatalf("Ack(%d) = %v", tc.upto, err)
		}
		if got := positions(e.read(t, a, 0, 0)); !samePositions(got, tc.want) {
			t.Errorf("Read after Ack(%d) = %v, want %v", tc.upto, got, tc.want)
		}
	}
	// Ack(100) deleted up to the head (5) only: the next event, at 6, stays.
	if got := e.appendCommit(t, a, event(6)); !samePositions(got, seq(6, 6)) {
		t.Fatalf("Append after Ack(100) = %v, want [6]", got)
	}
	if got := positions(e.read(t, a, 0, 0)); !samePositions(got, seq(6, 6)) {
		t.Errorf("Read after Ack(100) and Append = %v, want [6]", got)
	}
	if got := positions(e.read(t, other, 0, 0)); !samePositions(got, seq(1, 1)) {
		t.Errorf("Read(other account) = %v, want [1]: Ack touches one account", got)
	}
	wantMetrics(t, e.reg, `
# HELP parley_mailbox_acked_total Events deleted because their account acknowledged them.
# TYPE parley_mailbox_acked_total counter
parley_mailbox_acked_total 5
# HELP parley_mailbox_events Events stored in mailboxes (counted at start, then maintained).
# TYPE parley_mailbox_events gauge
parley_mailbox_events 2
`, "parley_mailbox_acked_total", "parley_mailbox_events")
}

func TestEventsGaugeAtStart(t *testing.T) {
	e := open(t)
	e.appendCommit(t, acct(1), event(1), event(2))
	e.appendCommit(t, acct(2), event(3))
	e.reopen(t)
	wantMetrics(t, e.reg, `
# HELP parley_mailbox_events Events stored in mailboxes (counted at start, then maintained).
# TYPE parley_mailbox_events gauge
parley_mailbox_events 3
`, "parley_mailbox_events")
}

func TestExpire(t *testing.T) {
	e := open(t)
	ctx := context.Background()
	// More accounts than Expire handles per chunk, each with an old, a
	// borderline and a new event.
	const accounts = 70
	for i := range accounts {
		old, border, fresh := event(0), event(0), event(0)
		old.Time, border.Time, fresh.Time = t0.Add(-2*time.Hour), t0.Add(-time.Hour), t0
		e.appendCommit(t, acct(byte(i)), old, border, fresh)
	}
	for _, tc := range []struct {
		olderThan time.Time
		want      int
		left      []uint64
	}{
		{t0.Add(-3 * time.Hour), 0, seq(1, 3)},
		{t0.Add(-time.Hour), accounts, seq(2, 3)}, // strictly older only
		{t0.Add(-time.Hour), 0, seq(2, 3)},
		{t0.Add(time.Nanosecond), 2 * accounts, nil},
	} {
		n, err := e.mb.Expire(ctx, tc.olderThan)
		if err != nil || n != tc.want {
			t.Fatalf("Expire(%s) = %d, %v, want %d, nil", tc.olderThan, n, err, tc.want)
		}
		for i := range accounts {
			if got := positions(e.read(t, acct(byte(i)), 0, 0)); !samePositions(got, tc.left) {
				t.Fatalf("Read(account %d) after Expire(%s) = %v, want %v", i, tc.olderThan, got, tc.left)
			}
		}
	}
	wantMetrics(t, e.reg, `
# HELP parley_mailbox_expired_total Events deleted unacknowledged because they outlived the retention limit.
# TYPE parley_mailbox_expired_total counter
parley_mailbox_expired_total 210
# HELP parley_mailbox_events Events stored in mailboxes (counted at start, then maintained).
# TYPE parley_mailbox_events gauge
parley_mailbox_events 0
`, "parley_mailbox_expired_total", "parley_mailbox_events")
}

// TestExpireSkipsInvisible: an event beyond the watermark is not expired
// yet (it is not readable either).
func TestExpireSkipsInvisible(t *testing.T) {
	e := open(t)
	a := acct(1)
	first := e.st.NewBatch()
	if _, err := e.mb.Append(first, a, event(1)); err != nil {
		t.Fatal(err)
	}
	old := event(2)
	old.Time = t0.Add(-time.Hour)
	e.appendCommit(t, a, old)
	if n, err := e.mb.Expire(context.Background(), t0); n != 0 || err != nil {
		t.Fatalf("Expire with position 1 pending = %d, %v, want 0, nil", n, err)
	}
	if err := e.mb.Commit(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	if n, err := e.mb.Expire(context.Background(), t0); n != 1 || err != nil {
		t.Fatalf("Expire = %d, %v, want 1, nil", n, err)
	}
}

func TestWait(t *testing.T) {
	t.Run("event already there", func(t *testing.T) {
		e := open(t)
		e.appendCommit(t, acct(1), event(1))
		if err := e.mb.Wait(context.Background(), acct(1), 0); err != nil {
			t.Fatalf("Wait(after 0) with event 1 stored = %v, want nil", err)
		}
	})
	t.Run("wakes on commit", func(t *testing.T) {
		e := open(t)
		a := acct(1)
		e.appendCommit(t, a, event(1))
		done := make(chan error, 1)
		go func() { done <- e.mb.Wait(context.Background(), a, 1) }()
		e.waitForWaiters(t, 1)
		select {
		case err := <-done:
			t.Fatalf("Wait(after 1) returned %v before an event came", err)
		default:
		}
		// Another account's event does not wake it for good.
		e.appendCommit(t, acct(2), event(2))
		e.appendCommit(t, a, event(2))
		if err := <-done; err != nil {
			t.Fatalf("Wait(after 1) = %v, want nil", err)
		}
		e.waitForWaiters(t, 0)
	})
	t.Run("context ends", func(t *testing.T) {
		e := open(t)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- e.mb.Wait(ctx, acct(1), 0) }()
		e.waitForWaiters(t, 1)
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Wait after cancel = %v, want context.Canceled", err)
		}
		e.waitForWaiters(t, 0)
	})
}

// TestWaitNoLostWakeup races Wait against the commit it waits for, many
// times: every Wait must return.
func TestWaitNoLostWakeup(t *testing.T) {
	e := open(t)
	a := acct(1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const rounds, waiters = 200, 4
	for i := range uint64(rounds) {
		var wg sync.WaitGroup
		for range waiters {
			wg.Go(func() {
				if err := e.mb.Wait(ctx, a, i); err != nil {
					t.Errorf("Wait(after %d) = %v, want nil (lost wake-up)", i, err)
				}
			})
		}
		e.appendCommit(t, a, event(int(i)))
		wg.Wait()
		if t.Failed() {
			return
		}
	}
	e.waitForWaiters(t, 0)
}

// waitForWaiters polls the waiters gauge until it is n.
func (e *env) waitForWaiters(t *testing.T, n int) {
	t.Helper()
	poll.Until(t, fmt.Sprintf("parley_mailbox_waiters is %d", n), func() bool {
		mfs, err := e.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "parley_mailbox_waiters" && int(mf.GetMetric()[0].GetGauge().GetValue()) == n {
				return true
			}
		}
		return false
	})
}

func TestRun(t *testing.T) {
	e := open(t)
	old := event(1)
	old.Time = t0.Add(-800 * time.Hour) // beyond the default 720h retention
	e.appendCommit(t, acct(1), old, event(2))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.mb.Run(ctx) }()
	poll.Until(t, "Run expires the old event", func() bool { return len(e.read(t, acct(1), 0, 0)) == 1 })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
}

func TestMetricsLint(t *testing.T) {
	e := open(t)
	e.appendCommit(t, acct(1), event(1))
	problems, err := testutil.GatherAndLint(e.reg)
	if err != nil || len(problems) != 0 {
		t.Fatalf("GatherAndLint = %v, %v, want no problems", problems, err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  mailbox.Config
		errs int
	}{
		{mailbox.Config{}, 0},
		{mailbox.DefaultConfig(), 0},
		{mailbox.Config{Retention: time.Minute}, 1},
		{mailbox.Config{Retention: -time.Hour, ExpireEvery: -1}, 2},
		{mailbox.Config{ExpireEvery: time.Millisecond}, 1},
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
	if d := mailbox.DefaultConfig(); d.Retention != 720*time.Hour || d.ExpireEvery != time.Hour {
		t.Errorf("DefaultConfig() = %+v, want 720h retention, 1h expiry interval", d)
	}
}
