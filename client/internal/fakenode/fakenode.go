// Package fakenode is a small in-memory node that speaks the client API
// (spec 09-client-api) faithfully enough to test the client against:
// strict JSON, bearer tokens from a signed login challenge, pairing (two
// compatible waiting tickets pair at once), rooms, real envelope stamps with
// the node's key (envelope.StampBatch), mailboxes with positions, long-poll
// and WebSocket sync, acknowledgements and verified reports.
//
// It is a test double, not a node: no persistence, no lottery epochs, no
// rate limits but the ones a test asks for (RateLimitNext). Knobs let tests
// misbehave on purpose: Tamper alters stamped envelopes, ForgeRoomIDs
// reports wrong room IDs.
package fakenode

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/parley-chat/parley/protocol/disclosure"
	"github.com/parley-chat/parley/protocol/envelope"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/wire"
)

// Body limits (spec 09 §1).
const (
	maxBody        = 64 << 10
	maxMessageBody = 128 << 10
	maxReportBody  = 4 << 20
	challengeTTL   = 2 * time.Minute
	tokenTTL       = 24 * time.Hour
	maxSyncWait    = 60
)

var b64 = base64.StdEncoding.Strict()

// Option configures New.
type Option func(*Node)

// WithClock sets the node's clock (default time.Now): stamps, envelope time
// checks, event times, token expiry.
func WithClock(now func() time.Time) Option { return func(n *Node) { n.now = now } }

// WithKey sets the node key (default: a fresh one).
func WithKey(k keys.NodeKey) Option { return func(n *Node) { n.key, n.keySet = k, true } }

// Node is the fake node. It is an http.Handler.
type Node struct {
	key    keys.NodeKey
	keySet bool
	now    func() time.Time

	mu         sync.Mutex
	changed    chan struct{} // closed and replaced when any mailbox changes
	done       chan struct{} // closed by Close
	closed     bool
	accounts   map[string]*account
	byKey      map[keys.AccountID]*account
	tokens     map[string]*account
	challenges map[[32]byte]challenge
	waiting    []*ticket
	rooms      map[keys.RoomID]*fakeRoom
	txids      map[string]sendAnswer // by account ID and txid
	reports    []*disclosure.Disclosure
	accepted   int
	limited    int
	retryAfter int
	tamper     func(*envelope.Envelope)
	forge      bool
	wg         sync.WaitGroup // WebSocket handlers
	once       sync.Once
	mux        *http.ServeMux
	blobs      *blobState   // blob endpoints (blobs.go), made on first use
	remoteKey  keys.NodeKey // the "other node" of Remote accounts
}

type account struct {
	id       keys.AccountID
	username string
	created  time.Time
	waiting  *ticket
	events   []eventJSON
	next     uint64
	acked    uint64
	// remote: the account stands for a user of another node (Remote): its
	// side's home is the node's remote key, which stamps what it sends.
	remote bool
	// held: messages to the account wait in heldEvents (Hold).
	held       bool
	heldEvents []eventJSON
}

type challenge struct {
	username string
	expires  time.Time
}

type ticket struct {
	acct      *account
	pub       keys.TicketPublic
	interests [][16]byte
	avoid     [][16]byte
}

type fakeRoom struct {
	id      keys.RoomID
	members [2]*account
	tickets [2]keys.TicketPublic
	created time.Time
	closed  time.Time
}

// New returns a fake node.
func New(opts ...Option) *Node {
	n := &Node{
		now:        time.Now,
		changed:    make(chan struct{}),
		done:       make(chan struct{}),
		accounts:   make(map[string]*account),
		byKey:      make(map[keys.AccountID]*account),
		tokens:     make(map[string]*account),
		challenges: make(map[[32]byte]challenge),
		rooms:      make(map[keys.RoomID]*fakeRoom),
		txids:      make(map[string]sendAnswer),
	}
	for _, o := range opts {
		o(n)
	}
	if !n.keySet {
		k, err := keys.GenerateNodeKey(rand.Reader)
		if err != nil {
			panic("fakenode: " + err.Error())
		}
		n.key = k
	}
	rk, err := keys.GenerateNodeKey(rand.Reader)
	if err != nil {
		panic("fakenode: " + err.Error())
	}
	n.remoteKey = rk
	return n
}

