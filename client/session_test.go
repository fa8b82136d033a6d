package client_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/parley-chat/parley/client"
	"github.com/parley-chat/parley/protocol/disclosure"
	"github.com/parley-chat/parley/protocol/envelope"
	"github.com/parley-chat/parley/protocol/keys"
)

// Two sessions on one node: pair, send both ways, receive, ack, report.
func TestConversation(t *testing.T) {
	node, srv := startNode(t)
	regA, regB := prometheus.NewRegistry(), prometheus.NewRegistry()
	alice := newUser(t, srv.URL, "alice", client.Config{}, client.WithRegisterer(regA))
	bob := newUser(t, srv.URL, "bob", client.Config{}, client.WithRegisterer(regB))
	ra, rb := pairUsers(t, alice, bob)
	if ra.Partner.Home != node.ID() || ra.Me.Home != node.ID() {
		t.Fatalf("room homes = %v, %v, want %v", ra.Me.Home, ra.Partner.Home, node.ID())
	}
	ctx := context.Background()

	for _, text := range []string{"hello bob", "how are you?"} {
		if _, err := alice.Send(ctx, ra.ID, text); err != nil {
			t.Fatalf("alice.Send(%q) = %v", text, err)
		}
	}
	evs := receiveAll(t, bob, 2)
	if got, want := messages(evs), []string{"hello bob", "how are you?"}; !slices.Equal(got, want) {
		t.Fatalf("bob received %q, want %q", got, want)
	}
	for _, ev := range evs {
		if ev.Kind == client.EventMessage && (ev.Room != rb.ID || ev.Message.Stamped.IsZero() || ev.Message.ContentType != envelope.ContentText) {
			t.Errorf("message event = %+v", ev)
		}
	}
	// spec 09 §6: acknowledged after processing, so the node forgets them.
	if got := node.Mailbox("bob"); len(got) != 0 {
		t.Errorf("bob's mailbox after Receive = %v, want empty", got)
	}

	if _, err := bob.Send(ctx, rb.ID, "fine, thanks"); err != nil {
		t.Fatal(err)
	}
	if got := messages(receiveAll(t, alice, 1)); !slices.Equal(got, []string{"fine, thanks"}) {
		t.Fatalf("alice received %q", got)
	}

	// Bob reports alice's last message: the preview shows it, the node
	// gets a disclosure that verifies against its own key.
	rep, err := bob.PrepareReport(rb.ID, 1, disclosure.ReasonSpam, "unsolicited")
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Messages) != 1 || rep.Messages[0].Text() != "how are you?" {
		t.Fatalf("PrepareReport(last 1) discloses %v", rep.Messages)
	}
	if err := disclosure.Verify(rep.Disclosure, node.ID(), time.Now()); err != nil {
		t.Fatalf("disclosure.Verify(prepared report) = %v", err)
	}
	if _, err := bob.SendReport(ctx, rep); err != nil {
		t.Fatalf("SendReport() = %v", err)
	}
	reports := node.Reports()
	if len(reports) != 1 || string(reports[0].Items[0].Plaintext) != "how are you?" || reports[0].Reporter != rb.Me.Sign {
		t.Fatalf("node got reports %v", reports)
	}
	if _, _, err := alice.Report(ctx, ra.ID, 0, disclosure.ReasonOther, ""); err != nil {
		t.Fatalf("alice.Report(all) = %v", err)
	}

	for _, c := range []struct {
		reg  *prometheus.Registry
		name string
		want float64
	}{
		{regA, "parley_client_messages_sent_total", 2},
		{regA, "parley_client_messages_received_total", 1},
		{regB, "parley_client_messages_sent_total", 1},
		{regB, "parley_client_messages_received_total", 2},
		{regB, "parley_client_send_retries_total", 0},
	} {
		if got := gather(t, c.reg, c.name, ""); got != c.want {
			t.Errorf("%s = %v, want %v", c.name, got, c.want)
		}
	}
	for _, reg := range []*prometheus.Registry{regA, regB} {
		if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
			t.Errorf("GatherAndLint() = %v, %v", problems, err)
		}
	}
}

