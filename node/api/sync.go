package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/parley-chat/parley/protocol/keys"
)

// Subprotocol is the WebSocket subprotocol of /v1/sync/ws (spec 09 §6).
const Subprotocol = "parley.v1"

// spec 09 §6: GET /v1/sync?after=P&limit=N&wait=S.
func (s *Server) sync(w http.ResponseWriter, r *http.Request) error {
	acct := accountFrom(r.Context()).ID
	q, err := query(r, "after", "limit", "wait")
	if err != nil {
		return err
	}
	after := q["after"]
	limit := s.cfg.SyncDefaultLimit
	if n, ok := q["limit"]; ok {
		if n == 0 {
			return badRequest("query parameter \"limit\": want at least 1")
		}
		limit = int(min(n, uint64(s.cfg.SyncMaxLimit)))
	}
	wait := s.cfg.SyncMaxWait
	if sec := q["wait"]; sec <= uint64(wait/time.Second) {
		wait = min(wait, time.Duration(sec)*time.Second)
	}

	ctx := r.Context()
	evs, err := s.deps.Mailbox.Read(ctx, acct, after, limit)
	if err != nil {
		return err
	}
	if len(evs) == 0 && wait > 0 {
		// Hold the request until an event arrives, the wait ends, the
		// client goes away or the server shuts down; only the first is
		// not an empty answer.
		wctx, cancel := context.WithTimeout(ctx, wait)
		defer cancel()
		stop := context.AfterFunc(s.base, cancel)
		defer stop()
		nexter, _ := s.deps.Mailbox.(MailboxNexter)
		for len(evs) == 0 {
			if nexter != nil {
				evs, err = nexter.Next(wctx, acct, after, limit)
			} else if err = s.deps.Mailbox.Wait(wctx, acct, after); err == nil {
				evs, err = s.deps.Mailbox.Read(ctx, acct, after, limit)
			}
			if err != nil {
				if wctx.Err() != nil && ctx.Err() == nil {
					break // the wait is over: answer with no events
				}
				return err
			}
		}
	}
	body, err := s.syncBody(evs, after)
	if err != nil {
		return err
	}
	writeJSONBytes(w, http.StatusOK, body)
	return nil
}

// syncBody encodes {"events": [...], "next": P}. It stops before the event
// that would take the body over SyncMaxBytes (the first event always goes
// in), and next is the position of the last event included, or after.
func (s *Server) syncBody(evs []Event, after uint64) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString(`{"events":[`)
	next := after
	n := 0
	for i := range evs {
		ev := &evs[i]
		if ev.Pos <= next {
			s.log.Error("mailbox returned events out of order; skipping", "pos", ev.Pos, "after", next)
			continue
		}
		b, err := marshalEvent(ev)
		if err != nil {
			return nil, err
		}
		if n > 0 && buf.Len()+len(b) > s.cfg.SyncMaxBytes {
			break
		}
		if n > 0 {
			buf.WriteByte(',')
		}
		buf.Write(b)
		next = ev.Pos
		n++
	}
	buf.WriteString(`],"next":`)
	buf.WriteString(strconv.FormatUint(next, 10))
	buf.WriteString("}\n")
	return buf.Bytes(), nil
}

// spec 09 §6: GET /v1/sync/ws?after=P upgrades to a WebSocket.
func (s *Server) syncWS(w http.ResponseWriter, r *http.Request) error {
	acct := accountFrom(r.Context()).ID
	q, err := query(r, "after")
	if err != nil {
		return err
	}
	if !headerHasToken(r.Header, "Upgrade", "websocket") {
		return badRequest("a WebSocket upgrade is required")
	}
	if !headerHasToken(r.Header, "Sec-WebSocket-Protocol", Subprotocol) {
		return badRequest("the WebSocket subprotocol %s is required", Subprotocol)
	}
	release, err := s.acquireSocket(acct)
	if err != nil {
		return err
	}
	defer release()
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{Subprotocol}})
	if err != nil {
		// Accept has answered the request.
		s.log.Debug("websocket upgrade failed", "err", err)
		return nil
	}
	s.m.websockets.Inc()
	defer s.m.websockets.Dec()
	s.serveSocket(c, accountFrom(r.Context()), bearerToken(r), q["after"])
	return nil
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// acquireSocket takes a WebSocket slot for acct, within the per-account
// (429) and node-wide (503) bounds. release gives it back.
func (s *Server) acquireSocket(acct keys.AccountID) (release func(), err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closing:
		return nil, ErrUnavailable
	case s.sockets[acct] >= s.cfg.WebSocketsPerAccount:
		return nil, errTooManySockets
	case s.nSockets >= s.cfg.MaxWebSockets:
		return nil, ErrBusy
	}
	s.sockets[acct]++
	s.nSockets++
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.sockets[acct]--; s.sockets[acct] == 0 {
			delete(s.sockets, acct)
		}
		if s.nSockets--; s.nSockets == 0 && s.closing {
			close(s.idle)
		}
	}, nil
}

