package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/parley-chat/parley/node/mailbox"
	"github.com/parley-chat/parley/node/rooms"
	"github.com/parley-chat/parley/node/store"
	"github.com/parley-chat/parley/protocol/envelope"
	fed "github.com/parley-chat/parley/protocol/federation"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/stamp"
	"github.com/parley-chat/parley/protocol/wire"
)

// CommitNotifier is implemented by a Forwarder that needs to know when a
// store batch it wrote into has been committed. After a batch in which
// Forward succeeded at least once is committed (synced) or given up, the
// relay calls Committed with that batch (only as an identity: it is closed
// by then) and the commit's error, nil on success. The outbox uses it to
// show a destination's entries only once they are durable and in order,
// and to wake that destination's sender.
type CommitNotifier interface {
	Committed(b *store.Batch, err error)
}

// ErrTooManyEnvelopes is returned by Accept when it is given more than
// wire.MaxDeliverEnvelopes envelopes.
var ErrTooManyEnvelopes = errors.New("relay: too many envelopes")

// AcceptResult is Accept's answer for one envelope.
type AcceptResult struct {
	Status fed.Status // Stored, Duplicate or Rejected
	Reason fed.Reason // why, if Rejected; else ReasonNone
	// RoomUnknown: rejected no_room because no room of that ID exists
	// here (yet), rather than one with other sides (the delivery handler
	// may ask for the envelope again, spec 12 §4).
	RoomUnknown bool
}

// rootKey is a batch signature Accept has verified.
type rootKey struct {
	time  int64
	count uint32
	root  [32]byte
	sig   keys.Signature
}

// Accept is the receiving side of delivery between nodes (spec 12-delivery
// §4): from, the node at the other end of an authenticated stream, hands
// over envelopes it stamped for recipients on this node. Accept checks each
// one on its own, appends every good one that this node has not stored
// before to its recipient's mailbox, and commits them all with one synced
// write before it returns; results has one entry per envelope, in order.
//
// An envelope is Rejected, and nothing of it written, if its stamp is not
// from's valid stamp of its header (ReasonWrongNode, ReasonBadStamp), its
// stamp time lies more than wire.MaxClockSkew in the future or its header
// fails envelope.CheckHeader against the stamp time (ReasonBadHeader), its
// stamp is older than Config.TxRetention less wire.MaxClockSkew, so its
// de-duplication record could already be gone (ReasonExpired), no room has
// its room with its recipient as a local side and its sender as the partner
// homed at from (ReasonNoRoom), or the room was closed at or before its
// stamp time (ReasonRoomClosed). An envelope stored before, by an earlier
// call or earlier in envs, is a Duplicate and is not stored again: the
// de-duplication record is seen/<recipient><envelope ID>, as for local
// sends. Batch signatures are verified once per distinct batch root.
//
// A non-nil error means the node failed (reading or committing the store,
// ctx ended): then nothing of envs was stored and results is nil; the
// sender retries. Envelopes of one recipient land in envs order, after
// everything committed before.
func (r *Relay) Accept(ctx context.Context, from keys.NodeID, envs []*envelope.Envelope) ([]AcceptResult, error) {
	if len(envs) > wire.MaxDeliverEnvelopes {
		return nil, fmt.Errorf("%w: %d (max %d)", ErrTooManyEnvelopes, len(envs), wire.MaxDeliverEnvelopes)
	}
	now := r.now()
	results := make([]AcceptResult, len(envs))
	verified := make(map[rootKey]bool)
	inFrame := make(map[string]bool)
	// mine are the in-flight registrations of the envelopes this call
	// writes; others writing the same envelope wait for them.
	var mine []*call
	defer func() {
		for _, c := range mine {
			r.finish(c, Result{}, errAcceptDone)
		}
	}()
	// A close notice closes a room, as Leave does: one at a time.
	for _, env := range envs {
		if env.IsCloseNotice() {
			r.leaveMu.Lock()
			defer r.leaveMu.Unlock()
			break
		}
	}
	b := r.st.NewBatch()
	stored := 0
	fail := func(err error) ([]AcceptResult, error) {
		r.mb.Discard(b)
		return nil, err
	}
	for i, env := range envs {
		recipient, reason, err := r.checkRemote(ctx, from, env, now, verified)
		if err != nil {
			return fail(err)
		}
		if reason == fed.ReasonRoomClosed && env.IsCloseNotice() {
			// The room is closed already: nothing left to do.
			results[i] = AcceptResult{Status: fed.Duplicate}
			continue
		}
		if reason != fed.ReasonNone {
			results[i] = AcceptResult{Status: fed.Rejected, Reason: reason}
			if reason == fed.ReasonNoRoom {
				_, err := r.rooms.Get(ctx, env.Header.Room)
				results[i].RoomUnknown = errors.Is(err, rooms.ErrNotFound)
			}
			continue
		}
		sk := string(seenKey(recipient, env.ID()))
		if inFrame[sk] {
			results[i] = AcceptResult{Status: fed.Duplicate}
			continue
		}
		c, err := r.leadSeen(ctx, sk)
		if err != nil {
			return fail(err)
		}
		mine = append(mine, c)
		seen, err := r.st.Has([]byte(sk))
		if err != nil {
			return fail(fmt.Errorf("relay: reading seen record: %w", err))
		}
		if seen {
			results[i] = AcceptResult{Status: fed.Duplicate}
			continue
		}
		ev := mailbox.Event{Kind: mailbox.KindMessage, Room: env.Header.Room, Time: now}
		if env.IsCloseNotice() {
			var closed bool
			if ev, closed, err = r.acceptClose(ctx, b, env, now); err != nil {
				return fail(err)
			}
			if closed {
				// Closed here already (the local side left too, after
				// the notice was stamped): nothing left to do (spec 12 §4).
				results[i] = AcceptResult{Status: fed.Duplicate}
				continue
			}
		} else if ev.Body, err = env.MarshalBinary(); err != nil {
			return fail(err)
		}
		pos, err := r.mb.Append(b, recipient, ev)
		if err != nil {
			return fail(fmt.Errorf("relay: writing to the mailbox: %w", err))
		}
		b.Set([]byte(sk), encodeSeen(now, pos, ""))
		inFrame[sk] = true
		results[i] = AcceptResult{Status: fed.Stored}
		stored++
	}
	if stored == 0 {
		r.mb.Discard(b)
	} else if err := r.mb.Commit(ctx, b); err != nil {
		return nil, fmt.Errorf("relay: committing accepted envelopes: %w", err)
	}
	for _, res := range results {
		r.metrics.remote.WithLabelValues(res.Status.String()).Inc()
	}
	return results, nil
}