// Remote makes username (registered) a user of another node in the rooms
// it joins from now on: its side's home is another node ID, whose key
// stamps what it sends, as federation would deliver it.
func (n *Node) Remote(username string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.accounts[username].remote = true
}

// Hold holds back the messages to username (on) as a slow federation link
// would, or releases the held ones after whatever its mailbox got meanwhile
// (off).
func (n *Node) Hold(username string, on bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	a := n.accounts[username]
	a.held = on
	if !on {
		held := a.heldEvents
		a.heldEvents = nil
		for _, ev := range held {
			n.pushLocked(a, ev)
		}
	}
}

// homeOf is the home node of a's side.
func (n *Node) homeOf(a *account) keys.NodeID {
	if a.remote {
		return n.remoteKey.Public()
	}
	return n.key.Public()
}

// ID returns the node's ID: the audience of logins, the home of tickets
// and the stamper of envelopes.
func (n *Node) ID() keys.NodeID { return n.key.Public() }

// Close ends every long-poll and sync WebSocket and waits for the
// WebSockets to finish. Call it before closing the HTTP server, which waits
// for its requests.
func (n *Node) Close() {
	n.mu.Lock()
	if !n.closed {
		n.closed = true
		close(n.done)
	}
	n.mu.Unlock()
	n.wg.Wait()
}

// RateLimitNext makes the next count requests answer 429 rate_limited
// with Retry-After retryAfter (whole seconds, at least 1).
func (n *Node) RateLimitNext(count int, retryAfter time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.limited, n.retryAfter = count, max(1, int(retryAfter/time.Second))
}

// Tamper sets a function applied to every envelope after the node stamped
// it and before it enters the recipient's mailbox (nil: none).
func (n *Node) Tamper(f func(*envelope.Envelope)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.tamper = f
}

// ForgeRoomIDs makes paired events name a room ID that is not the one the
// two tickets derive.
func (n *Node) ForgeRoomIDs(on bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.forge = on
}

// Reports returns the disclosures the node accepted.
func (n *Node) Reports() []*disclosure.Disclosure {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]*disclosure.Disclosure(nil), n.reports...)
}

// Accepted returns how many messages the node accepted (duplicates of a
// txid not counted).
func (n *Node) Accepted() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.accepted
}

// Mailbox returns the positions of the events in username's mailbox (not
// yet acknowledged).
func (n *Node) Mailbox(username string) []uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	a := n.accounts[username]
	if a == nil {
		return nil
	}
	var out []uint64
	for _, e := range a.events {
		out = append(out, e.Pos)
	}
	return out
}

// Waiting reports whether username has a ticket waiting for a partner.
func (n *Node) Waiting(username string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	a := n.accounts[username]
	return a != nil && a.waiting != nil
}

// ---- HTTP plumbing ----

// apiError is an error answer (spec 09 §2).
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func fail(status int, code, format string, args ...any) *apiError {
	return &apiError{status, code, fmt.Sprintf(format, args...)}
}

func badRequest(format string, args ...any) *apiError {
	return fail(http.StatusBadRequest, "bad_request", format, args...)
}

func badEnvelope(format string, args ...any) *apiError {
	return fail(http.StatusBadRequest, "bad_envelope", format, args...)
}

var (
	errUnauthenticated = fail(http.StatusUnauthorized, "unauthenticated", "unauthenticated")
	errNotFound        = fail(http.StatusNotFound, "not_found", "not found")
)

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":{"code":"internal","message":"encoding"}}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, e *apiError) {
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	body.Error.Code, body.Error.Message = e.code, e.message
	writeJSON(w, e.status, &body)
}

type handler func(w http.ResponseWriter, r *http.Request, a *account) *apiError

