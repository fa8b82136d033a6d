package blobs

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/parley-chat/parley/node/internal/poll"
	"github.com/parley-chat/parley/protocol/blob"
	"github.com/parley-chat/parley/protocol/keys"
)

const testTakedownProto = protocol.ID("/parley/test/blob-takedown/1.0.0")

// keyedHost is a loopback libp2p host whose identity is a node key.
func keyedHost(t *testing.T) (host.Host, keys.NodeKey) {
	t.Helper()
	k, err := keys.GenerateNodeKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := crypto.UnmarshalEd25519PrivateKey(ed25519.NewKeyFromSeed(k.Seed()))
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(libp2p.Identity(priv), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h, k
}

// takedownPair is a fetchPair whose hosts have node keys, with a Notifier
// on each side; B's takedown handler is registered by the test.
type takedownPair struct {
	*fetchPair
	na, nb *Notifier
	ka     keys.NodeKey
}

func newTakedownPair(t *testing.T) *takedownPair {
	t.Helper()
	ha, ka := keyedHost(t)
	hb, kb := keyedHost(t)
	p := &fetchPair{a: newEnv(t, Config{}), b: newEnv(t, Config{}), ha: ha, hb: hb}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ha.SetStreamHandler(testFetchProto, func(st network.Stream) { p.a.s.serveFetch(ctx, st, nil) })
	if err := hb.Connect(ctx, peer.AddrInfo{ID: ha.ID(), Addrs: ha.Addrs()}); err != nil {
		t.Fatal(err)
	}
	p.origin = ka.Public()
	p.fetcher = NewStreamFetcher(hb, testFetchProto, p.b.cfg)
	return &takedownPair{fetchPair: p, na: NewNotifier(p.a.s, ha, testTakedownProto, ka), nb: NewNotifier(p.b.s, hb, testTakedownProto, kb), ka: ka}
}

// TestTakedownNotice: A records that B fetched the blob; taking it down at
// A queues a notice to B; while B does not take notices the notice stays
// queued and is retried after its backoff; once B does, B verifies it came
// from the blob's origin, drops its cached copy, refuses the address from
// then on, and counts it (spec 08 §13).
func TestTakedownNotice(t *testing.T) {
	p := newTakedownPair(t)
	ctx := context.Background()
	b := seal(t, 11, 2*blob.MaxChunkSize+5)
	p.stored(t, b)
	if _, err := p.b.s.Fetch(ctx, p.fetcher, p.origin, b.addr); err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if got, ok, err := p.b.s.Origin(b.addr); err != nil || !ok || got != p.origin {
		t.Fatalf("B's Origin(addr) = %v, %v, %v, want A", got, ok, err)
	}
	fetchers, err := p.a.s.Fetchers(b.addr)
	if bID, _ := keys.NodeIDFromPeerIDBytes([]byte(p.hb.ID())); err != nil || len(fetchers) != 1 || fetchers[0] != bID {
		t.Fatalf("A's Fetchers = %v, %v, want B", fetchers, err)
	}

	n, err := p.a.s.TakedownNotify(ctx, b.addr)
	if err != nil || n != 1 {
		t.Fatalf("TakedownNotify = %d, %v, want 1 notice", n, err)
	}
	// B is not listening: the attempt fails and the notice stays queued.
	p.na.pass(ctx)
	if q, _ := p.a.s.PendingNotices(10); q != 1 {
		t.Fatalf("pending notices after a failed attempt = %d, want 1", q)
	}
	if got := testutil.ToFloat64(p.a.s.m.noticesSent.WithLabelValues("failed")); got != 1 {
		t.Errorf("failed attempts = %v, want 1", got)
	}
	p.hb.SetStreamHandler(testTakedownProto, p.nb.Handler(ctx))
	p.na.pass(ctx) // not due yet: backoff
	if q, _ := p.a.s.PendingNotices(10); q != 1 {
		t.Fatalf("pending notices before the backoff ends = %d, want 1", q)
	}
	p.a.clock.Advance(p.a.cfg.withDefaults().TakedownRetry)
	p.na.pass(ctx)
	if q, _ := p.a.s.PendingNotices(10); q != 0 {
		t.Fatalf("pending notices after delivery = %d, want 0", q)
	}
	poll.Until(t, "B counts the dropped copy", func() bool {
		return testutil.ToFloat64(p.b.s.m.noticesReceived.WithLabelValues(noticeDropped)) == 1
	})
	if _, err := p.b.s.Stat(ctx, b.addr); !errors.Is(err, ErrTakenDown) {
		t.Fatalf("B's Stat after the notice = %v, want ErrTakenDown", err)
	}
	if _, ok, _ := p.b.s.Origin(b.addr); ok {
		t.Error("B still records the origin of a dropped blob")
	}
	if u := p.b.s.Usage(cacheOwner); u != 0 {
		t.Errorf("B's cache usage %d after the drop, want 0", u)
	}
}

// TestTakedownNoticeRefused: a notice signed by a node other than the one
// the blob was fetched from, or with a bad signature, is refused and the
// copy kept (spec 08 §13).
func TestTakedownNoticeRefused(t *testing.T) {
	p := newTakedownPair(t)
	ctx := context.Background()
	b := seal(t, 12, 100)
	p.stored(t, b)
	if _, err := p.b.s.Fetch(ctx, p.fetcher, p.origin, b.addr); err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	hc, kc := keyedHost(t)
	for name, n := range map[string]blob.TakedownNotice{
		"another node's":  blob.SignTakedown(kc, b.addr, 1),
		"forged origin's": func() blob.TakedownNotice { n := blob.SignTakedown(kc, b.addr, 1); n.Origin = p.origin; return n }(),
	} {
		result, status, err := p.nb.apply(ctx, hc.ID(), &n)
		if err != nil || status != blob.TakedownRefused || result != noticeRefused {
			t.Errorf("apply(%s notice) = %s, %v, %v, want refused", name, result, status, err)
		}
	}
	// A genuine notice relayed by another node is refused too: it must
	// come from the origin itself.
	genuine := blob.SignTakedown(p.ka, b.addr, 1)
	if result, status, err := p.nb.apply(ctx, hc.ID(), &genuine); err != nil || status != blob.TakedownRefused {
		t.Errorf("apply(origin's notice relayed by C) = %s, %v, %v, want refused", result, status, err)
	}
	if _, err := p.b.s.Stat(ctx, b.addr); err != nil {
		t.Fatalf("B's copy after refused notices: %v", err)
	}
}
