// Package e2e tests parleyd and parley end to end, as built binaries talking
// over loopback: a person's view of issue 3's acceptance criteria.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// bins builds parleyd and parley once per test binary.
var bins = struct {
	once            sync.Once
	dir, err        string
	parleyd, parley string
}{}

func build(t *testing.T) (parleyd, parley string) {
	t.Helper()
	bins.once.Do(func() {
		dir, err := os.MkdirTemp("", "parley-e2e-bin")
		if err != nil {
			bins.err = err.Error()
			return
		}
		bins.dir = dir
		for _, name := range []string{"parleyd", "parley"} {
			out, err := exec.Command("go", "build", "-o", filepath.Join(dir, name), "github.com/parley-chat/parley/cmd/"+name).CombinedOutput()
			if err != nil {
				bins.err = fmt.Sprintf("go build %s: %v\n%s", name, err, out)
				return
			}
		}
		bins.parleyd, bins.parley = filepath.Join(dir, "parleyd"), filepath.Join(dir, "parley")
	})
	if bins.err != "" {
		t.Fatal(bins.err)
	}
	return bins.parleyd, bins.parley
}

func TestMain(m *testing.M) {
	code := m.Run()
	if bins.dir != "" {
		_ = os.RemoveAll(bins.dir)
	}
	os.Exit(code)
}

