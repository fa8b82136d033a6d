package daemon_test

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/node/p2p"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-chat/parley/node/accounts"
	"github.com/parley-chat/parley/node/admin"
	"github.com/parley-chat/parley/node/internal/storetest"
	"github.com/parley-chat/parley/node/moderation"
	"github.com/parley-chat/parley/node/reports"
	"github.com/parley-chat/parley/node/rooms"
	"github.com/parley-chat/parley/protocol/disclosure"
	"github.com/parley-chat/parley/protocol/keys"
)

// spec 10 §5, spec 13 §5: `parleyd admin` shows an account's signals and
// moderation record with its evidence, reverses actions on record, lists,
// shows and resolves reports.
func TestAdminModerationCommands(t *testing.T) {
	var c struct {
		Node, ReporterNode keys.NodeID
		NowMs              int64 `json:"now_ms"`
		Room               keys.RoomID
		Accused, Reporter  struct {
			Ticket  keys.TicketID  `json:"ticket"`
			DH      keys.DHPublic  `json:"ticket_dh"`
			Account keys.AccountID `json:"account"`
		}
	}
	b, err := os.ReadFile(filepath.Join(corpus, "corpus.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	now := time.UnixMilli(c.NowMs)
	clock := func() time.Time { return now }
	ctx := context.Background()
	st := storetest.New(t, nil).Open()
	acc, err := accounts.New(st, accounts.Config{Audience: "node"}, accounts.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	for name, id := range map[string]keys.AccountID{"alice": c.Accused.Account, "bob": c.Reporter.Account} {
		if _, err := acc.Register(ctx, name, id, ""); err != nil {
			t.Fatal(err)
		}
	}
	rs := rooms.New(st)
	batch := st.NewBatch()
	if err := rs.Put(batch, rooms.Record{ID: c.Room, Created: now.Add(-time.Hour), Sides: [2]rooms.Side{
		{Ticket: keys.TicketPublic{Sign: c.Accused.Ticket, DH: c.Accused.DH}, Home: c.Node, Account: c.Accused.Account, Local: true},
		{Ticket: keys.TicketPublic{Sign: c.Reporter.Ticket, DH: c.Reporter.DH}, Home: c.Node, Account: c.Reporter.Account, Local: true},
	}}); err != nil {
		t.Fatal(err)
	}
	if err := st.Commit(ctx, batch); err != nil {
		t.Fatal(err)
	}
	mod, err := moderation.New(moderation.Config{ThrottleReporters: 1}, st, acc, rs, moderation.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	rep := reports.New(st, rs, clock, reports.WithPolicy(mod))
	text, _ := os.ReadFile(filepath.Join(corpus, "valid.b64"))
	raw, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(string(text)))
	d, err := disclosure.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := rep.Submit(ctx, c.Reporter.Account, d)
	if err != nil {
		t.Fatal(err)
	}
	id := hex.EncodeToString(rc.ID[:])

	dir := filepath.Join(t.TempDir(), "n")
	if _, _, err := run(ctx, t, nil, "init", "--data", dir); err != nil {
		t.Fatal(err)
	}
	hash, err := admin.LoadTokenHash(filepath.Join(dir, admin.TokenFileName))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := admin.New(admin.Config{}, admin.Deps{Accounts: acc, Reports: rep, Moderation: mod, Peers: &fakePeers{denied: map[peer.ID]bool{}}}, hash)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(admin.Prefix, srv.Handler())
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	op := strings.TrimPrefix(hs.URL, "http://")
	env := []string{"USER=carol"}
	for _, tc := range []struct {
		args []string
		want []string
		not  string
	}{
		{[]string{"accounts", "show", "alice"}, []string{"throttled until", "spam score:", "distinct reporters (counting):  1", "throttle   by policy: 1 distinct reporters", "evidence: report " + id}, "send me your password"},
		{[]string{"reports", "list"}, []string{id, "open", "harassment", c.Accused.Account.String()}, "send me your password"},
		{[]string{"reports", "show", id}, []string{"send me your password", "or else", "comment:  threats"}, ""},
		{[]string{"accounts", "unthrottle", "alice", "--reason", "appeal"}, []string{"unthrottled alice"}, ""},
		{[]string{"accounts", "throttle", "alice", "--reason", "watch", "--by", "dave"}, []string{"throttled alice", "until"}, ""},
		{[]string{"accounts", "suspend", "alice", "--reason", "enough"}, []string{"suspended alice"}, ""},
		{[]string{"accounts", "unsuspend", "alice"}, []string{"unsuspended alice"}, ""},
		{[]string{"accounts", "show", "alice"}, []string{"unthrottle by carol: appeal", "throttle   by dave: watch", "suspend    by carol: enough", "unsuspend  by carol"}, ""},
		{[]string{"reports", "resolve", id, "--note", "alice warned"}, []string{"resolved report " + id + " (by carol)"}, ""},
		{[]string{"reports", "list", "--state", "open"}, []string{"ID"}, id},
		{[]string{"reports", "show", id}, []string{"resolved: ", "by carol: alice warned"}, ""},
		{[]string{"nodes", "deny", c.ReporterNode.String()}, []string{"state:   denied", "reports: 0 about its users"}, ""},
		{[]string{"nodes", "allow", c.ReporterNode.String()}, []string{"state:   allowed"}, ""},
	} {
		out, _, err := run(ctx, t, env, append([]string{"admin", "--data", dir, "--operator-listen", op}, tc.args...)...)
		if err != nil {
			t.Errorf("admin %q = %v", tc.args, err)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("admin %q = %q, want it to contain %q", tc.args, out, w)
			}
		}
		if tc.not != "" && strings.Contains(out, tc.not) {
			t.Errorf("admin %q = %q, must not contain %q", tc.args, out, tc.not)
		}
	}
}

type fakePeers struct {
	mu     sync.Mutex
	denied map[peer.ID]bool
}

func (f *fakePeers) Deny(p peer.ID)         { f.mu.Lock(); f.denied[p] = true; f.mu.Unlock() }
func (f *fakePeers) Allow(p peer.ID)        { f.mu.Lock(); delete(f.denied, p); f.mu.Unlock() }
func (f *fakePeers) Peers() []p2p.PeerInfo  { return nil }
func (f *fakePeers) Throttle(peer.ID)       {}
func (f *fakePeers) Unthrottle(peer.ID)     {}
func (f *fakePeers) Throttled(peer.ID) bool { return false }
func (f *fakePeers) Denied(p peer.ID) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.denied[p]
}
