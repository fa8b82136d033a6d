package client_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/client"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/wire"
)

func mustAccountKey(t *testing.T) keys.AccountKey {
	t.Helper()
	k, err := keys.GenerateAccountKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// The low-level client against the fake: every endpoint's happy path. The
// fake decodes strictly (unknown fields, trailing data, media type), so
// these also show the client sends exactly what spec 09 describes.
func TestClientEndpoints(t *testing.T) {
	node, srv := startNode(t)
	ctx := context.Background()
	c := client.New(srv.URL + "/")

	h, err := c.Health(ctx)
	if err != nil || h.Node != node.ID() {
		t.Fatalf("Health() = %+v, %v; want node %v", h, err, node.ID())
	}
	key := mustAccountKey(t)
	acct, err := c.Register(ctx, "alice", key.Public(), "")
	if err != nil || acct.Username != "alice" || acct.ID != key.Public() || acct.Created.IsZero() {
		t.Fatalf("Register() = %+v, %v", acct, err)
	}
	if _, err := c.Account(ctx); !errors.Is(err, client.ErrUnauthenticated) {
		t.Fatalf("Account() before login = %v, want ErrUnauthenticated", err)
	}
	res, err := c.Login(ctx, "alice", key)
	if err != nil || !strings.HasPrefix(res.Token, "pt_") || res.Expires.IsZero() || res.Account.ID != key.Public() {
		t.Fatalf("Login() = %+v, %v", res, err)
	}
	if a, err := c.Account(ctx); err != nil || a.Username != "alice" || a.Suspended {
		t.Fatalf("Account() = %+v, %v", a, err)
	}
	tk, err := keys.GenerateTicketKeys(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tags, _ := client.InterestTags([]string{"go"})
	pt, err := c.Pair(ctx, client.PairRequest{Ticket: tk.Public(), Interests: tags})
	if err != nil || pt.ID == ([32]byte{}) || pt.EpochEnds.IsZero() {
		t.Fatalf("Pair() = %+v, %v", pt, err)
	}
	if _, err := c.Pair(ctx, client.PairRequest{Ticket: tk.Public()}); !errors.Is(err, client.ErrAlreadyWaiting) {
		t.Fatalf("Pair() again = %v, want ErrAlreadyWaiting", err)
	}
	if err := c.Withdraw(ctx); err != nil || node.Waiting("alice") {
		t.Fatalf("Withdraw() = %v, waiting %v", err, node.Waiting("alice"))
	}
	if rooms, err := c.Rooms(ctx); err != nil || len(rooms) != 0 {
		t.Fatalf("Rooms() = %v, %v", rooms, err)
	}
	sr, err := c.Sync(ctx, 0, 10, 0)
	if err != nil || len(sr.Events) != 0 || sr.Next != 0 {
		t.Fatalf("Sync(empty) = %+v, %v", sr, err)
	}
	if err := c.Ack(ctx, 0); err != nil {
		t.Fatalf("Ack(0) = %v", err)
	}
	if err := c.Leave(ctx, keys.RoomID{7}); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("Leave(not a member) = %v, want ErrNotFound", err)
	}
	if err := c.Logout(ctx); err != nil {
		t.Fatal(err)
	}
	c.SetToken(res.Token)
	if _, err := c.Account(ctx); !errors.Is(err, client.ErrUnauthenticated) {
		t.Fatalf("Account() with a revoked token = %v, want ErrUnauthenticated", err)
	}
}

// Error answers map to *APIError and their sentinels.
func TestErrorMapping(t *testing.T) {
	node, srv := startNode(t)
	ctx := context.Background()
	c := client.New(srv.URL)
	key := mustAccountKey(t)
	if _, err := c.Register(ctx, "alice", key.Public(), ""); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		call   func() error
		want   error
		status int
	}{
		{"username taken", func() error { _, err := c.Register(ctx, "alice", mustAccountKey(t).Public(), ""); return err }, client.ErrUsernameTaken, 409},
		{"key taken", func() error { _, err := c.Register(ctx, "alice2", key.Public(), ""); return err }, client.ErrKeyTaken, 409},
		{"bad username", func() error { _, err := c.Register(ctx, "Al", mustAccountKey(t).Public(), ""); return err }, client.ErrBadRequest, 400},
		{"wrong key", func() error { _, err := c.Login(ctx, "alice", mustAccountKey(t)); return err }, client.ErrUnauthenticated, 401},
		{"unknown user", func() error { _, err := c.Login(ctx, "nobody", key); return err }, client.ErrUnauthenticated, 401},
		{"no token", func() error { _, err := c.Rooms(ctx); return err }, client.ErrUnauthenticated, 401},
		{"rate limited", func() error { node.RateLimitNext(1, 7*time.Second); _, err := c.Health(ctx); return err }, client.ErrRateLimited, 429},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			var ae *client.APIError
			if !errors.Is(err, tc.want) || !errors.As(err, &ae) || ae.Status != tc.status {
				t.Fatalf("error = %v, want %v with status %d", err, tc.want, tc.status)
			}
			if errors.Is(tc.want, client.ErrRateLimited) {
				if d, ok := client.RetryAfter(err); !ok || d != 7*time.Second {
					t.Fatalf("RetryAfter() = %v, %v; want 7s", d, ok)
				}
				if !client.Retryable(err) {
					t.Fatal("Retryable(429) = false")
				}
			} else if client.Retryable(err) {
				t.Fatalf("Retryable(%v) = true", err)
			}
		})
	}
}

