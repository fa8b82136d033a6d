// Package sim runs a Parley testnet: parleyd processes on loopback,
// bootstrapped into one network, and simulated users driving them through
// the Go SDK (client.Session): chatters who pair, talk and leave, a spammer,
// and reporters. A moderator plays each node's operator through the admin
// API. Scenarios break the network on purpose (kill, partition, churn) and
// every run ends by checking that each message a node acknowledged arrived
// exactly once (DESIGN §3.2, spec 12).
//
// The partition scenario cuts a node off at the transport: each node
// announces the address of a proxy run by the testnet (p2p.announce_addrs),
// so every connection between nodes passes through a proxy that can refuse
// and close it (see cutProxy).
package sim

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Result is what a run measured.
type Result struct {
	Scenario string
	Verdict  Verdict
	// Nodes is how many nodes took part; Users how many users registered.
	Nodes, Users int
	// Pairings is how many rooms users entered.
	Pairings int64
	// Reports is how many reports nodes accepted (verified) from users;
	// ReportsQueued how many the operators' queues held at the end.
	Reports, ReportsQueued int
	// Suspended is how many accounts were suspended after verified reports.
	Suspended int
	// SpamSent is how many spam messages the spammer got acknowledged.
	SpamSent int64
	// P50 and P99 are the delivery latencies (send call to receipt).
	P50, P99 time.Duration
	// Delivered counts first deliveries of acknowledged messages, and
	// MsgsPerSec is Delivered over the time from the first send to the last
	// first delivery.
	Delivered  int
	MsgsPerSec float64
	// PairWaits counts the times users waited to pair (StartPair until the
	// paired event) and PairP50, PairP90 and PairP99 are their percentiles.
	PairWaits                 int
	PairP50, PairP90, PairP99 time.Duration
	// Memory is each node's resident memory: once the network formed and at
	// the end (peak).
	Memory []NodeMemory
	// NodeCPU is each node's CPU time (user and system, over its
	// processes), TestnetCPU this process's (the simulated users and the
	// proxies between nodes), and Wall how long the run took, start to
	// stop: on a machine of Cores cores, the CPU there was is Cores * Wall.
	NodeCPU    []time.Duration
	TestnetCPU time.Duration
	Wall       time.Duration
	Cores      int
	// Events lists what the scenario did, in order.
	Events []string
	// NodeErrors lists nodes that did not exit cleanly at the end.
	NodeErrors []string
	// Unattributed counts connections between nodes whose dialler the
	// partition proxies could not recognise (a cut cannot stop those).
	Unattributed int
	// Interrupted is set when the context ended before the drain.
	Interrupted bool
}

// OK reports whether the run passed: every acknowledged message arrived
// exactly once and every node stopped cleanly.
func (r *Result) OK() bool { return r.Verdict.OK() && len(r.NodeErrors) == 0 && !r.Interrupted }

type run struct {
	cfg       Config
	led       *ledger
	st        stats
	pairWaits durations
	mod       *moderator
	rng       *mrand.Rand // the scenario's; users have their own

	mu      sync.Mutex
	nodes   []*nodeProc
	users   []*user
	owners  map[int]int // libp2p listen port -> node index
	cutSet  map[int]bool
	events  []string
	mem     map[int]*NodeMemory // node index -> its memory
	started time.Time

	accepting atomic.Bool // users still start new conversations
	frozen    atomic.Bool // users send nothing more, only receive
	promURL   string
	prom      *exec.Cmd
	promDone  chan struct{}
}

func (r *run) starting() bool { return r.accepting.Load() }

// roomTimeout is how long a user who said goodbye waits for the partner's.
func (r *run) roomTimeout() time.Duration { return 10 * time.Second }

func (r *run) isCut(i int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cutSet[i]
}

func (r *run) owner(port int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if i, ok := r.owners[port]; ok {
		return i
	}
	return -1
}

func (r *run) event(format string, args ...any) {
	msg := fmt.Sprintf("[%5.1fs] ", time.Since(r.started).Seconds()) + fmt.Sprintf(format, args...)
	r.mu.Lock()
	r.events = append(r.events, msg)
	r.mu.Unlock()
	fmt.Fprintln(r.cfg.Out, msg)
}

func (r *run) nodeList() []*nodeProc {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*nodeProc(nil), r.nodes...)
}

