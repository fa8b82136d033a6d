package room_test

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/room"
	"github.com/parley-chat/parley/protocol/wire"
)

// spec 06-room-keys §1-2: both members derive the same room ID, avoid key
// and chains, with send and receive swapped; the values are those of the
// reference implementation.
func TestDeriveAgrees(t *testing.T) {
	for _, label := range []string{"one", "two", "three", "four"} {
		a, b, ka, kb := pair(t, label)
		ref := refDerive(t, ka, kb.Public())
		if a.ID() != b.ID() || a.ID() != keys.RoomID(ref.id) {
			t.Errorf("%s: ID() = %v and %v, want %x from both", label, a.ID(), b.ID(), ref.id)
		}
		if a.AvoidKey() != b.AvoidKey() || a.AvoidKey() != ref.avoid {
			t.Errorf("%s: AvoidKey() differs between the members or from the reference", label)
		}
		if a.Me() != ka.Public().Sign || a.Partner() != kb.Public().Sign || b.Me() != a.Partner() || b.Partner() != a.Me() {
			t.Errorf("%s: Me/Partner = %v/%v and %v/%v, want the two signing keys swapped", label, a.Me(), a.Partner(), b.Me(), b.Partner())
		}
		// spec 06-room-keys §2.2: direction 0 runs from the lower signing
		// key to the higher.
		for _, side := range []struct {
			r   *room.Room
			pub keys.TicketPublic
		}{{a, ka.Public()}, {b, kb.Public()}} {
			want, _ := refChain(t, ref.chain[ref.sendDir(side.pub)], 3)
			for i, w := range want {
				seq, mk := side.r.NextSend()
				if seq != uint64(i) || mk.Key != w.Key || mk.Nonce != w.Nonce {
					t.Errorf("%s: NextSend() #%d = %d, %x/%x, want %d, %x/%x", label, i, seq, mk.Key, mk.Nonce, i, w.Key, w.Nonce)
				}
			}
		}
	}
}

// spec 06-room-keys §3-4: two members exchange many messages both ways.
func TestConversation(t *testing.T) {
	a, b, _, _ := pair(t, "conversation")
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		from, to := a, b
		if rnd.IntN(2) == 1 {
			from, to = b, a
		}
		m := send(t, from, fmt.Sprintf("message %d", i))
		if err := receive(t, to, m); err != nil {
			t.Fatalf("message %d: Receive(%d) = %v, want nil", i, m.seq, err)
		}
	}
	if a.NextSendSeq() != b.NextRecvSeq() || b.NextSendSeq() != a.NextRecvSeq() {
		t.Errorf("counters a %d/%d, b %d/%d, want each send counter equal to the other's receive counter",
			a.NextSendSeq(), a.NextRecvSeq(), b.NextSendSeq(), b.NextRecvSeq())
	}
	if a.NextSendSeq()+b.NextSendSeq() != 2000 {
		t.Errorf("sent %d messages in all, want 2000", a.NextSendSeq()+b.NextSendSeq())
	}
	if a.Skipped() != 0 || b.Skipped() != 0 {
		t.Errorf("Skipped() = %d, %d after in-order delivery, want 0", a.Skipped(), b.Skipped())
	}
}

// spec 06-room-keys §2.2-3: the two directions use different chains, and no
// message key or nonce is ever used twice.
func TestDirectionSeparation(t *testing.T) {
	a, b, _, _ := pair(t, "directions")
	const n = 500
	seenKey := make(map[[32]byte]string)
	seenNonce := make(map[[24]byte]string)
	for i := range n {
		for _, s := range []struct {
			name string
			r    *room.Room
		}{{"a", a}, {"b", b}} {
			seq, mk := s.r.NextSend()
			where := fmt.Sprintf("%s seq %d", s.name, seq)
			if prev, ok := seenKey[mk.Key]; ok {
				t.Fatalf("message key of %s reuses that of %s", where, prev)
			}
			if prev, ok := seenNonce[mk.Nonce]; ok {
				t.Fatalf("nonce of %s reuses that of %s", where, prev)
			}
			seenKey[mk.Key], seenNonce[mk.Nonce] = where, where
			if seq != uint64(i) {
				t.Fatalf("%s: NextSend() seq = %d, want %d", s.name, seq, i)
			}
		}
	}
	// Chain states differ too.
	sa, sb := marshal(t, a), marshal(t, b)
	if bytes.Equal(sa, sb) {
		t.Fatal("both members have the same state")
	}
}

