package reports

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/protocol/disclosure"
	"github.com/parley-chat/parley/protocol/wire"
)

// Sources of reports (metric label values).
const (
	sourceClient     = "client"
	sourceFederation = "federation"
)

type metrics struct {
	received *prometheus.CounterVec
	rejected *prometheus.CounterVec
	expired  prometheus.Counter
}

func newMetrics(r prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_reports_received_total",
			Help: "Reports received, by source (client, federation) and result (verified, duplicate, rejected).",
		}, []string{"source", "result"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_reports_rejected_total",
			Help: "Reports rejected, by source and reason (a disclosure check name, malformed, not_reporter, not_found, not_local, wrong_origin, error).",
		}, []string{"source", "reason"}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_reports_expired_total",
			Help: "Resolved reports deleted once their retention (moderation.report_retention) passed.",
		}),
	}
	return m, errors.Join(r.Register(m.received), r.Register(m.rejected), r.Register(m.expired))
}

func (m *metrics) count(source string, rc Receipt, err error) {
	switch {
	case err != nil:
		m.received.WithLabelValues(source, "rejected").Inc()
		m.rejected.WithLabelValues(source, RejectReason(err)).Inc()
	case rc.Duplicate:
		m.received.WithLabelValues(source, "duplicate").Inc()
	default:
		m.received.WithLabelValues(source, "verified").Inc()
	}
}

// RejectReason names why Submit or Receive refused a report, as a fixed
// word: the failed disclosure check (spec 05 §4: malformed, not_recipient,
// bad_commitment, bad_stamp, from_future, expired, bad_signature), or
// not_reporter, not_found, not_local, wrong_origin; "error" for anything
// else (a store failure).
func RejectReason(err error) string {
	var ve *disclosure.VerifyError
	switch {
	case errors.As(err, &ve):
		return ve.Check.String()
	case errors.Is(err, wire.ErrMalformed):
		return "malformed"
	case errors.Is(err, ErrNotReporter):
		return "not_reporter"
	case errors.Is(err, ErrNotFound):
		return "not_found"
	case errors.Is(err, ErrNotLocal):
		return "not_local"
	case errors.Is(err, ErrWrongOrigin):
		return "wrong_origin"
	}
	return "error"
}
