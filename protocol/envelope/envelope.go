// Package envelope implements Parley's sealed message (spec 03-envelope,
// DESIGN §3.2 and §3.4).
//
// An Envelope is a cleartext Header (content type, room, sender and recipient
// ticket keys, sequence number, time and the franking commitment) and a
// ciphertext. Seal pads the content to a size bucket, puts a fresh franking
// key in front of it, and encrypts it with XChaCha20-Poly1305 under the
// one-time key and nonce the room's ratchet derived for this message, with
// the labeled header as associated data. Open reverses it and refuses any
// message whose franking commitment does not open, so that nothing a client
// displays is unreportable (sender binding).
//
// The sender's node checks a header with CheckHeader and stamps batches of
// headers with StampBatch; anyone can check a stamp with VerifyStamp. The
// envelope ID, a hash of the header, is the idempotency key for
// at-least-once delivery: ciphertexts are never compared or de-duplicated.
package envelope

import (
	"bytes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/parley-chat/parley/protocol/franking"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/stamp"
	"github.com/parley-chat/parley/protocol/wire"
)

// Version is the version byte that starts an envelope's encoding.
const Version = 1

// Sizes of the inner plaintext and ciphertext (spec 03-envelope §4).
const (
	// InnerOverhead is what the inner plaintext adds to the content: the
	// 32-byte franking key and the 4-byte content length.
	InnerOverhead = franking.KeySize + 4
	// TagSize is the size of the AEAD tag that ends every ciphertext.
	TagSize = chacha20poly1305.Overhead
)

// buckets are the inner plaintext sizes a sealed message may have, smallest
// first. The largest equals wire.MaxEnvelopeCiphertext - TagSize.
var buckets = [...]int{256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536}

// zeros is compared against the padding, which is at most the largest bucket.
var zeros [65536]byte

// Errors returned by Seal, Open and VerifyStamp. Match them with errors.Is.
var (
	// ErrTooLarge: Seal was given more than wire.MaxPlaintext bytes.
	ErrTooLarge = errors.New("envelope: content too large")
	// ErrDecrypt: the ciphertext does not open under the message key and the
	// header (wrong key, or ciphertext or header altered).
	ErrDecrypt = errors.New("envelope: decryption failed")
	// ErrMalformedPlaintext: the ciphertext opened, but the inner plaintext
	// breaks the layout of spec 03-envelope §4 (size not a bucket, length
	// out of range, non-zero padding, text that is not UTF-8).
	ErrMalformedPlaintext = errors.New("envelope: malformed inner plaintext")
	// ErrBadCommitment: the franking key and content inside the ciphertext
	// do not match the header's commitment. The message must not be shown.
	ErrBadCommitment = errors.New("envelope: franking commitment does not match")
	// ErrUnstamped: the envelope carries no stamp.
	ErrUnstamped = errors.New("envelope: not stamped")
	// ErrBadStamp: the stamp does not verify for this header and node. It
	// wraps the stamp package's error (stamp.ErrWrongNode or
	// stamp.ErrBadSignature).
	ErrBadStamp = errors.New("envelope: bad stamp")
)

// Envelope is a sealed message as it travels between clients and nodes.
type Envelope struct {
	Header     Header
	Ciphertext []byte       // XChaCha20-Poly1305 of the padded inner plaintext, tag included
	Stamp      *stamp.Stamp // the sender's node's stamp of Header; nil until stamped
}

// Opened is the content of an envelope that opened and whose franking
// commitment verified.
type Opened struct {
	Content     []byte       // the message content, as the sender passed it to Seal
	FrankingKey franking.Key // what a disclosure of this message reveals
}

// PaddedSize returns the size of the inner plaintext that carries n bytes of
// content: the smallest power-of-two bucket from 256 to 65536 bytes that
// holds InnerOverhead+n bytes. It returns 0 if n is negative or above
// wire.MaxPlaintext.
func PaddedSize(n int) int {
	if n < 0 || n > wire.MaxPlaintext {
		return 0
	}
	for _, b := range buckets {
		if InnerOverhead+n <= b {
			return b
		}
	}
	panic("envelope: MaxPlaintext does not fit the largest bucket")
}

func isBucket(n int) bool {
	for _, b := range buckets {
		if n == b {
			return true
		}
	}
	return false
}

// adSize is the size of the associated data: Labeled(LabelEnvelopeHeader, header).
const adSize = 2 + len(wire.LabelEnvelopeHeader) + HeaderSize

var adPrefix = wire.Labeled(wire.LabelEnvelopeHeader)

