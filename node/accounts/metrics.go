package accounts

import "github.com/prometheus/client_golang/prometheus"

// metrics are the service's Prometheus metrics. Labels are bounded: result
// values only, never an account or username.
type metrics struct {
	registrations     *prometheus.CounterVec
	logins            *prometheus.CounterVec
	activeTokens      prometheus.Gauge
	suspended         prometheus.Gauge
	challenges        prometheus.Gauge
	challengesDropped prometheus.Counter
}

var _ prometheus.Collector = (*metrics)(nil)

func newMetrics() *metrics {
	m := &metrics{
		registrations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_accounts_registrations_total",
			Help: "Registration attempts by result: ok, taken, bad_invite, closed or invalid.",
		}, []string{"result"}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_accounts_logins_total",
			Help: "Login attempts by result: ok or failed.",
		}, []string{"result"}),
		activeTokens: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "parley_accounts_active_tokens",
			Help: "Session tokens stored, including expired ones not yet purged.",
		}),
		suspended: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "parley_accounts_suspended",
			Help: "Accounts suspended.",
		}),
		challenges: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "parley_accounts_challenges",
			Help: "Login challenges held in memory, including expired ones not yet dropped.",
		}),
		challengesDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_accounts_challenges_dropped_total",
			Help: "Unexpired login challenges dropped because max_challenges were outstanding.",
		}),
	}
	for _, r := range []string{"ok", "taken", "bad_invite", "closed", "invalid"} {
		m.registrations.WithLabelValues(r)
	}
	for _, r := range []string{"ok", "failed"} {
		m.logins.WithLabelValues(r)
	}
	return m
}

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.collectors() {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.collectors() {
		c.Collect(ch)
	}
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.registrations, m.logins, m.activeTokens, m.suspended, m.challenges, m.challengesDropped}
}
