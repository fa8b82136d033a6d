package sim

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// This file holds what a run measures for `make bench` (testnet/bench):
// time to pair, memory per node, throughput, and the machine-readable
// Summary; and ProbeHTTP, the raw loopback HTTP limit measured beside it.

// durations collects samples from many goroutines.
type durations struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *durations) add(d time.Duration) {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
}

// percentiles returns how many samples there are and the nearest-rank
// percentile of each of ps.
func (s *durations) percentiles(ps ...float64) (int, []time.Duration) {
	s.mu.Lock()
	d := slices.Clone(s.d)
	s.mu.Unlock()
	out := make([]time.Duration, len(ps))
	for i, p := range ps {
		out[i] = percentile(d, p)
	}
	return len(d), out
}

// NodeMemory is one node's resident memory, in bytes.
type NodeMemory struct {
	Node int `json:"node"`
	// Idle is the resident set once the network formed, before any user
	// registered (VmRSS, or process_resident_memory_bytes off Linux).
	Idle uint64 `json:"idle_bytes"`
	// Peak is the process's peak resident set (VmHWM) at the end of the
	// run, before it stopped; off Linux, its resident set then.
	Peak uint64 `json:"peak_bytes"`
	// Source is where the figures come from: "proc" or "metrics".
	Source string `json:"source"`
}

// pid is the running process's ID, or 0.
func (n *nodeProc) pid() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil || n.cmd.Process == nil {
		return 0
	}
	return n.cmd.Process.Pid
}

// memory reads the node's resident set and peak resident set: from
// /proc/<pid>/status where there is one, else the node's
// process_resident_memory_bytes metric (both then).
func (n *nodeProc) memory(ctx context.Context) (rss, peak uint64, source string, err error) {
	if pid := n.pid(); pid > 0 {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
			if rss, peak, err = procStatusMemory(b); err == nil {
				return rss, peak, "proc", nil
			}
		}
	}
	v, err := scrapeValue(ctx, n.opAddr, "process_resident_memory_bytes")
	if err != nil {
		return 0, 0, "", err
	}
	return uint64(v), uint64(v), "metrics", nil
}

// procStatusMemory parses VmRSS and VmHWM (in kB) out of /proc/<pid>/status.
func procStatusMemory(status []byte) (rss, peak uint64, err error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		f := strings.Fields(val)
		if len(f) != 2 || f[1] != "kB" {
			return 0, 0, fmt.Errorf("sim: unexpected %s line %q", name, sc.Text())
		}
		kb, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("sim: %s: %w", name, err)
		}
		if name == "VmRSS" {
			rss = kb << 10
		} else {
			peak = kb << 10
		}
	}
	if rss == 0 || peak == 0 {
		return 0, 0, errors.New("sim: no VmRSS or VmHWM in the process status")
	}
	return rss, peak, nil
}

// sampleMemory records each node's resident set; idle selects the Idle
// figure, else Peak. A node that cannot be read keeps a zero.
func (r *run) sampleMemory(ctx context.Context, idle bool) {
	for _, n := range r.nodeList() {
		rss, peak, src, err := n.memory(ctx)
		if err != nil {
			r.cfg.Logger.Debug("reading a node's memory", "node", n.idx, "err", err)
			continue
		}
		r.mu.Lock()
		if r.mem == nil {
			r.mem = map[int]*NodeMemory{}
		}
		m := r.mem[n.idx]
		if m == nil {
			m = &NodeMemory{Node: n.idx}
			r.mem[n.idx] = m
		}
		if idle {
			m.Idle = rss
		} else {
			m.Peak = peak
		}
		m.Source = src
		r.mu.Unlock()
	}
}

func (r *run) memoryList() []NodeMemory {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []NodeMemory
	for _, m := range r.mem {
		out = append(out, *m)
	}
	slices.SortFunc(out, func(a, b NodeMemory) int { return a.Node - b.Node })
	return out
}

// peakMemory describes the nodes' peak resident sets: mean and largest.
func peakMemory(mem []NodeMemory) string {
	var sum, top uint64
	n := 0
	for _, m := range mem {
		if m.Peak > 0 {
			sum, top, n = sum+m.Peak, max(top, m.Peak), n+1
		}
	}
	if n == 0 {
		return "unknown"
	}
	return fmt.Sprintf("mean %.1f MiB, max %.1f MiB (%d nodes)", float64(sum)/float64(n)/(1<<20), float64(top)/(1<<20), n)
}