// serveSocket runs one sync WebSocket until the client leaves, breaks the
// protocol or stops answering pings, its session ends, or the server shuts
// down. It owns two goroutines, a reader (acks and sends, and the pongs the
// pinger waits for) and a pinger, and waits for both before it returns; it
// pushes events itself.
//
// Two contexts: ctx says "stop serving" (shutdown, or any of the three
// parts ending); connCtx bounds the connection's own reads and writes and
// ends only after the closing handshake, because the WebSocket library
// drops the connection when the context of a read or write ends, and a
// shutdown should close it cleanly with 1001 instead.
func (s *Server) serveSocket(c *websocket.Conn, acct Account, token string, after uint64) {
	defer func() { _ = c.CloseNow() }()
	c.SetReadLimit(s.cfg.MaxMessageBodyBytes)
	ctx, cancel := context.WithCancel(s.base)
	defer cancel()
	connCtx, connCancel := context.WithCancel(context.Background())
	defer connCancel()
	// Each write and each ping's pong must complete within two ping
	// intervals: a client that misses two pings is gone.
	deadline := 2 * s.cfg.WebSocketPingInterval

	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		defer cancel()
		s.readSocket(ctx, connCtx, c, acct, deadline)
	}()
	pingDone := make(chan struct{})
	go func() {
		defer close(pingDone)
		defer cancel()
		s.pingSocket(ctx, connCtx, c, token, deadline)
	}()

	err := s.pushEvents(ctx, connCtx, c, acct.ID, after, deadline)
	switch {
	case s.base.Err() != nil:
		_ = c.Close(websocket.StatusGoingAway, "server shutting down")
	case ctx.Err() == nil && !errors.Is(err, net.ErrClosed):
		s.log.Error("sync websocket failed", "err", err)
		_ = c.Close(websocket.StatusInternalError, "internal error")
	}
	cancel()
	connCancel()
	<-readDone
	<-pingDone
}

// pushEvents sends the account's events in order, starting after after,
// and waits for new ones between batches. It returns only on an error,
// ctx's included.
func (s *Server) pushEvents(ctx, connCtx context.Context, c *websocket.Conn, acct keys.AccountID, after uint64, deadline time.Duration) error {
	pos := after
	nexter, _ := s.deps.Mailbox.(MailboxNexter)
	for {
		var (
			evs []Event
			err error
		)
		if nexter != nil {
			evs, err = nexter.Next(ctx, acct, pos, s.cfg.SyncDefaultLimit)
		} else {
			evs, err = s.deps.Mailbox.Read(ctx, acct, pos, s.cfg.SyncDefaultLimit)
		}
		if err != nil {
			return err
		}
		sent := 0
		for i := range evs {
			ev := &evs[i]
			if ev.Pos <= pos {
				s.log.Error("mailbox returned events out of order; skipping", "pos", ev.Pos, "after", pos)
				continue
			}
			b, err := marshalEvent(ev)
			if err != nil {
				return err
			}
			wctx, cancel := context.WithTimeout(connCtx, deadline)
			err = c.Write(wctx, websocket.MessageText, b)
			cancel()
			if err != nil {
				return err
			}
			pos = ev.Pos
			sent++
		}
		if sent == 0 {
			if err := s.deps.Mailbox.Wait(ctx, acct, pos); err != nil {
				return err
			}
		}
	}
}