// spec 06-room-keys §4: messages delivered in any order within the window
// are each delivered once, and every replay is refused.
func TestOutOfOrder(t *testing.T) {
	for _, n := range []int{2, 10, 100, wire.MaxSkipAhead + 1} {
		for seed := range uint64(3) {
			a, b, _, _ := pair(t, fmt.Sprintf("out of order %d %d", n, seed))
			msgs := make([]message, n)
			for i := range msgs {
				msgs[i] = send(t, a, fmt.Sprintf("m%d", i))
			}
			rand.New(rand.NewPCG(seed, uint64(n))).Shuffle(n, func(i, j int) { msgs[i], msgs[j] = msgs[j], msgs[i] })
			for _, m := range msgs {
				if err := receive(t, b, m); err != nil {
					t.Fatalf("n=%d seed=%d: Receive(%d) = %v, want nil", n, seed, m.seq, err)
				}
			}
			if b.Skipped() != 0 || b.NextRecvSeq() != uint64(n) {
				t.Errorf("n=%d: after all: Skipped() = %d, NextRecvSeq() = %d, want 0, %d", n, b.Skipped(), b.NextRecvSeq(), n)
			}
			for _, m := range msgs {
				if err := b.Receive(m.seq, mustNotOpen(t)); !errors.Is(err, room.ErrReplay) {
					t.Fatalf("n=%d: replayed Receive(%d) = %v, want ErrReplay", n, m.seq, err)
				}
			}
		}
	}
}

// spec 06-room-keys §4: a replay is refused whether its key came from the
// chain or from the skipped store, and before open is called.
func TestReplay(t *testing.T) {
	a, b, _, _ := pair(t, "replay")
	var msgs []message
	for i := range 6 {
		msgs = append(msgs, send(t, a, fmt.Sprintf("m%d", i)))
	}
	// Deliver 0, 1 in order, 4 (skipping 2, 3), then 2.
	for _, i := range []int{0, 1, 4, 2} {
		if err := receive(t, b, msgs[i]); err != nil {
			t.Fatalf("Receive(%d) = %v, want nil", i, err)
		}
	}
	tests := []struct {
		name string
		seq  uint64
		want error
	}{
		{"in order, first", 0, room.ErrReplay},
		{"in order", 1, room.ErrReplay},
		{"the message that skipped", 4, room.ErrReplay},
		{"delivered from the skipped store", 2, room.ErrReplay},
	}
	for _, tt := range tests {
		before := marshal(t, b)
		if err := b.Receive(tt.seq, mustNotOpen(t)); !errors.Is(err, tt.want) {
			t.Errorf("%s: Receive(%d) = %v, want %v", tt.name, tt.seq, err, tt.want)
		}
		if !bytes.Equal(before, marshal(t, b)) {
			t.Errorf("%s: a refused replay changed the state", tt.name)
		}
	}
	// The messages never delivered still are.
	for _, i := range []int{3, 5} {
		if err := receive(t, b, msgs[i]); err != nil {
			t.Errorf("Receive(%d) = %v, want nil", i, err)
		}
	}
}

