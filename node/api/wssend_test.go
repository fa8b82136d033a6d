package api

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/parley-chat/parley/protocol/keys"
)

// Sends over the sync WebSocket (spec 09 §6).

// wsAnswerJSON is a send's answer as a client reads it.
type wsAnswerJSON struct {
	Sent *struct {
		Req       uint64 `json:"req"`
		ID        string `json:"id"`
		Stamp     string `json:"stamp"`
		Duplicate bool   `json:"duplicate"`
	} `json:"sent"`
	Failed *struct {
		Req   uint64 `json:"req"`
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
		RetryAfter int `json:"retry_after"`
	} `json:"failed"`
}

func wsSend(t *testing.T, c *websocket.Conn, req uint64, room keys.RoomID, txid, enc string) {
	t.Helper()
	msg := mustJSON(t, map[string]any{"send": map[string]any{"req": req, "room": room.String(), "txid": txid, "envelope": enc}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatal(err)
	}
}

// readAnswer reads the next send answer, skipping events.
func readAnswer(t *testing.T, c *websocket.Conn) (wsAnswerJSON, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		_, b, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("reading an answer: %v", err)
		}
		var a wsAnswerJSON
		if err := json.Unmarshal(b, &a); err != nil {
			t.Fatalf("answer %s: %v", b, err)
		}
		if a.Sent != nil || a.Failed != nil {
			if (a.Sent != nil) == (a.Failed != nil) {
				t.Fatalf("answer %s holds both sent and failed", b)
			}
			return a, b
		}
	}
}

// TestWebSocketSend checks that a send over the socket does what POST
// /v1/rooms/{room}/messages does, answers with the request number, and is
// idempotent across both ways of sending.
func TestWebSocketSend(t *testing.T) {
	h := newHarness(t, noLimits)
	_, enc := sealed(t, h.room, 0, 1, t0)
	c := mustDial(t, h, h.alice.token, "")
	wsSend(t, c, 7, h.room.id, "tx-1", enc)
	a, raw := readAnswer(t, c)
	if a.Sent == nil || a.Sent.Req != 7 || a.Sent.Duplicate || a.Sent.ID == "" || a.Sent.Stamp == "" {
		t.Fatalf("answer = %s, want sent for req 7, not a duplicate", raw)
	}
	if n := len(h.fake.mailboxOf(h.bob.id)); n != 1 {
		t.Errorf("bob's mailbox holds %d events, want 1", n)
	}
	// The same transaction over HTTP is a duplicate with the same result.
	status, _, body := h.do(request{method: "POST", path: "/v1/rooms/" + h.room.id.String() + "/messages", token: h.alice.token,
		body: mustJSON(t, map[string]any{"txid": "tx-1", "envelope": enc})})
	want := mustJSON(t, map[string]any{"id": a.Sent.ID, "stamp": a.Sent.Stamp, "duplicate": true})
	if status != 200 || !jsonEqual(body, []byte(want)) {
		t.Errorf("HTTP retry = %d %s, want 200 %s", status, body, want)
	}
	wsSend(t, c, 8, h.room.id, "tx-1", enc)
	if a, raw := readAnswer(t, c); a.Sent == nil || a.Sent.Req != 8 || !a.Sent.Duplicate {
		t.Errorf("socket retry = %s, want sent for req 8, a duplicate", raw)
	}
	if n := len(h.fake.mailboxOf(h.bob.id)); n != 1 {
		t.Errorf("bob's mailbox holds %d events after the retries, want 1", n)
	}
}

