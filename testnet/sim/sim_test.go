package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// parleyd is built once per test binary.
var parleyd = struct {
	once     sync.Once
	dir, bin string
	err      error
}{}

func buildParleyd(t *testing.T) string {
	t.Helper()
	parleyd.once.Do(func() {
		dir, err := os.MkdirTemp("", "parley-testnet-bin")
		if err != nil {
			parleyd.err = err
			return
		}
		parleyd.dir = dir
		bin := filepath.Join(dir, "parleyd")
		out, err := exec.Command("go", "build", "-o", bin, "github.com/parley-chat/parley/cmd/parleyd").CombinedOutput()
		if err != nil {
			parleyd.err = fmt.Errorf("go build parleyd: %w\n%s", err, out)
			return
		}
		parleyd.bin = bin
	})
	if parleyd.err != nil {
		t.Fatal(parleyd.err)
	}
	return parleyd.bin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if parleyd.dir != "" {
		_ = os.RemoveAll(parleyd.dir)
	}
	os.Exit(code)
}

// smallRun runs a scenario at the size CI affords.
func smallRun(t *testing.T, scenario string, users int, onDrained func([]string)) *Result {
	t.Helper()
	return smallRunWith(t, scenario, users, onDrained, nil)
}

// smallRunWith is smallRun with edit, if not nil, applied to the Config.
func smallRunWith(t *testing.T, scenario string, users int, onDrained func([]string), edit func(*Config)) *Result {
	t.Helper()
	var out bytes.Buffer
	cfg := Config{
		Nodes: 3, Users: users, Duration: 8 * time.Second, DrainTimeout: 45 * time.Second,
		Seed: 7, Dir: t.TempDir(), Scenario: scenario, Parleyd: buildParleyd(t),
		Messages: 6, Pause: 300 * time.Millisecond, SummaryEvery: -1, Out: &out, OnDrained: onDrained,
	}
	if edit != nil {
		edit(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()
	res, err := Run(ctx, cfg)
	t.Logf("testnet output:\n%s", out.String())
	if err != nil {
		t.Fatalf("Run(%s) = %v", scenario, err)
	}
	return res
}

// checkDelivery is DESIGN §4 and spec 12: no acknowledged message lost,
// none delivered twice.
func checkDelivery(t *testing.T, res *Result) {
	t.Helper()
	if !res.OK() {
		t.Errorf("%s: %s; node errors %v; missing %v", res.Scenario, res.Verdict, res.NodeErrors, res.Verdict.MissingSample)
	}
	if res.Verdict.Delivered == 0 || res.Pairings == 0 {
		t.Errorf("%s: %d pairings, %d messages delivered: the network did no work", res.Scenario, res.Pairings, res.Verdict.Delivered)
	}
}

// Issue 8: a short testnet (3 nodes, a few dozen users): pairs form,
// messages are delivered exactly once, a verified report leads to a
// suspension (spec 10 §3, by the simulated operator), and the dashboards
// name only metrics the nodes export.
func TestShortRun(t *testing.T) {
	var families map[string]string
	var scrapes [][]byte
	res := smallRun(t, ScenarioSteady, 30, func(addrs []string) {
		families = map[string]string{}
		for _, a := range addrs {
			b, err := Scrape(context.Background(), a)
			if err != nil {
				t.Errorf("scrape %s: %v", a, err)
				continue
			}
			scrapes = append(scrapes, b)
			for k, v := range Families(b) {
				families[k] = v
			}
		}
	})
	checkDelivery(t, res)
	if res.Reports == 0 || res.Suspended == 0 {
		t.Errorf("reports verified %d, accounts suspended %d: want a report to lead to a suspension", res.Reports, res.Suspended)
	}
	if res.Unattributed > 0 {
		t.Errorf("%d node connections came from unknown ports: the partition proxy cannot cut them", res.Unattributed)
	}
	// What make bench reads (the -summary-json figures).
	if res.PairWaits == 0 || res.PairP50 <= 0 || res.PairP99 < res.PairP50 || res.MsgsPerSec <= 0 || res.Delivered == 0 {
		t.Errorf("time to pair: %d waits, p50 %v, p99 %v; %d delivered, %.1f msgs/s: want them measured",
			res.PairWaits, res.PairP50, res.PairP99, res.Delivered, res.MsgsPerSec)
	}
	if len(res.Memory) != res.Nodes {
		t.Errorf("memory of %d nodes, want %d", len(res.Memory), res.Nodes)
	}
	if len(res.NodeCPU) != res.Nodes || res.TestnetCPU <= 0 || res.Wall <= 0 || res.Cores < 1 {
		t.Errorf("CPU: nodes %v, testnet %v, wall %v, %d cores: want them measured", res.NodeCPU, res.TestnetCPU, res.Wall, res.Cores)
	}
	for _, m := range res.Memory {
		if m.Idle == 0 || m.Peak == 0 {
			t.Errorf("node %d: memory %+v, want both figures", m.Node, m)
		}
	}
	t.Run("dashboards", func(t *testing.T) { checkDashboards(t, families) })
	t.Run("promtool check metrics", func(t *testing.T) { checkMetricsLint(t, scrapes) })
}

// Issue 8: a node is SIGKILLed under load and restarted; nothing
// acknowledged is lost or duplicated (DESIGN §3.2).
func TestKillScenario(t *testing.T) {
	checkDelivery(t, smallRun(t, ScenarioKill, 18, nil))
}

// Issue 8: a node is cut off at the transport and the cut heals;
// everything acknowledged arrives once (spec 12).
func TestPartitionScenario(t *testing.T) {
	res := smallRun(t, ScenarioPartition, 18, nil)
	checkDelivery(t, res)
	if res.Unattributed > 0 {
		t.Errorf("%d node connections came from unknown ports: the cut was not complete", res.Unattributed)
	}
}

// Both sides leave at once, so their close notices cross. Spec 12 §4: "A
// close notice for a room that is already closed is answered duplicate".
func TestBothLeave(t *testing.T) {
	res := smallRunWith(t, "steady", 18, nil, func(c *Config) { c.BothLeave = true })
	checkDelivery(t, res)
}

var metricName = regexp.MustCompile(`\b(?:parley|libp2p|go|process)_[a-zA-Z0-9_]+|\bup\b`)

// dashboardQueries returns every PromQL expression of a dashboard: panel
// targets and template variable queries, by panel title.
func dashboardQueries(t *testing.T, path string) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Type       string `json:"type"`
			Title      string `json:"title"`
			Datasource struct {
				UID string `json:"uid"`
			} `json:"datasource"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name  string          `json:"name"`
				Type  string          `json:"type"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	out := map[string][]string{}
	hasDS := false
	for _, v := range d.Templating.List {
		switch v.Type {
		case "datasource":
			hasDS = true
		case "query":
			var q struct {
				Query string `json:"query"`
			}
			if err := json.Unmarshal(v.Query, &q); err != nil {
				t.Fatalf("%s: variable %s: %v", path, v.Name, err)
			}
			out["variable "+v.Name] = append(out["variable "+v.Name], q.Query)
		}
	}
	if !hasDS {
		t.Errorf("%s has no datasource variable", path)
	}
	for _, p := range d.Panels {
		if p.Type == "row" {
			continue
		}
		if p.Datasource.UID != "${datasource}" {
			t.Errorf("%s: panel %q uses data source %q, want the ${datasource} variable", path, p.Title, p.Datasource.UID)
		}
		if len(p.Targets) == 0 {
			t.Errorf("%s: panel %q has no query", path, p.Title)
		}
		for _, tg := range p.Targets {
			out[p.Title] = append(out[p.Title], tg.Expr)
		}
	}
	return out
}

// checkDashboards: every metric a dashboard names is one the nodes
// exported in this run (or up, which Prometheus adds itself).
func checkDashboards(t *testing.T, families map[string]string) {
	if len(families) == 0 {
		t.Fatal("no metrics scraped")
	}
	files, err := filepath.Glob("../grafana/dashboards/*.json")
	if err != nil || len(files) < 2 {
		t.Fatalf("dashboards: %v, %v; want the overview and the node dashboards", files, err)
	}
	for _, f := range files {
		for title, exprs := range dashboardQueries(t, f) {
			for _, e := range exprs {
				names := metricName.FindAllString(e, -1)
				if len(names) == 0 {
					t.Errorf("%s: %q: %q names no metric", filepath.Base(f), title, e)
				}
				for _, n := range names {
					if !exported(families, n) {
						t.Errorf("%s: %q: %s is not a metric the nodes export", filepath.Base(f), title, n)
					}
				}
			}
		}
	}
}

func exported(families map[string]string, name string) bool {
	if name == "up" {
		return true
	}
	if _, ok := families[name]; ok {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && slices.Contains([]string{"histogram", "summary"}, families[base]) {
			return true
		}
	}
	return false
}

// checkMetricsLint runs `promtool check metrics` on the nodes' own metrics
// (libp2p's, which this project does not name, are only logged).
func checkMetricsLint(t *testing.T, scrapes [][]byte) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not installed (Debian: apt install prometheus; .ci/run installs it)")
	}
	for _, b := range scrapes {
		var own bytes.Buffer
		for line := range strings.Lines(string(b)) {
			if !strings.Contains(line, "libp2p_") {
				own.WriteString(line)
			}
		}
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = &own
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics: %v\n%s", err, out)
		}
		cmd = exec.Command(promtool, "check", "metrics")
		cmd.Stdin = bytes.NewReader(b)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Logf("promtool on libp2p's metrics (not this project's names): %s", out)
		}
	}
}

