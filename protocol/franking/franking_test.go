package franking_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/parley-chat/parley/protocol/franking"
	"github.com/parley-chat/parley/protocol/wire"
	"github.com/parley-chat/parley/spec/vectortest"
)

func key(t testing.TB, label string) franking.Key {
	t.Helper()
	k, err := franking.NewKey(vectortest.Rand(label))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// reference computes the commitment the slow way, from the spec's formula.
func reference(k franking.Key, plaintext []byte) franking.Commitment {
	in := binary.BigEndian.AppendUint16(nil, uint16(len(wire.LabelFranking)))
	in = append(in, wire.LabelFranking...)
	in = append(in, plaintext...)
	m := hmac.New(sha256.New, k[:])
	m.Write(in)
	var c franking.Commitment
	copy(c[:], m.Sum(nil))
	return c
}

// spec 03-envelope §3: the commitment is HMAC-SHA256 under the franking key
// over u16 len(label) || label || plaintext.
func TestCommitMatchesSpec(t *testing.T) {
	k := key(t, "franking")
	for _, n := range []int{0, 1, 63, 64, 65, 1024, wire.MaxPlaintext} {
		p := bytes.Repeat([]byte{'a'}, n)
		if got, want := franking.Commit(&k, p), reference(k, p); got != want {
			t.Errorf("Commit(%d bytes) = %x, want %x", n, got, want)
		}
	}
}

// spec 03-envelope §3: Verify accepts exactly the committed (key, plaintext).
func TestVerify(t *testing.T) {
	k, other := key(t, "franking"), key(t, "other")
	p := []byte("hello, stranger")
	c := franking.Commit(&k, p)
	flipped := c
	flipped[31] ^= 1
	cases := []struct {
		name string
		k    franking.Key
		p    []byte
		c    franking.Commitment
		want bool
	}{
		{"committed", k, p, c, true},
		{"other key", other, p, c, false},
		{"other plaintext", k, []byte("hello, stranger!"), c, false},
		{"truncated plaintext", k, p[:len(p)-1], c, false},
		{"empty plaintext", k, nil, c, false},
		{"flipped commitment", k, p, flipped, false},
		{"zero key", franking.Key{}, p, c, false},
	}
	for _, tc := range cases {
		if got := franking.Verify(&tc.k, tc.p, tc.c); got != tc.want {
			t.Errorf("%s: Verify = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestNewKey(t *testing.T) {
	a, b := key(t, "a"), key(t, "b")
	if a == b {
		t.Errorf("NewKey from different streams = %x twice", a[:])
	}
	if _, err := franking.NewKey(bytes.NewReader(make([]byte, 31))); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("NewKey(31-byte reader) error = %v, want io.ErrUnexpectedEOF", err)
	}
}

// Keys never print their contents (STYLE.md: private keys cannot be printed).
func TestKeyDoesNotPrint(t *testing.T) {
	k := key(t, "franking")
	secret := fmt.Sprintf("%x", k[:])
	for _, verb := range []string{"%v", "%s", "%+v", "%#v", "%x", "%q"} {
		if got := fmt.Sprintf(verb, k); bytes.Contains([]byte(got), []byte(secret[:16])) || got == "" {
			t.Errorf("Sprintf(%s, key) = %q, leaks the key", verb, got)
		}
	}
	if got := k.String(); got != "[franking key]" {
		t.Errorf("Key.String() = %q, want [franking key]", got)
	}
}

func BenchmarkCommit1KiB(b *testing.B) {
	k := key(b, "bench")
	p := make([]byte, 1024)
	b.SetBytes(1024)
	for b.Loop() {
		franking.Commit(&k, p)
	}
}
