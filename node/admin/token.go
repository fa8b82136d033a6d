package admin

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// TokenFileName is the admin token file's name inside a data directory.
const TokenFileName = "admin.token"

// TokenPrefix starts every admin token.
const TokenPrefix = "pa_"

// maxTokenFile bounds what LoadToken reads: a token and a newline fit many
// times over.
const maxTokenFile = 256

// Token file errors. Match them with errors.Is.
var (
	// ErrTokenExists: CreateToken found a token file already there.
	ErrTokenExists = errors.New("admin: token file already exists")
	// ErrNoToken: the token file does not exist.
	ErrNoToken = errors.New("admin: no token file")
	// ErrBadTokenFile: the token file is readable by others, too large or
	// does not hold a token.
	ErrBadTokenFile = errors.New("admin: bad token file")
)

var b64 = base64.RawURLEncoding

// TokenPath is the admin token file of the data directory dir.
func TokenPath(dir string) string { return filepath.Join(dir, TokenFileName) }

// CreateToken writes a new admin token to path: 32 bytes from r (nil:
// crypto/rand), written "pa_" + unpadded base64url and a newline, mode
// 0600. It never overwrites: an existing file is ErrTokenExists.
func CreateToken(path string, r io.Reader) error {
	if r == nil {
		r = rand.Reader
	}
	var raw [32]byte
	if _, err := io.ReadFull(r, raw[:]); err != nil {
		return fmt.Errorf("admin: generating token: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%w: %s", ErrTokenExists, path)
	}
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	if _, err := io.WriteString(f, TokenPrefix+b64.EncodeToString(raw[:])+"\n"); err != nil {
		_ = f.Close()
		return fmt.Errorf("admin: writing %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return fmt.Errorf("admin: syncing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	return nil
}

// LoadToken reads the token at path. Like the node key, it refuses a file
// that group or others can access. A missing file is ErrNoToken.
func LoadToken(path string) (string, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("%w: %s", ErrNoToken, path)
	}
	if err != nil {
		return "", fmt.Errorf("admin: %w", err)
	}
	defer func() { _ = f.Close() }() // read-only
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("admin: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%w: %s is accessible by other users (mode %v); chmod 600 it", ErrBadTokenFile, path, st.Mode().Perm())
	}
	b, err := io.ReadAll(io.LimitReader(f, maxTokenFile+1))
	if err != nil {
		return "", fmt.Errorf("admin: %w", err)
	}
	if len(b) > maxTokenFile {
		return "", fmt.Errorf("%w: %s is too large", ErrBadTokenFile, path)
	}
	tok := strings.TrimSpace(string(b))
	if _, ok := parseToken(tok); !ok {
		return "", fmt.Errorf("%w: %s does not hold a %s token", ErrBadTokenFile, path, TokenPrefix)
	}
	return tok, nil
}

// LoadTokenHash reads the token at path (as LoadToken) and returns only
// its hash, which is all the node keeps.
func LoadTokenHash(path string) ([32]byte, error) {
	tok, err := LoadToken(path)
	if err != nil {
		return [32]byte{}, err
	}
	raw, _ := parseToken(tok)
	return hashToken(raw), nil
}

// parseToken decodes "pa_" + base64url of 32 bytes.
func parseToken(text string) ([32]byte, bool) {
	var raw [32]byte
	rest, ok := strings.CutPrefix(text, TokenPrefix)
	if !ok || b64.DecodedLen(len(rest)) != len(raw) {
		return raw, false
	}
	n, err := b64.Decode(raw[:], []byte(rest))
	return raw, err == nil && n == len(raw)
}

func hashToken(raw [32]byte) [32]byte { return sha256.Sum256(raw[:]) }
