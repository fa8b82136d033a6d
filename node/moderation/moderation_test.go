package moderation_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/parley-chat/parley/node/accounts"
	"github.com/parley-chat/parley/node/internal/fakeclock"
	"github.com/parley-chat/parley/node/internal/storetest"
	"github.com/parley-chat/parley/node/moderation"
	"github.com/parley-chat/parley/node/rooms"
	"github.com/parley-chat/parley/node/store"
	"github.com/parley-chat/parley/protocol/keys"
)

// fakeAccounts keeps suspension state in memory.
type fakeAccounts struct {
	mu        sync.Mutex
	suspended map[keys.AccountID]string
	revoked   int
}

func (f *fakeAccounts) Get(_ context.Context, id keys.AccountID) (accounts.Account, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if id == (keys.AccountID{}) {
		return accounts.Account{}, accounts.ErrNotFound
	}
	r, ok := f.suspended[id]
	return accounts.Account{ID: id, Username: "u", Suspended: ok, SuspendReason: r}, nil
}

func (f *fakeAccounts) Suspend(_ context.Context, id keys.AccountID, reason string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.suspended[id] = reason
	return nil
}

func (f *fakeAccounts) Unsuspend(_ context.Context, id keys.AccountID) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.suspended, id)
	return nil
}

func (f *fakeAccounts) RevokeAll(context.Context, keys.AccountID) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.revoked++
	return 1, nil
}

func (f *fakeAccounts) isSuspended(id keys.AccountID) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.suspended[id]
	return ok
}

type world struct {
	disk  *storetest.Disk
	st    *store.Store
	rooms *rooms.Rooms
	accts *fakeAccounts
	clock *fakeclock.Clock
	reg   *prometheus.Registry
	md    *moderation.Moderation
}

var t0 = time.UnixMilli(1_790_000_000_000).UTC()

func setup(t *testing.T, cfg moderation.Config) *world {
	t.Helper()
	w := &world{disk: storetest.New(t, nil), accts: &fakeAccounts{suspended: map[keys.AccountID]string{}}, clock: fakeclock.New(t0)}
	w.open(t, cfg)
	return w
}

// open (re)opens the store and the policy: a restart.
func (w *world) open(t *testing.T, cfg moderation.Config) {
	t.Helper()
	w.st = w.disk.Open()
	w.rooms = rooms.New(w.st, rooms.WithClock(w.clock.Now))
	w.reg = prometheus.NewRegistry()
	var err error
	w.md, err = moderation.New(cfg, w.st, w.accts, w.rooms, moderation.WithClock(w.clock.Now), moderation.WithRegisterer(w.reg))
	if err != nil {
		t.Fatal(err)
	}
}

var accused = keys.AccountID{0xac}

func ev(report, reporter byte, at time.Time) moderation.Evidence {
	return moderation.Evidence{Report: [32]byte{report}, Accused: accused, Reporter: [32]byte{reporter}, Time: at}
}

