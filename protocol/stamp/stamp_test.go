package stamp_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/stamp"
	"github.com/parley-chat/parley/protocol/wire"
	"github.com/parley-chat/parley/spec/vectortest"
)

const purpose = wire.LabelEnvelopeHeader

var t0 = time.UnixMilli(1_790_000_000_000)

func nodeKey(t testing.TB, label string) keys.NodeKey {
	t.Helper()
	k, err := keys.GenerateNodeKey(vectortest.Rand(label))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func leaves(n int) [][]byte {
	ls := make([][]byte, n)
	for i := range ls {
		ls[i] = []byte(fmt.Sprintf("leaf %d", i))
	}
	return ls
}

// spec 04-stamps §2: every leaf of a batch of any size verifies on its own
// against the one batch signature.
func TestEveryLeafVerifies(t *testing.T) {
	k := nodeKey(t, "node")
	for _, n := range []int{1, 2, 3, 4, 5, 7, 8, 9, 31, 100, 257, wire.MaxStampBatch} {
		ls := leaves(n)
		st, err := stamp.Sign(k, purpose, t0, ls)
		if err != nil {
			t.Fatal(err)
		}
		for i := range st {
			if err := stamp.Verify(k.Public(), purpose, ls[i], &st[i]); err != nil {
				t.Fatalf("n=%d: Verify(leaf %d) = %v", n, i, err)
			}
			if len(st[i].Path) > wire.MaxStampPath {
				t.Fatalf("n=%d: path length %d > MaxStampPath", n, len(st[i].Path))
			}
			if i > 0 && st[i].Sig != st[0].Sig {
				t.Fatalf("n=%d: leaf %d has its own signature; one signature per batch", n, i)
			}
			// Parse(Marshal) round-trips.
			b, _ := st[i].MarshalBinary()
			back, err := stamp.Parse(b)
			if err != nil {
				t.Fatalf("Parse(Marshal(stamp)) = %v", err)
			}
			if err := stamp.Verify(k.Public(), purpose, ls[i], &back); err != nil {
				t.Fatalf("Verify(parsed) = %v", err)
			}
		}
	}
}

// spec 04-stamps §2: a stamp does not verify for another leaf, another
// purpose, another node, another position or another batch.
func TestStampBinds(t *testing.T) {
	k, other := nodeKey(t, "node"), nodeKey(t, "other")
	ls := leaves(10)
	st, _ := stamp.Sign(k, purpose, t0, ls)
	st2, _ := stamp.Sign(k, purpose, t0, leaves(11))
	cases := []struct {
		name    string
		node    keys.NodeID
		purpose string
		leaf    []byte
		s       stamp.Stamp
		want    error
	}{
		{"other leaf", k.Public(), purpose, ls[4], st[3], stamp.ErrBadSignature},
		{"other purpose", k.Public(), wire.LabelTicket, ls[3], st[3], stamp.ErrBadSignature},
		{"other node", other.Public(), purpose, ls[3], st[3], stamp.ErrWrongNode},
		{"node field swapped", other.Public(), purpose, ls[3], func() stamp.Stamp { s := st[3]; s.Node = other.Public(); return s }(), stamp.ErrBadSignature},
		{"moved index", k.Public(), purpose, ls[3], func() stamp.Stamp { s := st[3]; s.Index = 2; return s }(), stamp.ErrBadSignature},
		{"other batch's path", k.Public(), purpose, ls[3], func() stamp.Stamp { s := st[3]; s.Path = st2[3].Path; return s }(), stamp.ErrBadSignature},
		{"other time", k.Public(), purpose, ls[3], func() stamp.Stamp { s := st[3]; s.Time++; return s }(), stamp.ErrBadSignature},
		{"count changed", k.Public(), purpose, ls[3], func() stamp.Stamp { s := st[3]; s.Count = 11; return s }(), stamp.ErrBadSignature},
		{"short path", k.Public(), purpose, ls[3], func() stamp.Stamp { s := st[3]; s.Path = s.Path[1:]; return s }(), stamp.ErrBadSignature},
		{"index past count", k.Public(), purpose, ls[3], func() stamp.Stamp { s := st[3]; s.Index = 10; return s }(), stamp.ErrBadSignature},
	}
	for _, c := range cases {
		if err := stamp.Verify(c.node, c.purpose, c.leaf, &c.s); !errors.Is(err, c.want) {
			t.Errorf("%s: Verify = %v, want %v", c.name, err, c.want)
		}
	}
}

// spec 04-stamps §3: flipping any byte of an encoded stamp makes it fail to
// parse or fail to verify.
func TestTamperEveryByte(t *testing.T) {
	k := nodeKey(t, "node")
	ls := leaves(100)
	st, _ := stamp.Sign(k, purpose, t0, ls)
	for _, i := range []int{0, 37, 99} {
		b, _ := st[i].MarshalBinary()
		for pos := range b {
			for _, bit := range []byte{0x01, 0x80} {
				bad := bytes.Clone(b)
				bad[pos] ^= bit
				s, err := stamp.Parse(bad)
				if err != nil {
					if !errors.Is(err, wire.ErrMalformed) {
						t.Fatalf("Parse(flip %d) error %v is not a parse error", pos, err)
					}
					continue
				}
				if err := stamp.Verify(k.Public(), purpose, ls[i], &s); !errors.Is(err, stamp.ErrBadSignature) && !errors.Is(err, stamp.ErrWrongNode) {
					t.Fatalf("leaf %d: flip at byte %d bit %x: Verify = %v, want a stamp error", i, pos, bit, err)
				}
			}
		}
	}
}

func TestSignBatchSize(t *testing.T) {
	k := nodeKey(t, "node")
	for _, n := range []int{0, wire.MaxStampBatch + 1} {
		if _, err := stamp.Sign(k, purpose, t0, leaves(n)); !errors.Is(err, stamp.ErrBatchSize) {
			t.Errorf("Sign(%d leaves) error = %v, want ErrBatchSize", n, err)
		}
	}
}

func TestPathLen(t *testing.T) {
	cases := []struct {
		index, count uint32
		want         int
	}{
		{0, 1, 0}, {0, 2, 1}, {1, 2, 1}, {2, 3, 1}, {0, 3, 2}, {4, 5, 1}, {0, 5, 3}, {99, 100, 4}, {0, 100, 7}, {0, 4096, 12}, {4095, 4096, 12},
	}
	for _, c := range cases {
		if got := stamp.PathLen(c.index, c.count); got != c.want {
			t.Errorf("PathLen(%d, %d) = %d, want %d", c.index, c.count, got, c.want)
		}
	}
}

type vector struct {
	Name     string   `json:"name"`
	NodeSeed string   `json:"node_seed,omitempty"`
	NodeID   string   `json:"node_id"`
	Purpose  string   `json:"purpose"`
	TimeMs   int64    `json:"time_ms,omitempty"`
	Leaves   []string `json:"leaves,omitempty"`
	Root     string   `json:"root,omitempty"`
	Leaf     string   `json:"leaf"`
	Stamp    string   `json:"stamp"`
	Error    string   `json:"error,omitempty"`
}

// TestVectors writes and consumes spec/testdata/stamp.json (spec 04-stamps §5).
func TestVectors(t *testing.T) {
	k := nodeKey(t, "stamp vectors node")
	var vs []vector
	for _, n := range []int{1, 3, 6} {
		ls := leaves(n)
		st, err := stamp.Sign(k, purpose, t0, ls)
		if err != nil {
			t.Fatal(err)
		}
		hexLeaves := make([]string, n)
		for i := range ls {
			hexLeaves[i] = hex.EncodeToString(ls[i])
		}
		root, _ := st[0].Root(purpose, ls[0])
		for i := range st {
			b, _ := st[i].MarshalBinary()
			vs = append(vs, vector{
				Name: fmt.Sprintf("batch of %d, leaf %d", n, i), NodeSeed: hex.EncodeToString(k.Seed()),
				NodeID: k.Public().String(), Purpose: purpose, TimeMs: t0.UnixMilli(), Leaves: hexLeaves,
				Root: hex.EncodeToString(root[:]), Leaf: hexLeaves[i], Stamp: hex.EncodeToString(b),
			})
		}
	}
	ls := leaves(3)
	st, _ := stamp.Sign(k, purpose, t0, ls)
	good, _ := st[1].MarshalBinary()
	mut := func(f func(b []byte) []byte) string { return hex.EncodeToString(f(bytes.Clone(good))) }
	bad := []struct{ name, stamp, leaf, err string }{
		{"wrong leaf", hex.EncodeToString(good), hex.EncodeToString(ls[2]), "bad_signature"},
		{"flipped signature", mut(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), hex.EncodeToString(ls[1]), "bad_signature"},
		{"flipped path", mut(func(b []byte) []byte { b[50] ^= 1; return b }), hex.EncodeToString(ls[1]), "bad_signature"},
		{"truncated", mut(func(b []byte) []byte { return b[:len(b)-1] }), hex.EncodeToString(ls[1]), "malformed"},
		{"trailing byte", mut(func(b []byte) []byte { return append(b, 0) }), hex.EncodeToString(ls[1]), "malformed"},
		{"bad version", mut(func(b []byte) []byte { b[0] = 2; return b }), hex.EncodeToString(ls[1]), "malformed"},
		{"index out of range", mut(func(b []byte) []byte { b[44] = 9; return b }), hex.EncodeToString(ls[1]), "malformed"},
		{"wrong path length", mut(func(b []byte) []byte { b[49] = 1; return b[:len(b)-32] }), hex.EncodeToString(ls[1]), "malformed"},
	}
	for _, c := range bad {
		vs = append(vs, vector{Name: c.name, NodeID: k.Public().String(), Purpose: purpose, Leaf: c.leaf, Stamp: c.stamp, Error: c.err})
	}
	vectortest.Golden(t, "stamp.json", vectortest.File[vector]{
		Description: "Node stamps: Merkle batch stamps over leaves; each stamp verifies alone against the node ID (a libp2p peer ID).",
		Spec:        "04-stamps.md",
		Vectors:     vs,
	})

	for _, v := range vectortest.Load[vector](t, "stamp.json").Vectors {
		node, err := keys.ParseNodeID(v.NodeID)
		if err != nil {
			t.Fatalf("%s: %v", v.Name, err)
		}
		if v.NodeSeed != "" {
			seed, _ := hex.DecodeString(v.NodeSeed)
			if got := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey); !bytes.Equal(got, node[:]) {
				t.Fatalf("%s: node seed does not give node ID", v.Name)
			}
		}
		sb, _ := hex.DecodeString(v.Stamp)
		leaf, _ := hex.DecodeString(v.Leaf)
		s, err := stamp.Parse(sb)
		got := ""
		switch {
		case err != nil:
			got = "malformed"
		default:
			if err := stamp.Verify(node, v.Purpose, leaf, &s); err != nil {
				got = "bad_signature"
			}
		}
		if got != v.Error {
			t.Errorf("%s: result %q, want %q", v.Name, got, v.Error)
		}
		if v.Root != "" && err == nil {
			root, _ := s.Root(v.Purpose, leaf)
			if hex.EncodeToString(root[:]) != v.Root {
				t.Errorf("%s: root %x, want %s", v.Name, root, v.Root)
			}
		}
	}
}

