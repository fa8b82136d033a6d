package blobs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/parley-chat/parley/node/store"
	"github.com/parley-chat/parley/protocol/blob"
	"github.com/parley-chat/parley/protocol/keys"
)

// Cross-node fetch (spec 08 §12). The fetching side is Store.Fetch, which
// drives a Fetcher (StreamFetcher over libp2p) and caches what it receives,
// and Store.Stream, which reads a fetch while it runs (stream.go); the
// serving side is Store.ServeFetch.
//
// A fetched blob is cached as an upload of no account (the zero
// AccountID) whose ID is the first 16 bytes of the address and whose part
// size is one chunk: each verified chunk is written at its offset and
// recorded as a received part once the file is synced, so an interrupted
// fetch resumes from its first missing chunk. Completing it is Complete's
// work (file renamed, blob recorded) but for reading the file again. Its
// ciphertext size is reserved against the node's quota (not an account's)
// when the manifest arrives.

// Fetch outcomes, the values of the result label.
const (
	fetchOK        = "ok"
	fetchNotFound  = "not_found"
	fetchTakenDown = "taken_down"
	fetchMismatch  = "mismatch"
	fetchFailed    = "failed"
)

// readAhead is how many chunk frames a fetch reads ahead of the one being
// checked and written: about 2 MiB.
const readAhead = 32

// syncEvery is how many chunks a fetch writes between syncs (and part
// records): about 16 MiB.
const syncEvery = 256

// cacheOwner owns the blobs fetched from other nodes.
var cacheOwner keys.AccountID

// cacheID is the upload ID of the cache entry of addr.
func cacheID(addr blob.Address) UploadID { return UploadID(addr[:16]) }

// Fetch returns the blob at addr, fetching it from origin with f first if
// this node does not hold it, and caching it (spec 08 §12). Concurrent
// fetches of one address share one transfer. Errors: ErrTakenDown (here
// or at the origin), ErrNotFound (not at the origin either), ErrTooLarge,
// ErrNodeFull, ErrMismatch (the origin sent a bad manifest or chunk; the
// chunks before the bad one stay cached), ErrOrigin, ErrBusy.
func (s *Store) Fetch(ctx context.Context, f Fetcher, origin keys.NodeID, addr blob.Address) (Info, error) {
	for {
		info, err := s.Stat(ctx, addr)
		if !errors.Is(err, ErrNotFound) {
			return info, err
		}
		st, own := s.joinFetch(addr)
		if !own {
			select {
			case <-st.done:
				continue
			case <-ctx.Done():
				return Info{}, ctx.Err()
			}
		}
		return s.runFetch(ctx, f, origin, addr, st)
	}
}

// fetchState is a fetch in progress, as the requests that share it see it.
type fetchState struct {
	done chan struct{} // closed when the fetch has ended
	// Set before done is closed: the fetch's error, and whether its
	// context had ended (its owner gave up: another request may resume it).
	err       error
	abandoned bool

	mu      sync.Mutex
	m       *blob.Manifest // nil until the manifest is verified
	raw     []byte         // m's encoding
	path    string         // the cache file, once m is set
	avail   uint64         // ciphertext bytes from offset 0 verified and written to path
	changed chan struct{}  // closed and replaced when m or avail changes
}

// progress returns what the fetch has so far and a channel closed when
// that changes.
func (st *fetchState) progress() (*blob.Manifest, string, uint64, <-chan struct{}) {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.m, st.path, st.avail, st.changed
}

// publish records that chunks [0, next) of m (encoded as raw) are verified
// and written to path.
func (st *fetchState) publish(m *blob.Manifest, raw []byte, path string, next uint32) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.m, st.raw, st.path = m, raw, path
	st.avail = min(uint64(next)*blob.MaxChunkSize, CipherSize(m.Size))
	close(st.changed)
	st.changed = make(chan struct{})
}

