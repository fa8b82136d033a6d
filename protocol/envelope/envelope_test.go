package envelope_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"testing"

	"github.com/parley-chat/parley/protocol/envelope"
	"github.com/parley-chat/parley/protocol/franking"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/stamp"
	"github.com/parley-chat/parley/protocol/wire"
	"github.com/parley-chat/parley/spec/vectortest"
)

// spec 03-envelope §4: the inner plaintext is padded to the smallest
// power-of-two bucket from 256 to 65536 bytes that holds 36+n bytes.
func TestPaddedSize(t *testing.T) {
	cases := []struct{ n, want int }{
		{-1, 0},
		{0, 256}, {1, 256}, {219, 256}, {220, 256},
		{221, 512}, {476, 512}, {477, 1024}, {988, 1024}, {989, 2048},
		{1000, 2048}, {1024, 2048}, {2012, 2048}, {2013, 4096}, {4060, 4096}, {4061, 8192},
		{16348, 16384}, {16349, 32768}, {32732, 32768}, {32733, 65536},
		{wire.MaxPlaintext, 65536}, {wire.MaxPlaintext + 1, 0},
	}
	for _, c := range cases {
		if got := envelope.PaddedSize(c.n); got != c.want {
			t.Errorf("PaddedSize(%d) = %d, want %d", c.n, got, c.want)
		}
	}
	// The largest bucket plus the tag is the ciphertext limit.
	if got := envelope.PaddedSize(wire.MaxPlaintext) + envelope.TagSize; got != wire.MaxEnvelopeCiphertext {
		t.Errorf("largest ciphertext = %d, want wire.MaxEnvelopeCiphertext %d", got, wire.MaxEnvelopeCiphertext)
	}
}

// spec 03-envelope §4, §5, §6: Seal then Open returns the content and the
// franking key for sizes on both sides of every bucket boundary, and the
// ciphertext is the bucket plus the tag.
func TestSealOpenRoundTrip(t *testing.T) {
	mk := messageKey("round trip")
	sizes := []int{0, 1, 219, 220, 221, 476, 477, 988, 989, 1000, 2012, 2013, 4060, 4061, 16348, 16349, 32732, 32733, wire.MaxPlaintext}
	for _, n := range sizes {
		content := make([]byte, n)
		for i := range content {
			content[i] = byte('a' + i%26)
		}
		h := header(t, uint64(n))
		e := seal(t, mk, h, content, "round trip")
		if got, want := len(e.Ciphertext), envelope.PaddedSize(n)+envelope.TagSize; got != want {
			t.Errorf("Seal(%d bytes): ciphertext %d bytes, want %d", n, got, want)
		}
		h.Commitment = e.Header.Commitment
		if e.Header != h {
			t.Errorf("Seal(%d bytes) changed header fields other than the commitment", n)
		}
		back, err := envelope.Parse(marshal(t, e))
		if err != nil {
			t.Fatalf("Parse(Marshal(Seal(%d bytes))) = %v", n, err)
		}
		for _, env := range []*envelope.Envelope{e, back} {
			o, err := envelope.Open(mk, env)
			if err != nil {
				t.Fatalf("Open(Seal(%d bytes)) = %v", n, err)
			}
			if !bytes.Equal(o.Content, content) {
				t.Errorf("Open(Seal(%d bytes)) content differs", n)
			}
			if !franking.Verify(&o.FrankingKey, content, e.Header.Commitment) {
				t.Errorf("Open(Seal(%d bytes)) franking key does not open the commitment", n)
			}
		}
	}
}

// spec 03-envelope §3: the franking key is fresh for every message, drawn
// from the caller's randomness.
func TestSealFreshFrankingKey(t *testing.T) {
	mk1, mk2 := messageKey("one"), messageKey("two")
	r := vectortest.Rand("fresh")
	h := header(t, 1)
	e1, _ := envelope.Seal(mk1, h, []byte("same"), r)
	e2, _ := envelope.Seal(mk2, h, []byte("same"), r)
	o1, _ := envelope.Open(mk1, e1)
	o2, _ := envelope.Open(mk2, e2)
	if o1.FrankingKey == o2.FrankingKey || e1.Header.Commitment == e2.Header.Commitment {
		t.Errorf("two Seals of the same content reused the franking key or commitment")
	}
}

