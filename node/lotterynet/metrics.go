package lotterynet

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	messages      *prometheus.CounterVec
	equivocations *prometheus.CounterVec
	confirms      *prometheus.CounterVec
	excluded      *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_lottery_net_messages_total",
			Help: "Lottery gossip messages validated, by kind (tickets, commit, reveal) and result.",
		}, []string{"kind", "result"}),
		equivocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_lottery_net_equivocations_total",
			Help: "Nodes caught signing two different commits or ticket batches for one epoch, by kind.",
		}, []string{"kind"}),
		confirms: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_lottery_net_confirms_total",
			Help: "Pair confirmations, by direction (out: asked by this node; in: answered) and result.",
		}, []string{"direction", "result"}),
		excluded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_lottery_net_excluded_nodes_total",
			Help: "Nodes excluded from an epoch, by reason (withheld_reveal: committed without revealing; equivocated).",
		}, []string{"reason"}),
	}
	for _, r := range []string{ReasonWithheld, ReasonEquivocated} {
		m.excluded.WithLabelValues(r)
	}
	for _, k := range []string{KindTickets, KindCommit, KindReveal} {
		for _, r := range messageResults {
			m.messages.WithLabelValues(k, r)
		}
	}
	for _, k := range []string{KindTickets, KindCommit} {
		m.equivocations.WithLabelValues(k)
	}
	for _, r := range []string{confirmYes, confirmNo, confirmError} {
		m.confirms.WithLabelValues("out", r)
		m.confirms.WithLabelValues("in", r)
	}
	m.confirms.WithLabelValues("in", confirmMalformed)
	return m
}

func (m *metrics) register(r prometheus.Registerer) error {
	var errs []error
	for _, c := range []prometheus.Collector{m.messages, m.equivocations, m.confirms, m.excluded} {
		errs = append(errs, r.Register(c))
	}
	return errors.Join(errs...)
}
