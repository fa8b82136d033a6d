// Package blobs is a node's blob store (spec 08-blobs §11, spec
// 09-client-api §9): the ciphertext of the files its accounts upload, as
// files under <data_dir>/blobs, with their metadata in the node's pebble
// store. The node never has a blob's key: it stores, verifies and serves
// ciphertext only.
//
// # Uploads
//
// An account creates an upload, declaring the blob's plaintext size and a
// part size (a multiple of blob.MaxChunkSize, at most
// wire.MaxBlobPartChunks chunks); the node reserves the blob's ciphertext
// size against the account's and the node's quotas at once, so an upload
// that would not fit is refused before any byte is sent. Parts are then
// PUT in any order, each exactly the length its position implies, written
// at its offset into one temporary file, synced, and only then recorded
// as received (with its chunks' hashes). A part already received is not written
// again: the same bytes are accepted (the PUT is idempotent), other bytes
// are refused. The upload's status lists the received parts, so a client
// that was interrupted resumes with the missing ones only. Completing the
// upload hands the node the manifest: the node checks the chunk hashes
// recorded with the parts against it (reading the file again only to name
// a bad chunk), computes the address,
// renames the file to its final name, syncs the directory, and records
// the blob. Aborting, or letting the upload expire (Config.UploadTTL),
// deletes the file and the records and releases the reservation.
//
// # Fetching from other nodes
//
// Fetch gets a blob this node lacks from its origin node through a
// Fetcher (StreamFetcher: spec 08 §12) and caches it as an upload of no
// account, one chunk per part, each chunk verified before it is written;
// ServeFetch answers other nodes' fetches. fetch.go describes both.
//
// # Files
//
//	<dir>/uploads/<upload ID>.part   an upload's ciphertext so far (sparse)
//	<dir>/<c1c2>/<address>           a blob's ciphertext: its chunks, in order
//
// where c1c2 are the two characters of the address text after "blob_",
// so no directory holds more than 1/1024 of the blobs. Open removes what
// a crash can leave behind: temporary files without an upload record,
// blob files without a blob record, records whose file is gone.
//
// # Key layout and encoding
//
// Under the prefixes node/store assigns; integers big-endian, times Unix
// nanoseconds:
//
//	blob/<Address 32>             -> u8 1, [32] owner, u64 size, u64 stored, i64 created, i64 expires
//	bman/<Address 32>             -> the manifest's encoding (spec 08 §4)
//	bup/<upload ID 16>            -> u8 1, [32] owner, u64 size, u32 part size, i64 created, i64 expires
//	bpart/<upload ID 16><u32 n>   -> u8 2, [32] × k: the hashes of part n's k chunks (blob.ChunkHash);
//	                                 an older node's record is the [32] SHA-256 of the part
//	bdown/<Address 32>            -> u8 1, i64 time of the takedown
//
// # Expiry and takedown
//
// A blob is kept for Config.Retention after its upload completes; Run
// deletes expired blobs and uploads every Config.GCInterval. Takedown
// deletes a blob and remembers its address: an upload that completes to a
// taken-down address is refused and discarded, and the address is never
// served again.
package blobs

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/node/ratelimit"
	"github.com/parley-chat/parley/node/store"
	"github.com/parley-chat/parley/protocol/blob"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/wire"
)

// Part sizes, in ciphertext bytes.
const (
	// MaxPartSize is the largest part: wire.MaxBlobPartChunks chunks.
	MaxPartSize = wire.MaxBlobPartChunks * blob.MaxChunkSize
	// DefaultPartSize is the part size of an upload that names none:
	// 64 chunks, a little over 4 MiB.
	DefaultPartSize = 64 * blob.MaxChunkSize
)

// Errors. Match them with errors.Is; the node's API adapter maps each to a
// status and code (spec 09 §9).
var (
	// ErrTooLarge: the declared size is above Config.MaxBlobBytes.
	ErrTooLarge = errors.New("blobs: blob over the node's size limit")
	// ErrAccountQuota: the upload does not fit in the account's quota.
	ErrAccountQuota = errors.New("blobs: account quota exceeded")
	// ErrNodeFull: the upload does not fit in the node's quota.
	ErrNodeFull = errors.New("blobs: node storage quota exceeded")
	// ErrTooManyUploads: the account has Config.MaxUploadsPerAccount
	// uploads open.
	ErrTooManyUploads = errors.New("blobs: too many uploads in progress")
	// ErrBadPartSize: the part size is not a positive multiple of
	// blob.MaxChunkSize up to MaxPartSize.
	ErrBadPartSize = errors.New("blobs: bad part size")
	// ErrBadUploadID: an upload ID's text is malformed.
	ErrBadUploadID = errors.New("blobs: malformed upload ID")
	// ErrNoUpload: no such upload of this account (it may never have
	// existed, belong to another account, be completed, aborted or
	// expired: the cases are one error).
	ErrNoUpload = errors.New("blobs: no such upload")
	// ErrBadPart: the part number is beyond the upload's last part.
	ErrBadPart = errors.New("blobs: part number out of range")
	// ErrPartLength: the part's body is not exactly the part's length.
	ErrPartLength = errors.New("blobs: part has the wrong length")
	// ErrPartConflict: the part was received before with other bytes.
	ErrPartConflict = errors.New("blobs: part already received with other content")
	// ErrBusy: another request is writing this part, or completing or
	// aborting the upload; retry.
	ErrBusy = errors.New("blobs: upload busy")
	// ErrIncomplete: completing an upload with parts missing.
	ErrIncomplete = errors.New("blobs: upload incomplete")
	// ErrBadManifest: the manifest does not parse, or declares another
	// size than the upload.
	ErrBadManifest = errors.New("blobs: bad manifest")
	// ErrMismatch: the uploaded ciphertext does not match the manifest; it
	// wraps the *blob.ChunkError that names the first bad chunk.
	ErrMismatch = errors.New("blobs: ciphertext does not match the manifest")
	// ErrNotFound: no such blob (or it expired), or, for Delete, none of
	// this account's.
	ErrNotFound = errors.New("blobs: no such blob")
	// ErrTakenDown: the address was taken down (here, or at the origin
	// of a fetch).
	ErrTakenDown = errors.New("blobs: blob taken down")
	// ErrOrigin: a fetch failed for want of the origin node: unreachable,
	// too slow, or breaking the fetch protocol (spec 08 §12). A bad
	// manifest or chunk from it is ErrMismatch instead.
	ErrOrigin = errors.New("blobs: fetch from the origin node failed")
)

