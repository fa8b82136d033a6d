package fakenode

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/parley-chat/parley/protocol/blob"
	"github.com/parley-chat/parley/protocol/wire"
)

// Blob endpoints (spec 09 §9), in memory: uploads in parts, completion
// checked against the manifest, downloads with ranges. Knobs: FailPartsAfter
// interrupts an upload, TamperBlob flips a stored byte, PartsReceived
// counts the parts written.

const (
	defaultPartSize = 64 * blob.MaxChunkSize
	maxPartBody     = wire.MaxBlobPartChunks * blob.MaxChunkSize
	uploadTTL       = 24 * time.Hour
)

type blobState struct {
	mu        sync.Mutex
	maxSize   uint64
	uploads   map[string]*fakeUpload
	blobs     map[blob.Address]*fakeBlob
	received  int
	failAfter int // parts accepted before the node fails them with 503; -1: never
	next      uint64
}

type fakeUpload struct {
	owner    *account
	size     uint64
	partSize uint32
	parts    map[uint32][]byte
	expires  time.Time
}

type fakeBlob struct {
	cipher   []byte
	manifest []byte
}

func cipherSize(size uint64) uint64 {
	return size + blob.Overhead*max(1, (size+wire.BlobChunkSize-1)/wire.BlobChunkSize)
}

func (u *fakeUpload) stored() uint64 { return cipherSize(u.size) }
func (u *fakeUpload) count() uint32 {
	return uint32((u.stored() + uint64(u.partSize) - 1) / uint64(u.partSize))
}

func (n *Node) blobState() *blobState {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.blobs == nil {
		n.blobs = &blobState{maxSize: blob.MaxSize, uploads: map[string]*fakeUpload{}, blobs: map[blob.Address]*fakeBlob{}, failAfter: -1}
	}
	return n.blobs
}

// FailPartsAfter makes the node accept k more parts and then answer every
// part with 503 until it is called with a negative k.
func (n *Node) FailPartsAfter(k int) {
	b := n.blobState()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failAfter = k
}

// SetMaxBlobSize sets the largest blob an upload may declare.
func (n *Node) SetMaxBlobSize(size uint64) {
	b := n.blobState()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.maxSize = size
}

// PartsReceived returns how many parts the node has written.
func (n *Node) PartsReceived() int {
	b := n.blobState()
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.received
}

// TamperBlob flips a bit of the stored ciphertext of addr at offset, as a
// faulty or hostile node would.
func (n *Node) TamperBlob(addr blob.Address, offset int) {
	b := n.blobState()
	b.mu.Lock()
	defer b.mu.Unlock()
	if s := b.blobs[addr]; s != nil {
		s.cipher[offset] ^= 0x10
	}
}

// StoredBlob returns the stored ciphertext of addr.
func (n *Node) StoredBlob(addr blob.Address) []byte {
	b := n.blobState()
	b.mu.Lock()
	defer b.mu.Unlock()
	if s := b.blobs[addr]; s != nil {
		return bytes.Clone(s.cipher)
	}
	return nil
}

func (n *Node) blobRoutes(route func(string, bool, handler)) {
	route("POST /v1/uploads", true, n.createUpload)
	route("GET /v1/uploads/{upload}", true, n.uploadStatus)
	route("DELETE /v1/uploads/{upload}", true, n.abortUpload)
	route("PUT /v1/uploads/{upload}/parts/{part}", true, n.putPart)
	route("POST /v1/uploads/{upload}/complete", true, n.completeUpload)
	route("GET /v1/blobs/{address}", true, n.getBlob)
	route("GET /v1/blobs/{address}/manifest", true, n.getManifest)
	route("DELETE /v1/blobs/{address}", true, n.deleteBlob)
}

func (n *Node) uploadJSON(id string, u *fakeUpload) map[string]any {
	done := []uint32{}
	for i := range u.count() {
		if _, ok := u.parts[i]; ok {
			done = append(done, i)
		}
	}
	return map[string]any{
		"upload_id": id, "size": u.size, "stored_size": u.stored(), "part_size": u.partSize,
		"parts": u.count(), "done": done, "expires": u.expires.UTC().Format("2006-01-02T15:04:05.000Z"),
	}
}

func (n *Node) createUpload(w http.ResponseWriter, r *http.Request, a *account) *apiError {
	var q struct {
		Size     *uint64 `json:"size"`
		PartSize *uint32 `json:"part_size"`
	}
	if e := decode(w, r, maxBody, &q); e != nil {
		return e
	}
	if q.Size == nil {
		return badRequest("missing field \"size\"")
	}
	part := uint32(defaultPartSize)
	if q.PartSize != nil {
		part = *q.PartSize
	}
	if part == 0 || part%blob.MaxChunkSize != 0 || part > maxPartBody {
		return badRequest("bad part_size")
	}
	b := n.blobState()
	b.mu.Lock()
	defer b.mu.Unlock()
	if *q.Size > b.maxSize {
		return fail(http.StatusRequestEntityTooLarge, "too_large", "blob over the node's size limit")
	}
	b.next++
	id := fmt.Sprintf("%032x", b.next)
	u := &fakeUpload{owner: a, size: *q.Size, partSize: part, parts: map[uint32][]byte{}, expires: n.now().Add(uploadTTL)}
	b.uploads[id] = u
	writeJSON(w, http.StatusCreated, n.uploadJSON(id, u))
	return nil
}

func (b *blobState) upload(r *http.Request, a *account) (string, *fakeUpload, *apiError) {
	id := r.PathValue("upload")
	if _, err := hex.DecodeString(id); err != nil || len(id) != 32 {
		return "", nil, badRequest("path: not an upload ID")
	}
	u := b.uploads[id]
	if u == nil || u.owner != a {
		return "", nil, fail(http.StatusNotFound, "not_found", "no such blob or upload")
	}
	return id, u, nil
}