// Run starts the testnet, drives it for cfg.Duration, drains it and stops
// it. It returns an error when the testnet could not be set up; whether
// the run passed is Result.OK.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	cpu0 := processCPU()
	r := &run{cfg: cfg, led: newLedger(), mod: newModerator(), rng: mrand.New(mrand.NewPCG(uint64(cfg.Seed), 1)), //nolint:gosec // G404: reproducible simulation choices, not secrets

		owners: map[int]int{}, cutSet: map[int]bool{}, started: time.Now()}
	defer r.shutdown()
	if err := os.MkdirAll(filepath.Join(cfg.Dir, "users"), 0o700); err != nil {
		return nil, err
	}
	for i := range cfg.Nodes {
		if _, err := r.addNode(ctx, i); err != nil {
			return nil, err
		}
	}
	for _, n := range r.nodeList() {
		n.configure(cfg.Epoch, r.bootstrapFor(n))
	}
	if err := r.startNodes(ctx, r.nodeList()); err != nil {
		return nil, err
	}
	if err := r.startPrometheus(ctx); err != nil {
		return nil, err
	}
	r.printURLs()
	if err := r.waitMesh(ctx); err != nil {
		return nil, err
	}
	r.event("network formed: %d nodes", cfg.Nodes)
	r.sampleMemory(ctx, true)
	r.accepting.Store(true)
	if err := r.addUsers(ctx, cfg.Users, r.nodeList(), true); err != nil {
		return nil, err
	}
	r.event("%d users registered", cfg.Users)

	// The users, the moderator and the summary run until the end of the
	// drain; the scenario during the load.
	uctx, stopUsers := context.WithCancel(context.WithoutCancel(ctx))
	var uwg sync.WaitGroup
	r.startUsers(uctx, &uwg, r.userList())
	bg, stopBG := context.WithCancel(ctx)
	var bgwg sync.WaitGroup
	bgwg.Add(2)
	go func() { defer bgwg.Done(); r.moderate(bg) }()
	go func() { defer bgwg.Done(); r.summarize(bg) }()

	res := &Result{Scenario: cfg.Scenario}
	scenarioErr := r.scenario(ctx, uctx, &uwg)
	r.accepting.Store(false)
	r.event("load over; draining (at most %v)", cfg.DrainTimeout)
	if ctx.Err() != nil {
		res.Interrupted = true
	} else {
		r.drain(ctx)
	}
	stopUsers()
	uwg.Wait()
	stopBG()
	bgwg.Wait()
	if cfg.OnDrained != nil {
		var addrs []string
		for _, n := range r.nodeList() {
			addrs = append(addrs, n.opAddr)
		}
		cfg.OnDrained(addrs)
	}
	// A last look at the queues, with the nodes still up.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	if err := r.mod.sweep(sctx, r.nodeList()); err != nil {
		cfg.Logger.Warn("last moderation sweep", "err", err)
	}
	cancel()
	if ctx.Err() != nil {
		res.Interrupted = true
	}
	r.sampleMemory(context.WithoutCancel(ctx), false)
	r.fill(res)
	for _, n := range r.nodeList() {
		if err := n.stop(); err != nil {
			res.NodeErrors = append(res.NodeErrors, fmt.Sprintf("node %d: %v (log: %s)", n.idx, err, filepath.Join(n.dir, "node.log")))
		}
		res.NodeCPU = append(res.NodeCPU, n.cpuTime())
	}
	res.TestnetCPU, res.Wall, res.Cores = processCPU()-cpu0, time.Since(r.started), runtime.NumCPU()
	r.report(res)
	return res, scenarioErr
}

// fill copies the counters into res.
func (r *run) fill(res *Result) {
	res.Verdict = r.led.verdict()
	res.Nodes = len(r.nodeList())
	res.Users = int(r.st.registered.Load())
	res.Pairings = r.st.pairings.Load()
	res.Reports = int(r.st.reports.Load())
	res.ReportsQueued, res.Suspended = r.mod.counts()
	res.SpamSent = r.st.spamSent.Load()
	_, res.Delivered, res.P50, res.P99 = r.led.counts()
	res.MsgsPerSec = r.led.rate()
	var pw []time.Duration
	res.PairWaits, pw = r.pairWaits.percentiles(0.50, 0.90, 0.99)
	res.PairP50, res.PairP90, res.PairP99 = pw[0], pw[1], pw[2]
	res.Memory = r.memoryList()
	r.mu.Lock()
	res.Events = append([]string(nil), r.events...)
	r.mu.Unlock()
	for _, n := range r.nodeList() {
		res.Unattributed += n.proxy.unattributedConns()
	}
}

// addNode creates node i: data directory, `parleyd init`, ports, proxy.
func (r *run) addNode(ctx context.Context, i int) (*nodeProc, error) {
	dir := filepath.Join(r.cfg.Dir, "nodes", fmt.Sprintf("node%d", i))
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return nil, err
	}
	n, err := initNode(ctx, r.cfg.Parleyd, dir, r.cfg.Network, i)
	if err != nil {
		return nil, err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	n.proxy = newCutProxy(ln, fmt.Sprintf("127.0.0.1:%d", n.p2pPort), i, r.owner, r.isCut)
	go n.proxy.serve(context.WithoutCancel(ctx))
	r.mu.Lock()
	r.nodes = append(r.nodes, n)
	r.owners[n.p2pPort] = i
	r.mu.Unlock()
	return n, nil
}

