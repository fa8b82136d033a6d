package noderecord_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/noderecord"
	"github.com/parley-chat/parley/protocol/wire"
)

var t0 = time.Unix(1_800_000_000, 0)

func nodeKey(tb testing.TB, name string) keys.NodeKey {
	tb.Helper()
	seed := sha256.Sum256([]byte("noderecord test " + name))
	k, err := keys.NodeKeyFromSeed(seed[:])
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func record() *noderecord.Record {
	return &noderecord.Record{
		Network:   "testnet-1",
		Seq:       7,
		Issued:    t0.Unix(),
		Addrs:     [][]byte{{0x04, 127, 0, 0, 1, 0x06, 0x0f, 0xa1}, {0x04, 10, 0, 0, 1, 0x91, 0x02, 0x0f, 0xa1, 0xcc, 0x03}},
		Software:  "parleyd/0.4.0",
		Protocols: []string{"deliver/1", "pair/1"},
		Policy: noderecord.Policy{
			Registration:      noderecord.RegistrationInvite,
			MessagesPerMinute: 120,
			TicketsPerHour:    30,
			MaxBlobBytes:      25 << 20,
		},
	}
}

func signed(tb testing.TB, k keys.NodeKey) *noderecord.Record {
	tb.Helper()
	r := record()
	if err := noderecord.Sign(k, r); err != nil {
		tb.Fatalf("Sign: %v", err)
	}
	return r
}

func marshal(tb testing.TB, r *noderecord.Record) []byte {
	tb.Helper()
	b, err := r.MarshalBinary()
	if err != nil {
		tb.Fatalf("MarshalBinary: %v", err)
	}
	return b
}

// spec 11-federation §3.1, §3.2: a signed record survives encoding and verifies.
func TestRoundTrip(t *testing.T) {
	k := nodeKey(t, "a")
	r := signed(t, k)
	if r.Node != k.Public() {
		t.Fatalf("Sign set Node = %s, want %s", r.Node, k.Public())
	}
	b := marshal(t, r)
	got, err := noderecord.Parse(b)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if again := marshal(t, got); !bytes.Equal(again, b) {
		t.Fatalf("Marshal(Parse(b)) = %x, want %x", again, b)
	}
	if err := noderecord.Verify(got, "testnet-1", t0, wire.MaxClockSkew); err != nil {
		t.Fatalf("Verify(parsed) = %v, want nil", err)
	}
	if got.Software != r.Software || got.Seq != r.Seq || got.Policy != r.Policy || len(got.Addrs) != 2 || len(got.Protocols) != 2 {
		t.Fatalf("Parse(Marshal(r)) = %+v, want %+v", got, r)
	}
	// An empty record (no addresses, no protocols) is valid too.
	e := &noderecord.Record{Network: "x", Issued: t0.Unix()}
	if err := noderecord.Sign(k, e); err != nil {
		t.Fatal(err)
	}
	got, err = noderecord.Parse(marshal(t, e))
	if err != nil || noderecord.Verify(got, "x", t0, 0) != nil {
		t.Fatalf("empty record: Parse = %v, Verify failed", err)
	}
}

// spec 11-federation §3.2: changing any signed field invalidates the signature.
func TestTamper(t *testing.T) {
	k := nodeKey(t, "a")
	tests := []struct {
		name string
		mod  func(r *noderecord.Record)
	}{
		{"node", func(r *noderecord.Record) { r.Node = nodeKey(t, "b").Public() }},
		{"seq", func(r *noderecord.Record) { r.Seq++ }},
		{"issued", func(r *noderecord.Record) { r.Issued-- }},
		{"addr", func(r *noderecord.Record) { r.Addrs[0] = []byte{0x04, 127, 0, 0, 2, 0x06, 0x0f, 0xa1} }},
		{"addr dropped", func(r *noderecord.Record) { r.Addrs = r.Addrs[:1] }},
		{"software", func(r *noderecord.Record) { r.Software = "parleyd/0.4.1" }},
		{"protocols", func(r *noderecord.Record) { r.Protocols = []string{"deliver/1"} }},
		{"registration", func(r *noderecord.Record) { r.Policy.Registration = noderecord.RegistrationOpen }},
		{"messages", func(r *noderecord.Record) { r.Policy.MessagesPerMinute++ }},
		{"tickets", func(r *noderecord.Record) { r.Policy.TicketsPerHour++ }},
		{"blob", func(r *noderecord.Record) { r.Policy.MaxBlobBytes++ }},
		{"sig", func(r *noderecord.Record) { r.Sig[3] ^= 1 }},
	}
	for _, tt := range tests {
		r := signed(t, k)
		tt.mod(r)
		if err := noderecord.Verify(r, "testnet-1", t0, wire.MaxClockSkew); !errors.Is(err, noderecord.ErrBadSignature) {
			t.Errorf("Verify(tampered %s) = %v, want ErrBadSignature", tt.name, err)
		}
	}
	// The network is signed too, but a record of another network is
	// refused for that before its signature is checked.
	r := signed(t, k)
	r.Network = "othernet"
	if err := noderecord.Verify(r, "othernet", t0, 0); !errors.Is(err, noderecord.ErrBadSignature) {
		t.Errorf("Verify(network changed) = %v, want ErrBadSignature", err)
	}
}

// spec 11-federation §3.3: network, clock skew and age.
func TestVerifyChecks(t *testing.T) {
	r := signed(t, nodeKey(t, "a"))
	tests := []struct {
		network string
		now     time.Time
		want    error
	}{
		{"testnet-1", t0, nil},
		{"testnet-2", t0, noderecord.ErrWrongNetwork},
		{"testnet-1", t0.Add(-wire.MaxClockSkew), nil},
		{"testnet-1", t0.Add(-wire.MaxClockSkew - time.Second), noderecord.ErrFuture},
		{"testnet-1", t0.Add(wire.MaxRecordAge), nil},
		{"testnet-1", t0.Add(wire.MaxRecordAge + time.Second), noderecord.ErrExpired},
	}
	for _, tt := range tests {
		err := noderecord.Verify(r, tt.network, tt.now, wire.MaxClockSkew)
		if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
			t.Errorf("Verify(%q, now %+ds) = %v, want %v", tt.network, tt.now.Unix()-t0.Unix(), err, tt.want)
		}
	}
}

