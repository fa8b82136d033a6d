package blobs

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/parley-chat/parley/node/internal/fakeclock"
	"github.com/parley-chat/parley/node/internal/storetest"
	"github.com/parley-chat/parley/node/store"
	"github.com/parley-chat/parley/protocol/blob"
	"github.com/parley-chat/parley/protocol/keys"
)

var (
	alice = keys.AccountID{1}
	bob   = keys.AccountID{2}
	t0    = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
)

// env is a blob store on a memory pebble and a temporary directory.
type env struct {
	t     *testing.T
	disk  *storetest.Disk
	dir   string
	clock *fakeclock.Clock
	cfg   Config
	reg   *prometheus.Registry
	s     *Store
}

func newEnv(t *testing.T, cfg Config) *env {
	t.Helper()
	cfg.Dir = filepath.Join(t.TempDir(), "blobs")
	e := &env{t: t, disk: storetest.New(t, nil), dir: cfg.Dir, clock: fakeclock.New(t0), cfg: cfg}
	e.reopen()
	return e
}

// reopen opens the store again on the same disk and directory: a restart.
func (e *env) reopen() {
	e.t.Helper()
	e.reg = prometheus.NewRegistry()
	s, err := Open(e.cfg, e.disk.Open(), WithClock(e.clock.Now), WithRegisterer(e.reg))
	if err != nil {
		e.t.Fatalf("Open: %v", err)
	}
	e.s = s
}

// sealed is an encrypted blob as a client would upload it.
type sealed struct {
	plain    []byte
	key      blob.Key
	cipher   []byte
	manifest []byte
	addr     blob.Address
}