func TestSealErrors(t *testing.T) {
	mk := messageKey("errors")
	cases := []struct {
		name    string
		ctype   uint8
		content []byte
		r       io.Reader
		want    error
	}{
		{"too large", envelope.ContentText, make([]byte, wire.MaxPlaintext+1), vectortest.Rand("x"), envelope.ErrTooLarge},
		{"content type 0", 0, nil, vectortest.Rand("x"), envelope.ErrBadContentType},
		{"content type 4", wire.MaxContentType + 1, nil, vectortest.Rand("x"), envelope.ErrBadContentType},
		{"short randomness", envelope.ContentText, nil, bytes.NewReader(make([]byte, 31)), io.ErrUnexpectedEOF},
	}
	for _, c := range cases {
		h := header(t, 1)
		h.ContentType = c.ctype
		if _, err := envelope.Seal(mk, h, c.content, c.r); !errors.Is(err, c.want) {
			t.Errorf("%s: Seal error = %v, want %v", c.name, err, c.want)
		}
	}
}

// spec 03-envelope §5: the header, commitment included, is the AEAD's
// associated data, so changing any header field or the key makes Open fail.
func TestOpenBindsHeaderAndKey(t *testing.T) {
	mk := messageKey("bind")
	e := seal(t, mk, header(t, 7), []byte("hello"), "bind")
	otherKey := messageKey("bind")
	otherKey.Key[0] ^= 1
	otherNonce := messageKey("bind")
	otherNonce.Nonce[23] ^= 1
	mutations := []struct {
		name string
		mk   *keys.MessageKey
		mut  func(h *envelope.Header)
	}{
		{"other key", otherKey, func(*envelope.Header) {}},
		{"other nonce", otherNonce, func(*envelope.Header) {}},
		{"content type", mk, func(h *envelope.Header) { h.ContentType = envelope.ContentControl }},
		{"room", mk, func(h *envelope.Header) { h.Room[5] ^= 1 }},
		{"sender", mk, func(h *envelope.Header) { h.Sender, h.Recipient = h.Recipient, h.Sender }},
		{"recipient", mk, func(h *envelope.Header) { h.Recipient[31] ^= 1 }},
		{"seq", mk, func(h *envelope.Header) { h.Seq++ }},
		{"time", mk, func(h *envelope.Header) { h.Time++ }},
		{"commitment", mk, func(h *envelope.Header) { h.Commitment[0] ^= 1 }},
	}
	for _, m := range mutations {
		bad := *e
		m.mut(&bad.Header)
		if _, err := envelope.Open(m.mk, &bad); !errors.Is(err, envelope.ErrDecrypt) {
			t.Errorf("%s: Open = %v, want ErrDecrypt", m.name, err)
		}
	}
	short := *e
	short.Ciphertext = short.Ciphertext[:envelope.TagSize-1]
	if _, err := envelope.Open(mk, &short); !errors.Is(err, envelope.ErrDecrypt) {
		t.Errorf("Open(ciphertext shorter than tag) = %v, want ErrDecrypt", err)
	}
}

// spec 03-envelope §6 (sender binding): a malicious sender who seals, with
// the right message key and header, content that does not match the
// header's commitment gets its message refused by Open.
func TestSenderBinding(t *testing.T) {
	mk := messageKey("sender binding")
	fk, _ := franking.NewKey(vectortest.Rand("fk"))
	other, _ := franking.NewKey(vectortest.Rand("other fk"))
	innocent, evil := []byte("hello"), []byte("evil!")
	h := header(t, 3)
	h.Commitment = franking.Commit(&fk, innocent)
	cases := []struct {
		name string
		key  franking.Key
		body []byte
	}{
		{"other content under the committed key", fk, evil},
		{"committed content under another key", other, innocent},
		{"zero franking key", franking.Key{}, innocent},
	}
	for _, c := range cases {
		e := sealRaw(mk, h, inner(c.key, uint32(len(c.body)), c.body, 256))
		if _, err := envelope.Open(mk, e); !errors.Is(err, envelope.ErrBadCommitment) {
			t.Errorf("%s: Open = %v, want ErrBadCommitment", c.name, err)
		}
	}
	// Control: the honest hand-built message opens, so the cases above fail
	// for the commitment and nothing else.
	if _, err := envelope.Open(mk, sealRaw(mk, h, inner(fk, 5, innocent, 256))); err != nil {
		t.Errorf("honest hand-sealed message: Open = %v, want nil", err)
	}
}

