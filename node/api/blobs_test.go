package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/protocol/blob"
	"github.com/parley-chat/parley/protocol/keys"
)

// fakeBlobs is an in-memory Blobs: one upload at a time is enough here.
type fakeBlobs struct {
	mu     sync.Mutex
	calls  []string
	fail   error // returned by the next call, if set
	owner  keys.AccountID
	size   uint64
	parts  map[uint32][]byte
	stored map[blob.Address][]byte
}

var _ Blobs = (*fakeBlobs)(nil)

const fakePart = 2 * blob.MaxChunkSize

func newFakeBlobs() *fakeBlobs {
	return &fakeBlobs{parts: map[uint32][]byte{}, stored: map[blob.Address][]byte{}}
}

func (f *fakeBlobs) call(name string) error {
	f.calls = append(f.calls, name)
	err := f.fail
	f.fail = nil
	return err
}

func (f *fakeBlobs) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *fakeBlobs) upload() BlobUpload {
	st := f.size + 16*max(1, (f.size+65535)/65536)
	done := []uint32{}
	for n := range f.parts {
		done = append(done, n)
	}
	slices.Sort(done)
	return BlobUpload{ID: [16]byte{0xab}, Size: f.size, Stored: st, PartSize: fakePart, Parts: uint32((st + fakePart - 1) / fakePart), Done: done, Expires: t0.Add(time.Hour)}
}

func (f *fakeBlobs) CreateUpload(_ context.Context, acct keys.AccountID, size uint64, partSize uint32) (BlobUpload, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call(fmt.Sprintf("create %d %d", size, partSize)); err != nil {
		return BlobUpload{}, err
	}
	f.owner, f.size, f.parts = acct, size, map[uint32][]byte{}
	return f.upload(), nil
}

func (f *fakeBlobs) PutPart(_ context.Context, acct keys.AccountID, id [16]byte, n uint32, body io.Reader) error {
	b, err := io.ReadAll(body)
	f.mu.Lock()
	defer f.mu.Unlock()
	if cerr := f.call(fmt.Sprintf("put %d", n)); cerr != nil {
		return cerr
	}
	if err != nil {
		return fmt.Errorf("fake: %w", err)
	}
	if acct != f.owner || id != [16]byte{0xab} {
		return ErrBlobNotFound
	}
	f.parts[n] = b
	return nil
}

func (f *fakeBlobs) UploadStatus(_ context.Context, acct keys.AccountID, id [16]byte) (BlobUpload, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("status"); err != nil {
		return BlobUpload{}, err
	}
	if acct != f.owner || id != [16]byte{0xab} {
		return BlobUpload{}, ErrBlobNotFound
	}
	return f.upload(), nil
}

func (f *fakeBlobs) CompleteUpload(_ context.Context, acct keys.AccountID, id [16]byte, manifest []byte) (BlobInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("complete"); err != nil {
		return BlobInfo{}, err
	}
	if acct != f.owner || id != [16]byte{0xab} {
		return BlobInfo{}, ErrBlobNotFound
	}
	m, err := blob.ParseManifest(manifest)
	if err != nil {
		return BlobInfo{}, fmt.Errorf("%w: %w", ErrBadBlob, err)
	}
	var all []byte
	for n := range uint32(len(f.parts)) {
		all = append(all, f.parts[n]...)
	}
	f.stored[m.Address()] = all
	return BlobInfo{Address: m.Address(), Size: m.Size, Stored: uint64(len(all)), Created: t0, Expires: t0.Add(24 * time.Hour)}, nil
}

func (f *fakeBlobs) AbortUpload(_ context.Context, _ keys.AccountID, _ [16]byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.call("abort")
}

type nopSeekCloser struct{ *bytes.Reader }

func (nopSeekCloser) Close() error { return nil }