func seal(t *testing.T, seed uint64, size int) *sealed {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 1))
	p := make([]byte, size)
	for i := range p {
		p[i] = byte(r.Uint32())
	}
	var k blob.Key
	for i := range k {
		k[i] = byte(r.Uint32())
	}
	var c []byte
	m, err := blob.Encrypt(k, bytes.NewReader(p), uint64(size), func(_ uint32, chunk []byte) error {
		c = append(c, chunk...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	mb, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return &sealed{plain: p, key: k, cipher: c, manifest: mb, addr: m.Address()}
}

func (b *sealed) part(u Upload, n uint32) []byte {
	off := int(n) * int(u.PartSize)
	return b.cipher[off:min(off+int(u.PartSize), len(b.cipher))]
}

// upload creates an upload of b and sends every part.
func (e *env) upload(owner keys.AccountID, b *sealed, partSize uint32) Upload {
	e.t.Helper()
	ctx := context.Background()
	u, err := e.s.CreateUpload(ctx, owner, uint64(len(b.plain)), partSize)
	if err != nil {
		e.t.Fatalf("CreateUpload: %v", err)
	}
	for n := range u.Parts {
		if err := e.s.PutPart(ctx, owner, u.ID, n, bytes.NewReader(b.part(u, n))); err != nil {
			e.t.Fatalf("PutPart(%d): %v", n, err)
		}
	}
	return u
}

// files lists every file under the blob directory, relative to it.
func (e *env) files() []string {
	e.t.Helper()
	var out []string
	err := filepath.WalkDir(e.dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(e.dir, p)
			out = append(out, rel)
		}
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// read returns the stored ciphertext of addr.
func (e *env) read(addr blob.Address) []byte {
	e.t.Helper()
	f, _, err := e.s.Open(context.Background(), addr)
	if err != nil {
		e.t.Fatalf("Open(%s): %v", addr, err)
	}
	defer func() { _ = f.Close() }()
	b, err := os.ReadFile(f.Name())
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

// spec 08 §11: a multi-chunk blob uploaded in parts, in any order, comes
// back byte for byte, and its key opens it.
func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, Config{})
	b := seal(t, 1, 3<<20+1234) // 49 chunks
	u, err := e.s.CreateUpload(ctx, alice, uint64(len(b.plain)), 8*blob.MaxChunkSize)
	if err != nil {
		t.Fatal(err)
	}
	if u.Parts != 7 || u.Stored != CipherSize(uint64(len(b.plain))) || uint64(len(b.cipher)) != u.Stored {
		t.Fatalf("CreateUpload = %+v, want 7 parts of %d bytes", u, len(b.cipher))
	}
	for _, n := range []uint32{6, 0, 3, 1, 5, 2, 4} {
		if err := e.s.PutPart(ctx, alice, u.ID, n, bytes.NewReader(b.part(u, n))); err != nil {
			t.Fatalf("PutPart(%d): %v", n, err)
		}
	}
	info, err := e.s.Complete(ctx, alice, u.ID, b.manifest)
	if err != nil {
		t.Fatalf("Complete: %v", err)
	}
	if info.Address != b.addr || info.Owner != alice || info.Size != uint64(len(b.plain)) || !info.Expires.Equal(t0.Add(30*24*time.Hour)) {
		t.Fatalf("Complete = %+v", info)
	}
	if got := e.read(b.addr); !bytes.Equal(got, b.cipher) {
		t.Fatal("stored ciphertext differs from the uploaded one")
	}
	mb, err := e.s.Manifest(ctx, b.addr)
	if err != nil {
		t.Fatal(err)
	}
	m, err := blob.VerifyManifest(b.addr, mb)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	c := b.cipher
	if err := blob.Decrypt(b.key, m, func(i uint32) ([]byte, error) {
		n := min(blob.MaxChunkSize, len(c))
		chunk := c[:n]
		c = c[n:]
		return chunk, nil
	}, &out); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), b.plain) {
		t.Fatal("decrypted blob differs")
	}
	if got := e.files(); !slices.Equal(got, []string{filepath.Join(shard(b.addr), b.addr.String())}) {
		t.Fatalf("files = %v, want only the blob", got)
	}
	if got := e.s.Usage(alice); got != u.Stored {
		t.Fatalf("Usage = %d, want %d", got, u.Stored)
	}
	for name, want := range map[string]float64{
		"parley_blobs_stored_bytes": float64(u.Stored), "parley_blobs_stored": 1, "parley_blobs_uploads_in_progress": 0,
		"parley_blobs_parts_received_total": 7, "parley_blobs_reserved_bytes": 0,
	} {
		if got := gauge(t, e.reg, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	// A restart counts the same.
	e.reopen()
	if got := e.s.Usage(alice); got != u.Stored {
		t.Fatalf("after a restart Usage = %d, want %d", got, u.Stored)
	}
	if got := gauge(t, e.reg, "parley_blobs_stored"); got != 1 {
		t.Fatalf("after a restart parley_blobs_stored = %v", got)
	}
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		var sum float64
		for _, m := range mf.GetMetric() {
			sum += m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
		return sum
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func TestMetricsLint(t *testing.T) {
	e := newEnv(t, Config{})
	problems, err := testutil.GatherAndLint(e.reg)
	if err != nil || len(problems) > 0 {
		t.Fatalf("GatherAndLint = %v, %v", problems, err)
	}
}

// spec 09 §9: an interrupted upload resumes, across a restart, with the
// parts the status does not list; a part sent again is accepted with the
// same bytes and refused with others.
func TestResume(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, Config{})
	b := seal(t, 2, 1<<20)
	u, err := e.s.CreateUpload(ctx, alice, uint64(len(b.plain)), 2*blob.MaxChunkSize)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []uint32{0, 2, 5} {
		if err := e.s.PutPart(ctx, alice, u.ID, n, bytes.NewReader(b.part(u, n))); err != nil {
			t.Fatal(err)
		}
	}
	e.reopen()
	st, err := e.s.Status(ctx, alice, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(st.Done, []uint32{0, 2, 5}) || st.Parts != 8 {
		t.Fatalf("Status = %+v, want parts 0, 2, 5 of 8 done", st)
	}
	if _, err := e.s.Status(ctx, bob, u.ID); !errors.Is(err, ErrNoUpload) {
		t.Fatalf("Status by another account = %v, want ErrNoUpload", err)
	}
	if err := e.s.PutPart(ctx, alice, u.ID, 2, bytes.NewReader(b.part(u, 2))); err != nil {
		t.Fatalf("PutPart of a received part, same bytes = %v, want nil", err)
	}
	other := bytes.Clone(b.part(u, 2))
	other[7] ^= 1
	if err := e.s.PutPart(ctx, alice, u.ID, 2, bytes.NewReader(other)); !errors.Is(err, ErrPartConflict) {
		t.Fatalf("PutPart of a received part, other bytes = %v, want ErrPartConflict", err)
	}
	if _, err := e.s.Complete(ctx, alice, u.ID, b.manifest); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("Complete with parts missing = %v, want ErrIncomplete", err)
	}
	for n := range st.Parts {
		if slices.Contains(st.Done, n) {
			continue
		}
		if err := e.s.PutPart(ctx, alice, u.ID, n, bytes.NewReader(b.part(u, n))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.s.Complete(ctx, alice, u.ID, b.manifest); err != nil {
		t.Fatalf("Complete: %v", err)
	}
	if got := e.read(b.addr); !bytes.Equal(got, b.cipher) {
		t.Fatal("stored ciphertext differs")
	}
	if got := gauge(t, e.reg, "parley_blobs_parts_received_total"); got != 5 {
		t.Fatalf("parts received after the restart = %v, want the 5 missing ones", got)
	}
}

// spec 09 §9: a part of the wrong length, a part out of range, another
// account's upload: refused, and nothing recorded.
func TestBadParts(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, Config{})
	b := seal(t, 3, 200000)
	u, err := e.s.CreateUpload(ctx, alice, uint64(len(b.plain)), blob.MaxChunkSize)
	if err != nil {
		t.Fatal(err)
	}
	full := b.part(u, 0)
	for _, tc := range []struct {
		name  string
		owner keys.AccountID
		id    UploadID
		n     uint32
		body  []byte
		want  error
	}{
		{"short", alice, u.ID, 0, full[:len(full)-1], ErrPartLength},
		{"long", alice, u.ID, 0, append(bytes.Clone(full), 0), ErrPartLength},
		{"empty", alice, u.ID, 0, nil, ErrPartLength},
		{"last part too long", alice, u.ID, 3, full, ErrPartLength},
		{"out of range", alice, u.ID, 4, full, ErrBadPart},
		{"other account", bob, u.ID, 0, full, ErrNoUpload},
		{"unknown upload", alice, UploadID{9}, 0, full, ErrNoUpload},
	} {
		if err := e.s.PutPart(ctx, tc.owner, tc.id, tc.n, bytes.NewReader(tc.body)); !errors.Is(err, tc.want) {
			t.Errorf("%s: PutPart = %v, want %v", tc.name, err, tc.want)
		}
	}
	st, err := e.s.Status(ctx, alice, u.ID)
	if err != nil || len(st.Done) != 0 {
		t.Fatalf("Status = %+v, %v, want no part done", st, err)
	}
	if _, err := e.s.CreateUpload(ctx, alice, 10, blob.MaxChunkSize+1); !errors.Is(err, ErrBadPartSize) {
		t.Errorf("CreateUpload with a bad part size = %v", err)
	}
	if _, err := e.s.CreateUpload(ctx, alice, 10, MaxPartSize+blob.MaxChunkSize); !errors.Is(err, ErrBadPartSize) {
		t.Errorf("CreateUpload with a part too large = %v", err)
	}
}

// walkNoPartial checks that the blob directory holds no file but the
// listed blobs.
func (e *env) wantFiles(addrs ...blob.Address) {
	e.t.Helper()
	var want []string
	for _, a := range addrs {
		want = append(want, filepath.Join(shard(a), a.String()))
	}
	slices.Sort(want)
	if got := e.files(); !slices.Equal(got, want) {
		e.t.Fatalf("files under the blob directory = %v, want %v", got, want)
	}
}

// spec 08 §11: over the size limit and over the quotas, uploads are
// refused at creation with a clear error, and no file is left; an
// aborted upload leaves nothing either.
func TestLimits(t *testing.T) {
	ctx := context.Background()
	cfg := Config{MaxBlobBytes: 1 << 20, AccountQuotaBytes: 3 << 20, NodeQuotaBytes: 4 << 20, MaxUploadsPerAccount: 3}
	e := newEnv(t, cfg)
	if _, err := e.s.CreateUpload(ctx, alice, 1<<20+1, 0); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("CreateUpload over max_blob_bytes = %v, want ErrTooLarge", err)
	}
	b1, b2 := seal(t, 4, 1<<20), seal(t, 5, 1<<20)
	e.upload(alice, b1, 0)
	u2 := e.upload(alice, b2, 0)
	if _, err := e.s.Complete(ctx, alice, u2.ID, b2.manifest); err != nil {
		t.Fatal(err)
	}
	// Alice has one blob of 1 MiB + tags and one upload of as much: a
	// third does not fit in 3 MiB.
	if _, err := e.s.CreateUpload(ctx, alice, 1<<20, 0); !errors.Is(err, ErrAccountQuota) {
		t.Fatalf("CreateUpload over the account quota = %v, want ErrAccountQuota", err)
	}
	if _, err := e.s.CreateUpload(ctx, bob, 1<<20, 0); err != nil {
		t.Fatalf("CreateUpload by bob: %v", err)
	}
	if _, err := e.s.CreateUpload(ctx, bob, 1<<20, 0); !errors.Is(err, ErrNodeFull) {
		t.Fatalf("CreateUpload over the node quota = %v, want ErrNodeFull", err)
	}
	if got := gauge(t, e.reg, "parley_blobs_quota_refusals_total"); got != 3 {
		t.Fatalf("quota refusals = %v, want 3", got)
	}
	// Abort alice's open upload: its file goes, its reservation too.
	ids := e.s.Uploads(alice)
	if len(ids) != 1 {
		t.Fatalf("alice's uploads = %v", ids)
	}
	if err := e.s.Abort(ctx, alice, ids[0]); err != nil {
		t.Fatal(err)
	}
	if got, want := e.s.Usage(alice), CipherSize(1<<20); got != want {
		t.Fatalf("Usage after abort = %d, want %d", got, want)
	}
	for _, id := range e.s.Uploads(bob) {
		if err := e.s.Abort(ctx, bob, id); err != nil {
			t.Fatal(err)
		}
	}
	e.wantFiles(b2.addr)
}

// spec 08 §7: the node refuses a manifest its ciphertext does not match,
// naming the first bad chunk, and one of another size.
func TestMismatch(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, Config{})
	b := seal(t, 6, 5*65536+10)
	other := seal(t, 7, 5*65536+11)
	tampered := bytes.Clone(b.cipher)
	tampered[3*blob.MaxChunkSize+100] ^= 0x80
	b2 := &sealed{plain: b.plain, cipher: tampered}
	u := e.upload(alice, b2, 0)
	_, err := e.s.Complete(ctx, alice, u.ID, b.manifest)
	var ce *blob.ChunkError
	if !errors.Is(err, ErrMismatch) || !errors.As(err, &ce) || ce.Index != 3 {
		t.Fatalf("Complete with a flipped byte in chunk 3 = %v, want ErrMismatch at chunk 3", err)
	}
	if _, err := e.s.Complete(ctx, alice, u.ID, other.manifest); !errors.Is(err, ErrBadManifest) {
		t.Fatalf("Complete with a manifest of another size = %v, want ErrBadManifest", err)
	}
	if _, err := e.s.Complete(ctx, alice, u.ID, []byte{1, 2, 3}); !errors.Is(err, ErrBadManifest) {
		t.Fatalf("Complete with a malformed manifest = %v, want ErrBadManifest", err)
	}
	if _, err := e.s.Stat(ctx, b.addr); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Stat = %v, want ErrNotFound", err)
	}
	if err := e.s.Abort(ctx, alice, u.ID); err != nil {
		t.Fatal(err)
	}
	e.wantFiles()
}

// spec 08 §11: blobs expire after the retention period, incomplete uploads
// after their TTL, and GC deletes both with their files.
func TestGC(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, Config{Retention: 48 * time.Hour, UploadTTL: time.Hour})
	b1, b2 := seal(t, 8, 70000), seal(t, 9, 1000)
	u1 := e.upload(alice, b1, 0)
	if _, err := e.s.Complete(ctx, alice, u1.ID, b1.manifest); err != nil {
		t.Fatal(err)
	}
	e.upload(bob, b2, 0)
	e.clock.Advance(time.Hour)
	if nb, nu, err := e.s.GC(ctx); err != nil || nb != 0 || nu != 1 {
		t.Fatalf("GC after 1h = %d, %d, %v, want the upload only", nb, nu, err)
	}
	e.wantFiles(b1.addr)
	e.clock.Advance(47 * time.Hour)
	if _, err := e.s.Stat(ctx, b1.addr); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Stat of an expired blob = %v, want ErrNotFound", err)
	}
	if nb, nu, err := e.s.GC(ctx); err != nil || nb != 1 || nu != 0 {
		t.Fatalf("GC after 48h = %d, %d, %v, want the blob", nb, nu, err)
	}
	e.wantFiles()
	if e.s.Usage(alice) != 0 || e.s.Usage(bob) != 0 {
		t.Fatalf("usage after GC = %d, %d", e.s.Usage(alice), e.s.Usage(bob))
	}
	if got := gauge(t, e.reg, "parley_blobs_gc_deleted_total"); got != 2 {
		t.Fatalf("gc deletions = %v, want 2", got)
	}
}

