package blobs

import (
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"testing"

	"github.com/parley-chat/parley/protocol/blob"
)

// Part records list their chunks' hashes (spec 08 §11): completion
// compares them with the manifest and does not read the file again. A
// manifest that lists another chunk is caught at that chunk; records an
// older node wrote (a SHA-256 per part) still complete, by reading the
// file.
func TestPartRecordsChunkHashes(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, Config{})
	b := seal(t, 31, 5*blob.MaxChunkSize+9) // 6 chunks
	u := e.upload(alice, b, 2*blob.MaxChunkSize)
	v, err := e.s.db.Get(partKey(u.ID, 1))
	if err != nil || len(v) != 1+2*32 || v[0] != partRecordVersion {
		t.Fatalf("part 1's record = %x, %v, want version 2 and two chunk hashes", v, err)
	}
	if h := blob.ChunkHash(3, b.cipher[3*blob.MaxChunkSize:4*blob.MaxChunkSize]); string(v[33:]) != string(h[:]) {
		t.Fatal("part 1's second hash is not chunk 3's")
	}
	// The records match the manifest: Complete need not read the file.
	m, _ := blob.ParseManifest(b.manifest)
	if ok, err := e.s.partsMatch(u.ID, m); err != nil || !ok {
		t.Fatalf("partsMatch = %v, %v, want true", ok, err)
	}
	// A manifest whose chunk 4 is another one is refused at chunk 4.
	bad := *m
	bad.ChunkHashes = append([][32]byte(nil), m.ChunkHashes...)
	bad.ChunkHashes[4][0] ^= 1
	raw, _ := bad.MarshalBinary()
	_, err = e.s.Complete(ctx, alice, u.ID, raw)
	var ce *blob.ChunkError
	if !errors.Is(err, ErrMismatch) || !errors.As(err, &ce) || ce.Index != 4 {
		t.Fatalf("Complete(manifest with chunk 4 changed) = %v, want a mismatch at chunk 4", err)
	}
	// Older records: a SHA-256 per part.
	bt := e.s.db.NewBatch()
	for n := range u.Parts {
		h := sha256.Sum256(b.part(u, n))
		bt.Set(partKey(u.ID, n), h[:])
	}
	if err := e.s.db.Commit(ctx, bt); err != nil {
		t.Fatal(err)
	}
	if ok, _ := e.s.partsMatch(u.ID, m); ok {
		t.Fatal("partsMatch(older records) = true")
	}
	if _, err := e.s.Complete(ctx, alice, u.ID, b.manifest); err != nil {
		t.Fatalf("Complete with older part records: %v", err)
	}
	if _, err := os.Stat(e.s.blobPath(b.addr)); err != nil {
		t.Fatal(err)
	}
}
