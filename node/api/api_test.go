package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/parley-chat/parley/node/internal/fakeclock"
	"github.com/parley-chat/parley/protocol/envelope"
	"github.com/parley-chat/parley/protocol/keys"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func accountObj(u *user) map[string]any {
	return map[string]any{"id": u.id.String(), "username": u.name, "created": t0Text, "suspended": false}
}

func sideObj(h *harness, k keys.TicketKeys) map[string]any {
	p := k.Public()
	return map[string]any{"sign": p.Sign.String(), "dh": p.DH.String(), "home": h.fake.node.Public().String()}
}

// TestHappyPaths calls every endpoint once as a client following the spec
// would, and compares each answer with the shape spec 09 gives.
func TestHappyPaths(t *testing.T) {
	tests := []struct {
		name string
		// run prepares the harness and returns the request and what the
		// answer must be ("" body: none).
		run       func(h *harness) (q request, wantStatus int, wantBody string)
		wantCalls func(h *harness) []call
	}{
		{
			name: "health", // spec 09 §8
			run: func(h *harness) (request, int, string) {
				return request{method: "GET", path: "/v1/health"}, 200, mustJSON(t, map[string]any{
					"node": h.fake.node.Public().String(), "version": "v0.0.0-test", "network": "parley-test"})
			},
		},
		{
			name: "register", // spec 09 §3
			run: func(h *harness) (request, int, string) {
				d := newUser(t, "dave")
				body := mustJSON(t, map[string]any{"username": "dave", "identity_key": d.id.String(), "invite": "inv-1"})
				return request{method: "POST", path: "/v1/register", body: body}, 201, mustJSON(t, map[string]any{"account": accountObj(d)})
			},
			wantCalls: func(h *harness) []call { return []call{{"Register", newUser(t, "dave").id}} },
		},
		{
			name: "register without invite",
			run: func(h *harness) (request, int, string) {
				d := newUser(t, "d.a-v_e9")
				body := mustJSON(t, map[string]any{"username": "d.a-v_e9", "identity_key": d.id.String()})
				return request{method: "POST", path: "/v1/register", body: body, contentType: "application/json; charset=UTF-8"}, 201, mustJSON(t, map[string]any{"account": accountObj(d)})
			},
			wantCalls: func(h *harness) []call { return []call{{"Register", newUser(t, "d.a-v_e9").id}} },
		},
		{
			name: "login challenge", // spec 09 §3
			run: func(h *harness) (request, int, string) {
				return request{method: "POST", path: "/v1/login/challenge", body: `{"username":"nobody"}`}, 200, mustJSON(t, map[string]any{
					"nonce":    b64.EncodeToString(bytes.Repeat([]byte{7}, 32)),
					"audience": h.fake.node.Public().String(),
					"expires":  "2026-01-02T03:06:05.678Z",
				})
			},
			wantCalls: func(h *harness) []call { return []call{{Method: "Challenge"}} },
		},
		{
			name: "login", // spec 09 §3
			run: func(h *harness) (request, int, string) {
				nonce := bytes.Repeat([]byte{7}, 32)
				sig := h.alice.key.Sign("fake-login", nonce)
				body := mustJSON(t, map[string]any{"username": "alice", "nonce": b64.EncodeToString(nonce), "signature": b64.EncodeToString(sig[:])})
				return request{method: "POST", path: "/v1/login", body: body}, 200, mustJSON(t, map[string]any{
					"token": h.alice.token, "expires": "2026-01-03T03:04:05.678Z", "account": accountObj(h.alice)})
			},
			wantCalls: func(h *harness) []call { return []call{{Method: "Login"}} },
		},
		{
			name: "logout", // spec 09 §3
			run: func(h *harness) (request, int, string) {
				return request{method: "POST", path: "/v1/logout", token: h.alice.token}, 204, ""
			},
			wantCalls: func(h *harness) []call { return []call{{"Revoke", h.alice.id}} },
		},
		{
			name: "account", // spec 09 §3
			run: func(h *harness) (request, int, string) {
				return request{method: "GET", path: "/v1/account", token: h.alice.token}, 200, mustJSON(t, map[string]any{"account": accountObj(h.alice)})
			},
		},
		{
			name: "pair", // spec 09 §4
			run: func(h *harness) (request, int, string) {
				k, _ := keys.GenerateTicketKeys(strings.NewReader(strings.Repeat("k", 64)))
				p := k.Public()
				tag := b64.EncodeToString(bytes.Repeat([]byte{1}, 16))
				body := mustJSON(t, map[string]any{"ticket": map[string]any{"sign": p.Sign.String(), "dh": p.DH.String()}, "interests": []string{tag}, "avoid": []string{tag, tag}})
				return request{method: "POST", path: "/v1/pair", token: h.alice.token, body: body}, 202, mustJSON(t, map[string]any{
					"ticket_id": b64.EncodeToString(p.Sign[:]), "epoch": 42, "epoch_ends": "2026-01-02T03:04:35.678Z"})
			},
			wantCalls: func(h *harness) []call { return []call{{"RequestTicket", h.alice.id}} },
		},
		{
			name: "pair without tags",
			run: func(h *harness) (request, int, string) {
				k, _ := keys.GenerateTicketKeys(strings.NewReader(strings.Repeat("k", 64)))
				p := k.Public()
				body := mustJSON(t, map[string]any{"ticket": map[string]any{"sign": p.Sign.String(), "dh": p.DH.String()}})
				return request{method: "POST", path: "/v1/pair", token: h.alice.token, body: body}, 202, mustJSON(t, map[string]any{
					"ticket_id": b64.EncodeToString(p.Sign[:]), "epoch": 42, "epoch_ends": "2026-01-02T03:04:35.678Z"})
			},
			wantCalls: func(h *harness) []call { return []call{{"RequestTicket", h.alice.id}} },
		},
		{
			name: "withdraw", // spec 09 §4
			run: func(h *harness) (request, int, string) {
				return request{method: "DELETE", path: "/v1/pair", token: h.alice.token}, 204, ""
			},
			wantCalls: func(h *harness) []call { return []call{{"Withdraw", h.alice.id}} },
		},
		{
			name: "rooms", // spec 09 §5
			run: func(h *harness) (request, int, string) {
				return request{method: "GET", path: "/v1/rooms", token: h.alice.token}, 200, mustJSON(t, map[string]any{"rooms": []any{map[string]any{
					"id": h.room.id.String(), "me": sideObj(h, h.room.tickets[0]), "partner": sideObj(h, h.room.tickets[1]), "created": t0Text}}})
			},
			wantCalls: func(h *harness) []call { return []call{{"ForAccount", h.alice.id}} },
		},
		{
			name: "rooms when none",
			run: func(h *harness) (request, int, string) {
				return request{method: "GET", path: "/v1/rooms", token: h.carol.token}, 200, `{"rooms":[]}`
			},
			wantCalls: func(h *harness) []call { return []call{{"ForAccount", h.carol.id}} },
		},
		{
			name: "send", // spec 09 §5
			run: func(h *harness) (request, int, string) {
				e, enc := sealed(t, h.room, 0, 1, t0.Add(-time.Minute))
				id := e.ID()
				// The fake stamps at t0 as one batch, as the node would.
				stamped := *e
				if err := envelope.StampBatch(h.fake.node, t0, []*envelope.Envelope{&stamped}); err != nil {
					t.Fatal(err)
				}
				return request{method: "POST", path: "/v1/rooms/" + h.room.id.String() + "/messages", token: h.alice.token,
						body: mustJSON(t, map[string]any{"txid": "tx-1", "envelope": enc})}, 200, mustJSON(t, map[string]any{
						"id": b64.EncodeToString(id[:]), "stamp": stampB64(t, *stamped.Stamp), "duplicate": false})
			},
			wantCalls: func(h *harness) []call { return []call{{"Send", h.alice.id}} },
		},
		{
			name: "leave", // spec 09 §5
			run: func(h *harness) (request, int, string) {
				return request{method: "POST", path: "/v1/rooms/" + h.room.id.String() + "/leave", token: h.bob.token}, 204, ""
			},
			wantCalls: func(h *harness) []call { return []call{{"Leave", h.bob.id}} },
		},
		{
			name: "sync", // spec 09 §6
			run: func(h *harness) (request, int, string) {
				h.fake.addEvent(h.alice.id, Event{Kind: EventMessage, Room: h.room.id, Time: t0, Envelope: []byte{1, 2, 3}})
				h.fake.addEvent(h.alice.id, Event{Kind: EventPaired, Room: h.room.id, Time: t0, Paired: ptr(h.fake.view(h.room, 0))})
				h.fake.addEvent(h.alice.id, Event{Kind: EventRoomClosed, Room: h.room.id, Time: t0, By: ClosedByPartner})
				room := map[string]any{"id": h.room.id.String(), "me": sideObj(h, h.room.tickets[0]), "partner": sideObj(h, h.room.tickets[1]), "created": t0Text}
				return request{method: "GET", path: "/v1/sync?after=0", token: h.alice.token}, 200, mustJSON(t, map[string]any{
					"events": []any{
						map[string]any{"pos": 10, "kind": "message", "room": h.room.id.String(), "time": t0Text, "envelope": "AQID"},
						map[string]any{"pos": 20, "kind": "paired", "room": h.room.id.String(), "time": t0Text, "room_info": room},
						map[string]any{"pos": 30, "kind": "room_closed", "room": h.room.id.String(), "time": t0Text, "by": "partner"},
					},
					"next": 30,
				})
			},
			wantCalls: func(h *harness) []call { return []call{{"Read", h.alice.id}} },
		},
		{
			name: "sync with nothing",
			run: func(h *harness) (request, int, string) {
				return request{method: "GET", path: "/v1/sync?after=77&wait=0", token: h.alice.token}, 200, `{"events":[],"next":77}`
			},
			wantCalls: func(h *harness) []call { return []call{{"Read", h.alice.id}} },
		},
		{
			name: "ack", // spec 09 §6
			run: func(h *harness) (request, int, string) {
				return request{method: "POST", path: "/v1/ack", token: h.alice.token, body: `{"upto": 18446744073709551615}`}, 204, ""
			},
			wantCalls: func(h *harness) []call { return []call{{"Ack 18446744073709551615", h.alice.id}} },
		},
		{
			name: "report", // spec 09 §7
			run: func(h *harness) (request, int, string) {
				body := mustJSON(t, map[string]any{"disclosure": reportOf(t, h.fake, h.room, "spam")})
				return request{method: "POST", path: "/v1/reports", token: h.bob.token, body: body}, 202, mustJSON(t, map[string]any{
					"report_id": b64.EncodeToString(bytes.Repeat([]byte{9}, 32)), "received": t0Text})
			},
			wantCalls: func(h *harness) []call { return []call{{"Submit", h.bob.id}} },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil)
			q, wantStatus, wantBody := tt.run(h)
			status, hdr, body := h.do(q)
			if status != wantStatus {
				t.Fatalf("%s %s = %d %s, want %d", q.method, q.path, status, body, wantStatus)
			}
			if wantBody == "" {
				if len(body) != 0 {
					t.Errorf("%s %s body = %q, want none", q.method, q.path, body)
				}
			} else {
				if !jsonEqual(body, []byte(wantBody)) {
					t.Errorf("%s %s body = %s, want %s", q.method, q.path, body, wantBody)
				}
				if ct := hdr.Get("Content-Type"); ct != "application/json; charset=utf-8" {
					t.Errorf("%s %s Content-Type = %q, want application/json; charset=utf-8", q.method, q.path, ct)
				}
			}
			if cc := hdr.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("%s %s Cache-Control = %q, want no-store", q.method, q.path, cc)
			}
			var want []call
			if tt.wantCalls != nil {
				want = tt.wantCalls(h)
			}
			if got := h.fake.Calls(); !slices.Equal(got, want) {
				t.Errorf("%s %s calls = %v, want %v", q.method, q.path, got, want)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestSendIdempotent checks that a retry with the same txid answers as the
// first send with "duplicate": true and delivers nothing more (spec 09 §5).
func TestSendIdempotent(t *testing.T) {
	h := newHarness(t, nil)
	_, enc := sealed(t, h.room, 0, 1, t0)
	q := request{method: "POST", path: "/v1/rooms/" + h.room.id.String() + "/messages", token: h.alice.token,
		body: mustJSON(t, map[string]any{"txid": "tx-1", "envelope": enc})}
	status, _, first := h.do(q)
	if status != 200 {
		t.Fatalf("send = %d %s, want 200", status, first)
	}
	status, _, second := h.do(q)
	if status != 200 {
		t.Fatalf("retry = %d %s, want 200", status, second)
	}
	want := bytes.Replace(first, []byte(`"duplicate":false`), []byte(`"duplicate":true`), 1)
	if !jsonEqual(second, want) {
		t.Errorf("retry body = %s, want %s", second, want)
	}
	if n := len(h.fake.mailboxOf(h.bob.id)); n != 1 {
		t.Errorf("bob's mailbox holds %d events, want 1", n)
	}
}

// TestLogoutRevokes checks that a token stops working after logout.
func TestLogoutRevokes(t *testing.T) {
	h := newHarness(t, nil)
	if status, _, body := h.do(request{method: "POST", path: "/v1/logout", token: h.alice.token}); status != 204 {
		t.Fatalf("logout = %d %s, want 204", status, body)
	}
	status, _, body := h.do(request{method: "GET", path: "/v1/account", token: h.alice.token})
	if status != 401 || errorCode(body) != "unauthenticated" {
		t.Errorf("account after logout = %d %s, want 401 unauthenticated", status, body)
	}
}

// TestErrorMapping checks that each domain error of a subsystem reaches
// the client as its status and stable code (spec 09 §2), and that
// anything else is 500 internal with the cause logged, never sent.
func TestErrorMapping(t *testing.T) {
	tests := []struct {
		name        string
		fail        error // the fake fails every call with this, if not nil
		q           func(h *harness) request
		wantStatus  int
		wantCode    string
		wantMessage string // a substring of the message, if not ""
	}{
		{
			name: "username taken",
			q: func(h *harness) request {
				return request{method: "POST", path: "/v1/register", body: mustJSON(t, map[string]any{"username": "alice", "identity_key": newUser(t, "x").id.String()})}
			},
			wantStatus: 409, wantCode: "username_taken",
		},
		{
			name: "key taken",
			q: func(h *harness) request {
				return request{method: "POST", path: "/v1/register", body: mustJSON(t, map[string]any{"username": "xavier", "identity_key": h.alice.id.String()})}
			},
			wantStatus: 409, wantCode: "key_taken",
		},
		{
			name: "bad invite",
			q: func(h *harness) request {
				return request{method: "POST", path: "/v1/register", body: mustJSON(t, map[string]any{"username": "xavier", "identity_key": newUser(t, "x").id.String(), "invite": "bad"})}
			},
			wantStatus: 403, wantCode: "bad_invite",
		},
		{
			name: "registration closed",
			fail: fmt.Errorf("%w: mode closed", ErrRegistrationClosed),
			q: func(h *harness) request {
				return request{method: "POST", path: "/v1/register", body: mustJSON(t, map[string]any{"username": "xavier", "identity_key": newUser(t, "x").id.String()})}
			},
			wantStatus: 403, wantCode: "registration_closed",
		},
		{
			name: "failed login", // spec 09 §3: 401 without saying why
			q: func(h *harness) request {
				body := mustJSON(t, map[string]any{"username": "alice", "nonce": b64.EncodeToString(make([]byte, 32)), "signature": b64.EncodeToString(make([]byte, 64))})
				return request{method: "POST", path: "/v1/login", body: body}
			},
			wantStatus: 401, wantCode: "unauthenticated", wantMessage: "unauthenticated",
		},
		{
			name: "already waiting", // spec 09 §4
			q: func(h *harness) request {
				k, _ := keys.GenerateTicketKeys(strings.NewReader(strings.Repeat("k", 64)))
				h.fake.waiting[h.alice.id] = true
				return request{method: "POST", path: "/v1/pair", token: h.alice.token, body: mustJSON(t, map[string]any{"ticket": map[string]any{"sign": k.Public().Sign.String(), "dh": k.Public().DH.String()}})}
			},
			wantStatus: 409, wantCode: "already_waiting",
		},
		{
			name: "room closed", // spec 09 §5
			q: func(h *harness) request {
				h.room.closed = true
				_, enc := sealed(t, h.room, 0, 1, t0)
				return request{method: "POST", path: "/v1/rooms/" + h.room.id.String() + "/messages", token: h.alice.token, body: mustJSON(t, map[string]any{"txid": "a", "envelope": enc})}
			},
			wantStatus: 409, wantCode: "room_closed",
		},
		{
			name: "wrong tickets", // spec 09 §5: the Sender checks sender and recipient
			q: func(h *harness) request {
				_, enc := sealed(t, h.room, 1, 1, t0) // bob's ticket as sender, sent by alice
				return request{method: "POST", path: "/v1/rooms/" + h.room.id.String() + "/messages", token: h.alice.token, body: mustJSON(t, map[string]any{"txid": "a", "envelope": enc})}
			},
			wantStatus: 400, wantCode: "bad_envelope",
		},
		{
			name: "disclosure does not verify", // spec 09 §7: the message names the check
			q: func(h *harness) request {
				return request{method: "POST", path: "/v1/reports", token: h.bob.token, body: mustJSON(t, map[string]any{"disclosure": reportOf(t, h.fake, h.room, "reject")})}
			},
			wantStatus: 400, wantCode: "bad_disclosure", wantMessage: "bad_stamp",
		},
		{
			name: "busy",
			fail: fmt.Errorf("relay: queue full: %w", ErrBusy),
			q: func(h *harness) request {
				return request{method: "POST", path: "/v1/login/challenge", body: `{"username":"alice"}`}
			},
			wantStatus: 503, wantCode: "unavailable",
		},
		{
			name: "internal",
			fail: errors.New("disk on fire at /var/secret"),
			q: func(h *harness) request {
				return request{method: "POST", path: "/v1/login/challenge", body: `{"username":"alice"}`}
			},
			wantStatus: 500, wantCode: "internal",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil)
			q := tt.q(h)
			if tt.fail != nil {
				h.fake.Fail(tt.fail)
			}
			status, _, body := h.do(q)
			if status != tt.wantStatus || errorCode(body) != tt.wantCode {
				t.Fatalf("%s %s = %d %s, want %d %s", q.method, q.path, status, body, tt.wantStatus, tt.wantCode)
			}
			if tt.wantMessage != "" && !bytes.Contains(body, []byte(tt.wantMessage)) {
				t.Errorf("%s %s body = %s, want a message with %q", q.method, q.path, body, tt.wantMessage)
			}
			if bytes.Contains(body, []byte("fake")) || bytes.Contains(body, []byte("secret")) {
				t.Errorf("%s %s body = %s: leaks the cause", q.method, q.path, body)
			}
		})
	}
	t.Run("internal cause is logged", func(t *testing.T) {
		h := newHarness(t, nil)
		h.fake.Fail(errors.New("disk on fire"))
		h.do(request{method: "POST", path: "/v1/login/challenge", body: `{"username":"alice"}`})
		if logs := h.logs.String(); !strings.Contains(logs, "disk on fire") || !strings.Contains(logs, "level=ERROR") {
			t.Errorf("log = %q, want the cause at ERROR", logs)
		}
	})
}