// spec 08 §8: a takedown deletes the blob and refuses its address from then
// on, even uploaded again.
func TestTakedown(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, Config{})
	b := seal(t, 10, 100000)
	u := e.upload(alice, b, 0)
	if _, err := e.s.Complete(ctx, alice, u.ID, b.manifest); err != nil {
		t.Fatal(err)
	}
	if err := e.s.Takedown(ctx, b.addr); err != nil {
		t.Fatal(err)
	}
	if err := e.s.Takedown(ctx, b.addr); err != nil {
		t.Fatalf("a second Takedown = %v, want nil", err)
	}
	if _, _, err := e.s.Open(ctx, b.addr); !errors.Is(err, ErrTakenDown) {
		t.Fatalf("Open after takedown = %v, want ErrTakenDown", err)
	}
	if _, err := e.s.Manifest(ctx, b.addr); !errors.Is(err, ErrTakenDown) {
		t.Fatalf("Manifest after takedown = %v, want ErrTakenDown", err)
	}
	e.wantFiles()
	u = e.upload(bob, b, 0)
	if _, err := e.s.Complete(ctx, bob, u.ID, b.manifest); !errors.Is(err, ErrTakenDown) {
		t.Fatalf("Complete of a taken-down address = %v, want ErrTakenDown", err)
	}
	e.wantFiles()
	if len(e.s.Uploads(bob)) != 0 || e.s.Usage(bob) != 0 || e.s.Usage(alice) != 0 {
		t.Fatal("the refused upload is still counted")
	}
	e.reopen()
	if down, err := e.s.TakenDown(b.addr); err != nil || !down {
		t.Fatalf("TakenDown after a restart = %v, %v", down, err)
	}
}