// spec 03-envelope §6: Open parses the inner plaintext strictly.
func TestOpenMalformedPlaintext(t *testing.T) {
	mk := messageKey("malformed")
	fk, _ := franking.NewKey(vectortest.Rand("fk"))
	content := []byte("hi there")
	h := header(t, 4)
	h.Commitment = franking.Commit(&fk, content)
	nonUTF8 := []byte{0xff, 0xfe}
	hText := h
	hText.Commitment = franking.Commit(&fk, nonUTF8)
	hBlob := hText
	hBlob.ContentType = envelope.ContentBlob
	withPad := func(pos int) []byte { b := inner(fk, 8, content, 256); b[pos] = 1; return b }
	big := make([]byte, wire.MaxPlaintext+1)
	hBig := h
	hBig.Commitment = franking.Commit(&fk, big)
	cases := []struct {
		name string
		h    envelope.Header
		pt   []byte
		want error
	}{
		{"first padding byte", h, withPad(36 + 8), envelope.ErrMalformedPlaintext},
		{"last padding byte", h, withPad(255), envelope.ErrMalformedPlaintext},
		{"length past the bucket", h, inner(fk, 256-36+1, content, 256), envelope.ErrMalformedPlaintext},
		{"length 2^32-1", h, inner(fk, math.MaxUint32, content, 256), envelope.ErrMalformedPlaintext},
		{"length above MaxPlaintext", hBig, inner(fk, wire.MaxPlaintext+1, big, 65536), envelope.ErrMalformedPlaintext},
		{"not the smallest bucket", h, inner(fk, 8, content, 1024), envelope.ErrMalformedPlaintext},
		{"size not a bucket", h, inner(fk, 8, content, 300), envelope.ErrMalformedPlaintext},
		{"shorter than the overhead", h, fk[:], envelope.ErrMalformedPlaintext},
		{"text not UTF-8", hText, inner(fk, 2, nonUTF8, 256), envelope.ErrMalformedPlaintext},
		{"blob link bytes are not text", hBlob, inner(fk, 2, nonUTF8, 256), nil},
		{"well formed", h, inner(fk, 8, content, 256), nil},
	}
	for _, c := range cases {
		_, err := envelope.Open(mk, sealRaw(mk, c.h, c.pt))
		if !errors.Is(err, c.want) || (c.want == nil && err != nil) {
			t.Errorf("%s: Open = %v, want %v", c.name, err, c.want)
		}
	}
}

// spec 03-envelope §2: the header layout, field by field.
func TestHeaderLayout(t *testing.T) {
	h := envelope.Header{ContentType: 2, Seq: 0x0102030405060708, Time: -2}
	for i := range h.Room {
		h.Room[i], h.Sender[i], h.Recipient[i], h.Commitment[i] = 0xa0, 0xb0, 0xc0, 0xd0
	}
	b := headerBytes(h)
	want := []byte{1, 2}
	want = append(want, bytes.Repeat([]byte{0xa0}, 32)...)
	want = append(want, bytes.Repeat([]byte{0xb0}, 32)...)
	want = append(want, bytes.Repeat([]byte{0xc0}, 32)...)
	want = append(want, 1, 2, 3, 4, 5, 6, 7, 8)
	want = append(want, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe)
	want = append(want, bytes.Repeat([]byte{0xd0}, 32)...)
	if !bytes.Equal(b, want) || len(b) != envelope.HeaderSize {
		t.Fatalf("Header.MarshalBinary() = %x, want %x", b, want)
	}
	var enc wire.Encoder
	h.Append(&enc)
	if !bytes.Equal(enc.Bytes(), want) {
		t.Errorf("Header.Append = %x, want %x", enc.Bytes(), want)
	}
	back, err := envelope.ParseHeader(b)
	if err != nil || back != h {
		t.Errorf("ParseHeader(Marshal(h)) = %+v, %v, want %+v", back, err, h)
	}
}

