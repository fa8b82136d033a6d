package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/parley-chat/parley/protocol/envelope"
	"github.com/parley-chat/parley/protocol/keys"
)

// Subprotocol is the WebSocket subprotocol of the sync stream (spec 09 §6).
const Subprotocol = "parley.v1"

// maxWSEvent bounds one event the client reads from the sync stream: a
// message event with the largest stamped envelope in base64, and room.
const maxWSEvent = 256 << 10

// streamBuffer is how many events a SyncStream holds that Next has not
// taken yet; beyond it the stream stops reading, and answers to sends
// wait behind the events.
const streamBuffer = 1024

// ErrStreamClosed is returned by a SyncStream's methods once it is closed.
var ErrStreamClosed = errors.New("client: sync websocket closed")

// SyncStream is a sync WebSocket (spec 09 §6): the node pushes every event
// after the starting position, in order, and the client acknowledges with
// Ack and may send messages with Send, one request on the socket instead of
// an HTTP request each. A goroutine reads the socket (and answers the
// node's pings) from SyncWS until Close or the connection ends; it buffers
// up to 1024 events for Next, so keep taking them: while the buffer is
// full, answers to Send wait too. All methods may be called concurrently.
type SyncStream struct {
	c      *websocket.Conn
	events chan SyncEvent
	done   chan struct{} // closed when the reader stops
	err    error         // why it stopped; set before done is closed

	closeOnce sync.Once
	closing   chan struct{} // closed by Close

	mu      sync.Mutex
	nextReq uint64
	pending map[uint64]chan wsOutcome
}

// wsOutcome is a send's answer.
type wsOutcome struct {
	res SendResult
	err error
}

// SyncWS opens a sync WebSocket that starts after position after. ctx
// bounds the handshake only.
func (c *Client) SyncWS(ctx context.Context, after uint64) (*SyncStream, error) {
	if c.baseErr != nil {
		return nil, c.baseErr
	}
	h := http.Header{}
	if t := c.getToken(); t != "" {
		h.Set("Authorization", "Bearer "+t)
	}
	hctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	u := c.base + "/v1/sync/ws?after=" + strconv.FormatUint(after, 10)
	conn, resp, err := websocket.Dial(hctx, u, &websocket.DialOptions{
		HTTPClient:   c.hc,
		HTTPHeader:   h,
		Subprotocols: []string{Subprotocol},
	})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			defer func() { _ = resp.Body.Close() }()
			return nil, readAPIError(resp)
		}
		return nil, fmt.Errorf("client: sync websocket: %w", err)
	}
	if conn.Subprotocol() != Subprotocol {
		_ = conn.Close(websocket.StatusProtocolError, "subprotocol "+Subprotocol+" required")
		return nil, fmt.Errorf("%w: sync websocket without subprotocol %s", ErrBadResponse, Subprotocol)
	}
	conn.SetReadLimit(maxWSEvent)
	s := &SyncStream{
		c:       conn,
		events:  make(chan SyncEvent, streamBuffer),
		done:    make(chan struct{}),
		closing: make(chan struct{}),
		pending: make(map[uint64]chan wsOutcome),
	}
	go s.read(after)
	return s, nil
}

// wsFrame is any message the node sends: a send's answer, or else an event.
type wsFrame struct {
	Sent *struct {
		Req *uint64 `json:"req"`
		sendAnswer
	} `json:"sent"`
	Failed *struct {
		Req        *uint64 `json:"req"`
		Status     int     `json:"status"`
		RetryAfter int     `json:"retry_after"`
		Error      struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	} `json:"failed"`
}

// read runs until the connection ends: it hands events to Next, in order,
// and answers to the sends waiting for them. A message that breaks the
// protocol closes the connection.
func (s *SyncStream) read(last uint64) {
	defer close(s.done)
	for {
		err := s.readOne(&last)
		if err == nil {
			continue
		}
		s.err = err
		s.mu.Lock()
		for req, ch := range s.pending {
			ch <- wsOutcome{err: err}
			delete(s.pending, req)
		}
		s.pending = nil
		s.mu.Unlock()
		return
	}
}

func (s *SyncStream) readOne(last *uint64) error {
	typ, b, err := s.c.Read(context.Background())
	if err != nil {
		if websocket.CloseStatus(err) == websocket.StatusNormalClosure {
			return ErrStreamClosed
		}
		return fmt.Errorf("client: sync websocket: %w", err)
	}
	if typ != websocket.MessageText {
		_ = s.c.Close(websocket.StatusUnsupportedData, "text messages only")
		return fmt.Errorf("%w: sync websocket sent a binary message", ErrBadResponse)
	}
	// Events, the common message, are decoded once; a message that is no
	// event (it has no position) may be an answer to a send.
	var ev SyncEvent
	if err := json.Unmarshal(b, &ev); err != nil {
		var f wsFrame
		if json.Unmarshal(b, &f) == nil && (f.Sent != nil || f.Failed != nil) {
			return s.answer(&f)
		}
		_ = s.c.Close(websocket.StatusUnsupportedData, "malformed message")
		return fmt.Errorf("%w: sync websocket message: %w", ErrBadResponse, err)
	}
	if ev.Pos <= *last {
		_ = s.c.Close(websocket.StatusProtocolError, "positions must increase")
		return fmt.Errorf("%w: sync websocket event %d after %d", ErrBadResponse, ev.Pos, *last)
	}
	*last = ev.Pos
	select {
	case s.events <- ev:
		return nil
	case <-s.closing:
		return ErrStreamClosed
	}
}

