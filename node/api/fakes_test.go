package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/node/internal/fakeclock"
	"github.com/parley-chat/parley/protocol/disclosure"
	"github.com/parley-chat/parley/protocol/envelope"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/stamp"
	"github.com/parley-chat/parley/spec/vectortest"
)

// t0 is the fake clock's start: 2026-01-02T03:04:05.678Z.
var t0 = time.Date(2026, 1, 2, 3, 4, 5, 678e6, time.UTC)

const t0Text = "2026-01-02T03:04:05.678Z"

type fakeClock = fakeclock.Clock

// call is one call into the fake subsystems, with the account it was made
// for (zero for account-less calls).
type call struct {
	Method string
	Acct   keys.AccountID
}

func (c call) String() string {
	if c.Acct == (keys.AccountID{}) {
		return c.Method
	}
	return c.Method + "(" + c.Acct.String()[:12] + ")"
}

// user is a registered test account.
type user struct {
	name  string
	key   keys.AccountKey
	id    keys.AccountID
	token string
}

func newUser(t testing.TB, name string) *user {
	t.Helper()
	k, err := keys.GenerateAccountKey(vectortest.Rand("api test account " + name))
	if err != nil {
		t.Fatal(err)
	}
	return &user{name: name, key: k, id: k.Public(), token: "pt_token_of_" + name}
}

// fakeRoom is a room between two accounts; index 0 and 1 are its sides.
type fakeRoom struct {
	id      keys.RoomID
	members [2]keys.AccountID
	tickets [2]keys.TicketKeys
	closed  bool
}

// fakeNode implements every subsystem interface the way the real ones
// behave where the API depends on it: rooms belong to their two members,
// mailboxes to their account, sends are idempotent per txid.
type fakeNode struct {
	t    testing.TB
	node keys.NodeKey

	mu         sync.Mutex
	calls      []call
	accounts   map[string]Account // by token
	rooms      map[keys.RoomID]*fakeRoom
	mailbox    map[keys.AccountID][]Event
	nextPos    map[keys.AccountID]uint64
	notify     chan struct{} // closed and replaced whenever an event is added
	txids      map[string]SendResult
	waiting    map[keys.AccountID]bool
	failWith   error // returned by every call once set
	lastTicket TicketRequest

	// sendGate, if set before the server starts, holds every Send until it
	// can receive; sending counts the Sends in progress.
	sendGate chan struct{}
	sending  atomic.Int32
}

var (
	_ Accounts = (*fakeNode)(nil)
	_ Rooms    = (*fakeNode)(nil)
	_ Mailbox  = (*fakeNode)(nil)
	_ Sender   = (*fakeNode)(nil)
	_ Pairing  = (*fakeNode)(nil)
	_ Reports  = (*fakeNode)(nil)
)

func newFakeNode(t testing.TB) *fakeNode {
	nk, err := keys.GenerateNodeKey(vectortest.Rand("api test node"))
	if err != nil {
		t.Fatal(err)
	}
	return &fakeNode{
		t: t, node: nk,
		accounts: map[string]Account{},
		rooms:    map[keys.RoomID]*fakeRoom{},
		mailbox:  map[keys.AccountID][]Event{},
		nextPos:  map[keys.AccountID]uint64{},
		notify:   make(chan struct{}),
		txids:    map[string]SendResult{},
		waiting:  map[keys.AccountID]bool{},
	}
}

func (f *fakeNode) record(method string, acct keys.AccountID) error {
	f.calls = append(f.calls, call{method, acct})
	return f.failWith
}

// Calls returns the calls made so far, leaving out Authenticate (which
// every authenticated request makes).
func (f *fakeNode) Calls() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []call
	for _, c := range f.calls {
		if c.Method != "Authenticate" {
			out = append(out, c)
		}
	}
	return out
}

func (f *fakeNode) ResetCalls() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = nil
}

func (f *fakeNode) Fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failWith = err
}

