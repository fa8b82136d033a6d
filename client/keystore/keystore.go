package keystore

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/parley-chat/parley/protocol/keys"
)

// Errors. Match them with errors.Is.
var (
	// ErrExists is returned by Create when the keystore file already exists.
	ErrExists = errors.New("keystore: file already exists")
	// ErrWrongPassphrase is returned by Open when the file does not decrypt:
	// the passphrase is wrong, or the file was damaged after its header.
	ErrWrongPassphrase = errors.New("keystore: wrong passphrase or damaged file")
	// ErrCorrupt is returned by Open for a file that is not a keystore this
	// package can read: too large, truncated, unknown version or KDF, or
	// parameters out of bounds.
	ErrCorrupt = errors.New("keystore: corrupt file")
	// ErrLocked is returned by Create and Open while another Keystore, in
	// this process or another, holds the file.
	ErrLocked = errors.New("keystore: in use by another process")
	// ErrClosed is returned by a Keystore's methods after Close.
	ErrClosed = errors.New("keystore: closed")
	// ErrTooLarge is returned by Save when the file would exceed MaxFileSize.
	ErrTooLarge = errors.New("keystore: contents too large")
	// ErrInvalidContents wraps the problems Contents.Validate finds.
	ErrInvalidContents = errors.New("keystore: invalid contents")
	// ErrInvalidConfig wraps the problems Config.Validate finds.
	ErrInvalidConfig = errors.New("keystore: invalid config")
	// ErrSyncPositionRegress is returned by a mutator that would move the
	// sync position backwards.
	ErrSyncPositionRegress = errors.New("keystore: sync position cannot go back")
	// ErrNoAccount is returned by Contents.AccountKey when there is no seed.
	ErrNoAccount = errors.New("keystore: no account key")
	// ErrEmptyPassphrase is returned for an empty passphrase.
	ErrEmptyPassphrase = errors.New("keystore: empty passphrase")
)

// Config tunes the key derivation. The zero value means every default.
type Config struct {
	// KDF is the argon2id cost of the keys this package derives: by Create,
	// by ChangePassphrase, and by Open when the file was written with fewer
	// passes or less memory (the file is then upgraded on the next Save; a
	// costlier file is never downgraded by Open). Each zero field takes its
	// default: Time 3, MemoryKiB 65536 (64 MiB), Threads 4. Bounds: Time
	// 1..MaxKDFTime, MemoryKiB 8*Threads..MaxKDFMemoryKiB, Threads
	// 1..MaxKDFThreads.
	KDF KDFParams
}

// Validate reports every problem with c at once, wrapped in ErrInvalidConfig.
func (c Config) Validate() error {
	if err := c.KDF.withDefaults().check(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return nil
}

// Option configures Create and Open.
type Option func(*options)

type options struct {
	cfg   Config
	rand  io.Reader
	kdf   kdfFunc
	fault func(step string) error
}

// WithConfig sets the configuration (default: the zero Config, every
// default). Tests pass a cheap KDF here.
func WithConfig(c Config) Option { return func(o *options) { o.cfg = c } }

// WithRand sets the source of salts and nonces (default crypto/rand).
func WithRand(r io.Reader) Option { return func(o *options) { o.rand = r } }

// withKDF replaces argon2id, for tests of the format and fuzzing.
func withKDF(f kdfFunc) Option { return func(o *options) { o.kdf = f } }

// withFault makes the atomic write fail at a step, for tests.
func withFault(f func(step string) error) Option { return func(o *options) { o.fault = f } }

func newOptions(opts []Option) (options, error) {
	o := options{rand: rand.Reader, kdf: argon2idKey}
	for _, opt := range opts {
		opt(&o)
	}
	if err := o.cfg.Validate(); err != nil {
		return o, err
	}
	o.cfg.KDF = o.cfg.KDF.withDefaults()
	return o, nil
}

// Keystore is an open keystore file, held exclusively until Close. Its
// methods are safe for concurrent use.
type Keystore struct {
	path string
	opts options

	mu     sync.Mutex
	lock   *os.File // nil once closed
	key    [keySize]byte
	hdr    header // KDF parameters and salt of key; the nonce is chosen per Save
	c      Contents
	closed bool
}

// Create writes a new keystore at path holding contents, encrypted under
// passphrase. It never overwrites: if path exists it fails with ErrExists. A
// missing directory is created with mode 0700; the file has mode 0600.
func Create(path string, passphrase []byte, contents Contents, opts ...Option) error {
	o, err := newOptions(opts)
	if err != nil {
		return err
	}
	if len(passphrase) == 0 {
		return ErrEmptyPassphrase
	}
	if err := contents.Validate(); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("keystore: %w", err)
	}
	if err := refuseExisting(path); err != nil {
		return err
	}
	lock, err := lockFile(path)
	if err != nil {
		return err
	}
	defer func() { _ = lock.Close() }() // releases the lock; nothing was written to it
	if err := refuseExisting(path); err != nil {
		return err
	}
	k := &Keystore{path: path, opts: o, c: contents.clone()}
	defer k.wipe()
	if err := k.rekey(passphrase); err != nil {
		return err
	}
	_, err = k.saveLocked()
	return err
}