// ServeHTTP serves the client API.
func (n *Node) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n.mu.Lock()
	if n.limited > 0 {
		n.limited--
		after := n.retryAfter
		n.mu.Unlock()
		w.Header().Set("Retry-After", strconv.Itoa(after))
		writeError(w, fail(http.StatusTooManyRequests, "rate_limited", "rate limited; retry later"))
		return
	}
	n.mu.Unlock()
	n.once.Do(n.routes)
	if _, pattern := n.mux.Handler(r); pattern == "" {
		rec := &statusRecorder{header: http.Header{}}
		n.mux.ServeHTTP(rec, r)
		if rec.code == http.StatusMethodNotAllowed {
			writeError(w, fail(http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed"))
			return
		}
		writeError(w, errNotFound)
		return
	}
	n.mux.ServeHTTP(w, r)
}

func (n *Node) routes() {
	mux := http.NewServeMux()
	route := func(pattern string, auth bool, h handler) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			var a *account
			if auth {
				if a = n.authenticate(r); a == nil {
					writeError(w, errUnauthenticated)
					return
				}
			}
			if e := h(w, r, a); e != nil {
				writeError(w, e)
			}
		})
	}
	route("POST /v1/register", false, n.register)
	route("POST /v1/login/challenge", false, n.challenge)
	route("POST /v1/login", false, n.login)
	route("POST /v1/logout", true, n.logout)
	route("GET /v1/account", true, n.account)
	route("POST /v1/pair", true, n.pair)
	route("DELETE /v1/pair", true, n.withdraw)
	route("GET /v1/rooms", true, n.listRooms)
	route("POST /v1/rooms/{room}/messages", true, n.send)
	route("POST /v1/rooms/{room}/leave", true, n.leave)
	route("GET /v1/sync", true, n.sync)
	route("GET /v1/sync/ws", true, n.syncWS)
	route("POST /v1/ack", true, n.ack)
	route("POST /v1/reports", true, n.report)
	route("GET /v1/health", false, n.health)
	n.blobRoutes(route)
	n.mux = mux
}

type statusRecorder struct {
	header http.Header
	code   int
}

func (s *statusRecorder) Header() http.Header { return s.header }
func (s *statusRecorder) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
}
func (s *statusRecorder) Write(b []byte) (int, error) { return len(b), nil }

func (n *Node) authenticate(r *http.Request) *account {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.tokens[token]
}

// decode reads a JSON body strictly: media type, size limit, one object,
// no unknown fields, nothing after it.
func decode(w http.ResponseWriter, r *http.Request, limit int64, v any) *apiError {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" || (params["charset"] != "" && !strings.EqualFold(params["charset"], "utf-8")) {
		return fail(http.StatusUnsupportedMediaType, "unsupported_media_type", "body must be application/json")
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return fail(http.StatusRequestEntityTooLarge, "too_large", "request body too large")
		}
		return badRequest("reading the body")
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return badRequest("malformed JSON: %v", err)
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return badRequest("trailing data after the JSON value")
	}
	return nil
}

func noBody(r *http.Request) *apiError {
	var one [1]byte
	if n, _ := io.ReadFull(r.Body, one[:]); n > 0 {
		return badRequest("this endpoint takes no body")
	}
	return nil
}

func decodeFixed(field, s string, dst []byte) *apiError {
	b, err := b64.DecodeString(s)
	if err != nil || len(b) != len(dst) {
		return badRequest("field %q: want base64 of %d bytes", field, len(dst))
	}
	copy(dst, b)
	return nil
}

func missing(field string) *apiError { return badRequest("field %q is missing", field) }

const timeFormat = "2006-01-02T15:04:05.000Z"

func formatTime(t time.Time) string { return t.UTC().Format(timeFormat) }

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

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("fakenode: " + err.Error())
	}
	return b
}

// ---- JSON ----

type accountJSON struct {
	ID        string `json:"id"`
	Username  string `json:"username"`
	Created   string `json:"created"`
	Suspended bool   `json:"suspended"`
}

func (a *account) json() accountJSON {
	return accountJSON{ID: a.id.String(), Username: a.username, Created: formatTime(a.created)}
}

type sideJSON struct {
	Sign string `json:"sign"`
	DH   string `json:"dh"`
	Home string `json:"home"`
}

type roomJSON struct {
	ID      string   `json:"id"`
	Me      sideJSON `json:"me"`
	Partner sideJSON `json:"partner"`
	Created string   `json:"created"`
	Closed  string   `json:"closed,omitempty"`
}

// eventJSON is a mailbox event as node/api sends it: "room" is the room ID,
// a paired event's room is in "room_info".
type eventJSON struct {
	Pos      uint64    `json:"pos"`
	Kind     string    `json:"kind"`
	Room     string    `json:"room"`
	Time     string    `json:"time"`
	Envelope string    `json:"envelope,omitempty"`
	RoomInfo *roomJSON `json:"room_info,omitempty"`
	By       string    `json:"by,omitempty"`
}