// addUser registers u with a session.
func (f *fakeNode) addUser(u *user, suspended bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.accounts[u.token] = Account{ID: u.id, Username: u.name, Created: t0, Suspended: suspended}
}

// addRoom pairs a and b in a new room named by label.
func (f *fakeNode) addRoom(a, b *user, label string) *fakeRoom {
	r := &fakeRoom{members: [2]keys.AccountID{a.id, b.id}}
	_, _ = vectortest.Rand("api test room " + label).Read(r.id[:])
	for i := range r.tickets {
		k, err := keys.GenerateTicketKeys(vectortest.Rand(fmt.Sprintf("api test ticket %s %d", label, i)))
		if err != nil {
			f.t.Fatal(err)
		}
		r.tickets[i] = k
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rooms[r.id] = r
	return r
}

// view is room r as member side sees it.
func (f *fakeNode) view(r *fakeRoom, side int) Room {
	home := f.node.Public()
	me, partner := r.tickets[side].Public(), r.tickets[1-side].Public()
	out := Room{
		ID:      r.id,
		Me:      RoomSide{Sign: me.Sign, DH: me.DH, Home: home},
		Partner: RoomSide{Sign: partner.Sign, DH: partner.DH, Home: home},
		Created: t0,
	}
	if r.closed {
		out.Closed = t0.Add(time.Minute)
	}
	return out
}

// addEvent appends an event to acct's mailbox and wakes waiters.
func (f *fakeNode) addEvent(acct keys.AccountID, ev Event) uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.addEventLocked(acct, ev)
}

func (f *fakeNode) addEventLocked(acct keys.AccountID, ev Event) uint64 {
	f.nextPos[acct] += 10 // positions have gaps
	ev.Pos = f.nextPos[acct]
	f.mailbox[acct] = append(f.mailbox[acct], ev)
	close(f.notify)
	f.notify = make(chan struct{})
	return ev.Pos
}

func (f *fakeNode) mailboxOf(acct keys.AccountID) []Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Event(nil), f.mailbox[acct]...)
}

func sideOf(r *fakeRoom, acct keys.AccountID) int {
	for i, m := range r.members {
		if m == acct {
			return i
		}
	}
	return -1
}

// ---- Accounts ----

func (f *fakeNode) Register(_ context.Context, username string, id keys.AccountID, invite string) (Account, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("Register", id); err != nil {
		return Account{}, err
	}
	for _, a := range f.accounts {
		if a.Username == username {
			return Account{}, fmt.Errorf("%w: fake", ErrUsernameTaken)
		}
		if a.ID == id {
			return Account{}, fmt.Errorf("%w: fake", ErrKeyTaken)
		}
	}
	if invite == "bad" {
		return Account{}, fmt.Errorf("%w: fake", ErrBadInvite)
	}
	a := Account{ID: id, Username: username, Created: t0}
	f.accounts["pt_new_"+username] = a
	return a, nil
}

func (f *fakeNode) Challenge(_ context.Context, username string) (Challenge, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("Challenge", keys.AccountID{}); err != nil {
		return Challenge{}, err
	}
	var c Challenge
	copy(c.Nonce[:], bytes.Repeat([]byte{7}, 32))
	c.Audience = f.node.Public()
	c.Expires = t0.Add(2 * time.Minute)
	return c, nil
}

func (f *fakeNode) Login(_ context.Context, username string, nonce [32]byte, sig keys.Signature) (Session, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("Login", keys.AccountID{}); err != nil {
		return Session{}, err
	}
	for tok, a := range f.accounts {
		if a.Username == username && a.ID.Verify("fake-login", sig, nonce[:]) {
			return Session{Token: tok, Expires: t0.Add(24 * time.Hour), Account: a}, nil
		}
	}
	return Session{}, fmt.Errorf("%w: fake", ErrUnauthenticated)
}

func (f *fakeNode) Authenticate(_ context.Context, token string) (Account, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, ok := f.accounts[token]
	if err := f.record("Authenticate", a.ID); err != nil {
		return Account{}, err
	}
	if !ok {
		return Account{}, fmt.Errorf("%w: fake: unknown token", ErrUnauthenticated)
	}
	return a, nil
}