// spec 06-room-keys §4: a message more than MaxSkipAhead past the next
// expected one is refused; one exactly MaxSkipAhead past is accepted.
func TestTooFarAhead(t *testing.T) {
	a, b, _, _ := pair(t, "ahead")
	msgs := make([]message, wire.MaxSkipAhead+2)
	for i := range msgs {
		msgs[i] = send(t, a, fmt.Sprintf("m%d", i))
	}
	tests := []struct {
		seq  uint64
		want error
	}{
		{wire.MaxSkipAhead + 1, room.ErrTooFarAhead},
		{wire.MaxSkipAhead + 1000, room.ErrTooFarAhead},
		{room.MaxSeq, room.ErrTooFarAhead},
		{room.MaxSeq + 1, room.ErrTooFarAhead},
		{math.MaxUint64, room.ErrTooFarAhead},
	}
	before := marshal(t, b)
	for _, tt := range tests {
		if err := b.Receive(tt.seq, mustNotOpen(t)); !errors.Is(err, tt.want) {
			t.Errorf("Receive(%d) at 0 = %v, want %v", tt.seq, err, tt.want)
		}
	}
	if !bytes.Equal(before, marshal(t, b)) {
		t.Error("refused messages changed the state")
	}
	// Exactly MaxSkipAhead ahead is accepted.
	if err := receive(t, b, msgs[wire.MaxSkipAhead]); err != nil {
		t.Fatalf("Receive(MaxSkipAhead) = %v, want nil", err)
	}
	if b.Skipped() != wire.MaxSkipAhead {
		t.Errorf("Skipped() = %d, want %d", b.Skipped(), wire.MaxSkipAhead)
	}
	// The window moved with the position.
	if err := receive(t, b, msgs[wire.MaxSkipAhead+1]); err != nil {
		t.Errorf("Receive(MaxSkipAhead+1) after the window moved = %v, want nil", err)
	}
	next := b.NextRecvSeq()
	if err := b.Receive(next+wire.MaxSkipAhead+1, mustNotOpen(t)); !errors.Is(err, room.ErrTooFarAhead) {
		t.Errorf("Receive(%d) at %d = %v, want ErrTooFarAhead", next+wire.MaxSkipAhead+1, next, err)
	}
}

// spec 06-room-keys §4: at most MaxSkippedKeys keys are kept; the oldest
// are evicted, and their messages are refused as too old.
func TestEviction(t *testing.T) {
	a, b, _, _ := pair(t, "eviction")
	const n = 2*wire.MaxSkipAhead + 1
	msgs := make([]message, n)
	for i := range msgs {
		msgs[i] = send(t, a, fmt.Sprintf("m%d", i))
	}
	// Jump to MaxSkipAhead: keys 0 .. MaxSkipAhead-1 are stored.
	if err := receive(t, b, msgs[wire.MaxSkipAhead]); err != nil {
		t.Fatal(err)
	}
	if got := b.Skipped(); got != wire.MaxSkipAhead {
		t.Fatalf("Skipped() = %d, want %d", got, wire.MaxSkipAhead)
	}
	// Jump again: MaxSkipAhead-1 more are skipped and as many of the
	// oldest are evicted.
	if err := receive(t, b, msgs[n-1]); err != nil {
		t.Fatal(err)
	}
	if got := b.Skipped(); got != wire.MaxSkippedKeys {
		t.Fatalf("Skipped() = %d, want %d", got, wire.MaxSkippedKeys)
	}
	evicted := 2*wire.MaxSkipAhead - 1 - wire.MaxSkippedKeys // seqs 0 .. evicted-1
	for _, tt := range []struct {
		seq  int
		want error
	}{
		{0, room.ErrTooOld},
		{evicted / 2, room.ErrTooOld},
		{evicted - 1, room.ErrTooOld},
		{wire.MaxSkipAhead, room.ErrReplay},
		{n - 1, room.ErrReplay},
	} {
		if err := b.Receive(uint64(tt.seq), mustNotOpen(t)); !errors.Is(err, tt.want) {
			t.Errorf("Receive(%d) = %v, want %v", tt.seq, err, tt.want)
		}
	}
	// Everything not evicted is still delivered, once.
	for i := evicted; i < n-1; i++ {
		if i == wire.MaxSkipAhead {
			continue
		}
		if err := receive(t, b, msgs[i]); err != nil {
			t.Fatalf("Receive(%d) = %v, want nil", i, err)
		}
	}
	if b.Skipped() != 0 {
		t.Errorf("Skipped() = %d after delivering all kept, want 0", b.Skipped())
	}
	// A message that was delivered and is below the eviction floor is
	// refused as too old: the room cannot tell it from an evicted one.
	if err := b.Receive(uint64(evicted-1), mustNotOpen(t)); !errors.Is(err, room.ErrTooOld) {
		t.Errorf("Receive(%d) = %v, want ErrTooOld", evicted-1, err)
	}
}

