package node_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/client"
	"github.com/parley-chat/parley/node"
	"github.com/parley-chat/parley/node/admin"
	"github.com/parley-chat/parley/node/api"
	"github.com/parley-chat/parley/node/internal/poll"
	"github.com/parley-chat/parley/node/nodekey"
	"github.com/parley-chat/parley/node/p2p"
	"github.com/parley-chat/parley/node/ratelimit"
	"github.com/parley-chat/parley/protocol/envelope"
	"github.com/parley-chat/parley/protocol/keys"
)

// fedNode is a real node in process, on loopback, that joins a network
// through bootstrap.
type fedNode struct {
	n      *node.Node
	url    string
	opURL  string // the operator listener
	dir    string
	cancel context.CancelFunc
	done   chan error
}

// startFedNode starts a node whose libp2p host listens on 127.0.0.1 and
// bootstraps from the given addresses; it stops when the test ends (or
// earlier through stop).
func startFedNode(t *testing.T, dir string, epoch time.Duration, bootstrap ...string) *fedNode {
	t.Helper()
	return startFedNodeWith(t, dir, epoch, nil, bootstrap...)
}

// startFedNodeWith is startFedNode with edit, if not nil, applied to the
// config last.
func startFedNodeWith(t *testing.T, dir string, epoch time.Duration, edit func(*node.Config), bootstrap ...string) *fedNode {
	t.Helper()
	cfg := node.DefaultConfig()
	cfg.DataDir = dir
	cfg.Network = "parley-fedtest"
	cfg.Client.Listen, cfg.Operator.Listen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.P2P.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.P2P.Bootstrap = bootstrap
	cfg.P2P.RecordInterval = time.Second
	cfg.Pairing.EpochLength = epoch
	cfg.Federation.BackoffBase = 50 * time.Millisecond
	cfg.Federation.BackoffMax = 500 * time.Millisecond
	// The tests' users send as fast as they can, all from 127.0.0.1.
	unlimited := api.Rate{PerSecond: 1e9, Burst: 1 << 30}
	cfg.API.AccountRate, cfg.API.IPRate = unlimited, unlimited
	cfg.Limits.Messages = ratelimit.Limit{Rate: 1e6, Burst: 1 << 20}
	if edit != nil {
		edit(&cfg)
	}
	if _, err := nodekey.Load(filepath.Join(dir, "node.key")); err != nil {
		if _, err := nodekey.Create(filepath.Join(dir, "node.key"), nil); err != nil {
			t.Fatal(err)
		}
		if err := admin.CreateToken(admin.TokenPath(dir), nil); err != nil {
			t.Fatal(err)
		}
	}
	var opts []node.Option
	if os.Getenv("PARLEY_TEST_LOG") != "" {
		// Debugging aid: the nodes' logs on stderr.
		opts = append(opts, node.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	}
	n, err := node.New(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &fedNode{n: n, dir: dir, cancel: cancel, done: make(chan error, 1)}
	go func() { f.done <- n.Run(ctx) }()
	t.Cleanup(func() {
		if t.Failed() && os.Getenv("PARLEY_TEST_LOG") != "" {
			for _, l := range strings.Split(scrape(context.Background(), t, f.opURL+"/metrics"), "\n") {
				if strings.HasPrefix(l, "parley_federation") || strings.HasPrefix(l, "parley_relay_remote") {
					t.Logf("%s: %s", dir, l)
				}
			}
		}
		f.stop(t)
	})
	actx, acancel := context.WithTimeout(ctx, 10*time.Second)
	defer acancel()
	addr, op, err := n.Addrs(actx)
	if err != nil {
		t.Fatal(err)
	}
	f.url, f.opURL = "http://"+addr, "http://"+op
	return f
}

func (f *fedNode) stop(t *testing.T) {
	if f.cancel == nil {
		return
	}
	f.cancel()
	f.cancel = nil
	if err := <-f.done; err != nil {
		t.Errorf("Run = %v", err)
	}
}

// receiveTexts syncs u until it has opened want messages and returns
// their texts in arrival order.
func (u *tuser) receiveTexts(ctx context.Context, t *testing.T, want int) []string {
	t.Helper()
	_, opened := u.receiveOpened(ctx, t, want)
	got := make([]string, len(opened))
	for i, o := range opened {
		got[i] = string(o.Content)
	}
	return got
}

// receiveOpened syncs u, acknowledging each batch, until it has opened at
// least want messages, and returns them, envelope and opened content, in
// arrival order.
func (u *tuser) receiveOpened(ctx context.Context, t *testing.T, want int) ([]*envelope.Envelope, []envelope.Opened) {
	t.Helper()
	var envs []*envelope.Envelope
	var opened []envelope.Opened
	for len(opened) < want {
		res, err := u.c.Sync(ctx, u.pos, 100, 5*time.Second)
		if err != nil {
			t.Fatalf("sync with %d of %d messages: %v", len(opened), want, err)
		}
		for _, ev := range res.Events {
			if ev.Kind != client.EventMessage {
				continue
			}
			env, err := envelope.Parse(ev.Envelope)
			if err != nil {
				t.Fatal(err)
			}
			o, err := u.room.Open(env, u.info.Partner.Home)
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			envs, opened = append(envs, env), append(opened, o)
		}
		u.pos = res.Next
		if err := u.c.Ack(ctx, u.pos); err != nil {
			t.Fatal(err)
		}
	}
	return envs, opened
}

func (u *tuser) sendTexts(ctx context.Context, t *testing.T, prefix string, n int) []string {
	t.Helper()
	var sent []string
	for i := range n {
		text := fmt.Sprintf("%s %d", prefix, i)
		e, err := u.room.Seal(envelope.ContentText, []byte(text), time.Now(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		// Each send its own transaction: a reused txid is a retry.
		u.txns++
		if _, err := u.c.Send(ctx, u.room.ID(), fmt.Sprintf("tx-%d", u.txns), e); err != nil {
			t.Fatalf("send %q: %v", text, err)
		}
		sent = append(sent, text)
	}
	return sent
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Issue 4: users of two nodes pair through the network's lottery and chat
// both ways, in order, each message once; the partner's home node is the
// other node.
func TestTwoNodesPairAndChat(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const epoch = 400 * time.Millisecond
	a := startFedNode(t, t.TempDir(), epoch)
	b := startFedNode(t, t.TempDir(), epoch, a.n.P2PAddrs()...)

	alice, bob := newTUser(ctx, t, a.url, "alice"), newTUser(ctx, t, b.url, "bob")
	alice.pair(ctx, t)
	bob.pair(ctx, t)
	alice.waitPaired(ctx, t)
	bob.waitPaired(ctx, t)
	if alice.room.ID() != bob.room.ID() {
		t.Fatalf("alice is in %v, bob in %v", alice.room.ID(), bob.room.ID())
	}
	if alice.info.Partner.Home != b.n.ID() || bob.info.Partner.Home != a.n.ID() {
		t.Fatalf("partners' homes = %v, %v, want %v, %v", alice.info.Partner.Home, bob.info.Partner.Home, b.n.ID(), a.n.ID())
	}
	sent := alice.sendTexts(ctx, t, "alice to bob", 20)
	if got := bob.receiveTexts(ctx, t, len(sent)); !equalStrings(got, sent) {
		t.Fatalf("bob received %q, want %q", got, sent)
	}
	sent = bob.sendTexts(ctx, t, "bob to alice", 20)
	if got := alice.receiveTexts(ctx, t, len(sent)); !equalStrings(got, sent) {
		t.Fatalf("alice received %q, want %q", got, sent)
	}

	// `parleyd peers` (admin nodes list): A knows B, connected, from its
	// signed record, with the delivery protocol.
	// B's record arrives within its record interval (1 s here).
	poll.Until(t, "A lists B, connected, with the delivery protocol", func() bool {
		var peers admin.PeerList
		adminGet(ctx, t, a, "nodes", &peers)
		for _, p := range peers.Nodes {
			if p.ID == b.n.ID().String() {
				return p.State == "connected" && slices.Contains(p.Protocols, "deliver/1.0.0") && len(p.Addrs) > 0
			}
		}
		return false
	})
}

// adminGet calls GET path on f's admin API with its token and decodes the
// answer into out.
func adminGet(ctx context.Context, t *testing.T, f *fedNode, path string, out any) {
	t.Helper()
	token, err := admin.LoadToken(admin.TokenPath(f.dir))
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.opURL+admin.Prefix+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("admin GET %s = %d", path, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("admin GET %s: %v", path, err)
	}
}

// twoNodesPaired starts nodes A and B (B bootstraps from A) and pairs alice
// on A with bob on B.
func twoNodesPaired(ctx context.Context, t *testing.T) (a, b *fedNode, alice, bob *tuser) {
	t.Helper()
	const epoch = 400 * time.Millisecond
	a = startFedNode(t, t.TempDir(), epoch)
	b = startFedNode(t, t.TempDir(), epoch, a.n.P2PAddrs()...)
	alice, bob = newTUser(ctx, t, a.url, "alice"), newTUser(ctx, t, b.url, "bob")
	pairWith(ctx, t, "x", alice, bob)
	alice.waitPaired(ctx, t)
	bob.waitPaired(ctx, t)
	return a, b, alice, bob
}

// pairWith pairs u and v (on any nodes) through the lottery, steering the
// draw with an interest tag only they share.
func pairWith(ctx context.Context, t *testing.T, interest string, users ...*tuser) {
	t.Helper()
	tags, err := client.InterestTags([]string{interest})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		u.ticket, _ = keys.GenerateTicketKeys(rand.Reader)
		if _, err := u.c.Pair(ctx, client.PairRequest{Ticket: u.ticket.Public(), Interests: tags}); err != nil {
			t.Fatal(err)
		}
	}
}

// exchange has u send n messages to v and v send n to u, and checks that
// each side receives the other's, once each, in order.
func exchange(ctx context.Context, t *testing.T, u, v *tuser, n int) {
	t.Helper()
	sent := u.sendTexts(ctx, t, "from "+u.name, n)
	if got := v.receiveTexts(ctx, t, n); !equalStrings(got, sent) {
		t.Fatalf("%s received %d messages, not %s's %d in order", v.name, len(got), u.name, n)
	}
	sent = v.sendTexts(ctx, t, "from "+v.name, n)
	if got := u.receiveTexts(ctx, t, n); !equalStrings(got, sent) {
		t.Fatalf("%s received %d messages, not %s's %d in order", u.name, len(got), v.name, n)
	}
}

// Issue 4: three nodes on loopback; users on different nodes pair and
// exchange 1,000 messages each way; every message arrives once, in order.
func TestThreeNodesExchange(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const epoch = 400 * time.Millisecond
	a := startFedNode(t, t.TempDir(), epoch)
	b := startFedNode(t, t.TempDir(), epoch, a.n.P2PAddrs()...)
	c := startFedNode(t, t.TempDir(), epoch, a.n.P2PAddrs()...)
	alice, bob := newTUser(ctx, t, a.url, "alice"), newTUser(ctx, t, b.url, "bob")
	carol, dave := newTUser(ctx, t, c.url, "carol"), newTUser(ctx, t, b.url, "dave")
	pairWith(ctx, t, "alice and bob", alice, bob)
	pairWith(ctx, t, "carol and dave", carol, dave)
	for _, u := range []*tuser{alice, bob, carol, dave} {
		u.waitPaired(ctx, t)
	}
	if alice.room.ID() != bob.room.ID() || carol.room.ID() != dave.room.ID() {
		t.Fatal("the lottery did not pair the users who share an interest")
	}
	exchange(ctx, t, alice, bob, 1000)
	exchange(ctx, t, carol, dave, 1000)
}

// Issue 4, store and forward: B stopped; a user of A sends; A restarted
// while B is still down; B started: everything arrives, once, in order.
// Then leaving: the partner on the other node learns the room closed.
func TestStoreAndForwardAcrossRestarts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const epoch = 400 * time.Millisecond // as twoNodesPaired's
	a, b, alice, bob := twoNodesPaired(ctx, t)
	adir, bdir := a.dir, b.dir

	b.stop(t)
	sent := alice.sendTexts(ctx, t, "while bob's node is down", 50)
	a.stop(t)
	a = startFedNode(t, adir, epoch)
	b = startFedNode(t, bdir, epoch, a.n.P2PAddrs()...)
	// Bob's session survives his node's restart; only its address changed.
	bob.c = client.New(b.url)
	bob.c.SetToken(bob.token)
	if got := bob.receiveTexts(ctx, t, len(sent)); !equalStrings(got, sent) {
		t.Fatalf("bob received %q, want %q", got, sent)
	}

	alice.c = client.New(a.url)
	alice.c.SetToken(alice.token)
	if err := alice.c.Leave(ctx, alice.room.ID()); err != nil {
		t.Fatal(err)
	}
	for closed := false; !closed; {
		res, err := bob.c.Sync(ctx, bob.pos, 100, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range res.Events {
			if ev.Kind == client.EventRoomClosed && ev.Room == bob.room.ID() && ev.By == client.ClosedByPartner {
				closed = true
			}
		}
		bob.pos = res.Next
	}
}

// Issue 4, partition: A's gater cuts B off (the operator's deny list, the
// transport-level seam); a user of A sends; the cut heals: everything
// arrives, once, in order.
func TestPartitionHeals(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	a, b, alice, bob := twoNodesPaired(ctx, t)

	bp := p2p.PeerID(b.n.ID())
	a.n.P2P().Deny(bp)
	sent := alice.sendTexts(ctx, t, "during the partition", 30)
	if res, err := bob.c.Sync(ctx, bob.pos, 100, 0); err != nil || len(res.Events) != 0 {
		t.Fatalf("bob's sync during the partition = %d events, %v; want none", len(res.Events), err)
	}
	a.n.P2P().Allow(bp)
	if got := bob.receiveTexts(ctx, t, len(sent)); !equalStrings(got, sent) {
		t.Fatalf("bob received %q, want %q", got, sent)
	}
}

// Both sides of a cross-node room leave at once: each node gets the other's
// close notice for a room it closed already, which changes nothing and
// must not block its delivery queue (spec 12 §4): the two pair again and
// chat.
func TestBothLeaveAcrossNodes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const epoch = 400 * time.Millisecond
	a := startFedNode(t, t.TempDir(), epoch)
	b := startFedNode(t, t.TempDir(), epoch, a.n.P2PAddrs()...)
	alice, bob := newTUser(ctx, t, a.url, "alice"), newTUser(ctx, t, b.url, "bob")
	for round := range 3 {
		pairWith(ctx, t, fmt.Sprintf("round %d", round), alice, bob)
		alice.info, bob.info = nil, nil
		alice.waitPaired(ctx, t)
		bob.waitPaired(ctx, t)
		exchange(ctx, t, alice, bob, 3)
		errs := make(chan error, 2)
		for _, u := range []*tuser{alice, bob} {
			go func() { errs <- u.c.Leave(ctx, u.room.ID()) }()
		}
		for range 2 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
	}
}
