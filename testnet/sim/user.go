package sim

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/parley-chat/parley/client"
	"github.com/parley-chat/parley/client/keystore"
	"github.com/parley-chat/parley/protocol/disclosure"
	"github.com/parley-chat/parley/protocol/keys"
)

// Roles of simulated users.
const (
	roleChatter  = "chatter"  // pairs, talks a while, says goodbye, leaves, pairs again
	roleSpammer  = "spammer"  // pairs, sends spam at once, leaves, pairs again
	roleReporter = "reporter" // a chatter who reports every spam message
)

// Message prefixes; the token after the prefix is unique to the message.
const (
	prefixText = "msg:"
	prefixSpam = "spam:"
	prefixBye  = "bye:"
)

// Interests steer the lottery: the spammer targets the reporters'
// interest, so spam meets the people who report it.
const (
	interestTalk = "testnet talk"
	interestBait = "testnet bait"
)

// stats are the run's live counters (the ledger keeps the messages).
type stats struct {
	registered, pairings, inRoom, waiting atomic.Int64
	reports, reportErrors, sendErrors     atomic.Int64
	spamSent, suspended, warnings         atomic.Int64
}

// user is one simulated person: a Session on a keystore, driven by one
// goroutine.
type user struct {
	name  string
	role  string
	node  *nodeProc
	s     *client.Session
	rng   *mrand.Rand
	led   *ledger
	st    *stats
	waits *durations // time to pair
	log   *slog.Logger
	msgs  int
	pause time.Duration

	// conversation state, owned by the user's goroutine
	room      *client.Room
	roomStart time.Time
	waiting   bool
	asked     time.Time // when the waiting ticket was asked for
	plan      int       // messages to send in this room
	sent      int
	nextSend  time.Time
	byeSent   bool
	gotBye    bool
	seq       int  // the user's message counter, for tokens
	stopped   bool // suspended: it only receives (spec 10 §3: a suspended account still reads)
}

// kdf is a cheap key derivation: the keystores are throwaway.
var kdf = keystore.WithConfig(keystore.Config{KDF: keystore.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}})

// newUser creates a keystore for name on n's node, registers and logs in.
func newUser(ctx context.Context, dir, name, role string, n *nodeProc, seed uint64, r *run) (*user, error) {
	k, err := keys.GenerateAccountKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, name+".keystore")
	pass := []byte("testnet " + name)
	c := keystore.Contents{NodeURL: "http://" + n.clientAddr, Username: name, AccountSeed: k.Seed()}
	if err := keystore.Create(path, pass, c, kdf); err != nil {
		return nil, err
	}
	ks, err := keystore.Open(path, pass, kdf)
	if err != nil {
		return nil, err
	}
	s, err := client.NewSession(ks, client.Config{SendAttempts: 20, RetryBackoff: 200 * time.Millisecond, ClosedRoomsKept: 8},
		client.WithRequestTimeout(70*time.Second))
	if err != nil {
		_ = ks.Close()
		return nil, err
	}
	u := &user{name: name, role: role, node: n, s: s, rng: mrand.New(mrand.NewPCG(seed, 0x7e57)), //nolint:gosec // G404: reproducible simulation choices, not secrets
		led: r.led, st: &r.st, waits: &r.pairWaits,
		log: r.cfg.Logger.With("user", name, "role", role), msgs: r.cfg.Messages, pause: r.cfg.Pause}
	if _, err := s.Register(ctx, ""); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("register %s: %w", name, err)
	}
	if err := s.Login(ctx); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("login %s: %w", name, err)
	}
	r.st.registered.Add(1)
	return u, nil
}

func (u *user) interests() []string {
	if u.role == roleChatter {
		return []string{interestTalk}
	}
	return []string{interestBait}
}

// randDur is uniform in [0, d].
func (u *user) randDur(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return time.Duration(u.rng.Int64N(int64(d) + 1))
}

// idle reports whether the user is neither in a room nor waiting.
func (u *user) idle() bool { return u.room == nil && !u.waiting }

// run drives the user until ctx ends. While r.starting() it keeps pairing;
// afterwards it finishes its conversation, withdraws its ticket and keeps
// receiving, so that what others sent it arrives.
func (u *user) run(ctx context.Context, r *run) {
	defer func() { u.setIdle() }()
	fails := 0
	for ctx.Err() == nil {
		if err := u.step(ctx, r); err != nil {
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, client.ErrSuspended) {
				if !u.stopped {
					u.log.Info("suspended")
					u.st.suspended.Add(1)
				}
				u.stopped = true
				continue
			}
			fails++
			u.log.Debug("step failed", "err", err, "fails", fails)
			select {
			case <-ctx.Done():
			case <-time.After(min(time.Duration(fails)*100*time.Millisecond, 2*time.Second)):
			}
			continue
		}
		fails = 0
	}
}

func (u *user) setIdle() {
	if u.room != nil {
		u.st.inRoom.Add(-1)
		u.room = nil
	}
	if u.waiting {
		u.st.waiting.Add(-1)
		u.waiting = false
	}
}

// step pairs if it should, receives once, and acts.
func (u *user) step(ctx context.Context, r *run) error {
	switch {
	case u.idle() && r.starting() && !u.stopped:
		asked := time.Now()
		if _, err := u.s.StartPair(ctx, u.interests()); err != nil && !errors.Is(err, client.ErrAlreadyWaiting) {
			return err
		}
		u.waiting, u.asked = true, asked
		u.st.waiting.Add(1)
	}
	// A waiting ticket is never withdrawn: a withdrawal racing the draw
	// drops the ticket's keys while the node pairs it (client.Session
	// .Withdraw), and the partner's messages could not be opened.
	evs, err := u.s.Receive(ctx, 200*time.Millisecond)
	if err != nil {
		return err
	}
	now := time.Now()
	for _, ev := range evs {
		if err := u.handle(ctx, ev, now); err != nil {
			return err
		}
	}
	return u.act(ctx, r, time.Now())
}

