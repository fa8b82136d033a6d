package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/parley-chat/parley/protocol/envelope"
	"github.com/parley-chat/parley/protocol/keys"
)

// decode reads r's body (at most limit bytes) strictly into v.
func decode(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	b, err := readBody(w, r, limit)
	if err != nil {
		return err
	}
	return decodeStrict(b, v)
}

// roomParam parses the {room} path segment.
func roomParam(r *http.Request) (keys.RoomID, error) {
	id, err := keys.ParseRoomID(r.PathValue("room"))
	if err != nil {
		return id, badRequest("path: not a room ID (room_...)")
	}
	return id, nil
}

// spec 09 §3
func (s *Server) register(w http.ResponseWriter, r *http.Request) error {
	var q registerRequest
	if err := decode(w, r, s.cfg.MaxBodyBytes, &q); err != nil {
		return err
	}
	acct, err := s.deps.Accounts.Register(r.Context(), q.username, q.id, q.invite)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, accountResponse{Account: toAccountJSON(acct)})
	return nil
}

// spec 09 §3
func (s *Server) challenge(w http.ResponseWriter, r *http.Request) error {
	var q challengeRequest
	if err := decode(w, r, s.cfg.MaxBodyBytes, &q); err != nil {
		return err
	}
	c, err := s.deps.Accounts.Challenge(r.Context(), q.username)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, challengeResponse{
		Nonce:    b64.EncodeToString(c.Nonce[:]),
		Audience: c.Audience.String(),
		Expires:  formatTime(c.Expires),
	})
	return nil
}

// spec 09 §3: any failure of the login itself is 401 without saying why.
func (s *Server) login(w http.ResponseWriter, r *http.Request) error {
	var q loginRequest
	if err := decode(w, r, s.cfg.MaxBodyBytes, &q); err != nil {
		return err
	}
	sess, err := s.deps.Accounts.Login(r.Context(), q.username, q.nonce, q.sig)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, loginResponse{Token: sess.Token, Expires: formatTime(sess.Expires), Account: toAccountJSON(sess.Account)})
	return nil
}

// spec 09 §3
func (s *Server) logout(w http.ResponseWriter, r *http.Request) error {
	if err := requireEmptyBody(r); err != nil {
		return err
	}
	if err := s.deps.Accounts.Revoke(r.Context(), bearerToken(r)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// spec 09 §3
func (s *Server) account(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, accountResponse{Account: toAccountJSON(accountFrom(r.Context()))})
	return nil
}

// spec 09 §4. Suspended accounts may not pair (spec 09 §1).
func (s *Server) pair(w http.ResponseWriter, r *http.Request) error {
	acct := accountFrom(r.Context())
	if acct.Suspended {
		return ErrSuspended
	}
	var q pairRequest
	if err := decode(w, r, s.cfg.MaxBodyBytes, &q); err != nil {
		return err
	}
	t, err := s.deps.Pairing.RequestTicket(r.Context(), acct.ID, q.req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, pairResponse{TicketID: b64.EncodeToString(t.ID[:]), Epoch: t.Epoch, EpochEnds: formatTime(t.EpochEnds)})
	return nil
}

// spec 09 §4. Withdrawing is allowed to suspended accounts: it only
// reduces what they do.
func (s *Server) unpair(w http.ResponseWriter, r *http.Request) error {
	if err := requireEmptyBody(r); err != nil {
		return err
	}
	if err := s.deps.Pairing.Withdraw(r.Context(), accountFrom(r.Context()).ID); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// spec 09 §5
func (s *Server) rooms(w http.ResponseWriter, r *http.Request) error {
	rooms, err := s.deps.Rooms.ForAccount(r.Context(), accountFrom(r.Context()).ID)
	if err != nil {
		return err
	}
	out := roomsResponse{Rooms: make([]roomJSON, 0, len(rooms))}
	for i := range rooms {
		out.Rooms = append(out.Rooms, toRoomJSON(&rooms[i]))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// spec 09 §5
func (s *Server) send(w http.ResponseWriter, r *http.Request) error {
	acct := accountFrom(r.Context())
	if acct.Suspended {
		return ErrSuspended
	}
	room, err := roomParam(r)
	if err != nil {
		return err
	}
	var q sendRequest
	if err := decode(w, r, s.cfg.MaxMessageBodyBytes, &q); err != nil {
		return err
	}
	out, err := s.submit(r.Context(), acct.ID, room, &q)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// submit is a send, over HTTP or the sync WebSocket (spec 09 §5, §6). The
// API makes the checks that need no state: the envelope parses, is
// unstamped, names room, has a defined content type, a time within
// wire.MaxClockSkew and a sender that is not the recipient. The Sender
// checks membership, the tickets and the account's standing.
func (s *Server) submit(ctx context.Context, acct keys.AccountID, room keys.RoomID, q *sendRequest) (*sendResponse, error) {
	if q.env.Header.Room != room {
		return nil, badEnvelope("the header names another room")
	}
	if err := envelope.CheckHeader(&q.env.Header, s.now()); err != nil {
		if errors.Is(err, envelope.ErrBadTime) {
			return nil, ErrBadTime
		}
		return nil, badEnvelope("%v", err)
	}
	res, err := s.deps.Sender.Send(ctx, acct, room, q.txid, q.env)
	if err != nil {
		return nil, err
	}
	st, err := res.Stamp.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return &sendResponse{ID: b64.EncodeToString(res.ID[:]), Stamp: b64.EncodeToString(st), Duplicate: res.Duplicate}, nil
}

// spec 09 §5
func (s *Server) leave(w http.ResponseWriter, r *http.Request) error {
	room, err := roomParam(r)
	if err != nil {
		return err
	}
	if err := requireEmptyBody(r); err != nil {
		return err
	}
	if err := s.deps.Rooms.Leave(r.Context(), accountFrom(r.Context()).ID, room); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// spec 09 §6
func (s *Server) ack(w http.ResponseWriter, r *http.Request) error {
	var q ackRequest
	if err := decode(w, r, s.cfg.MaxBodyBytes, &q); err != nil {
		return err
	}
	if err := s.deps.Mailbox.Ack(r.Context(), accountFrom(r.Context()).ID, *q.Upto); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// spec 09 §7
func (s *Server) report(w http.ResponseWriter, r *http.Request) error {
	var q reportRequest
	if err := decode(w, r, s.cfg.MaxReportBodyBytes, &q); err != nil {
		return err
	}
	rc, err := s.deps.Reports.Submit(r.Context(), accountFrom(r.Context()).ID, q.d)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, reportResponse{ReportID: b64.EncodeToString(rc.ID[:]), Received: formatTime(rc.Received)})
	return nil
}

// spec 09 §8
func (s *Server) health(w http.ResponseWriter, _ *http.Request) error {
	writeJSON(w, http.StatusOK, healthResponse{Node: s.cfg.NodeID, Version: s.cfg.Version, Network: s.cfg.Network})
	return nil
}