// FetchingManifest returns the manifest encoding of the blob at addr if a
// fetch of it is in progress, once that fetch has verified it (spec 08
// §12); ok is false if none is, or it ends before the manifest. It does
// not start a fetch.
func (s *Store) FetchingManifest(ctx context.Context, addr blob.Address) (raw []byte, ok bool, err error) {
	s.mu.Lock()
	st := s.fetching[addr]
	s.mu.Unlock()
	if st == nil {
		return nil, false, nil
	}
	for {
		st.mu.Lock()
		raw, changed := st.raw, st.changed
		st.mu.Unlock()
		if raw != nil {
			return raw, true, nil
		}
		select {
		case <-changed:
		case <-st.done:
			return nil, false, nil
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
	}
}

// joinFetch returns the fetch in progress of addr, or a new one that the
// caller owns (own is true) and must run with runFetch.
func (s *Store) joinFetch(addr blob.Address) (st *fetchState, own bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.fetching[addr]; st != nil {
		return st, false
	}
	st = &fetchState{done: make(chan struct{}), changed: make(chan struct{})}
	s.fetching[addr] = st
	return st, true
}

// runFetch runs the fetch st that joinFetch gave the caller, and ends it.
func (s *Store) runFetch(ctx context.Context, f Fetcher, origin keys.NodeID, addr blob.Address, st *fetchState) (Info, error) {
	info, err := s.fetch(ctx, f, origin, addr, st)
	s.mu.Lock()
	delete(s.fetching, addr)
	st.err, st.abandoned = err, ctx.Err() != nil
	close(st.done)
	s.mu.Unlock()
	s.m.fetches.WithLabelValues(fetchResult(err)).Inc()
	return info, err
}

func fetchResult(err error) string {
	switch {
	case err == nil:
		return fetchOK
	case errors.Is(err, ErrNotFound):
		return fetchNotFound
	case errors.Is(err, ErrTakenDown):
		return fetchTakenDown
	case errors.Is(err, ErrMismatch):
		return fetchMismatch
	}
	return fetchFailed
}

// cacheFile is a fetch's cache entry being written.
type cacheFile struct {
	s       *Store
	ctx     context.Context
	id      UploadID
	addr    blob.Address
	origin  keys.NodeID
	u       *upload // claimed; nil until the manifest arrives on a new entry
	m       *blob.Manifest
	raw     []byte
	f       *os.File
	path    string
	created bool // the file did not exist
	next    uint32
	st      *fetchState // told of each chunk written
	batch   *store.Batch
	pending int
	// syncing is the result of the sync in the background, nil when
	// none is running (see put).
	syncing chan error
}

// fetch does Fetch's work; the address is this caller's to fetch.
func (s *Store) fetch(ctx context.Context, f Fetcher, origin keys.NodeID, addr blob.Address, st *fetchState) (Info, error) {
	c := &cacheFile{s: s, ctx: ctx, id: cacheID(addr), addr: addr, origin: origin, st: st}
	s.mu.Lock()
	if u := s.uploads[c.id]; u != nil {
		if u.rec.owner != cacheOwner || u.closing || len(u.inflight) > 0 {
			s.mu.Unlock()
			return Info{}, ErrBusy
		}
		u.closing = true // GC leaves it alone
		c.u = u
	}
	s.mu.Unlock()
	if c.u != nil {
		done, err := s.doneParts(c.id)
		if err != nil {
			s.unclaim(c.u)
			return Info{}, err
		}
		for c.next < uint32(len(done)) && done[c.next] == c.next {
			c.next++
		}
	}
	err := f.Fetch(ctx, origin, addr, c.next, c.manifest, c.put)
	if ferr := c.flush(); err == nil {
		err = ferr
	}
	if c.f != nil {
		if cerr := c.f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("blobs: %w", cerr)
		}
	}
	if err == nil && (c.m == nil || c.next != c.m.ChunkCount) {
		err = fmt.Errorf("%w: the fetch ended before the last chunk", ErrOrigin)
	}
	if err != nil {
		if c.u != nil {
			s.unclaim(c.u)
		}
		return Info{}, err
	}
	info, keep, err := s.complete(ctx, c.id, c.u, c.raw, true)
	if keep {
		s.unclaim(c.u)
	}
	if err == nil {
		s.log.Info("fetched a blob", "address", addr.String(), "bytes", info.Stored)
	}
	return info, err
}

