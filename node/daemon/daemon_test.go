package daemon_test

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/node/daemon"
)

func run(ctx context.Context, t *testing.T, environ []string, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := daemon.Main(ctx, daemon.Env{Args: args, Environ: environ, Stdout: &out, Stderr: &errb})
	return out.String(), errb.String(), err
}

func TestInitNeverOverwrites(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "n")
	out, _, err := run(context.Background(), t, nil, "init", "--data", dir)
	if err != nil || !strings.Contains(out, "created node 12D3KooW") {
		t.Fatalf("init = %q, %v", out, err)
	}
	key1, _ := os.ReadFile(filepath.Join(dir, "node.key"))
	if _, _, err := run(context.Background(), t, nil, "init", "--data", dir); err == nil || !strings.Contains(err.Error(), "never overwrites") {
		t.Fatalf("second init = %v, want refusal", err)
	}
	key2, _ := os.ReadFile(filepath.Join(dir, "node.key"))
	if !bytes.Equal(key1, key2) {
		t.Fatal("second init changed the key")
	}
	if out, _, err := run(context.Background(), t, nil, "config", "check", "--data", dir); err != nil || out != "configuration ok\n" {
		t.Fatalf("config check = %q, %v", out, err)
	}
}

func TestRunWithoutInitSaysWhatToDo(t *testing.T) {
	dir := t.TempDir()
	_, _, err := run(context.Background(), t, nil, "run", "--data", dir)
	if err == nil || !strings.Contains(err.Error(), "parleyd init --data "+dir) {
		t.Fatalf("run on empty dir = %v, want advice to init", err)
	}
	if _, _, err := run(context.Background(), t, nil, "run"); err == nil || !strings.Contains(err.Error(), "--data DIR") {
		t.Fatalf("run without flags = %v", err)
	}
}

// Flags override env, env overrides the file; every problem is reported.
func TestPrecedenceAndValidation(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "n")
	if _, _, err := run(context.Background(), t, nil, "init", "--data", dir); err != nil {
		t.Fatal(err)
	}
	env := []string{"PARLEY_LOG_LEVEL=loud", "PARLEY_CLIENT_LISTEN=nope"}
	_, _, err := run(context.Background(), t, env, "config", "check", "--data", dir)
	if err == nil || !strings.Contains(err.Error(), `log.level "loud"`) || !strings.Contains(err.Error(), `client.listen "nope"`) {
		t.Fatalf("config check with bad env = %v, want both problems", err)
	}
	if _, _, err := run(context.Background(), t, env, "config", "check", "--data", dir, "--log-level", "debug", "--set", "client.listen=127.0.0.1:0"); err != nil {
		t.Fatalf("flags did not override env: %v", err)
	}
	if _, _, err := run(context.Background(), t, []string{"PARLEY_NO_SUCH=1"}, "config", "check", "--data", dir); err == nil || !strings.Contains(err.Error(), "PARLEY_NO_SUCH") {
		t.Fatalf("unknown env var = %v", err)
	}
}

func TestRunServesAndStops(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "n")
	if _, _, err := run(context.Background(), t, nil, "init", "--data", dir); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var errb safeBuffer
	go func() {
		done <- daemon.Main(ctx, daemon.Env{Args: []string{"run", "--data", dir, "--client-listen", "127.0.0.1:0", "--operator-listen", "127.0.0.1:0", "--p2p-listen", "/ip4/127.0.0.1/tcp/0"}, Stdout: &errb, Stderr: &errb})
	}()
	re := regexp.MustCompile(`operator=(127\.0\.0\.1:\d+)`)
	// Poll the log, with a deadline, for the address the node bound.
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var addr string
	for addr == "" {
		if m := re.FindStringSubmatch(errb.String()); m != nil {
			addr = m[1]
			break
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("node did not log its operator address: %s", errb.String())
		}
	}
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /readyz = %v, %v", resp, err)
	}
	_ = resp.Body.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run after cancel = %v, want nil", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("run did not stop")
	}
}
