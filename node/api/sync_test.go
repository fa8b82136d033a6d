package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/parley-chat/parley/node/internal/poll"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// newBubbleServer builds a Server over fakes for a synctest bubble: no
// listener, requests go straight to the handler.
func newBubbleServer(t *testing.T, edit func(*Config)) (*Server, *fakeNode, *user) {
	t.Helper()
	f := newFakeNode(t)
	alice := newUser(t, "alice")
	f.addUser(alice, false)
	cfg := Config{NodeID: f.node.Public().String(), Network: "parley-test"}
	if edit != nil {
		edit(&cfg)
	}
	deps := Deps{Accounts: f, Rooms: f, Mailbox: f, Sender: f, Pairing: f, Reports: f, AccountLimiter: allowAll{}, IPLimiter: allowAll{}}
	s, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	return s, f, alice
}

// syncResult is a finished long-poll.
type syncResult struct {
	status  int
	body    syncBodyJSON
	raw     string
	elapsed time.Duration
}

type syncBodyJSON struct {
	Events []eventJSON `json:"events"`
	Next   uint64      `json:"next"`
}

// startSync starts GET /v1/sync?query as alice and returns a channel that
// yields the result once the handler returns.
func startSync(t *testing.T, s *Server, u *user, query string) <-chan syncResult {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/v1/sync?"+query, nil)
	req.Header.Set("Authorization", "Bearer "+u.token)
	rec := httptest.NewRecorder()
	out := make(chan syncResult, 1)
	start := time.Now()
	go func() {
		s.Handler().ServeHTTP(rec, req)
		r := syncResult{status: rec.Code, raw: rec.Body.String(), elapsed: time.Since(start)}
		_ = json.Unmarshal(rec.Body.Bytes(), &r.body)
		out <- r
	}()
	return out
}

func positions(evs []eventJSON) []uint64 {
	var out []uint64
	for _, e := range evs {
		out = append(out, e.Pos)
	}
	return out
}

