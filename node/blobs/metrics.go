package blobs

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Label values, all bounded.
const (
	refusedSize    = "size"
	refusedAccount = "account"
	refusedNode    = "node"
	gcBlob         = "blob"
	gcUpload       = "upload"
)

type metrics struct {
	storedBytes   prometheus.Gauge
	blobs         prometheus.Gauge
	uploads       prometheus.Gauge
	reservedBytes prometheus.Gauge
	parts         prometheus.Counter
	completed     prometheus.Counter
	quotaRefused  *prometheus.CounterVec
	gcDeleted     *prometheus.CounterVec
	takedowns     prometheus.Counter
	fetches       *prometheus.CounterVec
	served        *prometheus.CounterVec
	// Takedown notices (spec 08 §13).
	noticesSent     *prometheus.CounterVec
	noticesReceived *prometheus.CounterVec
	// Per-peer serving limits.
	peerLimited prometheus.Counter
	pacedWait   prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		storedBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "parley_blobs_stored_bytes",
			Help: "Ciphertext bytes of the blobs stored on the node.",
		}),
		blobs: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "parley_blobs_stored",
			Help: "Blobs stored on the node.",
		}),
		uploads: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "parley_blobs_uploads_in_progress",
			Help: "Blob uploads created and neither completed, aborted nor expired.",
		}),
		reservedBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "parley_blobs_reserved_bytes",
			Help: "Ciphertext bytes reserved against the quotas by uploads in progress.",
		}),
		parts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_blobs_parts_received_total",
			Help: "Upload parts received, verified in length and durably written.",
		}),
		completed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_blobs_uploads_completed_total",
			Help: "Uploads completed: verified against their manifest and made available.",
		}),
		quotaRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_blobs_quota_refusals_total",
			Help: "Uploads refused at creation, by reason: size (over max_blob_bytes), account or node quota.",
		}, []string{"reason"}),
		gcDeleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_blobs_gc_deleted_total",
			Help: "Expired blobs and incomplete uploads deleted by garbage collection, by kind.",
		}, []string{"kind"}),
		takedowns: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_blobs_takedowns_total",
			Help: "Blob addresses taken down.",
		}),
		fetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_blobs_fetches_total",
			Help: "Blobs fetched from other nodes, by result: ok, not_found, taken_down, mismatch (a bad manifest or chunk), failed.",
		}, []string{"result"}),
		served: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_blobs_fetches_served_total",
			Help: "Blob fetches served to other nodes, by answer: ok, not_found, taken_down, bad_request, busy, malformed, failed.",
		}, []string{"answer"}),
		peerLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_blobs_fetch_serves_peer_limited_total",
			Help: "Blob fetches answered busy because the fetching node already had max_fetch_serves_per_peer fetches served.",
		}),
		pacedWait: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_blobs_fetch_serve_paced_seconds_total",
			Help: "Time blob fetch serving waited to keep each node under fetch_serve_bytes_per_second.",
		}),
		noticesSent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_blobs_takedown_notices_sent_total",
			Help: "Attempts to deliver a signed takedown notice to a node that fetched a blob taken down here, by outcome: done, refused, busy, failed, given_up.",
		}, []string{"outcome"}),
		noticesReceived: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_blobs_takedown_notices_received_total",
			Help: "Takedown notices received from other nodes, by result: dropped (a cached copy deleted), not_held, refused (bad signature or not the blob's origin), malformed, busy.",
		}, []string{"result"}),
	}
	for _, r := range []string{refusedSize, refusedAccount, refusedNode} {
		m.quotaRefused.WithLabelValues(r)
	}
	for _, k := range []string{gcBlob, gcUpload} {
		m.gcDeleted.WithLabelValues(k)
	}
	for _, r := range []string{noticeDropped, noticeNothing, noticeRefused, noticeMalformed, noticeBusy} {
		m.noticesReceived.WithLabelValues(r)
	}
	return m
}

func (m *metrics) register(r prometheus.Registerer) error {
	var errs []error
	for _, c := range []prometheus.Collector{m.storedBytes, m.blobs, m.uploads, m.reservedBytes, m.parts, m.completed, m.quotaRefused, m.gcDeleted, m.takedowns, m.fetches, m.served, m.noticesSent, m.noticesReceived, m.peerLimited, m.pacedWait} {
		errs = append(errs, r.Register(c))
	}
	return errors.Join(errs...)
}