// spec 09 §9: only the owner deletes a blob; a second upload of the same
// ciphertext completes to the stored blob.
func TestDeleteAndDuplicate(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, Config{})
	b := seal(t, 11, 5000)
	u := e.upload(alice, b, 0)
	if _, err := e.s.Complete(ctx, alice, u.ID, b.manifest); err != nil {
		t.Fatal(err)
	}
	u = e.upload(bob, b, 0)
	info, err := e.s.Complete(ctx, bob, u.ID, b.manifest)
	if err != nil || info.Owner != alice {
		t.Fatalf("Complete of a stored blob = %+v, %v, want alice's blob", info, err)
	}
	if e.s.Usage(bob) != 0 {
		t.Fatalf("bob's usage = %d, want 0", e.s.Usage(bob))
	}
	if _, err := e.s.Complete(ctx, alice, u.ID, b.manifest); !errors.Is(err, ErrNoUpload) {
		t.Fatalf("Complete again = %v, want ErrNoUpload", err)
	}
	if err := e.s.Delete(ctx, bob, b.addr); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Delete by another account = %v, want ErrNotFound", err)
	}
	if err := e.s.Delete(ctx, alice, b.addr); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.s.Open(ctx, b.addr); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Open after Delete = %v", err)
	}
	e.wantFiles()
	if e.s.Usage(alice) != 0 {
		t.Fatalf("alice's usage = %d", e.s.Usage(alice))
	}
}

