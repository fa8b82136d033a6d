package blobs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/parley-chat/parley/protocol/blob"
	"github.com/parley-chat/parley/protocol/keys"
)

// Stream is the ciphertext of a blob being fetched from its origin (spec
// 08 §12), read while the fetch runs: Read returns the bytes of the chunks
// the fetch has verified and written to the cache, waiting for more, and
// io.EOF after the last byte. If the fetch fails before the last byte,
// Read returns the fetch's error: the bytes read before are authentic but
// the blob is incomplete. Close ends the stream (and the fetch it runs, if
// it did not reach the end). A Stream is for one goroutine.
type Stream struct {
	s *Store
	// ctx is the request's: a Stream lives within the request that opened
	// it, and io.Reader's Read takes no context.
	ctx    context.Context
	f      Fetcher
	origin keys.NodeID
	addr   blob.Address
	info   Info

	off  uint64
	file *os.File    // the cache file, or the blob's once it is held here
	st   *fetchState // the fetch being read; nil once the blob is held here
	run  *ownFetch   // the fetch this stream runs, if it runs one
}

// ownFetch is a fetch a Stream runs in a goroutine of its own.
type ownFetch struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// errAgain: the fetch a stream joined ended; look again.
var errAgain = errors.New("blobs: look again")

// Stream returns the blob at addr as it is fetched from origin with f,
// joining the fetch of addr in progress or starting one (run by the
// Stream, bounded by ctx), once its manifest is verified. If this node
// holds the blob, Stream returns a nil *Stream and the blob's Info (the
// caller serves it with Open). Errors: as Fetch's, for a fetch that fails
// before its manifest or a taken-down blob.
func (s *Store) Stream(ctx context.Context, f Fetcher, origin keys.NodeID, addr blob.Address) (*Stream, Info, error) {
	d := &Stream{s: s, ctx: ctx, f: f, origin: origin, addr: addr}
	held, err := d.attach()
	if err != nil || held {
		info := d.info
		_ = d.Close()
		return nil, info, err
	}
	return d, d.info, nil
}

// attach opens the blob if it is held here (held is true), or joins or
// starts its fetch and opens its cache file once the manifest is in.
func (d *Stream) attach() (held bool, err error) {
	for {
		if d.file != nil {
			_ = d.file.Close()
			d.file = nil
		}
		d.st = nil
		file, info, err := d.s.Open(d.ctx, d.addr)
		if err == nil {
			d.file, d.info = file, info
			return true, nil
		}
		if !errors.Is(err, ErrNotFound) {
			return false, err
		}
		st, own := d.s.joinFetch(d.addr)
		if own {
			d.wait()
			ctx, cancel := context.WithCancel(d.ctx)
			run := &ownFetch{cancel: cancel, done: make(chan struct{})}
			go func() {
				defer close(run.done)
				_, _ = d.s.runFetch(ctx, d.f, d.origin, d.addr, st)
			}()
			d.run = run
		}
		err = d.openCache(st, own)
		if err == nil {
			return false, nil
		}
		if !errors.Is(err, errAgain) {
			return false, err
		}
	}
}

// openCache waits for the manifest of st and opens its cache file.
// errAgain: st ended before that (with an error, for a fetch st the
// caller does not own) or the cache file was completed meanwhile.
func (d *Stream) openCache(st *fetchState, own bool) error {
	for {
		m, path, _, changed := st.progress()
		if m != nil {
			f, err := os.Open(path)
			if err == nil {
				d.file, d.st = f, st
				d.info = Info{Address: d.addr, Owner: cacheOwner, Size: m.Size, Stored: CipherSize(m.Size)}
				return nil
			}
			if !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("blobs: %w", err)
			}
			// Renamed to the blob: the fetch is completing.
			changed = nil
		}
		select {
		case <-changed:
		case <-st.done:
			if own && st.err != nil {
				return st.err
			}
			return errAgain
		case <-d.ctx.Done():
			return d.ctx.Err()
		}
	}
}

// Read implements io.Reader.
func (d *Stream) Read(p []byte) (int, error) {
	for {
		if d.off >= d.info.Stored {
			return 0, io.EOF
		}
		avail, changed := d.info.Stored, (<-chan struct{})(nil)
		if d.st != nil {
			_, _, avail, changed = d.st.progress()
		}
		if d.off < avail {
			n := int(min(uint64(len(p)), avail-d.off))
			got, err := d.file.ReadAt(p[:n], int64(d.off))
			d.off += uint64(got)
			if got == n {
				err = nil
			} else if err != nil {
				err = fmt.Errorf("blobs: reading the cache: %w", err)
			}
			return got, err
		}
		select {
		case <-changed:
		case <-d.st.done:
			if _, _, a, _ := d.st.progress(); d.off < a {
				continue // the last chunks came with the end
			}
			if err := d.ended(); err != nil {
				return 0, err
			}
		case <-d.ctx.Done():
			return 0, d.ctx.Err()
		}
	}
}

// ended handles the end of the fetch being read before the stream's
// offset: a fetch this stream ran, or that failed on its own, is the
// stream's error; a fetch whose owner gave up is resumed (spec 08 §12).
func (d *Stream) ended() error {
	st := d.st
	switch {
	case st.err == nil:
	case d.run != nil || !st.abandoned:
		return st.err
	}
	_, err := d.attach()
	return err
}

// wait cancels the fetch the stream runs unless the stream reached the
// end, and waits for it.
func (d *Stream) wait() {
	if d.run == nil {
		return
	}
	if d.off < d.info.Stored {
		d.run.cancel()
	}
	<-d.run.done
	d.run.cancel()
	d.run = nil
}

// Close implements io.Closer. A stream that read to the end waits for
// its fetch to complete the cache entry; one that did not stops the fetch
// it runs (the chunks written stay cached for the next fetch).
func (d *Stream) Close() error {
	d.wait()
	if d.file == nil {
		return nil
	}
	err := d.file.Close()
	d.file = nil
	return err
}