func (n *Node) uploadStatus(w http.ResponseWriter, r *http.Request, a *account) *apiError {
	b := n.blobState()
	b.mu.Lock()
	defer b.mu.Unlock()
	id, u, e := b.upload(r, a)
	if e != nil {
		return e
	}
	writeJSON(w, http.StatusOK, n.uploadJSON(id, u))
	return nil
}

func (n *Node) abortUpload(w http.ResponseWriter, r *http.Request, a *account) *apiError {
	b := n.blobState()
	b.mu.Lock()
	defer b.mu.Unlock()
	id, _, e := b.upload(r, a)
	if e != nil {
		return e
	}
	delete(b.uploads, id)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func octetStream(r *http.Request) *apiError {
	if r.Header.Get("Content-Type") != "application/octet-stream" {
		return fail(http.StatusUnsupportedMediaType, "unsupported_media_type", "body must be application/octet-stream")
	}
	return nil
}

func (n *Node) putPart(w http.ResponseWriter, r *http.Request, a *account) *apiError {
	if e := octetStream(r); e != nil {
		return e
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxPartBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return fail(http.StatusRequestEntityTooLarge, "too_large", "request body too large")
		}
		return badRequest("reading the body")
	}
	b := n.blobState()
	b.mu.Lock()
	defer b.mu.Unlock()
	_, u, e := b.upload(r, a)
	if e != nil {
		return e
	}
	p, err := strconv.ParseUint(r.PathValue("part"), 10, 32)
	if err != nil || uint32(p) >= u.count() {
		return fail(http.StatusBadRequest, "bad_part", "bad part number")
	}
	idx := uint32(p)
	want := min(uint64(u.partSize), u.stored()-uint64(idx)*uint64(u.partSize))
	if uint64(len(body)) != want {
		return fail(http.StatusBadRequest, "bad_part", "part %d has %d bytes, want %d", idx, len(body), want)
	}
	if prev, ok := u.parts[idx]; ok {
		if !bytes.Equal(prev, body) {
			return fail(http.StatusConflict, "part_conflict", "the part was received before with other content")
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if b.failAfter == 0 {
		return fail(http.StatusServiceUnavailable, "unavailable", "the node is busy; retry later")
	}
	if b.failAfter > 0 {
		b.failAfter--
	}
	u.parts[idx] = body
	b.received++
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (n *Node) completeUpload(w http.ResponseWriter, r *http.Request, a *account) *apiError {
	if e := octetStream(r); e != nil {
		return e
	}
	mb, err := io.ReadAll(http.MaxBytesReader(w, r.Body, blob.MaxManifestSize))
	if err != nil {
		return fail(http.StatusRequestEntityTooLarge, "too_large", "request body too large")
	}
	b := n.blobState()
	b.mu.Lock()
	defer b.mu.Unlock()
	id, u, e := b.upload(r, a)
	if e != nil {
		return e
	}
	m, err := blob.ParseManifest(mb)
	if err != nil || m.Size != u.size {
		return fail(http.StatusBadRequest, "bad_blob", "bad manifest")
	}
	if len(u.parts) != int(u.count()) {
		return fail(http.StatusConflict, "upload_incomplete", "parts are missing")
	}
	var all []byte
	for i := range u.count() {
		all = append(all, u.parts[i]...)
	}
	rest := all
	for i := range m.ChunkCount {
		c := rest[:min(len(rest), blob.MaxChunkSize)]
		if err := blob.VerifyChunk(m, i, c); err != nil {
			return fail(http.StatusBadRequest, "bad_blob", "%v", err)
		}
		rest = rest[len(c):]
	}
	addr := m.Address()
	if b.blobs[addr] == nil {
		b.blobs[addr] = &fakeBlob{cipher: all, manifest: mb}
	}
	delete(b.uploads, id)
	now := n.now().UTC().Format("2006-01-02T15:04:05.000Z")
	writeJSON(w, http.StatusOK, map[string]any{
		"address": addr.String(), "origin": n.key.Public().String(), "size": m.Size, "stored_size": len(all),
		"created": now, "expires": now,
	})
	return nil
}

func (b *blobState) stored(r *http.Request) (blob.Address, *fakeBlob, *apiError) {
	addr, err := blob.ParseAddress(r.PathValue("address"))
	if err != nil {
		return addr, nil, badRequest("path: not a blob address")
	}
	s := b.blobs[addr]
	if s == nil {
		return addr, nil, fail(http.StatusNotFound, "not_found", "no such blob or upload")
	}
	return addr, s, nil
}

func (n *Node) getBlob(w http.ResponseWriter, r *http.Request, _ *account) *apiError {
	b := n.blobState()
	b.mu.Lock()
	_, s, e := b.stored(r)
	var c []byte
	if e == nil {
		c = bytes.Clone(s.cipher)
	}
	b.mu.Unlock()
	if e != nil {
		return e
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(c))
	return nil
}

func (n *Node) getManifest(w http.ResponseWriter, r *http.Request, _ *account) *apiError {
	b := n.blobState()
	b.mu.Lock()
	defer b.mu.Unlock()
	_, s, e := b.stored(r)
	if e != nil {
		return e
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	_, _ = w.Write(s.manifest)
	return nil
}

func (n *Node) deleteBlob(w http.ResponseWriter, r *http.Request, _ *account) *apiError {
	b := n.blobState()
	b.mu.Lock()
	defer b.mu.Unlock()
	addr, _, e := b.stored(r)
	if e != nil {
		return e
	}
	delete(b.blobs, addr)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