// FuzzParse: every failure is a *wire.ParseError; whatever parses
// re-encodes to the same bytes (spec 02-encoding §1: one encoding per value).
func FuzzParse(f *testing.F) {
	k := nodeKey(f, "fuzz")
	for _, n := range []int{1, 2, 5, 100} {
		st, _ := stamp.Sign(k, purpose, t0, leaves(n))
		b, _ := st[n/2].MarshalBinary()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := stamp.Parse(b)
		if err != nil {
			var pe *wire.ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Parse error %v is not a *wire.ParseError", err)
			}
			return
		}
		again, _ := s.MarshalBinary()
		if !bytes.Equal(again, b) {
			t.Fatalf("Marshal(Parse(b)) = %x, want %x", again, b)
		}
		_ = stamp.Verify(s.Node, purpose, []byte("x"), &s)
	})
}

func BenchmarkSignBatch100(b *testing.B) {
	k := nodeKey(b, "bench")
	ls := leaves(100)
	for b.Loop() {
		if _, err := stamp.Sign(k, purpose, t0, ls); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/100, "ns/leaf")
}

func BenchmarkVerifyOne(b *testing.B) {
	k := nodeKey(b, "bench")
	ls := leaves(100)
	st, _ := stamp.Sign(k, purpose, t0, ls)
	for b.Loop() {
		if err := stamp.Verify(k.Public(), purpose, ls[42], &st[42]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRawEd25519Sign(b *testing.B) {
	priv := ed25519.NewKeyFromSeed(make([]byte, 32))
	msg := make([]byte, 100)
	for b.Loop() {
		ed25519.Sign(priv, msg)
	}
}

func BenchmarkRawEd25519Verify(b *testing.B) {
	priv := ed25519.NewKeyFromSeed(make([]byte, 32))
	msg := make([]byte, 100)
	sig := ed25519.Sign(priv, msg)
	pub := priv.Public().(ed25519.PublicKey)
	for b.Loop() {
		ed25519.Verify(pub, msg, sig)
	}
}
