package disclosure_test

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/protocol/disclosure"
	"github.com/parley-chat/parley/protocol/envelope"
	"github.com/parley-chat/parley/protocol/franking"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/stamp"
	"github.com/parley-chat/parley/protocol/wire"
	"github.com/parley-chat/parley/spec/vectortest"
)

// outcome names Verify's result as "ok", "parse" or "<check>/<item>".
func outcome(b []byte, node keys.NodeID, at time.Time) string {
	d, err := disclosure.Parse(b)
	if err != nil {
		var pe *wire.ParseError
		if !errors.As(err, &pe) {
			return fmt.Sprintf("Parse returned %T %v", err, err)
		}
		return "parse"
	}
	return result(disclosure.Verify(d, node, at))
}

func result(err error) string {
	if err == nil {
		return "ok"
	}
	var ve *disclosure.VerifyError
	if !errors.As(err, &ve) {
		return fmt.Sprintf("not a *VerifyError: %v", err)
	}
	return fmt.Sprintf("%s/%d", ve.Check, ve.Item)
}

// spec 05-disclosures §2, §3, §4: a recipient's disclosure of stamped
// messages verifies, survives encoding, and names the accused.
func TestNewVerify(t *testing.T) {
	r := newRoom(t)
	for _, n := range []int{1, 3, wire.MaxDisclosureItems} {
		d := r.report(t, n)
		if err := disclosure.Verify(d, r.node.Public(), now); err != nil {
			t.Fatalf("Verify(%d items) = %v", n, err)
		}
		b, _ := d.MarshalBinary()
		back, err := disclosure.Parse(b)
		if err != nil {
			t.Fatalf("Parse(Marshal(%d items)) = %v", n, err)
		}
		again, _ := back.MarshalBinary()
		if !bytes.Equal(again, b) {
			t.Fatalf("Marshal(Parse(b)) differs from b for %d items", n)
		}
		if err := disclosure.Verify(back, r.node.Public(), now); err != nil {
			t.Fatalf("Verify(parsed, %d items) = %v", n, err)
		}
		room, sender := back.Accused()
		if room != r.id || sender != r.alice.Public().Sign {
			t.Errorf("Accused() = %v, %v, want %v, %v", room, sender, r.id, r.alice.Public().Sign)
		}
		if back.Reporter != r.bob.Public().Sign || back.Reason != disclosure.ReasonSpam || back.Time != t0.Add(time.Minute).UnixMilli() {
			t.Errorf("parsed disclosure: reporter %v reason %v time %d", back.Reporter, back.Reason, back.Time)
		}
	}
	if room, sender := (&disclosure.Disclosure{}).Accused(); room != (keys.RoomID{}) || sender != (keys.TicketID{}) {
		t.Errorf("Accused() of an empty disclosure = %v, %v, want zero values", room, sender)
	}
}

