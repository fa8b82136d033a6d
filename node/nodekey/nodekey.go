// Package nodekey reads and writes a node's private key file.
//
// The file is PEM with block type "PARLEY NODE KEY" holding the 32-byte
// Ed25519 seed, mode 0600. Create never overwrites an existing file. The
// same seed is the node's libp2p identity, so the node's peer ID is the
// key's keys.NodeID.
package nodekey

import (
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/parley-chat/parley/protocol/keys"
)

const pemType = "PARLEY NODE KEY"

// maxFileSize bounds what Load reads.
const maxFileSize = 4096

// ErrExists is returned by Create when the file already exists.
var ErrExists = errors.New("nodekey: key file already exists")

// Create generates a key with randomness from r (crypto/rand if nil) and
// writes it to path with mode 0600, failing with ErrExists if path exists.
func Create(path string, r io.Reader) (keys.NodeKey, error) {
	if r == nil {
		r = rand.Reader
	}
	k, err := keys.GenerateNodeKey(r)
	if err != nil {
		return keys.NodeKey{}, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return keys.NodeKey{}, fmt.Errorf("%w: %s", ErrExists, path)
	}
	if err != nil {
		return keys.NodeKey{}, fmt.Errorf("nodekey: %w", err)
	}
	block := &pem.Block{Type: pemType, Headers: map[string]string{"Peer-ID": k.Public().String()}, Bytes: k.Seed()}
	if err := pem.Encode(f, block); err != nil {
		_ = f.Close()
		return keys.NodeKey{}, fmt.Errorf("nodekey: writing %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return keys.NodeKey{}, fmt.Errorf("nodekey: syncing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return keys.NodeKey{}, fmt.Errorf("nodekey: %w", err)
	}
	return k, nil
}

// Load reads the key at path. It refuses files readable by group or others.
func Load(path string) (keys.NodeKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return keys.NodeKey{}, fmt.Errorf("nodekey: %w", err)
	}
	defer func() { _ = f.Close() }() // read-only
	st, err := f.Stat()
	if err != nil {
		return keys.NodeKey{}, fmt.Errorf("nodekey: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return keys.NodeKey{}, fmt.Errorf("nodekey: %s is accessible by other users (mode %v); chmod 600 it", path, st.Mode().Perm())
	}
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return keys.NodeKey{}, fmt.Errorf("nodekey: %w", err)
	}
	if len(b) > maxFileSize {
		return keys.NodeKey{}, fmt.Errorf("nodekey: %s is too large to be a key file", path)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != pemType {
		return keys.NodeKey{}, fmt.Errorf("nodekey: %s is not a %s file", path, pemType)
	}
	k, err := keys.NodeKeyFromSeed(block.Bytes)
	if err != nil {
		return keys.NodeKey{}, fmt.Errorf("nodekey: %s: %w", path, err)
	}
	if id := block.Headers["Peer-ID"]; id != "" && id != k.Public().String() {
		return keys.NodeKey{}, fmt.Errorf("nodekey: %s: Peer-ID header %s does not match the key (%s)", path, id, k.Public())
	}
	return k, nil
}
