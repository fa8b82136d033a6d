package blob_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/parley-chat/parley/protocol/blob"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/wire"
	"github.com/parley-chat/parley/spec/vectortest"
)

func isParseError(t *testing.T, call string, err error) {
	t.Helper()
	var pe *wire.ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("%s error %v is not a *wire.ParseError", call, err)
	}
}

// FuzzParseManifest: every failure is a *wire.ParseError; whatever parses
// re-encodes to the same bytes (spec 02-encoding §1), hashes to its address
// and can be used to check chunks without panicking.
func FuzzParseManifest(f *testing.F) {
	key := testKey(f, "fuzz manifest")
	for _, n := range []int{0, 100, C, C + 10, 3*C + 1} {
		m, _ := encrypt(f, key, pattern(n))
		b, _ := m.MarshalBinary()
		f.Add(b)
		f.Add(b[:len(b)-1])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := blob.ParseManifest(b)
		if err != nil {
			isParseError(t, "ParseManifest", err)
			return
		}
		again, err := m.MarshalBinary()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("MarshalBinary(ParseManifest(b)) = %x, %v, want %x", again, err, b)
		}
		if _, err := blob.VerifyManifest(m.Address(), b); err != nil {
			t.Fatalf("VerifyManifest(Address(), b) = %v", err)
		}
		for _, i := range []uint32{0, m.ChunkCount - 1, m.ChunkCount} {
			if err := blob.VerifyChunk(m, i, b); !errors.Is(err, blob.ErrBadChunk) {
				t.Fatalf("VerifyChunk(%d, manifest bytes) = %v, want ErrBadChunk", i, err)
			}
		}
		if _, err := blob.OpenChunk(key, m, 0, b); err == nil {
			t.Fatal("OpenChunk(manifest bytes as a chunk) = nil error")
		}
	})
}

// FuzzParseLink: every failure is (or wraps) a *wire.ParseError; whatever
// parses prints back to the same text (one text form per link). The same
// input goes through ParseLocator.
func FuzzParseLink(f *testing.F) {
	nk, _ := keys.GenerateNodeKey(vectortest.Rand("fuzz link"))
	key := testKey(f, "fuzz link")
	m, _ := encrypt(f, key, pattern(10))
	l := blob.Link{Origin: nk.Public(), Address: m.Address(), Key: key}
	f.Add(l.String())
	f.Add(l.Locator().String())
	f.Add(l.Locator().String() + "#")
	f.Fuzz(func(t *testing.T, s string) {
		if l, err := blob.ParseLink(s); err != nil {
			isParseError(t, "ParseLink", err)
		} else if l.String() != s {
			t.Fatalf("ParseLink(%q).String() = %q", s, l.String())
		}
		if loc, err := blob.ParseLocator(s); err != nil {
			isParseError(t, "ParseLocator", err)
		} else if loc.String() != s {
			t.Fatalf("ParseLocator(%q).String() = %q", s, loc.String())
		}
	})
}

// FuzzParseAddress: every failure is a *wire.ParseError; whatever parses
// prints back to the same text.
func FuzzParseAddress(f *testing.F) {
	key := testKey(f, "fuzz address")
	m, _ := encrypt(f, key, pattern(10))
	f.Add(m.Address().String())
	f.Add(blob.Address{}.String())
	f.Fuzz(func(t *testing.T, s string) {
		a, err := blob.ParseAddress(s)
		if err != nil {
			isParseError(t, "ParseAddress", err)
			return
		}
		if a.String() != s {
			t.Fatalf("ParseAddress(%q).String() = %q", s, a.String())
		}
	})
}
