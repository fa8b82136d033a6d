package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/parley-chat/parley/client"
	"github.com/parley-chat/parley/client/cli"
	"github.com/parley-chat/parley/client/internal/fakenode"
	"github.com/parley-chat/parley/client/keystore"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var cheapKDF = keystore.WithConfig(keystore.Config{KDF: keystore.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}})

func startNode(t *testing.T) (*fakenode.Node, string) {
	t.Helper()
	n := fakenode.New()
	srv := httptest.NewServer(n)
	t.Cleanup(srv.Close)
	t.Cleanup(n.Close)
	return n, srv.URL
}

// account is one user's keystore and passphrase file.
type account struct {
	t        *testing.T
	name     string
	keystore string
	passFile string
	node     string
}

func newAccount(t *testing.T, node, name string) *account {
	t.Helper()
	dir := t.TempDir()
	pf := filepath.Join(dir, "pass")
	if err := os.WriteFile(pf, []byte("secret of "+name+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return &account{t: t, name: name, keystore: filepath.Join(dir, "keystore"), passFile: pf, node: node}
}

// run runs parley as a with stdin and returns its standard output and
// error.
func (a *account) run(ctx context.Context, stdin io.Reader, args ...string) (string, string, error) {
	a.t.Helper()
	var out, errb syncBuffer
	err := a.runTo(ctx, stdin, &out, &errb, args...)
	return out.String(), errb.String(), err
}

func (a *account) runTo(ctx context.Context, stdin io.Reader, out, errw io.Writer, args ...string) error {
	global := []string{"--keystore", a.keystore, "--passphrase-file", a.passFile}
	return cli.Main(ctx, cli.Env{Args: append(global, args...), Stdin: stdin, Stdout: out, Stderr: errw},
		cli.WithKeystoreOptions(cheapKDF), cli.WithConfig(client.Config{PairWait: 5 * time.Second}))
}

// must runs a command that must succeed.
func (a *account) must(args ...string) string {
	a.t.Helper()
	out, errOut, err := a.run(context.Background(), nil, args...)
	if err != nil {
		a.t.Fatalf("%s: parley %s = %v\nstderr: %s", a.name, strings.Join(args, " "), err, errOut)
	}
	return out
}

func (a *account) register() {
	a.t.Helper()
	out := a.must("register", "--node", a.node, "--username", a.name)
	if !strings.HasPrefix(out, "registered "+a.name+" (acct_") {
		a.t.Fatalf("register = %q", out)
	}
}

// pairAccounts runs `pair --no-chat --json` for a and b at once and
// returns the room ID both print.
func pairAccounts(t *testing.T, a, b *account) string {
	t.Helper()
	var wg sync.WaitGroup
	var outA string
	wg.Go(func() { outA = a.must("pair", "--no-chat", "--json") })
	outB := b.must("pair", "--no-chat", "--json")
	wg.Wait()
	roomOf := func(s string) string {
		var v map[string]any
		if err := json.Unmarshal([]byte(s), &v); err != nil || v["kind"] != "paired" {
			t.Fatalf("pair --json printed %q", s)
		}
		return v["room"].(string)
	}
	ra, rb := roomOf(outA), roomOf(outB)
	if ra != rb || !strings.HasPrefix(ra, "room_") {
		t.Fatalf("paired rooms %q and %q", ra, rb)
	}
	return ra
}

func jsonLines(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.Lines(s) {
		var v map[string]any
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("output line %q is not JSON: %v", line, err)
		}
		out = append(out, v)
	}
	return out
}

// The scriptable commands end to end: register, login, pair, send, recv
// --json, rooms, report, leave.
func TestScriptedConversation(t *testing.T) {
	node, url := startNode(t)
	alice, bob := newAccount(t, url, "alice"), newAccount(t, url, "bob")
	alice.register()
	out := bob.must("--json", "register", "--node", url, "--username", "bob")
	if v := jsonLines(t, out); len(v) != 1 || v[0]["username"] != "bob" || !strings.HasPrefix(v[0]["account"].(string), "acct_") {
		t.Fatalf("register --json = %q", out)
	}
	if out := alice.must("login"); out != "logged in as alice\n" {
		t.Fatalf("login = %q", out)
	}

	room := pairAccounts(t, alice, bob)
	if out := alice.must("send", "hello", "bob"); !regexp.MustCompile(`^sent to room_\S{8} \(#0\)\n$`).MatchString(out) {
		t.Fatalf("send = %q", out)
	}
	if out := alice.must("send", "--json", "--room", room[:12], "second"); jsonLines(t, out)[0]["seq"] != 1.0 {
		t.Fatalf("send --json --room PREFIX = %q", out)
	}
	out = bob.must("recv", "--wait", "5s", "--json")
	lines := jsonLines(t, out)
	if len(lines) != 2 {
		t.Fatalf("recv --json printed %d lines, want 2:\n%s", len(lines), out)
	}
	for i, want := range []string{"hello bob", "second"} {
		if l := lines[i]; l["kind"] != "message" || l["room"] != room || l["text"] != want || l["seq"] != float64(i) {
			t.Errorf("recv line %d = %v, want message %q", i, l, want)
		}
	}
	if out := bob.must("recv", "--json"); out != "" {
		t.Fatalf("recv again = %q, want nothing", out)
	}
	out = bob.must("rooms", "--json")
	if r := jsonLines(t, out); len(r) != 1 || r[0]["room"] != room || r[0]["status"] != "open" || r[0]["messages"] != 2.0 {
		t.Fatalf("rooms --json = %q", out)
	}
	if out := bob.must("rooms"); !strings.HasPrefix(out, room+"  open") {
		t.Fatalf("rooms = %q", out)
	}

	// report: a preview, then the question; "n" sends nothing.
	out, errOut, err := bob.run(context.Background(), strings.NewReader("n\n"), "report", "--last", "1", "--reason", "spam")
	if err != nil || !strings.Contains(out, "discloses 1 message(s)") || !strings.Contains(out, "] second\n") || !strings.Contains(errOut, "report not sent") {
		t.Fatalf("report, answered n = %q, %q, %v", out, errOut, err)
	}
	if len(node.Reports()) != 0 {
		t.Fatal("a report was sent after the answer n")
	}
	out, _, err = bob.run(context.Background(), strings.NewReader("y\n"), "report", "--reason", "harassment", "--text", "rude")
	if err != nil || !strings.Contains(out, "report sent (2 message(s) disclosed)") {
		t.Fatalf("report, answered y = %q, %v", out, err)
	}
	out = bob.must("report", "--yes", "--json", "--last", "1")
	if r := jsonLines(t, out); len(r) != 1 || r[0]["kind"] != "reported" || r[0]["messages"] != 1.0 {
		t.Fatalf("report --yes --json = %q", out)
	}
	if got := node.Reports(); len(got) != 2 || string(got[0].Items[1].Plaintext) != "second" || got[0].Text != "rude" {
		t.Fatalf("node reports = %v", got)
	}

	if out := alice.must("leave"); out != "left "+room+"\n" {
		t.Fatalf("leave = %q", out)
	}
	if out := bob.must("recv", "--wait", "5s", "--json"); jsonLines(t, out)[0]["by"] != "partner" {
		t.Fatalf("recv after leave = %q", out)
	}
	if _, _, err := bob.run(context.Background(), nil, "send", "anyone?"); err == nil || !strings.Contains(err.Error(), "no open room") {
		t.Fatalf("send without an open room = %v", err)
	}
}

// chat reads lines from a pipe and prints incoming messages as they come.
func TestChat(t *testing.T) {
	node, url := startNode(t)
	alice, bob, carol := newAccount(t, url, "alice"), newAccount(t, url, "bob"), newAccount(t, url, "carol")
	for _, a := range []*account{alice, bob, carol} {
		a.register()
	}
	room := pairAccounts(t, alice, bob)
	_ = room

	stdin, typing := io.Pipe()
	var out, errOut syncBuffer
	done := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go func() { done <- alice.runTo(ctx, stdin, &out, &errOut, "chat") }()
	defer func() { _ = typing.Close() }()
	typeLine := func(s string) {
		t.Helper()
		if _, err := io.WriteString(typing, s+"\n"); err != nil {
			t.Fatalf("typing %q: %v", s, err)
		}
	}

	errOut.waitFor(t, "chatting in room_")
	bob.must("send", "hi alice")
	out.waitFor(t, "partner: hi alice")
	if !regexp.MustCompile(`(?m)^\[\d\d:\d\d\] partner: hi alice$`).MatchString(out.String()) {
		t.Fatalf("chat printed %q", out.String())
	}

	typeLine("hello bob")
	if got := bob.must("recv", "--wait", "10s", "--json"); jsonLines(t, got)[0]["text"] != "hello bob" {
		t.Fatalf("bob received %q", got)
	}
	typeLine("//slash")
	if got := bob.must("recv", "--wait", "10s", "--json"); jsonLines(t, got)[0]["text"] != "/slash" {
		t.Fatalf("bob received %q", got)
	}

	typeLine("/send notes.txt")
	errOut.waitFor(t, "not sent: open notes.txt") // no such file: nothing uploaded or sent

	typeLine("/report 1")
	out.waitFor(t, "discloses 1 message(s)")
	typeLine("y")
	out.waitFor(t, "report sent (1 message(s) disclosed)")
	if r := node.Reports(); len(r) != 1 || string(r[0].Items[0].Plaintext) != "hi alice" {
		t.Fatalf("node reports = %v", r)
	}

	typeLine("/next")
	errOut.waitFor(t, "waiting for a partner")
	if got := bob.must("recv", "--wait", "10s", "--json"); jsonLines(t, got)[0]["kind"] != "room_closed" {
		t.Fatalf("bob after /next received %q", got)
	}
	// carol meets alice; bob, who just left alice, would be avoided.
	carolRoom := carol.must("pair", "--no-chat")
	out.waitFor(t, "paired: room_")
	errOut.waitFor(t, "say hi")
	typeLine("hi carol")
	if got := carol.must("recv", "--wait", "10s", "--json"); jsonLines(t, got)[0]["text"] != "hi carol" {
		t.Fatalf("carol (%s) received %q", carolRoom, got)
	}

	typeLine("/quit")
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("chat = %v", err)
		}
	case <-ctx.Done():
		t.Fatal("chat did not end after /quit")
	}
}