func refuseExisting(path string) error {
	_, err := os.Lstat(path)
	switch {
	case err == nil:
		return fmt.Errorf("%w: %s", ErrExists, path)
	case errors.Is(err, fs.ErrNotExist):
		return nil
	default:
		return fmt.Errorf("keystore: %w", err)
	}
}

// Open decrypts the keystore at path (a symlink is followed, and Save
// replaces its target) and holds it until Close. It fails with
// ErrWrongPassphrase when the file does not decrypt, ErrCorrupt when it is
// not a keystore, ErrLocked when another Keystore holds it, and an error
// matching fs.ErrNotExist when there is no file.
func Open(path string, passphrase []byte, opts ...Option) (*Keystore, error) {
	o, err := newOptions(opts)
	if err != nil {
		return nil, err
	}
	resolved, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil, fmt.Errorf("keystore: %w", err)
	}
	lock, err := lockFile(resolved)
	if err != nil {
		return nil, err
	}
	k := &Keystore{path: resolved, opts: o, lock: lock}
	if err := k.load(passphrase); err != nil {
		k.wipe()
		_ = lock.Close()
		return nil, err
	}
	return k, nil
}

// load reads, decrypts and decodes the file, and upgrades a cheap key.
func (k *Keystore) load(passphrase []byte) error {
	data, err := readFile(k.path)
	if err != nil {
		return err
	}
	h, hlen, err := parseHeader(data)
	if err != nil {
		return err
	}
	if len(data)-hlen < tagSize {
		return fmt.Errorf("%w: truncated ciphertext", ErrCorrupt)
	}
	key := k.opts.kdf(passphrase, h.salt, h.kdf)
	defer clear(key)
	pt, err := open(key, &h, data, hlen)
	if err != nil {
		return err
	}
	defer clear(pt)
	c, err := decodeContents(pt)
	if err != nil {
		return err
	}
	k.c = c
	copy(k.key[:], key)
	k.hdr = h
	if h.kdf.weakerThan(k.opts.cfg.KDF) {
		// The next Save writes the configured cost.
		return k.rekey(passphrase)
	}
	return nil
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("keystore: %w", err)
	}
	defer func() { _ = f.Close() }() // read-only
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("keystore: reading %s: %w", path, err)
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrCorrupt, MaxFileSize)
	}
	return data, nil
}

// rekey derives a new key from passphrase with the configured cost and a
// fresh salt.
func (k *Keystore) rekey(passphrase []byte) error {
	salt := make([]byte, saltSize)
	if _, err := io.ReadFull(k.opts.rand, salt); err != nil {
		return fmt.Errorf("keystore: reading randomness: %w", err)
	}
	key := k.opts.kdf(passphrase, salt, k.opts.cfg.KDF)
	copy(k.key[:], key)
	clear(key)
	k.hdr = header{kdf: k.opts.cfg.KDF, salt: salt}
	return nil
}

// Path returns the keystore file's path, symlinks resolved.
func (k *Keystore) Path() string { return k.path }

// Save writes the contents to disk atomically (see the package doc). After
// an error the file holds either the old or the new contents, and Save may
// be called again.
func (k *Keystore) Save() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return ErrClosed
	}
	_, err := k.saveLocked()
	return err
}

// saveLocked writes the file and reports whether it replaced the old one
// (which a failure to sync the directory afterwards does not undo).
func (k *Keystore) saveLocked() (replaced bool, err error) {
	pt, err := encodeContents(&k.c)
	if err != nil {
		return false, err
	}
	defer clear(pt)
	h := k.hdr
	if _, err := io.ReadFull(k.opts.rand, h.nonce[:]); err != nil {
		return false, fmt.Errorf("keystore: reading randomness: %w", err)
	}
	if h.size()+len(pt)+tagSize > MaxFileSize {
		return false, fmt.Errorf("%w: %d bytes of contents, the file may hold %d", ErrTooLarge, len(pt), MaxFileSize-h.size()-tagSize)
	}
	data, err := seal(&k.key, &h, pt)
	if err != nil {
		return false, err
	}
	return writeAtomic(k.path, data, k.opts.fault)
}

