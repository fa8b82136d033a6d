package p2p

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/parley-chat/parley/node/internal/poll"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/noderecord"
	"github.com/parley-chat/parley/protocol/wire"
)

func nodeKey(tb testing.TB, name string) keys.NodeKey {
	tb.Helper()
	seed := sha256.Sum256([]byte("p2p test " + name))
	k, err := keys.NodeKeyFromSeed(seed[:])
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func testConfig(network string, boot ...*Host) Config {
	cfg := DefaultConfig()
	cfg.NetworkID = network
	cfg.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.RecordInterval = time.Second
	cfg.ConnLow, cfg.ConnHigh = 8, 16
	for _, b := range boot {
		cfg.Bootstrap = append(cfg.Bootstrap, addrOf(b))
	}
	return cfg
}

// addrOf returns b's first listen address with /p2p/<id>.
func addrOf(b *Host) string {
	return fmt.Sprintf("%s/p2p/%s", b.Raw().Addrs()[0], b.ID())
}

type testHost struct {
	*Host
	reg *prometheus.Registry
}

func startHost(t *testing.T, name string, cfg Config) testHost {
	t.Helper()
	reg := prometheus.NewRegistry()
	h, err := New(cfg, nodeKey(t, name), WithRegisterer(reg), WithScoreInspectPeriod(50*time.Millisecond),
		WithSoftware("parleyd/test"), WithPolicy(noderecord.Policy{Registration: noderecord.RegistrationInvite, MessagesPerMinute: 60}))
	if err != nil {
		t.Fatalf("New(%s): %v", name, err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("Close(%s): %v", name, err)
		}
	})
	if err := h.SetStreamHandler("echo", "1", func(s network.Stream) { _ = s.Reset() }); err != nil {
		t.Fatal(err)
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatalf("Start(%s): %v", name, err)
	}
	return testHost{h, reg}
}

func connected(a, b *Host) bool {
	return a.Raw().Network().Connectedness(b.ID()) == network.Connected
}

func knows(a, b *Host) bool {
	_, ok := a.Record(b.ID())
	return ok
}

func gossipCount(h *Host, topic, result string) float64 {
	return testutil.ToFloat64(h.m.gossip.WithLabelValues(topic, result))
}

// spec 11-federation §2: every protocol ID and topic carries the network ID.
func TestNames(t *testing.T) {
	h := startHost(t, "a", testConfig("net-a"))
	if got, want := h.ProtocolID("deliver", "1"), "/parley/net-a/deliver/1"; string(got) != want {
		t.Errorf("ProtocolID(deliver, 1) = %q, want %q", got, want)
	}
	if got, want := h.Topic("lottery"), "parley/net-a/lottery"; got != want {
		t.Errorf("Topic(lottery) = %q, want %q", got, want)
	}
	if got := h.NetworkID(); got != "net-a" {
		t.Errorf("NetworkID() = %q, want net-a", got)
	}
	if _, err := h.Join("nodes", nil); !errors.Is(err, ErrJoined) {
		t.Errorf("Join(nodes) again = %v, want ErrJoined", err)
	}
	if _, err := h.Join("Bad/Name", nil); !errors.Is(err, ErrName) {
		t.Errorf("Join(Bad/Name) = %v, want ErrName", err)
	}
	if err := h.SetStreamHandler("x y", "1", nil); !errors.Is(err, ErrName) {
		t.Errorf("SetStreamHandler(x y) = %v, want ErrName", err)
	}
	if id, err := NodeID(h.ID()); err != nil || id != nodeKey(t, "a").Public() {
		t.Errorf("NodeID(host ID) = %v, %v, want the node key's ID", id, err)
	}
	if err := h.Start(context.Background()); !errors.Is(err, ErrStarted) {
		t.Errorf("Start twice = %v, want ErrStarted", err)
	}
}