// manifest takes the origin's verified manifest: it creates the cache
// entry, reserving its size, or checks it against the entry's.
func (c *cacheFile) manifest(raw []byte) error {
	s := c.s
	m, err := blob.VerifyManifest(c.addr, raw)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMismatch, err)
	}
	if c.next > m.ChunkCount {
		return fmt.Errorf("%w: the cache holds more chunks than the blob", ErrBadManifest)
	}
	c.m, c.raw = m, raw
	if c.u != nil {
		if c.u.rec.size != m.Size {
			return fmt.Errorf("%w: the cache entry declares %d bytes, the manifest %d", ErrBadManifest, c.u.rec.size, m.Size)
		}
		return c.open()
	}
	if m.Size > s.cfg.MaxBlobBytes {
		s.m.quotaRefused.WithLabelValues(refusedSize).Inc()
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, m.Size, s.cfg.MaxBlobBytes)
	}
	now := s.now()
	rec := uploadRecord{owner: cacheOwner, size: m.Size, partSize: blob.MaxChunkSize, created: now, expires: now.Add(s.cfg.UploadTTL)}
	cost := rec.stored()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.uploads[c.id] != nil {
		return ErrBusy
	}
	if s.total+cost > s.cfg.NodeQuotaBytes {
		s.m.quotaRefused.WithLabelValues(refusedNode).Inc()
		return fmt.Errorf("%w: %d more bytes asked", ErrNodeFull, cost)
	}
	b := s.db.NewBatch()
	b.Set(uploadKey(c.id), rec.encode())
	// Where the blob came from: the node whose takedown notice counts
	// (spec 08 §13).
	b.Set(originKey(c.addr), c.origin[:])
	if err := s.db.Commit(c.ctx, b); err != nil {
		return err
	}
	c.u = &upload{rec: rec, inflight: make(map[uint32]bool), closing: true}
	s.uploads[c.id] = c.u
	s.used[cacheOwner] += cost
	s.total += cost
	s.reserved += cost
	s.updateGauges()
	return c.open()
}

func (c *cacheFile) open() error {
	path := c.s.uploadPath(c.id)
	c.path = path
	_, err := os.Stat(path)
	c.created = errors.Is(err, fs.ErrNotExist)
	if c.f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600); err != nil {
		return fmt.Errorf("blobs: %w", err)
	}
	c.batch = c.s.db.NewBatch()
	// The chunks a previous fetch left are verified and synced: they
	// may be streamed at once.
	c.st.publish(c.m, c.raw, path, c.next)
	return nil
}

// put writes chunk index, checked against the manifest, at its offset; it
// is recorded at the next flush.
func (c *cacheFile) put(index uint32, chunk []byte) error {
	if c.m == nil || index != c.next {
		return fmt.Errorf("%w: chunk %d out of order (want %d)", ErrOrigin, index, c.next)
	}
	if err := blob.VerifyChunk(c.m, index, chunk); err != nil {
		return fmt.Errorf("%w: %w", ErrMismatch, err)
	}
	if _, err := c.f.WriteAt(chunk, int64(index)*blob.MaxChunkSize); err != nil {
		return fmt.Errorf("blobs: %w", err)
	}
	// The part record is the chunk's hash, as for uploads; it is the
	// manifest's, just checked, so the chunk is not hashed again.
	c.batch.Set(partKey(c.id, index), append([]byte{partRecordVersion}, c.m.ChunkHashes[index][:]...))
	c.next++
	c.st.publish(c.m, c.raw, c.path, c.next)
	if c.pending++; c.pending >= syncEvery {
		return c.flushAsync()
	}
	return nil
}

// flushAsync starts syncing the file and then recording the chunks
// written so far in the background, so the next chunks are received and
// written while the disk catches up, once the previous background sync
// has finished (its error is returned). A chunk is still recorded only
// after a sync that began after it was written.
func (c *cacheFile) flushAsync() error {
	if err := c.wait(); err != nil {
		return err
	}
	b, n, created := c.batch, c.pending, c.created
	c.batch, c.pending, c.created = c.s.db.NewBatch(), 0, false
	c.syncing = make(chan error, 1)
	go func(done chan<- error) { done <- c.sync(b, n, created) }(c.syncing)
	return nil
}

