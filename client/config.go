package client

import (
	"errors"
	"fmt"
	"time"

	"github.com/parley-chat/parley/protocol/wire"
)

// ErrInvalidConfig wraps every problem Config.Validate finds.
var ErrInvalidConfig = errors.New("client: invalid config")

// Bounds of the Config fields.
const (
	// MaxHistoryPerRoom bounds Config.HistoryPerRoom.
	MaxHistoryPerRoom = 1000
	// MaxHistoryBytesPerRoom bounds Config.HistoryBytesPerRoom. The whole
	// keystore must stay below keystore.MaxFileSize.
	MaxHistoryBytesPerRoom = 2 << 20
	// MaxClosedRoomsKept bounds Config.ClosedRoomsKept.
	MaxClosedRoomsKept = 16
	// MaxSendAttempts bounds Config.SendAttempts.
	MaxSendAttempts = 20
	// MaxSyncLimit is the most events one sync may ask for (spec 09 §6).
	MaxSyncLimit = 1000
)

// Config tunes a Session. The zero value means every default.
type Config struct {
	// HistoryPerRoom is how many received messages per room the keystore
	// keeps, newest last, so that they can be reported (a disclosure needs
	// the stamped header, the content and the franking key). Default 50;
	// at most MaxHistoryPerRoom.
	HistoryPerRoom int
	// HistoryBytesPerRoom bounds the content bytes of the kept messages of
	// one room; the oldest are dropped first, the newest is always kept.
	// Default 262144 (256 KiB); at most MaxHistoryBytesPerRoom.
	HistoryBytesPerRoom int
	// ClosedRoomsKept is how many closed rooms the keystore keeps (their
	// history, for reports, and the avoid key of the last one left); older
	// ones, and any closed room older than wire.MaxDisclosureAge, are
	// forgotten with their ticket keys. Default 4; at most
	// MaxClosedRoomsKept.
	ClosedRoomsKept int
	// SendAttempts is how many times Send posts one envelope (with one
	// txid) before it gives up and leaves it in the outbox for Flush.
	// Default 5; at most MaxSendAttempts.
	SendAttempts int
	// RetryBackoff is the wait before the first retry of a send; it
	// doubles with each retry up to 16 times its value, and a node's
	// Retry-After takes precedence. Default 500ms; at most 1m.
	RetryBackoff time.Duration
	// SyncLimit is the most events one Receive asks for. Default 100; at
	// most MaxSyncLimit.
	SyncLimit int
	// PairWait is the long-poll wait Pair uses while it waits for a
	// partner. Default 30s; at most MaxSyncWait.
	PairWait time.Duration
}

// Validate reports every problem with c at once, wrapped in
// ErrInvalidConfig.
func (c Config) Validate() error {
	var errs []error
	check := func(name string, v, hi int) {
		if v < 0 || v > hi {
			errs = append(errs, fmt.Errorf("%s is %d, want 0 (default) to %d", name, v, hi))
		}
	}
	check("HistoryPerRoom", c.HistoryPerRoom, MaxHistoryPerRoom)
	check("HistoryBytesPerRoom", c.HistoryBytesPerRoom, MaxHistoryBytesPerRoom)
	check("ClosedRoomsKept", c.ClosedRoomsKept, MaxClosedRoomsKept)
	check("SendAttempts", c.SendAttempts, MaxSendAttempts)
	check("SyncLimit", c.SyncLimit, MaxSyncLimit)
	if c.RetryBackoff < 0 || c.RetryBackoff > time.Minute {
		errs = append(errs, fmt.Errorf("RetryBackoff is %v, want 0 (default) to 1m", c.RetryBackoff))
	}
	if c.PairWait < 0 || c.PairWait > MaxSyncWait {
		errs = append(errs, fmt.Errorf("PairWait is %v, want 0 (default) to %v", c.PairWait, MaxSyncWait))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
	}
	return nil
}

func (c Config) withDefaults() Config {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.HistoryPerRoom, 50)
	def(&c.HistoryBytesPerRoom, 256<<10)
	def(&c.ClosedRoomsKept, 4)
	def(&c.SendAttempts, 5)
	def(&c.SyncLimit, 100)
	if c.RetryBackoff == 0 {
		c.RetryBackoff = 500 * time.Millisecond
	}
	if c.PairWait == 0 {
		c.PairWait = 30 * time.Second
	}
	return c
}

// maxReportItems is the most messages one report discloses.
const maxReportItems = wire.MaxDisclosureItems
