// Package wire is Parley's canonical binary encoding: the one way every
// signed, hashed or transmitted protocol structure is turned into bytes and
// back (spec 02-encoding).
//
// The encoding is deliberately boring: fixed-width big-endian integers,
// fixed-size arrays written as they are, and variable-length fields prefixed
// by their length. There is exactly one encoding of every value, so two
// implementations that agree on a structure agree on its bytes, and so on its
// hash and signature. Every structure starts with a version byte chosen by
// its package.
//
// A Decoder checks every length against a caller-supplied bound before it
// allocates, and its error is sticky: a parser reads all fields and asks
// Finish once, which reports the first problem (or trailing bytes) as a
// *ParseError.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrMalformed is matched (with errors.Is) by every *ParseError.
var ErrMalformed = errors.New("wire: malformed")

// ParseError is the one error type returned by every Parley decoder of
// untrusted bytes. What names the structure being decoded, Field the field
// being read when decoding failed, Offset the byte offset of that field.
type ParseError struct {
	What   string
	Field  string
	Offset int
	Reason string
}

func (e *ParseError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("wire: malformed %s at byte %d: %s", e.What, e.Offset, e.Reason)
	}
	return fmt.Sprintf("wire: malformed %s: field %s at byte %d: %s", e.What, e.Field, e.Offset, e.Reason)
}

// Is reports whether target is ErrMalformed, so callers need not know the type.
func (e *ParseError) Is(target error) bool { return target == ErrMalformed }

