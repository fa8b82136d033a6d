package node

import (
	"context"
	"io"

	"github.com/parley-chat/parley/node/api"
	"github.com/parley-chat/parley/node/blobs"
	"github.com/parley-chat/parley/node/ratelimit"
	"github.com/parley-chat/parley/protocol/blob"
	"github.com/parley-chat/parley/protocol/keys"
)

var blobErrors = map[error]error{
	blobs.ErrTooLarge:       api.ErrBlobTooLarge,
	blobs.ErrAccountQuota:   api.ErrQuota,
	blobs.ErrNodeFull:       api.ErrNodeFull,
	blobs.ErrTooManyUploads: api.ErrTooManyUploads,
	blobs.ErrBadPartSize:    api.ErrBadRequest,
	blobs.ErrBadUploadID:    api.ErrBadRequest,
	blobs.ErrNoUpload:       api.ErrBlobNotFound,
	blobs.ErrBadPart:        api.ErrBadPart,
	blobs.ErrPartLength:     api.ErrBadPart,
	blobs.ErrPartConflict:   api.ErrPartConflict,
	blobs.ErrBusy:           api.ErrUploadBusy,
	blobs.ErrIncomplete:     api.ErrUploadIncomplete,
	blobs.ErrBadManifest:    api.ErrBadBlob,
	blobs.ErrMismatch:       api.ErrBadBlob,
	blobs.ErrNotFound:       api.ErrBlobNotFound,
	blobs.ErrTakenDown:      api.ErrTakenDown,
}

// fetchErrors maps the errors of a fetch from another node (spec 08 §12)
// that blobErrors would present as the client's fault or as an upload's.
var fetchErrors = map[error]error{
	blobs.ErrOrigin:   api.ErrOriginUnavailable,
	blobs.ErrMismatch: api.ErrOriginUnavailable,
	blobs.ErrBusy:     api.ErrBusy,
}

// blobsAdapter presents node/blobs to the client API (spec 09 §9).
// blobsAdapter serves the blob store; an upload's declared size is charged
// to the account's blob budget when it is created.
type blobsAdapter struct {
	s   *blobs.Store
	lim *ratelimit.Accounts
	f   blobs.Fetcher // nil: local blobs only
}

var (
	_ api.Blobs        = blobsAdapter{}
	_ api.BlobFetcher  = blobsAdapter{}
	_ api.BlobStreamer = blobsAdapter{}
)

func apiUpload(u blobs.Upload) api.BlobUpload {
	return api.BlobUpload{ID: u.ID, Size: u.Size, Stored: u.Stored, PartSize: u.PartSize, Parts: u.Parts, Done: u.Done, Expires: u.Expires}
}

func apiBlobInfo(i blobs.Info) api.BlobInfo {
	return api.BlobInfo{Address: i.Address, Size: i.Size, Stored: i.Stored, Created: i.Created, Expires: i.Expires}
}

func (a blobsAdapter) CreateUpload(ctx context.Context, acct keys.AccountID, size uint64, partSize uint32) (api.BlobUpload, error) {
	kib := int(min((size+1023)/1024, 1<<40))
	if ok, after := a.lim.Allow(ratelimit.KindBlobKiB, string(acct[:]), kib); !ok {
		return api.BlobUpload{}, api.RateLimited(after)
	}
	u, err := a.s.CreateUpload(ctx, acct, size, partSize)
	return apiUpload(u), mapErr(err, blobErrors)
}

func (a blobsAdapter) PutPart(ctx context.Context, acct keys.AccountID, id [16]byte, n uint32, body io.Reader) error {
	return mapErr(a.s.PutPart(ctx, acct, id, n, body), blobErrors)
}

func (a blobsAdapter) UploadStatus(ctx context.Context, acct keys.AccountID, id [16]byte) (api.BlobUpload, error) {
	u, err := a.s.Status(ctx, acct, id)
	return apiUpload(u), mapErr(err, blobErrors)
}

func (a blobsAdapter) CompleteUpload(ctx context.Context, acct keys.AccountID, id [16]byte, manifest []byte) (api.BlobInfo, error) {
	i, err := a.s.Complete(ctx, acct, id, manifest)
	return apiBlobInfo(i), mapErr(err, blobErrors)
}

func (a blobsAdapter) AbortUpload(ctx context.Context, acct keys.AccountID, id [16]byte) error {
	return mapErr(a.s.Abort(ctx, acct, id), blobErrors)
}

func (a blobsAdapter) OpenBlob(ctx context.Context, addr blob.Address) (api.BlobContent, api.BlobInfo, error) {
	f, i, err := a.s.Open(ctx, addr)
	if err != nil {
		return nil, api.BlobInfo{}, mapErr(err, blobErrors)
	}
	return f, apiBlobInfo(i), nil
}

func (a blobsAdapter) BlobManifest(ctx context.Context, addr blob.Address) ([]byte, error) {
	m, err := a.s.Manifest(ctx, addr)
	return m, mapErr(err, blobErrors)
}

func (a blobsAdapter) DeleteBlob(ctx context.Context, acct keys.AccountID, addr blob.Address) error {
	return mapErr(a.s.Delete(ctx, acct, addr), blobErrors)
}

// FetchBlob fetches the blob at addr from origin unless it is held here
// (spec 08 §12).
func (a blobsAdapter) FetchBlob(ctx context.Context, origin keys.NodeID, addr blob.Address) error {
	if a.f == nil {
		return nil
	}
	_, err := a.s.Fetch(ctx, a.f, origin, addr)
	return fetchErr(err)
}

// StreamBlob returns the blob at addr as it is fetched from origin, unless
// it is held here (spec 08 §12, 09 §9).
func (a blobsAdapter) StreamBlob(ctx context.Context, origin keys.NodeID, addr blob.Address) (io.ReadCloser, api.BlobInfo, error) {
	if a.f == nil {
		return nil, api.BlobInfo{}, nil
	}
	st, i, err := a.s.Stream(ctx, a.f, origin, addr)
	if err != nil || st == nil {
		return nil, apiBlobInfo(i), fetchErr(err)
	}
	return fetchStream{st}, apiBlobInfo(i), nil
}

// FetchingManifest returns the manifest of the blob at addr if a fetch of
// it is in progress, once verified (spec 08 §12).
func (a blobsAdapter) FetchingManifest(ctx context.Context, addr blob.Address) ([]byte, bool, error) {
	return a.s.FetchingManifest(ctx, addr)
}

// fetchErr maps the error of a fetch from another node.
func fetchErr(err error) error {
	if mapped := mapErr(err, fetchErrors); mapped != err { //nolint:errorlint // identity: was it mapped?
		return mapped
	}
	return mapErr(err, blobErrors)
}

// fetchStream maps the errors of a blobs.Stream.
type fetchStream struct{ *blobs.Stream }

func (f fetchStream) Read(p []byte) (int, error) {
	n, err := f.Stream.Read(p)
	if err != nil && err != io.EOF { //nolint:errorlint // io.Reader's EOF is never wrapped
		err = fetchErr(err)
	}
	return n, err
}
