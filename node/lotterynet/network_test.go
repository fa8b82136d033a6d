package lotterynet_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-chat/parley/node/internal/poll"
	"github.com/parley-chat/parley/node/lotterynet"
	"github.com/parley-chat/parley/node/mailbox"
	"github.com/parley-chat/parley/node/pairing"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/lottery"
)

// slowConfig is a 1s epoch, for the tests with many users or nodes: the
// phases leave room for 2 loaded cores under the race detector.
var slowConfig = lotterynet.Config{
	EpochLength:    time.Second,
	MaxClockSkew:   50 * time.Millisecond,
	TicketPhase:    250 * time.Millisecond,
	RevealPhase:    150 * time.Millisecond,
	ConfirmTimeout: 300 * time.Millisecond,
}

func epochOf(cfg lotterynet.Config, t time.Time) uint64 {
	return uint64(t.UnixMilli()) / uint64(cfg.EpochLength.Milliseconds())
}

func epochStart(cfg lotterynet.Config, e uint64) time.Time {
	return time.UnixMilli(int64(e) * cfg.EpochLength.Milliseconds())
}

// ask requests a ticket for account acct at n with fresh keys and the
// given avoid tags, and returns the user.
func ask(t *testing.T, n *node, acct keys.AccountID, avoid []lottery.Tag) *user {
	t.Helper()
	tk, err := keys.GenerateTicketKeys(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.lt.RequestTicket(context.Background(), acct, pairing.TicketRequest{Keys: tk.Public(), Avoid: avoid}); err != nil {
		t.Fatal(err)
	}
	return &user{acct: acct, tk: tk, home: n}
}

// latest returns u's paired events for its current ticket (at most one
// is right).
func (u *user) current(t *testing.T) []pairing.PairedEvent {
	t.Helper()
	evs, err := u.home.mb.Read(context.Background(), u.acct, 0, mailbox.MaxReadLimit)
	if err != nil {
		t.Fatal(err)
	}
	var out []pairing.PairedEvent
	for _, ev := range evs {
		var p pairing.PairedEvent
		if err := json.Unmarshal(ev.Body, &p); err != nil {
			t.Fatal(err)
		}
		if p.Me.Sign == u.tk.Public().Sign {
			out = append(out, p)
		}
	}
	return out
}

// round waits until all users but at most one are paired, then checks that
// each paired user is paired once, with another user who is paired back in
// the same room, not with avoid[its account] (the partner it just left),
// and before epoch limit ended. It returns each account's partner account.
func round(t *testing.T, cfg lotterynet.Config, users []*user, avoid map[keys.AccountID]keys.AccountID, limit uint64) map[keys.AccountID]keys.AccountID {
	t.Helper()
	unpaired := func() int {
		n := 0
		for _, u := range users {
			if len(u.current(t)) == 0 {
				n++
			}
		}
		return n
	}
	bySign := map[keys.TicketID]*user{}
	for _, u := range users {
		bySign[u.tk.Public().Sign] = u
	}
	// Each side's node writes its own user's pairing when its confirmation
	// completes, so a user can be paired a moment before its partner on
	// another node: wait until every paired user's partner is paired too.
	settled := func() bool {
		for _, u := range users {
			for _, ev := range u.current(t) {
				if v := bySign[ev.Partner.Sign]; v != nil && len(v.current(t)) == 0 {
					return false
				}
			}
		}
		return true
	}
	poll.Until(t, "all users but at most one are paired, and their partners too", func() bool {
		return unpaired() <= 1 && settled()
	})
	partner := map[keys.AccountID]keys.AccountID{}
	deadline := epochStart(cfg, limit+1)
	for _, u := range users {
		evs := u.current(t)
		if len(evs) == 0 {
			continue
		}
		if len(evs) != 1 {
			t.Fatalf("account %x paired %d times with one ticket", u.acct[:2], len(evs))
		}
		ev := evs[0]
		v := bySign[ev.Partner.Sign]
		switch {
		case v == nil:
			t.Fatalf("account %x paired with an unknown ticket", u.acct[:2])
		case v == u:
			t.Fatalf("account %x paired with itself", u.acct[:2])
		case avoid[u.acct] == v.acct:
			t.Fatalf("account %x paired again with %x, the partner it just left", u.acct[:2], v.acct[:2])
		}
		back := v.current(t)
		if len(back) != 1 || back[0].Partner.Sign != u.tk.Public().Sign || back[0].Room != ev.Room {
			var got []string
			for _, p := range back {
				w := "an unknown ticket"
				if x := bySign[p.Partner.Sign]; x != nil {
					w = fmt.Sprintf("%x", x.acct[:2])
				}
				got = append(got, fmt.Sprintf("with %s in room %v at %v", w, p.Room, p.Created))
			}
			t.Fatalf("account %x (paired with %x in room %v at %v) is not paired back: %x is paired %v", u.acct[:2], v.acct[:2], ev.Room, ev.Created, v.acct[:2], got)
		}
		// Epoch k is settled after it ends, before epoch k+2 starts.
		if !ev.Created.Before(deadline) {
			t.Errorf("account %x paired at %v, after epoch %d ended", u.acct[:2], ev.Created, limit)
		}
		partner[u.acct] = v.acct
	}
	return partner
}

// spec 07-lottery §8.3, §13 (issue 5): five nodes of different sizes, 200
// users asking at once: all but at most one are paired within three
// epochs, each once, never with themselves. Then all leave ("next") and
// ask again with the avoid tag of the room they left: again all but at
// most one are paired within three epochs, and nobody with the partner
// they just left.
func TestFiveNodes200Users(t *testing.T) {
	if testing.Short() {
		t.Skip("five nodes, 200 users")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var nodes []*node
	for range 5 {
		nodes = append(nodes, newNodeWith(ctx, t, slowConfig))
	}
	connectAll(t, peersOf(nodes))
	meshed(t, peersOf(nodes))
	sizes := []int{8, 16, 36, 60, 80}
	acctOf := func(i, j int) keys.AccountID { return keys.AccountID{byte(i), byte(j), 0xac} }

	e := epochOf(slowConfig, time.Now())
	var users []*user
	for i, n := range nodes {
		for j := range sizes[i] {
			users = append(users, ask(t, n, acctOf(i, j), nil))
		}
	}
	run(t, nodes)
	first := round(t, slowConfig, users, nil, max(e, epochOf(slowConfig, time.Now()))+2)
	if len(first) < len(users)-1 {
		t.Fatalf("%d of %d users paired", len(first), len(users))
	}

	// "Next": every paired user leaves and asks again, with the avoid tag
	// of the room it left (both sides derive the same; a stand-in for the
	// room's avoid key, spec 06 §2.3).
	roomTag := func(a, b keys.AccountID) lottery.Tag {
		if bytes.Compare(a[:], b[:]) > 0 {
			a, b = b, a
		}
		return lottery.AvoidTag(sha256.Sum256(append(a[:], b[:]...)), e)
	}
	e2 := epochOf(slowConfig, time.Now())
	var again []*user
	for _, u := range users {
		p, ok := first[u.acct]
		if !ok {
			continue // still waiting from the first round
		}
		again = append(again, ask(t, u.home, u.acct, []lottery.Tag{roomTag(u.acct, p)}))
	}
	second := round(t, slowConfig, again, first, max(e2, epochOf(slowConfig, time.Now()))+2)
	if len(second) < len(again)-1 {
		t.Fatalf("second round: %d of %d users paired", len(second), len(again))
	}
	for _, n := range nodes {
		lint(t, n.reg)
	}
}

// lossy returns a WithDropIncoming seam that drops the gossip messages
// whose hash falls in [lo, hi) of 256: a fraction (hi-lo)/256 of them.
func lossy(lo, hi byte) lotterynet.Option {
	return lotterynet.WithDropIncoming(func(_ string, data []byte) bool {
		h := sha256.Sum256(data)
		return h[0] >= lo && h[0] < hi
	})
}

// spec 07-lottery §10.4 (issue 5): gossip is lost towards two of five
// nodes (a tenth of the messages each; the two lose different messages, so
// neither's partial view is ever the other's). Views that disagree delay
// pairs; no node confirms a pair that the full draw did not make, and the
// audit of every node's epochs finds nothing not drawn. In every epoch,
// each node's confirmed pairs are checked against the draw over its own
// inputs with the messages it lost put back: those of the epoch's inputs
// that the three nodes that lose nothing all hold and that its lossy seam
// drops. (The lossless nodes' view alone is not the full draw: under load
// a node's own message can reach the lossy nodes in time and the others
// late, and then the lossy nodes rightly draw with it.)
func TestLostGossipNeverMakesAPair(t *testing.T) {
	if testing.Short() {
		t.Skip("five nodes with lost gossip")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Node i loses the gossip whose hash starts in drops[i] (none for 0-2).
	drops := [][2]byte{{}, {}, {}, {0, 26}, {26, 52}}
	var nodes []*node
	for _, d := range drops {
		var opts []lotterynet.Option
		if d[1] > d[0] {
			opts = append(opts, lossy(d[0], d[1]))
		}
		nodes = append(nodes, newNodeWith(ctx, t, lossConfig, opts...))
	}
	connectAll(t, peersOf(nodes))
	meshed(t, peersOf(nodes))
	first := epochOf(lossConfig, time.Now())
	for i, n := range nodes {
		for j := range 8 {
			ask(t, n, keys.AccountID{byte(i), byte(j), 0xac}, nil)
		}
	}
	run(t, nodes)
	last := first + 3
	poll.Until(t, "four epochs are processed", func() bool { return epochOf(lossConfig, time.Now()) > last+1 })

	lost := 0.0
	for _, n := range nodes[3:] {
		for _, k := range []string{lotterynet.KindTickets, lotterynet.KindCommit, lotterynet.KindReveal} {
			lost += metricOr0(t, n, "parley_lottery_net_messages_total", `kind="`+k+`",result="lost"`)
		}
	}
	if lost == 0 {
		t.Fatal("no gossip was lost: the test did not exercise disagreeing views")
	}
	confirmed, checked, putBack := 0, 0, 0
	for e := first; e <= last; e++ {
		inputs := map[int]lottery.EpochInputs{}
		confirmedBy := map[int][]lottery.Pair{}
		for i, n := range nodes {
			in, pairs, err := n.lt.EpochInputs(ctx, e)
			if errors.Is(err, pairing.ErrUnknownEpoch) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			inputs[i], confirmedBy[i] = in, pairs
			rep, err := n.lt.Audit(ctx, e)
			if err != nil || !rep.OK() {
				t.Fatalf("node %d: Audit(%d) = %+v, %v; want OK", i, e, rep, err)
			}
		}
		var lossless []lottery.EpochInputs
		for i := range 3 {
			if in, ok := inputs[i]; ok {
				lossless = append(lossless, in)
			}
		}
		agreed := commonInputs(e, lossless)
		for i, pairs := range confirmedBy {
			// What node i held, with what it lost put back.
			lost := droppedInputs(t, agreed, drops[i][0], drops[i][1])
			putBack += len(lost.Tickets) + len(lost.Commits) + len(lost.Reveals)
			rep, err := lottery.Audit(mergeInputs(e, inputs[i], lost), pairs)
			if err != nil {
				t.Fatal(err)
			}
			if !rep.OK() {
				t.Errorf("epoch %d: node %d confirmed %d pairs that the draw with the gossip it lost did not make", e, i, len(rep.NotDrawn))
			}
			checked++
			confirmed += len(pairs)
		}
	}
	if checked == 0 || confirmed == 0 {
		t.Fatalf("%d node epochs checked, %d pairs confirmed: want some", checked, confirmed)
	}
	disagreed := 0.0
	for _, n := range nodes {
		disagreed += metricOr0(t, n, "parley_pairing_disagreed_epochs_total", "")
	}
	t.Logf("%v messages lost, %d inputs put back, %d pair confirmations in %d node epochs, %v disagreeing epochs",
		lost, putBack, confirmed, checked, disagreed)
}

// droppedInputs returns the inputs of in whose gossip message (a node's
// whole ticket batch, a commit, a reveal) the lossy(lo, hi) seam drops.
func droppedInputs(t *testing.T, in lottery.EpochInputs, lo, hi byte) lottery.EpochInputs {
	t.Helper()
	out := lottery.EpochInputs{Epoch: in.Epoch}
	dropped := func(data []byte) bool {
		h := sha256.Sum256(data)
		return h[0] >= lo && h[0] < hi
	}
	type batchKey struct {
		node keys.NodeID
		time int64
		sig  keys.Signature
	}
	batches := map[batchKey][]*lottery.Ticket{}
	for _, tk := range in.Tickets {
		if tk.Stamp == nil || int(tk.Stamp.Index) >= int(tk.Stamp.Count) {
			continue
		}
		k := batchKey{tk.Home, tk.Stamp.Time, tk.Stamp.Sig}
		if batches[k] == nil {
			batches[k] = make([]*lottery.Ticket, tk.Stamp.Count)
		}
		batches[k][tk.Stamp.Index] = tk
	}
	for k, ts := range batches {
		enc, err := (&lottery.TicketBatch{Epoch: in.Epoch, Node: k.node, Tickets: ts}).MarshalBinary()
		if err == nil && dropped(enc) {
			out.Tickets = append(out.Tickets, ts...)
		}
	}
	for i := range in.Commits {
		if enc, _ := in.Commits[i].MarshalBinary(); dropped(enc) {
			out.Commits = append(out.Commits, in.Commits[i])
		}
	}
	for i := range in.Reveals {
		if enc, _ := in.Reveals[i].MarshalBinary(); dropped(enc) {
			out.Reveals = append(out.Reveals, in.Reveals[i])
		}
	}
	return out
}

// inputKeys returns the identities of in's inputs: ticket IDs and the
// commits' and reveals' encodings.
func inputKeys(in lottery.EpochInputs) map[string]bool {
	keys := map[string]bool{}
	for _, k := range inputList(in) {
		keys[k.key] = true
	}
	return keys
}

type keyedInput struct {
	key    string
	ticket *lottery.Ticket
	commit *lottery.Commit
	reveal *lottery.Reveal
}

func inputList(in lottery.EpochInputs) []keyedInput {
	var out []keyedInput
	for _, tk := range in.Tickets {
		id := tk.ID()
		out = append(out, keyedInput{key: "t" + string(id[:]), ticket: tk})
	}
	for i := range in.Commits {
		enc, _ := in.Commits[i].MarshalBinary()
		out = append(out, keyedInput{key: "c" + string(enc), commit: &in.Commits[i]})
	}
	for i := range in.Reveals {
		enc, _ := in.Reveals[i].MarshalBinary()
		out = append(out, keyedInput{key: "r" + string(enc), reveal: &in.Reveals[i]})
	}
	return out
}

// commonInputs returns the inputs of epoch that every one of ins holds.
func commonInputs(epoch uint64, ins []lottery.EpochInputs) lottery.EpochInputs {
	out := lottery.EpochInputs{Epoch: epoch}
	if len(ins) == 0 {
		return out
	}
	others := make([]map[string]bool, len(ins)-1)
	for i, in := range ins[1:] {
		others[i] = inputKeys(in)
	}
	for _, k := range inputList(ins[0]) {
		all := true
		for _, o := range others {
			all = all && o[k.key]
		}
		if all {
			out = addInput(out, k)
		}
	}
	return out
}

// mergeInputs returns the union of a and b, each input once.
func mergeInputs(epoch uint64, a, b lottery.EpochInputs) lottery.EpochInputs {
	out := lottery.EpochInputs{Epoch: epoch}
	seen := map[string]bool{}
	for _, k := range append(inputList(a), inputList(b)...) {
		if !seen[k.key] {
			seen[k.key] = true
			out = addInput(out, k)
		}
	}
	return out
}

func addInput(in lottery.EpochInputs, k keyedInput) lottery.EpochInputs {
	switch {
	case k.ticket != nil:
		in.Tickets = append(in.Tickets, k.ticket)
	case k.commit != nil:
		in.Commits = append(in.Commits, *k.commit)
	case k.reveal != nil:
		in.Reveals = append(in.Reveals, *k.reveal)
	}
	return in
}

// lossConfig is a 2s epoch with wide phases: a slow (lossy) node's batch
// rarely crosses a phase boundary.
var lossConfig = lotterynet.Config{
	EpochLength:    2 * time.Second,
	MaxClockSkew:   50 * time.Millisecond,
	TicketPhase:    600 * time.Millisecond,
	RevealPhase:    300 * time.Millisecond,
	ConfirmTimeout: 500 * time.Millisecond,
}

// metricOr0 is metric, but 0 for a series not (yet) present.
func metricOr0(t *testing.T, n *node, name, labels string) float64 {
	t.Helper()
	mfs, err := n.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			ls := ""
			for i, l := range m.GetLabel() {
				if i > 0 {
					ls += ","
				}
				ls += l.GetName() + `="` + l.GetValue() + `"`
			}
			if ls == labels {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// penalties records what a node's PeerPenalizer was told.
type penalties struct {
	mu   sync.Mutex
	seen map[string]map[peer.ID]bool
}

func (p *penalties) Penalize(id peer.ID, reason string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.seen == nil {
		p.seen = map[string]map[peer.ID]bool{}
	}
	if p.seen[reason] == nil {
		p.seen[reason] = map[peer.ID]bool{}
	}
	p.seen[reason][id] = true
}

func (p *penalties) has(reason string, id peer.ID) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.seen[reason][id]
}

// evilPeer is a node that joins the lottery topics and publishes what it
// likes.
type evilPeer struct {
	*peerNode
	topics [3]*pubsub.Topic
}

func newEvil(ctx context.Context, t *testing.T) *evilPeer {
	t.Helper()
	e := &evilPeer{peerNode: newPeer(ctx, t)}
	for i, name := range []string{lotterynet.TopicTickets, lotterynet.TopicCommits, lotterynet.TopicReveals} {
		tp, err := e.ps.Join(names.TopicPrefix + name)
		if err != nil {
			t.Fatal(err)
		}
		e.topics[i] = tp
		sub, err := tp.Subscribe()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(sub.Cancel)
	}
	return e
}

// batch returns count tickets of e for epoch, stamped as one batch at at.
func (e *evilPeer) batch(t *testing.T, epoch uint64, count int, at time.Time) []byte {
	t.Helper()
	ts := make([]*lottery.Ticket, count)
	for i := range ts {
		tk, err := keys.GenerateTicketKeys(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		ts[i] = &lottery.Ticket{Epoch: epoch, Home: e.key.Public(), Keys: tk.Public()}
	}
	if err := lottery.StampTickets(e.key, at, ts); err != nil {
		t.Fatal(err)
	}
	b, err := (&lottery.TicketBatch{Epoch: epoch, Node: e.key.Public(), Tickets: ts}).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (e *evilPeer) publish(ctx context.Context, t *testing.T, topic int, data []byte) {
	t.Helper()
	if err := e.topics[topic].Publish(ctx, data); err != nil {
		t.Fatal(err)
	}
}

// spec 07-lottery §13.3 (issue 5): among three honest nodes, a node that
// floods tickets past the per-node quota is rejected; a node that commits
// and withholds its reveal is excluded, counted and penalized; a node that
// gossips two different ticket batches for one epoch is caught, counted,
// penalized, and the proof is stored with the epoch. The honest users
// still pair.
func TestHostileNodes(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// A 3s epoch with a long ticket phase: gossip that misses a peer at
	// first reaches it at the next heartbeat (1s), within the phase.
	cfg := lotterynet.Config{EpochLength: 3 * time.Second, MaxClockSkew: 50 * time.Millisecond,
		TicketPhase: 1500 * time.Millisecond, RevealPhase: 300 * time.Millisecond, ConfirmTimeout: 500 * time.Millisecond,
		MaxTicketsPerNode: 4}
	pens := []*penalties{{}, {}, {}}
	var nodes []*node
	for i := range 3 {
		nodes = append(nodes, newNodeWith(ctx, t, cfg, lotterynet.WithPenalizer(pens[i])))
	}
	withholder, equivocator := newEvil(ctx, t), newEvil(ctx, t)
	all := append(peersOf(nodes), withholder.peerNode, equivocator.peerNode)
	connectAll(t, all)
	meshed(t, all)

	// Pubsub may lose what a peer publishes before it is ready towards
	// another: each evil peer publishes junk (fresh each time) until every
	// honest node has rejected one of its messages.
	for k, ev := range []*evilPeer{withholder, equivocator} {
		// The withholder on the reveal topic, the equivocator on the
		// commit topic: each check counts one peer's messages.
		topic, kind := []int{2, 1}[k], []string{lotterynet.KindReveal, lotterynet.KindCommit}[k]
		ready := func() bool {
			for _, n := range nodes {
				if metricOr0(t, n, "parley_lottery_net_messages_total", `kind="`+kind+`",result="malformed"`) < 1 {
					return false
				}
			}
			return true
		}
		for i := 0; !ready(); i++ {
			if i > 200 {
				t.Fatal("the evil peers' gossip does not reach the honest nodes")
			}
			ev.publish(ctx, t, topic, []byte{0xff, byte(i), byte(k)})
			tick := time.NewTimer(20 * time.Millisecond)
			<-tick.C
		}
	}

	// Start at the beginning of an epoch, so everything lands in its
	// ticket phase.
	e := epochOf(cfg, time.Now()) + 1
	poll.Until(t, "the next epoch starts", func() bool { return epochOf(cfg, time.Now()) >= e })
	var users []*user
	for i, n := range nodes {
		for j := range 2 {
			users = append(users, ask(t, n, keys.AccountID{byte(i), byte(j), 0xac}, nil))
		}
	}
	now := time.Now()
	c := lottery.SignCommit(withholder.key, e, [32]byte{1})
	enc, _ := c.MarshalBinary()
	withholder.publish(ctx, t, 1, enc) // and never a reveal
	equivocator.publish(ctx, t, 0, equivocator.batch(t, e, 2, now))
	run(t, nodes)
	// Flood: batches over the quota, fresh ones (a rejected message is not
	// relayed) until every honest node has rejected one.
	flooded := func() bool {
		for _, n := range nodes {
			if metricOr0(t, n, "parley_lottery_net_messages_total", `kind="tickets",result="over_quota"`) < 1 {
				return false
			}
		}
		return true
	}
	for !flooded() && time.Now().Before(epochStart(cfg, e+1)) {
		withholder.publish(ctx, t, 0, withholder.batch(t, e, cfg.MaxTicketsPerNode+1, time.Now()))
		tick := time.NewTimer(50 * time.Millisecond)
		<-tick.C
	}
	equivocator.publish(ctx, t, 0, equivocator.batch(t, e, 2, now.Add(time.Millisecond)))
	checkPairs(t, users)

	wpid, qpid := withholder.h.ID(), equivocator.h.ID()
	for i, n := range nodes {
		withheld := func() float64 {
			return metricOr0(t, n, "parley_lottery_net_excluded_nodes_total", `reason="withheld_reveal"`)
		}
		equivocated := func() float64 {
			return metricOr0(t, n, "parley_lottery_net_excluded_nodes_total", `reason="equivocated"`)
		}
		poll.Until(t, "the epoch's hostile nodes are counted", func() bool {
			if withheld() < 1 || equivocated() < 1 {
				t.Logf("node %d: withheld %v, equivocated %v, commits %v %v %v", i, withheld(), equivocated(),
					metricOr0(t, n, "parley_lottery_net_messages_total", `kind="commit",result="accepted"`),
					metricOr0(t, n, "parley_lottery_net_messages_total", `kind="commit",result="late"`),
					metricOr0(t, n, "parley_lottery_net_messages_total", `kind="tickets",result="equivocation"`))
				return false
			}
			return true
		})
		if got := metric(t, n.reg, "parley_lottery_net_messages_total", `kind="tickets",result="over_quota"`); got < 1 {
			t.Errorf("node %d: %v over-quota batches rejected, want at least 1", i, got)
		}
		if !pens[i].has("lottery_"+lotterynet.ReasonWithheld, wpid) || !pens[i].has("lottery_"+lotterynet.ReasonEquivocated, qpid) {
			t.Errorf("node %d: penalties %+v, want the withholder and the equivocator", i, pens[i].seen)
		}
		proofs, err := n.lt.Proofs(ctx, e)
		if err != nil || len(proofs) != 1 || proofs[0].Kind != lottery.EquivocatedTickets || proofs[0].Node != equivocator.key.Public() {
			t.Errorf("node %d: stored proofs of epoch %d = %+v, %v; want one ticket proof against the equivocator", i, e, proofs, err)
		}
		rep, err := n.lt.Audit(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK() || len(rep.Result.Excluded) != 1 || rep.Result.Excluded[0] != withholder.key.Public() {
			t.Errorf("node %d: Audit(%d) excluded %v, ok %v; want the withholder excluded", i, e, rep.Result.Excluded, rep.OK())
		}
		lint(t, n.reg)
	}
}