// Fetcher fetches a blob this node does not hold from its origin node
// (DESIGN §3.6, spec 08 §12); StreamFetcher implements it over libp2p and
// Store.Fetch calls it. Fetch asks origin for the manifest of addr,
// checks it with blob.VerifyManifest and hands it to manifest, then reads
// the chunks from chunk `from` on and hands each to put as it arrives, in
// order; put checks it with blob.VerifyChunk before keeping it (so each
// chunk is hashed once) and its error stops the fetch. An error from
// manifest or put is returned (wrapped).
type Fetcher interface {
	Fetch(ctx context.Context, origin keys.NodeID, addr blob.Address, from uint32, manifest func([]byte) error, put func(index uint32, chunk []byte) error) error
}

// Upload is the state of an upload as its owner sees it.
type Upload struct {
	ID       UploadID
	Size     uint64 // declared plaintext bytes
	Stored   uint64 // ciphertext bytes: the sum of the parts' lengths
	PartSize uint32 // ciphertext bytes per part; the last part may be shorter
	Parts    uint32 // number of parts
	Done     []uint32
	Created  time.Time
	Expires  time.Time
}

// Info describes a stored blob.
type Info struct {
	Address blob.Address
	Owner   keys.AccountID
	Size    uint64 // plaintext bytes
	Stored  uint64 // ciphertext bytes served by Open
	Created time.Time
	Expires time.Time
}

// Option is a test seam or wiring choice for Open.
type Option func(*options)

type options struct {
	now    func() time.Time
	logger *slog.Logger
	reg    prometheus.Registerer
	rand   io.Reader
}

// WithClock replaces time.Now (expiry times and the GC's idea of now).
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithRegisterer registers the store's metrics (parley_blobs_*) with r.
func WithRegisterer(r prometheus.Registerer) Option { return func(o *options) { o.reg = r } }

// WithRand replaces crypto/rand for upload IDs.
func WithRand(r io.Reader) Option { return func(o *options) { o.rand = r } }

// upload is an open upload's in-memory state.
type upload struct {
	rec      uploadRecord
	inflight map[uint32]bool // parts being written
	closing  bool            // being completed, aborted or collected
}

// Store is a node's blob store. Its methods are safe for concurrent use.
type Store struct {
	cfg  Config
	db   *store.Store
	now  func() time.Time
	log  *slog.Logger
	rand io.Reader
	m    *metrics

	// serving holds a token per fetch served to another node.
	serving chan struct{}
	// peerBytes paces the bytes served to each node (by peer ID).
	peerBytes *ratelimit.Limiter
	// noticeKick wakes the Notifier when a takedown queued notices.
	noticeKick chan struct{}

	// blobMu serialises the changes to blob records (complete, delete,
	// takedown, expiry), so each blob's bytes are counted once.
	blobMu sync.Mutex

	mu       sync.Mutex // guards the fields below
	uploads  map[UploadID]*upload
	fetching map[blob.Address]*fetchState // fetches in progress
	perPeer  map[peer.ID]int              // fetches being served, per node
	used     map[keys.AccountID]uint64    // stored + reserved ciphertext bytes
	total    uint64
	reserved uint64
	stored   uint64
	nBlobs   int
}