// pair waits for a partner and then chats; the end of input ends the chat.
func TestPairThenChat(t *testing.T) {
	_, url := startNode(t)
	alice, bob := newAccount(t, url, "alice"), newAccount(t, url, "bob")
	alice.register()
	bob.register()
	stdin, typing := io.Pipe()
	var out, errOut syncBuffer
	done := make(chan error, 1)
	go func() { done <- alice.runTo(context.Background(), stdin, &out, &errOut, "pair", "--interest", "go") }()
	errOut.waitFor(t, "waiting for a partner")
	bob.must("pair", "--no-chat", "--interest", "go")
	errOut.waitFor(t, "chatting in room_")
	if !strings.HasPrefix(out.String(), "paired: room_") {
		t.Fatalf("pair printed %q", out.String())
	}
	if _, err := io.WriteString(typing, "hi from pair\n"); err != nil {
		t.Fatal(err)
	}
	if got := bob.must("recv", "--wait", "10s", "--json"); jsonLines(t, got)[0]["text"] != "hi from pair" {
		t.Fatalf("bob received %q", got)
	}
	_ = typing.Close()
	if err := <-done; err != nil {
		t.Fatalf("pair = %v", err)
	}
}

func TestErrors(t *testing.T) {
	_, url := startNode(t)
	alice := newAccount(t, url, "alice")
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr error
		wantMsg string
	}{
		{"no command", nil, cli.ErrUsage, ""},
		{"unknown command", []string{"dance"}, cli.ErrUsage, ""},
		{"register without username", []string{"register", "--node", url}, cli.ErrUsage, ""},
		{"bad username", []string{"register", "--node", url, "--username", "A"}, nil, "3 to 32 characters"},
		{"no keystore", []string{"rooms"}, nil, "parley register --node URL --username NAME"},
		{"send without text", []string{"send"}, cli.ErrUsage, ""},
		{"bad reason", []string{"report", "--reason", "boredom"}, cli.ErrUsage, ""},
		{"bad flag", []string{"recv", "--wait", "soon"}, cli.ErrUsage, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := alice.run(ctx, nil, tc.args...)
			if err == nil || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("parley %v = %v, want %v containing %q", tc.args, err, tc.wantErr, tc.wantMsg)
			}
		})
	}

	alice.register()
	// A refused registration leaves no keystore behind.
	again := newAccount(t, url, "alice")
	if _, _, err := again.run(ctx, nil, "register", "--node", url, "--username", "alice"); !errors.Is(err, client.ErrUsernameTaken) {
		t.Fatalf("register taken username = %v, want ErrUsernameTaken", err)
	}
	if _, err := os.Stat(again.keystore); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the refused registration left a keystore: %v", err)
	}
	// Registering again with the same keystore is a retry, not an error.
	alice.must("register", "--node", url, "--username", "alice")
	if _, _, err := alice.run(ctx, nil, "register", "--node", url, "--username", "alicia"); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("register another name on the keystore = %v", err)
	}
	// A wrong passphrase, from the environment.
	var out, errb bytes.Buffer
	err := cli.Main(ctx, cli.Env{Args: []string{"--keystore", alice.keystore, "rooms"}, Environ: []string{"PARLEY_PASSPHRASE=wrong"}, Stdout: &out, Stderr: &errb},
		cli.WithKeystoreOptions(cheapKDF))
	if !errors.Is(err, keystore.ErrWrongPassphrase) {
		t.Fatalf("rooms with a wrong passphrase = %v", err)
	}
	err = cli.Main(ctx, cli.Env{Args: []string{"--keystore", alice.keystore, "rooms"}, Environ: []string{"PARLEY_PASSPHRASE=secret of alice"}, Stdout: &out, Stderr: &errb},
		cli.WithKeystoreOptions(cheapKDF))
	if err != nil || !strings.Contains(errb.String(), "no rooms yet") {
		t.Fatalf("rooms with the passphrase from the environment = %v, %q", err, errb.String())
	}
	// No passphrase anywhere, and no terminal.
	err = cli.Main(ctx, cli.Env{Args: []string{"--keystore", alice.keystore, "rooms"}, Stdout: &out, Stderr: &errb}, cli.WithKeystoreOptions(cheapKDF))
	if !errors.Is(err, keystore.ErrNoPassphrase) {
		t.Fatalf("rooms without a passphrase = %v", err)
	}
}