// TestLongPoll covers the long-poll of spec 09 §6 in a synctest bubble,
// whose clock moves only when every goroutine waits.
func TestLongPoll(t *testing.T) {
	msg := func(f *fakeNode, u *user, n int) {
		for range n {
			f.addEvent(u.id, Event{Kind: EventMessage, Time: t0, Envelope: []byte(strings.Repeat("e", 60))})
		}
	}
	tests := []struct {
		name        string
		edit        func(*Config)
		before      int    // events in the mailbox before the request
		query       string // of the request
		during      int    // events added while it waits
		shutdown    bool   // shut the server down while it waits
		wantElapsed time.Duration
		wantPos     []uint64
		wantNext    uint64
	}{
		{name: "returns early when an event arrives", query: "wait=30", during: 1, wantElapsed: 0, wantPos: []uint64{10}, wantNext: 10},
		{name: "returns empty after the wait", query: "after=7&wait=5", wantElapsed: 5 * time.Second, wantNext: 7},
		{name: "wait is capped at 60s", query: "wait=3600", wantElapsed: 60 * time.Second},
		{name: "wait is capped by the config", edit: func(c *Config) { c.SyncMaxWait = 10 * time.Second }, query: "wait=18446744073709551615", wantElapsed: 10 * time.Second},
		{name: "no wait", query: "after=3", wantElapsed: 0, wantNext: 3},
		{name: "events at once", before: 2, query: "wait=30", wantPos: []uint64{10, 20}, wantNext: 20},
		{name: "after", before: 3, query: "after=10", wantPos: []uint64{20, 30}, wantNext: 30},
		{name: "limit", before: 5, query: "limit=2", wantPos: []uint64{10, 20}, wantNext: 20},
		{name: "default limit", edit: func(c *Config) { c.SyncDefaultLimit = 3 }, before: 5, wantPos: []uint64{10, 20, 30}, wantNext: 30},
		{name: "limit is capped", edit: func(c *Config) { c.SyncMaxLimit = 4; c.SyncDefaultLimit = 2 }, before: 5, query: "limit=1000000", wantPos: []uint64{10, 20, 30, 40}, wantNext: 40},
		{name: "byte cap", edit: func(c *Config) { c.SyncMaxBytes = 450 }, before: 5, wantPos: []uint64{10, 20}, wantNext: 20},
		{name: "byte cap keeps one event", edit: func(c *Config) { c.SyncMaxBytes = 1 }, before: 5, wantPos: []uint64{10}, wantNext: 10},
		{name: "shutdown ends the wait", query: "wait=60", shutdown: true, wantElapsed: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s, f, alice := newBubbleServer(t, tt.edit)
				msg(f, alice, tt.before)
				res := startSync(t, s, alice, tt.query)
				synctest.Wait()
				if tt.during > 0 {
					msg(f, alice, tt.during)
				}
				if tt.shutdown {
					if err := s.Shutdown(context.Background()); err != nil {
						t.Fatalf("Shutdown = %v", err)
					}
				}
				r := <-res
				if r.status != 200 {
					t.Fatalf("GET /v1/sync?%s = %d %s, want 200", tt.query, r.status, r.raw)
				}
				if r.elapsed != tt.wantElapsed {
					t.Errorf("GET /v1/sync?%s took %v, want %v", tt.query, r.elapsed, tt.wantElapsed)
				}
				if got := positions(r.body.Events); !slices.Equal(got, tt.wantPos) {
					t.Errorf("GET /v1/sync?%s events = %v, want %v", tt.query, got, tt.wantPos)
				}
				if r.body.Next != tt.wantNext {
					t.Errorf("GET /v1/sync?%s next = %d, want %d", tt.query, r.body.Next, tt.wantNext)
				}
				if r.body.Events == nil {
					t.Errorf("GET /v1/sync?%s = %s, want an events array", tt.query, r.raw)
				}
			})
		})
	}
}

// TestLongPollClientGone checks that a long-poll ends when its client
// disconnects.
func TestLongPollClientGone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _, alice := newBubbleServer(t, nil)
		ctx, cancel := context.WithCancel(context.Background())
		req := httptest.NewRequestWithContext(ctx, "GET", "/v1/sync?wait=60", nil)
		req.Header.Set("Authorization", "Bearer "+alice.token)
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.Handler().ServeHTTP(httptest.NewRecorder(), req)
		}()
		synctest.Wait()
		start := time.Now()
		cancel()
		<-done
		if d := time.Since(start); d != 0 {
			t.Errorf("long-poll ended %v after its client left, want at once", d)
		}
	})
}

// ---- WebSocket (spec 09 §6) ----

// dialWS dials /v1/sync/ws and returns the connection, or the handshake's
// HTTP status and the error.
func dialWS(t *testing.T, h *harness, token, query string, edit func(*websocket.DialOptions)) (*websocket.Conn, int, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	opts := &websocket.DialOptions{HTTPClient: h.ts.Client(), Subprotocols: []string{Subprotocol}}
	if token != "" {
		opts.HTTPHeader = http.Header{"Authorization": {"Bearer " + token}}
	}
	if edit != nil {
		edit(opts)
	}
	c, resp, err := websocket.Dial(ctx, h.ts.URL+"/v1/sync/ws"+query, opts)
	status := 0
	if resp != nil {
		status = resp.StatusCode
		if resp.Body != nil {
			resp.Body.Close()
		}
	}
	if c != nil {
		t.Cleanup(func() { _ = c.CloseNow() })
	}
	return c, status, err
}

func mustDial(t *testing.T, h *harness, token, query string) *websocket.Conn {
	t.Helper()
	c, _, err := dialWS(t, h, token, query, nil)
	if err != nil {
		t.Fatalf("dial /v1/sync/ws%s: %v", query, err)
	}
	if c.Subprotocol() != Subprotocol {
		t.Errorf("subprotocol = %q, want %q", c.Subprotocol(), Subprotocol)
	}
	return c
}

