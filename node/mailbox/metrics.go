package mailbox

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	appended *prometheus.CounterVec
	acked    prometheus.Counter
	expired  prometheus.Counter
	waiters  prometheus.Gauge
	events   prometheus.Gauge
}

func newMetrics() *metrics {
	m := &metrics{
		appended: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_mailbox_appended_total",
			Help: "Events durably appended to mailboxes, by kind.",
		}, []string{"kind"}),
		acked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_mailbox_acked_total",
			Help: "Events deleted because their account acknowledged them.",
		}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_mailbox_expired_total",
			Help: "Events deleted unacknowledged because they outlived the retention limit.",
		}),
		waiters: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "parley_mailbox_waiters",
			Help: "Sync requests waiting for an event.",
		}),
		events: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "parley_mailbox_events",
			Help: "Events stored in mailboxes (counted at start, then maintained).",
		}),
	}
	for _, k := range kinds {
		m.appended.WithLabelValues(k.String())
	}
	return m
}

func (m *metrics) register(r prometheus.Registerer) error {
	var errs []error
	for _, c := range []prometheus.Collector{m.appended, m.acked, m.expired, m.waiters, m.events} {
		errs = append(errs, r.Register(c))
	}
	return errors.Join(errs...)
}
