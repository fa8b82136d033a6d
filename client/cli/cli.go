// Package cli is the parley command line: register, login, pair, chat and
// the one-shot commands for scripts (send, recv, leave, report, rooms).
// cmd/parley/main.go only turns the process (args, environment, standard
// streams, signals) into a call to Main.
//
// Output: results go to standard output, progress, prompts and warnings to
// standard error. With --json every result is one JSON object per line.
package cli

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/parley-chat/parley/client"
	"github.com/parley-chat/parley/client/keystore"
	"github.com/parley-chat/parley/protocol/disclosure"
	"github.com/parley-chat/parley/protocol/keys"
)

// Version is the CLI's version.
const Version = "0.1.0-dev"

// ErrUsage is returned for a command line that cannot be run; the message
// has been printed.
var ErrUsage = errors.New("usage error")

const usage = `parley is a Parley chat client.

Usage:
  parley register --node URL --username NAME [--invite TOKEN]
                                      create the account key and the keystore, register and log in
  parley login                        log in again (commands also log in by themselves)
  parley logout                       revoke the session token
  parley pair [--interest X]... [--no-chat]
                                      wait for a partner, print the room, then chat
  parley chat [ROOM]                  chat: lines you type are sent; /next, /report [n], /send FILE, /quit
  parley send [--room ROOM] TEXT...   send one message
  parley recv [--wait 10s]            print received messages (one JSON object per line with --json)
  parley leave [--room ROOM]          leave a room
  parley report [--room ROOM] [--last N] [--reason spam|harassment|illegal|other] [--text TEXT] [--yes]
                                      show what a report would disclose, ask, then send it
  parley rooms                        list the rooms in the keystore
  parley blob put FILE                encrypt and upload a file; prints its link (the key is in the #fragment)
  parley blob get LINK [-o FILE]      download, verify and decrypt a file (default: to standard output)
  parley version

Global flags (before or after the command):
  --keystore PATH        keystore file (default $PARLEY_KEYSTORE, else ~/.config/parley/keystore)
  --passphrase-file F    read the keystore passphrase from the first line of F
                         (else $PARLEY_PASSPHRASE, else a prompt on the terminal)
  --node URL             the node's URL (register; later it replaces the stored one)
  --json                 machine-readable output

ROOM is a room ID (room_...) or a unique prefix of one; it defaults to the only open room.
`

// Env is what the process gives the command.
type Env struct {
	Args    []string // without the program name
	Environ []string // as os.Environ
	Stdin   io.Reader
	Stdout  io.Writer
	Stderr  io.Writer
}

// Option is a test seam for Main.
type Option func(*options)

type options struct {
	client   []client.Option
	keystore []keystore.Option
	cfg      client.Config
}

// WithClientOptions passes options to the SDK (HTTP client, clock,
// randomness).
func WithClientOptions(opts ...client.Option) Option {
	return func(o *options) { o.client = append(o.client, opts...) }
}

// WithKeystoreOptions passes options to keystore.Create and Open (a cheap
// KDF in tests).
func WithKeystoreOptions(opts ...keystore.Option) Option {
	return func(o *options) { o.keystore = append(o.keystore, opts...) }
}

// WithConfig sets the Session's configuration (default: every default).
func WithConfig(c client.Config) Option { return func(o *options) { o.cfg = c } }

// globals are the flags every command takes.
type globals struct {
	keystore string
	passFile string
	node     string
	json     bool
}

func (g *globals) register(fl *flag.FlagSet) {
	fl.StringVar(&g.keystore, "keystore", g.keystore, "keystore file")
	fl.StringVar(&g.passFile, "passphrase-file", g.passFile, "file whose first line is the keystore passphrase")
	fl.StringVar(&g.node, "node", g.node, "the node's URL")
	fl.BoolVar(&g.json, "json", g.json, "machine-readable output")
}

// runner runs one command.
type runner struct {
	ctx   context.Context
	env   Env
	o     options
	g     globals
	out   *output
	stdin *lineReader
}

