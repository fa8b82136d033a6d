package outbox_test

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-chat/parley/node/internal/poll"
	"github.com/parley-chat/parley/node/outbox"
	"github.com/parley-chat/parley/protocol/keys"
)

// spec 12-delivery §5, 13-moderation §2.1: the n-th retry waits a delay
// drawn from [0, min(max, base × 2^(n-1))].
func TestBackoffDelay(t *testing.T) {
	b := outbox.Backoff{Base: 10 * time.Millisecond, Max: 300 * time.Millisecond}
	for _, tc := range []struct {
		attempt int
		limit   time.Duration
	}{
		{0, 10 * time.Millisecond},
		{1, 10 * time.Millisecond},
		{2, 20 * time.Millisecond},
		{5, 160 * time.Millisecond},
		{6, 300 * time.Millisecond},
		{70, 300 * time.Millisecond},
		{1 << 30, 300 * time.Millisecond},
	} {
		var most time.Duration
		for range 2000 {
			d := b.Delay(tc.attempt)
			if d < 0 || d > tc.limit {
				t.Fatalf("Delay(%d) = %s, want 0 to %s", tc.attempt, d, tc.limit)
			}
			most = max(most, d)
		}
		// 2000 uniform draws: the largest is within 1% of the limit
		// except with probability 0.99^2000 (about 2e-9).
		if most < tc.limit*99/100 {
			t.Errorf("Delay(%d): the largest of 2000 draws is %s, want close to %s", tc.attempt, most, tc.limit)
		}
	}
	if d := (outbox.Backoff{}).Delay(3); d != 0 {
		t.Errorf("zero Backoff.Delay(3) = %s, want 0", d)
	}
}

// spec 12-delivery §5: a sender learns when a connection to a destination
// is established (its backoff then starts afresh).
func TestWatch(t *testing.T) {
	a, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = a.Close() }()
	b, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = b.Close() }()
	got := make(chan keys.NodeID, 4)
	stop := outbox.Watch(a.Network(), func(id keys.NodeID) {
		select {
		case got <- id:
		default:
		}
	})
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), poll.Timeout)
	defer cancel()
	if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
		t.Fatal(err)
	}
	want, err := keys.NodeIDFromPeerIDBytes([]byte(b.ID()))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-got:
		if id != want {
			t.Errorf("Watch reported %s, want %s", id, want)
		}
	case <-ctx.Done():
		t.Fatal("Watch reported no connection")
	}
}
