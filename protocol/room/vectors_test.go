package room_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"

	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/room"
	"github.com/parley-chat/parley/protocol/wire"
	"github.com/parley-chat/parley/spec/vectortest"
)

// vector is one entry of spec/testdata/room.json (spec 06-room-keys §8).
// Kind "derive": Derive from ticket A's seeds and ticket B's public keys.
// Kind "script": derive from both tickets' seeds, run the steps, compare the
// final states. Kind "state": decode a state encoding.
type vector struct {
	Name string `json:"name"`
	Kind string `json:"kind"`

	ASignSeed string `json:"a_sign_seed,omitempty"`
	ADHSeed   string `json:"a_dh_seed,omitempty"`
	BSignSeed string `json:"b_sign_seed,omitempty"`
	BDHSeed   string `json:"b_dh_seed,omitempty"`
	ASign     string `json:"a_sign,omitempty"`
	ADH       string `json:"a_dh,omitempty"`
	BSign     string `json:"b_sign,omitempty"`
	BDH       string `json:"b_dh,omitempty"`

	SharedSecret string   `json:"shared_secret,omitempty"`
	RoomID       string   `json:"room_id,omitempty"`
	Root         string   `json:"root,omitempty"`
	Chain0       string   `json:"chain_0,omitempty"`
	Chain1       string   `json:"chain_1,omitempty"`
	AvoidKey     string   `json:"avoid_key,omitempty"`
	AToB         []keyVec `json:"a_to_b,omitempty"`
	BToA         []keyVec `json:"b_to_a,omitempty"`

	Script       []scriptStep `json:"script,omitempty"`
	StateA       string       `json:"state_a,omitempty"`
	StateB       string       `json:"state_b,omitempty"`
	StateBSHA256 string       `json:"state_b_sha256,omitempty"`

	State string `json:"state,omitempty"`
	Error string `json:"error,omitempty"`
}

// keyVec is one message key and nonce of a chain.
type keyVec struct {
	Seq   uint64 `json:"seq"`
	Key   string `json:"key"`
	Nonce string `json:"nonce"`
}

// scriptStep is one action in a "script" vector. Op "send": party calls
// NextSend, which returns seq and key/nonce. Op "send_many": party calls
// NextSend count times (keys not listed). Op "receive": party calls Receive
// with seq; the open callback fails if forged is set, and otherwise must be
// offered key/nonce; result is "ok" or an error class.
type scriptStep struct {
	Op     string `json:"op"`
	Party  string `json:"party"`
	Seq    uint64 `json:"seq"`
	Count  int    `json:"count,omitempty"`
	Forged bool   `json:"forged,omitempty"`
	Key    string `json:"key,omitempty"`
	Nonce  string `json:"nonce,omitempty"`
	Result string `json:"result,omitempty"`
}

// errForgedVector is the open callback's error for forged script steps.
var errForgedVector = errors.New("test: forged message")

// errorClass names err by the error classes of spec 06-room-keys §7.
func errorClass(err error) string {
	for _, c := range []struct {
		err  error
		name string
	}{
		{nil, "ok"},
		{wire.ErrMalformed, "malformed"},
		{room.ErrSelf, "self"},
		{room.ErrInvalidPeer, "invalid_peer"},
		{room.ErrReplay, "replay"},
		{room.ErrTooOld, "too_old"},
		{room.ErrTooFarAhead, "too_far_ahead"},
		{errForgedVector, "open_failed"},
	} {
		if errors.Is(err, c.err) {
			return c.name
		}
	}
	return fmt.Sprintf("unexpected error %v", err)
}

func hx(b []byte) string { return hex.EncodeToString(b) }

func unhex(t *testing.T, name, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("%s: bad hex: %v", name, err)
	}
	return b
}

func unhex32(t *testing.T, name, s string) (k [32]byte) {
	t.Helper()
	b := unhex(t, name, s)
	if len(b) != 32 {
		t.Fatalf("%s: %d bytes, want 32", name, len(b))
	}
	copy(k[:], b)
	return k
}

// seedFields returns the hex seeds of k.
func seedFields(k keys.TicketKeys) (sign, dh string) {
	s, d := k.Seeds()
	return hx(s), hx(d)
}

func keyVecs(r *room.Room, n int) []keyVec {
	out := make([]keyVec, n)
	for i := range out {
		seq, mk := r.NextSend()
		out[i] = keyVec{Seq: seq, Key: hx(mk.Key[:]), Nonce: hx(mk.Nonce[:])}
	}
	return out
}

