package moderation_test

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/parley-chat/parley/node/internal/fakeclock"
	"github.com/parley-chat/parley/node/moderation"
	"github.com/parley-chat/parley/protocol/keys"
)

// Spec 13 §3.1: a remote node is throttled once, when the verified reports
// about its users within the window reach the threshold; reports that fell
// out of the window do not count; other nodes are not touched.
func TestNodeWatch(t *testing.T) {
	clock := fakeclock.New(time.Unix(1_800_000_000, 0))
	reg := prometheus.NewRegistry()
	var throttled []keys.NodeID
	w, err := moderation.NewNodeWatch(moderation.Config{ThrottleNodeReports: 3, Window: time.Hour},
		func(n keys.NodeID) { throttled = append(throttled, n) },
		moderation.WithClock(clock.Now), moderation.WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	x, y := keys.NodeID{1}, keys.NodeID{2}
	w.Reported(x)
	w.Reported(x)
	clock.Advance(2 * time.Hour) // both fall out of the window
	w.Reported(x)
	w.Reported(y)
	w.Reported(x)
	if len(throttled) != 0 {
		t.Fatalf("throttled %v with only two reports in the window", throttled)
	}
	if !w.Reported(x) || len(throttled) != 1 || throttled[0] != x {
		t.Fatalf("the third report within the window throttled %v, want [x]", throttled)
	}
	if w.Reported(x) || len(throttled) != 1 {
		t.Errorf("a further report throttled again: %v", throttled)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP parley_moderation_node_throttles_total Remote nodes throttled automatically for the verified reports about their users.
# TYPE parley_moderation_node_throttles_total counter
parley_moderation_node_throttles_total 1
`), "parley_moderation_node_throttles_total"); err != nil {
		t.Error(err)
	}
}

// Spec 13 §3.1: -1 switches the node-level policy off.
func TestNodeWatchOff(t *testing.T) {
	called := false
	w, err := moderation.NewNodeWatch(moderation.Config{ThrottleNodeReports: -1}, func(keys.NodeID) { called = true })
	if err != nil {
		t.Fatal(err)
	}
	for range 100 {
		w.Reported(keys.NodeID{1})
	}
	if called {
		t.Error("throttled with the policy off")
	}
}