// Open removes what a crash leaves: stray files, records without files.
func TestReopenCleansUp(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, Config{})
	b := seal(t, 12, 3000)
	u := e.upload(alice, b, 0)
	if _, err := e.s.Complete(ctx, alice, u.ID, b.manifest); err != nil {
		t.Fatal(err)
	}
	b2 := seal(t, 13, 3000)
	u2 := e.upload(alice, b2, 0)
	stray := []string{
		filepath.Join(e.dir, "uploads", UploadID{7}.String()+".part"),
		filepath.Join(e.dir, "ab", "blob_abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyza"),
		filepath.Join(e.dir, "uploads", "junk"),
	}
	for _, p := range stray {
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The upload's file is lost: its parts must be sent again.
	if err := os.Remove(e.s.uploadPath(u2.ID)); err != nil {
		t.Fatal(err)
	}
	e.reopen()
	e.wantFiles(b.addr)
	st, err := e.s.Status(ctx, alice, u2.ID)
	if err != nil || len(st.Done) != 0 {
		t.Fatalf("Status of an upload whose file is lost = %+v, %v, want no part done", st, err)
	}
	// The blob's file is lost: its record goes.
	if err := os.Remove(e.s.blobPath(b.addr)); err != nil {
		t.Fatal(err)
	}
	e.reopen()
	if _, err := e.s.Stat(ctx, b.addr); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Stat of a blob whose file is lost = %v", err)
	}
	if got, want := e.s.Usage(alice), CipherSize(3000); got != want {
		t.Fatalf("Usage = %d, want the upload's %d", got, want)
	}
}

