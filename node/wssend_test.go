package node_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/parley-chat/parley/client"
	"github.com/parley-chat/parley/protocol/envelope"
)

// Spec 09 §6: a client sends over its sync WebSocket and its partner
// receives over its own, on a real node; a retry of a transaction over
// HTTP is a duplicate; a stranger's socket cannot send into the room.
func TestSendOverSyncWebSocket(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url := startNode(t)
	alice, bob, carol := pairedTrio(ctx, t, url)

	as, err := alice.c.SyncWS(ctx, alice.pos)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = as.Close() }()
	bs, err := bob.c.SyncWS(ctx, bob.pos)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = bs.Close() }()

	const n = 30 // within the default account rate limit's burst (40)
	envs := make([]*envelope.Envelope, n)
	results := make(chan error, n)
	for i := range n {
		e, err := alice.room.Seal(envelope.ContentText, fmt.Appendf(nil, "message %d", i), time.Now(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		envs[i] = e
	}
	// Pipelined: every send is in flight at once, so they reach the node
	// in any order; bob checks the set (the ratchet opens out-of-order
	// messages, 06 §4).
	for i, e := range envs {
		go func() {
			res, err := as.Send(ctx, alice.room.ID(), fmt.Sprintf("tx-%d", i), e)
			if err == nil && (res.Duplicate || res.ID != e.ID()) {
				err = fmt.Errorf("send %d = %+v, want the envelope's ID, not a duplicate", i, res)
			}
			results <- err
		}()
	}
	for range n {
		if err := <-results; err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]bool{}
	for len(got) < n {
		ev, err := bs.Next(ctx)
		if err != nil {
			t.Fatalf("bob Next with %d of %d messages: %v", len(got), n, err)
		}
		if ev.Kind != client.EventMessage {
			continue
		}
		env, err := envelope.Parse(ev.Envelope)
		if err != nil {
			t.Fatal(err)
		}
		o, err := bob.room.Open(env, bob.info.Partner.Home)
		if err != nil {
			t.Fatalf("bob opens message seq %d: %v", env.Header.Seq, err)
		}
		if got[string(o.Content)] {
			t.Fatalf("bob got %q twice", o.Content)
		}
		got[string(o.Content)] = true
		if err := bs.Ack(ctx, ev.Pos); err != nil {
			t.Fatal(err)
		}
	}

	// The first transaction again, over HTTP: a duplicate.
	if res, err := alice.c.Send(ctx, alice.room.ID(), "tx-0", envs[0]); err != nil || !res.Duplicate {
		t.Errorf("HTTP retry of tx-0 = %+v, %v, want a duplicate", res, err)
	}
	// Carol's socket cannot send into alice and bob's room.
	cs, err := carol.c.SyncWS(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cs.Close() }()
	e, err := alice.room.Seal(envelope.ContentText, []byte("replayed"), time.Now(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.Send(ctx, alice.room.ID(), "tx-c", e); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("carol's socket send into alice's room = %v, want not_found", err)
	}
}