// TestSuspended checks that a suspended account gets 403 suspended on
// pairing and sending, and only there (spec 09 §1).
func TestSuspended(t *testing.T) {
	h := newHarness(t, nil)
	h.fake.addUser(h.alice, true)
	k, _ := keys.GenerateTicketKeys(strings.NewReader(strings.Repeat("k", 64)))
	_, enc := sealed(t, h.room, 0, 1, t0)
	tests := []struct {
		q          request
		wantStatus int
	}{
		{request{method: "POST", path: "/v1/pair", body: mustJSON(t, map[string]any{"ticket": map[string]any{"sign": k.Public().Sign.String(), "dh": k.Public().DH.String()}})}, 403},
		{request{method: "POST", path: "/v1/rooms/" + h.room.id.String() + "/messages", body: mustJSON(t, map[string]any{"txid": "a", "envelope": enc})}, 403},
		{request{method: "GET", path: "/v1/account"}, 200},
		{request{method: "GET", path: "/v1/rooms"}, 200},
		{request{method: "GET", path: "/v1/sync"}, 200},
		{request{method: "POST", path: "/v1/ack", body: `{"upto":1}`}, 204},
		{request{method: "DELETE", path: "/v1/pair"}, 204},
		{request{method: "POST", path: "/v1/rooms/" + h.room.id.String() + "/leave"}, 204},
		{request{method: "POST", path: "/v1/reports", body: mustJSON(t, map[string]any{"disclosure": reportOf(t, h.fake, h.room, "x")})}, 202},
		{request{method: "POST", path: "/v1/logout"}, 204},
	}
	for _, tt := range tests {
		tt.q.token = h.alice.token
		h.fake.ResetCalls()
		status, _, body := h.do(tt.q)
		if status != tt.wantStatus {
			t.Errorf("%s %s (suspended) = %d %s, want %d", tt.q.method, tt.q.path, status, body, tt.wantStatus)
		}
		if status == 403 {
			if errorCode(body) != "suspended" {
				t.Errorf("%s %s (suspended) code = %q, want suspended", tt.q.method, tt.q.path, errorCode(body))
			}
			if calls := h.fake.Calls(); len(calls) != 0 {
				t.Errorf("%s %s (suspended) calls = %v, want none", tt.q.method, tt.q.path, calls)
			}
		}
	}
}

