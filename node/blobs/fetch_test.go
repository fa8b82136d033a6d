package blobs

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"testing"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/parley-chat/parley/protocol/blob"
	"github.com/parley-chat/parley/protocol/keys"
)

const testFetchProto = protocol.ID("/parley/test/blob-fetch/1.0.0")

// fetchPair is an origin node A and a fetching node B, each a blob store
// and a loopback libp2p host, B connected to A.
type fetchPair struct {
	a, b    *env
	ha, hb  host.Host
	origin  keys.NodeID
	fetcher *StreamFetcher
	tamper  func(uint32, []byte) // applied by A to each chunk it serves
}

func newHost(t *testing.T) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

func newFetchPair(t *testing.T) *fetchPair {
	t.Helper()
	p := &fetchPair{a: newEnv(t, Config{}), b: newEnv(t, Config{}), ha: newHost(t), hb: newHost(t)}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	p.ha.SetStreamHandler(testFetchProto, func(st network.Stream) { p.a.s.serveFetch(ctx, st, p.tamper) })
	if err := p.hb.Connect(ctx, peer.AddrInfo{ID: p.ha.ID(), Addrs: p.ha.Addrs()}); err != nil {
		t.Fatal(err)
	}
	var err error
	if p.origin, err = keys.NodeIDFromPeerIDBytes([]byte(p.ha.ID())); err != nil {
		t.Fatal(err)
	}
	p.fetcher = NewStreamFetcher(p.hb, testFetchProto, p.b.cfg)
	return p
}

// stored uploads b at A as alice and completes it.
func (p *fetchPair) stored(t *testing.T, b *sealed) {
	t.Helper()
	u := p.a.upload(alice, b, 0)
	if _, err := p.a.s.Complete(context.Background(), alice, u.ID, b.manifest); err != nil {
		t.Fatal(err)
	}
}

// recorder wraps a Fetcher and records the from of each call.
type recorder struct {
	f     Fetcher
	froms []uint32
}

func (r *recorder) Fetch(ctx context.Context, origin keys.NodeID, addr blob.Address, from uint32, manifest func([]byte) error, put func(uint32, []byte) error) error {
	r.froms = append(r.froms, from)
	if r.f == nil {
		return errors.New("no fetch expected")
	}
	return r.f.Fetch(ctx, origin, addr, from, manifest, put)
}

// TestFetchAcrossNodes: a multi-chunk blob uploaded at A is fetched by B
// over the fetch protocol, cached owned by no account and counted in B's
// quota, and served by B identical to A (spec 08 §12).
func TestFetchAcrossNodes(t *testing.T) {
	p := newFetchPair(t)
	b := seal(t, 7, 3*blob.MaxChunkSize+100) // 4 chunks
	p.stored(t, b)
	ctx := context.Background()

	info, err := p.b.s.Fetch(ctx, p.fetcher, p.origin, b.addr)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if info.Address != b.addr || info.Owner != cacheOwner || info.Stored != uint64(len(b.cipher)) {
		t.Fatalf("Fetch = %+v", info)
	}
	if got := p.b.read(b.addr); string(got) != string(b.cipher) {
		t.Fatal("B serves other bytes than A")
	}
	if m, err := p.b.s.Manifest(ctx, b.addr); err != nil || string(m) != string(b.manifest) {
		t.Fatalf("B's manifest: %v", err)
	}
	if u := p.b.s.Usage(cacheOwner); u != uint64(len(b.cipher)) {
		t.Errorf("cache usage %d, want %d", u, len(b.cipher))
	}
	if ids := p.b.s.Uploads(cacheOwner); len(ids) != 0 {
		t.Errorf("cache uploads left: %v", ids)
	}
	// Held now: a second Fetch does not ask the origin.
	r := &recorder{}
	if _, err := p.b.s.Fetch(ctx, r, p.origin, b.addr); err != nil || len(r.froms) != 0 {
		t.Fatalf("second Fetch: %v, %d calls", err, len(r.froms))
	}
}