// The shipped Prometheus config is valid and scrapes the targets file the
// testnet writes.
func TestPrometheusConfig(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not installed (Debian: apt install prometheus; .ci/run installs it)")
	}
	dir := t.TempDir()
	cfg, err := os.ReadFile("../prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	targets, err := Targets([]string{"127.0.0.1:7481", "127.0.0.1:7491"}, "parley-testnet")
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{PrometheusConfig: cfg, TargetsFile: targets} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command(promtool, "check", "config", filepath.Join(dir, PrometheusConfig)).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check config: %v\n%s", err, out)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Dir: "d", Parleyd: "p"}, ""},
		{Config{Parleyd: "p"}, "dir is required"},
		{Config{Dir: "d", Parleyd: "p", Scenario: "flood"}, "scenario"},
		{Config{Dir: "d", Parleyd: "p", Nodes: 1, Scenario: ScenarioKill}, "at least 2 nodes"},
		{Config{Dir: "d", Parleyd: "p", Users: 1}, "users"},
	} {
		err := tc.cfg.Validate()
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("Validate(%+v) = %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

func TestLedger(t *testing.T) {
	l := newLedger()
	t0 := time.Unix(1000, 0)
	l.sending("a", "alice", "r", t0)
	l.ack("a", t0)
	l.sending("b", "alice", "r", t0)
	l.ack("b", t0.Add(2*time.Second)) // stamped after bob left: excused
	l.sending("c", "alice", "r", t0)  // never acknowledged
	l.leaving("bob", "r", t0.Add(time.Second))
	l.received("a", t0.Add(10*time.Millisecond))
	if v := l.verdict(); !v.OK() || v.Owed != 1 || v.Excused != 1 || v.Delivered != 1 {
		t.Fatalf("verdict = %+v, want 1 owed and delivered, 1 excused", v)
	}
	l.received("a", t0.Add(20*time.Millisecond))
	if v := l.verdict(); v.OK() || v.Duplicates != 1 {
		t.Fatalf("after a second delivery verdict = %+v, want a duplicate", v)
	}
}

func TestProcStatusMemory(t *testing.T) {
	status := []byte("Name:\tparleyd\nVmPeak:\t 1000 kB\nVmHWM:\t   52000 kB\nVmRSS:\t   48000 kB\nThreads:\t9\n")
	rss, peak, err := procStatusMemory(status)
	if err != nil || rss != 48000<<10 || peak != 52000<<10 {
		t.Fatalf("procStatusMemory = %d, %d, %v; want %d, %d", rss, peak, err, 48000<<10, 52000<<10)
	}
	if _, _, err := procStatusMemory([]byte("Name:\tx\n")); err == nil {
		t.Error("procStatusMemory(no Vm lines) succeeded")
	}
	if _, _, err := procStatusMemory([]byte("VmRSS:\t12 MB\nVmHWM:\t1 kB\n")); err == nil {
		t.Error("procStatusMemory(MB) succeeded")
	}
}

func TestProbeHTTP(t *testing.T) {
	p, err := ProbeHTTP(context.Background(), 2, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if p.Concurrency != 2 || p.RoundTrips == 0 || p.PerS <= 0 || p.P99Ms < p.P50Ms {
		t.Errorf("ProbeHTTP = %+v, want round trips measured", p)
	}
	if _, err := ProbeHTTP(context.Background(), 0, time.Millisecond); err == nil {
		t.Error("ProbeHTTP(concurrency 0) succeeded")
	}
}

func TestPairWaitPercentiles(t *testing.T) {
	var d durations
	for i := 1; i <= 100; i++ {
		d.add(time.Duration(i) * time.Millisecond)
	}
	n, p := d.percentiles(0.50, 0.99)
	if n != 100 || p[0] != 50*time.Millisecond || p[1] != 99*time.Millisecond {
		t.Errorf("percentiles = %d, %v; want 100, [50ms 99ms]", n, p)
	}
}