// Open opens the blob store in cfg.Dir (creating it if needed) on the
// node's store db, loads the usage of every account and cleans up what a
// crash left behind.
func Open(cfg Config, db *store.Store, opts ...Option) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	o := options{now: time.Now, logger: slog.New(slog.DiscardHandler), rand: rand.Reader}
	for _, opt := range opts {
		opt(&o)
	}
	s := &Store{
		cfg: cfg, db: db, now: o.now, log: o.logger.With("subsystem", "blobs"), rand: o.rand, m: newMetrics(),
		uploads: make(map[UploadID]*upload), used: make(map[keys.AccountID]uint64),
		fetching: make(map[blob.Address]*fetchState), serving: make(chan struct{}, cfg.MaxFetchServes),
		perPeer: make(map[peer.ID]int), noticeKick: make(chan struct{}, 1),
	}
	rate := float64(cfg.FetchServeBytesPerSecond)
	lopts := []ratelimit.Option{ratelimit.WithClock(o.now), ratelimit.WithName("blob_fetch_peer_bytes")}
	if o.reg != nil {
		lopts = append(lopts, ratelimit.WithRegisterer(o.reg))
	}
	var err error
	if s.peerBytes, err = ratelimit.New(ratelimit.Limit{Rate: rate, Burst: int(max(cfg.FetchServeBytesPerSecond, blob.MaxChunkSize))}, maxPacedPeers, lopts...); err != nil {
		return nil, fmt.Errorf("blobs: %w", err)
	}
	if o.reg != nil {
		if err := s.m.register(o.reg); err != nil {
			return nil, fmt.Errorf("blobs: registering metrics: %w", err)
		}
	}
	if err := os.MkdirAll(s.uploadDir(), 0o700); err != nil {
		return nil, fmt.Errorf("blobs: %w", err)
	}
	if err := s.load(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Store) uploadDir() string { return filepath.Join(s.cfg.Dir, "uploads") }

func (s *Store) uploadPath(id UploadID) string {
	return filepath.Join(s.uploadDir(), id.String()+".part")
}

func shard(a blob.Address) string { return a.String()[len("blob_") : len("blob_")+2] }

func (s *Store) blobPath(a blob.Address) string {
	return filepath.Join(s.cfg.Dir, shard(a), a.String())
}

// load reads every record into memory and reconciles files and records.
func (s *Store) load() error {
	ctx := context.Background()
	blobs := make(map[blob.Address]blobRecord)
	var bad []error
	err := s.db.Scan([]byte(store.PrefixBlob), nil, 0, func(k, v []byte) bool {
		var a blob.Address
		r, err := decodeBlob(v)
		if len(k) != len(store.PrefixBlob)+len(a) || err != nil {
			bad = append(bad, fmt.Errorf("blobs: corrupt record %x: %w", k, err))
			return false
		}
		copy(a[:], k[len(store.PrefixBlob):])
		blobs[a] = r
		return true
	})
	if err = errors.Join(append(bad, err)...); err != nil {
		return err
	}
	err = s.db.Scan([]byte(store.PrefixBlobUpload), nil, 0, func(k, v []byte) bool {
		var id UploadID
		r, err := decodeUpload(v)
		if len(k) != len(store.PrefixBlobUpload)+len(id) || err != nil {
			bad = append(bad, fmt.Errorf("blobs: corrupt record %x: %w", k, err))
			return false
		}
		copy(id[:], k[len(store.PrefixBlobUpload):])
		s.uploads[id] = &upload{rec: r, inflight: make(map[uint32]bool)}
		return true
	})
	if err = errors.Join(append(bad, err)...); err != nil {
		return err
	}

	// Uploads: a temporary file without a record goes; a record whose
	// file is gone loses its parts (the client sends them again).
	b := s.db.NewBatch()
	entries, err := os.ReadDir(s.uploadDir())
	if err != nil {
		b.Close()
		return fmt.Errorf("blobs: %w", err)
	}
	files := make(map[UploadID]bool)
	for _, e := range entries {
		id, err := ParseUploadID(strings.TrimSuffix(e.Name(), ".part"))
		if err == nil && strings.HasSuffix(e.Name(), ".part") && s.uploads[id] != nil {
			files[id] = true
			continue
		}
		s.log.Warn("removing a leftover upload file", "file", e.Name())
		_ = os.RemoveAll(filepath.Join(s.uploadDir(), e.Name()))
	}
	for id := range s.uploads {
		if !files[id] {
			b.DeleteRange(partsPrefix(id), store.PrefixEnd(partsPrefix(id)))
		}
	}
	// Blobs: a file without a record goes, and so does a record without
	// a file.
	entries, err = os.ReadDir(s.cfg.Dir)
	if err != nil {
		b.Close()
		return fmt.Errorf("blobs: %w", err)
	}
	present := make(map[blob.Address]bool)
	for _, d := range entries {
		if d.Name() == "uploads" || !d.IsDir() {
			continue
		}
		sub, err := os.ReadDir(filepath.Join(s.cfg.Dir, d.Name()))
		if err != nil {
			b.Close()
			return fmt.Errorf("blobs: %w", err)
		}
		for _, e := range sub {
			a, err := blob.ParseAddress(e.Name())
			if _, ok := blobs[a]; err == nil && ok && shard(a) == d.Name() {
				present[a] = true
				continue
			}
			s.log.Warn("removing a blob file without a record", "file", e.Name())
			_ = os.RemoveAll(filepath.Join(s.cfg.Dir, d.Name(), e.Name()))
		}
	}
	for a, r := range blobs {
		if !present[a] {
			s.log.Warn("dropping the record of a blob whose file is gone", "address", a.String())
			b.Delete(blobKey(a))
			b.Delete(manifestKey(a))
			continue
		}
		s.used[r.owner] += r.stored
		s.total += r.stored
		s.stored += r.stored
		s.nBlobs++
	}
	for _, u := range s.uploads {
		c := u.rec.stored()
		s.used[u.rec.owner] += c
		s.total += c
		s.reserved += c
	}
	s.updateGauges()
	if b.Len() == 0 {
		b.Close()
		return nil
	}
	return s.db.Commit(ctx, b)
}