// spec 11-federation §3.4: B and C know only A, and come to know and
// connect to each other through node records (and the DHT).
func TestDiscoveryBeyondBootstrap(t *testing.T) {
	a := startHost(t, "a", testConfig("disc"))
	b := startHost(t, "b", testConfig("disc", a.Host))
	c := startHost(t, "c", testConfig("disc", a.Host))
	poll.Until(t, "B and C know and connect to each other", func() bool {
		return knows(b.Host, c.Host) && knows(c.Host, b.Host) && connected(b.Host, c.Host)
	})
	rec, _ := b.Record(c.ID())
	if rec.Software != "parleyd/test" || rec.Policy.Registration != noderecord.RegistrationInvite ||
		len(rec.Protocols) != 1 || rec.Protocols[0] != "echo/1" || len(rec.Addrs) == 0 {
		t.Errorf("B's record of C = %+v, want software, policy, protocols and addresses", rec)
	}
	poll.Until(t, "A knows B and C", func() bool { return knows(a.Host, b.Host) && knows(a.Host, c.Host) })
	var sawC bool
	for _, p := range b.Peers() {
		if p.ID == c.ID() {
			sawC = true
			if p.State != StateConnected || p.Software != "parleyd/test" || p.Seq == 0 || p.LastSeen.IsZero() {
				t.Errorf("B.Peers() entry for C = %+v, want connected with its record", p)
			}
		}
	}
	if !sawC {
		t.Errorf("B.Peers() = %v, want C in it", b.Peers())
	}
	if n := testutil.ToFloat64(a.m.publishes.WithLabelValues("ok")); n < 1 {
		t.Errorf("record publishes ok = %v, want >= 1", n)
	}
	if problems, err := testutil.GatherAndLint(a.reg, "parley_p2p_peers_connected", "parley_p2p_known_nodes",
		"parley_p2p_gossip_messages_total", "parley_p2p_gater_refusals_total"); err != nil || len(problems) > 0 {
		t.Errorf("metrics lint: %v %v", problems, err)
	}
	if n, err := testutil.GatherAndCount(a.reg, "libp2p_rcmgr_connections"); err != nil || n == 0 {
		t.Errorf("libp2p resource manager metrics on the registerer: %d series, %v", n, err)
	}
}

// spec 11-federation §2: two networks never exchange records, even when
// their nodes are connected.
func TestNetworksDoNotMix(t *testing.T) {
	a := startHost(t, "a", testConfig("alpha"))
	b := startHost(t, "b", testConfig("alpha", a.Host))
	y := startHost(t, "y", testConfig("beta", a.Host))
	poll.Until(t, "A and B know each other and Y published twice while connected to A", func() bool {
		return knows(a.Host, b.Host) && knows(b.Host, a.Host) && connected(y.Host, a.Host) &&
			testutil.ToFloat64(y.m.publishes.WithLabelValues("ok")) >= 3
	})
	if knows(a.Host, y.Host) || knows(b.Host, y.Host) || knows(y.Host, a.Host) || knows(y.Host, b.Host) {
		t.Errorf("records crossed networks: A knows Y %v, B knows Y %v, Y knows A %v, Y knows B %v",
			knows(a.Host, y.Host), knows(b.Host, y.Host), knows(y.Host, a.Host), knows(y.Host, b.Host))
	}
	for _, p := range a.records.Peers() {
		if p == y.ID() {
			t.Errorf("Y is a peer of alpha's records topic")
		}
	}
}

