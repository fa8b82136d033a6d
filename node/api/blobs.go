package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/parley-chat/parley/protocol/blob"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/wire"
)

// BlobFetcher is implemented by a Blobs that can fetch a blob it does not
// hold from the blob's origin node (spec 08 §12). The download endpoints
// call it when the request names another node as origin; without it they
// serve local blobs only.
type BlobFetcher interface {
	// FetchBlob makes sure the blob at addr is held here, fetching it
	// from origin if it is not. Errors: ErrBlobNotFound (not at the
	// origin either), ErrTakenDown, ErrBlobTooLarge, ErrNodeFull,
	// ErrOriginUnavailable (the origin is unreachable or sent bad data),
	// ErrBusy (the origin, or this node, serves too many fetches; retry
	// later).
	FetchBlob(ctx context.Context, origin keys.NodeID, addr blob.Address) error
}

// BlobStreamer is implemented by a BlobFetcher that can serve a blob while
// it fetches it (spec 08 §12, 09 §9).
type BlobStreamer interface {
	// StreamBlob returns the ciphertext of the blob at addr as it is
	// fetched from origin (joining the fetch in progress, if any), once
	// the fetch has verified the blob's manifest. Read yields only bytes
	// verified against the manifest, io.EOF after the last one, and the
	// fetch's error (as FetchBlob's) if it fails before. If the blob is
	// held here, StreamBlob returns a nil reader: serve it with OpenBlob.
	// Errors: as FetchBlob's, for a fetch that fails before its manifest.
	StreamBlob(ctx context.Context, origin keys.NodeID, addr blob.Address) (io.ReadCloser, BlobInfo, error)
	// FetchingManifest returns the manifest encoding of the blob at addr
	// if a fetch of it is in progress, once that fetch has verified it;
	// ok is false if none is (it does not start one).
	FetchingManifest(ctx context.Context, addr blob.Address) (m []byte, ok bool, err error)
}

// Blob endpoints (spec 09 §9): resumable uploads of ciphertext in parts,
// and downloads of stored blobs by address with range requests. Bodies of
// parts and manifests are application/octet-stream, not JSON.

// Blob errors. The node's adapter wraps the blob store's errors with these.
var (
	// ErrBlobNotFound: no such upload of this account, no such blob, or
	// (deleting) not this account's blob.
	ErrBlobNotFound = errors.New("api: no such blob or upload")
	// ErrBlobTooLarge: the declared size is over the node's limit (413).
	ErrBlobTooLarge = errors.New("api: blob too large")
	// ErrQuota: the account's blob quota is used up (403).
	ErrQuota = errors.New("api: blob quota exceeded")
	// ErrNodeFull: the node's blob storage is full (507).
	ErrNodeFull = errors.New("api: node blob storage full")
	// ErrTooManyUploads: the account has too many uploads open (409).
	ErrTooManyUploads = errors.New("api: too many uploads in progress")
	// ErrBadPart: a part number out of range or a body of the wrong length.
	ErrBadPart = errors.New("api: bad part")
	// ErrPartConflict: a part received before with other bytes (409).
	ErrPartConflict = errors.New("api: part conflict")
	// ErrUploadBusy: another request is working on the same part or
	// upload (409); retry.
	ErrUploadBusy = errors.New("api: upload busy")
	// ErrUploadIncomplete: completing with parts missing (409).
	ErrUploadIncomplete = errors.New("api: upload incomplete")
	// ErrBadBlob: a malformed manifest, or one the uploaded ciphertext does
	// not match (400).
	ErrBadBlob = errors.New("api: bad blob")
	// ErrTakenDown: the blob's address was taken down (410).
	ErrTakenDown = errors.New("api: blob taken down")
	// ErrOriginUnavailable: fetching a blob from its origin node failed:
	// the origin is unreachable, too slow, or broke the fetch protocol or
	// sent a bad manifest or chunk (502 origin_unavailable; retry later).
	ErrOriginUnavailable = errors.New("api: blob origin unavailable")

	errOctetStream = errors.New("api: unsupported media type (want application/octet-stream)")
)

const (
	// maxPartBody bounds the body of a part: wire.MaxBlobPartChunks
	// ciphertext chunks.
	maxPartBody = wire.MaxBlobPartChunks * blob.MaxChunkSize
	// blobIdleTimeout bounds how long a part upload or a download may go
	// without moving a byte (spec 09 §9).
	blobIdleTimeout = 60 * time.Second
	// maxPartBodyTime bounds the whole read of a part's body: at least
	// 32 KiB/s for the largest part.
	maxPartBodyTime = 5 * time.Minute
)

