package p2p

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/parley-chat/parley/protocol/noderecord"
	"github.com/parley-chat/parley/protocol/wire"
)

// peerEntry is what the host knows about another node of its network.
type peerEntry struct {
	rec      *noderecord.Record
	addrs    []ma.Multiaddr
	lastSeen time.Time
}

// State is a node's state in the peer table.
type State string

// States of PeerInfo.
const (
	StateConnected State = "connected" // at least one open connection
	StateKnown     State = "known"     // a valid record, no connection
	StateDenied    State = "denied"    // on the deny list
)

// PeerInfo describes one node for `parleyd peers`.
type PeerInfo struct {
	ID        peer.ID
	Addrs     []ma.Multiaddr    // from its record, or of its connections
	State     State             // connected, known or denied
	Software  string            // from its record; "" without one
	Protocols []string          // from its record
	Policy    noderecord.Policy // from its record
	Seq       uint64            // its record's sequence number; 0 without one
	LastSeen  time.Time         // now if connected; else its last record or disconnection
	Score     float64           // its gossip score, if HasScore
	HasScore  bool
}

// Peers lists the nodes this node knows (by record), is connected to, or
// denies, sorted by peer ID.
func (x *Host) Peers() []PeerInfo {
	now := x.o.now()
	n := x.h.Network()
	byID := map[peer.ID]*PeerInfo{}
	x.mu.Lock()
	for id, e := range x.peers {
		pi := &PeerInfo{ID: id, Addrs: slices.Clone(e.addrs), State: StateKnown, LastSeen: e.lastSeen}
		if e.rec != nil {
			pi.Software, pi.Protocols, pi.Policy, pi.Seq = e.rec.Software, slices.Clone(e.rec.Protocols), e.rec.Policy, e.rec.Seq
		}
		byID[id] = pi
	}
	for id, s := range x.scores {
		if pi, ok := byID[id]; ok {
			pi.Score, pi.HasScore = s, true
		}
	}
	scores := x.scores
	x.mu.Unlock()
	for _, id := range n.Peers() {
		pi, ok := byID[id]
		if !ok {
			pi = &PeerInfo{ID: id}
			for _, c := range n.ConnsToPeer(id) {
				pi.Addrs = append(pi.Addrs, c.RemoteMultiaddr())
			}
			pi.Score, pi.HasScore = scores[id], scores != nil && hasKey(scores, id)
			byID[id] = pi
		}
		pi.State, pi.LastSeen = StateConnected, now
	}
	for _, id := range x.gater.list() {
		pi, ok := byID[id]
		if !ok {
			pi = &PeerInfo{ID: id}
			byID[id] = pi
		}
		pi.State = StateDenied
	}
	out := make([]PeerInfo, 0, len(byID))
	for _, pi := range byID {
		out = append(out, *pi)
	}
	slices.SortFunc(out, func(a, b PeerInfo) int { return strings.Compare(string(a.ID), string(b.ID)) })
	return out
}

func hasKey(m map[peer.ID]float64, k peer.ID) bool { _, ok := m[k]; return ok }

// Record returns the latest valid record of p, if the host has one.
func (x *Host) Record(p peer.ID) (*noderecord.Record, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	e, ok := x.peers[p]
	if !ok || e.rec == nil {
		return nil, false
	}
	return e.rec, true
}

// validateRecord is the validator of the records topic (spec 11-federation
// §3.3). A record is accepted if it parses, is its author's own, verifies
// for this network and time, and is newer than the one the host has; the
// peer table is updated in the same step, so one record is judged once.
func (x *Host) validateRecord(_ context.Context, msg *pubsub.Message) pubsub.ValidationResult {
	rec, err := noderecord.Parse(msg.Data)
	if err != nil {
		x.log.Debug("malformed node record", "from", msg.ReceivedFrom, "err", err)
		return pubsub.ValidationReject
	}
	id := PeerID(rec.Node)
	if id != msg.GetFrom() {
		x.log.Debug("node record published by another node", "from", msg.GetFrom(), "node", id)
		return pubsub.ValidationReject
	}
	now := x.o.now()
	if err := noderecord.Verify(rec, x.cfg.NetworkID, now, wire.MaxClockSkew); err != nil {
		x.log.Debug("invalid node record", "node", id, "err", err)
		if errors.Is(err, noderecord.ErrExpired) {
			return pubsub.ValidationIgnore
		}
		return pubsub.ValidationReject
	}
	addrs := make([]ma.Multiaddr, 0, len(rec.Addrs))
	for _, b := range rec.Addrs {
		a, err := ma.NewMultiaddrBytes(b)
		if err != nil {
			x.log.Debug("node record with a malformed address", "node", id, "err", err)
			return pubsub.ValidationReject
		}
		addrs = append(addrs, a)
	}
	if id == x.self {
		if msg.ReceivedFrom == x.self {
			return pubsub.ValidationAccept // our own publication
		}
		return pubsub.ValidationIgnore // our record coming back
	}
	if x.gater.denied(id) {
		return pubsub.ValidationIgnore
	}
	x.mu.Lock()
	e, ok := x.peers[id]
	switch {
	case ok && e.rec != nil && rec.Seq <= e.rec.Seq:
		x.mu.Unlock()
		return pubsub.ValidationIgnore // a replay or a duplicate: not newer (§3.3)
	case !ok && len(x.peers) >= maxKnownNodes:
		x.mu.Unlock()
		return pubsub.ValidationIgnore
	case !ok:
		e = &peerEntry{}
		x.peers[id] = e
	}
	e.rec, e.addrs, e.lastSeen = rec, addrs, now
	x.mu.Unlock()

	x.h.Peerstore().AddAddrs(id, addrs, 3*x.cfg.RecordInterval+wire.MaxClockSkew)
	if x.h.Network().Connectedness(id) != network.Connected {
		x.queueDial(peer.AddrInfo{ID: id, Addrs: addrs})
	}
	return pubsub.ValidationAccept
}

