package lotterynet_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/parley-chat/parley/node/internal/poll"
	"github.com/parley-chat/parley/node/internal/storetest"
	"github.com/parley-chat/parley/node/lotterynet"
	"github.com/parley-chat/parley/node/mailbox"
	"github.com/parley-chat/parley/node/pairing"
	"github.com/parley-chat/parley/node/rooms"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/lottery"
)

var names = lotterynet.Names{TopicPrefix: "parley/test/", ConfirmProtocol: "/parley/test/pair-confirm/3.1.0"}

// fastConfig is a 400ms epoch: short enough for quick tests, with phases
// wide enough for 2 loaded cores.
var fastConfig = lotterynet.Config{
	EpochLength:    400 * time.Millisecond,
	MaxClockSkew:   20 * time.Millisecond,
	TicketPhase:    100 * time.Millisecond,
	RevealPhase:    60 * time.Millisecond,
	ConfirmTimeout: 150 * time.Millisecond,
}

// peerNode is a libp2p host on loopback with GossipSub as the federation
// layer sets it up: content-derived message IDs, no pubsub signatures
// (the lottery's messages carry their own).
type peerNode struct {
	key keys.NodeKey
	h   host.Host
	ps  *pubsub.PubSub
}

func newPeer(ctx context.Context, t testing.TB) *peerNode {
	t.Helper()
	k, err := keys.GenerateNodeKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := libp2pKey(k)
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(libp2p.Identity(priv), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	ps, err := pubsub.NewGossipSub(ctx, h,
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign),
		pubsub.WithMessageIdFn(func(m *pb.Message) string {
			id := sha256.Sum256(m.GetData())
			return string(id[:])
		}))
	if err != nil {
		t.Fatal(err)
	}
	return &peerNode{key: k, h: h, ps: ps}
}

