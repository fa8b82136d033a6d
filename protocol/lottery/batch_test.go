package lottery_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/parley-chat/parley/protocol/lottery"
	"github.com/parley-chat/parley/protocol/wire"
)

// spec 07-lottery §13.2: a node's ticket batch is one whole stamp batch.
func TestTicketBatch(t *testing.T) {
	r := rng("batch")
	n := newNetwork(t, r, 7, 2)
	ts := n.issue(t, r, 0, 5, []lottery.Tag{{1}}, nil)
	b := &lottery.TicketBatch{Epoch: 7, Node: n.nodes[0].Public(), Tickets: ts}
	enc := mustMarshal(t, b)
	got, err := lottery.ParseTicketBatch(enc)
	if err != nil {
		t.Fatalf("ParseTicketBatch = %v, want nil", err)
	}
	if err := got.Verify(); err != nil {
		t.Fatalf("Verify = %v, want nil", err)
	}
	if !got.Same(b) {
		t.Fatal("Same(parsed, original) = false, want true")
	}
	if again := mustMarshal(t, got); !bytes.Equal(again, enc) {
		t.Fatal("Marshal(Parse(b)) differs from b")
	}

	// Another batch of the same node and epoch is not the same.
	other := n.issue(t, r, 0, 5, nil, nil)
	if b.Same(&lottery.TicketBatch{Epoch: 7, Node: b.Node, Tickets: other}) {
		t.Fatal("Same(two different batches) = true, want false")
	}

	// Structure the parser refuses.
	refused := map[string]*lottery.TicketBatch{
		"subset":       {Epoch: 7, Node: b.Node, Tickets: ts[:4]},
		"reordered":    {Epoch: 7, Node: b.Node, Tickets: []*lottery.Ticket{ts[1], ts[0], ts[2], ts[3], ts[4]}},
		"wrong epoch":  {Epoch: 8, Node: b.Node, Tickets: ts},
		"another node": {Epoch: 7, Node: n.nodes[1].Public(), Tickets: ts},
		"mixed":        {Epoch: 7, Node: b.Node, Tickets: append(append([]*lottery.Ticket{}, ts[:4]...), other[4])},
	}
	for name, rb := range refused {
		enc, err := rb.MarshalBinary()
		if err != nil {
			t.Fatalf("%s: Marshal = %v", name, err)
		}
		if _, err := lottery.ParseTicketBatch(enc); !errors.Is(err, wire.ErrMalformed) {
			t.Errorf("%s: ParseTicketBatch = %v, want ErrMalformed", name, err)
		}
		if err := rb.Verify(); !errors.Is(err, lottery.ErrBadTicket) {
			t.Errorf("%s: Verify = %v, want ErrBadTicket", name, err)
		}
	}

	// A forged stamp: another node's key signed tickets naming node 0.
	forged := make([]*lottery.Ticket, 3)
	for i := range forged {
		forged[i] = newTicket(t, r, 7, n.nodes[0].Public(), nil, nil)
		forged[i].Home = n.nodes[1].Public()
	}
	if err := lottery.StampTickets(n.nodes[1], t0, forged); err != nil {
		t.Fatal(err)
	}
	for _, f := range forged {
		f.Home = n.nodes[0].Public()
		f.Stamp.Node = n.nodes[0].Public()
	}
	fb := &lottery.TicketBatch{Epoch: 7, Node: n.nodes[0].Public(), Tickets: forged}
	got, err = lottery.ParseTicketBatch(mustMarshal(t, fb))
	if err != nil {
		t.Fatalf("ParseTicketBatch(forged) = %v, want nil (structure is fine)", err)
	}
	if err := got.Verify(); !errors.Is(err, lottery.ErrBadTicket) {
		t.Fatalf("Verify(forged) = %v, want ErrBadTicket", err)
	}

	if _, err := lottery.ParseTicketBatch(make([]byte, wire.MaxTicketBatchSize+1)); !errors.Is(err, wire.ErrMalformed) {
		t.Fatalf("ParseTicketBatch(too long) = %v, want ErrMalformed", err)
	}
	if _, err := (&lottery.TicketBatch{Epoch: 7}).MarshalBinary(); !errors.Is(err, lottery.ErrBadTicket) {
		t.Fatalf("Marshal(empty batch) = %v, want ErrBadTicket", err)
	}
}

