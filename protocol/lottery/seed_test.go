package lottery_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"slices"
	"testing"

	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/lottery"
	"github.com/parley-chat/parley/protocol/wire"
)

// spec 07-lottery §4: layout, signature, round trip.
func TestCommitReveal(t *testing.T) {
	r := rng("messages")
	n := newNetwork(t, r, 11, 2)
	k := n.nodes[0]
	c := signCommit(k, 11, n.values[0])
	rv := signReveal(k, 11, n.values[0])
	wantValue := sha256.Sum256(labeled(wire.LabelLotteryCommit, binary.BigEndian.AppendUint64(nil, 11), c.Node[:], n.values[0][:]))
	if c.Value != wantValue {
		t.Fatalf("CommitValue = %x, want %x", c.Value, wantValue)
	}
	for _, m := range []struct {
		name  string
		kind  byte
		b     []byte
		parse func([]byte) ([]byte, error)
	}{
		{"commit", 1, mustMarshal(t, &c), func(b []byte) ([]byte, error) {
			c, err := lottery.ParseCommit(b)
			if err != nil {
				return nil, err
			}
			return c.MarshalBinary()
		}},
		{"reveal", 2, mustMarshal(t, &rv), func(b []byte) ([]byte, error) {
			rv, err := lottery.ParseReveal(b)
			if err != nil {
				return nil, err
			}
			return rv.MarshalBinary()
		}},
	} {
		if len(m.b) != lottery.MessageSize || m.b[0] != 1 || m.b[1] != m.kind {
			t.Errorf("%s encoding %x: want %d bytes starting 01 %02x", m.name, m.b, lottery.MessageSize, m.kind)
		}
		if again, err := m.parse(m.b); err != nil || !bytes.Equal(again, m.b) {
			t.Errorf("%s: Marshal(Parse(b)) = %x, %v; want %x", m.name, again, err, m.b)
		}
		// The signature covers the first 74 bytes under lottery-msg.
		if !k.Public().Verify(wire.LabelLotteryMsg, keys.Signature(m.b[74:]), m.b[:74]) {
			t.Errorf("%s: signature does not cover Labeled(lottery-msg, first 74 bytes)", m.name)
		}
		for _, bad := range [][]byte{
			nil, m.b[:len(m.b)-1], append(bytes.Clone(m.b), 0),
			append([]byte{2}, m.b[1:]...), append([]byte{1, 3}, m.b[2:]...),
		} {
			_, err := m.parse(bad)
			var pe *wire.ParseError
			if !errors.As(err, &pe) {
				t.Errorf("%s: Parse(%x) = %v, want a *wire.ParseError", m.name, bad, err)
			}
		}
	}
	if err := c.Verify(); err != nil {
		t.Errorf("Commit.Verify = %v", err)
	}
	if err := rv.Verify(); err != nil {
		t.Errorf("Reveal.Verify = %v", err)
	}
	other := n.nodes[1].Public()
	for _, f := range []func(c *lottery.Commit){
		func(c *lottery.Commit) { c.Epoch++ },
		func(c *lottery.Commit) { c.Node = other },
		func(c *lottery.Commit) { c.Value[0] ^= 1 },
		func(c *lottery.Commit) { c.Sig[63] ^= 1 },
	} {
		x := c
		f(&x)
		if err := x.Verify(); !errors.Is(err, lottery.ErrBadSignature) {
			t.Errorf("Verify(tampered commit) = %v, want ErrBadSignature", err)
		}
	}
}