// Answers that do not follow the API, from a server that is not a Parley
// node or a proxy in the way.
func TestBadAnswers(t *testing.T) {
	for _, tc := range []struct {
		name    string
		status  int
		header  map[string]string
		body    string
		call    func(*client.Client) error
		want    error
		wantMsg string
	}{
		{"error without a body", 503, map[string]string{"Retry-After": "3"}, "", health, client.ErrUnavailable, ""},
		{"error with HTML", 502, nil, "<html>bad gateway</html>", health, client.ErrUnavailable, ""},
		{"unknown code", 418, nil, `{"error":{"code":"teapot","message":"short and stout"}}`, health, nil, "short and stout"},
		{"success that is not JSON", 200, nil, "ok", health, client.ErrBadResponse, ""},
		{"health without node", 200, nil, `{"version":"x"}`, health, client.ErrBadResponse, ""},
		{"redirect", 302, map[string]string{"Location": "http://elsewhere.invalid/"}, "", health, client.ErrBadResponse, ""},
		{"sync positions going back", 200, nil, `{"events":[{"pos":5,"kind":"room_closed","room":"` + keys.RoomID{1}.String() + `","time":"2030-01-01T00:00:00.000Z","by":"me"}],"next":4}`, syncAfter(0), client.ErrBadResponse, ""},
		{"sync event before after", 200, nil, `{"events":[{"pos":1,"kind":"room_closed","room":"` + keys.RoomID{1}.String() + `","time":"2030-01-01T00:00:00.000Z","by":"me"}],"next":1}`, syncAfter(3), client.ErrBadResponse, ""},
		{"sync without next", 200, nil, `{"events":[]}`, syncAfter(0), client.ErrBadResponse, ""},
		{"message without envelope", 200, nil, `{"events":[{"pos":1,"kind":"message","room":"` + keys.RoomID{1}.String() + `","time":"2030-01-01T00:00:00.000Z"}],"next":1}`, syncAfter(0), client.ErrBadResponse, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				for k, v := range tc.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			err := tc.call(client.New(srv.URL))
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("error = %v, want %v containing %q", err, tc.want, tc.wantMsg)
			}
			if tc.status == 503 {
				if d, _ := client.RetryAfter(err); d != 3*time.Second {
					t.Errorf("RetryAfter() = %v, want 3s", d)
				}
			}
		})
	}
}

func health(c *client.Client) error { _, err := c.Health(context.Background()); return err }

func syncAfter(after uint64) func(*client.Client) error {
	return func(c *client.Client) error { _, err := c.Sync(context.Background(), after, 0, 0); return err }
}

func TestBadBaseURL(t *testing.T) {
	for _, u := range []string{"", "ftp://x", "http://", "http://h/?q=1", "::"} {
		if _, err := client.New(u).Health(context.Background()); err == nil || errors.Is(err, client.ErrBadResponse) {
			t.Errorf("New(%q).Health() = %v, want a URL error", u, err)
		}
	}
}

