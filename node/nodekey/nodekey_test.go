package nodekey_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parley-chat/parley/node/nodekey"
)

func TestCreateLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.key")
	k, err := nodekey.Create(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode = %v, want 0600", st.Mode().Perm())
	}
	k2, err := nodekey.Load(path)
	if err != nil || k2.Public() != k.Public() {
		t.Fatalf("Load = %v, %v, want %v", k2.Public(), err, k.Public())
	}
	if _, err := nodekey.Create(path, nil); !errors.Is(err, nodekey.ErrExists) {
		t.Fatalf("Create(existing) = %v, want ErrExists", err)
	}
	k3, _ := nodekey.Load(path)
	if k3.Public() != k.Public() {
		t.Fatal("Create overwrote the key")
	}
}

func TestLoadRefuses(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.key")
	if _, err := nodekey.Create(good, nil); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(good)
	cases := []struct {
		name    string
		content string
		mode    os.FileMode
		want    string
	}{
		{"world readable", string(b), 0o644, "accessible by other users"},
		{"not pem", "hello", 0o600, "not a PARLEY NODE KEY"},
		{"wrong type", strings.Replace(string(b), "PARLEY NODE KEY", "RSA PRIVATE KEY", 2), 0o600, "not a PARLEY NODE KEY"},
		{"wrong peer id", strings.Replace(string(b), "Peer-ID: 12D3KooW", "Peer-ID: 12D3KooX", 1), 0o600, "does not match"},
		{"huge", strings.Repeat("x", 5000), 0o600, "too large"},
	}
	for _, c := range cases {
		p := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_"))
		if err := os.WriteFile(p, []byte(c.content), c.mode); err != nil {
			t.Fatal(err)
		}
		_ = os.Chmod(p, c.mode)
		if _, err := nodekey.Load(p); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Load = %v, want error containing %q", c.name, err, c.want)
		}
	}
}
