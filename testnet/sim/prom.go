package sim

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// PrometheusConfig is the name of the Prometheus config file Run writes in
// Config.Dir (a copy of Config.PrometheusConfig); TargetsFile is the file
// of scrape targets it reads (file_sd), rewritten when nodes join.
const (
	PrometheusConfig = "prometheus.yml"
	TargetsFile      = "targets.json"
)

// Targets is the file_sd content for the given operator addresses.
func Targets(addrs []string, network string) ([]byte, error) {
	type group struct {
		Targets []string          `json:"targets"`
		Labels  map[string]string `json:"labels"`
	}
	return json.MarshalIndent([]group{{Targets: addrs, Labels: map[string]string{"network": network}}}, "", "  ")
}

// writeTargets writes the scrape targets of every node.
func (r *run) writeTargets() {
	if len(r.cfg.PrometheusConfig) == 0 {
		return
	}
	var addrs []string
	for _, n := range r.nodeList() {
		addrs = append(addrs, n.opAddr)
	}
	b, err := Targets(addrs, r.cfg.Network)
	if err == nil {
		tmp := filepath.Join(r.cfg.Dir, TargetsFile+".tmp")
		if err = os.WriteFile(tmp, b, 0o600); err == nil {
			err = os.Rename(tmp, filepath.Join(r.cfg.Dir, TargetsFile))
		}
	}
	if err != nil {
		r.cfg.Logger.Warn("writing the Prometheus targets", "err", err)
	}
}

// startPrometheus writes the config and targets and, when a prometheus
// binary is configured, starts it on 127.0.0.1:9090 (or a free port).
func (r *run) startPrometheus(ctx context.Context) error {
	if len(r.cfg.PrometheusConfig) == 0 {
		return nil
	}
	path := filepath.Join(r.cfg.Dir, PrometheusConfig)
	if err := os.WriteFile(path, r.cfg.PrometheusConfig, 0o600); err != nil {
		return err
	}
	r.writeTargets()
	if r.cfg.Prometheus == "" {
		return nil
	}
	addr := "127.0.0.1:9090"
	var lc net.ListenConfig
	if ln, err := lc.Listen(ctx, "tcp", addr); err != nil {
		p, err := freePort()
		if err != nil {
			return err
		}
		addr = "127.0.0.1:" + strconv.Itoa(p)
	} else {
		_ = ln.Close()
	}
	logf, err := os.Create(filepath.Join(r.cfg.Dir, "prometheus.log"))
	if err != nil {
		return err
	}
	// Not tied to ctx: stopPrometheus stops it gracefully.
	cmd := exec.CommandContext(context.WithoutCancel(ctx), r.cfg.Prometheus, //nolint:gosec // G204: the prometheus binary the testnet was given
		"--config.file="+path, "--storage.tsdb.path="+filepath.Join(r.cfg.Dir, "prometheus-data"), "--web.listen-address="+addr)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return fmt.Errorf("starting prometheus: %w", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		_ = logf.Close()
		close(done)
	}()
	r.mu.Lock()
	r.prom, r.promDone = cmd, done
	r.mu.Unlock()
	r.promURL = "http://" + addr
	return nil
}

func (r *run) stopPrometheus() {
	r.mu.Lock()
	cmd, done := r.prom, r.promDone
	r.prom = nil
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(os.Interrupt)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// maxScrape bounds a /metrics answer.
const maxScrape = 16 << 20

// Scrape fetches http://addr/metrics.
func Scrape(ctx context.Context, addr string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s/metrics: %s", addr, resp.Status)
	}
	return io.ReadAll(io.LimitReader(resp.Body, maxScrape))
}

// Families returns the metric family names (from # TYPE lines) and their
// types in a text exposition.
func Families(text []byte) map[string]string {
	out := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(string(text)))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			out[f[2]] = f[3]
		}
	}
	return out
}

// scrapeValue is the sum of the samples of the named metric on addr.
func scrapeValue(ctx context.Context, addr, name string) (float64, error) {
	b, err := Scrape(ctx, addr)
	if err != nil {
		return 0, err
	}
	sum, found := 0.0, false
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		f := strings.Fields(rest[strings.LastIndexByte(rest, '}')+1:])
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		sum, found = sum+v, true
	}
	if !found {
		return 0, errors.New("no samples of " + name)
	}
	return sum, nil
}
