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

// MessageSize is the length of an encoded Commit or Reveal, in bytes.
const MessageSize = signedSize + keys.SignatureSize

// Message kinds (spec 07-lottery §4.2). The kind is in the signed bytes, so
// a commit's signature never verifies as a reveal's and vice versa.
const (
	kindCommit uint8 = 1
	kindReveal uint8 = 2
)

// signedSize is the length of a message without its signature.
const signedSize = 1 + 1 + 8 + 32 + 32

// NewReveal draws a node's secret random value for one epoch from r.
func NewReveal(r io.Reader) ([32]byte, error) {
	var v [32]byte
	if _, err := io.ReadFull(r, v[:]); err != nil {
		return v, fmt.Errorf("lottery: reading randomness: %w", err)
	}
	return v, nil
}

// CommitValue returns a node's commitment to its reveal for an epoch (spec
// 07-lottery §4.1): H("parley/v1/lottery-commit", u64 epoch, node, reveal).
func CommitValue(epoch uint64, node keys.NodeID, reveal [32]byte) [32]byte {
	var e [8]byte
	binary.BigEndian.PutUint64(e[:], epoch)
	return wire.Hash(wire.LabelLotteryCommit, e[:], node[:], reveal[:])
}

// Commit is a node's signed commitment to its reveal for an epoch, gossiped
// before the epoch's tickets close (spec 07-lottery §4).
type Commit struct {
	Epoch uint64
	Node  keys.NodeID
	Value [32]byte // CommitValue(Epoch, Node, reveal)
	Sig   keys.Signature
}

// Reveal is a node's signed reveal for an epoch, gossiped after the epoch's
// tickets close (spec 07-lottery §4).
type Reveal struct {
	Epoch uint64
	Node  keys.NodeID
	Value [32]byte // the secret value committed to
	Sig   keys.Signature
}

// signedBytes is what the node signs, under "parley/v1/lottery-msg", and
// the start of the message's encoding.
func signedBytes(kind uint8, epoch uint64, node *keys.NodeID, value *[32]byte) []byte {
	e := wire.NewEncoder(MessageSize)
	e.U8(MessageVersion)
	e.U8(kind)
	e.U64(epoch)
	e.Fixed(node[:])
	e.Fixed(value[:])
	return e.Bytes()
}

func verifyMessage(what string, kind uint8, epoch uint64, node *keys.NodeID, value *[32]byte, sig *keys.Signature) error {
	if !node.Verify(wire.LabelLotteryMsg, *sig, signedBytes(kind, epoch, node, value)) {
		return fmt.Errorf("%w: %s for epoch %d from %s", ErrBadSignature, what, epoch, node)
	}
	return nil
}

func marshalMessage(kind uint8, epoch uint64, node *keys.NodeID, value *[32]byte, sig *keys.Signature) []byte {
	return append(signedBytes(kind, epoch, node, value), sig[:]...)
}

// parseMessage decodes a message of the given kind into its fields.
func parseMessage(what string, kind uint8, b []byte, epoch *uint64, node *keys.NodeID, value *[32]byte, sig *keys.Signature) error {
	d := wire.NewDecoder(what, b)
	d.Version(MessageVersion)
	if k := d.Field("kind").U8(); d.Err() == nil && k != kind {
		d.Fail("kind %d, want %d", k, kind)
	}
	*epoch = d.Field("epoch").U64()
	d.Field("node").Fixed(node[:])
	d.Field("value").Fixed(value[:])
	d.Field("signature").Fixed(sig[:])
	return d.Finish()
}

// SignCommit returns k's signed commit for epoch to the secret reveal
// value: its Value is CommitValue(epoch, k.Public(), reveal).
func SignCommit(k keys.NodeKey, epoch uint64, reveal [32]byte) Commit {
	c := Commit{Epoch: epoch, Node: k.Public()}
	c.Value = CommitValue(epoch, c.Node, reveal)
	c.Sig = k.Sign(wire.LabelLotteryMsg, signedBytes(kindCommit, c.Epoch, &c.Node, &c.Value))
	return c
}

// Verify checks the commit's signature by c.Node; errors match
// ErrBadSignature.
func (c *Commit) Verify() error {
	return verifyMessage("commit", kindCommit, c.Epoch, &c.Node, &c.Value, &c.Sig)
}