func (f *fakeBlobs) OpenBlob(_ context.Context, addr blob.Address) (BlobContent, BlobInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("open"); err != nil {
		return nil, BlobInfo{}, err
	}
	b, ok := f.stored[addr]
	if !ok {
		return nil, BlobInfo{}, ErrBlobNotFound
	}
	return nopSeekCloser{bytes.NewReader(b)}, BlobInfo{Address: addr, Size: 7, Stored: uint64(len(b))}, nil
}

func (f *fakeBlobs) BlobManifest(_ context.Context, addr blob.Address) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("manifest"); err != nil {
		return nil, err
	}
	if _, ok := f.stored[addr]; !ok {
		return nil, ErrBlobNotFound
	}
	return []byte("manifest of " + addr.String()), nil
}

func (f *fakeBlobs) DeleteBlob(_ context.Context, _ keys.AccountID, addr blob.Address) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("delete"); err != nil {
		return err
	}
	if _, ok := f.stored[addr]; !ok {
		return ErrBlobNotFound
	}
	delete(f.stored, addr)
	return nil
}

func newBlobHarness(t *testing.T) (*harness, *fakeBlobs) {
	fb := newFakeBlobs()
	h := newHarness(t, func(c *Config, d *Deps) {
		noLimits(c, d)
		d.Blobs = fb
	})
	return h, fb
}

