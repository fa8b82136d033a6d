package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/parley-chat/parley/protocol/blob"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/wire"
)

// Blobs (spec 08-blobs, spec 09-client-api §9): files are encrypted here,
// in chunks, under a fresh key; the node receives ciphertext in parts and
// the manifest, and answers with the blob's address. The link that opens
// the blob carries the key in its #fragment; only its locator ever goes to
// a node.

// Error codes of the blob endpoints (spec 09 §9).
var (
	ErrQuotaExceeded    = newSentinel("quota_exceeded", "blob storage quota exceeded")
	ErrNodeFull         = newSentinel("node_full", "the node's blob storage is full")
	ErrTooManyUploads   = newSentinel("too_many_uploads", "too many uploads in progress")
	ErrBadPart          = newSentinel("bad_part", "bad upload part")
	ErrPartConflict     = newSentinel("part_conflict", "part already received with other content")
	ErrUploadBusy       = newSentinel("upload_busy", "upload busy")
	ErrUploadIncomplete = newSentinel("upload_incomplete", "upload incomplete")
	ErrBadBlob          = newSentinel("bad_blob", "manifest malformed or not matching the upload")
	ErrTakenDown        = newSentinel("taken_down", "blob taken down")
)

// maxBlobPart is the largest part a node accepts.
const maxBlobPart = wire.MaxBlobPartChunks * blob.MaxChunkSize

// BlobUpload is an upload as the node describes it (spec 09 §9).
type BlobUpload struct {
	ID       string    `json:"upload_id"`
	Size     uint64    `json:"size"`        // declared plaintext bytes
	Stored   uint64    `json:"stored_size"` // ciphertext bytes
	PartSize uint32    `json:"part_size"`
	Parts    uint32    `json:"parts"`
	Done     []uint32  `json:"done"`
	Expires  time.Time `json:"expires"`
}

func (u *BlobUpload) check() error {
	if _, err := hex.DecodeString(u.ID); err != nil || len(u.ID) != 32 {
		return errors.New("bad upload_id")
	}
	if u.PartSize == 0 || u.PartSize%blob.MaxChunkSize != 0 || u.PartSize > maxBlobPart {
		return fmt.Errorf("bad part_size %d", u.PartSize)
	}
	if u.Size > blob.MaxSize || u.Stored != cipherSize(u.Size) || u.Parts != uint32((u.Stored+uint64(u.PartSize)-1)/uint64(u.PartSize)) {
		return errors.New("sizes do not add up")
	}
	for _, n := range u.Done {
		if n >= u.Parts {
			return fmt.Errorf("done part %d out of range", n)
		}
	}
	return nil
}

// BlobInfo describes a stored blob (spec 09 §9).
type BlobInfo struct {
	Address blob.Address `json:"address"`
	Origin  keys.NodeID  `json:"origin"`
	Size    uint64       `json:"size"`
	Stored  uint64       `json:"stored_size"`
	Created time.Time    `json:"created"`
	Expires time.Time    `json:"expires"`
}

func (b *BlobInfo) check() error {
	if b.Address == (blob.Address{}) {
		return errEmpty("address")
	}
	return nil
}

// cipherSize is the ciphertext size of size plaintext bytes.
func cipherSize(size uint64) uint64 {
	return size + blob.Overhead*max(1, (size+wire.BlobChunkSize-1)/wire.BlobChunkSize)
}

// CreateUpload starts an upload of a blob of size plaintext bytes in parts
// of partSize ciphertext bytes (0: the node's default).
func (c *Client) CreateUpload(ctx context.Context, size uint64, partSize uint32) (BlobUpload, error) {
	body := map[string]any{"size": size}
	if partSize != 0 {
		body["part_size"] = partSize
	}
	var u BlobUpload
	err := c.do(ctx, request{method: http.MethodPost, path: "/v1/uploads", body: body, auth: true, want: http.StatusCreated, out: &u})
	return u, err
}

// UploadStatus returns the upload with the parts the node has received.
func (c *Client) UploadStatus(ctx context.Context, id string) (BlobUpload, error) {
	var u BlobUpload
	err := c.do(ctx, request{method: http.MethodGet, path: "/v1/uploads/" + id, auth: true, want: http.StatusOK, out: &u})
	return u, err
}

// AbortUpload deletes an upload and what the node received of it.
func (c *Client) AbortUpload(ctx context.Context, id string) error {
	return c.do(ctx, request{method: http.MethodDelete, path: "/v1/uploads/" + id, auth: true, want: http.StatusNoContent})
}

