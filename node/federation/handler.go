package federation

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-chat/parley/node/ratelimit"
	"github.com/parley-chat/parley/node/relay"
	"github.com/parley-chat/parley/protocol/envelope"
	fed "github.com/parley-chat/parley/protocol/federation"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/wire"
)

// Inbox stores what other nodes deliver. relay.(*Relay).Accept implements
// it: it stores every acceptable envelope with one synced write before it
// returns, and a non-nil error means nothing was stored.
type Inbox interface {
	Accept(ctx context.Context, from keys.NodeID, envs []*envelope.Envelope) ([]relay.AcceptResult, error)
}

var _ Inbox = (*relay.Relay)(nil)

// PeerPenalizer is told about peers that break the delivery protocol (a
// malformed or oversized frame); the p2p layer lowers their score. Reason
// is a fixed word (a metric label value).
type PeerPenalizer interface {
	Penalize(p peer.ID, reason string)
}

// Handler is the receiving side of the delivery protocol (spec
// 12-delivery §3): it reads Batch frames from a stream, checks their size
// and shape, applies the per-peer rate limit, hands the envelopes to the
// Inbox and writes the Ack only after the Inbox has stored them.
type Handler struct {
	cfg       Config
	inbox     Inbox
	limiter   *ratelimit.Limiter
	slow      *ratelimit.Limiter // for throttled peers
	throttled func(peer.ID) bool // nil: none
	penalizer PeerPenalizer
	now       func() time.Time
	log       *slog.Logger
	metrics   *metrics
}

// NewHandler returns a handler that delivers into inbox.
func NewHandler(cfg Config, inbox Inbox, opts ...Option) (*Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	o := buildOptions(opts)
	m, err := newMetrics(o.reg)
	if err != nil {
		return nil, err
	}
	lim, err := ratelimit.New(ratelimit.Limit{Rate: cfg.PeerRate, Burst: cfg.PeerBurst}, cfg.MaxPeers,
		ratelimit.WithClock(o.now), ratelimit.WithName("fed_peer"), ratelimit.WithRegisterer(o.reg))
	if err != nil {
		return nil, fmt.Errorf("federation: %w", err)
	}
	slow, err := ratelimit.New(ratelimit.Limit{Rate: cfg.ThrottledPeerRate, Burst: wire.MaxDeliverEnvelopes}, cfg.MaxPeers,
		ratelimit.WithClock(o.now), ratelimit.WithName("fed_peer_throttled"), ratelimit.WithRegisterer(o.reg))
	if err != nil {
		return nil, fmt.Errorf("federation: %w", err)
	}
	return &Handler{
		cfg:       cfg,
		inbox:     inbox,
		limiter:   lim,
		slow:      slow,
		throttled: o.throttled,
		penalizer: o.penalizer,
		now:       o.now,
		log:       o.logger.With("subsystem", "federation"),
		metrics:   m,
	}, nil
}

// StreamHandler returns the function to register for the delivery
// protocol (host.SetStreamHandler(fed.ProtocolID(network), ...)). Streams
// it serves stop at their next frame once ctx ends.
func (h *Handler) StreamHandler(ctx context.Context) network.StreamHandler {
	return func(s network.Stream) { h.serve(ctx, s) }
}

// serve answers the Batch frames on s until the peer closes it, it idles
// for Config.IdleTimeout, or it breaks the protocol.
func (h *Handler) serve(ctx context.Context, s network.Stream) {
	remote := s.Conn().RemotePeer()
	from, err := keys.NodeIDFromPeerIDBytes([]byte(remote))
	if err != nil {
		h.invalid(s, remote, invalidPeerKey, err)
		return
	}
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	var refused bool
	for ctx.Err() == nil {
		if !h.serveFrame(ctx, s, remote, from, &refused) {
			return
		}
	}
	_ = s.Reset()
}

