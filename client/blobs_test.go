package client_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/client"
	"github.com/parley-chat/parley/protocol/blob"
)

func plaintext(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 2))
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(r.Uint32())
	}
	return p
}

// spec 08 §6, §7; spec 09 §9: a multi-chunk file goes up in parts and
// comes back to another account through its link; the node holds only
// ciphertext.
func TestBlobRoundTrip(t *testing.T) {
	ctx := context.Background()
	node, srv := startNode(t)
	alice := newUser(t, srv.URL, "alice", client.Config{})
	bob := newUser(t, srv.URL, "bob", client.Config{})
	p := plaintext(1, 3<<20+7)
	var progress []uint64
	link, err := alice.PutBlob(ctx, bytes.NewReader(p), uint64(len(p)), client.PutBlobOptions{
		PartSize: 8 * blob.MaxChunkSize,
		Progress: func(done, _ uint64) { progress = append(progress, done) },
	})
	if err != nil {
		t.Fatalf("PutBlob: %v", err)
	}
	if len(progress) != 7 || progress[6] != uint64(len(p))+49*16 {
		t.Fatalf("progress = %v, want 7 parts up to the ciphertext size", progress)
	}
	parsed, err := blob.ParseLink(link.String())
	if err != nil || parsed != link {
		t.Fatalf("ParseLink(link) = %v, %v", parsed, err)
	}
	var out bytes.Buffer
	if err := bob.GetBlob(ctx, parsed, &out, client.GetBlobOptions{}); err != nil {
		t.Fatalf("GetBlob: %v", err)
	}
	if !bytes.Equal(out.Bytes(), p) {
		t.Fatal("GetBlob returned other bytes")
	}
	stored := node.StoredBlob(link.Address)
	if bytes.Contains(stored, p[1000:1032]) || bytes.Contains(stored, link.Key[:]) {
		t.Fatal("the node holds plaintext or the key")
	}
	// Another key does not open it.
	wrong := link
	wrong.Key[0] ^= 1
	if err := bob.GetBlob(ctx, wrong, &out, client.GetBlobOptions{}); !errors.Is(err, blob.ErrWrongKey) {
		t.Fatalf("GetBlob with another key = %v, want ErrWrongKey", err)
	}
	if err := alice.Client().DeleteBlob(ctx, link.Address); err != nil {
		t.Fatal(err)
	}
	if err := bob.GetBlob(ctx, link, &out, client.GetBlobOptions{}); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("GetBlob after delete = %v, want ErrNotFound", err)
	}
}

// spec 09 §9: an interrupted upload resumes from the node's status and
// does not send the parts the node has.
func TestBlobResume(t *testing.T) {
	ctx := context.Background()
	node, srv := startNode(t)
	alice := newUser(t, srv.URL, "alice", client.Config{})
	if err := alice.Login(ctx); err != nil {
		t.Fatal(err)
	}
	c := alice.Client()
	p := plaintext(2, 1<<20+5) // 17 chunks, 9 parts of 2
	node.FailPartsAfter(4)
	var state client.UploadState
	_, err := c.PutBlob(ctx, bytes.NewReader(p), uint64(len(p)), client.PutBlobOptions{
		PartSize: 2 * blob.MaxChunkSize,
		OnStart:  func(s client.UploadState) { state = s },
	})
	if !errors.Is(err, client.ErrUnavailable) || state.UploadID == "" {
		t.Fatalf("PutBlob on a failing node = %v (state %+v), want ErrUnavailable and a state", err, state)
	}
	if got := node.PartsReceived(); got != 4 {
		t.Fatalf("parts received before the failure = %d, want 4", got)
	}
	st, err := c.UploadStatus(ctx, state.UploadID)
	if err != nil || len(st.Done) != 4 || st.Parts != 9 {
		t.Fatalf("UploadStatus = %+v, %v", st, err)
	}
	node.FailPartsAfter(-1)
	link, err := c.PutBlob(ctx, bytes.NewReader(p), uint64(len(p)), client.PutBlobOptions{Resume: &state})
	if err != nil {
		t.Fatalf("PutBlob resuming: %v", err)
	}
	if got := node.PartsReceived(); got != 9 {
		t.Fatalf("parts received in all = %d, want each of the 9 once", got)
	}
	var out bytes.Buffer
	if err := c.GetBlob(ctx, link, &out, client.GetBlobOptions{}); err != nil || !bytes.Equal(out.Bytes(), p) {
		t.Fatalf("GetBlob after resuming = %v (equal %v)", err, bytes.Equal(out.Bytes(), p))
	}
}