func (f *fakeNode) Revoke(_ context.Context, token string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("Revoke", f.accounts[token].ID); err != nil {
		return err
	}
	delete(f.accounts, token)
	return nil
}

// ---- Rooms ----

func (f *fakeNode) ForAccount(_ context.Context, acct keys.AccountID) ([]Room, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("ForAccount", acct); err != nil {
		return nil, err
	}
	var out []Room
	for _, r := range f.rooms {
		if side := sideOf(r, acct); side >= 0 {
			out = append(out, f.view(r, side))
		}
	}
	return out, nil
}

func (f *fakeNode) Leave(_ context.Context, acct keys.AccountID, room keys.RoomID) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("Leave", acct); err != nil {
		return err
	}
	r := f.rooms[room]
	if r == nil || sideOf(r, acct) < 0 {
		return fmt.Errorf("%w: fake", ErrNotFound)
	}
	if !r.closed {
		r.closed = true
		for i, m := range r.members {
			by := ClosedByPartner
			if m == acct {
				by = ClosedByMe
			}
			f.addEventLocked(r.members[i], Event{Kind: EventRoomClosed, Room: r.id, Time: t0, By: by})
		}
	}
	return nil
}

// ---- Mailbox ----

func (f *fakeNode) Read(_ context.Context, acct keys.AccountID, after uint64, limit int) ([]Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("Read", acct); err != nil {
		return nil, err
	}
	var out []Event
	for _, ev := range f.mailbox[acct] {
		if ev.Pos > after && len(out) < limit {
			out = append(out, ev)
		}
	}
	return out, nil
}

