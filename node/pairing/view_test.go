package pairing_test

import (
	"context"
	"testing"

	"github.com/parley-chat/parley/node/pairing"
	"github.com/parley-chat/parley/protocol/lottery"
)

// spec 07-lottery §10.4, §13.4: a pair of two of this node's tickets goes
// ahead only once another included node is known to hold the same view; a
// failed view check delays it (both roll over) and counts a disagreement.
func TestLocalPairsWaitForSameView(t *testing.T) {
	for _, same := range []bool{true, false} {
		net, _ := newRemote(t, 0)
		net.viewOK = same
		e := newEnv(t, pairing.Config{}, pairing.WithNetwork(net))
		a, b := newUser(t, 1), newUser(t, 2)
		e.ask(t, a)
		e.ask(t, b)
		e.run(t, e0)
		if len(net.checks) != 1 || net.checks[0].node != net.remoteKey.Public() || net.checks[0].epoch != e0 {
			t.Fatalf("same view %v: CheckView calls %+v, want one to the remote node for epoch %d", same, net.checks, e0)
		}
		rep, err := e.lt.Audit(context.Background(), e0)
		if err != nil {
			t.Fatal(err)
		}
		if net.checks[0].view != rep.Result.View {
			t.Errorf("CheckView asked about view %x, the draw's is %x", net.checks[0].view, rep.Result.View)
		}
		n := len(e.paired(t, a)) + len(e.paired(t, b))
		if same && n != 2 {
			t.Errorf("same view: %d paired events, want 2", n)
		}
		if !same {
			if n != 0 {
				t.Errorf("other view: %d paired events, want 0 (the pair waits)", n)
			}
			if len(rep.NotDrawn) != 0 {
				t.Errorf("Audit: not drawn %v", rep.NotDrawn)
			}
			e.metrics(t, map[string]float64{"parley_pairing_disagreed_epochs_total": 1, "parley_pairing_rolled_over_total": 2})
		}
	}
}

// A node alone (no other included node) pairs its own tickets without a
// view check.
func TestLocalPairsAloneNoViewCheck(t *testing.T) {
	net := &hookNetwork{Local: pairing.NewLocal()}
	e := newEnv(t, pairing.Config{}, pairing.WithNetwork(net))
	a, b := newUser(t, 1), newUser(t, 2)
	e.ask(t, a)
	e.ask(t, b)
	e.run(t, e0)
	if len(net.checks) != 0 {
		t.Errorf("CheckView called %d times on a node alone", len(net.checks))
	}
	e.pairedOnce(t, a)
}

// spec 07-lottery §2.3: the home node puts the epoch form of each avoid tag
// into each epoch's ticket: two users who gave the same room tag never meet,
// epoch after epoch, while the tags their tickets carry change every epoch;
// the ticket ID the request returned is the ID the draw saw.
func TestAvoidTagsPerEpoch(t *testing.T) {
	e := newEnv(t, pairing.Config{})
	room := lottery.AvoidTag([32]byte{7}, e0-10)
	a, b := newUser(t, 1), newUser(t, 2)
	info := e.ask(t, a, nil, []lottery.Tag{room})
	e.ask(t, b, nil, []lottery.Tag{room})
	seen := map[lottery.Tag]bool{}
	for ep := e0; ep < e0+3; ep++ {
		e.run(t, ep)
		rep, err := e.lt.Audit(context.Background(), ep)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Result.Pairs) != 0 || len(rep.Result.Unmatched) != 2 {
			t.Fatalf("epoch %d: %d pairs, %d unmatched; want 0 and 2", ep, len(rep.Result.Pairs), len(rep.Result.Unmatched))
		}
		want := lottery.EpochAvoidTag(room, ep)
		for _, tk := range rep.Result.Unmatched {
			if len(tk.Avoid) != 1 || tk.Avoid[0] != want {
				t.Fatalf("epoch %d: ticket avoid tags %x, want [%x]", ep, tk.Avoid, want)
			}
			if ep == e0 && tk.Keys == a.tk.Public() && tk.ID() != info.ID {
				t.Errorf("TicketInfo.ID %x, the drawn ticket's ID %x", info.ID, tk.ID())
			}
		}
		if seen[want] || want == room {
			t.Fatalf("epoch %d: avoid tag %x repeats across epochs", ep, want)
		}
		seen[want] = true
	}
	if n := len(e.paired(t, a)) + len(e.paired(t, b)); n != 0 {
		t.Fatalf("%d paired events between two users avoiding each other", n)
	}
}

// spec 07-lottery §2.1: with interests, users who share one meet.
func TestInterestsMatch(t *testing.T) {
	e := newEnv(t, pairing.Config{})
	chess, goTag := lottery.InterestTag("chess"), lottery.InterestTag("go")
	var chessUsers, goUsers []*user
	for i := range 4 {
		u := newUser(t, 10+i)
		tag := chess
		if i%2 == 1 {
			tag = goTag
			goUsers = append(goUsers, u)
		} else {
			chessUsers = append(chessUsers, u)
		}
		e.ask(t, u, []lottery.Tag{tag})
	}
	// Two more of each: four in each group.
	for i := range 2 {
		u := newUser(t, 20+i)
		e.ask(t, u, []lottery.Tag{chess})
		chessUsers = append(chessUsers, u)
		v := newUser(t, 30+i)
		e.ask(t, v, []lottery.Tag{goTag})
		goUsers = append(goUsers, v)
	}
	e.run(t, e0)
	for _, group := range [][]*user{chessUsers, goUsers} {
		in := map[[32]byte]bool{}
		for _, u := range group {
			in[u.tk.Public().Sign] = true
		}
		for _, u := range group {
			p := e.pairedOnce(t, u)
			if !in[p.Partner.Sign] {
				t.Errorf("%s paired outside its interest", u.acct)
			}
		}
	}
}

// spec 07-lottery §13.3: the network's equivocation proofs of an epoch are
// stored with its inputs and read back verified.
func TestProofsStored(t *testing.T) {
	net, _ := newRemote(t, 0)
	net.viewOK = true
	c1 := lottery.SignCommit(net.remoteKey, e0, [32]byte{1})
	c2 := lottery.SignCommit(net.remoteKey, e0, [32]byte{2})
	first, _ := c1.MarshalBinary()
	second, _ := c2.MarshalBinary()
	net.proofs = []lottery.Equivocation{{Epoch: e0, Node: net.remoteKey.Public(), Kind: lottery.EquivocatedCommit, First: first, Second: second}}
	e := newEnv(t, pairing.Config{}, pairing.WithNetwork(net))
	e.ask(t, newUser(t, 1))
	e.run(t, e0)
	got, err := e.lt.Proofs(context.Background(), e0)
	if err != nil || len(got) != 1 || got[0].Node != net.remoteKey.Public() {
		t.Fatalf("Proofs(%d) = %+v, %v; want the one proof", e0, got, err)
	}
	if got, err := e.lt.Proofs(context.Background(), e0+1); err != nil || len(got) != 0 {
		t.Fatalf("Proofs(%d) = %+v, %v; want none", e0+1, got, err)
	}
	e.metrics(t, map[string]float64{"parley_pairing_equivocation_proofs_total": 1})
}
