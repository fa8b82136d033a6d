package lottery_test

import (
	"bytes"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/parley-chat/parley/protocol/lottery"
	"github.com/parley-chat/parley/protocol/wire"
)

// drawOrder sorts tickets (distinct IDs) by spec 07-lottery §7.2.
func drawOrder(seed [32]byte, ts []*lottery.Ticket) []*lottery.Ticket {
	type keyed struct {
		order, id [32]byte
		t         *lottery.Ticket
	}
	ks := make([]keyed, len(ts))
	for i, t := range ts {
		id := t.ID()
		ks[i] = keyed{sha256.Sum256(labeled(wire.LabelLotteryOrder, seed[:], id[:])), id, t}
	}
	slices.SortFunc(ks, func(a, b keyed) int {
		if c := bytes.Compare(a.order[:], b.order[:]); c != 0 {
			return c
		}
		return bytes.Compare(a.id[:], b.id[:])
	})
	out := make([]*lottery.Ticket, len(ks))
	for i, k := range ks {
		out[i] = k.t
	}
	return out
}

func shareInterest(a, b *lottery.Ticket) bool {
	for _, x := range a.Interests {
		if slices.Contains(b.Interests, x) {
			return true
		}
	}
	return false
}

// referenceMatch is spec 07-lottery §7 read literally, with plain lists
// and no indexes: the oracle the optimised Match must agree with. Pairs are
// recorded in the order they are made.
func referenceMatch(seed [32]byte, tickets []*lottery.Ticket) ([]lottery.Pair, []*lottery.Ticket) {
	var distinct []*lottery.Ticket
	seen := map[[32]byte]bool{}
	for _, t := range tickets {
		if !seen[t.ID()] {
			seen[t.ID()] = true
			distinct = append(distinct, t)
		}
	}
	order := drawOrder(seed, distinct)
	byID := map[[32]byte]*lottery.Ticket{}
	position := map[*lottery.Ticket]int{}
	for i, t := range order {
		byID[t.ID()] = t
		position[t] = i
	}
	paired := map[*lottery.Ticket]bool{}
	var pairs, extra []lottery.Pair
	walk := func(eligible func(t *lottery.Ticket) bool, related func(t, c *lottery.Ticket) bool) {
		var waiting []*lottery.Ticket
		for _, t := range order {
			if paired[t] || !eligible(t) {
				continue
			}
			looked := 0
			for _, c := range waiting {
				if paired[c] || !related(t, c) {
					continue
				}
				if looked++; looked > lottery.MaxScan {
					break
				}
				if lottery.Compatible(t, c) {
					paired[t], paired[c] = true, true
					pairs = append(pairs, pairOf(t, c))
					break
				}
			}
			if !paired[t] {
				waiting = append(waiting, t)
			}
		}
	}
	walk(func(t *lottery.Ticket) bool { return len(t.Interests) > 0 }, shareInterest)
	phase1 := len(pairs)
	walk(func(*lottery.Ticket) bool { return true }, func(_, _ *lottery.Ticket) bool { return true })
	// Phase 3, on the phase-2 pairs in the order made.
	type made struct{ x, y *lottery.Ticket }
	var phase2 []made
	for _, p := range pairs[phase1:] {
		phase2 = append(phase2, made{byID[p.A], byID[p.B]})
	}
	for i := range phase2 { // x is the ticket that was waiting: earlier drawn
		if position[phase2[i].x] > position[phase2[i].y] {
			phase2[i].x, phase2[i].y = phase2[i].y, phase2[i].x
		}
	}
	var left []*lottery.Ticket
	for _, t := range order {
		if !paired[t] {
			left = append(left, t)
		}
	}
	split := make([]bool, len(phase2))
	for i, u := range left {
		if i >= lottery.MaxScan {
			break
		}
		if paired[u] {
			continue
		}
		vs := 0
	nextV:
		for _, v := range left[i+1:] {
			if paired[v] {
				continue
			}
			if vs++; vs > lottery.MaxScan {
				break
			}
			cs := 0
			for k, m := range phase2 {
				if split[k] {
					continue
				}
				if cs++; cs > lottery.MaxScan {
					break
				}
				for _, xy := range [][2]*lottery.Ticket{{m.x, m.y}, {m.y, m.x}} {
					if lottery.Compatible(u, xy[0]) && lottery.Compatible(v, xy[1]) {
						split[k] = true
						paired[u], paired[v] = true, true
						extra = append(extra, pairOf(u, xy[0]), pairOf(v, xy[1]))
						break nextV
					}
				}
			}
		}
	}
	var all []lottery.Pair
	for k, p := range pairs {
		if k < phase1 || !split[k-phase1] {
			all = append(all, p)
		}
	}
	pairs = append(all, extra...)
	slices.SortFunc(pairs, func(p, q lottery.Pair) int {
		if c := bytes.Compare(p.A[:], q.A[:]); c != 0 {
			return c
		}
		return bytes.Compare(p.B[:], q.B[:])
	})
	var unmatched []*lottery.Ticket
	for _, t := range order {
		if !paired[t] {
			unmatched = append(unmatched, t)
		}
	}
	return pairs, unmatched
}