// spec 03-envelope §2: malformed headers are refused with a parse error.
func TestParseHeaderMalformed(t *testing.T) {
	good := headerBytes(header(t, 1))
	mut := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	cases := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"version 0", mut(func(b []byte) []byte { b[0] = 0; return b })},
		{"version 2", mut(func(b []byte) []byte { b[0] = 2; return b })},
		{"content type 0", mut(func(b []byte) []byte { b[1] = 0; return b })},
		{"content type 4", mut(func(b []byte) []byte { b[1] = wire.MaxContentType + 1; return b })},
		{"content type 255", mut(func(b []byte) []byte { b[1] = 255; return b })},
		{"truncated", good[:envelope.HeaderSize-1]},
		{"trailing byte", append(bytes.Clone(good), 0)},
	}
	for _, c := range cases {
		_, err := envelope.ParseHeader(c.b)
		var pe *wire.ParseError
		if !errors.As(err, &pe) {
			t.Errorf("%s: ParseHeader error = %v, want a *wire.ParseError", c.name, err)
		}
	}
	for ct := uint8(1); ct <= wire.MaxContentType; ct++ {
		b := bytes.Clone(good)
		b[1] = ct
		if _, err := envelope.ParseHeader(b); err != nil {
			t.Errorf("ParseHeader(content type %d) = %v, want nil", ct, err)
		}
	}
}

// spec 03-envelope §7: envelope encoding refusals.
func TestParseEnvelopeMalformed(t *testing.T) {
	mk := messageKey("parse")
	e := seal(t, mk, header(t, 1), []byte("x"), "parse")
	unstamped := marshal(t, e)
	if err := envelope.StampBatch(nodeKey(t, "n"), t0, []*envelope.Envelope{e}); err != nil {
		t.Fatal(err)
	}
	stamped := marshal(t, e)
	ctOff := 1 + envelope.HeaderSize
	presence := ctOff + 4 + len(e.Ciphertext)
	mut := func(b []byte, f func(b []byte) []byte) []byte { return f(bytes.Clone(b)) }
	badLen := func(n int) []byte {
		// A well-formed encoding whose ciphertext is n bytes.
		enc := wire.NewEncoder(0)
		enc.U8(envelope.Version)
		h := header(t, 1)
		h.Append(enc)
		enc.Bytes32(make([]byte, n))
		enc.U8(0)
		return enc.Bytes()
	}
	cases := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"version 2", mut(unstamped, func(b []byte) []byte { b[0] = 2; return b })},
		{"header version 2", mut(unstamped, func(b []byte) []byte { b[1] = 2; return b })},
		{"presence 2", mut(unstamped, func(b []byte) []byte { b[presence] = 2; return b })},
		{"presence 0 with a stamp", mut(stamped, func(b []byte) []byte { b[presence] = 0; return b })},
		{"presence 1 without a stamp", mut(unstamped, func(b []byte) []byte { b[presence] = 1; return b })},
		{"trailing byte", append(bytes.Clone(stamped), 0)},
		{"truncated stamp", stamped[:len(stamped)-1]},
		{"ciphertext length past the end", mut(unstamped, func(b []byte) []byte { b[ctOff+3]++; return b })},
		{"ciphertext over the limit", mut(unstamped, func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[ctOff:], wire.MaxEnvelopeCiphertext+1)
			return b
		})},
		{"ciphertext not a bucket plus tag", badLen(300)},
		{"empty ciphertext", badLen(0)},
		{"bucket without the tag", badLen(256)},
	}
	for _, c := range cases {
		_, err := envelope.Parse(c.b)
		var pe *wire.ParseError
		if !errors.As(err, &pe) {
			t.Errorf("%s: Parse error = %v, want a *wire.ParseError", c.name, err)
		}
	}
	for _, n := range []int{256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536} {
		if _, err := envelope.Parse(badLen(n + envelope.TagSize)); err != nil {
			t.Errorf("Parse(ciphertext of bucket %d + tag) = %v, want nil", n, err)
		}
	}
}