// spec 13-moderation §3: distinct reporters within the window throttle,
// then suspend; duplicates and repeat reporters count once; every action
// carries its evidence.
func TestReportThresholds(t *testing.T) {
	w := setup(t, moderation.Config{})
	ctx := context.Background()
	steps := []struct {
		ev        moderation.Evidence
		dup       bool
		reporters int
		kinds     string
	}{
		{ev(1, 1, t0), false, 1, ""},
		{ev(1, 1, t0), true, 1, ""}, // the same report again: a replay
		{ev(2, 1, t0), true, 1, ""}, // the same reporter, another report
		{ev(3, 2, t0), false, 2, ""},
		{ev(4, 3, t0), false, 3, "throttle"},
		{ev(5, 4, t0), false, 4, ""},
		{ev(6, 5, t0), false, 5, "suspend"},
		{ev(7, 6, t0), false, 6, ""}, // already suspended and throttled
	}
	for i, s := range steps {
		out, err := w.md.Reported(ctx, s.ev)
		if err != nil {
			t.Fatalf("step %d: Reported = %v", i, err)
		}
		var kinds []string
		for _, a := range out.Actions {
			kinds = append(kinds, a.Kind.String())
		}
		if out.Duplicate != s.dup || out.Reporters != s.reporters || strings.Join(kinds, ",") != s.kinds {
			t.Errorf("step %d: Reported = dup %v, %d reporters, actions %v; want %v, %d, %q", i, out.Duplicate, out.Reporters, kinds, s.dup, s.reporters, s.kinds)
		}
	}
	if !w.accts.isSuspended(accused) {
		t.Fatal("the account is not suspended after 5 reporters")
	}
	if ok, _ := w.md.Allow(accused, moderation.RateTicket); !ok {
		t.Error("a throttled account's first ticket was refused (burst 1)")
	}
	if ok, retry := w.md.Allow(accused, moderation.RateTicket); ok || retry <= 0 {
		t.Errorf("a throttled account's second ticket = %v, %v, want refused with a retry", ok, retry)
	}
	if ok, _ := w.md.Allow(keys.AccountID{9}, moderation.RateTicket); !ok {
		t.Error("an account that is not throttled was refused")
	}
	acts, err := w.md.Actions(ctx, accused)
	if err != nil || len(acts) != 2 {
		t.Fatalf("Actions = %+v, %v, want 2", acts, err)
	}
	if a := acts[1]; a.Kind != moderation.KindSuspend || !a.Automatic || a.By != moderation.PolicyBy || len(a.Evidence) != 5 || a.Seq != 1 {
		t.Errorf("suspend action = %+v, want automatic with 5 report IDs", a)
	}
	if n, err := testutil.GatherAndCount(w.reg, "parley_moderation_actions_total"); err != nil || n != 2 {
		t.Errorf("parley_moderation_actions_total series = %d, %v, want 2", n, err)
	}
	if lint, err := testutil.GatherAndLint(w.reg); err != nil || len(lint) > 0 {
		t.Errorf("metric lint: %v, %v", lint, err)
	}
}

// spec 13-moderation §3.3: automatic actions are reversible; the record
// says who reversed them, and earlier reports no longer count.
func TestReverse(t *testing.T) {
	cfg := moderation.Config{ThrottleReporters: 2, SuspendReporters: 3}
	w := setup(t, cfg)
	ctx := context.Background()
	for i := range byte(3) {
		if _, err := w.md.Reported(ctx, ev(i+1, i+1, t0)); err != nil {
			t.Fatal(err)
		}
	}
	if !w.accts.isSuspended(accused) {
		t.Fatal("not suspended")
	}
	w.clock.Advance(time.Minute)
	if err := w.md.Unsuspend(ctx, accused, "carol", "appeal granted"); err != nil {
		t.Fatal(err)
	}
	if err := w.md.Unthrottle(ctx, accused, "carol", ""); err != nil {
		t.Fatal(err)
	}
	if err := w.md.Unthrottle(ctx, accused, "carol", ""); !errors.Is(err, moderation.ErrNotThrottled) {
		t.Errorf("Unthrottle(again) = %v, want ErrNotThrottled", err)
	}
	if err := w.md.Unsuspend(ctx, accused, "", ""); !errors.Is(err, moderation.ErrBadInput) {
		t.Errorf("Unsuspend(by nobody) = %v, want ErrBadInput", err)
	}
	if w.accts.isSuspended(accused) {
		t.Fatal("still suspended")
	}
	if _, ok := w.md.Throttled(accused); ok {
		t.Fatal("still throttled")
	}
	// A report received before the reversal (a late replay) does not count.
	if out, err := w.md.Reported(ctx, ev(8, 8, t0)); err != nil || !out.Duplicate || out.Reporters != 0 {
		t.Fatalf("Reported(stale) = %+v, %v, want it not counted", out, err)
	}
	// A new reporter: one counts, not four.
	w.clock.Advance(time.Minute)
	out, err := w.md.Reported(ctx, ev(9, 9, w.clock.Now()))
	if err != nil || out.Reporters != 1 || len(out.Actions) != 0 {
		t.Fatalf("Reported after the reversal = %+v, %v, want 1 reporter and no action", out, err)
	}
	acts, _ := w.md.Actions(ctx, accused)
	var got []string
	for _, a := range acts {
		got = append(got, a.Kind.String()+"/"+a.By)
	}
	if want := "throttle/policy,suspend/policy,unsuspend/carol,unthrottle/carol"; strings.Join(got, ",") != want {
		t.Errorf("Actions = %v, want %s", got, want)
	}
}

