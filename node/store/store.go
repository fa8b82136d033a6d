// Package store is a node's durable state: one pebble database under the
// node's data directory, with synced, group-committed writes.
//
// Everything a node acknowledges (a client's message, a remote node's
// batch) is acknowledged only after Commit returns, and Commit returns only
// after the batch is in the write-ahead log and the log is synced. Concurrent
// Commits share syncs: pebble's commit pipeline gathers the batches queued
// behind an in-flight sync into the next one (group commit), so durability
// does not cost one fsync per message. parley_store_fsyncs_total against
// parley_store_commits_total shows the grouping on a running node.
//
// The key layout is documented in keys.go, in one place.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/client_golang/prometheus"
)

// ErrNotFound is returned by Get when a key has no value.
var ErrNotFound = errors.New("store: not found")

// ErrClosed is returned by operations on a closed Store.
var ErrClosed = errors.New("store: closed")

// Config is the store's part of the node configuration.
type Config struct {
	// Dir is the directory of the pebble database. Required. The node sets
	// it to <data_dir>/store; it is not a config file setting.
	Dir string `toml:"-"`
	// CacheBytes is the block cache size. Default 64 MiB.
	CacheBytes int64 `toml:"cache_bytes" comment:"Block cache size in bytes (default 67108864, 64 MiB)."`
	// MemTableBytes is the size of one memtable. Default 32 MiB.
	MemTableBytes uint64 `toml:"memtable_bytes" comment:"Size of one memtable in bytes (default 33554432, 32 MiB)."`
}

// Validate reports every problem with c at once.
func (c Config) Validate() error {
	var errs []error
	if c.Dir == "" {
		errs = append(errs, errors.New("store: dir is required"))
	}
	if c.CacheBytes < 0 {
		errs = append(errs, fmt.Errorf("store: cache_bytes %d is negative", c.CacheBytes))
	}
	if c.MemTableBytes != 0 && c.MemTableBytes < 1<<20 {
		errs = append(errs, fmt.Errorf("store: memtable_bytes %d is below 1 MiB", c.MemTableBytes))
	}
	return errors.Join(errs...)
}

// DefaultConfig returns the defaults, with Dir empty.
func DefaultConfig() Config { return Config{}.withDefaults() }

func (c Config) withDefaults() Config {
	if c.CacheBytes == 0 {
		c.CacheBytes = 64 << 20
	}
	if c.MemTableBytes == 0 {
		c.MemTableBytes = 32 << 20
	}
	return c
}

type options struct {
	fs     vfs.FS
	logger *slog.Logger
	reg    prometheus.Registerer
}

// Option is a test seam or wiring choice for Open.
type Option func(*options)

// WithFS makes the store use fs instead of the operating system's
// filesystem (tests use pebble's memory and crashable filesystems).
func WithFS(fs vfs.FS) Option { return func(o *options) { o.fs = fs } }

// WithLogger sets the logger; the default discards.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithRegisterer registers the store's metrics with r.
func WithRegisterer(r prometheus.Registerer) Option { return func(o *options) { o.reg = r } }

// Store is an open database. Its methods are safe for concurrent use.
type Store struct {
	db      *pebble.DB
	log     *slog.Logger
	metrics *metrics
	syncs   *syncCounter
}

// Open opens (creating if needed) the database in cfg.Dir and replays its
// write-ahead log; when it returns, every acknowledged write is readable.
func Open(cfg Config, opts ...Option) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	o := options{fs: vfs.Default, logger: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(&o)
	}
	log := o.logger.With("subsystem", "store")
	counter := &syncCounter{}
	cache := pebble.NewCache(cfg.CacheBytes)
	defer cache.Unref()
	popts := &pebble.Options{
		FS:           countSyncs(o.fs, counter),
		Cache:        cache,
		MemTableSize: cfg.MemTableBytes,
		Logger:       pebbleLogger{log},
	}
	// Bloom filters on every level: the node's hot path asks for keys that
	// usually do not exist (a send's transaction and envelope-seen records),
	// and a filter answers most of those without reading a block.
	for i := range popts.Levels {
		popts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	popts.EnsureDefaults()
	db, err := pebble.Open(cfg.Dir, popts)
	if err != nil {
		return nil, fmt.Errorf("store: opening %s: %w", cfg.Dir, err)
	}
	s := &Store{db: db, log: log, syncs: counter}
	s.metrics = newMetrics(s)
	if o.reg != nil {
		if err := o.reg.Register(s.metrics); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("store: registering metrics: %w", err)
		}
	}
	log.Info("store open", "dir", cfg.Dir)
	return s, nil
}