// Main runs one parley command. ctx ending stops a waiting or chatting
// command.
func Main(ctx context.Context, e Env, opts ...Option) error {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if e.Stdin == nil {
		e.Stdin = strings.NewReader("")
	}
	r := &runner{ctx: ctx, env: e, o: o, stdin: newLineReader(e.Stdin)}
	defer r.stdin.stop()
	top := flag.NewFlagSet("parley", flag.ContinueOnError)
	top.SetOutput(e.Stderr)
	top.Usage = func() { fmt.Fprint(e.Stderr, usage) }
	r.g.register(top)
	if err := top.Parse(e.Args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return ErrUsage
	}
	args := top.Args()
	if len(args) == 0 {
		fmt.Fprint(e.Stderr, usage)
		return ErrUsage
	}
	cmds := map[string]func([]string) error{
		"register": r.cmdRegister,
		"login":    r.cmdLogin,
		"logout":   r.cmdLogout,
		"pair":     r.cmdPair,
		"chat":     r.cmdChat,
		"send":     r.cmdSend,
		"recv":     r.cmdRecv,
		"leave":    r.cmdLeave,
		"report":   r.cmdReport,
		"rooms":    r.cmdRooms,
		"blob":     r.cmdBlob,
	}
	switch name := args[0]; name {
	case "version", "--version":
		fmt.Fprintf(e.Stdout, "parley %s\n", Version)
		return nil
	case "help", "--help", "-h":
		fmt.Fprint(e.Stdout, usage)
		return nil
	default:
		cmd, ok := cmds[name]
		if !ok {
			fmt.Fprintf(e.Stderr, "parley: unknown command %q\n\n%s", name, usage)
			return ErrUsage
		}
		return cmd(args[1:])
	}
}

// flags returns a flag set for a command, with the global flags.
func (r *runner) flags(name string) *flag.FlagSet {
	fl := flag.NewFlagSet("parley "+name, flag.ContinueOnError)
	fl.SetOutput(r.env.Stderr)
	r.g.register(fl)
	return fl
}

// parse parses a command's flags and sets up the output.
func (r *runner) parse(fl *flag.FlagSet, args []string) error {
	if err := fl.Parse(args); err != nil {
		return ErrUsage
	}
	r.out = &output{w: r.env.Stdout, errw: r.env.Stderr, json: r.g.json}
	return nil
}

func (r *runner) getenv(name string) string {
	for _, kv := range slices.Backward(r.env.Environ) {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			return v
		}
	}
	return ""
}

// keystorePath is --keystore, else $PARLEY_KEYSTORE, else
// ~/.config/parley/keystore.
func (r *runner) keystorePath() (string, error) {
	if r.g.keystore != "" {
		return r.g.keystore, nil
	}
	if p := r.getenv("PARLEY_KEYSTORE"); p != "" {
		return p, nil
	}
	home := r.getenv("HOME")
	if home == "" {
		var err error
		if home, err = os.UserHomeDir(); err != nil {
			return "", errors.New("no keystore path: give --keystore PATH or set PARLEY_KEYSTORE")
		}
	}
	return filepath.Join(home, ".config", "parley", "keystore"), nil
}

// passphrase finds the keystore passphrase: --passphrase-file, else
// $PARLEY_PASSPHRASE, else a prompt if standard input is a terminal
// (twice if confirm).
func (r *runner) passphrase(confirm bool) ([]byte, error) {
	if r.g.passFile != "" {
		return keystore.Passphrase(r.g.passFile, "", nil)
	}
	if v := r.getenv(keystore.DefaultPassphraseEnv); v != "" {
		return []byte(v), nil
	}
	f, ok := r.env.Stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil, keystore.ErrNoPassphrase
	}
	fd := int(f.Fd())
	p, err := keystore.Passphrase("", "", keystore.TerminalPrompt(fd, "Keystore passphrase: "))
	if err != nil || !confirm {
		return p, err
	}
	again, err := keystore.Passphrase("", "", keystore.TerminalPrompt(fd, "Repeat the passphrase: "))
	if err != nil {
		clear(p)
		return nil, err
	}
	defer clear(again)
	if subtle.ConstantTimeCompare(p, again) != 1 {
		clear(p)
		return nil, errors.New("the passphrases differ")
	}
	return p, nil
}

