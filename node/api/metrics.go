package api

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// routeUnmatched is the route label of requests no pattern matched, so the
// label stays bounded whatever paths clients try.
const routeUnmatched = "unmatched"

type metrics struct {
	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	rateLimited *prometheus.CounterVec
	websockets  prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_api_requests_total",
			Help: "Client API requests answered, by route pattern and HTTP status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "parley_api_request_duration_seconds",
			Help: "Time to answer a client API request, by route pattern (long-polls included).",
			// Up to the longest long-poll.
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"route"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_api_rate_limited_total",
			Help: "Client API requests refused with 429, by limiter scope (account or ip).",
		}, []string{"scope"}),
		websockets: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "parley_api_websockets",
			Help: "Open sync WebSockets.",
		}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.rateLimited, m.websockets} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("api: registering metrics: %w", err)
		}
	}
	for _, scope := range []string{scopeAccount, scopeIP} {
		m.rateLimited.WithLabelValues(scope)
	}
	return m, nil
}