// Close flushes nothing further (every commit is already synced) and closes
// the database.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("store: closing: %w", err)
	}
	return nil
}

// Get returns a copy of the value of key, or ErrNotFound.
func (s *Store) Get(key []byte) ([]byte, error) {
	v, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: get: %w", err)
	}
	out := append([]byte(nil), v...)
	_ = closer.Close()
	return out, nil
}

// Has reports whether key has a value.
func (s *Store) Has(key []byte) (bool, error) {
	_, err := s.Get(key)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Batch is a set of writes applied atomically by Commit.
type Batch struct {
	b *pebble.Batch
}

// NewBatch returns an empty batch. A batch must be committed or closed.
func (s *Store) NewBatch() *Batch { return &Batch{b: s.db.NewBatch()} }

// Set puts key = value in the batch. The batch copies both.
func (b *Batch) Set(key, value []byte) { _ = b.b.Set(key, value, nil) }

// Delete removes key in the batch.
func (b *Batch) Delete(key []byte) { _ = b.b.Delete(key, nil) }

// DeleteRange removes every key in [start, end) in the batch.
func (b *Batch) DeleteRange(start, end []byte) { _ = b.b.DeleteRange(start, end, nil) }

// Len returns the number of writes in the batch.
func (b *Batch) Len() int { return int(b.b.Count()) }

// Close releases an uncommitted batch.
func (b *Batch) Close() { _ = b.b.Close() }

// Commit applies b atomically and durably: it returns nil only once the
// batch is in the synced write-ahead log. It closes b either way. ctx is
// checked before the write; once the write starts it completes.
func (s *Store) Commit(ctx context.Context, b *Batch) error {
	defer b.Close()
	if err := ctx.Err(); err != nil {
		return err
	}
	start := time.Now()
	if err := b.b.Commit(pebble.Sync); err != nil {
		s.metrics.commitErrors.Inc()
		return fmt.Errorf("store: commit: %w", err)
	}
	s.metrics.commits.Inc()
	s.metrics.commitSeconds.Observe(time.Since(start).Seconds())
	return nil
}

// CommitLazy applies b atomically without waiting for a sync: the batch is
// in the write-ahead log and becomes durable with the next synced commit
// (or on Close). Use it only for writes whose loss in a crash is harmless
// because they are idempotent and would simply be redone, such as a
// client's acknowledgement (the client syncs again from its own stored
// position). Never acknowledge anything to anyone on a lazy commit.
func (s *Store) CommitLazy(ctx context.Context, b *Batch) error {
	defer b.Close()
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := b.b.Commit(pebble.NoSync); err != nil {
		s.metrics.commitErrors.Inc()
		return fmt.Errorf("store: commit: %w", err)
	}
	s.metrics.lazyCommits.Inc()
	return nil
}

// Scan calls fn for every key with the given prefix, in key order, starting
// after the key `after` (nil: from the start), for at most limit keys (0: no
// limit). The slices passed to fn are valid only during the call. fn returns
// false to stop.
func (s *Store) Scan(prefix, after []byte, limit int, fn func(key, value []byte) bool) error {
	lower := prefix
	if after != nil {
		lower = append(append([]byte(nil), after...), 0)
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: PrefixEnd(prefix)})
	if err != nil {
		return fmt.Errorf("store: scan: %w", err)
	}
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return fmt.Errorf("store: scan: %w", err)
		}
		if !fn(it.Key(), v) {
			break
		}
		n++
		if limit > 0 && n >= limit {
			break
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("store: scan: %w", err)
	}
	return nil
}

// PrefixEnd returns the smallest key greater than every key with prefix p,
// or nil if there is none (p is all 0xff).
func PrefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// pebbleLogger sends pebble's own messages to slog.
type pebbleLogger struct{ log *slog.Logger }

func (l pebbleLogger) Infof(format string, args ...any) {
	l.log.Debug(fmt.Sprintf(format, args...), "source", "pebble")
}

func (l pebbleLogger) Errorf(format string, args ...any) {
	l.log.Error(fmt.Sprintf(format, args...), "source", "pebble")
}

// Fatalf is called by pebble on a broken invariant (corruption); pebble
// expects it not to return.
func (l pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.log.Error(msg, "source", "pebble", "fatal", true)
	panic("store: pebble fatal error: " + msg)
}
