package blobs

import (
	"errors"
	"fmt"
	"time"

	"github.com/parley-chat/parley/protocol/blob"
)

// Config is the blob store's part of the node configuration. A zero field
// takes the default its comment names; DefaultConfig returns them all.
type Config struct {
	// Dir is the directory of the blob files. Required; the node sets it to
	// <data_dir>/blobs, it is not a config file setting.
	Dir string `toml:"-"`
	// MaxBlobBytes bounds the plaintext size an upload may declare
	// (413 beyond). Default 512 MiB; at most blob.MaxSize (2 GiB).
	MaxBlobBytes uint64 `toml:"max_blob_bytes" comment:"Largest blob an account may upload, in plaintext bytes (default 536870912, 512 MiB; at most 2 GiB)."`
	// AccountQuotaBytes bounds the ciphertext bytes one account may have
	// stored and reserved by open uploads. Default 2 GiB.
	AccountQuotaBytes uint64 `toml:"account_quota_bytes" comment:"Stored and reserved ciphertext bytes allowed per account (default 2147483648, 2 GiB)."`
	// NodeQuotaBytes bounds the ciphertext bytes of all accounts together.
	// Default 64 GiB.
	NodeQuotaBytes uint64 `toml:"node_quota_bytes" comment:"Stored and reserved ciphertext bytes allowed on the node (default 68719476736, 64 GiB)."`
	// MaxUploadsPerAccount bounds the open uploads of one account.
	// Default 4.
	MaxUploadsPerAccount int `toml:"max_uploads_per_account" comment:"Open (incomplete) uploads allowed per account (default 4)."`
	// Retention is how long a blob is kept after its upload completes.
	// Default 720h (30 days).
	Retention time.Duration `toml:"retention" comment:"How long a blob is kept after its upload completes (default \"720h\")."`
	// UploadTTL is how long an incomplete upload is kept after it was
	// created; then it is deleted with its parts. Default 24h.
	UploadTTL time.Duration `toml:"upload_ttl" comment:"How long an incomplete upload may take before it is deleted (default \"24h\")."`
	// GCInterval is how often expired blobs and uploads are deleted.
	// Default 10m.
	GCInterval time.Duration `toml:"gc_interval" comment:"How often expired blobs and uploads are deleted (default \"10m\")."`
	// FetchTimeout bounds each step of a fetch between nodes (spec 08
	// §12): opening the stream, and reading or writing each frame.
	// Default 30s.
	FetchTimeout time.Duration `toml:"fetch_timeout" comment:"Deadline of each step (stream opening, each frame) of a blob fetch between nodes (default \"30s\")."`
	// MaxFetchServes bounds the fetches this node serves to other nodes
	// at once; more are answered busy. Default 16.
	MaxFetchServes int `toml:"max_fetch_serves" comment:"Blob fetches served to other nodes at once; more are answered busy (default 16)."`
	// MaxFetchServesPerPeer bounds the fetches served to one node at
	// once; more from it are answered busy. Default 4.
	MaxFetchServesPerPeer int `toml:"max_fetch_serves_per_peer" comment:"Blob fetches served to one node at once; more from it are answered busy (default 4)."`
	// FetchServeBytesPerSecond bounds the ciphertext bytes per second
	// served to one node, over all its fetches: chunks are paced, with a
	// burst of one second's worth (at least one chunk). Default 64 MiB/s.
	FetchServeBytesPerSecond uint64 `toml:"fetch_serve_bytes_per_second" comment:"Ciphertext bytes per second served to one node by blob fetches, paced with a one-second burst (default 67108864, 64 MiB/s)."`
	// TakedownRetry is the first delay before a takedown notice that could
	// not be delivered is sent again; it doubles (with jitter) up to 10m.
	// Notices are given up after Retention (the caches have expired by
	// then). Default 5s.
	TakedownRetry time.Duration `toml:"takedown_retry" comment:"First retry delay of an undelivered blob takedown notice; doubles up to 10m, given up after retention (default \"5s\")."`
}

// DefaultConfig returns the defaults, with Dir empty.
func DefaultConfig() Config { return Config{}.withDefaults() }

func (c Config) withDefaults() Config {
	setDefault(&c.MaxBlobBytes, 512<<20)
	setDefault(&c.AccountQuotaBytes, 2<<30)
	setDefault(&c.NodeQuotaBytes, 64<<30)
	setDefault(&c.MaxUploadsPerAccount, 4)
	setDefault(&c.Retention, 30*24*time.Hour)
	setDefault(&c.UploadTTL, 24*time.Hour)
	setDefault(&c.GCInterval, 10*time.Minute)
	setDefault(&c.FetchTimeout, 30*time.Second)
	setDefault(&c.MaxFetchServes, 16)
	setDefault(&c.MaxFetchServesPerPeer, 4)
	setDefault(&c.FetchServeBytesPerSecond, 64<<20)
	setDefault(&c.TakedownRetry, 5*time.Second)
	return c
}

func setDefault[T comparable](p *T, def T) {
	var zero T
	if *p == zero {
		*p = def
	}
}

// Validate reports every problem with c at once. Zero fields are valid:
// they take their defaults.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("blobs: "+format, args...)) }
	if c.Dir == "" {
		bad("dir is required")
	}
	if c.MaxBlobBytes > blob.MaxSize {
		bad("max_blob_bytes %d is above the format's limit %d", c.MaxBlobBytes, blob.MaxSize)
	}
	if c.MaxUploadsPerAccount < 0 {
		bad("max_uploads_per_account must not be negative")
	}
	if c.MaxFetchServes < 0 {
		bad("max_fetch_serves must not be negative")
	}
	if c.MaxFetchServesPerPeer < 0 {
		bad("max_fetch_serves_per_peer must not be negative")
	}
	if c.FetchServeBytesPerSecond > 1e9 {
		bad("fetch_serve_bytes_per_second %d is above 1e9", c.FetchServeBytesPerSecond)
	}
	for _, f := range []struct {
		name string
		d    time.Duration
	}{{"retention", c.Retention}, {"upload_ttl", c.UploadTTL}, {"gc_interval", c.GCInterval}, {"fetch_timeout", c.FetchTimeout}, {"takedown_retry", c.TakedownRetry}} {
		if f.d < 0 {
			bad("%s must not be negative", f.name)
		}
	}
	d := c.withDefaults()
	if CipherSize(d.MaxBlobBytes) > d.AccountQuotaBytes {
		bad("max_blob_bytes %d does not fit in account_quota_bytes %d once encrypted", d.MaxBlobBytes, d.AccountQuotaBytes)
	}
	if d.AccountQuotaBytes > d.NodeQuotaBytes {
		bad("account_quota_bytes %d is above node_quota_bytes %d", d.AccountQuotaBytes, d.NodeQuotaBytes)
	}
	if d.GCInterval > 0 && d.GCInterval < time.Second {
		bad("gc_interval %v is below 1s", d.GCInterval)
	}
	return errors.Join(errs...)
}
