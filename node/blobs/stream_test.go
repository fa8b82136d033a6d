package blobs

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/parley-chat/parley/protocol/blob"
	"github.com/parley-chat/parley/protocol/keys"
)

// gated wraps a Fetcher: the put of chunk at waits until release is
// closed, after closing reached.
type gated struct {
	f                Fetcher
	at               uint32
	reached, release chan struct{}
}

func newGated(f Fetcher, at uint32) *gated {
	return &gated{f: f, at: at, reached: make(chan struct{}), release: make(chan struct{})}
}

func (g *gated) Fetch(ctx context.Context, origin keys.NodeID, addr blob.Address, from uint32, manifest func([]byte) error, put func(uint32, []byte) error) error {
	return g.f.Fetch(ctx, origin, addr, from, manifest, func(i uint32, c []byte) error {
		if i == g.at {
			close(g.reached)
			select {
			case <-g.release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return put(i, c)
	})
}

// TestStreamWhileFetching: a Stream yields the chunks the fetch has
// verified while the fetch is still running; a second Stream of the
// address joins that fetch; the blob ends up held here (spec 08 §12, 09 §9).
func TestStreamWhileFetching(t *testing.T) {
	p := newFetchPair(t)
	b := seal(t, 20, 4*blob.MaxChunkSize+7) // 5 chunks
	p.stored(t, b)
	ctx := context.Background()
	g := newGated(p.fetcher, 3)

	s1, info, err := p.b.s.Stream(ctx, g, p.origin, b.addr)
	if err != nil || s1 == nil || info.Stored != uint64(len(b.cipher)) || info.Size != uint64(len(b.plain)) {
		t.Fatalf("Stream = %v, %+v, %v", s1, info, err)
	}
	first := make([]byte, 3*blob.MaxChunkSize)
	if _, err := io.ReadFull(s1, first); err != nil || !bytes.Equal(first, b.cipher[:len(first)]) {
		t.Fatalf("the first 3 chunks while the fetch waits at chunk 3: %v", err)
	}
	<-g.reached
	if m, ok, err := p.b.s.FetchingManifest(ctx, b.addr); !ok || err != nil || !bytes.Equal(m, b.manifest) {
		t.Fatalf("FetchingManifest during the fetch = %v, %v", ok, err)
	}

	// Joins the running fetch: its own fetcher is never called.
	r := &recorder{}
	s2, _, err := p.b.s.Stream(ctx, r, p.origin, b.addr)
	if err != nil || s2 == nil {
		t.Fatalf("second Stream = %v, %v", s2, err)
	}
	got2 := make(chan []byte, 1)
	go func() {
		all, err := io.ReadAll(s2)
		if err != nil {
			t.Errorf("second stream: %v", err)
		}
		got2 <- all
	}()
	close(g.release)
	rest, err := io.ReadAll(s1)
	if err != nil || !bytes.Equal(append(first, rest...), b.cipher) {
		t.Fatalf("first stream: %d bytes, %v", len(first)+len(rest), err)
	}
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	if all := <-got2; !bytes.Equal(all, b.cipher) {
		t.Fatalf("second stream: %d bytes, other than the blob's", len(all))
	}
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	if len(r.froms) != 0 {
		t.Fatalf("the second stream fetched on its own: %v", r.froms)
	}
	if info, err := p.b.s.Stat(ctx, b.addr); err != nil || info.Owner != cacheOwner {
		t.Fatalf("Stat after the streams: %+v, %v", info, err)
	}
	if _, ok, err := p.b.s.FetchingManifest(ctx, b.addr); ok || err != nil {
		t.Fatalf("FetchingManifest with no fetch = %v, %v", ok, err)
	}
	// Held now: Stream says so and does not fetch.
	if s, info, err := p.b.s.Stream(ctx, r, p.origin, b.addr); s != nil || err != nil || info.Stored != uint64(len(b.cipher)) || len(r.froms) != 0 {
		t.Fatalf("Stream of a held blob = %v, %+v, %v", s, info, err)
	}
}

// TestStreamFetchFailsMidway: a bad chunk 2 ends the stream with
// ErrMismatch after exactly the two verified chunks, never with io.EOF
// (spec 08 §12: no byte is served before it is verified).
func TestStreamFetchFailsMidway(t *testing.T) {
	p := newFetchPair(t)
	b := seal(t, 21, 4*blob.MaxChunkSize) // 5 chunks
	p.stored(t, b)
	p.tamper = func(i uint32, c []byte) {
		if i == 2 {
			c[3] ^= 1
		}
	}
	s, _, err := p.b.s.Stream(context.Background(), p.fetcher, p.origin, b.addr)
	if err != nil || s == nil {
		t.Fatalf("Stream = %v, %v", s, err)
	}
	got, err := io.ReadAll(s)
	if !errors.Is(err, ErrMismatch) || !bytes.Equal(got, b.cipher[:2*blob.MaxChunkSize]) {
		t.Fatalf("ReadAll = %d bytes, %v; want %d and ErrMismatch", len(got), err, 2*blob.MaxChunkSize)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if done, err := p.b.s.doneParts(cacheID(b.addr)); err != nil || len(done) != 2 {
		t.Fatalf("cached chunks %v (%v), want [0 1]", done, err)
	}
}

// TestStreamResumesAbandonedFetch: when the stream running a fetch goes
// away, a stream that joined it resumes the fetch from the first missing
// chunk and reads the whole blob (spec 08 §12).
func TestStreamResumesAbandonedFetch(t *testing.T) {
	p := newFetchPair(t)
	b := seal(t, 22, 4*blob.MaxChunkSize) // 5 chunks
	p.stored(t, b)
	ctx := context.Background()
	g := newGated(p.fetcher, 2)
	s1, _, err := p.b.s.Stream(ctx, g, p.origin, b.addr)
	if err != nil || s1 == nil {
		t.Fatalf("Stream = %v, %v", s1, err)
	}
	<-g.reached
	r := &recorder{f: p.fetcher}
	s2, _, err := p.b.s.Stream(ctx, r, p.origin, b.addr)
	if err != nil || s2 == nil {
		t.Fatalf("second Stream = %v, %v", s2, err)
	}
	if err := s1.Close(); err != nil { // gives up: its fetch stops
		t.Fatal(err)
	}
	got, err := io.ReadAll(s2)
	if err != nil || !bytes.Equal(got, b.cipher) {
		t.Fatalf("the joined stream: %d bytes, %v", len(got), err)
	}
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	if len(r.froms) != 1 || r.froms[0] != 2 {
		t.Fatalf("the resumed fetch asked from %v, want [2]", r.froms)
	}
	if _, err := p.b.s.Stat(ctx, b.addr); err != nil {
		t.Fatalf("Stat: %v", err)
	}
}
