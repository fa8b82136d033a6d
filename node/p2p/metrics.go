package p2p

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the host's own metrics (prefix parley_p2p_). Labels are
// bounded: topic names are chosen by code, results and directions are
// fixed sets; peer IDs are never labels.
type metrics struct {
	gossip    *prometheus.CounterVec // topic, result
	refusals  *prometheus.CounterVec // direction
	publishes *prometheus.CounterVec // result
	scoreCuts prometheus.Counter
}

// Result label values of parley_p2p_gossip_messages_total.
const (
	resultAccept = "accept"
	resultReject = "reject"
	resultIgnore = "ignore"
)

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		gossip: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_p2p_gossip_messages_total",
			Help: "Gossip messages validated, by topic name and result (accept, reject, ignore).",
		}, []string{"topic", "result"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_p2p_gater_refusals_total",
			Help: "Connections refused by the deny list, by direction.",
		}, []string{"direction"}),
		publishes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_p2p_record_publishes_total",
			Help: "Publications of this node's record, by result (ok, error).",
		}, []string{"result"}),
		scoreCuts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_p2p_score_disconnects_total",
			Help: "Peers disconnected because their gossip score fell below the graylist threshold.",
		}),
	}
	for _, d := range []string{"inbound", "outbound"} {
		m.refusals.WithLabelValues(d)
	}
	for _, r := range []string{"ok", "error"} {
		m.publishes.WithLabelValues(r)
	}
	if reg == nil {
		return m
	}
	reg.MustRegister(m.gossip, m.refusals, m.publishes, m.scoreCuts)
	return m
}

// registerGauges registers the gauges read from the host; New calls it once
// the libp2p host exists.
func registerGauges(reg prometheus.Registerer, x *Host) {
	if reg == nil {
		return
	}
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "parley_p2p_peers_connected",
			Help: "Peers with at least one open connection.",
		}, func() float64 { return float64(len(x.h.Network().Peers())) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "parley_p2p_known_nodes",
			Help: "Nodes of this network with a valid record in the peer table.",
		}, func() float64 {
			x.mu.Lock()
			defer x.mu.Unlock()
			return float64(len(x.peers))
		}),
	)
}