type sendAnswer struct {
	ID        string `json:"id"`
	Stamp     string `json:"stamp"`
	Duplicate bool   `json:"duplicate"`
}

// side returns member i's view of the room.
func (rm *fakeRoom) json(i int, homeOf func(*account) keys.NodeID) roomJSON {
	side := func(j int) sideJSON {
		return sideJSON{Sign: rm.tickets[j].Sign.String(), DH: rm.tickets[j].DH.String(), Home: homeOf(rm.members[j]).String()}
	}
	out := roomJSON{ID: rm.id.String(), Me: side(i), Partner: side(1 - i), Created: formatTime(rm.created)}
	if !rm.closed.IsZero() {
		out.Closed = formatTime(rm.closed)
	}
	return out
}

func (rm *fakeRoom) index(a *account) int {
	switch a {
	case rm.members[0]:
		return 0
	case rm.members[1]:
		return 1
	}
	return -1
}

// pushLocked appends an event to a's mailbox and wakes the waiters.
func (n *Node) pushLocked(a *account, ev eventJSON) {
	a.next++
	ev.Pos = a.next
	a.events = append(a.events, ev)
	n.notifyLocked()
}

// notifyLocked wakes everyone waiting for a change.
func (n *Node) notifyLocked() {
	close(n.changed)
	n.changed = make(chan struct{})
}

// ---- accounts (spec 09 §3) ----

func (n *Node) register(w http.ResponseWriter, r *http.Request, _ *account) *apiError {
	var q struct {
		Username    *string `json:"username"`
		IdentityKey *string `json:"identity_key"`
		Invite      *string `json:"invite"`
	}
	if e := decode(w, r, maxBody, &q); e != nil {
		return e
	}
	switch {
	case q.Username == nil:
		return missing("username")
	case !validUsername(*q.Username):
		return badRequest("field \"username\": 3 to 32 characters of a-z 0-9 _ - ., starting with a letter")
	case q.IdentityKey == nil:
		return missing("identity_key")
	}
	id, err := keys.ParseAccountID(*q.IdentityKey)
	if err != nil {
		return badRequest("field \"identity_key\": not an account key")
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.accounts[*q.Username] != nil {
		return fail(http.StatusConflict, "username_taken", "username taken")
	}
	if n.byKey[id] != nil {
		return fail(http.StatusConflict, "key_taken", "identity key already registered")
	}
	a := &account{id: id, username: *q.Username, created: n.now()}
	n.accounts[a.username] = a
	n.byKey[id] = a
	writeJSON(w, http.StatusCreated, map[string]any{"account": a.json()})
	return nil
}

func (n *Node) challenge(w http.ResponseWriter, r *http.Request, _ *account) *apiError {
	var q struct {
		Username *string `json:"username"`
	}
	if e := decode(w, r, maxBody, &q); e != nil {
		return e
	}
	if q.Username == nil || !validUsername(*q.Username) {
		return badRequest("field \"username\"")
	}
	var nonce [32]byte
	copy(nonce[:], randomBytes(32))
	n.mu.Lock()
	exp := n.now().Add(challengeTTL)
	n.challenges[nonce] = challenge{username: *q.Username, expires: exp}
	n.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]string{"nonce": b64.EncodeToString(nonce[:]), "audience": n.ID().String(), "expires": formatTime(exp)})
	return nil
}

