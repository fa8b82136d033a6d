package node_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/parley-chat/parley/client"
)

// TestBlobFetchAcrossNodes: alice uploads a multi-chunk file to node A
// with the SDK; bob, on node B, downloads it with GetBlob from the link:
// B fetches it from A over the blob fetch protocol, verifies and caches
// it, and serves it to bob, who decrypts the same bytes (spec 08 §12,
// spec 09 §9).
func TestBlobFetchAcrossNodes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a, _, alice, bob := twoNodesPaired(ctx, t)

	plain := make([]byte, 5*65536+123)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range plain {
		plain[i] = byte(r.Uint32())
	}
	link, err := alice.c.PutBlob(ctx, bytes.NewReader(plain), uint64(len(plain)), client.PutBlobOptions{})
	if err != nil {
		t.Fatalf("PutBlob: %v", err)
	}
	if link.Origin != a.n.ID() {
		t.Fatalf("link origin %v, want A %v", link.Origin, a.n.ID())
	}
	var got bytes.Buffer
	if err := bob.c.GetBlob(ctx, link, &got, client.GetBlobOptions{}); err != nil {
		t.Fatalf("GetBlob on B: %v", err)
	}
	if !bytes.Equal(got.Bytes(), plain) {
		t.Fatalf("bob got %d bytes, not alice's %d", got.Len(), len(plain))
	}
	// Cached at B now: a second download is served from B's store.
	got.Reset()
	if err := bob.c.GetBlob(ctx, link, &got, client.GetBlobOptions{}); err != nil || !bytes.Equal(got.Bytes(), plain) {
		t.Fatalf("second GetBlob on B: %v", err)
	}
}
