package lottery_test

import (
	"errors"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/lottery"
)

// spec 07-lottery §6, §8: a node that commits and does not reveal (or
// reveals a wrong value, or equivocates) is excluded with its tickets, as is
// a node that never committed; the rest are drawn.
func TestDrawExclusion(t *testing.T) {
	r := rng("draw exclusion")
	n := newNetwork(t, r, 9, 5)
	for i := range n.nodes {
		n.issue(t, r, i, 4, nil, nil)
	}
	in := n.inputs()
	id := func(i int) keys.NodeID { return n.nodes[i].Public() }
	// Node 1 withholds its reveal, node 2 reveals a wrong value, node 3
	// equivocates, node 4 never committed.
	in.Reveals = slices.DeleteFunc(in.Reveals, func(rv lottery.Reveal) bool { return rv.Node == id(1) })
	for i := range in.Reveals {
		if in.Reveals[i].Node == id(2) {
			in.Reveals[i] = signReveal(n.nodes[2], 9, [32]byte{1})
		}
	}
	in.Commits = append(in.Commits, signCommit(n.nodes[3], 9, [32]byte{2}))
	in.Commits = slices.DeleteFunc(in.Commits, func(c lottery.Commit) bool { return c.Node == id(4) })

	res, err := lottery.Draw(in)
	if err != nil {
		t.Fatalf("Draw = %v", err)
	}
	if !reflect.DeepEqual(res.Included, []keys.NodeID{id(0)}) {
		t.Errorf("Included = %v, want only node 0", res.Included)
	}
	if len(res.Excluded) != 3 || slices.Contains(res.Excluded, id(4)) {
		t.Errorf("Excluded = %v, want nodes 1, 2, 3", res.Excluded)
	}
	if len(res.Pairs) != 2 || len(res.Unmatched) != 0 {
		t.Errorf("Draw = %d pairs, %d unmatched; want node 0's 4 tickets in 2 pairs", len(res.Pairs), len(res.Unmatched))
	}
	if len(res.Rejected) != 16 {
		t.Fatalf("Draw rejected %d tickets, want 16", len(res.Rejected))
	}
	for _, rj := range res.Rejected {
		if !errors.Is(rj.Err, lottery.ErrExcludedNode) || rj.Ticket.Home == id(0) || rj.ID != rj.Ticket.ID() {
			t.Errorf("rejection of a ticket of %s: %v, want ErrExcludedNode for nodes 1 to 4", rj.Ticket.Home, rj.Err)
		}
	}
	if want, _, _, _ := lottery.Seed(9, in.Commits, in.Reveals); res.Seed != want {
		t.Errorf("Draw seed %x, want Seed's %x", res.Seed, want)
	}
	if pairs, _ := lottery.Match(res.Seed, n.tickets[:4]); !reflect.DeepEqual(res.Pairs, pairs) {
		t.Errorf("Draw pairs differ from Match over the accepted tickets")
	}

	// Nobody revealed: no draw.
	in.Reveals = nil
	if _, err := lottery.Draw(in); !errors.Is(err, lottery.ErrNoReveals) {
		t.Errorf("Draw(no reveals) = %v, want ErrNoReveals", err)
	}
}