func (s *Server) blobRoutes(handle func(string, handlerFunc)) {
	handle("POST /v1/uploads", s.authed(s.createUpload))
	handle("GET /v1/uploads/{upload}", s.authed(s.uploadStatus))
	handle("DELETE /v1/uploads/{upload}", s.authed(s.abortUpload))
	handle("PUT /v1/uploads/{upload}/parts/{part}", s.authed(s.putPart))
	handle("POST /v1/uploads/{upload}/complete", s.authed(s.completeUpload))
	handle("GET /v1/blobs/{address}", s.authed(s.getBlob))
	handle("GET /v1/blobs/{address}/manifest", s.authed(s.getManifest))
	handle("DELETE /v1/blobs/{address}", s.authed(s.deleteBlob))
}

type createUploadRequest struct {
	Size     *uint64 `json:"size"`
	PartSize *uint32 `json:"part_size"`
}

func (q *createUploadRequest) validate() error {
	if q.Size == nil {
		return missing("size")
	}
	if *q.Size > blob.MaxSize {
		return &detailError{ErrBlobTooLarge, fmt.Sprintf("%d bytes is over the format's limit %d", *q.Size, blob.MaxSize)}
	}
	if q.PartSize != nil && (*q.PartSize == 0 || *q.PartSize%blob.MaxChunkSize != 0 || *q.PartSize > maxPartBody) {
		return badRequest("field \"part_size\": a multiple of %d from %d to %d", blob.MaxChunkSize, blob.MaxChunkSize, maxPartBody)
	}
	return nil
}

type uploadJSON struct {
	UploadID   string   `json:"upload_id"`
	Size       uint64   `json:"size"`
	StoredSize uint64   `json:"stored_size"`
	PartSize   uint32   `json:"part_size"`
	Parts      uint32   `json:"parts"`
	Done       []uint32 `json:"done"`
	Expires    string   `json:"expires"`
}

func toUploadJSON(u BlobUpload) uploadJSON {
	done := u.Done
	if done == nil {
		done = []uint32{}
	}
	return uploadJSON{
		UploadID: fmt.Sprintf("%x", u.ID[:]), Size: u.Size, StoredSize: u.Stored, PartSize: u.PartSize,
		Parts: u.Parts, Done: done, Expires: formatTime(u.Expires),
	}
}

type blobJSON struct {
	Address    string `json:"address"`
	Origin     string `json:"origin"`
	Size       uint64 `json:"size"`
	StoredSize uint64 `json:"stored_size"`
	Created    string `json:"created"`
	Expires    string `json:"expires"`
}

// uploadParam parses the {upload} path segment: 32 lowercase hex digits.
func uploadParam(r *http.Request) ([16]byte, error) {
	var id [16]byte
	v := r.PathValue("upload")
	if len(v) != 32 {
		return id, badRequest("path: not an upload ID (32 lowercase hex digits)")
	}
	for i := range 16 {
		hi, ok1 := hexDigit(v[2*i])
		lo, ok2 := hexDigit(v[2*i+1])
		if !ok1 || !ok2 {
			return id, badRequest("path: not an upload ID (32 lowercase hex digits)")
		}
		id[i] = hi<<4 | lo
	}
	return id, nil
}

func hexDigit(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// partParam parses the {part} path segment: a base-10 uint32 without
// leading zeros or sign.
func partParam(r *http.Request) (uint32, error) {
	v := r.PathValue("part")
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil || (len(v) > 1 && v[0] == '0') || v[0] == '+' {
		return 0, badRequest("path: not a part number")
	}
	return uint32(n), nil
}

// addressParam parses the {address} path segment.
func addressParam(r *http.Request) (blob.Address, error) {
	a, err := blob.ParseAddress(r.PathValue("address"))
	if err != nil {
		return a, badRequest("path: not a blob address (blob_...)")
	}
	return a, nil
}

// originParam returns the node the "origin" query parameter names, if it
// names one other than this node and the blob store can fetch (spec 09
// §9).
func (s *Server) originParam(r *http.Request) (keys.NodeID, bool, error) {
	v, ok := r.URL.Query()["origin"]
	if !ok {
		return keys.NodeID{}, false, nil
	}
	if len(v) != 1 {
		return keys.NodeID{}, false, badRequest("query: origin given %d times", len(v))
	}
	origin, err := keys.ParseNodeID(v[0])
	if err != nil {
		return keys.NodeID{}, false, badRequest("query: origin is not a node ID")
	}
	if _, ok := s.deps.Blobs.(BlobFetcher); !ok || origin.String() == s.cfg.NodeID {
		return keys.NodeID{}, false, nil
	}
	return origin, true, nil
}

// checkOctetStream requires Content-Type application/octet-stream, without
// parameters.
func checkOctetStream(r *http.Request) error {
	v := r.Header.Values("Content-Type")
	if len(v) != 1 {
		return errOctetStream
	}
	mt, params, err := mime.ParseMediaType(v[0])
	if err != nil || mt != "application/octet-stream" || len(params) > 0 {
		return errOctetStream
	}
	return nil
}

// spec 09 §9
func (s *Server) createUpload(w http.ResponseWriter, r *http.Request) error {
	acct := accountFrom(r.Context())
	if acct.Suspended {
		return ErrSuspended
	}
	var q createUploadRequest
	if err := decode(w, r, s.cfg.MaxBodyBytes, &q); err != nil {
		return err
	}
	var part uint32
	if q.PartSize != nil {
		part = *q.PartSize
	}
	u, err := s.deps.Blobs.CreateUpload(r.Context(), acct.ID, *q.Size, part)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, toUploadJSON(u))
	return nil
}