// wait waits for the background sync, if any, and returns its error.
func (c *cacheFile) wait() error {
	if c.syncing == nil {
		return nil
	}
	err := <-c.syncing
	c.syncing = nil
	return err
}

// flush syncs the file and then records the chunks written since the last
// flush.
// flush waits for the background sync, if any, before it returns. Every
// fetch ends with a flush, so no background sync outlives it.
func (c *cacheFile) flush() error {
	werr := c.wait()
	if c.pending == 0 || werr != nil {
		return werr
	}
	b, n, created := c.batch, c.pending, c.created
	c.batch, c.pending, c.created = c.s.db.NewBatch(), 0, false
	return c.sync(b, n, created)
}

// sync syncs the file (and its directory if created) and then commits b,
// the records of n chunks.
func (c *cacheFile) sync(b *store.Batch, n int, created bool) error {
	if err := c.f.Sync(); err != nil {
		return fmt.Errorf("blobs: %w", err)
	}
	if created {
		if err := syncDir(c.s.uploadDir()); err != nil {
			return err
		}
	}
	// A fetch cut short by its context still records what it wrote.
	if err := c.s.db.Commit(context.WithoutCancel(c.ctx), b); err != nil {
		return err
	}
	c.s.m.parts.Add(float64(n))
	return nil
}

// StreamFetcher is the Fetcher of the blob fetch protocol over libp2p
// (spec 08 §12).
type StreamFetcher struct {
	h       host.Host
	proto   protocol.ID
	timeout time.Duration
}

var _ Fetcher = (*StreamFetcher)(nil)

// NewStreamFetcher returns a fetcher that opens streams of protocol proto
// on h (the node's p2p host must know the origin's addresses), each step
// bounded by cfg.FetchTimeout.
func NewStreamFetcher(h host.Host, proto protocol.ID, cfg Config) *StreamFetcher {
	return &StreamFetcher{h: h, proto: proto, timeout: cfg.withDefaults().FetchTimeout}
}