// spec 07-lottery §4.2: a commit's signature cannot be replayed as a
// reveal's (and the reverse), because the kind is signed.
func TestCommitNotReplayableAsReveal(t *testing.T) {
	r := rng("replay")
	n := newNetwork(t, r, 4, 1)
	c := signCommit(n.nodes[0], 4, n.values[0])
	asReveal := lottery.Reveal(c)
	if err := asReveal.Verify(); !errors.Is(err, lottery.ErrBadSignature) {
		t.Errorf("Reveal.Verify(commit's fields and signature) = %v, want ErrBadSignature", err)
	}
	rv := signReveal(n.nodes[0], 4, n.values[0])
	asCommit := lottery.Commit(rv)
	if err := asCommit.Verify(); !errors.Is(err, lottery.ErrBadSignature) {
		t.Errorf("Commit.Verify(reveal's fields and signature) = %v, want ErrBadSignature", err)
	}
	// On the wire: relabelling the kind byte gives a reveal that parses
	// but does not verify, and commit bytes never parse as a reveal.
	b := mustMarshal(t, &c)
	if _, err := lottery.ParseReveal(b); !errors.Is(err, wire.ErrMalformed) {
		t.Errorf("ParseReveal(commit bytes) = %v, want malformed", err)
	}
	b[1] = 2
	relabelled, err := lottery.ParseReveal(b)
	if err != nil {
		t.Fatalf("ParseReveal(relabelled commit) = %v", err)
	}
	if err := relabelled.Verify(); !errors.Is(err, lottery.ErrBadSignature) {
		t.Errorf("Verify(relabelled commit) = %v, want ErrBadSignature", err)
	}
	// In the seed, the replay gives no valid reveal.
	if _, _, excluded, err := lottery.Seed(4, []lottery.Commit{c}, []lottery.Reveal{asReveal}); !errors.Is(err, lottery.ErrNoReveals) || len(excluded) != 1 {
		t.Errorf("Seed(commit replayed as reveal) = %v, excluded %d; want ErrNoReveals, 1 excluded", err, len(excluded))
	}
}

// seedByHand computes spec 07-lottery §5's formula over (node, value)
// pairs, sorting them itself.
func seedByHand(epoch uint64, nodes []keys.NodeID, values [][32]byte) [32]byte {
	idx := make([]int, len(nodes))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return bytes.Compare(nodes[a][:], nodes[b][:]) })
	msg := binary.BigEndian.AppendUint64(nil, epoch)
	msg = binary.BigEndian.AppendUint32(msg, uint32(len(nodes)))
	for _, i := range idx {
		msg = append(msg, nodes[i][:]...)
		msg = append(msg, values[i][:]...)
	}
	return sha256.Sum256(labeled(wire.LabelLotterySeed, msg))
}

// spec 07-lottery §5: the formula; independent of order and repetition;
// changes when any valid reveal changes.
func TestSeed(t *testing.T) {
	r := rng("seed")
	n := newNetwork(t, r, 3, 4)
	base, included, excluded, err := lottery.Seed(3, n.commits(), n.reveals())
	if err != nil || len(included) != 4 || len(excluded) != 0 {
		t.Fatalf("Seed = %v, %d included, %d excluded; want 4 included", err, len(included), len(excluded))
	}
	ids := make([]keys.NodeID, len(n.nodes))
	for i, k := range n.nodes {
		ids[i] = k.Public()
	}
	if want := seedByHand(3, ids, n.values); base != want {
		t.Fatalf("Seed = %x, want %x", base, want)
	}
	if !slices.IsSortedFunc(included, func(a, b keys.NodeID) int { return bytes.Compare(a[:], b[:]) }) {
		t.Error("Included is not sorted")
	}

	cs, rs := n.commits(), n.reveals()
	slices.Reverse(cs)
	rs = append(rs, rs...)
	slices.Reverse(rs)
	cs = append(cs, cs[0])
	if got, _, _, _ := lottery.Seed(3, cs, rs); got != base {
		t.Error("Seed depends on message order or repetition")
	}

	for i := range n.nodes {
		changed := *n
		changed.values = slices.Clone(n.values)
		changed.values[i][31] ^= 1
		got, _, _, err := lottery.Seed(3, changed.commits(), changed.reveals())
		if err != nil || got == base {
			t.Errorf("changing node %d's reveal: Seed = %x, %v; want a different seed", i, got, err)
		}
	}
	cs4, rs4 := changeEpoch(n, 4)
	if got, _, _, _ := lottery.Seed(4, cs4, rs4); got == base {
		t.Error("the seed does not depend on the epoch")
	}
}

func changeEpoch(n *network, epoch uint64) ([]lottery.Commit, []lottery.Reveal) {
	m := *n
	m.epoch = epoch
	return m.commits(), m.reveals()
}