// openSession opens the keystore and starts a session on it. --node
// replaces the stored node URL.
func (r *runner) openSession() (*client.Session, error) {
	path, err := r.keystorePath()
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no keystore at %s: create an account with `parley register --node URL --username NAME` (or give --keystore PATH)", path)
	}
	pass, err := r.passphrase(false)
	if err != nil {
		return nil, err
	}
	ks, err := keystore.Open(path, pass, r.o.keystore...)
	clear(pass)
	switch {
	case errors.Is(err, keystore.ErrLocked):
		return nil, fmt.Errorf("the keystore %s is in use by another parley (one process at a time)", path)
	case err != nil:
		return nil, err
	}
	if r.g.node != "" && r.g.node != ks.Contents().NodeURL {
		err := ks.Update(func(c *keystore.Contents) error { c.NodeURL = r.g.node; return nil })
		if err == nil {
			err = ks.Save()
		}
		if err != nil {
			_ = ks.Close()
			return nil, err
		}
	}
	s, err := client.NewSession(ks, r.o.cfg, r.o.client...)
	if err != nil {
		_ = ks.Close()
		return nil, err
	}
	return s, nil
}

// withSession runs fn on an open session and closes it.
func (r *runner) withSession(fn func(*client.Session) error) error {
	s, err := r.openSession()
	if err != nil {
		return err
	}
	defer func() { _ = s.Close() }()
	return fn(s)
}

// ---- register, login, logout ----

