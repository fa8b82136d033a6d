package admin

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"

	"github.com/parley-chat/parley/node/blobs"
	"github.com/parley-chat/parley/protocol/blob"
	"github.com/parley-chat/parley/protocol/keys"
)

// Blobs is what the admin API needs of node/blobs (*blobs.Store): the
// operator's view of one blob by address (spec 10, blobs). The node has no
// key: the routes serve the manifest and the ciphertext, and the admin
// command (`parleyd admin blobs show ADDR --key KEY`) decrypts on the
// operator's side with the key a verified disclosure revealed, so the key
// never reaches the node, let alone its disk.
type Blobs interface {
	Stat(ctx context.Context, addr blob.Address) (blobs.Info, error)
	Manifest(ctx context.Context, addr blob.Address) ([]byte, error)
	Open(ctx context.Context, addr blob.Address) (*os.File, blobs.Info, error)
	TakenDown(addr blob.Address) (bool, error)
	Origin(addr blob.Address) (id keys.NodeID, ok bool, err error)
	TakedownNotify(ctx context.Context, addr blob.Address) (int, error)
}

var _ Blobs = (*blobs.Store)(nil)

// Blob answers GET blobs/{addr}.
type Blob struct {
	Address string `json:"address"`
	// State is "stored" (uploaded here), "cached" (fetched from Origin)
	// or "taken_down".
	State   string `json:"state"`
	Origin  string `json:"origin,omitempty"`
	Owner   string `json:"owner,omitempty"`
	Size    uint64 `json:"size,omitempty"`
	Stored  uint64 `json:"stored,omitempty"`
	Created string `json:"created,omitempty"`
	Expires string `json:"expires,omitempty"`
}

// Takedown answers POST blobs/{addr}/takedown.
type Takedown struct {
	Address string `json:"address"`
	// Notified is how many nodes that fetched the blob were queued a
	// signed takedown notice (spec 08 §13).
	Notified int `json:"notified"`
}

func (s *Server) blobRoutes() []route {
	return []route{
		{"blobs_show", Prefix + "blobs/{addr}", http.MethodGet, s.showBlob},
		{"blobs_manifest", Prefix + "blobs/{addr}/manifest", http.MethodGet, s.blobManifest},
		{"blobs_content", Prefix + "blobs/{addr}/content", http.MethodGet, s.blobContent},
		{"blobs_takedown", Prefix + "blobs/{addr}/takedown", http.MethodPost, s.takedownBlob},
	}
}

// blobAddr parses the {addr} path value; no query is accepted.
func (s *Server) blobAddr(r *http.Request) (blob.Address, error) {
	if _, err := query(r); err != nil {
		return blob.Address{}, err
	}
	if s.deps.Blobs == nil {
		return blob.Address{}, errNotFound
	}
	a, err := blob.ParseAddress(r.PathValue("addr"))
	if err != nil {
		return a, badRequest("the address is not a blob address (blob_...)")
	}
	return a, nil
}

func (s *Server) showBlob(w http.ResponseWriter, r *http.Request) error {
	addr, err := s.blobAddr(r)
	if err != nil {
		return err
	}
	out := Blob{Address: addr.String()}
	info, err := s.deps.Blobs.Stat(r.Context(), addr)
	switch {
	case errors.Is(err, blobs.ErrTakenDown):
		out.State = "taken_down"
		writeJSON(w, http.StatusOK, &out)
		return nil
	case err != nil:
		return err
	}
	out.State, out.Size, out.Stored = "stored", info.Size, info.Stored
	out.Created, out.Expires = formatTime(info.Created), formatTime(info.Expires)
	origin, cached, err := s.deps.Blobs.Origin(addr)
	if err != nil {
		return err
	}
	if cached {
		out.State, out.Origin = "cached", origin.String()
	} else {
		out.Owner = info.Owner.String()
	}
	writeJSON(w, http.StatusOK, &out)
	return nil
}

func (s *Server) blobManifest(w http.ResponseWriter, r *http.Request) error {
	addr, err := s.blobAddr(r)
	if err != nil {
		return err
	}
	m, err := s.deps.Blobs.Manifest(r.Context(), addr)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Length", strconv.Itoa(len(m)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(m) //nolint:gosec // application/octet-stream, never rendered as HTML
	return nil
}

func (s *Server) blobContent(w http.ResponseWriter, r *http.Request) error {
	addr, err := s.blobAddr(r)
	if err != nil {
		return err
	}
	f, info, err := s.deps.Blobs.Open(r.Context(), addr)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	s.log.Info("admin downloading blob ciphertext", "address", addr.String())
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatUint(info.Stored, 10))
	w.WriteHeader(http.StatusOK)
	_, _ = io.Copy(w, io.LimitReader(f, int64(info.Stored)))
	return nil
}

func (s *Server) takedownBlob(w http.ResponseWriter, r *http.Request) error {
	if err := requireNoBody(r); err != nil {
		return err
	}
	addr, err := s.blobAddr(r)
	if err != nil {
		return err
	}
	n, err := s.deps.Blobs.TakedownNotify(r.Context(), addr)
	if err != nil {
		return err
	}
	s.log.Info("admin took a blob down", "address", addr.String(), "notified", n)
	writeJSON(w, http.StatusOK, &Takedown{Address: addr.String(), Notified: n})
	return nil
}
