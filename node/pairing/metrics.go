package pairing

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Values of the result label of parley_pairing_tickets_total.
const (
	resultAccepted = "accepted"
	resultRejected = "rejected"
)

type metrics struct {
	tickets       *prometheus.CounterVec
	pairs         prometheus.Counter
	rolled        prometheus.Counter
	expired       prometheus.Counter
	withdrawn     prometheus.Counter
	epochFailures prometheus.Counter
	waiting       prometheus.Gauge
	waitSeconds   prometheus.Histogram
	waitEpochs    prometheus.Histogram
	epochSeconds  prometheus.Histogram
	unmatched     prometheus.Counter
	excluded      prometheus.Counter
	disagreed     prometheus.Counter
	proofs        prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		tickets: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_pairing_tickets_total",
			Help: "Ticket requests, by result (accepted or rejected).",
		}, []string{"result"}),
		pairs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_pairing_pairs_total",
			Help: "Pairs this node confirmed and announced (rooms created).",
		}),
		rolled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_pairing_rolled_over_total",
			Help: "Tickets of this node left unpaired in an epoch and rolled over to the next.",
		}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_pairing_expired_total",
			Help: "Tickets dropped unpaired after rolling over ticket_ttl epochs.",
		}),
		withdrawn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_pairing_withdrawn_total",
			Help: "Waiting tickets withdrawn by their account.",
		}),
		epochFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_pairing_epoch_failures_total",
			Help: "Epochs whose processing failed; their tickets rolled over.",
		}),
		waiting: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "parley_pairing_waiting_tickets",
			Help: "Tickets of this node waiting for a partner.",
		}),
		waitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "parley_pairing_wait_seconds",
			Help:    "Time from a ticket's request to its pairing.",
			Buckets: []float64{1, 2, 4, 6, 10, 20, 30, 60, 120, 300, 600},
		}),
		waitEpochs: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "parley_pairing_wait_epochs",
			Help:    "Epochs from the one a ticket first joined to the one that paired it (0: paired at once).",
			Buckets: []float64{0, 1, 2, 3, 5, 10, 20, 50, 150},
		}),
		unmatched: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_pairing_unmatched_total",
			Help: "Tickets of this node the draw left unmatched (they roll over).",
		}),
		excluded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_pairing_excluded_nodes_total",
			Help: "Nodes excluded from an epoch's draw (committed without a valid reveal, or equivocated), summed over epochs.",
		}),
		disagreed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_pairing_disagreed_epochs_total",
			Help: "Epochs in which another node's view differed from this node's (a confirmation or view check failed); their pairs were delayed.",
		}),
		proofs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_pairing_equivocation_proofs_total",
			Help: "Equivocation proofs stored with their epoch's inputs.",
		}),
		epochSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "parley_pairing_epoch_duration_seconds",
			Help:    "Time to process one epoch: stamp, commit, reveal, draw, settle.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
	}
	m.tickets.WithLabelValues(resultAccepted)
	m.tickets.WithLabelValues(resultRejected)
	return m
}

func (m *metrics) register(r prometheus.Registerer) error {
	var errs []error
	for _, c := range []prometheus.Collector{
		m.tickets, m.pairs, m.rolled, m.expired, m.withdrawn, m.epochFailures,
		m.waiting, m.waitSeconds, m.waitEpochs, m.epochSeconds, m.unmatched, m.excluded, m.disagreed, m.proofs,
	} {
		errs = append(errs, r.Register(c))
	}
	return errors.Join(errs...)
}