func (n *Node) login(w http.ResponseWriter, r *http.Request, _ *account) *apiError {
	var q struct {
		Username  *string `json:"username"`
		Nonce     *string `json:"nonce"`
		Signature *string `json:"signature"`
	}
	if e := decode(w, r, maxBody, &q); e != nil {
		return e
	}
	if q.Username == nil || q.Nonce == nil || q.Signature == nil {
		return missing("username, nonce or signature")
	}
	var nonce [32]byte
	var sig keys.Signature
	if e := decodeFixed("nonce", *q.Nonce, nonce[:]); e != nil {
		return e
	}
	if e := decodeFixed("signature", *q.Signature, sig[:]); e != nil {
		return e
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	ch, ok := n.challenges[nonce]
	delete(n.challenges, nonce) // single use
	a := n.accounts[*q.Username]
	if !ok || ch.username != *q.Username || n.now().After(ch.expires) || a == nil {
		return errUnauthenticated
	}
	// spec 09 §3: u8 1 || string16 audience || string16 username || fixed[32] nonce.
	e := wire.NewEncoder(0)
	e.U8(1)
	e.String16(n.ID().String())
	e.String16(a.username)
	e.Fixed(nonce[:])
	if !a.id.Verify(wire.LabelAccountLogin, sig, e.Bytes()) {
		return errUnauthenticated
	}
	token := "pt_" + base64.RawURLEncoding.EncodeToString(randomBytes(32))
	n.tokens[token] = a
	writeJSON(w, http.StatusOK, map[string]any{"token": token, "expires": formatTime(n.now().Add(tokenTTL)), "account": a.json()})
	return nil
}

func (n *Node) logout(w http.ResponseWriter, r *http.Request, _ *account) *apiError {
	if e := noBody(r); e != nil {
		return e
	}
	_, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	n.mu.Lock()
	delete(n.tokens, token)
	n.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (n *Node) account(w http.ResponseWriter, _ *http.Request, a *account) *apiError {
	writeJSON(w, http.StatusOK, map[string]any{"account": a.json()})
	return nil
}

// ---- pairing (spec 09 §4) ----

func decodeTags(field string, in []string, limit int) ([][16]byte, *apiError) {
	if len(in) > limit {
		return nil, badRequest("field %q: more than %d tags", field, limit)
	}
	var out [][16]byte
	for _, s := range in {
		var t [16]byte
		if e := decodeFixed(field, s, t[:]); e != nil {
			return nil, e
		}
		out = append(out, t)
	}
	return out, nil
}

func shareTag(a, b [][16]byte) bool {
	for _, x := range a {
		for _, y := range b {
			if x == y {
				return true
			}
		}
	}
	return false
}

func (n *Node) pair(w http.ResponseWriter, r *http.Request, a *account) *apiError {
	var q struct {
		Ticket *struct {
			Sign *string `json:"sign"`
			DH   *string `json:"dh"`
		} `json:"ticket"`
		Interests []string `json:"interests"`
		Avoid     []string `json:"avoid"`
	}
	if e := decode(w, r, maxBody, &q); e != nil {
		return e
	}
	if q.Ticket == nil || q.Ticket.Sign == nil || q.Ticket.DH == nil {
		return missing("ticket")
	}
	t := &ticket{acct: a}
	var err error
	if t.pub.Sign, err = keys.ParseTicketID(*q.Ticket.Sign); err != nil {
		return badRequest("field \"ticket.sign\"")
	}
	if t.pub.DH, err = keys.ParseDHPublic(*q.Ticket.DH); err != nil {
		return badRequest("field \"ticket.dh\"")
	}
	var e *apiError
	if t.interests, e = decodeTags("interests", q.Interests, wire.MaxInterestTags); e != nil {
		return e
	}
	if t.avoid, e = decodeTags("avoid", q.Avoid, wire.MaxAvoidTags); e != nil {
		return e
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if a.waiting != nil {
		return fail(http.StatusConflict, "already_waiting", "a ticket is already waiting for a partner")
	}
	// Pair at once with the first compatible waiting ticket, preferring
	// one that shares an interest.
	match := -1
	for i, o := range n.waiting {
		if o.acct == a || o.pub.Sign == t.pub.Sign || o.pub.DH == t.pub.DH || shareTag(o.avoid, t.avoid) {
			continue
		}
		if match < 0 || (shareTag(o.interests, t.interests) && !shareTag(n.waiting[match].interests, t.interests)) {
			match = i
		}
	}
	if match < 0 {
		a.waiting = t
		n.waiting = append(n.waiting, t)
	} else {
		o := n.waiting[match]
		n.waiting = append(n.waiting[:match], n.waiting[match+1:]...)
		o.acct.waiting = nil
		n.openRoomLocked(o, t)
	}
	id := wire.Hash(wire.LabelTicket, t.pub.Sign[:], t.pub.DH[:])
	writeJSON(w, http.StatusAccepted, map[string]any{"ticket_id": b64.EncodeToString(id[:]), "epoch": 1, "epoch_ends": formatTime(n.now().Add(time.Minute))})
	return nil
}

// openRoomLocked pairs two tickets: the room ID is spec 06-room-keys §1's
// hash of the two tickets, lower signing key first.
func (n *Node) openRoomLocked(x, y *ticket) {
	lo, hi := x, y
	if bytes.Compare(lo.pub.Sign[:], hi.pub.Sign[:]) > 0 {
		lo, hi = hi, lo
	}
	id := keys.RoomID(wire.Hash(wire.LabelRoomID, lo.pub.Sign[:], lo.pub.DH[:], hi.pub.Sign[:], hi.pub.DH[:]))
	if n.forge {
		id[0] ^= 1
	}
	rm := &fakeRoom{id: id, members: [2]*account{x.acct, y.acct}, tickets: [2]keys.TicketPublic{x.pub, y.pub}, created: n.now()}
	n.rooms[id] = rm
	for i, m := range rm.members {
		info := rm.json(i, n.homeOf)
		n.pushLocked(m, eventJSON{Kind: "paired", Room: id.String(), Time: formatTime(rm.created), RoomInfo: &info})
	}
}

func (n *Node) withdraw(w http.ResponseWriter, r *http.Request, a *account) *apiError {
	if e := noBody(r); e != nil {
		return e
	}
	n.mu.Lock()
	if a.waiting != nil {
		for i, t := range n.waiting {
			if t == a.waiting {
				n.waiting = append(n.waiting[:i], n.waiting[i+1:]...)
				break
			}
		}
		a.waiting = nil
	}
	n.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// ---- rooms and messages (spec 09 §5) ----

func (n *Node) listRooms(w http.ResponseWriter, _ *http.Request, a *account) *apiError {
	n.mu.Lock()
	out := []roomJSON{}
	for _, rm := range n.rooms {
		if i := rm.index(a); i >= 0 {
			out = append(out, rm.json(i, n.homeOf))
		}
	}
	n.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"rooms": out})
	return nil
}

// memberRoom returns the room of the path and a's index in it; a room a is
// not in is not found, exactly as one that does not exist (spec 09 §1).
func (n *Node) memberRoomLocked(r *http.Request, a *account) (*fakeRoom, int, *apiError) {
	id, err := keys.ParseRoomID(r.PathValue("room"))
	if err != nil {
		return nil, 0, badRequest("path: not a room ID")
	}
	rm := n.rooms[id]
	if rm == nil || rm.index(a) < 0 {
		return nil, 0, errNotFound
	}
	return rm, rm.index(a), nil
}

func validTxID(s string) bool {
	if len(s) < 1 || len(s) > 64 {
		return false
	}
	for _, c := range []byte(s) {
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

func (n *Node) send(w http.ResponseWriter, r *http.Request, a *account) *apiError {
	var q struct {
		TxID     *string `json:"txid"`
		Envelope *string `json:"envelope"`
	}
	if e := decode(w, r, maxMessageBody, &q); e != nil {
		return e
	}
	if q.TxID == nil || !validTxID(*q.TxID) {
		return badRequest("field \"txid\": 1 to 64 visible ASCII characters")
	}
	if q.Envelope == nil {
		return missing("envelope")
	}
	raw, err := b64.DecodeString(*q.Envelope)
	if err != nil {
		return badRequest("field \"envelope\": not base64")
	}
	env, err := envelope.Parse(raw)
	if err != nil {
		return badEnvelope("%v", err)
	}
	if env.Stamp != nil {
		return badEnvelope("already stamped")
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	rm, i, e := n.memberRoomLocked(r, a)
	if e != nil {
		return e
	}
	key := a.id.String() + "/" + *q.TxID
	if prev, ok := n.txids[key]; ok {
		prev.Duplicate = true
		writeJSON(w, http.StatusOK, prev)
		return nil
	}
	if !rm.closed.IsZero() {
		return fail(http.StatusConflict, "room_closed", "the room is closed")
	}
	h := &env.Header
	if h.Room != rm.id || h.Sender != rm.tickets[i].Sign || h.Recipient != rm.tickets[1-i].Sign {
		return badEnvelope("the header is wrong for this room")
	}
	if err := envelope.CheckHeader(h, n.now()); err != nil {
		if errors.Is(err, envelope.ErrBadTime) {
			return fail(http.StatusBadRequest, "bad_time", "envelope time is too far from the node's clock")
		}
		return badEnvelope("%v", err)
	}
	stamper := n.key
	if a.remote {
		stamper = n.remoteKey
	}
	if err := envelope.StampBatch(stamper, n.now(), []*envelope.Envelope{env}); err != nil {
		return fail(http.StatusInternalServerError, "internal", "stamping failed")
	}
	id := env.ID()
	st, _ := env.Stamp.MarshalBinary()
	if n.tamper != nil {
		n.tamper(env)
	}
	stamped, _ := env.MarshalBinary()
	msg := eventJSON{Kind: "message", Room: rm.id.String(), Time: formatTime(n.now()), Envelope: b64.EncodeToString(stamped)}
	if to := rm.members[1-i]; to.held {
		to.heldEvents = append(to.heldEvents, msg)
	} else {
		n.pushLocked(to, msg)
	}
	ans := sendAnswer{ID: b64.EncodeToString(id[:]), Stamp: b64.EncodeToString(st)}
	n.txids[key] = ans
	n.accepted++
	writeJSON(w, http.StatusOK, ans)
	return nil
}

func (n *Node) leave(w http.ResponseWriter, r *http.Request, a *account) *apiError {
	if e := noBody(r); e != nil {
		return e
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	rm, i, e := n.memberRoomLocked(r, a)
	if e != nil {
		return e
	}
	if !rm.closed.IsZero() {
		return fail(http.StatusConflict, "room_closed", "the room is closed")
	}
	rm.closed = n.now()
	t := formatTime(rm.closed)
	n.pushLocked(rm.members[i], eventJSON{Kind: "room_closed", Room: rm.id.String(), Time: t, By: "me"})
	n.pushLocked(rm.members[1-i], eventJSON{Kind: "room_closed", Room: rm.id.String(), Time: t, By: "partner"})
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// ---- sync (spec 09 §6) ----

// query parses the named non-negative integer parameters; any other
// parameter, a repeated one or a non-integer is a bad request.
func query(r *http.Request, names ...string) (map[string]uint64, *apiError) {
	out := map[string]uint64{}
	for k, vs := range r.URL.Query() {
		known := false
		for _, n := range names {
			known = known || k == n
		}
		if !known || len(vs) != 1 {
			return nil, badRequest("query parameter %q", k)
		}
		v, err := strconv.ParseUint(vs[0], 10, 64)
		if err != nil {
			return nil, badRequest("query parameter %q: not a non-negative integer", k)
		}
		out[k] = v
	}
	return out, nil
}

func (n *Node) eventsLocked(a *account, after uint64, limit int) []eventJSON {
	var out []eventJSON
	for _, e := range a.events {
		if e.Pos > after && len(out) < limit {
			out = append(out, e)
		}
	}
	return out
}

func (n *Node) sync(w http.ResponseWriter, r *http.Request, a *account) *apiError {
	q, e := query(r, "after", "limit", "wait")
	if e != nil {
		return e
	}
	limit := 100
	if l, ok := q["limit"]; ok {
		if l == 0 {
			return badRequest("query parameter \"limit\": want at least 1")
		}
		limit = int(min(l, 1000))
	}
	after := q["after"]
	timer := time.NewTimer(time.Duration(min(q["wait"], maxSyncWait)) * time.Second)
	defer timer.Stop()
	var evs []eventJSON
wait:
	for {
		n.mu.Lock()
		evs = n.eventsLocked(a, after, limit)
		changed := n.changed
		n.mu.Unlock()
		if len(evs) > 0 || q["wait"] == 0 {
			break
		}
		select {
		case <-changed:
		case <-timer.C:
			break wait
		case <-n.done:
			break wait
		case <-r.Context().Done():
			return nil
		}
	}
	next := after
	if len(evs) > 0 {
		next = evs[len(evs)-1].Pos
	}
	if evs == nil {
		evs = []eventJSON{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": evs, "next": next})
	return nil
}

func (n *Node) syncWS(w http.ResponseWriter, r *http.Request, a *account) *apiError {
	q, e := query(r, "after")
	if e != nil {
		return e
	}
	if !strings.Contains(r.Header.Get("Sec-WebSocket-Protocol"), "parley.v1") {
		return badRequest("the WebSocket subprotocol parley.v1 is required")
	}
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"parley.v1"}})
	if err != nil {
		return nil
	}
	n.wg.Add(1)
	defer n.wg.Done()
	defer func() { _ = c.CloseNow() }()
	c.SetReadLimit(4 << 10)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		defer cancel()
		for {
			_, b, err := c.Read(ctx)
			if err != nil {
				return
			}
			var m struct {
				Ack *uint64 `json:"ack"`
			}
			d := json.NewDecoder(bytes.NewReader(b))
			d.DisallowUnknownFields()
			if d.Decode(&m) != nil || m.Ack == nil {
				_ = c.Close(websocket.StatusPolicyViolation, "unknown message")
				return
			}
			n.ackUpTo(a, *m.Ack)
		}
	}()
	pos := q["after"]
	for ctx.Err() == nil {
		n.mu.Lock()
		evs := n.eventsLocked(a, pos, 100)
		changed := n.changed
		n.mu.Unlock()
		for _, ev := range evs {
			b, _ := json.Marshal(ev)
			if err := c.Write(ctx, websocket.MessageText, b); err != nil {
				cancel()
				break
			}
			pos = ev.Pos
		}
		if len(evs) > 0 {
			continue
		}
		select {
		case <-changed:
		case <-ctx.Done():
		case <-n.done:
			_ = c.Close(websocket.StatusGoingAway, "shutting down")
			cancel()
		}
	}
	<-readDone
	return nil
}

func (n *Node) ackUpTo(a *account, upto uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	keep := a.events[:0]
	for _, e := range a.events {
		if e.Pos > upto {
			keep = append(keep, e)
		}
	}
	a.events = keep
	a.acked = max(a.acked, upto)
	n.notifyLocked()
}

// WaitAcked waits until username has acknowledged position pos or ctx
// ends.
func (n *Node) WaitAcked(ctx context.Context, username string, pos uint64) error {
	for {
		n.mu.Lock()
		a := n.accounts[username]
		done := a != nil && a.acked >= pos
		changed := n.changed
		n.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (n *Node) ack(w http.ResponseWriter, r *http.Request, a *account) *apiError {
	var q struct {
		Upto *uint64 `json:"upto"`
	}
	if e := decode(w, r, maxBody, &q); e != nil {
		return e
	}
	if q.Upto == nil {
		return missing("upto")
	}
	n.ackUpTo(a, *q.Upto)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// ---- reports (spec 09 §7) ----

func (n *Node) report(w http.ResponseWriter, r *http.Request, a *account) *apiError {
	var q struct {
		Disclosure *string `json:"disclosure"`
	}
	if e := decode(w, r, maxReportBody, &q); e != nil {
		return e
	}
	if q.Disclosure == nil {
		return missing("disclosure")
	}
	raw, err := b64.DecodeString(*q.Disclosure)
	if err != nil {
		return badRequest("field \"disclosure\": not base64")
	}
	d, err := disclosure.Parse(raw)
	if err != nil {
		return fail(http.StatusBadRequest, "bad_disclosure", "disclosure does not verify: malformed")
	}
	// Single node: the accused's home, the stamper, is this node.
	if err := disclosure.Verify(d, n.ID(), n.now()); err != nil {
		check := "malformed"
		if ve, ok := errors.AsType[*disclosure.VerifyError](err); ok {
			check = ve.Check.String()
		}
		return fail(http.StatusBadRequest, "bad_disclosure", "disclosure does not verify: %s", check)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	roomID, _ := d.Accused()
	rm := n.rooms[roomID]
	if rm == nil || rm.index(a) < 0 || rm.tickets[rm.index(a)].Sign != d.Reporter {
		return fail(http.StatusBadRequest, "bad_disclosure", "disclosure does not verify: not_recipient")
	}
	n.reports = append(n.reports, d)
	id := randomBytes(32)
	writeJSON(w, http.StatusAccepted, map[string]string{"report_id": b64.EncodeToString(id), "received": formatTime(n.now())})
	return nil
}

// ---- health (spec 09 §8) ----

func (n *Node) health(w http.ResponseWriter, _ *http.Request, _ *account) *apiError {
	writeJSON(w, http.StatusOK, map[string]string{"node": n.ID().String(), "version": "fake", "network": "fake"})
	return nil
}
