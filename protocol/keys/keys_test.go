package keys_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/wire"
)

// spec 02-encoding §2.1: a node's ID is its libp2p peer ID, so the key that
// stamps verifies against the peer ID libp2p derives from the same key.
func TestNodeIDIsLibp2pPeerID(t *testing.T) {
	for i := 0; i < 20; i++ {
		k, err := keys.GenerateNodeKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		lk, err := crypto.UnmarshalEd25519PrivateKey(append(k.Seed(), k.Public().PeerIDBytes()[6:]...))
		if err != nil {
			t.Fatal(err)
		}
		pid, err := peer.IDFromPrivateKey(lk)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := k.Public().String(), pid.String(); got != want {
			t.Fatalf("NodeID.String() = %s, want libp2p peer ID %s", got, want)
		}
		if got, want := k.Public().PeerIDBytes(), []byte(pid); !bytes.Equal(got, want) {
			t.Fatalf("PeerIDBytes() = %x, want %x", got, want)
		}
		parsed, err := keys.ParseNodeID(pid.String())
		if err != nil || parsed != k.Public() {
			t.Fatalf("ParseNodeID(%s) = %v, %v, want %v", pid, parsed, err, k.Public())
		}
		// A stamp-style signature by the node key verifies with the public
		// key libp2p extracts from the peer ID.
		sig := k.Sign(wire.LabelNodeRecord, []byte("hello"))
		pub, err := pid.ExtractPublicKey()
		if err != nil {
			t.Fatal(err)
		}
		ok, err := pub.Verify(wire.Labeled(wire.LabelNodeRecord, []byte("hello")), sig[:])
		if err != nil || !ok {
			t.Fatalf("libp2p Verify of a node signature = %v, %v, want true", ok, err)
		}
	}
}

func TestParseNodeIDRejects(t *testing.T) {
	k, _ := keys.GenerateNodeKey(rand.Reader)
	good := k.Public().String()
	rsa := "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N" // sha256 multihash peer ID
	for _, s := range []string{"", "0", good + "1", good[:len(good)-1], "12D3KooW" + strings.Repeat("l", 44), rsa, strings.Repeat("z", 65)} {
		if _, err := keys.ParseNodeID(s); !errors.Is(err, keys.ErrInvalidKey) {
			t.Errorf("ParseNodeID(%q) error = %v, want ErrInvalidKey", s, err)
		}
	}
}

// spec 02-encoding §2: every public key type's text form round-trips and
// refuses the other types' prefixes.
func TestTextRoundTrip(t *testing.T) {
	var raw [32]byte
	for i := range raw {
		raw[i] = byte(i * 7)
	}
	type textKey interface {
		String() string
		MarshalText() ([]byte, error)
	}
	cases := []struct {
		k     textKey
		parse func(string) (any, error)
	}{
		{keys.AccountID(raw), func(s string) (any, error) { return keys.ParseAccountID(s) }},
		{keys.TicketID(raw), func(s string) (any, error) { return keys.ParseTicketID(s) }},
		{keys.DHPublic(raw), func(s string) (any, error) { return keys.ParseDHPublic(s) }},
		{keys.RoomID(raw), func(s string) (any, error) { return keys.ParseRoomID(s) }},
		{keys.NodeID(raw), func(s string) (any, error) { return keys.ParseNodeID(s) }},
	}
	for i, c := range cases {
		s := c.k.String()
		got, err := c.parse(s)
		if err != nil || got != c.k {
			t.Errorf("Parse(%q) = %v, %v, want %v", s, got, err, c.k)
		}
		mt, _ := c.k.MarshalText()
		if string(mt) != s {
			t.Errorf("MarshalText = %q, want %q", mt, s)
		}
		// Every other type's text form is refused.
		for j, o := range cases {
			if i == j {
				continue
			}
			if _, err := c.parse(o.k.String()); err == nil {
				t.Errorf("case %d parsed case %d's text %q", i, j, o.k.String())
			}
		}
		for _, bad := range []string{s + "A", s[:len(s)-1], s[:len(s)-1] + "!", ""} {
			if _, err := c.parse(bad); !errors.Is(err, keys.ErrInvalidKey) {
				t.Errorf("Parse(%q) error = %v, want ErrInvalidKey", bad, err)
			}
		}
	}
}

func TestUnmarshalText(t *testing.T) {
	k, _ := keys.GenerateAccountKey(rand.Reader)
	var a keys.AccountID
	if err := a.UnmarshalText([]byte(k.Public().String())); err != nil || a != k.Public() {
		t.Fatalf("UnmarshalText = %v, %v", a, err)
	}
	var n keys.NodeID
	if err := n.UnmarshalText([]byte("nope")); err == nil {
		t.Fatal("UnmarshalText(nope) succeeded")
	}
}