// updateGauges sets the gauges from the counts; s.mu is held (or s is not
// shared yet).
func (s *Store) updateGauges() {
	s.m.storedBytes.Set(float64(s.stored))
	s.m.blobs.Set(float64(s.nBlobs))
	s.m.uploads.Set(float64(len(s.uploads)))
	s.m.reservedBytes.Set(float64(s.reserved))
}

// Usage returns the ciphertext bytes an account has stored and reserved.
func (s *Store) Usage(owner keys.AccountID) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.used[owner]
}

// CreateUpload starts an upload of a blob of size plaintext bytes in parts
// of partSize ciphertext bytes (0: DefaultPartSize), reserving its
// ciphertext size against the quotas. Errors: ErrTooLarge,
// ErrBadPartSize, ErrTooManyUploads, ErrAccountQuota, ErrNodeFull.
func (s *Store) CreateUpload(ctx context.Context, owner keys.AccountID, size uint64, partSize uint32) (Upload, error) {
	if size > s.cfg.MaxBlobBytes {
		s.m.quotaRefused.WithLabelValues(refusedSize).Inc()
		return Upload{}, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, size, s.cfg.MaxBlobBytes)
	}
	if partSize == 0 {
		partSize = DefaultPartSize
	}
	if partSize%blob.MaxChunkSize != 0 || partSize > MaxPartSize {
		return Upload{}, fmt.Errorf("%w: %d is not a multiple of %d up to %d", ErrBadPartSize, partSize, blob.MaxChunkSize, MaxPartSize)
	}
	var id UploadID
	if _, err := io.ReadFull(s.rand, id[:]); err != nil {
		return Upload{}, fmt.Errorf("blobs: reading randomness: %w", err)
	}
	now := s.now()
	rec := uploadRecord{owner: owner, size: size, partSize: partSize, created: now, expires: now.Add(s.cfg.UploadTTL)}
	cost := rec.stored()

	s.mu.Lock()
	defer s.mu.Unlock()
	open := 0
	for _, u := range s.uploads {
		if u.rec.owner == owner {
			open++
		}
	}
	switch {
	case open >= s.cfg.MaxUploadsPerAccount:
		return Upload{}, fmt.Errorf("%w: %d open", ErrTooManyUploads, open)
	case s.used[owner]+cost > s.cfg.AccountQuotaBytes:
		s.m.quotaRefused.WithLabelValues(refusedAccount).Inc()
		return Upload{}, fmt.Errorf("%w: %d bytes used or reserved, %d more asked, quota %d", ErrAccountQuota, s.used[owner], cost, s.cfg.AccountQuotaBytes)
	case s.total+cost > s.cfg.NodeQuotaBytes:
		s.m.quotaRefused.WithLabelValues(refusedNode).Inc()
		return Upload{}, fmt.Errorf("%w: %d more bytes asked", ErrNodeFull, cost)
	}
	b := s.db.NewBatch()
	b.Set(uploadKey(id), rec.encode())
	if err := s.db.Commit(ctx, b); err != nil {
		return Upload{}, err
	}
	s.uploads[id] = &upload{rec: rec, inflight: make(map[uint32]bool)}
	s.used[owner] += cost
	s.total += cost
	s.reserved += cost
	s.updateGauges()
	return uploadInfo(id, rec, nil), nil
}

func uploadInfo(id UploadID, r uploadRecord, done []uint32) Upload {
	return Upload{ID: id, Size: r.size, Stored: r.stored(), PartSize: r.partSize, Parts: r.parts(), Done: done, Created: r.created, Expires: r.expires}
}

// getUploadLocked returns owner's open upload id; s.mu is held.
func (s *Store) getUploadLocked(owner keys.AccountID, id UploadID) (*upload, error) {
	u := s.uploads[id]
	if u == nil || u.rec.owner != owner || !s.now().Before(u.rec.expires) {
		return nil, ErrNoUpload
	}
	return u, nil
}

// doneParts lists the parts of upload id received so far, in order.
func (s *Store) doneParts(id UploadID) ([]uint32, error) {
	p := partsPrefix(id)
	done := []uint32{}
	err := s.db.Scan(p, nil, 0, func(k, _ []byte) bool {
		if len(k) == len(p)+4 {
			done = append(done, uint32(k[len(p)])<<24|uint32(k[len(p)+1])<<16|uint32(k[len(p)+2])<<8|uint32(k[len(p)+3]))
		}
		return true
	})
	return done, err
}

// Status returns owner's upload id with the parts received so far.
// Errors: ErrNoUpload.
func (s *Store) Status(_ context.Context, owner keys.AccountID, id UploadID) (Upload, error) {
	s.mu.Lock()
	u, err := s.getUploadLocked(owner, id)
	var rec uploadRecord
	if err == nil {
		rec = u.rec
	}
	s.mu.Unlock()
	if err != nil {
		return Upload{}, err
	}
	done, err := s.doneParts(id)
	if err != nil {
		return Upload{}, err
	}
	return uploadInfo(id, rec, done), nil
}

