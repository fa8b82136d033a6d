package daemon_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/node/admin"
	"github.com/parley-chat/parley/node/daemon"
	"github.com/parley-chat/parley/protocol/keys"
)

func TestInitWritesAdminToken(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "n")
	if _, _, err := run(context.Background(), t, nil, "init", "--data", dir); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "admin.token")
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("admin.token after init: %v, %v, want mode 0600", st, err)
	}
	tok, err := admin.LoadToken(path)
	if err != nil || !strings.HasPrefix(tok, "pa_") {
		t.Fatalf("LoadToken = %q, %v", tok, err)
	}
	out, _, err := run(context.Background(), t, nil, "admin", "token", "--data", dir)
	if err != nil || !strings.Contains(out, "already exists") {
		t.Fatalf("admin token on an existing token = %q, %v", out, err)
	}
	if again, _ := admin.LoadToken(path); again != tok {
		t.Fatal("admin token overwrote the token")
	}
}

func TestRunWithoutAdminTokenSaysWhatToDo(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "n")
	if _, _, err := run(context.Background(), t, nil, "init", "--data", dir); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "admin.token")
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	_, _, err := run(context.Background(), t, nil, "run", "--data", dir, "--client-listen", "127.0.0.1:0", "--operator-listen", "127.0.0.1:0", "--p2p-listen", "/ip4/127.0.0.1/tcp/0")
	if err == nil || !strings.Contains(err.Error(), "parleyd admin token --data "+dir) {
		t.Fatalf("run without admin.token = %v, want advice", err)
	}
	if out, _, err := run(context.Background(), t, nil, "admin", "token", "--data", dir); err != nil || !strings.Contains(out, "created admin token") {
		t.Fatalf("admin token = %q, %v", out, err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err = run(context.Background(), t, nil, "run", "--data", dir, "--client-listen", "127.0.0.1:0", "--operator-listen", "127.0.0.1:0", "--p2p-listen", "/ip4/127.0.0.1/tcp/0")
	if err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("run with a world-readable admin.token = %v, want refusal", err)
	}
}

func TestAdminUsage(t *testing.T) {
	for _, args := range [][]string{
		{"admin"},
		{"admin", "accounts"},
		{"admin", "accounts", "show"},
		{"admin", "accounts", "show", "a", "b"},
		{"admin", "accounts", "suspend", "bob"},
		{"admin", "accounts", "list", "--reason", "x"},
		{"admin", "lottery", "audit"},
		{"admin", "frobnicate"},
	} {
		if _, _, err := run(context.Background(), t, nil, args...); !errors.Is(err, daemon.ErrUsage) {
			t.Errorf("Main(%q) = %v, want ErrUsage", args, err)
		}
	}
	if out, _, err := run(context.Background(), t, nil, "admin", "help"); err != nil || !strings.Contains(out, "accounts suspend NAME|ID --reason TEXT") {
		t.Errorf("admin help = %q, %v", out, err)
	}
}

// startNode runs `parleyd run` on loopback and returns the client and
// operator addresses; the node stops when the test ends.
func startNode(t *testing.T, dir string) (client, operator string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var logs safeBuffer
	go func() {
		done <- daemon.Main(ctx, daemon.Env{Args: []string{"run", "--data", dir, "--client-listen", "127.0.0.1:0", "--operator-listen", "127.0.0.1:0", "--p2p-listen", "/ip4/127.0.0.1/tcp/0"}, Stdout: &logs, Stderr: &logs})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run after cancel = %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("run did not stop")
		}
		if tok, _ := admin.LoadToken(filepath.Join(dir, "admin.token")); strings.Contains(logs.String(), tok) {
			t.Error("the node's log holds the admin token")
		}
	})
	re := regexp.MustCompile(`client=(127\.0\.0\.1:\d+) operator=(127\.0\.0\.1:\d+)`)
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if m := re.FindStringSubmatch(logs.String()); m != nil {
			return m[1], m[2]
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("node did not log its addresses: %s", logs.String())
		}
	}
}

func registerUser(t *testing.T, client, name string) keys.AccountID {
	t.Helper()
	k, _ := keys.GenerateAccountKey(rand.Reader)
	body := `{"username":"` + name + `","identity_key":"` + k.Public().String() + `"}`
	resp, err := http.Post("http://"+client+"/v1/register", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("register %s = %d", name, resp.StatusCode)
	}
	return k.Public()
}

func TestAdminEndToEnd(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "n")
	if _, _, err := run(context.Background(), t, nil, "init", "--data", dir); err != nil {
		t.Fatal(err)
	}
	client, op := startNode(t, dir)
	bob := registerUser(t, client, "bob")
	registerUser(t, client, "alice")
	admin := func(args ...string) (string, error) {
		t.Helper()
		out, _, err := run(context.Background(), t, nil, append([]string{"admin", "--data", dir, "--operator-listen", op}, args...)...)
		return out, err
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"accounts", "list"}, []string{"USERNAME", "alice", "bob", "active"}},
		{[]string{"accounts", "list", "--limit", "1"}, []string{"more: parleyd admin accounts list --after"}},
		{[]string{"accounts", "show", "bob"}, []string{"username: bob", "id:       " + bob.String(), "status:   active"}},
		{[]string{"accounts", "suspend", "bob", "--reason", "spam links"}, []string{"suspended bob", "0 session(s) revoked"}},
		{[]string{"accounts", "show", bob.String()}, []string{"status:   suspended", "reason:   spam links"}},
		{[]string{"accounts", "unsuspend", "bob"}, []string{"unsuspended bob"}},
		{[]string{"invite"}, []string{"invite: pi_", "expires: "}},
		{[]string{"reports", "list"}, []string{"ID", "RECEIVED"}},
		{[]string{"token"}, []string{"already exists"}},
	} {
		out, err := admin(tc.args...)
		if err != nil {
			t.Errorf("admin %q = %v", tc.args, err)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("admin %q = %q, want it to contain %q", tc.args, out, w)
			}
		}
	}

	out, err := admin("--json", "accounts", "show", "bob")
	var a struct {
		Username  string `json:"username"`
		Suspended bool   `json:"suspended"`
	}
	if err != nil || json.Unmarshal([]byte(out), &a) != nil || a.Username != "bob" || a.Suspended {
		t.Errorf("admin --json accounts show bob = %q, %v", out, err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"accounts", "show", "nobody"}, "not_found"},
		{[]string{"reports", "show", strings.Repeat("00", 32)}, "not_found"},
		{[]string{"reports", "show", "xyz"}, "bad_request"},
		{[]string{"lottery", "audit", "--epoch", "1"}, "not_found"},
	} {
		if _, err := admin(tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("admin %q = %v, want %s", tc.args, err, tc.want)
		}
	}

	// A wrong token is refused.
	path := filepath.Join(dir, "admin.token")
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := admin("accounts", "list"); err == nil || !strings.Contains(err.Error(), "parleyd admin token") {
		t.Errorf("admin without a token file = %v, want advice", err)
	}
	if _, err := admin("token"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin("accounts", "list"); err == nil || !strings.Contains(err.Error(), "unauthenticated") {
		t.Errorf("admin with another token = %v, want unauthenticated", err)
	}
}