// disconnected notes when a known node was last connected.
func (x *Host) disconnected(_ network.Network, c network.Conn) {
	now := x.o.now()
	x.mu.Lock()
	if e, ok := x.peers[c.RemotePeer()]; ok {
		e.lastSeen = now
	}
	x.mu.Unlock()
}

// recordAddrs are the addresses this node's record carries: the announce
// addresses, or else what the host listens on, within the record's bounds.
func (x *Host) recordAddrs() [][]byte {
	addrs := x.announce
	if len(addrs) == 0 {
		addrs = x.h.Addrs()
	}
	out := make([][]byte, 0, min(len(addrs), wire.MaxRecordAddrs))
	for _, a := range addrs {
		b := a.Bytes()
		if len(b) == 0 || len(b) > wire.MaxRecordAddr || len(out) == wire.MaxRecordAddrs {
			continue
		}
		out = append(out, b)
	}
	return out
}

// PublishRecord signs and publishes a new record of this node now. The
// sequence number is the clock in milliseconds, or one more than the last
// one if the clock has not moved on, so it grows across restarts as long as
// the clock does.
func (x *Host) PublishRecord(ctx context.Context) error {
	now := x.o.now()
	x.mu.Lock()
	seq := max(x.lastSeq+1, uint64(max(now.UnixMilli(), 0)))
	x.lastSeq, x.lastPub = seq, now
	rec := &noderecord.Record{
		Network:   x.cfg.NetworkID,
		Seq:       seq,
		Issued:    now.Unix(),
		Addrs:     x.recordAddrs(),
		Software:  x.o.software,
		Protocols: slices.Clone(x.protocols),
		Policy:    x.policy,
	}
	x.mu.Unlock()
	err := noderecord.Sign(x.key, rec)
	var b []byte
	if err == nil {
		b, err = rec.MarshalBinary()
	}
	if err == nil {
		err = x.records.Publish(ctx, b)
	}
	if err != nil {
		x.m.publishes.WithLabelValues("error").Inc()
		x.log.Warn("publishing the node record failed", "err", err)
		return err
	}
	x.m.publishes.WithLabelValues("ok").Inc()
	return nil
}

// recordLoop publishes this node's record at start, every RecordInterval,
// and when a peer joins the records topic (at most once per republishGap),
// and forgets records that expired.
func (x *Host) recordLoop(ctx context.Context) {
	tick := time.NewTicker(x.cfg.RecordInterval)
	defer tick.Stop()
	_ = x.PublishRecord(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			x.expire()
		case <-x.kick:
			x.mu.Lock()
			recent := x.o.now().Sub(x.lastPub) < republishGap
			x.mu.Unlock()
			if recent {
				continue
			}
		}
		_ = x.PublishRecord(ctx)
	}
}

// expire forgets records older than wire.MaxRecordAge.
func (x *Host) expire() {
	cutoff := x.o.now().Add(-wire.MaxRecordAge)
	x.mu.Lock()
	defer x.mu.Unlock()
	for id, e := range x.peers {
		if e.rec != nil && e.rec.IssuedAt().Before(cutoff) {
			delete(x.peers, id)
		}
	}
}

// joinLoop asks the record loop to publish when a peer joins the records
// topic, so that a newcomer learns of this node without waiting a whole
// RecordInterval.
func (x *Host) joinLoop(ctx context.Context, evts *pubsub.TopicEventHandler) {
	defer evts.Cancel()
	for {
		ev, err := evts.NextPeerEvent(ctx)
		if err != nil {
			return
		}
		if ev.Type == pubsub.PeerJoin {
			select {
			case x.kick <- struct{}{}:
			default:
			}
		}
	}
}
