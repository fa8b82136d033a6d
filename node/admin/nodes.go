package admin

import (
	"net/http"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-chat/parley/node/p2p"
	"github.com/parley-chat/parley/protocol/keys"
)

// Peers is what the admin API needs of node/p2p (*p2p.Host) to defederate
// a node: the connection gater's deny list.
type Peers interface {
	Deny(p peer.ID)
	Allow(p peer.ID)
	Denied(p peer.ID) bool
	Throttle(p peer.ID)
	Unthrottle(p peer.ID)
	Throttled(p peer.ID) bool
	// Peers lists the nodes this one knows, is connected to or denies.
	Peers() []p2p.PeerInfo
}

// PeerList is the answer of GET nodes (spec 10 §3): every node this one
// knows (by its signed record), is connected to, or denies.
type PeerList struct {
	Nodes []PeerJSON `json:"nodes"`
}

// PeerJSON is one node of PeerList.
type PeerJSON struct {
	ID        string   `json:"id"`
	State     string   `json:"state"` // connected, known or denied
	Addrs     []string `json:"addrs"`
	Software  string   `json:"software,omitempty"`
	Protocols []string `json:"protocols,omitempty"`
	LastSeen  string   `json:"last_seen,omitempty"`
	Score     *float64 `json:"score,omitempty"` // its gossip score, when known
}

func (s *Server) listNodes(w http.ResponseWriter, r *http.Request) error {
	if s.deps.Peers == nil {
		return errNotFound
	}
	if _, err := query(r); err != nil {
		return err
	}
	out := PeerList{Nodes: []PeerJSON{}}
	for _, p := range s.deps.Peers.Peers() {
		j := PeerJSON{ID: p.ID.String(), State: string(p.State), Addrs: []string{}, Software: p.Software, Protocols: p.Protocols}
		for _, a := range p.Addrs {
			j.Addrs = append(j.Addrs, a.String())
		}
		if !p.LastSeen.IsZero() {
			j.LastSeen = p.LastSeen.UTC().Format(time.RFC3339)
		}
		if p.HasScore {
			sc := p.Score
			j.Score = &sc
		}
		out.Nodes = append(out.Nodes, j)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// Node is a remote node as the API shows it (spec 13 §5): whether it is
// denied, and the reports this node holds about its users.
type Node struct {
	ID        string `json:"id"`
	Denied    bool   `json:"denied"`
	Throttled bool   `json:"throttled"`
	Reports   int    `json:"reports"` // verified reports about its users (forwarded there)
	Open      int    `json:"open"`    // of which not resolved here
}

// nodeRef parses the {id} path value, a node's peer ID.
func nodeRef(r *http.Request) (keys.NodeID, error) {
	id, err := keys.ParseNodeID(r.PathValue("id"))
	if err != nil {
		return id, badRequest("not a node's peer ID")
	}
	return id, nil
}

func (s *Server) showNode(w http.ResponseWriter, r *http.Request) error {
	if s.deps.Peers == nil {
		return errNotFound
	}
	if _, err := query(r); err != nil {
		return err
	}
	id, err := nodeRef(r)
	if err != nil {
		return err
	}
	return s.writeNode(w, r, id)
}

func (s *Server) writeNode(w http.ResponseWriter, r *http.Request, id keys.NodeID) error {
	p := peer.ID(id.PeerIDBytes())
	out := Node{ID: id.String(), Denied: s.deps.Peers.Denied(p), Throttled: s.deps.Peers.Throttled(p)}
	list, err := s.deps.Reports.List(r.Context(), 0)
	if err != nil {
		return err
	}
	for _, st := range list {
		d := st.Disclosure
		if st.AccusedLocal || len(d.Items) == 0 || d.Items[0].Stamp.Node != id {
			continue
		}
		out.Reports++
		if !st.IsResolved() {
			out.Open++
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// throttleNode holds a node's deliveries to the throttled rate (federation's
// throttled_peer_rate) until unthrottleNode; in memory, like a deny.
func (s *Server) throttleNode(w http.ResponseWriter, r *http.Request) error {
	return s.nodeAction(w, r, "throttled", func(p peer.ID) { s.deps.Peers.Throttle(p) })
}

func (s *Server) unthrottleNode(w http.ResponseWriter, r *http.Request) error {
	return s.nodeAction(w, r, "unthrottled", func(p peer.ID) { s.deps.Peers.Unthrottle(p) })
}

// denyNode refuses all connections to and from a node (the connection
// gater) until allowNode; the deny list lives in memory: the node's
// p2p.deny setting keeps a node denied across restarts.
func (s *Server) denyNode(w http.ResponseWriter, r *http.Request) error {
	return s.nodeAction(w, r, "denied", func(p peer.ID) { s.deps.Peers.Deny(p) })
}

func (s *Server) allowNode(w http.ResponseWriter, r *http.Request) error {
	return s.nodeAction(w, r, "allowed", func(p peer.ID) { s.deps.Peers.Allow(p) })
}

// nodeAction applies act to the node of the path (no body), logs it as
// "admin <done> node", and answers with the node.
func (s *Server) nodeAction(w http.ResponseWriter, r *http.Request, done string, act func(peer.ID)) error {
	if s.deps.Peers == nil {
		return errNotFound
	}
	if err := requireNoBody(r); err != nil {
		return err
	}
	id, err := nodeRef(r)
	if err != nil {
		return err
	}
	act(peer.ID(id.PeerIDBytes()))
	s.log.Info("admin "+done+" node", "node", id.String())
	return s.writeNode(w, r, id)
}