// PutPart reads part n of owner's upload id from body, which must hold
// exactly the part's length, writes it durably and records it. A part
// received before is not written again: the same bytes succeed, others
// fail with ErrPartConflict. Errors: ErrNoUpload, ErrBadPart,
// ErrPartLength, ErrPartConflict, ErrBusy, or body's read error (wrapped).
// A failed PutPart leaves the upload as it was.
func (s *Store) PutPart(ctx context.Context, owner keys.AccountID, id UploadID, n uint32, body io.Reader) error {
	s.mu.Lock()
	u, err := s.getUploadLocked(owner, id)
	switch {
	case err != nil:
	case n >= u.rec.parts():
		err = fmt.Errorf("%w: part %d, the upload has %d", ErrBadPart, n, u.rec.parts())
	case u.closing || u.inflight[n]:
		err = ErrBusy
	default:
		u.inflight[n] = true
	}
	s.mu.Unlock()
	if err != nil {
		return err
	}
	defer func() {
		s.mu.Lock()
		delete(u.inflight, n)
		s.mu.Unlock()
	}()
	rec := u.rec
	want := rec.partLen(n)
	h := newChunkHasher(n * (rec.partSize / blob.MaxChunkSize))
	prev, err := s.db.Get(partKey(id, n))
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return err
	default:
		// Received before: compare, write nothing.
		if err := readExact(body, want, n, h); err != nil {
			return err
		}
		if !bytes.Equal(h.record(), prev) {
			return fmt.Errorf("%w: part %d", ErrPartConflict, n)
		}
		return nil
	}
	path := s.uploadPath(id)
	_, statErr := os.Stat(path)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("blobs: %w", err)
	}
	w := io.NewOffsetWriter(f, int64(n)*int64(rec.partSize))
	err = readExact(body, want, n, io.MultiWriter(w, h))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && errors.Is(statErr, fs.ErrNotExist) {
		err = syncDir(s.uploadDir())
	}
	if err != nil {
		return err
	}
	b := s.db.NewBatch()
	b.Set(partKey(id, n), h.record())
	if err := s.db.Commit(ctx, b); err != nil {
		return err
	}
	s.m.parts.Inc()
	return nil
}

// partRecordVersion starts a part record that lists its chunks' hashes
// (spec 08 §4). A record of exactly 32 bytes without it is an older
// node's SHA-256 of the part.
const partRecordVersion = 2

// chunkHasher computes the chunk hashes (blob.ChunkHash) of a part's bytes
// as they are written, the first chunk being number first.
type chunkHasher struct {
	next   uint32
	buf    []byte
	hashes []byte
}

func newChunkHasher(first uint32) *chunkHasher {
	return &chunkHasher{next: first, buf: make([]byte, 0, blob.MaxChunkSize), hashes: []byte{partRecordVersion}}
}

func (c *chunkHasher) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := min(len(p), blob.MaxChunkSize-len(c.buf))
		c.buf = append(c.buf, p[:k]...)
		p = p[k:]
		if len(c.buf) == blob.MaxChunkSize {
			c.sum()
		}
	}
	return n, nil
}

func (c *chunkHasher) sum() {
	h := blob.ChunkHash(c.next, c.buf)
	c.hashes = append(c.hashes, h[:]...)
	c.next++
	c.buf = c.buf[:0]
}

// record returns the part record: u8 partRecordVersion and the hashes of
// the part's chunks, in order (a short last chunk included).
func (c *chunkHasher) record() []byte {
	if len(c.buf) > 0 {
		c.sum()
	}
	return c.hashes
}

// partsMatch reports whether the part records of upload id list exactly
// m's chunk hashes: then every chunk in the file was hashed as it was
// written and matches the manifest, and the file need not be read again.
// Records of an older node (a SHA-256 per part) do not match.
func (s *Store) partsMatch(id UploadID, m *blob.Manifest) (bool, error) {
	i, ok := 0, true
	err := s.db.Scan(partsPrefix(id), nil, 0, func(_, v []byte) bool {
		if len(v) < 1 || v[0] != partRecordVersion || (len(v)-1)%32 != 0 {
			ok = false
			return false
		}
		for h := v[1:]; len(h) > 0; h = h[32:] {
			if i >= len(m.ChunkHashes) || !bytes.Equal(h[:32], m.ChunkHashes[i][:]) {
				ok = false
				return false
			}
			i++
		}
		return true
	})
	return ok && i == len(m.ChunkHashes), err
}

// readExact copies exactly want bytes of part n from r to w and makes sure
// r holds nothing more.
func readExact(r io.Reader, want int64, n uint32, w io.Writer) error {
	got, err := io.CopyN(w, r, want)
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: part %d has %d bytes, want %d", ErrPartLength, n, got, want)
	}
	if err != nil {
		return fmt.Errorf("blobs: reading part %d: %w", n, err)
	}
	var one [1]byte
	k, err := io.ReadFull(r, one[:])
	if k > 0 {
		return fmt.Errorf("%w: part %d has more than %d bytes", ErrPartLength, n, want)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("blobs: reading part %d: %w", n, err)
	}
	return nil
}

// claim marks owner's upload id as being completed or aborted, so no part
// is written meanwhile. Errors: ErrNoUpload, ErrBusy.
func (s *Store) claim(owner keys.AccountID, id UploadID) (*upload, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, err := s.getUploadLocked(owner, id)
	if err != nil {
		return nil, err
	}
	if u.closing || len(u.inflight) > 0 {
		return nil, ErrBusy
	}
	u.closing = true
	return u, nil
}

func (s *Store) unclaim(u *upload) {
	s.mu.Lock()
	u.closing = false
	s.mu.Unlock()
}

