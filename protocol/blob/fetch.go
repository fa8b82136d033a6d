package blob

import (
	"encoding/binary"
	"fmt"

	"github.com/parley-chat/parley/protocol/wire"
)

// The blob fetch protocol (spec 08-blobs §12): a node that does not hold a
// blob asks its origin node for it on a stream. Every frame is a
// big-endian u32 body length (1 to wire.MaxBlobFetchFrame) and a body. The
// fetching node writes one FetchRequest; the origin answers one
// FetchAnswer and, if its status is FetchOK, the ciphertext chunks from
// the request's From to the last one, one chunk frame each, in order, then
// closes the stream.

// FetchVersion is the version byte of the fetch protocol's frames.
const FetchVersion = 1

// FramePrefixLen is the size of a fetch frame's length prefix.
const FramePrefixLen = 4

// Frame types of the fetch protocol.
const (
	frameRequest = 1
	frameAnswer  = 2
	frameChunk   = 3
)

// FetchStatus is the origin's answer to a FetchRequest.
type FetchStatus uint8

// Fetch statuses.
const (
	// FetchOK: the manifest follows in the answer and the chunks after it.
	FetchOK FetchStatus = 1
	// FetchNotFound: the origin does not hold the blob (never, or expired).
	FetchNotFound FetchStatus = 2
	// FetchTakenDown: the origin took the blob down; it is never served.
	FetchTakenDown FetchStatus = 3
	// FetchBadRequest: the request's From is beyond the blob's last chunk.
	FetchBadRequest FetchStatus = 4
	// FetchBusy: the origin serves too many fetches; retry later.
	FetchBusy FetchStatus = 5
)

var statusNames = map[FetchStatus]string{
	FetchOK: "ok", FetchNotFound: "not_found", FetchTakenDown: "taken_down",
	FetchBadRequest: "bad_request", FetchBusy: "busy",
}

// String returns the status's name (a bounded metric label value).
func (s FetchStatus) String() string {
	if n, ok := statusNames[s]; ok {
		return n
	}
	return "unknown"
}

// FetchRequest asks for the blob at Address, its chunks from From on.
type FetchRequest struct {
	Address Address
	From    uint32
}

// fetchRequestBody is the size of a request's body.
const fetchRequestBody = 1 + 1 + 32 + 4

// AppendFrame appends r's frame (length prefix and body) to dst.
func (r FetchRequest) AppendFrame(dst []byte) []byte {
	e := wire.NewEncoder(FramePrefixLen + fetchRequestBody)
	e.U32(fetchRequestBody)
	e.U8(FetchVersion)
	e.U8(frameRequest)
	e.Fixed(r.Address[:])
	e.U32(r.From)
	return append(dst, e.Bytes()...)
}

// DecodeFetchRequest decodes a request's body (without its prefix). Errors
// are *wire.ParseError.
func DecodeFetchRequest(b []byte) (FetchRequest, error) {
	var r FetchRequest
	d := wire.NewDecoder("blob fetch request", b)
	d.Version(FetchVersion)
	if t := d.Field("type").U8(); d.Err() == nil && t != frameRequest {
		d.Fail("type %d, want %d", t, frameRequest)
	}
	d.Field("address").Fixed(r.Address[:])
	r.From = d.Field("from").U32()
	if r.From >= wire.MaxBlobChunks {
		d.Fail("from %d is not below %d", r.From, wire.MaxBlobChunks)
	}
	return r, d.Finish()
}

// FetchAnswer is the origin's first frame: a status and, with FetchOK,
// the blob's manifest encoding.
type FetchAnswer struct {
	Status   FetchStatus
	Manifest []byte
}

// AppendFrame appends a's frame to dst. A manifest comes with FetchOK
// only, and is at most MaxManifestSize bytes.
func (a FetchAnswer) AppendFrame(dst []byte) ([]byte, error) {
	if _, ok := statusNames[a.Status]; !ok {
		return dst, fmt.Errorf("blob: unknown fetch status %d", a.Status)
	}
	if (a.Status == FetchOK) != (len(a.Manifest) > 0) || len(a.Manifest) > MaxManifestSize {
		return dst, fmt.Errorf("blob: fetch answer %s with a manifest of %d bytes", a.Status, len(a.Manifest))
	}
	n := 1 + 1 + 1 + 4 + len(a.Manifest)
	e := wire.NewEncoder(FramePrefixLen + n)
	e.U32(uint32(n))
	e.U8(FetchVersion)
	e.U8(frameAnswer)
	e.U8(uint8(a.Status))
	e.Bytes32(a.Manifest)
	return append(dst, e.Bytes()...), nil
}

// DecodeFetchAnswer decodes an answer's body. It checks the shape only:
// the fetching node checks the manifest against the address with
// VerifyManifest. Errors are *wire.ParseError.
func DecodeFetchAnswer(b []byte) (FetchAnswer, error) {
	var a FetchAnswer
	d := wire.NewDecoder("blob fetch answer", b)
	d.Version(FetchVersion)
	if t := d.Field("type").U8(); d.Err() == nil && t != frameAnswer {
		d.Fail("type %d, want %d", t, frameAnswer)
	}
	a.Status = FetchStatus(d.Field("status").U8())
	if _, ok := statusNames[a.Status]; d.Err() == nil && !ok {
		d.Fail("unknown status %d", a.Status)
	}
	a.Manifest = d.Field("manifest").Bytes32(MaxManifestSize)
	if d.Err() == nil && (a.Status == FetchOK) != (len(a.Manifest) > 0) {
		d.Fail("status %s with a manifest of %d bytes", a.Status, len(a.Manifest))
	}
	return a, d.Finish()
}

// chunkFrameHeader is a chunk frame's body before the chunk: version, type,
// index.
const chunkFrameHeader = 1 + 1 + 4

// AppendChunkFrame appends the frame of ciphertext chunk number index to
// dst. chunk is at most MaxChunkSize bytes.
func AppendChunkFrame(dst []byte, index uint32, chunk []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(chunkFrameHeader+len(chunk)))
	dst = append(dst, FetchVersion, frameChunk)
	dst = binary.BigEndian.AppendUint32(dst, index)
	return append(dst, chunk...)
}

// DecodeChunkFrame decodes a chunk frame's body into the chunk's index and
// bytes (a subslice of b). It checks the shape only: the fetching node
// checks the chunk with VerifyChunk. Errors are *wire.ParseError.
func DecodeChunkFrame(b []byte) (uint32, []byte, error) {
	d := wire.NewDecoder("blob chunk frame", b)
	d.Version(FetchVersion)
	if t := d.Field("type").U8(); d.Err() == nil && t != frameChunk {
		d.Fail("type %d, want %d", t, frameChunk)
	}
	index := d.Field("index").U32()
	if err := d.Err(); err != nil {
		return 0, nil, err
	}
	chunk := b[chunkFrameHeader:]
	if len(chunk) > MaxChunkSize {
		return 0, nil, wire.Errorf("blob chunk frame", "chunk", "%d bytes, limit %d", len(chunk), MaxChunkSize)
	}
	return index, chunk, nil
}

// FrameLen returns the body length a frame's prefix announces, or a
// *wire.ParseError if it is 0 or above wire.MaxBlobFetchFrame.
func FrameLen(prefix [FramePrefixLen]byte) (int, error) {
	n := binary.BigEndian.Uint32(prefix[:])
	if n == 0 || n > wire.MaxBlobFetchFrame {
		return 0, wire.Errorf("blob fetch frame", "length", "%d bytes is not 1 to %d", n, wire.MaxBlobFetchFrame)
	}
	return int(n), nil
}
