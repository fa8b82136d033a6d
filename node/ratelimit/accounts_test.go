package ratelimit

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// DESIGN §3.7: each account has its own bucket per kind; one kind's
// refusals do not touch another kind or another account; refusals are
// counted per kind.
func TestAccounts(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	reg := prometheus.NewRegistry()
	a, err := NewAccounts(AccountConfig{Messages: Limit{Rate: 1, Burst: 2}, Tickets: Limit{Rate: 1, Burst: 1}},
		WithClock(func() time.Time { return now }), WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if ok, _ := a.Allow(KindMessage, "alice", 1); !ok {
			t.Fatalf("message %d refused within the burst", i)
		}
	}
	if ok, retry := a.Allow(KindMessage, "alice", 1); ok || retry != time.Second {
		t.Errorf("third message = %v, %v; want refused, retry after 1s", ok, retry)
	}
	if ok, _ := a.Allow(KindTicket, "alice", 1); !ok {
		t.Error("a ticket refused because messages ran out")
	}
	if ok, _ := a.Allow(KindMessage, "bob", 1); !ok {
		t.Error("bob refused because alice ran out")
	}
	if ok, retry := a.Allow(KindBlobKiB, "alice", 2<<20); ok || retry != Never {
		t.Errorf("a blob above the burst = %v, %v; want refused for ever", ok, retry)
	}
	want := "" +
		"# HELP parley_ratelimit_limited_total Requests refused because their bucket had too few tokens.\n" +
		"# TYPE parley_ratelimit_limited_total counter\n" +
		"parley_ratelimit_limited_total{limiter=\"account_blob_kib\"} 1\n" +
		"parley_ratelimit_limited_total{limiter=\"account_message\"} 1\n" +
		"parley_ratelimit_limited_total{limiter=\"account_report\"} 0\n" +
		"parley_ratelimit_limited_total{limiter=\"account_ticket\"} 0\n"
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "parley_ratelimit_limited_total"); err != nil {
		t.Errorf("refusals by kind: %v", err)
	}
	if err := (AccountConfig{Reports: Limit{Rate: -1, Burst: 1}}).Validate(); err == nil {
		t.Error("a negative rate validated")
	}
}