// associatedData writes Labeled(LabelEnvelopeHeader, header encoding) to ad.
func (h *Header) associatedData(ad *[adSize]byte) {
	n := copy(ad[:], adPrefix)
	h.encode((*[HeaderSize]byte)(ad[n:]))
}

func newAEAD(mk *keys.MessageKey) cipher.AEAD {
	aead, err := chacha20poly1305.NewX(mk.Key[:])
	if err != nil {
		panic("envelope: XChaCha20-Poly1305 refused a 32-byte key: " + err.Error())
	}
	return aead
}

// Seal encrypts content for the recipient in h under the one-time message
// key mk (spec 03-envelope §5). It draws a fresh franking key from r, sets
// h.Commitment to the commitment to content, and returns the unstamped
// envelope. h.ContentType must be defined; the other header fields are the
// caller's. mk must never seal a second message, not even the same content
// again: the nonce comes from the key, so reusing it breaks the AEAD.
func Seal(mk *keys.MessageKey, h Header, content []byte, r io.Reader) (*Envelope, error) {
	if len(content) > wire.MaxPlaintext {
		return nil, fmt.Errorf("%w: %d bytes (max %d)", ErrTooLarge, len(content), wire.MaxPlaintext)
	}
	if !validContentType(h.ContentType) {
		return nil, fmt.Errorf("%w: %d", ErrBadContentType, h.ContentType)
	}
	fk, err := franking.NewKey(r)
	if err != nil {
		return nil, fmt.Errorf("envelope: %w", err)
	}
	h.Commitment = franking.Commit(&fk, content)

	// One buffer holds the inner plaintext and, sealed in place, the
	// ciphertext with its tag. make zeroes it, which is the padding.
	size := PaddedSize(len(content))
	buf := make([]byte, size, size+TagSize)
	copy(buf, fk[:])
	binary.BigEndian.PutUint32(buf[franking.KeySize:], uint32(len(content)))
	copy(buf[InnerOverhead:], content)

	var ad [adSize]byte
	h.associatedData(&ad)
	ct := newAEAD(mk).Seal(buf[:0], mk.Nonce[:], buf, ad[:])
	return &Envelope{Header: h, Ciphertext: ct}, nil
}

// Open decrypts e under mk and checks, in this order (spec 03-envelope §6):
// the AEAD with the labeled header as associated data (ErrDecrypt); the
// inner plaintext's layout (ErrMalformedPlaintext); the franking commitment
// (ErrBadCommitment); and, for text, that the content is UTF-8
// (ErrMalformedPlaintext). Only if all pass does it return the content.
// Before displaying it the caller must also check the stamp (VerifyStamp,
// against the sender's home node) and that the header names its room, its
// partner as sender and itself as recipient (sender binding).
func Open(mk *keys.MessageKey, e *Envelope) (Opened, error) {
	ct := e.Ciphertext
	if len(ct) < TagSize {
		return Opened{}, fmt.Errorf("%w: ciphertext shorter than the tag", ErrDecrypt)
	}
	var ad [adSize]byte
	e.Header.associatedData(&ad)
	pt, err := newAEAD(mk).Open(make([]byte, 0, len(ct)-TagSize), mk.Nonce[:], ct, ad[:])
	if err != nil {
		return Opened{}, ErrDecrypt
	}

	if !isBucket(len(pt)) {
		return Opened{}, fmt.Errorf("%w: %d bytes is not a padding bucket", ErrMalformedPlaintext, len(pt))
	}
	n := binary.BigEndian.Uint32(pt[franking.KeySize:InnerOverhead])
	if n > wire.MaxPlaintext || int(n) > len(pt)-InnerOverhead {
		return Opened{}, fmt.Errorf("%w: content length %d in a %d-byte bucket", ErrMalformedPlaintext, n, len(pt))
	}
	end := InnerOverhead + int(n)
	if PaddedSize(int(n)) != len(pt) {
		return Opened{}, fmt.Errorf("%w: %d bytes of content padded to %d, want %d", ErrMalformedPlaintext, n, len(pt), PaddedSize(int(n)))
	}
	if pad := pt[end:]; !bytes.Equal(pad, zeros[:len(pad)]) {
		return Opened{}, fmt.Errorf("%w: non-zero padding", ErrMalformedPlaintext)
	}

	var o Opened
	copy(o.FrankingKey[:], pt[:franking.KeySize])
	clear(pt[:franking.KeySize]) // the key lives on in o only
	o.Content = pt[InnerOverhead:end:end]
	if !franking.Verify(&o.FrankingKey, o.Content, e.Header.Commitment) {
		return Opened{}, ErrBadCommitment
	}
	if e.Header.ContentType == ContentText && !utf8.Valid(o.Content) {
		return Opened{}, fmt.Errorf("%w: text is not UTF-8", ErrMalformedPlaintext)
	}
	return o, nil
}

