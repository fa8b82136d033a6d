package blob_test

import (
	"bytes"
	"crypto/rand"
	"testing"

	"github.com/parley-chat/parley/protocol/blob"
	"github.com/parley-chat/parley/protocol/keys"
)

func takedownKey(t testing.TB) keys.NodeKey {
	t.Helper()
	k, err := keys.NodeKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// spec 08-blobs §13: a notice is signed by the origin under the takedown
// label, encodes to a fixed-size frame and decodes to itself; any changed
// field breaks the signature.
func TestTakedownNotice(t *testing.T) {
	key := takedownKey(t)
	addr := blob.Address{1, 2, 3}
	n := blob.SignTakedown(key, addr, 1_700_000_000_000)
	if !n.Verify() {
		t.Fatal("Verify(SignTakedown(...)) = false")
	}
	frame := n.AppendFrame(nil)
	if len(frame) != blob.FramePrefixLen+blob.TakedownNoticeSize {
		t.Fatalf("frame of %d bytes, want %d", len(frame), blob.FramePrefixLen+blob.TakedownNoticeSize)
	}
	got, err := blob.DecodeTakedownNotice(frame[blob.FramePrefixLen:])
	if err != nil || got != n {
		t.Fatalf("DecodeTakedownNotice(frame) = %+v, %v, want %+v", got, err, n)
	}
	other, _ := keys.GenerateNodeKey(rand.Reader)
	for name, bad := range map[string]func(*blob.TakedownNotice){
		"address": func(n *blob.TakedownNotice) { n.Address[0] ^= 1 },
		"origin":  func(n *blob.TakedownNotice) { n.Origin = other.Public() },
		"time":    func(n *blob.TakedownNotice) { n.Time++ },
		"sig":     func(n *blob.TakedownNotice) { n.Sig[5] ^= 1 },
	} {
		m := n
		bad(&m)
		if m.Verify() {
			t.Errorf("Verify(notice with changed %s) = true", name)
		}
	}
	// Another node's signature over the same fields is not the origin's.
	forged := blob.SignTakedown(other, addr, n.Time)
	forged.Origin = key.Public()
	if forged.Verify() {
		t.Error("Verify(notice signed by another node) = true")
	}
	for _, b := range [][]byte{nil, frame[4:10], frame[4 : len(frame)-1], append(append([]byte(nil), frame[4:]...), 0)} {
		if _, err := blob.DecodeTakedownNotice(b); err == nil {
			t.Errorf("DecodeTakedownNotice(%d bytes) = nil error", len(b))
		} else {
			isParseError(t, "DecodeTakedownNotice", err)
		}
	}
}

func TestTakedownAnswer(t *testing.T) {
	for _, s := range []blob.TakedownStatus{blob.TakedownDone, blob.TakedownRefused, blob.TakedownBusy} {
		f := blob.AppendTakedownAnswer(nil, s)
		got, err := blob.DecodeTakedownAnswer(f[blob.FramePrefixLen:])
		if err != nil || got != s {
			t.Errorf("DecodeTakedownAnswer(%s) = %v, %v", s, got, err)
		}
	}
	for _, b := range [][]byte{{1, 2, 0}, {1, 2, 4}, {1, 1, 1}, {2, 2, 1}, {1, 2}, {1, 2, 1, 0}} {
		if _, err := blob.DecodeTakedownAnswer(b); err == nil {
			t.Errorf("DecodeTakedownAnswer(%x) = nil error", b)
		} else {
			isParseError(t, "DecodeTakedownAnswer", err)
		}
	}
}

// FuzzDecodeTakedownNotice: every failure is a *wire.ParseError; whatever
// decodes re-encodes to the same bytes.
func FuzzDecodeTakedownNotice(f *testing.F) {
	n := blob.SignTakedown(takedownKey(f), blob.Address{9}, 1234)
	frame := n.AppendFrame(nil)
	f.Add(frame[blob.FramePrefixLen:])
	f.Add(frame[blob.FramePrefixLen : len(frame)-1])
	f.Add(blob.AppendTakedownAnswer(nil, blob.TakedownDone)[blob.FramePrefixLen:])
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := blob.DecodeTakedownNotice(b)
		if err != nil {
			isParseError(t, "DecodeTakedownNotice", err)
			return
		}
		if again := n.AppendFrame(nil); !bytes.Equal(again[blob.FramePrefixLen:], b) {
			t.Fatalf("AppendFrame(DecodeTakedownNotice(b)) = %x, want %x", again, b)
		}
		_ = n.Verify()
	})
}

// FuzzDecodeTakedownAnswer: every failure is a *wire.ParseError; whatever
// decodes re-encodes to the same bytes.
func FuzzDecodeTakedownAnswer(f *testing.F) {
	f.Add([]byte{1, 2, 1})
	f.Add([]byte{1, 2, 3})
	f.Add([]byte{1, 2, 9})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := blob.DecodeTakedownAnswer(b)
		if err != nil {
			isParseError(t, "DecodeTakedownAnswer", err)
			return
		}
		if again := blob.AppendTakedownAnswer(nil, s); !bytes.Equal(again[blob.FramePrefixLen:], b) {
			t.Fatalf("AppendTakedownAnswer(DecodeTakedownAnswer(b)) = %x, want %x", again, b)
		}
	})
}
