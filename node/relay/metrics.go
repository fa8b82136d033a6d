package relay

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	sends          *prometheus.CounterVec
	batchSize      prometheus.Histogram
	duration       prometheus.Histogram
	queueDepth     prometheus.GaugeFunc
	recordsExpired prometheus.Counter
	remote         *prometheus.CounterVec
}

func newMetrics(queueDepth func() float64) *metrics {
	m := &metrics{
		sends: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_relay_sends_total",
			Help: "Sends by outcome: ok (stored), duplicate (a retry answered from the record), rejected (refused for its content), error (the node failed).",
		}, []string{"result"}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "parley_relay_batch_size",
			Help:    "Envelopes per stamp and synced write.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 13), // 1 to 4096
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "parley_relay_send_duration_seconds",
			Help:    "Time from queueing a send to its durable write.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16), // 100µs to 3.3s
		}),
		queueDepth: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "parley_relay_queue_depth",
			Help: "Sends waiting for the pipeline.",
		}, queueDepth),
		recordsExpired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_relay_records_expired_total",
			Help: "Send and delivered-envelope records deleted after the retention window.",
		}),
		remote: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_relay_remote_envelopes_total",
			Help: "Envelopes other nodes delivered, by result: stored, duplicate (stored before), rejected.",
		}, []string{"result"}),
	}
	for _, r := range []string{"stored", "duplicate", "rejected"} {
		m.remote.WithLabelValues(r)
	}
	for _, r := range []string{"ok", "duplicate", "rejected", "error"} {
		m.sends.WithLabelValues(r)
	}
	return m
}

func (m *metrics) register(r prometheus.Registerer) error {
	var errs []error
	for _, c := range []prometheus.Collector{m.sends, m.batchSize, m.duration, m.queueDepth, m.recordsExpired, m.remote} {
		errs = append(errs, r.Register(c))
	}
	return errors.Join(errs...)
}