// spec 05-disclosures §4: every check, in order, with the item it names.
func TestVerifyChecks(t *testing.T) {
	r := newRoom(t)
	base := r.report(t, 3)
	otherStamped := items(t, r.send(t, r.other, t0, "buy cheap watches, message 1"))[0]
	other := newRoom(t)
	other.id[0] ^= 1
	otherRoomItem := items(t, other.send(t, other.node, t0, "x", "y"))[1]
	age, skew := wire.MaxDisclosureAge, wire.MaxClockSkew
	cases := []struct {
		name   string
		edit   func(d *disclosure.Disclosure) // applied to a deep copy
		resign *keys.TicketKeys               // re-sign after editing, as this key
		node   keys.NodeID
		at     time.Time
		want   string
	}{
		{name: "valid", want: "ok"},
		{name: "no items", edit: func(d *disclosure.Disclosure) { d.Items = nil }, want: "malformed/-1"},
		{name: "too many items", edit: func(d *disclosure.Disclosure) {
			for len(d.Items) <= wire.MaxDisclosureItems {
				d.Items = append(d.Items, d.Items[0])
			}
		}, want: "malformed/-1"},
		{name: "reason 0", edit: func(d *disclosure.Disclosure) { d.Reason = 0 }, want: "malformed/-1"},
		{name: "reason 5", edit: func(d *disclosure.Disclosure) { d.Reason = 5 }, want: "malformed/-1"},
		{name: "text too long", edit: func(d *disclosure.Disclosure) { d.Text = strings.Repeat("a", wire.MaxReasonText+1) }, want: "malformed/-1"},
		{name: "text not UTF-8", edit: func(d *disclosure.Disclosure) { d.Text = "\xff" }, want: "malformed/-1"},
		{name: "content type 0", edit: func(d *disclosure.Disclosure) { d.Items[2].Header.ContentType = 0 }, want: "malformed/2"},
		{name: "plaintext too large", edit: func(d *disclosure.Disclosure) { d.Items[1].Plaintext = make([]byte, wire.MaxPlaintext+1) }, want: "malformed/1"},
		{name: "item from another room", edit: func(d *disclosure.Disclosure) { d.Items[2] = otherRoomItem }, want: "malformed/2"},
		{name: "item from another sender", edit: func(d *disclosure.Disclosure) { d.Items[1].Header.Sender = r.mallory.Public().Sign }, want: "malformed/1"},
		{name: "repeated sequence number", edit: func(d *disclosure.Disclosure) { d.Items[2].Header.Seq = d.Items[0].Header.Seq }, want: "malformed/2"},
		{name: "repeated item", edit: func(d *disclosure.Disclosure) { d.Items[2] = d.Items[1] }, want: "malformed/2"},
		// spec 05-disclosures §4.2: only the recipient can report.
		{name: "sender reports its own message", edit: func(d *disclosure.Disclosure) { d.Reporter = r.alice.Public().Sign }, resign: &r.alice, want: "not_recipient/0"},
		{name: "third party re-signs as reporter", edit: func(d *disclosure.Disclosure) { d.Reporter = r.mallory.Public().Sign }, resign: &r.mallory, want: "not_recipient/0"},
		{name: "one item to someone else", edit: func(d *disclosure.Disclosure) { d.Items[1].Header.Recipient = r.mallory.Public().Sign }, resign: &r.bob, want: "not_recipient/1"},
		{name: "edited plaintext", edit: func(d *disclosure.Disclosure) { d.Items[1].Plaintext = []byte("I owe you 1000 euros") }, resign: &r.bob, want: "bad_commitment/1"},
		{name: "swapped franking key", edit: func(d *disclosure.Disclosure) { d.Items[0].FrankingKey = d.Items[1].FrankingKey }, resign: &r.bob, want: "bad_commitment/0"},
		{name: "stamp from another batch", edit: func(d *disclosure.Disclosure) { d.Items[0].Stamp = otherStamped.Stamp }, resign: &r.bob, want: "bad_stamp/0"},
		{name: "stamp of another item", edit: func(d *disclosure.Disclosure) { d.Items[2].Stamp = d.Items[1].Stamp }, resign: &r.bob, want: "bad_stamp/2"},
		{name: "verified against another node", node: r.other.Public(), want: "bad_stamp/0"},
		{name: "stamp from the future", at: t0.Add(-skew - time.Millisecond), want: "from_future/0"},
		{name: "stamp at the skew limit", at: t0.Add(-skew), want: "from_future/-1"}, // the disclosure's own time is later still
		{name: "stamp expired", at: t0.Add(age + time.Millisecond), want: "expired/0"},
		{name: "stamp at the age limit", at: t0.Add(age), want: "ok"},
		{name: "signed by another key", resign: &r.mallory, want: "bad_signature/-1"},
		{name: "reason edited after signing", edit: func(d *disclosure.Disclosure) { d.Reason = disclosure.ReasonIllegal }, want: "bad_signature/-1"},
		{name: "text edited after signing", edit: func(d *disclosure.Disclosure) { d.Text += "!" }, want: "bad_signature/-1"},
		{name: "time edited after signing", edit: func(d *disclosure.Disclosure) { d.Time-- }, want: "bad_signature/-1"},
		{name: "items reordered after signing", edit: func(d *disclosure.Disclosure) { d.Items[0], d.Items[1] = d.Items[1], d.Items[0] }, want: "bad_signature/-1"},
		{name: "disclosure from the future", edit: func(d *disclosure.Disclosure) { d.Time = now.Add(skew + time.Millisecond).UnixMilli() }, resign: &r.bob, want: "from_future/-1"},
		{name: "disclosure at the skew limit", edit: func(d *disclosure.Disclosure) { d.Time = now.Add(skew).UnixMilli() }, resign: &r.bob, want: "ok"},
		{name: "stamp time max int64", edit: func(d *disclosure.Disclosure) { d.Items[0].Stamp.Time = math.MaxInt64 }, resign: &r.bob, want: "bad_stamp/0"},
	}
	for _, c := range cases {
		d := clone(t, base)
		if c.edit != nil {
			c.edit(d)
		}
		if c.resign != nil {
			resign(t, d, *c.resign)
		}
		node := r.node.Public()
		if c.node != (keys.NodeID{}) {
			node = c.node
		}
		at := now
		if !c.at.IsZero() {
			at = c.at
		}
		if got := result(disclosure.Verify(d, node, at)); got != c.want {
			t.Errorf("%s: Verify = %s, want %s", c.name, got, c.want)
		}
	}
}