// sealTestBlob encrypts size bytes and returns the ciphertext and manifest.
func sealTestBlob(t *testing.T, size int) (cipher, manifest []byte, addr blob.Address) {
	t.Helper()
	var key blob.Key
	key[0] = 7
	m, err := blob.Encrypt(key, bytes.NewReader(bytes.Repeat([]byte{'p'}, size)), uint64(size), func(_ uint32, c []byte) error {
		cipher = append(cipher, c...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	manifest, _ = m.MarshalBinary()
	return cipher, manifest, m.Address()
}

// spec 09 §9: the whole flow over HTTP, with a range request.
func TestBlobFlow(t *testing.T) {
	h, _ := newBlobHarness(t)
	cipher, manifest, addr := sealTestBlob(t, 3*65536+5)
	tok := h.alice.token

	status, _, body := h.do(request{method: "POST", path: "/v1/uploads", token: tok, body: `{"size":196613}`})
	if status != 201 {
		t.Fatalf("POST /v1/uploads = %d %s", status, body)
	}
	var up uploadJSON
	if err := json.Unmarshal(body, &up); err != nil {
		t.Fatal(err)
	}
	id := strings.Repeat("0", 32)
	id = "ab" + id[2:]
	if up.UploadID != id || up.Parts != 2 || up.StoredSize != uint64(len(cipher)) || up.Done == nil || up.Expires == "" {
		t.Fatalf("create answer = %s", body)
	}
	for n := range up.Parts {
		part := cipher[int(n)*fakePart : min(int(n+1)*fakePart, len(cipher))]
		status, _, body = h.do(request{method: "PUT", path: fmt.Sprintf("/v1/uploads/%s/parts/%d", id, n), token: tok, body: string(part), contentType: "application/octet-stream"})
		if status != 204 {
			t.Fatalf("PUT part %d = %d %s", n, status, body)
		}
	}
	status, _, body = h.do(request{method: "GET", path: "/v1/uploads/" + id, token: tok})
	if status != 200 || !strings.Contains(string(body), `"done":[0,1]`) {
		t.Fatalf("GET upload = %d %s, want both parts done", status, body)
	}
	status, _, body = h.do(request{method: "POST", path: "/v1/uploads/" + id + "/complete", token: tok, body: string(manifest), contentType: "application/octet-stream"})
	var bj blobJSON
	if status != 200 || json.Unmarshal(body, &bj) != nil || bj.Address != addr.String() || bj.Origin != h.fake.node.Public().String() {
		t.Fatalf("complete = %d %s", status, body)
	}
	// Any account downloads it, whole or by range.
	status, hdr, body := h.do(request{method: "GET", path: "/v1/blobs/" + addr.String(), token: h.carol.token})
	if status != 200 || !bytes.Equal(body, cipher) || hdr.Get("Content-Type") != "application/octet-stream" || hdr.Get("Accept-Ranges") != "bytes" {
		t.Fatalf("GET blob = %d (%d bytes, %v)", status, len(body), hdr)
	}
	status, _, body = h.do(request{method: "GET", path: "/v1/blobs/" + addr.String(), token: h.bob.token, header: http.Header{"Range": {"bytes=65552-65561"}}})
	if status != 206 || !bytes.Equal(body, cipher[65552:65562]) {
		t.Fatalf("GET blob range = %d %q", status, body)
	}
	status, _, body = h.do(request{method: "GET", path: "/v1/blobs/" + addr.String(), token: h.bob.token, header: http.Header{"Range": {"bytes=999999-"}}})
	if status != 416 {
		t.Fatalf("GET blob past its end = %d %s, want 416", status, body)
	}
	status, _, body = h.do(request{method: "GET", path: "/v1/blobs/" + addr.String() + "/manifest", token: tok})
	if status != 200 || string(body) != "manifest of "+addr.String() {
		t.Fatalf("GET manifest = %d %s", status, body)
	}
	status, _, body = h.do(request{method: "DELETE", path: "/v1/blobs/" + addr.String(), token: tok})
	if status != 204 {
		t.Fatalf("DELETE blob = %d %s", status, body)
	}
	status, _, body = h.do(request{method: "GET", path: "/v1/blobs/" + addr.String(), token: tok})
	if status != 404 || errorCode(body) != "not_found" {
		t.Fatalf("GET deleted blob = %d %s", status, body)
	}
}

// spec 09 §9: bad input is refused before the blob store is called.
func TestBlobBadInput(t *testing.T) {
	h, fb := newBlobHarness(t)
	_, _, addr := sealTestBlob(t, 1)
	id := "ab" + strings.Repeat("0", 30)
	tok := h.alice.token
	bin := "application/octet-stream"
	big := strings.Repeat("x", maxPartBody+1)
	for _, tc := range []struct {
		name       string
		q          request
		wantStatus int
		wantCode   string
	}{
		{"create without a token", request{method: "POST", path: "/v1/uploads", body: `{"size":1}`}, 401, "unauthenticated"},
		{"create without size", request{method: "POST", path: "/v1/uploads", token: tok, body: `{}`}, 400, "bad_request"},
		{"create with a string size", request{method: "POST", path: "/v1/uploads", token: tok, body: `{"size":"1"}`}, 400, "bad_request"},
		{"create with a negative size", request{method: "POST", path: "/v1/uploads", token: tok, body: `{"size":-1}`}, 400, "bad_request"},
		{"create over the format's limit", request{method: "POST", path: "/v1/uploads", token: tok, body: `{"size":2147483649}`}, 413, "too_large"},
		{"create with part size 0", request{method: "POST", path: "/v1/uploads", token: tok, body: `{"size":1,"part_size":0}`}, 400, "bad_request"},
		{"create with an odd part size", request{method: "POST", path: "/v1/uploads", token: tok, body: `{"size":1,"part_size":65536}`}, 400, "bad_request"},
		{"create with a part too large", request{method: "POST", path: "/v1/uploads", token: tok, body: `{"size":1,"part_size":` + strconv.Itoa(maxPartBody+blob.MaxChunkSize) + `}`}, 400, "bad_request"},
		{"create with an unknown field", request{method: "POST", path: "/v1/uploads", token: tok, body: `{"size":1,"key":"x"}`}, 400, "bad_request"},
		{"create as octet-stream", request{method: "POST", path: "/v1/uploads", token: tok, body: `{"size":1}`, contentType: bin}, 415, "unsupported_media_type"},
		{"status of a short ID", request{method: "GET", path: "/v1/uploads/abc", token: tok}, 400, "bad_request"},
		{"status of an upper-case ID", request{method: "GET", path: "/v1/uploads/AB" + strings.Repeat("0", 30), token: tok}, 400, "bad_request"},
		{"part 01", request{method: "PUT", path: "/v1/uploads/" + id + "/parts/01", token: tok, body: "x", contentType: bin}, 400, "bad_request"},
		{"part -1", request{method: "PUT", path: "/v1/uploads/" + id + "/parts/-1", token: tok, body: "x", contentType: bin}, 400, "bad_request"},
		{"part +1", request{method: "PUT", path: "/v1/uploads/" + id + "/parts/+1", token: tok, body: "x", contentType: bin}, 400, "bad_request"},
		{"part 2^32", request{method: "PUT", path: "/v1/uploads/" + id + "/parts/4294967296", token: tok, body: "x", contentType: bin}, 400, "bad_request"},
		{"part as JSON", request{method: "PUT", path: "/v1/uploads/" + id + "/parts/0", token: tok, body: "x"}, 415, "unsupported_media_type"},
		{"part without a type", request{method: "PUT", path: "/v1/uploads/" + id + "/parts/0", token: tok, body: "x", noCT: true}, 415, "unsupported_media_type"},
		{"part with type parameters", request{method: "PUT", path: "/v1/uploads/" + id + "/parts/0", token: tok, body: "x", contentType: bin + "; x=y"}, 415, "unsupported_media_type"},
		{"part too large", request{method: "PUT", path: "/v1/uploads/" + id + "/parts/0", token: tok, body: big, contentType: bin}, 413, "too_large"},
		{"part without a token", request{method: "PUT", path: "/v1/uploads/" + id + "/parts/0", body: "x", contentType: bin}, 401, "unauthenticated"},
		{"complete as JSON", request{method: "POST", path: "/v1/uploads/" + id + "/complete", token: tok, body: "{}"}, 415, "unsupported_media_type"},
		{"complete with a huge manifest", request{method: "POST", path: "/v1/uploads/" + id + "/complete", token: tok, body: strings.Repeat("m", blob.MaxManifestSize+1), contentType: bin}, 413, "too_large"},
		{"abort with a body", request{method: "DELETE", path: "/v1/uploads/" + id, token: tok, body: "{}"}, 400, "bad_request"},
		{"blob with a bad address", request{method: "GET", path: "/v1/blobs/blob_xyz", token: tok}, 400, "bad_request"},
		{"blob with an upper-case address", request{method: "GET", path: "/v1/blobs/" + strings.ToUpper(addr.String()), token: tok}, 400, "bad_request"},
		{"blob without a token", request{method: "GET", path: "/v1/blobs/" + addr.String()}, 401, "unauthenticated"},
		{"manifest with a bad address", request{method: "GET", path: "/v1/blobs/x/manifest", token: tok}, 400, "bad_request"},
		{"delete with a body", request{method: "DELETE", path: "/v1/blobs/" + addr.String(), token: tok, body: "{}"}, 400, "bad_request"},
		{"put on a blob", request{method: "PUT", path: "/v1/blobs/" + addr.String(), token: tok, body: "x", contentType: bin}, 405, "method_not_allowed"},
	} {
		status, _, body := h.do(tc.q)
		if status != tc.wantStatus || errorCode(body) != tc.wantCode {
			t.Errorf("%s: %s %s = %d %s, want %d %s", tc.name, tc.q.method, tc.q.path, status, body, tc.wantStatus, tc.wantCode)
		}
		if calls := fb.Calls(); len(calls) != 0 {
			t.Errorf("%s: called the blob store: %v", tc.name, calls)
			fb.mu.Lock()
			fb.calls = nil
			fb.mu.Unlock()
		}
	}
}

// spec 09 §9: the blob store's errors as statuses and codes.
func TestBlobErrors(t *testing.T) {
	h, fb := newBlobHarness(t)
	id := "ab" + strings.Repeat("0", 30)
	tok := h.alice.token
	for _, tc := range []struct {
		err        error
		q          request
		wantStatus int
		wantCode   string
	}{
		{ErrBlobTooLarge, request{method: "POST", path: "/v1/uploads", token: tok, body: `{"size":5}`}, 413, "too_large"},
		{ErrQuota, request{method: "POST", path: "/v1/uploads", token: tok, body: `{"size":5}`}, 403, "quota_exceeded"},
		{ErrNodeFull, request{method: "POST", path: "/v1/uploads", token: tok, body: `{"size":5}`}, 507, "node_full"},
		{ErrTooManyUploads, request{method: "POST", path: "/v1/uploads", token: tok, body: `{"size":5}`}, 409, "too_many_uploads"},
		{ErrBadPart, request{method: "PUT", path: "/v1/uploads/" + id + "/parts/0", token: tok, body: "x", contentType: "application/octet-stream"}, 400, "bad_part"},
		{ErrPartConflict, request{method: "PUT", path: "/v1/uploads/" + id + "/parts/0", token: tok, body: "x", contentType: "application/octet-stream"}, 409, "part_conflict"},
		{ErrUploadBusy, request{method: "PUT", path: "/v1/uploads/" + id + "/parts/0", token: tok, body: "x", contentType: "application/octet-stream"}, 409, "upload_busy"},
		{ErrBlobNotFound, request{method: "GET", path: "/v1/uploads/" + id, token: tok}, 404, "not_found"},
		{ErrUploadIncomplete, request{method: "POST", path: "/v1/uploads/" + id + "/complete", token: tok, body: "m", contentType: "application/octet-stream"}, 409, "upload_incomplete"},
		{ErrBadBlob, request{method: "POST", path: "/v1/uploads/" + id + "/complete", token: tok, body: "m", contentType: "application/octet-stream"}, 400, "bad_blob"},
		{ErrTakenDown, request{method: "POST", path: "/v1/uploads/" + id + "/complete", token: tok, body: "m", contentType: "application/octet-stream"}, 410, "taken_down"},
	} {
		fb.mu.Lock()
		fb.fail = fmt.Errorf("wrapped: %w", tc.err)
		fb.mu.Unlock()
		status, _, body := h.do(tc.q)
		if status != tc.wantStatus || errorCode(body) != tc.wantCode {
			t.Errorf("%v: %s %s = %d %s, want %d %s", tc.err, tc.q.method, tc.q.path, status, body, tc.wantStatus, tc.wantCode)
		}
	}
}

// spec 09 §1: a suspended account cannot start an upload.
func TestBlobSuspended(t *testing.T) {
	h, fb := newBlobHarness(t)
	h.fake.addUser(h.carol, true)
	status, _, body := h.do(request{method: "POST", path: "/v1/uploads", token: h.carol.token, body: `{"size":5}`})
	if status != 403 || errorCode(body) != "suspended" || len(fb.Calls()) != 0 {
		t.Fatalf("create by a suspended account = %d %s, calls %v", status, body, fb.Calls())
	}
}

// Without a blob store the endpoints do not exist.
func TestBlobsOptional(t *testing.T) {
	h := newHarness(t, noLimits)
	status, _, body := h.do(request{method: "POST", path: "/v1/uploads", token: h.alice.token, body: `{"size":5}`})
	if status != 404 || errorCode(body) != "not_found" {
		t.Fatalf("POST /v1/uploads without Blobs = %d %s", status, body)
	}
}

// fetchingBlobs is a fakeBlobs that can fetch from other nodes: a fetch
// stores the blob, or fails with err.
type fetchingBlobs struct {
	*fakeBlobs
	origins []keys.NodeID
	err     error
}

func (f *fetchingBlobs) FetchBlob(_ context.Context, origin keys.NodeID, addr blob.Address) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.origins = append(f.origins, origin)
	if f.err != nil {
		return f.err
	}
	f.stored[addr] = []byte("fetched")
	return nil
}

// spec 09 §9, spec 08 §12: ?origin= naming another node makes the node
// fetch the blob first; naming this node, or no origin, does not; a bad
// origin is 400; a fetch's errors map to their statuses.
func TestBlobOrigin(t *testing.T) {
	fb := &fetchingBlobs{fakeBlobs: newFakeBlobs()}
	h := newHarness(t, func(c *Config, d *Deps) {
		noLimits(c, d)
		d.Blobs = fb
	})
	other, err := keys.NodeKeyFromSeed(bytes.Repeat([]byte{9}, 32))
	if err != nil {
		t.Fatal(err)
	}
	tok := h.bob.token
	_, _, addr := sealTestBlob(t, 10)
	path := "/v1/blobs/" + addr.String()

	if status, _, body := h.do(request{method: "GET", path: path + "?origin=" + h.fake.node.Public().String(), token: tok}); status != 404 || len(fb.origins) != 0 {
		t.Fatalf("GET with this node as origin = %d %s, %d fetches", status, body, len(fb.origins))
	}
	if status, _, body := h.do(request{method: "GET", path: path + "?origin=nonsense", token: tok}); status != 400 || len(fb.origins) != 0 {
		t.Fatalf("GET with a bad origin = %d %s", status, body)
	}
	fb.err = fmt.Errorf("wrapped: %w", ErrTakenDown)
	if status, _, body := h.do(request{method: "GET", path: path + "/manifest?origin=" + other.Public().String(), token: tok}); status != 410 || errorCode(body) != "taken_down" {
		t.Fatalf("GET manifest of a blob taken down at the origin = %d %s", status, body)
	}
	fb.err = fmt.Errorf("wrapped: %w", ErrBusy)
	if status, _, body := h.do(request{method: "GET", path: path + "?origin=" + other.Public().String(), token: tok}); status != 503 {
		t.Fatalf("GET with the origin unreachable = %d %s", status, body)
	}
	fb.err = nil
	status, _, body := h.do(request{method: "GET", path: path + "?origin=" + other.Public().String(), token: tok})
	if status != 200 || string(body) != "fetched" {
		t.Fatalf("GET after a fetch = %d %s", status, body)
	}
	if status, _, body := h.do(request{method: "GET", path: path + "/manifest?origin=" + other.Public().String(), token: tok}); status != 200 {
		t.Fatalf("GET manifest after a fetch = %d %s", status, body)
	}
	if len(fb.origins) != 4 || fb.origins[3] != other.Public() {
		t.Fatalf("fetches from %v, want 4 from %v", fb.origins, other.Public())
	}
}

// streamingBlobs is a fetchingBlobs that streams: StreamBlob yields
// body, then fails with failErr if it is set (before any byte if body is
// empty), or ends.
type streamingBlobs struct {
	*fetchingBlobs
	body    []byte
	total   uint64
	failErr error
	streams int
	running []byte // the manifest of a fetch in progress, if any
}

func (f *streamingBlobs) FetchingManifest(context.Context, blob.Address) ([]byte, bool, error) {
	return f.running, f.running != nil, nil
}

func (f *streamingBlobs) StreamBlob(_ context.Context, _ keys.NodeID, addr blob.Address) (io.ReadCloser, BlobInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.streams++
	if _, ok := f.stored[addr]; ok {
		return nil, BlobInfo{}, nil
	}
	return io.NopCloser(io.MultiReader(bytes.NewReader(f.body), failingReader{f.failErr})),
		BlobInfo{Address: addr, Size: 7, Stored: f.total}, nil
}

type failingReader struct{ err error }

func (r failingReader) Read([]byte) (int, error) {
	if r.err == nil {
		return 0, io.EOF
	}
	return 0, r.err
}

// spec 09 §9, spec 08 §12: a plain GET of a blob being fetched streams
// it; a fetch that fails before the first byte is an error answer, one
// that fails after it ends the response abnormally (a truncated body,
// never a clean end); a Range request waits for the whole fetch.
func TestBlobStreamedFromOrigin(t *testing.T) {
	sb := &streamingBlobs{fetchingBlobs: &fetchingBlobs{fakeBlobs: newFakeBlobs()}}
	h := newHarness(t, func(c *Config, d *Deps) {
		noLimits(c, d)
		d.Blobs = sb
	})
	other, err := keys.NodeKeyFromSeed(bytes.Repeat([]byte{9}, 32))
	if err != nil {
		t.Fatal(err)
	}
	_, _, addr := sealTestBlob(t, 10)
	url := h.ts.URL + "/v1/blobs/" + addr.String() + "?origin=" + other.Public().String()
	type answer struct {
		StatusCode    int
		ContentLength int64
		Header        http.Header
	}
	get := func(header http.Header) (answer, []byte, error) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		maps.Copy(req.Header, header)
		req.Header.Set("Authorization", "Bearer "+h.bob.token)
		resp, err := h.ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return answer{resp.StatusCode, resp.ContentLength, resp.Header}, b, err
	}

	full := bytes.Repeat([]byte("0123456789abcdef"), 40000) // 640,000 bytes: several writes
	sb.body, sb.total = full, uint64(len(full))
	resp, b, err := get(nil)
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(b, full) || resp.ContentLength != int64(len(full)) || resp.Header.Get("Parley-Blob-Size") != "7" {
		t.Fatalf("streamed GET = %d, %d of %d bytes, Content-Length %d, %v", resp.StatusCode, len(b), len(full), resp.ContentLength, err)
	}

	// Failing after 300,000 bytes: the client sees a truncated body.
	sb.body, sb.failErr = full[:300000], fmt.Errorf("wrapped: %w", ErrOriginUnavailable)
	resp, b, err = get(nil)
	if resp.StatusCode != http.StatusOK || err == nil || len(b) >= len(full) || !bytes.Equal(b, full[:len(b)]) {
		t.Fatalf("GET of a fetch failing midway = %d, %d bytes, %v; want 200, a truncated body and an error", resp.StatusCode, len(b), err)
	}

	// Failing before the first byte: 502.
	sb.body = nil
	resp, b, err = get(nil)
	if err != nil || resp.StatusCode != http.StatusBadGateway || errorCode(b) != "origin_unavailable" {
		t.Fatalf("GET of a fetch failing at once = %d %s, %v", resp.StatusCode, b, err)
	}

	// A Range request waits for the fetch (FetchBlob) and is served from
	// the store.
	streams := sb.streams
	resp, b, err = get(http.Header{"Range": {"bytes=1-3"}})
	if err != nil || resp.StatusCode != http.StatusPartialContent || string(b) != "etc" || sb.streams != streams || len(sb.origins) != 1 {
		t.Fatalf("Range GET = %d %q, %v, %d streams, %d fetches", resp.StatusCode, b, err, sb.streams-streams, len(sb.origins))
	}
	// A manifest asked during a fetch is the fetch's, without waiting.
	sb.running = []byte("running manifest")
	req, err := http.NewRequest(http.MethodGet, h.ts.URL+"/v1/blobs/"+addr.String()+"/manifest?origin="+other.Public().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+h.bob.token)
	mresp, err := h.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	m, err := io.ReadAll(mresp.Body)
	_ = mresp.Body.Close()
	if err != nil || mresp.StatusCode != http.StatusOK || string(m) != "running manifest" || len(sb.origins) != 1 {
		t.Fatalf("GET manifest during a fetch = %d %q, %v, %d fetches", mresp.StatusCode, m, err, len(sb.origins))
	}
	// Held here now: a plain GET serves the stored blob.
	resp, b, err = get(nil)
	if err != nil || resp.StatusCode != http.StatusOK || string(b) != "fetched" {
		t.Fatalf("GET of a held blob = %d %q, %v", resp.StatusCode, b, err)
	}
}
