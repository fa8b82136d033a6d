package lottery_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/lottery"
	"github.com/parley-chat/parley/protocol/stamp"
	"github.com/parley-chat/parley/protocol/wire"
	"github.com/parley-chat/parley/spec/vectortest"
)

// vector is one entry of spec/testdata/lottery.json (spec 07-lottery §12).
// Kind "interest_tag": InterestTag(text) = tag. Kind "avoid_tag":
// AvoidTag(avoid_key, epoch) = tag. Kind "ticket": parse ticket; error
// "malformed" if it must not parse, else its fields, leaf, id and the
// result of verifying its stamp. Kinds "commit" and "reveal": parse
// message, then verify it. Kind "epoch": the whole draw of an epoch.
type vector struct {
	Name string `json:"name"`
	Kind string `json:"kind"`

	Text     string `json:"text,omitempty"`
	AvoidKey string `json:"avoid_key,omitempty"`
	Epoch    uint64 `json:"epoch,omitempty"`
	Tag      string `json:"tag,omitempty"`

	Ticket    string   `json:"ticket,omitempty"`
	Leaf      string   `json:"leaf,omitempty"`
	ID        string   `json:"id,omitempty"`
	Home      string   `json:"home,omitempty"`
	SignKey   string   `json:"sign_key,omitempty"`
	DHKey     string   `json:"dh_key,omitempty"`
	Interests []string `json:"interests,omitempty"`
	Avoid     []string `json:"avoid,omitempty"`

	Message     string `json:"message,omitempty"`
	Node        string `json:"node,omitempty"`
	Value       string `json:"value,omitempty"`
	RevealValue string `json:"reveal_value,omitempty"`
	Signed      string `json:"signed,omitempty"`

	NodeSeeds   []string    `json:"node_seeds,omitempty"`
	StampTimeMs int64       `json:"stamp_time_ms,omitempty"`
	Commits     []string    `json:"commits,omitempty"`
	Reveals     []string    `json:"reveals,omitempty"`
	Tickets     []string    `json:"tickets,omitempty"`
	Seed        string      `json:"seed,omitempty"`
	Included    []string    `json:"included,omitempty"`
	Excluded    []string    `json:"excluded,omitempty"`
	DrawOrder   []string    `json:"draw_order,omitempty"`
	Pairs       [][2]string `json:"pairs,omitempty"`
	Unmatched   []string    `json:"unmatched,omitempty"`
	Rejected    []rejected  `json:"rejected,omitempty"`

	// Verify is "ok" or the error class of verifying a ticket's stamp or
	// a message's signature; Error is the error class of parsing or
	// drawing.
	Verify string `json:"verify,omitempty"`
	Error  string `json:"error,omitempty"`
}

// rejected is a ticket the draw refused: its ID and the error class.
type rejected struct {
	ID    string `json:"id"`
	Error string `json:"error"`
}

// errorClass names err by the error classes of spec 07-lottery §11.
func errorClass(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, wire.ErrMalformed):
		return "malformed"
	case errors.Is(err, lottery.ErrBadTicket):
		return "bad_ticket"
	case errors.Is(err, lottery.ErrWrongEpoch):
		return "wrong_epoch"
	case errors.Is(err, lottery.ErrExcludedNode):
		return "excluded_node"
	case errors.Is(err, lottery.ErrBadSignature):
		return "bad_signature"
	case errors.Is(err, lottery.ErrNoReveals):
		return "no_reveals"
	case errors.Is(err, lottery.ErrLimit):
		return "limit"
	}
	return "unexpected: " + err.Error()
}

func hx(b []byte) string { return hex.EncodeToString(b) }

func tagHex(tags []lottery.Tag) []string {
	var out []string
	for _, t := range tags {
		out = append(out, hx(t[:]))
	}
	return out
}