// readSocket reads the client's messages until the connection ends:
// {"ack": N}, acknowledged through the Mailbox, and {"send": {...}}, each
// sent in its own goroutine and answered with {"sent": ...} or
// {"failed": ...} (spec 09 §6), at most WebSocketSendsInFlight at once: it
// reads no further message while that many are unanswered. Anything else
// closes the connection with 1008 (policy violation); a message over the
// send body limit with 1009 (the library does that). It returns once every
// send it started has been answered.
func (s *Server) readSocket(ctx, connCtx context.Context, c *websocket.Conn, acct Account, deadline time.Duration) {
	var sends sync.WaitGroup
	defer sends.Wait()
	inFlight := make(chan struct{}, s.cfg.WebSocketSendsInFlight)
	for {
		typ, b, err := c.Read(connCtx)
		if err != nil {
			s.log.Debug("sync websocket read ended", "err", err)
			return
		}
		if typ != websocket.MessageText {
			_ = c.Close(websocket.StatusPolicyViolation, "text messages only")
			return
		}
		m, err := decodeWSClientMessage(b, s.cfg.MaxMessageBodyBytes)
		if err != nil {
			s.log.Debug("sync websocket: bad client message", "err", err)
			_ = c.Close(websocket.StatusPolicyViolation, "unknown message")
			return
		}
		if m.Ack != nil {
			if err := s.deps.Mailbox.Ack(ctx, acct.ID, *m.Ack); err != nil {
				if ctx.Err() == nil {
					s.log.Error("sync websocket: ack failed", "err", err)
					_ = c.Close(websocket.StatusInternalError, "internal error")
				}
				return
			}
			continue
		}
		select {
		case inFlight <- struct{}{}:
		case <-ctx.Done():
			return
		}
		sends.Go(func() {
			defer func() { <-inFlight }()
			s.socketSend(ctx, connCtx, c, acct, m.Send, deadline)
		})
	}
}

// routeWSSend is the route label of sends over the sync WebSocket.
const routeWSSend = "WS /v1/sync/ws send"

// socketSend performs one send from the sync WebSocket, rate-limited as a
// request, and writes its answer.
func (s *Server) socketSend(ctx, connCtx context.Context, c *websocket.Conn, acct Account, q *wsSendRequest, deadline time.Duration) {
	start := s.now()
	ans := wsAnswer{}
	var err error
	if ok, after := s.acctL.Allow(acct.ID.String()); !ok {
		s.m.rateLimited.WithLabelValues(scopeAccount).Inc()
		err = &rateLimitedError{scope: scopeAccount, after: after}
	} else {
		var out *sendResponse
		if out, err = s.submit(ctx, acct.ID, q.room, &q.sendRequest); err == nil {
			ans.Sent = &wsSent{Req: *q.Req, sendResponse: *out}
		}
	}
	status := http.StatusOK
	if err != nil {
		var code, message string
		status, code, message = s.logFailure(ctx, http.MethodPost, routeWSSend, err)
		ans.Failed = &wsFailed{Req: *q.Req, Status: status, Error: errorJSON{Code: code, Message: message}}
		var rl *rateLimitedError
		if errors.As(err, &rl) {
			ans.Failed.RetryAfter = retryAfterSeconds(rl.after)
		}
	}
	s.m.requests.WithLabelValues(routeWSSend, strconv.Itoa(status)).Inc()
	s.m.duration.WithLabelValues(routeWSSend).Observe(s.now().Sub(start).Seconds())
	b, err := json.Marshal(&ans)
	if err != nil {
		s.log.Error("sync websocket: encoding an answer", "err", err)
		return
	}
	wctx, cancel := context.WithTimeout(connCtx, deadline)
	defer cancel()
	if err := c.Write(wctx, websocket.MessageText, b); err != nil {
		s.log.Debug("sync websocket: writing an answer", "err", err)
		_ = c.CloseNow()
	}
}

// pingSocket pings every WebSocketPingInterval; a pong must arrive within
// deadline, or the connection is dropped. After each pong it checks that
// the socket's session is still valid (not revoked, expired or ended by a
// suspension), and closes the connection with 1008 if it is not.
func (s *Server) pingSocket(ctx, connCtx context.Context, c *websocket.Conn, token string, deadline time.Duration) {
	t := time.NewTicker(s.cfg.WebSocketPingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(connCtx, deadline)
		err := c.Ping(pctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				s.log.Debug("sync websocket missed its pings; closing")
				_ = c.CloseNow()
			}
			return
		}
		if _, err := s.deps.Accounts.Authenticate(ctx, token); err != nil {
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, ErrUnauthenticated) {
				_ = c.Close(websocket.StatusPolicyViolation, "session ended")
			} else {
				s.log.Error("sync websocket: checking the session", "err", err)
				_ = c.Close(websocket.StatusInternalError, "internal error")
			}
			return
		}
	}
}
