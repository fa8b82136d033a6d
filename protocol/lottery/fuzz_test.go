package lottery_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/parley-chat/parley/protocol/lottery"
	"github.com/parley-chat/parley/protocol/wire"
)

// Every decoder's failures are *wire.ParseError, and whatever decodes
// re-encodes to the same bytes. The checked-in corpora under
// testdata/fuzz/ add malformed and edge-case seeds.

func requireParseError(t *testing.T, what string, err error) {
	t.Helper()
	var pe *wire.ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("%s error %v (%T) is not a *wire.ParseError", what, err, err)
	}
}

func FuzzParseTicket(f *testing.F) {
	r := rng("fuzz")
	n := newNetwork(f, r, 1, 1)
	for _, ts := range [][]*lottery.Ticket{
		n.issue(f, r, 0, 1, nil, nil),
		n.issue(f, r, 0, 3, []lottery.Tag{{1}, {2}}, []lottery.Tag{{3}}),
	} {
		f.Add(mustMarshal(f, ts[0]))
		unstamped := *ts[len(ts)-1]
		unstamped.Stamp = nil
		f.Add(mustMarshal(f, &unstamped))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		tk, err := lottery.ParseTicket(b)
		if err != nil {
			requireParseError(t, "ParseTicket", err)
			return
		}
		again, err := tk.MarshalBinary()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("Marshal(ParseTicket(b)) = %x, %v; want %x", again, err, b)
		}
		if err := tk.Verify(); err != nil && !errors.Is(err, lottery.ErrBadTicket) {
			t.Fatalf("Verify = %v, want nil or ErrBadTicket", err)
		}
	})
}

func FuzzParseCommit(f *testing.F) {
	n := newNetwork(f, rng("fuzz"), 1, 1)
	c := signCommit(n.nodes[0], 1, n.values[0])
	f.Add(mustMarshal(f, &c))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := lottery.ParseCommit(b)
		if err != nil {
			requireParseError(t, "ParseCommit", err)
			return
		}
		if again := mustMarshal(t, c); !bytes.Equal(again, b) {
			t.Fatalf("Marshal(ParseCommit(b)) = %x, want %x", again, b)
		}
		if err := c.Verify(); err != nil && !errors.Is(err, lottery.ErrBadSignature) {
			t.Fatalf("Verify = %v, want nil or ErrBadSignature", err)
		}
	})
}

func FuzzParseReveal(f *testing.F) {
	n := newNetwork(f, rng("fuzz"), 1, 1)
	rv := signReveal(n.nodes[0], 1, n.values[0])
	f.Add(mustMarshal(f, &rv))
	f.Fuzz(func(t *testing.T, b []byte) {
		rv, err := lottery.ParseReveal(b)
		if err != nil {
			requireParseError(t, "ParseReveal", err)
			return
		}
		if again := mustMarshal(t, rv); !bytes.Equal(again, b) {
			t.Fatalf("Marshal(ParseReveal(b)) = %x, want %x", again, b)
		}
		if err := rv.Verify(); err != nil && !errors.Is(err, lottery.ErrBadSignature) {
			t.Fatalf("Verify = %v, want nil or ErrBadSignature", err)
		}
	})
}