// TestAuthorisation checks that carol's token cannot read, ack, send to or
// leave the room of alice and bob, gets 404 not_found exactly as for a room
// that does not exist, and that no subsystem is ever called with alice's or
// bob's account on carol's behalf (spec 09 §1, DESIGN §4).
func TestAuthorisation(t *testing.T) {
	h := newHarness(t, nil)
	h.fake.addEvent(h.alice.id, Event{Kind: EventMessage, Room: h.room.id, Time: t0, Envelope: []byte("for alice")})
	_, enc := sealed(t, h.room, 0, 1, t0)
	var nowhere keys.RoomID
	nowhere[0] = 1
	tests := []struct {
		name       string
		q          request
		wantStatus int
		wantCode   string
		wantBody   string
	}{
		{"send to their room", request{method: "POST", path: "/v1/rooms/" + h.room.id.String() + "/messages", body: mustJSON(t, map[string]any{"txid": "a", "envelope": enc})}, 404, "not_found", ""},
		{"leave their room", request{method: "POST", path: "/v1/rooms/" + h.room.id.String() + "/leave"}, 404, "not_found", ""},
		{"leave a room that does not exist", request{method: "POST", path: "/v1/rooms/" + nowhere.String() + "/leave"}, 404, "not_found", ""},
		{"read: own mailbox only", request{method: "GET", path: "/v1/sync?after=0"}, 200, "", `{"events":[],"next":0}`},
		{"list: own rooms only", request{method: "GET", path: "/v1/rooms"}, 200, "", `{"rooms":[]}`},
		{"ack: own mailbox only", request{method: "POST", path: "/v1/ack", body: `{"upto":1000}`}, 204, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.q.token = h.carol.token
			h.fake.ResetCalls()
			status, _, body := h.do(tt.q)
			if status != tt.wantStatus || errorCode(body) != tt.wantCode {
				t.Fatalf("%s %s as carol = %d %s, want %d %s", tt.q.method, tt.q.path, status, body, tt.wantStatus, tt.wantCode)
			}
			if tt.wantBody != "" && !jsonEqual(body, []byte(tt.wantBody)) {
				t.Errorf("%s %s as carol body = %s, want %s", tt.q.method, tt.q.path, body, tt.wantBody)
			}
			for _, c := range h.fake.Calls() {
				if c.Acct != h.carol.id {
					t.Errorf("%s %s as carol called %v, want only calls for carol", tt.q.method, tt.q.path, c)
				}
			}
		})
	}
	if evs := h.fake.mailboxOf(h.alice.id); len(evs) != 1 {
		t.Errorf("alice's mailbox after carol's requests holds %d events, want 1", len(evs))
	}
	if h.room.closed {
		t.Error("alice and bob's room was closed by carol")
	}
	if evs := h.fake.mailboxOf(h.bob.id); len(evs) != 0 {
		t.Errorf("bob's mailbox holds %d events after carol's send, want 0", len(evs))
	}
}

