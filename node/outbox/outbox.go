// Package outbox holds what the node's store-and-forward senders share:
// node/federation (envelopes, spec 12-delivery §5) and node/reports/forward
// (reports, spec 13-moderation §2.1). Both keep a durable queue per
// destination node and retry a failed delivery after an exponential
// backoff with full jitter and a cap (Backoff), which starts afresh when a
// connection to the destination is established (Watch).
//
// The queues themselves stay with their senders, because they differ in
// what they must guarantee: the envelope queue is ordered (a sequence per
// destination, visible only up to the commit watermark, so that a room's
// order holds), the report queue is keyed by report ID (idempotent,
// unordered, with each entry's next attempt persisted).
package outbox

import (
	"math/rand/v2"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/parley-chat/parley/protocol/keys"
)

// Backoff is a retry policy: exponential backoff with full jitter, capped.
type Backoff struct {
	// Base caps the first retry's delay; each further failure doubles the
	// cap, up to Max.
	Base time.Duration
	// Max caps every delay.
	Max time.Duration
}

// Delay returns the delay before retry number attempt (from 1), drawn
// uniformly from [0, min(Max, Base × 2^(attempt-1))]. An attempt below 1
// counts as 1; a Max below Base is taken as Base.
func (b Backoff) Delay(attempt int) time.Duration {
	limit := max(b.Max, b.Base)
	if shift := max(attempt, 1) - 1; shift < 62 {
		if d := b.Base << shift; d > 0 && d>>shift == b.Base && d < limit {
			limit = d
		}
	}
	if limit <= 0 {
		return 0
	}
	return rand.N(limit + 1) //nolint:gosec // jitter, not a secret
}

// Watch calls connected with the node ID of the remote peer of every
// connection n establishes from now on (inbound or outbound), until the
// returned stop is called. Peers whose key is not a node key are skipped.
// connected runs on libp2p's notification goroutine: it must not block.
func Watch(n network.Network, connected func(keys.NodeID)) (stop func()) {
	nb := &network.NotifyBundle{ConnectedF: func(_ network.Network, c network.Conn) {
		id, err := keys.NodeIDFromPeerIDBytes([]byte(c.RemotePeer()))
		if err != nil {
			return
		}
		connected(id)
	}}
	n.Notify(nb)
	return func() { n.StopNotify(nb) }
}