// population builds n bare tickets drawing tags from small pools, so that
// interests are shared, avoid tags conflict and keys repeat often.
func population(r *rand.Rand, src io.Reader, n, interestPool, avoidPool int, avoidRate, keyReuse float64) []*lottery.Ticket {
	ts := bareTickets(src, n)
	for i, t := range ts {
		for range r.IntN(3) {
			if interestPool > 0 {
				t.Interests = append(t.Interests, lottery.Tag{'i', byte(r.IntN(interestPool))})
			}
		}
		if avoidPool > 0 && r.Float64() < avoidRate {
			t.Avoid = append(t.Avoid, lottery.Tag{'a', byte(r.IntN(avoidPool))})
		}
		if i > 0 && r.Float64() < keyReuse {
			if r.IntN(2) == 0 {
				t.Keys.Sign = ts[r.IntN(i)].Keys.Sign
			} else {
				t.Keys.DH = ts[r.IntN(i)].Keys.DH
			}
		}
		t.Normalize()
	}
	return ts
}

// class is a group of tickets with the same tags.
type class struct {
	count            int
	interests, avoid []byte // tag names
}

// camps builds the classes' tickets, each with fresh keys.
func camps(src io.Reader, classes ...class) []*lottery.Ticket {
	var ts []*lottery.Ticket
	for _, c := range classes {
		for _, t := range bareTickets(src, c.count) {
			for _, x := range c.interests {
				t.Interests = append(t.Interests, lottery.Tag{'i', x})
			}
			for _, x := range c.avoid {
				t.Avoid = append(t.Avoid, lottery.Tag{'a', x})
			}
			t.Normalize()
			ts = append(ts, t)
		}
	}
	return ts
}

func ids(ts []*lottery.Ticket) [][32]byte {
	out := make([][32]byte, len(ts))
	for i, t := range ts {
		out[i] = t.ID()
	}
	return out
}

// checkMatching checks the invariants of every matching: each pair is two
// compatible input tickets in order, nobody is in two pairs, and every
// ticket is paired or unmatched, once.
func checkMatching(t *testing.T, name string, tickets []*lottery.Ticket, pairs []lottery.Pair, unmatched []*lottery.Ticket) {
	t.Helper()
	byID := map[[32]byte]*lottery.Ticket{}
	for _, tk := range tickets {
		byID[tk.ID()] = tk
	}
	used := map[[32]byte]int{}
	for i, p := range pairs {
		if bytes.Compare(p.A[:], p.B[:]) >= 0 {
			t.Fatalf("%s: pair %d has A >= B", name, i)
		}
		if i > 0 && bytes.Compare(pairs[i-1].A[:], p.A[:]) >= 0 {
			t.Fatalf("%s: pairs not sorted", name)
		}
		a, b := byID[p.A], byID[p.B]
		if a == nil || b == nil {
			t.Fatalf("%s: pair %d names a ticket not in the input", name, i)
		}
		if !lottery.Compatible(a, b) {
			t.Fatalf("%s: pair %d is incompatible (same keys or a shared avoid tag)", name, i)
		}
		used[p.A]++
		used[p.B]++
	}
	for _, u := range unmatched {
		used[u.ID()]++
	}
	for id, n := range used {
		if n != 1 {
			t.Fatalf("%s: ticket %x appears %d times among pairs and unmatched", name, id[:4], n)
		}
	}
	if len(used) != len(byID) {
		t.Fatalf("%s: %d tickets accounted for, want %d", name, len(used), len(byID))
	}
}

