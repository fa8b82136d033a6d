package lottery_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/parley-chat/parley/protocol/lottery"
	"github.com/parley-chat/parley/protocol/stamp"
	"github.com/parley-chat/parley/protocol/wire"
)

// labeled builds Labeled(label, parts...) by hand, to check the package
// against the spec's formulas rather than against itself.
func labeled(label string, parts ...[]byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(len(label)))
	b = append(b, label...)
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// spec 07-lottery §2.1: trim, lower-case, hash, truncate.
func TestInterestTag(t *testing.T) {
	same := []struct{ a, b string }{
		{"chess", "chess"},
		{"  Chess\n", "chess"},
		{"CHESS", "chess"},
		{"\u00a0Échecs\t", "échecs"},         // NBSP is white space; É lower-cases
		{"ΣΊΣΥΦΟΣ", "σίσυφοσ"},               // simple mapping: no final sigma
		{"Straße", "straße"},                 // no special casing: ß stays
		{"a\xffb", "a\ufffdb"},               // invalid UTF-8 becomes U+FFFD
		{"Go Programming", "go programming"}, // inner space is kept
	}
	for _, c := range same {
		if lottery.InterestTag(c.a) != lottery.InterestTag(c.b) {
			t.Errorf("InterestTag(%q) != InterestTag(%q), want equal", c.a, c.b)
		}
	}
	differ := []struct{ a, b string }{
		{"chess", "chess club"},
		{"go programming", "goprogramming"},
		{"strasse", "straße"},
		{"chess", ""},
	}
	for _, c := range differ {
		if lottery.InterestTag(c.a) == lottery.InterestTag(c.b) {
			t.Errorf("InterestTag(%q) == InterestTag(%q), want different", c.a, c.b)
		}
	}
	h := sha256.Sum256(labeled(wire.LabelInterestTag, []byte("chess")))
	if got := lottery.InterestTag(" Chess "); !bytes.Equal(got[:], h[:16]) {
		t.Errorf("InterestTag(\" Chess \") = %x, want %x", got, h[:16])
	}
}

// spec 07-lottery §2.2: HMAC-SHA256 under the avoid key, per epoch.
func TestAvoidTag(t *testing.T) {
	var k1, k2 [32]byte
	k1[0], k2[0] = 1, 2
	m := hmac.New(sha256.New, k1[:])
	m.Write(labeled(wire.LabelAvoidTag, binary.BigEndian.AppendUint64(nil, 77)))
	if got, want := lottery.AvoidTag(k1, 77), m.Sum(nil)[:16]; !bytes.Equal(got[:], want) {
		t.Errorf("AvoidTag(k1, 77) = %x, want %x", got, want)
	}
	if lottery.AvoidTag(k1, 77) == lottery.AvoidTag(k1, 78) {
		t.Error("AvoidTag(k, 77) == AvoidTag(k, 78): tags of different epochs must differ")
	}
	if lottery.AvoidTag(k1, 77) == lottery.AvoidTag(k2, 77) {
		t.Error("AvoidTag(k1, 77) == AvoidTag(k2, 77): tags of different rooms must differ")
	}
}

// spec 07-lottery §3.1, §3.2: the encoding round-trips; the ID covers the
// leaf, not the stamp.
func TestTicketEncoding(t *testing.T) {
	r := rng("encoding")
	n := newNetwork(t, r, 3, 1)
	ts := n.issue(t, r, 0, 2, []lottery.Tag{{3}, {1}}, []lottery.Tag{{9}})
	tk := ts[0]
	b := mustMarshal(t, tk)
	back, err := lottery.ParseTicket(b)
	if err != nil {
		t.Fatalf("ParseTicket(Marshal(t)) = %v", err)
	}
	if again := mustMarshal(t, back); !bytes.Equal(again, b) {
		t.Fatalf("Marshal(ParseTicket(b)) = %x, want %x", again, b)
	}
	if err := back.Verify(); err != nil {
		t.Fatalf("Verify(parsed) = %v", err)
	}
	leaf := tk.Leaf()
	if !bytes.Equal(b[:len(leaf)], leaf) || b[len(leaf)] != 1 {
		t.Fatal("encoding does not start with the leaf and a presence byte 1")
	}
	if got, want := tk.ID(), sha256.Sum256(labeled(wire.LabelTicket, leaf)); got != want {
		t.Fatalf("ID() = %x, want %x", got, want)
	}
	unstamped := *tk
	unstamped.Stamp = nil
	if unstamped.ID() != tk.ID() {
		t.Fatal("the stamp changes the ticket ID")
	}
	if got := mustMarshal(t, &unstamped); !bytes.Equal(got, append(bytes.Clone(leaf), 0)) {
		t.Fatalf("Marshal(unstamped) = %x, want leaf || 00", got)
	}
	if ts[0].ID() == ts[1].ID() {
		t.Fatal("two tickets with different keys have one ID")
	}
	// Longest ticket: all tags and the longest stamp path.
	var long lottery.Ticket
	for i := range wire.MaxInterestTags {
		long.Interests = append(long.Interests, lottery.Tag{byte(i)})
	}
	for i := range wire.MaxAvoidTags {
		long.Avoid = append(long.Avoid, lottery.Tag{byte(i)})
	}
	long.Stamp = &stamp.Stamp{Index: 0, Count: wire.MaxStampBatch, Path: make([][32]byte, wire.MaxStampPath)}
	if got := len(mustMarshal(t, &long)); got != lottery.MaxTicketSize {
		t.Errorf("len(longest ticket) = %d, want MaxTicketSize %d", got, lottery.MaxTicketSize)
	}
	// Non-canonical tickets do not encode.
	for _, bad := range []lottery.Ticket{
		{Interests: []lottery.Tag{{2}, {1}}},
		{Avoid: []lottery.Tag{{1}, {1}}},
		{Interests: make([]lottery.Tag, wire.MaxInterestTags+1)},
	} {
		if _, err := bad.MarshalBinary(); !errors.Is(err, lottery.ErrBadTicket) {
			t.Errorf("MarshalBinary(%v, %v) = %v, want ErrBadTicket", bad.Interests, bad.Avoid, err)
		}
	}
}