// spec 07-lottery §5, §6: who is included and who is excluded.
func TestSeedExclusion(t *testing.T) {
	r := rng("exclusion")
	n := newNetwork(t, r, 9, 3)
	id := func(i int) keys.NodeID { return n.nodes[i].Public() }
	var zero [32]byte
	tests := []struct {
		name     string
		edit     func(cs []lottery.Commit, rs []lottery.Reveal) ([]lottery.Commit, []lottery.Reveal)
		excluded bool // node 2 excluded (else in neither list, when not included)
		included bool // node 2 included
	}{
		{"honest", func(cs []lottery.Commit, rs []lottery.Reveal) ([]lottery.Commit, []lottery.Reveal) { return cs, rs }, false, true},
		{"commit without reveal", func(cs []lottery.Commit, rs []lottery.Reveal) ([]lottery.Commit, []lottery.Reveal) {
			return cs, rs[:2]
		}, true, false},
		{"wrong reveal value", func(cs []lottery.Commit, rs []lottery.Reveal) ([]lottery.Commit, []lottery.Reveal) {
			rs[2] = signReveal(n.nodes[2], 9, zero)
			return cs, rs
		}, true, false},
		{"right value, another node's signature", func(cs []lottery.Commit, rs []lottery.Reveal) ([]lottery.Commit, []lottery.Reveal) {
			rs[2].Sig = rs[1].Sig
			return cs, rs
		}, true, false},
		{"reveal of another epoch", func(cs []lottery.Commit, rs []lottery.Reveal) ([]lottery.Commit, []lottery.Reveal) {
			rs[2] = signReveal(n.nodes[2], 10, n.values[2])
			return cs, rs
		}, true, false},
		{"equivocation: two commits", func(cs []lottery.Commit, rs []lottery.Reveal) ([]lottery.Commit, []lottery.Reveal) {
			return append(cs, signCommit(n.nodes[2], 9, zero)), rs
		}, true, false},
		{"equivocation, second commit first", func(cs []lottery.Commit, rs []lottery.Reveal) ([]lottery.Commit, []lottery.Reveal) {
			return append([]lottery.Commit{signCommit(n.nodes[2], 9, zero)}, cs...), rs
		}, true, false},
		{"same commit twice", func(cs []lottery.Commit, rs []lottery.Reveal) ([]lottery.Commit, []lottery.Reveal) {
			return append(cs, cs[2]), rs
		}, false, true},
		{"commit with a bad signature is not a commit", func(cs []lottery.Commit, rs []lottery.Reveal) ([]lottery.Commit, []lottery.Reveal) {
			cs[2].Sig[0] ^= 1
			return cs, rs
		}, false, false},
		{"forged second commit is ignored", func(cs []lottery.Commit, rs []lottery.Reveal) ([]lottery.Commit, []lottery.Reveal) {
			f := signCommit(n.nodes[2], 9, zero)
			f.Sig[0] ^= 1
			return append(cs, f), rs
		}, false, true},
		{"commit of another epoch only", func(cs []lottery.Commit, rs []lottery.Reveal) ([]lottery.Commit, []lottery.Reveal) {
			cs[2] = signCommit(n.nodes[2], 8, n.values[2])
			return cs, rs
		}, false, false},
		{"reveal without commit", func(cs []lottery.Commit, rs []lottery.Reveal) ([]lottery.Commit, []lottery.Reveal) {
			return cs[:2], rs
		}, false, false},
	}
	for _, tt := range tests {
		cs, rs := tt.edit(n.commits(), n.reveals())
		seed, included, excluded, err := lottery.Seed(9, cs, rs)
		if err != nil {
			t.Errorf("%s: Seed = %v", tt.name, err)
			continue
		}
		if !slices.Contains(included, id(0)) || !slices.Contains(included, id(1)) {
			t.Errorf("%s: honest nodes not included: %v", tt.name, included)
		}
		if got := slices.Contains(included, id(2)); got != tt.included {
			t.Errorf("%s: node 2 included = %v, want %v", tt.name, got, tt.included)
		}
		if got := slices.Contains(excluded, id(2)); got != tt.excluded {
			t.Errorf("%s: node 2 excluded = %v, want %v", tt.name, got, tt.excluded)
		}
		want := seedByHand(9, []keys.NodeID{id(0), id(1)}, n.values[:2])
		if tt.included {
			want = seedByHand(9, []keys.NodeID{id(0), id(1), id(2)}, n.values)
		}
		if seed != want {
			t.Errorf("%s: seed %x, want %x (over the included nodes only)", tt.name, seed, want)
		}
	}
	if _, _, excluded, err := lottery.Seed(9, n.commits(), nil); !errors.Is(err, lottery.ErrNoReveals) || len(excluded) != 3 {
		t.Errorf("Seed(no reveals) = %v, %d excluded; want ErrNoReveals, 3", err, len(excluded))
	}
	if _, _, _, err := lottery.Seed(9, nil, nil); !errors.Is(err, lottery.ErrNoReveals) {
		t.Errorf("Seed(nothing) = %v, want ErrNoReveals", err)
	}
}