// ChangePassphrase derives a new key from passphrase, with a fresh salt and
// the configured KDF cost, and saves.
func (k *Keystore) ChangePassphrase(passphrase []byte) error {
	if len(passphrase) == 0 {
		return ErrEmptyPassphrase
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return ErrClosed
	}
	old, oldHdr := k.key, k.hdr
	if err := k.rekey(passphrase); err != nil {
		return err
	}
	if replaced, err := k.saveLocked(); err != nil {
		if !replaced {
			// The file still has the old key; so does the next Save.
			clear(k.key[:])
			k.key, k.hdr = old, oldHdr
		}
		return err
	}
	clear(old[:])
	return nil
}

// Contents returns a deep copy of the contents.
func (k *Keystore) Contents() Contents {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.c.clone()
}

// Update calls fn with a copy of the contents and, if fn returns nil and the
// result is valid and its sync position not behind the current one, makes
// it the contents. It does not save.
func (k *Keystore) Update(fn func(*Contents) error) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return ErrClosed
	}
	c := k.c.clone()
	if err := fn(&c); err != nil {
		return err
	}
	if c.SyncPosition < k.c.SyncPosition {
		return fmt.Errorf("%w: %d is behind %d", ErrSyncPositionRegress, c.SyncPosition, k.c.SyncPosition)
	}
	if err := c.Validate(); err != nil {
		return err
	}
	k.c = c.clone() // fn may have kept references into c
	return nil
}

// mutate runs fn on the contents under the lock; fn must leave them valid.
func (k *Keystore) mutate(fn func(c *Contents) error) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return ErrClosed
	}
	return fn(&k.c)
}

// SetSession records a session token and its expiry. It does not save.
func (k *Keystore) SetSession(token string, expires time.Time) error {
	if y := expires.Year(); y < 0 || y > 9999 {
		return fmt.Errorf("%w: token expiry year %d is outside [0, 9999]", ErrInvalidContents, y)
	}
	return k.mutate(func(c *Contents) error {
		c.Token, c.TokenExpires = token, expires
		return nil
	})
}

// PutTicket records the private keys of a ticket issued for epoch and
// returns its ID. It does not save.
func (k *Keystore) PutTicket(epoch uint64, tk keys.TicketKeys) (keys.TicketID, error) {
	t := NewTicket(epoch, tk)
	id := tk.Public().Sign
	return id, k.mutate(func(c *Contents) error {
		if c.Tickets == nil {
			c.Tickets = make(map[keys.TicketID]Ticket)
		}
		if old, ok := c.Tickets[id]; ok {
			old.wipe()
		}
		c.Tickets[id] = t
		return nil
	})
}

// DeleteTicket forgets a ticket's keys (no error if there were none). It
// does not save.
func (k *Keystore) DeleteTicket(id keys.TicketID) error {
	return k.mutate(func(c *Contents) error {
		if t, ok := c.Tickets[id]; ok {
			t.wipe()
			delete(c.Tickets, id)
		}
		return nil
	})
}

// PutRoom stores a copy of a room's state under name, replacing (and
// wiping) the previous one. It does not save.
func (k *Keystore) PutRoom(name string, state []byte) error {
	if name == "" || len(name) > MaxRoomNameSize {
		return fmt.Errorf("%w: room name is %d bytes, want 1 to %d", ErrInvalidContents, len(name), MaxRoomNameSize)
	}
	return k.mutate(func(c *Contents) error {
		if c.Rooms == nil {
			c.Rooms = make(map[string][]byte)
		}
		clear(c.Rooms[name])
		c.Rooms[name] = bytes.Clone(state)
		return nil
	})
}

// DeleteRoom forgets (and wipes) a room's state; no error if there was none.
// It does not save.
func (k *Keystore) DeleteRoom(name string) error {
	return k.mutate(func(c *Contents) error {
		clear(c.Rooms[name])
		delete(c.Rooms, name)
		return nil
	})
}

// SetSyncPosition moves the sync position to pos. It fails with
// ErrSyncPositionRegress if pos is behind the current position. It does not
// save.
func (k *Keystore) SetSyncPosition(pos uint64) error {
	return k.mutate(func(c *Contents) error {
		if pos < c.SyncPosition {
			return fmt.Errorf("%w: %d is behind %d", ErrSyncPositionRegress, pos, c.SyncPosition)
		}
		c.SyncPosition = pos
		return nil
	})
}

// Close releases the lock and wipes the key and contents from memory, best
// effort. It does not save. Calling it again does nothing.
func (k *Keystore) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return nil
	}
	k.closed = true
	k.wipe()
	err := k.lock.Close()
	k.lock = nil
	if err != nil {
		return fmt.Errorf("keystore: releasing lock: %w", err)
	}
	return nil
}

func (k *Keystore) wipe() {
	clear(k.key[:])
	k.c.wipe()
}