// DeleteBlob deletes one of the account's blobs.
func (c *Client) DeleteBlob(ctx context.Context, addr blob.Address) error {
	return c.do(ctx, request{method: http.MethodDelete, path: "/v1/blobs/" + addr.String(), auth: true, want: http.StatusNoContent})
}

// raw sends a request with a binary body (or none) and returns the
// response if its status is want, else the *APIError. The caller closes
// the body and then calls cancel.
func (c *Client) raw(ctx context.Context, method, path string, body []byte, hdr http.Header, want ...int) (*http.Response, error) {
	if c.baseErr != nil {
		return nil, c.baseErr
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	if t := c.getToken(); t != "" {
		req.Header.Set("Authorization", "Bearer "+t)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("client: %s %s: %w", method, path, err)
	}
	for _, w := range want {
		if resp.StatusCode == w {
			return resp, nil
		}
	}
	defer func() { _ = resp.Body.Close() }()
	return nil, readAPIError(resp)
}

// PutPart sends part n of an upload: its ciphertext bytes, exactly.
func (c *Client) PutPart(ctx context.Context, id string, n uint32, part []byte) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	resp, err := c.raw(ctx, http.MethodPut, "/v1/uploads/"+id+"/parts/"+strconv.FormatUint(uint64(n), 10), part, nil, http.StatusNoContent)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

// CompleteUpload hands the node the manifest; the node checks the uploaded
// ciphertext against it and stores the blob.
func (c *Client) CompleteUpload(ctx context.Context, id string, manifest []byte) (BlobInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	resp, err := c.raw(ctx, http.MethodPost, "/v1/uploads/"+id+"/complete", manifest, nil, http.StatusOK)
	if err != nil {
		return BlobInfo{}, err
	}
	defer func() { _ = resp.Body.Close() }()
	var info BlobInfo
	if err := decodeAnswer(resp.Body, &info); err != nil {
		return BlobInfo{}, fmt.Errorf("%w: complete: %w", ErrBadResponse, err)
	}
	return info, nil
}

func decodeAnswer(r io.Reader, out interface{ check() error }) error {
	b, err := io.ReadAll(io.LimitReader(r, maxErrorBodySize))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, out); err != nil {
		return err
	}
	return out.check()
}

// BlobManifest fetches the manifest of the blob at addr and checks that it
// is the one addr names.
func (c *Client) BlobManifest(ctx context.Context, addr blob.Address) (*blob.Manifest, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	return c.blobManifest(ctx, addr, "")
}

// originQuery is the query that asks the node to fetch a blob from its
// origin node first if it does not hold it (spec 09 §9).
func originQuery(origin keys.NodeID) string {
	if origin == (keys.NodeID{}) {
		return ""
	}
	return "?origin=" + url.QueryEscape(origin.String())
}

func (c *Client) blobManifest(ctx context.Context, addr blob.Address, query string) (*blob.Manifest, error) {
	resp, err := c.raw(ctx, http.MethodGet, "/v1/blobs/"+addr.String()+"/manifest"+query, nil, nil, http.StatusOK)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(io.LimitReader(resp.Body, blob.MaxManifestSize+1))
	if err != nil {
		return nil, fmt.Errorf("client: reading the manifest: %w", err)
	}
	m, err := blob.VerifyManifest(addr, b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadResponse, err)
	}
	return m, nil
}

// UploadState is what resuming an upload takes. It holds the blob key: keep
// it as secret as the link (it prints as "[blob key]").
type UploadState struct {
	UploadID string
	Key      blob.Key
	Size     uint64
}

// PutBlobOptions tune PutBlob.
type PutBlobOptions struct {
	// PartSize is the part size in ciphertext bytes, a multiple of
	// blob.MaxChunkSize (0: the node's default).
	PartSize uint32
	// Resume continues an upload started earlier with the same plaintext:
	// the parts the node lists as received are not sent again (encryption
	// is deterministic given the key, so they are the same bytes).
	Resume *UploadState
	// OnStart is called once the upload exists, before any part is sent,
	// with what resuming it takes.
	OnStart func(UploadState)
	// Progress is called after each part with the ciphertext bytes done
	// (sent now or before) and the total.
	Progress func(done, total uint64)
	// Rand is the source of the blob key (default crypto/rand).
	Rand io.Reader
	// Parallel is how many parts may be on their way at once (default 2):
	// the next part is encrypted and sent while the node writes and syncs
	// the one before. Parts may then complete out of order; a resumed
	// upload sends whichever the node lacks.
	Parallel int
}