func validUsername(s string) bool {
	if len(s) < 3 || len(s) > 32 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for _, c := range []byte(s) {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

func (r *runner) cmdRegister(args []string) error {
	fl := r.flags("register")
	username := fl.String("username", "", "the account's name: 3 to 32 of a-z 0-9 _ - ., starting with a letter")
	invite := fl.String("invite", "", "invite token, for nodes that register by invitation")
	if err := r.parse(fl, args); err != nil {
		return err
	}
	if r.g.node == "" || *username == "" || fl.NArg() > 0 {
		fmt.Fprint(r.env.Stderr, "usage: parley register --node URL --username NAME [--invite TOKEN]\n")
		return ErrUsage
	}
	if !validUsername(*username) {
		return fmt.Errorf("username %q: 3 to 32 characters of a-z 0-9 _ - ., starting with a letter", *username)
	}
	path, err := r.keystorePath()
	if err != nil {
		return err
	}
	created, err := r.createKeystore(path, *username)
	if err != nil {
		return err
	}
	s, err := r.openSession()
	if err != nil {
		return err
	}
	defer func() { _ = s.Close() }()
	acct, err := s.Register(r.ctx, *invite)
	switch {
	case err == nil:
	case !created && (errors.Is(err, client.ErrKeyTaken) || errors.Is(err, client.ErrUsernameTaken)):
		// Perhaps a retry of a registration that went through: if the
		// key logs in, it did.
		if lerr := s.Login(r.ctx); lerr != nil {
			return fmt.Errorf("registration refused: %w", err)
		}
	case created && !client.Retryable(err):
		// Refused: the key was never registered; do not leave a
		// keystore that looks like an account behind.
		_ = s.Close()
		if rmErr := os.Remove(path); rmErr == nil {
			return fmt.Errorf("registration refused: %w (the new keystore was removed)", err)
		}
		return fmt.Errorf("registration refused: %w", err)
	default:
		return fmt.Errorf("registration failed: %w\nrun the same command again to retry with the same key", err)
	}
	if err := s.Login(r.ctx); err != nil {
		return fmt.Errorf("registered, but logging in failed: %w", err)
	}
	if acct.Username == "" {
		acct.ID, acct.Username = s.AccountID(), s.Username()
	}
	if r.out.json {
		return r.out.jsonLine(map[string]any{"username": acct.Username, "account": acct.ID, "node": r.g.node, "keystore": path})
	}
	r.out.println("registered %s (%s) on %s and logged in; keystore: %s", acct.Username, acct.ID, r.g.node, path)
	return nil
}

// createKeystore makes a new keystore with a fresh account key; an
// existing one for the same node and username is reused (a retry).
func (r *runner) createKeystore(path, username string) (created bool, err error) {
	if _, err := os.Stat(path); err == nil {
		s, err := r.openSession()
		if err != nil {
			return false, err
		}
		same := s.Username() == username
		_ = s.Close()
		if !same {
			return false, fmt.Errorf("a keystore for another account already exists at %s; give --keystore PATH for a new one", path)
		}
		return false, nil
	}
	key, err := keys.GenerateAccountKey(rand.Reader)
	if err != nil {
		return false, err
	}
	pass, err := r.passphrase(true)
	if err != nil {
		return false, err
	}
	defer clear(pass)
	c := keystore.Contents{NodeURL: r.g.node, Username: username, AccountSeed: key.Seed()}
	defer clear(c.AccountSeed)
	if err := keystore.Create(path, pass, c, r.o.keystore...); err != nil {
		return false, err
	}
	return true, nil
}

func (r *runner) cmdLogin(args []string) error {
	fl := r.flags("login")
	if err := r.parse(fl, args); err != nil {
		return err
	}
	return r.withSession(func(s *client.Session) error {
		if err := s.Login(r.ctx); err != nil {
			return err
		}
		if r.out.json {
			return r.out.jsonLine(map[string]any{"username": s.Username(), "account": s.AccountID()})
		}
		r.out.println("logged in as %s", s.Username())
		return nil
	})
}

func (r *runner) cmdLogout(args []string) error {
	fl := r.flags("logout")
	if err := r.parse(fl, args); err != nil {
		return err
	}
	return r.withSession(func(s *client.Session) error {
		if err := s.Logout(r.ctx); err != nil {
			return err
		}
		r.out.notice("logged out")
		return nil
	})
}

// ---- pairing and chat ----

// repeated collects a repeatable flag.
type repeated []string

func (s *repeated) String() string     { return strings.Join(*s, ",") }
func (s *repeated) Set(v string) error { *s = append(*s, v); return nil }

func (r *runner) cmdPair(args []string) error {
	fl := r.flags("pair")
	var interests repeated
	fl.Var(&interests, "interest", "an interest to share with the partner (repeatable)")
	noChat := fl.Bool("no-chat", false, "print the room and exit instead of chatting")
	if err := r.parse(fl, args); err != nil {
		return err
	}
	if fl.NArg() > 0 {
		fmt.Fprint(r.env.Stderr, "usage: parley pair [--interest X]... [--no-chat]\n")
		return ErrUsage
	}
	return r.withSession(func(s *client.Session) error {
		rm, err := r.pair(s, interests)
		if err != nil {
			return err
		}
		r.out.paired(rm)
		if *noChat {
			return nil
		}
		return r.chat(s, rm.ID, interests)
	})
}

// pair enters a ticket and waits for the partner; if ctx ends first the
// ticket is withdrawn.
func (r *runner) pair(s *client.Session, interests []string) (*client.Room, error) {
	w, err := s.StartPair(r.ctx, interests)
	if err != nil {
		return nil, err
	}
	r.out.notice("waiting for a partner...")
	rm, err := s.WaitPaired(r.ctx, w.Ticket)
	if err != nil && r.ctx.Err() != nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), 5*time.Second)
		defer cancel()
		if werr := s.Withdraw(ctx); werr != nil {
			return nil, fmt.Errorf("interrupted before a partner was found; withdrawing the ticket failed: %w", werr)
		}
		return nil, errors.New("interrupted before a partner was found; the ticket was withdrawn")
	}
	return rm, err
}

func (r *runner) cmdChat(args []string) error {
	fl := r.flags("chat")
	if err := r.parse(fl, args); err != nil {
		return err
	}
	if fl.NArg() > 1 {
		fmt.Fprint(r.env.Stderr, "usage: parley chat [ROOM]\n")
		return ErrUsage
	}
	return r.withSession(func(s *client.Session) error {
		id, err := pickRoom(s, fl.Arg(0), openRooms)
		if err != nil {
			return err
		}
		return r.chat(s, id, nil)
	})
}

// ---- one-shot commands ----