// spec 06-room-keys §4: a failing open callback changes nothing.
func TestFailedOpenChangesNothing(t *testing.T) {
	a, b, _, _ := pair(t, "forged")
	var msgs []message
	for i := range 10 {
		msgs = append(msgs, send(t, a, fmt.Sprintf("m%d", i)))
	}
	if err := receive(t, b, msgs[3]); err != nil { // stores 0, 1, 2
		t.Fatal(err)
	}
	tests := []struct {
		name string
		seq  uint64
	}{
		{"next in order", 4},
		{"ahead, skipping", 8},
		{"ahead by the whole window", 4 + wire.MaxSkipAhead},
		{"stored skipped key", 1},
	}
	errForged := errors.New("forged")
	for _, tt := range tests {
		before := marshal(t, b)
		called := false
		err := b.Receive(tt.seq, func(*keys.MessageKey) error { called = true; return errForged })
		if !errors.Is(err, errForged) || !called {
			t.Errorf("%s: Receive(%d) with failing open = %v (called %v), want the open error", tt.name, tt.seq, err, called)
		}
		if after := marshal(t, b); !bytes.Equal(before, after) {
			t.Errorf("%s: failing open changed the state", tt.name)
		}
		// A forged message with the wrong ciphertext fails the same way.
		forged := message{seq: tt.seq, ct: bytes.Repeat([]byte{1}, 40)}
		if err := receive(t, b, forged); !errors.Is(err, errOpen) {
			t.Errorf("%s: forged Receive(%d) = %v, want errOpen", tt.name, tt.seq, err)
		}
		if after := marshal(t, b); !bytes.Equal(before, after) {
			t.Errorf("%s: forged ciphertext changed the state", tt.name)
		}
	}
	// The genuine messages still open, each once.
	for _, i := range []int{1, 4, 8, 0, 2, 5, 6, 7, 9} {
		if err := receive(t, b, msgs[i]); err != nil {
			t.Errorf("Receive(%d) after forgeries = %v, want nil", i, err)
		}
	}
}