// spec 09 §6 writes a paired event's room as "room": {...}; node/api sends
// the ID in "room" and the room in "room_info". Both decode the same.
func TestSyncEventForms(t *testing.T) {
	id := keys.RoomID{1, 2, 3}
	roomObj := `{"id":"` + id.String() + `","me":{"sign":"` + keys.TicketID{1}.String() + `","dh":"` + keys.DHPublic{2}.String() +
		`","home":"` + keys.NodeID{3}.String() + `"},"partner":{"sign":"` + keys.TicketID{4}.String() + `","dh":"` + keys.DHPublic{5}.String() +
		`","home":"` + keys.NodeID{6}.String() + `"},"created":"2030-01-01T00:00:00.000Z"}`
	for _, tc := range []struct {
		name, json string
	}{
		{"spec", `{"pos":1,"kind":"paired","room":` + roomObj + `,"time":"2030-01-01T00:00:00.000Z"}`},
		{"node/api", `{"pos":1,"kind":"paired","room":"` + id.String() + `","room_info":` + roomObj + `,"time":"2030-01-01T00:00:00.000Z"}`},
	} {
		var ev client.SyncEvent
		if err := json.Unmarshal([]byte(tc.json), &ev); err != nil {
			t.Fatalf("%s: Unmarshal() = %v", tc.name, err)
		}
		if ev.Room != id || ev.RoomInfo == nil || ev.RoomInfo.ID != id || ev.RoomInfo.Partner.Sign != (keys.TicketID{4}) || ev.RoomInfo.Me.Home != (keys.NodeID{3}) {
			t.Errorf("%s: event = %+v", tc.name, ev)
		}
	}
	for _, bad := range []string{
		`{"kind":"paired","room":"` + id.String() + `"}`,
		`{"pos":1,"kind":"paired","room":"` + id.String() + `"}`,
		`{"pos":1,"kind":"room_closed","room":"` + id.String() + `","by":"someone"}`,
		`{"pos":1,"kind":"message","room":"room_x","envelope":"AA=="}`,
		`{"pos":1,"kind":"message","envelope":"AA=="}`,
	} {
		var ev client.SyncEvent
		if err := json.Unmarshal([]byte(bad), &ev); err == nil {
			t.Errorf("Unmarshal(%s) = nil error", bad)
		}
	}
}

// spec 09 §3: the login signature covers u8 1 || string16 audience ||
// string16 username || fixed[32] nonce under parley/v1/account-login.
func TestLoginMessage(t *testing.T) {
	var nonce [32]byte
	for i := range nonce {
		nonce[i] = byte(i)
	}
	got := client.LoginMessage("node", "al", nonce)
	want, _ := hex.DecodeString("01" + "0004" + hex.EncodeToString([]byte("node")) + "0002" + hex.EncodeToString([]byte("al")) + hex.EncodeToString(nonce[:]))
	if !bytes.Equal(got, want) {
		t.Fatalf("LoginMessage() = %x, want %x", got, want)
	}
	key := mustAccountKey(t)
	sig := key.Sign(wire.LabelAccountLogin, got)
	if !key.Public().Verify(wire.LabelAccountLogin, sig, want) {
		t.Fatal("signature over LoginMessage does not verify")
	}
}

// The sync WebSocket delivers events in order and takes acks.
func TestSyncWS(t *testing.T) {
	node, srv := startNode(t)
	alice := newUser(t, srv.URL, "alice", client.Config{})
	bob := newUser(t, srv.URL, "bob", client.Config{})
	ra, rb := pairUsers(t, alice, bob)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := alice.Send(ctx, ra.ID, "over the socket"); err != nil {
		t.Fatal(err)
	}

	c := client.New(srv.URL)
	if _, err := c.SyncWS(ctx, 0); !errors.Is(err, client.ErrUnauthenticated) {
		t.Fatalf("SyncWS(no token) = %v, want ErrUnauthenticated", err)
	}
	c = bob.Client()
	// bob's Pair acknowledged the paired event; the message follows it.
	st, err := c.SyncWS(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close() }()
	ev, err := st.Next(ctx)
	if err != nil || ev.Kind != client.EventMessage || ev.Room != rb.ID || len(ev.Envelope) == 0 {
		t.Fatalf("Next() = %+v, %v", ev, err)
	}
	if err := st.Ack(ctx, ev.Pos); err != nil {
		t.Fatal(err)
	}
	if err := alice.Leave(ctx, ra.ID); err != nil {
		t.Fatal(err)
	}
	ev2, err := st.Next(ctx)
	if err != nil || ev2.Kind != client.EventRoomClosed || ev2.Pos <= ev.Pos || ev2.By != client.ClosedByPartner {
		t.Fatalf("Next() = %+v, %v", ev2, err)
	}
	if err := node.WaitAcked(ctx, "bob", ev.Pos); err != nil {
		t.Fatalf("the ack over the socket never arrived: %v", err)
	}
	if mb := node.Mailbox("bob"); len(mb) != 1 || mb[0] != ev2.Pos {
		t.Fatalf("bob's mailbox = %v, want only %d after the ack", mb, ev2.Pos)
	}
}