// Offsets in a ticket encoding with 2 interest tags and 1 avoid tag.
const (
	offInterestCount = 1 + 8 + 32 + 32 + 32
	offInterests     = offInterestCount + 2
	offAvoidCount    = offInterests + 2*16
	offPresence      = offAvoidCount + 2 + 16
	offStampCount    = offPresence + 1 + 1 + 32 + 8 + 4
)

// malformedTickets are mutations of a valid encoding (2 interest tags, 1
// avoid tag, stamped in a batch of 2) that ParseTicket must refuse.
var malformedTickets = []struct {
	name string
	mut  func(b []byte) []byte
}{
	{"empty", func(b []byte) []byte { return nil }},
	{"truncated", func(b []byte) []byte { return b[:len(b)-1] }},
	{"truncated leaf", func(b []byte) []byte { return b[:offPresence] }},
	{"trailing byte", func(b []byte) []byte { return append(b, 0) }},
	{"version 2", func(b []byte) []byte { b[0] = 2; return b }},
	{"9 interest tags", func(b []byte) []byte { b[offInterestCount+1] = wire.MaxInterestTags + 1; return b }},
	{"interest count 65535", func(b []byte) []byte { b[offInterestCount], b[offInterestCount+1] = 0xff, 0xff; return b }},
	{"interest tags out of order", func(b []byte) []byte {
		x := bytes.Clone(b[offInterests : offInterests+16])
		copy(b[offInterests:], b[offInterests+16:offInterests+32])
		copy(b[offInterests+16:], x)
		return b
	}},
	{"repeated interest tag", func(b []byte) []byte {
		copy(b[offInterests+16:offInterests+32], b[offInterests:offInterests+16])
		return b
	}},
	{"9 avoid tags", func(b []byte) []byte { b[offAvoidCount+1] = wire.MaxAvoidTags + 1; return b }},
	{"stamp presence byte 2", func(b []byte) []byte { b[offPresence] = 2; return b }},
	{"stamp absent, stamp bytes follow", func(b []byte) []byte { b[offPresence] = 0; return b }},
	{"stamp version 2", func(b []byte) []byte { b[offPresence+1] = 2; return b }},
	{"stamp count 0", func(b []byte) []byte { b[offStampCount+3] = 0; return b }},
	{"stamp count 3 (path length mismatch)", func(b []byte) []byte { b[offStampCount+3] = 3; return b }},
	{"longer than MaxTicketSize", func(b []byte) []byte { return append(b, make([]byte, lottery.MaxTicketSize)...) }},
}

// spec 07-lottery §3.2: decoders refuse everything but the canonical
// encoding, with a *wire.ParseError.
func TestParseTicketMalformed(t *testing.T) {
	r := rng("malformed")
	n := newNetwork(t, r, 3, 1)
	good := mustMarshal(t, n.issue(t, r, 0, 2, []lottery.Tag{{1}, {2}}, []lottery.Tag{{3}})[0])
	if _, err := lottery.ParseTicket(good); err != nil {
		t.Fatalf("ParseTicket(good) = %v", err)
	}
	for _, c := range malformedTickets {
		b := c.mut(bytes.Clone(good))
		_, err := lottery.ParseTicket(b)
		var pe *wire.ParseError
		if !errors.As(err, &pe) {
			t.Errorf("ParseTicket(%s) = %v, want a *wire.ParseError", c.name, err)
		}
	}
}

