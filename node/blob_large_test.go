package node_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/client"
	"github.com/parley-chat/parley/node"
	"github.com/parley-chat/parley/protocol/blob"
)

// flipByte flips one byte of chunk i of the blob file at path.
func flipByte(t *testing.T, path string, i uint32) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	off := int64(i)*blob.MaxChunkSize + 17
	var b [1]byte
	if _, err := f.ReadAt(b[:], off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x40
	if _, err := f.WriteAt(b[:], off); err != nil {
		t.Fatal(err)
	}
}

// hashWriter hashes what is written to it.
type hashWriter struct {
	h interface {
		Write([]byte) (int, error)
		Sum([]byte) []byte
	}
	n int
}

func (w *hashWriter) Write(p []byte) (int, error) { w.n += len(p); return w.h.Write(p) }

// Issue 7: a 100 MiB file round-trips between users of two nodes: alice
// uploads it to A, bob downloads it through B, which fetches it from A
// (spec 08 §11, §12; spec 09 §9). A byte flipped in any chunk of A's file
// is caught at that chunk: by alice's client reading A directly (the
// first and the last chunk), and by B fetching it (a middle one), which keeps the
// chunks before the bad one and resumes from it once A's file is whole.
func TestBlob100MiBAcrossNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("100 MiB through two nodes; runs in make test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	fetchOnly := func(c *node.Config) { c.Blobs.FetchServeBytesPerSecond = 1e9 }
	a := startFedNodeWith(t, t.TempDir(), time.Second, fetchOnly)
	b := startFedNodeWith(t, t.TempDir(), time.Second, fetchOnly, a.n.P2PAddrs()...)
	alice, bob := newTUser(ctx, t, a.url, "alice"), newTUser(ctx, t, b.url, "bob")

	const size = 100 << 20
	plain := make([]byte, size)
	var seed [32]byte
	mrand.NewChaCha8(seed).Read(plain) //nolint:errcheck // never fails
	want := sha256.Sum256(plain)
	start := time.Now()
	link, err := alice.c.PutBlob(ctx, bytes.NewReader(plain), size, client.PutBlobOptions{})
	if err != nil {
		t.Fatalf("PutBlob: %v", err)
	}
	t.Logf("upload: %v", time.Since(start))
	plain = nil //nolint:ineffassign,wastedassign // let the GC have it

	path := filepath.Join(a.dir, "blobs", link.Address.String()[5:7], link.Address.String())
	last := uint32(size/(blob.MaxChunkSize-blob.Overhead)) - 1 // size is a multiple of the chunk size
	for _, i := range []uint32{0, last} {
		flipByte(t, path, i)
		err := alice.c.GetBlob(ctx, link, io.Discard, client.GetBlobOptions{})
		var ce *blob.ChunkError
		if !errors.As(err, &ce) || ce.Index != i || !errors.Is(err, blob.ErrBadChunk) {
			t.Errorf("GetBlob from A with chunk %d flipped = %v, want a bad chunk %d", i, err, i)
		}
		flipByte(t, path, i)
	}

	// Through B: the fetch stops at the flipped chunk 900, B keeps 0-899.
	const bad = 900
	flipByte(t, path, bad)
	err = bob.c.GetBlob(ctx, link, io.Discard, client.GetBlobOptions{})
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || apiErr.Code != "origin_unavailable" {
		t.Fatalf("bob's GetBlob with chunk %d flipped at A = %v, want 502 origin_unavailable", bad, err)
	}
	if m := scrape(ctx, t, b.opURL+"/metrics"); !strings.Contains(m, fmt.Sprintf("parley_blobs_parts_received_total %d\n", bad)) ||
		!strings.Contains(m, `parley_blobs_fetches_total{result="mismatch"} 1`) {
		t.Errorf("B's metrics after the bad chunk: want %d chunks kept and one mismatch", bad)
	}
	flipByte(t, path, bad)

	start = time.Now()
	got := &hashWriter{h: sha256.New()}
	if err := bob.c.GetBlob(ctx, link, got, client.GetBlobOptions{}); err != nil {
		t.Fatalf("bob's GetBlob through B: %v", err)
	}
	t.Logf("cross-node download (resumed at chunk %d): %v", bad, time.Since(start))
	if got.n != size || !bytes.Equal(got.h.Sum(nil), want[:]) {
		t.Fatalf("bob got %d bytes, not alice's %d", got.n, size)
	}
}