// spec 03-envelope §8: what a node checks before stamping.
func TestCheckHeader(t *testing.T) {
	now := t0
	ms := now.UnixMilli()
	skew := wire.MaxClockSkew.Milliseconds()
	cases := []struct {
		name string
		mut  func(h *envelope.Header)
		want error
	}{
		{"valid", func(*envelope.Header) {}, nil},
		{"blob link", func(h *envelope.Header) { h.ContentType = envelope.ContentBlob }, nil},
		{"control", func(h *envelope.Header) { h.ContentType = envelope.ContentControl }, nil},
		{"content type 0", func(h *envelope.Header) { h.ContentType = 0 }, envelope.ErrBadContentType},
		{"content type 4", func(h *envelope.Header) { h.ContentType = 4 }, envelope.ErrBadContentType},
		{"time at +skew", func(h *envelope.Header) { h.Time = ms + skew }, nil},
		{"time at -skew", func(h *envelope.Header) { h.Time = ms - skew }, nil},
		{"time past +skew", func(h *envelope.Header) { h.Time = ms + skew + 1 }, envelope.ErrBadTime},
		{"time past -skew", func(h *envelope.Header) { h.Time = ms - skew - 1 }, envelope.ErrBadTime},
		{"time max int64", func(h *envelope.Header) { h.Time = math.MaxInt64 }, envelope.ErrBadTime},
		{"time min int64", func(h *envelope.Header) { h.Time = math.MinInt64 }, envelope.ErrBadTime},
		{"time zero", func(h *envelope.Header) { h.Time = 0 }, envelope.ErrBadTime},
		{"sender is recipient", func(h *envelope.Header) { h.Recipient = h.Sender }, envelope.ErrSelfAddressed},
	}
	for _, c := range cases {
		h := header(t, 1)
		c.mut(&h)
		err := envelope.CheckHeader(&h, now)
		if !errors.Is(err, c.want) || (c.want == nil && err != nil) {
			t.Errorf("%s: CheckHeader = %v, want %v", c.name, err, c.want)
		}
	}
}

// spec 03-envelope §8: the ID is H(envelope-id, header): independent of the
// ciphertext and the stamp, different for every header field.
func TestID(t *testing.T) {
	mk := messageKey("id")
	e := seal(t, mk, header(t, 9), []byte("x"), "id")
	h := headerBytes(e.Header)
	if got, want := e.ID(), wire.Hash(wire.LabelEnvelopeID, h); got != want {
		t.Fatalf("ID() = %x, want %x", got, want)
	}
	id := e.ID()
	retry := *e
	retry.Ciphertext = bytes.Clone(e.Ciphertext)
	retry.Ciphertext[0] ^= 1
	_ = envelope.StampBatch(nodeKey(t, "n"), t0, []*envelope.Envelope{&retry})
	if retry.ID() != id {
		t.Errorf("ID depends on the ciphertext or the stamp")
	}
	next := *e
	next.Header.Seq++
	if next.ID() == id {
		t.Errorf("ID of seq %d = ID of seq %d", next.Header.Seq, e.Header.Seq)
	}
}

// spec 03-envelope §8, spec 04-stamps: a batch stamp verifies for each
// envelope on its own, against the stamping node only.
func TestStampBatch(t *testing.T) {
	node, other := nodeKey(t, "stamping"), nodeKey(t, "other")
	mk := messageKey("stamps")
	envs := make([]*envelope.Envelope, 100)
	for i := range envs {
		envs[i] = seal(t, mk, header(t, uint64(i)), []byte("m"), "stamps")
	}
	if err := envs[0].VerifyStamp(node.Public()); !errors.Is(err, envelope.ErrUnstamped) {
		t.Errorf("VerifyStamp(unstamped) = %v, want ErrUnstamped", err)
	}
	if err := envelope.StampBatch(node, t0, envs); err != nil {
		t.Fatal(err)
	}
	for i, e := range envs {
		if err := e.VerifyStamp(node.Public()); err != nil {
			t.Fatalf("VerifyStamp(envelope %d) = %v", i, err)
		}
		if e.Stamp.Time != t0.UnixMilli() || e.Stamp.Index != uint32(i) || e.Stamp.Count != 100 {
			t.Errorf("envelope %d: stamp time %d index %d count %d", i, e.Stamp.Time, e.Stamp.Index, e.Stamp.Count)
		}
		back, err := envelope.Parse(marshal(t, e))
		if err != nil {
			t.Fatalf("Parse(stamped envelope %d) = %v", i, err)
		}
		if err := back.VerifyStamp(node.Public()); err != nil {
			t.Fatalf("VerifyStamp(parsed envelope %d) = %v", i, err)
		}
	}
	swapped := *envs[1]
	swapped.Stamp = envs[2].Stamp
	edited := *envs[3]
	edited.Header.Seq = 1000
	cases := []struct {
		name  string
		e     *envelope.Envelope
		node  keys.NodeID
		wants []error
	}{
		{"other node", envs[0], other.Public(), []error{envelope.ErrBadStamp, stamp.ErrWrongNode}},
		{"another envelope's stamp", &swapped, node.Public(), []error{envelope.ErrBadStamp, stamp.ErrBadSignature}},
		{"header edited after stamping", &edited, node.Public(), []error{envelope.ErrBadStamp, stamp.ErrBadSignature}},
	}
	for _, c := range cases {
		err := c.e.VerifyStamp(c.node)
		for _, w := range c.wants {
			if !errors.Is(err, w) {
				t.Errorf("%s: VerifyStamp = %v, want %v", c.name, err, w)
			}
		}
	}
	for _, n := range []int{0, wire.MaxStampBatch + 1} {
		batch := make([]*envelope.Envelope, n)
		for i := range batch {
			batch[i] = envs[0]
		}
		if err := envelope.StampBatch(node, t0, batch); !errors.Is(err, stamp.ErrBatchSize) {
			t.Errorf("StampBatch(%d envelopes) = %v, want stamp.ErrBatchSize", n, err)
		}
	}
}

