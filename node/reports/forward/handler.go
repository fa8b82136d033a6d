package forward

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/node/ratelimit"
	"github.com/parley-chat/parley/node/reports"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/wire"
)

// Receiver takes a forwarded report: *reports.Reports.
type Receiver interface {
	Receive(ctx context.Context, from keys.NodeID, enc []byte) (reports.Receipt, error)
}

var _ Receiver = (*reports.Reports)(nil)

// Handler is the receiving side of the report protocol.
type Handler struct {
	cfg       Config
	recv      Receiver
	limiter   *ratelimit.Limiter
	penalizer PeerPenalizer
	log       *slog.Logger

	received *prometheus.CounterVec
	invalid  *prometheus.CounterVec
}

// NewHandler returns a handler that gives reports to recv.
func NewHandler(cfg Config, recv Receiver, opts ...Option) (*Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	o := buildOptions(opts)
	lim, err := ratelimit.New(ratelimit.Limit{Rate: cfg.PeerRate, Burst: cfg.PeerBurst}, cfg.MaxPeers,
		ratelimit.WithClock(o.now), ratelimit.WithName("report_peer"), ratelimit.WithRegisterer(o.reg))
	if err != nil {
		return nil, fmt.Errorf("forward: %w", err)
	}
	h := &Handler{
		cfg: cfg, recv: recv, limiter: lim, penalizer: o.penalizer, log: o.logger,
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_report_forward_received_total",
			Help: "Reports other nodes forwarded here, by answer status (accepted, duplicate, rejected, busy).",
		}, []string{"status"}),
		invalid: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_report_forward_invalid_total",
			Help: "Report streams that broke the protocol, by reason (truncated, oversized, malformed, no_memory, bad_peer_key).",
		}, []string{"reason"}),
	}
	if err := errors.Join(o.reg.Register(h.received), o.reg.Register(h.invalid)); err != nil {
		return nil, err
	}
	return h, nil
}

// StreamHandler returns the function to register for the protocol
// (p2p.Host.SetStreamHandler(Name, Version, ...)). Streams it serves are
// reset once ctx ends.
func (h *Handler) StreamHandler(ctx context.Context) network.StreamHandler {
	return func(s network.Stream) { h.serve(ctx, s) }
}

func (h *Handler) serve(ctx context.Context, s network.Stream) {
	remote := s.Conn().RemotePeer()
	from, err := keys.NodeIDFromPeerIDBytes([]byte(remote))
	if err != nil {
		h.bad(s, remote, "bad_peer_key", err)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, h.cfg.Timeout)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	_ = s.SetDeadline(time.Now().Add(h.cfg.Timeout))
	reserved := 0
	defer func() { s.Scope().ReleaseMemory(reserved) }()
	body, err := readFrame(s, wire.MaxReportFrame, func(n int) error {
		if err := s.Scope().ReserveMemory(n, network.ReservationPriorityMedium); err != nil {
			return err
		}
		reserved = n
		return nil
	})
	if err != nil {
		var fe *frameError
		reason := "truncated"
		if errors.As(err, &fe) {
			reason = fe.reason
		}
		if reason == "no_memory" {
			h.invalid.WithLabelValues(reason).Inc()
			_ = s.Reset()
			return
		}
		h.bad(s, remote, reason, err)
		return
	}
	enc, err := DecodeRequest(body)
	if err != nil {
		h.bad(s, remote, "malformed", err)
		return
	}
	a := h.answer(ctx, remote, from, enc)
	h.received.WithLabelValues(a.Status.String()).Inc()
	if _, err := s.Write(EncodeAnswer(a)); err != nil {
		_ = s.Reset()
		return
	}
	_ = s.Close()
}

// answer rate-limits the peer, gives the report to the receiver and turns
// its result into an answer.
func (h *Handler) answer(ctx context.Context, remote peer.ID, from keys.NodeID, enc []byte) Answer {
	if ok, retry := h.limiter.Allow(string(remote)); !ok {
		return Answer{Status: StatusBusy, RetryAfter: min(max(retry, time.Millisecond), wire.MaxRetryAfter).Milliseconds()}
	}
	rc, err := h.recv.Receive(ctx, from, enc)
	switch {
	case err == nil && rc.Duplicate:
		return Answer{Status: StatusDuplicate}
	case err == nil:
		return Answer{Status: StatusAccepted}
	case errors.Is(err, reports.ErrInvalid):
		// The forwarding node had to verify it: a report that does not
		// verify is its fault.
		h.penalize(remote, "invalid_report")
		h.log.Info("forwarded report refused", "peer", remote, "reason", reports.RejectReason(err))
		return Answer{Status: StatusRejected, Reason: reports.RejectReason(err)}
	case errors.Is(err, reports.ErrNotLocal), errors.Is(err, reports.ErrNotReporter), errors.Is(err, reports.ErrWrongOrigin):
		h.log.Info("forwarded report refused", "peer", remote, "reason", reports.RejectReason(err))
		return Answer{Status: StatusRejected, Reason: reports.RejectReason(err)}
	default:
		h.log.Error("storing a forwarded report", "peer", remote, "err", err)
		return Answer{Status: StatusBusy, RetryAfter: wire.MaxRetryAfter.Milliseconds()}
	}
}

func (h *Handler) bad(s network.Stream, remote peer.ID, reason string, err error) {
	_ = s.Reset()
	h.invalid.WithLabelValues(reason).Inc()
	h.log.Info("bad report stream", "peer", remote, "reason", reason, "err", err)
	h.penalize(remote, reason)
}

func (h *Handler) penalize(p peer.ID, reason string) {
	if h.penalizer != nil {
		h.penalizer.Penalize(p, "report_"+reason)
	}
}
