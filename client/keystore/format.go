package keystore

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
)

// Bounds of the file format, enforced when reading and when creating.
const (
	// MaxFileSize is the largest keystore file Open reads and Save writes.
	MaxFileSize = 16 << 20
	// MinSaltSize and MaxSaltSize bound the argon2id salt length.
	MinSaltSize = 16
	MaxSaltSize = 32
	// MaxKDFTime is the most argon2id passes a file may ask for.
	MaxKDFTime = 10
	// MaxKDFMemoryKiB is the most argon2id memory a file may ask for (1 GiB).
	MaxKDFMemoryKiB = 1 << 20
	// MaxKDFThreads is the most argon2id lanes a file may ask for.
	MaxKDFThreads = 16
)

// Default argon2id cost: RFC 9106's second recommended option (§4). On the
// project's 2-core machine Open takes about 105 ms with it
// (BenchmarkOpenDefaultParams, measured under a load average of 4).
const (
	DefaultKDFTime      = 3
	DefaultKDFMemoryKiB = 64 << 10
	DefaultKDFThreads   = 4
)

const (
	magic         = "PARLEYKS"
	formatVersion = 1
	kdfArgon2id   = 1
	saltSize      = MinSaltSize // length of the salts this package writes
	fixedSize     = len(magic) + 1 + 1 + 4 + 4 + 1 + 1
	nonceSize     = chacha20poly1305.NonceSizeX
	keySize       = chacha20poly1305.KeySize
	tagSize       = chacha20poly1305.Overhead
)

// KDFParams is an argon2id cost. The zero value of each field means its
// default.
type KDFParams struct {
	// Time is the number of passes over the memory. Default 3
	// (DefaultKDFTime); at most MaxKDFTime.
	Time uint32
	// MemoryKiB is the memory in KiB. Default 65536, 64 MiB
	// (DefaultKDFMemoryKiB); at least 8*Threads, at most MaxKDFMemoryKiB.
	MemoryKiB uint32
	// Threads is the number of lanes computed in parallel. Default 4
	// (DefaultKDFThreads); at most MaxKDFThreads.
	Threads uint8
}

func (p KDFParams) withDefaults() KDFParams {
	if p.Time == 0 {
		p.Time = DefaultKDFTime
	}
	if p.MemoryKiB == 0 {
		p.MemoryKiB = DefaultKDFMemoryKiB
	}
	if p.Threads == 0 {
		p.Threads = DefaultKDFThreads
	}
	return p
}

// check reports every parameter outside the format's bounds. Zero values
// are out of bounds here: defaults are applied before.
func (p KDFParams) check() error {
	var errs []error
	if p.Time < 1 || p.Time > MaxKDFTime {
		errs = append(errs, fmt.Errorf("argon2id time %d is outside [1, %d]", p.Time, MaxKDFTime))
	}
	if p.Threads < 1 || p.Threads > MaxKDFThreads {
		errs = append(errs, fmt.Errorf("argon2id threads %d is outside [1, %d]", p.Threads, MaxKDFThreads))
	}
	if minMem := 8 * max(uint32(p.Threads), 1); p.MemoryKiB < minMem || p.MemoryKiB > MaxKDFMemoryKiB {
		errs = append(errs, fmt.Errorf("argon2id memory %d KiB is outside [%d, %d]", p.MemoryKiB, minMem, MaxKDFMemoryKiB))
	}
	return errors.Join(errs...)
}

// weakerThan reports whether p costs less than q in passes or memory.
func (p KDFParams) weakerThan(q KDFParams) bool {
	return p.Time < q.Time || p.MemoryKiB < q.MemoryKiB
}

// kdfFunc derives the file key. Tests replace argon2id with a cheap function.
type kdfFunc func(passphrase, salt []byte, p KDFParams) []byte

func argon2idKey(passphrase, salt []byte, p KDFParams) []byte {
	return argon2.IDKey(passphrase, salt, p.Time, p.MemoryKiB, p.Threads, keySize)
}

// header is the unencrypted start of a keystore file.
type header struct {
	kdf   KDFParams
	salt  []byte
	nonce [nonceSize]byte
}

func (h *header) size() int { return fixedSize + len(h.salt) + nonceSize }

// appendTo appends the encoded header to b.
func (h *header) appendTo(b []byte) []byte {
	b = append(b, magic...)
	b = append(b, formatVersion, kdfArgon2id)
	b = binary.BigEndian.AppendUint32(b, h.kdf.Time)
	b = binary.BigEndian.AppendUint32(b, h.kdf.MemoryKiB)
	b = append(b, h.kdf.Threads, byte(len(h.salt)))
	b = append(b, h.salt...)
	return append(b, h.nonce[:]...)
}

// parseHeader decodes the header at the start of b and returns it with its
// length. It checks every bound before anything is derived or allocated;
// all its errors are ErrCorrupt.
func parseHeader(b []byte) (header, int, error) {
	var h header
	if len(b) < fixedSize {
		return h, 0, fmt.Errorf("%w: truncated header", ErrCorrupt)
	}
	if string(b[:len(magic)]) != magic {
		return h, 0, fmt.Errorf("%w: not a Parley keystore", ErrCorrupt)
	}
	p := len(magic)
	if v := b[p]; v != formatVersion {
		return h, 0, fmt.Errorf("%w: unsupported format version %d", ErrCorrupt, v)
	}
	if id := b[p+1]; id != kdfArgon2id {
		return h, 0, fmt.Errorf("%w: unknown KDF %d", ErrCorrupt, id)
	}
	p += 2
	h.kdf.Time = binary.BigEndian.Uint32(b[p:])
	h.kdf.MemoryKiB = binary.BigEndian.Uint32(b[p+4:])
	h.kdf.Threads = b[p+8]
	n := int(b[p+9])
	p += 10
	if err := h.kdf.check(); err != nil {
		return h, 0, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if n < MinSaltSize || n > MaxSaltSize {
		return h, 0, fmt.Errorf("%w: salt length %d is outside [%d, %d]", ErrCorrupt, n, MinSaltSize, MaxSaltSize)
	}
	if len(b) < p+n+nonceSize {
		return h, 0, fmt.Errorf("%w: truncated header", ErrCorrupt)
	}
	h.salt = append([]byte(nil), b[p:p+n]...)
	p += n
	copy(h.nonce[:], b[p:])
	p += nonceSize
	return h, p, nil
}

// seal encrypts plaintext under key into a complete file, the header bytes
// being the associated data.
func seal(key *[keySize]byte, h *header, plaintext []byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(key[:])
	if err != nil {
		return nil, fmt.Errorf("keystore: %w", err)
	}
	// The header goes first in the file and is the associated data; the
	// AEAD wants the two in separate memory.
	ad := h.appendTo(make([]byte, 0, h.size()))
	out := make([]byte, len(ad), len(ad)+len(plaintext)+tagSize)
	copy(out, ad)
	return aead.Seal(out, h.nonce[:], plaintext, ad), nil
}

// open decrypts a complete file whose header (hlen bytes) was parsed into h.
func open(key []byte, h *header, file []byte, hlen int) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, fmt.Errorf("keystore: %w", err)
	}
	pt, err := aead.Open(nil, h.nonce[:], file[hlen:], file[:hlen])
	if err != nil {
		return nil, ErrWrongPassphrase
	}
	return pt, nil
}
