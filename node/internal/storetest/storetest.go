// Package storetest opens node stores for tests: on one filesystem
// (usually pebble's memory FS), reopened at will as a restarted node would,
// and closed when the test ends.
package storetest

import (
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/parley-chat/parley/node/store"
)

// Disk is a test's filesystem with at most one store open on it.
type Disk struct {
	tb  testing.TB
	FS  vfs.FS
	cur *store.Store
}

// New returns a Disk on fs (a fresh memory FS if nil). The store open when
// the test ends is closed then.
func New(tb testing.TB, fs vfs.FS) *Disk {
	if fs == nil {
		fs = vfs.NewMem()
	}
	d := &Disk{tb: tb, FS: fs}
	tb.Cleanup(func() {
		if d.cur != nil {
			_ = d.cur.Close()
		}
	})
	return d
}

// Open closes the store opened before, if any, and opens the store at /d
// again: a restart.
func (d *Disk) Open() *store.Store {
	d.tb.Helper()
	if d.cur != nil {
		if err := d.cur.Close(); err != nil {
			d.tb.Fatalf("closing the store: %v", err)
		}
		d.cur = nil
	}
	st, err := store.Open(store.Config{Dir: "/d"}, store.WithFS(d.FS))
	if err != nil {
		d.tb.Fatalf("store.Open: %v", err)
	}
	d.cur = st
	return st
}