// ID returns the envelope's idempotency ID (spec 03-envelope §8):
// H("parley/v1/envelope-id", header encoding). Retries of one message carry
// the same header and so the same ID; nodes and clients de-duplicate by ID,
// never by ciphertext.
func (e *Envelope) ID() [32]byte {
	var h [HeaderSize]byte
	e.Header.encode(&h)
	return wire.Hash(wire.LabelEnvelopeID, h[:])
}

// Append appends the envelope's canonical encoding to enc.
func (e *Envelope) Append(enc *wire.Encoder) {
	enc.U8(Version)
	e.Header.Append(enc)
	enc.Bytes32(e.Ciphertext)
	if e.Stamp == nil {
		enc.U8(0)
		return
	}
	enc.U8(1)
	e.Stamp.Append(enc)
}

// MarshalBinary returns the envelope's canonical encoding.
func (e *Envelope) MarshalBinary() ([]byte, error) {
	n := 1 + HeaderSize + 4 + len(e.Ciphertext) + 1
	if e.Stamp != nil {
		n += stampSize(e.Stamp)
	}
	enc := wire.NewEncoder(n)
	e.Append(enc)
	return enc.Bytes(), nil
}

func stampSize(s *stamp.Stamp) int {
	return 1 + 32 + 8 + 4 + 4 + 1 + 32*len(s.Path) + keys.SignatureSize
}

// Read decodes an envelope from d. Errors are recorded in d.
func Read(d *wire.Decoder) *Envelope {
	e := new(Envelope)
	d.Version(Version)
	e.Header = ReadHeader(d)
	e.Ciphertext = d.Field("ciphertext").Bytes32(wire.MaxEnvelopeCiphertext)
	if d.Err() == nil && !isBucket(len(e.Ciphertext)-TagSize) {
		d.Fail("ciphertext of %d bytes is not a padding bucket plus the tag", len(e.Ciphertext))
	}
	switch p := d.Field("stamp present").U8(); {
	case d.Err() != nil || p == 0:
	case p == 1:
		s := stamp.Read(d)
		e.Stamp = &s
	default:
		d.Fail("presence byte %d is not 0 or 1", p)
	}
	return e
}

// Parse decodes an envelope. Every error is a *wire.ParseError. Parse checks
// the structure only; VerifyStamp and Open check the rest.
func Parse(b []byte) (*Envelope, error) {
	d := wire.NewDecoder("envelope", b)
	e := Read(d)
	if err := d.Finish(); err != nil {
		return nil, err
	}
	return e, nil
}

// StampBatch is the sender's node's stamp (spec 03-envelope §8, spec
// 04-stamps): one stamp.Sign at time t over the header encodings of envs,
// with purpose wire.LabelEnvelopeHeader, setting each envelope's Stamp (and
// replacing any earlier one). The node calls CheckHeader on each header
// first. envs holds 1 to wire.MaxStampBatch envelopes; otherwise the error
// matches stamp.ErrBatchSize and no envelope changes.
func StampBatch(k keys.NodeKey, t time.Time, envs []*Envelope) error {
	if len(envs) == 0 || len(envs) > wire.MaxStampBatch {
		return fmt.Errorf("envelope: %w: %d envelopes", stamp.ErrBatchSize, len(envs))
	}
	backing := make([]byte, len(envs)*HeaderSize)
	leaves := make([][]byte, len(envs))
	for i, e := range envs {
		leaf := backing[i*HeaderSize : (i+1)*HeaderSize : (i+1)*HeaderSize]
		e.Header.encode((*[HeaderSize]byte)(leaf))
		leaves[i] = leaf
	}
	stamps, err := stamp.Sign(k, wire.LabelEnvelopeHeader, t, leaves)
	if err != nil {
		return fmt.Errorf("envelope: stamping: %w", err)
	}
	for i, e := range envs {
		e.Stamp = &stamps[i]
	}
	return nil
}

// VerifyStamp checks that e carries node's stamp of its header. It returns
// nil, ErrUnstamped, or an error matching ErrBadStamp and the stamp
// package's error.
func (e *Envelope) VerifyStamp(node keys.NodeID) error {
	if e.Stamp == nil {
		return ErrUnstamped
	}
	var h [HeaderSize]byte
	e.Header.encode(&h)
	if err := stamp.Verify(node, wire.LabelEnvelopeHeader, h[:], e.Stamp); err != nil {
		return fmt.Errorf("%w: %w", ErrBadStamp, err)
	}
	return nil
}
