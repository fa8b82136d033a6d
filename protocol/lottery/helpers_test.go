package lottery_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"testing"
	"time"

	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/lottery"
	"github.com/parley-chat/parley/spec/vectortest"
)

// t0 is the stamp time of every test batch.
var t0 = time.UnixMilli(1_790_000_000_000)

// network is a set of nodes taking part in one epoch, with their secret
// reveal values and the tickets they issued.
type network struct {
	epoch   uint64
	nodes   []keys.NodeKey
	values  [][32]byte
	tickets []*lottery.Ticket
}

func rng(label string) io.Reader { return vectortest.Rand("lottery test " + label) }

func newNetwork(t testing.TB, r io.Reader, epoch uint64, nodes int) *network {
	t.Helper()
	n := &network{epoch: epoch}
	for range nodes {
		k, err := keys.GenerateNodeKey(r)
		if err != nil {
			t.Fatal(err)
		}
		v, err := lottery.NewReveal(r)
		if err != nil {
			t.Fatal(err)
		}
		n.nodes = append(n.nodes, k)
		n.values = append(n.values, v)
	}
	return n
}

// issue creates count tickets at node i with the given tags and stamps them
// in one batch.
func (n *network) issue(t testing.TB, r io.Reader, i, count int, interests, avoid []lottery.Tag) []*lottery.Ticket {
	t.Helper()
	ts := make([]*lottery.Ticket, count)
	for j := range ts {
		ts[j] = newTicket(t, r, n.epoch, n.nodes[i].Public(), interests, avoid)
	}
	if err := lottery.StampTickets(n.nodes[i], t0, ts); err != nil {
		t.Fatal(err)
	}
	n.tickets = append(n.tickets, ts...)
	return ts
}

// newTicket returns an unstamped ticket with fresh keys.
func newTicket(t testing.TB, r io.Reader, epoch uint64, home keys.NodeID, interests, avoid []lottery.Tag) *lottery.Ticket {
	t.Helper()
	tk, err := keys.GenerateTicketKeys(r)
	if err != nil {
		t.Fatal(err)
	}
	tt := &lottery.Ticket{Epoch: epoch, Home: home, Keys: tk.Public(),
		Interests: append([]lottery.Tag(nil), interests...), Avoid: append([]lottery.Tag(nil), avoid...)}
	tt.Normalize()
	return tt
}

// bareTickets returns count unstamped tickets with random, distinct keys:
// enough for Match, which does not verify, and fast to build.
func bareTickets(r io.Reader, count int) []*lottery.Ticket {
	ts := make([]*lottery.Ticket, count)
	for i := range ts {
		ts[i] = &lottery.Ticket{Epoch: 1}
		if _, err := io.ReadFull(r, ts[i].Keys.Sign[:]); err != nil {
			panic(err)
		}
		if _, err := io.ReadFull(r, ts[i].Keys.DH[:]); err != nil {
			panic(err)
		}
	}
	return ts
}

func signCommit(k keys.NodeKey, epoch uint64, value [32]byte) lottery.Commit {
	return lottery.SignCommit(k, epoch, value)
}

func signReveal(k keys.NodeKey, epoch uint64, value [32]byte) lottery.Reveal {
	return lottery.SignReveal(k, epoch, value)
}

func (n *network) commits() []lottery.Commit {
	cs := make([]lottery.Commit, len(n.nodes))
	for i, k := range n.nodes {
		cs[i] = signCommit(k, n.epoch, n.values[i])
	}
	return cs
}

func (n *network) reveals() []lottery.Reveal {
	rs := make([]lottery.Reveal, len(n.nodes))
	for i, k := range n.nodes {
		rs[i] = signReveal(k, n.epoch, n.values[i])
	}
	return rs
}

func (n *network) inputs() lottery.EpochInputs {
	return lottery.EpochInputs{Epoch: n.epoch, Commits: n.commits(), Reveals: n.reveals(), Tickets: n.tickets}
}

// seedN is the i-th deterministic test seed.
func seedN(i int) [32]byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(i))
	return sha256.Sum256(b[:])
}

// pairOf returns the Pair of two tickets.
func pairOf(a, b *lottery.Ticket) lottery.Pair {
	x, y := a.ID(), b.ID()
	if bytes.Compare(x[:], y[:]) > 0 {
		x, y = y, x
	}
	return lottery.Pair{A: x, B: y}
}

// partners maps every paired ticket ID to its partner's.
func partners(pairs []lottery.Pair) map[[32]byte][32]byte {
	m := make(map[[32]byte][32]byte, 2*len(pairs))
	for _, p := range pairs {
		m[p.A], m[p.B] = p.B, p.A
	}
	return m
}

func mustMarshal(t testing.TB, m interface{ MarshalBinary() ([]byte, error) }) []byte {
	t.Helper()
	b, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
