package federation_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/parley-chat/parley/protocol/envelope"
	"github.com/parley-chat/parley/protocol/federation"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/wire"
)

var t0 = time.UnixMilli(1_790_000_000_000)

// stamped returns n stamped envelopes with ciphertexts of size bytes.
func stamped(tb testing.TB, n, size int) []*envelope.Envelope {
	tb.Helper()
	k, err := keys.NodeKeyFromSeed(bytes.Repeat([]byte{7}, keys.SeedSize))
	if err != nil {
		tb.Fatal(err)
	}
	envs := make([]*envelope.Envelope, n)
	for i := range envs {
		envs[i] = &envelope.Envelope{
			Header: envelope.Header{
				ContentType: envelope.ContentText,
				Room:        keys.RoomID{1},
				Sender:      keys.TicketID{2},
				Recipient:   keys.TicketID{3},
				Seq:         uint64(i),
				Time:        t0.UnixMilli(),
			},
			Ciphertext: bytes.Repeat([]byte{byte(i)}, size),
		}
	}
	if err := envelope.StampBatch(k, t0, envs); err != nil {
		tb.Fatal(err)
	}
	return envs
}

// body strips and checks the length prefix of a frame.
func body(tb testing.TB, frame []byte) []byte {
	tb.Helper()
	n, err := federation.BodyLen([4]byte(frame[:4]))
	if err != nil || n != len(frame)-4 {
		tb.Fatalf("BodyLen(frame prefix) = %d, %v, want %d, nil", n, err, len(frame)-4)
	}
	return frame[4:]
}

func requireParseError(t *testing.T, what string, err error) {
	t.Helper()
	var pe *wire.ParseError
	if !errors.As(err, &pe) || !errors.Is(err, wire.ErrMalformed) {
		t.Fatalf("%s error %v (%T) is not a *wire.ParseError", what, err, err)
	}
}

// spec 12-delivery §2: a batch round-trips, and its body size is what
// BodySize says.
func TestBatchRoundTrip(t *testing.T) {
	for _, n := range []int{1, 3, 100} {
		b := &federation.Batch{Seq: uint64(n) << 40, Envelopes: stamped(t, n, 272)}
		frame, err := b.AppendFrame([]byte("x"))
		if err != nil {
			t.Fatalf("AppendFrame(%d envelopes) = %v", n, err)
		}
		if frame[0] != 'x' {
			t.Fatalf("AppendFrame did not append")
		}
		bd := body(t, frame[1:])
		if len(bd) != b.BodySize() {
			t.Errorf("body of %d bytes, BodySize = %d", len(bd), b.BodySize())
		}
		got, err := federation.DecodeBatch(bd)
		if err != nil {
			t.Fatalf("DecodeBatch = %v", err)
		}
		if got.Seq != b.Seq || len(got.Envelopes) != n {
			t.Fatalf("DecodeBatch = seq %d, %d envelopes, want %d, %d", got.Seq, len(got.Envelopes), b.Seq, n)
		}
		for i, e := range got.Envelopes {
			want, _ := b.Envelopes[i].MarshalBinary()
			have, _ := e.MarshalBinary()
			if !bytes.Equal(want, have) {
				t.Fatalf("envelope %d differs after the round trip", i)
			}
		}
	}
}

// spec 12-delivery §2: the encoder refuses what the decoder would.
func TestBatchAppendRefuses(t *testing.T) {
	unstamped := stamped(t, 2, 272)
	unstamped[1].Stamp = nil
	big := stamped(t, 70, wire.MaxEnvelopeCiphertext)
	for name, b := range map[string]*federation.Batch{
		"empty":     {},
		"too many":  {Envelopes: stamped(t, wire.MaxDeliverEnvelopes+1, 16)},
		"unstamped": {Envelopes: unstamped},
		"too large": {Envelopes: big},
	} {
		if out, err := b.AppendFrame(nil); err == nil || len(out) != 0 {
			t.Errorf("AppendFrame(%s) = %d bytes, %v, want an error and nothing", name, len(out), err)
		}
	}
}

// spec 12-delivery §1: a length prefix of 0 or above MaxDeliverFrame is
// refused before the body is read.
func TestBodyLen(t *testing.T) {
	for _, tc := range []struct {
		n  uint32
		ok bool
	}{{0, false}, {1, true}, {wire.MaxDeliverFrame, true}, {wire.MaxDeliverFrame + 1, false}, {1<<32 - 1, false}} {
		var p [4]byte
		binary.BigEndian.PutUint32(p[:], tc.n)
		n, err := federation.BodyLen(p)
		if tc.ok != (err == nil) || (tc.ok && n != int(tc.n)) {
			t.Errorf("BodyLen(%d) = %d, %v, want ok %v", tc.n, n, err, tc.ok)
		}
		if err != nil {
			requireParseError(t, "BodyLen", err)
		}
	}
}

