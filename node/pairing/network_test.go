package pairing_test

import (
	"context"
	"crypto/rand"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/node/pairing"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/lottery"
)

// hookNetwork is a node's Local network plus, optionally, a remote node
// that takes part in every epoch with the given tickets, and a hook run
// while the epoch is being drawn.
type hookNetwork struct {
	*pairing.Local
	onCollect func(ctx context.Context)

	remoteKey      keys.NodeKey
	hasRemote      bool // the remote node takes part (newRemote)
	remote         []keys.TicketPublic
	withholdReveal bool
	confirm        bool
	confirmErr     error
	onConfirm      func()                 // run inside Confirm, before it answers
	viewOK         bool                   // CheckView's answer
	proofs         []lottery.Equivocation // what Proofs returns

	mu       sync.Mutex
	confirms []confirmCall
	checks   []viewCall
}

type confirmCall struct {
	view          [32]byte
	pair          lottery.Pair
	local, remote *lottery.Ticket
}

type viewCall struct {
	epoch uint64
	view  [32]byte
	node  keys.NodeID
}

func (n *hookNetwork) Collect(ctx context.Context, epoch uint64) (lottery.EpochInputs, error) {
	if n.onCollect != nil {
		n.onCollect(ctx)
	}
	in, err := n.Local.Collect(ctx, epoch)
	if err != nil || !n.hasRemote {
		return in, err
	}
	ts := make([]*lottery.Ticket, len(n.remote))
	for i, k := range n.remote {
		ts[i] = &lottery.Ticket{Epoch: epoch, Home: n.remoteKey.Public(), Keys: k}
	}
	if len(ts) > 0 {
		if err := lottery.StampTickets(n.remoteKey, t0, ts); err != nil {
			return in, err
		}
	}
	reveal := [32]byte{9, 9, 9}
	in.Tickets = append(in.Tickets, ts...)
	in.Commits = append(in.Commits, lottery.SignCommit(n.remoteKey, epoch, reveal))
	if !n.withholdReveal {
		in.Reveals = append(in.Reveals, lottery.SignReveal(n.remoteKey, epoch, reveal))
	}
	return in, nil
}