// spec 07-lottery §13.4: the answer is signed by the answering node and
// binds epoch, pair and answer.
func TestConfirmFrames(t *testing.T) {
	r := rng("confirm")
	n := newNetwork(t, r, 3, 2)
	req := &lottery.ConfirmRequest{Epoch: 3, Mine: [32]byte{9}, Yours: [32]byte{4}, View: [32]byte{7}}
	enc := mustMarshal(t, req)
	if len(enc) != lottery.ConfirmRequestSize {
		t.Fatalf("request of %d bytes, want %d", len(enc), lottery.ConfirmRequestSize)
	}
	got, err := lottery.ParseConfirmRequest(enc)
	if err != nil || *got != *req {
		t.Fatalf("ParseConfirmRequest = %+v, %v; want %+v", got, err, req)
	}
	if p := got.Pair(); p.A != req.Yours || p.B != req.Mine {
		t.Fatalf("Pair() = %x, want ascending", p)
	}
	same := &lottery.ConfirmRequest{Epoch: 3, Mine: [32]byte{1}, Yours: [32]byte{1}}
	if _, err := lottery.ParseConfirmRequest(mustMarshal(t, same)); !errors.Is(err, wire.ErrMalformed) {
		t.Fatalf("ParseConfirmRequest(same tickets) = %v, want ErrMalformed", err)
	}
	check := &lottery.ConfirmRequest{Epoch: 3, View: [32]byte{7}}
	if got, err := lottery.ParseConfirmRequest(mustMarshal(t, check)); err != nil || !got.ViewCheck() {
		t.Fatalf("ParseConfirmRequest(view check) = %+v, %v; want a view check", got, err)
	}
	va := lottery.SignConfirmAnswer(n.nodes[0], 3, lottery.Pair{}, check.View, true)
	if got, err := lottery.ParseConfirmAnswer(mustMarshal(t, &va)); err != nil || got.Verify() != nil {
		t.Fatalf("ParseConfirmAnswer(view check answer) = %+v, %v; want it to verify", got, err)
	}

	for _, yes := range []bool{true, false} {
		a := lottery.SignConfirmAnswer(n.nodes[0], 3, req.Pair(), req.View, yes)
		enc := mustMarshal(t, &a)
		got, err := lottery.ParseConfirmAnswer(enc)
		if err != nil || *got != a {
			t.Fatalf("ParseConfirmAnswer = %+v, %v; want %+v", got, err, a)
		}
		if err := got.Verify(); err != nil {
			t.Fatalf("Verify = %v, want nil", err)
		}
		flipped := *got
		flipped.Yes = !yes
		if err := flipped.Verify(); !errors.Is(err, lottery.ErrBadSignature) {
			t.Fatalf("Verify(answer flipped) = %v, want ErrBadSignature", err)
		}
		view := *got
		view.View[0] ^= 1
		if err := view.Verify(); !errors.Is(err, lottery.ErrBadSignature) {
			t.Fatalf("Verify(other view) = %v, want ErrBadSignature", err)
		}
		other := *got
		other.Node = n.nodes[1].Public()
		if err := other.Verify(); !errors.Is(err, lottery.ErrBadSignature) {
			t.Fatalf("Verify(other node) = %v, want ErrBadSignature", err)
		}
	}
	bad := mustMarshal(t, new(lottery.SignConfirmAnswer(n.nodes[0], 3, req.Pair(), req.View, true)))
	bad[1+8+32+32] = 2
	if _, err := lottery.ParseConfirmAnswer(bad); !errors.Is(err, wire.ErrMalformed) {
		t.Fatalf("ParseConfirmAnswer(answer 2) = %v, want ErrMalformed", err)
	}
}

func FuzzParseTicketBatch(f *testing.F) {
	r := rng("fuzz batch")
	n := newNetwork(f, r, 1, 1)
	f.Add(mustMarshal(f, &lottery.TicketBatch{Epoch: 1, Node: n.nodes[0].Public(), Tickets: n.issue(f, r, 0, 1, nil, nil)}))
	f.Add(mustMarshal(f, &lottery.TicketBatch{Epoch: 1, Node: n.nodes[0].Public(),
		Tickets: n.issue(f, r, 0, 3, []lottery.Tag{{1}}, []lottery.Tag{{2}})}))
	f.Fuzz(func(t *testing.T, b []byte) {
		tb, err := lottery.ParseTicketBatch(b)
		if err != nil {
			requireParseError(t, "ParseTicketBatch", err)
			return
		}
		again, err := tb.MarshalBinary()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("Marshal(ParseTicketBatch(b)) = %x, %v; want %x", again, err, b)
		}
		if err := tb.Verify(); err != nil && !errors.Is(err, lottery.ErrBadTicket) {
			t.Fatalf("Verify = %v, want nil or ErrBadTicket", err)
		}
	})
}

func FuzzParseConfirmRequest(f *testing.F) {
	f.Add(mustMarshal(f, &lottery.ConfirmRequest{Epoch: 1, Mine: [32]byte{1}, Yours: [32]byte{2}, View: [32]byte{3}}))
	f.Add(mustMarshal(f, &lottery.ConfirmRequest{Epoch: 1, View: [32]byte{3}}))
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := lottery.ParseConfirmRequest(b)
		if err != nil {
			requireParseError(t, "ParseConfirmRequest", err)
			return
		}
		if again := mustMarshal(t, req); !bytes.Equal(again, b) {
			t.Fatalf("Marshal(ParseConfirmRequest(b)) = %x, want %x", again, b)
		}
	})
}

func FuzzParseConfirmAnswer(f *testing.F) {
	n := newNetwork(f, rng("fuzz answer"), 1, 1)
	for _, yes := range []bool{true, false} {
		a := lottery.SignConfirmAnswer(n.nodes[0], 1, lottery.Pair{A: [32]byte{1}, B: [32]byte{2}}, [32]byte{3}, yes)
		f.Add(mustMarshal(f, &a))
		v := lottery.SignConfirmAnswer(n.nodes[0], 1, lottery.Pair{}, [32]byte{3}, yes)
		f.Add(mustMarshal(f, &v))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := lottery.ParseConfirmAnswer(b)
		if err != nil {
			requireParseError(t, "ParseConfirmAnswer", err)
			return
		}
		if again := mustMarshal(t, a); !bytes.Equal(again, b) {
			t.Fatalf("Marshal(ParseConfirmAnswer(b)) = %x, want %x", again, b)
		}
		if err := a.Verify(); err != nil && !errors.Is(err, lottery.ErrBadSignature) {
			t.Fatalf("Verify = %v, want nil or ErrBadSignature", err)
		}
	})
}