// Fetch implements Fetcher. Errors: ErrNotFound, ErrTakenDown, ErrBusy
// (the origin's answer), ErrMismatch (a bad manifest or chunk), ErrOrigin
// (anything else the origin or the network did), and manifest's and put's
// errors.
func (f *StreamFetcher) Fetch(ctx context.Context, origin keys.NodeID, addr blob.Address, from uint32, manifest func([]byte) error, put func(uint32, []byte) error) error {
	pid, err := peer.IDFromBytes(origin.PeerIDBytes())
	if err != nil {
		return fmt.Errorf("%w: origin %s: %w", ErrOrigin, origin, err)
	}
	octx, cancel := context.WithTimeout(ctx, f.timeout)
	st, err := f.h.NewStream(octx, pid, f.proto)
	cancel()
	if err != nil {
		return fmt.Errorf("%w: opening a stream to %s: %w", ErrOrigin, origin, err)
	}
	stop := context.AfterFunc(ctx, func() { _ = st.Reset() })
	defer stop()
	defer func() { _ = st.Reset() }()
	_ = st.SetWriteDeadline(time.Now().Add(f.timeout))
	if _, err := st.Write(blob.FetchRequest{Address: addr, From: from}.AppendFrame(nil)); err != nil {
		return fmt.Errorf("%w: sending the request: %w", ErrOrigin, err)
	}
	_ = st.CloseWrite()
	buf := make([]byte, 0, blob.MaxChunkSize+64)
	body, err := f.readFrame(st, &buf, 7+blob.MaxManifestSize)
	if err != nil {
		return err
	}
	a, err := blob.DecodeFetchAnswer(body)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrOrigin, err)
	}
	switch a.Status {
	case blob.FetchOK:
	case blob.FetchNotFound:
		return fmt.Errorf("%w at the origin %s", ErrNotFound, origin)
	case blob.FetchTakenDown:
		return fmt.Errorf("%w at the origin %s", ErrTakenDown, origin)
	case blob.FetchBusy:
		return fmt.Errorf("%w: the origin %s is busy", ErrBusy, origin)
	default:
		return fmt.Errorf("%w: the origin answered %s", ErrOrigin, a.Status)
	}
	m, err := blob.VerifyManifest(addr, a.Manifest)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMismatch, err)
	}
	if err := manifest(a.Manifest); err != nil {
		return err
	}
	// A reader goroutine takes the chunk frames off the stream while put
	// checks and writes the ones before: the network and the disk work at
	// once. It holds at most readAhead frames; it stops when Fetch
	// returns (the stream is reset) and Fetch waits for it.
	type frame struct {
		body []byte
		err  error
	}
	free := make(chan []byte, readAhead)
	for range readAhead {
		free <- make([]byte, 0, 6+blob.MaxChunkSize)
	}
	frames := make(chan frame, readAhead)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := from; i < m.ChunkCount; i++ {
			var b []byte
			select {
			case b = <-free:
			case <-done:
				return
			}
			body, err := f.readFrame(st, &b, 6+blob.MaxChunkSize)
			select {
			case frames <- frame{body, err}:
			case <-done:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	defer func() {
		close(done)
		_ = st.Reset()
		wg.Wait()
	}()
	for i := from; i < m.ChunkCount; i++ {
		fr := <-frames
		if fr.err != nil {
			return fmt.Errorf("chunk %d: %w", i, fr.err)
		}
		index, chunk, err := blob.DecodeChunkFrame(fr.body)
		switch {
		case err != nil:
			return fmt.Errorf("%w: %w", ErrOrigin, err)
		case index != i:
			return fmt.Errorf("%w: chunk %d where %d was due", ErrOrigin, index, i)
		}
		// put checks the chunk (blob.VerifyChunk) before it keeps it.
		if err := put(i, chunk); err != nil {
			return err
		}
		free <- fr.body[:0]
	}
	return nil
}

// readFrame reads one frame of at most limit body bytes into *buf.
func (f *StreamFetcher) readFrame(st network.Stream, buf *[]byte, limit int) ([]byte, error) {
	_ = st.SetReadDeadline(time.Now().Add(f.timeout))
	var p [blob.FramePrefixLen]byte
	if _, err := io.ReadFull(st, p[:]); err != nil {
		return nil, fmt.Errorf("%w: reading a frame: %w", ErrOrigin, err)
	}
	n, err := blob.FrameLen(p)
	if err == nil && n > limit {
		err = fmt.Errorf("%d bytes, limit %d", n, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: frame length: %w", ErrOrigin, err)
	}
	if cap(*buf) < n {
		*buf = make([]byte, n)
	}
	b := (*buf)[:n]
	if _, err := io.ReadFull(st, b); err != nil {
		return nil, fmt.Errorf("%w: reading a frame: %w", ErrOrigin, err)
	}
	return b, nil
}

// ServeFetch returns the handler of the blob fetch protocol (spec 08 §12)
// to register on the node's p2p host: it answers one request per stream
// with the blob's manifest and its chunks from the one asked for, or with
// a status (not found, taken down, bad request, busy beyond
// Config.MaxFetchServes at once). A malformed request resets the stream.
// Streams stop when ctx ends.
func (s *Store) ServeFetch(ctx context.Context) network.StreamHandler {
	return func(st network.Stream) { s.serveFetch(ctx, st, nil) }
}

// serveFetch serves st; tamper, for tests, may alter each chunk sent.
func (s *Store) serveFetch(ctx context.Context, st network.Stream, tamper func(uint32, []byte)) {
	stop := context.AfterFunc(ctx, func() { _ = st.Reset() })
	defer stop()
	timeout := s.cfg.FetchTimeout
	_ = st.SetReadDeadline(time.Now().Add(timeout))
	var p [blob.FramePrefixLen]byte
	var body [64]byte
	n, err := 0, error(nil)
	if _, err = io.ReadFull(st, p[:]); err == nil {
		if n, err = blob.FrameLen(p); err == nil && n > len(body) {
			err = fmt.Errorf("request of %d bytes", n)
		}
	}
	if err == nil {
		_, err = io.ReadFull(st, body[:n])
	}
	var req blob.FetchRequest
	if err == nil {
		req, err = blob.DecodeFetchRequest(body[:n])
	}
	if err != nil {
		s.m.served.WithLabelValues("malformed").Inc()
		s.log.Debug("bad blob fetch request", "peer", st.Conn().RemotePeer(), "err", err)
		_ = st.Reset()
		return
	}
	_ = st.SetWriteDeadline(time.Now().Add(timeout))
	answer := func(status blob.FetchStatus) {
		s.m.served.WithLabelValues(status.String()).Inc()
		frame, _ := blob.FetchAnswer{Status: status}.AppendFrame(nil)
		_, _ = st.Write(frame)
		_ = st.Close()
	}
	remote := st.Conn().RemotePeer()
	select {
	case s.serving <- struct{}{}:
		defer func() { <-s.serving }()
	default:
		answer(blob.FetchBusy)
		return
	}
	if !s.servePeer(remote) {
		s.m.peerLimited.Inc()
		answer(blob.FetchBusy)
		return
	}
	defer s.servePeerDone(remote)
	raw, err := s.Manifest(ctx, req.Address)
	var file *os.File
	if err == nil {
		file, _, err = s.Open(ctx, req.Address)
	}
	switch {
	case errors.Is(err, ErrTakenDown):
		answer(blob.FetchTakenDown)
		return
	case errors.Is(err, ErrNotFound):
		answer(blob.FetchNotFound)
		return
	case err != nil:
		s.log.Error("serving a blob fetch", "err", err)
		_ = st.Reset()
		return
	}
	defer func() { _ = file.Close() }()
	m, err := blob.ParseManifest(raw)
	if err != nil {
		s.log.Error("serving a blob fetch: stored manifest", "address", req.Address.String(), "err", err)
		_ = st.Reset()
		return
	}
	if req.From > m.ChunkCount {
		answer(blob.FetchBadRequest)
		return
	}
	// Persist before sending: the node that gets the blob will hear of
	// its takedown (spec 08 §13).
	if err := s.recordFetcher(ctx, req.Address, remote); err != nil {
		s.log.Error("serving a blob fetch: recording the fetching node", "err", err)
		_ = st.Reset()
		return
	}
	frame, err := blob.FetchAnswer{Status: blob.FetchOK, Manifest: raw}.AppendFrame(nil)
	if err == nil {
		_, err = st.Write(frame)
	}
	total := CipherSize(m.Size)
	chunk := make([]byte, blob.MaxChunkSize)
	out := make([]byte, 0, blob.FramePrefixLen+6+blob.MaxChunkSize)
	for i := req.From; err == nil && i < m.ChunkCount; i++ {
		off := uint64(i) * blob.MaxChunkSize
		c := chunk[:min(blob.MaxChunkSize, total-off)]
		if _, err = file.ReadAt(c, int64(off)); err != nil {
			break
		}
		if tamper != nil {
			tamper(i, c)
		}
		if err = s.pace(ctx, remote, len(c)); err != nil {
			break
		}
		_ = st.SetWriteDeadline(time.Now().Add(timeout))
		_, err = st.Write(blob.AppendChunkFrame(out[:0], i, c))
	}
	if err != nil {
		s.m.served.WithLabelValues("failed").Inc()
		s.log.Debug("serving a blob fetch", "address", req.Address.String(), "err", err)
		_ = st.Reset()
		return
	}
	s.m.served.WithLabelValues(blob.FetchOK.String()).Inc()
	_ = st.Close()
}

// servePeer takes one of p's Config.MaxFetchServesPerPeer serving slots;
// false when it has none left.
func (s *Store) servePeer(p peer.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perPeer[p] >= s.cfg.MaxFetchServesPerPeer {
		return false
	}
	s.perPeer[p]++
	return true
}

func (s *Store) servePeerDone(p peer.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perPeer[p]--; s.perPeer[p] <= 0 {
		delete(s.perPeer, p)
	}
}

// pace waits until p may be sent n more bytes under
// Config.FetchServeBytesPerSecond, or ctx ends.
func (s *Store) pace(ctx context.Context, p peer.ID, n int) error {
	for {
		ok, after := s.peerBytes.AllowN(string(p), n)
		if ok {
			return nil
		}
		s.m.pacedWait.Add(after.Seconds())
		t := time.NewTimer(after)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}