// spec 11-federation §1.3: a denied peer cannot connect, in either
// direction; Deny at runtime drops it; Allow lets it back.
func TestDeny(t *testing.T) {
	bKey := nodeKey(t, "b")
	cfgA := testConfig("deny")
	cfgA.Deny = []string{PeerID(bKey.Public()).String()}
	a := startHost(t, "a", cfgA)
	b := startHost(t, "b", testConfig("deny", a.Host))
	poll.Until(t, "A refuses B", func() bool {
		return testutil.ToFloat64(a.m.refusals.WithLabelValues("inbound")) >= 1
	})
	if connected(a.Host, b.Host) {
		t.Fatal("denied B is connected to A")
	}
	// B may finish its side of a handshake before A refuses; it does not last.
	poll.Until(t, "B sees no connection to A", func() bool { return !connected(b.Host, a.Host) })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.Raw().Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Raw().Addrs()}); err == nil {
		t.Fatal("A dialed denied B")
	}
	if testutil.ToFloat64(a.m.refusals.WithLabelValues("outbound")) < 1 {
		t.Error("outbound refusal not counted")
	}
	states := map[peer.ID]State{}
	for _, p := range a.Peers() {
		states[p.ID] = p.State
	}
	if states[b.ID()] != StateDenied {
		t.Errorf("A.Peers() state of B = %q, want denied", states[b.ID()])
	}

	c := startHost(t, "c", testConfig("deny", a.Host))
	poll.Until(t, "C connects to A", func() bool { return connected(a.Host, c.Host) })
	a.Deny(c.ID())
	poll.Until(t, "A drops C", func() bool { return !connected(a.Host, c.Host) && !connected(c.Host, a.Host) })
	// The dialer may finish its side of the handshake before A refuses,
	// so the refusal shows on A's side.
	refused := testutil.ToFloat64(a.m.refusals.WithLabelValues("inbound"))
	_ = c.Raw().Connect(ctx, peer.AddrInfo{ID: a.ID(), Addrs: a.Raw().Addrs()})
	poll.Until(t, "A refuses C's new connection", func() bool {
		return testutil.ToFloat64(a.m.refusals.WithLabelValues("inbound")) > refused && !connected(a.Host, c.Host)
	})
	a.Allow(c.ID())
	if err := c.Raw().Connect(ctx, peer.AddrInfo{ID: a.ID(), Addrs: a.Raw().Addrs()}); err != nil {
		t.Fatalf("C cannot connect after Allow: %v", err)
	}
}

// rawPeer is a hostile node: a plain libp2p host with gossipsub and no
// validators, publishing whatever a test wants on the records topic.
type rawPeer struct {
	h     host.Host
	topic *pubsub.Topic
}

