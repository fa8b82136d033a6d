package sim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// nodeProc is one parleyd process, started, killed and restarted on the
// same data directory and ports.
type nodeProc struct {
	idx        int
	dir        string
	id         string // the node ID (libp2p peer ID)
	clientAddr string // host:port of the client API
	opAddr     string // host:port of the operator listener
	p2pPort    int    // the libp2p listener (behind the proxy)
	proxy      *cutProxy
	bin        string
	args       []string // of `parleyd run`

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has exited
	exitErr error         // its exit status, once done is closed
	up      bool
	cpu     time.Duration // user and system CPU time of the processes that exited
}

var createdNode = regexp.MustCompile(`created node (\S+)`)

// freePort returns a port nothing listens on now.
func freePort() (int, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// initNode runs `parleyd init` in dir and picks the node's ports; its
// proxy listens from here on. writeConfig completes the configuration.
func initNode(ctx context.Context, bin, dir, network string, idx int) (*nodeProc, error) {
	out, err := exec.CommandContext(ctx, bin, "init", "--data", dir, "--network", network).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("parleyd init %s: %w\n%s", dir, err, out)
	}
	m := createdNode.FindSubmatch(out)
	if m == nil {
		return nil, fmt.Errorf("parleyd init printed no node ID:\n%s", out)
	}
	n := &nodeProc{idx: idx, dir: dir, id: string(m[1]), bin: bin}
	ports := make([]int, 3)
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			return nil, err
		}
	}
	n.clientAddr = "127.0.0.1:" + strconv.Itoa(ports[0])
	n.opAddr = "127.0.0.1:" + strconv.Itoa(ports[1])
	n.p2pPort = ports[2]
	return n, nil
}

// proxyAddr is the multiaddr other nodes reach this node at.
func (n *nodeProc) proxyAddr() string {
	return fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/p2p/%s", n.proxy.ln.Addr().(*net.TCPAddr).Port, n.id)
}

// configure sets the flags `parleyd run` gets on top of the config file
// `parleyd init` wrote: loopback listeners, the proxy announced instead of
// the libp2p listener, short epochs and backoffs, and a client-IP rate
// limit fit for many users behind one address. Flags, not a rewritten
// file, so that the testnet depends only on parleyd's command line.
func (n *nodeProc) configure(epoch time.Duration, bootstrap []string) {
	n.args = []string{"run", "--data", n.dir,
		"--client-listen", n.clientAddr, "--operator-listen", n.opAddr,
		"--p2p-listen", fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", n.p2pPort),
		"--set", fmt.Sprintf("p2p.announce_addrs=/ip4/127.0.0.1/tcp/%d", n.proxy.ln.Addr().(*net.TCPAddr).Port),
		"--set", "p2p.mdns=false",
		"--set", "p2p.record_interval=1s",
		"--set", "pairing.epoch_length=" + epoch.String(),
		"--set", "federation.backoff_base=50ms",
		"--set", "federation.backoff_max=1s",
		"--set", "shutdown_timeout=5s",
		"--set", "api.ip_rate.per_second=1000000",
		"--set", "api.ip_rate.burst=1000000",
	}
	if len(bootstrap) > 0 {
		n.args = append(n.args, "--bootstrap", strings.Join(bootstrap, ","))
	}
}

// start runs the process and waits until it is ready (/readyz answers 200).
func (n *nodeProc) start(ctx context.Context) error {
	logf, err := os.OpenFile(filepath.Join(n.dir, "node.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "# testnet: %s %s\n", n.bin, strings.Join(n.args, " "))
	// Not tied to ctx: stop and kill end the process on purpose.
	cmd := exec.CommandContext(context.WithoutCancel(ctx), n.bin, n.args...) //nolint:gosec // G204: the parleyd binary the testnet was given, our own flags
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return err
	}
	done := make(chan struct{})
	go func() {
		err := cmd.Wait()
		_ = logf.Close()
		n.mu.Lock()
		n.exitErr = err
		if ps := cmd.ProcessState; ps != nil {
			n.cpu += ps.UserTime() + ps.SystemTime()
		}
		n.mu.Unlock()
		close(done)
	}()
	n.mu.Lock()
	n.cmd, n.done = cmd, done
	n.mu.Unlock()
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	hc := &http.Client{Timeout: time.Second}
	for {
		req, _ := http.NewRequestWithContext(dctx, http.MethodGet, "http://"+n.opAddr+"/readyz", nil)
		if resp, err := hc.Do(req); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				n.mu.Lock()
				n.up = true
				n.mu.Unlock()
				return nil
			}
		}
		select {
		case <-done:
			n.mu.Lock()
			err := n.exitErr
			n.cmd = nil
			n.mu.Unlock()
			return fmt.Errorf("node %d exited while starting (%w); see %s", n.idx, err, filepath.Join(n.dir, "node.log"))
		case <-dctx.Done():
			n.kill()
			return fmt.Errorf("node %d not ready: %w", n.idx, dctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// kill sends SIGKILL and waits for the process to end.
func (n *nodeProc) kill() {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.up = false
	n.cmd = nil
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// stop sends SIGINT and waits for a graceful exit (SIGKILL after 20s). It
// returns the exit error of a process that did not exit cleanly.
func (n *nodeProc) stop() error {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.up = false
	n.cmd = nil
	n.mu.Unlock()
	if cmd == nil {
		return nil
	}
	_ = cmd.Process.Signal(os.Interrupt)
	select {
	case <-done:
		n.mu.Lock()
		defer n.mu.Unlock()
		return n.exitErr
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		return errors.New("did not stop within 20s of SIGINT; killed")
	}
}

// cpuTime is the CPU time of the node's processes that have exited.
func (n *nodeProc) cpuTime() time.Duration {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cpu
}

func (n *nodeProc) isUp() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.up
}

// adminToken reads the node's admin token.
func (n *nodeProc) adminToken() (string, error) {
	b, err := os.ReadFile(filepath.Join(n.dir, "admin.token"))
	return string(bytes.TrimSpace(b)), err
}