// discard deletes a claimed upload's records and file and releases its
// reservation.
func (s *Store) discard(ctx context.Context, id UploadID, u *upload) error {
	b := s.db.NewBatch()
	b.Delete(uploadKey(id))
	b.DeleteRange(partsPrefix(id), store.PrefixEnd(partsPrefix(id)))
	if u.rec.owner == cacheOwner {
		// The cache entry's origin record: its address starts with id.
		p := store.Key(store.PrefixBlobFederation, []byte{fedOrigin}, id[:])
		b.DeleteRange(p, store.PrefixEnd(p))
	}
	if err := s.db.Commit(ctx, b); err != nil {
		s.unclaim(u)
		return err
	}
	// Records first: a crash before the file goes leaves a file that Open
	// removes.
	if err := os.Remove(s.uploadPath(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.log.Error("removing an upload file", "err", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.uploads, id)
	c := u.rec.stored()
	s.release(u.rec.owner, c)
	s.reserved -= c
	s.updateGauges()
	return nil
}

// release subtracts c bytes from owner's and the node's usage; s.mu is
// held.
func (s *Store) release(owner keys.AccountID, c uint64) {
	s.total -= c
	if s.used[owner] <= c {
		delete(s.used, owner)
		return
	}
	s.used[owner] -= c
}

// Abort deletes owner's upload id, its parts and its file. Errors:
// ErrNoUpload, ErrBusy.
func (s *Store) Abort(ctx context.Context, owner keys.AccountID, id UploadID) error {
	u, err := s.claim(owner, id)
	if err != nil {
		return err
	}
	return s.discard(ctx, id, u)
}

// Complete finishes owner's upload id with the blob's manifest: every
// part must have been received, the manifest must declare the upload's
// size, and every ciphertext chunk must match it. The blob is then stored
// under the manifest's address and kept for Config.Retention. If a blob
// with that address is already stored, the upload is discarded and the
// stored blob's Info returned. Errors: ErrNoUpload, ErrBusy, ErrIncomplete,
// ErrBadManifest, ErrMismatch (the upload stays, to be aborted or fixed
// part by part), ErrTakenDown (the upload is discarded).
func (s *Store) Complete(ctx context.Context, owner keys.AccountID, id UploadID, manifest []byte) (Info, error) {
	u, err := s.claim(owner, id)
	if err != nil {
		return Info{}, err
	}
	info, keep, err := s.complete(ctx, id, u, manifest, false)
	if keep {
		s.unclaim(u)
	}
	return info, err
}

// complete does Complete's work on a claimed upload; keep says the upload
// is still there. verified says every chunk in the file was checked
// against the manifest as it was written (a fetch), so the file is not
// read again.
func (s *Store) complete(ctx context.Context, id UploadID, u *upload, manifest []byte, verified bool) (Info, bool, error) {
	rec := u.rec
	m, err := blob.ParseManifest(manifest)
	if err != nil {
		return Info{}, true, fmt.Errorf("%w: %w", ErrBadManifest, err)
	}
	if m.Size != rec.size {
		return Info{}, true, fmt.Errorf("%w: it declares %d bytes, the upload %d", ErrBadManifest, m.Size, rec.size)
	}
	done, err := s.doneParts(id)
	if err != nil {
		return Info{}, true, err
	}
	if missing := int(rec.parts()) - len(done); missing > 0 {
		return Info{}, true, fmt.Errorf("%w: %d of %d parts missing", ErrIncomplete, missing, rec.parts())
	}
	addr := m.Address()
	down, err := s.TakenDown(addr)
	if err != nil {
		return Info{}, true, err
	}
	if down {
		if err := s.discard(ctx, id, u); err != nil {
			return Info{}, false, err
		}
		return Info{}, false, fmt.Errorf("%w: %s", ErrTakenDown, addr)
	}
	if !verified {
		// The chunk hashes recorded with the parts are the check; the
		// file is read again only if they do not all match, to name the
		// first bad chunk (or for parts an older node recorded).
		match, err := s.partsMatch(id, m)
		if err != nil {
			return Info{}, true, err
		}
		if !match {
			if err := s.verifyFile(s.uploadPath(id), m); err != nil {
				return Info{}, true, err
			}
		}
	}

	s.blobMu.Lock()
	defer s.blobMu.Unlock()
	if old, err := s.get(addr); err == nil {
		// The same ciphertext again (a retry whose answer was lost, or
		// someone else holding the key): keep the stored one.
		if err := s.discard(ctx, id, u); err != nil {
			return Info{}, false, err
		}
		return old, false, nil
	} else if !errors.Is(err, ErrNotFound) {
		return Info{}, true, err
	}
	dir := filepath.Join(s.cfg.Dir, shard(addr))
	if err := s.ensureDir(dir); err != nil {
		return Info{}, true, err
	}
	final := s.blobPath(addr)
	if err := os.Rename(s.uploadPath(id), final); err != nil {
		return Info{}, true, fmt.Errorf("blobs: %w", err)
	}
	if err := syncDir(dir); err != nil {
		_ = os.Rename(final, s.uploadPath(id))
		return Info{}, true, err
	}
	now := s.now()
	br := blobRecord{owner: rec.owner, size: rec.size, stored: rec.stored(), created: now, expires: now.Add(s.cfg.Retention)}
	b := s.db.NewBatch()
	b.Set(blobKey(addr), br.encode())
	b.Set(manifestKey(addr), manifest)
	b.Delete(uploadKey(id))
	b.DeleteRange(partsPrefix(id), store.PrefixEnd(partsPrefix(id)))
	if err := s.db.Commit(ctx, b); err != nil {
		_ = os.Rename(final, s.uploadPath(id))
		return Info{}, true, err
	}
	s.mu.Lock()
	delete(s.uploads, id)
	s.reserved -= br.stored
	s.stored += br.stored
	s.nBlobs++
	s.updateGauges()
	s.mu.Unlock()
	s.m.completed.Inc()
	return infoOf(addr, br), false, nil
}

// verifyFile checks every ciphertext chunk of the file at path against m.
func (s *Store) verifyFile(path string, m *blob.Manifest) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("blobs: %w", err)
	}
	defer func() { _ = f.Close() }()
	r := bufio.NewReaderSize(f, 1<<20)
	buf := make([]byte, blob.MaxChunkSize)
	for i := range m.ChunkCount {
		n := blob.MaxChunkSize
		if i+1 == m.ChunkCount {
			n = int(CipherSize(m.Size) - uint64(m.ChunkCount-1)*blob.MaxChunkSize)
		}
		if _, err := io.ReadFull(r, buf[:n]); err != nil {
			return fmt.Errorf("blobs: reading chunk %d: %w", i, err)
		}
		if err := blob.VerifyChunk(m, i, buf[:n]); err != nil {
			return fmt.Errorf("%w: %w", ErrMismatch, err)
		}
	}
	return nil
}