// A Session resumes by itself after a lost answer.
func TestSessionBlobRetries(t *testing.T) {
	ctx := context.Background()
	node, srv := startNode(t)
	ft := &faultyTransport{base: http.DefaultTransport}
	alice := newUser(t, srv.URL, "alice", client.Config{}, client.WithHTTPClient(&http.Client{Transport: ft}), client.WithSleep(func(context.Context, time.Duration) error { return nil }))
	lost := false
	ft.setFail(func(r *http.Request) string {
		if r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/parts/2") && !lost {
			lost = true
			return "after"
		}
		return ""
	})
	p := plaintext(3, 6*blob.MaxChunkSize)
	link, err := alice.PutBlob(ctx, bytes.NewReader(p), uint64(len(p)), client.PutBlobOptions{PartSize: blob.MaxChunkSize})
	if err != nil {
		t.Fatalf("PutBlob with a lost answer: %v", err)
	}
	if got := node.PartsReceived(); got != 7 {
		t.Fatalf("parts received = %d, want each of the 7 once", got)
	}
	var out bytes.Buffer
	if err := alice.GetBlob(ctx, link, &out, client.GetBlobOptions{}); err != nil || !bytes.Equal(out.Bytes(), p) {
		t.Fatalf("GetBlob = %v", err)
	}
}

// spec 08 §7: a flipped ciphertext byte is caught at its chunk, and only
// the chunks before it are written.
func TestBlobTamperedChunk(t *testing.T) {
	ctx := context.Background()
	node, srv := startNode(t)
	alice := newUser(t, srv.URL, "alice", client.Config{})
	p := plaintext(4, 5*65536+100)
	link, err := alice.PutBlob(ctx, bytes.NewReader(p), uint64(len(p)), client.PutBlobOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, chunk := range []int{0, 2, 5} {
		node.TamperBlob(link.Address, chunk*blob.MaxChunkSize+17)
		var out bytes.Buffer
		err := alice.GetBlob(ctx, link, &out, client.GetBlobOptions{})
		var ce *blob.ChunkError
		if !errors.Is(err, blob.ErrBadChunk) || !errors.As(err, &ce) || int(ce.Index) != chunk {
			t.Fatalf("GetBlob with chunk %d flipped = %v, want ErrBadChunk at %d", chunk, err, chunk)
		}
		if !bytes.Equal(out.Bytes(), p[:chunk*65536]) {
			t.Fatalf("chunk %d flipped: %d bytes written, want the %d before it", chunk, out.Len(), chunk*65536)
		}
		node.TamperBlob(link.Address, chunk*blob.MaxChunkSize+17) // flip back
	}
}

// spec 09 §9: over the node's size limit, 413 too_large before any part.
func TestBlobTooLarge(t *testing.T) {
	ctx := context.Background()
	node, srv := startNode(t)
	alice := newUser(t, srv.URL, "alice", client.Config{})
	node.SetMaxBlobSize(1000)
	_, err := alice.PutBlob(ctx, bytes.NewReader(make([]byte, 1001)), 1001, client.PutBlobOptions{})
	if !errors.Is(err, client.ErrTooLarge) || node.PartsReceived() != 0 {
		t.Fatalf("PutBlob over the limit = %v (%d parts), want ErrTooLarge and none", err, node.PartsReceived())
	}
}