func (f *fakeNode) Wait(ctx context.Context, acct keys.AccountID, after uint64) error {
	for {
		f.mu.Lock()
		if err := f.record("Wait", acct); err != nil {
			f.mu.Unlock()
			return err
		}
		evs := f.mailbox[acct]
		if len(evs) > 0 && evs[len(evs)-1].Pos > after {
			f.mu.Unlock()
			return nil
		}
		ch := f.notify
		f.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (f *fakeNode) Ack(_ context.Context, acct keys.AccountID, upto uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record(fmt.Sprintf("Ack %d", upto), acct); err != nil {
		return err
	}
	evs := f.mailbox[acct][:0]
	for _, ev := range f.mailbox[acct] {
		if ev.Pos > upto {
			evs = append(evs, ev)
		}
	}
	f.mailbox[acct] = evs
	return nil
}

// ---- Sender ----

func (f *fakeNode) Send(_ context.Context, from keys.AccountID, room keys.RoomID, txid string, env *envelope.Envelope) (SendResult, error) {
	f.sending.Add(1)
	defer f.sending.Add(-1)
	if f.sendGate != nil {
		<-f.sendGate
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("Send", from); err != nil {
		return SendResult{}, err
	}
	r := f.rooms[room]
	side := -1
	if r != nil {
		side = sideOf(r, from)
	}
	if side < 0 {
		return SendResult{}, fmt.Errorf("%w: fake", ErrNotFound)
	}
	if r.closed {
		return SendResult{}, fmt.Errorf("%w: fake", ErrRoomClosed)
	}
	if env.Header.Sender != r.tickets[side].Public().Sign || env.Header.Recipient != r.tickets[1-side].Public().Sign {
		return SendResult{}, fmt.Errorf("%w: fake: wrong tickets", ErrBadEnvelope)
	}
	key := from.String() + "/" + txid
	if res, ok := f.txids[key]; ok {
		res.Duplicate = true
		return res, nil
	}
	stamped := *env
	if err := envelope.StampBatch(f.node, t0, []*envelope.Envelope{&stamped}); err != nil {
		return SendResult{}, err
	}
	enc, _ := stamped.MarshalBinary()
	f.addEventLocked(r.members[1-side], Event{Kind: EventMessage, Room: room, Time: t0, Envelope: enc})
	res := SendResult{ID: env.ID(), Stamp: *stamped.Stamp}
	f.txids[key] = res
	return res, nil
}

// ---- Pairing ----

func (f *fakeNode) RequestTicket(_ context.Context, acct keys.AccountID, req TicketRequest) (TicketInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("RequestTicket", acct); err != nil {
		return TicketInfo{}, err
	}
	if f.waiting[acct] {
		return TicketInfo{}, fmt.Errorf("%w: fake", ErrAlreadyWaiting)
	}
	f.waiting[acct] = true
	f.lastTicket = req
	return TicketInfo{ID: req.Ticket.Sign, Epoch: 42, EpochEnds: t0.Add(30 * time.Second)}, nil
}

func (f *fakeNode) Withdraw(_ context.Context, acct keys.AccountID) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("Withdraw", acct); err != nil {
		return err
	}
	delete(f.waiting, acct)
	return nil
}

// ---- Reports ----

func (f *fakeNode) Submit(_ context.Context, acct keys.AccountID, d *disclosure.Disclosure) (Receipt, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("Submit", acct); err != nil {
		return Receipt{}, err
	}
	if d.Text == "reject" {
		return Receipt{}, fmt.Errorf("%w: %w", ErrBadDisclosure, &disclosure.VerifyError{Check: disclosure.CheckStamp, Item: 0, Err: disclosure.ErrBadStamp})
	}
	var id [32]byte
	copy(id[:], bytes.Repeat([]byte{9}, 32))
	return Receipt{ID: id, Received: t0}, nil
}

// fakeLimiter allows the first n requests per key, then refuses with
// retryAfter.
type fakeLimiter struct {
	mu         sync.Mutex
	n          int
	retryAfter time.Duration
	seen       map[string]int
}

func (l *fakeLimiter) Allow(key string) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen == nil {
		l.seen = map[string]int{}
	}
	l.seen[key]++
	if l.seen[key] > l.n {
		return false, l.retryAfter
	}
	return true, 0
}

// ---- the test harness ----

type harness struct {
	t     *testing.T
	fake  *fakeNode
	srv   *Server
	ts    *httptest.Server
	clock *fakeClock
	reg   *prometheus.Registry
	logs  *syncBuffer
	alice *user // paired with bob in room
	bob   *user
	carol *user // in no room with alice
	room  *fakeRoom
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

// newHarness starts an API server over fakes. edit, if not nil, changes
// the config and deps before New.
func newHarness(t *testing.T, edit func(*Config, *Deps)) *harness {
	t.Helper()
	h := &harness{t: t, fake: newFakeNode(t), clock: fakeclock.New(t0), reg: prometheus.NewRegistry(), logs: &syncBuffer{}}
	h.alice, h.bob, h.carol = newUser(t, "alice"), newUser(t, "bob"), newUser(t, "carol")
	for _, u := range []*user{h.alice, h.bob, h.carol} {
		h.fake.addUser(u, false)
	}
	h.room = h.fake.addRoom(h.alice, h.bob, "alice-bob")
	cfg := Config{NodeID: h.fake.node.Public().String(), Network: "parley-test", Version: "v0.0.0-test"}
	deps := Deps{Accounts: h.fake, Rooms: h.fake, Mailbox: h.fake, Sender: h.fake, Pairing: h.fake, Reports: h.fake}
	if edit != nil {
		edit(&cfg, &deps)
	}
	logger := slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := New(cfg, deps, WithClock(h.clock.Now), WithRegisterer(h.reg), WithLogger(logger))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h.srv = srv
	h.ts = httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		h.ts.Close()
	})
	return h
}

// request is one HTTP request of a test.
type request struct {
	method, path string
	token        string // sent as a bearer token if not empty
	body         string
	contentType  string // default application/json when body is not empty
	noCT         bool   // send no Content-Type
	header       http.Header
}