// spec 03-envelope §7: flipping any bit of a stamped envelope's encoding is
// caught, by the check that owns the byte: Parse for structure, VerifyStamp
// for the header and the stamp, Open for the header and the ciphertext.
func TestTamperEveryByte(t *testing.T) {
	node := nodeKey(t, "stamping")
	mk := messageKey("tamper")
	envs := make([]*envelope.Envelope, 5)
	for i := range envs {
		envs[i] = seal(t, mk, header(t, uint64(i)), []byte("tamper with me"), "tamper")
	}
	if err := envelope.StampBatch(node, t0, envs); err != nil {
		t.Fatal(err)
	}
	e := envs[2]
	good := marshal(t, e)
	ctOff := 1 + envelope.HeaderSize + 4
	stampOff := ctOff + len(e.Ciphertext) + 1
	type outcome struct{ parse, stamp, open bool } // which checks must fail
	region := func(pos int) (string, []outcome) {
		switch {
		case pos == 0:
			return "version", []outcome{{parse: true}}
		case pos == 1:
			return "header version", []outcome{{parse: true}}
		case pos == 2: // content type: 0 or > 3 does not parse, 1..3 are valid types
			return "content type", []outcome{{parse: true}, {stamp: true, open: true}}
		case pos < 1+envelope.HeaderSize:
			return "header", []outcome{{stamp: true, open: true}}
		case pos < ctOff:
			return "ciphertext length", []outcome{{parse: true}}
		case pos < stampOff-1:
			return "ciphertext", []outcome{{open: true}}
		case pos == stampOff-1:
			return "stamp presence", []outcome{{parse: true}}
		default:
			return "stamp", []outcome{{parse: true}, {stamp: true}}
		}
	}
	for pos := range good {
		for _, bit := range []byte{0x01, 0x80} {
			bad := bytes.Clone(good)
			bad[pos] ^= bit
			name, allowed := region(pos)
			var got outcome
			p, err := envelope.Parse(bad)
			if err != nil {
				if !errors.Is(err, wire.ErrMalformed) {
					t.Fatalf("byte %d (%s): Parse error %v is not a parse error", pos, name, err)
				}
				got.parse = true
			} else {
				if err := p.VerifyStamp(node.Public()); err != nil {
					if !errors.Is(err, envelope.ErrBadStamp) {
						t.Fatalf("byte %d (%s): VerifyStamp = %v, want ErrBadStamp", pos, name, err)
					}
					got.stamp = true
				}
				if _, err := envelope.Open(mk, p); err != nil {
					if !errors.Is(err, envelope.ErrDecrypt) {
						t.Fatalf("byte %d (%s): Open = %v, want ErrDecrypt", pos, name, err)
					}
					got.open = true
				}
			}
			ok := false
			for _, a := range allowed {
				ok = ok || a == got
			}
			if !ok {
				t.Errorf("byte %d (%s) bit %#x: failed checks %+v, want one of %+v", pos, name, bit, got, allowed)
			}
		}
	}
}

func TestOpenedKeyDoesNotPrint(t *testing.T) {
	mk := messageKey("print")
	o, err := envelope.Open(mk, seal(t, mk, header(t, 1), []byte("x"), "print"))
	if err != nil {
		t.Fatal(err)
	}
	if got := o.FrankingKey.String(); got != "[franking key]" {
		t.Errorf("FrankingKey.String() = %q", got)
	}
}
