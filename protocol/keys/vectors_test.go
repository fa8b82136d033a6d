package keys_test

import (
	"encoding/hex"
	"testing"

	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/wire"
	"github.com/parley-chat/parley/spec/vectortest"
)

type keyVector struct {
	Name      string `json:"name"`
	Kind      string `json:"kind"` // node, account, ticket
	Seed      string `json:"seed,omitempty"`
	DHSeed    string `json:"dh_seed,omitempty"`
	Public    string `json:"public,omitempty"`
	DHPublic  string `json:"dh_public,omitempty"`
	Text      string `json:"text"`
	DHText    string `json:"dh_text,omitempty"`
	PeerID    string `json:"peer_id_bytes,omitempty"`
	Label     string `json:"label,omitempty"`
	Message   string `json:"message,omitempty"`
	Signature string `json:"signature,omitempty"`
	Error     string `json:"error,omitempty"`
}

// TestVectors writes and consumes spec/testdata/keys.json (spec 02-encoding §2).
func TestVectors(t *testing.T) {
	r := vectortest.Rand("keys vectors")
	var vs []keyVector
	msg := []byte("parley")
	for i := 0; i < 2; i++ {
		nk, _ := keys.GenerateNodeKey(r)
		sig := nk.Sign(wire.LabelNodeRecord, msg)
		vs = append(vs, keyVector{Name: "node", Kind: "node", Seed: hex.EncodeToString(nk.Seed()),
			Public: hexKey(nk.Public()), Text: nk.Public().String(), PeerID: hex.EncodeToString(nk.Public().PeerIDBytes()),
			Label: wire.LabelNodeRecord, Message: hex.EncodeToString(msg), Signature: hex.EncodeToString(sig[:])})
		ak, _ := keys.GenerateAccountKey(r)
		sig = ak.Sign(wire.LabelAccountLogin, msg)
		vs = append(vs, keyVector{Name: "account", Kind: "account", Seed: hex.EncodeToString(ak.Seed()),
			Public: hexKey(ak.Public()), Text: ak.Public().String(),
			Label: wire.LabelAccountLogin, Message: hex.EncodeToString(msg), Signature: hex.EncodeToString(sig[:])})
		tk, _ := keys.GenerateTicketKeys(r)
		s, d := tk.Seeds()
		sig = tk.Sign(wire.LabelDisclosure, msg)
		vs = append(vs, keyVector{Name: "ticket", Kind: "ticket", Seed: hex.EncodeToString(s), DHSeed: hex.EncodeToString(d),
			Public: hexKey(tk.Public().Sign), DHPublic: hexKey(tk.Public().DH),
			Text: tk.Public().Sign.String(), DHText: tk.Public().DH.String(),
			Label: wire.LabelDisclosure, Message: hex.EncodeToString(msg), Signature: hex.EncodeToString(sig[:])})
	}
	good := vs[0].Text
	for _, b := range []struct{ name, kind, text string }{
		{"peer ID with a changed multihash prefix", "node", good[:3] + "4" + good[4:]},
		{"sha256 peer ID (not Ed25519)", "node", "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N"},
		{"peer ID with 0 (not base58)", "node", good[:10] + "0" + good[11:]},
		{"account ID with ticket prefix", "account", "tks_" + vs[1].Text[5:]},
		{"account ID too short", "account", vs[1].Text[:len(vs[1].Text)-1]},
		{"ticket ID padded", "ticket", vs[2].Text + "="},
	} {
		vs = append(vs, keyVector{Name: b.name, Kind: b.kind, Text: b.text, Error: "invalid_key"})
	}
	vectortest.Golden(t, "keys.json", vectortest.File[keyVector]{
		Description: "Key derivation from seeds, text forms (node IDs are libp2p peer IDs), labeled signatures.",
		Spec:        "02-encoding.md",
		Vectors:     vs,
	})

	for _, v := range vectortest.Load[keyVector](t, "keys.json").Vectors {
		var text, dhText string
		var verify func(label string, sig keys.Signature, msg []byte) bool
		var parseErr error
		switch v.Kind {
		case "node":
			id, err := keys.ParseNodeID(v.Text)
			parseErr = err
			if v.Seed != "" {
				seed, _ := hex.DecodeString(v.Seed)
				k, _ := keys.NodeKeyFromSeed(seed)
				if k.Public() != id || hex.EncodeToString(id.PeerIDBytes()) != v.PeerID {
					t.Errorf("%s: seed gives %s, want %s", v.Name, k.Public(), v.Text)
				}
				text = k.Public().String()
			}
			verify = func(l string, s keys.Signature, m []byte) bool { return id.Verify(l, s, m) }
		case "account":
			id, err := keys.ParseAccountID(v.Text)
			parseErr = err
			if v.Seed != "" {
				seed, _ := hex.DecodeString(v.Seed)
				k, _ := keys.AccountKeyFromSeed(seed)
				text = k.Public().String()
			}
			verify = func(l string, s keys.Signature, m []byte) bool { return id.Verify(l, s, m) }
		case "ticket":
			id, err := keys.ParseTicketID(v.Text)
			parseErr = err
			if v.Seed != "" {
				seed, _ := hex.DecodeString(v.Seed)
				dh, _ := hex.DecodeString(v.DHSeed)
				k, _ := keys.TicketKeysFromSeeds(seed, dh)
				text, dhText = k.Public().Sign.String(), k.Public().DH.String()
				if dhText != v.DHText {
					t.Errorf("%s: X25519 public %s, want %s", v.Name, dhText, v.DHText)
				}
			}
			verify = func(l string, s keys.Signature, m []byte) bool { return id.Verify(l, s, m) }
		}
		if v.Error != "" {
			if parseErr == nil {
				t.Errorf("%s: Parse(%q) succeeded, want %s", v.Name, v.Text, v.Error)
			}
			continue
		}
		if parseErr != nil || text != v.Text {
			t.Errorf("%s: Parse = %v; seed gives %q, want %q", v.Name, parseErr, text, v.Text)
		}
		var sig keys.Signature
		sb, _ := hex.DecodeString(v.Signature)
		copy(sig[:], sb)
		m, _ := hex.DecodeString(v.Message)
		if !verify(v.Label, sig, m) {
			t.Errorf("%s: signature does not verify", v.Name)
		}
	}
}

// FuzzParseNodeID: the peer ID parser never panics, and whatever parses
// prints back to the same text.
func FuzzParseNodeID(f *testing.F) {
	f.Add("12D3KooWEojcXiftehmG1AXePnSRuLSTW5tkKYbc45ewpTjZ8tZp")
	f.Add("QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N")
	f.Add("1111")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := keys.ParseNodeID(s)
		if err != nil {
			return
		}
		if id.String() != s {
			t.Fatalf("ParseNodeID(%q).String() = %q", s, id.String())
		}
	})
}

// FuzzParseAccountID: likewise for the base64url key forms.
func FuzzParseAccountID(f *testing.F) {
	f.Add("acct_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8")
	f.Add("acct_")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := keys.ParseAccountID(s)
		if err != nil {
			return
		}
		if id.String() != s {
			t.Fatalf("ParseAccountID(%q).String() = %q", s, id.String())
		}
	})
}

func hexKey[K ~[32]byte](k K) string { return hex.EncodeToString(k[:]) }