func readEvent(t *testing.T, c *websocket.Conn) eventJSON {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	typ, b, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("reading an event: %v", err)
	}
	if typ != websocket.MessageText {
		t.Errorf("event message type = %v, want text", typ)
	}
	var ev eventJSON
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatalf("event %s: %v", b, err)
	}
	return ev
}

// eventually polls cond until it holds or poll.Timeout passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	poll.Until(t, what, cond)
}

// readClose reads until the connection ends and returns its close status.
func readClose(t *testing.T, c *websocket.Conn) websocket.StatusCode {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		_, _, err := c.Read(ctx)
		if err != nil {
			return websocket.CloseStatus(err)
		}
	}
}

func TestWebSocketEventsInOrder(t *testing.T) {
	h := newHarness(t, noLimits)
	for i := range 3 {
		h.fake.addEvent(h.alice.id, Event{Kind: EventMessage, Room: h.room.id, Time: t0, Envelope: []byte{byte(i + 1)}})
	}
	c := mustDial(t, h, h.alice.token, "?after=10")
	var got []uint64
	for range 2 {
		got = append(got, readEvent(t, c).Pos)
	}
	// A new event is pushed as it arrives.
	h.fake.addEvent(h.alice.id, Event{Kind: EventRoomClosed, Room: h.room.id, Time: t0, By: ClosedByMe})
	ev := readEvent(t, c)
	got = append(got, ev.Pos)
	if want := []uint64{20, 30, 40}; !slices.Equal(got, want) {
		t.Errorf("WebSocket events = %v, want %v", got, want)
	}
	if ev.Kind != EventRoomClosed || ev.By != ClosedByMe || ev.Room != h.room.id.String() || ev.Time != t0Text {
		t.Errorf("pushed event = %+v, want room_closed by me in %s at %s", ev, h.room.id, t0Text)
	}
	if got := testutil.ToFloat64(h.srv.m.websockets); got != 1 {
		t.Errorf("parley_api_websockets = %v, want 1", got)
	}
}

