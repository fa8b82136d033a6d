package pairing

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/parley-chat/parley/node/store"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/lottery"
	"github.com/parley-chat/parley/protocol/wire"
)

// The package's prefixes beyond store.PrefixTicket and store.PrefixEpoch,
// under shorter names (node/store/keys.go documents them).
const (
	prefixWaiting  = store.PrefixWaiting
	prefixTicketDH = store.PrefixTicketDH
)

// Sub-keys of one epoch, under epoch/<epoch u64>/.
const (
	epochCommit  = "c/" // c/<SHA-256 of the encoding 32> -> commit encoding
	epochReveal  = "r/" // r/<SHA-256 of the encoding 32> -> reveal encoding
	epochTicket  = "t/" // t/<ticket ID 32> -> ticket encoding, stamp included
	epochBatch   = "b/" // b/<SHA-256 of the encoding 32> -> a whole stamp batch of tickets (lottery.TicketBatch)
	epochPair    = "p/" // p/<ticket ID A 32><ticket ID B 32> -> "" (a confirmed pair, A < B)
	epochProof   = "q/" // q/<SHA-256 of the encoding 32> -> an equivocation proof (lottery.Equivocation)
	epochSummary = "s"  // s -> summary; written last, when the epoch is settled
)

func linkKey(t keys.TicketID) []byte  { return store.Key(store.PrefixTicket, t[:]) }
func dhKey(d keys.DHPublic) []byte    { return store.Key(prefixTicketDH, d[:]) }
func waitKey(a keys.AccountID) []byte { return store.Key(prefixWaiting, a[:]) }
func u64(v uint64) []byte             { return binary.BigEndian.AppendUint64(nil, v) }
func epochKey(n uint64, sub string, id ...[]byte) []byte {
	return store.Key(store.PrefixEpoch, append([][]byte{u64(n), []byte("/"), []byte(sub)}, id...)...)
}

// epochStartKey is the first key of epoch n and of every later epoch.
func epochStartKey(n uint64) []byte { return store.Key(store.PrefixEpoch, u64(n)) }

// Link is the ticket-to-account link the node keeps for every ticket it
// issued (DESIGN §3.4): who holds a ticket signing key, so that a report
// about a message stamped for that key reaches the right account. It is
// kept for wire.MaxDisclosureAge after the ticket was issued or, for a
// ticket that was paired, after its room closed.
type Link struct {
	Ticket  keys.TicketID  // the ticket's signing key: the sender's key in the room
	DH      keys.DHPublic  // the ticket's X25519 key
	Account keys.AccountID // the account that asked for the ticket
	Epoch   uint64         // the first epoch the ticket joined
	Issued  time.Time      // when the node accepted the ticket
	Room    keys.RoomID    // the room it was paired into; zero until then
}

// linkSize is the size of a version 1 link record:
//
//	u8 version (1) || [32] account || [32] X25519 key || u64 first epoch ||
//	i64 issued (Unix nanoseconds) || [32] room (zero until paired)
//
// The signing key is the record's key.
const linkSize = 1 + 32 + 32 + 8 + 8 + 32

func encodeLink(l Link) []byte {
	e := wire.NewEncoder(linkSize)
	e.U8(1)
	e.Fixed(l.Account[:])
	e.Fixed(l.DH[:])
	e.U64(l.Epoch)
	e.I64(l.Issued.UnixNano())
	e.Fixed(l.Room[:])
	return e.Bytes()
}