// spec 06-room-keys §5: the state survives MarshalBinary/UnmarshalRoom in
// the middle of a conversation, and the conversation continues.
func TestMarshalRoundTrip(t *testing.T) {
	a, b, _, _ := pair(t, "persist")
	var pending []message
	for i := range 20 {
		m := send(t, a, fmt.Sprintf("a%d", i))
		if i%3 == 0 {
			pending = append(pending, m) // delivered after the restart
			continue
		}
		if err := receive(t, b, m); err != nil {
			t.Fatal(err)
		}
		if err := receive(t, a, send(t, b, fmt.Sprintf("b%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	restore := func(r *room.Room) *room.Room {
		enc := marshal(t, r)
		r2, err := room.UnmarshalRoom(enc)
		if err != nil {
			t.Fatalf("UnmarshalRoom(MarshalBinary()) error = %v", err)
		}
		if got := marshal(t, r2); !bytes.Equal(got, enc) {
			t.Fatalf("MarshalBinary(UnmarshalRoom(x)) = %x, want %x", got, enc)
		}
		if r2.ID() != r.ID() || r2.Me() != r.Me() || r2.Partner() != r.Partner() || r2.AvoidKey() != r.AvoidKey() ||
			r2.NextSendSeq() != r.NextSendSeq() || r2.NextRecvSeq() != r.NextRecvSeq() || r2.Skipped() != r.Skipped() {
			t.Fatalf("restored room %v, want %v", r2, r)
		}
		return r2
	}
	a, b = restore(a), restore(b)
	if b.Skipped() != len(pending) {
		t.Fatalf("Skipped() = %d, want %d", b.Skipped(), len(pending))
	}
	for _, m := range pending {
		if err := receive(t, b, m); err != nil {
			t.Errorf("after restore: Receive(%d) = %v, want nil", m.seq, err)
		}
	}
	for i := range 10 {
		if err := receive(t, b, send(t, a, fmt.Sprintf("after %d", i))); err != nil {
			t.Fatal(err)
		}
		if err := receive(t, a, send(t, b, fmt.Sprintf("reply %d", i))); err != nil {
			t.Fatal(err)
		}
	}
}

// lowOrderPoints are the X25519 encodings of the points of small order
// (and their non-canonical forms, and the forms with the ignored top bit
// set): with any private key the shared secret is zero.
var lowOrderPoints = []string{
	"0000000000000000000000000000000000000000000000000000000000000000", // 0
	"0100000000000000000000000000000000000000000000000000000000000000", // 1, order 4
	"e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800", // order 8
	"5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157", // order 8
	"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // p-1, order 2
	"edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // p = 0
	"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // p+1 = 1
	"0000000000000000000000000000000000000000000000000000000000000080", // 0, top bit set
	"0100000000000000000000000000000000000000000000000000000000000080", // 1, top bit set
	"e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b880",
	"5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f11d7",
	"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
	"edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
	"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
}

// spec 06-room-keys §2.1: a low-order partner X25519 key is refused.
func TestLowOrderPeer(t *testing.T) {
	mine := ticket(t, "low order")
	other := ticket(t, "low order partner").Public()
	for _, p := range lowOrderPoints {
		theirs := other
		b, _ := hex.DecodeString(p)
		copy(theirs.DH[:], b)
		r, err := room.Derive(mine, theirs)
		if !errors.Is(err, room.ErrInvalidPeer) || !errors.Is(err, keys.ErrInvalidKey) || r != nil {
			t.Errorf("Derive(partner DH %s) = %v, %v, want nil, ErrInvalidPeer", p, r, err)
		}
	}
}

// spec 06-room-keys §2.1: nobody is paired with themselves.
func TestSelf(t *testing.T) {
	mine := ticket(t, "self")
	me, other := mine.Public(), ticket(t, "self other").Public()
	tests := []struct {
		name   string
		theirs keys.TicketPublic
	}{
		{"own ticket", me},
		{"own signing key", keys.TicketPublic{Sign: me.Sign, DH: other.DH}},
		{"own X25519 key", keys.TicketPublic{Sign: other.Sign, DH: me.DH}},
	}
	for _, tt := range tests {
		if r, err := room.Derive(mine, tt.theirs); !errors.Is(err, room.ErrSelf) || r != nil {
			t.Errorf("Derive(%s) = %v, %v, want nil, ErrSelf", tt.name, r, err)
		}
	}
	if _, err := room.Derive(mine, other); err != nil {
		t.Errorf("Derive(other) = %v, want nil", err)
	}
}

// spec 06-room-keys §6: once the chains moved on, the state holds no
// earlier chain key and no used message key: they cannot be recovered
// from it. Keys of messages still skipped are kept, and found.
func TestForwardSecrecy(t *testing.T) {
	a, b, ka, kb := pair(t, "forward secrecy")
	ref := refDerive(t, ka, kb.Public())
	const n = 40
	mks, cks := refChain(t, ref.chain[ref.sendDir(ka.Public())], n)
	back, backCKs := refChain(t, ref.chain[ref.sendDir(kb.Public())], 5)

	msgs := make([]message, n)
	for i := range msgs {
		msgs[i] = send(t, a, fmt.Sprintf("m%d", i))
	}
	stillSkipped := map[int]bool{7: true, 20: true, 21: true}
	for i := range n {
		if stillSkipped[i] {
			continue
		}
		if err := receive(t, b, msgs[i]); err != nil {
			t.Fatal(err)
		}
	}
	for range 5 {
		if err := receive(t, a, send(t, b, "back")); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []struct {
		name  string
		state []byte
	}{{"sender", marshal(t, a)}, {"receiver", marshal(t, b)}} {
		if !bytes.Contains(s.state, cks[n][:]) && s.name == "sender" {
			t.Errorf("%s: current send chain key not found: the search is broken", s.name)
		}
		for i := range n {
			if bytes.Contains(s.state, cks[i][:]) {
				t.Errorf("%s: state contains chain key CK_%d", s.name, i)
			}
			used := !stillSkipped[i]
			if has := bytes.Contains(s.state, mks[i].Key[:]); has && (used || s.name == "sender") {
				t.Errorf("%s: state contains the message key of seq %d", s.name, i)
			} else if !has && !used && s.name == "receiver" {
				t.Errorf("%s: skipped key of seq %d not kept", s.name, i)
			}
			if bytes.Contains(s.state, mks[i].Nonce[:]) && (used || s.name == "sender") {
				t.Errorf("%s: state contains the nonce of seq %d", s.name, i)
			}
		}
		for i := range 5 {
			if bytes.Contains(s.state, backCKs[i][:]) || bytes.Contains(s.state, back[i].Key[:]) {
				t.Errorf("%s: state contains reverse-direction key %d", s.name, i)
			}
		}
		if bytes.Contains(s.state, ref.root[:]) || bytes.Contains(s.state, ref.shared) {
			t.Errorf("%s: state contains the room root or the shared secret", s.name)
		}
	}
}

// Room's text forms never contain key material.
func TestPrintsNoSecrets(t *testing.T) {
	a, b, ka, kb := pair(t, "print")
	ref := refDerive(t, ka, kb.Public())
	_ = receive(t, b, send(t, a, "x"))
	secrets := [][]byte{ref.chain[0][:], ref.chain[1][:], ref.avoid[:], ref.root[:]}
	_, cks := refChain(t, ref.chain[0], 2)
	_, cks1 := refChain(t, ref.chain[1], 2)
	secrets = append(secrets, cks[1][:], cks1[1][:])
	for _, format := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%q"} {
		for _, v := range []any{a, *a, b, *b} {
			out := fmt.Sprintf(format, v)
			for _, s := range secrets {
				for _, enc := range []string{hex.EncodeToString(s), strings.ToUpper(hex.EncodeToString(s)), strings.Trim(fmt.Sprint(s[:8]), "[]"), string(s[:8])} {
					if strings.Contains(out, enc) {
						t.Errorf("Sprintf(%q, room) = %q contains key material", format, out)
					}
				}
			}
			if !strings.Contains(out, "room") && format != "%x" && format != "%X" {
				t.Errorf("Sprintf(%q, room) = %q, want the room's description", format, out)
			}
		}
	}
}

// Wipe overwrites the room and makes further use panic.
func TestWipe(t *testing.T) {
	a, _, _, _ := pair(t, "wipe")
	a.Wipe()
	for name, f := range map[string]func(){
		"NextSend":      func() { a.NextSend() },
		"Receive":       func() { _ = a.Receive(0, mustNotOpen(t)) },
		"MarshalBinary": func() { _, _ = a.MarshalBinary() },
		"AvoidKey":      func() { a.AvoidKey() },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s after Wipe did not panic", name)
				}
			}()
			f()
		}()
	}
}

