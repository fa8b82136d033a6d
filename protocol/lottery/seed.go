package lottery

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"slices"

	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/wire"
)

// MessageVersion is the encoding version of commit and reveal messages.
const MessageVersion = 1

// Message kinds, signed into every commit and reveal so that one can never
// be replayed as the other.
const (
	kindCommit uint8 = 1
	kindReveal uint8 = 2
)

// messageSize is the fixed size of an encoded commit or reveal.
const messageSize = 1 + 1 + 8 + 32 + 32 + 64

// NewReveal draws a node's secret random value for one epoch from r.
func NewReveal(r io.Reader) ([32]byte, error) {
	var v [32]byte
	if _, err := io.ReadFull(r, v[:]); err != nil {
		return v, fmt.Errorf("lottery: reading randomness: %w", err)
	}
	return v, nil
}

// CommitValue is the commitment to reveal for (epoch, node):
// H("parley/v1/lottery-commit", u64 epoch, node, reveal).
func CommitValue(epoch uint64, node keys.NodeID, reveal [32]byte) [32]byte {
	var e [8]byte
	binary.BigEndian.PutUint64(e[:], epoch)
	return wire.Hash(wire.LabelLotteryCommit, e[:], node[:], reveal[:])
}

// message is the shared shape of Commit and Reveal.
type message struct {
	Epoch uint64
	Node  keys.NodeID
	Value [32]byte // the commitment (Commit) or the revealed value (Reveal)
	Sig   keys.Signature
}

func (m *message) signed(kind uint8) []byte {
	e := wire.NewEncoder(1 + 1 + 8 + 32 + 32)
	e.U8(MessageVersion)
	e.U8(kind)
	e.U64(m.Epoch)
	e.Fixed(m.Node[:])
	e.Fixed(m.Value[:])
	return e.Bytes()
}

func (m *message) sign(k keys.NodeKey, kind uint8) {
	m.Node = k.Public()
	m.Sig = k.Sign(wire.LabelLotteryMsg, m.signed(kind))
}

func (m *message) verify(kind uint8) error {
	if !m.Node.Verify(wire.LabelLotteryMsg, m.Sig, m.signed(kind)) {
		return fmt.Errorf("%w: epoch %d node %s", ErrBadMessage, m.Epoch, m.Node)
	}
	return nil
}

func (m *message) marshal(kind uint8) []byte {
	e := wire.NewEncoder(messageSize)
	e.Fixed(m.signed(kind))
	e.Fixed(m.Sig[:])
	return e.Bytes()
}

func parseMessage(what string, kind uint8, b []byte) (message, error) {
	var m message
	d := wire.NewDecoder(what, b)
	d.Version(MessageVersion)
	if k := d.Field("kind").U8(); d.Err() == nil && k != kind {
		d.Fail("kind %d, want %d", k, kind)
	}
	m.Epoch = d.Field("epoch").U64()
	d.Field("node").Fixed(m.Node[:])
	d.Field("value").Fixed(m.Value[:])
	d.Field("signature").Fixed(m.Sig[:])
	return m, d.Finish()
}

// Commit is a node's signed commitment to its reveal for an epoch, gossiped
// before the epoch's tickets close (spec 07-lottery §3).
type Commit struct{ message }

// SignCommit returns k's signed commitment to reveal for epoch.
func SignCommit(k keys.NodeKey, epoch uint64, reveal [32]byte) Commit {
	c := Commit{message{Epoch: epoch, Value: CommitValue(epoch, k.Public(), reveal)}}
	c.sign(k, kindCommit)
	return c
}

// Verify checks the commit's signature.
func (c *Commit) Verify() error { return c.verify(kindCommit) }

// MarshalBinary returns the canonical encoding.
func (c *Commit) MarshalBinary() ([]byte, error) { return c.marshal(kindCommit), nil }

// ParseCommit decodes a commit; every error is a *wire.ParseError.
func ParseCommit(b []byte) (Commit, error) {
	m, err := parseMessage("lottery commit", kindCommit, b)
	return Commit{m}, err
}

// Reveal is a node's signed reveal for an epoch, gossiped after tickets
// close (spec 07-lottery §3).
type Reveal struct{ message }

// SignReveal returns k's signed reveal of value for epoch.
func SignReveal(k keys.NodeKey, epoch uint64, value [32]byte) Reveal {
	r := Reveal{message{Epoch: epoch, Value: value}}
	r.sign(k, kindReveal)
	return r
}

// Verify checks the reveal's signature.
func (r *Reveal) Verify() error { return r.verify(kindReveal) }

// MarshalBinary returns the canonical encoding.
func (r *Reveal) MarshalBinary() ([]byte, error) { return r.marshal(kindReveal), nil }

// ParseReveal decodes a reveal; every error is a *wire.ParseError.
func ParseReveal(b []byte) (Reveal, error) {
	m, err := parseMessage("lottery reveal", kindReveal, b)
	return Reveal{m}, err
}

// SeedResult is the outcome of an epoch's commit-then-reveal round.
type SeedResult struct {
	Seed     [32]byte
	Included []keys.NodeID // nodes with a valid reveal, sorted: their tickets take part
	Excluded []keys.NodeID // nodes that committed but are out: no valid reveal, or two commits
}

// Seed computes the epoch seed (spec 07-lottery §3). Messages of other
// epochs and messages whose signatures fail are ignored. A node is included
// iff it sent exactly one commit value for the epoch and a reveal that hashes
// to it. A node that committed twice with different values (equivocation)
// or never revealed a matching value is excluded. The seed is
// H("parley/v1/lottery-seed", u64 epoch, u32 n, then node || reveal for each
// included node in node order).
func Seed(epoch uint64, commits []Commit, reveals []Reveal) (*SeedResult, error) {
	commitOf := map[keys.NodeID][32]byte{}
	equivocated := map[keys.NodeID]bool{}
	for i := range commits {
		c := &commits[i]
		if c.Epoch != epoch || c.Verify() != nil {
			continue
		}
		if prev, ok := commitOf[c.Node]; ok && prev != c.Value {
			equivocated[c.Node] = true
		}
		commitOf[c.Node] = c.Value
	}
	revealOf := map[keys.NodeID][32]byte{}
	for i := range reveals {
		r := &reveals[i]
		if r.Epoch != epoch || equivocated[r.Node] {
			continue
		}
		cv, ok := commitOf[r.Node]
		if !ok || CommitValue(epoch, r.Node, r.Value) != cv || r.Verify() != nil {
			continue
		}
		revealOf[r.Node] = r.Value
	}
	res := &SeedResult{}
	for n := range commitOf {
		if _, ok := revealOf[n]; ok {
			res.Included = append(res.Included, n)
		} else {
			res.Excluded = append(res.Excluded, n)
		}
	}
	cmp := func(a, b keys.NodeID) int { return bytes.Compare(a[:], b[:]) }
	slices.SortFunc(res.Included, cmp)
	slices.SortFunc(res.Excluded, cmp)
	if len(res.Included) == 0 {
		return res, ErrNoReveals
	}
	if len(res.Included) > wire.MaxNodesPerEpoch {
		return res, fmt.Errorf("lottery: %d nodes revealed, more than %d", len(res.Included), wire.MaxNodesPerEpoch)
	}
	e := wire.NewEncoder(12 + 64*len(res.Included))
	e.U64(epoch)
	e.U32(uint32(len(res.Included)))
	for _, n := range res.Included {
		v := revealOf[n]
		e.Fixed(n[:])
		e.Fixed(v[:])
	}
	res.Seed = wire.Hash(wire.LabelLotterySeed, e.Bytes())
	return res, nil
}