func newRawPeer(t *testing.T, key keys.NodeKey, topic string, opts ...pubsub.Option) *rawPeer {
	t.Helper()
	priv, err := PrivKey(key)
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(libp2p.Identity(priv), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); _ = h.Close() })
	ps, err := pubsub.NewGossipSub(ctx, h, append([]pubsub.Option{pubsub.WithMessageIdFn(msgID), pubsub.WithFloodPublish(true)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	tp, err := ps.Join(topic)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tp.Relay(); err != nil {
		t.Fatal(err)
	}
	return &rawPeer{h: h, topic: tp}
}

func (r *rawPeer) connect(t *testing.T, to *Host) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.h.Connect(ctx, peer.AddrInfo{ID: to.ID(), Addrs: to.Raw().Addrs()}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "the raw peer sees the host in the topic", func() bool {
		for _, p := range r.topic.ListPeers() {
			if p == to.ID() {
				return true
			}
		}
		return false
	})
}

func (r *rawPeer) publish(t *testing.T, data []byte) {
	t.Helper()
	if err := r.topic.Publish(context.Background(), data); err != nil {
		t.Fatal(err)
	}
}

// spec 11-federation §4.2, §4.3: invalid records are rejected, counted, and
// cost their sender score; below the graylist threshold, the connection.
func TestInvalidRecordsCostScore(t *testing.T) {
	a := startHost(t, "a", testConfig("score"))
	evil := newRawPeer(t, nodeKey(t, "evil"), a.Topic(RecordsTopic))
	evil.connect(t, a.Host)
	evil.publish(t, []byte("not a record 0"))
	poll.Until(t, "A rejects the garbage and lowers the sender's score", func() bool {
		s, ok := a.Score(evil.h.ID())
		return gossipCount(a.Host, RecordsTopic, resultReject) >= 1 && ok && s < 0
	})
	for i := 1; i <= 5; i++ {
		evil.publish(t, []byte(fmt.Sprintf("not a record %d", i)))
	}
	poll.Until(t, "A disconnects the sender", func() bool {
		return testutil.ToFloat64(a.m.scoreCuts) >= 1 && a.Raw().Network().Connectedness(evil.h.ID()) != network.Connected
	})
}

func signedRecord(t *testing.T, k keys.NodeKey, network string, seq uint64, issued time.Time) []byte {
	t.Helper()
	r := &noderecord.Record{Network: network, Seq: seq, Issued: issued.Unix(), Software: fmt.Sprintf("evil/%d", seq)}
	if err := noderecord.Sign(k, r); err != nil {
		t.Fatal(err)
	}
	b, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// spec 11-federation §3.3: a record older than the one known is ignored
// (replay); records of another network, of another node or from the future
// are rejected.
func TestRecordValidation(t *testing.T) {
	a := startHost(t, "a", testConfig("replay"))
	k := nodeKey(t, "m")
	m := newRawPeer(t, k, a.Topic(RecordsTopic))
	m.connect(t, a.Host)
	now := time.Now()

	m.publish(t, signedRecord(t, k, "replay", 10, now))
	poll.Until(t, "A takes seq 10", func() bool {
		r, ok := a.Record(m.h.ID())
		return ok && r.Seq == 10
	})
	ignored := gossipCount(a.Host, RecordsTopic, resultIgnore)
	m.publish(t, signedRecord(t, k, "replay", 5, now))
	poll.Until(t, "A ignores seq 5", func() bool { return gossipCount(a.Host, RecordsTopic, resultIgnore) > ignored })
	if r, _ := a.Record(m.h.ID()); r.Seq != 10 {
		t.Fatalf("after a replay of seq 5, A's record has seq %d, want 10", r.Seq)
	}

	m.publish(t, signedRecord(t, k, "replay", 20, now))
	poll.Until(t, "A takes a newer seq", func() bool {
		r, ok := a.Record(m.h.ID())
		return ok && r.Seq == 20
	})

	// Invalid records; three of them also take m below the graylist
	// threshold, so they come last.
	rejected := gossipCount(a.Host, RecordsTopic, resultReject)
	bad := [][]byte{
		signedRecord(t, k, "other", 11, now),                           // wrong network
		signedRecord(t, nodeKey(t, "someone"), "replay", 12, now),      // not the publisher's record
		signedRecord(t, k, "replay", 13, now.Add(2*wire.MaxClockSkew)), // from the future
	}
	for _, b := range bad {
		m.publish(t, b)
	}
	poll.Until(t, "A rejects all three", func() bool {
		return gossipCount(a.Host, RecordsTopic, resultReject) >= rejected+float64(len(bad))
	})
	if r, _ := a.Record(m.h.ID()); r.Seq != 20 {
		t.Fatalf("after invalid records, A's record has seq %d, want 20", r.Seq)
	}
}

// spec 11-federation §1.4: Validate reports every problem at once.
func TestConfigValidate(t *testing.T) {
	good := DefaultConfig()
	good.NetworkID = "main"
	if err := good.Validate(); err != nil {
		t.Fatalf("Validate(defaults) = %v", err)
	}
	if !good.DHT || len(good.ListenAddrs) != 2 || good.RecordInterval != 5*time.Minute {
		t.Errorf("DefaultConfig() = %+v, want DHT on, two listen addresses, 5m records", good)
	}
	bad := good
	bad.NetworkID = "Main!"
	bad.ListenAddrs = []string{"not-an-addr"}
	bad.Bootstrap = []string{"/ip4/127.0.0.1/tcp/1"}
	bad.Deny = []string{"nope"}
	bad.ConnLow, bad.ConnHigh = 100, 50
	bad.GossipThreshold = 1
	bad.RecordInterval = time.Millisecond
	err := bad.Validate()
	if err == nil {
		t.Fatal("Validate(bad) = nil")
	}
	for _, want := range []string{"network_id", "listen_addrs", "bootstrap", "deny", "conn_low", "gossip_threshold", "record_interval"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate(bad) = %v, want it to mention %s", err, want)
		}
	}
	if _, err := New(bad, nodeKey(t, "x")); !errors.Is(err, ErrConfig) {
		t.Errorf("New(bad) = %v, want ErrConfig", err)
	}
}
