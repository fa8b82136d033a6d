package accounts_test

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/node/accounts"
	"github.com/parley-chat/parley/node/internal/fakeclock"
	"github.com/parley-chat/parley/node/store"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/wire"
)

const audience = "12D3KooWTestNodeAudience"

// clock is a manual clock.
type clock = fakeclock.Clock

func newClock() *clock { return fakeclock.New(time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)) }

// env is a service over a fresh in-memory store.
type env struct {
	t     *testing.T
	fs    *vfs.MemFS
	st    *store.Store
	svc   *accounts.Service
	clock *clock
	reg   *prometheus.Registry
	cfg   accounts.Config
}

func newEnv(t *testing.T, cfg accounts.Config, opts ...accounts.Option) *env {
	t.Helper()
	e := &env{t: t, fs: vfs.NewMem(), clock: newClock(), cfg: cfg}
	if e.cfg.Audience == "" {
		e.cfg.Audience = audience
	}
	e.open(opts...)
	t.Cleanup(func() { e.st.Close() })
	return e
}

// open opens the store on e.fs and a new service over it.
func (e *env) open(opts ...accounts.Option) {
	e.t.Helper()
	st, err := store.Open(store.Config{Dir: "/d"}, store.WithFS(e.fs))
	if err != nil {
		e.t.Fatalf("store.Open() = %v", err)
	}
	e.st = st
	e.reg = prometheus.NewPedanticRegistry()
	all := append([]accounts.Option{accounts.WithClock(e.clock.Now), accounts.WithRegisterer(e.reg)}, opts...)
	svc, err := accounts.New(st, e.cfg, all...)
	if err != nil {
		e.t.Fatalf("New() = %v", err)
	}
	e.svc = svc
}

// reopen closes the store and opens it again on the same filesystem.
func (e *env) reopen() {
	e.t.Helper()
	if err := e.st.Close(); err != nil {
		e.t.Fatalf("Close() = %v", err)
	}
	e.open()
}

// user is an identity key and its username.
type user struct {
	name string
	key  keys.AccountKey
}

func newUser(t *testing.T, name string) user {
	t.Helper()
	k, err := keys.GenerateAccountKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return user{name: name, key: k}
}

func (u user) id() keys.AccountID { return u.key.Public() }

// sign signs a login challenge as a client does.
func (u user) sign(aud string, nonce [32]byte) keys.Signature {
	return u.key.Sign(wire.LabelAccountLogin, accounts.LoginMessage(aud, u.name, nonce))
}

func (e *env) register(u user) accounts.Account {
	e.t.Helper()
	a, err := e.svc.Register(context.Background(), u.name, u.id(), "")
	if err != nil {
		e.t.Fatalf("Register(%q) = %v", u.name, err)
	}
	return a
}

func (e *env) challenge(name string) accounts.Challenge {
	e.t.Helper()
	c, err := e.svc.Challenge(context.Background(), name)
	if err != nil {
		e.t.Fatalf("Challenge(%q) = %v", name, err)
	}
	return c
}

// login runs a whole login for u and returns the session.
func (e *env) login(u user) accounts.Session {
	e.t.Helper()
	c := e.challenge(u.name)
	s, err := e.svc.Login(context.Background(), u.name, c.Nonce, u.sign(c.Audience, c.Nonce))
	if err != nil {
		e.t.Fatalf("Login(%q) = %v", u.name, err)
	}
	return s
}

// count returns how many keys the store has under prefix.
func (e *env) count(prefix string) int {
	e.t.Helper()
	n := 0
	if err := e.st.Scan([]byte(prefix), nil, 0, func(_, _ []byte) bool { n++; return true }); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// metric returns the value of the counter or gauge name in e's registry,
// the series with label result (if result is not empty). Missing: -1.
func (e *env) metric(name, result string) float64 {
	e.t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if result != "" && (len(m.GetLabel()) != 1 || m.GetLabel()[0].GetValue() != result) {
				continue
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return -1
}