// spec 09 §9
func (s *Server) uploadStatus(w http.ResponseWriter, r *http.Request) error {
	id, err := uploadParam(r)
	if err != nil {
		return err
	}
	u, err := s.deps.Blobs.UploadStatus(r.Context(), accountFrom(r.Context()).ID, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toUploadJSON(u))
	return nil
}

// spec 09 §9
func (s *Server) abortUpload(w http.ResponseWriter, r *http.Request) error {
	id, err := uploadParam(r)
	if err != nil {
		return err
	}
	if err := requireEmptyBody(r); err != nil {
		return err
	}
	if err := s.deps.Blobs.AbortUpload(r.Context(), accountFrom(r.Context()).ID, id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// bodyReader remembers the error its reader failed with, so that a part
// cut short by the client is told apart from the store's own failures.
type bodyReader struct {
	r   io.Reader
	err error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		b.err = err
	}
	return n, err
}

// spec 09 §9
func (s *Server) putPart(w http.ResponseWriter, r *http.Request) error {
	id, err := uploadParam(r)
	if err != nil {
		return err
	}
	n, err := partParam(r)
	if err != nil {
		return err
	}
	if err := checkOctetStream(r); err != nil {
		return err
	}
	if r.ContentLength > maxPartBody {
		return errTooLarge
	}
	// A deadline for the whole body; errors (a recorder in tests) leave the
	// server's own timeouts.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(maxPartBodyTime))
	body := &bodyReader{r: http.MaxBytesReader(w, r.Body, maxPartBody)}
	err = s.deps.Blobs.PutPart(r.Context(), accountFrom(r.Context()).ID, id, n, body)
	if _, ok := errors.AsType[*http.MaxBytesError](body.err); ok {
		return errTooLarge
	}
	if err != nil && body.err != nil {
		return badRequest("reading the body: %v", body.err)
	}
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// spec 09 §9
func (s *Server) completeUpload(w http.ResponseWriter, r *http.Request) error {
	id, err := uploadParam(r)
	if err != nil {
		return err
	}
	if err := checkOctetStream(r); err != nil {
		return err
	}
	if r.ContentLength > blob.MaxManifestSize {
		return errTooLarge
	}
	m, err := io.ReadAll(http.MaxBytesReader(w, r.Body, blob.MaxManifestSize))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return errTooLarge
		}
		return badRequest("reading the body: %v", err)
	}
	info, err := s.deps.Blobs.CompleteUpload(r.Context(), accountFrom(r.Context()).ID, id, m)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, blobJSON{
		Address: info.Address.String(), Origin: s.cfg.NodeID, Size: info.Size, StoredSize: info.Stored,
		Created: formatTime(info.Created), Expires: formatTime(info.Expires),
	})
	return nil
}

// progressWriter moves the connection's write deadline forward before
// every write, so a download may take as long as it needs while it moves.
type progressWriter struct {
	http.ResponseWriter
	rc *http.ResponseController
}

func (p *progressWriter) Write(b []byte) (int, error) {
	_ = p.rc.SetWriteDeadline(time.Now().Add(blobIdleTimeout))
	return p.ResponseWriter.Write(b)
}

func (p *progressWriter) Unwrap() http.ResponseWriter { return p.ResponseWriter }

