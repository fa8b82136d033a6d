package blobs

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/parley-chat/parley/node/internal/poll"
	"github.com/parley-chat/parley/protocol/blob"
	"github.com/parley-chat/parley/protocol/keys"
)

// TestServePerPeerLimits: the origin serves one node at most
// max_fetch_serves_per_peer fetches at once (busy beyond, counted) and
// paces the chunks it sends that node to fetch_serve_bytes_per_second
// (spec 08 §12). A's clock is fake: each paced chunk waits for the test
// to advance it.
func TestServePerPeerLimits(t *testing.T) {
	cfg := Config{MaxFetchServesPerPeer: 1, FetchServeBytesPerSecond: blob.MaxChunkSize} // one chunk a second
	p := &fetchPair{a: newEnv(t, cfg), b: newEnv(t, Config{}), ha: newHost(t), hb: newHost(t)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p.ha.SetStreamHandler(testFetchProto, func(st network.Stream) { p.a.s.serveFetch(ctx, st, nil) })
	if err := p.hb.Connect(ctx, peer.AddrInfo{ID: p.ha.ID(), Addrs: p.ha.Addrs()}); err != nil {
		t.Fatal(err)
	}
	p.origin, _ = keys.NodeIDFromPeerIDBytes([]byte(p.ha.ID()))
	p.fetcher = NewStreamFetcher(p.hb, testFetchProto, p.b.cfg)
	b := seal(t, 21, 2*blob.MaxChunkSize+1) // 3 chunks
	p.stored(t, b)

	done := make(chan error, 1)
	go func() {
		_, err := p.b.s.Fetch(ctx, p.fetcher, p.origin, b.addr)
		done <- err
	}()
	waits := func() float64 { return testutil.ToFloat64(p.a.s.m.pacedWait) }
	poll.Until(t, "A paces the second chunk", func() bool { return waits() > 0 })

	// B's one serving slot is taken: another fetch from B is busy.
	var other blob.Address
	other[0] = 1
	err := p.fetcher.Fetch(ctx, p.origin, other, 0, func([]byte) error { return nil }, func(uint32, []byte) error { return nil })
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("a second fetch from B while one is served = %v, want ErrBusy", err)
	}
	if got := testutil.ToFloat64(p.a.s.m.peerLimited); got != 1 {
		t.Errorf("peer-limited fetches = %v, want 1", got)
	}
	// Each second of A's clock lets one more chunk go.
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("paced Fetch: %v", err)
			}
			if got := p.b.read(b.addr); string(got) != string(b.cipher) {
				t.Fatal("B holds other bytes than A after a paced fetch")
			}
			return
		case <-time.After(10 * time.Millisecond):
			p.a.clock.Advance(100 * time.Millisecond)
		}
	}
}