func (n *hookNetwork) Confirm(_ context.Context, _ uint64, view [32]byte, node keys.NodeID, pairs []pairing.Proposal) ([]bool, error) {
	if n.onConfirm != nil {
		n.onConfirm()
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	yes := make([]bool, len(pairs))
	for i, p := range pairs {
		if p.Remote.Home != node {
			return nil, errors.New("hookNetwork: a pair of another node")
		}
		n.confirms = append(n.confirms, confirmCall{view, p.Pair, p.Local, p.Remote})
		yes[i] = n.confirm
	}
	if n.confirmErr != nil {
		return nil, n.confirmErr
	}
	return yes, nil
}

func (n *hookNetwork) CheckView(_ context.Context, epoch uint64, view [32]byte, node keys.NodeID) (bool, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.checks = append(n.checks, viewCall{epoch, view, node})
	return n.viewOK, nil
}

func (n *hookNetwork) Proofs(uint64) []lottery.Equivocation { return n.proofs }

func newRemote(t *testing.T, tickets int) (*hookNetwork, []keys.TicketKeys) {
	t.Helper()
	rk, err := keys.GenerateNodeKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	n := &hookNetwork{Local: pairing.NewLocal(), remoteKey: rk, hasRemote: true}
	var tks []keys.TicketKeys
	for i := range tickets {
		u := newUser(t, 0x500+i)
		tks = append(tks, u.tk)
		n.remote = append(n.remote, u.tk.Public())
	}
	return n, tks
}

// A pair with a ticket of another node is confirmed with that node before
// the local user is told (DESIGN §3.3); only the local side gets an event.
func TestRemotePairConfirmed(t *testing.T) {
	net, remote := newRemote(t, 1)
	net.confirm = true
	e := newEnv(t, pairing.Config{}, pairing.WithNetwork(net))
	a := newUser(t, 1)
	e.ask(t, a)
	e.run(t, e0)

	if len(net.confirms) != 1 {
		t.Fatalf("Confirm called %d times, want 1", len(net.confirms))
	}
	call := net.confirms[0]
	if call.local.Keys != a.tk.Public() || call.remote.Keys != remote[0].Public() || call.local.Stamp == nil {
		t.Errorf("Confirm(local %v, remote %v), want a's stamped ticket and the remote one", call.local.Keys, call.remote.Keys)
	}
	p := e.pairedOnce(t, a)
	if sideKeys(p.Partner) != remote[0].Public() || p.Partner.Home != net.remoteKey.Public() || p.Me.Home != e.key.Public() {
		t.Errorf("paired event partner %v at %s, want the remote ticket at %s", p.Partner, p.Partner.Home, net.remoteKey.Public())
	}
	r, err := remoteRoom(remote[0], a)
	if err != nil || r != p.Room {
		t.Errorf("remote client's room.Derive = %s, %v, want %s", r, err, p.Room)
	}
	rec, err := e.rm.Get(context.Background(), p.Room)
	if err != nil {
		t.Fatalf("rooms.Get() = %v", err)
	}
	if _, partner, ok := rec.SideOf(a.acct); !ok || partner.Local || partner.Home != net.remoteKey.Public() {
		t.Errorf("room record partner = %+v, want remote at %s", partner, net.remoteKey.Public())
	}
	rep, err := e.lt.Audit(context.Background(), e0)
	if err != nil || !rep.OK() || len(rep.Result.Pairs) != 1 {
		t.Errorf("Audit() = %+v, %v, want OK with 1 pair", rep, err)
	}
}

// spec 07-lottery §13.4: once this node confirmed a pair to the partner's
// home node, the partner's node pairs its user; a withdrawal during the
// confirmation must not leave that user alone in the room. Withdraw waits
// for the epoch to settle: the account is paired, and nothing is left to
// withdraw.
func TestWithdrawWhileConfirming(t *testing.T) {
	net, _ := newRemote(t, 1)
	net.confirm = true
	e := newEnv(t, pairing.Config{}, pairing.WithNetwork(net))
	a := newUser(t, 1)
	e.ask(t, a)
	withdrawn := make(chan error, 1)
	net.onConfirm = func() {
		go func() { withdrawn <- e.lt.Withdraw(context.Background(), a.acct) }()
		// Without the wait, Withdraw would finish now, before the
		// confirmation returns; give it the time to.
		select {
		case err := <-withdrawn:
			withdrawn <- err
		case <-time.After(200 * time.Millisecond):
		}
	}
	e.run(t, e0)
	if err := <-withdrawn; err != nil {
		t.Fatalf("Withdraw = %v", err)
	}
	e.pairedOnce(t, a)
	e.metrics(t, map[string]float64{"parley_pairing_pairs_total": 1, "parley_pairing_withdrawn_total": 0})
}

// A hostile node can publish a copy of a user's ticket keys. The user is
// never paired with the copy (its room would have both sides share a key,
// which the settling refuses: that pair alone would be dropped), and the
// epoch settles.
func TestCopiedTicketNeverPaired(t *testing.T) {
	net, _ := newRemote(t, 0)
	net.confirm = true
	e := newEnv(t, pairing.Config{}, pairing.WithNetwork(net))
	a := newUser(t, 1)
	net.remote = []keys.TicketPublic{a.tk.Public()} // the copy
	e.ask(t, a)
	e.run(t, e0) // fails if the settling fails
	if evs := e.paired(t, a); len(evs) != 0 {
		t.Errorf("a was paired with the copy of its own ticket: %+v", evs)
	}
	e.metrics(t, map[string]float64{"parley_pairing_pairs_total": 0, "parley_pairing_epoch_failures_total": 0})
}

func TestRemotePairNotConfirmed(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		withhold bool
		confirms int
	}{
		{"refused", nil, false, 1},
		{"confirm failed", errors.New("unreachable"), false, 1},
		// spec 07-lottery: a node that commits and does not reveal is
		// excluded, its tickets too: nothing to confirm.
		{"remote node withheld its reveal", nil, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			net, _ := newRemote(t, 1)
			net.confirmErr, net.withholdReveal = tt.err, tt.withhold
			e := newEnv(t, pairing.Config{}, pairing.WithNetwork(net))
			a := newUser(t, 1)
			e.ask(t, a)
			e.run(t, e0)
			if len(net.confirms) != tt.confirms {
				t.Errorf("Confirm called %d times, want %d", len(net.confirms), tt.confirms)
			}
			if evs := e.paired(t, a); len(evs) != 0 {
				t.Errorf("paired events = %d, want 0", len(evs))
			}
			e.metrics(t, map[string]float64{"parley_pairing_rolled_over_total": 1, "parley_pairing_pairs_total": 0})
		})
	}
}

