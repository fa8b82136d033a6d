package blob_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/parley-chat/parley/protocol/blob"
	"github.com/parley-chat/parley/protocol/wire"
)

// manifestBytes builds a manifest encoding field by field, consistent or not.
func manifestBytes(version uint8, size uint64, count uint32, hashes int) []byte {
	e := wire.NewEncoder(0)
	e.U8(version)
	e.U64(size)
	e.U32(count)
	e.Fixed(make([]byte, 32))
	e.Fixed(make([]byte, 32*hashes))
	return e.Bytes()
}

// spec 08-blobs §4: ParseManifest refuses anything but the canonical
// encoding of a consistent manifest.
func TestParseManifestMalformed(t *testing.T) {
	key := testKey(t, "manifest")
	m, _ := encrypt(t, key, pattern(2*C+1))
	good, _ := m.MarshalBinary()
	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"version 0", manifestBytes(0, 10, 1, 1)},
		{"version 2", manifestBytes(2, 10, 1, 1)},
		{"header only", good[:13]},
		{"no hashes", good[:45]},
		{"one hash short", good[:len(good)-32]},
		{"truncated hash", good[:len(good)-1]},
		{"extra hash", append(bytes.Clone(good), make([]byte, 32)...)},
		{"trailing byte", append(bytes.Clone(good), 0)},
		{"count 0 for empty blob", manifestBytes(1, 0, 0, 0)},
		{"count 2 for empty blob", manifestBytes(1, 0, 2, 2)},
		{"count 1 for a chunk and a byte", manifestBytes(1, C+1, 1, 1)},
		{"count 3 for two full chunks", manifestBytes(1, 2*C, 3, 3)},
		{"size above MaxSize", manifestBytes(1, blob.MaxSize+1, wire.MaxBlobChunks+1, 0)},
		{"size 2^64-1", manifestBytes(1, ^uint64(0), 0, 0)},
		// A maximal count with no hashes behind it must fail before the
		// hashes are allocated.
		{"MaxSize without hashes", manifestBytes(1, blob.MaxSize, wire.MaxBlobChunks, 0)},
		{"count 2^32-1", manifestBytes(1, 10, ^uint32(0), 0)},
	}
	for _, tt := range tests {
		m, err := blob.ParseManifest(tt.in)
		var pe *wire.ParseError
		if !errors.As(err, &pe) || m != nil {
			t.Errorf("%s: ParseManifest = %v, %v, want nil, *wire.ParseError", tt.name, m, err)
		}
	}
	// The largest manifest parses.
	big := manifestBytes(1, blob.MaxSize, wire.MaxBlobChunks, wire.MaxBlobChunks)
	if len(big) != blob.MaxManifestSize {
		t.Errorf("largest manifest is %d bytes, want MaxManifestSize %d", len(big), blob.MaxManifestSize)
	}
	if _, err := blob.ParseManifest(big); err != nil {
		t.Errorf("ParseManifest(largest) = %v", err)
	}
}

// spec 08-blobs §4: the layout, field by field.
func TestManifestLayout(t *testing.T) {
	key := testKey(t, "layout")
	m, chunks := encrypt(t, key, pattern(C+2))
	b, _ := m.MarshalBinary()
	if b[0] != blob.Version || binary.BigEndian.Uint64(b[1:9]) != C+2 || binary.BigEndian.Uint32(b[9:13]) != 2 {
		t.Errorf("manifest header = %x, want version 1, size %d, count 2", b[:13], C+2)
	}
	commit := key.Commitment()
	if !bytes.Equal(b[13:45], commit[:]) {
		t.Error("manifest bytes 13..45 are not the key commitment")
	}
	for i, c := range chunks {
		h := blob.ChunkHash(uint32(i), c)
		if !bytes.Equal(b[45+32*i:77+32*i], h[:]) {
			t.Errorf("manifest hash %d is not ChunkHash(%d, chunk)", i, i)
		}
	}
	if want := blob.Address(wire.Hash(wire.LabelBlobAddress, b)); m.Address() != want {
		t.Errorf("Address() = %s, want H(blob-address, encoding) = %s", m.Address(), want)
	}
}