func (u *user) handle(ctx context.Context, ev client.Event, now time.Time) error {
	switch ev.Kind {
	case client.EventPaired:
		if u.room != nil {
			// A pairing of an old ticket while in a room: leave it.
			u.led.leaving(u.name, ev.Paired.ID.String(), time.Now())
			if err := u.s.Leave(ctx, ev.Paired.ID); err != nil && !errors.Is(err, client.ErrRoomClosed) {
				return err
			}
			return nil
		}
		if u.waiting {
			u.waiting = false
			u.st.waiting.Add(-1)
			u.waits.add(now.Sub(u.asked))
		}
		u.room = ev.Paired
		u.roomStart = now
		u.plan = 1 + u.rng.IntN(u.msgs)
		u.sent, u.byeSent, u.gotBye = 0, false, false
		u.nextSend = now.Add(u.randDur(u.pause))
		u.st.pairings.Add(1)
		u.st.inRoom.Add(1)
		u.log.Debug("paired", "room", u.room.ID.String(), "partner_home", u.room.Partner.Home.String())
	case client.EventMessage:
		text := ev.Message.Text()
		u.log.Debug("received", "room", ev.Room.String(), "token", tokenOf(text))
		u.led.received(tokenOf(text), now)
		switch {
		case strings.HasPrefix(text, prefixBye):
			if u.room != nil && ev.Room == u.room.ID {
				u.gotBye = true
			}
		case strings.HasPrefix(text, prefixSpam):
			if u.role == roleReporter || (u.role == roleChatter && u.rng.IntN(3) == 0) {
				if _, _, err := u.s.Report(ctx, ev.Room, 1, disclosure.ReasonSpam, "testnet: spam"); err != nil {
					u.st.reportErrors.Add(1)
					u.log.Warn("report failed", "err", err)
				} else {
					u.st.reports.Add(1)
				}
			}
		}
	case client.EventRoomClosed:
		u.log.Debug("room closed", "room", ev.Room.String(), "by", ev.By)
		if u.room != nil && ev.Room == u.room.ID {
			u.room = nil
			u.st.inRoom.Add(-1)
		}
	case client.EventWarning:
		u.st.warnings.Add(1)
		u.log.Warn("event skipped", "reason", ev.Reason, "err", ev.Err)
	}
	return nil
}

// tokenOf is the message's ledger token: its text up to the first space.
func tokenOf(text string) string {
	if i := strings.IndexByte(text, ' '); i >= 0 {
		return text[:i]
	}
	return text
}

// act sends or leaves, as the conversation's state says.
func (u *user) act(ctx context.Context, r *run, now time.Time) error {
	if u.room == nil || r.frozen.Load() || u.stopped {
		return nil
	}
	if u.role == roleSpammer {
		for range 3 {
			if err := u.send(ctx, prefixSpam, "cheap watches, click now"); err != nil {
				return err
			}
			u.st.spamSent.Add(1)
		}
		return u.leave(ctx)
	}
	switch {
	case u.byeSent && u.gotBye && (r.cfg.BothLeave || u.room.Me.Sign.String() < u.room.Partner.Sign.String()):
		// With BothLeave both sides leave, racing their close notices;
		// otherwise the side with the smaller ticket leaves and the other
		// waits for the room to close.
		return u.leave(ctx)
	case u.byeSent && now.Sub(u.roomStart) > r.roomTimeout():
		u.log.Debug("no goodbye from the partner; leaving")
		return u.leave(ctx)
	case u.byeSent:
	case u.sent >= u.plan || !r.starting():
		if err := u.send(ctx, prefixBye, "goodbye"); err != nil {
			return err
		}
		u.byeSent = true
	case !now.Before(u.nextSend):
		if err := u.send(ctx, prefixText, "hello, how are you?"); err != nil {
			return err
		}
		u.sent++
		u.nextSend = now.Add(u.randDur(u.pause))
	}
	return nil
}

// send posts one message with a fresh token and records it.
func (u *user) send(ctx context.Context, prefix, body string) error {
	u.seq++
	token := fmt.Sprintf("%s%s/%d", prefix, u.name, u.seq)
	room := u.room.ID
	u.led.sending(token, u.name, room.String(), time.Now())
	sent, err := u.s.Send(ctx, room, token+" "+body)
	switch {
	case err == nil:
		u.led.ack(token, sent.Stamped)
		return nil
	case errors.Is(err, client.ErrRoomClosed):
		u.room = nil
		u.st.inRoom.Add(-1)
		return nil
	default:
		u.st.sendErrors.Add(1)
		return err
	}
}

// leave records the leave in the ledger first, then leaves.
func (u *user) leave(ctx context.Context) error {
	id := u.room.ID
	u.log.Debug("leaving", "room", id.String(), "sent", u.sent, "bye_sent", u.byeSent, "got_bye", u.gotBye)
	u.led.leaving(u.name, id.String(), time.Now())
	if err := u.s.Leave(ctx, id); err != nil && !errors.Is(err, client.ErrRoomClosed) {
		return err
	}
	u.room = nil
	u.st.inRoom.Add(-1)
	return nil
}
