// Package lottery implements Parley's pairing lottery (spec 07-lottery):
// tickets, the commit-then-reveal epoch seed, the deterministic matching and
// the audit of a past epoch. Nobody chooses who meets whom; everybody can
// check it (DESIGN §3.3).
//
// A user who wants a partner gets a Ticket from its home node: fresh room
// keys, optional interest and avoid tags, the epoch and the home node, no
// account name. The node stamps all its tickets of an epoch with one
// signature (StampTickets). Every node commits to a secret random value
// before the epoch's tickets close and reveals it afterwards; Seed hashes the
// valid reveals, so nobody knows the seed while tickets can still be added.
// Every node then computes the same Match from (seed, ticket set). Draw does
// the whole epoch as every node computes it, and Audit checks a set of
// confirmed pairs against it.
//
// The package is pure: timing the epochs, gossiping tickets, commits and
// reveals, confirming pairs, rolling unmatched tickets over and enforcing
// per-node ticket quotas are the node's job.
package lottery

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"strings"

	"github.com/parley-chat/parley/protocol/wire"
)

// Errors. Each is wrapped with detail; match with errors.Is. Parsers return
// a *wire.ParseError instead.
var (
	// ErrBadTicket: a ticket is not canonical (too many or unsorted tags),
	// is not stamped, its stamp does not verify against its home node, or
	// StampTickets was given a ticket of another home node.
	ErrBadTicket = errors.New("lottery: bad ticket")
	// ErrWrongEpoch: a ticket is for another epoch than the one drawn.
	ErrWrongEpoch = errors.New("lottery: ticket for another epoch")
	// ErrExcludedNode: a ticket's home node has no valid reveal in the
	// epoch (it did not commit, did not reveal, revealed a wrong value or
	// equivocated), so its tickets do not take part.
	ErrExcludedNode = errors.New("lottery: home node not included in the epoch")
	// ErrBadSignature: a commit or reveal message's signature does not
	// verify.
	ErrBadSignature = errors.New("lottery: bad signature on lottery message")
	// ErrNoReveals: no node gave a valid reveal, so the epoch has no seed
	// and no draw.
	ErrNoReveals = errors.New("lottery: no valid reveals")
	// ErrLimit: an epoch has more included nodes than
	// wire.MaxNodesPerEpoch or more accepted tickets than
	// wire.MaxTicketsPerEpoch.
	ErrLimit = errors.New("lottery: epoch over a protocol limit")
	// ErrNotEquivocation: an Equivocation's two messages do not conflict,
	// or are not both of its node and epoch.
	ErrNotEquivocation = errors.New("lottery: not an equivocation")
)

// Tag is an opaque 16-byte interest or avoid tag.
type Tag [16]byte

// InterestTag returns the tag of an interest (spec 07-lottery §2.1): the
// text is trimmed of leading and trailing white space (strings.TrimSpace:
// Unicode White_Space) and lower-cased code point by code point
// (strings.ToLower: Unicode simple lowercase mapping, no special casing, no
// normalisation; an invalid UTF-8 byte becomes U+FFFD), then
// H("parley/v1/interest-tag", text) truncated to 16 bytes. Nodes can see
// which tickets share an interest, but learn which interest only by
// guessing its text.
func InterestTag(text string) Tag {
	h := wire.Hash(wire.LabelInterestTag, []byte(strings.ToLower(strings.TrimSpace(text))))
	var t Tag
	copy(t[:], h[:])
	return t
}

// AvoidTag returns the avoid tag for epoch from a room's avoid key (spec
// 07-lottery §2.2, 06-room-keys §2.3): HMAC-SHA256(avoidKey,
// Labeled("parley/v1/avoid-tag", u64 epoch)) truncated to 16 bytes. Both
// users of a room compute the same tag and put it in their tickets of that
// epoch; the matching never pairs two tickets that share an avoid tag.
// Without the key, tags of different epochs cannot be linked to each other
// or to the room.
func AvoidTag(avoidKey [32]byte, epoch uint64) Tag {
	var e [8]byte
	binary.BigEndian.PutUint64(e[:], epoch)
	m := hmac.New(sha256.New, avoidKey[:])
	m.Write(wire.Labeled(wire.LabelAvoidTag, e[:]))
	var t Tag
	copy(t[:], m.Sum(nil))
	return t
}

// EpochAvoidTag returns the avoid tag a home node puts into its ticket of
// epoch for a room avoid tag its user gave (spec 07-lottery §2.3): the
// first 16 bytes of H("parley/v1/avoid-epoch", tag, u64 epoch). Every home
// node applies it, so two tickets of one epoch whose users gave the same
// tag still share one; but a node that sees a ticket's avoid tags cannot
// link them to the same room's tags in another epoch, as a ticket rolls
// over or its user asks again, without the tag the user gave its own node.
func EpochAvoidTag(tag Tag, epoch uint64) Tag {
	var e [8]byte
	binary.BigEndian.PutUint64(e[:], epoch)
	h := wire.Hash(wire.LabelAvoidEpoch, tag[:], e[:])
	var t Tag
	copy(t[:], h[:])
	return t
}