// spec 07-lottery §6: forged, tampered, unstamped, non-canonical and
// wrong-epoch tickets are rejected with their reason; the valid tickets of
// the same batch still count (the cache is per signature).
func TestDrawRejectsTickets(t *testing.T) {
	r := rng("draw rejects")
	n := newNetwork(t, r, 5, 2)
	good := n.issue(t, r, 0, 6, nil, nil)
	n.issue(t, r, 1, 2, nil, nil)

	clone := func(tk *lottery.Ticket) *lottery.Ticket {
		c := *tk
		s := *tk.Stamp
		c.Stamp = &s
		return &c
	}
	// Node 1 stamps a ticket and passes it off as node 0's.
	forged := newTicket(t, r, 5, n.nodes[1].Public(), nil, nil)
	if err := lottery.StampTickets(n.nodes[1], t0, []*lottery.Ticket{forged}); err != nil {
		t.Fatal(err)
	}
	forged.Home = n.nodes[0].Public()
	badSig := clone(good[0]) // same leaf as an accepted ticket, bad signature
	badSig.Stamp.Sig[10] ^= 1
	tampered := clone(good[1])
	tampered.Interests = []lottery.Tag{{1}}
	unstamped := clone(good[2])
	unstamped.Stamp = nil
	unsorted := clone(good[3])
	unsorted.Avoid = []lottery.Tag{{2}, {1}}
	wrongEpoch := newTicket(t, r, 6, n.nodes[0].Public(), nil, nil)
	if err := lottery.StampTickets(n.nodes[0], t0, []*lottery.Ticket{wrongEpoch}); err != nil {
		t.Fatal(err)
	}
	bad := map[*lottery.Ticket]error{
		forged: lottery.ErrBadTicket, badSig: lottery.ErrBadTicket, tampered: lottery.ErrBadTicket,
		unstamped: lottery.ErrBadTicket, unsorted: lottery.ErrBadTicket, wrongEpoch: lottery.ErrWrongEpoch,
	}
	in := n.inputs()
	for tk := range bad {
		in.Tickets = append(in.Tickets, tk)
	}
	// Put the bad copy of good[0] first, so a cache keyed without the
	// signature would reject the good one too.
	in.Tickets = append([]*lottery.Ticket{badSig}, in.Tickets...)
	res, err := lottery.Draw(in)
	if err != nil {
		t.Fatalf("Draw = %v", err)
	}
	if len(res.Rejected) != len(bad) {
		t.Fatalf("Draw rejected %d tickets, want %d", len(res.Rejected), len(bad))
	}
	for _, rj := range res.Rejected {
		if want := bad[rj.Ticket]; !errors.Is(rj.Err, want) {
			t.Errorf("rejection %v, want %v", rj.Err, want)
		}
	}
	if got := 2*len(res.Pairs) + len(res.Unmatched); got != 8 {
		t.Errorf("Draw accepted %d tickets, want the 8 good ones", got)
	}

	// The result does not depend on the input order.
	shuffled := slices.Clone(in.Tickets)
	rand.New(rand.NewPCG(5, 5)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	in2 := in
	in2.Tickets = shuffled
	res2, err := lottery.Draw(in2)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(res.Pairs, res2.Pairs) || !reflect.DeepEqual(ids(res.Unmatched), ids(res2.Unmatched)) || len(res2.Rejected) != len(res.Rejected) {
		t.Fatal("Draw depends on the ticket order")
	}
	for i := range res.Rejected {
		if res.Rejected[i].ID != res2.Rejected[i].ID || res.Rejected[i].Err.Error() != res2.Rejected[i].Err.Error() {
			t.Fatal("Rejected depends on the ticket order")
		}
	}
}

// spec 07-lottery §9: Audit accepts the drawn pairs, in either order, and
// flags any other.
func TestAudit(t *testing.T) {
	r := rng("audit")
	n := newNetwork(t, r, 8, 2)
	n.issue(t, r, 0, 4, nil, nil)
	n.issue(t, r, 1, 4, nil, nil)
	res, err := lottery.Draw(n.inputs())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Pairs) != 4 {
		t.Fatalf("Draw = %d pairs, want 4", len(res.Pairs))
	}
	p := res.Pairs
	swapped := lottery.Pair{A: p[0].B, B: p[0].A}
	forged := lottery.Pair{A: p[0].A, B: p[1].B}
	tests := []struct {
		name                   string
		confirmed              []lottery.Pair
		notDrawn, notConfirmed []lottery.Pair
	}{
		{"all drawn pairs", p, nil, nil},
		{"one pair given B, A and twice", []lottery.Pair{swapped, p[1], p[2], p[3], p[0]}, nil, nil},
		{"two confirmed", p[2:], nil, p[:2]},
		{"a forged pair", []lottery.Pair{forged, p[2], p[3]}, []lottery.Pair{forged}, p[:2]},
		{"none", nil, nil, p},
	}
	for _, tt := range tests {
		rep, err := lottery.Audit(n.inputs(), tt.confirmed)
		if err != nil {
			t.Fatalf("%s: Audit = %v", tt.name, err)
		}
		if !reflect.DeepEqual(rep.NotDrawn, tt.notDrawn) || !reflect.DeepEqual(rep.NotConfirmed, tt.notConfirmed) {
			t.Errorf("%s: Audit = not drawn %v, not confirmed %v; want %v, %v", tt.name, rep.NotDrawn, rep.NotConfirmed, tt.notDrawn, tt.notConfirmed)
		}
		if rep.OK() != (len(tt.notDrawn) == 0) {
			t.Errorf("%s: OK() = %v", tt.name, rep.OK())
		}
		if !reflect.DeepEqual(rep.Result.Pairs, res.Pairs) {
			t.Errorf("%s: Audit's draw differs from Draw", tt.name)
		}
	}
	in := n.inputs()
	in.Reveals = nil
	if _, err := lottery.Audit(in, p); !errors.Is(err, lottery.ErrNoReveals) {
		t.Errorf("Audit(no reveals) = %v, want ErrNoReveals", err)
	}
}