// spec 05-disclosures §4.3 (receiver binding): a reporter holding the real
// stamped message cannot make Verify accept anything the sender did not send.
func TestReceiverBinding(t *testing.T) {
	r := newRoom(t)
	base := r.report(t, 1)
	forged := []byte("I confess to everything")
	cases := []struct {
		name string
		edit func(d *disclosure.Disclosure)
		as   keys.TicketKeys
		want error
	}{
		{"edit the plaintext", func(d *disclosure.Disclosure) { d.Items[0].Plaintext = forged }, r.bob, disclosure.ErrBadCommitment},
		{"swap the franking key", func(d *disclosure.Disclosure) {
			d.Items[0].FrankingKey, _ = franking.NewKey(vectortest.Rand("forger"))
		}, r.bob, disclosure.ErrBadCommitment},
		{"commit anew to a new plaintext", func(d *disclosure.Disclosure) {
			k, _ := franking.NewKey(vectortest.Rand("forger"))
			d.Items[0].Plaintext, d.Items[0].FrankingKey = forged, k
			d.Items[0].Header.Commitment = franking.Commit(&k, forged)
		}, r.bob, disclosure.ErrBadStamp},
		{"re-sign as someone else", func(d *disclosure.Disclosure) { d.Reporter = r.mallory.Public().Sign }, r.mallory, disclosure.ErrNotRecipient},
		{"re-sign with another key, keeping the reporter", func(*disclosure.Disclosure) {}, r.mallory, disclosure.ErrBadSignature},
	}
	for _, c := range cases {
		d := clone(t, base)
		c.edit(d)
		resign(t, d, c.as)
		if err := disclosure.Verify(d, r.node.Public(), now); !errors.Is(err, c.want) {
			t.Errorf("%s: Verify = %v, want %v", c.name, err, c.want)
		}
	}
}

// spec 05-disclosures §4: VerifyError names the check and unwraps to its
// sentinel and to the cause.
func TestVerifyError(t *testing.T) {
	r := newRoom(t)
	d := clone(t, r.report(t, 2))
	err := disclosure.Verify(d, r.other.Public(), now)
	var ve *disclosure.VerifyError
	if !errors.As(err, &ve) || ve.Check != disclosure.CheckStamp || ve.Item != 0 {
		t.Fatalf("Verify(other node) = %#v, want a *VerifyError for CheckStamp item 0", err)
	}
	for _, want := range []error{disclosure.ErrBadStamp, envelope.ErrBadStamp, stamp.ErrWrongNode} {
		if !errors.Is(err, want) {
			t.Errorf("Verify(other node) = %v, does not match %v", err, want)
		}
	}
	for _, not := range []error{disclosure.ErrBadSignature, disclosure.ErrMalformed, disclosure.ErrExpired} {
		if errors.Is(err, not) {
			t.Errorf("Verify(other node) = %v, matches %v too", err, not)
		}
	}
	if msg := err.Error(); !strings.HasPrefix(msg, "disclosure: bad stamp") || !strings.HasSuffix(msg, "(item 0)") {
		t.Errorf("Error() = %q", msg)
	}
	names := map[disclosure.Check]string{
		disclosure.CheckMalformed: "malformed", disclosure.CheckRecipient: "not_recipient",
		disclosure.CheckCommitment: "bad_commitment", disclosure.CheckStamp: "bad_stamp",
		disclosure.CheckStampTime: "from_future", disclosure.CheckAge: "expired",
		disclosure.CheckSignature: "bad_signature", disclosure.CheckTime: "from_future", 0: "check(0)",
	}
	for c, want := range names {
		if got := c.String(); got != want {
			t.Errorf("Check(%d).String() = %q, want %q", uint8(c), got, want)
		}
	}
}

