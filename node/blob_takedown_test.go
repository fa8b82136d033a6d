package node_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/client"
	"github.com/parley-chat/parley/node"
	"github.com/parley-chat/parley/node/admin"
	"github.com/parley-chat/parley/node/daemon"
	"github.com/parley-chat/parley/node/internal/poll"
	"github.com/parley-chat/parley/protocol/blob"
	"github.com/parley-chat/parley/protocol/disclosure"
	"github.com/parley-chat/parley/protocol/envelope"
)

// parleydAdmin runs `parleyd admin ARGS...` against f and returns its
// standard output.
func parleydAdmin(ctx context.Context, t *testing.T, f *fedNode, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	all := append([]string{"admin", "--data", f.dir, "--operator-listen", strings.TrimPrefix(f.opURL, "http://")}, args...)
	if err := daemon.Main(ctx, daemon.Env{Args: all, Stdout: &out, Stderr: &errOut}); err != nil {
		t.Fatalf("parleyd %s: %v\n%s", strings.Join(all, " "), err, errOut.String())
	}
	return out.String()
}

// parleydInit runs `parleyd init` in a new directory, so that `parleyd
// admin` finds a config there, and returns the directory.
func parleydInit(ctx context.Context, t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "node")
	var out bytes.Buffer
	if err := daemon.Main(ctx, daemon.Env{Args: []string{"init", "--data", dir}, Stdout: &out, Stderr: &out}); err != nil {
		t.Fatalf("parleyd init: %v\n%s", err, out.String())
	}
	return dir
}

// Issue 7, takedown on evidence (spec 08 §8, §13; spec 13): alice, on A,
// sends bob, on B, a link to a file she uploaded to A; bob fetches it
// through B (B caches it) and reports the message. A's operator sees the
// forwarded report, verifies it, opens the file with the key the
// disclosure revealed (`parleyd admin blobs show`), and takes the blob
// down (`parleyd admin blobs takedown`): A refuses it from then on, and
// its signed takedown notice makes B drop its cached copy.
func TestTakedownAfterVerifiedReport(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const epoch = 400 * time.Millisecond
	fast := func(c *node.Config) {
		c.ReportForward.BackoffBase = 50 * time.Millisecond
		c.Blobs.TakedownRetry = 100 * time.Millisecond
		c.Moderation.ThrottleNodeReports = -1
	}
	a := startFedNodeWith(t, parleydInit(ctx, t), epoch, fast)
	b := startFedNodeWith(t, parleydInit(ctx, t), epoch, fast, a.n.P2PAddrs()...)
	alice, bob := newTUser(ctx, t, a.url, "alice"), newTUser(ctx, t, b.url, "bob")
	pairWith(ctx, t, "x", alice, bob)
	alice.waitPaired(ctx, t)
	bob.waitPaired(ctx, t)

	plain := make([]byte, 3*65536+17)
	r := mrand.New(mrand.NewPCG(7, 7))
	for i := range plain {
		plain[i] = byte(r.Uint32())
	}
	link, err := alice.c.PutBlob(ctx, bytes.NewReader(plain), uint64(len(plain)), client.PutBlobOptions{})
	if err != nil {
		t.Fatalf("PutBlob: %v", err)
	}
	e, err := alice.room.Seal(envelope.ContentText, []byte("look at this: "+link.String()), time.Now(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.c.Send(ctx, alice.room.ID(), "with-link", e); err != nil {
		t.Fatal(err)
	}

	// Bob opens the message, fetches the file through B, and reports it.
	envs, opened := bob.receiveOpened(ctx, t, 1)
	msg := string(opened[0].Content)
	got, err := blob.ParseLink(msg[strings.Index(msg, "parley://"):])
	if err != nil {
		t.Fatalf("the link in %q: %v", msg, err)
	}
	item, err := disclosure.ItemFromOpened(envs[0], opened[0])
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := bob.c.GetBlob(ctx, got, &buf, client.GetBlobOptions{}); err != nil || !bytes.Equal(buf.Bytes(), plain) {
		t.Fatalf("bob's GetBlob through B: %v", err)
	}
	d, err := disclosure.New(bob.ticket, disclosure.ReasonIllegal, "an illegal file", time.Now(), []disclosure.Item{item})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.c.Report(ctx, d); err != nil {
		t.Fatalf("bob's report: %v", err)
	}

	// A's operator: the forwarded report, verified by A, discloses the link.
	var list admin.ReportList
	poll.Until(t, "A receives the forwarded report", func() bool {
		adminGet(ctx, t, a, "reports", &list)
		return len(list.Reports) == 1
	})
	var rep admin.Report
	adminGet(ctx, t, a, "reports/"+list.Reports[0].ID, &rep)
	if len(rep.Content) != 1 || !strings.Contains(rep.Content[0].Text, got.String()) {
		t.Fatalf("A's operator sees %+v, want the message with the link", rep.Content)
	}
	parleydAdmin(ctx, t, a, "reports", "resolve", rep.ID, "--note", "illegal file, taken down")
	text := rep.Content[0].Text
	disclosed := text[strings.Index(text, "parley://"):]

	// The operator opens the file with the disclosed key; the key goes
	// to the admin command only, never to the node.
	out := filepath.Join(t.TempDir(), "evidence")
	parleydAdmin(ctx, t, a, "blobs", "show", got.Address.String(), "--key", disclosed, "--out", out)
	if saved, err := os.ReadFile(out); err != nil || !bytes.Equal(saved, plain) {
		t.Fatalf("the file the operator saved: %v (%d bytes, want alice's %d)", err, len(saved), len(plain))
	}
	var info admin.Blob
	if err := json.Unmarshal([]byte(parleydAdmin(ctx, t, b, "--json", "blobs", "show", got.Address.String())), &info); err != nil || info.State != "cached" || info.Origin != a.n.ID().String() {
		t.Fatalf("B's blob before the takedown: %+v, %v, want cached from A", info, err)
	}

	// Takedown at the origin: one notice, to B.
	if msg := parleydAdmin(ctx, t, a, "blobs", "takedown", got.Address.String()); !strings.Contains(msg, "notifying 1 node") {
		t.Fatalf("blobs takedown = %q, want one node notified", msg)
	}
	if err := alice.c.GetBlob(ctx, link, &buf, client.GetBlobOptions{}); !errors.Is(err, client.ErrTakenDown) {
		t.Errorf("alice's GetBlob at A after the takedown = %v, want taken down", err)
	}
	poll.Until(t, "B drops its cached copy on A's notice", func() bool {
		return strings.Contains(scrape(ctx, t, b.opURL+"/metrics"), `parley_blobs_takedown_notices_received_total{result="dropped"} 1`)
	})
	if err := bob.c.GetBlob(ctx, got, &buf, client.GetBlobOptions{}); !errors.Is(err, client.ErrTakenDown) {
		t.Errorf("bob's GetBlob at B after the notice = %v, want taken down", err)
	}
	if err := json.Unmarshal([]byte(parleydAdmin(ctx, t, b, "--json", "blobs", "show", got.Address.String())), &info); err != nil || info.State != "taken_down" {
		t.Errorf("B's blob after the notice: %+v, %v, want taken_down", info, err)
	}
	entries, _ := os.ReadDir(filepath.Join(b.dir, "blobs", got.Address.String()[5:7]))
	if len(entries) != 0 {
		t.Errorf("B still has blob files: %v", entries)
	}
}
