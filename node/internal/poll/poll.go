// Package poll is the one way node tests wait for a condition another
// goroutine brings about: check it, then re-check on a short ticker until it
// holds or a deadline passes (STYLE: polling with a deadline, never a bare
// sleep).
package poll

import (
	"testing"
	"time"
)

// Timeout is how long Until waits before it fails the test.
const Timeout = 10 * time.Second

// Until returns as soon as cond holds, checking every millisecond, and
// fails tb (naming what) if it does not hold within Timeout.
func Until(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.NewTimer(Timeout)
	defer deadline.Stop()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline.C:
			tb.Fatalf("timed out after %v waiting until %s", Timeout, what)
		}
	}
}