// gather returns the value of a counter, of the series with label
// reason=label if label is not empty.
func gather(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label == "" || (len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == label) {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no metric %s{%s}", name, label)
	return 0
}

// spec 03-envelope §6: a message that fails any check is never shown, and
// the room still opens the next good one.
func TestTamperedEnvelopeNeverShown(t *testing.T) {
	other, err := keys.GenerateNodeKey(bytes.NewReader(bytes.Repeat([]byte{9}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		tamper func(*envelope.Envelope)
		reason string
	}{
		{"ciphertext", func(e *envelope.Envelope) { e.Ciphertext[3] ^= 1 }, client.ReasonUndecryptable},
		{"header time after stamping", func(e *envelope.Envelope) { e.Header.Time++ }, client.ReasonBadStamp},
		{"commitment", func(e *envelope.Envelope) { e.Header.Commitment[0] ^= 1 }, client.ReasonBadStamp},
		{"unstamped", func(e *envelope.Envelope) { e.Stamp = nil }, client.ReasonBadStamp},
		{"stamped by another node", func(e *envelope.Envelope) {
			_ = envelope.StampBatch(other, time.Now(), []*envelope.Envelope{e})
		}, client.ReasonBadStamp},
		{"addressed to the sender", func(e *envelope.Envelope) { e.Header.Recipient = e.Header.Sender }, client.ReasonNotForMe},
		{"replayed sequence number", func(e *envelope.Envelope) { e.Header.Seq = 0 }, client.ReasonBadStamp},
	} {
		t.Run(tc.name, func(t *testing.T) {
			node, srv := startNode(t)
			reg := prometheus.NewRegistry()
			alice := newUser(t, srv.URL, "alice", client.Config{})
			bob := newUser(t, srv.URL, "bob", client.Config{}, client.WithRegisterer(reg))
			ra, _ := pairUsers(t, alice, bob)
			ctx := context.Background()
			if _, err := alice.Send(ctx, ra.ID, "first"); err != nil {
				t.Fatal(err)
			}
			receiveAll(t, bob, 1)

			node.Tamper(tc.tamper)
			if _, err := alice.Send(ctx, ra.ID, "tampered"); err != nil {
				t.Fatal(err)
			}
			evs, err := bob.Receive(ctx, 2*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if got := messages(evs); len(got) != 0 {
				t.Fatalf("Receive(tampered) showed %q", got)
			}
			if got := warnings(evs); !slices.Equal(got, []string{tc.reason}) {
				t.Fatalf("Receive(tampered) warnings = %q, want [%s]", got, tc.reason)
			}
			if got := gather(t, reg, "parley_client_events_rejected_total", tc.reason); got != 1 {
				t.Errorf("rejected{%s} = %v, want 1", tc.reason, got)
			}

			node.Tamper(nil)
			if _, err := alice.Send(ctx, ra.ID, "after"); err != nil {
				t.Fatal(err)
			}
			if got := messages(receiveAll(t, bob, 1)); !slices.Equal(got, []string{"after"}) {
				t.Fatalf("Receive(next good message) = %q", got)
			}
			hist, err := bob.History(ra.ID)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range hist {
				if m.Text() == "tampered" {
					t.Fatal("the tampered message is in the history")
				}
			}
		})
	}
}

// A send whose answer is lost is retried with the same envelope and txid;
// the node delivers it once.
func TestSendRetrySameTxID(t *testing.T) {
	node, srv := startNode(t)
	ft := &faultyTransport{base: http.DefaultTransport}
	reg := prometheus.NewRegistry()
	var slept []time.Duration
	var sleptMu sync.Mutex
	alice := newUser(t, srv.URL, "alice", client.Config{}, client.WithHTTPClient(&http.Client{Transport: ft}), client.WithRegisterer(reg),
		client.WithSleep(func(_ context.Context, d time.Duration) error {
			sleptMu.Lock()
			defer sleptMu.Unlock()
			slept = append(slept, d)
			return nil
		}))
	bob := newUser(t, srv.URL, "bob", client.Config{})
	ra, _ := pairUsers(t, alice, bob)

	var bodies [][]byte
	failed := 0
	ft.setFail(func(r *http.Request) string {
		if !strings.HasSuffix(r.URL.Path, "/messages") {
			return ""
		}
		b, _ := r.GetBody()
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(b)
		bodies = append(bodies, buf.Bytes())
		if failed < 2 {
			failed++
			return []string{"after", "before"}[failed-1]
		}
		return ""
	})
	sent, err := alice.Send(context.Background(), ra.ID, "only once")
	if err != nil {
		t.Fatalf("Send() = %v", err)
	}
	if !sent.Duplicate {
		t.Errorf("Send() after a lost answer: Duplicate = false, want true")
	}
	if len(bodies) != 3 || !bytes.Equal(bodies[0], bodies[1]) || !bytes.Equal(bodies[1], bodies[2]) {
		t.Fatalf("the %d attempts did not post the same body", len(bodies))
	}
	if node.Accepted() != 1 {
		t.Fatalf("node accepted %d messages, want 1", node.Accepted())
	}
	if got := messages(receiveAll(t, bob, 1)); !slices.Equal(got, []string{"only once"}) {
		t.Fatalf("bob received %q", got)
	}
	if evs, err := bob.Receive(context.Background(), 0); err != nil || len(evs) != 0 {
		t.Fatalf("bob.Receive() again = %v, %v; want nothing", evs, err)
	}
	if want := []time.Duration{500 * time.Millisecond, time.Second}; !slices.Equal(slept, want) {
		t.Errorf("backoff waits = %v, want %v", slept, want)
	}
	if got := gather(t, reg, "parley_client_send_retries_total", ""); got != 2 {
		t.Errorf("send retries = %v, want 2", got)
	}
	if st, _ := alice.RoomState(ra.ID); st.Pending != 0 {
		t.Errorf("outbox after delivery = %d, want 0", st.Pending)
	}
}

// A 429 is retried after the node's Retry-After.
func TestSendRateLimited(t *testing.T) {
	node, srv := startNode(t)
	var slept []time.Duration
	alice := newUser(t, srv.URL, "alice", client.Config{}, client.WithSleep(func(_ context.Context, d time.Duration) error {
		slept = append(slept, d)
		return nil
	}))
	bob := newUser(t, srv.URL, "bob", client.Config{})
	ra, _ := pairUsers(t, alice, bob)
	node.RateLimitNext(1, 7*time.Second)
	if _, err := alice.Send(context.Background(), ra.ID, "patience"); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(slept, []time.Duration{7 * time.Second}) {
		t.Fatalf("waits = %v, want [7s]", slept)
	}
	if got := messages(receiveAll(t, bob, 1)); !slices.Equal(got, []string{"patience"}) {
		t.Fatalf("bob received %q", got)
	}
}

// When every attempt fails the message stays in the outbox; Flush sends it
// later under the same txid.
func TestFlushOutbox(t *testing.T) {
	node, srv := startNode(t)
	ft := &faultyTransport{base: http.DefaultTransport}
	noSleep := client.WithSleep(func(context.Context, time.Duration) error { return nil })
	alice := newUser(t, srv.URL, "alice", client.Config{SendAttempts: 2}, client.WithHTTPClient(&http.Client{Transport: ft}), noSleep)
	bob := newUser(t, srv.URL, "bob", client.Config{})
	ra, _ := pairUsers(t, alice, bob)

	ft.setFail(func(r *http.Request) string {
		if strings.HasSuffix(r.URL.Path, "/messages") {
			return "after"
		}
		return ""
	})
	if _, err := alice.Send(context.Background(), ra.ID, "eventually"); !errors.Is(err, client.ErrNotDelivered) {
		t.Fatalf("Send(network down) = %v, want ErrNotDelivered", err)
	}
	if st, _ := alice.RoomState(ra.ID); st.Pending != 1 {
		t.Fatalf("outbox = %d, want 1", st.Pending)
	}

	// The outbox survives a restart.
	_ = alice.Close()
	ft.setFail(nil)
	alice.open(t, client.Config{}, client.WithHTTPClient(&http.Client{Transport: ft}), noSleep)
	sent, err := alice.Flush(context.Background())
	if err != nil || len(sent) != 1 || !sent[0].Duplicate {
		t.Fatalf("Flush() = %+v, %v; want one duplicate", sent, err)
	}
	if node.Accepted() != 1 {
		t.Fatalf("node accepted %d, want 1", node.Accepted())
	}
	if got := messages(receiveAll(t, bob, 1)); !slices.Equal(got, []string{"eventually"}) {
		t.Fatalf("bob received %q", got)
	}
	if sent, err := alice.Flush(context.Background()); err != nil || len(sent) != 0 {
		t.Fatalf("Flush() again = %v, %v", sent, err)
	}
}

// spec 06-room-keys §1: a node that names another room than the tickets
// derive is refused.
func TestRoomMismatchRefused(t *testing.T) {
	node, srv := startNode(t)
	node.ForgeRoomIDs(true)
	alice := newUser(t, srv.URL, "alice", client.Config{})
	bob := newUser(t, srv.URL, "bob", client.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var errA error
	wg.Go(func() { _, errA = alice.Pair(ctx, nil) })
	_, errB := bob.Pair(ctx, nil)
	wg.Wait()
	for _, err := range []error{errA, errB} {
		if !errors.Is(err, client.ErrRoomMismatch) {
			t.Fatalf("Pair(forged room ID) = %v, want ErrRoomMismatch", err)
		}
	}
	if rooms := alice.Rooms(); len(rooms) != 0 {
		t.Fatalf("alice kept rooms %v", rooms)
	}
}

// Leaving closes the room for both; the next tickets carry the old room's
// avoid tags, so the two are not paired again, but each pairs with a
// newcomer.
func TestLeaveAndNext(t *testing.T) {
	node, srv := startNode(t)
	alice := newUser(t, srv.URL, "alice", client.Config{})
	bob := newUser(t, srv.URL, "bob", client.Config{})
	ra, _ := pairUsers(t, alice, bob)
	ctx := context.Background()
	if _, err := alice.Send(ctx, ra.ID, "bye"); err != nil {
		t.Fatal(err)
	}
	if err := alice.Leave(ctx, ra.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(ctx, ra.ID, "too late"); !errors.Is(err, client.ErrRoomClosed) {
		t.Fatalf("Send(left room) = %v, want ErrRoomClosed", err)
	}
	// Bob still opens what alice sent before she left, then sees the room close.
	evs := receiveAll(t, bob, 1)
	if len(evs) != 2 || evs[0].Message.Text() != "bye" || evs[1].Kind != client.EventRoomClosed || evs[1].By != client.ClosedByPartner {
		t.Fatalf("bob's events = %+v", evs)
	}
	if evs, err := alice.Receive(ctx, 2*time.Second); err != nil || len(evs) != 1 || evs[0].By != client.ClosedByMe {
		t.Fatalf("alice's events = %+v, %v", evs, err)
	}
	if st, _ := bob.RoomState(ra.ID); st.Open() || st.Messages != 1 {
		t.Fatalf("bob's room after close = %+v", st)
	}
	// Reporting stays possible after the room closed.
	if _, err := bob.PrepareReport(ra.ID, 5, disclosure.ReasonHarassment, ""); err != nil {
		t.Fatalf("PrepareReport(closed room) = %v", err)
	}

	if _, err := alice.StartPair(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.StartPair(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if !node.Waiting("alice") || !node.Waiting("bob") {
		t.Fatal("alice and bob were paired again despite their avoid tags")
	}
	carol := newUser(t, srv.URL, "carol", client.Config{})
	rc, err := carol.Pair(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	evs, err = alice.Receive(ctx, 2*time.Second)
	if err != nil || len(evs) != 1 || evs[0].Kind != client.EventPaired || evs[0].Paired.ID != rc.ID {
		t.Fatalf("alice's events = %+v, %v; want the pairing with carol", evs, err)
	}
}

// spec 09 §5, 12 §4: when this side leaves a room whose partner is on
// another node, what the partner's node stamped before it learnt of the
// close still arrives, after the room_closed event: the session still
// opens it (for lateMessageGrace), where it used to drop it as a message
// for a room it had no keys for.
func TestLateMessageAfterLeaving(t *testing.T) {
	node, srv := startNode(t)
	alice := newUser(t, srv.URL, "alice", client.Config{})
	bob := newUser(t, srv.URL, "bob", client.Config{})
	node.Remote("bob")
	ra, _ := pairUsers(t, alice, bob)
	if ra.Partner.Home == ra.Me.Home {
		t.Fatalf("bob's home %v is alice's: the fake node did not make him remote", ra.Partner.Home)
	}
	ctx := context.Background()
	node.Hold("alice", true) // bob's node is slow to deliver
	if _, err := bob.Send(ctx, ra.ID, "sent before you left"); err != nil {
		t.Fatal(err)
	}
	if err := alice.Leave(ctx, ra.ID); err != nil {
		t.Fatal(err)
	}
	if evs, err := alice.Receive(ctx, 2*time.Second); err != nil || len(evs) != 1 || evs[0].Kind != client.EventRoomClosed || evs[0].By != client.ClosedByMe {
		t.Fatalf("alice's events = %+v, %v; want room_closed by me", evs, err)
	}
	node.Hold("alice", false)
	evs, err := alice.Receive(ctx, 2*time.Second)
	if err != nil || len(evs) != 1 || evs[0].Kind != client.EventMessage || evs[0].Message.Text() != "sent before you left" {
		t.Fatalf("alice's events after the close = %+v, %v; want bob's late message", evs, err)
	}
	if _, err := alice.Send(ctx, ra.ID, "too late"); !errors.Is(err, client.ErrRoomClosed) {
		t.Errorf("Send(left room) = %v, want ErrRoomClosed", err)
	}
}

// The keystore carries everything across restarts: room state, history,
// sync position.
func TestRestart(t *testing.T) {
	_, srv := startNode(t)
	alice := newUser(t, srv.URL, "alice", client.Config{})
	bob := newUser(t, srv.URL, "bob", client.Config{})
	ra, rb := pairUsers(t, alice, bob)
	ctx := context.Background()
	if _, err := alice.Send(ctx, ra.ID, "one"); err != nil {
		t.Fatal(err)
	}
	receiveAll(t, bob, 1)
	_ = alice.Close()
	_ = bob.Close()
	alice.open(t, client.Config{})
	bob.open(t, client.Config{})
	if _, err := alice.Send(ctx, ra.ID, "two"); err != nil {
		t.Fatal(err)
	}
	if got := messages(receiveAll(t, bob, 1)); !slices.Equal(got, []string{"two"}) {
		t.Fatalf("bob after restart received %q, want [two]", got)
	}
	hist, err := bob.History(rb.ID)
	if err != nil || len(hist) != 2 || hist[0].Text() != "one" || hist[1].Text() != "two" {
		t.Fatalf("History() = %v, %v", hist, err)
	}
}

// spec 09 §6: events are acknowledged after they are saved; a failed ack
// is repeated by the next Receive, and nothing is shown twice.
func TestAckRetried(t *testing.T) {
	node, srv := startNode(t)
	ft := &faultyTransport{base: http.DefaultTransport}
	alice := newUser(t, srv.URL, "alice", client.Config{})
	bob := newUser(t, srv.URL, "bob", client.Config{}, client.WithHTTPClient(&http.Client{Transport: ft}))
	ra, _ := pairUsers(t, alice, bob)
	if _, err := alice.Send(context.Background(), ra.ID, "ack me"); err != nil {
		t.Fatal(err)
	}
	ft.setFail(func(r *http.Request) string {
		if r.URL.Path == "/v1/ack" {
			return "before"
		}
		return ""
	})
	if got := messages(receiveAll(t, bob, 1)); !slices.Equal(got, []string{"ack me"}) {
		t.Fatalf("received %q", got)
	}
	if len(node.Mailbox("bob")) == 0 {
		t.Fatal("the node forgot events whose ack failed")
	}
	ft.setFail(nil)
	evs, err := bob.Receive(context.Background(), 0)
	if err != nil || len(evs) != 0 {
		t.Fatalf("Receive() = %v, %v; want nothing new", evs, err)
	}
	if got := node.Mailbox("bob"); len(got) != 0 {
		t.Fatalf("mailbox after the repeated ack = %v", got)
	}
}

func TestHistoryBounded(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  client.Config
		want []string
	}{
		{"count", client.Config{HistoryPerRoom: 3}, []string{"m2", "m3", "m4"}},
		{"bytes", client.Config{HistoryBytesPerRoom: 5}, []string{"m3", "m4"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, srv := startNode(t)
			alice := newUser(t, srv.URL, "alice", client.Config{})
			bob := newUser(t, srv.URL, "bob", tc.cfg)
			ra, rb := pairUsers(t, alice, bob)
			for i := range 5 {
				if _, err := alice.Send(context.Background(), ra.ID, "m"+string(rune('0'+i))); err != nil {
					t.Fatal(err)
				}
			}
			receiveAll(t, bob, 5)
			hist, err := bob.History(rb.ID)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range hist {
				got = append(got, m.Text())
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("History() = %q, want %q", got, tc.want)
			}
			rep, err := bob.PrepareReport(rb.ID, 10, disclosure.ReasonSpam, "")
			if err != nil || len(rep.Messages) != len(tc.want) {
				t.Fatalf("PrepareReport(10) = %v, %v", rep, err)
			}
		})
	}
}

func TestReportErrors(t *testing.T) {
	_, srv := startNode(t)
	alice := newUser(t, srv.URL, "alice", client.Config{})
	bob := newUser(t, srv.URL, "bob", client.Config{})
	ra, _ := pairUsers(t, alice, bob)
	if _, err := alice.PrepareReport(ra.ID, 1, disclosure.ReasonSpam, ""); !errors.Is(err, client.ErrNothingToReport) {
		t.Errorf("PrepareReport(no messages) = %v, want ErrNothingToReport", err)
	}
	if _, err := alice.PrepareReport(keys.RoomID{1}, 1, disclosure.ReasonSpam, ""); !errors.Is(err, client.ErrUnknownRoom) {
		t.Errorf("PrepareReport(unknown room) = %v, want ErrUnknownRoom", err)
	}
	if _, err := alice.Send(context.Background(), keys.RoomID{1}, "x"); !errors.Is(err, client.ErrUnknownRoom) {
		t.Errorf("Send(unknown room) = %v, want ErrUnknownRoom", err)
	}
}

// A revoked or expired token is renewed by logging in again.
func TestAutoLogin(t *testing.T) {
	_, srv := startNode(t)
	alice := newUser(t, srv.URL, "alice", client.Config{})
	ctx := context.Background()
	if _, err := alice.Account(ctx); err != nil {
		t.Fatal(err)
	}
	if err := alice.Client().Logout(ctx); err != nil {
		t.Fatal(err)
	}
	a, err := alice.Account(ctx)
	if err != nil || a.Username != "alice" || a.ID != alice.AccountID() {
		t.Fatalf("Account() after the token was revoked = %+v, %v", a, err)
	}
}

// An interrupted Pair leaves a ticket waiting; the next one replaces it.
func TestPairReplacesWaitingTicket(t *testing.T) {
	node, srv := startNode(t)
	alice := newUser(t, srv.URL, "alice", client.Config{})
	ctx := context.Background()
	w1, err := alice.StartPair(ctx, []string{"Go", " go "})
	if err != nil {
		t.Fatal(err)
	}
	w2, err := alice.StartPair(ctx, []string{"chess"})
	if err != nil {
		t.Fatalf("StartPair() with a ticket waiting = %v", err)
	}
	if w1.Ticket == w2.Ticket || !node.Waiting("alice") {
		t.Fatal("the second StartPair did not replace the first ticket")
	}
	bob := newUser(t, srv.URL, "bob", client.Config{})
	rb, err := bob.Pair(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rb.Partner.Sign != w2.Ticket {
		t.Fatalf("bob paired with %v, want the second ticket %v", rb.Partner.Sign, w2.Ticket)
	}
	ra, err := alice.WaitPaired(ctx, w2.Ticket)
	if err != nil || ra.ID != rb.ID {
		t.Fatalf("WaitPaired() = %v, %v", ra, err)
	}
	if err := alice.Withdraw(ctx); err != nil {
		t.Fatal(err)
	}
}

// A withdrawal that reaches the node after it paired the ticket succeeds
// (nothing is waiting any more), and the session still holds the ticket's
// keys: the pairing arrives and works.
func TestWithdrawAfterPaired(t *testing.T) {
	_, srv := startNode(t)
	alice := newUser(t, srv.URL, "alice", client.Config{})
	bob := newUser(t, srv.URL, "bob", client.Config{})
	ctx := context.Background()
	if _, err := alice.StartPair(ctx, nil); err != nil {
		t.Fatal(err)
	}
	rb, err := bob.Pair(ctx, nil) // pairs with alice's ticket at once
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.Withdraw(ctx); err != nil {
		t.Fatalf("Withdraw after the pairing = %v", err)
	}
	evs, err := alice.Receive(ctx, 2*time.Second)
	if err != nil || len(evs) != 1 || evs[0].Kind != client.EventPaired || evs[0].Paired.ID != rb.ID {
		t.Fatalf("alice's events after withdrawing = %+v, %v; want the pairing with bob", evs, err)
	}
	if _, err := alice.Send(ctx, rb.ID, "still here"); err != nil {
		t.Fatal(err)
	}
	if evs := receiveAll(t, bob, 1); len(evs) != 1 || evs[0].Message.Text() != "still here" {
		t.Fatalf("bob's events = %+v", evs)
	}
}

func TestInterestTags(t *testing.T) {
	for _, tc := range []struct {
		in      []string
		want    int
		wantErr error
	}{
		{nil, 0, nil},
		{[]string{"Go", "go ", " ", ""}, 1, nil},
		{[]string{"a", "b", "c", "d", "e", "f", "g", "h"}, 8, nil},
		{[]string{"a", "b", "c", "d", "e", "f", "g", "h", "i"}, 0, client.ErrTooManyInterests},
	} {
		got, err := client.InterestTags(tc.in)
		if len(got) != tc.want || !errors.Is(err, tc.wantErr) {
			t.Errorf("InterestTags(%q) = %d tags, %v; want %d, %v", tc.in, len(got), err, tc.want, tc.wantErr)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (client.Config{}).Validate(); err != nil {
		t.Errorf("Config{}.Validate() = %v", err)
	}
	err := client.Config{HistoryPerRoom: -1, SendAttempts: 100, RetryBackoff: time.Hour, PairWait: -time.Second}.Validate()
	if !errors.Is(err, client.ErrInvalidConfig) {
		t.Fatalf("Validate(bad) = %v, want ErrInvalidConfig", err)
	}
	for _, field := range []string{"HistoryPerRoom", "SendAttempts", "RetryBackoff", "PairWait"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("Validate(bad) = %q, does not name %s", err, field)
		}
	}
}

// spec 06-room-keys §4: a node that delivers a message twice (as a new
// event) does not get it shown twice: the ratchet refuses the replay.
func TestReplayRefused(t *testing.T) {
	node, srv := startNode(t)
	alice := newUser(t, srv.URL, "alice", client.Config{})
	bob := newUser(t, srv.URL, "bob", client.Config{})
	ra, _ := pairUsers(t, alice, bob)
	var first *envelope.Envelope
	node.Tamper(func(e *envelope.Envelope) {
		if first == nil {
			c := *e
			c.Ciphertext = bytes.Clone(e.Ciphertext)
			first = &c
			return
		}
		*e = *first
	})
	ctx := context.Background()
	for _, text := range []string{"once", "replaced by a replay"} {
		if _, err := alice.Send(ctx, ra.ID, text); err != nil {
			t.Fatal(err)
		}
	}
	evs, err := bob.Receive(ctx, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got := messages(evs); !slices.Equal(got, []string{"once"}) {
		t.Fatalf("messages = %q, want [once]", got)
	}
	if got := warnings(evs); !slices.Equal(got, []string{client.ReasonReplay}) {
		t.Fatalf("warnings = %q, want [%s]", got, client.ReasonReplay)
	}
}
