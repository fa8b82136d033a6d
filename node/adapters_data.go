package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/parley-chat/parley/node/reports/forward"
	"github.com/parley-chat/parley/node/store"

	"github.com/parley-chat/parley/node/api"
	"github.com/parley-chat/parley/node/mailbox"
	"github.com/parley-chat/parley/node/moderation"
	"github.com/parley-chat/parley/node/pairing"
	"github.com/parley-chat/parley/node/ratelimit"
	"github.com/parley-chat/parley/node/relay"
	"github.com/parley-chat/parley/node/reports"
	"github.com/parley-chat/parley/node/rooms"
	"github.com/parley-chat/parley/protocol/disclosure"
	"github.com/parley-chat/parley/protocol/envelope"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/lottery"
)

var relayErrors = map[error]error{
	relay.ErrBadTxID:           api.ErrBadRequest,
	relay.ErrNoRoom:            api.ErrNotFound,
	relay.ErrRoomClosed:        api.ErrRoomClosed,
	envelope.ErrBadTime:        api.ErrBadTime,
	relay.ErrBadHeader:         api.ErrBadEnvelope,
	relay.ErrStamped:           api.ErrBadEnvelope,
	relay.ErrDuplicateEnvelope: api.ErrBadEnvelope,
	relay.ErrRemoteUnsupported: api.ErrUnavailable,
	relay.ErrBusy:              api.ErrBusy,
	relay.ErrClosed:            api.ErrUnavailable,
}

// mapRelayErr checks bad_time before the generic bad header it also matches.
func mapRelayErr(err error) error {
	if errors.Is(err, envelope.ErrBadTime) {
		return fmt.Errorf("%w: %w", api.ErrBadTime, err)
	}
	return mapErr(err, relayErrors)
}

type roomsAdapter struct {
	rooms *rooms.Rooms
	relay *relay.Relay
	mod   *moderation.Moderation
	log   *slog.Logger
}

var _ api.Rooms = roomsAdapter{}

func (a roomsAdapter) ForAccount(ctx context.Context, acct keys.AccountID) ([]api.Room, error) {
	recs, err := a.rooms.ForAccount(ctx, acct)
	if err != nil {
		return nil, err
	}
	out := make([]api.Room, 0, len(recs))
	for _, r := range recs {
		me, partner, ok := r.SideOf(acct)
		if !ok {
			continue
		}
		out = append(out, api.Room{
			ID:      r.ID,
			Me:      api.RoomSide{Sign: me.Ticket.Sign, DH: me.Ticket.DH, Home: me.Home},
			Partner: api.RoomSide{Sign: partner.Ticket.Sign, DH: partner.Ticket.DH, Home: partner.Home},
			Created: r.Created,
			Closed:  r.Closed,
		})
	}
	return out, nil
}

// Leave closes the room, then lets moderation look at the leaver's spam
// signals (pairing churn, short conversations): a failure there is logged
// and does not undo the leave.
func (a roomsAdapter) Leave(ctx context.Context, acct keys.AccountID, room keys.RoomID) error {
	if err := a.relay.Leave(ctx, acct, room); err != nil {
		return mapRelayErr(err)
	}
	if _, _, err := a.mod.CheckSignals(ctx, acct); err != nil {
		a.log.Error("checking spam signals after a leave", "err", err)
	}
	return nil
}

// senderAdapter sends through the relay, within moderation's message rate
// for the account (a throttled account gets 429), and counts each message
// sent for the conversation-length signal.
type senderAdapter struct {
	relay *relay.Relay
	mod   *moderation.Moderation
	lim   *ratelimit.Accounts
}

var _ api.Sender = senderAdapter{}

func (a senderAdapter) Send(ctx context.Context, from keys.AccountID, room keys.RoomID, txid string, env *envelope.Envelope) (api.SendResult, error) {
	if env.Header.Room != room {
		return api.SendResult{}, fmt.Errorf("%w: the envelope names another room", api.ErrBadEnvelope)
	}
	if ok, after := a.lim.Allow(ratelimit.KindMessage, string(from[:]), 1); !ok {
		return api.SendResult{}, api.RateLimited(after)
	}
	if ok, after := a.mod.Allow(from, moderation.RateMessage); !ok {
		return api.SendResult{}, api.RateLimited(after)
	}
	res, err := a.relay.Send(ctx, from, txid, env)
	if err != nil {
		return api.SendResult{}, mapRelayErr(err)
	}
	if !res.Duplicate {
		a.mod.CountMessage(room)
	}
	return api.SendResult{ID: res.ID, Stamp: res.Stamp, Duplicate: res.Duplicate}, nil
}

type mailboxAdapter struct{ mb *mailbox.Mailbox }

var _ api.Mailbox = mailboxAdapter{}

func (a mailboxAdapter) Read(ctx context.Context, acct keys.AccountID, after uint64, limit int) ([]api.Event, error) {
	evs, err := a.mb.Read(ctx, acct, after, limit)
	if err != nil {
		return nil, err
	}
	return toAPIEvents(evs)
}

// Next implements api's optional next-events method (Wait and Read in one).
func (a mailboxAdapter) Next(ctx context.Context, acct keys.AccountID, after uint64, limit int) ([]api.Event, error) {
	evs, err := a.mb.Next(ctx, acct, after, limit)
	if err != nil {
		return nil, err
	}
	return toAPIEvents(evs)
}

