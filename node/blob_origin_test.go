package node_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/parley-chat/parley/client"
	"github.com/parley-chat/parley/node"
	"github.com/parley-chat/parley/protocol/blob"
	"github.com/parley-chat/parley/protocol/keys"
)

// fakeOrigin is a libp2p host that speaks the blob fetch protocol badly:
// each stream gets answer's bytes, whatever it asks.
func fakeOrigin(t *testing.T, netID string, answer func(addr blob.Address) []byte) (keys.NodeID, func(context.Context, []string)) {
	t.Helper()
	k, err := keys.GenerateNodeKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := crypto.UnmarshalEd25519PrivateKey(ed25519.NewKeyFromSeed(k.Seed()))
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(libp2p.Identity(priv), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	h.SetStreamHandler(protocol.ID("/parley/"+netID+"/blob-fetch/1.0.0"), func(st network.Stream) {
		defer func() { _ = st.Close() }()
		_ = st.SetDeadline(time.Now().Add(5 * time.Second))
		var req [4 + 38]byte
		if _, err := st.Read(req[:]); err != nil {
			return
		}
		r, err := blob.DecodeFetchRequest(req[4:])
		if err != nil {
			_ = st.Reset()
			return
		}
		_, _ = st.Write(answer(r.Address))
	})
	connect := func(ctx context.Context, to []string) {
		ai, err := peer.AddrInfoFromP2pAddr(ma.StringCast(to[0]))
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Connect(ctx, *ai); err != nil {
			t.Fatal(err)
		}
	}
	return k.Public(), connect
}

// spec 09 §9, spec 08 §12: a download with ?origin= whose origin cannot be
// reached, or answers garbage (a broken frame, or a manifest that is not
// the address's), is 502 origin_unavailable; nothing is kept.
func TestBlobOriginUnavailable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b := startFedNodeWith(t, t.TempDir(), time.Second, func(c *node.Config) { c.Blobs.FetchTimeout = 2 * time.Second })
	bob := newTUser(ctx, t, b.url, "bob")

	other := make([]byte, 1000)
	k, _ := blob.NewKey(rand.Reader)
	m, err := blob.Encrypt(k, bytes.NewReader(other), uint64(len(other)), func(uint32, []byte) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	otherManifest, _ := m.MarshalBinary()
	garbage, connectG := fakeOrigin(t, "parley-fedtest", func(blob.Address) []byte { return []byte{0, 0, 0, 3, 1, 2, 77} })
	liar, connectL := fakeOrigin(t, "parley-fedtest", func(blob.Address) []byte {
		f, _ := blob.FetchAnswer{Status: blob.FetchOK, Manifest: otherManifest}.AppendFrame(nil)
		return f
	})
	connectG(ctx, b.n.P2PAddrs())
	connectL(ctx, b.n.P2PAddrs())
	unreachable, _ := keys.GenerateNodeKey(rand.Reader)

	for name, origin := range map[string]keys.NodeID{"unreachable": unreachable.Public(), "garbage": garbage, "wrong manifest": liar} {
		var addr blob.Address
		_, _ = rand.Read(addr[:])
		link := blob.Link{Origin: origin, Address: addr, Key: k}
		err := bob.c.GetBlob(ctx, link, &bytes.Buffer{}, client.GetBlobOptions{})
		var apiErr *client.APIError
		if !errors.As(err, &apiErr) || apiErr.Status != 502 || apiErr.Code != "origin_unavailable" {
			t.Errorf("%s origin: GetBlob = %v, want 502 origin_unavailable", name, err)
		}
	}
}