// TestFetchLyingOrigin: a flipped byte in chunk 2 is caught at that chunk,
// chunks 0 and 1 stay cached and nothing beyond them; the next fetch
// resumes at chunk 2 (spec 08 §12).
func TestFetchLyingOrigin(t *testing.T) {
	p := newFetchPair(t)
	b := seal(t, 8, 4*blob.MaxChunkSize) // 5 chunks
	p.stored(t, b)
	ctx := context.Background()
	p.tamper = func(i uint32, c []byte) {
		if i == 2 {
			c[10] ^= 1
		}
	}
	_, err := p.b.s.Fetch(ctx, p.fetcher, p.origin, b.addr)
	var ce *blob.ChunkError
	if !errors.Is(err, ErrMismatch) || !errors.As(err, &ce) || ce.Index != 2 {
		t.Fatalf("Fetch from a lying origin: %v, want ErrMismatch at chunk 2", err)
	}
	if _, err := p.b.s.Stat(ctx, b.addr); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Stat after the bad fetch: %v", err)
	}
	done, err := p.b.s.doneParts(cacheID(b.addr))
	if err != nil || len(done) != 2 || done[0] != 0 || done[1] != 1 {
		t.Fatalf("cached chunks %v (%v), want [0 1]", done, err)
	}
	if fi, err := statFile(p.b.s.uploadPath(cacheID(b.addr))); err != nil || fi > 2*blob.MaxChunkSize {
		t.Fatalf("cache file has %d bytes (%v), want at most 2 chunks", fi, err)
	}

	p.tamper = nil
	r := &recorder{f: p.fetcher}
	if _, err := p.b.s.Fetch(ctx, r, p.origin, b.addr); err != nil {
		t.Fatalf("Fetch from the honest origin: %v", err)
	}
	if len(r.froms) != 1 || r.froms[0] != 2 {
		t.Errorf("the retry asked from chunks %v, want [2]", r.froms)
	}
	if got := p.b.read(b.addr); string(got) != string(b.cipher) {
		t.Fatal("B serves other bytes than A")
	}
}

// TestFetchRefused: a blob taken down at the origin is refused and leaves
// nothing at B; one taken down at B is refused without asking; one the
// origin lacks is ErrNotFound (spec 08 §12).
func TestFetchRefused(t *testing.T) {
	p := newFetchPair(t)
	b := seal(t, 9, 2*blob.MaxChunkSize)
	p.stored(t, b)
	ctx := context.Background()
	if err := p.a.s.Takedown(ctx, b.addr); err != nil {
		t.Fatal(err)
	}
	if _, err := p.b.s.Fetch(ctx, p.fetcher, p.origin, b.addr); !errors.Is(err, ErrTakenDown) {
		t.Fatalf("Fetch of a blob taken down at the origin: %v", err)
	}
	if ids := p.b.s.Uploads(cacheOwner); len(ids) != 0 || p.b.s.Usage(cacheOwner) != 0 {
		t.Fatalf("B kept something: %v, %d bytes", ids, p.b.s.Usage(cacheOwner))
	}

	missing := seal(t, 10, 100)
	if _, err := p.b.s.Fetch(ctx, p.fetcher, p.origin, missing.addr); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Fetch of a blob the origin lacks: %v", err)
	}

	local := seal(t, 11, 100)
	p.stored(t, local)
	if err := p.b.s.Takedown(ctx, local.addr); err != nil {
		t.Fatal(err)
	}
	r := &recorder{}
	if _, err := p.b.s.Fetch(ctx, r, p.origin, local.addr); !errors.Is(err, ErrTakenDown) || len(r.froms) != 0 {
		t.Fatalf("Fetch of a blob taken down at B: %v, %d calls", err, len(r.froms))
	}
}

func statFile(path string) (int64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// TestTakedownDropsPartialFetch: taking down an address at B drops the
// chunks a failed fetch left in B's cache (spec 08 §12).
func TestTakedownDropsPartialFetch(t *testing.T) {
	p := newFetchPair(t)
	b := seal(t, 12, 3*blob.MaxChunkSize)
	p.stored(t, b)
	ctx := context.Background()
	p.tamper = func(i uint32, c []byte) {
		if i == 1 {
			c[0] ^= 0x80
		}
	}
	if _, err := p.b.s.Fetch(ctx, p.fetcher, p.origin, b.addr); !errors.Is(err, ErrMismatch) {
		t.Fatalf("Fetch from a lying origin: %v", err)
	}
	if ids := p.b.s.Uploads(cacheOwner); len(ids) != 1 {
		t.Fatalf("cache entries %v, want the partial one", ids)
	}
	if err := p.b.s.Takedown(ctx, b.addr); err != nil {
		t.Fatal(err)
	}
	if ids := p.b.s.Uploads(cacheOwner); len(ids) != 0 || p.b.s.Usage(cacheOwner) != 0 {
		t.Fatalf("after the takedown: entries %v, %d bytes", ids, p.b.s.Usage(cacheOwner))
	}
	if _, err := os.Stat(p.b.s.uploadPath(cacheID(b.addr))); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the partial file is still there: %v", err)
	}
}