// epochVector records an epoch's inputs and its draw.
func epochVector(t *testing.T, name string, n *network, in lottery.EpochInputs) vector {
	t.Helper()
	v := vector{Name: name, Kind: "epoch", Epoch: in.Epoch, StampTimeMs: t0.UnixMilli()}
	for _, k := range n.nodes {
		v.NodeSeeds = append(v.NodeSeeds, hx(k.Seed()))
	}
	for i := range in.Commits {
		v.Commits = append(v.Commits, hx(mustMarshal(t, &in.Commits[i])))
	}
	for i := range in.Reveals {
		v.Reveals = append(v.Reveals, hx(mustMarshal(t, &in.Reveals[i])))
	}
	for _, tk := range in.Tickets {
		v.Tickets = append(v.Tickets, hx(mustMarshal(t, tk)))
	}
	res, err := lottery.Draw(in)
	if err != nil {
		t.Fatalf("%s: Draw = %v", name, err)
	}
	v.Seed = hx(res.Seed[:])
	for _, id := range res.Included {
		v.Included = append(v.Included, id.String())
	}
	for _, id := range res.Excluded {
		v.Excluded = append(v.Excluded, id.String())
	}
	for _, rj := range res.Rejected {
		v.Rejected = append(v.Rejected, rejected{ID: hx(rj.ID[:]), Error: errorClass(rj.Err)})
	}
	drawn := map[[32]byte]bool{}
	for _, p := range res.Pairs {
		drawn[p.A], drawn[p.B] = true, true
	}
	for _, tk := range res.Unmatched {
		drawn[tk.ID()] = true
	}
	var accepted []*lottery.Ticket
	for _, tk := range in.Tickets {
		if drawn[tk.ID()] {
			accepted = append(accepted, tk)
			delete(drawn, tk.ID())
		}
	}
	for _, tk := range drawOrder(res.Seed, accepted) {
		id := tk.ID()
		v.DrawOrder = append(v.DrawOrder, hx(id[:]))
	}
	for _, p := range res.Pairs {
		v.Pairs = append(v.Pairs, [2]string{hx(p.A[:]), hx(p.B[:])})
	}
	for _, tk := range res.Unmatched {
		id := tk.ID()
		v.Unmatched = append(v.Unmatched, hx(id[:]))
	}
	return v
}

func ticketVector(t *testing.T, name string, tk *lottery.Ticket) vector {
	t.Helper()
	id := tk.ID()
	return vector{
		Name: name, Kind: "ticket", Ticket: hx(mustMarshal(t, tk)), Leaf: hx(tk.Leaf()), ID: hx(id[:]),
		Epoch: tk.Epoch, Home: tk.Home.String(), SignKey: tk.Keys.Sign.String(), DHKey: tk.Keys.DH.String(),
		Interests: tagHex(tk.Interests), Avoid: tagHex(tk.Avoid), Verify: errorClass(tk.Verify()),
	}
}

func messageVector(t *testing.T, name, kind string, b []byte, revealValue *[32]byte) vector {
	t.Helper()
	v := vector{Name: name, Kind: kind, Message: hx(b)}
	var err error
	var epoch uint64
	var node keys.NodeID
	var value [32]byte
	if kind == "commit" {
		var c *lottery.Commit
		if c, err = lottery.ParseCommit(b); err == nil {
			epoch, node, value, err = c.Epoch, c.Node, c.Value, c.Verify()
		}
	} else {
		var rv *lottery.Reveal
		if rv, err = lottery.ParseReveal(b); err == nil {
			epoch, node, value, err = rv.Epoch, rv.Node, rv.Value, rv.Verify()
		}
	}
	if errors.Is(err, wire.ErrMalformed) {
		v.Error = "malformed"
		return v
	}
	v.Epoch, v.Node, v.Value = epoch, node.String(), hx(value[:])
	v.Signed = hx(wire.Labeled(wire.LabelLotteryMsg, b[:74]))
	v.Verify = errorClass(err)
	if revealValue != nil {
		v.RevealValue = hx(revealValue[:])
	}
	return v
}

// craftedOrder returns tickets homed at node k with the given avoid tags,
// stamped by k, that come in exactly this draw order under seed.
func craftedOrder(t *testing.T, r io.Reader, k keys.NodeKey, epoch uint64, seed [32]byte, avoid [][]lottery.Tag) []*lottery.Ticket {
	t.Helper()
	ts := make([]*lottery.Ticket, len(avoid))
	width := 1 << 16 / len(avoid)
	for i := range ts {
		for {
			tk := newTicket(t, r, epoch, k.Public(), nil, avoid[i])
			id := tk.ID()
			o := sha256.Sum256(labeled(wire.LabelLotteryOrder, seed[:], id[:]))
			if pos := int(o[0])<<8 | int(o[1]); pos >= i*width && pos < (i+1)*width {
				ts[i] = tk
				break
			}
		}
	}
	if err := lottery.StampTickets(k, t0, ts); err != nil {
		t.Fatal(err)
	}
	return ts
}