// spec 08-blobs §5: changing any bit of a manifest either makes it
// unparsable or changes the address, so a node cannot pass another
// manifest off under an address.
func TestManifestTamperChangesAddress(t *testing.T) {
	key := testKey(t, "tamper manifest")
	m, _ := encrypt(t, key, pattern(C+50))
	good, _ := m.MarshalBinary()
	addr := m.Address()
	for pos := range good {
		for bit := range 8 {
			bad := bytes.Clone(good)
			bad[pos] ^= 1 << bit
			parsed, err := blob.ParseManifest(bad)
			if err != nil {
				if !errors.Is(err, wire.ErrMalformed) {
					t.Fatalf("ParseManifest(flip %d.%d) = %v, not a parse error", pos, bit, err)
				}
				continue
			}
			if parsed.Address() == addr {
				t.Fatalf("flip %d.%d: tampered manifest keeps the address", pos, bit)
			}
			if _, err := blob.VerifyManifest(addr, bad); !errors.Is(err, blob.ErrWrongAddress) {
				t.Fatalf("VerifyManifest(addr, flip %d.%d) = %v, want ErrWrongAddress", pos, bit, err)
			}
		}
	}
	// Weak form of the key-commitment property: key 1's chunks with key 2's
	// commitment is a different blob.
	other := testKey(t, "tamper manifest other")
	swapped := *m
	swapped.KeyCommitment = other.Commitment()
	if swapped.Address() == addr {
		t.Error("manifest with another key's commitment keeps the address")
	}
}

// spec 08-blobs §5: the address text form round-trips and is strict.
func TestAddressText(t *testing.T) {
	key := testKey(t, "address")
	m, _ := encrypt(t, key, pattern(10))
	a := m.Address()
	s := a.String()
	if !strings.HasPrefix(s, "blob_") || len(s) != 57 || strings.ToLower(s) != s {
		t.Errorf("Address.String() = %q, want blob_ + 52 lowercase base32 characters", s)
	}
	if back, err := blob.ParseAddress(s); err != nil || back != a {
		t.Errorf("ParseAddress(%q) = %v, %v, want the address", s, back, err)
	}
	text, _ := a.MarshalText()
	var u blob.Address
	if err := u.UnmarshalText(text); err != nil || u != a {
		t.Errorf("UnmarshalText(MarshalText(a)) = %v, %v", u, err)
	}
	var zero blob.Address
	zs := zero.String()
	bad := []string{
		"",
		"blob_",
		s[5:],                               // no prefix
		"blob-" + s[5:],                     // wrong prefix
		"BLOB_" + s[5:],                     // upper-case prefix
		"blob_" + strings.ToUpper(s[5:]),    // upper-case base32
		s[:len(s)-1],                        // short
		s + "a",                             // long
		s + "====",                          // padded
		s[:30] + "\n" + s[30:len(s)-1],      // line break (the decoder skips it)
		s[:56] + "1",                        // not in the alphabet
		zs[:56] + "b",                       // non-zero trailing bits
		zs[:20] + "0" + zs[21:],             // 0 is not base32
		"blob_" + strings.Repeat("a", 1000), // long
	}
	for _, in := range bad {
		got, err := blob.ParseAddress(in)
		var pe *wire.ParseError
		if !errors.As(err, &pe) || got != (blob.Address{}) {
			t.Errorf("ParseAddress(%q) = %v, %v, want a *wire.ParseError", in, got, err)
		}
		if err := u.UnmarshalText([]byte(in)); err == nil {
			t.Errorf("UnmarshalText(%q) = nil", in)
		}
	}
}

func TestVerifyManifest(t *testing.T) {
	key := testKey(t, "verify manifest")
	m1, _ := encrypt(t, key, pattern(1))
	m2, _ := encrypt(t, key, pattern(2))
	b1, _ := m1.MarshalBinary()
	if _, err := blob.VerifyManifest(m2.Address(), b1); !errors.Is(err, blob.ErrWrongAddress) {
		t.Errorf("VerifyManifest(other address) = %v, want ErrWrongAddress", err)
	}
	if _, err := blob.VerifyManifest(m1.Address(), b1[:20]); !errors.Is(err, wire.ErrMalformed) {
		t.Errorf("VerifyManifest(truncated) = %v, want a parse error", err)
	}
	if got, err := blob.VerifyManifest(m1.Address(), b1); err != nil || got.Address() != m1.Address() {
		t.Errorf("VerifyManifest(own address) = %v", err)
	}
}