// deriveVector builds a "derive" vector for tickets a and b.
func deriveVector(t *testing.T, name string, a, b keys.TicketKeys) vector {
	ra, err := room.Derive(a, b.Public())
	if err != nil {
		t.Fatal(err)
	}
	rb, err := room.Derive(b, a.Public())
	if err != nil {
		t.Fatal(err)
	}
	ref := refDerive(t, a, b.Public())
	pa, pb := a.Public(), b.Public()
	v := vector{Name: name, Kind: "derive",
		ASign: hx(pa.Sign[:]), ADH: hx(pa.DH[:]), BSign: hx(pb.Sign[:]), BDH: hx(pb.DH[:]),
		SharedSecret: hx(ref.shared), Root: hx(ref.root[:]), Chain0: hx(ref.chain[0][:]), Chain1: hx(ref.chain[1][:]),
	}
	v.ASignSeed, v.ADHSeed = seedFields(a)
	v.BSignSeed, v.BDHSeed = seedFields(b)
	id, avoid := ra.ID(), ra.AvoidKey()
	v.RoomID, v.AvoidKey = hx(id[:]), hx(avoid[:])
	v.AToB, v.BToA = keyVecs(ra, 5), keyVecs(rb, 5)
	return v
}

// runScript runs steps on the rooms a and b. When generating (gen), it
// fills in keys and results; otherwise it checks them.
func runScript(t *testing.T, name string, a, b *room.Room, steps []scriptStep, gen bool) {
	t.Helper()
	parties := map[string]*room.Room{"a": a, "b": b}
	for i := range steps {
		s := &steps[i]
		r := parties[s.Party]
		where := fmt.Sprintf("%s: step %d (%s %s %d)", name, i, s.Party, s.Op, s.Seq)
		switch s.Op {
		case "send_many":
			for range s.Count {
				_, mk := r.NextSend()
				mk.Wipe()
			}
		case "send":
			seq, mk := r.NextSend()
			if gen {
				s.Seq, s.Key, s.Nonce = seq, hx(mk.Key[:]), hx(mk.Nonce[:])
			} else if seq != s.Seq || hx(mk.Key[:]) != s.Key || hx(mk.Nonce[:]) != s.Nonce {
				t.Errorf("%s: NextSend() = %d, %x/%x, want %d, %s/%s", where, seq, mk.Key, mk.Nonce, s.Seq, s.Key, s.Nonce)
			}
		case "receive":
			var offered string
			err := r.Receive(s.Seq, func(mk *keys.MessageKey) error {
				offered = hx(mk.Key[:]) + "/" + hx(mk.Nonce[:])
				if s.Forged {
					return errForgedVector
				}
				if !gen && offered != s.Key+"/"+s.Nonce {
					t.Errorf("%s: open offered %s, want %s/%s", where, offered, s.Key, s.Nonce)
				}
				return nil
			})
			if gen {
				s.Result = errorClass(err)
				if s.Result == "ok" {
					s.Key, s.Nonce = offered[:64], offered[65:]
				}
			} else if got := errorClass(err); got != s.Result {
				t.Errorf("%s: Receive = %v (%s), want %s", where, err, got, s.Result)
			}
		default:
			t.Fatalf("%s: unknown op %q", where, s.Op)
		}
	}
}