// spec 02-encoding §2.2: private keys never print their material.
func TestPrivateKeysDoNotPrint(t *testing.T) {
	nk, _ := keys.GenerateNodeKey(rand.Reader)
	ak, _ := keys.GenerateAccountKey(rand.Reader)
	tk, _ := keys.GenerateTicketKeys(rand.Reader)
	mk := &keys.MessageKey{}
	for i := range mk.Key {
		mk.Key[i] = 0xAB
	}
	sSeed, dSeed := tk.Seeds()
	secrets := [][]byte{nk.Seed(), ak.Seed(), sSeed, dSeed, mk.Key[:]}
	for _, v := range []any{nk, ak, tk, mk, *mk, &nk, &tk, []any{tk}, struct{ K keys.TicketKeys }{tk}} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%q"} {
			out := fmt.Sprintf(verb, v)
			for _, s := range secrets {
				for _, enc := range []string{fmt.Sprintf("%x", s), fmt.Sprint(s), fmt.Sprintf("%X", s), fmt.Sprintf("%v", s[:8])} {
					if strings.Contains(out, enc) {
						t.Fatalf("Sprintf(%q, %T) = %q leaks key material", verb, v, out)
					}
				}
			}
		}
	}
}

// spec 02-encoding §3: signatures are domain separated; a signature under
// one label never verifies under another.
func TestSignaturesAreLabeled(t *testing.T) {
	ak, _ := keys.GenerateAccountKey(rand.Reader)
	tk, _ := keys.GenerateTicketKeys(rand.Reader)
	nk, _ := keys.GenerateNodeKey(rand.Reader)
	msg := []byte("challenge")
	checks := []struct {
		name   string
		sig    keys.Signature
		verify func(label string, sig keys.Signature) bool
	}{
		{"account", ak.Sign(wire.LabelAccountLogin, msg), func(l string, s keys.Signature) bool { return ak.Public().Verify(l, s, msg) }},
		{"ticket", tk.Sign(wire.LabelDisclosure, msg), func(l string, s keys.Signature) bool { return tk.Public().Sign.Verify(l, s, msg) }},
		{"node", nk.Sign(wire.LabelStampBatch, msg), func(l string, s keys.Signature) bool { return nk.Public().Verify(l, s, msg) }},
	}
	for _, c := range checks {
		label := map[string]string{"account": wire.LabelAccountLogin, "ticket": wire.LabelDisclosure, "node": wire.LabelStampBatch}[c.name]
		if !c.verify(label, c.sig) {
			t.Errorf("%s: Verify(own label) = false, want true", c.name)
		}
		if c.verify(wire.LabelNodeRecord, c.sig) {
			t.Errorf("%s: Verify(other label) = true, want false", c.name)
		}
		bad := c.sig
		bad[0] ^= 1
		if c.verify(label, bad) {
			t.Errorf("%s: Verify(flipped signature) = true, want false", c.name)
		}
	}
}

func TestSeedsRoundTrip(t *testing.T) {
	tk, _ := keys.GenerateTicketKeys(rand.Reader)
	s, d := tk.Seeds()
	tk2, err := keys.TicketKeysFromSeeds(s, d)
	if err != nil || tk2.Public() != tk.Public() {
		t.Fatalf("TicketKeysFromSeeds = %v, %v, want %v", tk2.Public(), err, tk.Public())
	}
	nk, _ := keys.GenerateNodeKey(rand.Reader)
	nk2, err := keys.NodeKeyFromSeed(nk.Seed())
	if err != nil || nk2.Public() != nk.Public() {
		t.Fatalf("NodeKeyFromSeed = %v, %v", nk2.Public(), err)
	}
	if _, err := keys.NodeKeyFromSeed(make([]byte, 31)); !errors.Is(err, keys.ErrInvalidKey) {
		t.Fatalf("NodeKeyFromSeed(31 bytes) error = %v, want ErrInvalidKey", err)
	}
	if _, err := keys.TicketKeysFromSeeds(s, d[:5]); !errors.Is(err, keys.ErrInvalidKey) {
		t.Fatalf("TicketKeysFromSeeds(short dh) error = %v, want ErrInvalidKey", err)
	}
}

// spec 06-room-keys §2: low-order X25519 points are refused.
func TestSharedSecretRejectsLowOrder(t *testing.T) {
	a, _ := keys.GenerateTicketKeys(rand.Reader)
	b, _ := keys.GenerateTicketKeys(rand.Reader)
	s1, err1 := a.SharedSecret(b.Public().DH)
	s2, err2 := b.SharedSecret(a.Public().DH)
	if err1 != nil || err2 != nil || !bytes.Equal(s1, s2) {
		t.Fatalf("SharedSecret disagree: %x %v / %x %v", s1, err1, s2, err2)
	}
	var zero keys.DHPublic
	if _, err := a.SharedSecret(zero); !errors.Is(err, keys.ErrInvalidKey) {
		t.Fatalf("SharedSecret(zero point) error = %v, want ErrInvalidKey", err)
	}
}

func TestShortRandomness(t *testing.T) {
	if _, err := keys.GenerateNodeKey(bytes.NewReader(make([]byte, 10))); err == nil {
		t.Fatal("GenerateNodeKey with 10 random bytes succeeded")
	}
	if _, err := keys.GenerateTicketKeys(bytes.NewReader(make([]byte, 40))); err == nil {
		t.Fatal("GenerateTicketKeys with 40 random bytes succeeded")
	}
}