// daemon is a running parleyd process.
type daemon struct {
	cmd    *exec.Cmd
	url    string
	stderr *syncBuffer
	done   chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var clientAddr = regexp.MustCompile(`client=(127\.0\.0\.1:\d+)`)

// start runs `parleyd run` on dataDir, on the given client address (port 0
// picks one), and waits until it logs its addresses.
func start(t *testing.T, parleyd, dataDir, listen string) *daemon {
	t.Helper()
	d := &daemon{stderr: &syncBuffer{}, done: make(chan error, 1)}
	d.cmd = exec.Command(parleyd, "run", "--data", dataDir, "--client-listen", listen, "--operator-listen", "127.0.0.1:0", "--p2p-listen", "/ip4/127.0.0.1/tcp/0",
		"--set", "pairing.epoch_length=300ms", "--log-level", "debug")
	d.cmd.Stdout, d.cmd.Stderr = d.stderr, d.stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	deadline := time.After(20 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if m := clientAddr.FindStringSubmatch(d.stderr.String()); m != nil {
			d.url = "http://" + m[1]
			return d
		}
		select {
		case err := <-d.done:
			t.Fatalf("parleyd exited: %v\n%s", err, d.stderr.String())
		case <-deadline:
			t.Fatalf("parleyd did not start:\n%s", d.stderr.String())
		case <-tick.C:
		}
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (d *daemon) stop(t *testing.T) {
	t.Helper()
	_ = d.cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-d.done:
		if err != nil {
			t.Fatalf("parleyd exited with %v after SIGINT:\n%s", err, d.stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("parleyd did not stop")
	}
}

// kill sends SIGKILL: no shutdown at all.
func (d *daemon) kill(t *testing.T) {
	t.Helper()
	_ = d.cmd.Process.Kill()
	if err := <-d.done; err == nil {
		t.Log("parleyd exited cleanly before the kill landed")
	}
}

// user runs the parley CLI with its own keystore.
type user struct {
	t        *testing.T
	bin      string
	keystore string
	env      []string
}

func newUser(t *testing.T, bin, dir, name string) *user {
	return &user{t: t, bin: bin, keystore: filepath.Join(dir, name+".keystore"),
		env: append(os.Environ(), "PARLEY_PASSPHRASE=correct horse "+name)}
}

func (u *user) run(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, u.bin, append([]string{"--keystore", u.keystore}, args...)...)
	cmd.Env = u.env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Stdin = strings.NewReader("")
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("parley %s: %w\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String(), nil
}

func (u *user) must(args ...string) string {
	u.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := u.run(ctx, args...)
	if err != nil {
		u.t.Fatal(err)
	}
	return out
}

// pairAll runs `parley pair --no-chat` for every user at once and waits
// for all of them.
func pairAll(t *testing.T, extra []string, users ...*user) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	errs := make(chan error, len(users))
	for _, u := range users {
		go func() {
			_, err := u.run(ctx, append([]string{"pair", "--no-chat"}, extra...)...)
			errs <- err
		}()
	}
	for range users {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// recv returns the texts of the messages u receives within wait.
func (u *user) recv(wait string) []string {
	u.t.Helper()
	out := u.must("recv", "--wait", wait, "--json")
	var texts []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			u.t.Fatalf("recv --json printed a non-JSON line %q", line)
		}
		if s, ok := m["text"].(string); ok {
			texts = append(texts, s)
		}
	}
	return texts
}

// recvUntil receives until n texts arrived or the deadline passes.
func (u *user) recvUntil(n int) []string {
	u.t.Helper()
	var all []string
	deadline := time.Now().Add(30 * time.Second)
	for len(all) < n && time.Now().Before(deadline) {
		all = append(all, u.recv("2s")...)
	}
	return all
}

// TestChatEndToEnd: a node from `parleyd init`, two users registered with
// the CLI, paired by the lottery, messages both ways, a leave, and both
// pairing again (with newcomers: the two who left avoid each other); then
// the node's data directory holds none of the plaintexts.
func TestChatEndToEnd(t *testing.T) {
	parleyd, parley := build(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "node")
	if out, err := exec.Command(parleyd, "init", "--data", data).CombinedOutput(); err != nil {
		t.Fatalf("parleyd init: %v\n%s", err, out)
	}
	d := start(t, parleyd, data, "127.0.0.1:0")
	defer func() {
		if d.cmd.ProcessState == nil {
			d.stop(t)
		}
	}()

	alice, bob := newUser(t, parley, dir, "alice"), newUser(t, parley, dir, "bob")
	alice.must("register", "--node", d.url, "--username", "alice")
	bob.must("register", "--node", d.url, "--username", "bob")
	pairAll(t, nil, alice, bob)

	secrets := []string{"hello bob, the owl flies at midnight", "hi alice, tangerine submarine 42"}
	alice.must("send", secrets[0])
	if got := bob.recvUntil(1); len(got) != 1 || got[0] != secrets[0] {
		t.Fatalf("bob received %q, want [%q]", got, secrets[0])
	}
	bob.must("send", secrets[1])
	if got := alice.recvUntil(1); len(got) != 1 || got[0] != secrets[1] {
		t.Fatalf("alice received %q, want [%q]", got, secrets[1])
	}

	alice.must("leave")
	bob.recv("1s") // sees room_closed
	carol, dave := newUser(t, parley, dir, "carol"), newUser(t, parley, dir, "dave")
	carol.must("register", "--node", d.url, "--username", "carol")
	dave.must("register", "--node", d.url, "--username", "dave")
	// alice and bob now avoid each other (spec 07 §2.2); an interest each
	// shares with one newcomer steers the draw, which could otherwise pair
	// carol with dave and strand the two.
	pairAll(t, []string{"--interest", "owls"}, alice, carol)
	pairAll(t, []string{"--interest", "quinces"}, bob, dave)
	more := "second round, quince and marmalade"
	alice.must("send", more)
	secrets = append(secrets, more)
	got := append(carol.recv("3s"), dave.recv("3s")...)
	if len(got) != 1 || got[0] != more {
		t.Fatalf("carol and dave received %q, want alice's new partner to get [%q]", got, more)
	}
	d.stop(t)

	// spec 01 §4.1, DESIGN §4: the node's disk holds no plaintext.
	scanForPlaintext(t, data, secrets)
}

func scanForPlaintext(t *testing.T, dir string, secrets []string) {
	t.Helper()
	files := 0
	err := filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		for _, s := range secrets {
			for _, probe := range []string{s, s[:12], s[len(s)-12:]} {
				if bytes.Contains(b, []byte(probe)) {
					t.Errorf("%s contains plaintext %q", path, probe)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 3 {
		t.Fatalf("scanned only %d files in %s", files, dir)
	}
}

// TestKillNineLosesNothing: messages acknowledged to the sender survive a
// SIGKILL of the node and are delivered exactly once after the restart.
func TestKillNineLosesNothing(t *testing.T) {
	parleyd, parley := build(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "node")
	if out, err := exec.Command(parleyd, "init", "--data", data).CombinedOutput(); err != nil {
		t.Fatalf("parleyd init: %v\n%s", err, out)
	}
	d := start(t, parleyd, data, "127.0.0.1:0")
	addr := strings.TrimPrefix(d.url, "http://")
	alice, bob := newUser(t, parley, dir, "alice"), newUser(t, parley, dir, "bob")
	alice.must("register", "--node", d.url, "--username", "alice")
	bob.must("register", "--node", d.url, "--username", "bob")
	pairAll(t, nil, alice, bob)

	const n = 20
	var sent []string
	for i := 0; i < n; i++ {
		msg := fmt.Sprintf("durable message %02d", i)
		alice.must("send", msg) // returns only after the node's 200: acknowledged
		sent = append(sent, msg)
	}
	d.kill(t)

	d2 := start(t, parleyd, data, addr) // same address: the keystores know it
	defer d2.stop(t)
	got := bob.recvUntil(n)
	got = append(got, bob.recv("1s")...) // nothing more may come
	if len(got) != n {
		t.Fatalf("bob received %d messages after the crash, want exactly %d: %q", len(got), n, got)
	}
	seen := map[string]int{}
	for _, m := range got {
		seen[m]++
	}
	for _, m := range sent {
		if seen[m] != 1 {
			t.Errorf("%q delivered %d times, want once", m, seen[m])
		}
	}
}