// TestRateLimits checks 429 rate_limited with a Retry-After of whole
// seconds, at least 1, for both scopes (spec 09 §1), with the built-in
// token buckets and the clock.
func TestRateLimits(t *testing.T) {
	tests := []struct {
		name           string
		edit           func(*Config, *Deps)
		q              func(h *harness) request
		allowed        int
		wantRetryAfter string
		wantScope      string
		refill         time.Duration // after this, one more request passes
	}{
		{
			name: "ip",
			edit: func(c *Config, _ *Deps) { c.IPRate = Rate{PerSecond: 0.5, Burst: 3} },
			q: func(h *harness) request {
				return request{method: "GET", path: "/v1/health"}
			},
			allowed: 3, wantRetryAfter: "2", wantScope: "ip", refill: 2 * time.Second,
		},
		{
			name: "account",
			edit: func(c *Config, _ *Deps) { c.AccountRate = Rate{PerSecond: 4, Burst: 2} },
			q: func(h *harness) request {
				return request{method: "GET", path: "/v1/account", token: h.alice.token}
			},
			allowed: 2, wantRetryAfter: "1", wantScope: "account", refill: 250 * time.Millisecond,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.edit)
			q := tt.q(h)
			for i := range tt.allowed {
				if status, _, body := h.do(q); status != 200 {
					t.Fatalf("request %d = %d %s, want 200", i, status, body)
				}
			}
			status, hdr, body := h.do(q)
			if status != 429 || errorCode(body) != "rate_limited" || hdr.Get("Retry-After") != tt.wantRetryAfter {
				t.Fatalf("request over the limit = %d %s Retry-After %q, want 429 rate_limited Retry-After %q", status, body, hdr.Get("Retry-After"), tt.wantRetryAfter)
			}
			if got := testutil.ToFloat64(h.srv.m.rateLimited.WithLabelValues(tt.wantScope)); got != 1 {
				t.Errorf("parley_api_rate_limited_total{scope=%q} = %v, want 1", tt.wantScope, got)
			}
			h.clock.Advance(tt.refill)
			if status, _, body := h.do(q); status != 200 {
				t.Errorf("request after %v = %d %s, want 200", tt.refill, status, body)
			}
		})
	}
	t.Run("other accounts are not limited", func(t *testing.T) {
		h := newHarness(t, func(c *Config, d *Deps) { d.AccountLimiter = &fakeLimiter{n: 1, retryAfter: 1500 * time.Millisecond} })
		h.do(request{method: "GET", path: "/v1/account", token: h.alice.token})
		status, hdr, _ := h.do(request{method: "GET", path: "/v1/account", token: h.alice.token})
		if status != 429 || hdr.Get("Retry-After") != "2" {
			t.Errorf("alice's second request = %d Retry-After %q, want 429 Retry-After 2", status, hdr.Get("Retry-After"))
		}
		if status, _, _ := h.do(request{method: "GET", path: "/v1/account", token: h.bob.token}); status != 200 {
			t.Errorf("bob's first request = %d, want 200", status)
		}
	})
	t.Run("sub-second retry rounds up to 1", func(t *testing.T) {
		h := newHarness(t, func(c *Config, d *Deps) { d.IPLimiter = &fakeLimiter{n: 0, retryAfter: time.Nanosecond} })
		status, hdr, _ := h.do(request{method: "GET", path: "/v1/health"})
		if status != 429 || hdr.Get("Retry-After") != "1" {
			t.Errorf("limited request = %d Retry-After %q, want 429 Retry-After 1", status, hdr.Get("Retry-After"))
		}
	})
}