// DESIGN §4: after uploads, nothing on the node's disk (blob files and the
// pebble store, on a real directory) holds plaintext or a key.
func TestNoPlaintextOnDisk(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	db, err := store.Open(store.Config{Dir: filepath.Join(root, "store")})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(Config{Dir: filepath.Join(root, "blobs")}, db)
	if err != nil {
		t.Fatal(err)
	}
	var all []*sealed
	for i := range 3 {
		b := seal(t, uint64(100+i), 200000+i)
		all = append(all, b)
		u, err := s.CreateUpload(ctx, alice, uint64(len(b.plain)), blob.MaxChunkSize)
		if err != nil {
			t.Fatal(err)
		}
		for n := range u.Parts {
			off := int(n) * int(u.PartSize)
			if err := s.PutPart(ctx, alice, u.ID, n, bytes.NewReader(b.cipher[off:min(off+int(u.PartSize), len(b.cipher))])); err != nil {
				t.Fatal(err)
			}
		}
		if i < 2 { // the last one stays an upload in progress
			if _, err := s.Complete(ctx, alice, u.ID, b.manifest); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	scanned := 0
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		scanned++
		for _, b := range all {
			if bytes.Contains(data, b.key[:]) {
				t.Errorf("%s holds a blob key", p)
			}
			for off := 0; off+32 <= len(b.plain); off += 4096 {
				if bytes.Contains(data, b.plain[off:off+32]) {
					t.Errorf("%s holds plaintext (offset %d)", p, off)
					break
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if scanned < 4 {
		t.Fatalf("scanned %d files, want the blobs and the store", scanned)
	}
}

func TestParseUploadID(t *testing.T) {
	id := UploadID{0xab, 0x01, 0xff}
	if got, err := ParseUploadID(id.String()); err != nil || got != id {
		t.Fatalf("ParseUploadID(%s) = %v, %v", id, got, err)
	}
	for _, s := range []string{"", "ab", strings.ToUpper(id.String()), id.String() + "0", id.String()[1:] + "g", " " + id.String()[1:]} {
		if _, err := ParseUploadID(s); !errors.Is(err, ErrBadUploadID) {
			t.Errorf("ParseUploadID(%q) = %v, want ErrBadUploadID", s, err)
		}
	}
}

func FuzzParseUploadID(f *testing.F) {
	f.Add("000102030405060708090a0b0c0d0e0f")
	f.Add("000102030405060708090A0B0C0D0E0F")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseUploadID(s)
		if err != nil {
			if !errors.Is(err, ErrBadUploadID) {
				t.Fatalf("ParseUploadID(%q) = %v, not ErrBadUploadID", s, err)
			}
			return
		}
		if id.String() != s {
			t.Fatalf("ParseUploadID(%q) accepted a non-canonical form", s)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	if err := (Config{Dir: "/x"}).Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	err := Config{MaxBlobBytes: blob.MaxSize + 1, Retention: -1, MaxUploadsPerAccount: -1, GCInterval: time.Millisecond, AccountQuotaBytes: 10, NodeQuotaBytes: 5}.Validate()
	for _, want := range []string{"dir is required", "max_blob_bytes", "retention", "max_uploads_per_account", "gc_interval", "account_quota_bytes 10 is above"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v, want it to mention %q", err, want)
		}
	}
}
