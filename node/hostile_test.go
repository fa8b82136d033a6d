package node_test

import (
	"context"
	"crypto/rand"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/parley-chat/parley/client"
	"github.com/parley-chat/parley/node/internal/poll"
	"github.com/parley-chat/parley/node/p2p"
	"github.com/parley-chat/parley/protocol/envelope"
	fed "github.com/parley-chat/parley/protocol/federation"
	"github.com/parley-chat/parley/protocol/keys"
)

// Issue 4, hostile peer: a raw libp2p host opens B's delivery protocol and
// sends garbage, a huge length, a batch it stamped itself, a replay of
// another node's batch and a flood. B stays up, refuses each with a
// counted reason (spec 12 §3, §4), and keeps serving its honest peer A
// throughout: alice on A and bob on B chat before, during and after.
func TestHostilePeer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, b, alice, bob := twoNodesPaired(ctx, t)
	exchange(ctx, t, alice, bob, 3)

	// A genuine envelope A stamped, as bob's node received it: what a
	// replay would carry.
	e, _ := alice.room.Seal(envelope.ContentText, []byte("genuine"), time.Now(), rand.Reader)
	if _, err := alice.c.Send(ctx, alice.room.ID(), "genuine", e); err != nil {
		t.Fatal(err)
	}
	var genuine *envelope.Envelope
	for genuine == nil {
		res, err := bob.c.Sync(ctx, bob.pos, 100, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range res.Events {
			if ev.Kind == client.EventMessage {
				if genuine, err = envelope.Parse(ev.Envelope); err != nil {
					t.Fatal(err)
				}
			}
		}
		bob.pos = res.Next
		if err := bob.c.Ack(ctx, bob.pos); err != nil {
			t.Fatal(err)
		}
	}

	// The hostile host, with a node key of its own.
	xk, err := keys.GenerateNodeKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := p2p.PrivKey(xk)
	if err != nil {
		t.Fatal(err)
	}
	x, err := libp2p.New(libp2p.Identity(priv), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = x.Close() }()
	bInfo := peer.AddrInfo{ID: p2p.PeerID(b.n.ID())}
	for _, s := range b.n.P2PAddrs() {
		addr, _, _ := strings.Cut(s, "/p2p/")
		bInfo.Addrs = append(bInfo.Addrs, ma.StringCast(addr))
	}
	proto := protocol.ID(fed.ProtocolID("parley-fedtest"))
	// send writes frame on a new stream and returns B's Ack, or nil if B
	// reset the stream instead.
	send := func(frame []byte) *fed.Ack {
		t.Helper()
		if err := x.Connect(ctx, bInfo); err != nil {
			t.Fatalf("connect to B: %v", err)
		}
		s, err := x.NewStream(ctx, bInfo.ID, proto)
		if err != nil {
			t.Fatalf("open a delivery stream: %v", err)
		}
		defer func() { _ = s.Close() }()
		_ = s.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := s.Write(frame); err != nil {
			return nil
		}
		var prefix [fed.PrefixLen]byte
		if _, err := io.ReadFull(s, prefix[:]); err != nil {
			return nil
		}
		n, err := fed.BodyLen(prefix)
		if err != nil {
			t.Fatalf("B's ack prefix: %v", err)
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(s, body); err != nil {
			return nil
		}
		ack, err := fed.DecodeAck(body)
		if err != nil {
			t.Fatalf("B's ack: %v", err)
		}
		return ack
	}
	batch := func(seq uint64, envs ...*envelope.Envelope) []byte {
		t.Helper()
		f, err := (&fed.Batch{Seq: seq, Envelopes: envs}).AppendFrame(nil)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}

	// Garbage and a huge length: the stream is reset, nothing answered.
	if ack := send([]byte{0, 0, 0, 5, 9, 9, 9, 9, 9}); ack != nil {
		t.Errorf("garbage frame answered %+v, want a reset", ack)
	}
	if ack := send([]byte{0xff, 0xff, 0xff, 0xff}); ack != nil {
		t.Errorf("huge length answered %+v, want a reset", ack)
	}
	// A batch x stamped itself for alice and bob's room: no such room homed
	// at x.
	forged, _ := alice.room.Seal(envelope.ContentText, []byte("forged"), time.Now(), rand.Reader)
	if err := envelope.StampBatch(xk, time.Now(), []*envelope.Envelope{forged}); err != nil {
		t.Fatal(err)
	}
	if ack := send(batch(1, forged)); ack == nil || len(ack.Results) != 1 || ack.Results[0].Status != fed.Rejected || ack.Results[0].Reason != fed.ReasonNoRoom {
		t.Errorf("self-stamped batch answered %+v, want rejected no_room", ack)
	}
	// A's genuine envelope replayed by x: the stamp is not the sender's.
	if ack := send(batch(2, genuine)); ack == nil || len(ack.Results) != 1 || ack.Results[0].Status != fed.Rejected || ack.Results[0].Reason != fed.ReasonWrongNode {
		t.Errorf("replayed batch answered %+v, want rejected wrong_node", ack)
	}
	// A flood: full batches until B answers busy.
	flood := make([]*envelope.Envelope, 1024)
	for i := range flood {
		flood[i] = genuine
	}
	frame := batch(3, flood...)
	busy := false
	for i := 0; i < 20 && !busy; i++ {
		ack := send(frame)
		busy = ack != nil && ack.Busy
	}
	if !busy {
		t.Error("a flood of batches was never answered busy")
	}

	// B kept serving A: alice and bob still chat both ways, once each.
	exchange(ctx, t, alice, bob, 5)
	// And B counted each refusal by its reason.
	poll.Until(t, "B's metrics count the hostile frames", func() bool {
		m := scrape(ctx, t, b.opURL+"/metrics")
		return strings.Contains(m, `parley_federation_invalid_frames_total{reason="malformed"}`) &&
			strings.Contains(m, `parley_federation_invalid_frames_total{reason="oversized"}`) &&
			strings.Contains(m, `parley_relay_remote_envelopes_total{result="rejected"}`) &&
			strings.Contains(m, `parley_federation_busy_acks_total`)
	})
}

// scrape returns the text of a metrics page.
func scrape(ctx context.Context, t *testing.T, url string) string {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
