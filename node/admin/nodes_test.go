package admin_test

import (
	"context"
	"crypto/rand"
	"strings"
	"sync"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-chat/parley/node/admin"
	"github.com/parley-chat/parley/node/p2p"
	"github.com/parley-chat/parley/node/rooms"
	"github.com/parley-chat/parley/protocol/disclosure"
	"github.com/parley-chat/parley/protocol/envelope"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/room"
)

var _ admin.Peers = (*p2p.Host)(nil)

type fakePeers struct {
	mu        sync.Mutex
	denied    map[peer.ID]bool
	throttled map[peer.ID]bool
}

func (f *fakePeers) Deny(p peer.ID)        { f.mu.Lock(); f.denied[p] = true; f.mu.Unlock() }
func (f *fakePeers) Allow(p peer.ID)       { f.mu.Lock(); delete(f.denied, p); f.mu.Unlock() }
func (f *fakePeers) Peers() []p2p.PeerInfo { return nil }
func (f *fakePeers) Throttle(p peer.ID)    { f.mu.Lock(); f.throttled[p] = true; f.mu.Unlock() }
func (f *fakePeers) Unthrottle(p peer.ID)  { f.mu.Lock(); delete(f.throttled, p); f.mu.Unlock() }
func (f *fakePeers) Throttled(p peer.ID) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.throttled[p]
}
func (f *fakePeers) Denied(p peer.ID) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.denied[p]
}

// reportRemote stores a's report of a message from a user of node remote.
func (e *env) reportRemote(a user, remote keys.NodeKey) {
	e.t.Helper()
	ctx := context.Background()
	tkA, _ := keys.GenerateTicketKeys(rand.Reader)
	tkB, _ := keys.GenerateTicketKeys(rand.Reader)
	roomA, _ := room.Derive(tkA, tkB.Public())
	roomB, _ := room.Derive(tkB, tkA.Public())
	rec := rooms.Record{ID: roomA.ID(), Created: e.now, Sides: [2]rooms.Side{
		{Ticket: tkA.Public(), Home: e.node.Public(), Account: a.key.Public(), Local: true},
		{Ticket: tkB.Public(), Home: remote.Public()},
	}}
	batch := e.st.NewBatch()
	if err := rooms.New(e.st).Put(batch, rec); err != nil {
		e.t.Fatal(err)
	}
	if err := e.st.Commit(ctx, batch); err != nil {
		e.t.Fatal(err)
	}
	env, _ := roomB.Seal(envelope.ContentText, []byte(secretText), e.now, rand.Reader)
	if err := envelope.StampBatch(remote, e.now, []*envelope.Envelope{env}); err != nil {
		e.t.Fatal(err)
	}
	o, err := roomA.Open(env, remote.Public())
	if err != nil {
		e.t.Fatal(err)
	}
	item, _ := disclosure.ItemFromOpened(env, o)
	d, _ := disclosure.New(tkA, disclosure.ReasonSpam, "", e.now, []disclosure.Item{item})
	if _, err := e.rep.Submit(ctx, a.key.Public(), d); err != nil {
		e.t.Fatal(err)
	}
}

// spec 13 §5, DESIGN §3.7: the operator sees the verified reports about a
// remote node's users and can deny (defederate) and allow it.
func TestNodes(t *testing.T) {
	peers := &fakePeers{denied: map[peer.ID]bool{}, throttled: map[peer.ID]bool{}}
	e := newEnvWith(t, func(d *admin.Deps) { d.Peers = peers })
	remote, _ := keys.GenerateNodeKey(rand.Reader)
	a := e.register("alice")
	e.reportRemote(a, remote)
	e.reportRemote(a, remote)
	path := "/admin/v1/nodes/" + remote.Public().String()
	var n admin.Node
	e.call("GET", path, "", &n)
	if n.Denied || n.Reports != 2 || n.Open != 2 || n.ID != remote.Public().String() {
		t.Fatalf("GET %s = %+v", path, n)
	}
	e.call("POST", path+"/deny", "", &n)
	if !n.Denied || !peers.Denied(peer.ID(remote.Public().PeerIDBytes())) {
		t.Fatalf("deny = %+v", n)
	}
	e.call("POST", path+"/allow", "", &n)
	if n.Denied {
		t.Fatalf("allow = %+v", n)
	}
	e.call("POST", path+"/throttle", "", &n)
	if !n.Throttled || !peers.Throttled(peer.ID(remote.Public().PeerIDBytes())) {
		t.Fatalf("throttle = %+v", n)
	}
	e.call("POST", path+"/unthrottle", "", &n)
	if n.Throttled {
		t.Fatalf("unthrottle = %+v", n)
	}
	if r := e.do("GET", "/admin/v1/nodes/nope", e.token, "", ""); r.status != 400 {
		t.Errorf("GET nodes/nope = %d %s, want 400", r.status, r.body)
	}
	if !strings.Contains(e.logs.String(), "admin denied node") {
		t.Error("the deny is not logged")
	}
	// Without a p2p host the routes are not there.
	e2 := newEnv(t)
	if r := e2.do("GET", path, e2.token, "", ""); r.status != 404 {
		t.Errorf("GET nodes without peers = %d, want 404", r.status)
	}
}
