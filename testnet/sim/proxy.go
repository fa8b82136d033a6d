package sim

import (
	"context"
	"io"
	"net"
	"strconv"
	"sync"
)

// cutProxy is the transport-level seam of the partition scenario. Every
// node announces the address of its own proxy instead of its libp2p
// listener, so every connection between nodes passes through the proxy of
// the node it was dialled to. The dialling node is recognised by the
// source port: go-libp2p's TCP transport dials from its listen port
// (SO_REUSEPORT). Cutting a node closes the connections to and from it and
// refuses new ones until Heal.
type cutProxy struct {
	ln     net.Listener
	target string         // the node's libp2p listener, host:port
	owner  int            // the node this proxy fronts
	who    func(int) int  // source port -> node index, or -1
	cut    func(int) bool // is node i cut off?

	mu    sync.Mutex
	conns map[*proxyConn]struct{}
	// unattributed counts proxied connections whose dialler was not
	// recognised: a cut cannot apply to their source side.
	unattributed int
	wg           sync.WaitGroup
}

type proxyConn struct {
	from      int // the dialling node, or -1
	in, out   net.Conn
	closeOnce sync.Once
}

func (p *proxyConn) close() {
	p.closeOnce.Do(func() {
		_ = p.in.Close()
		_ = p.out.Close()
	})
}

func newCutProxy(ln net.Listener, target string, owner int, who func(int) int, cut func(int) bool) *cutProxy {
	return &cutProxy{ln: ln, target: target, owner: owner, who: who, cut: cut, conns: map[*proxyConn]struct{}{}}
}

// serve accepts until the listener closes.
func (x *cutProxy) serve(ctx context.Context) {
	for {
		c, err := x.ln.Accept()
		if err != nil {
			return
		}
		from := -1
		if _, port, err := net.SplitHostPort(c.RemoteAddr().String()); err == nil {
			if n, err := strconv.Atoi(port); err == nil {
				from = x.who(n)
			}
		}
		if x.cut(x.owner) || (from >= 0 && x.cut(from)) {
			_ = c.Close()
			continue
		}
		var d net.Dialer
		out, err := d.DialContext(ctx, "tcp", x.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		pc := &proxyConn{from: from, in: c, out: out}
		x.mu.Lock()
		x.conns[pc] = struct{}{}
		if from < 0 {
			x.unattributed++
		}
		x.mu.Unlock()
		x.wg.Add(2)
		go x.pipe(pc, pc.out, pc.in)
		go x.pipe(pc, pc.in, pc.out)
	}
}

func (x *cutProxy) pipe(pc *proxyConn, dst, src net.Conn) {
	defer x.wg.Done()
	// libp2p multiplexes one connection and never half-closes it: when
	// either side ends, both do.
	_, _ = io.Copy(dst, src)
	pc.close()
	x.mu.Lock()
	delete(x.conns, pc)
	x.mu.Unlock()
}

// apply closes the connections a cut now forbids.
func (x *cutProxy) apply() {
	x.mu.Lock()
	var victims []*proxyConn
	for pc := range x.conns {
		if x.cut(x.owner) || (pc.from >= 0 && x.cut(pc.from)) {
			victims = append(victims, pc)
			delete(x.conns, pc)
		}
	}
	x.mu.Unlock()
	for _, pc := range victims {
		pc.close()
	}
}

// close stops accepting, closes every connection and waits for the pipes.
func (x *cutProxy) close() {
	_ = x.ln.Close()
	x.mu.Lock()
	for pc := range x.conns {
		pc.close()
	}
	x.conns = map[*proxyConn]struct{}{}
	x.mu.Unlock()
	x.wg.Wait()
}

func (x *cutProxy) unattributedConns() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.unattributed
}
