package wire_test

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/parley-chat/parley/protocol/wire"
)

// spec 02-encoding §1: every field type round-trips and has one encoding.
func TestRoundTrip(t *testing.T) {
	var e wire.Encoder
	e.U8(0xfe)
	e.U16(0xbeef)
	e.U32(0xdeadbeef)
	e.U64(0x0102030405060708)
	e.I64(-2)
	e.Fixed([]byte{9, 9, 9})
	e.Bytes32([]byte("hello"))
	e.Bytes16([]byte{})
	e.String16("héllo")
	e.Count(2)
	want := []byte{
		0xfe, 0xbe, 0xef, 0xde, 0xad, 0xbe, 0xef,
		1, 2, 3, 4, 5, 6, 7, 8,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
		9, 9, 9,
		0, 0, 0, 5, 'h', 'e', 'l', 'l', 'o',
		0, 0,
		0, 6, 'h', 0xc3, 0xa9, 'l', 'l', 'o',
		0, 2,
	}
	if !bytes.Equal(e.Bytes(), want) {
		t.Fatalf("encoding = %x, want %x", e.Bytes(), want)
	}
	d := wire.NewDecoder("test", e.Bytes())
	fixed := make([]byte, 3)
	got := []any{d.U8(), d.U16(), d.U32(), d.U64(), d.I64()}
	d.Fixed(fixed)
	got = append(got, fixed, d.Bytes32(5), d.Bytes16(0), d.String16(6), d.Count(2, 0))
	if err := d.Finish(); err != nil {
		t.Fatalf("Finish() = %v", err)
	}
	wantVals := []any{uint8(0xfe), uint16(0xbeef), uint32(0xdeadbeef), uint64(0x0102030405060708), int64(-2),
		[]byte{9, 9, 9}, []byte("hello"), []byte{}, "héllo", 2}
	if !reflect.DeepEqual(got, wantVals) {
		t.Fatalf("decoded = %v, want %v", got, wantVals)
	}
}

// spec 02-encoding §1: decoders refuse oversize lengths before allocating,
// truncated input and trailing bytes, always with a *ParseError.
func TestDecoderErrors(t *testing.T) {
	cases := []struct {
		name string
		in   []byte
		read func(d *wire.Decoder)
		want string
	}{
		{"short u32", []byte{1, 2}, func(d *wire.Decoder) { d.U32() }, "need 4 bytes"},
		{"length over limit", []byte{0, 0, 0, 9, 1}, func(d *wire.Decoder) { d.Bytes32(8) }, "exceeds limit 8"},
		{"huge length", []byte{0xff, 0xff, 0xff, 0xff}, func(d *wire.Decoder) { d.Bytes32(1 << 33) }, "need 4294967295 bytes"},
		{"length past end", []byte{0, 3, 1, 2}, func(d *wire.Decoder) { d.Bytes16(10) }, "need 3 bytes, have 2"},
		{"trailing", []byte{1, 2}, func(d *wire.Decoder) { d.U8() }, "1 trailing bytes"},
		{"count over limit", []byte{0, 5}, func(d *wire.Decoder) { d.Count(4, 0) }, "count 5 exceeds limit 4"},
		{"count over input", []byte{0, 5, 1, 2, 3}, func(d *wire.Decoder) { d.Count(100, 32) }, "needs at least 160 bytes"},
		{"version", []byte{2}, func(d *wire.Decoder) { d.Version(1) }, "unsupported version 2"},
		{"sticky", []byte{1}, func(d *wire.Decoder) { d.U16(); d.U8(); d.Fail("later") }, "need 2 bytes"},
	}
	for _, c := range cases {
		d := wire.NewDecoder("thing", c.in)
		c.read(d)
		err := d.Finish()
		var pe *wire.ParseError
		if !errors.As(err, &pe) || !errors.Is(err, wire.ErrMalformed) {
			t.Errorf("%s: Finish() = %v, want *ParseError matching ErrMalformed", c.name, err)
			continue
		}
		if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "thing") {
			t.Errorf("%s: Finish() = %q, want it to mention %q and the structure", c.name, err, c.want)
		}
	}
}

func TestFieldNamedInError(t *testing.T) {
	d := wire.NewDecoder("stamp", []byte{1})
	d.Field("count").U32()
	var pe *wire.ParseError
	if err := d.Finish(); !errors.As(err, &pe) || pe.Field != "count" || pe.Offset != 0 {
		t.Fatalf("Finish() = %#v, want field count at offset 0", err)
	}
}

// spec 02-encoding §3: labels are distinct, versioned and none is a prefix
// of another (so Labeled's length prefix is belt and braces).
func TestLabelsDistinct(t *testing.T) {
	labels := []string{
		wire.LabelStampBatch, wire.LabelStampLeaf, wire.LabelStampNode, wire.LabelEnvelopeHeader,
		wire.LabelEnvelopeID, wire.LabelFranking, wire.LabelDisclosure, wire.LabelRoomID, wire.LabelRoomRoot,
		wire.LabelRoomChain, wire.LabelRoomMessage, wire.LabelRoomNext, wire.LabelAvoidTag, wire.LabelInterestTag,
		wire.LabelTicket, wire.LabelLotteryCommit, wire.LabelLotteryMsg, wire.LabelLotterySeed,
		wire.LabelLotteryOrder, wire.LabelBlobKeys, wire.LabelBlobCommit, wire.LabelBlobChunk,
		wire.LabelBlobAddress, wire.LabelAccountLogin, wire.LabelNodeRecord, wire.LabelTakedown,
	}
	for i, a := range labels {
		if !strings.HasPrefix(a, "parley/v1/") {
			t.Errorf("label %q is not under parley/v1/", a)
		}
		for j, b := range labels {
			if i != j && strings.HasPrefix(b, a) {
				t.Errorf("label %q is a prefix of %q", a, b)
			}
		}
	}
}

func TestLabeledAndHash(t *testing.T) {
	got := wire.Labeled("ab", []byte{1}, []byte{2, 3})
	if want := []byte{0, 2, 'a', 'b', 1, 2, 3}; !bytes.Equal(got, want) {
		t.Fatalf("Labeled = %x, want %x", got, want)
	}
	// Moving bytes between label and message changes the hash.
	if wire.Hash("ab", []byte("c")) == wire.Hash("a", []byte("bc")) {
		t.Fatal("Hash does not separate label from message")
	}
}