// spec 07-lottery §3.3: one signature per batch; only the home node
// stamps; every change to the leaf breaks the stamp.
func TestStampTickets(t *testing.T) {
	r := rng("stamp")
	n := newNetwork(t, r, 3, 2)
	ts := n.issue(t, r, 0, 5, []lottery.Tag{{3}, {1}, {3}}, nil)
	for i, tk := range ts {
		if err := tk.Verify(); err != nil {
			t.Errorf("Verify(ticket %d) = %v", i, err)
		}
		if tk.Stamp.Sig != ts[0].Stamp.Sig || tk.Stamp.Count != 5 {
			t.Errorf("ticket %d: stamp is not from the one batch signature", i)
		}
		if len(tk.Interests) != 2 {
			t.Errorf("ticket %d: StampTickets left tags %v, want sorted and unique", i, tk.Interests)
		}
	}

	// Refusals leave every ticket unchanged.
	home0 := newTicket(t, r, 3, n.nodes[0].Public(), []lottery.Tag{{2}, {1}}, nil)
	home0.Interests = []lottery.Tag{{2}, {1}}
	home1 := newTicket(t, r, 3, n.nodes[1].Public(), nil, nil)
	tooMany := newTicket(t, r, 3, n.nodes[0].Public(), nil, nil)
	for i := range wire.MaxAvoidTags + 1 {
		tooMany.Avoid = append(tooMany.Avoid, lottery.Tag{byte(i)})
	}
	refusals := []struct {
		name string
		ts   []*lottery.Ticket
		want error
	}{
		{"ticket of another home", []*lottery.Ticket{home0, home1}, lottery.ErrBadTicket},
		{"too many avoid tags", []*lottery.Ticket{home0, tooMany}, lottery.ErrBadTicket},
		{"empty batch", nil, stamp.ErrBatchSize},
	}
	for _, c := range refusals {
		if err := lottery.StampTickets(n.nodes[0], t0, c.ts); !errors.Is(err, c.want) {
			t.Errorf("StampTickets(%s) = %v, want %v", c.name, err, c.want)
		}
		if home0.Stamp != nil || home0.Interests[0] != (lottery.Tag{2}) {
			t.Fatalf("StampTickets(%s) changed a ticket although it failed", c.name)
		}
	}

	// Every field of the leaf is covered.
	other := newTicket(t, r, 3, n.nodes[0].Public(), nil, nil)
	tamper := []struct {
		name string
		f    func(tk *lottery.Ticket)
	}{
		{"epoch", func(tk *lottery.Ticket) { tk.Epoch++ }},
		{"home", func(tk *lottery.Ticket) { tk.Home = n.nodes[1].Public() }},
		{"sign key", func(tk *lottery.Ticket) { tk.Keys.Sign = other.Keys.Sign }},
		{"dh key", func(tk *lottery.Ticket) { tk.Keys.DH = other.Keys.DH }},
		{"interest added", func(tk *lottery.Ticket) { tk.Interests = append(tk.Interests, lottery.Tag{0xff}) }},
		{"avoid tag added", func(tk *lottery.Ticket) { tk.Avoid = []lottery.Tag{{1}} }},
		{"unstamped", func(tk *lottery.Ticket) { tk.Stamp = nil }},
		{"stamp signature", func(tk *lottery.Ticket) { tk.Stamp.Sig[0] ^= 1 }},
		{"stamp index", func(tk *lottery.Ticket) { tk.Stamp.Index = 1 }},
		{"stamp time", func(tk *lottery.Ticket) { tk.Stamp.Time++ }},
		{"unsorted tags", func(tk *lottery.Ticket) { tk.Interests[0], tk.Interests[1] = tk.Interests[1], tk.Interests[0] }},
	}
	for _, c := range tamper {
		tk := *ts[0]
		s := *ts[0].Stamp
		tk.Stamp = &s
		tk.Interests = append([]lottery.Tag(nil), ts[0].Interests...)
		c.f(&tk)
		if err := tk.Verify(); !errors.Is(err, lottery.ErrBadTicket) {
			t.Errorf("Verify(ticket with changed %s) = %v, want ErrBadTicket", c.name, err)
		}
	}

	// A node cannot stamp for another: node 1 stamps a ticket naming
	// node 0 as home by stamping it as its own and relabelling it.
	forged := newTicket(t, r, 3, n.nodes[1].Public(), nil, nil)
	if err := lottery.StampTickets(n.nodes[1], t0, []*lottery.Ticket{forged}); err != nil {
		t.Fatal(err)
	}
	forged.Home = n.nodes[0].Public()
	if err := forged.Verify(); !errors.Is(err, lottery.ErrBadTicket) {
		t.Errorf("Verify(stamp of another node) = %v, want ErrBadTicket", err)
	}
}
