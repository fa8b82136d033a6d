package envelope_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/parley-chat/parley/protocol/envelope"
	"github.com/parley-chat/parley/protocol/wire"
)

// requireParseError fails unless err is a *wire.ParseError (spec 02-encoding
// §1: one error class for malformed input).
func requireParseError(t *testing.T, what string, err error) {
	t.Helper()
	var pe *wire.ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("%s error %v (%T) is not a *wire.ParseError", what, err, err)
	}
}

// FuzzParseEnvelope: every failure is a *wire.ParseError; whatever parses
// re-encodes to the same bytes (one encoding per value).
func FuzzParseEnvelope(f *testing.F) {
	mk := messageKey("fuzz")
	node := nodeKey(f, "fuzz")
	var envs []*envelope.Envelope
	for i, n := range []int{0, 5, 300, 2000} {
		envs = append(envs, seal(f, mk, header(f, uint64(i)), make([]byte, n), "fuzz"))
	}
	f.Add(marshal(f, envs[0]))
	if err := envelope.StampBatch(node, t0, envs); err != nil {
		f.Fatal(err)
	}
	for _, e := range envs {
		f.Add(marshal(f, e))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := envelope.Parse(b)
		if err != nil {
			requireParseError(t, "Parse", err)
			return
		}
		again, _ := e.MarshalBinary()
		if !bytes.Equal(again, b) {
			t.Fatalf("Marshal(Parse(b)) = %x, want %x", again, b)
		}
		// Whatever parses can be checked without panicking.
		_ = e.VerifyStamp(node.Public())
		_, _ = envelope.Open(mk, e)
		_ = e.ID()
	})
}

// FuzzParseHeader: as FuzzParseEnvelope, for a header alone.
func FuzzParseHeader(f *testing.F) {
	for _, seq := range []uint64{0, 1, 1 << 63} {
		f.Add(headerBytes(header(f, seq)))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := envelope.ParseHeader(b)
		if err != nil {
			requireParseError(t, "ParseHeader", err)
			return
		}
		if again := headerBytes(h); !bytes.Equal(again, b) {
			t.Fatalf("Marshal(ParseHeader(b)) = %x, want %x", again, b)
		}
	})
}

// FuzzOpen: any content seals and opens back; a ciphertext altered anywhere
// fails to open with ErrDecrypt; arbitrary ciphertexts never open.
func FuzzOpen(f *testing.F) {
	f.Add([]byte("hello"), uint32(0), byte(1))
	f.Add([]byte{}, uint32(300), byte(0x80))
	f.Add(bytes.Repeat([]byte("x"), 221), uint32(1), byte(0))
	mk := messageKey("fuzz open")
	h := header(f, 1)
	h.ContentType = envelope.ContentBlob // any bytes, not just UTF-8
	f.Fuzz(func(t *testing.T, content []byte, pos uint32, mask byte) {
		e, err := envelope.Seal(mk, h, content, bytes.NewReader(make([]byte, 32)))
		if len(content) > wire.MaxPlaintext {
			if !errors.Is(err, envelope.ErrTooLarge) {
				t.Fatalf("Seal(%d bytes) = %v, want ErrTooLarge", len(content), err)
			}
			return
		}
		if err != nil {
			t.Fatalf("Seal = %v", err)
		}
		o, err := envelope.Open(mk, e)
		if err != nil || !bytes.Equal(o.Content, content) {
			t.Fatalf("Open(Seal(content)) = %x, %v; want %x", o.Content, err, content)
		}
		if mask != 0 {
			e.Ciphertext[int(pos)%len(e.Ciphertext)] ^= mask
			if _, err := envelope.Open(mk, e); !errors.Is(err, envelope.ErrDecrypt) {
				t.Fatalf("Open(altered ciphertext) = %v, want ErrDecrypt", err)
			}
		}
		raw := &envelope.Envelope{Header: h, Ciphertext: content}
		if _, err := envelope.Open(mk, raw); !errors.Is(err, envelope.ErrDecrypt) {
			t.Fatalf("Open(arbitrary ciphertext) = %v, want ErrDecrypt", err)
		}
	})
}
