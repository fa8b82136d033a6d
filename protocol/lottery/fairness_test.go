package lottery_test

import (
	"math"
	"testing"

	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/lottery"
)

// spec 07-lottery §10.1: who meets whom does not depend on the size of the
// home node. Nodes of 1, 3 and 6 tickets; over 18,000 draws the partner of
// the small node's ticket, and of one ticket of the big node, is uniform
// over the 9 others (chi-square, 8 degrees of freedom, p = 0.001), and the
// share of draws in which the small node's user meets a user of another
// node is the 9 in 9 it should be, of the middle node 3 in 9.
func TestFairAcrossNodeSizes(t *testing.T) {
	ts := bareTickets(rng("node sizes"), 10)
	homes := []keys.NodeID{{1}, {2}, {2}, {2}, {3}, {3}, {3}, {3}, {3}, {3}}
	for i, tk := range ts {
		tk.Home = homes[i]
	}
	const draws = 18000
	match := func(seed [32]byte, ts []*lottery.Ticket) []lottery.Pair {
		p, _ := lottery.Match(seed, ts)
		return p
	}
	small := partnerCounts(t, ts, draws, match)
	if x := chiSquare(small); x > chi2Crit8 {
		t.Errorf("partner of the 1-ticket node's ticket: counts %v, chi-square %.2f > %.3f", small, x, chi2Crit8)
	}
	// The big node's first ticket, moved to the front.
	big := append([]*lottery.Ticket{ts[4]}, append(append([]*lottery.Ticket{}, ts[:4]...), ts[5:]...)...)
	bigCounts := partnerCounts(t, big, draws, match)
	if x := chiSquare(bigCounts); x > chi2Crit8 {
		t.Errorf("partner of a 6-ticket node's ticket: counts %v, chi-square %.2f > %.3f", bigCounts, x, chi2Crit8)
	}
	// Meeting the middle node (tickets 1-3) is 3/9 for the small node's user.
	mid := small[0] + small[1] + small[2]
	if want, sd := draws*3.0/9, math.Sqrt(draws*3.0/9*6.0/9); math.Abs(float64(mid)-want) > 4*sd {
		t.Errorf("the small node's user met the middle node %d times in %d draws, want %.0f ± %.0f", mid, draws, want, 4*sd)
	}
}

// spec 07-lottery §8.3, §10.1: with unmatched tickets rolling over, a
// small node's users wait no longer than a big node's. Each epoch 1 user
// of node A and 8 of node B ask (9 in all: one is left over every epoch and
// rolls over); over 3,000 epochs the mean wait, in epochs, of A's users is
// not above B's by more than 4 standard errors.
func TestWaitFairAcrossNodeSizes(t *testing.T) {
	r := rng("wait")
	type user struct {
		t     *lottery.Ticket
		asked uint64
		small bool
	}
	var waiting []*user
	var sum, sumSq, n [2]float64 // index 0: small node, 1: big node
	const epochs = 3000
	for e := uint64(1); e <= epochs; e++ {
		fresh := bareTickets(r, 9)
		for i, tk := range fresh {
			waiting = append(waiting, &user{t: tk, asked: e, small: i == 0})
		}
		byID := map[[32]byte]*user{}
		ts := make([]*lottery.Ticket, len(waiting))
		for i, u := range waiting {
			u.t.Epoch = e // rolled over: a new epoch, a new ticket ID
			ts[i] = u.t
			byID[u.t.ID()] = u
		}
		pairs, unmatched := lottery.Match(seedN(int(e)), ts)
		for _, p := range pairs {
			for _, id := range [][32]byte{p.A, p.B} {
				u := byID[id]
				k := 1
				if u.small {
					k = 0
				}
				w := float64(e - u.asked)
				sum[k] += w
				sumSq[k] += w * w
				n[k]++
			}
		}
		waiting = waiting[:0]
		for _, tk := range unmatched {
			waiting = append(waiting, byID[tk.ID()])
		}
	}
	mean := func(k int) float64 { return sum[k] / n[k] }
	se := func(k int) float64 { return math.Sqrt((sumSq[k]/n[k] - mean(k)*mean(k)) / n[k]) }
	if diff, bound := mean(0)-mean(1), 4*math.Hypot(se(0), se(1)); diff > bound {
		t.Errorf("small node's users wait %.4f epochs on average, big node's %.4f: %.4f more, bound %.4f", mean(0), mean(1), diff, bound)
	}
	if mean(1) == 0 {
		t.Errorf("nobody ever waited: the test does not exercise roll-over")
	}
}

// spec 07-lottery §2.3: the epoch form of an avoid tag is shared by every
// ticket that carries the same room tag in one epoch, differs between
// epochs, and so keeps the two who left apart in every epoch.
func TestEpochAvoidTag(t *testing.T) {
	room := lottery.AvoidTag([32]byte{1}, 5)
	other := lottery.AvoidTag([32]byte{2}, 5)
	if lottery.EpochAvoidTag(room, 9) == lottery.EpochAvoidTag(room, 10) {
		t.Fatal("EpochAvoidTag(room, 9) = EpochAvoidTag(room, 10): tags link across epochs")
	}
	if lottery.EpochAvoidTag(room, 9) == lottery.EpochAvoidTag(other, 9) || lottery.EpochAvoidTag(room, 9) == room {
		t.Fatal("EpochAvoidTag collides")
	}
	ts := bareTickets(rng("avoid epoch"), 2)
	for _, tk := range ts {
		tk.Avoid = []lottery.Tag{lottery.EpochAvoidTag(room, 9)}
	}
	if lottery.Compatible(ts[0], ts[1]) {
		t.Fatal("two tickets with the same room tag in one epoch are compatible")
	}
}

// spec 07-lottery §8.4: the view digest does not depend on the order of
// the accepted tickets, and changes with the seed, the epoch and the set.
func TestViewDigest(t *testing.T) {
	r := rng("view")
	n := newNetwork(t, r, 8, 2)
	n.issue(t, r, 0, 3, nil, nil)
	n.issue(t, r, 1, 3, nil, nil)
	res, err := lottery.Draw(n.inputs())
	if err != nil {
		t.Fatal(err)
	}
	ids := make([][32]byte, len(n.tickets))
	for i, tk := range n.tickets {
		ids[len(ids)-1-i] = tk.ID()
	}
	if got := lottery.ViewDigest(8, res.Seed, ids); got != res.View {
		t.Fatalf("ViewDigest(reversed IDs) = %x, Draw's View %x", got, res.View)
	}
	if lottery.ViewDigest(9, res.Seed, ids) == res.View || lottery.ViewDigest(8, seedN(1), ids) == res.View ||
		lottery.ViewDigest(8, res.Seed, ids[1:]) == res.View {
		t.Fatal("ViewDigest ignores the epoch, the seed or a ticket")
	}
	in := n.inputs()
	in.Tickets = in.Tickets[1:]
	less, err := lottery.Draw(in)
	if err != nil {
		t.Fatal(err)
	}
	if less.View == res.View {
		t.Fatal("a view without one ticket has the same digest")
	}
}