// spec 09 §9: any authenticated account may download any blob by address;
// it is ciphertext, and its address cannot be guessed. With ?origin=, a
// blob this node lacks is fetched from that node: a plain GET streams the
// chunks as the fetch verifies them (streamBlob); a HEAD, a Range or a
// conditional request waits for the whole fetch.
func (s *Server) getBlob(w http.ResponseWriter, r *http.Request) error {
	addr, err := addressParam(r)
	if err != nil {
		return err
	}
	origin, fetch, err := s.originParam(r)
	if err != nil {
		return err
	}
	bs, stream := s.deps.Blobs.(BlobStreamer)
	switch {
	case fetch && stream && streamable(r):
		served, err := s.streamBlob(w, r, bs, origin, addr)
		if served || err != nil {
			return err
		}
	case fetch:
		if err := s.deps.Blobs.(BlobFetcher).FetchBlob(r.Context(), origin, addr); err != nil {
			return err
		}
	}
	content, info, err := s.deps.Blobs.OpenBlob(r.Context(), addr)
	if err != nil {
		return err
	}
	defer func() { _ = content.Close() }()
	setBlobHeaders(w.Header(), addr, info)
	http.ServeContent(&progressWriter{ResponseWriter: w, rc: http.NewResponseController(w)}, r, "", time.Time{}, content)
	return nil
}

func setBlobHeaders(h http.Header, addr blob.Address, info BlobInfo) {
	h.Set("Content-Type", "application/octet-stream")
	h.Set("ETag", `"`+addr.String()+`"`)
	h.Set("Parley-Blob-Size", strconv.FormatUint(info.Size, 10))
}

// streamable: a GET that is not a Range or conditional request, which a
// blob being fetched answers as it arrives.
func streamable(r *http.Request) bool {
	if r.Method != http.MethodGet {
		return false
	}
	for _, k := range []string{"Range", "If-Range", "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since"} {
		if _, ok := r.Header[k]; ok {
			return false
		}
	}
	return true
}

// streamChunk is the buffer of a streamed download.
const streamChunk = 256 << 10

// streamBlob answers a GET of a blob being fetched from origin with its
// bytes as the fetch verifies them (spec 09 §9, 08 §12); served is false
// when the blob is held here (the caller serves it). A fetch that fails
// before the first byte is sent is an error answer (502 origin_unavailable
// and the like); one that fails after ends the response abnormally (the
// connection or stream is aborted), so the client sees a truncated body,
// never a clean end.
func (s *Server) streamBlob(w http.ResponseWriter, r *http.Request, bs BlobStreamer, origin keys.NodeID, addr blob.Address) (served bool, err error) {
	body, info, err := bs.StreamBlob(r.Context(), origin, addr)
	if err != nil || body == nil {
		return false, err
	}
	defer func() { _ = body.Close() }()
	buf := make([]byte, streamChunk)
	n, err := body.Read(buf)
	if n == 0 && err != nil {
		if errors.Is(err, io.EOF) {
			err = fmt.Errorf("%w: empty stream", ErrOriginUnavailable)
		}
		return true, err
	}
	setBlobHeaders(w.Header(), addr, info)
	w.Header().Set("Content-Length", strconv.FormatUint(info.Stored, 10))
	pw := &progressWriter{ResponseWriter: w, rc: http.NewResponseController(w)}
	w.WriteHeader(http.StatusOK)
	for {
		if n > 0 {
			if _, werr := pw.Write(buf[:n]); werr != nil {
				return true, nil // the client is gone
			}
		}
		switch {
		case errors.Is(err, io.EOF):
			// The last bytes go out now, not after the fetch's final sync.
			_ = pw.rc.Flush()
			return true, nil
		case err != nil:
			s.log.Warn("blob fetch failed while streaming it", "err", err)
			panic(http.ErrAbortHandler) // no clean end: the client sees a truncated body
		}
		n, err = body.Read(buf)
	}
}

// spec 09 §9; with ?origin=, as getBlob, but for a blob being fetched,
// which is answered as soon as its fetch has verified the manifest.
func (s *Server) getManifest(w http.ResponseWriter, r *http.Request) error {
	addr, err := addressParam(r)
	if err != nil {
		return err
	}
	origin, fetch, err := s.originParam(r)
	if err != nil {
		return err
	}
	var m []byte
	if bs, ok := s.deps.Blobs.(BlobStreamer); fetch && ok {
		if m, _, err = bs.FetchingManifest(r.Context(), addr); err != nil {
			return err
		}
	}
	if fetch && m == nil {
		if err := s.deps.Blobs.(BlobFetcher).FetchBlob(r.Context(), origin, addr); err != nil {
			return err
		}
	}
	if m == nil {
		if m, err = s.deps.Blobs.BlobManifest(r.Context(), addr); err != nil {
			return err
		}
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(m)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(m) //nolint:gosec // G705: binary, served as application/octet-stream with nosniff
	return nil
}

// spec 09 §9
func (s *Server) deleteBlob(w http.ResponseWriter, r *http.Request) error {
	addr, err := addressParam(r)
	if err != nil {
		return err
	}
	if err := requireEmptyBody(r); err != nil {
		return err
	}
	if err := s.deps.Blobs.DeleteBlob(r.Context(), accountFrom(r.Context()).ID, addr); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
