package cli

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/parley-chat/parley/client"
	"github.com/parley-chat/parley/protocol/disclosure"
	"github.com/parley-chat/parley/protocol/keys"
)

// chatWait is the long-poll wait of a chat's receiver.
const chatWait = 25 * time.Second

const chatHelp = `type a line and press enter to send it; a line starting with / is a command
(start it with // to send a line that starts with /):
  /next        leave this room and find someone new
  /report [n]  report the partner's last n messages (default 10): shows them, asks, then sends
  /send FILE   upload a file (encrypted, up to 64 MiB) and send its link
  /quit        leave the chat (the room stays open)`

// received is one Receive's result, for the chat loop.
type received struct {
	evs []client.Event
	err error
}

// chatState is what a chat tracks between lines and events.
type chatState struct {
	room      keys.RoomID   // the current room, or zero while waiting
	waiting   keys.TicketID // the ticket of a /next, until it pairs
	interests []string
}

// chat runs the interactive chat in room id: it reads lines from standard
// input and sends them, and prints incoming messages as they arrive. It
// returns at the end of the input, on /quit or when ctx ends. It owns one
// goroutine, the receiver, which it stops and waits for.
func (r *runner) chat(s *client.Session, id keys.RoomID, interests []string) error {
	ctx, cancel := context.WithCancel(r.ctx)
	events := make(chan received)
	var wg sync.WaitGroup
	wg.Go(func() { receiveLoop(ctx, s, events) })
	defer func() {
		cancel()
		wg.Wait()
	}()

	r.flush(s)
	r.out.notice("chatting in %s; /help lists the commands", short(id))
	st := &chatState{room: id, interests: interests}
	r.stdin.start()
	for {
		select {
		case <-ctx.Done():
			return nil
		case rcv := <-events:
			r.chatEvents(st, rcv)
		case line, ok := <-r.stdin.lines:
			if !ok {
				return nil
			}
			if quit := r.chatLine(ctx, s, st, line); quit {
				return nil
			}
		}
	}
}

// receiveLoop receives until ctx ends and hands every non-empty result to
// out. After a failure it waits, longer each time, before trying again.
func receiveLoop(ctx context.Context, s *client.Session, out chan<- received) {
	const minBackoff, maxBackoff = time.Second, 30 * time.Second
	backoff := minBackoff
	for ctx.Err() == nil {
		evs, err := s.Receive(ctx, chatWait)
		if ctx.Err() != nil {
			return
		}
		if err == nil && len(evs) == 0 {
			continue
		}
		select {
		case out <- received{evs, err}:
		case <-ctx.Done():
			return
		}
		if err == nil {
			backoff = minBackoff
			continue
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

func (r *runner) chatEvents(st *chatState, rcv received) {
	if rcv.err != nil {
		r.out.warn("receiving failed (will retry): %v", rcv.err)
		return
	}
	for _, ev := range rcv.evs {
		r.out.event(ev, ev.Room != st.room)
		if ev.Kind == client.EventMessage && ev.Message != nil {
			for _, l := range blobLinks(ev.Message.Text()) {
				r.out.notice("a file: fetch it with `parley blob get '%s' -o FILE`", l)
			}
		}
		switch {
		case ev.Kind == client.EventPaired && st.room == (keys.RoomID{}) && ev.Paired.Me.Sign == st.waiting:
			st.room, st.waiting = ev.Room, keys.TicketID{}
			r.out.notice("you are in a new room; say hi")
		case ev.Kind == client.EventRoomClosed && ev.Room == st.room && ev.By == client.ClosedByPartner:
			r.out.notice("/next to meet someone new, /quit to leave")
		}
	}
}

// chatLine handles one line of input; quit says the chat is over.
func (r *runner) chatLine(ctx context.Context, s *client.Session, st *chatState, line string) (quit bool) {
	if strings.TrimSpace(line) == "" {
		return false
	}
	if strings.HasPrefix(line, "/") && !strings.HasPrefix(line, "//") {
		cmd, arg, _ := strings.Cut(strings.TrimSpace(line), " ")
		arg = strings.TrimSpace(arg)
		switch cmd {
		case "/quit":
			return true
		case "/next":
			r.chatNext(ctx, s, st)
		case "/report":
			r.chatReport(s, st, arg)
		case "/send":
			r.chatSendFile(ctx, s, st, arg)
		case "/help":
			r.out.notice("%s", chatHelp)
		default:
			r.out.notice("unknown command %s; /help lists them", cmd)
		}
		return false
	}
	line = strings.TrimPrefix(line, "/") // "//x" sends "/x"
	if st.room == (keys.RoomID{}) {
		r.out.notice("not in a room yet; waiting for a partner")
		return false
	}
	if _, err := s.Send(ctx, st.room, line); err != nil {
		switch {
		case errors.Is(err, client.ErrRoomClosed):
			r.out.warn("not sent: the room is closed; /next to meet someone new")
		case errors.Is(err, client.ErrNotDelivered):
			r.out.warn("not delivered yet (%v); it will be sent again when parley next starts", err)
		default:
			r.out.warn("not sent: %v", err)
		}
	}
	return false
}

// chatNext leaves the current room and asks for a new partner; the old
// room's avoid tags keep the two from meeting again at once.
func (r *runner) chatNext(ctx context.Context, s *client.Session, st *chatState) {
	if st.room != (keys.RoomID{}) {
		if rs, ok := s.RoomState(st.room); ok && rs.Open() {
			if err := s.Leave(ctx, st.room); err != nil {
				r.out.warn("leaving failed: %v", err)
				return
			}
			r.out.notice("you left %s", short(st.room))
		}
	}
	w, err := s.StartPair(ctx, st.interests)
	if err != nil {
		r.out.warn("asking for a partner failed: %v", err)
		return
	}
	st.room, st.waiting = keys.RoomID{}, w.Ticket
	r.out.notice("waiting for a partner...")
}

// chatReport handles /report [n]: the current room, or the newest one with
// messages while waiting for a partner.
func (r *runner) chatReport(s *client.Session, st *chatState, arg string) {
	n := 10
	if arg != "" {
		v, err := strconv.Atoi(arg)
		if err != nil || v < 1 || v > 32 {
			r.out.notice("usage: /report [n], n from 1 to 32")
			return
		}
		n = v
	}
	id := st.room
	if id == (keys.RoomID{}) {
		var err error
		if id, err = pickRoom(s, "", roomsWithMessages); err != nil {
			r.out.warn("%v", err)
			return
		}
	}
	if err := r.report(s, id, n, disclosure.ReasonOther, "reported from a chat", false); err != nil {
		r.out.warn("report failed: %v", err)
	}
}