func decodeLink(t keys.TicketID, v []byte) (Link, error) {
	l := Link{Ticket: t}
	d := wire.NewDecoder("ticket link", v)
	d.Version(1)
	d.Field("account").Fixed(l.Account[:])
	d.Field("dh").Fixed(l.DH[:])
	l.Epoch = d.Field("epoch").U64()
	l.Issued = time.Unix(0, d.Field("issued").I64()).UTC()
	d.Field("room").Fixed(l.Room[:])
	if err := d.Finish(); err != nil {
		return Link{}, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return l, nil
}

// waiting is an account's ticket that waits for a partner. The persisted
// fields are in its record (encodeWaiting); epoch is kept only in memory:
// after a restart every waiting ticket joins the next open epoch.
type waiting struct {
	acct      keys.AccountID
	keys      keys.TicketPublic
	interests []lottery.Tag // sorted, unique
	avoid     []lottery.Tag // sorted, unique
	first     uint64        // the first epoch it joined; TicketTTL counts from it
	issued    time.Time

	epoch   uint64 // the epoch it is in now (it rolls over)
	drawing bool   // its epoch is closed and not yet settled: no other epoch takes it
	// offered: while drawing, a remote node was asked to confirm a pair
	// with it, or was told yes (spec 07 §13.4); that node may pair its
	// side, so a withdrawal waits for the settling (Withdraw).
	offered bool
}

// ticket returns the unstamped lottery ticket of w for epoch. Its avoid
// tags are the epoch forms of the tags the account gave
// (lottery.EpochAvoidTag, spec 07-lottery §2.3), sorted.
func (w *waiting) ticket(epoch uint64, home keys.NodeID) *lottery.Ticket {
	t := &lottery.Ticket{Epoch: epoch, Home: home, Keys: w.keys, Interests: w.interests}
	if len(w.avoid) > 0 {
		t.Avoid = make([]lottery.Tag, len(w.avoid))
		for i, tag := range w.avoid {
			t.Avoid[i] = lottery.EpochAvoidTag(tag, epoch)
		}
		t.Normalize()
	}
	return t
}

// A version 1 waiting record, under wait/<AccountID>:
//
//	u8 version (1) || [32] signing key || [32] X25519 key || u64 first epoch ||
//	i64 issued (Unix nanoseconds) || u16 n || n × [16] interest tag ||
//	u16 m || m × [16] avoid tag
func encodeWaiting(w *waiting) []byte {
	e := wire.NewEncoder(1 + 32 + 32 + 8 + 8 + 2 + 2 + 16*(len(w.interests)+len(w.avoid)))
	e.U8(1)
	e.Fixed(w.keys.Sign[:])
	e.Fixed(w.keys.DH[:])
	e.U64(w.first)
	e.I64(w.issued.UnixNano())
	for _, tags := range [][]lottery.Tag{w.interests, w.avoid} {
		e.Count(len(tags))
		for i := range tags {
			e.Fixed(tags[i][:])
		}
	}
	return e.Bytes()
}

func decodeWaiting(acct keys.AccountID, v []byte) (*waiting, error) {
	w := &waiting{acct: acct}
	d := wire.NewDecoder("waiting ticket", v)
	d.Version(1)
	d.Field("sign").Fixed(w.keys.Sign[:])
	d.Field("dh").Fixed(w.keys.DH[:])
	w.first = d.Field("first epoch").U64()
	w.issued = time.Unix(0, d.Field("issued").I64()).UTC()
	w.interests = readTags(d.Field("interests"), wire.MaxInterestTags)
	w.avoid = readTags(d.Field("avoid"), wire.MaxAvoidTags)
	if err := d.Finish(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return w, nil
}

func readTags(d *wire.Decoder, limit int) []lottery.Tag {
	n := d.Count(limit, len(lottery.Tag{}))
	if n == 0 {
		return nil
	}
	tags := make([]lottery.Tag, n)
	for i := range tags {
		d.Fixed(tags[i][:])
	}
	return tags
}

// summary is written last when an epoch is settled:
//
//	u8 version (1) || [32] seed || u32 tickets drawn || u32 pairs drawn ||
//	u32 pairs confirmed by this node
type summary struct {
	seed      [32]byte
	tickets   uint32
	drawn     uint32
	confirmed uint32
}

func encodeSummary(s summary) []byte {
	e := wire.NewEncoder(1 + 32 + 12)
	e.U8(1)
	e.Fixed(s.seed[:])
	e.U32(s.tickets)
	e.U32(s.drawn)
	e.U32(s.confirmed)
	return e.Bytes()
}
