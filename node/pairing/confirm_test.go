package pairing_test

import (
	"context"
	"testing"

	"github.com/parley-chat/parley/node/pairing"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/lottery"
)

// spec 07-lottery §8.3: a node confirms to the other home node only a pair
// its own draw made, with its ticket still waiting or paired in that pair.
func TestConfirmPair(t *testing.T) {
	for _, confirmed := range []bool{true, false} {
		net, _ := newRemote(t, 1)
		net.confirm = confirmed
		e := newEnv(t, pairing.Config{}, pairing.WithNetwork(net))
		a := newUser(t, 1)
		e.ask(t, a)
		e.run(t, e0)
		if len(net.confirms) != 1 {
			t.Fatalf("Confirm called %d times, want 1", len(net.confirms))
		}
		c := net.confirms[0]
		q := pairing.PairQuery{Epoch: e0, Pair: c.pair, View: c.view, Local: c.local, Remote: c.remote, From: net.remoteKey.Public()}
		ctx := context.Background()
		// Settled in that pair: yes. Refused by the remote: the ticket
		// rolled over, so no.
		if ok, err := e.lt.ConfirmPair(ctx, q); ok != confirmed || err != nil {
			t.Errorf("remote confirmed %v: ConfirmPair(drawn pair) = %v, %v; want %v, nil", confirmed, ok, err, confirmed)
		}
		for name, bad := range map[string]pairing.PairQuery{
			"another asking node": {Epoch: e0, Pair: c.pair, View: c.view, Local: c.local, Remote: c.remote, From: keys.NodeID{1}},
			"another pair":        {Epoch: e0, Pair: lottery.Pair{A: [32]byte{1}, B: [32]byte{2}}, View: c.view, Local: c.local, Remote: c.remote, From: q.From},
			"another epoch":       {Epoch: e0 + 7, Pair: c.pair, View: c.view, Local: c.local, Remote: c.remote, From: q.From},
			"no tickets":          {Epoch: e0, Pair: c.pair, View: c.view, From: q.From},
			// spec 07-lottery §13.4: a pair drawn from another view.
			"another view":           {Epoch: e0, Pair: c.pair, View: [32]byte{1}, Local: c.local, Remote: c.remote, From: q.From},
			"view check, wrong view": {Epoch: e0, View: [32]byte{1}, From: q.From},
		} {
			if ok, err := e.lt.ConfirmPair(ctx, bad); ok || err != nil {
				t.Errorf("ConfirmPair(%s) = %v, %v; want false, nil", name, ok, err)
			}
		}
		// spec 07-lottery §13.4: a view check with this node's view.
		if ok, err := e.lt.ConfirmPair(ctx, pairing.PairQuery{Epoch: e0, View: c.view, From: q.From}); !ok || err != nil {
			t.Errorf("ConfirmPair(view check) = %v, %v; want true, nil", ok, err)
		}
	}
}
