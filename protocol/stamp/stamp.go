// Package stamp implements node stamps (spec 04-stamps): a node's signature
// over a batch of leaves (envelope headers, lottery tickets) such that one
// Ed25519 signature covers the whole batch and each leaf's stamp still
// verifies on its own.
//
// The leaves are hashed into a Merkle tree; the node signs the root together
// with the purpose, its own ID, the batch time and the leaf count. A leaf's
// Stamp is that signature plus the leaf's index and its Merkle path. Leaf and
// inner-node hashes use distinct labels, so no inner node can pass for a leaf
// (second preimage), and the purpose is hashed into every leaf, so a stamp
// made for a ticket never verifies as a stamp for an envelope.
package stamp

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"time"

	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/wire"
)

// Version is the encoding version of a Stamp.
const Version = 1

// Errors returned by Verify. Each is wrapped with detail; match with errors.Is.
var (
	// ErrWrongNode: the stamp names a different node than the one expected.
	ErrWrongNode = errors.New("stamp: stamped by another node")
	// ErrBadSignature: the leaf's Merkle path does not lead to a root the
	// node signed, or the stamp's structure is inconsistent.
	ErrBadSignature = errors.New("stamp: bad signature")
	// ErrBatchSize: Sign was given no leaves, or too many.
	ErrBatchSize = errors.New("stamp: batch size out of range")
)

// Stamp is a node's attestation of one leaf.
type Stamp struct {
	Node  keys.NodeID    // the stamping node
	Time  int64          // batch time, Unix milliseconds
	Index uint32         // the leaf's position in its batch
	Count uint32         // the number of leaves in the batch
	Path  [][32]byte     // sibling hashes from the leaf up, as PathLen(Index, Count) says
	Sig   keys.Signature // the node's signature over the batch root
}

// TimeOf returns the stamp's time as a time.Time.
func (s *Stamp) TimeOf() time.Time { return time.UnixMilli(s.Time) }

// LeafHash is the Merkle leaf hash of leaf for purpose:
// H("parley/v1/stamp-leaf", string16(purpose), leaf).
func LeafHash(purpose string, leaf []byte) [32]byte {
	return newHasher(purpose).leaf(leaf)
}

func nodeHash(l, r *[32]byte) [32]byte {
	return wire.Hash(wire.LabelStampNode, l[:], r[:])
}

// nodePrefix is Labeled("parley/v1/stamp-node"), the start of every inner
// node's hash input.
var nodePrefix = wire.Labeled(wire.LabelStampNode)

// hasher computes many leaf and node hashes of one batch with one SHA-256
// state and the labeled prefixes built once: the same values as LeafHash
// and nodeHash, without their per-call allocations.
type hasher struct {
	h          hash.Hash
	leafPrefix []byte
}

func newHasher(purpose string) *hasher {
	var p wire.Encoder
	p.String16(purpose)
	return &hasher{h: sha256.New(), leafPrefix: wire.Labeled(wire.LabelStampLeaf, p.Bytes())}
}

func (x *hasher) leaf(leaf []byte) (out [32]byte) {
	x.h.Reset()
	x.h.Write(x.leafPrefix)
	x.h.Write(leaf)
	x.h.Sum(out[:0])
	return out
}

func (x *hasher) node(l, r *[32]byte) (out [32]byte) {
	x.h.Reset()
	x.h.Write(nodePrefix)
	x.h.Write(l[:])
	x.h.Write(r[:])
	x.h.Sum(out[:0])
	return out
}

// PathLen returns the number of sibling hashes on the path of leaf index in a
// batch of count leaves. The tree pairs nodes left to right at each level and
// carries an unpaired last node up unchanged.
func PathLen(index, count uint32) int {
	n := 0
	for width := count; width > 1; width = (width + 1) / 2 {
		if index^1 < width { // has a sibling at this level
			n++
		}
		index /= 2
	}
	return n
}

// signedBytes is what the node signs for a batch.
func signedBytes(purpose string, node keys.NodeID, t int64, count uint32, root [32]byte) []byte {
	e := wire.NewEncoder(1 + 2 + len(purpose) + 32 + 8 + 4 + 32)
	e.U8(Version)
	e.String16(purpose)
	e.Fixed(node[:])
	e.I64(t)
	e.U32(count)
	e.Fixed(root[:])
	return e.Bytes()
}

// Sign stamps a batch of leaves for purpose at time t with one signature and
// returns one Stamp per leaf, in order. Batches hold 1 to wire.MaxStampBatch
// leaves.
func Sign(k keys.NodeKey, purpose string, t time.Time, leaves [][]byte) ([]Stamp, error) {
	n := len(leaves)
	if n == 0 || n > wire.MaxStampBatch {
		return nil, fmt.Errorf("%w: %d leaves (want 1 to %d)", ErrBatchSize, n, wire.MaxStampBatch)
	}
	// levels[0] are the leaf hashes; each next level pairs the previous one.
	levels := make([][][32]byte, 0, wire.MaxStampPath+1)
	hs := newHasher(purpose)
	level := make([][32]byte, n)
	for i, l := range leaves {
		level[i] = hs.leaf(l)
	}
	levels = append(levels, level)
	for len(level) > 1 {
		next := make([][32]byte, (len(level)+1)/2)
		for i := range next {
			if 2*i+1 < len(level) {
				next[i] = hs.node(&level[2*i], &level[2*i+1])
			} else {
				next[i] = level[2*i]
			}
		}
		levels = append(levels, next)
		level = next
	}
	root := level[0]
	node := k.Public()
	ms := t.UnixMilli()
	sig := k.Sign(wire.LabelStampBatch, signedBytes(purpose, node, ms, uint32(n), root))

	stamps := make([]Stamp, n)
	// One backing array for all paths keeps a 100-leaf batch to a handful of allocations.
	depth := len(levels) - 1
	backing := make([][32]byte, n*depth)
	for i := range stamps {
		path := backing[i*depth : i*depth : (i+1)*depth]
		idx := i
		for _, lv := range levels[:depth] {
			if sib := idx ^ 1; sib < len(lv) {
				path = append(path, lv[sib])
			}
			idx /= 2
		}
		stamps[i] = Stamp{Node: node, Time: ms, Index: uint32(i), Count: uint32(n), Path: path, Sig: sig}
	}
	return stamps, nil
}

