package lottery_test

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/parley-chat/parley/protocol/lottery"
	"github.com/parley-chat/parley/protocol/wire"
)

// confirmRequest returns a request about count pairs in ascending order of
// the asker's ticket.
func confirmRequest(count int) *lottery.ConfirmRequest {
	req := &lottery.ConfirmRequest{Epoch: 3, View: [32]byte{7}}
	for i := range count {
		req.Items = append(req.Items, lottery.ConfirmItem{Mine: [32]byte{byte(i >> 8), byte(i), 1}, Yours: [32]byte{0xff, byte(i >> 8), byte(i)}})
	}
	return req
}

// spec 07-lottery §13.4: one request carries every pair two nodes confirm
// in an epoch; the answer is signed by the answering node and binds the
// epoch, view, every pair and every answer.
func TestConfirmFrames(t *testing.T) {
	r := rng("confirm")
	n := newNetwork(t, r, 3, 2)
	req := confirmRequest(3)
	enc := mustMarshal(t, req)
	if want := 1 + 8 + 32 + 2 + 3*64; len(enc) != want {
		t.Fatalf("request of %d bytes, want %d", len(enc), want)
	}
	got, err := lottery.ParseConfirmRequest(enc)
	if err != nil || got.Epoch != req.Epoch || got.View != req.View || !slices.Equal(got.Items, req.Items) {
		t.Fatalf("ParseConfirmRequest = %+v, %v; want %+v", got, err, req)
	}
	if p := got.Items[0].Pair(); p.A != req.Items[0].Mine || p.B != req.Items[0].Yours {
		t.Fatalf("Pair() = %x, want ascending", p)
	}
	for name, bad := range map[string]*lottery.ConfirmRequest{
		"same tickets": {Epoch: 3, Items: []lottery.ConfirmItem{{Mine: [32]byte{1}, Yours: [32]byte{1}}}},
		"descending":   {Epoch: 3, Items: []lottery.ConfirmItem{{Mine: [32]byte{2}, Yours: [32]byte{5}}, {Mine: [32]byte{1}, Yours: [32]byte{6}}}},
		"repeated":     {Epoch: 3, Items: []lottery.ConfirmItem{{Mine: [32]byte{2}, Yours: [32]byte{5}}, {Mine: [32]byte{2}, Yours: [32]byte{6}}}},
	} {
		if _, err := lottery.ParseConfirmRequest(mustMarshal(t, bad)); !errors.Is(err, wire.ErrMalformed) {
			t.Errorf("ParseConfirmRequest(%s) = %v, want ErrMalformed", name, err)
		}
	}
	if _, err := confirmRequest(lottery.MaxConfirmPairs + 1).MarshalBinary(); !errors.Is(err, lottery.ErrLimit) {
		t.Errorf("Marshal(%d pairs) = %v, want ErrLimit", lottery.MaxConfirmPairs+1, err)
	}
	full := mustMarshal(t, confirmRequest(lottery.MaxConfirmPairs))
	if len(full) != lottery.MaxConfirmRequestSize {
		t.Errorf("request of %d pairs has %d bytes, want MaxConfirmRequestSize %d", lottery.MaxConfirmPairs, len(full), lottery.MaxConfirmRequestSize)
	}
	if _, err := lottery.ParseConfirmRequest(append(full, 0)); !errors.Is(err, wire.ErrMalformed) {
		t.Errorf("ParseConfirmRequest(one byte over the limit) = %v, want ErrMalformed", err)
	}
	check := &lottery.ConfirmRequest{Epoch: 3, View: [32]byte{7}}
	if got, err := lottery.ParseConfirmRequest(mustMarshal(t, check)); err != nil || !got.ViewCheck() {
		t.Fatalf("ParseConfirmRequest(view check) = %+v, %v; want a view check", got, err)
	}
	va := lottery.SignConfirmAnswer(n.nodes[0], check, true, nil)
	if got, err := lottery.ParseConfirmAnswer(mustMarshal(t, &va)); err != nil || got.Verify() != nil || !got.ViewOK || !got.Answers(check) {
		t.Fatalf("ParseConfirmAnswer(view check answer) = %+v, %v; want it to verify", got, err)
	}

	a := lottery.SignConfirmAnswer(n.nodes[0], req, true, []bool{true, false, true})
	got2, err := lottery.ParseConfirmAnswer(mustMarshal(t, &a))
	if err != nil || !slices.Equal(got2.Yes, []bool{true, false, true}) || !got2.Answers(req) {
		t.Fatalf("ParseConfirmAnswer = %+v, %v; want %+v", got2, err, a)
	}
	if err := got2.Verify(); err != nil {
		t.Fatalf("Verify = %v, want nil", err)
	}
	if len(mustMarshal(t, &a)) != 1+8+32+32+1+2+3*65+64 {
		t.Errorf("answer of 3 pairs has %d bytes", len(mustMarshal(t, &a)))
	}
	tamper := map[string]func(a *lottery.ConfirmAnswer){
		"answer flipped": func(a *lottery.ConfirmAnswer) { a.Yes[1] = true },
		"other view":     func(a *lottery.ConfirmAnswer) { a.View[0] ^= 1 },
		"other node":     func(a *lottery.ConfirmAnswer) { a.Node = n.nodes[1].Public() },
		"other epoch":    func(a *lottery.ConfirmAnswer) { a.Epoch++ },
		"pair dropped":   func(a *lottery.ConfirmAnswer) { a.Pairs, a.Yes = a.Pairs[:2], a.Yes[:2] },
	}
	for name, f := range tamper {
		c := *got2
		c.Pairs, c.Yes = slices.Clone(c.Pairs), slices.Clone(c.Yes)
		f(&c)
		if err := c.Verify(); !errors.Is(err, lottery.ErrBadSignature) {
			t.Errorf("Verify(%s) = %v, want ErrBadSignature", name, err)
		}
	}
	if other := confirmRequest(2); got2.Answers(other) {
		t.Error("Answers(a request with other pairs) = true")
	}
	// No pair is confirmed from another view.
	noView := lottery.SignConfirmAnswer(n.nodes[0], req, false, []bool{true, true, true})
	if slices.Contains(noView.Yes, true) {
		t.Errorf("SignConfirmAnswer(view differs) = %v, want every pair refused", noView.Yes)
	}
	bad := mustMarshal(t, &noView)
	bad[1+8+32+32+1+2+64] = 1 // the first pair's answer, without the view
	if _, err := lottery.ParseConfirmAnswer(bad); !errors.Is(err, wire.ErrMalformed) {
		t.Errorf("ParseConfirmAnswer(yes without the view) = %v, want ErrMalformed", err)
	}
	bad[1+8+32+32+1+2+64] = 2
	if _, err := lottery.ParseConfirmAnswer(bad); !errors.Is(err, wire.ErrMalformed) {
		t.Errorf("ParseConfirmAnswer(answer 2) = %v, want ErrMalformed", err)
	}
}

func FuzzParseConfirmRequest(f *testing.F) {
	for _, count := range []int{0, 1, 3} {
		f.Add(mustMarshal(f, confirmRequest(count)))
	}
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
	for _, viewOK := range []bool{true, false} {
		a := lottery.SignConfirmAnswer(n.nodes[0], confirmRequest(2), viewOK, []bool{true, false})
		f.Add(mustMarshal(f, &a))
		v := lottery.SignConfirmAnswer(n.nodes[0], confirmRequest(0), viewOK, nil)
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