func TestVersionAndHelp(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"help"}} {
		var out bytes.Buffer
		if err := cli.Main(context.Background(), cli.Env{Args: args, Stdout: &out, Stderr: io.Discard}); err != nil || out.Len() == 0 {
			t.Errorf("parley %v = %q, %v", args, out.String(), err)
		}
	}
}

func TestParseReason(t *testing.T) {
	for _, s := range []string{"spam", "harassment", "illegal", "other"} {
		if r, err := cli.ParseReason(s); err != nil || r.String() != s {
			t.Errorf("ParseReason(%q) = %v, %v", s, r, err)
		}
	}
	if _, err := cli.ParseReason("Spam"); err == nil {
		t.Error("ParseReason(Spam) = nil error")
	}
}

// syncBuffer is a buffer that a command writes while the test reads, and
// that tells waiters about every write.
type syncBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{}
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.changed != nil {
		close(s.changed)
		s.changed = nil
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor waits until the buffer contains sub, for at most 10 seconds.
func (s *syncBuffer) waitFor(t *testing.T, sub string) {
	t.Helper()
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for {
		s.mu.Lock()
		if strings.Contains(s.b.String(), sub) {
			s.mu.Unlock()
			return
		}
		if s.changed == nil {
			s.changed = make(chan struct{})
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-timeout.C:
			t.Fatalf("output never contained %q; it is:\n%s", sub, s.String())
		}
	}
}

// Interrupting pair withdraws the ticket.
func TestPairInterrupted(t *testing.T) {
	node, url := startNode(t)
	alice := newAccount(t, url, "alice")
	alice.register()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut syncBuffer
	done := make(chan error, 1)
	go func() { done <- alice.runTo(ctx, nil, &out, &errOut, "pair") }()
	errOut.waitFor(t, "waiting for a partner")
	if !node.Waiting("alice") {
		t.Fatal("no ticket waiting")
	}
	cancel()
	if err := <-done; err == nil || !strings.Contains(err.Error(), "the ticket was withdrawn") {
		t.Fatalf("interrupted pair = %v", err)
	}
	if node.Waiting("alice") {
		t.Fatal("the ticket is still waiting")
	}
}