// Root recomputes the batch root from leaf and the stamp's path.
func (s *Stamp) Root(purpose string, leaf []byte) ([32]byte, error) {
	if s.Count == 0 || s.Count > wire.MaxStampBatch || s.Index >= s.Count {
		return [32]byte{}, fmt.Errorf("%w: index %d of %d", ErrBadSignature, s.Index, s.Count)
	}
	if len(s.Path) != PathLen(s.Index, s.Count) {
		return [32]byte{}, fmt.Errorf("%w: path has %d hashes, want %d", ErrBadSignature, len(s.Path), PathLen(s.Index, s.Count))
	}
	h := LeafHash(purpose, leaf)
	idx, p := s.Index, 0
	for width := s.Count; width > 1; width = (width + 1) / 2 {
		if sib := idx ^ 1; sib < width {
			if idx&1 == 0 {
				h = nodeHash(&h, &s.Path[p])
			} else {
				h = nodeHash(&s.Path[p], &h)
			}
			p++
		}
		idx /= 2
	}
	return h, nil
}

// Verify checks that s is node's stamp of leaf for purpose. It returns nil,
// or an error matching ErrWrongNode or ErrBadSignature.
func Verify(node keys.NodeID, purpose string, leaf []byte, s *Stamp) error {
	if s.Node != node {
		return fmt.Errorf("%w: stamp names %s, expected %s", ErrWrongNode, s.Node, node)
	}
	root, err := s.Root(purpose, leaf)
	if err != nil {
		return err
	}
	return VerifyRoot(node, purpose, root, s)
}

// VerifyRoot checks the batch signature of s over root (as Root computed
// it). A verifier of many leaves of one batch computes each leaf's Root,
// and checks the signature once per distinct (node, time, count, root,
// signature) (spec 04-stamps §4).
func VerifyRoot(node keys.NodeID, purpose string, root [32]byte, s *Stamp) error {
	if s.Node != node {
		return fmt.Errorf("%w: stamp names %s, expected %s", ErrWrongNode, s.Node, node)
	}
	if !node.Verify(wire.LabelStampBatch, s.Sig, signedBytes(purpose, node, s.Time, s.Count, root)) {
		return fmt.Errorf("%w: signature does not match the batch root", ErrBadSignature)
	}
	return nil
}

// Append appends the canonical encoding of s to e.
func (s *Stamp) Append(e *wire.Encoder) {
	e.U8(Version)
	e.Fixed(s.Node[:])
	e.I64(s.Time)
	e.U32(s.Index)
	e.U32(s.Count)
	if len(s.Path) > wire.MaxStampPath {
		panic("stamp: path longer than MaxStampPath") // Sign and Read never build one
	}
	e.U8(uint8(len(s.Path)))
	for i := range s.Path {
		e.Fixed(s.Path[i][:])
	}
	e.Fixed(s.Sig[:])
}

// MarshalBinary returns the canonical encoding of s.
func (s *Stamp) MarshalBinary() ([]byte, error) {
	e := wire.NewEncoder(1 + 32 + 8 + 4 + 4 + 1 + 32*len(s.Path) + 64)
	s.Append(e)
	return e.Bytes(), nil
}

// Read decodes a Stamp from d, checking its structure (not its signature).
func Read(d *wire.Decoder) Stamp {
	var s Stamp
	d.Version(Version)
	d.Field("node").Fixed(s.Node[:])
	s.Time = d.Field("time").I64()
	s.Index = d.Field("index").U32()
	s.Count = d.Field("count").U32()
	if d.Err() == nil && (s.Count == 0 || s.Count > wire.MaxStampBatch || s.Index >= s.Count) {
		d.Fail("index %d of count %d out of range (count 1 to %d)", s.Index, s.Count, wire.MaxStampBatch)
	}
	n := int(d.Field("path").U8())
	if d.Err() == nil && n != PathLen(s.Index, s.Count) {
		d.Fail("path has %d hashes, want %d", n, PathLen(s.Index, s.Count))
	}
	if d.Err() == nil {
		s.Path = make([][32]byte, n)
		for i := range s.Path {
			d.Fixed(s.Path[i][:])
		}
	}
	d.Field("signature").Fixed(s.Sig[:])
	return s
}

// Parse decodes a Stamp encoded alone. Every error is a *wire.ParseError.
func Parse(b []byte) (Stamp, error) {
	d := wire.NewDecoder("stamp", b)
	s := Read(d)
	return s, d.Finish()
}