func TestWebSocketAck(t *testing.T) {
	h := newHarness(t, noLimits)
	for range 3 {
		h.fake.addEvent(h.alice.id, Event{Kind: EventMessage, Room: h.room.id, Time: t0, Envelope: []byte{1}})
	}
	c := mustDial(t, h, h.alice.token, "")
	for range 3 {
		readEvent(t, c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"ack": 20}`)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the ack reaches the mailbox", func() bool {
		return slices.Contains(h.fake.Calls(), call{"Ack 20", h.alice.id})
	})
	if evs := h.fake.mailboxOf(h.alice.id); len(evs) != 1 || evs[0].Pos != 30 {
		t.Errorf("mailbox after ack 20 = %v, want only position 30", evs)
	}
}

// TestWebSocketClientErrors checks that a client breaking the protocol is
// closed with the right status and that nothing is acknowledged.
func TestWebSocketClientErrors(t *testing.T) {
	tests := []struct {
		name string
		typ  websocket.MessageType
		msg  string
		want websocket.StatusCode
	}{
		{"oversize frame", websocket.MessageText, `{"ack":1,"x":"` + strings.Repeat("a", 128<<10) + `"}`, websocket.StatusMessageTooBig},
		{"ack and send", websocket.MessageText, `{"ack":1,"send":{}}`, websocket.StatusPolicyViolation},
		{"send without envelope", websocket.MessageText, `{"send":{"req":1,"room":"room_x","txid":"t"}}`, websocket.StatusPolicyViolation},
		{"unknown message type", websocket.MessageText, `{"nack":1}`, websocket.StatusPolicyViolation},
		{"binary message", websocket.MessageBinary, `{"ack":1}`, websocket.StatusPolicyViolation},
		{"not JSON", websocket.MessageText, `ack 1`, websocket.StatusPolicyViolation},
		{"negative ack", websocket.MessageText, `{"ack":-1}`, websocket.StatusPolicyViolation},
		{"duplicated ack", websocket.MessageText, `{"ack":1,"ack":2}`, websocket.StatusPolicyViolation},
		{"two messages in one", websocket.MessageText, `{"ack":1}{"ack":2}`, websocket.StatusPolicyViolation},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, noLimits)
			c := mustDial(t, h, h.alice.token, "")
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := c.Write(ctx, tt.typ, []byte(tt.msg)); err != nil {
				t.Fatal(err)
			}
			if got := readClose(t, c); got != tt.want {
				t.Errorf("close status after %s = %v, want %v", tt.name, got, tt.want)
			}
			for _, cl := range h.fake.Calls() {
				if strings.HasPrefix(cl.Method, "Ack") {
					t.Errorf("%s led to %v, want no ack", tt.name, cl)
				}
			}
		})
	}
}

func TestWebSocketHandshake(t *testing.T) {
	tests := []struct {
		name       string
		token      string
		query      string
		edit       func(*websocket.DialOptions)
		wantStatus int
	}{
		{name: "no token", wantStatus: 401},
		{name: "unknown token", token: "pt_nope", wantStatus: 401},
		{name: "no subprotocol", token: "alice", edit: func(o *websocket.DialOptions) { o.Subprotocols = nil }, wantStatus: 400},
		{name: "other subprotocol", token: "alice", edit: func(o *websocket.DialOptions) { o.Subprotocols = []string{"parley.v2"} }, wantStatus: 400},
		{name: "bad after", token: "alice", query: "?after=x", wantStatus: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, noLimits)
			token := tt.token
			if token == "alice" {
				token = h.alice.token
			}
			_, status, err := dialWS(t, h, token, tt.query, tt.edit)
			if err == nil || status != tt.wantStatus {
				t.Errorf("dial (%s) = %d, %v, want %d", tt.name, status, err, tt.wantStatus)
			}
			if calls := h.fake.Calls(); len(calls) != 0 {
				t.Errorf("dial (%s) called %v, want none", tt.name, calls)
			}
		})
	}
}

// TestWebSocketBounds checks the per-account bound (429) and the node-wide
// one (503).
func TestWebSocketBounds(t *testing.T) {
	h := newHarness(t, func(c *Config, d *Deps) {
		noLimits(c, d)
		c.WebSocketsPerAccount = 1
		c.MaxWebSockets = 2
	})
	first := mustDial(t, h, h.alice.token, "")
	if _, status, err := dialWS(t, h, h.alice.token, "", nil); err == nil || status != 429 {
		t.Errorf("alice's second WebSocket = %d, %v, want 429", status, err)
	}
	mustDial(t, h, h.bob.token, "")
	if _, status, err := dialWS(t, h, h.carol.token, "", nil); err == nil || status != 503 {
		t.Errorf("a third WebSocket on the node = %d, %v, want 503", status, err)
	}
	if err := first.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}
	eventually(t, "alice's WebSocket is released", func() bool { return testutil.ToFloat64(h.srv.m.websockets) == 1 })
	mustDial(t, h, h.alice.token, "")
}

// TestWebSocketPings checks that a client that answers pings stays, and
// one that misses two is closed (spec 09 §6).
func TestWebSocketPings(t *testing.T) {
	h := newHarness(t, func(c *Config, d *Deps) {
		noLimits(c, d)
		c.WebSocketPingInterval = 100 * time.Millisecond
	})
	var pings atomic.Int32
	alive, _, err := dialWS(t, h, h.alice.token, "", func(o *websocket.DialOptions) {
		o.OnPingReceived = func(context.Context, []byte) bool { pings.Add(1); return true }
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	readDone := make(chan error, 1)
	go func() { _, _, err := alive.Read(ctx); readDone <- err }() // answers pings while it reads
	mute := mustDial(t, h, h.bob.token, "")                       // never reads: never answers
	// Both are registered before the mute one can be seen to go.
	eventually(t, "both clients are registered", func() bool { return testutil.ToFloat64(h.srv.m.websockets) == 2 })
	eventually(t, "the mute client is dropped", func() bool { return testutil.ToFloat64(h.srv.m.websockets) == 1 })
	eventually(t, "the live client got 3 pings", func() bool { return pings.Load() >= 3 })
	if got := testutil.ToFloat64(h.srv.m.websockets); got != 1 {
		t.Errorf("parley_api_websockets = %v, want 1 (the live client)", got)
	}
	_ = mute.CloseNow()
	cancel()
	if err := <-readDone; err == nil {
		t.Error("the live client's read ended without an error, want the cancellation")
	}
}

// TestWebSocketShutdown checks that Shutdown closes sync WebSockets
// cleanly with 1001 (going away) and waits for them.
func TestWebSocketShutdown(t *testing.T) {
	h := newHarness(t, noLimits)
	c := mustDial(t, h, h.alice.token, "")
	eventually(t, "the WebSocket is open", func() bool { return testutil.ToFloat64(h.srv.m.websockets) == 1 })
	closed := make(chan websocket.StatusCode, 1)
	go func() { closed <- readClose(t, c) }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown = %v", err)
	}
	if got := testutil.ToFloat64(h.srv.m.websockets); got != 0 {
		t.Errorf("parley_api_websockets after Shutdown = %v, want 0", got)
	}
	if got := <-closed; got != websocket.StatusGoingAway {
		t.Errorf("close status on shutdown = %v, want %v", got, websocket.StatusGoingAway)
	}
	if _, status, err := dialWS(t, h, h.alice.token, "", nil); err == nil || status != 503 {
		t.Errorf("dial after Shutdown = %d, %v, want 503", status, err)
	}
}

// TestWebSocketMailboxFailure checks that a failing mailbox closes the
// WebSocket with 1011 and logs the cause.
func TestWebSocketMailboxFailure(t *testing.T) {
	h := newHarness(t, noLimits)
	c := mustDial(t, h, h.alice.token, "")
	eventually(t, "the WebSocket waits", func() bool { return slices.Contains(h.fake.Calls(), call{"Wait", h.alice.id}) })
	h.fake.Fail(errors.New("mailbox on fire"))
	h.fake.addEvent(h.bob.id, Event{Kind: EventMessage, Time: t0, Envelope: []byte{1}}) // wakes the waiter
	if got := readClose(t, c); got != websocket.StatusInternalError {
		t.Errorf("close status = %v, want %v", got, websocket.StatusInternalError)
	}
	if !strings.Contains(h.logs.String(), "mailbox on fire") {
		t.Errorf("log = %q, want the cause", h.logs.String())
	}
}

func TestMarshalEventRefusesBrokenEvents(t *testing.T) {
	for _, ev := range []Event{
		{Pos: 1, Kind: EventMessage},
		{Pos: 1, Kind: EventPaired},
		{Pos: 1, Kind: EventRoomClosed, By: "them"},
		{Pos: 1, Kind: "typing"},
	} {
		if _, err := marshalEvent(&ev); err == nil {
			t.Errorf("marshalEvent(%+v) = nil error, want one", ev)
		}
	}
	b, err := marshalEvent(&Event{Pos: 5, Kind: EventRoomClosed, By: ClosedByPartner, Time: t0})
	want := fmt.Sprintf(`{"pos":5,"kind":"room_closed","room":"%s","time":"%s","by":"partner"}`, (&Event{}).Room, t0Text)
	if err != nil || string(b) != want {
		t.Errorf("marshalEvent(room_closed) = %s, %v, want %s", b, err, want)
	}
}