func TestNewRefuses(t *testing.T) {
	r := newRoom(t)
	its := items(t, r.send(t, r.node, t0, "a", "b"))
	bad := slices.Clone(its)
	bad[1].Plaintext = []byte("c")
	cases := []struct {
		name     string
		reporter keys.TicketKeys
		reason   disclosure.Reason
		items    []disclosure.Item
		want     error
	}{
		{"valid", r.bob, disclosure.ReasonOther, its, nil},
		{"no items", r.bob, disclosure.ReasonOther, nil, disclosure.ErrMalformed},
		{"undefined reason", r.bob, 9, its, disclosure.ErrMalformed},
		{"not the recipient", r.mallory, disclosure.ReasonOther, its, disclosure.ErrNotRecipient},
		{"plaintext does not match", r.bob, disclosure.ReasonOther, bad, disclosure.ErrBadCommitment},
	}
	for _, c := range cases {
		_, err := disclosure.New(c.reporter, c.reason, "", t0, c.items)
		if !errors.Is(err, c.want) || (c.want == nil && err != nil) {
			t.Errorf("%s: New = %v, want %v", c.name, err, c.want)
		}
	}
}

func TestItemFromOpened(t *testing.T) {
	r := newRoom(t)
	envs := r.send(t, r.node, t0, "one", "two")
	o0, _ := envelope.Open(messageKey(1), envs[0])
	o1, _ := envelope.Open(messageKey(2), envs[1])
	if _, err := disclosure.ItemFromOpened(envs[0], o1); !errors.Is(err, disclosure.ErrBadCommitment) {
		t.Errorf("ItemFromOpened(other message's content) = %v, want ErrBadCommitment", err)
	}
	unstamped := *envs[0]
	unstamped.Stamp = nil
	if _, err := disclosure.ItemFromOpened(&unstamped, o0); !errors.Is(err, envelope.ErrUnstamped) {
		t.Errorf("ItemFromOpened(unstamped) = %v, want envelope.ErrUnstamped", err)
	}
	it, err := disclosure.ItemFromOpened(envs[0], o0)
	if err != nil {
		t.Fatal(err)
	}
	// The item owns its bytes.
	envs[0].Stamp.Path[0][0] ^= 1
	o0.Content[0] ^= 1
	if it.Stamp.Path[0] == envs[0].Stamp.Path[0] || string(it.Plaintext) != "one" {
		t.Errorf("ItemFromOpened shares memory with its arguments")
	}
}

// field is a byte range of an encoded disclosure and the outcomes a bit flip
// there may have.
type field struct {
	name       string
	start, end int
	want       []string
}

// layout maps d's encoding (spec 05-disclosures §2) to fields. The allowed
// outcomes follow Verify's check order: a flip is caught by the first check
// that covers the byte.
func layout(d *disclosure.Disclosure) []field {
	var fs []field
	off := 0
	add := func(name string, n int, want ...string) {
		fs = append(fs, field{name, off, off + n, want})
		off += n
	}
	add("version", 1, "parse")
	add("reporter", 32, "not_recipient/0")
	add("reason", 1, "parse", "bad_signature/-1") // codes 1..4 are valid
	add("text length", 2, "parse")
	add("text", len(d.Text), "parse", "bad_signature/-1") // 0x80 breaks ASCII's UTF-8
	add("time", 8, "bad_signature/-1")
	add("item count", 2, "parse")
	for i := range d.Items {
		it := fmt.Sprint(i)
		add("header version", 1, "parse")
		add("content type", 1, "parse")
		// Items must share room and sender: item 1 is the first to differ.
		add("room", 32, "malformed/1")
		add("sender", 32, "malformed/1")
		add("recipient", 32, "not_recipient/"+it)
		add("seq", 8, "bad_stamp/"+it)
		add("header time", 8, "bad_stamp/"+it)
		add("commitment", 32, "bad_commitment/"+it)
		add("stamp version", 1, "parse")
		add("stamp node", 32, "bad_stamp/"+it)
		add("stamp time", 8, "bad_stamp/"+it)
		add("stamp index", 4, "parse", "bad_stamp/"+it)
		add("stamp count", 4, "parse", "bad_stamp/"+it)
		add("stamp path length", 1, "parse")
		add("stamp path", 32*len(d.Items[i].Stamp.Path), "bad_stamp/"+it)
		add("stamp signature", 64, "bad_stamp/"+it)
		add("plaintext length", 4, "parse")
		add("plaintext", len(d.Items[i].Plaintext), "bad_commitment/"+it)
		add("franking key", 32, "bad_commitment/"+it)
	}
	add("signature", 64, "bad_signature/-1")
	return fs
}

