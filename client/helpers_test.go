package client_test

import (
	"context"
	"crypto/rand"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/parley-chat/parley/client"
	"github.com/parley-chat/parley/client/internal/fakenode"
	"github.com/parley-chat/parley/client/keystore"
	"github.com/parley-chat/parley/protocol/keys"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var pass = []byte("test passphrase")

// cheapKDF keeps keystore saves and opens fast.
var cheapKDF = keystore.WithConfig(keystore.Config{KDF: keystore.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}})

// startNode runs a fake node on an httptest server until the test ends.
func startNode(t *testing.T, opts ...fakenode.Option) (*fakenode.Node, *httptest.Server) {
	t.Helper()
	n := fakenode.New(opts...)
	srv := httptest.NewServer(n)
	t.Cleanup(srv.Close)
	t.Cleanup(n.Close) // runs first: ends long-polls so srv.Close does not wait for them
	return n, srv
}

// user is a registered account with a Session on its own keystore.
type user struct {
	*client.Session
	name string
	path string
	url  string
}

// newUser creates a keystore for name on the node at url, opens a
// Session on it and registers the account.
func newUser(t *testing.T, url, name string, cfg client.Config, opts ...client.Option) *user {
	t.Helper()
	key, err := keys.GenerateAccountKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "keystore")
	if err := keystore.Create(path, pass, keystore.Contents{NodeURL: url, Username: name, AccountSeed: key.Seed()}, cheapKDF); err != nil {
		t.Fatal(err)
	}
	u := &user{name: name, path: path, url: url}
	u.open(t, cfg, opts...)
	if _, err := u.Register(context.Background(), ""); err != nil {
		t.Fatalf("Register(%s) = %v", name, err)
	}
	return u
}

// open (re)opens the user's keystore and session.
func (u *user) open(t *testing.T, cfg client.Config, opts ...client.Option) {
	t.Helper()
	ks, err := keystore.Open(u.path, pass, cheapKDF)
	if err != nil {
		t.Fatal(err)
	}
	s, err := client.NewSession(ks, cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	u.Session = s
	t.Cleanup(func() { _ = s.Close() })
}

// pairUsers pairs a and b and returns their views of the room.
func pairUsers(t *testing.T, a, b *user) (ra, rb *client.Room) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var errA error
	wg.Go(func() { ra, errA = a.Pair(ctx, nil) })
	rb, errB := b.Pair(ctx, nil)
	wg.Wait()
	if errA != nil || errB != nil {
		t.Fatalf("Pair() = %v, %v", errA, errB)
	}
	if ra.ID != rb.ID || ra.Me.Sign != rb.Partner.Sign || ra.Partner.Sign != rb.Me.Sign {
		t.Fatalf("Pair() rooms disagree: %v and %v", ra, rb)
	}
	return ra, rb
}

// receiveAll receives until wantMessages messages have arrived (or the
// wait of one call comes back empty) and returns every event.
func receiveAll(t *testing.T, u *user, wantMessages int) []client.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []client.Event
	got := 0
	for got < wantMessages {
		evs, err := u.Receive(ctx, 2*time.Second)
		if err != nil {
			t.Fatalf("%s.Receive() = %v", u.name, err)
		}
		if len(evs) == 0 {
			t.Fatalf("%s.Receive() = no events, want %d more messages", u.name, wantMessages-got)
		}
		for _, ev := range evs {
			if ev.Kind == client.EventMessage {
				got++
			}
		}
		out = append(out, evs...)
	}
	return out
}

func messages(evs []client.Event) []string {
	var out []string
	for _, ev := range evs {
		if ev.Kind == client.EventMessage {
			out = append(out, ev.Message.Text())
		}
	}
	return out
}

func warnings(evs []client.Event) []string {
	var out []string
	for _, ev := range evs {
		if ev.Kind == client.EventWarning {
			out = append(out, ev.Reason)
		}
	}
	return out
}

// faultyTransport wraps a transport: fail decides, per request, to fail it
// before it reaches the server ("before") or to let the server handle it and
// lose the answer ("after").
type faultyTransport struct {
	base http.RoundTripper
	mu   sync.Mutex
	fail func(r *http.Request) string
	seen []string // txid-carrying request paths, in order
}

var errInjected = errors.New("injected network failure")

func (f *faultyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	f.mu.Lock()
	mode := ""
	if f.fail != nil {
		mode = f.fail(r)
	}
	f.seen = append(f.seen, r.Method+" "+r.URL.Path)
	f.mu.Unlock()
	switch mode {
	case "before":
		return nil, errInjected
	case "after":
		resp, err := f.base.RoundTrip(r)
		if err == nil {
			_ = resp.Body.Close()
		}
		return nil, errInjected
	}
	return f.base.RoundTrip(r)
}

func (f *faultyTransport) setFail(fn func(r *http.Request) string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = fn
}
