package p2p

import (
	"sync"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// gater refuses connections to and from denied peers (spec 11-federation
// §1.3): outbound before dialing, inbound as soon as the security handshake
// names the peer. Refusals are counted by direction.
type gater struct {
	m  *metrics
	mu sync.RWMutex
	d  map[peer.ID]struct{}
}

var _ connmgr.ConnectionGater = (*gater)(nil)

func newGater(m *metrics) *gater { return &gater{m: m, d: map[peer.ID]struct{}{}} }

func (g *gater) deny(p peer.ID) {
	g.mu.Lock()
	g.d[p] = struct{}{}
	g.mu.Unlock()
}

func (g *gater) allow(p peer.ID) {
	g.mu.Lock()
	delete(g.d, p)
	g.mu.Unlock()
}

func (g *gater) denied(p peer.ID) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	_, ok := g.d[p]
	return ok
}

func (g *gater) list() []peer.ID {
	g.mu.RLock()
	defer g.mu.RUnlock()
	out := make([]peer.ID, 0, len(g.d))
	for p := range g.d {
		out = append(out, p)
	}
	return out
}

func (g *gater) check(dir string, p peer.ID) bool {
	if g.denied(p) {
		g.m.refusals.WithLabelValues(dir).Inc()
		return false
	}
	return true
}

func (g *gater) InterceptPeerDial(p peer.ID) bool { return g.check("outbound", p) }

func (g *gater) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool { return true }

func (g *gater) InterceptAccept(network.ConnMultiaddrs) bool { return true }

func (g *gater) InterceptSecured(dir network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	if dir == network.DirOutbound {
		return g.check("outbound", p)
	}
	return g.check("inbound", p)
}

func (g *gater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }
