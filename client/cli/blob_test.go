package cli_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parley-chat/parley/client/cli"
	"github.com/parley-chat/parley/protocol/blob"
)

func writeRandomFile(t *testing.T, n int) (string, []byte) {
	t.Helper()
	r := rand.New(rand.NewPCG(uint64(n), 3))
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(r.Uint32())
	}
	path := filepath.Join(t.TempDir(), "photo.jpg")
	if err := os.WriteFile(path, p, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, p
}

// spec 09 §9: `parley blob put` prints a link; `parley blob get` writes the
// file, to -o or to standard output.
func TestBlobPutGet(t *testing.T) {
	node, url := startNode(t)
	alice, bob := newAccount(t, url, "alice"), newAccount(t, url, "bob")
	alice.register()
	bob.register()
	path, p := writeRandomFile(t, 300000)
	link := strings.TrimSpace(alice.must("blob", "put", path))
	l, err := blob.ParseLink(link)
	if err != nil {
		t.Fatalf("blob put printed %q: %v", link, err)
	}
	if got := node.StoredBlob(l.Address); len(got) == 0 || bytes.Contains(got, p[:64]) {
		t.Fatal("the node does not hold the ciphertext, or holds plaintext")
	}
	out := filepath.Join(t.TempDir(), "copy.jpg")
	bob.must("blob", "get", link, "-o", out)
	if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, p) {
		t.Fatalf("blob get -o wrote other bytes (%v)", err)
	}
	if got := bob.must("blob", "get", link); got != string(p) {
		t.Fatal("blob get to standard output wrote other bytes")
	}
	// A tampered blob fails and leaves no output file.
	node.TamperBlob(l.Address, 100)
	bad := filepath.Join(t.TempDir(), "bad.jpg")
	if _, _, err := bob.run(context.Background(), nil, "blob", "get", link, "-o", bad); !errors.Is(err, blob.ErrBadChunk) {
		t.Fatalf("blob get of a tampered blob = %v, want ErrBadChunk", err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(bad)); len(entries) != 0 {
		t.Fatalf("a failed blob get left %v", entries)
	}
	for _, args := range [][]string{{"blob"}, {"blob", "put"}, {"blob", "copy", "x"}, {"blob", "put", "a", "b"}} {
		if _, _, err := alice.run(context.Background(), nil, args...); !errors.Is(err, cli.ErrUsage) {
			t.Errorf("parley %s = %v, want a usage error", strings.Join(args, " "), err)
		}
	}
	if _, _, err := alice.run(context.Background(), nil, "blob", "get", l.Locator().String()); err == nil || !strings.Contains(err.Error(), "no key") {
		t.Errorf("blob get of a locator = %v, want a no-key error", err)
	}
}

// /send FILE in a chat uploads the file and sends its link in a message.
func TestChatSendFile(t *testing.T) {
	_, url := startNode(t)
	alice, bob := newAccount(t, url, "alice"), newAccount(t, url, "bob")
	alice.register()
	bob.register()
	room := pairAccounts(t, alice, bob)
	path, p := writeRandomFile(t, 70000)
	_, errOut, err := alice.run(context.Background(), strings.NewReader("/send "+path+"\n"), "chat", room)
	if err != nil || !strings.Contains(errOut, "sent photo.jpg") {
		t.Fatalf("chat /send = %v\nstderr: %s", err, errOut)
	}
	got := bob.must("recv")
	i := strings.Index(got, "parley://")
	if i < 0 || !strings.Contains(got, "[file photo.jpg, 70000 bytes]") {
		t.Fatalf("bob received %q, want the link", got)
	}
	link := strings.Fields(got[i:])[0]
	if out := bob.must("blob", "get", link); out != string(p) {
		t.Fatal("the sent file does not come back")
	}
}
