package blobs

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/parley-chat/parley/node/store"
	"github.com/parley-chat/parley/protocol/blob"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/wire"
)

// The encodings of the store's records; the package doc lists them.

const recordVersion = 1

// UploadID names an upload: 16 random bytes, written as 32 lowercase hex
// digits.
type UploadID [16]byte

// String returns the ID's text form.
func (id UploadID) String() string { return hex.EncodeToString(id[:]) }

// ParseUploadID parses the text form of an UploadID: exactly 32 lowercase
// hex digits.
func ParseUploadID(s string) (UploadID, error) {
	var id UploadID
	if len(s) != 2*len(id) {
		return id, fmt.Errorf("%w: %d characters, want %d", ErrBadUploadID, len(s), 2*len(id))
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return id, fmt.Errorf("%w: not lowercase hex", ErrBadUploadID)
		}
	}
	_, _ = hex.Decode(id[:], []byte(s))
	return id, nil
}

func blobKey(a blob.Address) []byte     { return store.Key(store.PrefixBlob, a[:]) }
func manifestKey(a blob.Address) []byte { return store.Key(store.PrefixBlobManifest, a[:]) }
func takedownKey(a blob.Address) []byte { return store.Key(store.PrefixBlobTakedown, a[:]) }
func uploadKey(id UploadID) []byte      { return store.Key(store.PrefixBlobUpload, id[:]) }
func partsPrefix(id UploadID) []byte    { return store.Key(store.PrefixBlobPart, id[:]) }

func partKey(id UploadID, n uint32) []byte {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], n)
	return store.Key(store.PrefixBlobPart, id[:], b[:])
}

// blobRecord describes a stored blob.
type blobRecord struct {
	owner   keys.AccountID
	size    uint64 // plaintext bytes (the manifest's size)
	stored  uint64 // ciphertext bytes in the file
	created time.Time
	expires time.Time
}

func (r *blobRecord) encode() []byte {
	e := wire.NewEncoder(1 + 32 + 8 + 8 + 8 + 8)
	e.U8(recordVersion)
	e.Fixed(r.owner[:])
	e.U64(r.size)
	e.U64(r.stored)
	e.I64(r.created.UnixNano())
	e.I64(r.expires.UnixNano())
	return e.Bytes()
}

func decodeBlob(v []byte) (blobRecord, error) {
	var r blobRecord
	d := wire.NewDecoder("blob record", v)
	d.Version(recordVersion)
	d.Field("owner").Fixed(r.owner[:])
	r.size = d.Field("size").U64()
	r.stored = d.Field("stored").U64()
	r.created = time.Unix(0, d.Field("created").I64()).UTC()
	r.expires = time.Unix(0, d.Field("expires").I64()).UTC()
	if err := d.Finish(); err != nil {
		return blobRecord{}, fmt.Errorf("blobs: corrupt blob record: %w", err)
	}
	return r, nil
}

// uploadRecord describes an upload in progress.
type uploadRecord struct {
	owner    keys.AccountID
	size     uint64 // declared plaintext bytes
	partSize uint32 // ciphertext bytes per part, a multiple of blob.MaxChunkSize
	created  time.Time
	expires  time.Time
}

// stored is the ciphertext size of the upload: what it reserves.
func (r *uploadRecord) stored() uint64 { return CipherSize(r.size) }

// parts is the upload's part count.
func (r *uploadRecord) parts() uint32 {
	s := r.stored()
	return uint32((s + uint64(r.partSize) - 1) / uint64(r.partSize))
}

// partLen is the ciphertext length of part n < parts().
func (r *uploadRecord) partLen(n uint32) int64 {
	off := uint64(n) * uint64(r.partSize)
	return int64(min(uint64(r.partSize), r.stored()-off))
}

func (r *uploadRecord) encode() []byte {
	e := wire.NewEncoder(1 + 32 + 8 + 4 + 8 + 8)
	e.U8(recordVersion)
	e.Fixed(r.owner[:])
	e.U64(r.size)
	e.U32(r.partSize)
	e.I64(r.created.UnixNano())
	e.I64(r.expires.UnixNano())
	return e.Bytes()
}

func decodeUpload(v []byte) (uploadRecord, error) {
	var r uploadRecord
	d := wire.NewDecoder("upload record", v)
	d.Version(recordVersion)
	d.Field("owner").Fixed(r.owner[:])
	r.size = d.Field("size").U64()
	r.partSize = d.Field("part size").U32()
	r.created = time.Unix(0, d.Field("created").I64()).UTC()
	r.expires = time.Unix(0, d.Field("expires").I64()).UTC()
	if d.Err() == nil && (r.size > blob.MaxSize || r.partSize == 0 || r.partSize%blob.MaxChunkSize != 0) {
		d.Fail("size %d or part size %d out of range", r.size, r.partSize)
	}
	if err := d.Finish(); err != nil {
		return uploadRecord{}, fmt.Errorf("blobs: corrupt upload record: %w", err)
	}
	return r, nil
}

func encodeTakedown(t time.Time) []byte {
	e := wire.NewEncoder(1 + 8)
	e.U8(recordVersion)
	e.I64(t.UnixNano())
	return e.Bytes()
}

// CipherSize is the ciphertext size of a blob of size plaintext bytes
// (size <= blob.MaxSize): the plaintext plus one tag per chunk (spec 08 §3).
func CipherSize(size uint64) uint64 {
	n := max(1, (size+wire.BlobChunkSize-1)/wire.BlobChunkSize)
	return size + n*blob.Overhead
}