// spec 07-lottery §7: Match agrees with a literal reading of the algorithm,
// in ordinary and hostile populations (where waiting lists pass MaxScan).
func TestMatchAgainstReference(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	src := rng("reference")
	tests := []struct {
		name                     string
		n, interests, avoid      int
		avoidRate, keyReuse      float64
		runs                     int
		wantSomeUnmatchedAtLeast int
	}{
		{"plain", 41, 0, 0, 0, 0, 20, 0},
		{"interests", 60, 6, 0, 0, 0, 20, 0},
		{"interests and avoid", 80, 4, 3, 0.5, 0.05, 30, 0},
		{"hostile: one avoid tag on almost everyone", 300, 2, 1, 0.97, 0, 10, 1},
		{"hostile: shared keys", 200, 3, 2, 0.3, 0.6, 10, 1},
	}
	// Hostile camps, built so that every scan bound decides some outcomes:
	// long waiting lists of mutually incompatible tickets, with the one
	// compatible ticket or usable pair often past MaxScan.
	hostile := map[string][]*lottery.Ticket{
		"camps: phase 2 bound": camps(src, class{count: 180, avoid: []byte("AC")}, class{count: 20, avoid: []byte("AB")}, class{count: 60, avoid: []byte("C")}),
		"camps: phase 1 bound": camps(src, class{count: 180, interests: []byte("x"), avoid: []byte("AC")},
			class{count: 20, interests: []byte("xy"), avoid: []byte("AB")}, class{count: 60, interests: []byte("x"), avoid: []byte("C")}),
		"camps: phase 3 bounds": camps(src, class{count: 260, avoid: []byte("A")}, class{count: 60, avoid: []byte("AD")},
			class{count: 100, avoid: []byte("B")}, class{count: 40, avoid: []byte("D")}, class{count: 30}),
	}
	for name, ts := range hostile {
		for run := range 30 {
			seed := seedN(run)
			pairs, unmatched := lottery.Match(seed, ts)
			wantPairs, wantUnmatched := referenceMatch(seed, ts)
			if !reflect.DeepEqual(pairs, wantPairs) || !reflect.DeepEqual(ids(unmatched), ids(wantUnmatched)) {
				t.Fatalf("%s, run %d: Match = %d pairs, %d unmatched; reference %d, %d", name, run, len(pairs), len(unmatched), len(wantPairs), len(wantUnmatched))
			}
			checkMatching(t, name, ts, pairs, unmatched)
		}
	}
	for _, tt := range tests {
		for run := range tt.runs {
			ts := population(r, src, tt.n, tt.interests, tt.avoid, tt.avoidRate, tt.keyReuse)
			seed := seedN(run)
			pairs, unmatched := lottery.Match(seed, ts)
			wantPairs, wantUnmatched := referenceMatch(seed, ts)
			if !reflect.DeepEqual(pairs, wantPairs) || !reflect.DeepEqual(ids(unmatched), ids(wantUnmatched)) {
				t.Fatalf("%s, run %d: Match = %d pairs, %d unmatched; reference %d, %d", tt.name, run, len(pairs), len(unmatched), len(wantPairs), len(wantUnmatched))
			}
			checkMatching(t, tt.name, ts, pairs, unmatched)
		}
	}
}

