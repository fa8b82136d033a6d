package federation

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	fed "github.com/parley-chat/parley/protocol/federation"
)

// Bounded label values.
const (
	stateConnected = "connected"
	stateBackoff   = "backoff"

	dropExpired = "expired"
	dropCorrupt = "corrupt"

	invalidOversized = "oversized"
	invalidTruncated = "truncated"
	invalidMalformed = "malformed"
	invalidPeerKey   = "peer_key"
)

type metrics struct {
	envelopesOut *prometheus.CounterVec // status
	envelopesIn  *prometheus.CounterVec // status
	bytesOut     prometheus.Counter
	bytesIn      prometheus.Counter
	retries      prometheus.Counter
	drops        *prometheus.CounterVec // reason
	latency      prometheus.Histogram
	invalid      *prometheus.CounterVec // reason
	busy         *prometheus.CounterVec // direction
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	statuses := []string{fed.Stored.String(), fed.Duplicate.String(), fed.Rejected.String()}
	m := &metrics{
		envelopesOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_federation_envelopes_sent_total",
			Help: "Envelopes this node delivered to other nodes, by the receiver's answer: stored, duplicate, rejected.",
		}, []string{"status"}),
		envelopesIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_federation_envelopes_received_total",
			Help: "Envelopes other nodes delivered to this node, by this node's answer: stored, duplicate, rejected.",
		}, []string{"status"}),
		bytesOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_federation_sent_bytes_total",
			Help: "Bytes of delivery frames written.",
		}),
		bytesIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_federation_received_bytes_total",
			Help: "Bytes of delivery frames read.",
		}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_federation_retries_total",
			Help: "Failed delivery attempts, each followed by a backoff.",
		}),
		drops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_federation_drops_total",
			Help: "Envelopes removed from the outbox undelivered, by reason: expired (retention), corrupt, or the receiver's rejection reason.",
		}, []string{"reason"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "parley_federation_delivery_latency_seconds",
			Help:    "Time from an envelope's stamp to the receiving node's acknowledgement of its durable write.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 20), // 0.5ms to 4.4min
		}),
		invalid: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_federation_invalid_frames_total",
			Help: "Incoming delivery streams reset for a bad frame, by reason: oversized, truncated, malformed, peer_key.",
		}, []string{"reason"}),
		busy: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_federation_busy_acks_total",
			Help: "Batches answered busy (over the per-peer rate limit), by direction: sent (to a peer) or received.",
		}, []string{"direction"}),
	}
	for _, s := range statuses {
		m.envelopesOut.WithLabelValues(s)
		m.envelopesIn.WithLabelValues(s)
	}
	for _, r := range fed.Reasons {
		m.drops.WithLabelValues(r.String())
	}
	m.drops.WithLabelValues(dropExpired)
	m.drops.WithLabelValues(dropCorrupt)
	for _, r := range []string{invalidOversized, invalidTruncated, invalidMalformed, invalidPeerKey} {
		m.invalid.WithLabelValues(r)
	}
	m.busy.WithLabelValues("sent")
	m.busy.WithLabelValues("received")
	if reg == nil {
		return m, nil
	}
	var errs []error
	m.envelopesOut, errs = register(reg, m.envelopesOut, errs)
	m.envelopesIn, errs = register(reg, m.envelopesIn, errs)
	m.bytesOut, errs = register(reg, m.bytesOut, errs)
	m.bytesIn, errs = register(reg, m.bytesIn, errs)
	m.retries, errs = register(reg, m.retries, errs)
	m.drops, errs = register(reg, m.drops, errs)
	m.latency, errs = register(reg, m.latency, errs)
	m.invalid, errs = register(reg, m.invalid, errs)
	m.busy, errs = register(reg, m.busy, errs)
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("federation: registering metrics: %w", err)
	}
	return m, nil
}

// register registers c with reg, or returns the identical collector the
// sender or handler registered first.
func register[C prometheus.Collector](reg prometheus.Registerer, c C, errs []error) (C, []error) {
	err := reg.Register(c)
	if err == nil {
		return c, errs
	}
	if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, errs
		}
	}
	return c, append(errs, err)
}