// TestVectors writes and then consumes spec/testdata/room.json.
func TestVectors(t *testing.T) {
	ticketFrom := func(label string) keys.TicketKeys {
		k, err := keys.GenerateTicketKeys(vectortest.Rand("room vectors " + label))
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	a1, b1 := ticketFrom("a1"), ticketFrom("b1")
	a2, b2 := ticketFrom("a2"), ticketFrom("b2")
	var vs []vector
	vs = append(vs,
		deriveVector(t, "pair 1", a1, b1),
		deriveVector(t, "pair 1, seen from B", b1, a1),
		deriveVector(t, "pair 2", a2, b2),
	)

	// Refused pairings.
	errVec := func(name string, theirs keys.TicketPublic, errName string) vector {
		v := vector{Name: name, Kind: "derive", BSign: hx(theirs.Sign[:]), BDH: hx(theirs.DH[:]), Error: errName}
		v.ASignSeed, v.ADHSeed = seedFields(a1)
		pa := a1.Public()
		v.ASign, v.ADH = hx(pa.Sign[:]), hx(pa.DH[:])
		return v
	}
	pb := b1.Public()
	for i, p := range []string{lowOrderPoints[0], lowOrderPoints[2], lowOrderPoints[4]} {
		theirs := pb
		copy(theirs.DH[:], unhex(t, "low order", p))
		vs = append(vs, errVec(fmt.Sprintf("low-order partner X25519 key %d", i), theirs, "invalid_peer"))
	}
	pa := a1.Public()
	vs = append(vs,
		errVec("partner is own ticket", pa, "self"),
		errVec("partner has own signing key", keys.TicketPublic{Sign: pa.Sign, DH: pb.DH}, "self"),
	)

	// Scripts.
	type script struct {
		name  string
		steps []scriptStep
		full  bool // record full states, not only a hash
	}
	sendN := func(party string, n int) (out []scriptStep) {
		for range n {
			out = append(out, scriptStep{Op: "send", Party: party})
		}
		return out
	}
	recv := func(party string, seq uint64, forged ...bool) scriptStep {
		return scriptStep{Op: "receive", Party: party, Seq: seq, Forged: len(forged) > 0 && forged[0]}
	}
	outOfOrder := append(append(sendN("a", 6), sendN("b", 3)...),
		recv("b", 2), recv("b", 0), recv("b", 5), recv("b", 0), recv("b", 1, true), recv("b", 1),
		recv("b", 1100), recv("b", 4, true), recv("b", 6, true),
		recv("a", 1), recv("a", 0), recv("a", 1), recv("a", 2, true),
	)
	// B jumps to MaxSkipAhead (keeping 0 .. MaxSkipAhead-1), then to
	// 2*MaxSkipAhead-1 (keeping MaxSkipAhead+1 .. 2*MaxSkipAhead-2): the
	// oldest beyond MaxSkippedKeys are evicted, up to floor.
	const floor = 2*wire.MaxSkipAhead - 2 - wire.MaxSkippedKeys
	eviction := []scriptStep{
		{Op: "send_many", Party: "a", Count: 2 * wire.MaxSkipAhead},
		recv("b", wire.MaxSkipAhead),
		recv("b", 2*wire.MaxSkipAhead-1),
		recv("b", 0), recv("b", floor-1), recv("b", floor), recv("b", floor),
		recv("b", wire.MaxSkipAhead), recv("b", 2*wire.MaxSkipAhead-2),
		recv("b", 3*wire.MaxSkipAhead+1), recv("b", 2*wire.MaxSkipAhead-1),
	}
	for _, s := range []script{
		{"out of order, replays, forgeries", outOfOrder, true},
		{"eviction beyond MaxSkippedKeys", eviction, false},
	} {
		ra, _ := room.Derive(a1, b1.Public())
		rb, _ := room.Derive(b1, a1.Public())
		runScript(t, s.name, ra, rb, s.steps, true)
		v := vector{Name: s.name, Kind: "script", Script: s.steps}
		v.ASignSeed, v.ADHSeed = seedFields(a1)
		v.BSignSeed, v.BDHSeed = seedFields(b1)
		sb := marshal(t, rb)
		if s.full {
			v.StateA, v.StateB = hx(marshal(t, ra)), hx(sb)
		} else {
			sum := sha256.Sum256(sb)
			v.StateBSHA256 = hx(sum[:])
		}
		vs = append(vs, v)
	}

	// State encodings: the out-of-order script's final state of B (two
	// skipped keys, seqs 3 and 4, receive position 6) and malformed
	// variants of it. Offsets per spec 06-room-keys §5.
	good := unhex(t, "state", vs[len(vs)-2].StateB)
	const (
		offMe, offPartner         = 33, 65
		offSendNext, offRecvNext  = 161, 201
		offFloor, offCount, offSk = 209, 217, 219
	)
	mut := func(f func(b []byte) []byte) string { return hx(f(bytes.Clone(good))) }
	put64 := func(off int, v uint64) func(b []byte) []byte {
		return func(b []byte) []byte { binary.BigEndian.PutUint64(b[off:], v); return b }
	}
	put16 := func(off int, v uint16) func(b []byte) []byte {
		return func(b []byte) []byte { binary.BigEndian.PutUint16(b[off:], v); return b }
	}
	stateVec := func(name, state, errName string) vector {
		return vector{Name: name, Kind: "state", State: state, Error: errName}
	}
	vs = append(vs,
		stateVec("valid state with two skipped keys", hx(good), ""),
		stateVec("valid state, fresh room", hx(marshal(t, func() *room.Room { r, _ := room.Derive(a2, b2.Public()); return r }())), ""),
		stateVec("empty", "", "malformed"),
		stateVec("version 2", mut(func(b []byte) []byte { b[0] = 2; return b }), "malformed"),
		stateVec("truncated", hx(good[:len(good)-1]), "malformed"),
		stateVec("trailing byte", hx(append(bytes.Clone(good), 0)), "malformed"),
		stateVec("partner is me", mut(func(b []byte) []byte { copy(b[offPartner:offPartner+32], b[offMe:offMe+32]); return b }), "malformed"),
		stateVec("send_next above MaxSeq+1", mut(put64(offSendNext, room.MaxSeq+2)), "malformed"),
		stateVec("recv_next above MaxSeq+1", mut(put64(offRecvNext, room.MaxSeq+2)), "malformed"),
		stateVec("floor above recv_next", mut(put64(offFloor, 7)), "malformed"),
		stateVec("skipped seq below floor", mut(put64(offFloor, 4)), "malformed"),
		stateVec("skipped seq not below recv_next", mut(put64(offSk+64, 6)), "malformed"),
		stateVec("skipped seqs unsorted", mut(func(b []byte) []byte { put64(offSk, 4)(b); return put64(offSk+64, 3)(b) }), "malformed"),
		stateVec("skipped seq repeated", mut(put64(offSk+64, 3)), "malformed"),
		stateVec("more than MaxSkippedKeys skipped keys", mut(put16(offCount, wire.MaxSkippedKeys+1)), "malformed"),
		stateVec("skipped count beyond the input", mut(put16(offCount, 3)), "malformed"),
		stateVec("skipped count short of the input", mut(put16(offCount, 1)), "malformed"),
	)

	vectortest.Golden(t, "room.json", vectortest.File[vector]{
		Description: "Room keys: room ID, HKDF-SHA256 root, direction chains and avoid key from two tickets; " +
			"the symmetric ratchet's message keys and nonces; receive scripts (out of order, replays, forgeries, eviction) " +
			"with the final state encodings; malformed state encodings.",
		Spec:    "06-room-keys.md",
		Vectors: vs,
	})

	// Consume the committed file.
	for _, v := range vectortest.Load[vector](t, "room.json").Vectors {
		switch v.Kind {
		case "derive":
			checkDeriveVector(t, v)
		case "script":
			checkScriptVector(t, v)
		case "state":
			r, err := room.UnmarshalRoom(unhex(t, v.Name, v.State))
			if got := errorClass(err); got != stringOr(v.Error, "ok") {
				t.Errorf("%s: UnmarshalRoom = %v (%s), want %s", v.Name, err, got, stringOr(v.Error, "ok"))
				continue
			}
			var pe *wire.ParseError
			if err != nil && !errors.As(err, &pe) {
				t.Errorf("%s: UnmarshalRoom error %T, want *wire.ParseError", v.Name, err)
			}
			if err == nil {
				if got := hx(marshal(t, r)); got != v.State {
					t.Errorf("%s: MarshalBinary(UnmarshalRoom(state)) = %s, want %s", v.Name, got, v.State)
				}
			}
		default:
			t.Errorf("%s: unknown kind %q", v.Name, v.Kind)
		}
	}
}

func stringOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// ticketFromVector rebuilds a ticket from hex seeds and checks its public
// keys against the stored ones.
func ticketFromVector(t *testing.T, name, signSeed, dhSeed, sign, dh string) keys.TicketKeys {
	t.Helper()
	k, err := keys.TicketKeysFromSeeds(unhex(t, name, signSeed), unhex(t, name, dhSeed))
	if err != nil {
		t.Fatalf("%s: TicketKeysFromSeeds: %v", name, err)
	}
	if sign != "" {
		if p := k.Public(); hx(p.Sign[:]) != sign || hx(p.DH[:]) != dh {
			t.Errorf("%s: public keys %x/%x, want %s/%s", name, p.Sign, p.DH, sign, dh)
		}
	}
	return k
}

func checkDeriveVector(t *testing.T, v vector) {
	a := ticketFromVector(t, v.Name+" A", v.ASignSeed, v.ADHSeed, v.ASign, v.ADH)
	theirs := keys.TicketPublic{Sign: unhex32(t, v.Name, v.BSign), DH: unhex32(t, v.Name, v.BDH)}
	ra, err := room.Derive(a, theirs)
	if got := errorClass(err); got != stringOr(v.Error, "ok") {
		t.Errorf("%s: Derive = %v (%s), want %s", v.Name, err, got, stringOr(v.Error, "ok"))
		return
	}
	if err != nil {
		return
	}
	b := ticketFromVector(t, v.Name+" B", v.BSignSeed, v.BDHSeed, v.BSign, v.BDH)
	rb, err := room.Derive(b, a.Public())
	if err != nil {
		t.Fatalf("%s: Derive(B, A) = %v", v.Name, err)
	}
	// Intermediate values, through the reference implementation.
	ref := refDerive(t, a, theirs)
	for _, c := range []struct{ name, got, want string }{
		{"shared_secret", hx(ref.shared), v.SharedSecret},
		{"root", hx(ref.root[:]), v.Root},
		{"chain_0", hx(ref.chain[0][:]), v.Chain0},
		{"chain_1", hx(ref.chain[1][:]), v.Chain1},
		{"room_id", hx(ref.id[:]), v.RoomID},
	} {
		if c.got != c.want {
			t.Errorf("%s: reference %s = %s, want %s", v.Name, c.name, c.got, c.want)
		}
	}
	for _, r := range []*room.Room{ra, rb} {
		id, avoid := r.ID(), r.AvoidKey()
		if hx(id[:]) != v.RoomID || hx(avoid[:]) != v.AvoidKey {
			t.Errorf("%s: ID, AvoidKey = %x, %x, want %s, %s", v.Name, id, avoid, v.RoomID, v.AvoidKey)
		}
	}
	// Each side receives the other's keys in order and sends its own.
	for _, dir := range []struct {
		name     string
		from, to *room.Room
		keys     []keyVec
	}{{"a_to_b", ra, rb, v.AToB}, {"b_to_a", rb, ra, v.BToA}} {
		for _, k := range dir.keys {
			seq, mk := dir.from.NextSend()
			if seq != k.Seq || hx(mk.Key[:]) != k.Key || hx(mk.Nonce[:]) != k.Nonce {
				t.Errorf("%s: %s NextSend() = %d, %x/%x, want %d, %s/%s", v.Name, dir.name, seq, mk.Key, mk.Nonce, k.Seq, k.Key, k.Nonce)
			}
			err := dir.to.Receive(k.Seq, func(mk *keys.MessageKey) error {
				if hx(mk.Key[:]) != k.Key || hx(mk.Nonce[:]) != k.Nonce {
					return errForgedVector
				}
				return nil
			})
			if err != nil {
				t.Errorf("%s: %s Receive(%d) = %v", v.Name, dir.name, k.Seq, err)
			}
		}
	}
}

func checkScriptVector(t *testing.T, v vector) {
	a := ticketFromVector(t, v.Name+" A", v.ASignSeed, v.ADHSeed, "", "")
	b := ticketFromVector(t, v.Name+" B", v.BSignSeed, v.BDHSeed, "", "")
	ra, err := room.Derive(a, b.Public())
	if err != nil {
		t.Fatal(err)
	}
	rb, err := room.Derive(b, a.Public())
	if err != nil {
		t.Fatal(err)
	}
	runScript(t, v.Name, ra, rb, v.Script, false)
	sb := marshal(t, rb)
	if v.StateA != "" {
		if got := hx(marshal(t, ra)); got != v.StateA {
			t.Errorf("%s: state A = %s, want %s", v.Name, got, v.StateA)
		}
	}
	if v.StateB != "" && hx(sb) != v.StateB {
		t.Errorf("%s: state B = %x, want %s", v.Name, sb, v.StateB)
	}
	if v.StateBSHA256 != "" {
		if sum := sha256.Sum256(sb); hx(sum[:]) != v.StateBSHA256 {
			t.Errorf("%s: SHA-256(state B) = %x, want %s", v.Name, sum, v.StateBSHA256)
		}
	}
	if v.StateA == "" && v.StateB == "" && v.StateBSHA256 == "" {
		t.Errorf("%s: no expected state", v.Name)
	}
}