// spec 07-lottery §7: same inputs, same matching, whatever the input order;
// copies of a ticket count once.
func TestMatchOrderIndependent(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	ts := population(r, rng("order"), 101, 5, 3, 0.3, 0.02)
	seed := seedN(1)
	pairs, unmatched := lottery.Match(seed, ts)
	for run := range 20 {
		shuffled := slices.Clone(ts)
		r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		for _, tk := range ts[:run] {
			c := *tk // a copy, as another node would hold it
			shuffled = append(shuffled, &c)
		}
		p2, u2 := lottery.Match(seed, shuffled)
		if !reflect.DeepEqual(p2, pairs) || !reflect.DeepEqual(ids(u2), ids(unmatched)) {
			t.Fatalf("run %d: Match depends on input order or copies", run)
		}
	}
	if p2, _ := lottery.Match(seedN(2), ts); reflect.DeepEqual(p2, pairs) {
		t.Fatal("Match under another seed gave the same pairs")
	}
}

// spec 07-lottery §7.2, §10.1: without tags or shared keys the pairs are
// positions (0,1), (2,3), ... of the draw order; with an odd count the
// last ticket of the draw order is the one left unmatched.
func TestMatchPairsNeighboursInDrawOrder(t *testing.T) {
	src := rng("neighbours")
	for _, n := range []int{0, 1, 2, 3, 10, 11, 100, 101} {
		ts := bareTickets(src, n)
		for s := range 5 {
			seed := seedN(s)
			pairs, unmatched := lottery.Match(seed, ts)
			order := drawOrder(seed, ts)
			var want []lottery.Pair
			for i := 0; i+1 < n; i += 2 {
				want = append(want, pairOf(order[i], order[i+1]))
			}
			slices.SortFunc(want, func(p, q lottery.Pair) int { return bytes.Compare(p.A[:], q.A[:]) })
			if len(pairs) != len(want) || (len(want) > 0 && !reflect.DeepEqual(pairs, want)) {
				t.Fatalf("Match(%d tickets, seed %d) = %d pairs, want neighbours in draw order (%d)", n, s, len(pairs), len(want))
			}
			wantUnmatched := n % 2
			if len(unmatched) != wantUnmatched || (wantUnmatched == 1 && unmatched[0] != order[n-1]) {
				t.Fatalf("Match(%d tickets) left %d unmatched, want %d (the last drawn)", n, len(unmatched), wantUnmatched)
			}
		}
	}
}

// chiSquare returns Pearson's statistic of counts against a uniform
// expectation.
func chiSquare(counts []int) float64 {
	total := 0
	for _, c := range counts {
		total += c
	}
	exp := float64(total) / float64(len(counts))
	var x float64
	for _, c := range counts {
		d := float64(c) - exp
		x += d * d / exp
	}
	return x
}

// Critical values of the chi-square distribution at p = 0.001: a uniform
// source exceeds them once in a thousand experiments. The seeds are fixed,
// so each test below is deterministic; the values are from standard tables
// (e.g. NIST/SEMATECH e-Handbook, table 1.3.6.7.4).
const (
	chi2Crit2 = 13.816 // 2 degrees of freedom
	chi2Crit8 = 26.124 // 8 degrees of freedom
)

// partnerCounts runs match over seeds 0..draws-1 and counts the partner of
// ts[0] among ts[1..].
func partnerCounts(t *testing.T, ts []*lottery.Ticket, draws int, match func([32]byte, []*lottery.Ticket) []lottery.Pair) []int {
	t.Helper()
	index := map[[32]byte]int{}
	for i, tk := range ts {
		index[tk.ID()] = i
	}
	id0 := ts[0].ID()
	counts := make([]int, len(ts)-1)
	for s := range draws {
		p, ok := partners(match(seedN(s), ts))[id0]
		if !ok {
			t.Fatalf("seed %d: ticket 0 unpaired", s)
		}
		counts[index[p]-1]++
	}
	return counts
}

