package ratelimit

import (
	"errors"
	"fmt"
	"time"
)

// Kinds of per-account limits (DESIGN §3.7): what a request of that kind
// costs, in tokens of that kind's buckets.
const (
	KindMessage = "message"  // one message sent
	KindTicket  = "ticket"   // one lottery ticket asked for
	KindReport  = "report"   // one report submitted
	KindBlobKiB = "blob_kib" // one KiB of declared blob size uploaded
)

// AccountConfig is every account's budget per kind (a [limits] section):
// one token bucket per account and kind. A request over it is refused with
// 429 and counted in parley_ratelimit_limited_total{limiter="account_<kind>"}.
// A throttled account (node/moderation) is held to its tighter limits on top.
type AccountConfig struct {
	// Messages sent. Default rate 20/s, burst 200.
	Messages Limit `toml:"messages" comment:"Messages an account may send (default rate 20, burst 200)."`
	// Tickets asked for. Default rate 0.2/s (one per 5 s), burst 20.
	Tickets Limit `toml:"tickets" comment:"Lottery tickets an account may ask for (default rate 0.2, burst 20)."`
	// Reports submitted. Default rate 0.05/s (3 per minute), burst 20.
	Reports Limit `toml:"reports" comment:"Reports an account may submit (default rate 0.05, burst 20)."`
	// BlobKiB is the declared size of blobs uploaded, in KiB, charged
	// when an upload is created. Default rate 1024 KiB/s (1 MiB/s), burst
	// 1 GiB; the burst must hold the largest blob.
	BlobKiB Limit `toml:"blob_kib" comment:"KiB of blobs an account may upload, charged at creation (default rate 1024, burst 1048576)."`
	// MaxAccounts bounds the accounts tracked per kind. Default 100000.
	MaxAccounts int `toml:"max_accounts" comment:"Accounts tracked per kind; the least recently seen are forgotten beyond (default 100000)."`
}

// DefaultAccountConfig returns the defaults.
func DefaultAccountConfig() AccountConfig { return AccountConfig{}.withDefaults() }

func (c AccountConfig) withDefaults() AccountConfig {
	def := func(l *Limit, d Limit) {
		if *l == (Limit{}) {
			*l = d
		}
	}
	def(&c.Messages, Limit{Rate: 20, Burst: 200})
	def(&c.Tickets, Limit{Rate: 0.2, Burst: 20})
	def(&c.Reports, Limit{Rate: 0.05, Burst: 20})
	def(&c.BlobKiB, Limit{Rate: 1024, Burst: 1 << 20})
	if c.MaxAccounts == 0 {
		c.MaxAccounts = 100000
	}
	return c
}

// Validate reports every problem with c at once. Zero fields take their
// defaults.
func (c AccountConfig) Validate() error {
	d := c.withDefaults()
	var errs []error
	for _, k := range []struct {
		name string
		l    Limit
	}{{"messages", d.Messages}, {"tickets", d.Tickets}, {"reports", d.Reports}, {"blob_kib", d.BlobKiB}} {
		if err := k.l.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("limits.%s: %w", k.name, err))
		}
	}
	if d.MaxAccounts < 1 {
		errs = append(errs, fmt.Errorf("limits.max_accounts %d must be at least 1", c.MaxAccounts))
	}
	return errors.Join(errs...)
}

// Accounts holds the per-account buckets of every kind.
type Accounts struct {
	by map[string]*Limiter
}

// NewAccounts builds the limiters of cfg (zero fields take their defaults);
// opts apply to each (each is named account_<kind>).
func NewAccounts(cfg AccountConfig, opts ...Option) (*Accounts, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	a := &Accounts{by: make(map[string]*Limiter, 4)}
	for kind, l := range map[string]Limit{KindMessage: cfg.Messages, KindTicket: cfg.Tickets, KindReport: cfg.Reports, KindBlobKiB: cfg.BlobKiB} {
		lim, err := New(l, cfg.MaxAccounts, append(opts, WithName("account_"+kind))...)
		if err != nil {
			return nil, err
		}
		a.by[kind] = lim
	}
	return a, nil
}

// Allow takes n tokens of kind from key's bucket (key: the account ID's
// bytes), or says how long until there will be enough (Never if n is above
// the burst). An unknown kind is a programming error and panics.
func (a *Accounts) Allow(kind, key string, n int) (bool, time.Duration) {
	lim, ok := a.by[kind]
	if !ok {
		panic("ratelimit: unknown account limit kind " + kind)
	}
	return lim.AllowN(key, n)
}