func TestClientKey(t *testing.T) {
	tests := []struct {
		remote string
		xff    []string
		trust  bool
		want   string
	}{
		{"192.0.2.1:1234", nil, false, "192.0.2.1"},
		{"192.0.2.1:1234", []string{"198.51.100.7"}, false, "192.0.2.1"},
		{"192.0.2.1:1234", []string{"203.0.113.9, 198.51.100.7"}, true, "198.51.100.7"},
		{"192.0.2.1:1234", []string{"1.1.1.1", "203.0.113.9,198.51.100.7"}, true, "198.51.100.7"},
		{"192.0.2.1:1234", []string{"garbage"}, true, "192.0.2.1"},
		{"[2001:db8:1:2:3:4:5:6]:443", nil, false, "2001:db8:1:2::/64"},
		{"[::ffff:192.0.2.1]:80", nil, false, "192.0.2.1"},
		{"pipe", nil, false, "pipe"},
	}
	for _, tt := range tests {
		r, _ := http.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = tt.remote
		for _, v := range tt.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := clientKey(r, tt.trust); got != tt.want {
			t.Errorf("clientKey(%s, %q, trust=%v) = %q, want %q", tt.remote, tt.xff, tt.trust, got, tt.want)
		}
	}
}

func TestBucketsEvict(t *testing.T) {
	clock := fakeclock.New(t0)
	b := newBuckets(Rate{PerSecond: 1, Burst: 1}, 4, clock.Now)
	for i := range 4 {
		if ok, _ := b.Allow(fmt.Sprint(i)); !ok {
			t.Fatalf("Allow(%d) = false, want true", i)
		}
	}
	if ok, _ := b.Allow("4"); !ok {
		t.Fatal("Allow(4) on a full map = false, want true")
	}
	if n := len(b.m); n > 4 {
		t.Errorf("buckets hold %d keys, want at most 4", n)
	}
	clock.Advance(time.Second)
	for i := range 100 {
		b.Allow(fmt.Sprint("k", i))
	}
	if n := len(b.m); n > 4 {
		t.Errorf("buckets hold %d keys, want at most 4", n)
	}
}

