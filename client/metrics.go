package client

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/protocol/envelope"
	"github.com/parley-chat/parley/protocol/room"
)

// metrics are a Session's counters. Labels are bounded: the rejection
// reasons below, never a room, ticket or account.
type metrics struct {
	sent     prometheus.Counter
	retries  prometheus.Counter
	received prometheus.Counter
	rejected *prometheus.CounterVec
}

// Rejection reasons: why Receive skipped an event (the reason label of
// parley_client_events_rejected_total and of a warning's Reason).
const (
	ReasonUnknownRoom   = "unknown_room"   // a message for a room this client does not have
	ReasonMalformed     = "malformed"      // the event or its envelope does not parse
	ReasonNotForMe      = "not_for_me"     // the header names another room, sender or recipient
	ReasonBadStamp      = "bad_stamp"      // no stamp, or not the partner's home node's
	ReasonReplay        = "replay"         // a sequence number already received, or too old
	ReasonUndecryptable = "undecryptable"  // the AEAD fails, or the inner plaintext is malformed
	ReasonCommitment    = "bad_commitment" // the franking commitment does not open: never shown
	ReasonUnknownTicket = "unknown_ticket" // a pairing of a ticket this client does not hold
	ReasonRoomMismatch  = "room_mismatch"  // the node's room ID differs from the derived one
	ReasonBadPartner    = "bad_partner"    // the partner's ticket keys cannot make a room
	ReasonUnknownKind   = "unknown_kind"   // an event kind this client does not know
)

var rejectReasons = []string{
	ReasonUnknownRoom, ReasonMalformed, ReasonNotForMe, ReasonBadStamp, ReasonReplay, ReasonUndecryptable,
	ReasonCommitment, ReasonUnknownTicket, ReasonRoomMismatch, ReasonBadPartner, ReasonUnknownKind,
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		sent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_client_messages_sent_total",
			Help: "Messages the node accepted from this client (retries of one message count once).",
		}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_client_send_retries_total",
			Help: "Send attempts repeated after a network failure, a 5xx or a 429.",
		}),
		received: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_client_messages_received_total",
			Help: "Messages received, verified and opened.",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_client_events_rejected_total",
			Help: "Mailbox events skipped and never shown, by reason.",
		}, []string{"reason"}),
	}
	for _, c := range []prometheus.Collector{m.sent, m.retries, m.received, m.rejected} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for _, r := range rejectReasons {
		m.rejected.WithLabelValues(r)
	}
	return m, nil
}

// openFailure returns the rejection reason of an error of room.Open.
func openFailure(err error) string {
	switch {
	case errors.Is(err, room.ErrNotForMe):
		return ReasonNotForMe
	case errors.Is(err, envelope.ErrUnstamped), errors.Is(err, envelope.ErrBadStamp):
		return ReasonBadStamp
	case errors.Is(err, room.ErrReplay), errors.Is(err, room.ErrTooOld), errors.Is(err, room.ErrTooFarAhead):
		return ReasonReplay
	case errors.Is(err, envelope.ErrBadCommitment):
		return ReasonCommitment
	}
	return ReasonUndecryptable
}
