//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package keystore

import (
	"fmt"
	"os"
)

// lockFile creates path+".lock" with mode 0600 but cannot lock it on this
// system: callers must not open one keystore twice (see the package doc).
func lockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("keystore: opening lock file: %w", err)
	}
	return f, nil
}
