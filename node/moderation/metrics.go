package moderation

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	reports      *prometheus.CounterVec
	actions      *prometheus.CounterVec
	throttleHits *prometheus.CounterVec
	throttled    prometheus.Gauge
	score        prometheus.Histogram
}

func newMetrics(r prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		reports: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_moderation_reports_total",
			Help: "Verified reports about local accounts given to the policy, by result (counted, duplicate, stale).",
		}, []string{"result"}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_moderation_actions_total",
			Help: "Moderation actions, by kind (throttle, suspend, unthrottle, unsuspend) and by (policy, operator).",
		}, []string{"kind", "by"}),
		throttleHits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_moderation_throttle_hits_total",
			Help: "Requests of throttled accounts refused by their throttle, by kind (message, ticket).",
		}, []string{"kind"}),
		throttled: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "parley_moderation_throttled_accounts",
			Help: "Accounts with a throttle on record (expired ones included until lifted).",
		}),
		score: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "parley_moderation_spam_score",
			Help:    "Spam scores computed when accounts' rooms close (0 to 1).",
			Buckets: prometheus.LinearBuckets(0.1, 0.1, 10),
		}),
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.reports, m.actions, m.throttleHits, m.throttled, m.score} {
		if err := r.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	return m, errors.Join(errs...)
}