// TestMetrics checks the request counter, the histogram and the lint of
// every metric.
func TestMetrics(t *testing.T) {
	h := newHarness(t, nil)
	h.do(request{method: "GET", path: "/v1/health"})
	h.do(request{method: "GET", path: "/v1/health"})
	h.do(request{method: "GET", path: "/v1/account"})
	h.do(request{method: "GET", path: "/nope/" + h.alice.id.String()})
	tests := []struct {
		route, code string
		want        float64
	}{
		{"GET /v1/health", "200", 2},
		{"GET /v1/account", "401", 1},
		{routeUnmatched, "404", 1},
	}
	for _, tt := range tests {
		if got := testutil.ToFloat64(h.srv.m.requests.WithLabelValues(tt.route, tt.code)); got != tt.want {
			t.Errorf("parley_api_requests_total{route=%q,code=%q} = %v, want %v", tt.route, tt.code, got, tt.want)
		}
	}
	if n := testutil.CollectAndCount(h.srv.m.duration); n != 3 {
		t.Errorf("parley_api_request_duration_seconds has %d series, want 3", n)
	}
	problems, err := testutil.GatherAndLint(h.reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("metric lint: %s: %s", p.Metric, p.Text)
	}
}

// TestLogsHoldNoSecrets checks that tokens never reach the log, even at
// debug level, on success and on failure.
func TestLogsHoldNoSecrets(t *testing.T) {
	h := newHarness(t, nil)
	nonce := bytes.Repeat([]byte{7}, 32)
	sig := h.alice.key.Sign("fake-login", nonce)
	h.do(request{method: "POST", path: "/v1/login", body: mustJSON(t, map[string]any{"username": "alice", "nonce": b64.EncodeToString(nonce), "signature": b64.EncodeToString(sig[:])})})
	h.do(request{method: "GET", path: "/v1/account", token: h.alice.token})
	h.do(request{method: "GET", path: "/v1/account", token: "pt_wrong_secret"})
	h.do(request{method: "POST", path: "/v1/logout", token: h.alice.token})
	logs := h.logs.String()
	for _, secret := range []string{h.alice.token, "pt_wrong_secret", b64.EncodeToString(sig[:])} {
		if strings.Contains(logs, secret) {
			t.Errorf("log holds %q:\n%s", secret, logs)
		}
	}
	if !strings.Contains(logs, "subsystem=api") || !strings.Contains(logs, `route="GET /v1/account"`) {
		t.Errorf("log = %q, want request lines with subsystem=api and the route", logs)
	}
}

