package admin_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/node/accounts"
	"github.com/parley-chat/parley/node/admin"
	"github.com/parley-chat/parley/node/moderation"
	"github.com/parley-chat/parley/node/pairing"
	"github.com/parley-chat/parley/node/reports"
	"github.com/parley-chat/parley/node/rooms"
	"github.com/parley-chat/parley/node/store"
	"github.com/parley-chat/parley/protocol/disclosure"
	"github.com/parley-chat/parley/protocol/envelope"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/lottery"
	"github.com/parley-chat/parley/protocol/room"
	"github.com/parley-chat/parley/protocol/wire"
)

// secretText is the plaintext of the reported message: only reports/{id}
// may show it.
const secretText = "buy my pills at spam.example"

type env struct {
	t        *testing.T
	st       *store.Store
	acc      *accounts.Service
	rep      *reports.Reports
	mod      *moderation.Moderation
	srv      *admin.Server
	http     *httptest.Server
	reg      *prometheus.Registry
	logs     *bytes.Buffer
	token    string
	now      time.Time
	node     keys.NodeKey
	reportID [32]byte
}

// fakeLottery answers Audit for epoch 7 and ErrUnknownEpoch otherwise.
type fakeLottery struct{}

func (fakeLottery) Audit(_ context.Context, epoch uint64) (*lottery.AuditReport, error) {
	if epoch != 7 {
		return nil, pairing.ErrUnknownEpoch
	}
	return &lottery.AuditReport{
		Result:   &lottery.Result{Seed: [32]byte{0xab}, Pairs: []lottery.Pair{{A: [32]byte{1}, B: [32]byte{2}}}},
		NotDrawn: []lottery.Pair{{A: [32]byte{3}, B: [32]byte{4}}},
	}, nil
}

type user struct {
	name string
	key  keys.AccountKey
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvWith(t, nil)
}

// newEnvWith is newEnv with edit applied to the API's dependencies.
func newEnvWith(t *testing.T, edit func(*admin.Deps)) *env {
	t.Helper()
	st, err := store.Open(store.Config{Dir: "/d"}, store.WithFS(vfs.NewMem()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	e := &env{t: t, st: st, reg: prometheus.NewRegistry(), logs: &bytes.Buffer{}, now: time.UnixMilli(1_790_000_000_000)}
	clock := func() time.Time { return e.now }
	e.acc, err = accounts.New(st, accounts.Config{Audience: "node"}, accounts.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	rs := rooms.New(st)
	if e.mod, err = moderation.New(moderation.Config{ThrottleReporters: 1, SuspendReporters: -1}, st, e.acc, rs, moderation.WithClock(clock)); err != nil {
		t.Fatal(err)
	}
	e.rep = reports.New(st, rs, clock, reports.WithPolicy(e.mod))
	e.node, _ = keys.GenerateNodeKey(rand.Reader)

	path := filepath.Join(t.TempDir(), admin.TokenFileName)
	if err := admin.CreateToken(path, nil); err != nil {
		t.Fatal(err)
	}
	if e.token, err = admin.LoadToken(path); err != nil {
		t.Fatal(err)
	}
	hash, err := admin.LoadTokenHash(path)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	deps := admin.Deps{Accounts: e.acc, Reports: e.rep, Lottery: fakeLottery{}, Moderation: e.mod}
	if edit != nil {
		edit(&deps)
	}
	e.srv, err = admin.New(admin.Config{}, deps, hash,
		admin.WithLogger(log), admin.WithRegisterer(e.reg))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(admin.Prefix, e.srv.Handler())
	e.http = httptest.NewServer(mux)
	t.Cleanup(e.http.Close)
	return e
}

func (e *env) register(name string) user {
	e.t.Helper()
	k, _ := keys.GenerateAccountKey(rand.Reader)
	if _, err := e.acc.Register(context.Background(), name, k.Public(), ""); err != nil {
		e.t.Fatal(err)
	}
	return user{name: name, key: k}
}

func (e *env) login(u user) string {
	e.t.Helper()
	ctx := context.Background()
	c, err := e.acc.Challenge(ctx, u.name)
	if err != nil {
		e.t.Fatal(err)
	}
	s, err := e.acc.Login(ctx, u.name, c.Nonce, u.key.Sign(wire.LabelAccountLogin, accounts.LoginMessage(c.Audience, u.name, c.Nonce)))
	if err != nil {
		e.t.Fatal(err)
	}
	return s.Token
}

// report puts a room between a (reporter) and b (accused) and stores a's
// report of b's message secretText.
func (e *env) report(a, b user) {
	e.t.Helper()
	ctx := context.Background()
	tkA, _ := keys.GenerateTicketKeys(rand.Reader)
	tkB, _ := keys.GenerateTicketKeys(rand.Reader)
	roomA, _ := room.Derive(tkA, tkB.Public())
	roomB, _ := room.Derive(tkB, tkA.Public())
	rs := rooms.New(e.st)
	rec := rooms.Record{ID: roomA.ID(), Created: e.now, Sides: [2]rooms.Side{
		{Ticket: tkA.Public(), Home: e.node.Public(), Account: a.key.Public(), Local: true},
		{Ticket: tkB.Public(), Home: e.node.Public(), Account: b.key.Public(), Local: true},
	}}
	batch := e.st.NewBatch()
	if err := rs.Put(batch, rec); err != nil {
		e.t.Fatal(err)
	}
	if err := e.st.Commit(ctx, batch); err != nil {
		e.t.Fatal(err)
	}
	env, err := roomB.Seal(envelope.ContentText, []byte(secretText), e.now, rand.Reader)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := envelope.StampBatch(e.node, e.now, []*envelope.Envelope{env}); err != nil {
		e.t.Fatal(err)
	}
	o, err := roomA.Open(env, e.node.Public())
	if err != nil {
		e.t.Fatal(err)
	}
	item, err := disclosure.ItemFromOpened(env, o)
	if err != nil {
		e.t.Fatal(err)
	}
	d, err := disclosure.New(tkA, disclosure.ReasonSpam, "he keeps selling", e.now, []disclosure.Item{item})
	if err != nil {
		e.t.Fatal(err)
	}
	rc, err := e.rep.Submit(ctx, a.key.Public(), d)
	if err != nil {
		e.t.Fatal(err)
	}
	e.reportID = rc.ID
}

type response struct {
	status int
	header http.Header
	body   string
}

// do sends a request with the admin token (token "" sends none).
func (e *env) do(method, path, token, contentType, body string) response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.http.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := e.http.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, string(b)}
}

// call sends an authenticated request and decodes a 2xx answer into out.
func (e *env) call(method, path, body string, out any) {
	e.t.Helper()
	ct := ""
	if body != "" {
		ct = "application/json"
	}
	r := e.do(method, path, e.token, ct, body)
	if r.status/100 != 2 {
		e.t.Fatalf("%s %s = %d %s, want 2xx", method, path, r.status, r.body)
	}
	if err := json.Unmarshal([]byte(r.body), out); err != nil {
		e.t.Fatalf("%s %s: decoding %q: %v", method, path, r.body, err)
	}
}

func errorCode(t *testing.T, body string) string {
	t.Helper()
	var eb admin.ErrorBody
	if err := json.Unmarshal([]byte(body), &eb); err != nil {
		t.Fatalf("error body %q is not JSON: %v", body, err)
	}
	return eb.Error.Code
}

// doHeader sends a request with a raw Authorization header.
func (e *env) doHeader(method, path, auth string) response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.http.URL+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", auth)
	resp, err := e.http.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, string(b)}
}