// spec 13-moderation §3.1: reports older than the window do not count; a
// throttle survives a restart and ends after throttle_for.
func TestWindowAndRestart(t *testing.T) {
	cfg := moderation.Config{Window: time.Hour, ThrottleReporters: 2, SuspendReporters: -1, ThrottleFor: 2 * time.Hour}
	w := setup(t, cfg)
	ctx := context.Background()
	if _, err := w.md.Reported(ctx, ev(1, 1, t0)); err != nil {
		t.Fatal(err)
	}
	w.clock.Advance(2 * time.Hour)
	out, err := w.md.Reported(ctx, ev(2, 2, w.clock.Now()))
	if err != nil || out.Reporters != 1 || len(out.Actions) != 0 {
		t.Fatalf("Reported after the window = %+v, %v, want 1 reporter", out, err)
	}
	out, err = w.md.Reported(ctx, ev(3, 3, w.clock.Now()))
	if err != nil || len(out.Actions) != 1 || out.Actions[0].Kind != moderation.KindThrottle {
		t.Fatalf("Reported = %+v, %v, want a throttle", out, err)
	}
	w.open(t, cfg)
	if _, ok := w.md.Throttled(accused); !ok {
		t.Fatal("the throttle did not survive a restart")
	}
	w.clock.Advance(2 * time.Hour)
	if _, ok := w.md.Throttled(accused); ok {
		t.Fatal("the throttle outlived throttle_for")
	}
	for range 10 {
		if ok, _ := w.md.Allow(accused, moderation.RateMessage); !ok {
			t.Fatal("an expired throttle still limits")
		}
	}
}

func TestOperatorActions(t *testing.T) {
	w := setup(t, moderation.Config{})
	ctx := context.Background()
	if n, err := w.md.Suspend(ctx, accused, "dave", "spam wave"); err != nil || n != 1 {
		t.Fatalf("Suspend = %d, %v", n, err)
	}
	if _, err := w.md.Throttle(ctx, accused, "dave", "slow down"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.md.Suspend(ctx, keys.AccountID{}, "dave", ""); !errors.Is(err, accounts.ErrNotFound) {
		t.Errorf("Suspend(unknown) = %v, want accounts.ErrNotFound", err)
	}
	if _, err := w.md.Throttle(ctx, accused, strings.Repeat("x", moderation.MaxBy+1), ""); !errors.Is(err, moderation.ErrBadInput) {
		t.Errorf("Throttle(long by) = %v, want ErrBadInput", err)
	}
	st, err := w.md.Status(ctx, accused)
	if err != nil || !st.Throttled || len(st.Actions) != 2 || st.Actions[0].Automatic || st.Actions[0].Reason != "spam wave" {
		t.Fatalf("Status = %+v, %v", st, err)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := moderation.DefaultConfig().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	bad := moderation.Config{Window: time.Millisecond, ThrottleReporters: -2, ScoreThrottle: 2, ChurnHigh: -1, MaxTracked: 1}
	err := bad.Validate()
	for _, want := range []string{"window", "throttle_reporters", "score_throttle", "churn_high", "max_tracked"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate(bad) = %v, want it to name %s", err, want)
		}
	}
}