func TestAckRoundTrip(t *testing.T) {
	for _, a := range []*federation.Ack{
		{Seq: 1, Results: []federation.Result{{Status: federation.Stored}, {Status: federation.Duplicate}, {Status: federation.Rejected, Reason: federation.ReasonBadStamp}}},
		{Seq: 2, Busy: true, RetryAfter: 1500 * time.Millisecond},
		{Seq: 3, Busy: true},
	} {
		frame, err := a.AppendFrame(nil)
		if err != nil {
			t.Fatalf("AppendFrame(%+v) = %v", a, err)
		}
		got, err := federation.DecodeAck(body(t, frame))
		if err != nil {
			t.Fatalf("DecodeAck = %v", err)
		}
		if got.Seq != a.Seq || got.Busy != a.Busy || got.RetryAfter != a.RetryAfter || len(got.Results) != len(a.Results) {
			t.Fatalf("DecodeAck = %+v, want %+v", got, a)
		}
		for i := range a.Results {
			if got.Results[i] != a.Results[i] {
				t.Errorf("result %d = %+v, want %+v", i, got.Results[i], a.Results[i])
			}
		}
	}
}

func TestAckAppendRefuses(t *testing.T) {
	for name, a := range map[string]*federation.Ack{
		"busy with results":   {Busy: true, Results: []federation.Result{{Status: federation.Stored}}},
		"retry when not busy": {RetryAfter: time.Second},
		"retry too long":      {Busy: true, RetryAfter: wire.MaxRetryAfter + time.Millisecond},
		"unknown status":      {Results: []federation.Result{{Status: 9}}},
		"rejected no reason":  {Results: []federation.Result{{Status: federation.Rejected}}},
		"stored with reason":  {Results: []federation.Result{{Status: federation.Stored, Reason: federation.ReasonNoRoom}}},
		"unknown reason":      {Results: []federation.Result{{Status: federation.Rejected, Reason: 200}}},
	} {
		if out, err := a.AppendFrame(nil); err == nil || len(out) != 0 {
			t.Errorf("AppendFrame(%s) = %d bytes, %v, want an error and nothing", name, len(out), err)
		}
	}
}

// spec 12-delivery §2, spec 02-encoding §1: strict decoding.
func TestDecodeMalformed(t *testing.T) {
	b := &federation.Batch{Seq: 5, Envelopes: stamped(t, 2, 272)}
	frame, _ := b.AppendFrame(nil)
	good := frame[4:]
	ackFrame, _ := (&federation.Ack{Seq: 5, Results: []federation.Result{{Status: federation.Stored}}}).AppendFrame(nil)
	goodAck := ackFrame[4:]
	unstamped := stamped(t, 1, 272)
	unstamped[0].Stamp = nil
	e := wire.NewEncoder(0)
	e.U8(1)
	e.U8(1)
	e.U64(1)
	e.Count(1)
	unstamped[0].Append(e)

	mod := func(b []byte, i int, v byte) []byte {
		c := bytes.Clone(b)
		c[i] = v
		return c
	}
	for name, in := range map[string][]byte{
		"empty":           nil,
		"bad version":     mod(good, 0, 2),
		"ack as batch":    goodAck,
		"zero envelopes":  {1, 1, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0},
		"count too big":   {1, 1, 0, 0, 0, 0, 0, 0, 0, 5, 0xff, 0xff},
		"truncated":       good[:len(good)-1],
		"trailing":        append(bytes.Clone(good), 0),
		"unstamped":       e.Bytes(),
		"count over data": mod(good, 11, 3),
	} {
		if _, err := federation.DecodeBatch(in); err == nil {
			t.Errorf("DecodeBatch(%s) = nil error", name)
		} else {
			requireParseError(t, "DecodeBatch("+name+")", err)
		}
	}
	for name, in := range map[string][]byte{
		"empty":          nil,
		"batch as ack":   good,
		"busy 2":         mod(goodAck, 10, 2),
		"retry not busy": mod(goodAck, 14, 1),
		"bad status":     mod(goodAck, 17, 0),
		"stored reason":  mod(goodAck, 18, 1),
		"trailing":       append(bytes.Clone(goodAck), 0),
		"truncated":      goodAck[:len(goodAck)-1],
		"busy results":   mod(goodAck, 10, 1),
	} {
		if _, err := federation.DecodeAck(in); err == nil {
			t.Errorf("DecodeAck(%s) = nil error", name)
		} else {
			requireParseError(t, "DecodeAck("+name+")", err)
		}
	}
}

func TestProtocolID(t *testing.T) {
	if got := federation.ProtocolID("main"); got != "/parley/main/deliver/1.0.0" {
		t.Errorf("ProtocolID(main) = %q", got)
	}
}