// bootstrapFor lists every other node's proxied address.
func (r *run) bootstrapFor(n *nodeProc) []string {
	var out []string
	for _, m := range r.nodeList() {
		if m != n {
			out = append(out, m.proxyAddr())
		}
	}
	return out
}

func (r *run) startNodes(ctx context.Context, nodes []*nodeProc) error {
	errs := make(chan error, len(nodes))
	for _, n := range nodes {
		go func() { errs <- n.start(ctx) }()
	}
	var all []error
	for range nodes {
		all = append(all, <-errs)
	}
	return errors.Join(all...)
}

// waitMesh waits until every node has a peer (with more than one node).
func (r *run) waitMesh(ctx context.Context) error {
	nodes := r.nodeList()
	if len(nodes) < 2 {
		return nil
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok := true
		for _, n := range nodes {
			v, err := scrapeValue(ctx, n.opAddr, "parley_p2p_peers_connected")
			if err != nil || v < 1 {
				ok = false
				break
			}
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("the nodes did not connect to each other within 30s")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// addUsers registers count users spread over nodes. The first batch gets
// the spammer (on the first node) and the reporters, one of them on the
// spammer's node so that a report reaches the accused's own operator even
// before reports are forwarded between nodes.
func (r *run) addUsers(ctx context.Context, count int, nodes []*nodeProc, first bool) error {
	r.mu.Lock()
	base := len(r.users)
	r.mu.Unlock()
	roles := make([]string, count)
	home := make([]*nodeProc, count)
	for i := range count {
		roles[i], home[i] = roleChatter, nodes[i%len(nodes)]
	}
	if first {
		roles[0] = roleSpammer
		// Reporters: about one in eight, the first on the spammer's node.
		var cands []int
		if len(nodes) < count {
			cands = append(cands, len(nodes))
		}
		for i := 1; i < count; i++ {
			cands = append(cands, i)
		}
		for left, k := max(1, count/8), 0; left > 0 && k < len(cands); k++ {
			if roles[cands[k]] == roleChatter {
				roles[cands[k]] = roleReporter
				left--
			}
		}
	}
	type made struct {
		u   *user
		err error
	}
	out := make(chan made, count)
	sem := make(chan struct{}, 8)
	for i := range count {
		go func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			name := fmt.Sprintf("%s%d", roles[i], base+i)
			u, err := newUser(ctx, filepath.Join(r.cfg.Dir, "users"), name, roles[i], home[i], uint64(r.cfg.Seed)*1_000_003+uint64(base+i), r)
			out <- made{u, err}
		}()
	}
	var errs []error
	for range count {
		m := <-out
		if m.err != nil {
			errs = append(errs, m.err)
			continue
		}
		r.mu.Lock()
		r.users = append(r.users, m.u)
		r.mu.Unlock()
	}
	return errors.Join(errs...)
}

func (r *run) userList() []*user {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*user(nil), r.users...)
}

func (r *run) startUsers(ctx context.Context, wg *sync.WaitGroup, users []*user) {
	for _, u := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u.run(ctx, r)
		}()
	}
}

// drain waits until no user is in a room, no pairing happened for three
// epochs and every owed message arrived; then it stops all sending and
// waits for what is still in flight. It gives up at the drain timeout.
func (r *run) drain(ctx context.Context) {
	deadline := time.Now().Add(r.cfg.DrainTimeout)
	quiet := 3 * r.cfg.Epoch
	lastPairings, since := r.st.pairings.Load(), time.Now()
	sleep := func(d time.Duration) bool {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(d):
			return true
		}
	}
	for time.Now().Before(deadline) {
		if p := r.st.pairings.Load(); p != lastPairings {
			lastPairings, since = p, time.Now()
		}
		if r.st.inRoom.Load() == 0 && time.Since(since) >= quiet && r.led.outstanding() == 0 {
			r.frozen.Store(true)
			for r.led.outstanding() > 0 && time.Now().Before(deadline) {
				if !sleep(100 * time.Millisecond) {
					return
				}
			}
			// Give duplicates a moment to show themselves.
			sleep(time.Second)
			r.event("drained")
			return
		}
		if !sleep(100 * time.Millisecond) {
			return
		}
	}
	r.frozen.Store(true)
	r.event("drain timed out: %d users in rooms, %d messages outstanding", r.st.inRoom.Load(), r.led.outstanding())
}