// toAPIEvents converts mailbox events to the API's.
func toAPIEvents(evs []mailbox.Event) ([]api.Event, error) {
	out := make([]api.Event, 0, len(evs))
	for _, ev := range evs {
		e := api.Event{Pos: ev.Pos, Room: ev.Room, Time: ev.Time}
		switch ev.Kind {
		case mailbox.KindMessage:
			e.Kind, e.Envelope = api.EventMessage, ev.Body
		case mailbox.KindPaired:
			var p pairing.PairedEvent
			if err := json.Unmarshal(ev.Body, &p); err != nil {
				return nil, fmt.Errorf("node: paired event %d: %w", ev.Pos, err)
			}
			e.Kind = api.EventPaired
			e.Paired = &api.Room{
				ID:      p.Room,
				Me:      api.RoomSide(p.Me),
				Partner: api.RoomSide(p.Partner),
				Created: p.Created,
			}
		case mailbox.KindRoomClosed:
			var c relay.RoomClosed
			if err := json.Unmarshal(ev.Body, &c); err != nil {
				return nil, fmt.Errorf("node: room_closed event %d: %w", ev.Pos, err)
			}
			e.Kind, e.By = api.EventRoomClosed, api.ClosedBy(c.By)
		default:
			continue // notices are not part of the v1 client API yet
		}
		out = append(out, e)
	}
	return out, nil
}

func (a mailboxAdapter) Wait(ctx context.Context, acct keys.AccountID, after uint64) error {
	return a.mb.Wait(ctx, acct, after)
}

func (a mailboxAdapter) Ack(ctx context.Context, acct keys.AccountID, upto uint64) error {
	return a.mb.Ack(ctx, acct, upto)
}

var pairingErrors = map[error]error{
	pairing.ErrAlreadyWaiting: api.ErrAlreadyWaiting,
	pairing.ErrKeyReused:      api.ErrBadRequest,
	pairing.ErrBadTicket:      api.ErrBadRequest,
	pairing.ErrFull:           api.ErrBusy,
}

// pairingAdapter asks the lottery for tickets, within moderation's ticket
// rate for the account.
type pairingAdapter struct {
	l   *pairing.Lottery
	mod *moderation.Moderation
	lim *ratelimit.Accounts
}

var _ api.Pairing = pairingAdapter{}

func tags(in [][16]byte) []lottery.Tag {
	out := make([]lottery.Tag, len(in))
	for i := range in {
		out[i] = lottery.Tag(in[i])
	}
	return out
}

func (a pairingAdapter) RequestTicket(ctx context.Context, acct keys.AccountID, req api.TicketRequest) (api.TicketInfo, error) {
	if ok, after := a.lim.Allow(ratelimit.KindTicket, string(acct[:]), 1); !ok {
		return api.TicketInfo{}, api.RateLimited(after)
	}
	if ok, after := a.mod.Allow(acct, moderation.RateTicket); !ok {
		return api.TicketInfo{}, api.RateLimited(after)
	}
	info, err := a.l.RequestTicket(ctx, acct, pairing.TicketRequest{Keys: req.Ticket, Interests: tags(req.Interests), Avoid: tags(req.Avoid)})
	if err != nil {
		return api.TicketInfo{}, mapErr(err, pairingErrors)
	}
	return api.TicketInfo{ID: info.ID, Epoch: info.Epoch, EpochEnds: info.EpochEnds}, nil
}

func (a pairingAdapter) Withdraw(ctx context.Context, acct keys.AccountID) error {
	return mapErr(a.l.Withdraw(ctx, acct), pairingErrors)
}

// reportsAdapter submits reports within the account's report budget.
type reportsAdapter struct {
	r   *reports.Reports
	lim *ratelimit.Accounts
}

var _ api.Reports = reportsAdapter{}

func (a reportsAdapter) Submit(ctx context.Context, acct keys.AccountID, d *disclosure.Disclosure) (api.Receipt, error) {
	if ok, after := a.lim.Allow(ratelimit.KindReport, string(acct[:]), 1); !ok {
		return api.Receipt{}, api.RateLimited(after)
	}
	rc, err := a.r.Submit(ctx, acct, d)
	if err != nil {
		return api.Receipt{}, mapErr(err, map[error]error{
			reports.ErrNotFound:    api.ErrNotFound,
			reports.ErrNotReporter: api.ErrBadDisclosure,
			reports.ErrInvalid:     api.ErrBadDisclosure,
		})
	}
	return api.Receipt{ID: rc.ID, Received: rc.Received}, nil
}

// reportForwarder queues a report about a remote user for its home node,
// and counts it against that node (moderation.NodeWatch: a node whose users
// keep drawing verified reports is throttled).
type reportForwarder struct {
	ob    *forward.Outbox
	watch *moderation.NodeWatch
}

var _ reports.Forwarder = reportForwarder{}

func (f reportForwarder) Enqueue(b *store.Batch, to keys.NodeID, id [32]byte, enc []byte, now time.Time) {
	f.ob.Enqueue(b, to, id, enc, now)
	f.watch.Reported(to)
}