// spec 11-federation §3.1: Sign refuses records out of bounds.
func TestSignBounds(t *testing.T) {
	k := nodeKey(t, "a")
	tests := []struct {
		name string
		mod  func(r *noderecord.Record)
	}{
		{"empty network", func(r *noderecord.Record) { r.Network = "" }},
		{"upper-case network", func(r *noderecord.Record) { r.Network = "Main" }},
		{"long network", func(r *noderecord.Record) { r.Network = strings.Repeat("a", wire.MaxNetworkID+1) }},
		{"too many addrs", func(r *noderecord.Record) { r.Addrs = make([][]byte, wire.MaxRecordAddrs+1) }},
		{"empty addr", func(r *noderecord.Record) { r.Addrs = [][]byte{{}} }},
		{"long addr", func(r *noderecord.Record) { r.Addrs = [][]byte{make([]byte, wire.MaxRecordAddr+1)} }},
		{"long software", func(r *noderecord.Record) { r.Software = strings.Repeat("v", wire.MaxRecordSoftware+1) }},
		{"control in software", func(r *noderecord.Record) { r.Software = "a\nb" }},
		{"too many protocols", func(r *noderecord.Record) { r.Protocols = make([]string, wire.MaxRecordProtocols+1) }},
		{"empty protocol", func(r *noderecord.Record) { r.Protocols = []string{""} }},
		{"registration", func(r *noderecord.Record) { r.Policy.Registration = 3 }},
	}
	for _, tt := range tests {
		r := record()
		tt.mod(r)
		if err := noderecord.Sign(k, r); !errors.Is(err, noderecord.ErrInvalid) {
			t.Errorf("Sign(%s) = %v, want ErrInvalid", tt.name, err)
		}
	}
	long := record()
	for i := 0; i < wire.MaxRecordAddrs; i++ {
		long.Addrs = append(long.Addrs[:i], bytes.Repeat([]byte{1}, wire.MaxRecordAddr))
	}
	long.Software = strings.Repeat("s", wire.MaxRecordSoftware)
	long.Protocols = nil
	for i := 0; i < wire.MaxRecordProtocols; i++ {
		long.Protocols = append(long.Protocols, strings.Repeat("p", wire.MaxRecordProtocol))
	}
	long.Network = strings.Repeat("n", wire.MaxNetworkID)
	if err := noderecord.Sign(k, long); err != nil {
		t.Fatal(err)
	}
	b := marshal(t, long)
	if len(b) > wire.MaxRecordSize {
		t.Fatalf("largest record is %d bytes, above MaxRecordSize %d", len(b), wire.MaxRecordSize)
	}
	if _, err := noderecord.Parse(b); err != nil {
		t.Fatalf("Parse(largest record) = %v", err)
	}
}