func (r *run) moderate(ctx context.Context) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := r.mod.sweep(ctx, r.nodeList()); err != nil && ctx.Err() == nil {
			r.cfg.Logger.Debug("moderation sweep", "err", err)
		}
	}
}

// summarize prints the live summary line.
func (r *run) summarize(ctx context.Context) {
	if r.cfg.SummaryEvery <= 0 {
		return
	}
	t := time.NewTicker(r.cfg.SummaryEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fmt.Fprintln(r.cfg.Out, r.summaryLine())
		}
	}
}

func (r *run) summaryLine() string {
	nodes := r.nodeList()
	up := 0
	for _, n := range nodes {
		if n.isUp() && !r.isCut(n.idx) {
			up++
		}
	}
	acked, delivered, p50, p99 := r.led.counts()
	reports, suspended := r.mod.counts()
	return fmt.Sprintf("[%5.1fs] nodes %d/%d up | users %d: %d in rooms, %d waiting, %d pairings | messages %d acked, %d delivered | reports %d verified (%d queued) | suspended %d | latency p50 %v p99 %v",
		time.Since(r.started).Seconds(), up, len(nodes), r.st.registered.Load(), r.st.inRoom.Load(), r.st.waiting.Load(), r.st.pairings.Load(),
		acked, delivered, r.st.reports.Load(), reports, suspended, p50.Round(time.Millisecond), p99.Round(time.Millisecond))
}

func (r *run) printURLs() {
	w := r.cfg.Out
	fmt.Fprintf(w, "testnet %q in %s\n", r.cfg.Network, r.cfg.Dir)
	for _, n := range r.nodeList() {
		fmt.Fprintf(w, "  node%d %s\n    client API http://%s  metrics http://%s/metrics  admin http://%s%s (token %s)\n    log %s\n",
			n.idx, n.id, n.clientAddr, n.opAddr, n.opAddr, "/admin/v1/", filepath.Join(n.dir, "admin.token"), filepath.Join(n.dir, "node.log"))
	}
	if r.promURL != "" {
		fmt.Fprintf(w, "  prometheus %s\n", r.promURL)
	}
}

// report prints the end of the run.
func (r *run) report(res *Result) {
	w := r.cfg.Out
	fmt.Fprintln(w, r.summaryLine())
	fmt.Fprintf(w, "scenario %s: %d nodes, %d users, %d pairings, %d spam messages, %d reports verified, %d accounts suspended, latency p50 %v p99 %v\n",
		res.Scenario, res.Nodes, res.Users, res.Pairings, res.SpamSent, res.Reports, res.Suspended, res.P50.Round(time.Millisecond), res.P99.Round(time.Millisecond))
	fmt.Fprintf(w, "throughput %.0f msgs/s delivered; time to pair p50 %v p90 %v p99 %v (%d waits); peak memory per node %s\n",
		res.MsgsPerSec, res.PairP50.Round(time.Millisecond), res.PairP90.Round(time.Millisecond), res.PairP99.Round(time.Millisecond), res.PairWaits, peakMemory(res.Memory))
	var nodeCPU time.Duration
	for _, c := range res.NodeCPU {
		nodeCPU += c
	}
	fmt.Fprintf(w, "CPU: nodes %.1f s, testnet (users and proxies) %.1f s, of %.1f s (%d cores, %.1f s)\n",
		nodeCPU.Seconds(), res.TestnetCPU.Seconds(), float64(res.Cores)*res.Wall.Seconds(), res.Cores, res.Wall.Seconds())
	fmt.Fprintf(w, "exactly once: %s\n", res.Verdict)
	for _, m := range res.Verdict.MissingSample {
		fmt.Fprintf(w, "  missing: %s\n", m)
	}
	if res.Unattributed > 0 {
		fmt.Fprintf(w, "%d connections between nodes came from an unknown port: a partition could not cut them\n", res.Unattributed)
	}
	if n := r.st.warnings.Load(); n > 0 {
		fmt.Fprintf(w, "%d events the users' clients skipped (see -v)\n", n)
	}
	for _, e := range res.NodeErrors {
		fmt.Fprintf(w, "unclean exit: %s\n", e)
	}
	if res.Interrupted {
		fmt.Fprintln(w, "interrupted before the drain: the check is incomplete")
	}
}

// shutdown stops whatever is still running: nodes, proxies, Prometheus,
// user sessions.
func (r *run) shutdown() {
	for _, n := range r.nodeList() {
		n.kill()
		n.proxy.close()
	}
	for _, u := range r.userList() {
		_ = u.s.Close()
	}
	r.stopPrometheus()
}