// connectAll connects every pair of peers.
func connectAll(t testing.TB, ps []*peerNode) {
	t.Helper()
	for i, a := range ps {
		for _, b := range ps[i+1:] {
			if err := a.h.Connect(context.Background(), peer.AddrInfo{ID: b.h.ID(), Addrs: b.h.Addrs()}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// meshed waits until every peer sees every other on the lottery topics.
func meshed(t testing.TB, ps []*peerNode) {
	t.Helper()
	poll.Until(t, "every node sees the others on the lottery topics", func() bool {
		for _, p := range ps {
			for _, topic := range []string{lotterynet.TopicTickets, lotterynet.TopicCommits, lotterynet.TopicReveals} {
				if len(p.ps.ListPeers(names.TopicPrefix+topic)) < len(ps)-1 {
					return false
				}
			}
		}
		// and has its outbound pubsub stream to each (a message published
		// before it opens is not sent to that peer).
		for _, a := range ps {
			for _, b := range ps {
				if a != b && !outboundPubsub(a.h, b.h.ID()) {
					return false
				}
			}
		}
		return true
	})
}

func outboundPubsub(h host.Host, p peer.ID) bool {
	for _, c := range h.Network().ConnsToPeer(p) {
		for _, s := range c.GetStreams() {
			if s.Stat().Direction == network.DirOutbound && strings.HasPrefix(string(s.Protocol()), "/meshsub/") {
				return true
			}
		}
	}
	return false
}

// node is a parley node's lottery: pairing on an in-memory store over
// lotterynet.
type node struct {
	*peerNode
	net *lotterynet.Network
	lt  *pairing.Lottery
	mb  *mailbox.Mailbox
	reg *prometheus.Registry
}

func newNode(ctx context.Context, t testing.TB) *node {
	t.Helper()
	return newNodeWith(ctx, t, fastConfig)
}

// newNodeWith is newNode with another network configuration and options.
func newNodeWith(ctx context.Context, t testing.TB, cfg lotterynet.Config, opts ...lotterynet.Option) *node {
	t.Helper()
	n := &node{peerNode: newPeer(ctx, t), reg: prometheus.NewRegistry()}
	st := storetest.New(t, nil).Open()
	var err error
	n.mb, err = mailbox.New(mailbox.Config{}, st)
	if err != nil {
		t.Fatal(err)
	}
	// The Confirmer refers to the lottery built after the network: the
	// network calls it only once the lottery runs (lotterynet.Confirmer).
	var lt *pairing.Lottery
	n.net, err = lotterynet.New(cfg, names, n.h, n.ps, n.key,
		func(ctx context.Context, q pairing.PairQuery) (bool, error) { return lt.ConfirmPair(ctx, q) },
		append([]lotterynet.Option{lotterynet.WithRegisterer(n.reg)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.net.Close)
	lt, err = pairing.New(pairing.Config{EpochLength: cfg.EpochLength}, st, rooms.New(st), n.mb, n.key,
		pairing.WithNetwork(n.net), pairing.WithRegisterer(n.reg))
	if err != nil {
		t.Fatal(err)
	}
	n.lt = lt
	return n
}

// run starts the nodes' lotteries until the test ends.
func run(t testing.TB, nodes []*node) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Go(func() { _ = n.lt.Run(ctx) })
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
}

type user struct {
	acct keys.AccountID
	tk   keys.TicketKeys
	home *node
}

func (n *node) newUser(t *testing.T, i int) *user {
	t.Helper()
	tk, err := keys.GenerateTicketKeys(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u := &user{acct: keys.AccountID{byte(i), 0xac}, tk: tk, home: n}
	if _, err := n.lt.RequestTicket(context.Background(), u.acct, pairing.TicketRequest{Keys: tk.Public()}); err != nil {
		t.Fatal(err)
	}
	return u
}

func (u *user) paired(t *testing.T) []pairing.PairedEvent {
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
		out = append(out, p)
	}
	return out
}

// checkPairs waits until every user is paired, then checks that each is
// paired exactly once, with a partner who is paired with them in the same
// room, and returns how many pairs span two nodes.
func checkPairs(t *testing.T, users []*user) int {
	t.Helper()
	poll.Until(t, "every user is paired", func() bool {
		for _, u := range users {
			if len(u.paired(t)) == 0 {
				return false
			}
		}
		return true
	})
	bySign := map[keys.TicketID]*user{}
	for _, u := range users {
		bySign[u.tk.Public().Sign] = u
	}
	cross := 0
	for _, u := range users {
		evs := u.paired(t)
		if len(evs) != 1 {
			t.Fatalf("user %d has %d paired events, want 1", u.acct[0], len(evs))
		}
		ev := evs[0]
		v := bySign[ev.Partner.Sign]
		if v == nil || v == u {
			t.Fatalf("user %d paired with %v, not another test user", u.acct[0], ev.Partner.Sign)
		}
		back := v.paired(t)
		if len(back) != 1 || back[0].Partner.Sign != u.tk.Public().Sign || back[0].Room != ev.Room {
			t.Fatalf("user %d's partner %d is not paired back in room %v: %+v", u.acct[0], v.acct[0], ev.Room, back)
		}
		if ev.Partner.Home != v.home.key.Public() {
			t.Fatalf("partner home %v, want %v", ev.Partner.Home, v.home.key.Public())
		}
		if v.home != u.home {
			cross++
		}
	}
	return cross / 2
}

// metric returns the value of a counter in reg (labels as k="v",...).
func metric(t *testing.T, reg *prometheus.Registry, name string, labels string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			if strings.Join(ls, ",") == labels {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("metric %s{%s} not found", name, labels)
	return 0
}

func lint(t *testing.T, reg *prometheus.Registry) {
	t.Helper()
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("GatherAndLint() = %v, %v, want no problems", problems, err)
	}
}

// spec 07-lottery §13: users of two nodes, one each, are paired with each
// other; both home nodes confirm (each creates the room).
func TestTwoNodesPair(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	nodes := []*node{newNode(ctx, t), newNode(ctx, t)}
	connectAll(t, peersOf(nodes))
	meshed(t, peersOf(nodes))
	users := []*user{nodes[0].newUser(t, 1), nodes[1].newUser(t, 2)}
	run(t, nodes)
	if cross := checkPairs(t, users); cross != 1 {
		t.Fatalf("%d cross-node pairs, want 1", cross)
	}
	yes := 0.0
	for _, n := range nodes {
		yes += metric(t, n.reg, "parley_lottery_net_confirms_total", `direction="in",result="yes"`)
		lint(t, n.reg)
	}
	if yes < 1 {
		t.Fatalf("%v confirm requests answered yes, want at least 1", yes)
	}
}

// spec 07-lottery §13: three nodes with 2, 1 and 1 users: everyone is
// paired once, and the lone users of nodes 1 and 2 necessarily across nodes.
func TestThreeNodesPair(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	nodes := []*node{newNode(ctx, t), newNode(ctx, t), newNode(ctx, t)}
	connectAll(t, peersOf(nodes))
	meshed(t, peersOf(nodes))
	users := []*user{nodes[0].newUser(t, 1), nodes[0].newUser(t, 2), nodes[1].newUser(t, 3), nodes[2].newUser(t, 4)}
	run(t, nodes)
	if cross := checkPairs(t, users); cross < 1 {
		t.Fatalf("%d cross-node pairs, want at least 1", cross)
	}
}

func peersOf(nodes []*node) []*peerNode {
	ps := make([]*peerNode, len(nodes))
	for i, n := range nodes {
		ps[i] = n.peerNode
	}
	return ps
}

// spec 07-lottery §13.3: a ticket batch stamped by another key than its
// node's is rejected; a node that signs two different commits for one
// epoch is caught, its inputs dropped and the proof kept.
func TestForgedAndEquivocating(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := lotterynet.Config{EpochLength: 2 * time.Second}
	var honest []*peerNode
	var nets []*lotterynet.Network
	var regs []*prometheus.Registry
	for range 2 {
		p := newPeer(ctx, t)
		reg := prometheus.NewRegistry()
		nw, err := lotterynet.New(cfg, names, p.h, p.ps, p.key,
			func(context.Context, pairing.PairQuery) (bool, error) { return false, nil }, lotterynet.WithRegisterer(reg))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nw.Close)
		honest, nets, regs = append(honest, p), append(nets, nw), append(regs, reg)
	}
	evil := newPeer(ctx, t)
	var topics [3]*pubsub.Topic
	for i, name := range []string{lotterynet.TopicTickets, lotterynet.TopicCommits, lotterynet.TopicReveals} {
		tp, err := evil.ps.Join(names.TopicPrefix + name)
		if err != nil {
			t.Fatal(err)
		}
		topics[i] = tp
		sub, err := tp.Subscribe()
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Cancel()
	}
	all := append(append([]*peerNode{}, honest...), evil)
	connectAll(t, all)
	meshed(t, all)

	// The evil node publishes until the honest nodes have it: a message
	// published before pubsub is ready towards a peer is lost, and pubsub
	// drops a repeated message as seen, so each attempt is fresh.
	victim := honest[0].key.Public()
	epoch := uint64(time.Now().UnixMilli()) / 2000
	attempt := byte(0)
	publish := func() {
		attempt++
		// A batch naming honest node 0, stamped by the evil key.
		ts := make([]*lottery.Ticket, 2)
		for i := range ts {
			tk, err := keys.GenerateTicketKeys(rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			ts[i] = &lottery.Ticket{Epoch: epoch, Home: evil.key.Public(), Keys: tk.Public()}
		}
		if err := lottery.StampTickets(evil.key, time.Now(), ts); err != nil {
			t.Fatal(err)
		}
		for _, tk := range ts {
			tk.Home, tk.Stamp.Node = victim, victim
		}
		forged, err := (&lottery.TicketBatch{Epoch: epoch, Node: victim, Tickets: ts}).MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if err := topics[0].Publish(ctx, forged); err != nil {
			t.Fatal(err)
		}
		// Two commits to different values for one epoch.
		for _, v := range [][32]byte{{1, attempt}, {2, attempt}} {
			c := lottery.SignCommit(evil.key, epoch, v)
			enc, _ := c.MarshalBinary()
			if err := topics[1].Publish(ctx, enc); err != nil {
				t.Fatal(err)
			}
		}
	}
	caught := func() bool {
		for _, reg := range regs {
			if metric(t, reg, "parley_lottery_net_messages_total", `kind="tickets",result="bad_signature"`) < 1 ||
				metric(t, reg, "parley_lottery_net_equivocations_total", `kind="commit"`) < 1 {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(poll.Timeout)
	for !caught() {
		if time.Now().After(deadline) {
			t.Fatal("the honest nodes did not reject the forged batch and catch the equivocation")
		}
		publish()
		wait := time.NewTimer(100 * time.Millisecond)
		tick := time.NewTicker(time.Millisecond)
		for waiting := true; waiting && !caught(); {
			select {
			case <-tick.C:
			case <-wait.C:
				waiting = false
			}
		}
		wait.Stop()
		tick.Stop()
	}
	for i, reg := range regs {
		lint(t, reg)
		proofs := nets[i].Equivocations()
		if len(proofs) != 1 || proofs[0].Node != evil.key.Public() || proofs[0].Kind != lottery.EquivocatedCommit || proofs[0].Verify() != nil {
			t.Fatalf("node %d: Equivocations() = %+v, want one commit proof against the evil node", i, proofs)
		}
		for _, b := range [][]byte{proofs[0].First, proofs[0].Second} {
			c, err := lottery.ParseCommit(b)
			if err != nil || c.Verify() != nil || c.Epoch != epoch {
				t.Fatalf("node %d: proof commit %x does not verify: %v", i, b, err)
			}
		}
		in, err := nets[i].Collect(ctx, epoch)
		if err != nil {
			t.Fatal(err)
		}
		if len(in.Tickets) != 0 || len(in.Commits) != 0 {
			t.Fatalf("node %d: Collect = %d tickets, %d commits; want none (forged and dropped)", i, len(in.Tickets), len(in.Commits))
		}
	}
}

// spec 07-lottery §13.4: a node asked about a ticket it does not know
// answers a signed no. (The asker is the node with the higher ID: the
// lower one decides and does not ask.)
func TestConfirmUnknownTicket(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var ps []*peerNode
	var nets []*lotterynet.Network
	var regs []*prometheus.Registry
	for range 2 {
		p := newPeer(ctx, t)
		reg := prometheus.NewRegistry()
		nw, err := lotterynet.New(fastConfig, names, p.h, p.ps, p.key,
			func(context.Context, pairing.PairQuery) (bool, error) { return true, nil }, lotterynet.WithRegisterer(reg))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nw.Close)
		ps, nets, regs = append(ps, p), append(nets, nw), append(regs, reg)
	}
	connectAll(t, ps)
	// The node with the higher ID asks; the lower one decides (§13.4).
	if a, b := ps[0].key.Public(), ps[1].key.Public(); bytes.Compare(a[:], b[:]) < 0 {
		ps[0], ps[1] = ps[1], ps[0]
		nets[0], nets[1] = nets[1], nets[0]
		regs[0], regs[1] = regs[1], regs[0]
	}
	local := &lottery.Ticket{Epoch: 5, Home: ps[0].key.Public(), Keys: keys.TicketPublic{Sign: keys.TicketID{1}}}
	remote := &lottery.Ticket{Epoch: 5, Home: ps[1].key.Public(), Keys: keys.TicketPublic{Sign: keys.TicketID{2}}}
	pair := lottery.Pair{A: local.ID(), B: remote.ID()}
	if remote.ID()[0] < local.ID()[0] {
		pair = lottery.Pair{A: remote.ID(), B: local.ID()}
	}
	yes, err := nets[0].Confirm(ctx, 5, [32]byte{}, remote.Home, []pairing.Proposal{{Pair: pair, Local: local, Remote: remote}})
	if len(yes) != 1 || yes[0] || err != nil {
		t.Fatalf("Confirm(unknown ticket) = %v, %v; want [false], nil", yes, err)
	}
	// The answering side counts its answer once written, which may be just
	// after the asker read it.
	poll.Until(t, "the answering node counts one no", func() bool {
		return metric(t, regs[1], "parley_lottery_net_confirms_total", `direction="in",result="no"`) == 1
	})
	if got := metric(t, regs[0], "parley_lottery_net_confirms_total", `direction="out",result="no"`); got != 1 {
		t.Fatalf("asked and got no %v times, want 1", got)
	}
	if _, err := nets[0].Confirm(ctx, 5, [32]byte{}, remote.Home, []pairing.Proposal{{Pair: pair, Local: local}}); !errors.Is(err, lotterynet.ErrNoRemote) {
		t.Fatalf("Confirm(no remote) = %v, want ErrNoRemote", err)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := lotterynet.DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate() = %v, want nil", err)
	}
	for name, c := range map[string]lotterynet.Config{
		"skew over ticket phase": {MaxClockSkew: time.Second, TicketPhase: 500 * time.Millisecond},
		"phases over the epoch":  {EpochLength: time.Second, TicketPhase: 900 * time.Millisecond},
		"negative":               {RevealPhase: -1},
		"odd epoch":              {EpochLength: 1500 * time.Microsecond},
		"retain 1":               {RetainEpochs: 1},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%s: Validate() = nil, want an error", name)
		}
	}
}

// spec 07 §13: a node the operator denies is left out of the epochs: its
// gossip is ignored (counted denied_node), so its users are never paired
// with this node's.
func TestDeniedNodeLeftOut(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b := newNode(ctx, t)
	bID := b.key.Public()
	a := newNodeWith(ctx, t, fastConfig, lotterynet.WithDenied(func(n keys.NodeID) bool { return n == bID }))
	nodes := []*node{a, b}
	connectAll(t, peersOf(nodes))
	meshed(t, peersOf(nodes))
	users := []*user{a.newUser(t, 1), b.newUser(t, 2)}
	run(t, nodes)
	poll.Until(t, "A ignores three epochs of B's tickets", func() bool {
		return metric(t, a.reg, "parley_lottery_net_messages_total", `kind="tickets",result="denied_node"`) >= 3
	})
	for _, u := range users {
		if evs := u.paired(t); len(evs) != 0 {
			t.Fatalf("user %d was paired (%+v) across a denied node", u.acct[0], evs)
		}
	}
	lint(t, a.reg)
}