// spec 06-room-keys §3: the ratchet step computes exactly HKDF-Expand and
// HMAC-SHA256 as specified.
func TestStepIsHKDF(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 4))
	for i := range 1000 {
		var ck [32]byte
		for j := range ck {
			ck[j] = byte(rnd.Uint32())
		}
		mk, next := room.Step(&ck)
		wmk, wnext := room.StepHKDF(&ck)
		if mk.Key != wmk.Key || mk.Nonce != wmk.Nonce || next != wnext {
			t.Fatalf("step(%x) = %x/%x/%x, want %x/%x/%x", ck, mk.Key, mk.Nonce, next, wmk.Key, wmk.Nonce, wnext)
		}
		if i == 0 {
			rmks, rcks := refChain(t, ck, 1)
			if mk.Key != rmks[0].Key || mk.Nonce != rmks[0].Nonce || next != rcks[1] {
				t.Fatalf("step(%x) differs from the reference chain", ck)
			}
		}
	}
}

// spec 06-room-keys §5: the state encoding has the documented layout.
func TestStateLayout(t *testing.T) {
	a, b, ka, kb := pair(t, "layout")
	ref := refDerive(t, ka, kb.Public())
	var msgs []message
	for i := range 5 {
		msgs = append(msgs, send(t, b, fmt.Sprintf("m%d", i)))
	}
	send(t, a, "x")
	send(t, a, "y")
	if err := receive(t, a, msgs[3]); err != nil {
		t.Fatal(err)
	}
	_, sendCKs := refChain(t, ref.chain[ref.sendDir(ka.Public())], 2)
	recvMKs, recvCKs := refChain(t, ref.chain[ref.sendDir(kb.Public())], 4)
	st := marshal(t, a)
	u64 := func(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }
	id, me, partner, avoid := a.ID(), a.Me(), a.Partner(), a.AvoidKey()
	want := [][]byte{
		{room.StateVersion}, id[:], me[:], partner[:], avoid[:],
		sendCKs[2][:], u64(2), recvCKs[4][:], u64(4), u64(0), {0, 3},
	}
	for i := range 3 {
		want = append(want, u64(uint64(i)), recvMKs[i].Key[:], recvMKs[i].Nonce[:])
	}
	if w := bytes.Join(want, nil); !bytes.Equal(st, w) {
		t.Errorf("MarshalBinary() =\n%x\nwant\n%x", st, w)
	}
	if len(st) != 219+3*64 {
		t.Errorf("len(MarshalBinary()) = %d, want %d", len(st), 219+3*64)
	}
}
