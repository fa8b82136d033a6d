package keystore

import (
	"fmt"
	"os"
	"path/filepath"
)

// Steps of writeAtomic, named for fault injection in tests.
const (
	stepCreate  = "create"
	stepWrite   = "write"
	stepSync    = "sync"
	stepClose   = "close"
	stepRename  = "rename"
	stepSyncDir = "syncdir"
)

// writeAtomic replaces path with data: it writes a temporary file with mode
// 0600 in the same directory, syncs it, renames it over path and syncs the
// directory. It reports whether the rename happened; before it, a failure
// removes the temporary file and leaves path as it was. fault, if not nil,
// is called before each step and its error makes that step fail (a failing
// write first writes half the data).
func writeAtomic(path string, data []byte, fault func(step string) error) (replaced bool, err error) {
	inject := func(step string) error {
		if fault == nil {
			return nil
		}
		return fault(step)
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	if err := inject(stepCreate); err != nil {
		return false, fmt.Errorf("keystore: creating temporary file: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*") // mode 0600
	if err != nil {
		return false, fmt.Errorf("keystore: creating temporary file: %w", err)
	}
	tmp := f.Name()
	closed := false
	defer func() {
		if err != nil && !replaced {
			if !closed {
				_ = f.Close()
			}
			_ = os.Remove(tmp)
		}
	}()
	if err := inject(stepWrite); err != nil {
		_, _ = f.Write(data[:len(data)/2])
		return false, fmt.Errorf("keystore: writing %s: %w", tmp, err)
	}
	if _, err := f.Write(data); err != nil {
		return false, fmt.Errorf("keystore: writing %s: %w", tmp, err)
	}
	if err := inject(stepSync); err != nil {
		return false, fmt.Errorf("keystore: syncing %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return false, fmt.Errorf("keystore: syncing %s: %w", tmp, err)
	}
	if err := inject(stepClose); err != nil {
		return false, fmt.Errorf("keystore: closing %s: %w", tmp, err)
	}
	closed = true
	if err := f.Close(); err != nil {
		return false, fmt.Errorf("keystore: closing %s: %w", tmp, err)
	}
	if err := inject(stepRename); err != nil {
		return false, fmt.Errorf("keystore: renaming %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return false, fmt.Errorf("keystore: renaming %s: %w", tmp, err)
	}
	if err := inject(stepSyncDir); err != nil {
		return true, fmt.Errorf("keystore: syncing directory %s: %w", dir, err)
	}
	if err := syncDir(dir); err != nil {
		return true, fmt.Errorf("keystore: syncing directory %s: %w", dir, err)
	}
	return true, nil
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		_ = d.Close()
		return err
	}
	return d.Close()
}