// TestVectors writes and then consumes spec/testdata/lottery.json.
func TestVectors(t *testing.T) {
	r := rng("vectors")
	var vs []vector

	// Tags.
	for _, text := range []string{"chess", "  Chess\n", "\u00a0ÉCHECS", "ΣΊΣΥΦΟΣ", "Straße", "a\xffb", ""} {
		tag := lottery.InterestTag(text)
		vs = append(vs, vector{Name: "interest " + hx([]byte(text)), Kind: "interest_tag", Text: text, Tag: hx(tag[:])})
	}
	var avoidKey [32]byte
	copy(avoidKey[:], "avoid key of a room: 32 bytes!!!")
	for _, e := range []uint64{1, 2, 1 << 40} {
		tag := lottery.AvoidTag(avoidKey, e)
		vs = append(vs, vector{Name: "avoid tag", Kind: "avoid_tag", AvoidKey: hx(avoidKey[:]), Epoch: e, Tag: hx(tag[:])})
	}

	// Tickets.
	n := newNetwork(t, r, 42, 3)
	batch := n.issue(t, r, 0, 3, nil, nil)
	vs = append(vs, ticketVector(t, "plain ticket, index 1 of a batch of 3", batch[1]))
	tagged := n.issue(t, r, 1, 2, []lottery.Tag{lottery.InterestTag("chess"), lottery.InterestTag("go")}, []lottery.Tag{lottery.AvoidTag(avoidKey, 42)})
	vs = append(vs, ticketVector(t, "two interest tags and an avoid tag, index 0 of 2", tagged[0]))
	var many, manyAvoid []lottery.Tag
	for i := range wire.MaxInterestTags {
		many = append(many, lottery.InterestTag(string(rune('a'+i))))
		manyAvoid = append(manyAvoid, lottery.AvoidTag(avoidKey, uint64(i)))
	}
	vs = append(vs, ticketVector(t, "all tags, alone in its batch", n.issue(t, r, 2, 1, many, manyAvoid)[0]))
	unstamped := *batch[2]
	unstamped.Stamp = nil
	vs = append(vs, ticketVector(t, "unstamped", &unstamped))
	foreign := newTicket(t, r, 42, n.nodes[1].Public(), nil, nil)
	if err := lottery.StampTickets(n.nodes[1], t0, []*lottery.Ticket{foreign}); err != nil {
		t.Fatal(err)
	}
	foreign.Home = n.nodes[0].Public()
	vs = append(vs, ticketVector(t, "stamped by a node other than its home", foreign))
	edited := *tagged[1]
	edited.Epoch++
	vs = append(vs, ticketVector(t, "epoch changed after stamping", &edited))
	good := mustMarshal(t, tagged[1])
	for _, c := range malformedTickets {
		vs = append(vs, vector{Name: "malformed: " + c.name, Kind: "ticket", Ticket: hx(c.mut(bytes.Clone(good))), Error: "malformed"})
	}

	// Commits and reveals.
	c := signCommit(n.nodes[0], 42, n.values[0])
	rv := signReveal(n.nodes[0], 42, n.values[0])
	cb, rb := mustMarshal(t, &c), mustMarshal(t, &rv)
	vs = append(vs, messageVector(t, "commit", "commit", cb, &n.values[0]), messageVector(t, "reveal", "reveal", rb, nil))
	relabelled := bytes.Clone(cb)
	relabelled[1] = 2
	vs = append(vs, messageVector(t, "commit relabelled as a reveal", "reveal", relabelled, nil))
	flipped := bytes.Clone(rb)
	flipped[80] ^= 1
	vs = append(vs, messageVector(t, "reveal with a flipped signature bit", "reveal", flipped, nil))
	for _, m := range []struct {
		name string
		b    []byte
	}{
		{"truncated", cb[:len(cb)-1]},
		{"trailing byte", append(bytes.Clone(cb), 0)},
		{"version 2", append([]byte{2}, cb[1:]...)},
		{"kind 2 read as a commit", relabelled},
		{"kind 3", append([]byte{1, 3}, cb[2:]...)},
	} {
		vs = append(vs, messageVector(t, "malformed commit: "+m.name, "commit", m.b, nil))
	}

	// Epoch 1: 12 tickets from 3 nodes; node 2 commits but withholds its
	// reveal, so its 4 tickets are out.
	e1 := newNetwork(t, r, 1000, 3)
	chess := lottery.InterestTag("chess")
	left := lottery.AvoidTag(avoidKey, 1000)
	e1.issue(t, r, 0, 2, []lottery.Tag{chess}, nil)
	e1.issue(t, r, 0, 1, nil, []lottery.Tag{left})
	e1.issue(t, r, 0, 1, nil, nil)
	e1.issue(t, r, 1, 1, []lottery.Tag{chess}, nil)
	e1.issue(t, r, 1, 1, nil, []lottery.Tag{left})
	e1.issue(t, r, 1, 2, nil, nil)
	e1.issue(t, r, 2, 4, []lottery.Tag{chess}, nil)
	in1 := e1.inputs()
	in1.Reveals = in1.Reveals[:2]
	vs = append(vs, epochVector(t, "12 tickets from 3 nodes, node 2 withholds its reveal", e1, in1))

	// Epoch 2: rejections. Node 3 equivocates, node 4 never commits.
	e2 := newNetwork(t, r, 1001, 5)
	for i := range e2.nodes {
		e2.issue(t, r, i, 2, nil, nil)
	}
	in2 := e2.inputs()
	in2.Commits = append(in2.Commits[:4], signCommit(e2.nodes[3], 1001, [32]byte{3}))
	in2.Reveals = in2.Reveals[:4]
	badSig := *e2.tickets[0]
	s := *badSig.Stamp
	s.Sig[0] ^= 1
	badSig.Stamp = &s
	stray := newTicket(t, r, 1000, e2.nodes[0].Public(), nil, nil)
	if err := lottery.StampTickets(e2.nodes[0], t0, []*lottery.Ticket{stray}); err != nil {
		t.Fatal(err)
	}
	forged := newTicket(t, r, 1001, e2.nodes[1].Public(), nil, nil)
	if err := lottery.StampTickets(e2.nodes[1], t0, []*lottery.Ticket{forged}); err != nil {
		t.Fatal(err)
	}
	forged.Home = e2.nodes[0].Public()
	unst := *e2.tickets[2]
	unst.Stamp = nil
	in2.Tickets = append(slices.Clone(in2.Tickets), &badSig, stray, forged, &unst, e2.tickets[3])
	vs = append(vs, epochVector(t, "rejections: equivocating node, node without commit, bad stamps, wrong epoch, a duplicate", e2, in2))

	// Epoch 3: two tickets that avoid each other are left by phase 2 and
	// paired by phase 3.
	e3 := newNetwork(t, r, 1002, 1)
	seed3, _, _, err := lottery.Seed(1002, e3.commits(), e3.reveals())
	if err != nil {
		t.Fatal(err)
	}
	e3.tickets = craftedOrder(t, r, e3.nodes[0], 1002, seed3, [][]lottery.Tag{nil, nil, {left}, {left}})
	if pairs, _ := lottery.Match(seed3, e3.tickets); !slices.Contains(pairs, pairOf(e3.tickets[2], e3.tickets[0])) || !slices.Contains(pairs, pairOf(e3.tickets[3], e3.tickets[1])) {
		t.Fatal("epoch 3: phase 3 did not split (x, y) into (u, x) and (v, y)")
	}
	vs = append(vs, epochVector(t, "phase 3 pairs two tickets that avoid each other", e3, e3.inputs()))

	// Epoch 4: a mixed population of 60 tickets from 4 nodes.
	e4 := newNetwork(t, r, 1003, 4)
	pick := rand.New(rand.NewPCG(4, 4))
	pool := []lottery.Tag{chess, lottery.InterestTag("go"), lottery.InterestTag("films")}
	for i := range 60 {
		var in, av []lottery.Tag
		for range pick.IntN(3) {
			in = append(in, pool[pick.IntN(len(pool))])
		}
		if pick.IntN(4) == 0 {
			av = append(av, lottery.AvoidTag(avoidKey, uint64(pick.IntN(3))))
		}
		e4.issue(t, r, i%4, 1, in, av)
	}
	vs = append(vs, epochVector(t, "60 tickets from 4 nodes with interests and avoid tags", e4, e4.inputs()))

	vectortest.Golden(t, "lottery.json", vectortest.File[vector]{
		Description: "Lottery: interest and avoid tags; tickets (parse, fields, leaf, ID, stamp check); commit and reveal messages " +
			"(parse, signed bytes, signature check); whole epochs (parse the commits, reveals and tickets, draw: seed, included and " +
			"excluded nodes, rejected tickets, draw order of the accepted tickets, pairs, unmatched tickets in draw order).",
		Spec:    "07-lottery.md",
		Vectors: vs,
	})

	// Consume the committed file.
	counts := map[string]int{}
	for _, v := range vectortest.Load[vector](t, "lottery.json").Vectors {
		counts[v.Kind]++
		switch v.Kind {
		case "interest_tag":
			if got := lottery.InterestTag(v.Text); hx(got[:]) != v.Tag {
				t.Errorf("%s: InterestTag(%q) = %x, want %s", v.Name, v.Text, got, v.Tag)
			}
		case "avoid_tag":
			var k [32]byte
			copy(k[:], unhex(t, v.AvoidKey))
			if got := lottery.AvoidTag(k, v.Epoch); hx(got[:]) != v.Tag {
				t.Errorf("%s: AvoidTag = %x, want %s", v.Name, got, v.Tag)
			}
		case "ticket":
			checkTicketVector(t, v)
		case "commit", "reveal":
			checkMessageVector(t, v)
		case "epoch":
			checkEpochVector(t, v)
		default:
			t.Errorf("%s: unknown kind %q", v.Name, v.Kind)
		}
	}
	for _, kind := range []string{"interest_tag", "avoid_tag", "ticket", "commit", "reveal", "epoch"} {
		if counts[kind] == 0 {
			t.Errorf("no %s vectors", kind)
		}
	}
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func checkTicketVector(t *testing.T, v vector) {
	t.Helper()
	b := unhex(t, v.Ticket)
	tk, err := lottery.ParseTicket(b)
	if v.Error != "" {
		if errorClass(err) != v.Error {
			t.Errorf("%s: ParseTicket = %v, want %s", v.Name, err, v.Error)
		}
		return
	}
	if err != nil {
		t.Errorf("%s: ParseTicket = %v", v.Name, err)
		return
	}
	id := tk.ID()
	if hx(mustMarshal(t, tk)) != v.Ticket || hx(tk.Leaf()) != v.Leaf || hx(id[:]) != v.ID ||
		tk.Epoch != v.Epoch || tk.Home.String() != v.Home || tk.Keys.Sign.String() != v.SignKey || tk.Keys.DH.String() != v.DHKey ||
		!slices.Equal(tagHex(tk.Interests), v.Interests) || !slices.Equal(tagHex(tk.Avoid), v.Avoid) {
		t.Errorf("%s: parsed ticket differs from the stored fields", v.Name)
	}
	if got := errorClass(tk.Verify()); got != v.Verify {
		t.Errorf("%s: Verify = %s, want %s", v.Name, got, v.Verify)
	}
	if got := sha256.Sum256(labeled(wire.LabelTicket, unhex(t, v.Leaf))); hx(got[:]) != v.ID {
		t.Errorf("%s: H(ticket, leaf) = %x, want id %s", v.Name, got, v.ID)
	}
	if tk.Stamp != nil {
		if err := stamp.Verify(tk.Home, wire.LabelTicket, unhex(t, v.Leaf), tk.Stamp); errorClass(err) == "ok" != (v.Verify == "ok") {
			t.Errorf("%s: stamp.Verify over the stored leaf = %v, want %s", v.Name, err, v.Verify)
		}
	}
}

func checkMessageVector(t *testing.T, v vector) {
	t.Helper()
	b := unhex(t, v.Message)
	var epoch uint64
	var node keys.NodeID
	var value [32]byte
	var verr error
	var err error
	if v.Kind == "commit" {
		var c *lottery.Commit
		if c, err = lottery.ParseCommit(b); err == nil {
			epoch, node, value, verr = c.Epoch, c.Node, c.Value, c.Verify()
			if again := mustMarshal(t, c); !bytes.Equal(again, b) {
				t.Errorf("%s: re-encoding differs", v.Name)
			}
		}
	} else {
		var rv *lottery.Reveal
		if rv, err = lottery.ParseReveal(b); err == nil {
			epoch, node, value, verr = rv.Epoch, rv.Node, rv.Value, rv.Verify()
			if again := mustMarshal(t, rv); !bytes.Equal(again, b) {
				t.Errorf("%s: re-encoding differs", v.Name)
			}
		}
	}
	if v.Error != "" {
		if errorClass(err) != v.Error {
			t.Errorf("%s: Parse = %v, want %s", v.Name, err, v.Error)
		}
		return
	}
	if err != nil {
		t.Errorf("%s: Parse = %v", v.Name, err)
		return
	}
	if epoch != v.Epoch || node.String() != v.Node || hx(value[:]) != v.Value || errorClass(verr) != v.Verify {
		t.Errorf("%s: epoch %d node %s value %x verify %v; want %d %s %s %s", v.Name, epoch, node, value, verr, v.Epoch, v.Node, v.Value, v.Verify)
	}
	if hx(wire.Labeled(wire.LabelLotteryMsg, b[:74])) != v.Signed {
		t.Errorf("%s: signed bytes differ", v.Name)
	}
	if v.RevealValue != "" {
		var rvv [32]byte
		copy(rvv[:], unhex(t, v.RevealValue))
		if got := lottery.CommitValue(epoch, node, rvv); hx(got[:]) != v.Value {
			t.Errorf("%s: CommitValue(reveal_value) = %x, want %s", v.Name, got, v.Value)
		}
	}
}

func checkEpochVector(t *testing.T, v vector) {
	t.Helper()
	in := lottery.EpochInputs{Epoch: v.Epoch}
	for _, s := range v.Commits {
		c, err := lottery.ParseCommit(unhex(t, s))
		if err != nil {
			t.Fatalf("%s: ParseCommit = %v", v.Name, err)
		}
		in.Commits = append(in.Commits, *c)
	}
	for _, s := range v.Reveals {
		rv, err := lottery.ParseReveal(unhex(t, s))
		if err != nil {
			t.Fatalf("%s: ParseReveal = %v", v.Name, err)
		}
		in.Reveals = append(in.Reveals, *rv)
	}
	for _, s := range v.Tickets {
		tk, err := lottery.ParseTicket(unhex(t, s))
		if err != nil {
			t.Fatalf("%s: ParseTicket = %v", v.Name, err)
		}
		in.Tickets = append(in.Tickets, tk)
	}
	nodeIDs := map[string]bool{}
	for _, s := range v.NodeSeeds {
		k, err := keys.NodeKeyFromSeed(unhex(t, s))
		if err != nil {
			t.Fatal(err)
		}
		nodeIDs[k.Public().String()] = true
	}
	res, err := lottery.Draw(in)
	if err != nil {
		t.Fatalf("%s: Draw = %v", v.Name, err)
	}
	strs := func(ns []keys.NodeID) []string {
		var out []string
		for _, n := range ns {
			out = append(out, n.String())
			if !nodeIDs[n.String()] {
				t.Errorf("%s: node %s not from the stored seeds", v.Name, n)
			}
		}
		return out
	}
	if hx(res.Seed[:]) != v.Seed || !slices.Equal(strs(res.Included), v.Included) || !slices.Equal(strs(res.Excluded), v.Excluded) {
		t.Errorf("%s: seed %x, included %v, excluded %v; want %s, %v, %v", v.Name, res.Seed, res.Included, res.Excluded, v.Seed, v.Included, v.Excluded)
	}
	var rj []rejected
	for _, x := range res.Rejected {
		rj = append(rj, rejected{ID: hx(x.ID[:]), Error: errorClass(x.Err)})
	}
	if !slices.Equal(rj, v.Rejected) {
		t.Errorf("%s: rejected %v, want %v", v.Name, rj, v.Rejected)
	}
	// The stored draw order is the accepted tickets sorted by their order
	// keys: recompute it from the stored IDs.
	keysOf := make([]string, len(v.DrawOrder))
	for i, s := range v.DrawOrder {
		o := sha256.Sum256(labeled(wire.LabelLotteryOrder, res.Seed[:], unhex(t, s)))
		keysOf[i] = hx(o[:]) + s
	}
	if !slices.IsSorted(keysOf) {
		t.Errorf("%s: stored draw order is not sorted by order key", v.Name)
	}
	var pairs [][2]string
	for _, p := range res.Pairs {
		pairs = append(pairs, [2]string{hx(p.A[:]), hx(p.B[:])})
	}
	var unmatched []string
	for _, tk := range res.Unmatched {
		id := tk.ID()
		unmatched = append(unmatched, hx(id[:]))
	}
	if !slices.Equal(pairs, v.Pairs) || !slices.Equal(unmatched, v.Unmatched) {
		t.Errorf("%s: pairs %v unmatched %v; want %v, %v", v.Name, pairs, unmatched, v.Pairs, v.Unmatched)
	}
	if len(v.DrawOrder) != 2*len(v.Pairs)+len(v.Unmatched) {
		t.Errorf("%s: %d tickets in the draw order, %d pairs and %d unmatched", v.Name, len(v.DrawOrder), len(v.Pairs), len(v.Unmatched))
	}
}