// TestWebSocketSendFailures checks that a send the node refuses is answered
// with the HTTP API's error code for the same request number, changes
// nothing, and leaves the socket open.
func TestWebSocketSendFailures(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(*Config, *Deps)
		setup func(h *harness) (room keys.RoomID, enc string)
		code  string
	}{
		{"header names another room", noLimits, func(h *harness) (keys.RoomID, string) {
			other := h.fake.addRoom(h.alice, h.carol, "alice-carol")
			_, enc := sealed(t, h.room, 0, 1, t0)
			return other.id, enc
		}, "bad_envelope"},
		{"time too far off", noLimits, func(h *harness) (keys.RoomID, string) {
			_, enc := sealed(t, h.room, 0, 1, t0.Add(time.Hour))
			return h.room.id, enc
		}, "bad_time"},
		{"not a member", noLimits, func(h *harness) (keys.RoomID, string) {
			r := h.fake.addRoom(h.bob, h.carol, "bob-carol")
			_, enc := sealed(t, r, 0, 1, t0)
			return r.id, enc
		}, "not_found"},
		{"rate limited", func(_ *Config, d *Deps) {
			d.IPLimiter = allowAll{}
			// The upgrade takes the one token.
			d.AccountLimiter = &fakeLimiter{n: 1, retryAfter: 2500 * time.Millisecond}
		}, func(h *harness) (keys.RoomID, string) {
			_, enc := sealed(t, h.room, 0, 1, t0)
			return h.room.id, enc
		}, "rate_limited"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.edit)
			room, enc := tt.setup(h)
			c := mustDial(t, h, h.alice.token, "")
			wsSend(t, c, 3, room, "tx-1", enc)
			a, raw := readAnswer(t, c)
			if a.Failed == nil || a.Failed.Req != 3 || a.Failed.Error.Code != tt.code {
				t.Fatalf("answer = %s, want failed for req 3 with %s", raw, tt.code)
			}
			if tt.code == "rate_limited" && a.Failed.RetryAfter != 3 {
				t.Errorf("retry_after = %d, want 3 (seconds, rounded up)", a.Failed.RetryAfter)
			}
			for _, u := range []*user{h.bob, h.carol} {
				if n := len(h.fake.mailboxOf(u.id)); n != 0 {
					t.Errorf("%s's mailbox holds %d events, want none", u.name, n)
				}
			}
			// The socket still works: it answers a ping (the pong is read
			// by a Read in progress).
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			go func() { _, _, _ = c.Read(ctx) }()
			if err := c.Ping(ctx); err != nil {
				t.Errorf("ping after a failed send: %v", err)
			}
		})
	}
}

// TestWebSocketSendsInFlight checks the bound on unanswered sends: with
// WebSocketSendsInFlight sends held by the Sender, the node reads no
// further frame, and answers each send once it completes.
func TestWebSocketSendsInFlight(t *testing.T) {
	const bound = 2
	gate := make(chan struct{})
	h := newHarness(t, func(c *Config, d *Deps) {
		noLimits(c, d)
		c.WebSocketSendsInFlight = bound
	})
	h.fake.sendGate = gate
	c := mustDial(t, h, h.alice.token, "")
	for i := range bound + 2 {
		_, enc := sealed(t, h.room, 0, uint64(i+1), t0)
		wsSend(t, c, uint64(i), h.room.id, "tx-"+strings.Repeat("x", i+1), enc)
	}
	eventually(t, "the bound's worth of sends reach the Sender", func() bool { return h.fake.sending.Load() == bound })
	// An ack frame behind the held sends is not read either.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"ack":1}`)); err != nil {
		t.Fatal(err)
	}
	if got := h.fake.sending.Load(); got != bound {
		t.Errorf("%d sends in progress, want %d", got, bound)
	}
	for _, cl := range h.fake.Calls() {
		if strings.HasPrefix(cl.Method, "Ack") {
			t.Errorf("the ack behind the held sends was read (%v)", cl)
		}
	}
	close(gate)
	seen := map[uint64]bool{}
	for range bound + 2 {
		a, raw := readAnswer(t, c)
		if a.Sent == nil || seen[a.Sent.Req] {
			t.Fatalf("answer %s: want one sent answer per request", raw)
		}
		seen[a.Sent.Req] = true
	}
	if n := len(h.fake.mailboxOf(h.bob.id)); n != bound+2 {
		t.Errorf("bob's mailbox holds %d events, want %d", n, bound+2)
	}
	eventually(t, "the ack is read once the sends are answered", func() bool {
		for _, cl := range h.fake.Calls() {
			if cl.Method == "Ack 1" {
				return true
			}
		}
		return false
	})
}

// TestWebSocketSessionEnds checks that a sync WebSocket whose session ends
// (here by logout; a suspension revokes sessions the same way) is closed
// with 1008 at the next ping (spec 09 §6).
func TestWebSocketSessionEnds(t *testing.T) {
	h := newHarness(t, func(c *Config, d *Deps) {
		noLimits(c, d)
		c.WebSocketPingInterval = 20 * time.Millisecond
	})
	c := mustDial(t, h, h.alice.token, "")
	if status, _, body := h.do(request{method: "POST", path: "/v1/logout", token: h.alice.token}); status != 204 {
		t.Fatalf("logout = %d %s, want 204", status, body)
	}
	if got := readClose(t, c); got != websocket.StatusPolicyViolation {
		t.Errorf("close status after logout = %v, want %v", got, websocket.StatusPolicyViolation)
	}
}
