package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/parley-chat/parley/client"
	"github.com/parley-chat/parley/protocol/envelope"
	"github.com/parley-chat/parley/protocol/keys"
)

// jsonTime is the time format of --json output: RFC 3339, UTC,
// milliseconds, as the client API writes times.
const jsonTime = "2006-01-02T15:04:05.000Z07:00"

// output writes results to standard output and notices to standard error,
// as text for people or as JSON lines. It is safe for concurrent use (a
// chat prints incoming messages while it sends).
type output struct {
	mu   sync.Mutex
	w    io.Writer
	errw io.Writer
	json bool
}

// println writes a result line for people.
func (o *output) println(format string, args ...any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	fmt.Fprintf(o.w, format+"\n", args...)
}

// notice writes progress for people to standard error.
func (o *output) notice(format string, args ...any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	fmt.Fprintf(o.errw, format+"\n", args...)
}

// warn writes a warning to standard error.
func (o *output) warn(format string, args ...any) { o.notice("warning: "+format, args...) }

// jsonLine writes v as one line of JSON.
func (o *output) jsonLine(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding output: %w", err)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	_, err = o.w.Write(append(b, '\n'))
	return err
}

// sanitize makes a partner's text safe to print on a terminal: control
// characters (escape sequences) and bidirectional overrides become U+FFFD,
// so a message cannot rewrite the screen or disguise itself.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\t' {
			return r
		}
		if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) {
			return unicode.ReplacementChar
		}
		return r
	}, s)
}

// short is a room ID cut for people: "room_" and 8 characters.
func short(id keys.RoomID) string { return id.String()[:13] }

func describeContent(m *client.Message) string {
	switch m.ContentType {
	case envelope.ContentText:
		return sanitize(m.Text())
	case envelope.ContentBlob:
		return "(a file; blobs are not supported yet)"
	}
	return fmt.Sprintf("(content of type %d, not supported)", m.ContentType)
}

// event prints one received event; withRoom names the room (recv does, a
// chat in one room does not).
func (o *output) event(ev client.Event, withRoom bool) {
	if o.json {
		_ = o.jsonLine(eventJSON(ev)) // a failed write of standard output has no recovery
		return
	}
	where := "partner"
	if withRoom {
		where = short(ev.Room)
	}
	switch ev.Kind {
	case client.EventMessage:
		m := ev.Message
		ts := m.Stamped.Local().Format("15:04")
		if withRoom {
			ts = m.Stamped.Local().Format("2006-01-02 15:04")
		}
		o.println("[%s] %s: %s", ts, where, describeContent(m))
	case client.EventPaired:
		o.println("paired: %s (partner's node %s)", ev.Room, ev.Paired.Partner.Home)
	case client.EventRoomClosed:
		if ev.By == client.ClosedByPartner {
			o.println("%s: your partner left the room", short(ev.Room))
		} else {
			o.println("%s: you left the room", short(ev.Room))
		}
	case client.EventWarning:
		o.warn("a message or event was not shown (%s): %v", ev.Reason, ev.Err)
	}
}

func eventJSON(ev client.Event) map[string]any {
	out := map[string]any{"kind": ev.Kind, "pos": ev.Pos, "room": ev.Room}
	switch ev.Kind {
	case client.EventMessage:
		m := ev.Message
		out["id"] = m.ID[:]
		out["seq"] = m.Seq
		out["sent"] = m.Sent.UTC().Format(jsonTime)
		out["stamped"] = m.Stamped.UTC().Format(jsonTime)
		out["content_type"] = m.ContentType
		if m.ContentType == envelope.ContentText {
			out["text"] = m.Text()
		} else {
			out["content"] = m.Content
		}
	case client.EventPaired:
		out["partner_home"] = ev.Paired.Partner.Home
		out["created"] = ev.Paired.Created.UTC().Format(jsonTime)
	case client.EventRoomClosed:
		out["by"] = ev.By
	case client.EventWarning:
		out["reason"] = ev.Reason
		out["error"] = ev.Err.Error()
	}
	return out
}

func (o *output) paired(rm *client.Room) {
	if o.json {
		_ = o.jsonLine(map[string]any{"kind": client.EventPaired, "room": rm.ID, "partner_home": rm.Partner.Home, "created": rm.Created.UTC().Format(jsonTime)})
		return
	}
	o.println("paired: %s (partner's node %s)", rm.ID, rm.Partner.Home)
}

func (o *output) sent(s client.Sent) {
	if o.json {
		_ = o.jsonLine(map[string]any{"kind": "sent", "room": s.Room, "id": s.ID[:], "seq": s.Seq, "duplicate": s.Duplicate, "stamped": s.Stamped.UTC().Format(jsonTime)})
		return
	}
	o.println("sent to %s (#%d)", short(s.Room), s.Seq)
}

// preview shows what a report would disclose. It goes to standard error in
// --json mode, where standard output carries only the result.
func (o *output) preview(rep *client.Report) {
	o.mu.Lock()
	defer o.mu.Unlock()
	w := o.w
	if o.json {
		w = o.errw
	}
	fmt.Fprintf(w, "This report discloses %d message(s) your partner sent in %s, with the proof that they sent them:\n", len(rep.Messages), rep.Room)
	for i := range rep.Messages {
		m := &rep.Messages[i]
		fmt.Fprintf(w, "  [%s] %s\n", m.Stamped.Local().Format("2006-01-02 15:04"), describeContent(m))
	}
	fmt.Fprintf(w, "Reason: %s\n", rep.Reason)
	if rep.Text != "" {
		fmt.Fprintf(w, "Your words: %s\n", sanitize(rep.Text))
	}
}

func (o *output) reported(rep *client.Report, rc client.ReportReceipt) {
	if o.json {
		_ = o.jsonLine(map[string]any{"kind": "reported", "room": rep.Room, "report_id": rc.ID[:], "received": rc.Received.UTC().Format(jsonTime), "messages": len(rep.Messages)})
		return
	}
	o.println("report sent (%d message(s) disclosed)", len(rep.Messages))
}

func (o *output) room(st *client.RoomState) error {
	status := "open"
	switch {
	case st.ClosedBy == client.ClosedByPartner:
		status = "closed by partner"
	case !st.Closed.IsZero() || !st.Left.IsZero():
		status = "left"
	}
	if o.json {
		return o.jsonLine(map[string]any{
			"room": st.ID, "status": status, "created": st.Created.UTC().Format(jsonTime),
			"partner_home": st.Partner.Home, "messages": st.Messages, "pending": st.Pending,
		})
	}
	o.println("%s  %-17s  since %s  %d message(s) kept", st.ID, status, st.Created.Local().Format(time.DateTime), st.Messages)
	return nil
}
