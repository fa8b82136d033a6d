package node_test

import (
	"context"
	"crypto/rand"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/client"
	"github.com/parley-chat/parley/node"
	"github.com/parley-chat/parley/node/admin"
	"github.com/parley-chat/parley/node/nodekey"
	"github.com/parley-chat/parley/protocol/envelope"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/room"
)

// startNode runs a real node in process on loopback and returns its client
// API URL; the node stops when the test ends.
func startNode(t *testing.T) string {
	t.Helper()
	url, _, _ := startNodeOps(t)
	return url
}

// startNodeOps is startNode that also returns the operator listener's URL
// and the admin token.
func startNodeOps(t *testing.T) (clientURL, opURL, adminToken string) {
	t.Helper()
	cfg := node.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.Client.Listen, cfg.Operator.Listen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.P2P.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.Pairing.EpochLength = 100 * time.Millisecond
	if _, err := nodekey.Create(filepath.Join(cfg.DataDir, "node.key"), nil); err != nil {
		t.Fatal(err)
	}
	if err := admin.CreateToken(admin.TokenPath(cfg.DataDir), nil); err != nil {
		t.Fatal(err)
	}
	n, err := node.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	})
	addr, op, err := n.Addrs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := admin.LoadToken(admin.TokenPath(cfg.DataDir))
	if err != nil {
		t.Fatal(err)
	}
	return "http://" + addr, "http://" + op, tok
}

type tuser struct {
	name   string
	key    keys.AccountKey
	token  string
	c      *client.Client
	ticket keys.TicketKeys
	room   *room.Room
	info   *client.Room
	pos    uint64
	txns   int // transactions sent by sendTexts
}

func newTUser(ctx context.Context, t *testing.T, url, name string) *tuser {
	t.Helper()
	k, _ := keys.GenerateAccountKey(rand.Reader)
	c := client.New(url)
	if _, err := c.Register(ctx, name, k.Public(), ""); err != nil {
		t.Fatal(err)
	}
	lr, err := c.Login(ctx, name, k)
	if err != nil {
		t.Fatal(err)
	}
	return &tuser{name: name, key: k, token: lr.Token, c: c}
}

func (u *tuser) pair(ctx context.Context, t *testing.T) {
	t.Helper()
	u.ticket, _ = keys.GenerateTicketKeys(rand.Reader)
	if _, err := u.c.Pair(ctx, client.PairRequest{Ticket: u.ticket.Public()}); err != nil {
		t.Fatal(err)
	}
}

// waitPaired syncs until the paired event arrives and derives the room.
func (u *tuser) waitPaired(ctx context.Context, t *testing.T) {
	t.Helper()
	for u.info == nil {
		res, err := u.c.Sync(ctx, u.pos, 100, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range res.Events {
			if ev.Kind == client.EventPaired {
				u.info = ev.RoomInfo
			}
		}
		u.pos = res.Next
	}
	r, err := room.Derive(u.ticket, u.info.Partner.Public())
	if err != nil || r.ID() != u.info.ID {
		t.Fatalf("Derive = %v, %v; node says room %v", r, err, u.info.ID)
	}
	u.room = r
}

// pairedTrio registers alice, bob and carol on the node at url and pairs
// alice with bob (carol is in no room).
func pairedTrio(ctx context.Context, t *testing.T, url string) (alice, bob, carol *tuser) {
	t.Helper()
	alice, bob, carol = newTUser(ctx, t, url, "alice"), newTUser(ctx, t, url, "bob"), newTUser(ctx, t, url, "carol")
	alice.pair(ctx, t)
	bob.pair(ctx, t)
	alice.waitPaired(ctx, t)
	bob.waitPaired(ctx, t)
	return alice, bob, carol
}

// Issue 3: no account can read or write another's rooms or mailbox through
// the client API (spec 09 §1 "Authorisation").
func TestAuthorisationAgainstARealNode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url := startNode(t)
	alice, bob, carol := pairedTrio(ctx, t, url)

	e, err := alice.room.Seal(envelope.ContentText, []byte("for bob only"), time.Now(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.c.Send(ctx, alice.room.ID(), "tx-1", e); err != nil {
		t.Fatal(err)
	}

	// Carol cannot send into alice and bob's room, even with a well-formed
	// envelope naming it, nor leave it, nor see it.
	carolTicket, _ := keys.GenerateTicketKeys(rand.Reader)
	fake, _ := room.Derive(carolTicket, bob.ticket.Public())
	forged, _ := fake.Seal(envelope.ContentText, []byte("hi"), time.Now(), rand.Reader)
	forged.Header.Room = alice.room.ID()
	if _, err := carol.c.Send(ctx, alice.room.ID(), "tx-x", forged); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("carol Send into alice's room = %v, want not_found", err)
	}
	// Nor replay alice's own envelope under her own account.
	if _, err := carol.c.Send(ctx, alice.room.ID(), "tx-y", e); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("carol re-sending alice's envelope = %v, want not_found", err)
	}
	if err := carol.c.Leave(ctx, alice.room.ID()); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("carol Leave(alice's room) = %v, want not_found", err)
	}
	if rooms, err := carol.c.Rooms(ctx); err != nil || len(rooms) != 0 {
		t.Errorf("carol Rooms = %v, %v, want none", rooms, err)
	}
	// Carol's sync and ack touch only her own (empty) mailbox.
	if res, err := carol.c.Sync(ctx, 0, 100, 0); err != nil || len(res.Events) != 0 {
		t.Errorf("carol Sync = %+v, %v, want no events", res, err)
	}
	if err := carol.c.Ack(ctx, 1<<40); err != nil {
		t.Errorf("carol Ack = %v", err)
	}

	// Bob still gets alice's message, once, and it opens.
	got := bob.receiveTexts(ctx, t, 1)
	if len(got) != 1 || got[0] != "for bob only" {
		t.Fatalf("bob received %q", got)
	}
	// Alice's room is still open for its members.
	if err := bob.c.Leave(ctx, bob.room.ID()); err != nil {
		t.Fatalf("bob Leave = %v", err)
	}
}

// Issue 3 and DESIGN §3.7: an operator suspends an account through the
// admin API; its sessions end, and after logging in again it can read but
// not pair (403 suspended).
func TestSuspendedAccountCannotPair(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url, op, tok := startNodeOps(t)
	k, _ := keys.GenerateAccountKey(rand.Reader)
	c := client.New(url)
	if _, err := c.Register(ctx, "mallory", k.Public(), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Login(ctx, "mallory", k); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, op+"/admin/v1/accounts/mallory/suspend", strings.NewReader(`{"reason":"spam"}`))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("suspend = %s, want 200", resp.Status)
	}
	if _, err := c.Account(ctx); !errors.Is(err, client.ErrUnauthenticated) {
		t.Fatalf("old session after suspension = %v, want unauthenticated", err)
	}
	if _, err := c.Login(ctx, "mallory", k); err != nil {
		t.Fatalf("suspended accounts may still log in: %v", err)
	}
	if acct, err := c.Account(ctx); err != nil || !acct.Suspended {
		t.Fatalf("Account = %+v, %v, want suspended", acct, err)
	}
	tk, _ := keys.GenerateTicketKeys(rand.Reader)
	if _, err := c.Pair(ctx, client.PairRequest{Ticket: tk.Public()}); !errors.Is(err, client.ErrSuspended) {
		t.Fatalf("Pair while suspended = %v, want suspended", err)
	}
}