// Errorf returns a *ParseError for a structure-level check a parser makes on
// decoded values (a bad version, an out-of-range field).
func Errorf(what, field string, format string, args ...any) error {
	return &ParseError{What: what, Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Encoder appends a canonical encoding to a byte slice. The zero value is
// ready to use. Encoders never fail; bounds are the caller's invariant and
// are checked again by the matching decoder.
type Encoder struct {
	buf []byte
}

// NewEncoder returns an Encoder whose buffer has room for sizeHint bytes.
func NewEncoder(sizeHint int) *Encoder {
	return &Encoder{buf: make([]byte, 0, sizeHint)}
}

// Bytes returns the encoding so far. The slice aliases the encoder's buffer.
func (e *Encoder) Bytes() []byte { return e.buf }

// Len returns the number of bytes written so far.
func (e *Encoder) Len() int { return len(e.buf) }

// U8 appends one byte.
func (e *Encoder) U8(v uint8) { e.buf = append(e.buf, v) }

// U16 appends v big-endian.
func (e *Encoder) U16(v uint16) { e.buf = binary.BigEndian.AppendUint16(e.buf, v) }

// U32 appends v big-endian.
func (e *Encoder) U32(v uint32) { e.buf = binary.BigEndian.AppendUint32(e.buf, v) }

// U64 appends v big-endian.
func (e *Encoder) U64(v uint64) { e.buf = binary.BigEndian.AppendUint64(e.buf, v) }

// I64 appends v as its two's-complement uint64, big-endian.
func (e *Encoder) I64(v int64) { e.U64(uint64(v)) }

// Fixed appends b with no length prefix: for fields whose size the format
// fixes (keys, hashes, signatures).
func (e *Encoder) Fixed(b []byte) { e.buf = append(e.buf, b...) }

// Bytes32 appends b prefixed by its length as a uint32. b must be shorter
// than 4 GiB.
func (e *Encoder) Bytes32(b []byte) {
	if uint64(len(b)) > 0xffffffff {
		panic("wire: Bytes32 field longer than 4 GiB")
	}
	e.U32(uint32(len(b)))
	e.buf = append(e.buf, b...)
}

// Bytes16 appends b prefixed by its length as a uint16. b must be shorter
// than 65536 bytes.
func (e *Encoder) Bytes16(b []byte) {
	if len(b) > 0xffff {
		panic("wire: Bytes16 field longer than 65535 bytes")
	}
	e.U16(uint16(len(b)))
	e.buf = append(e.buf, b...)
}

// String16 appends s as Bytes16.
func (e *Encoder) String16(s string) {
	if len(s) > 0xffff {
		panic("wire: String16 field longer than 65535 bytes")
	}
	e.U16(uint16(len(s)))
	e.buf = append(e.buf, s...)
}

// Count appends a list length as a uint16. n must be below 65536.
func (e *Encoder) Count(n int) {
	if n < 0 || n > 0xffff {
		panic("wire: list count out of range")
	}
	e.U16(uint16(n))
}

// Decoder reads a canonical encoding. Its first error is sticky: later reads
// return zero values, and Finish reports the error.
type Decoder struct {
	what  string
	b     []byte
	off   int
	err   *ParseError
	field string
}

// NewDecoder returns a Decoder over b; what names the structure in errors.
func NewDecoder(what string, b []byte) *Decoder {
	return &Decoder{what: what, b: b}
}

// Field names the field about to be read, for error messages. It returns d
// so calls chain: d.Field("seq").U64().
func (d *Decoder) Field(name string) *Decoder {
	d.field = name
	return d
}

// Err returns the sticky error, or nil.
func (d *Decoder) Err() error {
	if d.err == nil {
		return nil
	}
	return d.err
}

// Fail records a parse error at the current offset unless one is recorded.
func (d *Decoder) Fail(format string, args ...any) {
	if d.err == nil {
		d.err = &ParseError{What: d.what, Field: d.field, Offset: d.off, Reason: fmt.Sprintf(format, args...)}
	}
}

// Remaining returns how many bytes are left.
func (d *Decoder) Remaining() int { return len(d.b) - d.off }

// Offset returns the current read offset.
func (d *Decoder) Offset() int { return d.off }

func (d *Decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.b)-d.off {
		d.Fail("need %d bytes, have %d", n, len(d.b)-d.off)
		return nil
	}
	s := d.b[d.off : d.off+n : d.off+n]
	d.off += n
	return s
}

// U8 reads one byte.
func (d *Decoder) U8() uint8 {
	s := d.take(1)
	if s == nil {
		return 0
	}
	return s[0]
}

// U16 reads a big-endian uint16.
func (d *Decoder) U16() uint16 {
	s := d.take(2)
	if s == nil {
		return 0
	}
	return binary.BigEndian.Uint16(s)
}

// U32 reads a big-endian uint32.
func (d *Decoder) U32() uint32 {
	s := d.take(4)
	if s == nil {
		return 0
	}
	return binary.BigEndian.Uint32(s)
}

// U64 reads a big-endian uint64.
func (d *Decoder) U64() uint64 {
	s := d.take(8)
	if s == nil {
		return 0
	}
	return binary.BigEndian.Uint64(s)
}

// I64 reads an int64 written by Encoder.I64.
func (d *Decoder) I64() int64 { return int64(d.U64()) }

// Fixed fills dst with the next len(dst) bytes.
func (d *Decoder) Fixed(dst []byte) {
	s := d.take(len(dst))
	if s != nil {
		copy(dst, s)
	}
}

// Bytes32 reads a uint32-length-prefixed field of at most limit bytes and
// returns a copy of it.
func (d *Decoder) Bytes32(limit int) []byte {
	n := d.U32()
	if d.err != nil {
		return nil
	}
	if uint64(n) > uint64(limit) {
		d.Fail("length %d exceeds limit %d", n, limit)
		return nil
	}
	s := d.take(int(n))
	if s == nil {
		return nil
	}
	out := make([]byte, len(s))
	copy(out, s)
	return out
}

// Bytes16 reads a uint16-length-prefixed field of at most limit bytes and
// returns a copy of it.
func (d *Decoder) Bytes16(limit int) []byte {
	n := d.U16()
	if d.err != nil {
		return nil
	}
	if int(n) > limit {
		d.Fail("length %d exceeds limit %d", n, limit)
		return nil
	}
	s := d.take(int(n))
	if s == nil {
		return nil
	}
	out := make([]byte, len(s))
	copy(out, s)
	return out
}

// String16 reads a String16 field of at most limit bytes.
func (d *Decoder) String16(limit int) string {
	return string(d.Bytes16(limit))
}

// Count reads a uint16 list length and checks it against limit. It also checks
// that at least minItemSize bytes per item remain, so a hostile count cannot
// make the caller allocate more than the input justifies.
func (d *Decoder) Count(limit, minItemSize int) int {
	n := int(d.U16())
	if d.err != nil {
		return 0
	}
	if n > limit {
		d.Fail("count %d exceeds limit %d", n, limit)
		return 0
	}
	if minItemSize > 0 && n > d.Remaining()/minItemSize {
		d.Fail("count %d needs at least %d bytes, have %d", n, n*minItemSize, d.Remaining())
		return 0
	}
	return n
}

// Version reads the version byte and checks it equals want.
func (d *Decoder) Version(want uint8) {
	d.Field("version")
	if v := d.U8(); d.err == nil && v != want {
		d.Fail("unsupported version %d (want %d)", v, want)
	}
}

// Finish reports the sticky error, or trailing bytes if all fields were read
// without error. Canonical encodings have no trailing bytes.
func (d *Decoder) Finish() error {
	if d.err != nil {
		return d.err
	}
	if d.off != len(d.b) {
		d.field = ""
		d.Fail("%d trailing bytes", len(d.b)-d.off)
		return d.err
	}
	return nil
}