// spec 05-disclosures §4: flipping any bit of an encoded disclosure makes
// Parse or Verify fail, with the error class of the field that holds it.
func TestTamperEveryByte(t *testing.T) {
	r := newRoom(t)
	d := r.report(t, 2)
	good, _ := d.MarshalBinary()
	if got := outcome(good, r.node.Public(), now); got != "ok" {
		t.Fatalf("untampered: %s", got)
	}
	fs := layout(d)
	if end := fs[len(fs)-1].end; end != len(good) {
		t.Fatalf("layout covers %d bytes, encoding has %d", end, len(good))
	}
	for _, f := range fs {
		for pos := f.start; pos < f.end; pos++ {
			for _, bit := range []byte{0x01, 0x80} {
				bad := bytes.Clone(good)
				bad[pos] ^= bit
				if got := outcome(bad, r.node.Public(), now); !slices.Contains(f.want, got) {
					t.Errorf("flip bit %#x of byte %d (%s): %s, want one of %v", bit, pos, f.name, got, f.want)
				}
			}
		}
	}
}

// spec 05-disclosures §2: malformed encodings are refused by Parse with a
// *wire.ParseError.
func TestParseMalformed(t *testing.T) {
	r := newRoom(t)
	d := r.report(t, 1)
	good, _ := d.MarshalBinary()
	textOff := 1 + 32 + 1 + 2
	countOff := textOff + len(d.Text) + 8
	ptLenOff := countOff + 2 + envelope.HeaderSize + (1 + 32 + 8 + 4 + 4 + 1 + 32*len(d.Items[0].Stamp.Path) + 64)
	mut := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	cases := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"version 2", mut(func(b []byte) []byte { b[0] = 2; return b })},
		{"reason 0", mut(func(b []byte) []byte { b[33] = 0; return b })},
		{"reason 5", mut(func(b []byte) []byte { b[33] = 5; return b })},
		{"text not UTF-8", mut(func(b []byte) []byte { b[textOff] = 0xff; return b })},
		{"text over the limit", mut(func(b []byte) []byte { b[textOff-2], b[textOff-1] = 0x04, 0x01; return b })},
		{"no items", mut(func(b []byte) []byte { b[countOff], b[countOff+1] = 0, 0; return b })},
		{"33 items", mut(func(b []byte) []byte { b[countOff+1] = wire.MaxDisclosureItems + 1; return b })},
		{"2 items, 1 present", mut(func(b []byte) []byte { b[countOff+1] = 2; return b })},
		{"plaintext over the limit", mut(func(b []byte) []byte { b[ptLenOff+1] = 0xf1; return b })},
		{"header content type 0", mut(func(b []byte) []byte { b[countOff+3] = 0; return b })},
		{"trailing byte", append(bytes.Clone(good), 0)},
		{"truncated", good[:len(good)-1]},
		{"over MaxDisclosureSize", append(bytes.Clone(good), make([]byte, wire.MaxDisclosureSize)...)},
	}
	for _, c := range cases {
		_, err := disclosure.Parse(c.b)
		var pe *wire.ParseError
		if !errors.As(err, &pe) {
			t.Errorf("%s: Parse = %v, want a *wire.ParseError", c.name, err)
		}
	}
}

// spec 05-disclosures §2: wire.MaxDisclosureSize bounds the largest valid
// disclosure, which Parse accepts.
func TestMaxDisclosureSize(t *testing.T) {
	d := &disclosure.Disclosure{Reason: disclosure.ReasonOther, Text: strings.Repeat("x", wire.MaxReasonText)}
	for i := range wire.MaxDisclosureItems {
		it := disclosure.Item{
			Header:    envelope.Header{ContentType: envelope.ContentText, Seq: uint64(i)},
			Stamp:     stamp.Stamp{Index: 0, Count: wire.MaxStampBatch, Path: make([][32]byte, wire.MaxStampPath)},
			Plaintext: make([]byte, wire.MaxPlaintext),
		}
		d.Items = append(d.Items, it)
	}
	b, err := d.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > wire.MaxDisclosureSize {
		t.Fatalf("largest disclosure is %d bytes > MaxDisclosureSize %d", len(b), wire.MaxDisclosureSize)
	}
	if _, err := disclosure.Parse(b); err != nil {
		t.Fatalf("Parse(largest disclosure) = %v", err)
	}
	d.Text = strings.Repeat("x", 0x10000)
	if _, err := d.MarshalBinary(); !errors.Is(err, disclosure.ErrMalformed) {
		t.Errorf("MarshalBinary(64 KiB text) = %v, want ErrMalformed", err)
	}
}

func TestReasonString(t *testing.T) {
	for r, want := range map[disclosure.Reason]string{1: "spam", 2: "harassment", 3: "illegal", 4: "other", 0: "reason(0)", 5: "reason(5)"} {
		if got := r.String(); got != want {
			t.Errorf("Reason(%d).String() = %q, want %q", uint8(r), got, want)
		}
	}
}
