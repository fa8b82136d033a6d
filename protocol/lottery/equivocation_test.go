package lottery_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/parley-chat/parley/protocol/lottery"
)

// equivocations returns a commit proof and a ticket proof against node 0
// of n, and a non-proof of each kind.
func equivocations(t testing.TB) (good, bad []lottery.Equivocation) {
	r := rng("equivocation")
	n := newNetwork(t, r, 4, 2)
	node := n.nodes[0].Public()
	c1, c2 := signCommit(n.nodes[0], 4, [32]byte{1}), signCommit(n.nodes[0], 4, [32]byte{2})
	b1 := n.issue(t, r, 0, 2, nil, nil)
	b2 := n.issue(t, r, 0, 1, nil, nil)
	other := n.issue(t, r, 1, 1, nil, nil)
	good = []lottery.Equivocation{
		{Epoch: 4, Node: node, Kind: lottery.EquivocatedCommit, First: mustMarshal(t, &c1), Second: mustMarshal(t, &c2)},
		{Epoch: 4, Node: node, Kind: lottery.EquivocatedTickets, First: mustMarshal(t, b1[0]), Second: mustMarshal(t, b2[0])},
	}
	forged := c2
	forged.Sig[0] ^= 1
	c3 := signCommit(n.nodes[0], 5, [32]byte{2})
	bad = []lottery.Equivocation{
		{Epoch: 4, Node: node, Kind: lottery.EquivocatedCommit, First: mustMarshal(t, &c1), Second: mustMarshal(t, &c1)},
		{Epoch: 4, Node: node, Kind: lottery.EquivocatedCommit, First: mustMarshal(t, &c1), Second: mustMarshal(t, &forged)},
		{Epoch: 4, Node: node, Kind: lottery.EquivocatedCommit, First: mustMarshal(t, &c1), Second: mustMarshal(t, &c3)},
		{Epoch: 4, Node: node, Kind: lottery.EquivocatedTickets, First: mustMarshal(t, b1[0]), Second: mustMarshal(t, b1[1])},
		{Epoch: 4, Node: node, Kind: lottery.EquivocatedTickets, First: mustMarshal(t, b1[0]), Second: mustMarshal(t, other[0])},
		{Epoch: 4, Node: node, Kind: 3, First: []byte{1}, Second: []byte{2}},
	}
	return good, bad
}

// spec 07-lottery §13.3: a proof verifies on its own; two messages that do
// not conflict, or are not both the node's for the epoch, are no proof.
func TestEquivocationVerify(t *testing.T) {
	good, bad := equivocations(t)
	for i, e := range good {
		if err := e.Verify(); err != nil {
			t.Errorf("proof %d (%v): Verify = %v, want nil", i, e.Kind, err)
		}
		enc := mustMarshal(t, &e)
		got, err := lottery.ParseEquivocation(enc)
		if err != nil || got.Verify() != nil || !bytes.Equal(mustMarshal(t, got), enc) {
			t.Errorf("proof %d: ParseEquivocation(Marshal) = %+v, %v", i, got, err)
		}
	}
	for i, e := range bad {
		err := e.Verify()
		if err == nil {
			t.Errorf("non-proof %d: Verify = nil, want an error", i)
			continue
		}
		if !errors.Is(err, lottery.ErrNotEquivocation) && !errors.Is(err, lottery.ErrBadSignature) {
			t.Errorf("non-proof %d: Verify = %v", i, err)
		}
	}
}

func FuzzParseEquivocation(f *testing.F) {
	good, _ := equivocations(f)
	for _, e := range good {
		f.Add(mustMarshal(f, &e))
	}
	f.Add([]byte{1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := lottery.ParseEquivocation(b)
		if err != nil {
			requireParseError(t, "ParseEquivocation", err)
			return
		}
		if again := mustMarshal(t, e); !bytes.Equal(again, b) {
			t.Fatalf("Marshal(ParseEquivocation(b)) = %x, want %x", again, b)
		}
		_ = e.Verify()
	})
}