// acceptClose closes the room of a close notice (spec 03-envelope §8.5) in
// b and returns the room_closed event for the local member, or closed if
// the room is closed already. The caller holds leaveMu.
func (r *Relay) acceptClose(ctx context.Context, b *store.Batch, env *envelope.Envelope, now time.Time) (ev mailbox.Event, closed bool, err error) {
	rec, err := r.rooms.Get(ctx, env.Header.Room)
	if err != nil {
		return mailbox.Event{}, false, err
	}
	if rec.IsClosed() {
		return mailbox.Event{}, true, nil
	}
	if _, err := r.rooms.Close(b, rec, env.Header.Sender, now); err != nil {
		return mailbox.Event{}, false, fmt.Errorf("relay: closing a room on notice: %w", err)
	}
	body, err := json.Marshal(RoomClosed{By: ClosedByPartner})
	if err != nil {
		return mailbox.Event{}, false, err
	}
	return mailbox.Event{Kind: mailbox.KindRoomClosed, Room: env.Header.Room, Time: now, Body: body}, false, nil
}

// errAcceptDone ends Accept's in-flight registrations; nobody reads it
// (Send never joins them: its seen keys are of local senders' envelopes).
var errAcceptDone = errors.New("relay: accept done")

// leadSeen registers the caller as the one writing the envelope under seen
// key sk, first waiting for any other writer of it to finish.
func (r *Relay) leadSeen(ctx context.Context, sk string) (*call, error) {
	for {
		c := &call{seenKey: sk, done: make(chan struct{})}
		leader := r.lead(c, sk)
		if leader == nil {
			return c, nil
		}
		select {
		case <-leader.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// checkRemote makes Accept's checks of one envelope. It returns the local
// recipient, or the reason to reject it, or an error if the node failed.
func (r *Relay) checkRemote(ctx context.Context, from keys.NodeID, env *envelope.Envelope, now time.Time, verified map[rootKey]bool) (keys.AccountID, fed.Reason, error) {
	if reason := r.checkStamp(from, env, now, verified); reason != fed.ReasonNone {
		return keys.AccountID{}, reason, nil
	}
	h := &env.Header
	rec, err := r.rooms.Get(ctx, h.Room)
	if errors.Is(err, rooms.ErrNotFound) {
		return keys.AccountID{}, fed.ReasonNoRoom, nil
	}
	if err != nil {
		return keys.AccountID{}, fed.ReasonNone, err
	}
	me, partner, ok := rec.SideByTicket(h.Recipient)
	if !ok || !me.Local || partner.Local || partner.Home != from || partner.Ticket.Sign != h.Sender {
		return keys.AccountID{}, fed.ReasonNoRoom, nil
	}
	if rec.IsClosed() && !env.Stamp.TimeOf().Before(rec.Closed) {
		return keys.AccountID{}, fed.ReasonRoomClosed, nil
	}
	return me.Account, fed.ReasonNone, nil
}

// checkStamp checks env's stamp against from (verifying each batch root
// once per call of Accept), and its header and age against the stamp time.
func (r *Relay) checkStamp(from keys.NodeID, env *envelope.Envelope, now time.Time, verified map[rootKey]bool) fed.Reason {
	s := env.Stamp
	if s == nil {
		return fed.ReasonBadStamp
	}
	if s.Node != from {
		return fed.ReasonWrongNode
	}
	leaf, _ := env.Header.MarshalBinary()
	root, err := s.Root(wire.LabelEnvelopeHeader, leaf)
	if err != nil {
		return fed.ReasonBadStamp
	}
	k := rootKey{time: s.Time, count: s.Count, root: root, sig: s.Sig}
	if !verified[k] {
		if stamp.VerifyRoot(from, wire.LabelEnvelopeHeader, root, s) != nil {
			return fed.ReasonBadStamp
		}
		verified[k] = true
	}
	st := s.TimeOf()
	if st.After(now.Add(wire.MaxClockSkew)) || envelope.CheckHeader(&env.Header, st) != nil {
		return fed.ReasonBadHeader
	}
	if now.Sub(st) > r.cfg.TxRetention-wire.MaxClockSkew {
		return fed.ReasonExpired
	}
	return fed.ReasonNone
}