// ensureDir creates dir (a shard directory) if needed and syncs its
// parent so the new entry survives a crash.
func (s *Store) ensureDir(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("blobs: %w", err)
	}
	return syncDir(s.cfg.Dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("blobs: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("blobs: syncing %s: %w", dir, err)
	}
	return nil
}

func infoOf(a blob.Address, r blobRecord) Info {
	return Info{Address: a, Owner: r.owner, Size: r.size, Stored: r.stored, Created: r.created, Expires: r.expires}
}

// get returns the live blob at addr, or ErrNotFound.
func (s *Store) get(addr blob.Address) (Info, error) {
	v, err := s.db.Get(blobKey(addr))
	if errors.Is(err, store.ErrNotFound) {
		return Info{}, ErrNotFound
	}
	if err != nil {
		return Info{}, err
	}
	r, err := decodeBlob(v)
	if err != nil {
		return Info{}, err
	}
	if !s.now().Before(r.expires) {
		return Info{}, ErrNotFound
	}
	return infoOf(addr, r), nil
}

// TakenDown reports whether addr was taken down.
func (s *Store) TakenDown(addr blob.Address) (bool, error) {
	return s.db.Has(takedownKey(addr))
}

// Stat returns the blob at addr. Errors: ErrTakenDown, ErrNotFound.
func (s *Store) Stat(_ context.Context, addr blob.Address) (Info, error) {
	if down, err := s.TakenDown(addr); err != nil || down {
		if err == nil {
			err = ErrTakenDown
		}
		return Info{}, err
	}
	return s.get(addr)
}

// Open returns the blob at addr, its ciphertext file open for reading
// (the caller closes it), to serve to any account: it is ciphertext, and
// its address cannot be guessed. Errors: ErrTakenDown, ErrNotFound.
func (s *Store) Open(ctx context.Context, addr blob.Address) (*os.File, Info, error) {
	info, err := s.Stat(ctx, addr)
	if err != nil {
		return nil, Info{}, err
	}
	f, err := os.Open(s.blobPath(addr))
	if errors.Is(err, fs.ErrNotExist) {
		// Deleted since Stat.
		return nil, Info{}, ErrNotFound
	}
	if err != nil {
		return nil, Info{}, fmt.Errorf("blobs: %w", err)
	}
	return f, info, nil
}

// Manifest returns the manifest encoding of the blob at addr. Errors:
// ErrTakenDown, ErrNotFound.
func (s *Store) Manifest(ctx context.Context, addr blob.Address) ([]byte, error) {
	if _, err := s.Stat(ctx, addr); err != nil {
		return nil, err
	}
	m, err := s.db.Get(manifestKey(addr))
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNotFound
	}
	return m, err
}

// Delete deletes owner's blob at addr. Another account's blob is
// ErrNotFound, as a missing one is.
func (s *Store) Delete(ctx context.Context, owner keys.AccountID, addr blob.Address) error {
	s.blobMu.Lock()
	defer s.blobMu.Unlock()
	info, err := s.get(addr)
	if err != nil {
		return err
	}
	if info.Owner != owner {
		return ErrNotFound
	}
	return s.remove(ctx, addr, nil)
}

