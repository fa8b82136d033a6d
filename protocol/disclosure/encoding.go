package disclosure

import (
	"fmt"
	"unicode/utf8"

	"github.com/parley-chat/parley/protocol/envelope"
	"github.com/parley-chat/parley/protocol/franking"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/stamp"
	"github.com/parley-chat/parley/protocol/wire"
)

// minItemSize is the smallest encoded item: a header, a stamp without a
// path, an empty plaintext and a franking key.
const minItemSize = envelope.HeaderSize + stampFixedSize + 4 + franking.KeySize

// stampFixedSize is a stamp's encoding without its path.
const stampFixedSize = 1 + 32 + 8 + 4 + 4 + 1 + keys.SignatureSize

// size returns the length of d's encoding.
func (d *Disclosure) size() int {
	n := 1 + 32 + 1 + 2 + len(d.Text) + 8 + 2 + keys.SignatureSize
	for i := range d.Items {
		n += envelope.HeaderSize + stampFixedSize + 32*len(d.Items[i].Stamp.Path) + 4 + len(d.Items[i].Plaintext) + franking.KeySize
	}
	return n
}

// appendUnsigned appends every field but the signature: the bytes the
// reporter signs.
func (d *Disclosure) appendUnsigned(e *wire.Encoder) {
	e.U8(Version)
	e.Fixed(d.Reporter[:])
	e.U8(uint8(d.Reason))
	e.String16(d.Text)
	e.I64(d.Time)
	e.Count(len(d.Items))
	for i := range d.Items {
		it := &d.Items[i]
		it.Header.Append(e)
		it.Stamp.Append(e)
		e.Bytes32(it.Plaintext)
		e.Fixed(it.FrankingKey[:])
	}
}

// signedBytes is the encoding of d without its signature (spec
// 05-disclosures §3); the signature covers Labeled(LabelDisclosure, it).
func (d *Disclosure) signedBytes() []byte {
	e := wire.NewEncoder(d.size())
	d.appendUnsigned(e)
	return e.Bytes()
}

// Append appends d's canonical encoding to e. It panics if the text or the
// item list is too long for its length prefix (see MarshalBinary).
func (d *Disclosure) Append(e *wire.Encoder) {
	d.appendUnsigned(e)
	e.Fixed(d.Sig[:])
}

// MarshalBinary returns d's canonical encoding (spec 05-disclosures §2). It
// fails with ErrMalformed only if the text or the item list is too long for
// its length prefix; Verify refuses far smaller ones.
func (d *Disclosure) MarshalBinary() ([]byte, error) {
	if len(d.Text) > 0xffff || len(d.Items) > 0xffff {
		return nil, fmt.Errorf("%w: text of %d bytes or %d items cannot be encoded", ErrMalformed, len(d.Text), len(d.Items))
	}
	e := wire.NewEncoder(d.size())
	d.Append(e)
	return e.Bytes(), nil
}

// Parse decodes a disclosure of at most wire.MaxDisclosureSize bytes. Every
// error is a *wire.ParseError. Parse checks the encoding and each field's
// range; Verify checks the rest.
func Parse(b []byte) (*Disclosure, error) {
	d := wire.NewDecoder("disclosure", b)
	if len(b) > wire.MaxDisclosureSize {
		d.Fail("%d bytes exceed the limit of %d", len(b), wire.MaxDisclosureSize)
		return nil, d.Err()
	}
	out := new(Disclosure)
	d.Version(Version)
	d.Field("reporter").Fixed(out.Reporter[:])
	out.Reason = Reason(d.Field("reason").U8())
	if d.Err() == nil && !out.Reason.valid() {
		d.Fail("undefined reason code %d", uint8(out.Reason))
	}
	out.Text = d.Field("text").String16(wire.MaxReasonText)
	if d.Err() == nil && !utf8.ValidString(out.Text) {
		d.Fail("text is not UTF-8")
	}
	out.Time = d.Field("time").I64()
	n := d.Field("items").Count(wire.MaxDisclosureItems, minItemSize)
	if d.Err() == nil && n == 0 {
		d.Fail("no items")
	}
	if d.Err() == nil {
		out.Items = make([]Item, n)
		for i := range out.Items {
			it := &out.Items[i]
			it.Header = envelope.ReadHeader(d)
			it.Stamp = stamp.Read(d)
			it.Plaintext = d.Field("plaintext").Bytes32(wire.MaxPlaintext)
			d.Field("franking key").Fixed(it.FrankingKey[:])
			if d.Err() != nil {
				break
			}
		}
	}
	d.Field("signature").Fixed(out.Sig[:])
	if err := d.Finish(); err != nil {
		return nil, err
	}
	return out, nil
}
