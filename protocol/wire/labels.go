package wire

import (
	"crypto/sha256"
	"encoding/binary"
)

// Domain-separation labels (spec 02-encoding §3). Every signature and every
// hash Parley computes covers Labeled(label, ...) with one of these, so a
// value signed or hashed for one purpose can never be taken for another. The
// version is in the label: a future v2 changes the label, not the meaning.
// TestLabelsDistinct keeps them unique.
const (
	LabelStampBatch     = "parley/v1/stamp-batch"     // node signature over a stamp batch's Merkle root
	LabelStampLeaf      = "parley/v1/stamp-leaf"      // Merkle leaf hash
	LabelStampNode      = "parley/v1/stamp-node"      // Merkle inner-node hash
	LabelEnvelopeHeader = "parley/v1/envelope-header" // stamp purpose for envelope headers; also the AEAD associated data
	LabelEnvelopeID     = "parley/v1/envelope-id"     // idempotent envelope ID
	LabelFranking       = "parley/v1/franking"        // franking commitment HMAC input
	LabelDisclosure     = "parley/v1/disclosure"      // reporter's signature over a disclosure
	LabelRoomID         = "parley/v1/room-id"         // room ID from the two tickets
	LabelRoomRoot       = "parley/v1/room-root"       // HKDF info: shared secret -> room root
	LabelRoomChain      = "parley/v1/room-chain"      // HKDF info: room root -> direction chains
	LabelRoomMessage    = "parley/v1/room-message"    // ratchet: chain key -> message key and nonce
	LabelRoomNext       = "parley/v1/room-next"       // ratchet: chain key -> next chain key
	LabelAvoidTag       = "parley/v1/avoid-tag"       // lottery avoid tag from an old room
	LabelInterestTag    = "parley/v1/interest-tag"    // lottery interest tag from its text
	LabelTicket         = "parley/v1/ticket"          // stamp purpose for lottery tickets; ticket ID
	LabelLotteryCommit  = "parley/v1/lottery-commit"  // commitment to a node's reveal
	LabelLotteryMsg     = "parley/v1/lottery-msg"     // node signature over a commit or reveal message
	LabelLotterySeed    = "parley/v1/lottery-seed"    // epoch seed from the valid reveals
	LabelLotteryOrder   = "parley/v1/lottery-order"   // per-ticket draw order under a seed
	LabelBlobKeys       = "parley/v1/blob-keys"       // HKDF info: blob key -> encryption key
	LabelBlobCommit     = "parley/v1/blob-key-commit" // key commitment stored in a blob manifest
	LabelBlobChunk      = "parley/v1/blob-chunk"      // hash of one ciphertext chunk
	LabelBlobAddress    = "parley/v1/blob-address"    // blob address from its manifest
	LabelAccountLogin   = "parley/v1/account-login"   // account signature over a login challenge
	LabelNodeRecord     = "parley/v1/node-record"     // node signature over its gossiped record
	LabelGossipID       = "parley/v1/gossip-id"       // GossipSub message ID from topic and data
	LabelTakedown       = "parley/v1/blob-takedown"   // node signature over a blob takedown notice
	LabelPairConfirm    = "parley/v1/pair-confirm"    // node signature over its answer to a pair confirmation
	LabelLotteryView    = "parley/v1/lottery-view"    // digest of a node's view of an epoch (seed and accepted tickets)
	LabelAvoidEpoch     = "parley/v1/avoid-epoch"     // a room's avoid tag as a home node puts it into one epoch's ticket
)

// Labeled returns the bytes that a signature or hash under label covers:
// the label's length as a uint16, the label, then each part as it is. Parts
// are canonical encodings (self-delimiting), so concatenation is unambiguous.
func Labeled(label string, parts ...[]byte) []byte {
	n := 2 + len(label)
	for _, p := range parts {
		n += len(p)
	}
	b := make([]byte, 0, n)
	b = binary.BigEndian.AppendUint16(b, uint16(len(label)))
	b = append(b, label...)
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// Hash returns SHA-256(Labeled(label, parts...)) without building the
// concatenation.
func Hash(label string, parts ...[]byte) [32]byte {
	h := sha256.New()
	var l [2]byte
	binary.BigEndian.PutUint16(l[:], uint16(len(label)))
	h.Write(l[:])
	h.Write([]byte(label))
	for _, p := range parts {
		h.Write(p)
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}