// remove deletes the blob at addr (its records, with extra's writes in
// the same batch, then its file) and its usage; s.blobMu is held and the
// blob's record exists.
func (s *Store) remove(ctx context.Context, addr blob.Address, extra func(*store.Batch)) error {
	v, err := s.db.Get(blobKey(addr))
	var rec blobRecord
	exists := err == nil
	if exists {
		if rec, err = decodeBlob(v); err != nil {
			return err
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	b := s.db.NewBatch()
	b.Delete(blobKey(addr))
	b.Delete(manifestKey(addr))
	b.Delete(originKey(addr))
	b.DeleteRange(fetchersPrefix(addr), store.PrefixEnd(fetchersPrefix(addr)))
	if extra != nil {
		extra(b)
	}
	if err := s.db.Commit(ctx, b); err != nil {
		return err
	}
	if !exists {
		return nil
	}
	if err := os.Remove(s.blobPath(addr)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.log.Error("removing a blob file", "err", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.release(rec.owner, rec.stored)
	s.stored -= rec.stored
	s.nBlobs--
	s.updateGauges()
	return nil
}

// Takedown deletes the blob at addr, if stored, and remembers the address
// so that it is never accepted or served again (spec 08 §8). It is
// idempotent. It is TakedownNotify without the count.
func (s *Store) Takedown(ctx context.Context, addr blob.Address) error {
	_, err := s.TakedownNotify(ctx, addr)
	return err
}

// TakedownNotify takes addr down as Takedown does and, in the same synced
// write, queues a signed takedown notice to every node that fetched the
// blob from this one (spec 08 §13), for the Notifier to deliver; it
// returns how many it queued.
func (s *Store) TakedownNotify(ctx context.Context, addr blob.Address) (int, error) {
	s.blobMu.Lock()
	defer s.blobMu.Unlock()
	now := s.now()
	fetchers, err := s.Fetchers(addr)
	if err != nil {
		return 0, err
	}
	queued := len(fetchers)
	err = s.remove(ctx, addr, func(b *store.Batch) {
		b.Set(takedownKey(addr), encodeTakedown(now))
		s.queueNotices(b, addr, fetchers, now)
	})
	if err != nil {
		return 0, err
	}
	if queued > 0 {
		select {
		case s.noticeKick <- struct{}{}:
		default:
		}
	}
	// A partial fetch of the address goes too; one in progress is
	// discarded when it completes.
	id := cacheID(addr)
	s.mu.Lock()
	u := s.uploads[id]
	drop := u != nil && u.rec.owner == cacheOwner && !u.closing && len(u.inflight) == 0
	if drop {
		u.closing = true
	}
	s.mu.Unlock()
	if drop {
		if err := s.discard(ctx, id, u); err != nil {
			return 0, err
		}
	}
	s.m.takedowns.Inc()
	s.log.Info("blob taken down", "address", addr.String(), "notices", queued)
	return queued, nil
}

// GC deletes the blobs whose retention has passed and the uploads whose
// time is up (an upload being written to is left for the next round). It
// returns how many of each it deleted.
func (s *Store) GC(ctx context.Context) (blobsDeleted, uploadsDeleted int, err error) {
	now := s.now()
	s.mu.Lock()
	var expired []UploadID
	for id, u := range s.uploads {
		if !now.Before(u.rec.expires) && !u.closing && len(u.inflight) == 0 {
			u.closing = true
			expired = append(expired, id)
		}
	}
	s.mu.Unlock()
	var errs []error
	for _, id := range expired {
		s.mu.Lock()
		u := s.uploads[id]
		s.mu.Unlock()
		if err := s.discard(ctx, id, u); err != nil {
			errs = append(errs, err)
			continue
		}
		uploadsDeleted++
		s.m.gcDeleted.WithLabelValues(gcUpload).Inc()
	}

	var old []blob.Address
	err = s.db.Scan([]byte(store.PrefixBlob), nil, 0, func(k, v []byte) bool {
		r, err := decodeBlob(v)
		if err == nil && !now.Before(r.expires) && len(k) == len(store.PrefixBlob)+32 {
			old = append(old, blob.Address(k[len(store.PrefixBlob):]))
		}
		return true
	})
	errs = append(errs, err)
	for _, a := range old {
		if ctx.Err() != nil {
			break
		}
		s.blobMu.Lock()
		if s.expired(a, now) {
			if err := s.remove(ctx, a, nil); err != nil {
				errs = append(errs, err)
			} else {
				blobsDeleted++
				s.m.gcDeleted.WithLabelValues(gcBlob).Inc()
			}
		}
		s.blobMu.Unlock()
	}
	return blobsDeleted, uploadsDeleted, errors.Join(errs...)
}

// expired reports whether the blob at addr is still recorded and expired
// at now; s.blobMu is held.
func (s *Store) expired(addr blob.Address, now time.Time) bool {
	v, err := s.db.Get(blobKey(addr))
	if err != nil {
		return false
	}
	r, err := decodeBlob(v)
	return err == nil && !now.Before(r.expires)
}

// Run collects garbage every Config.GCInterval until ctx ends.
func (s *Store) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.GCInterval)
	defer t.Stop()
	for {
		nb, nu, err := s.GC(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			s.log.Error("collecting expired blobs", "err", err)
		case nb+nu > 0:
			s.log.Info("deleted expired blobs and uploads", "blobs", nb, "uploads", nu)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Uploads returns the IDs of owner's open uploads, in no particular order
// (tests and the admin API).
func (s *Store) Uploads(owner keys.AccountID) []UploadID {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []UploadID
	for id, u := range s.uploads {
		if u.rec.owner == owner {
			ids = append(ids, id)
		}
	}
	slices.SortFunc(ids, func(a, b UploadID) int { return bytes.Compare(a[:], b[:]) })
	return ids
}
