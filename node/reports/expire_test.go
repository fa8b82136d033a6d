package reports_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/node/reports"
)

// spec 13-moderation §2.4: a resolved report, with the plaintext its
// disclosure reveals, is deleted once its retention passed; an open one is
// kept however old.
func TestExpireResolved(t *testing.T) {
	w := setup(t)
	reg := prometheus.NewRegistry()
	r := reports.New(w.st, w.rs, func() time.Time { return w.now }, reports.WithRegisterer(reg))
	ctx := context.Background()
	resolved, err := r.Submit(ctx, w.acctA, w.disclosureOf(t, "first insult"))
	if err != nil {
		t.Fatal(err)
	}
	open, err := r.Submit(ctx, w.acctA, w.disclosureOf(t, "second insult"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Resolve(ctx, resolved.ID, "op", "warned"); err != nil {
		t.Fatal(err)
	}

	// Not yet: resolved at w.now, which is not before w.now.
	if n, err := r.Expire(ctx, w.now); err != nil || n != 0 {
		t.Fatalf("Expire(at the resolution) = %d, %v, want 0", n, err)
	}
	if n, err := r.Expire(ctx, w.now.Add(time.Millisecond)); err != nil || n != 1 {
		t.Fatalf("Expire(after the resolution) = %d, %v, want 1", n, err)
	}
	if _, err := r.Get(ctx, resolved.ID); err == nil {
		t.Error("the expired report is still there")
	}
	if _, err := r.Get(ctx, open.ID); err != nil {
		t.Errorf("the open report: %v", err)
	}
	// The open report is kept whatever the cutoff.
	if n, err := r.Expire(ctx, w.now.Add(365*24*time.Hour)); err != nil || n != 0 {
		t.Fatalf("Expire(a year on) = %d, %v, want 0", n, err)
	}
	if got := counterValue(t, reg, "parley_reports_expired_total"); got != 1 {
		t.Errorf("parley_reports_expired_total = %v, want 1", got)
	}
	// The deleted report's plaintext is gone from the store (the live
	// view; pebble drops the old versions at compaction).
	found := map[string]bool{}
	if err := w.st.Scan(nil, nil, 0, func(_, v []byte) bool {
		for _, s := range []string{"first insult", "second insult"} {
			found[s] = found[s] || bytes.Contains(v, []byte(s))
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if found["first insult"] || !found["second insult"] {
		t.Errorf("plaintexts in the store: %v, want only the open report's", found)
	}
}

// counterValue reads the counter name from reg.
func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no counter %s", name)
	return 0
}
