package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/coder/websocket"
)

// Subprotocol is the WebSocket subprotocol of the sync stream (spec 09 §6).
const Subprotocol = "parley.v1"

// maxWSEvent bounds one event the client reads from the sync stream: a
// message event with the largest stamped envelope in base64, and room.
const maxWSEvent = 256 << 10

// SyncStream is a sync WebSocket (spec 09 §6): the node pushes every event
// after the starting position, in order, and the client acknowledges with
// Ack. Next and Ack may be called concurrently; the stream answers the
// node's pings only while a Next is reading, so keep one running.
type SyncStream struct {
	c    *websocket.Conn
	last uint64
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
	return &SyncStream{c: conn, last: after}, nil
}

// Next returns the next event. If ctx ends while it waits, the stream is
// closed (a property of the WebSocket library) and must be opened again.
func (s *SyncStream) Next(ctx context.Context) (SyncEvent, error) {
	typ, b, err := s.c.Read(ctx)
	if err != nil {
		return SyncEvent{}, fmt.Errorf("client: sync websocket: %w", err)
	}
	if typ != websocket.MessageText {
		_ = s.c.Close(websocket.StatusUnsupportedData, "text messages only")
		return SyncEvent{}, fmt.Errorf("%w: sync websocket sent a binary message", ErrBadResponse)
	}
	var ev SyncEvent
	if err := json.Unmarshal(b, &ev); err != nil {
		_ = s.c.Close(websocket.StatusUnsupportedData, "malformed event")
		return SyncEvent{}, fmt.Errorf("%w: sync websocket event: %w", ErrBadResponse, err)
	}
	if ev.Pos <= s.last {
		_ = s.c.Close(websocket.StatusProtocolError, "positions must increase")
		return SyncEvent{}, fmt.Errorf("%w: sync websocket event %d after %d", ErrBadResponse, ev.Pos, s.last)
	}
	s.last = ev.Pos
	return ev, nil
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
// still works. It always returns nil: a stream that cannot say goodbye is
// closed all the same.
func (s *SyncStream) Close() error {
	if err := s.c.Close(websocket.StatusNormalClosure, ""); err != nil {
		_ = s.c.CloseNow()
	}
	return nil
}