func TestLocalNetwork(t *testing.T) {
	ctx := context.Background()
	n := pairing.NewLocal()
	k, err := keys.GenerateNodeKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tk := &lottery.Ticket{Epoch: 5, Home: k.Public()}
	if err := n.Publish(ctx, 4, nil, lottery.SignCommit(k, 4, [32]byte{})); err != nil {
		t.Fatal(err)
	}
	if err := n.Publish(ctx, 5, []*lottery.Ticket{tk}, lottery.SignCommit(k, 5, [32]byte{1})); err != nil {
		t.Fatal(err)
	}
	if err := n.Reveal(ctx, 5, lottery.SignReveal(k, 5, [32]byte{1})); err != nil {
		t.Fatal(err)
	}
	in, err := n.Collect(ctx, 5)
	if err != nil || in.Epoch != 5 || len(in.Tickets) != 1 || len(in.Commits) != 1 || len(in.Reveals) != 1 {
		t.Fatalf("Collect(5) = %+v, %v, want 1 ticket, commit and reveal", in, err)
	}
	// Collect forgets the epoch and every earlier one.
	for _, ep := range []uint64{4, 5} {
		if in, err := n.Collect(ctx, ep); err != nil || len(in.Commits) != 0 {
			t.Errorf("Collect(%d) again = %d commits, %v, want none", ep, len(in.Commits), err)
		}
	}
	if ok, err := n.Confirm(ctx, 5, [32]byte{}, k.Public(), []pairing.Proposal{{Local: tk, Remote: tk}}); ok != nil || !errors.Is(err, pairing.ErrNoFederation) {
		t.Errorf("Confirm() = %v, %v, want nil, ErrNoFederation", ok, err)
	}
	if ok, err := n.CheckView(ctx, 5, [32]byte{}, k.Public()); ok || !errors.Is(err, pairing.ErrNoFederation) {
		t.Errorf("CheckView() = %v, %v, want false, ErrNoFederation", ok, err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := n.Publish(cctx, 6, nil, lottery.Commit{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Publish(canceled) = %v, want context.Canceled", err)
	}
}

// spec 07-lottery §8.3, §13.2: the epoch's inputs come back from the store
// as drawn, a whole stamp batch of another node (kept as one record) and
// this node's tickets alike, so the audit recomputes the same draw.
func TestEpochInputsStoredAsBatches(t *testing.T) {
	net, _ := newRemote(t, 5)
	net.confirm = true
	e := newEnv(t, pairing.Config{}, pairing.WithNetwork(net))
	for i := range 3 {
		e.ask(t, newUser(t, 10+i))
	}
	e.run(t, e0)
	in, _, err := e.lt.EpochInputs(context.Background(), e0)
	if err != nil {
		t.Fatal(err)
	}
	homes := map[keys.NodeID]int{}
	for _, tk := range in.Tickets {
		homes[tk.Home]++
		if err := tk.Verify(); err != nil {
			t.Errorf("stored ticket of %s: Verify = %v, want nil", tk.Home, err)
		}
	}
	if homes[net.remoteKey.Public()] != 5 || homes[e.key.Public()] != 3 {
		t.Errorf("stored tickets by home = %v, want 5 remote and 3 local", homes)
	}
	rep, err := e.lt.Audit(context.Background(), e0)
	if err != nil || !rep.OK() || len(rep.Result.Pairs) != 4 {
		t.Errorf("Audit() = %+v, %v, want OK with 4 pairs", rep, err)
	}
}