func (r *runner) cmdSend(args []string) error {
	fl := r.flags("send")
	roomArg := fl.String("room", "", "the room (default: the only open room)")
	if err := r.parse(fl, args); err != nil {
		return err
	}
	text := strings.Join(fl.Args(), " ")
	if text == "" {
		fmt.Fprint(r.env.Stderr, "usage: parley send [--room ROOM] TEXT...\n")
		return ErrUsage
	}
	return r.withSession(func(s *client.Session) error {
		id, err := pickRoom(s, *roomArg, openRooms)
		if err != nil {
			return err
		}
		r.flush(s)
		sent, err := s.Send(r.ctx, id, text)
		if err != nil {
			return err
		}
		r.out.sent(sent)
		return nil
	})
}

// flush sends what an earlier run left in the outbox.
func (r *runner) flush(s *client.Session) {
	sent, err := s.Flush(r.ctx)
	for _, m := range sent {
		r.out.notice("delivered an earlier message to %s (#%d)", m.Room, m.Seq)
	}
	if err != nil {
		r.out.warn("an earlier message is still not delivered: %v", err)
	}
}

func (r *runner) cmdRecv(args []string) error {
	fl := r.flags("recv")
	wait := fl.Duration("wait", 0, "how long to wait for a first event (at most 60s)")
	if err := r.parse(fl, args); err != nil {
		return err
	}
	if fl.NArg() > 0 || *wait < 0 {
		fmt.Fprint(r.env.Stderr, "usage: parley recv [--wait 10s]\n")
		return ErrUsage
	}
	return r.withSession(func(s *client.Session) error {
		w := *wait
		for {
			evs, err := s.Receive(r.ctx, w)
			if err != nil {
				return err
			}
			for _, ev := range evs {
				r.out.event(ev, true)
			}
			if len(evs) == 0 {
				return nil
			}
			w = 0 // drain what is there, then stop
		}
	})
}

func (r *runner) cmdLeave(args []string) error {
	fl := r.flags("leave")
	roomArg := fl.String("room", "", "the room (default: the only open room)")
	if err := r.parse(fl, args); err != nil {
		return err
	}
	return r.withSession(func(s *client.Session) error {
		id, err := pickRoom(s, *roomArg, openRooms)
		if err != nil {
			return err
		}
		if err := s.Leave(r.ctx, id); err != nil {
			return err
		}
		if r.out.json {
			return r.out.jsonLine(map[string]any{"kind": "left", "room": id})
		}
		r.out.println("left %s", id)
		return nil
	})
}

// ParseReason parses a report reason's name.
func ParseReason(s string) (disclosure.Reason, error) {
	for _, r := range []disclosure.Reason{disclosure.ReasonSpam, disclosure.ReasonHarassment, disclosure.ReasonIllegal, disclosure.ReasonOther} {
		if s == r.String() {
			return r, nil
		}
	}
	return 0, fmt.Errorf("reason %q: want spam, harassment, illegal or other", s)
}

func (r *runner) cmdReport(args []string) error {
	fl := r.flags("report")
	roomArg := fl.String("room", "", "the room (default: the newest room with received messages)")
	last := fl.Int("last", 10, "how many of the partner's last messages to disclose (1 to 32)")
	reasonArg := fl.String("reason", "other", "spam, harassment, illegal or other")
	text := fl.String("text", "", "what to tell the operator")
	yes := fl.Bool("yes", false, "send without asking")
	if err := r.parse(fl, args); err != nil {
		return err
	}
	reason, err := ParseReason(*reasonArg)
	if err != nil || fl.NArg() > 0 || *last < 1 || *last > 32 {
		fmt.Fprint(r.env.Stderr, "usage: parley report [--room ROOM] [--last N (1-32)] [--reason spam|harassment|illegal|other] [--text TEXT] [--yes]\n")
		return ErrUsage
	}
	return r.withSession(func(s *client.Session) error {
		id, err := pickRoom(s, *roomArg, roomsWithMessages)
		if err != nil {
			return err
		}
		return r.report(s, id, *last, reason, *text, *yes)
	})
}