// PutBlob encrypts size bytes read from r under a fresh blob key (spec 08),
// uploads the ciphertext in parts and completes the upload, and returns
// the link that opens the blob. With opts.Resume it continues an earlier
// upload, sending only the parts the node has not received. If it fails
// after OnStart, the upload can be resumed with the state OnStart got.
func (c *Client) PutBlob(ctx context.Context, r io.Reader, size uint64, opts PutBlobOptions) (blob.Link, error) {
	var st UploadState
	var up BlobUpload
	var err error
	if opts.Resume != nil {
		st = *opts.Resume
		if st.Size != size {
			return blob.Link{}, fmt.Errorf("client: resuming an upload of %d bytes with %d", st.Size, size)
		}
		if up, err = c.UploadStatus(ctx, st.UploadID); err != nil {
			return blob.Link{}, err
		}
	} else {
		src := opts.Rand
		if src == nil {
			src = rand.Reader
		}
		if st.Key, err = blob.NewKey(src); err != nil {
			return blob.Link{}, err
		}
		if up, err = c.CreateUpload(ctx, size, opts.PartSize); err != nil {
			return blob.Link{}, err
		}
		st.UploadID, st.Size = up.ID, size
	}
	if up.Size != size {
		return blob.Link{}, fmt.Errorf("%w: the upload is of %d bytes, not %d", ErrBadResponse, up.Size, size)
	}
	if opts.OnStart != nil {
		opts.OnStart(st)
	}
	done := make(map[uint32]bool, len(up.Done))
	for _, n := range up.Done {
		done[n] = true
	}
	parallel := opts.Parallel
	if parallel <= 0 {
		parallel = 2
	}
	// Up to parallel parts are sent at once, each from its own buffer; the
	// first failure cancels the others and ends the encryption.
	pctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		sent uint64
	)
	free := make(chan []byte, parallel)
	for range parallel {
		free <- make([]byte, 0, up.PartSize)
	}
	buf := <-free
	part := uint32(0)
	flush := func() error {
		n, body := part, buf
		part++
		if done[n] {
			buf = body[:0]
			mu.Lock()
			sent += uint64(len(body))
			if opts.Progress != nil {
				opts.Progress(sent, up.Stored)
			}
			mu.Unlock()
			return nil
		}
		wg.Go(func() {
			defer func() { free <- body[:0] }()
			if err := c.PutPart(pctx, up.ID, n, body); err != nil {
				cancel(fmt.Errorf("client: part %d: %w", n, err))
				return
			}
			mu.Lock()
			defer mu.Unlock()
			sent += uint64(len(body))
			if opts.Progress != nil {
				opts.Progress(sent, up.Stored)
			}
		})
		select {
		case buf = <-free:
			return nil
		case <-pctx.Done():
			return context.Cause(pctx)
		}
	}
	m, err := blob.Encrypt(st.Key, r, size, func(_ uint32, chunk []byte) error {
		buf = append(buf, chunk...)
		if len(buf) == int(up.PartSize) {
			return flush()
		}
		return nil
	})
	if err == nil && len(buf) > 0 {
		err = flush()
	}
	wg.Wait()
	if cause := context.Cause(pctx); err == nil && cause != nil {
		err = cause
	}
	if err != nil {
		return blob.Link{}, err
	}
	mb, err := m.MarshalBinary()
	if err != nil {
		return blob.Link{}, err
	}
	info, err := c.CompleteUpload(ctx, up.ID, mb)
	if err != nil {
		return blob.Link{}, err
	}
	if info.Address != m.Address() {
		return blob.Link{}, fmt.Errorf("%w: the node stored %s, the manifest is %s", ErrBadResponse, info.Address, m.Address())
	}
	return blob.Link{Origin: info.Origin, Address: info.Address, Key: st.Key}, nil
}

// GetBlobOptions tune GetBlob.
type GetBlobOptions struct {
	// Progress is called after each chunk with the plaintext bytes written
	// and the total.
	Progress func(done, total uint64)
	// IdleTimeout ends a download that receives nothing for this long
	// (default: the client's request timeout).
	IdleTimeout time.Duration
}

