package node_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/client"
	"github.com/parley-chat/parley/node"
	"github.com/parley-chat/parley/node/internal/poll"
	"github.com/parley-chat/parley/node/p2p"
	"github.com/parley-chat/parley/node/ratelimit"
	"github.com/parley-chat/parley/protocol/disclosure"
	"github.com/parley-chat/parley/protocol/envelope"
	"github.com/parley-chat/parley/protocol/keys"
)

// Issue 6, across nodes: a user of node A harasses a user of node B; B's
// user reports; B forwards the disclosure; A verifies it on its own and,
// at its threshold (here one reporter), suspends the harasser, who can no
// longer pair or send; A's operator sees the report as the evidence.
func TestCrossNodeReportSuspends(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const epoch = 400 * time.Millisecond
	a := startFedNodeWith(t, t.TempDir(), epoch, func(c *node.Config) {
		c.Moderation.SuspendReporters = 1
		c.Moderation.ThrottleReporters = -1
		c.ReportForward.BackoffBase = 50 * time.Millisecond
	})
	b := startFedNodeWith(t, t.TempDir(), epoch, func(c *node.Config) {
		c.ReportForward.BackoffBase = 50 * time.Millisecond
		c.Moderation.ThrottleNodeReports = 1 // spec 13 §3.1, at one report for the test
	}, a.n.P2PAddrs()...)
	mallory, bob := newTUser(ctx, t, a.url, "mallory"), newTUser(ctx, t, b.url, "bob")
	pairWith(ctx, t, "x", mallory, bob)
	mallory.waitPaired(ctx, t)
	bob.waitPaired(ctx, t)

	// Mallory harasses; bob opens the message and reports it.
	abuse := "you will regret this"
	e, err := mallory.room.Seal(envelope.ContentText, []byte(abuse), time.Now(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mallory.c.Send(ctx, mallory.room.ID(), "abuse-1", e); err != nil {
		t.Fatal(err)
	}
	envs, opened := bob.receiveOpened(ctx, t, 1)
	item, err := disclosure.ItemFromOpened(envs[0], opened[0])
	if err != nil {
		t.Fatal(err)
	}
	d, err := disclosure.New(bob.ticket, disclosure.ReasonHarassment, "threats", time.Now(), []disclosure.Item{item})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.c.Report(ctx, d); err != nil {
		t.Fatalf("bob's report: %v", err)
	}
	// B's node-level policy: A's users drew a verified report, B throttles A.
	if !b.n.P2P().Throttled(p2p.PeerID(a.n.ID())) {
		t.Error("B did not throttle A after the report about A's user")
	}

	// A suspends mallory: her session ends.
	poll.Until(t, "node A suspends mallory", func() bool {
		_, err := mallory.c.Account(ctx)
		return errors.Is(err, client.ErrUnauthenticated)
	})
	if _, err := mallory.c.Login(ctx, "mallory", mallory.key); err != nil {
		t.Fatalf("mallory logs in again: %v", err)
	}
	tk, _ := keys.GenerateTicketKeys(rand.Reader)
	if _, err := mallory.c.Pair(ctx, client.PairRequest{Ticket: tk.Public()}); !errors.Is(err, client.ErrSuspended) {
		t.Errorf("suspended mallory's Pair = %v, want suspended", err)
	}
	e2, _ := mallory.room.Seal(envelope.ContentText, []byte("again"), time.Now(), rand.Reader)
	if _, err := mallory.c.Send(ctx, mallory.room.ID(), "abuse-2", e2); !errors.Is(err, client.ErrSuspended) {
		t.Errorf("suspended mallory's Send = %v, want suspended", err)
	}

	// A's operator: the account shows the suspension and the report.
	var body struct {
		Suspended  bool `json:"suspended"`
		Moderation struct {
			Actions []struct {
				Kind     string   `json:"kind"`
				Evidence []string `json:"evidence"`
			} `json:"actions"`
			Reports []string `json:"reports"`
		} `json:"moderation"`
	}
	adminGet(ctx, t, a, "accounts/mallory", &body)
	m := body.Moderation
	if !body.Suspended || len(m.Actions) != 1 || m.Actions[0].Kind != "suspend" || len(m.Reports) != 1 ||
		len(m.Actions[0].Evidence) != 1 || m.Actions[0].Evidence[0] != m.Reports[0] {
		t.Errorf("A's operator sees %+v, want a suspension whose evidence is bob's report", body)
	}
}

// DESIGN §3.7, issue 6: every account has a budget per kind of request;
// past it the node answers 429 rate_limited with Retry-After, counts the
// refusal, and takes requests again once the bucket refilled at its rate.
// Here: messages, 1 per second, burst 2.
func TestAccountBudgets(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	f := startFedNodeWith(t, t.TempDir(), 400*time.Millisecond, func(c *node.Config) {
		c.Limits.Messages = ratelimit.Limit{Rate: 1, Burst: 2}
	})
	alice, bob := newTUser(ctx, t, f.url, "alice"), newTUser(ctx, t, f.url, "bob")
	pairWith(ctx, t, "x", alice, bob)
	alice.waitPaired(ctx, t)
	bob.waitPaired(ctx, t)
	alice.sendTexts(ctx, t, "within the budget", 2)
	e, _ := alice.room.Seal(envelope.ContentText, []byte("one too many"), time.Now(), rand.Reader)
	_, err := alice.c.Send(ctx, alice.room.ID(), "tx-over", e)
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || apiErr.Code != "rate_limited" || apiErr.RetryAfter < time.Second {
		t.Fatalf("third message = %v, want 429 rate_limited with Retry-After", err)
	}
	// The bucket refills at the configured rate (1/s): alice can send again.
	poll.Until(t, "alice's budget recovers", func() bool {
		e, _ := alice.room.Seal(envelope.ContentText, []byte("later"), time.Now(), rand.Reader)
		alice.txns++
		_, err := alice.c.Send(ctx, alice.room.ID(), fmt.Sprintf("tx-later-%d", alice.txns), e)
		return err == nil
	})
	// Bob's budget is his own.
	bob.sendTexts(ctx, t, "bob's turn", 2)
	if m := scrape(ctx, t, f.opURL+"/metrics"); !strings.Contains(m, `parley_ratelimit_limited_total{limiter="account_message"}`) ||
		strings.Contains(m, `parley_ratelimit_limited_total{limiter="account_message"} 0`) {
		t.Error("the refusal is not counted in parley_ratelimit_limited_total{limiter=\"account_message\"}")
	}
}