// report shows what a report discloses, asks unless yes, and sends it.
func (r *runner) report(s *client.Session, id keys.RoomID, last int, reason disclosure.Reason, text string, yes bool) error {
	rep, err := s.PrepareReport(id, last, reason, text)
	if err != nil {
		return err
	}
	r.out.preview(rep)
	if !yes {
		fmt.Fprint(r.env.Stderr, "Send this report to your node's operator? [y/N] ")
		answer, ok := r.stdin.next(r.ctx)
		if a := strings.ToLower(strings.TrimSpace(answer)); !ok || (a != "y" && a != "yes") {
			r.out.notice("report not sent")
			return nil
		}
	}
	rc, err := s.SendReport(r.ctx, rep)
	if err != nil {
		return err
	}
	r.out.reported(rep, rc)
	return nil
}

func (r *runner) cmdRooms(args []string) error {
	fl := r.flags("rooms")
	if err := r.parse(fl, args); err != nil {
		return err
	}
	return r.withSession(func(s *client.Session) error {
		rooms := s.Rooms()
		if len(rooms) == 0 && !r.out.json {
			r.out.notice("no rooms yet; `parley pair` finds a partner")
		}
		for i := range rooms {
			if err := r.out.room(&rooms[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

// ---- rooms ----

// Which room a command uses by default.
type roomDefault int

const (
	openRooms         roomDefault = iota // the only open room
	roomsWithMessages                    // the newest room with received messages
)

// pickRoom returns the room named by arg (an ID or a unique prefix), or
// if arg is empty the default room.
func pickRoom(s *client.Session, arg string, def roomDefault) (keys.RoomID, error) {
	rooms := s.Rooms() // newest first
	if arg != "" {
		var found []keys.RoomID
		for _, st := range rooms {
			if strings.HasPrefix(st.ID.String(), arg) {
				found = append(found, st.ID)
			}
		}
		switch len(found) {
		case 0:
			return keys.RoomID{}, fmt.Errorf("%w: %s", client.ErrUnknownRoom, arg)
		case 1:
			return found[0], nil
		}
		return keys.RoomID{}, fmt.Errorf("%q names %d rooms; give more of the ID", arg, len(found))
	}
	var found []keys.RoomID
	for i := range rooms {
		if (def == openRooms && rooms[i].Open()) || (def == roomsWithMessages && rooms[i].Messages > 0) {
			found = append(found, rooms[i].ID)
		}
	}
	switch {
	case len(found) == 0 && def == openRooms:
		return keys.RoomID{}, errors.New("no open room: `parley pair` finds a partner, `parley rooms` lists the rooms")
	case len(found) == 0:
		return keys.RoomID{}, fmt.Errorf("%w: no room has received messages", client.ErrNothingToReport)
	case len(found) == 1 || def == roomsWithMessages:
		return found[0], nil
	}
	return keys.RoomID{}, fmt.Errorf("%d rooms are open; give --room (see `parley rooms`)", len(found))
}

// lineReader reads standard input line by line in a goroutine, so that a
// chat can wait for a line, an incoming message or ctx at once.
type lineReader struct {
	in      io.Reader
	lines   chan string
	done    chan struct{}
	started bool
}

func newLineReader(in io.Reader) *lineReader {
	return &lineReader{in: in, lines: make(chan string), done: make(chan struct{})}
}

// stop tells the reading goroutine to stop at its next line.
func (l *lineReader) stop() { close(l.done) }

// next returns the next line, or false at the end of the input or when
// ctx ends.
func (l *lineReader) next(ctx context.Context) (string, bool) {
	l.start()
	select {
	case line, ok := <-l.lines:
		return line, ok
	case <-ctx.Done():
		return "", false
	}
}

// start starts the reading goroutine. It ends at the end of the input or
// after a "/quit" line. A read of a terminal cannot be interrupted, so when
// a command ends for another reason (a signal) the goroutine stays blocked
// in its read until the process exits, which is right after.
func (l *lineReader) start() {
	if l.started {
		return
	}
	l.started = true
	go func() {
		defer close(l.lines)
		sc := bufio.NewScanner(l.in)
		sc.Buffer(make([]byte, 0, 4096), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			select {
			case l.lines <- line:
			case <-l.done:
				return
			}
			if strings.TrimSpace(line) == "/quit" {
				return
			}
		}
	}()
}
