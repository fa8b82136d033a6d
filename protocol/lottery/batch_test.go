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

	// Every ticket comes back with its own stamp, which verifies alone.
	for i, tk := range got.Tickets {
		if err := tk.Verify(); err != nil || tk.ID() != ts[i].ID() {
			t.Fatalf("parsed ticket %d: Verify = %v, same ID %v; want nil, true", i, err, tk.ID() == ts[i].ID())
		}
	}

	// What is not one whole stamp batch in order cannot be encoded, and
	// does not verify.
	refused := map[string]*lottery.TicketBatch{
		"subset":       {Epoch: 7, Node: b.Node, Tickets: ts[:4]},
		"reordered":    {Epoch: 7, Node: b.Node, Tickets: []*lottery.Ticket{ts[1], ts[0], ts[2], ts[3], ts[4]}},
		"wrong epoch":  {Epoch: 8, Node: b.Node, Tickets: ts},
		"another node": {Epoch: 7, Node: n.nodes[1].Public(), Tickets: ts},
		"mixed":        {Epoch: 7, Node: b.Node, Tickets: append(append([]*lottery.Ticket{}, ts[:4]...), other[4])},
	}
	for name, rb := range refused {
		if _, err := rb.MarshalBinary(); !errors.Is(err, lottery.ErrBadTicket) {
			t.Errorf("%s: Marshal = %v, want ErrBadTicket", name, err)
		}
		if err := rb.Verify(); !errors.Is(err, lottery.ErrBadTicket) {
			t.Errorf("%s: Verify = %v, want ErrBadTicket", name, err)
		}
	}
	// Encodings the parser refuses (spec 07-lottery §13.2).
	header := 1 + 8 + 32 + 8 + 64
	malformed := map[string][]byte{
		"version 1":   append([]byte{1}, enc[1:]...),
		"no tickets":  append(append([]byte{}, enc[:header]...), 0, 0),
		"count 1025":  append(append([]byte{}, enc[:header]...), 0x04, 0x01),
		"truncated":   enc[:len(enc)-1],
		"trailing":    append(append([]byte{}, enc...), 0),
		"tags repeat": nil,
	}
	one := &lottery.TicketBatch{Epoch: 7, Node: b.Node, Tickets: n.issue(t, r, 0, 1, []lottery.Tag{{1}, {2}}, nil)}
	tagged := mustMarshal(t, one)
	tagged[header+2+64+2+16] = 1 // the second interest tag becomes {1}: not strictly ascending
	malformed["tags repeat"] = tagged
	for name, m := range malformed {
		if _, err := lottery.ParseTicketBatch(m); !errors.Is(err, wire.ErrMalformed) {
			t.Errorf("%s: ParseTicketBatch = %v, want ErrMalformed", name, err)
		}
	}
	// Another batch's keys under this batch's signature: the structure is
	// fine, the signature is not.
	swapped := append([]byte{}, enc...)
	swapped[header+2] ^= 1
	sb, err := lottery.ParseTicketBatch(swapped)
	if err != nil {
		t.Fatalf("ParseTicketBatch(a key changed) = %v, want nil", err)
	}
	if err := sb.Verify(); !errors.Is(err, lottery.ErrBadTicket) {
		t.Errorf("Verify(a key changed) = %v, want ErrBadTicket", err)
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