// do sends q and returns the status, headers and body.
func (h *harness) do(q request) (int, http.Header, []byte) {
	h.t.Helper()
	req, err := http.NewRequest(q.method, h.ts.URL+q.path, strings.NewReader(q.body))
	if err != nil {
		h.t.Fatal(err)
	}
	if q.token != "" {
		req.Header.Set("Authorization", "Bearer "+q.token)
	}
	ct := q.contentType
	if ct == "" && q.body != "" {
		ct = "application/json"
	}
	if ct != "" && !q.noCT {
		req.Header.Set("Content-Type", ct)
	}
	for k, v := range q.header {
		req.Header[k] = v
	}
	resp, err := h.ts.Client().Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", q.method, q.path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// errorCode returns the code of an error body, or "" if b is not one.
func errorCode(b []byte) string {
	var e errorBody
	if json.Unmarshal(b, &e) != nil {
		return ""
	}
	return e.Error.Code
}

// jsonEqual reports whether a and b hold the same JSON value.
func jsonEqual(a, b []byte) bool {
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}

// mustJSON renders v (a map or slice literal) as JSON.
func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// ---- protocol objects ----

// sealed returns an unstamped envelope from side of r to the other side,
// sent at tm, and its base64 encoding.
func sealed(t testing.TB, r *fakeRoom, side int, seq uint64, tm time.Time) (*envelope.Envelope, string) {
	t.Helper()
	mk := new(keys.MessageKey)
	_, _ = vectortest.Rand(fmt.Sprintf("api test mk %d", seq)).Read(mk.Key[:])
	h := envelope.Header{
		ContentType: envelope.ContentText,
		Room:        r.id,
		Sender:      r.tickets[side].Public().Sign,
		Recipient:   r.tickets[1-side].Public().Sign,
		Seq:         seq,
		Time:        tm.UnixMilli(),
	}
	e, err := envelope.Seal(mk, h, []byte("hello"), vectortest.Rand(fmt.Sprintf("api test franking %d", seq)))
	if err != nil {
		t.Fatal(err)
	}
	return e, encodeEnvelope(t, e)
}

func encodeEnvelope(t testing.TB, e *envelope.Envelope) string {
	t.Helper()
	b, err := e.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b64.EncodeToString(b)
}

// reportOf returns a disclosure, base64-encoded, in which side 1 of r
// reports a message from side 0, with text as the reason text.
func reportOf(t testing.TB, f *fakeNode, r *fakeRoom, text string) string {
	t.Helper()
	mk := new(keys.MessageKey)
	_, _ = vectortest.Rand("api test report mk").Read(mk.Key[:])
	h := envelope.Header{
		ContentType: envelope.ContentText, Room: r.id,
		Sender: r.tickets[0].Public().Sign, Recipient: r.tickets[1].Public().Sign,
		Seq: 1, Time: t0.UnixMilli(),
	}
	e, err := envelope.Seal(mk, h, []byte("spam spam"), vectortest.Rand("api test report franking"))
	if err != nil {
		t.Fatal(err)
	}
	if err := envelope.StampBatch(f.node, t0, []*envelope.Envelope{e}); err != nil {
		t.Fatal(err)
	}
	o, err := envelope.Open(mk, e)
	if err != nil {
		t.Fatal(err)
	}
	it, err := disclosure.ItemFromOpened(e, o)
	if err != nil {
		t.Fatal(err)
	}
	d, err := disclosure.New(r.tickets[1], disclosure.ReasonSpam, text, t0, []disclosure.Item{it})
	if err != nil {
		t.Fatal(err)
	}
	b, err := d.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b64.EncodeToString(b)
}

// stampB64 is the base64 of a stamp's encoding.
func stampB64(t testing.TB, s stamp.Stamp) string {
	t.Helper()
	b, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b64.EncodeToString(b)
}

// allowAll is a Limiter that never limits.
type allowAll struct{}

func (allowAll) Allow(string) (bool, time.Duration) { return true, 0 }

func noLimits(_ *Config, d *Deps) { d.AccountLimiter, d.IPLimiter = allowAll{}, allowAll{} }