// GetBlob downloads the blob link names from this client's node, which
// first fetches it from the link's origin node if it does not hold it
// (spec 08 §12: that first request waits for the whole fetch, bounded by
// ctx and the nodes' deadlines, not by the client's request timeout), and
// writes its plaintext to w, verifying the manifest against the address,
// the key against the manifest, and every chunk as it arrives (spec 08 §7).
// A chunk that fails stops the download with a *blob.ChunkError naming it;
// what w received before it is authentic but incomplete.
func (c *Client) GetBlob(ctx context.Context, link blob.Link, w io.Writer, opts GetBlobOptions) error {
	q := originQuery(link.Origin)
	mctx, mcancel := ctx, context.CancelFunc(func() {})
	if q == "" {
		mctx, mcancel = context.WithTimeout(ctx, c.timeout)
	}
	m, err := c.blobManifest(mctx, link.Address, q)
	mcancel()
	if err != nil {
		return err
	}
	idle := opts.IdleTimeout
	if idle <= 0 {
		idle = c.timeout
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	watchdog := newWatchdog(idle, cancel)
	defer watchdog.stop()
	resp, err := c.raw(ctx, http.MethodGet, "/v1/blobs/"+link.Address.String()+q, nil, nil, http.StatusOK)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.ContentLength >= 0 && uint64(resp.ContentLength) != cipherSize(m.Size) {
		return fmt.Errorf("%w: the blob has %d bytes, its manifest says %d", ErrBadResponse, resp.ContentLength, cipherSize(m.Size))
	}
	body := &watchedReader{r: resp.Body, w: watchdog}
	chunk := make([]byte, blob.MaxChunkSize)
	var written uint64
	out := writerFunc(func(p []byte) (int, error) {
		n, err := w.Write(p)
		written += uint64(n)
		if opts.Progress != nil {
			opts.Progress(written, m.Size)
		}
		return n, err
	})
	err = blob.Decrypt(link.Key, m, func(i uint32) ([]byte, error) {
		n := blob.MaxChunkSize
		if i+1 == m.ChunkCount {
			n = int(cipherSize(m.Size) - uint64(m.ChunkCount-1)*blob.MaxChunkSize)
		}
		if _, err := io.ReadFull(body, chunk[:n]); err != nil {
			return nil, err
		}
		return chunk[:n], nil
	}, out)
	if err != nil && ctx.Err() != nil && watchdog.fired() {
		return fmt.Errorf("client: download stalled for %v: %w", idle, err)
	}
	return err
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// watchdog cancels a transfer that makes no progress for d.
type watchdog struct {
	d     time.Duration
	t     *time.Timer
	mu    sync.Mutex
	fire  bool
	abort context.CancelFunc
}

func newWatchdog(d time.Duration, abort context.CancelFunc) *watchdog {
	w := &watchdog{d: d, abort: abort}
	w.t = time.AfterFunc(d, func() {
		w.mu.Lock()
		w.fire = true
		w.mu.Unlock()
		abort()
	})
	return w
}

func (w *watchdog) kick() { w.t.Reset(w.d) }
func (w *watchdog) stop() { w.t.Stop() }
func (w *watchdog) fired() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.fire
}

type watchedReader struct {
	r io.Reader
	w *watchdog
}

func (r *watchedReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.w.kick()
	}
	return n, err
}

// PutBlob uploads size bytes of r as a blob (Client.PutBlob), logging in
// as needed. A failure that a retry may cure (the network, a 5xx, an
// expired token) is retried up to three times, resuming the upload, so
// parts the node has are not sent again.
func (s *Session) PutBlob(ctx context.Context, r io.ReaderAt, size uint64, opts PutBlobOptions) (blob.Link, error) {
	var state *UploadState
	onStart := opts.OnStart
	opts.OnStart = func(st UploadState) {
		state = &st
		if onStart != nil {
			onStart(st)
		}
	}
	var link blob.Link
	var err error
	for attempt := 0; ; attempt++ {
		opts.Resume = state
		err = s.authed(ctx, func() error {
			var e error
			link, e = s.c.PutBlob(ctx, io.NewSectionReader(r, 0, int64(size)), size, opts)
			return e
		})
		if err == nil || ctx.Err() != nil || attempt == 3 || !Retryable(err) || state == nil {
			return link, err
		}
		s.log.Info("blob upload interrupted; resuming", "attempt", attempt+1, "err", err)
		if d, ok := RetryAfter(err); ok {
			if err := s.sleep(ctx, min(d, time.Minute)); err != nil {
				return blob.Link{}, err
			}
		}
	}
}

// GetBlob downloads and decrypts the blob of link to w (Client.GetBlob),
// logging in as needed.
func (s *Session) GetBlob(ctx context.Context, link blob.Link, w io.Writer, opts GetBlobOptions) error {
	return s.authed(ctx, func() error { return s.c.GetBlob(ctx, link, w, opts) })
}