func TestConfigValidate(t *testing.T) {
	nk, _ := keys.GenerateNodeKey(strings.NewReader(strings.Repeat("n", 32)))
	good := Config{NodeID: nk.Public().String(), Network: "n"}
	tests := []struct {
		name string
		edit func(*Config)
		want []string // substrings of the error; none: valid
	}{
		{"defaults", func(*Config) {}, nil},
		{"nothing", func(c *Config) { *c = Config{} }, []string{"node ID is required", "network is required"}},
		{"bad node ID", func(c *Config) { c.NodeID = "acct_x" }, []string{"node ID"}},
		{"negatives", func(c *Config) { c.MaxBodyBytes = -1; c.SyncMaxWait = -1; c.MaxWebSockets = -1 },
			[]string{"max_body_bytes", "sync_max_wait", "max_websockets"}},
		{"limits", func(c *Config) { c.SyncDefaultLimit = 2000 }, []string{"sync_default_limit"}},
		{"rates", func(c *Config) { c.AccountRate = Rate{PerSecond: -1}; c.IPRate = Rate{PerSecond: 1} },
			[]string{"account_rate.per_second", "account_rate.burst", "ip_rate.burst"}},
		{"sockets", func(c *Config) { c.WebSocketsPerAccount = 5; c.MaxWebSockets = 2 }, []string{"websockets_per_account"}},
	}
	for _, tt := range tests {
		c := good
		tt.edit(&c)
		err := c.Validate()
		if len(tt.want) == 0 {
			if err != nil {
				t.Errorf("%s: Validate() = %v, want nil", tt.name, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: Validate() = nil, want errors about %q", tt.name, tt.want)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: Validate() = %v, want it to mention %q", tt.name, err, w)
			}
		}
	}
	if d := DefaultConfig(); d.MaxBodyBytes != 64<<10 || d.MaxMessageBodyBytes != 128<<10 || d.MaxReportBodyBytes != 4<<20 ||
		d.SyncMaxWait != 60*time.Second || d.SyncDefaultLimit != 100 || d.SyncMaxLimit != 1000 || d.WebSocketPingInterval != 30*time.Second ||
		d.AccountRate != (Rate{20, 40}) || d.IPRate != (Rate{50, 100}) || d.TrustProxyHeaders {
		t.Errorf("DefaultConfig() = %+v, want the documented defaults", d)
	}
}

func TestNewRequiresDeps(t *testing.T) {
	_, err := New(Config{}, Deps{})
	if err == nil {
		t.Fatal("New(Config{}, Deps{}) = nil error, want one")
	}
	for _, w := range []string{"node ID is required", "Deps.Accounts", "Deps.Reports"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("New(Config{}, Deps{}) = %v, want it to mention %q", err, w)
		}
	}
	if _, err := New(Config{NodeID: "x"}, Deps{}, WithRegisterer(prometheus.NewRegistry())); err == nil {
		t.Error("New with a bad node ID = nil error, want one")
	}
}

// TestShutdown checks that after Shutdown new requests get 503
// unavailable.
func TestShutdown(t *testing.T) {
	h := newHarness(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown = %v", err)
	}
	status, _, body := h.do(request{method: "GET", path: "/v1/health"})
	if status != 503 || errorCode(body) != "unavailable" {
		t.Errorf("request after Shutdown = %d %s, want 503 unavailable", status, body)
	}
}
