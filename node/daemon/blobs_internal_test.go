package daemon

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"testing"

	"github.com/parley-chat/parley/protocol/blob"
	"github.com/parley-chat/parley/protocol/keys"
)

// parleyd admin blobs show --key takes the key a disclosure revealed: the
// whole link (whose address must be the one shown) or the key alone
// (spec 13 §5).
func TestParseBlobKey(t *testing.T) {
	k, _ := blob.NewKey(rand.Reader)
	m, err := blob.Encrypt(k, bytes.NewReader([]byte("evidence")), 8, func(uint32, []byte) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	addr := m.Address()
	node, _ := keys.GenerateNodeKey(rand.Reader)
	link := blob.Link{Origin: node.Public(), Address: addr, Key: k}.String()
	bare := link[len(link)-43:]
	for _, in := range []string{link, bare} {
		got, err := parseBlobKey(in, addr)
		if err != nil || got != k {
			t.Errorf("parseBlobKey(%.20s...) = %v, want the key", in, err)
		}
	}
	var other blob.Address
	other[0] = 1
	raw := make([]byte, 32)
	for name, in := range map[string]string{
		"another blob's link": link,
		"padded":              base64.URLEncoding.EncodeToString(raw),
		"short":               bare[:42],
		"std alphabet":        "+" + bare[1:],
	} {
		a := addr
		if name == "another blob's link" {
			a = other
		}
		if _, err := parseBlobKey(in, a); err == nil {
			t.Errorf("parseBlobKey(%s) = nil error", name)
		}
	}
}