// MarshalBinary returns the commit's canonical encoding (spec 07-lottery
// §4.2).
func (c *Commit) MarshalBinary() ([]byte, error) {
	return marshalMessage(kindCommit, c.Epoch, &c.Node, &c.Value, &c.Sig), nil
}

// ParseCommit decodes a commit. It does not check the signature. Every
// error is a *wire.ParseError.
func ParseCommit(b []byte) (*Commit, error) {
	c := &Commit{}
	if err := parseMessage("lottery commit", kindCommit, b, &c.Epoch, &c.Node, &c.Value, &c.Sig); err != nil {
		return nil, err
	}
	return c, nil
}

// SignReveal returns k's signed reveal of its secret value for epoch.
func SignReveal(k keys.NodeKey, epoch uint64, value [32]byte) Reveal {
	r := Reveal{Epoch: epoch, Node: k.Public(), Value: value}
	r.Sig = k.Sign(wire.LabelLotteryMsg, signedBytes(kindReveal, r.Epoch, &r.Node, &r.Value))
	return r
}

// Verify checks the reveal's signature by r.Node; errors match
// ErrBadSignature.
func (r *Reveal) Verify() error {
	return verifyMessage("reveal", kindReveal, r.Epoch, &r.Node, &r.Value, &r.Sig)
}

// MarshalBinary returns the reveal's canonical encoding (spec 07-lottery
// §4.2).
func (r *Reveal) MarshalBinary() ([]byte, error) {
	return marshalMessage(kindReveal, r.Epoch, &r.Node, &r.Value, &r.Sig), nil
}

// ParseReveal decodes a reveal. It does not check the signature. Every
// error is a *wire.ParseError.
func ParseReveal(b []byte) (*Reveal, error) {
	r := &Reveal{}
	if err := parseMessage("lottery reveal", kindReveal, b, &r.Epoch, &r.Node, &r.Value, &r.Sig); err != nil {
		return nil, err
	}
	return r, nil
}

// Seed computes an epoch's seed from the commits and reveals a node has
// received (spec 07-lottery §5). It verifies every signature itself;
// messages for other epochs and messages with bad signatures are ignored,
// as if never received. A node that sent valid commits for the epoch is
// included iff all its commits carry the same value and it sent a valid
// reveal whose CommitValue is that value; a node that committed and is not
// included is excluded (no reveal, a wrong reveal, or two different
// commits: equivocation). A reveal from a node without a commit counts for
// nothing and the node is in neither list.
//
// The seed is H("parley/v1/lottery-seed", u64 epoch, u32 count, then
// node || reveal for each included node in ascending node order). Included
// and excluded are sorted. The result does not depend on the order or
// repetition of the inputs. Seed fails with ErrNoReveals when no node is
// included and with ErrLimit when more than wire.MaxNodesPerEpoch are.
func Seed(epoch uint64, commits []Commit, reveals []Reveal) (seed [32]byte, included, excluded []keys.NodeID, err error) {
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
		if _, done := revealOf[r.Node]; done {
			continue // a second value cannot match the same commit (SHA-256)
		}
		cv, ok := commitOf[r.Node]
		if !ok || CommitValue(epoch, r.Node, r.Value) != cv || r.Verify() != nil {
			continue
		}
		revealOf[r.Node] = r.Value
	}
	for n := range commitOf {
		if _, ok := revealOf[n]; ok {
			included = append(included, n)
		} else {
			excluded = append(excluded, n)
		}
	}
	byID := func(a, b keys.NodeID) int { return bytes.Compare(a[:], b[:]) }
	slices.SortFunc(included, byID)
	slices.SortFunc(excluded, byID)
	switch {
	case len(included) == 0:
		return seed, nil, excluded, ErrNoReveals
	case len(included) > wire.MaxNodesPerEpoch:
		return seed, included, excluded, fmt.Errorf("%w: %d nodes revealed, limit %d", ErrLimit, len(included), wire.MaxNodesPerEpoch)
	}
	e := wire.NewEncoder(8 + 4 + 64*len(included))
	e.U64(epoch)
	e.U32(uint32(len(included)))
	for _, n := range included {
		v := revealOf[n]
		e.Fixed(n[:])
		e.Fixed(v[:])
	}
	return wire.Hash(wire.LabelLotterySeed, e.Bytes()), included, excluded, nil
}