// serveFrame reads one Batch and answers it; false means the stream is
// finished (closed or reset). refused is the stream's state: once a Batch
// was answered busy, every later Batch on the stream is answered busy too
// (spec 12-delivery §3): the sender may have written them before it read
// the busy Ack, and taking them would put them before the refused one.
func (h *Handler) serveFrame(ctx context.Context, s network.Stream, remote peer.ID, from keys.NodeID, refused *bool) bool {
	_ = s.SetReadDeadline(time.Now().Add(h.cfg.IdleTimeout))
	var prefix [fed.PrefixLen]byte
	if n, err := io.ReadFull(s, prefix[:]); err != nil {
		if n == 0 {
			_ = s.Reset() // between frames: the peer is done, gone or idle
		} else {
			h.invalid(s, remote, invalidTruncated, err)
		}
		return false
	}
	n, err := fed.BodyLen(prefix)
	if err != nil {
		h.invalid(s, remote, invalidOversized, err)
		return false
	}
	// The body is read against the ack deadline, within the stream's
	// memory budget (the resource manager's limits).
	if err := s.Scope().ReserveMemory(n, network.ReservationPriorityMedium); err != nil {
		h.log.Debug("no memory for a delivery frame", "peer", remote, "bytes", n, "err", err)
		_ = s.Reset()
		return false
	}
	defer s.Scope().ReleaseMemory(n)
	_ = s.SetReadDeadline(time.Now().Add(h.cfg.AckTimeout))
	body := make([]byte, n)
	if _, err := io.ReadFull(s, body); err != nil {
		h.invalid(s, remote, invalidTruncated, err)
		return false
	}
	h.metrics.bytesIn.Add(float64(fed.PrefixLen + n))
	batch, err := fed.DecodeBatch(body)
	if err != nil {
		h.invalid(s, remote, invalidMalformed, err)
		return false
	}

	ack := &fed.Ack{Seq: batch.Seq}
	lim := h.limiter
	if h.throttled != nil && h.throttled(remote) {
		lim = h.slow
	}
	if *refused {
		ack.Busy, ack.RetryAfter = true, time.Millisecond
		h.metrics.busy.WithLabelValues("sent").Inc()
	} else if ok, retry := lim.AllowN(string(remote), len(batch.Envelopes)); !ok {
		*refused = true
		ack.Busy = true
		// Config.Validate keeps every Batch within the burst, so retry
		// is finite.
		ack.RetryAfter = min(max(retry.Round(time.Millisecond), time.Millisecond), wire.MaxRetryAfter)
		h.metrics.busy.WithLabelValues("sent").Inc()
	} else {
		actx, cancel := context.WithTimeout(ctx, h.cfg.AckTimeout)
		results, err := h.inbox.Accept(actx, from, batch.Envelopes)
		cancel()
		if err == nil && len(results) != len(batch.Envelopes) {
			err = fmt.Errorf("inbox answered %d results for %d envelopes", len(results), len(batch.Envelopes))
		}
		if err != nil {
			h.log.Error("storing delivered envelopes", "peer", remote, "err", err)
			_ = s.Reset()
			return false
		}
		if h.roomPending(batch.Envelopes, results) {
			// The room is not here yet: this node has not settled its side
			// of a pair the other node settled first (spec 12 §4). The
			// sender retries the Batch (what was stored comes back as
			// duplicates), in room order, instead of losing the envelope.
			*refused = true
			ack.Busy, ack.RetryAfter = true, roomPendingRetry
			h.metrics.busy.WithLabelValues("sent").Inc()
		} else {
			ack.Results = make([]fed.Result, len(results))
			for i, r := range results {
				ack.Results[i] = fed.Result{Status: r.Status, Reason: r.Reason}
				h.metrics.envelopesIn.WithLabelValues(r.Status.String()).Inc()
			}
		}
	}
	frame, err := ack.AppendFrame(nil)
	if err != nil {
		h.log.Error("encoding an ack", "err", err)
		_ = s.Reset()
		return false
	}
	_ = s.SetWriteDeadline(time.Now().Add(h.cfg.AckTimeout))
	if _, err := s.Write(frame); err != nil {
		_ = s.Reset()
		return false
	}
	h.metrics.bytesOut.Add(float64(len(frame)))
	return true
}

// A room is pending when an envelope stamped less than roomPendingFor ago
// names a room ID this node has no room of (one with other sides is
// rejected at once): pairing settles each side of a
// cross-node pair on its own node, and a partner's first messages can come
// before this side is settled (spec 12 §4). Older envelopes without a room
// are rejected as no_room.
const (
	roomPendingFor   = 30 * time.Second
	roomPendingRetry = 250 * time.Millisecond
)

// roomPending reports whether results reject an envelope of envs for want
// of a room that may still come (roomPendingFor).
func (h *Handler) roomPending(envs []*envelope.Envelope, results []relay.AcceptResult) bool {
	now := h.now()
	for i, r := range results {
		if r.Status != fed.Rejected || r.Reason != fed.ReasonNoRoom || !r.RoomUnknown || envs[i].Stamp == nil {
			continue
		}
		if age := now.Sub(time.UnixMilli(envs[i].Stamp.Time)); age < roomPendingFor {
			return true
		}
	}
	return false
}

// invalid resets s, counts reason and reports the peer.
func (h *Handler) invalid(s network.Stream, remote peer.ID, reason string, err error) {
	_ = s.Reset()
	h.metrics.invalid.WithLabelValues(reason).Inc()
	h.log.Info("bad delivery frame", "peer", remote, "reason", reason, "err", err)
	if h.penalizer != nil {
		h.penalizer.Penalize(remote, reason)
	}
}