// Summary is a run's figures in base-10 units for machines: what
// `go run ./testnet -summary-json FILE` writes and testnet/bench reads.
type Summary struct {
	Scenario string  `json:"scenario"`
	Nodes    int     `json:"nodes"`
	Users    int     `json:"users"`
	Seed     int64   `json:"seed"`
	LoadS    float64 `json:"load_s"`   // Config.Duration
	EpochMs  float64 `json:"epoch_ms"` // the lottery's epoch length
	Pass     bool    `json:"pass"`     // Result.OK
	Verdict  string  `json:"verdict"`  // the exactly-once check, in words
	// Acked and Delivered are messages acknowledged by the nodes and
	// delivered (first deliveries of acknowledged messages).
	Acked     int `json:"acked"`
	Delivered int `json:"delivered"`
	// Missing and Duplicates are the exactly-once check's failures.
	Missing    int `json:"missing"`
	Duplicates int `json:"duplicates"`
	// MsgsPerS is Delivered over the time from the first send to the last
	// first delivery.
	MsgsPerS float64 `json:"msgs_per_s"`
	// LatencyP50Ms and LatencyP99Ms are the delivery latency (send call to
	// receipt) percentiles.
	LatencyP50Ms float64 `json:"latency_p50_ms"`
	LatencyP99Ms float64 `json:"latency_p99_ms"`
	// Pairings counts rooms users entered; PairWaits the waits measured
	// (StartPair to the paired event) and PairP50Ms.. their percentiles.
	Pairings  int64   `json:"pairings"`
	PairWaits int     `json:"pair_waits"`
	PairP50Ms float64 `json:"pair_p50_ms"`
	PairP90Ms float64 `json:"pair_p90_ms"`
	PairP99Ms float64 `json:"pair_p99_ms"`
	// Memory is each node's resident memory.
	Memory []NodeMemory `json:"memory"`
	// NodeCPUS is each node's CPU time in seconds, TestnetCPUS the testnet
	// process's (users and proxies), WallS the run's length and Cores the
	// machine's: Cores*WallS is all the CPU there was.
	NodeCPUS    []float64 `json:"node_cpu_s"`
	TestnetCPUS float64   `json:"testnet_cpu_s"`
	WallS       float64   `json:"wall_s"`
	Cores       int       `json:"cores"`
	// HTTP1 and HTTPMany are the raw loopback HTTP limits measured after
	// the run (ProbeHTTP), when the command was asked for them.
	HTTP1    *HTTPProbe `json:"http_1,omitempty"`
	HTTPMany *HTTPProbe `json:"http_many,omitempty"`
}

// Summary returns the run's figures; cfg is the Config it ran with.
func (r *Result) Summary(cfg Config) Summary {
	cfg = cfg.withDefaults()
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return Summary{
		Scenario: r.Scenario, Nodes: r.Nodes, Users: r.Users, Seed: cfg.Seed,
		LoadS: cfg.Duration.Seconds(), EpochMs: ms(cfg.Epoch),
		Pass: r.OK(), Verdict: r.Verdict.String(),
		Acked: r.Verdict.Acked, Delivered: r.Delivered, MsgsPerS: r.MsgsPerSec,
		Missing: r.Verdict.Missing, Duplicates: r.Verdict.Duplicates,
		LatencyP50Ms: ms(r.P50), LatencyP99Ms: ms(r.P99),
		Pairings: r.Pairings, PairWaits: r.PairWaits,
		PairP50Ms: ms(r.PairP50), PairP90Ms: ms(r.PairP90), PairP99Ms: ms(r.PairP99),
		Memory: r.Memory, TestnetCPUS: r.TestnetCPU.Seconds(), WallS: r.Wall.Seconds(), Cores: r.Cores,
		NodeCPUS: secondsOf(r.NodeCPU),
	}
}

func secondsOf(d []time.Duration) []float64 {
	out := make([]float64, len(d))
	for i, v := range d {
		out[i] = v.Seconds()
	}
	return out
}

// processCPU is this process's user and system CPU time so far (0 where
// getrusage is unavailable).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// HTTPProbe is the raw loopback HTTP limit: round trips of a 1 KiB POST
// to a handler that reads it and answers 204, through net/http on both
// sides, nothing else.
type HTTPProbe struct {
	Concurrency int     `json:"concurrency"`
	RoundTrips  int     `json:"round_trips"`
	PerS        float64 `json:"per_s"`
	P50Ms       float64 `json:"p50_ms"`
	P99Ms       float64 `json:"p99_ms"`
}

// maxProbeBody bounds what the probe's handler reads.
const maxProbeBody = 4 << 10

// ProbeHTTP measures raw loopback HTTP round trips with concurrency
// clients for d: the floor under any figure of the client API (a message
// costs at least one such round trip to send and one to receive).
func ProbeHTTP(ctx context.Context, concurrency int, d time.Duration) (HTTPProbe, error) {
	if concurrency < 1 {
		return HTTPProbe{}, errors.New("sim: probe concurrency must be at least 1")
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return HTTPProbe{}, err
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			_, _ = io.Copy(io.Discard, io.LimitReader(req.Body, maxProbeBody))
			w.WriteHeader(http.StatusNoContent)
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	go func() { _ = srv.Serve(ln) }()
	defer func() { _ = srv.Close() }()
	tr := &http.Transport{MaxIdleConns: concurrency, MaxIdleConnsPerHost: concurrency}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	url := "http://" + ln.Addr().String() + "/"
	body := make([]byte, 1024)

	var lat durations
	var errMu sync.Mutex
	var firstErr error
	start := time.Now()
	end := start.Add(d)
	var wg sync.WaitGroup
	for range concurrency {
		wg.Go(func() {
			for time.Now().Before(end) && ctx.Err() == nil {
				t0 := time.Now()
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
				if err == nil {
					var resp *http.Response
					if resp, err = hc.Do(req); err == nil {
						_, _ = io.Copy(io.Discard, resp.Body)
						_ = resp.Body.Close()
					}
				}
				if err != nil {
					errMu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					errMu.Unlock()
					return
				}
				lat.add(time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return HTTPProbe{}, fmt.Errorf("sim: http probe: %w", firstErr)
	}
	n, ps := lat.percentiles(0.50, 0.99)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return HTTPProbe{Concurrency: concurrency, RoundTrips: n, PerS: float64(n) / elapsed.Seconds(), P50Ms: ms(ps[0]), P99Ms: ms(ps[1])}, nil
}