// spec 11-federation §3.1: Parse is strict; every failure is a *wire.ParseError.
func TestParseStrict(t *testing.T) {
	b := marshal(t, signed(t, nodeKey(t, "a")))
	bad := map[string][]byte{
		"empty":      nil,
		"truncated":  b[:len(b)-1],
		"trailing":   append(append([]byte{}, b...), 0),
		"version":    append([]byte{2}, b[1:]...),
		"oversized":  make([]byte, wire.MaxRecordSize+1),
		"bad net":    append([]byte{1, 0, 1, 'A'}, b[4+len("testnet-1")-1:]...),
		"registered": func() []byte { c := bytes.Clone(b); c[len(c)-64-8-4-4-1] = 9; return c }(),
	}
	for name, in := range bad {
		_, err := noderecord.Parse(in)
		var pe *wire.ParseError
		if !errors.As(err, &pe) || !errors.Is(err, wire.ErrMalformed) {
			t.Errorf("Parse(%s) = %v, want a *wire.ParseError", name, err)
		}
	}
}

func TestRegistrationText(t *testing.T) {
	for _, r := range []noderecord.Registration{noderecord.RegistrationOpen, noderecord.RegistrationInvite, noderecord.RegistrationClosed} {
		got, err := noderecord.ParseRegistration(r.String())
		if err != nil || got != r {
			t.Errorf("ParseRegistration(%q) = %v, %v, want %v", r.String(), got, err, r)
		}
	}
	if _, err := noderecord.ParseRegistration("public"); !errors.Is(err, noderecord.ErrInvalid) {
		t.Errorf("ParseRegistration(public) = %v, want ErrInvalid", err)
	}
}

// FuzzParse: every failure is a *wire.ParseError; whatever parses re-encodes
// to the same bytes and can be verified without panicking.
func FuzzParse(f *testing.F) {
	k := nodeKey(f, "fuzz")
	f.Add(marshal(f, signed(f, k)))
	e := &noderecord.Record{Network: "x"}
	if err := noderecord.Sign(k, e); err != nil {
		f.Fatal(err)
	}
	f.Add(marshal(f, e))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := noderecord.Parse(b)
		if err != nil {
			var pe *wire.ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Parse error %v (%T) is not a *wire.ParseError", err, err)
			}
			return
		}
		again, err := r.MarshalBinary()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("Marshal(Parse(b)) = %x, %v, want %x", again, err, b)
		}
		_ = noderecord.Verify(r, r.Network, t0, wire.MaxClockSkew)
	})
}