// spec 07-lottery §10.1: the partner of a ticket is uniform over the
// others (20,000 draws of 10 tickets, chi-square with 8 degrees of freedom
// at p = 0.001), and the test has the power to see a biased matcher.
func TestMatchUniform(t *testing.T) {
	ts := bareTickets(rng("uniform"), 10)
	const draws = 20000
	match := func(seed [32]byte, ts []*lottery.Ticket) []lottery.Pair {
		p, _ := lottery.Match(seed, ts)
		return p
	}
	counts := partnerCounts(t, ts, draws, match)
	if x := chiSquare(counts); x > chi2Crit8 {
		t.Errorf("partner of ticket 0 over %d draws: counts %v, chi-square %.2f > %.3f: not uniform", draws, counts, x, chi2Crit8)
	}

	// Negative control: a matcher that re-draws (once) whenever ticket 0
	// meets ticket 9, as a node grinding for one outcome would. It gives
	// ticket 9 a probability of 1/81 instead of 1/9.
	id0, id9 := ts[0].ID(), ts[9].ID()
	biased := func(seed [32]byte, ts []*lottery.Ticket) []lottery.Pair {
		p := match(seed, ts)
		if partners(p)[id0] == id9 {
			p = match(sha256.Sum256(seed[:]), ts)
		}
		return p
	}
	counts = partnerCounts(t, ts, draws, biased)
	if x := chiSquare(counts); x <= chi2Crit8 {
		t.Errorf("negative control: biased matcher's counts %v gave chi-square %.2f <= %.3f: the test cannot see bias", counts, x, chi2Crit8)
	}
}

// spec 07-lottery §10.1: with 4 tickets, the 3 perfect matchings are
// equally likely (chi-square, 2 degrees of freedom, p = 0.001).
func TestMatchUniformPerfectMatchings(t *testing.T) {
	ts := bareTickets(rng("perfect"), 4)
	const draws = 6000
	counts := make([]int, 3)
	id0 := ts[0].ID()
	for s := range draws {
		pairs, unmatched := lottery.Match(seedN(s), ts)
		if len(pairs) != 2 || len(unmatched) != 0 {
			t.Fatalf("seed %d: %d pairs, %d unmatched; want a perfect matching", s, len(pairs), len(unmatched))
		}
		// The matching is determined by ticket 0's partner.
		switch partners(pairs)[id0] {
		case ts[1].ID():
			counts[0]++
		case ts[2].ID():
			counts[1]++
		default:
			counts[2]++
		}
	}
	if x := chiSquare(counts); x > chi2Crit2 {
		t.Errorf("matchings of 4 tickets: counts %v, chi-square %.2f > %.3f", counts, x, chi2Crit2)
	}
}

// spec 07-lottery §7.1: two tickets sharing an avoid tag are never paired,
// across many seeds, and everyone else still is.
func TestMatchAvoidTags(t *testing.T) {
	ts := bareTickets(rng("avoid"), 8)
	var roomKey [32]byte
	copy(roomKey[:], "the room they just left, 32 byte")
	tag := lottery.AvoidTag(roomKey, 5)
	a, b := ts[0], ts[1]
	a.Avoid, b.Avoid = []lottery.Tag{tag}, []lottery.Tag{{1}, tag}
	slices.SortFunc(b.Avoid, func(x, y lottery.Tag) int { return bytes.Compare(x[:], y[:]) })
	forbidden := pairOf(a, b)
	for s := range 3000 {
		pairs, unmatched := lottery.Match(seedN(s), ts)
		if slices.Contains(pairs, forbidden) {
			t.Fatalf("seed %d: tickets sharing an avoid tag were paired", s)
		}
		// Phase 2 leaves a and b waiting when they are the last two of the
		// draw order (1 in 28); phase 3 then pairs them by splitting a pair.
		if len(unmatched) != 0 {
			t.Fatalf("seed %d: %d unmatched, want everyone paired", s, len(unmatched))
		}
	}
	// With four tickets the only perfect matchings avoiding (a, b) are
	// found every time.
	four := []*lottery.Ticket{a, b, ts[2], ts[3]}
	for s := range 500 {
		pairs, unmatched := lottery.Match(seedN(s), four)
		if len(pairs) != 2 || len(unmatched) != 0 || slices.Contains(pairs, forbidden) {
			t.Fatalf("seed %d: Match(a, b avoiding each other, c, d) = %d pairs, %d unmatched; want (a,c)(b,d) or (a,d)(b,c)", s, len(pairs), len(unmatched))
		}
	}
	// Only each other left: both stay unmatched.
	pairs, unmatched := lottery.Match(seedN(0), []*lottery.Ticket{a, b})
	if len(pairs) != 0 || len(unmatched) != 2 {
		t.Fatalf("Match(two tickets sharing an avoid tag) = %d pairs, %d unmatched; want 0, 2", len(pairs), len(unmatched))
	}
}