// answer hands a send's answer to the Send waiting for it.
func (s *SyncStream) answer(f *wsFrame) error {
	var (
		req *uint64
		out wsOutcome
	)
	switch {
	case f.Sent != nil && f.Failed != nil:
		req = nil
	case f.Sent != nil:
		req = f.Sent.Req
		if err := f.Sent.check(); err != nil {
			out.err = fmt.Errorf("%w: send answer: %w", ErrBadResponse, err)
		}
		out.res = SendResult{Stamp: f.Sent.stamp, Duplicate: f.Sent.Duplicate}
		copy(out.res.ID[:], f.Sent.ID)
	default:
		req = f.Failed.Req
		e := &APIError{Status: f.Failed.Status, Code: f.Failed.Error.Code, Message: f.Failed.Error.Message}
		if f.Failed.RetryAfter > 0 {
			e.RetryAfter = time.Duration(min(f.Failed.RetryAfter, 24*3600)) * time.Second
		}
		if e.Code == "" || e.Status < 400 {
			out.err = fmt.Errorf("%w: send failure without a code and an error status", ErrBadResponse)
		} else {
			out.err = e
		}
	}
	s.mu.Lock()
	var ch chan wsOutcome
	if req != nil {
		ch = s.pending[*req]
		delete(s.pending, *req)
	}
	s.mu.Unlock()
	if ch == nil {
		// An answer to no send this stream is waiting for (a Send that
		// gave up has already taken its request out): harmless unless it
		// is malformed.
		if req == nil {
			_ = s.c.Close(websocket.StatusProtocolError, "malformed answer")
			return fmt.Errorf("%w: sync websocket answer without one request number", ErrBadResponse)
		}
		return nil
	}
	ch <- out
	return nil
}

// Next returns the next event, waiting for one until ctx ends. Once the
// stream has ended, Next returns the events it still holds and then the
// reason it ended (ErrStreamClosed after Close).
func (s *SyncStream) Next(ctx context.Context) (SyncEvent, error) {
	select {
	case ev := <-s.events:
		return ev, nil
	case <-s.done:
		select {
		case ev := <-s.events:
			return ev, nil
		default:
			return SyncEvent{}, s.err
		}
	case <-ctx.Done():
		return SyncEvent{}, ctx.Err()
	}
}

// Send sends env to room over the socket, exactly as Client.Send does over
// HTTP (spec 09 §5, §6): the node answers once the envelope is durably
// stored, and a retry with the same txid, on this socket, another one or
// over HTTP, is a duplicate. If ctx ends first, or the connection does, the
// outcome is unknown: retry with the same txid.
func (s *SyncStream) Send(ctx context.Context, room keys.RoomID, txid string, env *envelope.Envelope) (SendResult, error) {
	b, err := env.MarshalBinary()
	if err != nil {
		return SendResult{}, fmt.Errorf("client: encoding envelope: %w", err)
	}
	ch := make(chan wsOutcome, 1)
	s.mu.Lock()
	if s.pending == nil {
		s.mu.Unlock()
		<-s.done
		return SendResult{}, s.err
	}
	s.nextReq++
	req := s.nextReq
	s.pending[req] = ch
	s.mu.Unlock()
	forget := func() {
		s.mu.Lock()
		delete(s.pending, req)
		s.mu.Unlock()
	}
	frame, err := json.Marshal(struct {
		Send wsSendFrame `json:"send"`
	}{wsSendFrame{Req: req, Room: room.String(), TxID: txid, Envelope: b}})
	if err != nil {
		forget()
		return SendResult{}, fmt.Errorf("client: %w", err)
	}
	if err := s.c.Write(ctx, websocket.MessageText, frame); err != nil {
		forget()
		return SendResult{}, fmt.Errorf("client: sync websocket send: %w", err)
	}
	select {
	case out := <-ch:
		return out.res, out.err
	case <-ctx.Done():
		forget()
		return SendResult{}, ctx.Err()
	}
}

type wsSendFrame struct {
	Req      uint64 `json:"req"`
	Room     string `json:"room"`
	TxID     string `json:"txid"`
	Envelope []byte `json:"envelope"`
}

// Ack acknowledges every event up to position upto.
func (s *SyncStream) Ack(ctx context.Context, upto uint64) error {
	b, err := json.Marshal(struct {
		Ack uint64 `json:"ack"`
	}{upto})
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	if err := s.c.Write(ctx, websocket.MessageText, b); err != nil {
		return fmt.Errorf("client: sync websocket ack: %w", err)
	}
	return nil
}

// Close closes the stream, with the closing handshake if the connection
// still works, and waits for its reader to stop. It always returns nil: a
// stream that cannot say goodbye is closed all the same.
func (s *SyncStream) Close() error {
	s.closeOnce.Do(func() { close(s.closing) })
	if err := s.c.Close(websocket.StatusNormalClosure, ""); err != nil {
		_ = s.c.CloseNow()
	}
	<-s.done
	return nil
}