// spec 07-lottery §7.3 phase 1: in a mixed population, two tickets that
// share an interest are paired together whenever both are present and
// compatible, and never when they are incompatible.
func TestMatchInterests(t *testing.T) {
	src := rng("interests")
	chess, golang, films := lottery.InterestTag("chess"), lottery.InterestTag("go"), lottery.InterestTag("films")
	for s := range 1000 {
		ts := bareTickets(src, 16)
		// 0-1 share chess, 2-3 share go (1 and 3 have a second interest
		// nobody else has), 4's interest is its own: it is paired in phase 2.
		ts[0].Interests = []lottery.Tag{chess}
		ts[1].Interests = sorted(chess, lottery.InterestTag("knitting"))
		ts[2].Interests = []lottery.Tag{golang}
		ts[3].Interests = sorted(golang, lottery.InterestTag("tea"))
		ts[4].Interests = []lottery.Tag{films}
		// 5 and 6 share an interest but also an avoid tag: never paired.
		ts[5].Interests, ts[6].Interests = []lottery.Tag{lottery.InterestTag("jazz")}, []lottery.Tag{lottery.InterestTag("jazz")}
		ts[5].Avoid, ts[6].Avoid = []lottery.Tag{{7}}, []lottery.Tag{{7}}
		pairs, unmatched := lottery.Match(seedN(s), ts)
		for _, want := range [][2]int{{0, 1}, {2, 3}} {
			if !slices.Contains(pairs, pairOf(ts[want[0]], ts[want[1]])) {
				t.Fatalf("seed %d: tickets %d and %d share an interest and were not paired", s, want[0], want[1])
			}
		}
		if slices.Contains(pairs, pairOf(ts[5], ts[6])) {
			t.Fatalf("seed %d: tickets sharing an interest and an avoid tag were paired", s)
		}
		if len(unmatched) != 0 {
			t.Fatalf("seed %d: %d unmatched, want everyone paired", s, len(unmatched))
		}
	}
	// Three who share an interest: two of them are paired together.
	ts := bareTickets(src, 9)
	for _, i := range []int{0, 1, 2} {
		ts[i].Interests = []lottery.Tag{chess}
	}
	for s := range 300 {
		pairs, _ := lottery.Match(seedN(s), ts)
		n := 0
		for _, p := range [][2]int{{0, 1}, {0, 2}, {1, 2}} {
			if slices.Contains(pairs, pairOf(ts[p[0]], ts[p[1]])) {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("seed %d: %d pairs among three sharing an interest, want 1", s, n)
		}
	}
}

func sorted(tags ...lottery.Tag) []lottery.Tag {
	slices.SortFunc(tags, func(x, y lottery.Tag) int { return bytes.Compare(x[:], y[:]) })
	return tags
}

// spec 07-lottery §7.1: nobody is paired with themselves (a ticket sharing
// a signing or X25519 key) or twice.
func TestMatchNoSelfPairing(t *testing.T) {
	ts := bareTickets(rng("self"), 6)
	sameSign := *ts[0]
	sameSign.Keys.DH = ts[5].Keys.DH
	sameSign.Keys.DH[0] ^= 1
	sameDH := *ts[1]
	sameDH.Keys.Sign[0] ^= 1
	all := append(slices.Clone(ts), &sameSign, &sameDH)
	for s := range 2000 {
		pairs, unmatched := lottery.Match(seedN(s), all)
		checkMatching(t, "self", all, pairs, unmatched)
		for _, p := range []lottery.Pair{pairOf(ts[0], &sameSign), pairOf(ts[1], &sameDH)} {
			if slices.Contains(pairs, p) {
				t.Fatalf("seed %d: a user was paired with itself", s)
			}
		}
		if len(pairs) != 4 {
			t.Fatalf("seed %d: %d pairs, want 4", s, len(pairs))
		}
	}
}

// spec 07-lottery §7.4: an odd number of tickets leaves exactly one
// unmatched.
func TestMatchOdd(t *testing.T) {
	src := rng("odd")
	for _, n := range []int{1, 3, 9, 33, 1001} {
		ts := bareTickets(src, n)
		for s := range 3 {
			pairs, unmatched := lottery.Match(seedN(s), ts)
			if len(pairs) != n/2 || len(unmatched) != 1 {
				t.Errorf("Match(%d tickets) = %d pairs, %d unmatched; want %d, 1", n, len(pairs), len(unmatched), n/2)
			}
			checkMatching(t, "odd", ts, pairs, unmatched)
		}
	}
}

// spec is the tags of one ticket of a crafted draw.
type spec struct{ interests, avoid string }

// inDrawOrder returns tickets with the given tags that come, under seed,
// in exactly the given draw order: ticket i is drawn i-th. It samples keys
// for each until its order key falls into the i-th of len(specs) equal
// slices of the key space.
func inDrawOrder(t *testing.T, seed [32]byte, specs []spec) []*lottery.Ticket {
	t.Helper()
	src := rng("draw order")
	ts := make([]*lottery.Ticket, len(specs))
	width := 1 << 24 / len(specs)
	for i, s := range specs {
		for {
			tk := bareTickets(src, 1)[0]
			for _, x := range []byte(s.interests) {
				tk.Interests = append(tk.Interests, lottery.Tag{'i', x})
			}
			for _, x := range []byte(s.avoid) {
				tk.Avoid = append(tk.Avoid, lottery.Tag{'a', x})
			}
			tk.Normalize()
			id := tk.ID()
			o := sha256.Sum256(labeled(wire.LabelLotteryOrder, seed[:], id[:]))
			if int(o[0])<<16|int(o[1])<<8|int(o[2]) >= i*width && int(o[0])<<16|int(o[1])<<8|int(o[2]) < (i+1)*width {
				ts[i] = tk
				break
			}
		}
	}
	if got := drawOrder(seed, ts); !slices.Equal(got, ts) {
		t.Fatal("inDrawOrder: tickets not in the requested order")
	}
	return ts
}

func repeat(n int, s spec) []spec { return slices.Repeat([]spec{s}, n) }

// spec 07-lottery §7.3: each scan looks at exactly MaxScan candidates. Each
// case puts the one ticket (or pair) that would help at scan position
// MaxScan (the last one looked at) or MaxScan+1 (just past the bound), in a
// draw order crafted under a fixed seed.
func TestMatchScanBounds(t *testing.T) {
	seed := seedN(99)
	type scenario struct {
		name  string
		specs func(blockers int) []spec
		// helped reports whether the helping ticket or pair was used.
		helped func(ts []*lottery.Ticket, pairs []lottery.Pair) bool
	}
	paired := func(a, b int) func([]*lottery.Ticket, []lottery.Pair) bool {
		return func(ts []*lottery.Ticket, pairs []lottery.Pair) bool {
			return slices.Contains(pairs, pairOf(ts[a], ts[b]))
		}
	}
	scenarios := []scenario{{
		// Phase 2: blockers {A,B} wait; g {A} waits behind them; t {B} is
		// incompatible with every blocker and compatible with g.
		name: "phase 2: waiting tickets looked at",
		specs: func(n int) []spec {
			return append(append(repeat(n, spec{avoid: "AB"}), spec{avoid: "A"}), spec{avoid: "B"})
		},
		helped: func(ts []*lottery.Ticket, pairs []lottery.Pair) bool {
			return paired(len(ts)-2, len(ts)-1)(ts, pairs)
		},
	}, {
		// Phase 1: the same with interests: the blockers share x or y
		// with t (the MaxScan earliest of both lists together count), and
		// come after MaxScan blockers without interests, which phase 1
		// does not see and which keep t and g apart in phase 2.
		name: "phase 1: waiting tickets sharing an interest looked at",
		specs: func(n int) []spec {
			s := repeat(lottery.MaxScan, spec{avoid: "AB"})
			for i := range n {
				s = append(s, spec{string("xy"[i%2]), "AB"})
			}
			return append(s, spec{"x", "A"}, spec{"xy", "B"})
		},
		helped: func(ts []*lottery.Ticket, pairs []lottery.Pair) bool {
			return paired(len(ts)-2, len(ts)-1)(ts, pairs)
		},
	}, {
		// Phase 3, tickets u: pair (x {C}, y {E}) is made first; blockers
		// {A,C,E} wait and cannot use it; w1, w2 {A} wait and can.
		name: "phase 3: waiting tickets tried as u",
		specs: func(n int) []spec {
			return append(append([]spec{{avoid: "C"}, {avoid: "E"}}, repeat(n, spec{avoid: "ACE"})...), spec{avoid: "A"}, spec{avoid: "A"})
		},
		helped: func(ts []*lottery.Ticket, pairs []lottery.Pair) bool {
			return paired(0, len(ts)-2)(ts, pairs) || paired(1, len(ts)-2)(ts, pairs)
		},
	}, {
		// Phase 3, tickets v: pair (x {E}, y {D}); u {A,D} and the
		// blockers {A,D} can only take x; g {A} can take y.
		name: "phase 3: waiting tickets tried as v",
		specs: func(n int) []spec {
			return append(append([]spec{{avoid: "E"}, {avoid: "D"}, {avoid: "AD"}}, repeat(n, spec{avoid: "AD"})...), spec{avoid: "A"})
		},
		helped: func(ts []*lottery.Ticket, pairs []lottery.Pair) bool {
			return paired(2, 0)(ts, pairs) && paired(len(ts)-1, 1)(ts, pairs)
		},
	}, {
		// Phase 3, pairs: blockers are pairs ({A}, {B}) that two {A}
		// tickets cannot use; the pair ({B}, {C}) after them can be split.
		name: "phase 3: phase-2 pairs tried",
		specs: func(n int) []spec {
			var s []spec
			for range n {
				s = append(s, spec{avoid: "A"}, spec{avoid: "B"})
			}
			return append(s, spec{avoid: "B"}, spec{avoid: "C"}, spec{avoid: "A"}, spec{avoid: "A"})
		},
		helped: func(ts []*lottery.Ticket, pairs []lottery.Pair) bool {
			n := len(ts)
			return paired(n-4, n-2)(ts, pairs) && paired(n-3, n-1)(ts, pairs)
		},
	}}
	for _, sc := range scenarios {
		for _, c := range []struct {
			blockers int
			helped   bool
		}{{lottery.MaxScan - 1, true}, {lottery.MaxScan, false}} {
			ts := inDrawOrder(t, seed, sc.specs(c.blockers))
			pairs, unmatched := lottery.Match(seed, ts)
			checkMatching(t, sc.name, ts, pairs, unmatched)
			if got := sc.helped(ts, pairs); got != c.helped {
				t.Errorf("%s, %d blockers: helped = %v, want %v", sc.name, c.blockers, got, c.helped)
			}
			if wantPairs, _ := referenceMatch(seed, ts); !reflect.DeepEqual(pairs, wantPairs) {
				t.Errorf("%s, %d blockers: Match differs from the reference: %v vs %v", sc.name, c.blockers, pairs, wantPairs)
			}
		}
	}
}
